"""Planning analysis of reports: counts, backlog, response times and workload, per zone and per chief.

Start from a report frame, one row per report (WGS-84 points), built by
zonechief.report_frames from the store or from demo data:

>>> frame = reports_frame(db)                          # doctest: +SKIP  (the store)
>>> frame = frame_from_demo(generate_reports(5000), index)  # doctest: +SKIP  (no database)
>>> summarize(frame, "zone", index)                    # doctest: +SKIP  (GeoDataFrame, zones drawn)

Columns: id, created_at, category, status, open, zone_id, chief_id, assigned_at,
resolved_at, satisfaction, rating, rated_at, geometry (the citizen's answer, if any:
``fixed`` / ``partly_fixed`` / ``not_fixed``, a rating 1–5 (NaN when none) and its
time; gis.satisfaction reads them). Times are Asia/Shanghai; periods (week ``"W"`` / month
``"M"``) are local calendar weeks (Monday first) and months. The frame builder
applies the workflow's vocabulary, so nothing here knows the statuses:

- open backlog: reports whose ``open`` is true (current status is an open one);
- response time: hours from ``assigned_at`` to ``resolved_at``, which the
  builder fills only for reports resolved now;
- per km²: zone areas in CGCS2000 Gauss-Krüger (EPSG:4547); a chief's area is
  the union of the zones in which that chief received reports;
- trend: Theil–Sen slope of the per-period median response time (hours per
  period, with its 95 % interval) and a Mann–Kendall test on the same series.

Reports without a zone (needs review) or without a chief are left out of the
per-zone or per-chief tables, not counted under a guess.
"""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import stats

from gis.boundaries import METRIC
from gis.localtime import LOCAL_NAME as TZ

COLUMNS = ["id", "created_at", "category", "status", "open", "zone_id", "chief_id", "assigned_at", "resolved_at",
           "satisfaction", "rating", "rated_at", "geometry"]
_KEYS = {"zone": "zone_id", "chief": "chief_id", "zone_id": "zone_id", "chief_id": "chief_id"}
_FREQ = {"W": "W-SUN", "M": "M", "W-SUN": "W-SUN"}

__all__ = ["build_frame", "empty_frame", "zone_areas", "summarize", "counts_by_period", "counts_by_category",
           "response_times", "response_trend", "workload", "workload_balance", "gini", "mann_kendall", "MannKendall",
           "period_start", "COLUMNS"]


# ------------------------------------------------------------------ frames
def _local(values) -> pd.Series:
    s = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return s.dt.tz_convert(TZ)


def empty_frame() -> gpd.GeoDataFrame:
    """A report frame with no rows (the columns and dtypes of a full one)."""
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS if c != "geometry"})
    df["id"] = df["id"].astype("int64")
    df["open"] = df["open"].astype(bool)
    df["rating"] = df["rating"].astype("f8")
    for c in ("created_at", "assigned_at", "resolved_at", "rated_at"):
        df[c] = pd.Series(dtype=f"datetime64[us, {TZ}]")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=4326), crs=4326)


def build_frame(ids, created, category, status, open_, zone, chief, assigned, resolved, geoms, *,
                satisfaction=None, rating=None, rated_at=None) -> gpd.GeoDataFrame:
    """A report frame from its columns, in COLUMNS order; times become Asia/Shanghai.

    The citizen's answer (satisfaction, rating, rated_at) is optional: left out, no report has one.
    """
    if len(ids) == 0:
        return empty_frame()
    n = len(ids)
    none = [None] * n
    df = pd.DataFrame({
        "id": np.asarray(ids, dtype="int64"),
        "created_at": _local(created),
        "category": pd.Series(category, dtype=object),
        "status": pd.Series(status, dtype=object),
        "open": np.asarray(open_, dtype=bool),
        "zone_id": pd.Series(zone, dtype=object),
        "chief_id": pd.Series(chief, dtype=object),
        "assigned_at": _local(assigned),
        "resolved_at": _local(resolved),
        "satisfaction": pd.Series(none if satisfaction is None else satisfaction, dtype=object),
        "rating": pd.to_numeric(pd.Series(none if rating is None else rating, dtype=object)).astype("f8"),
        "rated_at": _local(none if rated_at is None else rated_at),
    })
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(list(geoms), crs=4326), crs=4326)


# ------------------------------------------------------------------ helpers
def _key(by: str) -> str:
    try:
        return _KEYS[by]
    except KeyError:
        raise ValueError(f"by must be 'zone' or 'chief', not {by!r}") from None


