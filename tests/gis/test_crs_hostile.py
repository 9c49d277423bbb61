"""Hostile CRS inputs: gis.crs decides once whether a CRS can be used, and refuses the rest with UnknownCRSError.

A CRS is usable when pyproj parses it, it is a geographic or projected CRS on the Earth, refers to no
grid files, and transforms to and from WGS-84 giving finite values that come back around Dongguan.
Also the other side of the same mistake: points in a projected CRS that are evidently degrees
(gis.points.misplaced_problems).
"""
from __future__ import annotations

import numpy as np
import pyproj
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gis import crs as gcrs
from gis.crs import SUPPORTED, UnknownCRSError, from_wgs84, is_geographic, normalize_crs, to_wgs84
from gis.points import FAR_KM, CoordinateError, MisplacedError, check_placed, misplaced_problems

ENGINEERING = ('ENGCRS["site grid",EDATUM["site"],CS[Cartesian,2],AXIS["x",east,ORDER[1],LENGTHUNIT["metre",1]],'
               'AXIS["y",north,ORDER[2],LENGTHUNIT["metre",1]]]')
MOON_WKT = pyproj.CRS("IAU_2015:30100").to_wkt()

# (input, words the refusal gives as its reason)
HOSTILE = [
    ("IAU_2015:30100", "not on the Earth"),  # the Moon
    ("IAU_2015:49900", "not on the Earth"),  # Mars
    ("ESRI:104903", "not on the Earth"),  # the Moon, ESRI's code
    ("ESRI:104971", "not on the Earth"),  # Mars, ESRI's code
    (MOON_WKT, "not on the Earth"),
    ("+proj=longlat +R=1737400 +no_defs", "not on the Earth"),
    ("+proj=merc +a=1 +b=1", "not on the Earth"),
    ("+proj=tmerc +lon_0=114 +k=1e-30 +x_0=500000 +ellps=GRS80", "cannot be transformed"),
    ("+proj=tmerc +lon_0=114 +k=1e300 +ellps=GRS80", "around Dongguan"),
    ("+proj=tmerc +lon_0=114 +x_0=1e300 +ellps=GRS80", "around Dongguan"),
    ("+proj=tmerc +lon_0=114 +ellps=GRS80 +towgs84=1e300,0,0", "around Dongguan"),
    ("+proj=ortho +lat_0=-60 +lon_0=-60 +ellps=WGS84", "around Dongguan"),  # Dongguan is on the far side
    ("EPSG:5703", "vertical"),  # NAVD88 height
    ("EPSG:4978", "geocentric"),
    ("+proj=geocent +datum=WGS84", "geocentric"),
    (ENGINEERING, "engineering"),
    ("+proj=longlat +ellps=WGS84 +nadgrids=/dev/zero", "grid files"),
    ("+proj=longlat +ellps=WGS84 +geoidgrids=/etc/passwd", "grid files"),
    ("x" * 20_000, "too long"),
    ("EPSG:4547 " + " " * 12_000 + "x", "too long"),
]
GOOD = ["wgs84", "gcj02", "bd09", "cgcs2000", "EPSG:4326", "EPSG:4490", "EPSG:4547", "EPSG:32650", "EPSG:3857",
        "EPSG:2385", "EPSG:9518", "urn:ogc:def:crs:EPSG::4547", pyproj.CRS("EPSG:4547").to_wkt(),
        pyproj.CRS("EPSG:4547").to_json(),
        "+proj=tmerc +lat_0=0 +lon_0=114 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs",
        "+proj=tmerc +lon_0=114 +k=1 +x_0=500000 +ellps=krass +towgs84=15.8,-154.4,-82.3,0,0,0,0 +units=m",
        # The old "Google" definition: @null is PROJ's built-in empty grid, not a file
        "+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m +nadgrids=@null +wktext +no_defs"]

# Dongguan (its whole extent), where a usable CRS must give finite values that come back.
DG_LON, DG_LAT = st.floats(113.5, 114.3), st.floats(22.6, 23.2)
ROUND_TRIP_DEG = 1e-6  # ~0.1 m


def _refused(name, why: str) -> UnknownCRSError:
    with pytest.raises(UnknownCRSError) as info:
        normalize_crs(name)
    msg = str(info.value)
    assert why in msg, msg
    for system in ("wgs84", "gcj02", "bd09", "cgcs2000", "EPSG:4547"):
        assert system in msg
    assert info.value.supported == SUPPORTED
    assert len(msg) < 600, "the message must not echo a huge input back"
    return info.value


