"""Two Services on one PostGIS store, as two worker processes have: an import through one is put in
force in the other by its reference listener (Services.reload_reference), which keeps what did not
change (the roster on a boundary import, the geometry on a roster import); both then show one
fingerprint, the same as the data read afresh from the store."""
from __future__ import annotations

import json
import time

import pytest

from gis.shipped import DATA_DIR
from tests.helpers import inner, pg_database
from zonechief.reference import fingerprint, import_reference, load_from_db
from zonechief.services import Services


@pytest.fixture(scope="module")
def workers():
    with pg_database() as url:
        a, b = Services(database_url=url), Services(database_url=url)
        assert a.db.dialect == b.db.dialect == "postgresql"  # migrated, reference data loaded
        b.listen_for_reference_changes()
        yield a, b
        b.stop_listening()
        a.db.engine.dispose()
        b.db.engine.dispose()


def import_through(a: Services, **files) -> int:
    """An import as the admin API does it: committed, then swapped in the importing process."""
    with a.reference_lock:
        out = import_reference(a.db, a.index, a.facilities, "test", **files)
        a.swap_reference(out.index, out.facilities, out.version)
    return out.version


def in_force(b: Services, version: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while b.reference_version != version:
        assert time.monotonic() < deadline, (b.reference_version, version)
        time.sleep(0.02)


def assert_same_everywhere(a: Services, b: Services) -> None:
    index, facilities, _ = load_from_db(b.db, in_force=None)
    assert a.reference_fingerprint == b.reference_fingerprint == fingerprint(index, facilities)


def test_roster_import_keeps_the_geometry(workers, tmp_path, zone_index):
    a, b = workers
    before = b.index
    roster = tmp_path / "roster.csv"
    roster.write_text((DATA_DIR / "roster.csv").read_text(encoding="utf-8").replace("片长 ZMT-01", "新片长 ZMT-01"),
                      encoding="utf-8")
    in_force(b, import_through(a, roster=roster))
    lon, lat = inner(zone_index, "ZMT-01")
    assert b.index.lookup(lon, lat).chief.name == "新片长 ZMT-01"
    assert before.lookup(lon, lat).chief.name == "片长 ZMT-01"  # the old index was not changed in place
    assert b.index is not before and b.index._tree is before._tree  # the geometry index was kept
    assert_same_everywhere(a, b)


def test_boundary_import_keeps_the_roster(workers, tmp_path, zone_index):
    a, b = workers
    before = b.index
    d = json.loads((DATA_DIR / "villages.geojson").read_text(encoding="utf-8"))
    for f in d["features"]:
        if f["properties"]["code"] == "441900112011":
            f["properties"]["zone_id"] = "ZMT-06"
    path = tmp_path / "villages.geojson"
    path.write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
    in_force(b, import_through(a, boundaries=path))
    p = zone_index.units.set_index("unit_id").geometry["441900112011"].buffer(-0.001).representative_point()
    assert (before.lookup(p.x, p.y).zone_id, b.index.lookup(p.x, p.y).zone_id) == ("ZMT-07", "ZMT-06")
    assert b.index.roster is before.roster and b.index._tree is not before._tree
    assert_same_everywhere(a, b)
    assert not b.reload_reference()  # in force already: nothing read again
