"""Deadlines for every database call, so that no request waits on PostgreSQL for longer than a bound.

Connecting is bounded by libpq's connect_timeout, and a server that is alive cancels a slow
statement itself (statement_timeout, lock_timeout). Neither helps when the network or a stuck
server holds a connection: the server never answers, and TCP keepalives do not fire while a
middlebox ACKs the bytes. Only the client can end that wait, so a watchdog thread shuts down
the socket of a connection whose call ran past its deadline; the blocked thread gets
OperationalError at once and SQLAlchemy discards the connection.

Every call is covered: statements, the pool's pre-ping, commit and rollback through SQLAlchemy
(`Deadlines.install`), and raw psycopg cursors (`Deadlines.cursor`, for the bulk COPY path).
"""
from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

GRACE_S = 0.5  # the client waits this much longer than the server's statement_timeout, so a live server's cancel wins
# Pre-ping (an empty query) and rollback, which a healthy server answers in milliseconds, however
# large the transaction. Cutting a rollback short loses nothing: the server rolls back a lost connection.
QUICK_S = 1.0
IDLE_S = 1.0  # the watchdog's nap when nothing is armed (see Watchdog._run)
# Keepalives for idle pooled connections whose peer vanished (not for a middlebox that ACKs: see above).
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3,
              "tcp_user_timeout": 30_000}


@dataclass(frozen=True)
class Timeouts:
    """How long each kind of database use may take, in seconds (zonechief.settings.StoreSettings)."""

    connect_s: int = 2  # libpq counts at least 2
    statement_s: float = 4.0  # a request's statements and commits; SQLite's busy timeout
    bulk_statement_s: float = 600.0  # each statement of a bulk import, migration or index rebuild
    pool_s: float = 2.0  # waiting for a pooled connection

    def connect_args(self) -> dict:
        """psycopg connection parameters: connect timeout, keepalives and the server-side timeouts."""
        ms = round(self.statement_s * 1000)
        return {"connect_timeout": self.connect_s, **KEEPALIVES,
                "options": f"-c statement_timeout={ms} -c lock_timeout={ms}"}


class Watchdog:
    """One thread per process that aborts connections whose call is past its deadline.

    Arming and disarming cost a lock and a dict operation; the thread sleeps until the
    earliest deadline and is woken only when a new one comes earlier.
    """

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked worker has no watchdog thread yet

    def _reset(self) -> None:
        self._lock = threading.Lock()  # arm and disarm take it directly: cheaper than the Condition's methods
        self._cond = threading.Condition(self._lock)
        self._armed: dict[int, tuple[float, Any]] = {}  # id(connection) -> (deadline, connection)
        self._wake_at = float("inf")
        self._thread: threading.Thread | None = None

    def arm(self, conn, seconds: float) -> None:
        """Abort `conn` (a psycopg connection) unless disarmed within `seconds`."""
        at = time.monotonic() + seconds
        with self._lock:
            self._armed[id(conn)] = (at, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="zonechief-db-watchdog", daemon=True)
                self._thread.start()
            if at < self._wake_at:
                self._cond.notify()

    def disarm(self, conn) -> None:
        """The call on `conn` ended in time."""
        with self._lock:
            self._armed.pop(id(conn), None)

    def _run(self) -> None:
        idle = 0  # wakes in a row with nothing armed and no notify
        notified = False
        with self._cond:
            while True:
                now = time.monotonic()
                for key, (at, conn) in list(self._armed.items()):
                    if at <= now:
                        del self._armed[key]
                        _shutdown(conn)  # under the lock: a call that ends now cannot be disarmed meanwhile
                idle = 0 if self._armed or notified else idle + 1
                # Between a busy connection's calls nothing is armed: stay awake a moment, so that each
                # next arm (a later deadline) needs no notify. Sleep for good only when really idle.
                self._wake_at = min((at for at, _ in self._armed.values()),
                                    default=now + IDLE_S if idle < 2 else float("inf"))
                notified = self._cond.wait(None if self._wake_at == float("inf") else self._wake_at - now)


def _shutdown(conn) -> None:
    """Shut the connection's socket down: a thread blocked on it wakes with an error, and libpq marks it broken."""
    try:
        s = socket.socket(fileno=os.dup(conn.pgconn.socket))
    except Exception:  # already closed
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()  # the duplicate only


