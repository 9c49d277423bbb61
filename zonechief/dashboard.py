"""The planner's dashboard tables, with the maps' filters (maps.aggregate.ReportFilter), computed in the store.

Four tables, each an aggregate the database computes where it can (PostGIS: GROUP BY,
percentile_cont; SQLite: the same GROUP BYs, and the medians in numpy from the values
read back, which is slower but gives the same numbers):

- ``weekly``: reports per local (Asia/Shanghai) calendar week, Monday start, and category;
- ``chiefs``: per chief, reports, open (backlog), resolved, and the time to fix in hours:
  median with a bootstrap 95 % interval (below);
- ``satisfaction``: per zone, the citizen's answers as gis.satisfaction.satisfaction counts them;
- ``workload``: reports per chief, the chiefs in force over the filtered zones included
  (a chief with no report is the most under-loaded), with the Lorenz curve's shares; the Gini
  coefficient is ``DashboardTables.gini``.

Time to fix follows zonechief.report_frames: reports resolved or closed now, from creation to
their last ``resolved`` event. Its interval reuses gis.satisfaction.bootstrap_medians on the
ranks 0 … n-1 (the draws depend on n and the group only, seeded as gis.satisfaction.time_to_fix
seeds them): the percentile interval of the bootstrap median's rank, read off the sorted hours
by linear interpolation, which is what percentile_cont does on PostGIS. So a million reports
cost a sort per chief in the database and no values leave it. For an odd n the interval is the
one time_to_fix gives up to that interpolation; tests/api/test_dashboard.py checks both.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Float, Integer, String, and_, case, cast, column, func, literal, select, values

from gis.gini import gini, lorenz
from gis.localtime import LOCAL_OFFSET_S
from gis.satisfaction import MIN_N, bootstrap_medians
from gis.satisfaction import _seed_for as seed_for  # one stream per group, as time_to_fix draws
from store.deadline import Deadlines
from store.map_aggregates import FIRST_MONDAY_S
from store.models import OutboxEvent, Report, ReportEvent
from zonechief.report_frames import RESOLVED_STATUSES
from zonechief.workflow import OPEN_STATUSES

TABLES = ("weekly", "chiefs", "satisfaction", "workload")
N_BOOT = 2000
CI = 0.95
WEEK_S = 7 * 86400
ANALYTICS_S = 30.0  # statement deadline of the dashboard's queries on PostGIS (requests get 4 s)
WORK_MEM = "64MB"  # per sort: the per-chief medians sort in memory instead of spilling to disk

__all__ = ["TABLES", "DashboardTables", "dashboard_tables", "cached", "cached_tables", "data_version", "median_rank_interval"]


@dataclass
class DashboardTables:
    """The dashboard's tables (see the module docstring) and the Gini coefficient of the workload."""

    weekly: pd.DataFrame
    chiefs: pd.DataFrame
    satisfaction: pd.DataFrame
    workload: pd.DataFrame
    gini: float

    def table(self, name: str) -> pd.DataFrame:
        """One table by name (one of TABLES)."""
        if name not in TABLES:
            raise KeyError(name)
        return getattr(self, name)


