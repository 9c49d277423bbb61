"""Schemathesis against the app's own OpenAPI document, over real HTTP to uvicorn on PostGIS.

Bounded and deterministic: at most 25 generated examples per operation, derandomized. Checked:
no 5xx, and every response matches the document (status code, content type, headers, body schema).
Calls are made with an admin key, so that every operation is reachable past authorization.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.helpers import live_admin_app
from zonechief.settings import Settings

pytestmark = pytest.mark.schemathesis
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]

# The document is the app's own, generated in-process; the calls go to a live server.
schema = schemathesis.openapi.from_dict(create_app(settings=Settings(rate_limit_per_minute=0)).openapi())
# Open311 answers errors in its own format, not yet declared in the document (api/open311.py is being
# written concurrently); it is left out until it declares them.
schema = schema.exclude(tag="open311")


@pytest.fixture(scope="module")
def live():
    with live_admin_app("schemathesis") as (srv, key, _):
        yield {"url": srv.url, "headers": {"X-API-Key": key}}


@schema.parametrize()
@pytest.mark.filterwarnings("ignore:Skipped test cases with unsupported payload media types")  # GeoPackage uploads
@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, live):
    case.call_and_validate(base_url=live["url"], headers=live["headers"], checks=CHECKS)