def _unproxied(conn):
    return getattr(conn, "dbapi_connection", conn)  # the pool passes its proxy on reset


WATCHDOG = Watchdog()
_INSTALLED: WeakKeyDictionary[Engine, Deadlines] = WeakKeyDictionary()


class Deadlines:
    """The deadlines of one PostgreSQL engine's connections (`install` hooks them into the engine)."""

    def __init__(self, timeouts: Timeouts):
        self.timeouts = timeouts
        self.statement_s = timeouts.statement_s + GRACE_S
        self._budget: dict[int, float] = {}  # id(connection) -> seconds, after `extend`

    @staticmethod
    def of(engine: Engine) -> "Deadlines":
        """The deadlines installed on `engine`; for an engine without, ones that never fire."""
        return _INSTALLED.get(engine) or NO_DEADLINES

    def install(self, engine: Engine) -> None:
        """Arm a deadline around every statement, ping, commit and rollback of `engine`.

        The dialect's methods are wrapped (on this engine's dialect object only): SQLAlchemy calls
        them for every statement, ping, commit and rollback, the pool's included, and has no
        events around the last three. Cheaper than cursor events, too.
        """
        _INSTALLED[engine] = self
        dialect = engine.dialect
        for name in ("do_execute", "do_executemany", "do_execute_no_params"):  # (cursor, ...)
            setattr(dialect, name, self._guard(getattr(dialect, name), lambda cur: cur.connection))
        for name in ("do_ping", "do_commit", "do_rollback"):  # (connection or the pool's proxy of it)
            setattr(dialect, name, self._guard(getattr(dialect, name), _unproxied, quick=name != "do_commit"))
        event.listen(engine.pool, "checkin", self._on_checkin)

    def _seconds(self, conn) -> float:
        return self._budget.get(id(conn), self.statement_s)

    def _on_checkin(self, dbapi_conn, _record) -> None:
        # Nothing outlives the checkout: the next user's calls are not extended.
        if dbapi_conn is not None:
            self._budget.pop(id(dbapi_conn), None)

    def _guard(self, call, connection_of, quick: bool = False):
        def guarded(first, *args, **kw):
            conn = connection_of(first)
            WATCHDOG.arm(conn, QUICK_S if quick else self._budget.get(id(conn), self.statement_s))
            try:
                return call(first, *args, **kw)
            finally:
                WATCHDOG.disarm(conn)

        return guarded

    def extend(self, conn: Connection, seconds: float | None = None) -> None:
        """The rest of `conn`'s transaction, its commit included, gets the bulk deadline (server and client side)."""
        seconds = self.timeouts.bulk_statement_s if seconds is None else seconds
        ms = round(seconds * 1000)
        conn.exec_driver_sql(f"SELECT set_config('statement_timeout', '{ms}', true), set_config('lock_timeout', '{ms}', true)")
        self._budget[id(conn.connection.dbapi_connection)] = seconds + GRACE_S  # until checkin

    def cursor(self, cur) -> "GuardedCursor":
        """A raw psycopg cursor whose execute and copy calls are guarded with its connection's deadline."""
        return GuardedCursor(cur, self)


class _NoDeadlines(Deadlines):
    """For engines without deadlines (SQLite, or made elsewhere): nothing is armed."""

    def extend(self, conn, seconds=None):
        pass

    def cursor(self, cur):
        return cur


NO_DEADLINES = _NoDeadlines(Timeouts())


class GuardedCursor:
    """A psycopg cursor whose calls that wait on the server end by the deadline (bulk writes use it raw)."""

    def __init__(self, cur, deadlines: Deadlines):
        self._cur, self._deadlines = cur, deadlines

    def __getattr__(self, name):
        return getattr(self._cur, name)  # fetchone, fetchall, connection...: the rows are already here

    @contextmanager
    def _armed(self) -> Iterator[None]:
        conn = self._cur.connection
        WATCHDOG.arm(conn, self._deadlines._seconds(conn))
        try:
            yield
        finally:
            WATCHDOG.disarm(conn)

    def execute(self, *args, **kw):
        """cursor.execute under the deadline."""
        with self._armed():
            return self._cur.execute(*args, **kw)

    @contextmanager
    def copy(self, *args, **kw):
        """cursor.copy; the whole COPY, from the first row sent to the server's answer, under one deadline."""
        with self._armed(), self._cur.copy(*args, **kw) as cp:
            yield cp
