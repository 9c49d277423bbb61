"""Fixtures of the live tests that drive Chromium."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go: ZONECHIEF_SCREENSHOTS, or a temporary folder."""
    d = os.environ.get("ZONECHIEF_SCREENSHOTS")
    out = Path(d) if d else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out
