"""Reference-data changes told to every worker process: PostgreSQL LISTEN/NOTIFY.

An import calls `announce` inside its transaction; PostgreSQL delivers a NOTIFY at commit and
drops it on rollback, so the workers hear exactly of committed changes. Each worker runs a
`ReferenceListener`: a thread with a connection of its own, off the pool, blocked on the socket
between notifications (it costs requests nothing), which calls back after each notification and
after each (re)connect, since changes may have been committed while it was not listening.
The embedded SQLite store serves one worker: nothing to announce, nobody to tell.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from store.deadline import Deadlines

if TYPE_CHECKING:
    from store.db import Database

CHANNEL = "zonechief_reference"
APPLICATION_NAME = "zonechief reference listener"  # in pg_stat_activity
log = logging.getLogger("zonechief.store.notify")


def several_workers_supported(url: str) -> bool:
    """Whether processes sharing this store share rate limits and hear reference changes: PostgreSQL only."""
    return make_url(url).get_backend_name() == "postgresql"


def announce(session: Session, version: int) -> None:
    """Tell the other workers, at commit, that reference data changed (`version`: its audit id)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, str(version))))


class ReferenceListener:
    """LISTEN for reference changes in a background thread; `on_change` runs in that thread.

    `open_db` gives the store (it may raise while the database is down: tried again later);
    `on_start` runs once in the thread first (to pay any per-thread set-up of `on_change` early).
    The connection is reopened after any failure (a database restart, a killed backend),
    after `retry_s` doubling up to `max_retry_s`; `on_change` also runs after `resync_s`
    without notifications, in case a connection died without the socket saying so.
    """

    def __init__(self, open_db: Callable[[], Database], on_change: Callable[[], object], *,
                 on_start: Callable[[], object] | None = None, retry_s: float = 0.25, max_retry_s: float = 5.0,
                 resync_s: float = 30.0):
        self._open_db, self._on_change, self._on_start = open_db, on_change, on_start
        self.retry_s, self.max_retry_s, self.resync_s = retry_s, max_retry_s, resync_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zonechief-reference-listener", daemon=True)

    def start(self) -> "ReferenceListener":
        """Start listening in the background."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread (it notices within a second)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception as exc:  # only the first change will be slower
                log.warning("reference listener: start-up work failed (%s)", type(exc).__name__)
        delay = self.retry_s
        while not self._stop.is_set():
            raw = None
            try:
                db = self._open_db()
                if db.dialect != "postgresql":
                    return  # one process: there is nobody to hear from
                raw = db.engine.raw_connection()  # the engine's connect arguments (timeouts, keepalives)
                conn = raw.driver_connection
                raw.detach()  # ours for good: closing it closes it, and the pool opens another in its place
                self._listen(conn, Deadlines.of(db.engine))
                delay = self.retry_s
            except Exception as exc:
                if self._stop.is_set():
                    return
                cause = getattr(exc, "orig", None) or exc  # the driver's error, without SQLAlchemy's SQL echo
                log.warning("reference listener: %s: %s; listening again in %.1f s", type(cause).__name__,
                            (str(cause).splitlines() or [""])[0], delay)
            finally:
                if raw is not None:
                    try:
                        raw.close()
                    except Exception:  # a dead connection may fail to close; it is gone either way
                        pass
            if self._stop.wait(delay):
                return
            delay = min(self.max_retry_s, delay * 2)

    def _listen(self, conn, deadlines) -> None:
        conn.rollback()  # the pool's pre-ping may have begun a transaction
        conn.autocommit = True  # notifications arrive between transactions only
        cur = deadlines.cursor(conn.cursor())  # off the pool, so guarded here: a partition must not hang this thread
        cur.execute(f"SET application_name = '{APPLICATION_NAME}'")
        cur.execute(f"LISTEN {CHANNEL}")
        self._on_change()
        quiet = 0.0
        while not self._stop.is_set():
            heard = False
            for _ in conn.notifies(timeout=1.0, stop_after=1):  # wakes each second to see stop()
                heard = True
            quiet = 0.0 if heard else quiet + 1.0
            if quiet >= self.resync_s:
                cur.execute("SELECT 1")  # raises on a connection that died quietly: then reconnect
            if heard or quiet >= self.resync_s:
                quiet = 0.0
                self._on_change()
