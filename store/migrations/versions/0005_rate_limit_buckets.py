"""Token buckets of the public submission rate limit (store/rate_limits.py), shared by the workers.

UNLOGGED on PostgreSQL: the rows are rewritten on every public submission and are worth
nothing after a crash (which empties the table: the limit starts afresh), so they skip
the WAL. SQLite gets the table too, to keep one schema, but its single worker keeps the
buckets in memory.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "rate_limit_buckets",
        sa.Column("key", sa.String(64, collation="C" if pg else None), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        prefixes=["UNLOGGED"] if pg else [],
    )


def downgrade():
    op.drop_table("rate_limit_buckets")