@pytest.mark.parametrize("name,why", HOSTILE, ids=[h[0][:40] for h in HOSTILE])
def test_hostile_crs_is_refused_everywhere_in_gis(name, why):
    _refused(name, why)
    # and by everything that takes a CRS name, with the same error, never a pyproj one
    for call in (lambda: to_wgs84(474000.0, 2546000.0, name), lambda: from_wgs84(114.0, 23.0, name),
                 lambda: is_geographic(name)):
        with pytest.raises(UnknownCRSError):
            call()


def test_a_refusal_is_remembered():
    # The verdict is cached: asking again does not parse or transform again (a hostile client repeats itself).
    gcrs.normalize_crs("wgs84")
    before = gcrs._verdict.cache_info().hits
    for _ in range(3):
        _refused("IAU_2015:30100", "not on the Earth")
    assert gcrs._verdict.cache_info().hits == before + 3


def test_unparseable_text_is_still_unknown():
    e = _refused("EPSG:99999999", "")
    assert str(e).startswith("unknown CRS 'EPSG:99999999'")


def test_file_crs_objects_are_judged_too():
    assert normalize_crs(pyproj.CRS("EPSG:4547")) == "EPSG:4547"
    _refused(pyproj.CRS("IAU_2015:30100"), "not on the Earth")


@pytest.mark.parametrize("name", GOOD, ids=[g[:40] for g in GOOD])
def test_good_crs_round_trip_around_dongguan(name):
    c = normalize_crs(name)
    assert normalize_crs(c) == c  # the canonical name is itself usable
    lon, lat = np.meshgrid(np.linspace(113.5, 114.3, 9), np.linspace(22.6, 23.2, 7))
    x, y = from_wgs84(lon, lat, c)
    assert np.isfinite(x).all() and np.isfinite(y).all()
    blon, blat = to_wgs84(x, y, c)
    assert np.abs(blon - lon).max() < ROUND_TRIP_DEG and np.abs(blat - lat).max() < ROUND_TRIP_DEG


# ------------------------------------------------------------------ any text: a usable CRS or UnknownCRSError
AUTHORITY_CODES = st.builds("{}:{}".format, st.sampled_from(["EPSG", "ESRI", "IAU_2015", "IGNF", "OGC", "epsg"]),
                            st.integers(2000, 10_000) | st.integers(0, 200_000)
                            | st.sampled_from([4326, 4490, 4547, 3857, 32650, 30100, 104903, 49900, 5703, 4978]))
NUMBERS = (st.floats(-200, 200) | st.floats(-1e7, 1e7) | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([0, 1, -1, 114, 23, 1e300, -1e300, 1e-300, 6378137, 6356752.3]))
PROJ_PARAMS = st.lists(st.tuples(st.sampled_from(["lon_0", "lat_0", "k", "x_0", "y_0", "a", "b", "R", "rf", "lat_ts",
                                                  "lat_1", "lat_2", "h", "zone", "to_meter", "pm"]), NUMBERS.map(str))
                       | st.tuples(st.sampled_from(["ellps", "datum", "units", "nadgrids", "towgs84", "axis"]),
                                   st.sampled_from(["WGS84", "GRS80", "krass", "clrk66", "m", "ft", "us-ft", "km",
                                                    "@null", "/dev/zero", "15.8,-154.4,-82.3", "neu", "wsu"])),
                       max_size=6)
PROJ_STRINGS = st.builds(
    lambda p, ellps, params: f"+proj={p} +ellps={ellps}" + "".join(f" +{k}={v}" for k, v in params),
    st.sampled_from(["tmerc", "utm", "merc", "longlat", "lcc", "aea", "ortho", "geos", "stere", "eqc", "geocent",
                     "laea", "robin", "moll", "nsper", "cea", "krovak", "somerc", "pipeline", "bogus"]),
    st.sampled_from(["GRS80", "WGS84", "krass", "intl", "sphere", "bessel"]), PROJ_PARAMS)
WKT_4547 = pyproj.CRS("EPSG:4547").to_wkt()
MUTATED_WKT = st.builds(lambda old, new: WKT_4547.replace(old, new, 1),
                        st.sampled_from(["6378137", "298.257222101", "114", "0.9996", "1", "500000", "metre", "degree"]),
                        NUMBERS.map(str) | st.text(max_size=5))
