"""The column-at-a-time import route (zonechief.bulk_columns) against the per-row route.

Every file is imported twice into separate stores: once as zonechief.bulk does by default
(plain rows as columns, the rest row by row) and once with every row through the
per-row route (pydantic ReportIn, zonechief.bulk.prepare). Stored reports, their histories,
the rejects and the counts must be identical.
"""
from __future__ import annotations

import csv
import json
import math
import random
import re
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
import shapely
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from store import bulk_write
from tests.helpers import inner, pg_database
from zonechief import bulk
from zonechief.bulk_columns import WHITESPACE, _location_json, _timestamps, clean
from zonechief.reports import ReportIn

NOW = datetime(2026, 3, 1, 2, 30, tzinfo=timezone.utc)
ZONES = ["QS-03", "QS-12", "ZMT-01", "ZMT-03", "ZMT-07"]  # ZMT-03 changes chief on 2025-07-01
ODD_SPACE = ["", " ", "\t", "\u3000", "\xa0", "\x1c", "\x85", "\u2028", "\u200b"]  # \u200b is not whitespace


# ------------------------------------------------------------------ generating awkward files
def _pad(rng: random.Random, s: str) -> str:
    return rng.choice(ODD_SPACE) + s + rng.choice(ODD_SPACE) if rng.random() < 0.3 else s


def _number(rng: random.Random, v: float) -> str:
    return rng.choice([f"{v}", f"{v:.7f}", f"{v:.3f}", f"+{v}", f"{v:e}", f"{v:.12E}", f"{v:.0f}", f"{v:.2f}0000"])


def make_row(rng: random.Random, index, points: dict, facilities) -> dict:
    zone = rng.choice(ZONES)
    lon, lat = points[zone]
    kind = rng.random()
    if kind < 0.4:  # inside a zone, jittered: some land near or across its edges
        lon, lat = lon + rng.gauss(0, 0.003), lat + rng.gauss(0, 0.003)
    elif kind < 0.55:  # near the towns' outline: inside, snapped (within 100 m outside) or beyond
        lon, lat = rng.choice(points["outline"])
        lon, lat = lon + rng.gauss(0, 0.001), lat + rng.gauss(0, 0.001)
    elif kind < 0.75:  # anywhere over the towns, mostly outside every zone
        x0, y0, x1, y1 = index.zones.total_bounds
        lon, lat = rng.uniform(x0 - 0.05, x1 + 0.05), rng.uniform(y0 - 0.05, y1 + 0.05)
    elif kind < 0.8:
        lon, lat = rng.choice([(0.00001, 1e-5), (200.0, 22.0), (114.0, 95.0), (114.0, 23.0)])
    r = {"lon": _pad(rng, _number(rng, lon)), "lat": _pad(rng, _number(rng, lat))}
    if rng.random() < 0.05:
        r[rng.choice(["lon", "lat"])] = rng.choice(["", "abc", "inf", "nan", "1_14.0", "114,1", "٣", "0x1p3"])

    def pick(usual: list, odd: list) -> str:  # mostly valid, so that rows get stored too
        return rng.choice(odd) if rng.random() < 0.05 else rng.choice(usual)

    r["crs"] = pick(["", "", "wgs84", "gcj02", "GCJ02", " bd09 ", "EPSG:4326"],
                    ["EPSG:4490", "cgcs2000", "EPSG:4547", "bogus", "x" * 65])
    r["category"] = _pad(rng, pick(["06010", "06010", "6010", "01010"], ["99999", "", "abc", "123456", "٠٦٠١٠",
                                                                     "06 010", "0"]))
    r["description"] = pick(["", "暴露垃圾", " 占道经营 ", "tab\there", "引号 \"q\"", "\\N"], ["x" * 2001]) + \
        rng.choice(ODD_SPACE)
    r["source"] = pick(["", "", "gps", "staff"], ["address", "service_code", "GPS", "bogus"])
    r["reporter_name"] = _pad(rng, pick(["", "", "张三", "O'Brien"], ["x" * 101]))
    r["reporter_phone"] = _pad(rng, pick(["", "", "13800000000", "+86 (769) 1234-5678"], ["abc", "1" * 41]))
    r["photo_url"] = pick(["", "", "https://example.org/a.jpg", "http://x/" + "a" * 491], ["ftp://x/y", "HTTPS://X",
                                                                                          "http://x/" + "a" * 492])
    r["idempotency_key"] = _pad(rng, pick(["", "", f"u{rng.random()}", f"v{rng.random()}"],
                                          ["k1", "k2", "k3", "x" * 129, "x" * 128]))
    r["created_at"] = _pad(rng, pick(
        ["", "", "2025-07-01T09:30:00+08:00", "2025-07-01T09:30:00Z", "2025-07-01T09:30:00.123456+05:30",
         "2025-07-01T23:30:00-10:00", "2025-06-30T16:30:00.5Z", "2025-06-30T16:00:00Z", "2025-06-30T15:59:59.999999Z",
         "2025-06-30T20:00:00-04:00", "2025-07-01T07:59:59+08:00"],  # around ZMT-03's change, Dongguan time
        ["2025-07-01T09:30:00", "2025-02-30T00:00:00Z", "2025-07-01 09:30:00+08:00", "1700000000",
         "2025-07-01T09:30:00.1234567Z", "2025-07-01T24:00:00Z", "0001-01-01T00:00:00+00:00"]))
    if rng.random() < 0.05:
        r["service_code"] = rng.choice(facilities.service_code.tolist())
    elif rng.random() < 0.05:
        r["address"] = rng.choice(["企石镇铁岗村", "樟木头镇", "nowhere at all"])
    return r


