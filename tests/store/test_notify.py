"""Reference-change notifications (store/notify.py) on a real PostgreSQL: heard at commit only,
by a listener that comes back when its connection is killed; SQLite has none."""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from store.db import Database, migrate
from store.notify import APPLICATION_NAME, ReferenceListener, announce, several_workers_supported
from tests.helpers import pg_database


class Calls:
    """on_change for a listener: counts calls, lets a test wait for the next one."""

    def __init__(self):
        self.n = 0
        self._cond = threading.Condition()

    def __call__(self):
        with self._cond:
            self.n += 1
            self._cond.notify_all()

    def wait_beyond(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.n > n, timeout)


@pytest.fixture(scope="module")
def listening():
    with pg_database() as url:
        db = Database(url)
        migrate(db.engine)
        calls = Calls()
        listener = ReferenceListener(lambda: db, calls).start()
        assert calls.wait_beyond(0, 30)  # once on connecting: changes may predate the LISTEN
        yield db, calls
        listener.stop()
        db.engine.dispose()


def test_heard_at_commit_not_on_rollback(listening):
    db, calls = listening
    n = calls.n
    with db.sessions() as s:
        announce(s, 1)
        s.rollback()
    assert not calls.wait_beyond(n, 1.5)
    with db.sessions.begin() as s:
        announce(s, 2)
        time.sleep(0.3)
        assert calls.n == n  # not before the commit
    assert calls.wait_beyond(n, 5)


def test_the_listener_comes_back_after_its_connection_is_killed(listening):
    db, calls = listening
    n = calls.n
    with db.engine.connect() as c:
        killed = c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND application_name = :a"),
                           {"a": APPLICATION_NAME}).scalars().all()
    assert killed == [True]
    assert calls.wait_beyond(n, 10)  # reconnected, and looked for changes missed meanwhile
    n = calls.n
    with db.sessions.begin() as s:
        announce(s, 3)
    assert calls.wait_beyond(n, 5)


def test_only_postgresql_takes_several_workers(tmp_path):
    assert several_workers_supported("postgresql+psycopg://u@h/db")
    assert not several_workers_supported(f"sqlite:///{tmp_path / 'z.sqlite'}")
    db = Database(f"sqlite:///{tmp_path / 'z.sqlite'}")
    migrate(db.engine)
    with db.sessions.begin() as s:
        announce(s, 1)  # nothing to tell on SQLite, and no error
    calls = Calls()
    listener = ReferenceListener(lambda: db, calls).start()
    listener._thread.join(5)
    assert not listener._thread.is_alive() and calls.n == 0  # nobody to hear from: the thread ends
    db.engine.dispose()