ANY_CRS_TEXT = st.text(max_size=60) | AUTHORITY_CODES | PROJ_STRINGS | MUTATED_WKT


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=ANY_CRS_TEXT, lon=DG_LON, lat=DG_LAT)
@example(text="+proj=tmerc +lon_0=114 +k=1e300 +ellps=GRS80", lon=114.0, lat=23.0)
@example(text="IAU_2015:49900", lon=114.0, lat=23.0)
@example(text="+proj=utm +zone=50 +ellps=krass", lon=113.8, lat=22.9)
def test_any_text_is_a_usable_crs_or_unknown(text, lon, lat):
    try:
        c = normalize_crs(text)
    except UnknownCRSError as exc:
        assert str(exc) and exc.supported == SUPPORTED
        return
    # Usable: its points around Dongguan are finite both ways and come back.
    x, y = from_wgs84(lon, lat, c)
    assert np.isfinite(x) and np.isfinite(y), (c, x, y)
    blon, blat = to_wgs84(x, y, c)
    assert abs(float(blon) - lon) < ROUND_TRIP_DEG and abs(float(blat) - lat) < ROUND_TRIP_DEG, c
    assert is_geographic(c) in (True, False)


# ------------------------------------------------------------------ degrees given in a projected CRS
def test_degrees_in_a_projected_crs_are_misplaced(zone_index):
    msgs = misplaced_problems(zone_index, [114.05, 113.3], [23.06, 22.9], "EPSG:4547")
    assert all("these look like degrees; did you mean crs=wgs84?" in m for m in msgs)
    with pytest.raises(MisplacedError, match="look like degrees") as info:
        check_placed(zone_index, 114.05, 23.06, "EPSG:4547")
    assert isinstance(info.value, CoordinateError)
    # metres, but thousands of km off: misplaced, without the degrees hint
    (far,) = misplaced_problems(zone_index, [474000.0], [9_000_000.0], "EPSG:4547")
    assert far is not None and "km from the area served" in far and "degrees" not in far


@settings(max_examples=60, deadline=None, derandomize=True)
@given(lon=st.floats(113.0, 115.0), lat=st.floats(22.0, 24.0),
       crs=st.sampled_from(["EPSG:4547", "EPSG:32650", "EPSG:3857", "EPSG:2385"]))
def test_real_projected_points_near_the_towns_are_not_misplaced(zone_index, lon, lat, crs):
    x, y = from_wgs84(lon, lat, crs)
    assert misplaced_problems(zone_index, [float(x)], [float(y)], crs) is None
    check_placed(zone_index, float(x), float(y), crs)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(lon=st.floats(-180, 180), lat=st.floats(-90, 90), crs=st.sampled_from(["wgs84", "gcj02", "bd09", "cgcs2000"]))
def test_geographic_input_is_never_misplaced(zone_index, lon, lat, crs):
    # Degrees far away are just outside every zone (needs review), as before.
    assert misplaced_problems(zone_index, [lon], [lat], crs) is None


def test_far_means_thousands_of_km(zone_index):
    # Beijing (~1,900 km) in metres of UTM 50N is far; Guangzhou (~60 km) is not.
    bj, gz = from_wgs84(116.4, 39.9, "EPSG:32650"), from_wgs84(113.26, 23.13, "EPSG:32650")
    got = misplaced_problems(zone_index, [float(bj[0]), float(gz[0])], [float(bj[1]), float(gz[1])], "EPSG:32650")
    assert FAR_KM < 1900 and got[0] is not None and got[1] is None


@settings(max_examples=80, deadline=None, derandomize=True)
@given(x=st.floats(-2e7, 2e7) | st.floats(-200, 200), y=st.floats(-2e7, 2e7) | st.floats(-200, 200),
       crs=st.sampled_from(["EPSG:4547", "EPSG:32650", "EPSG:3857"]))
def test_one_point_and_many_points_agree(zone_index, x, y, crs):
    # check_placed (plain Python, for single lookups and reports) and misplaced_problems (numpy, for batches
    # and imports) are the same rule.
    many = misplaced_problems(zone_index, [x], [y], crs)
    expected = None if many is None else many[0]
    try:
        check_placed(zone_index, x, y, crs)
        got = None
    except MisplacedError as exc:
        got = str(exc)
    assert got == expected
