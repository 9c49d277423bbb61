"""Realistic synthetic citizen reports for demos, load tests and map previews.

>>> reports = generate_reports(1000, seed=1)          # doctest: +SKIP

Everything is vectorised with numpy (no shapely call per point), so 100,000
reports take a couple of seconds. The output depends only on ``n``, ``seed``,
``now``, ``days`` and the data passed in (or the shipped data).

What is simulated:

- time: a daily rhythm (quiet at night, peaks mid-morning and mid-afternoon)
  and a weekly one (weekends ~60 % of weekdays), in Asia/Shanghai time;
- source: city service code scans (城市服务码) at facilities, GPS from the
  app or WeChat (GCJ-02), typed addresses and staff patrols;
- category: GB/T 47678.5 管理事项 codes weighted by ``demo_weight``; toilet
  service codes mostly give 03001 公共厕所异常 or another 03xxx code;
- place: clusters around facilities and the town centres, the rest spread
  over all zones in proportion to their area; every point lies in a zone;
- workflow: new → assigned → in_progress → resolved → closed with log-normal
  delays, ~3 % rejected and ~2 % duplicates, cut off at ``now``;
- the citizen's answer (``feedback``: satisfaction, rating 1–5, comment, at)
  on ~55 % of resolved reports, between the resolution and the closing;
  slow fixes are answered worse. A ``not_fixed`` answer reopens the report
  (resolved → in_progress at the answer's time); it is resolved again and,
  half the time, answered again (fixed or partly). So a report may carry a
  ``not_fixed`` answer while in progress, or one given before its last
  resolution: the answer stays until the citizen answers again.
"""
from __future__ import annotations

import gc
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gis.categories import PATH as CATEGORIES_PATH
from gis.categories import load_categories
from gis.categories import normalize_categories as _normalize_categories
from gis.crs import wgs84_to_gcj02
from gis.localtime import LOCAL as TZ
from zonechief.workflow import SOURCES

__all__ = ["generate_reports", "load_categories", "TRANSITIONS", "CATEGORIES_PATH"]

SOURCE_WEIGHTS = (0.20, 0.45, 0.15, 0.20)
WECHAT_SHARE = 0.70  # share of "gps" reports sent from WeChat, i.e. in GCJ-02
PHOTO_SHARE = 0.30

# The paths the generator takes: a subset of zonechief.workflow.TRANSITIONS.
TRANSITIONS = {
    "new": {"assigned", "rejected", "duplicate"},
    "assigned": {"in_progress", "rejected", "duplicate"},
    "in_progress": {"resolved"},
    "resolved": {"closed", "in_progress"},  # in_progress: reopened by a "not fixed" answer
    "closed": set(),
    "rejected": set(),
    "duplicate": set(),
}
REJECTED_SHARE = 0.03
DUPLICATE_SHARE = 0.02

# Relative report intensity per local hour 0..23.
HOURLY = np.array([
    0.12, 0.06, 0.04, 0.03, 0.04, 0.08,   # 0-5h: almost nobody
    0.25, 0.55, 1.00, 1.45, 1.60, 1.25,   # morning peak around 10h
    0.75, 0.70, 1.15, 1.45, 1.35, 1.00,   # lunch dip, afternoon peak around 15h
    0.75, 0.65, 0.55, 0.45, 0.30, 0.18,
])
WEEKEND_FACTOR = 0.6

# Town centres: the busiest places besides facilities.
BUSY_ZONES = ("QS-15", "ZMT-01")  # 企石村, 圩镇社区
SPREAD_SHARE = 0.45      # uniform over all zones, by area
CENTRE_SHARE = 0.30      # around the town centres
FACILITY_SHARE = 0.25    # around facilities
CENTRE_SIGMA_M = 450.0
FACILITY_SIGMA_M = 120.0

TOILET_KINDS = ("public_toilet",)
TOILET_MAIN_CODE = "03001"
TOILET_MAIN_SHARE = 0.75

_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡叶钟卢莫")
_TITLES = ("先生", "女士")
_SPOTS = ("路口", "市场", "公交站", "学校", "公园", "牌坊", "商铺", "停车场", "桥头", "工业区")
_TEMPLATES = (
    "{cat}，位于{place}附近",
    "{place}附近{cat}",
    "{cat}，地点：{place}",
    "{place}{spot}旁{cat}",
    "{place}{spot}附近发现{cat}",
)
_FACILITY_TEMPLATES = (
    "{cat}，位于{place}",
    "{place}：{cat}",
    "扫码反映{place}{cat}",
)

