"""An index on report_events.at: Open311's servicerequestupdates pages history steps by time.

Without it, each call scanned every step of every report (three or so per report).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_report_events_at", "report_events", ["at"])


def downgrade():
    op.drop_index("ix_report_events_at", "report_events")
