"""Patrol tracks and their reference data: teams, people, paired shops (issue 17).

patrol_points keeps time and WGS-84 degrees as plain floats (no per-point geometry): fixes are
read and written only in bulk, by patrol and time (store/patrols_repo.py says why); the
patrol's line carries the geometry and its GiST index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from store.types import Geom

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PointTime = sa.DateTime(timezone=True).with_variant(sa.BigInteger(), "sqlite")  # SQLite: Unix epoch µs


def upgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "patrol_teams",
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("town", sa.String(50), nullable=True),
    )
    op.create_table(
        "patrol_people",
        sa.Column("person_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("zone_id", sa.String(32), nullable=True),
    )
    op.create_table(
        "paired_shops",
        sa.Column("shop_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("person_id", sa.String(32), nullable=True),
        sa.Column("zone_id", sa.String(32), nullable=True),
        sa.Column("geom", Geom("POINT"), nullable=False),
    )
    op.create_index("ix_paired_shops_team_id", "paired_shops", ["team_id"])
    op.create_table(
        "patrols",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("town", sa.String(50), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_points", sa.Integer, nullable=False),
        sa.Column("length_m", sa.Float, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("synthetic", sa.Boolean, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(100), nullable=True),
        sa.Column("geom", Geom("LINESTRING"), nullable=False),
    )
    op.create_index("ix_patrols_person_id", "patrols", ["person_id"])
    op.create_index("ix_patrols_started_at", "patrols", ["started_at"])
    op.create_table(
        "patrol_points",
        sa.Column("patrol_id", BigId, primary_key=True),  # no FK: its per-row check triples COPY time
        sa.Column("t", PointTime, primary_key=True),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
    )
    if pg:
        for table in ("patrols", "paired_shops"):
            op.create_index(f"ix_{table}_geom", table, ["geom"], postgresql_using="gist")


def downgrade():
    op.drop_table("patrol_points")
    op.drop_table("patrols")
    op.drop_table("paired_shops")
    op.drop_table("patrol_people")
    op.drop_table("patrol_teams")
