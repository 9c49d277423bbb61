"""Initial schema: reference geography, roster, categories, reports with history, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

from store.types import Geom, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "zones",
        sa.Column("zone_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("town", sa.String(50)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("geometry_quality", sa.String(20)),
        sa.Column("geom", Geom("MULTIPOLYGON"), nullable=False),
    )
    op.create_table(
        "villages",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("short_name", sa.String(100)),
        sa.Column("town", sa.String(50)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("zone_id", sa.String(32), nullable=False, index=True),
        sa.Column("geometry_quality", sa.String(20)),
        sa.Column("geom", Geom("MULTIPOLYGON"), nullable=False),
    )
    op.create_table(
        "roster",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(32), nullable=False, index=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("zone_id", sa.String(32), nullable=False, index=True),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("effective_to", sa.Date),
    )
    op.create_table(
        "facilities",
        sa.Column("facility_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("service_code", sa.String(64), nullable=False, unique=True),
        sa.Column("town", sa.String(50)),
        sa.Column("zone_id", sa.String(32), nullable=False),
        sa.Column("geom", Geom("POINT"), nullable=False),
    )
    op.create_table(
        "categories",
        sa.Column("code", sa.String(5), primary_key=True),
        sa.Column("major_code", sa.String(2), nullable=False),
        sa.Column("major_name", sa.String(50), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("category", sa.String(5), nullable=False, index=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("location_input", sa.JSON, nullable=False),
        sa.Column("geom", Geom("POINT")),
        sa.Column("geocode_method", sa.String(32), nullable=False),
        sa.Column("geocode_confidence", sa.Float, nullable=False),
        sa.Column("needs_review", sa.Boolean, nullable=False),
        sa.Column("review_note", sa.Text),
        sa.Column("zone_id", sa.String(32), index=True),
        sa.Column("village_code", sa.String(32)),
        sa.Column("chief_id", sa.String(32), index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("reporter_name", sa.String(100)),
        sa.Column("reporter_phone", sa.String(40)),
        sa.Column("photo_url", sa.String(500)),
        sa.Column("idempotency_key", sa.String(128), unique=True),
    )
    op.create_table(
        "report_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.Integer, sa.ForeignKey("reports.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("note", sa.Text),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("chief_id", sa.String(32)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    if pg:
        for table in ("zones", "villages", "facilities", "reports"):
            op.create_index(f"ix_{table}_geom", table, ["geom"], postgresql_using="gist")


def downgrade():
    for t in ("api_keys", "report_events", "reports", "categories", "facilities", "roster", "villages", "zones"):
        op.drop_table(t)
