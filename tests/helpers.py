"""Helpers shared by the tests: throw-away PostgreSQL databases, a live uvicorn server, points inside zones,
and the shipped zone index and brute-force reference, each loaded once per process on first use.

Import them from here (`from tests.helpers import ...`); tests/conftest.py only turns some into fixtures.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from functools import cache

import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("ZONECHIEF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

# The 29 zones of the shipped boundaries, sorted; for parametrize, which needs them before any data is read.
# tests/gis/test_lookup.py checks them against the data.
ZONE_IDS = sorted([f"QS-{i:02d}" for i in range(1, 21)] + [f"ZMT-{i:02d}" for i in range(1, 10)])


# ------------------------------------------------------------------ shipped data, loaded on first use
@cache
def shipped_index():
    """The shipped ZoneIndex, loaded once per process (also the `zone_index` and `index` fixtures)."""
    from gis.lookup import ZoneIndex

    return ZoneIndex.load()


@cache
def shipped_reference():
    """zonechief.testing.BruteForceLookup on the shipped villages.geojson, built once per process."""
    from gis.shipped import DATA_DIR
    from zonechief.testing import BruteForceLookup

    return BruteForceLookup.from_geojson(DATA_DIR / "villages.geojson")


def inner(index, zone_id: str) -> tuple[float, float]:
    """A point about 200 m inside a zone, away from every edge."""
    p = index.zones.set_index("zone_id").geometry[zone_id].buffer(-0.002).representative_point()
    return float(p.x), float(p.y)


# ------------------------------------------------------------------ PostgreSQL
def _admin_sql(*statements: str) -> None:
    # A fresh connection each time: the database may have been restarted meanwhile.
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as c:
            for sql in statements:
                c.exec_driver_sql(sql)
    finally:
        eng.dispose()


@contextmanager
def pg_database():
    """A throw-away database in the local PostgreSQL; yields its URL, drops it afterwards."""
    name = f"zc_test_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
                   f'DROP DATABASE IF EXISTS "{name}"')


# ------------------------------------------------------------------ live servers
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real uvicorn server for an app, on a free loopback port, in a thread."""

    def __init__(self, app):
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app=app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import time

        import httpx

        self.thread.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.server.should_exit = True
                raise RuntimeError("the API server did not come up")
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def live_admin_app(label: str):
    """A throw-away PostGIS database, the app on it without rate limits, an admin key: (server, key, url)."""
    from api.app import create_app
    from store.keys import create_key
    from zonechief.settings import Settings

    with pg_database() as url:
        app = create_app(settings=Settings(rate_limit_per_minute=0), database_url=url)
        with app.state.services.db.sessions.begin() as s:
            _, key = create_key(s, "admin", label)
        try:
            with LiveServer(app) as srv:
                yield srv, key, url
        finally:
            app.state.services.db.engine.dispose()
