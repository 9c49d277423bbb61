"""Patrol track import (issue 17) on SQLite and PostGIS: GPX and CSV round trips, the CRS and time rules,
each bad input reported per track with the rest imported, one transaction, reference data, synthetic tracks."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gis.crs import gcj02_to_wgs84, wgs84_to_gcj02
from gis.localtime import LOCAL
from store.models import AuditEntry, Patrol
from store.patrols_repo import PatrolRepository, patrols_frame, points_frame
from tests.helpers import inner
from zonechief.patrol_reference import PatrolReferenceError, import_reference, load_shipped
from zonechief.patrols import PatrolImportError, import_json, import_patrols
from zonechief.patrols_synthetic import synthetic_tracks
from zonechief.services import Services

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=LOCAL)
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def svc(store_url, zone_index):
    return Services(index=zone_index, database_url=store_url)


def person() -> str:
    """A person id no other test uses (the store is shared by the module's tests)."""
    return f"T-{next(_ids):04d}"


def walk(index, zone="QS-05", n=20, step_s=10, start=T0, east_m=1.0):
    """n fixes walking east at east_m metres a second from a point inside `zone`."""
    x0, y0 = inner(index, zone)
    t = [start + timedelta(seconds=step_s * k) for k in range(n)]
    lon = [x0 + k * step_s * east_m / 102_400 for k in range(n)]
    return t, lon, [y0] * n


def gpx(tracks) -> bytes:
    """GPX text for [(name, times, lons, lats)]; times written with their offset."""
    body = "".join(
        f"<trk><name>{name}</name><trkseg>"
        + "".join(f'<trkpt lat="{y:.7f}" lon="{x:.7f}"><time>{t.isoformat()}</time></trkpt>' for t, x, y in zip(ts, xs, ys))
        + "</trkseg></trk>" for name, ts, xs, ys in tracks)
    return (f'<?xml version="1.0" encoding="UTF-8"?><gpx version="1.1" creator="test" '
            f'xmlns="http://www.topografix.com/GPX/1/1">{body}</gpx>').encode()


def csv(rows, crs="wgs84", naive=False) -> bytes:
    """CSV text for [(person, time, lon, lat)]."""
    lines = ["person_id,time,lon,lat,crs"]
    for p, t, x, y in rows:
        lines.append(f"{p},{t.replace(tzinfo=None).isoformat() if naive else t.isoformat()},{x:.7f},{y:.7f},{crs}")
    return ("\n".join(lines) + "\n").encode()


def stored(svc, who) -> pd.DataFrame:
    return points_frame(svc.db, person_ids=[who])


def test_a_gpx_track_round_trips_and_a_gap_over_30_minutes_starts_a_new_patrol(svc, zone_index):
    who = person()
    t1, x1, y1 = walk(zone_index)
    t2, x2, y2 = walk(zone_index, start=t1[-1] + timedelta(minutes=31))
    res = import_patrols(svc.db, svc.index, [("a.gpx", gpx([(who, t1 + t2, x1 + x2, y1 + y2)]))], actor="test")
    assert [t.n_points for t in res.imported] == [20, 20] and not res.rejected
    back = stored(svc, who)
    assert list(back.columns) == ["patrol_id", "person_id", "team", "t", "lon", "lat"]
    assert str(back.t.dtype) == "datetime64[ns, UTC]" and back.patrol_id.dtype == np.int64
    assert back.patrol_id.nunique() == 2 and (back.person_id == who).all()
    assert [t.astimezone(timezone.utc) for t in t1 + t2] == list(back.t.dt.to_pydatetime())
    np.testing.assert_allclose(back.lon, x1 + x2, atol=1e-9)
    pf = patrols_frame(svc.db, person_ids=[who])
    assert list(pf.n_points) == [20, 20] and (pf.town == "企石镇").all() and not pf.synthetic.any()
    assert 180 < pf.length_m.iloc[0] < 200  # 19 steps of 10 m
    assert pf.geometry.iloc[0].geom_type == "LineString" and len(pf.geometry.iloc[0].coords) == 20


def test_csv_times_without_offset_are_shanghai_wall_time_and_gcj02_lands_in_wgs84(svc, zone_index):
    who = person()
    t, x, y = walk(zone_index, zone="QS-10")
    gx, gy = wgs84_to_gcj02(np.array(x), np.array(y))
    import_patrols(svc.db, svc.index, [("g.csv", csv(zip([who] * 20, t, gx, gy), crs="gcj02", naive=True))], actor="test")
    back = stored(svc, who)
    assert list(back.t) == [pd.Timestamp(v).tz_convert("UTC") for v in t]  # 09:00 naive = 01:00 UTC
    ex, ey = gcj02_to_wgs84(gx, gy)
    np.testing.assert_allclose(back.lon, ex, atol=1e-9)
    np.testing.assert_allclose(back.lat, ey, atol=1e-9)
    assert np.abs(back.lon - gx).max() > 0.003  # GCJ-02 is hundreds of metres off: it was converted


def test_a_file_that_is_not_xml_is_rejected_whole_and_the_other_files_imported(svc, zone_index):
    who = person()
    t, x, y = walk(zone_index)
    res = import_patrols(svc.db, svc.index, [("broken.gpx", b"this is not XML <gpx"),
                                             ("ok.gpx", gpx([(who, t, x, y)]))], actor="test")
    errors = {f["name"]: f["error"] for f in res.files}
    assert "not a GPX file" in errors["broken.gpx"] and errors["ok.gpx"] is None
    assert len(res.imported) == 1 and len(stored(svc, who)) == 20


@pytest.mark.parametrize("case", ["backwards", "jump", "outside"])
def test_each_bad_track_is_rejected_with_its_reason_and_the_rest_imported(svc, zone_index, case):
    good, bad = person(), person()
    t, x, y = walk(zone_index)
    bt, bx, by = list(t), list(x), list(y)
    if case == "backwards":
        bt[10], bt[11] = bt[11], bt[10]
        expect = "times go backwards at fix 12"  # 1-based: the 12th comes before the 11th
    elif case == "jump":
        bx[10:] = [v + 0.02 for v in bx[10:]]  # 2 km in 10 s
        expect = "km/h, faster than 150 km/h"
    else:
        bx = [v + 1.0 for v in bx]  # 100 km east
        expect = "20 of 20 fixes outside both towns"
    res = import_patrols(svc.db, svc.index, [(f"{case}.gpx", gpx([(good, t, x, y), (bad, bt, bx, by)]))], actor="test")
    assert [t.person_id for t in res.imported] == [good]
    [rej] = res.rejected
    assert rej.person_id == bad and expect in "; ".join(rej.reasons), rej.reasons
    assert len(stored(svc, good)) == 20 and stored(svc, bad).empty


def test_a_few_fixes_outside_both_towns_are_dropped_and_counted(svc, zone_index):
    who = person()
    t, x, y = walk(zone_index, n=30)
    t.append(t[-1] + timedelta(seconds=10))
    x.append(x[-1] + 0.0005)
    y.append(y[-1] + 1.0)  # one fix 100 km north, then back: 1 of 31 (< 10 %)
    t.append(t[-1] + timedelta(seconds=10))
    x.append(x[-2] + 0.0001)
    y.append(y[0])
    res = import_patrols(svc.db, svc.index, [("drift.csv", csv(zip([who] * 32, t, x, y)))], actor="test")
    [ok] = res.imported
    assert ok.dropped_outside == 1 and ok.n_points == 31 and len(stored(svc, who)) == 31


def test_nothing_valid_is_422_material_and_writes_nothing(svc, zone_index):
    who = person()
    t, x, y = walk(zone_index)
    with svc.db.sessions() as s:
        before = s.scalar(select(func.count()).select_from(Patrol))
    with pytest.raises(PatrolImportError) as ei:
        import_patrols(svc.db, svc.index, [("far.csv", csv(zip([who] * 20, t, [v + 1 for v in x], y)))], actor="test")
    assert "outside both towns" in str(ei.value) and ei.value.result.rejected
    with svc.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Patrol)) == before


