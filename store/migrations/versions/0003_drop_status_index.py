"""Drop the single-column index on reports.status.

Seven values, most rows in one or two of them: the planner seldom uses such an index,
every insert pays for it, and a bulk load rebuilds it. The queries that filter on status
also filter or sort on columns with their own indexes (a chief's queue: chief_id; lists:
created_at).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_reports_status", table_name="reports")


def downgrade():
    op.create_index("ix_reports_status", "reports", ["status"])
