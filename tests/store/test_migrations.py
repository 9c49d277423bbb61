"""The schema the migrations build is the one store/models.py declares, on both backends, and
migration 0006 gives reports stored before it a tracking token each."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from store.db import alembic_config, make_engine, migrate
from store.models import GIST_INDEXES, Base
from tests.helpers import pg_database


@pytest.fixture(params=["sqlite", "postgis"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'm.sqlite'}")
        yield eng
        eng.dispose()
        return
    with pg_database() as url:
        eng = make_engine(url)
        yield eng
        eng.dispose()


def _expected(diff) -> bool:
    """Differences that are by design: PostGIS's own table, and the GiST indexes the migrations add
    (the models do not declare them, see store.models.GIST_INDEXES)."""
    if diff[0] == "remove_table" and diff[1].name == "spatial_ref_sys":
        return True
    return diff[0] == "remove_index" and diff[1].name in GIST_INDEXES.values()


def test_the_migrated_schema_is_the_models_schema(engine):
    migrate(engine)
    with engine.connect() as c:
        diffs = [d for d in compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
                 if not _expected(d)]
    assert diffs == []


def test_migration_0006_gives_existing_reports_tokens_and_goes_down_again(engine):
    migrate(engine, "0005")
    now = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(sep=" ")
    with engine.begin() as c:
        for _ in range(50):
            c.execute(sa.text("INSERT INTO reports (created_at, updated_at, source, category, description, location_input, "
                              "geocode_method, geocode_confidence, needs_review, status) VALUES "
                              "(:t, :t, 'gps', '06010', '', '{}', 'coordinates', 1.0, false, 'new')"), {"t": now})
    migrate(engine)
    with engine.connect() as c:
        tokens = c.execute(sa.text("SELECT tracking_token FROM reports")).scalars().all()
    assert len(tokens) == 50 and len(set(tokens)) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in tokens)
    with engine.begin() as c:
        with pytest.raises(sa.exc.IntegrityError):  # unique
            with c.begin_nested():
                c.execute(sa.text("UPDATE reports SET tracking_token = :t"), {"t": tokens[0]})
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0005")
    with engine.connect() as c:
        cols = {col["name"] for col in sa.inspect(c).get_columns("reports")}
        assert "tracking_token" not in cols and "report_media" not in sa.inspect(c).get_table_names()
        assert c.execute(sa.text("SELECT count(*) FROM reports")).scalar() == 50