def write_csv(path, rows: list[dict], rng: random.Random) -> None:
    cols = ["lon", "lat", "crs", "category", "description", "source", "reporter_name", "reporter_phone",
            "photo_url", "idempotency_key", "created_at", "service_code", "address"]
    keep = [c for c in cols if c in ("lon", "lat", "category") or rng.random() < 0.85]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keep, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_rows(path, header: list[str], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


# ------------------------------------------------------------------ reading back what was stored
def stored(reports) -> tuple[list[dict], list[list[tuple]]]:
    with reports.db.engine.connect() as c:
        if reports.db.dialect == "postgresql":
            rows = c.execute(sa.text("SELECT *, ST_X(geom) AS x, ST_Y(geom) AS y FROM reports ORDER BY id")).mappings().all()
        else:
            rows = c.execute(sa.text("SELECT * FROM reports ORDER BY id")).mappings().all()
        evs = c.execute(sa.text("SELECT report_id, status, at, actor, note FROM report_events ORDER BY id")).all()
    out, pos = [], {}
    for r in rows:
        d = dict(r)
        pos[d.pop("id")] = len(out)
        # random per report (store.tokens): both routes give every report one, and never the same one
        assert re.fullmatch(r"[0-9a-f]{32}", d.pop("tracking_token"))
        g = d.pop("geom")
        if "x" in d:
            d["geom"] = None if d["x"] is None else (d.pop("x"), d.pop("y"))
            d.pop("x", None), d.pop("y", None)
        else:
            p = None if g is None else shapely.from_wkb(bytes(g))
            d["geom"] = None if p is None else (p.x, p.y)
        li = d["location_input"]
        d["location_input"] = json.loads(li) if isinstance(li, str) else li
        for k in ("created_at", "updated_at"):
            d[k] = _utc(d[k])
        out.append(d)
    history: list[list[tuple]] = [[] for _ in out]
    for rid, status, at, actor, note in evs:
        history[pos[rid]].append((status, _utc(at), actor, note))
    return out, history


def _utc(t):
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def clear(reports) -> None:
    with reports.db.engine.begin() as c:
        c.execute(sa.text("DELETE FROM report_events"))
        c.execute(sa.text("DELETE FROM reports"))


def imported(reports, path, rejects, columnar: bool, **kw):
    res = bulk.import_file(reports, path, rejects, now=NOW, columnar=columnar, **kw)
    rej = list(csv.reader(open(rejects, encoding="utf-8"))) if res.rejected else []
    return (res.inserted, res.already_present, res.rejected, res.needs_review), rej, stored(reports)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, zone_index):
    from zonechief.services import Services
    from zonechief.settings import Settings

    d = tmp_path_factory.mktemp("routes")
    return [Services(Settings(), index=zone_index, database_url=f"sqlite:///{d / f'{n}.sqlite'}").reports
            for n in ("columns", "rows")]


