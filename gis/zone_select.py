"""Which zones a filter names: a town (name or code) and/or zone ids, each checked against the index."""
from __future__ import annotations


def select_zones(index, town: str | None = None, zone_ids=None, error: type[Exception] = ValueError):
    """The zones of `index` in a town (name or code) and/or with the given ids; `error` (the caller's 422) if none match."""
    z = index.zones
    if town:
        z = z[(z.town == town) | (z.town_code == town)]
        if z.empty:
            towns = ", ".join(sorted(set(index.zones.town.dropna())))
            raise error(f"no town {town!r}; towns are {towns} (or their codes)")
    if zone_ids:
        unknown = sorted(set(zone_ids) - set(index.zones.zone_id))
        if unknown:
            raise error(f"no zone {', '.join(unknown)}; zones are e.g. {', '.join(index.zones.zone_id[:3])}")
        z = z[z.zone_id.isin(list(zone_ids))]
        if z.empty:
            raise error("the zones given are not in that town")
    return z