_M_PER_DEG = 111_320.0

# 市民评价 (the citizen's answer once resolved)
ANSWER_SHARE = 0.55  # 约半数市民评价
AGAIN_SHARE = 0.5  # 重新处理后再次评价
OUTCOMES = ("fixed", "partly_fixed", "not_fixed")
TYPICAL_FIX_H = 7.0  # 典型处理时长 (created → resolved, hours)
# 评分 1..5 per outcome: fixed mostly 4–5, not_fixed mostly 1–2
RATING_P = np.array([
    [0.00, 0.02, 0.08, 0.30, 0.60],
    [0.04, 0.26, 0.45, 0.20, 0.05],
    [0.60, 0.30, 0.08, 0.02, 0.00],
])
COMMENT_SHARE = 0.4
_COMMENTS = (
    ("处理及时，谢谢", "已经清理干净了", "很满意", "速度很快", "辛苦了"),
    ("还有一部分没处理", "处理得不彻底", "比之前好一些", "希望再看看"),
    ("问题依旧存在", "现场没有变化", "没有人来处理", "还是老样子"),
)


# --------------------------------------------------------------------------- data


@lru_cache(maxsize=1)
def _default_index():
    from gis.lookup import ZoneIndex

    return ZoneIndex.load()


@lru_cache(maxsize=1)
def _default_facilities():
    from gis.facilities import load_facilities

    return load_facilities()


@lru_cache(maxsize=1)
def _default_categories():
    return load_categories()


# --------------------------------------------------------------------------- helpers


