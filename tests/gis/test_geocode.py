"""Geocoding: offline gazetteer, service codes, coordinates, Amap provider (against a fake server)."""

import csv
import json
import socket
import threading
import traceback
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import eviltransform
import geopandas as gpd
import pyproj
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gis.crs import wgs84_to_gcj02
from gis.gazetteer import Gazetteer, GeocodingProvider, ProviderError, geocode_address
from gis.gazetteer_text import normalize_text
from gis.geocode_result import Candidate, GeocodeResult
from gis.points import CoordinateError, geocode_coordinates
from gis.service_codes import UnknownServiceCode, resolve_service_code
from gis.shipped import DATA_DIR
from zonechief.amap import AmapProvider

DATA = DATA_DIR
GEOD = pyproj.Geod(ellps="WGS84")
TIEGANG = "441900105200"
KEY = "sekret-amap-key-123"


def dist_m(lon1, lat1, lon2, lat2):
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


@pytest.fixture(scope="module")
def gz():
    return Gazetteer.load()


@cache
def villages() -> gpd.GeoDataFrame:
    """The shipped villages, read on first use."""
    return gpd.read_file(DATA / "villages.geojson")


@cache
def towns() -> gpd.GeoDataFrame:
    """The shipped towns, read on first use."""
    return gpd.read_file(DATA / "towns.geojson")


def _village_rows() -> list[tuple]:
    # Needed to parametrize, when pytest collects: the properties only, with plain json (no geometry).
    fc = json.loads((DATA / "villages.geojson").read_text(encoding="utf-8"))
    return [tuple(f["properties"][k] for k in ("code", "name", "short_name", "town", "zone_id")) for f in fc["features"]]


VILLAGE_ROWS = _village_rows()


# ============================================================================ must hold


@pytest.mark.parametrize("text", ["企石镇铁岗村", "企石鎮鐵崗村", "铁岗村", "铁岗", "铁岗村村民委员会",
                                  "广东省东莞市企石镇铁岗村", "  企石镇，铁岗村！ ", "企石镇铁岗村村口垃圾成堆"])
def test_tiegang_resolves_confidently(gz, text):
    r = geocode_address(text, gz)
    assert r.method == "gazetteer"
    assert r.candidates[0].village_code == TIEGANG
    assert r.candidates[0].kind == "village"
    assert r.zone_id == "QS-02"
    assert r.needs_review is False
    assert r.confidence >= 0.75
    # the position is the village's representative point, inside its polygon
    poly = villages().set_index("code").loc[TIEGANG, "geometry"]
    assert poly.contains(shapely.Point(r.lon, r.lat))


def test_town_alone_needs_review(gz):
    r = geocode_address("樟木头镇", gz)
    assert r.needs_review is True
    assert r.candidates[0].kind == "town" and r.candidates[0].name == "樟木头镇"
    assert r.zone_id is None
    assert "only the town" in r.note
    town = towns().set_index("name").loc["樟木头镇", "geometry"]
    assert town.contains(shapely.Point(r.lon, r.lat))


@pytest.mark.parametrize("text", ["asdf", "", "!!!", "   ", "。，、", None, "1234567", "zzzz qqqq"])
def test_garbage_needs_review_without_position(gz, text):
    r = geocode_address(text, gz)
    assert r.needs_review is True
    assert r.candidates == []
    assert r.lon is None and r.lat is None
    assert r.confidence == 0.0
    assert r.zone_id is None


# ============================================================================ normalization & typos


def test_normalize_text():
    assert normalize_text("廣東省東莞市 企石鎮，鐵崗村！") == "企石镇铁岗村"
    assert normalize_text("ＤＧＣＳ－４４１９") == "dgcs4419"      # full-width → half-width, lower case
    assert normalize_text("东莞企石") == "企石"
    assert normalize_text(None) == ""


@pytest.mark.parametrize("text, name", [
    ("樟木投镇", "樟木头镇"),        # one typo in a 4-character town name
    ("铁炉坑材", "铁炉坑村"),        # typo in the suffix
    ("百果同社区", "百果洞社区"),
    ("企石镇铁刚村", "铁岗村"),
    ("铁刚村", "铁岗村"),
    ("樟木头公厕1", "樟木头公厕 01"),  # 1 == 01, a different number would be another facility
])
def test_typos_find_the_right_place(gz, text, name):
    top = gz.search(text)[0]
    assert top.name == name
    assert top.matched != normalize_text(name)   # it really was a fuzzy match


