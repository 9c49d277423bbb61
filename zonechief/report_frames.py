"""Report frames for gis.analysis and gis.hotspots, read from the store or built from demo data.

Here the workflow's vocabulary becomes the frame's columns (see gis.analysis):

- ``open``: the current status is an open one (new, assigned, in_progress);
- ``assigned_at``: the first ``assigned`` event;
- ``resolved_at``: the last ``resolved`` event, only for reports that are
  resolved or closed now (a reopened report is not resolved until it is
  resolved again);
- ``satisfaction``, ``rating``, ``rated_at``: the citizen's answer in force, as
  stored (a ``not_fixed`` answer stays on the report it reopened).
"""
from __future__ import annotations

from datetime import datetime
from typing import cast

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import and_, func, select, true

from gis.analysis import build_frame, empty_frame
from gis.lookup import IN_ZONE
from store.models import Report, ReportEvent
from zonechief.intake import chief_ids
from zonechief.workflow import OPEN_STATUSES

RESOLVED_STATUSES = ("resolved", "closed")  # the statuses that give a report a response time

__all__ = ["reports_frame", "frame_from_demo", "RESOLVED_STATUSES"]


def reports_frame(source, since: datetime | None = None, until: datetime | None = None) -> gpd.GeoDataFrame:
    """Reports from the store (a ``Database`` or a ``Reports`` service) created in [since, until).

    One row per report, ordered by id; columns as gis.analysis.COLUMNS.
    """
    db = getattr(source, "db", source)
    r, e = Report.__table__, ReportEvent.__table__
    conds = []
    if since is not None:
        conds.append(r.c.created_at >= since)
    if until is not None:
        conds.append(r.c.created_at < until)
    where = and_(*conds) if conds else true()
    q = select(r.c.id, r.c.created_at, r.c.category, r.c.status, r.c.zone_id, r.c.chief_id, r.c.geom,
               r.c.satisfaction, r.c.rating, r.c.rated_at).where(where)
    ev = (select(e.c.report_id, e.c.status, func.min(e.c.at).label("first"), func.max(e.c.at).label("last"))
          .where(e.c.status.in_(("assigned", "resolved")), e.c.report_id.in_(select(r.c.id).where(where)))
          .group_by(e.c.report_id, e.c.status))
    with db.engine.connect() as conn:
        rows = conn.execute(q.order_by(r.c.id)).all()
        events = conn.execute(ev).all()
    assigned = {rid: first for rid, st, first, _ in events if st == "assigned"}
    resolved = {rid: last for rid, st, _, last in events if st == "resolved"}
    ids = [row.id for row in rows]
    status = [row.status for row in rows]
    return build_frame(ids, [row.created_at for row in rows], [row.category for row in rows],
                       status, [s in OPEN_STATUSES for s in status],
                       [row.zone_id for row in rows], [row.chief_id for row in rows],
                       [assigned.get(i) for i in ids],
                       [resolved.get(row.id) if row.status in RESOLVED_STATUSES else None for row in rows],
                       [row.geom for row in rows], satisfaction=[row.satisfaction for row in rows],
                       rating=[row.rating for row in rows], rated_at=[row.rated_at for row in rows])


def frame_from_demo(reports: list[dict], index) -> gpd.GeoDataFrame:
    """A report frame from ``zonechief.demo.generate_reports`` output, without a database.

    Points are the generator's true positions (``true_lon``, ``true_lat``),
    zones come from ``index`` and the chief is the one in force on the local
    day of creation, as the store would assign; ids are 1..n in input order.
    The citizen's answer comes from ``feedback`` (none where absent, or where
    the report has no zone: the store keeps no answer there either).
    """
    if not reports:
        return empty_frame()
    lon = np.array([d["true_lon"] for d in reports], dtype="f8")
    lat = np.array([d["true_lat"] for d in reports], dtype="f8")
    a = index.assign(lon, lat)
    # numpy's stubs refuse None as where()'s y (here an object scalar), so they pick the one-argument overload.
    zone = cast(np.ndarray, np.where(a["status"].isin(IN_ZONE), a["zone_id"], None)).astype(object)
    created = [d["created_at"] for d in reports]
    chief = chief_ids(index.roster, zone, created)
    status, assigned, resolved = [], [], []
    for d in reports:
        h = d["history"]
        st = h[-1]["status"]
        status.append(st)
        assigned.append(next((x["at"] for x in h if x["status"] == "assigned"), None))
        res = [x["at"] for x in h if x["status"] == "resolved"]
        resolved.append(res[-1] if res and st in RESOLVED_STATUSES else None)
    fb = [d.get("feedback") if z is not None else None for d, z in zip(reports, zone)]
    return build_frame(np.arange(1, len(reports) + 1), created, [d["category"] for d in reports], status,
                       [s in OPEN_STATUSES for s in status], zone, chief, assigned, resolved,
                       shapely.points(lon, lat), satisfaction=[f and f["satisfaction"] for f in fb],
                       rating=[f and f["rating"] for f in fb], rated_at=[f and f["at"] for f in fb])
