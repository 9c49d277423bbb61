"""Reference tables (zones, villages, roster, facilities) while an import replaces them."""
from __future__ import annotations

from abc import ABC, abstractmethod

from sqlalchemy import text
from sqlalchemy.orm import Session


class ReferenceRepository(ABC):
    """How an import keeps others from changing the reference tables until its transaction ends."""

    @staticmethod
    def for_db(db) -> "ReferenceRepository":
        """The implementation for `db`'s dialect."""
        return PostgisReferenceRepository() if db.dialect == "postgresql" else SqliteReferenceRepository()

    @abstractmethod
    def lock_for_replace(self, session: Session) -> None:
        """Serialize concurrent imports (also from other processes); readers are not blocked."""

    @abstractmethod
    def read_snapshot(self, session: Session) -> None:
        """Make the session's following reads see one committed state (call first in a transaction)."""


class PostgisReferenceRepository(ReferenceRepository):
    """SHARE ROW EXCLUSIVE conflicts with itself and with writers, not with readers."""

    def lock_for_replace(self, session: Session) -> None:
        """LOCK TABLE, held until commit or rollback."""
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