def _zones(index_or_zones) -> gpd.GeoDataFrame:
    z = getattr(index_or_zones, "zones", index_or_zones)
    if not isinstance(z, gpd.GeoDataFrame) or "zone_id" not in z.columns:
        raise ValueError("pass a ZoneIndex or a GeoDataFrame of zones with a zone_id column")
    return z


def zone_areas(index_or_zones) -> pd.Series:
    """Zone area in km², measured in EPSG:4547, indexed by zone_id."""
    z = _zones(index_or_zones)
    return pd.Series(z.to_crs(METRIC).area.to_numpy() / 1e6, index=z["zone_id"].astype(str).to_numpy(), name="area_km2")


def period_start(times: pd.Series, freq: str = "M") -> pd.Series:
    """Start of the local calendar period (Monday-first week "W" or month "M") as a naive local timestamp."""
    if freq not in _FREQ:
        raise ValueError(f"freq must be 'W' or 'M', not {freq!r}")
    t = pd.to_datetime(times)
    if t.dt.tz is not None:
        t = t.dt.tz_convert(TZ).dt.tz_localize(None)
    return t.dt.to_period(_FREQ[freq]).dt.start_time


def _hours(frame) -> pd.Series:
    return (frame["resolved_at"] - frame["assigned_at"]).dt.total_seconds() / 3600.0


def _p90(s: pd.Series) -> float:
    return float(np.percentile(s, 90)) if len(s) else np.nan  # numpy's linear interpolation, documented


def _periods(frame, freq) -> pd.DatetimeIndex:
    if frame.empty:
        return pd.DatetimeIndex([])
    p = period_start(frame["created_at"], freq)
    return pd.period_range(p.min(), p.max(), freq=_FREQ[freq]).start_time


# ------------------------------------------------------------------ statistics
def gini(values) -> float:
    """Gini coefficient of non-negative values: 0 when all are equal, (n-1)/n when one holds everything.

    NaN for an empty input or when the total is 0 (nothing to share).
    """
    x = np.sort(np.asarray(values, dtype="f8").ravel())
    if (x < 0).any() or not np.isfinite(x).all():
        raise ValueError("gini needs finite, non-negative values")
    if x.size == 0 or x.sum() == 0:
        return float("nan")
    n = x.size
    ranks = np.arange(1, n + 1)
    return float(2.0 * np.sum(ranks * x) / (n * x.sum()) - (n + 1.0) / n)


@dataclass(frozen=True)
class MannKendall:
    """A Mann–Kendall trend test's result: S, its variance, z, p, Kendall's tau and the trend read at alpha."""

    n: int
    s: float       # Mann-Kendall S: sum of sign(x_j - x_i), i < j
    var_s: float   # with the tie correction
    z: float
    p: float       # two-sided
    tau: float     # Kendall's tau-a = S / (n(n-1)/2)
    trend: str     # "increasing", "decreasing" or "no trend" at alpha


def mann_kendall(x, alpha: float = 0.05, continuity: bool = True) -> MannKendall:
    """Mann–Kendall trend test on a series in time order (NaNs dropped), normal approximation.

    Var(S) = [n(n-1)(2n+5) - Σ t(t-1)(2t+5)] / 18 over tie groups t; z uses a
    continuity correction of 1 unless ``continuity=False`` (then, on untied
    data, z and p equal scipy.stats.kendalltau(..., method="asymptotic")).
    Fewer than 3 values give p = 1.
    """
    v = np.asarray(x, dtype="f8").ravel()
    v = v[np.isfinite(v)]
    n = v.size
    if n < 3:
        return MannKendall(n, 0.0, 0.0, 0.0, 1.0, 0.0, "no trend")
    i, j = np.triu_indices(n, 1)
    s = float(np.sign(v[j] - v[i]).sum())
    _, t = np.unique(v, return_counts=True)
    var_s = (n * (n - 1) * (2 * n + 5) - np.sum(t * (t - 1) * (2 * t + 5))) / 18.0
    if var_s <= 0:  # constant series
        return MannKendall(n, s, 0.0, 0.0, 1.0, 0.0, "no trend")
    num = s - np.sign(s) if continuity else s
    z = float(num / np.sqrt(var_s))
    p = float(2.0 * stats.norm.sf(abs(z)))
    trend = "no trend" if p >= alpha else ("increasing" if z > 0 else "decreasing")
    return MannKendall(n, s, float(var_s), z, p, s / (n * (n - 1) / 2.0), trend)


