"""Shared fixtures: the zone index, and report stores on both backends (SQLite file and a real PostGIS).

PostGIS: each test module gets a fresh database created through
ZONECHIEF_TEST_PG_URL (default: the local PostgreSQL as postgres). The test
command (`make test`) installs PostGIS and starts PostgreSQL; if it is not
reachable these tests fail, they are not skipped.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("ZONECHIEF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def inner(index, zone_id: str) -> tuple[float, float]:
    """A point about 200 m inside a zone, away from every edge."""
    p = index.zones.set_index("zone_id").geometry[zone_id].buffer(-0.002).representative_point()
    return float(p.x), float(p.y)


@pytest.fixture(scope="session")
def zone_index():
    from gis.lookup import ZoneIndex

    return ZoneIndex.load()


@pytest.fixture(scope="session")
def index(zone_index):
    """The same shipped index, under the name the lookup, map and demo tests use."""
    return zone_index


@pytest.fixture(scope="session")
def facilities():
    from gis.facilities import load_facilities

    return load_facilities()


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


@pytest.fixture(params=["sqlite", "postgis"], scope="module")
def store_url(request, tmp_path_factory):
    """A database URL for an empty report store, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'zonechief.sqlite'}"
        return
    with pg_database() as url:
        yield url


def free_port() -> int:
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