def test_traditional_characters_are_exact_matches(gz):
    # 鎮 is not a typo: OpenCC maps it to 镇 before matching, so it scores like the exact name.
    assert gz.search("樟木头鎮")[0].name == "樟木头镇"
    assert gz.search("樟木头鎮")[0].score == gz.search("樟木头镇")[0].score
    assert gz.search("樟木頭鎮")[0].matched == "樟木头镇"


def test_one_typo_in_two_distinctive_characters_needs_corroboration(gz):
    # 铁刚村 alone: right village but flagged; with its town named it is accepted.
    alone = geocode_address("铁刚村", gz)
    assert alone.candidates[0].village_code == TIEGANG and alone.needs_review
    with_town = geocode_address("企石镇铁刚村", gz)
    assert with_town.candidates[0].village_code == TIEGANG and not with_town.needs_review


def test_exact_match_does_not_suggest_lookalikes(gz):
    # 上截村 and 下截村 differ by one character; an exact hit must not produce a rival.
    r = geocode_address("上截村", gz)
    assert [c.name for c in r.candidates] == ["上截村"]
    assert not r.needs_review


def test_typo_between_two_villages_is_ambiguous(gz):
    r = geocode_address("企石镇中截村", gz)
    assert {c.name for c in r.candidates[:2]} == {"上截村", "下截村"}
    assert r.needs_review and "ambiguous: 2 candidates within 0.1" in r.note


def test_two_villages_named_is_ambiguous(gz):
    r = geocode_address("企石镇东平村和东山村", gz)
    assert r.needs_review and "ambiguous" in r.note


def test_town_contradiction_is_penalized(gz):
    r = geocode_address("樟木头镇铁岗村", gz)       # 铁岗村 is in 企石镇
    assert r.candidates[0].village_code == TIEGANG
    assert r.candidates[0].score < gz.search("企石镇铁岗村")[0].score
    assert r.needs_review


def test_more_specific_kind_outranks(gz):
    cands = gz.search("企石镇铁岗村")
    assert [c.kind for c in cands] == ["village", "town"]
    assert cands[0].score > cands[1].score
    lm = gz.search("樟木头镇观音山森林公园")
    assert lm[0].kind == "landmark" and lm[0].zone_id == "ZMT-09"


def test_name_inside_a_longer_name_does_not_count(gz):
    # 樟木头 is inside 樟木头生活区; 企石 (the town) inside 企石村 (a village).
    assert [c.name for c in gz.search("樟木头生活区")] == ["樟木头生活区"]
    assert [c.name for c in gz.search("企石村")] == ["企石村"]


def test_qishi_alone_means_the_town(gz):
    # 企石村 stripped to 企石 would clash with the town's short name, so it is not an alias.
    r = geocode_address("企石", gz)
    assert r.candidates[0].kind == "town" and r.candidates[0].name == "企石镇"
    assert r.needs_review


def test_road_alone_needs_review_but_road_plus_village_does_not(gz):
    road = geocode_address("莞樟路", gz)
    assert road.candidates[0].kind == "road" and road.candidates[0].zone_id is None
    assert road.needs_review and "spans several zones" in road.note
    both = geocode_address("莞樟路樟洋社区门口", gz)
    assert both.candidates[0].name == "樟洋社区" and both.zone_id == "ZMT-04"
    assert not both.needs_review


def test_facility_by_name_and_by_service_code_text(gz):
    r = geocode_address("企石城管驿站01旁边有垃圾", gz)
    assert r.facility_id == "QS-YZ-01" and r.zone_id == "QS-04" and not r.needs_review
    r2 = geocode_address("编号 DGCS-441900112-WC003 的公厕", gz)
    assert r2.facility_id == "ZMT-WC-03" and r2.zone_id == "ZMT-03"


def test_search_limit_and_order(gz):
    cands = gz.search("企石镇东平村东山村上截村下截村", limit=3)
    assert len(cands) == 3
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True)
    assert gz.search("企石镇铁岗村", limit=0) == []


# ============================================================================ every village


@pytest.mark.parametrize("code, name, short, town, zone", VILLAGE_ROWS)
def test_every_village_by_short_and_official_name(gz, code, name, short, town, zone):
    for text in (short, name, f"{town}{short}", f"广东省东莞市{town}{name}"):
        r = geocode_address(text, gz)
        assert r.candidates[0].village_code == code, text
        assert r.zone_id == zone, text
        assert not r.needs_review, (text, r.note)


@pytest.mark.parametrize("code, name, short, town, zone", VILLAGE_ROWS)
def test_every_village_position_is_inside_it(gz, index, code, name, short, town, zone):
    c = gz.search(short)[0]
    a = index.lookup(c.lon, c.lat)
    assert a.village_code == code and a.zone_id == zone and a.status == "inside"