def test_a_failure_while_writing_leaves_nothing_half_written(svc, zone_index, monkeypatch):
    who = person()
    t, x, y = walk(zone_index)
    from store import audit

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(audit, "record", boom)  # fails after patrols and fixes were written
    with pytest.raises(RuntimeError):
        import_patrols(svc.db, svc.index, [("x.csv", csv(zip([who] * 20, t, x, y)))], actor="test")
    assert stored(svc, who).empty and patrols_frame(svc.db, person_ids=[who]).empty


def test_the_same_file_twice_and_a_dry_run_write_nothing_new(svc, zone_index):
    who = person()
    t, x, y = walk(zone_index)
    data = csv(zip([who] * 20, t, x, y))
    dry = import_patrols(svc.db, svc.index, [("d.csv", data)], actor="test", dry_run=True)
    assert len(dry.imported) == 1 and dry.imported[0].patrol_id is None and stored(svc, who).empty
    first = import_patrols(svc.db, svc.index, [("d.csv", data)], actor="test")
    with svc.db.sessions() as s:
        entry = s.get(AuditEntry, first.audit_id)
    assert entry.action == "patrols.import" and entry.summary["points"] == 20
    with pytest.raises(PatrolImportError, match="imported before"):
        import_patrols(svc.db, svc.index, [("again.csv", data)], actor="test")
    assert len(stored(svc, who)) == 20


