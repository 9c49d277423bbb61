#!/usr/bin/env bash
# Full test suite. Makes sure PostGIS is installed and PostgreSQL runs, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# PostGIS for the storage tests (reports issue); this machine kind has PostgreSQL 15.
if command -v pg_lsclusters >/dev/null 2>&1; then
  if ! dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1; then
    echo "installing PostGIS (postgresql-15-postgis-3)..." >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-15-postgis-3 >/dev/null
  fi
  if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    pg_ctlcluster --skip-systemctl-redirect 15 main start 2>/dev/null || pg_ctlcluster 15 main start
  fi
fi

# Debian's Chromium for the map tests (tests/live/test_maps_browser.py): Playwright drives it and downloads no
# browser of its own. The CJK font only makes the Chinese labels legible in the screenshots.
if ! dpkg -s chromium fonts-wqy-microhei >/dev/null 2>&1; then
  echo "installing chromium and fonts-wqy-microhei..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi

# Static checks (configured in pyproject.toml): lint, types of gis/ and zonechief/, and the layer contract.
echo "ruff, mypy, import-linter..." >&2
$BIN/ruff check .
$BIN/mypy
$BIN/lint-imports --no-cache

# Two workers (pytest-xdist): many tests wait on PostgreSQL, servers and Chromium. The tests that
# restart the PostgreSQL cluster run afterwards, alone. Arguments run pytest as given, in one process.
if [ $# -gt 0 ]; then
  exec $BIN/python -m pytest "$@"
fi
# Schemathesis gives every API operation the same test id, which xdist runs only once: it runs alone too.
$BIN/python -m pytest -n 2 --dist loadfile -m "not restart and not schemathesis"
exec $BIN/python -m pytest -m "restart or schemathesis"
