"""The submission rate limit's token buckets (store/rate_limits.py) on both stores: in PostgreSQL,
shared by every engine (each worker process has its own), exact under concurrent takes; in memory
for SQLite's single worker. The same rule for both: a burst of per_minute, refilled evenly.
"""
from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.db import Database, migrate
from store.rate_limits import MemoryRateLimits, PostgresRateLimits, RateLimits
from tests.helpers import pg_database


@pytest.fixture(scope="module")
def pg():
    with pg_database() as url:
        d = Database(url)
        migrate(d.engine)
        yield d
        d.engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgis"])
def db(request, tmp_path_factory):
    """Each store (the PostGIS one is `pg`)."""
    if request.param == "postgis":
        yield request.getfixturevalue("pg")
        return
    d = Database(f"sqlite:///{tmp_path_factory.mktemp('limits') / 'zc.sqlite'}")
    migrate(d.engine)
    yield d
    d.engine.dispose()


def fresh_key() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().hex[:8]}"


def backdate(limits: RateLimits, key: str, seconds: float) -> None:
    """Let `seconds` pass for one bucket."""
    if isinstance(limits, PostgresRateLimits):
        with limits.engine.begin() as c:
            c.execute(sa.text("UPDATE rate_limit_buckets SET updated_at = updated_at - make_interval(secs => :s) "
                              "WHERE key = :k"), {"s": seconds, "k": key})
    else:
        tokens, t = limits._buckets[key]
        limits._buckets[key] = (tokens, t - seconds)


def test_each_store_keeps_its_kind_of_bucket(db):
    limits = RateLimits.for_db(db, 5)
    assert isinstance(limits, PostgresRateLimits if db.dialect == "postgresql" else MemoryRateLimits)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(per_minute=st.integers(1, 6), keys=st.lists(st.sampled_from("abc"), max_size=20))
def test_a_burst_of_per_minute_per_key_then_a_wait(db, per_minute, keys):
    """Taken in well under a second (less than one token's refill): each key gets per_minute, then waits."""
    limits = RateLimits.for_db(db, per_minute)
    prefix = fresh_key()
    taken: dict[str, int] = {}
    for k in keys:
        wait = limits.take(prefix + k)
        if wait == 0:
            taken[k] = taken.get(k, 0) + 1
        else:
            assert taken.get(k, 0) == per_minute  # refused only once the burst is spent
            assert 0 < wait <= 60 / per_minute  # a token to refill, less the moments since
    for k in set(keys):
        assert taken.get(k, 0) == min(keys.count(k), per_minute)


def test_tokens_refill_evenly(db):
    limits = RateLimits.for_db(db, 6)  # one token per 10 s
    key = fresh_key()
    assert [limits.take(key) == 0 for _ in range(7)] == [True] * 6 + [False]
    backdate(limits, key, 10.5)
    assert limits.take(key) == 0 and limits.take(key) > 9
    backdate(limits, key, 600)
    assert sum(limits.take(key) == 0 for _ in range(10)) == 6  # full again, never more than the burst


def test_concurrent_takes_from_several_engines_share_one_bucket(pg):
    """Like several workers: separate engines (connection pools) on one PostgreSQL, 8 threads in all."""
    engines = [Database(pg.url).engine for _ in range(3)]
    workers = [PostgresRateLimits(e, 10) for e in engines]
    key = fresh_key()
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda i: workers[i % 3].take(key), range(48)))
    elapsed = time.monotonic() - t0
    granted = sum(w == 0 for w in waits)
    assert 10 <= granted <= 10 + math.floor(elapsed * 10 / 60), (granted, elapsed)
    # A refused take says how long until the next token, even when its snapshot predates the takes that
    # emptied the bucket (then the wait is read anew): never "now".
    assert all(0 < w <= 6 for w in waits if w)
    assert max(w for w in waits if w) > 5
    for e in engines:
        e.dispose()


def test_full_buckets_are_pruned_in_memory():
    limits = MemoryRateLimits(3, max_keys=2)
    for k in ("a", "b", "c"):
        limits.take(k)
    for k in ("a", "b"):
        backdate(limits, k, 60)
    limits.take("d")  # over max_keys: the full buckets go
    assert set(limits._buckets) == {"c", "d"}


def test_idle_buckets_are_pruned_in_postgres(pg):
    limits = PostgresRateLimits(pg.engine, 3)
    limits.prune_every = 1
    stale, busy = fresh_key(), fresh_key()
    limits.take(stale)
    backdate(limits, stale, 61)  # full again: the row says nothing
    limits.take(busy)
    with pg.engine.connect() as c:
        keys = set(c.execute(sa.text("SELECT key FROM rate_limit_buckets WHERE key IN (:a, :b)"),
                             {"a": stale, "b": busy}).scalars())
    assert keys == {busy}


def test_migration_0005_makes_an_unlogged_table_and_goes_down_again(pg):
    from alembic import command

    from store.db import alembic_config

    def persistence():
        with pg.engine.connect() as c:
            return c.execute(sa.text("SELECT relpersistence FROM pg_class WHERE relname = 'rate_limit_buckets'")).scalar()

    assert persistence() == "u"  # not WAL-logged: rewritten on every public submission, worthless after a crash
    with pg.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0004")
    assert persistence() is None
    migrate(pg.engine)
    assert persistence() == "u"