def test_stripped_short_names(gz):
    found = 0
    for code, _name, short, _town, _zone in VILLAGE_ROWS:
        for suf in ("社区", "村"):
            stem = short[: -len(suf)] if short.endswith(suf) else None
            if stem and len(stem) >= 2 and stem != "企石":
                top = gz.search(stem)[0]
                assert top.village_code == code, stem
                found += 1
                break
    assert found == len(VILLAGE_ROWS) - 2   # 企石村 (clash with the town) and 樟木头生活区 (no suffix)


# ============================================================================ gazetteer_extra.csv


def _extra_rows() -> list[dict]:
    # Needed to parametrize, when pytest collects.
    with open(DATA / "gazetteer_extra.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


EXTRA = _extra_rows()


def test_extra_csv_shape():
    assert 15 <= len(EXTRA) <= 25
    assert set(EXTRA[0]) >= {"name", "kind", "town", "lon", "lat", "zone_id", "aliases", "geometry_quality", "note"}
    assert {r["kind"] for r in EXTRA} == {"landmark", "road"}
    assert all(r["geometry_quality"] == "illustrative" and "illustrative" in r["note"] for r in EXTRA)
    assert len({r["name"] for r in EXTRA}) == len(EXTRA)


@pytest.mark.parametrize("row", EXTRA, ids=[r["name"] for r in EXTRA])
def test_extra_points_inside_their_town_and_zone(index, gz, row):
    lon, lat = float(row["lon"]), float(row["lat"])
    town = towns().set_index("name").loc[row["town"], "geometry"]
    assert town.contains(shapely.Point(lon, lat))
    a = index.lookup(lon, lat)
    assert a.town == row["town"]
    if row["kind"] == "landmark":
        assert row["zone_id"] == a.zone_id
    elif row["zone_id"]:
        assert row["zone_id"] == a.zone_id
    # findable by name and by every alias
    for text in [row["name"]] + [x for x in row["aliases"].split("|") if x]:
        top = gz.search(text)[0]
        assert top.name == row["name"], text
        assert top.zone_id == (row["zone_id"] or None)


# ============================================================================ property


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_arbitrary_text_never_raises(gz, text):
    r = geocode_address(text, gz)
    assert isinstance(r, GeocodeResult)
    assert 0.0 <= r.confidence <= 1.0
    assert (r.lon is None) == (not r.candidates)


NAME_CHARS = sorted(set("".join(v for row in VILLAGE_ROWS for v in row[1:4])) | set("镇路公厕01 ，鎮鐵崗"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=NAME_CHARS, max_size=30))
def test_name_like_text_is_consistent(gz, text):
    r = geocode_address(text, gz)
    assert 0.0 <= r.confidence <= 1.0
    assert all(0.0 <= c.score <= 1.0 for c in r.candidates)
    assert [c.score for c in r.candidates] == sorted((c.score for c in r.candidates), reverse=True)
    if not r.needs_review:
        # an accepted answer always has a position and a zone, and is confident
        assert r.lon is not None and r.zone_id is not None and r.confidence >= 0.75


# ============================================================================ service codes


@pytest.mark.parametrize("code", [
    "DGCS-441900112-WC001", "dgcs-441900112-wc001", "  DGCS-441900112-WC001\n", "ＤＧＣＳ－441900112－WC001",
    "https://x.example/s?code=DGCS-441900112-WC001",
    "https://x.example/s?utm=qr&c=dgcs-441900112-wc001",
    "https://x.example/facility/DGCS-441900112-WC001",
    "https://x.example/facility/DGCS-441900112-WC001/",
])
def test_service_code_forms(facilities, code):
    r = resolve_service_code(code, facilities)
    assert r.method == "service_code"
    assert r.confidence == 1.0 and r.needs_review is False
    assert r.facility_id == "ZMT-WC-01"
    assert r.zone_id == "ZMT-01"
    row = facilities.set_index("facility_id").loc["ZMT-WC-01"]
    assert (r.lon, r.lat) == (row.geometry.x, row.geometry.y)


def test_service_code_other_crs(facilities):
    r = resolve_service_code("DGCS-441900105-FW001", facilities.to_crs(4547))
    row = facilities.set_index("facility_id").loc["QS-FW-01"]
    assert r.facility_id == "QS-FW-01" and r.zone_id == "QS-18"
    assert dist_m(r.lon, r.lat, row.geometry.x, row.geometry.y) < 0.01


@pytest.mark.parametrize("code", ["DGCS-441900112-WC999", "", "https://x.example/s?code=nope", None])
def test_unknown_service_code(facilities, code):
    with pytest.raises(UnknownServiceCode) as ei:
        resolve_service_code(code, facilities)
    assert isinstance(ei.value, ValueError)
    msg = str(ei.value)
    assert repr(code) in msg
    assert "DGCS-441900105-FW001" in msg      # an example of a valid code (the first in sort order)


# ============================================================================ coordinates


def test_coordinates_wgs84_and_gcj02(index):
    lon, lat = villages().set_index("code").loc[TIEGANG, "geometry"].representative_point().coords[0]
    r = geocode_coordinates(lon, lat, "wgs84")
    assert r.method == "coordinates" and r.confidence == 1.0 and not r.needs_review
    assert (r.lon, r.lat) == (lon, lat)
    glon, glat = wgs84_to_gcj02(lon, lat)
    r2 = geocode_coordinates(float(glon), float(glat), "gcj02", index=index)
    assert dist_m(r2.lon, r2.lat, lon, lat) < 0.01
    assert r2.zone_id == "QS-02"
    x, y = pyproj.Transformer.from_crs(4326, 4547, always_xy=True).transform(lon, lat)
    r3 = geocode_coordinates(x, y, "EPSG:4547")
    assert dist_m(r3.lon, r3.lat, lon, lat) < 0.01


def test_bad_coordinates_raise():
    with pytest.raises(CoordinateError, match="did you swap"):
        geocode_coordinates(23.05, 114.05, "wgs84")


# ============================================================================ fake Amap server


@cache
def true_point() -> tuple[float, float]:
    """A WGS-84 point in 樟洋社区 (ZMT-04); the fake server answers with its GCJ-02 form."""
    return villages().set_index("code").loc["441900112005", "geometry"].representative_point().coords[0]


def gcj_point() -> tuple[float, float]:
    """true_point() in GCJ-02 (lon, lat): eviltransform is an independent implementation of the forward transform."""
    glat, glon = eviltransform.wgs2gcj(true_point()[1], true_point()[0])
    return glon, glat


@cache
def qs_point() -> tuple[float, float]:
    """A WGS-84 point in a village of QS-05."""
    return villages().set_index("code").loc["441900105203", "geometry"].representative_point().coords[0]


def _gcj(lon, lat):
    glat, glon = eviltransform.wgs2gcj(lat, lon)
    return f"{glon:.6f},{glat:.6f}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        u = urlsplit(self.path)
        srv.requests.append((u.path, parse_qs(u.query)))
        mode = srv.mode
        if mode == "slow":
            srv.release.wait(5)
        if mode == "http500":
            return self._send(500, b"internal error")
        if mode == "badjson":
            return self._send(200, b"{not json", "application/json")
        (gcj_lon, gcj_lat), (qs_lon, qs_lat) = gcj_point(), qs_point()
        body = {
            "ok": {"status": "1", "info": "OK", "infocode": "10000", "count": "1", "geocodes": [
                {"formatted_address": "广东省东莞市樟木头镇樟洋社区某商场", "country": "中国", "province": "广东省",
                 "city": "东莞市", "district": [], "township": [], "location": f"{gcj_lon:.6f},{gcj_lat:.6f}",
                 "level": "兴趣点"}]},
            "qishi": {"status": "1", "info": "OK", "count": "1", "geocodes": [
                {"formatted_address": "广东省东莞市企石镇某商场", "location": _gcj(qs_lon, qs_lat), "level": "兴趣点"}]},
            "town": {"status": "1", "info": "OK", "count": "1", "geocodes": [
                {"formatted_address": "广东省东莞市樟木头镇", "location": f"{gcj_lon:.6f},{gcj_lat:.6f}", "level": "乡镇"}]},
            "empty": {"status": "1", "info": "OK", "count": "0", "geocodes": []},
            "error": {"status": "0", "info": "INVALID_USER_KEY", "infocode": "10001"},
            "slow": {"status": "1", "info": "OK", "count": "0", "geocodes": []},
        }[mode]
        self._send(200, json.dumps(body, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _send(self, status, body, ctype="text/plain"):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (timeout test)


@pytest.fixture
def amap():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)   # port 0: a random free port
    srv.mode = "ok"
    srv.requests = []
    srv.release = threading.Event()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def provider(srv, timeout=2.0):
    return AmapProvider(KEY, base_url=f"http://127.0.0.1:{srv.server_address[1]}", timeout=timeout)


def test_amap_provider_protocol(amap):
    assert isinstance(provider(amap), GeocodingProvider)
    assert KEY not in repr(provider(amap))


def test_amap_returns_wgs84(amap):
    cands = provider(amap).geocode("樟木头镇某商场")
    assert len(cands) == 1
    c = cands[0]
    assert dist_m(c.lon, c.lat, *true_point()) < 0.5
    # and not still in GCJ-02 (which is hundreds of metres off)
    assert dist_m(*gcj_point(), *true_point()) > 100
    assert c.score == 0.9 and c.kind == "landmark"
    path, q = amap.requests[0]
    assert path == "/v3/geocode/geo"
    assert q["address"] == ["樟木头镇某商场"] and q["city"] == ["东莞"] and q["key"] == [KEY] and q["output"] == ["JSON"]


def test_amap_level_scores(amap):
    amap.mode = "town"
    c = provider(amap).geocode("樟木头")[0]
    assert c.kind == "town" and c.score == 0.5
    amap.mode = "empty"
    assert provider(amap).geocode("无此地") == []


@pytest.mark.parametrize("mode, timeout, expect", [
    ("error", 2.0, "INVALID_USER_KEY"),
    ("http500", 2.0, "HTTP 500"),
    ("badjson", 2.0, "not valid JSON"),
    ("slow", 0.3, "no answer within 0.3 s"),
])
def test_amap_errors(amap, mode, timeout, expect):
    amap.mode = mode
    with pytest.raises(ProviderError) as ei:
        provider(amap, timeout=timeout).geocode("樟木头镇某商场")
    assert expect in str(ei.value)
    assert KEY not in str(ei.value)
    # nor in the printed traceback, e.g. via a chained httpx error that carries the URL
    assert KEY not in "".join(traceback.format_exception(ei.value))


def test_amap_connection_refused_does_not_leak_key():
    with socket.socket() as s:     # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = AmapProvider(KEY, base_url=f"http://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(ProviderError) as ei:
        p.geocode("樟木头")
    assert KEY not in str(ei.value) and "request failed" in str(ei.value)
    assert KEY not in "".join(traceback.format_exception(ei.value))


# ============================================================================ fallback to the provider


def test_fallback_uses_provider(gz, amap):
    r = geocode_address("樟木头镇某某商场门口", gz, provider=provider(amap))
    assert r.method == "provider:amap"
    assert r.needs_review is False
    assert r.zone_id == "ZMT-04"
    assert dist_m(r.lon, r.lat, *true_point()) < 0.5
    assert r.candidates[0].village_code == "441900112005"
    assert "only the town" in r.note          # why the provider was asked


def test_provider_not_asked_when_offline_is_confident(gz, amap):
    r = geocode_address("企石镇铁岗村", gz, provider=provider(amap))
    assert r.method == "gazetteer" and amap.requests == []


def test_provider_not_asked_for_empty_text(gz, amap):
    r = geocode_address("!!!", gz, provider=provider(amap))
    assert r.needs_review and amap.requests == []


@pytest.mark.parametrize("mode, timeout", [("http500", 2.0), ("slow", 0.3), ("badjson", 2.0), ("error", 2.0)])
def test_provider_failure_falls_back(gz, amap, mode, timeout):
    amap.mode = mode
    r = geocode_address("樟木头镇某某商场门口", gz, provider=provider(amap, timeout))
    assert r.method == "gazetteer"
    assert r.needs_review is True
    assert r.candidates[0].name == "樟木头镇"
    assert "provider amap failed" in r.note and KEY not in r.note


def test_provider_low_score_not_used(gz, amap):
    amap.mode = "town"
    r = geocode_address("樟木头镇某某商场门口", gz, provider=provider(amap))
    assert r.method == "gazetteer" and r.needs_review
    assert "not used" in r.note
    assert any(c.score == 0.5 for c in r.candidates)   # the provider's answer is shown to the reviewer


def test_provider_in_other_town_not_used(gz, amap):
    amap.mode = "qishi"                     # answer in 企石镇 for a text naming 樟木头镇
    r = geocode_address("樟木头镇某某商场门口", gz, provider=provider(amap))
    assert r.method == "gazetteer" and r.needs_review
    assert "企石镇" in r.note


def test_any_provider_object_works(gz):
    class Broken:
        name = "broken"

        def geocode(self, text):
            raise RuntimeError("boom")

    class Fixed:
        name = "fixed"

        def geocode(self, text):
            return [Candidate("landmark", "x", text, *qs_point(), score=0.95)]

    r = geocode_address("asdf", gz, provider=Broken())
    assert r.method == "gazetteer" and "provider broken failed" in r.note
    r = geocode_address("asdf", gz, provider=Fixed())
    assert r.method == "provider:fixed" and r.zone_id == "QS-05" and r.confidence == 0.95
