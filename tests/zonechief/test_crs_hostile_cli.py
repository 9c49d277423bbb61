"""Hostile CRSs on the command line: every --crs option and every file's declared CRS gives a clear error, no traceback.

The real `main` runs in-process (click's runner): a subprocess per case would add seconds of
start-up each (tests/zonechief/test_cli.py runs the installed script itself).
"""
from __future__ import annotations

import geopandas as gpd
import pytest
from click.testing import CliRunner

from gis.shipped import DATA_DIR
from zonechief.cli import main

MOON = "IAU_2015:30100"
ABSURD = "+proj=tmerc +lon_0=114 +k=1e300 +ellps=GRS80"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("crs_cli")
    (d / "points.csv").write_text("lon,lat\n114.05,23.06\n", encoding="utf-8")
    villages = gpd.read_file(DATA_DIR / "villages.geojson").head(3)
    villages.set_crs(MOON, allow_override=True).to_file(d / "moon.gpkg", driver="GPKG", engine="pyogrio")
    villages.set_geometry(villages.representative_point()).set_crs(ABSURD, allow_override=True).to_file(
        d / "points_absurd.gpkg", driver="GPKG", engine="pyogrio")
    return d


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


COMMANDS = {
    "lookup": lambda d: ["lookup", "114.05", "23.06"],
    "assign": lambda d: ["assign", d / "points.csv", d / "out.csv"],
    "boundaries validate": lambda d: ["boundaries", "validate", d / "moon.gpkg"],
    "boundaries import": lambda d: ["boundaries", "import", d / "moon.gpkg", "--dry-run"],
    "reports import": lambda d: ["reports", "import", d / "points.csv"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("crs,why", [(MOON, "not on the Earth"), (ABSURD, "around Dongguan"), ("EPSG:5703", "vertical")])
def test_every_crs_option_refuses_a_hostile_crs(files, command, crs, why):
    r = run(*COMMANDS[command](files), "--crs", crs)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "Invalid value for '--crs'" in r.output and why in r.output and "gcj02" in r.output


@pytest.mark.parametrize("args", [["boundaries", "validate", "moon.gpkg"], ["assign", "points_absurd.gpkg", "out.csv"]])
def test_a_files_declared_crs_is_judged_too(files, args):
    r = run(*[files / a if a.endswith((".gpkg", ".csv")) else a for a in args])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert "unusable CRS" in r.output and "gcj02" in r.output


def test_lookup_with_degrees_in_a_projected_crs():
    r = run("lookup", "114.05", "23.06", "--crs", "EPSG:4547")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert r.output.startswith("Error: ") and "these look like degrees; did you mean crs=wgs84?" in r.output
