"""The app factory: the lifespan opens the store when asked, a database that is down does not stop
the app, and every deliberate error has its entry in the one error table."""
from __future__ import annotations

import asyncio

import httpx

from api.app import create_app
from api.errors import ERRORS
from gis.errors import ZonechiefError
from tests.helpers import free_port

LOOKUP = {"lon": 114.05, "lat": 23.06}


def started(app, check) -> None:
    """Run the app's lifespan, then `check(app, client)` with requests answered in-process."""
    async def run():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zc") as c:
                await check(app, c)

    asyncio.run(run())


def test_store_opens_on_first_use_by_default(tmp_path):
    async def check(app, c):
        assert app.state.services._db is None
        assert (await c.get("/v1/lookup", params=LOOKUP)).status_code == 200
        assert (await c.get("/v1/reports")).status_code == 200
        assert app.state.services._db is not None

    started(create_app(database_url=f"sqlite:///{tmp_path / 'z.sqlite'}"), check)


def test_open_store_opens_it_at_startup(tmp_path):
    async def check(app, c):
        assert app.state.services._db is not None
        assert (await c.get("/healthz")).json()["checks"]["database"]["status"] == "ok"

    started(create_app(database_url=f"sqlite:///{tmp_path / 'z.sqlite'}", open_store=True), check)


def test_database_down_at_startup_does_not_stop_the_app():
    async def check(app, c):
        assert app.state.services._db is None
        assert (await c.get("/v1/lookup", params=LOOKUP)).json()["zone"] is not None
        r = await c.get("/v1/reports")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.headers["content-type"] == "application/problem+json"
        assert app.state.services._db is None  # the failed open is not remembered

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    started(create_app(database_url=url, open_store=True), check)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_deliberate_error_has_an_entry():
    """Each ZonechiefError subclass (all imported by the app) answers by its own entry or a listed ancestor."""
    subs = set(_subclasses(ZonechiefError))
    assert len(subs) >= 10
    for cls in subs:
        assert any(k in ERRORS for k in cls.__mro__ if k is not ZonechiefError), cls
