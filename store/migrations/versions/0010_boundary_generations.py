"""Boundary generations (issue 19): every boundary import is kept, with its validity start; reports
remember the generation they were assigned under.

The villages in force before this migration become generation 1, valid since the beginning (so
every existing report is explained by it); zones and villages keep holding the generation in force.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from store.types import Geom, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = "code, name, short_name, town, town_code, zone_id, geometry_quality, geom"


def upgrade():
    op.create_table(
        "boundary_generations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rewrite_history", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("summary", sa.JSON, nullable=False),
    )
    op.create_index("ix_boundary_generations_valid_from", "boundary_generations", ["valid_from"])
    op.create_table(
        "generation_villages",
        sa.Column("generation_id", sa.Integer, sa.ForeignKey("boundary_generations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("short_name", sa.String(100)),
        sa.Column("town", sa.String(50)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("zone_id", sa.String(32), nullable=False),
        sa.Column("zone_name", sa.String(200)),
        sa.Column("geometry_quality", sa.String(20)),
        sa.Column("geom", Geom("MULTIPOLYGON"), nullable=False),
    )
    with op.batch_alter_table("reports") as b:
        b.add_column(sa.Column("generation_id", sa.Integer, nullable=True))
    # The villages in force become generation 1 (when there are any: a new store is seeded afterwards,
    # and store.generations makes its first generation then).
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM villages")).scalar():
        now = datetime.now(timezone.utc)
        gens = sa.table("boundary_generations", sa.column("id", sa.Integer), sa.column("valid_from", UTCDateTime()),
                        sa.column("created_at", UTCDateTime()), sa.column("activated_at", UTCDateTime()),
                        sa.column("actor", sa.String), sa.column("source", sa.String),
                        sa.column("rewrite_history", sa.Boolean), sa.column("summary", sa.JSON))
        bind.execute(gens.insert().values(id=1, valid_from=datetime(1970, 1, 1, tzinfo=timezone.utc), created_at=now,
                                          activated_at=now, actor="migration 0010", rewrite_history=False, summary={},
                                          source="the boundaries in force before generations"))
        bind.execute(sa.text(
            f"INSERT INTO generation_villages (generation_id, zone_name, {COLUMNS}) "
            f"SELECT 1, z.name, v.{COLUMNS.replace(', ', ', v.')} FROM villages v LEFT JOIN zones z ON z.zone_id = v.zone_id"))
        bind.execute(sa.text("UPDATE reports SET generation_id = 1"))
        if bind.dialect.name == "postgresql":
            bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('boundary_generations', 'id'), 1)"))


def downgrade():
    with op.batch_alter_table("reports") as b:
        b.drop_column("generation_id")
    op.drop_table("generation_villages")
    op.drop_index("ix_boundary_generations_valid_from", "boundary_generations")
    op.drop_table("boundary_generations")