def median_rank_interval(n: int, group, seed: int = 0, n_boot: int = N_BOOT, ci: float = CI) -> tuple[float, float]:
    """The bootstrap percentile interval of the median's rank (0-based, fractional) among n sorted values.

    NaNs under gis.satisfaction.MIN_N values (too few to resample), as time_to_fix.
    """
    if n < MIN_N:
        return float("nan"), float("nan")
    meds = bootstrap_medians(np.arange(n, dtype="f8"), n_boot, seed_for(seed, group))
    lo, hi = np.percentile(meds, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def _fractions(n: int, group, seed: int) -> tuple[float, float]:
    """median_rank_interval as percentile_cont fractions (position / (n - 1))."""
    lo, hi = median_rank_interval(n, group, seed)
    return (lo / (n - 1), hi / (n - 1)) if n > 1 and np.isfinite(lo) else (float("nan"), float("nan"))


# ------------------------------------------------------------------ SQL pieces
def _epoch(pg: bool, col):
    """Unix seconds of a stored time (PostgreSQL: timestamptz; SQLite: naive UTC text)."""
    return func.date_part("epoch", col) if pg else cast(func.strftime("%s", col), Integer)


def _week(pg: bool, col):
    """Local calendar week number, as maps.aggregate.period_of numbers them."""
    shifted = _epoch(pg, col) + LOCAL_OFFSET_S - FIRST_MONDAY_S
    # SQLite's integer division truncates: the same as floor for times after 1970-01-05.
    return cast(func.floor(shifted / WEEK_S), Integer) if pg else shifted // WEEK_S


def _flag(cond):
    return func.sum(case((cond, 1), else_=0))


def _week_label(p: int) -> str:
    return (datetime(1970, 1, 5) + timedelta(weeks=int(p))).strftime("%Y-%m-%d")


# ------------------------------------------------------------------ the tables
def _weekly(conn, pg, conds, category_names) -> pd.DataFrame:
    t = Report.__table__.c
    wk = _week(pg, t.created_at).label("week")
    rows = conn.execute(select(wk, t.category, func.count()).where(and_(*conds))
                        .group_by(wk, t.category).order_by(wk, t.category)).all()
    df = pd.DataFrame(rows, columns=["week_no", "category", "reports"])
    df["week"] = [_week_label(p) for p in df["week_no"]]
    df["category_name"] = [category_names.get(c, "") for c in df["category"]]
    df["reports"] = df["reports"].astype("int64")
    return df[["week", "category", "category_name", "reports"]]


def _chief_counts(conn, conds) -> pd.DataFrame:
    t = Report.__table__.c
    rows = conn.execute(select(t.chief_id, func.count(), _flag(t.status.in_(OPEN_STATUSES)),
                               _flag(t.status.in_(RESOLVED_STATUSES)))
                        .where(and_(*conds), t.chief_id.isnot(None)).group_by(t.chief_id)).all()
    df = pd.DataFrame(rows, columns=["chief_id", "reports", "open", "resolved"])
    return df.astype({"reports": "int64", "open": "int64", "resolved": "int64"}).set_index("chief_id")


def _hours_query(pg, conds, *cols):
    """SELECT cols FROM the matching resolved reports joined to their last `resolved` event."""
    t, e = Report.__table__.c, ReportEvent.__table__.c
    ev = (select(e.report_id, func.max(e.at).label("resolved_at")).where(e.status == "resolved")
          .group_by(e.report_id).subquery())
    hours = (_epoch(pg, ev.c.resolved_at) - _epoch(pg, t.created_at)) / 3600.0
    return (select(*[c(hours) if callable(c) else c for c in cols])
            .select_from(Report.__table__.join(ev, ev.c.report_id == t.id))
            .where(and_(*conds), t.chief_id.isnot(None), t.status.in_(RESOLVED_STATUSES)))


def _time_to_fix_pg(conn, conds, n_by_chief: dict, seed: int) -> dict:
    """chief -> (n, median, low, high) with percentile_cont at the interval's fractions, given n per chief."""
    t = Report.__table__.c
    out: dict = {}
    expected = dict(n_by_chief)
    for _ in range(2):  # the second pass only if a resolved report lacks its event (n differs)
        fr = {c: _fractions(n, c, seed) for c, n in expected.items() if n > 0}
        if not fr:
            return out
        q = values(column("cid", String), column("lo", Float), column("hi", Float), name="q").data(
            [(c, 0.5 if np.isnan(a) else a, 0.5 if np.isnan(b) else b) for c, (a, b) in fr.items()])
        stmt = _hours_query(True, conds, t.chief_id, lambda h: func.count(),
                            lambda h: func.percentile_cont(literal(0.5)).within_group(h),
                            lambda h, q=q: func.percentile_cont(q.c.lo).within_group(h),
                            lambda h, q=q: func.percentile_cont(q.c.hi).within_group(h))
        stmt = stmt.join(q, q.c.cid == t.chief_id).group_by(t.chief_id, q.c.lo, q.c.hi)
        redo = {}
        for cid, n, med, lo, hi in conn.execute(stmt).all():
            if n != expected.get(cid):
                redo[cid] = n
                continue
            a, b = fr[cid]
            out[cid] = (n, med, np.nan if np.isnan(a) else lo, np.nan if np.isnan(b) else hi)
        if not redo:
            return out
        expected = redo
    return out


def _time_to_fix_sqlite(conn, conds, seed: int) -> dict:
    t = Report.__table__.c
    rows = conn.execute(_hours_query(False, conds, t.chief_id, lambda h: h)).all()
    out: dict = {}
    if not rows:
        return out
    cid = np.asarray([r[0] for r in rows], dtype=object)
    hours = np.asarray([r[1] for r in rows], dtype="f8")
    for c, pos in pd.Series(cid).groupby(cid).indices.items():
        x = np.sort(hours[pos])
        a, b = _fractions(len(x), c, seed)
        med = float(np.quantile(x, 0.5))
        lo, hi = (np.nan, np.nan) if np.isnan(a) else (float(np.quantile(x, a)), float(np.quantile(x, b)))
        out[c] = (len(x), med, lo, hi)
    return out


def _satisfaction(conn, pg, conds) -> pd.DataFrame:
    t = Report.__table__.c
    answered = t.satisfaction.isnot(None)
    cols = [t.zone_id, _flag(t.status.in_(RESOLVED_STATUSES) | answered), _flag(answered),
            _flag(t.satisfaction == "fixed"), _flag(t.satisfaction == "partly_fixed"),
            _flag(t.satisfaction == "not_fixed"), func.count(t.rating)]
    if pg:
        cols.append(func.percentile_cont(literal(0.5)).within_group(t.rating))
    rows = conn.execute(select(*cols).where(and_(*conds), t.zone_id.isnot(None)).group_by(t.zone_id)
                        .order_by(t.zone_id)).all()
    names = ["zone_id", "eligible", "answered", "fixed", "partly", "not_fixed", "rated"]
    df = pd.DataFrame([r[:7] for r in rows], columns=names).set_index("zone_id")
    if pg:
        df["median_rating"] = pd.Series([r[7] for r in rows], index=df.index, dtype="f8")
    else:
        ratings = conn.execute(select(t.zone_id, t.rating).where(and_(*conds), t.zone_id.isnot(None),
                                                                  t.rating.isnot(None))).all()
        med = pd.DataFrame(ratings, columns=["zone_id", "rating"]).astype({"rating": "f8"}).groupby("zone_id")["rating"]
        df["median_rating"] = med.median().reindex(df.index)
    return _rates(df)


_EMPTY_WEEKLY = pd.DataFrame({"week": pd.Series(dtype=object), "category": pd.Series(dtype=object),
                              "category_name": pd.Series(dtype=object), "reports": pd.Series(dtype="int64")})


def _empty_satisfaction() -> pd.DataFrame:
    cols = ["eligible", "answered", "answer_rate", "fixed_rate", "partly_rate", "not_fixed_rate", "rated",
            "median_rating"]
    return pd.DataFrame({c: pd.Series(dtype="f8") for c in cols}, index=pd.Index([], name="zone_id", dtype=object))


def _rates(df: pd.DataFrame) -> pd.DataFrame:
    """Counts per zone (eligible, answered, fixed, partly, not_fixed, rated, median_rating) as satisfaction's table."""
    df = df.astype({c: "int64" for c in ("eligible", "answered", "fixed", "partly", "not_fixed", "rated")})
    n = df["answered"].where(df["answered"] > 0)
    return pd.DataFrame({"eligible": df["eligible"], "answered": df["answered"],
                         "answer_rate": df["answered"] / df["eligible"].where(df["eligible"] > 0),
                         "fixed_rate": df["fixed"] / n, "partly_rate": df["partly"] / n,
                         "not_fixed_rate": df["not_fixed"] / n, "rated": df["rated"],
                         "median_rating": df["median_rating"].astype("f8")})


def _chiefs_in_scope(index, zone_ids: list[str] | None) -> pd.DataFrame:
    """The chiefs in force now over the zones in scope (all zones when None): chief_id -> name."""
    people = index.roster.people("chief")
    if zone_ids is not None:
        scope = set(zone_ids)
        people = people[[bool(scope & set(z.split(";"))) for z in people["zone_ids"]]]
    return people.set_index("person_id")[["name"]].rename_axis("chief_id")


def _connected(db, pg: bool, fn, *args):
    """fn(conn, *args) on its own connection; on PostGIS with the analytics deadline and sort memory."""
    with db.engine.connect() as conn:
        if pg:  # a million reports take longer than a request's 4 s statement timeout on a busy machine
            Deadlines.of(db.engine).extend(conn, ANALYTICS_S)
            conn.exec_driver_sql(f"SELECT set_config('work_mem', '{WORK_MEM}', true)")
        return fn(conn, *args)


def _chiefs_and_times(conn, pg, conds, seed, with_times):
    counts = _chief_counts(conn, conds)
    if not with_times:
        return counts, {}
    return counts, (_time_to_fix_pg(conn, conds, counts["resolved"].to_dict(), seed) if pg
                    else _time_to_fix_sqlite(conn, conds, seed))


def dashboard_tables(db, index, flt, category_names: dict | None = None, seed: int = 0,
                     time_to_fix: bool = True, tables=TABLES) -> DashboardTables:
    """The four tables for the reports `flt` (a maps.aggregate.ReportFilter) selects, from the store `db`.

    The queries run side by side, each on its own connection. `time_to_fix=False` skips the
    slowest (it joins the events): the chiefs table then has NaN times and n_fixed 0. Tables
    not in `tables` come back empty (chiefs and workload share one query and always come).
    """
    pg = db.dialect == "postgresql"
    conds = flt.conditions(index)
    names = _chiefs_in_scope(index, None)["name"].to_dict()
    with ThreadPoolExecutor(max_workers=3) as pool:
        # Three scans side by side beat one GROUPING SETS scan here: its per-group percentile forces sorts.
        chiefs_f = pool.submit(_connected, db, pg, _chiefs_and_times, pg, conds, seed, time_to_fix)
        weekly_f = (pool.submit(_connected, db, pg, _weekly, pg, conds, category_names or {})
                    if "weekly" in tables else None)
        sat_f = pool.submit(_connected, db, pg, _satisfaction, pg, conds) if "satisfaction" in tables else None
        counts, ttf = chiefs_f.result()
        weekly = weekly_f.result() if weekly_f else _EMPTY_WEEKLY.copy()
        sat = sat_f.result() if sat_f else _empty_satisfaction()
    chiefs = counts.copy()
    chiefs.insert(0, "name", [names.get(c, "") for c in chiefs.index])
    for k, col in enumerate(["n_fixed", "median_h", "low_h", "high_h"]):
        chiefs[col] = [ttf[c][k] if c in ttf else (0 if k == 0 else np.nan) for c in chiefs.index]
    chiefs = chiefs.astype({"n_fixed": "int64", "median_h": "f8", "low_h": "f8", "high_h": "f8"}).sort_index()
    chiefs = chiefs.drop(columns="resolved")  # n_fixed: resolved now and with a resolution time
    sat.insert(0, "zone_name", [_zone_name(index, z) for z in sat.index])
    # Workload: every chief in force over the filtered zones, plus any chief with a matching report.
    scope = _chiefs_in_scope(index, flt.zone_scope(index))
    load = counts["reports"].reindex(scope.index.union(counts.index), fill_value=0).astype("int64")
    load = load.sort_values(kind="stable")
    share = np.arange(1, len(load) + 1) / max(len(load), 1)
    if load.sum() > 0:  # else nothing to share: the line of equality
        share_r = lorenz(load.to_numpy())["share_load"].to_numpy()[1:]
    else:
        share_r = share
    workload = pd.DataFrame({"name": [names.get(c, "") for c in load.index], "reports": load.to_numpy(),
                             "share_chiefs": share, "share_reports": share_r},
                            index=load.index.rename("chief_id"))
    return DashboardTables(weekly, chiefs, sat, workload, gini(load.to_numpy()) if len(load) else float("nan"))


def _zone_name(index, zone_id: str) -> str:
    z = index.zones
    hit = z.loc[z["zone_id"] == zone_id, "name"]
    return str(hit.iloc[0]) if len(hit) else ""


# ------------------------------------------------------------------ cache
CACHE_SIZE = 64
CACHE_TTL_S = 300.0  # a safety net: the data version below already changes with every write the app makes
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def data_version(db) -> tuple:
    """What changes whenever the reports the dashboard counts change: the newest report, status event and
    outbox event ids (a new report, a status change, an answer, a reassignment; bulk imports add reports).
    Three primary-key lookups."""
    ids = [select(func.max(m.id)).scalar_subquery() for m in (Report, ReportEvent, OutboxEvent)]
    with db.engine.connect() as conn:
        return tuple(conn.execute(select(*ids)).one())


def cached(db, key: tuple, compute):
    """compute(), kept per `key` while the store's data_version is unchanged (at most CACHE_TTL_S).

    A planner's views repeat (the default one above all): the second look at a million reports
    costs three index lookups. Callers must not change what they get.
    """
    full = (id(db), *key, data_version(db))
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(full)
        if hit is not None and now - hit[0] < CACHE_TTL_S:
            _cache.move_to_end(full)
            return hit[1]
    out = compute()
    with _cache_lock:
        _cache[full] = (now, out)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return out


def cached_tables(db, index, flt, category_names: dict | None = None, seed: int = 0, time_to_fix: bool = True,
                  tables=TABLES) -> DashboardTables:
    """dashboard_tables through `cached`, per filter and options."""
    key = ("tables", id(index), flt, tuple(sorted((category_names or {}).items())), seed, time_to_fix, tuple(tables))
    return cached(db, key, lambda: dashboard_tables(db, index, flt, category_names, seed, time_to_fix, tables))
