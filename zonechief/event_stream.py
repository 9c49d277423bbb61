"""Reading the outbox (store.outbox) for live streams of events, in id order, without skipping any.

Event ids are drawn when the event is written, before its transaction commits: two concurrent
changes can commit in the other order, so id 8 may become visible after id 9. A reader that
only asks for "ids above the last one I sent" would pass 8 by for ever. So streams send only
events up to a high-water mark: the id up to which every id is settled, either visible or
missing for longer than GAP_WAIT_S (its transaction rolled back: no change takes that long).
One mark per store and process (`high_water`), moved at most every MARK_EVERY_S whatever the
number of streams, or at once after a change committed in this process (`nudge`); each stream
(`EventStream`) then reads its own chief's settled events.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

GAP_WAIT_S = 10.0  # a missing id is given up (rolled back) after this long
MARK_EVERY_S = 0.25  # the mark is read from the store at most this often per process
READ_LIMIT = 500  # events read at once (the mark, and each stream's batch)
KEEP = 2000  # the latest settled events kept in memory for the streams that are up to date


@dataclass(frozen=True)
class StreamEvent:
    """One event as a stream sends it (and whose chief's it is)."""

    id: int
    type: str
    payload: dict
    chief_id: str | None = None


@dataclass
class Gap:
    """Ids lo..hi (inclusive) not visible, first seen missing at `since` (monotonic seconds)."""

    lo: int
    hi: int
    since: float


@dataclass
class HighWater:
    """The settled mark of one store's outbox: every id <= mark is visible or given up.

    `outbox` is a store.outbox.OutboxRepository (events_after, last_event_id); `clock` is monotonic.
    """

    outbox: object
    clock: Callable[[], float] = time.monotonic
    gap_wait_s: float = GAP_WAIT_S
    every_s: float = MARK_EVERY_S
    mark: int | None = None  # None until first read
    top: int = 0  # the highest visible id seen
    gaps: list[Gap] = field(default_factory=list)
    read_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The latest settled events, in id order: every settled event with an id above `kept_after` is here,
    # so a stream that is up to date reads its new events from memory, not the store.
    keep: int = KEEP
    kept: deque = field(default_factory=deque)
    kept_after: int = 0

    def current(self, fresh: bool = False) -> int:
        """The mark, read again from the store if the last read is older than every_s (or `fresh`)."""
        with self.lock:
            return self._current(fresh)

    def after(self, last: int) -> tuple[int, list[StreamEvent] | None]:
        """(the mark, the settled events with last < id <= mark); the events None when they are no longer kept."""
        with self.lock:  # one lock: the events are exactly those up to this mark
            mark = self._current(False)
            if last < self.kept_after:
                return mark, None
            out = []
            for e in reversed(self.kept):  # the new ones are at the end
                if e.id <= last:
                    break
                out.append(e)
            return mark, out[::-1]

    def _current(self, fresh: bool) -> int:
        if self.mark is None:
            self._start()
        elif fresh or self.clock() - self.read_at >= self.every_s:
            self._advance()
        assert self.mark is not None
        return self.mark

    def nudge(self) -> None:
        """New events were committed in this process (Reports.on_events): the next `current` reads the store."""
        self.read_at = float("-inf")

    def _start(self) -> None:
        """The first mark: below the recent events (younger than GAP_WAIT_S), whose gaps may still fill."""
        last = self.outbox.last_event_id()  # type: ignore[attr-defined]
        floor = max(0, last - READ_LIMIT)
        recent = self.outbox.events_after(floor, None, READ_LIMIT)  # type: ignore[attr-defined]
        old = datetime.now(timezone.utc) - timedelta(seconds=self.gap_wait_s)
        settled = [e.id for e in recent if e.at <= old]
        # Ids below the newest old event are settled; a young event's missing neighbours wait.
        self.mark = self.top = self.kept_after = max(settled) if settled else (floor if last > READ_LIMIT else 0)
        self._advance()

    def _advance(self) -> None:
        """Read visible ids above the mark, note the gaps among them, move the mark over what is settled."""
        assert self.mark is not None
        now = self.read_at = self.clock()  # before reading: a nudge meanwhile makes the next call read again
        rows = self.outbox.events_after(self.mark, None, READ_LIMIT)  # type: ignore[attr-defined]
        ids = [e.id for e in rows]
        gaps: list[Gap] = []
        prev = self.mark
        for i in ids:
            if i > prev + 1:
                gaps.append(Gap(prev + 1, i - 1, self._since(prev + 1, now)))
            prev = i
        self.top = max(self.top, prev)
        mark = self.mark
        for i, g in zip(ids, _gap_before(ids, gaps)):
            if g is not None and now - g.since < self.gap_wait_s:
                break  # a young gap: its id may still commit
            mark = i
        self.mark = mark
        self.gaps = [g for g in gaps if g.lo > mark]
        self.kept.extend(StreamEvent(e.id, e.type, e.payload, e.chief_id) for e in rows if e.id <= mark)
        while len(self.kept) > self.keep:
            self.kept_after = self.kept.popleft().id

    def _since(self, lo: int, now: float) -> float:
        """When the gap starting at `lo` was first seen missing: an older gap holds it, or it is new now.

        Visible ids stay visible, so a gap today lies inside one gap of the last read, or above its top.
        """
        for g in self.gaps:
            if g.lo <= lo <= g.hi:
                return g.since
        return now


def _gap_before(ids: list[int], gaps: list[Gap]) -> list[Gap | None]:
    """For each visible id, the gap just below it (None: it follows the previous id directly)."""
    by_hi = {g.hi: g for g in gaps}
    return [by_hi.get(i - 1) for i in ids]


_MARKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MARKS_LOCK = threading.Lock()


def high_water(outbox) -> HighWater:
    """The process's mark of this outbox (one per store)."""
    with _MARKS_LOCK:
        hw = _MARKS.get(outbox)
        if hw is None:
            hw = _MARKS[outbox] = HighWater(outbox)
        return hw


class EventStream:
    """One chief's events (or every event, chief_id None) after `after`, up to the mark, in id order.

    Blocking (reads the store): call `poll` from a worker thread.
    """

    def __init__(self, outbox, chief_id: str | None, after: int | None, hw: HighWater | None = None):
        self.outbox = outbox
        self.chief_id = chief_id
        self.hw = hw or high_water(outbox)
        # Without a resume point, start from now: what is settled now is past.
        self.last = self.hw.current() if after is None else after

    def poll(self) -> list[StreamEvent]:
        """The next settled events after the last one sent, at most READ_LIMIT (a full batch: poll again at once).

        Empty when there are none. From memory when the stream is up to date, else from the store (a replay).
        A store error propagates: the stream ends, the client resumes.
        """
        mark, kept = self.hw.after(self.last)
        if mark <= self.last:
            return []
        if kept is not None:
            self.last = mark
            return [e for e in kept if self.chief_id is None or e.chief_id == self.chief_id]
        rows = self.outbox.events_after(self.last, self.chief_id, READ_LIMIT)
        fresh = [r for r in rows if r.id <= mark]
        if len(rows) < READ_LIMIT or len(fresh) < len(rows):
            self.last = mark  # every settled event of this chief up to the mark is in `fresh`
        else:
            self.last = fresh[-1].id
        return [StreamEvent(r.id, r.type, r.payload, r.chief_id) for r in fresh]