def test_json_points_import_and_need_a_crs(svc, zone_index):
    who = person()
    t, x, y = walk(zone_index)
    pts = [{"time": a.isoformat(), "lon": b, "lat": c} for a, b, c in zip(t, x, y)]
    from gis.tracks import TrackFileError

    with pytest.raises(TrackFileError, match="crs"):
        import_json(svc.db, svc.index, {"person_id": who, "points": pts}, actor="test")
    res = import_json(svc.db, svc.index, {"person_id": who, "crs": "wgs84", "points": pts}, actor="test")
    assert res.imported[0].n_points == 20 and len(stored(svc, who)) == 20


_BASE = None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_permutation_or_duplication_of_fixes_imports_the_same_patrols(svc, zone_index, data):
    global _BASE
    if _BASE is None:
        t1, x1, y1 = walk(zone_index, n=12)
        t2, x2, y2 = walk(zone_index, n=8, start=t1[-1] + timedelta(hours=1), zone="QS-06")
        _BASE = [("P-1", *r) for r in zip(t1 + t2, x1 + x2, y1 + y2)] + [("P-2", *r) for r in zip(t1, x2 + x1, y1)][:6]
    rows = data.draw(st.permutations(_BASE))
    extra = data.draw(st.lists(st.sampled_from(_BASE), max_size=10))
    rows = data.draw(st.permutations(rows + extra))

    def summary(rs):
        res = import_patrols(svc.db, svc.index, [("p.csv", csv(rs))], actor="test", dry_run=True)
        return sorted((t.person_id, t.started_at, t.ended_at, t.n_points, round(t.length_m, 6), tuple(t.reasons))
                      for t in res.tracks)
    assert summary(rows) == summary(_BASE)


def test_bad_csv_rows_reject_that_persons_fixes_only(svc, zone_index):
    good, bad = person(), person()
    t, x, y = walk(zone_index)
    data = csv(zip([good] * 20, t, x, y)) + f"{bad},yesterday-ish,114.0,23.0,wgs84\n".encode()
    res = import_patrols(svc.db, svc.index, [("rows.csv", data)], actor="test")
    assert [t.person_id for t in res.imported] == [good]
    assert "not ISO 8601" in res.rejected[0].reasons[0]


