"""Reference tables (zones, villages, roster, facilities) while an import replaces them."""
from __future__ import annotations

from abc import ABC, abstractmethod

from sqlalchemy import text
from sqlalchemy.orm import Session

from store.deadline import Deadlines


class ReferenceRepository(ABC):
    """How an import keeps others from changing the reference tables until its transaction ends."""

    @staticmethod
    def for_db(db) -> "ReferenceRepository":
        """The implementation for `db`'s dialect."""
        return PostgisReferenceRepository() if db.dialect == "postgresql" else SqliteReferenceRepository()

    @abstractmethod
    def lock_for_replace(self, session: Session) -> None:
        """Serialize concurrent imports (also from other processes); readers are not blocked. Holds the transaction
        open for a bulk job: on PostGIS its statements get the bulk deadline."""

    @abstractmethod
    def read_snapshot(self, session: Session) -> None:
        """Make the session's following reads see one committed state (call first in a transaction)."""


class PostgisReferenceRepository(ReferenceRepository):
    """SHARE ROW EXCLUSIVE conflicts with itself and with writers, not with readers."""

    def lock_for_replace(self, session: Session) -> None:
        """LOCK TABLE, held until commit or rollback; the transaction gets the bulk deadline (a boundary
        generation taking effect may move 100,000 reports, which takes longer than a request's statement)."""
        Deadlines.of(session.get_bind()).extend(session.connection())
        session.execute(text("LOCK TABLE zones, villages, roster, facilities IN SHARE ROW EXCLUSIVE MODE"))

    def read_snapshot(self, session: Session) -> None:
        """REPEATABLE READ: tables read one after the other come from the same import."""
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


class SqliteReferenceRepository(ReferenceRepository):
    """Nothing to take: SQLite lets one write transaction run at a time, and the import's first write waits."""

    def lock_for_replace(self, session: Session) -> None:
        """Nothing to do."""

    def read_snapshot(self, session: Session) -> None:
        """Nothing to do: SQLite serves one worker, which puts its own imports in force directly."""
