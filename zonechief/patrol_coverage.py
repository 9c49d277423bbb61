"""Patrol coverage from the store: the reports the maps would show as demand, the stored patrols as supply.

The numbers are gis.patrol_coverage's; this module picks the inputs. Demand: reports with a point
in [since, until), optionally of some categories and in a town or zones (the maps' filter,
store.map_aggregates.report_conditions). Supply: store.patrols_repo.points_frame's fixes in
[since, until) of the town's patrols (a zone filter keeps the town's patrols: people cross zone
lines), optionally of one team. The lattice and the hot spots cover only the zones asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gis.errors import ZonechiefError
from gis.zone_select import select_zones as gis_select_zones
from store.map_aggregates import report_conditions

if TYPE_CHECKING:  # gis.patrol_coverage loads numba: only when coverage is asked for, not at the app's start
    from gis.patrol_coverage import Coverage, CoverageParams

__all__ = ["CoverageInputError", "CoverageRequest", "patrol_coverage", "json_records", "DEFAULT_DAYS"]
DEFAULT_DAYS = 7  # an open period: the week before until (or now)
MAX_DAYS = 400


class CoverageInputError(ZonechiefError, ValueError):
    """A coverage request that selects nothing that exists, or parameters out of range (422)."""


@dataclass(frozen=True)
class CoverageRequest:
    """What to compute coverage for; times are aware datetimes, [since, until)."""

    since: datetime | None = None
    until: datetime | None = None
    town: str | None = None
    zone_ids: tuple[str, ...] = ()
    team: str | None = None
    categories: tuple[str, ...] = ()
    person_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None, **kw) -> "CoverageRequest":
        """A request with open times closed: until defaults to now, since to DEFAULT_DAYS before until."""
        until = until or datetime.now(timezone.utc)
        try:
            return cls(since=since or until - timedelta(days=DEFAULT_DAYS), until=until, **kw)
        except OverflowError:
            raise CoverageInputError("until must be between 1970 and 2200") from None


def select_zones(index, town: str | None, zone_ids) -> pd.DataFrame:
    """The zones of a town (name or code) and/or with the given ids; CoverageInputError if none match."""
    return gis_select_zones(index, town, zone_ids, CoverageInputError)


def patrol_coverage(db, index, req: CoverageRequest, params: CoverageParams | None = None) -> Coverage:
    """Coverage (gis.patrol_coverage.Coverage) of the filtered reports by the stored patrols."""
    from gis import hotspots
    from gis.patrol_coverage import CoverageParams, coverage
    from store.patrols_repo import points_frame

    for name, t in (("since", req.since), ("until", req.until)):
        if t is not None and not (t.tzinfo is not None and 1970 <= t.year <= 2200):
            raise CoverageInputError(f"{name} must be an aware time between 1970 and 2200")
    if req.since and req.until and req.since >= req.until:
        raise CoverageInputError("since must be before until")
    if req.since and req.until and req.until - req.since > timedelta(days=MAX_DAYS):
        raise CoverageInputError(f"the period is at most {MAX_DAYS} days (2-hour windows are listed one by one)")
    try:
        params = params or CoverageParams()
    except ValueError as e:
        raise CoverageInputError(str(e)) from None
    zones = select_zones(index, req.town, req.zone_ids)
    scoped = bool(req.town or req.zone_ids)
    conds = report_conditions(req.since, req.until, req.categories, (), list(zones.zone_id) if scoped else None)
    lon, lat, _ = db.map_aggregates.points(conds, False)
    towns = sorted(set(zones.town.dropna())) if scoped else [None]
    parts = [points_frame(db, req.since, req.until, town=t, team=req.team or None,
                          person_ids=list(req.person_ids) or None) for t in towns]
    points = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    cells = hotspots.grid(zones, params.cell_m)
    try:
        cov = coverage(points, lon, lat, index, since=req.since, until=req.until, params=params, cells=cells)
    except ValueError as e:
        raise CoverageInputError(str(e)) from None
    if scoped:
        cov.zones = cov.zones[cov.zones.zone_id.isin(set(zones.zone_id))].reset_index(drop=True)
    return cov


def _plain(v):
    """A JSON-safe scalar: NaN and NaT as None, numpy numbers as Python ones, times as ISO 8601."""
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else round(float(v), 4)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and v != v:
        return None
    return v


def json_records(df: pd.DataFrame) -> list[dict]:
    """Rows of a table as JSON-safe dicts (geometry left out)."""
    cols = [c for c in df.columns if c != "geometry"]
    return [{c: _plain(v) for c, v in zip(cols, row)} for row in df[cols].itertuples(index=False, name=None)]
