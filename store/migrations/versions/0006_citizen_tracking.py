"""The citizen's side (issue 15): tracking tokens, satisfaction answers, report photos.

Every existing report gets a token here (128 random bits: gen_random_uuid on PostgreSQL,
randomblob on SQLite), so no report is left without one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("reports") as b:
        b.add_column(sa.Column("tracking_token", sa.String(32, collation="C" if pg else None), nullable=True))
        b.add_column(sa.Column("satisfaction", sa.String(16), nullable=True))
        b.add_column(sa.Column("rating", sa.Integer, nullable=True))
        b.add_column(sa.Column("rating_comment", sa.Text, nullable=True))
        b.add_column(sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("first_rated_at", sa.DateTime(timezone=True), nullable=True))
    if pg:
        op.execute("UPDATE reports SET tracking_token = replace(gen_random_uuid()::text, '-', '') WHERE tracking_token IS NULL")
    else:
        op.execute("UPDATE reports SET tracking_token = lower(hex(randomblob(16))) WHERE tracking_token IS NULL")
    op.create_index("ix_reports_tracking_token", "reports", ["tracking_token"], unique=True)
    op.create_table(
        "report_media",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.Integer, sa.ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exif_lon", sa.Float, nullable=True),
        sa.Column("exif_lat", sa.Float, nullable=True),
        sa.Column("exif_distance_m", sa.Float, nullable=True),
    )
    op.create_index("ix_report_media_report_id", "report_media", ["report_id"])


def downgrade():
    op.drop_table("report_media")
    op.drop_index("ix_reports_tracking_token", "reports")
    with op.batch_alter_table("reports") as b:
        for c in ("first_rated_at", "rated_at", "rating_comment", "rating", "satisfaction", "tracking_token"):
            b.drop_column(c)
