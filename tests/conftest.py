"""Shared fixtures: the zone index, and report stores on both backends (SQLite file and a real PostGIS).

PostGIS: each test module gets a fresh database created through
ZONECHIEF_TEST_PG_URL (default: the local PostgreSQL as postgres). The test
command (`make test`) installs PostGIS and starts PostgreSQL; if it is not
reachable these tests fail, they are not skipped.

Helpers (LiveServer, pg_database, inner, ...) live in tests/helpers.py; import them from there.
"""
from __future__ import annotations

import pytest

from tests.helpers import pg_database, shipped_index


@pytest.fixture(scope="session")
def zone_index():
    """The shipped zone index, loaded once (tests.helpers.shipped_index)."""
    return shipped_index()


@pytest.fixture(scope="session")
def index(zone_index):
    """The same shipped index, under the name the lookup, map and demo tests use."""
    return zone_index


@pytest.fixture(scope="session")
def facilities():
    from gis.facilities import load_facilities

    return load_facilities()


@pytest.fixture(params=["sqlite", "postgis"], scope="module")
def store_url(request, tmp_path_factory):
    """A database URL for an empty report store, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'zonechief.sqlite'}"
        return
    with pg_database() as url:
        yield url
