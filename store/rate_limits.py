"""Token buckets of the public submission rate limit, per key (a client address).

One rule, two homes: `per_minute` tokens refilled evenly with a burst of `per_minute`;
`take(key)` answers 0 when a token was taken, else the seconds until one is available.
On PostgreSQL the buckets are rows of rate_limit_buckets (migration 0005), updated in one
statement, so the limit holds across the worker processes of `zonechief serve --workers N`.
SQLite serves one worker (a single process), which keeps its buckets in memory.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

from sqlalchemy import text
from sqlalchemy.engine import Engine

KEY_LEN = 64  # rate_limit_buckets.key; an IPv6 address has at most 45 characters


class RateLimits(ABC):
    """Per-key token buckets: `per_minute` tokens refilled evenly, a burst of `per_minute`."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second

    @staticmethod
    def for_db(db, per_minute: int) -> "RateLimits":
        """Shared buckets in PostgreSQL, or in-process ones for the embedded store."""
        if db.dialect == "postgresql":
            return PostgresRateLimits(db.engine, per_minute)
        return MemoryRateLimits(per_minute)

    @abstractmethod
    def take(self, key: str) -> float:
        """0 if a token was taken, else the seconds until one is available."""


class MemoryRateLimits(RateLimits):
    """Buckets in this process only: right for one worker."""

    def __init__(self, per_minute: int, max_keys: int = 100_000):
        super().__init__(per_minute)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Refill the key's bucket for the time since its last use, then take a token if there is one."""
        now = time.monotonic()
        with self._lock:
            tokens, t = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - t) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return wait

    def _prune(self, now: float) -> None:
        # A full bucket carries no state worth keeping; this bounds memory under address scans.
        full = [k for k, (tok, t) in self._buckets.items() if tok + (now - t) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]


# The row is locked by ON CONFLICT, so concurrent takes from any worker queue on it: each sees the
# tokens the previous one left. A refused take changes nothing (the WHERE); the second SELECT then
# reads the bucket for Retry-After, but from the statement's snapshot, which may predate the takes
# that emptied it: only `taken` says whether a token was taken (and _WAIT reads a stale wait anew).
# now() is the transaction's start; GREATEST keeps time from running backwards when a take that
# started later got the lock first.
_TAKE = text("""
WITH taken AS (
    INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at)
    VALUES (:key, :capacity - 1, now())
    ON CONFLICT (key) DO UPDATE
        SET tokens = LEAST(:capacity, b.tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at))::float8) - 1,
            updated_at = GREATEST(b.updated_at, now())
        WHERE LEAST(:capacity, b.tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at))::float8) >= 1
    RETURNING true AS taken, 0.0::float8 AS wait
)
SELECT taken, wait FROM taken
UNION ALL
SELECT false, (1 - LEAST(:capacity, tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - updated_at))::float8)) / :rate
FROM rate_limit_buckets WHERE key = :key AND NOT EXISTS (SELECT 1 FROM taken)
""")

_WAIT = text("""
SELECT (1 - LEAST(:capacity, tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM now() - updated_at))::float8)) / :rate
FROM rate_limit_buckets WHERE key = :key
""")

# A bucket idle for capacity / rate seconds (one minute) is full again: its row says nothing.
_PRUNE = text("DELETE FROM rate_limit_buckets WHERE updated_at < now() - make_interval(secs => :idle)")


class PostgresRateLimits(RateLimits):
    """Buckets as rows of rate_limit_buckets: one limit for every worker on the database."""

    prune_every = 1000  # takes per process between deletions of idle rows

    def __init__(self, engine: Engine, per_minute: int):
        super().__init__(per_minute)
        self.engine = engine
        self._takes = 0

    def take(self, key: str) -> float:
        """One statement, committed: take a token, or say how long until one is there."""
        args = {"key": key[:KEY_LEN], "capacity": self.capacity, "rate": self.rate}
        with self.engine.begin() as c:
            row = c.execute(_TAKE, args).first()
            self._takes += 1
            if self._takes % self.prune_every == 0:
                c.execute(_PRUNE, {"idle": self.capacity / self.rate})
            if row is not None and row.taken:
                return 0.0
            wait = None if row is None else row.wait
            if wait is None or wait <= 0:  # the snapshot predates the takes that emptied it: read it anew
                wait = c.execute(_WAIT, args).scalar()
        return max(float(wait or 0), 0.001)  # refused: a positive wait