@pytest.fixture(scope="module")
def points(zone_index):
    pts = {z: inner(zone_index, z) for z in ZONES}
    outline = shapely.unary_union(zone_index.zones.geometry.values).boundary
    pts["outline"] = [(p.x, p.y) for p in shapely.line_interpolate_point(outline, np.linspace(0, 1, 200),
                                                                         normalized=True).tolist()]
    return pts


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60))
def test_columns_store_what_rows_store(stores, points, zone_index, facilities, tmp_path_factory, seed, n):
    rng = random.Random(seed)  # not st.randoms(): hypothesis would steer its choices towards the first options
    tmp = tmp_path_factory.mktemp("eq")
    rows = [make_row(rng, zone_index, points, facilities) for _ in range(n)]
    path = tmp / "in.csv"
    write_csv(path, rows, rng)
    for s in stores:
        clear(s)
    for attempt in ("first", "again"):  # the second import finds every keyed row already stored
        a = imported(stores[0], path, tmp / f"a-{attempt}.csv", columnar=True)
        b = imported(stores[1], path, tmp / f"b-{attempt}.csv", columnar=False)
        assert a[0] == b[0], attempt
        assert a[1] == b[1], attempt
        assert a[2][0] == b[2][0]
        assert a[2][1] == b[2][1]


def test_plain_rows_take_the_column_route(zone_index, points, tmp_path):
    """The equivalence above must not hold merely because nothing is plain."""
    from zonechief.bulk_columns import plain_rows

    lon, lat = points["QS-12"]
    path = tmp_path / "p.csv"
    write_rows(path, ["lon", "lat", "crs", "category", "created_at", "reporter_phone", "idempotency_key"], [
        [lon, lat, "", "6010", "2025-07-01T09:30:00.25+08:00", "+86 (769) 1", " k "],
        [lon, lat, "gcj02", " 06010 ", "", "", ""],
        [lon, lat, "", "06010", "2025-07-01T09:30:00", "", ""],  # naive: doubtful
        ["abc", lat, "", "06010", "", "", ""],  # not a number: doubtful
    ])
    table, xs, ys, fcrs = bulk.read_table(path)
    plain, doubtful = plain_rows(table, xs, ys, None, fcrs)
    assert plain.pos.tolist() == [0, 1] and doubtful.tolist() == [2, 3]
    assert plain.category.to_pylist() == ["06010", "06010"]
    assert plain.idempotency_key.to_pylist() == ["k", None]
    assert plain.crs.to_pylist() == ["wgs84", "gcj02"]


# ------------------------------------------------------------------ the pieces, against Python itself
@given(st.text(alphabet=st.sampled_from(list(WHITESPACE) + ["a", "中", "\u200b", " "]), max_size=12))
def test_clean_is_python_strip(s):
    assert clean(pa.array([s])).to_pylist() == [s.strip() or None]


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite, finite, st.sampled_from(["wgs84", "gcj02", 'we"ird\\', "中文", "EPSG:4547"]))
@example(114.0, 22.5, "wgs84")
@example(1e-05, -0.0, "wgs84")
@example(9999999.5, 5e15, "wgs84")
@example(123456789.123, 1e-4, "wgs84")
def test_location_json_is_json_dumps(x, y, crs):
    got = _location_json(np.array([x]), np.array([y]), pa.array([crs])).to_pylist()[0]
    assert got == json.dumps({"lon": x, "lat": y, "crs": crs}, ensure_ascii=False)


