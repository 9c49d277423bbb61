"""Zones with the staff in force: the chief and patrol inspectors of each zone on a given day.

One join, used by the API (/v1/zones, the OGC zones collection) and the zones map.
"""
from __future__ import annotations

from gis.roster import Person, Roster


def staff_by_zone(roster: Roster | None, at=None) -> tuple[dict[str, Person], dict[str, list[Person]]]:
    """(chief per zone, inspectors per zone) in force at `at` (default today); empty without a roster."""
    if roster is None:
        return {}, {}
    return roster.chiefs_by_zone(at), roster.inspectors_by_zone(at)


def zones_with_staff(zones, roster: Roster | None, at=None):
    """A copy of `zones` with chief_id, chief_name and inspector_ids (';'-joined) of the staff in force."""
    chiefs, insp = staff_by_zone(roster, at)
    z = zones.copy()
    z["chief_id"] = [chiefs[k].person_id if k in chiefs else None for k in z.zone_id]
    z["chief_name"] = [chiefs[k].name if k in chiefs else None for k in z.zone_id]
    z["inspector_ids"] = [";".join(p.person_id for p in insp.get(k, [])) for k in z.zone_id]
    return z
