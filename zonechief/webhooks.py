"""Webhook subscribers: what they ask for, which events they take, what is sent and how it is signed,
and when a failed delivery is tried again.

Two kinds of receiver take the same events:
- `json`: the event as JSON, signed: `X-Zonechief-Signature: sha256=<hex HMAC-SHA256 of the body with
  the secret>`, with `X-Zonechief-Event-Id` (stable: de-duplicate by it) and `X-Zonechief-Event`;
- `wecom`: a WeCom (企业微信) group robot: a markdown message naming the zone, category, address and
  tracking link (WeCom ignores our headers; it answers 200 with `errcode` 0 when it took the message).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import secrets
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gis.errors import ZonechiefError
from zonechief.events import TYPES
from zonechief.workflow import STATUS_NAMES

RECEIVER_TIMEOUT_S = 5.0  # a receiver that does not answer within this is retried later
GIVE_UP_AFTER = timedelta(hours=24)  # then the delivery is dead-lettered
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 600.0  # the longest wait between attempts


class WebhookError(ZonechiefError, ValueError):
    """A subscriber that cannot be accepted (422); the message says why."""


class WebhookFilter(BaseModel):
    """Which events a subscriber takes: each given list narrows (empty or missing: any)."""

    model_config = ConfigDict(extra="forbid")
    zones: list[str] = Field(default_factory=list, max_length=500)
    chiefs: list[str] = Field(default_factory=list, max_length=500)
    categories: list[str] = Field(default_factory=list, max_length=500)
    types: list[Literal[TYPES]] = Field(default_factory=list)  # type: ignore[valid-type]


class WebhookIn(BaseModel):
    """A subscriber as an admin registers it."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, description="http(s) URL the events are POSTed to")
    kind: Literal["json", "wecom"] = Field("json", description="json (signed JSON) or wecom (企业微信 group robot)")
    secret: str | None = Field(None, min_length=16, max_length=200,
                               description="HMAC key of X-Zonechief-Signature; default: a new random one, shown once")
    filter: WebhookFilter = Field(default_factory=WebhookFilter)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("the webhook URL must be an http(s) URL with a host")
        if u.username or u.password:
            raise ValueError("put no credentials in the webhook URL; the receiver checks the signature")
        try:
            u.port  # noqa: B018 (raises for a port out of range, which would fail later)
        except ValueError:
            raise ValueError("the webhook URL's port must be a number from 1 to 65535") from None
        return v


def check_not_self(url: str, own: list[str]) -> None:
    """Refuse a receiver URL that points at this server (`own`: its public URL and the address it serves):
    it would post every event to itself."""
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    for base in own:
        b = urlsplit(base)
        bport = b.port or (443 if b.scheme == "https" else 80)
        if (u.hostname or "").lower() == (b.hostname or "").lower() and port == bport:
            raise WebhookError(f"the webhook URL {url} points at this server itself ({base}); events would loop")
        if port == bport and _loopback(u.hostname) and _loopback(b.hostname):
            raise WebhookError(f"the webhook URL {url} points at this server itself ({base}); events would loop")


def _loopback(host: str | None) -> bool:
    """This machine, by any name (0.0.0.0 as a bind address serves loopback too)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def new_secret() -> str:
    """A signing secret for a subscriber that gave none."""
    return secrets.token_urlsafe(32)


def takes(flt: dict, ev) -> bool:
    """Whether a subscriber with filter `flt` (WebhookFilter as stored) takes event `ev` (an OutboxEvent)."""
    for key, value in (("zones", ev.zone_id), ("chiefs", ev.chief_id), ("categories", ev.category), ("types", ev.type)):
        wanted = flt.get(key) or []
        if wanted and value not in wanted:
            return False
    return True


def body(kind: str, event_id: int, payload: dict, category_names: dict[str, str]) -> bytes:
    """What is POSTed for an event."""
    if kind == "wecom":
        return json.dumps({"msgtype": "markdown", "markdown": {"content": wecom_text(payload, category_names)}},
                          ensure_ascii=False).encode()
    return json.dumps({"id": event_id, **payload}, ensure_ascii=False, separators=(",", ":")).encode()


def wecom_text(payload: dict, category_names: dict[str, str]) -> str:
    """The WeCom group message: what, where, who, and the tracking link."""
    r = payload["report"]
    kind = {"report.created": "新问题", "report.assigned": "新派单", "report.status_changed": "状态更新",
            "report.rated": "市民评价", "report.reassigned": "改派"}.get(payload["type"], payload["type"])
    where = r.get("address") or r.get("service_code") or (
        f"{r['point']['lon']:.5f}, {r['point']['lat']:.5f}" if r.get("point") else "待核实")
    lines = [f"**{kind}** #{r['id']} · {STATUS_NAMES.get(r['status'], r['status'])}",
             f"> 片区：{r.get('zone_id') or '待核实'}　片长：{r.get('chief_id') or '—'}",
             f"> 类别：{category_names.get(r['category'], r['category'])}（{r['category']}）",
             f"> 地点：{where}"]
    if r.get("description"):
        lines.append(f"> 描述：{r['description'][:200]}")
    change = payload.get("change") or {}
    if payload["type"] == "report.rated":
        lines.append(f"> 评价：{change.get('outcome')} {change.get('rating')}/5 {change.get('comment') or ''}".rstrip())
    elif change.get("note"):
        lines.append(f"> 备注：{str(change['note'])[:200]}")
    lines.append(f"[查看进度 / track]({r['tracking_url']})")
    return "\n".join(lines)


def signature(secret: str, data: bytes) -> str:
    """The X-Zonechief-Signature value of a body."""
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def headers(event_id: int, event_type: str, secret: str, data: bytes) -> dict[str, str]:
    """The headers of a delivery."""
    return {"Content-Type": "application/json; charset=utf-8", "User-Agent": "zonechief-webhooks",
            "X-Zonechief-Event-Id": str(event_id), "X-Zonechief-Event": event_type,
            "X-Zonechief-Signature": signature(secret, data)}


def accepted(kind: str, status: int, text: str) -> bool:
    """Whether a receiver took the delivery: any 2xx; WeCom also says errcode 0 in its body."""
    if not 200 <= status < 300:
        return False
    if kind == "wecom":
        try:
            return json.loads(text).get("errcode", 0) == 0
        except (ValueError, AttributeError):
            return False
    return True


def next_attempt(attempts: int, event_at: datetime, now: datetime, rng: random.Random | None = None) -> datetime | None:
    """When to try again after `attempts` failed attempts: exponential, jittered between half and all of it, up to MAX_RETRY_S;
    None once the event is older than GIVE_UP_AFTER (dead-lettered)."""
    if now - event_at >= GIVE_UP_AFTER:
        return None
    cap = min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** min(max(attempts - 1, 0), 64))  # 2**1024 overflows a float
    wait = (rng or random).uniform(cap / 2, cap)
    at = now + timedelta(seconds=wait)
    return min(at, event_at + GIVE_UP_AFTER)
