"""Compare the indexed code columns of reports bytewise (COLLATE "C") on PostgreSQL.

category, zone_id, chief_id and idempotency_key are codes and keys: only equality
and a stable order matter, never a language's sort order. Under the database's
libc locale (e.g. C.UTF-8 or en_US.UTF-8) every comparison goes through strcoll and
PostgreSQL cannot sort by abbreviated keys, so building or growing these indexes
costs up to twice as much (zonechief.bulk rebuilds them after a large import).
Equality is unchanged: deterministic collations compare equal only byte-equal strings.
SQLite compares bytewise already.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = {"category": 5, "zone_id": 32, "chief_id": 32, "idempotency_key": 128}


def _collate(collation: str | None):
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, length in COLUMNS.items():
        op.alter_column("reports", name, type_=sa.String(length, collation=collation),
                        existing_type=sa.String(length))


def upgrade():
    _collate("C")


def downgrade():
    _collate("default")