# ------------------------------------------------------------------ tables
def _geometry_for(by_key: str, frame, index) -> tuple[pd.Series, pd.Series]:
    """Geometry and area (km², EPSG:4547) per group key; chiefs get the union of their zones."""
    zones = _zones(index)
    zm = zones.assign(zone_id=zones["zone_id"].astype(str)).set_index("zone_id").to_crs(METRIC).geometry
    if by_key == "zone_id":
        return zones.set_index(zones["zone_id"].astype(str)).geometry, zm.area / 1e6
    pairs = frame[["chief_id", "zone_id"]].dropna().drop_duplicates()
    geoms, areas = {}, {}
    for chief, g in pairs.groupby("chief_id"):
        zs = [z for z in g["zone_id"] if z in zm.index]
        u = shapely.union_all(zm.loc[zs].to_numpy())
        areas[chief] = u.area / 1e6
        geoms[chief] = gpd.GeoSeries([u], crs=METRIC).to_crs(4326).iloc[0]
    return pd.Series(geoms, dtype=object), pd.Series(areas, dtype="f8")


def summarize(frame: gpd.GeoDataFrame, by: str = "zone", index=None) -> pd.DataFrame:
    """Per zone or per chief: reports, open backlog, resolved, response median/p90 (h), and with ``index`` per km².

    With ``index`` (a ZoneIndex or zones GeoDataFrame) the result is a
    GeoDataFrame in WGS-84 with zone (or the chief's zones') geometry, every
    zone included (0 reports where none), plus zone names and, per chief, the
    chief's name from the roster.
    """
    key = _key(by)
    f = frame[frame[key].notna()]
    h = _hours(f)
    g = f.assign(_h=h).groupby(key)
    out = pd.DataFrame({
        "reports": g.size(),
        "open": g["open"].sum().astype("int64"),
        "resolved": g["_h"].count().astype("int64"),
        "median_h": g["_h"].median(),
        "p90_h": g["_h"].agg(lambda s: _p90(s.dropna())),
    })
    if by == "chief" or key == "chief_id":
        out["zone_ids"] = f.groupby(key)["zone_id"].agg(lambda s: ";".join(sorted(set(s.dropna()))))
    if index is None:
        return out.rename_axis(key).reset_index()
    geom, area = _geometry_for(key, f, index)
    if key == "zone_id":
        out = out.reindex(geom.index)
        for c in ("reports", "open", "resolved"):
            out[c] = out[c].fillna(0).astype("int64")
        z = _zones(index).set_index(_zones(index)["zone_id"].astype(str))
        out.insert(0, "name", z["name"] if "name" in z.columns else None)
        if "town" in z.columns:
            out.insert(1, "town", z["town"])
    else:
        roster = getattr(index, "roster", None)
        if roster is not None:
            names = roster.table[roster.table.role == "chief"].drop_duplicates("person_id").set_index("person_id")["name"]
            out.insert(0, "name", names.reindex(out.index).to_numpy())
    out["area_km2"] = area.reindex(out.index)
    out["per_km2"] = out["reports"] / out["area_km2"]
    out = out.rename_axis(key).reset_index()
    return gpd.GeoDataFrame(out, geometry=geom.reindex(out[key]).to_numpy(), crs=4326)


def counts_by_period(frame, by: str = "zone", freq: str = "M", index=None) -> pd.DataFrame:
    """Reports per group and period (long: key, period, reports), zeros included for every period in range.

    With ``index`` (zones), also per km² and every zone listed.
    """
    key = _key(by)
    f = frame[frame[key].notna()]
    periods = _periods(frame, freq)
    keys = sorted(set(f[key]))
    if index is not None and key == "zone_id":
        keys = sorted(set(keys) | set(_zones(index)["zone_id"].astype(str)))
    counts = f.assign(period=period_start(f["created_at"], freq)).groupby([key, "period"]).size()
    full = pd.MultiIndex.from_product([keys, periods], names=[key, "period"])
    out = counts.reindex(full, fill_value=0).rename("reports").reset_index()
    if index is not None:
        if key == "zone_id":
            area = zone_areas(index)
        else:
            area = _geometry_for(key, f, index)[1]
        out["per_km2"] = out["reports"] / out[key].map(area)
    return out