stamps = st.builds(
    lambda d, frac, off: d.strftime("%Y-%m-%dT%H:%M:%S") + frac + off,
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31)),
    st.sampled_from(["", ".5", ".123456", ".000001", ".1234567"]),
    st.sampled_from(["Z", "+08:00", "-10:00", "+05:45", "+00:00", "-00:00", "+23:59", "", "+24:00", "+0800"]))


@given(st.lists(stamps, min_size=1, max_size=5))
@example(["2025-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2025-07-01T23:59:60Z"])
def test_timestamps_agree_with_pydantic(texts):
    values, plain = _timestamps(pa.array(texts))
    for text, v, ok in zip(texts, values.to_pylist(), plain):
        if not ok:
            continue  # doubtful: the per-row route decides
        want = ReportIn.model_validate({"source": "staff", "category": "06010", "location": {"lon": 1, "lat": 1},
                                        "created_at": text}).created_at
        assert v == want.astimezone(timezone.utc)


@given(st.one_of(st.floats(0, 1e7), st.integers(0, 10**6).map(lambda k: k + 0.5)))
def test_metres_round_like_format(d):
    import pyarrow.compute as pc

    got = pc.cast(pc.round(pa.array([d]), round_mode="half_to_even"), pa.int64()).cast(pa.string()).to_pylist()
    assert got == [f"{d:.0f}"]


# ------------------------------------------------------------------ PostGIS: binary COPY and index rebuilds
def _schema(url):
    eng = sa.create_engine(url)
    with eng.connect() as c:
        idx = sorted(c.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes "
                                       "WHERE tablename IN ('reports', 'report_events')")).all())
        con = sorted(c.execute(sa.text("SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
                                       "WHERE conrelid IN ('reports'::regclass, 'report_events'::regclass)")).all())
    eng.dispose()
    return idx, con


@pytest.mark.parametrize("rebuild", [True, False])
def test_postgis_copy_stores_what_sqlite_stores(stores, zone_index, points, facilities, tmp_path, rebuild):
    from zonechief.services import Services
    from zonechief.settings import Settings

    rng = random.Random(7)
    rows = [make_row(rng, zone_index, points, facilities) for _ in range(400)]
    path = tmp_path / "in.csv"
    write_csv(path, rows, random.Random(1))
    with pg_database() as url:
        pg = Services(Settings(), index=zone_index, database_url=url).reports
        before = _schema(url)
        got = imported(pg, path, tmp_path / "pg.csv", columnar=True, rebuild_indexes=rebuild)
        assert _schema(url) == before  # every index and constraint is back, validated
        clear(stores[1])
        want = imported(stores[1], path, tmp_path / "sq.csv", columnar=False)
        assert got[0] == want[0] and got[1] == want[1]
        assert got[2][1] == want[2][1]
        for g, w in zip(got[2][0], want[2][0]):
            for k in w:
                if k == "geom" and w[k] is not None:
                    assert g[k] == pytest.approx(w[k], abs=1e-12)
                elif isinstance(w[k], float):
                    assert math.isclose(g[k], w[k]), k
                else:
                    assert g[k] == w[k], k
        again = imported(pg, path, tmp_path / "pg2.csv", columnar=True, rebuild_indexes=rebuild)
        keyless = sum(1 for r in got[2][0] if r["idempotency_key"] is None)
        assert got[0][0] > 120 and keyless  # most rows stored; some without a key
        assert again[0][0] == keyless and again[0][1] >= got[0][0] - keyless  # only rows without a key come again
        pg.db.engine.dispose()