def _as_local(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(TZ)
    if now.tzinfo is None:
        return now.replace(tzinfo=TZ)  # naive means local (Shanghai) time
    return now.astimezone(TZ)


def _sample_times(rng: np.random.Generator, n: int, now_ts: float, days: float) -> np.ndarray:
    """Integer Unix seconds in [now - days, now] following the hourly and weekly rhythm."""
    hi = int(np.floor(now_ts))
    lo = int(np.ceil(now_ts - days * 86400.0))
    if hi < lo:
        raise ValueError("days must be positive")
    # Hour slots aligned on the local clock (Shanghai is UTC+8 all year since 1991).
    offset = 8 * 3600
    first = (lo + offset) // 3600 * 3600 - offset
    starts = np.arange(first, hi + 1, 3600, dtype=np.int64)
    s_lo = np.maximum(starts, lo)
    s_hi = np.minimum(starts + 3600, hi + 1)  # exclusive
    width = (s_hi - s_lo).astype(float)
    local = starts + offset
    hour = (local // 3600) % 24
    weekday = (local // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    w = HOURLY[hour] * np.where(weekday >= 5, WEEKEND_FACTOR, 1.0) * width
    slot = rng.choice(len(starts), size=n, p=w / w.sum())
    return s_lo[slot] + (rng.random(n) * width[slot]).astype(np.int64)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def _secs(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.ceil(x), 1).astype(np.int64)


def _history(rng: np.random.Generator, t0: np.ndarray, now_ts: int):
    """Status times per report (int seconds, -1 = not reached), the terminal status and the citizen's answers.

    Keys "reopened" and "resolved_again" are the second round after a "not fixed" answer.
    """
    n = len(t0)
    assign_min = _lognormal(rng, 4.0, 0.7, n)             # dispatch within minutes
    start_h = _lognormal(rng, 1.5, 0.9, n)                # chief reaches the place
    resolve_h = _lognormal(rng, 5.0, 1.0, n)              # work done
    close_h = _lognormal(rng, 20.0, 0.8, n)               # citizen / supervisor check
    stop_h = _lognormal(rng, 1.5, 1.0, n)                 # rejection / duplicate found
    u = rng.random(n)
    from_new = rng.random(n) < 0.3

    t_assigned = t0 + _secs(assign_min * 60)
    t_progress = t_assigned + _secs(start_h * 3600)
    t_resolved = t_progress + _secs(resolve_h * 3600)
    t_closed = t_resolved + _secs(close_h * 3600)

    end = np.full(n, "", dtype=object)
    end[u < REJECTED_SHARE] = "rejected"
    end[(u >= REJECTED_SHARE) & (u < REJECTED_SHARE + DUPLICATE_SHARE)] = "duplicate"
    stopped = end != ""
    t_stop = np.where(from_new, t0, t_assigned) + _secs(stop_h * 3600)
    # A report stopped "from new" never gets assigned.
    t_assigned = np.where(stopped & from_new, -1, t_assigned)
    t_progress = np.where(stopped, -1, t_progress)
    t_resolved = np.where(stopped, -1, t_resolved)
    t_closed = np.where(stopped, -1, t_closed)
    t_stop = np.where(stopped, t_stop, -1)
    cols = {"new": t0, "assigned": t_assigned, "in_progress": t_progress, "resolved": t_resolved,
            "closed": t_closed, "stop": t_stop}
    answers = _answers(rng, cols, now_ts)
    # Nothing after now.
    for k, v in cols.items():
        cols[k] = np.where(v <= now_ts, v, -1)
    return cols, end, answers


def _between(rng: np.random.Generator, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A time some way between a and b (b > a), at least a second after a."""
    return a + np.maximum((rng.uniform(0.1, 0.9, len(a)) * (b - a)).astype(np.int64), 1)


def _answers(rng: np.random.Generator, cols: dict, now_ts: int) -> dict:
    """The citizen's answers (before the cut at now): outcome (-1 none), rating, comment and time per report.

    Adds the reopen rounds to ``cols`` and moves their closing after the second resolution.
    """
    t0, t_res, t_close = cols["new"], cols["resolved"], cols["closed"]
    n = len(t0)
    fixable = t_res >= 0
    # 慢的处理更容易不满意
    z = np.log(np.maximum(t_res - t0, 1) / 3600.0 / TYPICAL_FIX_H)
    p_not = np.minimum(0.07 * np.exp(0.7 * z), 0.5)
    p_partly = np.minimum(0.15 * np.exp(0.35 * z), 0.4)
    u = rng.random(n)
    out1 = np.where(u < p_not, 2, np.where(u < p_not + p_partly, 1, 0))
    at1 = _between(rng, t_res, t_close)
    ans1 = fixable & (rng.random(n) < ANSWER_SHARE) & (at1 <= now_ts)
    # 未解决 → 重新处理
    reopen = ans1 & (out1 == 2)
    t_res2 = at1 + _secs(_lognormal(rng, 5.0, 1.0, n) * 3600)
    t_close2 = t_res2 + _secs(_lognormal(rng, 20.0, 0.8, n) * 3600)
    at2 = _between(rng, t_res2, t_close2)
    ans2 = reopen & (rng.random(n) < AGAIN_SHARE) & (at2 <= now_ts)
    out2 = np.where(rng.random(n) < 0.75, 0, 1)
    cols["reopened"] = np.where(reopen, at1, -1)
    cols["resolved_again"] = np.where(reopen, t_res2, -1)
    cols["closed"] = np.where(reopen, t_close2, t_close)
    outcome = np.where(ans2, out2, np.where(ans1, out1, -1))
    at = np.where(ans2, at2, np.where(ans1, at1, -1))
    # 评分与结果一致
    cum = RATING_P.cumsum(axis=1)[np.maximum(outcome, 0), :4]
    rating = 1 + (rng.random(n)[:, None] >= cum).sum(axis=1)
    comment = np.where(rng.random(n) < COMMENT_SHARE, rng.integers(0, 1 << 20, n), -1)
    return {"outcome": outcome, "rating": rating, "comment": comment, "at": at}


def _centres(index) -> np.ndarray:
    zones = index.zones
    pts = []
    for zid in BUSY_ZONES:
        z = zones[zones["zone_id"] == zid]
        if not z.empty:
            p = shapely.point_on_surface(z.geometry.values[0])
            pts.append((p.x, p.y))
    return np.array(pts, dtype=float).reshape(-1, 2)


class _Sampler:
    """Vectorised rejection sampling of points inside the index's units."""

    def __init__(self, index, rng: np.random.Generator):
        self.index = index
        self.rng = rng
        self.geoms = np.asarray(index.units.geometry.values, dtype=object)
        shapely.prepare(self.geoms)
        self.bounds = shapely.bounds(self.geoms)
        from gis.boundaries import METRIC

        area = np.asarray(index.units.to_crs(METRIC).area, dtype=float)
        self.p_area = area / area.sum()

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether each point is covered by some unit (the same test ZoneIndex uses)."""
        unit, _ = self.index.locate(x, y)
        return unit >= 0

    def uniform(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Points spread over all units, in proportion to area."""
        x = np.empty(n)
        y = np.empty(n)
        unit = self.rng.choice(len(self.geoms), size=n, p=self.p_area)
        for k in range(len(self.geoms)):  # one vectorised batch per unit, not per point
            idx = np.flatnonzero(unit == k)
            minx, miny, maxx, maxy = self.bounds[k]
            got = 0
            while got < len(idx):
                need = len(idx) - got
                m = int(need * 2.5) + 16
                cx = np.round(self.rng.uniform(minx, maxx, m), 6)
                cy = np.round(self.rng.uniform(miny, maxy, m), 6)
                ok = np.flatnonzero(shapely.contains_xy(self.geoms[k], cx, cy))[:need]
                x[idx[got:got + len(ok)]] = cx[ok]
                y[idx[got:got + len(ok)]] = cy[ok]
                got += len(ok)
        return x, y

    def around(self, cx: np.ndarray, cy: np.ndarray, sigma_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian scatter around given centres, redrawn until inside a unit."""
        n = len(cx)
        x = np.empty(n)
        y = np.empty(n)
        todo = np.arange(n)
        for attempt in range(50):
            if not len(todo):
                break
            s = sigma_m / (1 + attempt // 10)  # shrink for centres near the edge
            dy = self.rng.standard_normal(len(todo)) * s / _M_PER_DEG
            dx = self.rng.standard_normal(len(todo)) * s / (_M_PER_DEG * np.cos(np.radians(cy[todo])))
            tx = np.round(cx[todo] + dx, 6)
            ty = np.round(cy[todo] + dy, 6)
            ok = self.inside(tx, ty)
            x[todo[ok]] = tx[ok]
            y[todo[ok]] = ty[ok]
            todo = todo[~ok]
        if len(todo):  # centres outside every unit: fall back to the spread
            x[todo], y[todo] = self.uniform(len(todo))
        return x, y


def _str_col(gdf, names, default):
    for c in names:
        if c in gdf.columns:
            v = gdf[c].to_numpy(dtype=object)
            ok = np.array([isinstance(s, str) and s not in ("", "None", "nan") for s in v])
            return np.where(ok, v, default)
    return np.asarray(default, dtype=object) if np.ndim(default) else np.full(len(gdf), default, dtype=object)


# --------------------------------------------------------------------------- main


def generate_reports(n: int, *, seed: int = 0, now: datetime | None = None, days: int = 180,
                     index=None, facilities=None, categories: pd.DataFrame | None = None) -> list[dict]:
    """``n`` synthetic citizen reports from the last ``days`` days before ``now``.

    Deterministic for a given ``seed`` and ``now`` (default: the current time).
    ``index`` (ZoneIndex), ``facilities`` (GeoDataFrame or path) and
    ``categories`` default to the shipped data. See the module docstring for
    the shape of each report.
    """
    n = int(n)
    if n < 0:
        raise ValueError("n must be >= 0")
    if days <= 0:
        raise ValueError("days must be positive")
    if n == 0:
        return []
    now_local = _as_local(now)
    now_ts = now_local.timestamp()
    now_sec = int(np.floor(now_ts))
    index = _default_index() if index is None else index
    if facilities is None:
        fac = _default_facilities()
    elif isinstance(facilities, (str, Path)):
        from gis.facilities import load_facilities

        fac = load_facilities(facilities)
    else:
        fac = facilities if facilities.crs is None or facilities.crs.to_epsg() == 4326 else facilities.to_crs(4326)
    cats = _default_categories() if categories is None else _normalize_categories(categories)
    rng = np.random.default_rng(seed)
    sampler = _Sampler(index, rng)

    # Facilities usable here: with a point inside the index.
    fac = fac[fac.geometry.notna() & ~fac.geometry.is_empty].reset_index(drop=True)
    fx = np.asarray(fac.geometry.x, dtype=float)
    fy = np.asarray(fac.geometry.y, dtype=float)
    fac_ok = sampler.inside(fx, fy) if len(fac) else np.zeros(0, dtype=bool)
    fac = fac[fac_ok].reset_index(drop=True)
    fx, fy = fx[fac_ok], fy[fac_ok]
    n_fac = len(fac)
    fac_codes = fac["service_code"].astype(str).to_numpy(dtype=object) if n_fac else np.zeros(0, dtype=object)
    fac_names = _str_col(fac, ("name",), fac_codes) if n_fac else np.zeros(0, dtype=object)
    fac_toilet = fac["kind"].isin(TOILET_KINDS).to_numpy() if n_fac and "kind" in fac.columns else np.zeros(n_fac, bool)

    # -- when
    created = _sample_times(rng, n, now_ts, days)
    created.sort()  # report i is the i-th oldest; keeps ids in time order

    # -- who and how
    sw = np.array(SOURCE_WEIGHTS, dtype=float)
    if n_fac == 0:
        sw[0] = 0.0
    source = np.asarray(SOURCES, dtype=object)[rng.choice(len(SOURCES), size=n, p=sw / sw.sum())]
    is_sc = source == "service_code"
    wechat = (source == "gps") & (rng.random(n) < WECHAT_SHARE)

    # -- where
    lon = np.empty(n)
    lat = np.empty(n)
    fac_of = np.full(n, -1, dtype=np.int64)
    sc = np.flatnonzero(is_sc)
    if len(sc):
        # Toilets are scanned more often than stations.
        fw = np.where(fac_toilet, 1.5, 1.0)
        fac_of[sc] = rng.choice(n_fac, size=len(sc), p=fw / fw.sum())
        lon[sc], lat[sc] = fx[fac_of[sc]], fy[fac_of[sc]]
    rest = np.flatnonzero(~is_sc)
    centres = _centres(index)
    mix = np.array([SPREAD_SHARE, CENTRE_SHARE if len(centres) else 0.0, FACILITY_SHARE if n_fac else 0.0])
    kind = rng.choice(3, size=len(rest), p=mix / mix.sum())
    i0 = rest[kind == 0]
    if len(i0):
        lon[i0], lat[i0] = sampler.uniform(len(i0))
    i1 = rest[kind == 1]
    if len(i1):
        c = rng.integers(0, len(centres), len(i1))
        lon[i1], lat[i1] = sampler.around(centres[c, 0], centres[c, 1], CENTRE_SIGMA_M)
    i2 = rest[kind == 2]
    if len(i2):
        c = rng.integers(0, n_fac, len(i2))
        lon[i2], lat[i2] = sampler.around(fx[c], fy[c], FACILITY_SIGMA_M)
    unit, _ = index.locate(lon, lat)
    if (unit < 0).any():  # cannot happen: every point was drawn inside a unit
        raise RuntimeError("generated a point outside every zone")
    unit_ids = index.units["unit_id"].astype(str).to_numpy(dtype=object)
    short = _str_col(index.units, ("village_short_name",), _str_col(index.units, ("village_name",), unit_ids))
    towns = _str_col(index.units, ("town",), "")
    place = short[unit]
    addr = towns[unit] + place
    glon, glat = wgs84_to_gcj02(lon[wechat], lat[wechat])
    glon, glat = np.round(glon, 6), np.round(glat, 6)

    # -- what
    codes = cats["code"].to_numpy(dtype=object)
    names = cats["name"].to_numpy(dtype=object)
    w = cats["demo_weight"].to_numpy(dtype=float)
    cat = rng.choice(len(codes), size=n, p=w / w.sum())
    toilet_rep = np.flatnonzero(is_sc & (fac_of >= 0))
    toilet_rep = toilet_rep[fac_toilet[fac_of[toilet_rep]]]
    if len(toilet_rep):
        main = np.flatnonzero(codes == TOILET_MAIN_CODE)
        related = np.flatnonzero((pd.Series(codes).str[:2].to_numpy() == TOILET_MAIN_CODE[:2]) & (codes != TOILET_MAIN_CODE))
        pick_main = rng.random(len(toilet_rep)) < TOILET_MAIN_SHARE
        rel_pick: np.ndarray | None = None
        if len(related):
            rw = np.maximum(w[related], 0) + 0.5
            rel_pick = rng.choice(related, size=len(toilet_rep), p=rw / rw.sum())
        if len(main) and rel_pick is not None:
            cat[toilet_rep] = np.where(pick_main, main[0], rel_pick)
        elif len(main):
            cat[toilet_rep] = main[0]
        elif rel_pick is not None:
            cat[toilet_rep] = rel_pick
    tmpl = rng.integers(0, len(_TEMPLATES), n)
    fac_tmpl = rng.integers(0, len(_FACILITY_TEMPLATES), n)
    spot = rng.integers(0, len(_SPOTS), n)
    cat_names = names[cat].tolist()
    place_l = place.tolist()
    fac_name_l = fac_names[np.maximum(fac_of, 0)].tolist() if n_fac else [None] * n
    description = [
        _FACILITY_TEMPLATES[f].format(cat=c, place=fn) if sc_ else _TEMPLATES[t].format(cat=c, place=p, spot=_SPOTS[k])
        for sc_, c, p, fn, t, f, k in zip(is_sc.tolist(), cat_names, place_l, fac_name_l, tmpl.tolist(),
                                         fac_tmpl.tolist(), spot.tolist())
    ]

    # -- extras
    photo = rng.random(n) < PHOTO_SHARE
    photo_n = rng.integers(100000, 10_000_000, n)
    surname = rng.integers(0, len(_SURNAMES), n)
    title = rng.integers(0, len(_TITLES), n)
    phone = rng.integers(0, 10**8, n)

    # -- workflow
    hist, end, answers = _history(rng, created, now_sec)

    # -- assemble (plain Python lists: indexing numpy scalars in the loop is slow)
    lon_l, lat_l = lon.tolist(), lat.tolist()
    g_pos = np.full(n, -1, dtype=np.int64)
    g_pos[wechat] = np.arange(int(wechat.sum()))
    g_pos_l = g_pos.tolist()
    glon_l, glat_l = glon.tolist(), glat.tolist()
    source_l = source.tolist()
    code_l = codes[cat].tolist()
    addr_l = addr.tolist()
    sc_code_l = fac_codes[np.maximum(fac_of, 0)].tolist() if n_fac else [None] * n
    name_l = [_SURNAMES[a] + _TITLES[b] for a, b in zip(surname.tolist(), title.tolist())]
    phone_l = [f"138{p:08d}" for p in phone.tolist()]
    photo_l = [f"https://example.invalid/photos/{k}.jpg" if f else None for f, k in zip(photo.tolist(), photo_n.tolist())]
    steps = [(s, hist[k].tolist()) for s, k in (("new", "new"), ("assigned", "assigned"), ("in_progress", "in_progress"),
                                                ("resolved", "resolved"), ("in_progress", "reopened"),
                                                ("resolved", "resolved_again"), ("closed", "closed"))]
    outcome_l, rating_l = answers["outcome"].tolist(), answers["rating"].tolist()
    comment_l, ans_at_l = answers["comment"].tolist(), answers["at"].tolist()
    stop_l = hist["stop"].tolist()
    end_l = end.tolist()
    fromts = datetime.fromtimestamp
    out = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: cyclic GC passes would dominate the run time
    try:
        for i in range(n):
            src = source_l[i]
            if src == "service_code":
                loc = {"service_code": sc_code_l[i]}
            elif src == "address":
                loc = {"address": addr_l[i]}
            elif g_pos_l[i] >= 0:
                k = g_pos_l[i]
                loc = {"lon": glon_l[k], "lat": glat_l[k], "crs": "gcj02"}
            else:
                loc = {"lon": lon_l[i], "lat": lat_l[i], "crs": "wgs84"}
            history = [{"status": s, "at": fromts(v[i], TZ)} for s, v in steps if v[i] >= 0]
            if stop_l[i] >= 0:
                history.append({"status": end_l[i], "at": fromts(stop_l[i], TZ)})
            o = outcome_l[i]
            feedback = None
            if o >= 0:
                c = comment_l[i]
                texts = _COMMENTS[o]
                feedback = {"satisfaction": OUTCOMES[o], "rating": rating_l[i],
                            "comment": texts[c % len(texts)] if c >= 0 else None, "at": fromts(ans_at_l[i], TZ)}
            out.append({
                "created_at": history[0]["at"],
                "source": src,
                "category": code_l[i],
                "description": description[i],
                "location": loc,
                "true_lon": lon_l[i],
                "true_lat": lat_l[i],
                "reporter": None if src == "staff" else {"name": name_l[i], "phone": phone_l[i]},
                "photo_url": photo_l[i],
                "idempotency_key": f"demo-{seed}-{i}",
                "history": history,
                "feedback": feedback,
            })
    finally:
        if gc_was_enabled:
            gc.enable()
    return out