def counts_by_category(frame, by: str = "zone", categories: pd.DataFrame | None = None) -> pd.DataFrame:
    """Reports per group and category (long: key, category, reports, share of the group's reports).

    ``categories`` (gis.categories.load_categories()) adds the category name.
    """
    key = _key(by)
    f = frame[frame[key].notna()]
    out = f.groupby([key, "category"]).size().rename("reports").reset_index()
    out["share"] = out["reports"] / out.groupby(key)["reports"].transform("sum")
    if categories is not None:
        out["category_name"] = out["category"].map(categories.set_index("code")["name"])
    return out.sort_values([key, "reports", "category"], ascending=[True, False, True], ignore_index=True)


def response_times(frame, by: str = "zone", freq: str | None = None) -> pd.DataFrame:
    """Response time (assigned → resolved, hours) per group [and period of creation]: n, median, p90, mean."""
    key = _key(by)
    f = frame[frame[key].notna()].assign(hours=lambda d: _hours(d)).dropna(subset=["hours"])
    keys = [key]
    if freq is not None:
        f = f.assign(period=period_start(f["created_at"], freq))
        keys.append("period")
    g = f.groupby(keys)["hours"]
    out = pd.DataFrame({"n": g.size(), "median_h": g.median(), "p90_h": g.agg(_p90), "mean_h": g.mean()})
    return out.reset_index()


def response_trend(frame, by: str = "zone", freq: str = "M", min_periods: int = 3, alpha: float = 0.05) -> pd.DataFrame:
    """Trend of the per-period median response time per group.

    Columns: key, periods (with a resolved report), first/last period medians,
    slope_h (Theil–Sen, hours per period) with slope_low/slope_high (95 %),
    mk_tau, mk_p and trend: "slower" (times rising), "faster" or "no trend".
    Groups with fewer than ``min_periods`` periods get NaN and "too few periods".
    """
    key = _key(by)
    rt = response_times(frame, by, freq)
    rows = []
    for k, g in rt.groupby(key):
        g = g.sort_values("period")
        y = g["median_h"].to_numpy(dtype="f8")
        # x in period steps since the first period of the group
        x = (g["period"].dt.to_period(_FREQ[freq]) - g["period"].iloc[0].to_period(_FREQ[freq])).map(lambda d: d.n)
        x = x.to_numpy(dtype="f8")
        row = {key: k, "periods": len(g), "first_median_h": y[0], "last_median_h": y[-1]}
        if len(g) < min_periods:
            row.update(slope_h=np.nan, slope_low=np.nan, slope_high=np.nan, mk_tau=np.nan, mk_p=np.nan,
                       trend="too few periods")
        else:
            ts = stats.theilslopes(y, x, alpha=0.95)
            mk = mann_kendall(y, alpha=alpha)
            trend = {"increasing": "slower", "decreasing": "faster"}.get(mk.trend, "no trend")
            row.update(slope_h=ts.slope, slope_low=ts.low_slope, slope_high=ts.high_slope, mk_tau=mk.tau, mk_p=mk.p,
                       trend=trend)
        rows.append(row)
    cols = [key, "periods", "first_median_h", "last_median_h", "slope_h", "slope_low", "slope_high", "mk_tau", "mk_p",
            "trend"]
    return pd.DataFrame(rows, columns=cols)


def workload(frame, freq: str = "M", chiefs=None) -> pd.DataFrame:
    """Reports per chief (rows) and period (columns), zeros filled.

    ``chiefs`` lists chiefs to include even with no reports (e.g.
    ``roster.people("chief")["person_id"]``), so their zeros count in the balance.
    """
    f = frame[frame["chief_id"].notna()]
    periods = _periods(frame, freq)
    names = sorted(set(f["chief_id"]) | set(chiefs if chiefs is not None else []))
    t = f.assign(period=period_start(f["created_at"], freq)).groupby(["chief_id", "period"]).size()
    wide = t.unstack("period", fill_value=0) if len(t) else pd.DataFrame()
    return wide.reindex(index=pd.Index(names, name="chief_id"), columns=periods, fill_value=0).astype("int64")


def workload_balance(frame, freq: str = "M", chiefs=None) -> pd.DataFrame:
    """Per period: chiefs, reports, mean/min/max reports per chief and the Gini coefficient across chiefs."""
    w = workload(frame, freq, chiefs)
    out = pd.DataFrame({
        "chiefs": w.shape[0],
        "reports": w.sum(axis=0),
        "mean": w.mean(axis=0),
        "min": w.min(axis=0),
        "max": w.max(axis=0),
        "gini": [gini(w[c].to_numpy()) for c in w.columns],
    }, index=w.columns)
    return out.rename_axis("period").reset_index()
