"""The outbox of report events and the webhook deliveries made from it, on PostgreSQL or SQLite.

Events are written by the application in the transaction of the change (store.models.OutboxEvent).
From there:

- `fan_out` turns each new event into one pending delivery per subscriber whose filter takes it,
  once: on PostgreSQL one process at a time (an advisory lock; the others skip), so deliveries are
  made in event order;
- `claim` leases due deliveries of one subscriber for an attempt: it moves their next_at past the
  lease, so another process (or this one after a crash) tries again only once the lease is over;
  a report's deliveries go one at a time, in event order (a later one waits while an earlier one
  is pending), which keeps each receiver's view of a report in order;
- `finish` records an attempt: delivered, retried at a given time, or dead.
At-least-once: an attempt whose outcome was lost (a crash between sending and `finish`) is sent
again with the same event id, which receivers de-duplicate by.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.orm import aliased, sessionmaker

from store.models import OutboxEvent, Webhook, WebhookDelivery

FAN_OUT_LOCK = 0x7A630001  # pg_try_advisory_xact_lock key: one process fans out at a time


@dataclass(frozen=True)
class Claimed:
    """A delivery leased for one attempt, with what to send."""

    delivery_id: int
    event_id: int
    event_type: str
    attempts: int  # including this one
    event_at: datetime
    payload: dict


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to (OutboxRepository.finish_many)."""

    delivery_id: int
    at: datetime
    delivered: bool
    status: int | None = None  # the receiver's HTTP status
    error: str | None = None
    retry_at: datetime | None = None  # failed: when to try again; None and not delivered: dead
    release_waiting: bool = False