def test_failed_rebuild_leaves_everything_as_it_was(zone_index, points, tmp_path, monkeypatch):
    """A unique violation found only when the index is rebuilt rolls back the data and restores the indexes."""
    from zonechief.services import Services
    from zonechief.settings import Settings

    lon, lat = points["QS-12"]
    path = tmp_path / "k.csv"
    write_rows(path, ["lon", "lat", "category", "idempotency_key"], ([lon, lat, "06010", f"key-{i}"] for i in range(20)))
    with pg_database() as url:
        pg = Services(Settings(), index=zone_index, database_url=url).reports
        assert bulk.import_file(pg, path, tmp_path / "r.csv", rebuild_indexes=True).inserted == 20
        before, rows_before = _schema(url), stored(pg)
        # as if another client stored the same keys between the check and the write
        monkeypatch.setattr(bulk_write.BulkWriter, "stored_keys", lambda self, keys: pa.array([], pa.string()))
        with pytest.raises(Exception, match="idempotency_key"):
            bulk.import_file(pg, path, tmp_path / "r2.csv", rebuild_indexes=True)
        assert _schema(url) == before and stored(pg) == rows_before
        pg.db.engine.dispose()


def test_rebuild_only_for_loads_that_at_least_double_the_table(zone_index, points, tmp_path, monkeypatch):
    from store import pg_bulk
    from zonechief.services import Services
    from zonechief.settings import Settings

    calls = []
    real = pg_bulk.indexes_rebuilt

    def spy(cur, tables):
        calls.append(tables)
        return real(cur, tables)

    monkeypatch.setattr(pg_bulk, "indexes_rebuilt", spy)
    monkeypatch.setattr(bulk_write, "REBUILD_MIN", 10)
    lon, lat = points["QS-12"]
    with pg_database() as url:
        pg = Services(Settings(), index=zone_index, database_url=url).reports

        def load(n, tag):
            path = tmp_path / f"{tag}.csv"
            write_rows(path, ["lon", "lat", "category", "idempotency_key"],
                       ([lon, lat, "06010", f"{tag}-{i}"] for i in range(n)))
            return bulk.import_file(pg, path, tmp_path / f"{tag}.rej.csv").inserted

        assert load(5, "small") == 5 and calls == []  # under REBUILD_MIN
        assert load(30, "big") == 30 and len(calls) == 1  # 30 >= 5 already stored
        with pg.db.engine.begin() as c:
            c.execute(sa.text("ANALYZE reports"))
        assert load(20, "top-up") == 20 and len(calls) == 1  # 20 < 35 stored: indexes kept
        pg.db.engine.dispose()


@pytest.mark.parametrize("rebuild", [False, True])
def test_ids_follow_the_file_across_both_routes(zone_index, points, tmp_path, monkeypatch, rebuild):
    """Plain and doubtful rows interleave; ids still follow source rows, windows included."""
    from zonechief.services import Services
    from zonechief.settings import Settings

    lon, lat = points["ZMT-07"]
    path = tmp_path / "mix.csv"
    # naive times (every 7th row from the 4th) are rejected by the per-row route
    write_rows(path, ["lon", "lat", "category", "description", "created_at"],
               ([lon, lat, "06010", f"row {i + 1}", "2025-07-01T09:30:00" if i % 7 == 3 else "2025-07-01T09:30:00+08:00"]
                for i in range(120)))
    monkeypatch.setattr(bulk_write, "CHUNK", 16)
    monkeypatch.setattr(bulk_write, "FIRST_CHUNK", 5)
    with pg_database() as url:
        pg = Services(Settings(), index=zone_index, database_url=url).reports
        ticks = []
        res = bulk.import_file(pg, path, tmp_path / "rej.csv", progress=ticks.append, rebuild_indexes=rebuild)
        assert res.rejected == len([i for i in range(120) if i % 7 == 3])
        assert sum(ticks) == 120  # every source row counted once, across windows and routes
        rows, history = stored(pg)
        assert [r["description"] for r in rows] == [f"row {i + 1}" for i in range(120) if i % 7 != 3]
        assert res.ids == sorted(res.ids)
        assert all(h == [("new", h[0][1], "import", None), ("assigned", h[0][1], "system", None)] for h in history)
        with pg.db.engine.connect() as c:  # event ids (explicit when rebuilding) follow their reports
            ev = c.execute(sa.text("SELECT report_id FROM report_events ORDER BY id")).scalars().all()
        assert ev == sorted(ev) and len(ev) == 2 * len(rows)
        pg.db.engine.dispose()

