"""Events of reports (the outbox), their webhook subscribers and deliveries, and staff page sessions (issue 16).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "events_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("report_id", sa.Integer, nullable=False),
        sa.Column("zone_id", sa.String(32), nullable=True),
        sa.Column("chief_id", sa.String(32), nullable=True),
        sa.Column("category", sa.String(5), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("fanned_out", sa.Boolean, nullable=False),
    )
    op.create_index("ix_events_outbox_report_id", "events_outbox", ["report_id"])
    op.create_index("ix_events_outbox_chief_id", "events_outbox", ["chief_id"])
    op.create_index("ix_events_outbox_pending", "events_outbox", ["fanned_out", "id"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("filter", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", BigId, sa.ForeignKey("events_outbox.id", ondelete="CASCADE"), nullable=False),
        sa.Column("report_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "webhook_id", "next_at"])
    op.create_index("ix_webhook_deliveries_report", "webhook_deliveries", ["webhook_id", "report_id", "event_id"])
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )


def downgrade():
    op.drop_table("staff_sessions")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("events_outbox")