def test_reference_data_loads_and_a_bad_file_changes_nothing(svc, tmp_path):
    summary = load_shipped(svc.db, svc.index)
    assert summary["teams"] == 2 and summary["people"] == 48 and summary["shops"] == 24
    repo = PatrolRepository.for_db(svc.db)
    assert set(repo.teams_frame().kind) == {"inspectors", "womens_team"}
    shops = repo.shops_frame()
    assert shops.zone_id.str.startswith("QS-").all() and shops.crs.to_epsg() == 4326
    np.testing.assert_allclose(shops.lon, shops.geometry.x)
    bad = tmp_path / "people.csv"
    bad.write_text("person_id,name,team_id,zone_id\nX-1,x,NO-SUCH-TEAM,QS-01\n", encoding="utf-8")
    with pytest.raises(PatrolReferenceError, match="unknown team"):
        import_reference(svc.db, svc.index, actor="test", people=bad)
    assert len(repo.people_frame()) == 48
    # a team's tracks get the person's team from the people table
    t, x, y = walk(svc.index)
    import_patrols(svc.db, svc.index, [("team.csv", csv(zip(["QS-W03"] * 20, t, x, y)))], actor="test")
    assert set(points_frame(svc.db, team="QS-WET", person_ids=["QS-W03"]).team) == {"QS-WET"}


def test_points_frame_filters_cut_fixes_by_time_and_patrols_by_town(svc, zone_index):
    who = person()
    t, x, y = walk(zone_index, n=30, start=datetime(2026, 10, 5, 9, 0, tzinfo=LOCAL))
    import_patrols(svc.db, svc.index, [("f.csv", csv(zip([who] * 30, t, x, y)))], actor="test")
    part = points_frame(svc.db, t[5], t[15], person_ids=[who])
    assert list(part.t) == [pd.Timestamp(v).tz_convert("UTC") for v in t[5:15]]
    assert points_frame(svc.db, town="樟木头镇", person_ids=[who]).empty
    assert len(points_frame(svc.db, town="企石镇", person_ids=[who])) == 30
    empty = points_frame(svc.db, datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2000, 1, 2, tzinfo=timezone.utc))
    assert empty.empty and str(empty.t.dtype) == "datetime64[ns, UTC]"


def test_the_cli_imports_and_reports_per_track_as_json(svc, zone_index, store_url, tmp_path):
    good, bad = person(), person()
    t, x, y = walk(zone_index)
    (tmp_path / "c.gpx").write_bytes(gpx([(good, t, x, y), (bad, t[::-1], x, y)]))
    env = {**os.environ, "ZONECHIEF_DATABASE_URL": store_url}
    cli = [str(Path(sys.executable).with_name("zonechief")), "patrols", "import", str(tmp_path / "c.gpx")]
    r = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["imported"] == 1 and out["tracks"][0]["person_id"] == good
    assert "backwards" in out["rejected_tracks"][0]["reasons"][0]
    assert len(stored(svc, good)) == 20
    r = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1 and "imported before" in r.stderr


