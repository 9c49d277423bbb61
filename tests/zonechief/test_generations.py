"""Boundary generations on both stores: every import is kept with its validity start, lookups answer as of
any instant, open reports follow their point into the new zone (history step and report.reassigned event),
closed ones stay, a scheduled generation takes effect when its time comes, and a valid_from in the past is
refused unless history may be rewritten."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gis.gazetteer import geocode_address
from gis.shipped import DATA_DIR
from store.models import AuditEntry, BoundaryGeneration, OutboxEvent, Report
from tests.helpers import inner, pg_database
from zonechief import generations
from zonechief.reference import ImportRejected, import_reference
from zonechief.reports import ReportIn
from zonechief.services import Services


def villages_file(tmp_path, name: str, moves: dict[str, str] | None = None, renames: dict[str, str] | None = None):
    """The shipped villages with some moved to other zones (code → zone_id) or renamed (code → name)."""
    fc = json.loads((DATA_DIR / "villages.geojson").read_text(encoding="utf-8"))
    for f in fc["features"]:
        p = f["properties"]
        p["zone_id"] = (moves or {}).get(p["code"], p["zone_id"])
        if p["code"] in (renames or {}):
            p["name"] = p["short_name"] = renames[p["code"]]
    path = tmp_path / name
    path.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    return path


def two_village_zone(index):
    """A zone of two villages, one of them (to move) and a neighbouring zone to move it to."""
    counts = index.units.zone_id.value_counts()
    zone = sorted(z for z, n in counts.items() if n >= 2 and z.startswith("ZMT"))[0]
    units = index.units[index.units.zone_id == zone]
    mover = units.iloc[0]
    others = index.units[(index.units.zone_id != zone) & index.units.geometry.touches(mover.geometry)]
    target = sorted(others.zone_id)[0]
    p = mover.geometry.buffer(-0.001).representative_point()
    return zone, str(mover.unit_id), target, (float(p.x), float(p.y))


@pytest.fixture(params=["sqlite", "postgis"])
def services(request, tmp_path):
    """A fresh store per test: generations accumulate."""
    if request.param == "sqlite":
        s = Services(database_url=f"sqlite:///{tmp_path / 'zc.sqlite'}")
        assert s.db is not None  # opened: the index in force names its generation
        yield s
        s.db.engine.dispose()
        return
    with pg_database() as url:
        s = Services(database_url=url)
        assert s.db is not None
        yield s
        s.db.engine.dispose()


def file_report(s: Services, lon: float, lat: float, created: datetime) -> Report:
    r, _ = s.reports.create(ReportIn.model_validate({"category": "06010", "description": "垃圾", "source": "gps",
                                                     "location": {"lon": lon, "lat": lat, "crs": "wgs84"},
                                                     "created_at": created.isoformat()}), actor="staff", now=created)
    return r


def resolve(s: Services, report_id: int, at: datetime) -> None:
    s.reports.transition(report_id, "in_progress", "staff", now=at)
    s.reports.transition(report_id, "resolved", "staff", now=at)


def do_import(s: Services, path, **kw):
    with s.reference_lock:
        out = import_reference(s.db, s.index, s.facilities, "planner", boundaries=path, **kw)
        if not out.dry_run:
            s.swap_reference(out.index, out.facilities, out.version)
    return out


def latest_now(s: Services) -> datetime:
    """Now (generations made by the test are valid from now on)."""
    return datetime.now(timezone.utc)


def test_a_store_starts_with_one_generation_and_reports_name_it(services):
    cat = services.generations
    assert cat.in_force is not None and cat.in_force.id == services.index.generation
    lon, lat = inner(services.index, "QS-01")
    r = file_report(services, lon, lat, datetime.now(timezone.utc))
    assert r.generation_id == services.index.generation


def test_open_reports_follow_their_zone_closed_ones_stay(services, tmp_path):
    s = services
    zone, code, target, (lon, lat) = two_village_zone(s.index)
    now = latest_now(s)
    old_gen = s.index.generation
    open_r = file_report(s, lon, lat, now - timedelta(hours=2))
    closed_r = file_report(s, lon, lat, now - timedelta(hours=2))
    resolve(s, closed_r.id, now - timedelta(hours=1))
    elsewhere_lon, elsewhere_lat = inner(s.index, "QS-05")
    other = file_report(s, elsewhere_lon, elsewhere_lat, now - timedelta(hours=2))
    assert open_r.zone_id == closed_r.zone_id == zone

    dry = do_import(s, villages_file(tmp_path, "moved.geojson", {code: target}), dry_run=True, now=now)
    assert dry.summary["boundaries"]["open_reports_changing_zone"] == 1
    assert dry.summary["boundaries"]["changing_zone"] == {f"{zone} → {target}": 1}
    assert s.reports.get(open_r.id).zone_id == zone  # a dry run changes nothing

    out = do_import(s, villages_file(tmp_path, "moved.geojson", {code: target}), now=now)
    gen = out.summary["boundaries"]["generation"]
    assert out.summary["boundaries"]["put_in_force"]["moved"] == 1
    assert s.index.generation == gen != old_gen
    moved, kept, untouched = s.reports.get(open_r.id), s.reports.get(closed_r.id), s.reports.get(other.id)
    chief = s.index.lookup(lon, lat, at=now).chief
    assert (moved.zone_id, moved.chief_id, moved.generation_id) == (target, chief.person_id, gen)
    assert moved.history[-1].actor == generations.ACTOR
    assert f"{zone} → {target}" in moved.history[-1].note and f"generation {old_gen} → {gen}" in moved.history[-1].note
    assert (kept.zone_id, kept.generation_id, kept.status) == (zone, old_gen, "resolved")
    assert (untouched.zone_id, untouched.generation_id) == (other.zone_id, old_gen)
    with s.db.sessions() as ses:
        evs = ses.scalars(select(OutboxEvent).where(OutboxEvent.type == "report.reassigned")).all()
    assert [e.report_id for e in evs] == [open_r.id]
    change = evs[0].payload["change"]
    assert change["from"] == {"zone_id": zone, "chief_id": open_r.chief_id, "generation": old_gen}
    assert change["to"] == {"zone_id": target, "chief_id": chief.person_id, "generation": gen}
    assert evs[0].chief_id == chief.person_id

    # As of before the import, the old generation answers; after it, the new one.
    assert s.index_at(now - timedelta(minutes=1)).lookup(lon, lat).zone_id == zone
    assert s.index_at(now + timedelta(minutes=1)).lookup(lon, lat).zone_id == target
    assert s.index_at(None).lookup(lon, lat).zone_id == target


def test_a_scheduled_generation_takes_effect_at_its_time(services, tmp_path):
    s = services
    zone, code, target, (lon, lat) = two_village_zone(s.index)
    now = latest_now(s)
    r = file_report(s, lon, lat, now - timedelta(hours=1))
    later = now + timedelta(days=7)
    out = do_import(s, villages_file(tmp_path, "later.geojson", {code: target}), valid_from=later, now=now)
    b = out.summary["boundaries"]
    assert b["takes_effect"] == "scheduled" and "put_in_force" not in b
    gen = b["generation"]
    assert s.index.generation != gen and s.index.lookup(lon, lat).zone_id == zone
    assert s.index_at(later + timedelta(seconds=1)).lookup(lon, lat).zone_id == target  # as of then: the new one
    assert s.index_at(later - timedelta(seconds=1)).lookup(lon, lat).zone_id == zone
    assert not s.activate_due_generations(now=later - timedelta(seconds=1))  # not yet
    assert s.reports.get(r.id).zone_id == zone
    assert s.activate_due_generations(now=later + timedelta(seconds=1))
    assert s.index.generation == gen and s.index.lookup(lon, lat).zone_id == target
    got = s.reports.get(r.id)
    assert (got.zone_id, got.generation_id) == (target, gen)
    assert not s.activate_due_generations(now=later + timedelta(seconds=2))  # once
    with s.db.sessions() as ses:
        assert ses.scalars(select(AuditEntry.action).order_by(AuditEntry.id.desc())).first() == "boundaries.activate"


def test_a_valid_from_in_the_past_is_refused_unless_history_may_be_rewritten(services, tmp_path):
    s = services
    zone, code, target, (lon, lat) = two_village_zone(s.index)
    now = latest_now(s)
    closed = file_report(s, lon, lat, now - timedelta(days=3))
    resolve(s, closed.id, now - timedelta(days=2))
    path = villages_file(tmp_path, "past.geojson", {code: target})
    before = len(s.generations.items)
    with pytest.raises(ImportRejected, match="rewrite history"):
        do_import(s, path, valid_from=now - timedelta(days=5), now=now)
    s.swap_reference()  # read the catalog again
    assert len(s.generations.items) == before  # nothing written
    out = do_import(s, path, valid_from=now - timedelta(days=5), rewrite_history=True, now=now)
    b = out.summary["boundaries"]
    assert b["rewrite_history"]["reports_in_window"] == 1 and b["put_in_force"]["closed_rewritten"] == 1
    got = s.reports.get(closed.id)
    assert (got.zone_id, got.chief_id, got.status) == (target, closed.chief_id, "resolved")  # who handled it stays
    with s.db.sessions() as ses:
        g = ses.get(BoundaryGeneration, b["generation"])
        assert g.rewrite_history and g.valid_from == now - timedelta(days=5)
        audit_summary = ses.scalars(select(AuditEntry.summary).where(AuditEntry.action == "boundaries.import")
                                    .order_by(AuditEntry.id.desc())).first()
    assert audit_summary["rewrite_history"]["reports_in_window"] == 1


def test_a_scheduled_generation_refuses_facilities_alongside(services, tmp_path):
    s = services
    now = latest_now(s)
    with pytest.raises(ImportRejected, match="facilities"):
        with s.reference_lock:
            import_reference(s.db, s.index, s.facilities, "planner", boundaries=villages_file(tmp_path, "v.geojson"),
                             facilities_file=DATA_DIR / "facilities.geojson", valid_from=now + timedelta(days=1), now=now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_as_of_lookups_agree_with_brute_force_over_generations(services, tmp_path_factory, data):
    """For any instant, index_at answers as the generation with the latest valid_from at or before it."""
    s = services
    if not hasattr(s, "_gens_made"):
        zone, code, target, _ = two_village_zone(s.index)
        now = latest_now(s)
        tmp = tmp_path_factory.mktemp("gens")
        starts = [now + timedelta(days=d) for d in (1, 2, 4)]
        for k, t in enumerate(starts):
            moves = {code: target} if k % 2 == 0 else {}
            do_import(s, villages_file(tmp, f"g{k}.geojson", moves, {code: f"第{k}代村"}), valid_from=t, now=now)
        s._gens_made = (now, starts)
    now, starts = s._gens_made
    t = now + timedelta(seconds=data.draw(st.integers(-86400, 6 * 86400)))
    cat = s.generations
    expected = max((g for g in cat.items if g.valid_from <= t), key=lambda g: (g.valid_from, g.id))
    idx = s.index_at(t)
    assert idx.generation == expected.id or (expected.id == s.index.generation and idx is s.index)
    names = set(idx.units.village_name)
    k = sum(1 for st_ in starts if st_ <= t) - 1
    assert (f"第{k}代村" in names) if k >= 0 else not any(n.startswith("第") for n in names)


def test_names_follow_the_generation_in_force(services, tmp_path):
    """A renamed village is found by its new name; its old name needs review, with the village now covering it."""
    s = services
    v = s.index.units[s.index.units.town == "企石镇"].iloc[3]
    old_short, code = str(v.village_short_name), str(v.unit_id)
    assert geocode_address(f"企石镇{old_short}路口", s.gazetteer).zone_id == v.zone_id
    do_import(s, villages_file(tmp_path, "renamed.geojson", renames={code: "新兴村"}), now=latest_now(s))
    got = geocode_address("企石镇新兴村路口有垃圾", s.gazetteer)
    assert not got.needs_review and got.candidates[0].village_code == code and got.zone_id == v.zone_id
    stale = geocode_address(f"企石镇{old_short}路口", s.gazetteer)
    assert stale.needs_review and stale.zone_id is None
    assert "no longer exists" in stale.note
    assert stale.candidates[0].village_code == code and stale.candidates[0].name == "新兴村"
    # Filing by that address: kept for review, not sent to a stale zone.
    r, _ = s.reports.create(ReportIn.model_validate({"category": "06010", "description": "垃圾", "source": "address",
                                                     "location": {"address": f"企石镇{old_short}路口"}}), actor="public")
    assert r.needs_review and r.zone_id is None
