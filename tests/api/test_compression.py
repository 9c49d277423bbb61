"""Weak links: static assets, JSON and map pages gzipped and static assets cached; pages with secrets and
event streams never compressed."""
from __future__ import annotations

import gzip

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.middleware import compressible
from zonechief.settings import Settings


@pytest.fixture(scope="module")
def client(zone_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gz")
    app = create_app(index=zone_index, settings=Settings(media_dir=tmp / "m"), database_url=f"sqlite:///{tmp}/z.sqlite")
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("path", ["/static/vendor/leaflet/leaflet.js", "/v1/zones", "/maps/zones"])
def test_big_public_responses_are_gzipped(client, path):
    r = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    raw = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert abs(len(r.content) - len(raw.content)) < 200  # httpx decodes (map pages draw fresh element ids each time)
    assert len(gzip.compress(raw.content)) < len(raw.content) / 2


def test_static_assets_are_cached_for_a_day(client):
    r = client.get("/static/citizen/citizen.css")
    assert r.headers["cache-control"] == "public, max-age=86400" and r.headers.get("etag")


@pytest.mark.parametrize("path", ["/r/DGCS-441900112-WC003", "/report"])
def test_pages_with_form_secrets_are_not_compressed(client, path):
    r = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and "content-encoding" not in r.headers and "max-age" not in r.headers.get("cache-control", "")


def test_what_may_be_compressed():
    assert compressible("/v1/reports") and compressible("/open311/v2/requests.json") and compressible("/ogc/collections")
    for path in ("/v1/chiefs/QS-C01/events", "/chief", "/chief/reports/3", "/t/abc", "/r/X", "/report", "/"):
        assert not compressible(path), path