def test_synthetic_tracks_are_plausible_and_in_the_contract_layout(zone_index):
    f = synthetic_tracks(zone_index, days=2, people=40, fix_s=10, seed=3, start=date(2026, 11, 2))
    assert f.attrs["synthetic"] is True
    assert list(f.columns) == ["patrol_id", "person_id", "team", "t", "lon", "lat"]
    assert str(f.t.dtype) == "datetime64[ns, UTC]" and f.patrol_id.is_monotonic_increasing
    assert f.person_id.nunique() == 40 and set(f.team) == {"QS-INSP", "QS-WET"}
    local = f.t.dt.tz_convert("Asia/Shanghai")
    assert local.dt.hour.between(8, 17).all() and set(local.dt.date) == {date(2026, 11, 2), date(2026, 11, 3)}
    assert f.patrol_id.nunique() == 40 * 2 * 2  # morning and afternoon, two days
    g = f.groupby("patrol_id")
    dt = g.t.diff().dt.total_seconds()
    dx = g.lon.diff() * 102_400
    dy = g.lat.diff() * 110_700
    kmh = (np.hypot(dx, dy) / dt * 3.6).dropna()
    assert kmh.quantile(0.99) < 40 and kmh.max() < 150
    ahead = g[["lon", "lat"]].shift(-30)  # 5 minutes later: still within 30 m while dwelling
    moved = np.hypot((ahead.lon - f.lon) * 102_400, (ahead.lat - f.lat) * 110_700).dropna()
    assert 0.15 < (moved < 30).mean() < 0.8
    unit, _ = zone_index.locate(f.lon.to_numpy(), f.lat.to_numpy())
    assert (unit < 0).mean() < 0.01


def test_demo_seed_adds_labelled_synthetic_tracks_and_replaces_them_when_rerun(svc):
    from zonechief.patrols_synthetic import seed_demo_patrols

    first = seed_demo_patrols(svc.db, svc.index, days=1, start=date(2026, 9, 1))
    assert first["patrols"] == 48 * 2 and first["rejected"] == 0 and 40_000 < first["points"] < 60_000  # 30 s fixes
    pf = patrols_frame(svc.db, datetime(2026, 9, 1, tzinfo=LOCAL), datetime(2026, 9, 2, tzinfo=LOCAL))
    assert pf.synthetic.all() and len(pf) == 96 and set(pf.team) == {"QS-INSP", "QS-WET"}
    again = seed_demo_patrols(svc.db, svc.index, days=1, start=date(2026, 9, 1))
    assert again["replaced_synthetic"] >= 96
    assert len(patrols_frame(svc.db, datetime(2026, 9, 1, tzinfo=LOCAL), datetime(2026, 9, 2, tzinfo=LOCAL))) == 96
    assert len(PatrolRepository.for_db(svc.db).shops_frame()) == 24


def test_points_come_back_sorted_whatever_order_they_were_stored_in(svc):
    import shapely

    now = datetime.now(timezone.utc)
    t = pd.Series(pd.date_range("2026-08-01 01:00", periods=10, freq="10s", tz="UTC"))
    rows = [{"person_id": "ORDER", "team_id": None, "town": "企石镇", "started_at": t.iloc[0].to_pydatetime(),
             "ended_at": t.iloc[-1].to_pydatetime(), "n_points": 10, "length_m": 1.0, "source": "t", "sha256": None,
             "synthetic": False, "imported_at": now, "imported_by": "t", "geom": shapely.LineString([(114, 23), (114.001, 23)])}
            for _ in range(2)]
    pts = pd.DataFrame({"track": np.repeat([1, 0], 10), "t": pd.concat([t, t]).iloc[::-1].to_numpy(),
                        "lon": np.arange(20.0), "lat": np.zeros(20)})  # second patrol first, times descending
    repo = PatrolRepository.for_db(svc.db)
    with svc.db.sessions.begin() as s:
        ids = repo.write(s, rows, pts)
    back = points_frame(svc.db, person_ids=["ORDER"])
    assert list(back.patrol_id) == [ids[0]] * 10 + [ids[1]] * 10
    assert back.t.is_monotonic_increasing is False and list(back.t.iloc[:10]) == list(t)
    assert list(back.lon.iloc[:10]) == list(np.arange(19.0, 9.0, -1))


def test_a_person_id_too_long_for_the_store_rejects_that_track_only(svc, zone_index):
    good = person()
    t, x, y = walk(zone_index)
    res = import_patrols(svc.db, svc.index, [("long.gpx", gpx([(good, t, x, y), ("X" * 40, t, x, y)]))], actor="test")
    assert [t.person_id for t in res.imported] == [good] and "longer than 32" in res.rejected[0].reasons[0]
