"""zonechief.testing.BruteForceLookup itself, on hand-made squares whose answers are known by heart.

(Against the shipped data it is used throughout tests/gis/test_lookup.py and test_lookup_fast.py.)
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import shapely

from zonechief.testing import BruteForceLookup

# Two zones side by side: Z2 is one square, Z1 two squares (villages a and b) stacked; they share x = 114.01.
SQUARES = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "properties": {"code": "c", "zone_id": "Z2"},
         "geometry": shapely.geometry.mapping(shapely.box(114.01, 23.0, 114.02, 23.02))},
        {"type": "Feature", "properties": {"code": "b", "zone_id": "Z1"},
         "geometry": shapely.geometry.mapping(shapely.box(114.0, 23.01, 114.01, 23.02))},
        {"type": "Feature", "properties": {"code": "a", "zone_id": "Z1"},
         "geometry": shapely.geometry.mapping(shapely.box(114.0, 23.0, 114.01, 23.01))},
    ],
}


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "squares.geojson"
    path.write_text(json.dumps(SQUARES), encoding="utf-8")
    return BruteForceLookup.from_geojson(path)


def test_order_and_extent(ref):
    assert ref.zone_ids == ["Z1", "Z2"]
    assert ref.unit_keys == [("Z1", "a"), ("Z1", "b"), ("Z2", "c")]
    assert [v.code for v in ref.villages] == ["c", "b", "a"]  # file order kept
    assert ref.bounds == (114.0, 23.0, 114.02, 23.02)
    assert ref.zones["Z1"].equals(shapely.box(114.0, 23.0, 114.01, 23.02))


def test_zone_boundary_and_ties(ref):
    assert ref.zone_and_boundary(114.005, 23.005) == ("Z1", False)
    assert ref.zone_and_boundary(114.015, 23.005) == ("Z2", False)
    assert ref.zone_and_boundary(114.01, 23.005) == ("Z1", True)  # shared edge: the smaller zone_id
    assert ref.zone_and_boundary(114.005, 23.01) == ("Z1", False)  # between two villages of one zone: inside
    assert ref.zone_and_boundary(114.0, 23.005) == ("Z1", True)  # the outer outline
    assert ref.zone_and_boundary(113.9, 23.0) == (None, False)
    zone, onb = ref.zone_and_boundary([114.005, 114.01, 113.9], [23.005, 23.005, 23.0])
    assert list(zone) == ["Z1", "Z1", None] and list(onb) == [False, True, False]
    assert ref.zone(114.015, 23.015) == "Z2" and ref.on_boundary(114.02, 23.015)
    assert ref.covers([114.01], [23.005])[:, 0].tolist() == [True, True]


def test_distances_and_nearest(ref):
    assert ref.distance(114.005, 23.005) == 0.0
    d = ref.distance(114.03, 23.01)  # 0.01 degree east of Z2: about a kilometre
    assert 1000 < d < 1030 and isinstance(d, float)
    assert ref.nearest_zone(114.03, 23.01) == "Z2" and ref.nearest_zone(113.99, 23.01) == "Z1"
    assert ref.zone_distances([114.03], [23.01]).shape == (2, 1)
    mx, my = ref.to_metric_xy(114.03, 23.01)
    assert ref.distance(mx, my, metric=True) == pytest.approx(d)
    lon, lat = ref.from_metric_xy(mx, my)
    assert (float(lon), float(lat)) == pytest.approx((114.03, 23.01))


def test_locate_villages(ref):
    assert ref.locate(114.005, 23.005) == (0, True)
    assert ref.locate(114.005, 23.01) == (0, False)  # the edge between a and b: the first that covers it
    assert ref.locate(114.015, 23.015) == (2, True)
    assert ref.locate(113.9, 23.0) == (-1, False)
    unit, interior = ref.locate(np.array([114.005, 113.9]), np.array([23.015, 23.0]))
    assert unit.tolist() == [1, -1] and interior.tolist() == [True, False]
    d = ref.village_distances(114.03, 23.01)
    assert d.shape == (3, 1) and d[:, 0].argmin() == 2


def test_bad_input():
    with pytest.raises(ValueError, match="zone_id"):
        BruteForceLookup.from_features({"features": [{"properties": {"code": "x"},
                                                      "geometry": shapely.geometry.mapping(shapely.box(0, 0, 1, 1))}]})
    with pytest.raises(ValueError, match="no villages"):
        BruteForceLookup([])


def test_independent_of_gis():
    """It must not share code with what it checks: importing it loads nothing of gis (or the other layers)."""
    code = ("import sys, zonechief.testing; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gis', 'store', 'api', 'maps')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