class OutboxRepository(ABC):
    """Fan-out, claims and outcomes of deliveries; reading events back for streams."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    @staticmethod
    def for_db(db) -> "OutboxRepository":
        """The implementation for `db`'s dialect."""
        return (PostgresOutbox if db.dialect == "postgresql" else SqliteOutbox)(db.sessions)

    # -------------------------------------------------------------- fan-out
    def fan_out(self, takes: Callable[[dict, OutboxEvent], bool], now: datetime, limit: int = 500) -> int:
        """Make the deliveries of up to `limit` new events (oldest first); returns how many events were handled.

        `takes(webhook_filter, event)` says whether a subscriber wants an event (zonechief.webhooks).
        """
        with self.sessions.begin() as s:
            if not self._fan_out_lock(s):
                return 0
            events = s.scalars(select(OutboxEvent).where(OutboxEvent.fanned_out.is_(False))
                               .order_by(OutboxEvent.id).limit(limit)).all()
            if not events:
                return 0
            hooks = s.execute(select(Webhook.id, Webhook.filter)).all()
            for ev in events:
                for hook_id, flt in hooks:
                    if takes(flt or {}, ev):
                        s.add(WebhookDelivery(webhook_id=hook_id, event_id=ev.id, report_id=ev.report_id,
                                              status="pending", attempts=0, next_at=now, created_at=now))
                ev.fanned_out = True
            return len(events)

    @abstractmethod
    def _fan_out_lock(self, session) -> bool:
        """Take the fan-out lock for this transaction, or say another process has it."""

    # -------------------------------------------------------------- attempts
    def due_webhooks(self, now: datetime) -> list[int]:
        """The subscribers with a delivery due now."""
        with self.sessions() as s:
            return list(s.scalars(select(WebhookDelivery.webhook_id).where(
                WebhookDelivery.status == "pending", WebhookDelivery.next_at <= now).distinct()))

    def claim(self, webhook_id: int, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        """Lease up to `limit` due deliveries of one subscriber, each the earliest pending one of its report."""
        d, earlier = WebhookDelivery, aliased(WebhookDelivery)
        # The report's first pending event: one probe of ix_webhook_deliveries_report per candidate. Pending is
        # written as "neither delivered nor dead" so that no index on status can serve the probe: with
        # ix_webhook_deliveries_due (no statistics yet, or stale ones in a backlog) the planner scanned every
        # pending row per candidate, quadratic in the backlog and past the statement timeout at a few thousand.
        head = (select(earlier.event_id).where(earlier.webhook_id == d.webhook_id, earlier.report_id == d.report_id,
                                               earlier.status.notin_(("delivered", "dead")))
                .order_by(earlier.event_id).limit(1).correlate(d).scalar_subquery())
        pick = (select(d.id).where(d.webhook_id == webhook_id, d.status == "pending", d.next_at <= now,
                                   d.event_id == head)
                .order_by(d.event_id).limit(limit))
        with self.sessions.begin() as s:
            ids = list(s.scalars(self._locked(pick)))
            if not ids:
                return []
            s.execute(update(d).where(d.id.in_(ids)).values(next_at=now + lease, leased_until=now + lease,
                                                            attempts=d.attempts + 1))
            rows = s.execute(select(d.id, d.event_id, d.attempts, OutboxEvent.type, OutboxEvent.at,
                                    OutboxEvent.payload)
                             .join(OutboxEvent, OutboxEvent.id == d.event_id)
                             .where(d.id.in_(ids)).order_by(d.event_id)).all()
        return [Claimed(r.id, r.event_id, r.type, r.attempts, r.at, r.payload) for r in rows]

    @abstractmethod
    def _locked(self, query):
        """`query` taking row locks that concurrent claimers skip (PostgreSQL), or as is (SQLite: one writer)."""

    def finish(self, delivery_id: int, now: datetime, *, delivered: bool, status: int | None = None,
               error: str | None = None, retry_at: datetime | None = None, release_waiting: bool = False) -> None:
        """Record an attempt: delivered; or failed, retried at `retry_at`, or dead without one.

        `release_waiting` (a success after failures): the subscriber's other deliveries waiting out a
        backoff become due now.
        """
        self.finish_many([Outcome(delivery_id, now, delivered, status, error, retry_at, release_waiting)])

    def finish_many(self, outcomes: list["Outcome"]) -> None:
        """Record several attempts in one transaction (the dispatcher writes a round's outcomes at once).

        The common outcome (delivered, nothing to release) goes in one executemany; the others one by one.
        """
        d = WebhookDelivery
        plain = [{"i": o.delivery_id, "at": o.at, "st": o.status} for o in outcomes if o.delivered and not o.release_waiting]
        other = [o for o in outcomes if not o.delivered or o.release_waiting]
        with self.sessions.begin() as s:
            if plain:
                s.connection().execute(
                    update(d).where(d.id == bindparam("i"), d.status == "pending")
                    .values(status="delivered", delivered_at=bindparam("at"), last_status=bindparam("st"),
                            last_error=None, leased_until=None), plain)
            for o in other:
                values: dict = {"last_status": o.status, "last_error": o.error[:2000] if o.error else None,
                                "leased_until": None}
                if o.delivered:
                    values.update(status="delivered", delivered_at=o.at, last_error=None)
                elif o.retry_at is not None:
                    values.update(next_at=o.retry_at)
                else:
                    values.update(status="dead", next_at=o.at)
                webhook_id = s.scalar(update(d).where(d.id == o.delivery_id, d.status == "pending").values(**values)
                                      .returning(d.webhook_id))
                if o.release_waiting and webhook_id is not None:
                    # The receiver answers again: its other deliveries waiting out a backoff go now, not one by
                    # one as each backoff ends (after an hour down, that would be up to 10 minutes more).
                    s.execute(update(d).where(d.webhook_id == webhook_id, d.status == "pending", d.next_at > o.at,
                                              (d.leased_until.is_(None)) | (d.leased_until <= o.at))
                              .values(next_at=o.at))

    # -------------------------------------------------------------- subscribers
    def add_webhook(self, url: str, kind: str, secret: str, flt: dict, created_by: str, now: datetime) -> Webhook:
        """Register a subscriber; it takes events from now on."""
        w = Webhook(url=url, kind=kind, secret=secret, filter=flt, created_at=now, created_by=created_by)
        with self.sessions.begin() as s:
            s.add(w)
        return w

    def webhook(self, webhook_id: int) -> Webhook | None:
        """One subscriber, or None."""
        with self.sessions() as s:
            return s.get(Webhook, webhook_id)

    def list_webhooks(self) -> list[Webhook]:
        """Every subscriber, oldest first."""
        with self.sessions() as s:
            return list(s.scalars(select(Webhook).order_by(Webhook.id)))

    def webhooks(self) -> dict[int, dict]:
        """id → url, kind and secret of every subscriber (for sending)."""
        with self.sessions() as s:
            return {r.id: {"url": r.url, "kind": r.kind, "secret": r.secret}
                    for r in s.execute(select(Webhook.id, Webhook.url, Webhook.kind, Webhook.secret))}

    def delete_webhook(self, webhook_id: int) -> bool:
        """Remove a subscriber and its deliveries; False if there was none."""
        with self.sessions.begin() as s:
            w = s.get(Webhook, webhook_id)
            if w is None:
                return False
            s.execute(WebhookDelivery.__table__.delete().where(WebhookDelivery.webhook_id == webhook_id))
            s.delete(w)
        return True

    # -------------------------------------------------------------- reading
    def deliveries(self, webhook_id: int, status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        """A subscriber's deliveries, newest event first."""
        d = WebhookDelivery
        q = (select(d.id, d.event_id, OutboxEvent.type, d.report_id, d.status, d.attempts, d.next_at, d.created_at,
                    d.delivered_at, d.last_status, d.last_error)
             .join(OutboxEvent, OutboxEvent.id == d.event_id).where(d.webhook_id == webhook_id))
        if status:
            q = q.where(d.status == status)
        with self.sessions() as s:
            return [dict(r._mapping) for r in s.execute(q.order_by(d.event_id.desc()).limit(limit).offset(offset))]

    def counts(self, webhook_id: int) -> dict[str, int]:
        """Deliveries of a subscriber by status."""
        with self.sessions() as s:
            return dict(s.execute(select(WebhookDelivery.status, func.count()).where(
                WebhookDelivery.webhook_id == webhook_id).group_by(WebhookDelivery.status)).all())

    def events_after(self, after_id: int, chief_id: str | None = None, limit: int = 500) -> list[OutboxEvent]:
        """Events with an id above `after_id` (of one chief's reports, if given), oldest first."""
        conds = [OutboxEvent.id > after_id]
        if chief_id is not None:
            conds.append(OutboxEvent.chief_id == chief_id)
        with self.sessions() as s:
            return list(s.scalars(select(OutboxEvent).where(and_(*conds)).order_by(OutboxEvent.id).limit(limit)))

    def last_event_id(self) -> int:
        """The highest event id so far (0: none)."""
        with self.sessions() as s:
            return int(s.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0))))


class PostgresOutbox(OutboxRepository):
    """PostgreSQL: SKIP LOCKED claims and an advisory lock around fan-out, so several workers share the work."""

    def _fan_out_lock(self, session) -> bool:
        return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FAN_OUT_LOCK}).scalar())

    def _locked(self, query):
        return query.with_for_update(skip_locked=True)


class SqliteOutbox(OutboxRepository):
    """SQLite: one worker and one writer at a time; the transaction itself serialises."""

    def _fan_out_lock(self, session) -> bool:
        return True

    def _locked(self, query):
        return query
