"""`zonechief serve`: the HTTP API in one process or several workers, on the configured store.

Attaches itself to `zonechief.cli.main` when imported (the end of zonechief/cli.py imports it).
"""
from __future__ import annotations

import logging
import re

import click

from zonechief.cli import _fail, _safe_url, _store_url, _with_bar, main

# Event streams (/v1/chiefs/{id}/events) never end by themselves: on shutdown, requests still open after
# this long are cut (a stream's client resumes elsewhere with Last-Event-ID).
GRACE_S = 10


@main.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1, or ZONECHIEF_HOST)")
@click.option("--port", default=None, type=int, help="Port (default 8000, or ZONECHIEF_PORT)")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Worker processes (default 1, or ZONECHIEF_WORKERS). More than one needs PostGIS, through which "
                   "they share the rate limits and hear of reference-data imports")
@click.option("--demo", is_flag=True, help="Seed demo reports if the store is empty")
@click.option("--demo-reports", default=2000, show_default=True, help="How many demo reports --demo writes")
def serve(host, port, workers, demo, demo_reports):
    """Run the HTTP API (docs at /docs)."""
    import uvicorn

    from store.notify import several_workers_supported
    from zonechief.services import Services, load_settings

    s = load_settings()
    host, port, workers = host or s.host, port or s.port, workers or s.workers
    if workers > 1 and not several_workers_supported(_store_url()):
        _fail(f"--workers {workers}: the embedded SQLite store supports one worker only (each would keep its own "
              "rate limits and miss reference-data imports made through another); run one worker, or set "
              "ZONECHIEF_DATABASE_URL to a PostGIS database")
    listening = f"zonechief API on http://{host}:{port}  (docs: http://{host}:{port}/docs)"
    _default_public_url(s, host, port)
    if workers == 1:
        from api.app import create_app

        app = create_app(open_store=True)
        _open_store(app.state.services, demo, demo_reports)
        click.echo(listening, err=True)
        uvicorn.run(app, host=host, port=port, log_level="info", log_config=_log_config(pids=False),
                    timeout_graceful_shutdown=GRACE_S)
        return
    services = Services()
    _open_store(services, demo, demo_reports)  # once, before any worker takes requests
    services.db.engine.dispose()  # the workers open their own connections; this process only watches them
    del services
    click.echo(f"{listening} with {workers} workers", err=True)
    # A worker starting up (imports, the index) on a busy machine may not answer uvicorn's ping for
    # seconds, nor one compiling a kernel: at the default 5 s it is killed, and starts again as slowly.
    uvicorn.run("api.app:serve_app", factory=True, workers=workers, host=host, port=port, log_level="info",
                log_config=_log_config(pids=True), timeout_worker_healthcheck=30, timeout_graceful_shutdown=GRACE_S)


def _default_public_url(s, host: str, port: int) -> None:
    """Without ZONECHIEF_PUBLIC_URL, links and QR codes name the address served (when a phone could use it)."""
    import os

    from zonechief.settings import get_settings

    if "public_url" in s.model_fields_set or host in ("0.0.0.0", "::"):
        if host in ("0.0.0.0", "::") and "public_url" not in s.model_fields_set:
            click.echo(f"note: set ZONECHIEF_PUBLIC_URL to this server's address as phones reach it; tracking links and "
                       f"QR codes say {s.public_url} meanwhile", err=True)
        return
    os.environ["ZONECHIEF_PUBLIC_URL"] = f"http://{host}:{port}"  # for the workers too, which read the environment
    get_settings.cache_clear()


def _open_store(services, demo: bool, demo_reports: int) -> None:
    """Migrate the store and put its reference data in force before taking requests; seed demo reports if asked."""
    click.echo(f"report store: {_safe_url(services.db.url)}", err=True)
    if demo:
        _seed_if_empty(services.reports, demo_reports)


def _log_config(pids: bool) -> dict:
    """uvicorn's logging, zonechief's own messages included (e.g. reference data put in force); with `pids`,
    each line names its process, so that the access log says which worker answered."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    if pids:
        for f in cfg["formatters"].values():
            f["fmt"] = f["fmt"].replace("%(levelprefix)s ", "%(levelprefix)s [%(process)d] ", 1)
    cfg["loggers"]["zonechief"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    cfg.setdefault("filters", {})["tracking_tokens"] = {"()": "zonechief.cli_serve.MaskTrackingTokens"}
    cfg["handlers"]["access"].setdefault("filters", []).append("tracking_tokens")
    return cfg


class MaskTrackingTokens(logging.Filter):
    """Access-log lines show only the start of a tracking token: the token is a citizen's only key to a report."""

    TOKEN = re.compile(r"(/t/|/track/)([0-9a-f]{4})[0-9a-f]{28}")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the path argument of uvicorn's access record (client, method, path, version, status)."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], self.TOKEN.sub(r"\1\2…", args[2]), *args[3:])
        return True


def _seed_if_empty(reports, n: int):
    from sqlalchemy import func, select

    from store.models import Report
    from zonechief.bulk import seed_demo

    with reports.db.sessions() as s:
        have = s.scalar(select(func.count()).select_from(Report))
    if have:
        click.echo(f"store already has {have} reports; not seeding", err=True)
        return
    res = _with_bar(n, "seed", lambda bar: seed_demo(reports, n, progress=bar.update))
    click.echo(f"demo: {res}", err=True)
