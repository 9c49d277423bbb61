"""The citizen's answer once a report is resolved: fixed, partly fixed or not fixed, a rating, a comment.

The rule, in one place:
- a report can be answered once it is resolved (or closed after that); before, 409;
- one answer per report: a second one replaces the first within ANSWER_WINDOW of the first;
  after that, 409, unless the report was resolved again since (a new round of answers);
- "not fixed" on a resolved report reopens it (resolved → in_progress), the comment in its history.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gis.errors import ZonechiefError

ANSWER_WINDOW = timedelta(days=7)
ANSWERABLE = ("resolved", "closed")
# outcome → (Chinese, English), in the order the page offers them
OUTCOMES = {"fixed": ("已解决", "fixed"), "partly_fixed": ("部分解决", "partly fixed"),
            "not_fixed": ("未解决", "not fixed")}
REOPENS = "not_fixed"


class FeedbackIn(BaseModel):
    """A citizen's answer."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["fixed", "partly_fixed", "not_fixed"] = Field(description="已解决 / 部分解决 / 未解决")
    rating: int = Field(ge=1, le=5, description="1 (worst) to 5 (best)")
    comment: str = Field("", max_length=1000)


class FeedbackConflict(ZonechiefError, ValueError):
    """An answer the rule does not take now (409); the message says why, in Chinese and English."""


@dataclass(frozen=True)
class AnswerState:
    """Whether a report takes an answer now, and why not."""

    open: bool
    reason: str | None = None  # why not, Chinese / English
    replaces: bool = False  # an answer given earlier in this round would be replaced


def answer_state(status: str, last_resolved_at: datetime | None, first_rated_at: datetime | None,
                 now: datetime) -> AnswerState:
    """What the rule says about answering a report now."""
    if status not in ANSWERABLE:
        return AnswerState(False, "问题处理完成后才能评价 / you can answer once the report is resolved")
    if first_rated_at is None or (last_resolved_at is not None and last_resolved_at > first_rated_at):
        return AnswerState(True)
    if now - first_rated_at <= ANSWER_WINDOW:
        return AnswerState(True, replaces=True)
    return AnswerState(False, f"已评价；评价提交后 {ANSWER_WINDOW.days} 天内可以修改 / already answered; an answer can be "
                              f"changed within {ANSWER_WINDOW.days} days")


def reopen_note(fb: FeedbackIn) -> str:
    """The history note of a reopening answer."""
    zh, en = OUTCOMES[fb.outcome]
    return f"市民评价：{zh} / citizen: {en} ({fb.rating}/5)" + (f": {fb.comment}" if fb.comment else "")
