"""Synthetic patrol tracks (labelled synthetic): fixtures for tests, benchmarks and `zonechief demo seed`.

``synthetic_tracks(index, days=7, people=36, fix_s=10, seed=0, start=None)`` returns a points frame
in the layout of store.patrols_repo.points_frame (patrol_id, person_id, team, t, lon, lat; sorted
by patrol_id, t; ``frame.attrs["synthetic"] is True``). What it models:

- people: the index roster's inspectors (QS-I01…, team ``QS-INSP``, each patrolling the zone the
  roster gives), then, beyond them, women's team members ``QS-W01``… (team ``QS-WET``) on every
  other Qishi zone in turn (as data/boundaries/patrol_people.csv); without a roster, ``P01``… on all zones in turn;
- working hours 08:00–18:00 Asia/Shanghai, every day: a morning shift from about 08:00 to about
  12:00 and an afternoon shift from about 13:30 to about 17:45 (the lunch break is a gap
  > 30 min, so each shift is its own patrol: two patrols a person a day);
- movement: legs between targets inside the person's zone, walked as two street-like straight
  runs (east-west then north-south, or the other way where that corner is outside the zone; a
  leg that would leave the zone gets another target) at
  the person's speed (walking 1.0–1.6 m/s, or e-bike 3.5–5.5 m/s for a third of them), GPS noise
  of about 4 m, and about 1 % of fixes lost;
- dwell stops of 5–20 min at targets: the zone's hot spots (``hotspots_per_zone`` points; the same
  whatever the seed, for the same index), and otherwise random points; about half of all targets
  are hot spots. ``hotspots`` (lon, lat arrays, e.g. the paired shops) adds places to stop at.

One month of 36 people at 10 s is about 3 million fixes in a few seconds (numpy; one np.interp
per patrol). ``start``: the first day (a date, or a datetime whose Asia/Shanghai day is used);
default: ``days`` days before today in Asia/Shanghai, so the tracks end yesterday.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import shapely

from store.patrols_repo import strings

TZ = ZoneInfo("Asia/Shanghai")
INSPECTORS_TEAM = "QS-INSP"
WOMENS_TEAM = "QS-WET"
_M_PER_DEG = 111_320.0
_NOISE_M = 4.0
_LOST = 0.01


def _people(index, people: int) -> list[tuple[str, str, str]]:
    """(person_id, team, zone_id) for `people` people (module docstring)."""
    zones = list(index.zones.zone_id)
    qs = [z for z, t in zip(index.zones.zone_id, index.zones.town) if str(t) == "企石镇"] or zones
    out: list[tuple[str, str, str]] = []
    roster = getattr(index, "roster", None)
    if roster is not None:
        tab = roster.table
        insp = tab[tab.role == "inspector"].drop_duplicates("person_id").sort_values("person_id")
        out = [(str(p), INSPECTORS_TEAM, str(z)) for p, z in zip(insp.person_id, insp.zone_id) if str(z) in zones]
        extra = [(f"QS-W{k + 1:02d}", WOMENS_TEAM, qs[(2 * k) % len(qs)]) for k in range(max(0, people - len(out)))]
        return (out + extra)[:people]
    return [(f"P{k + 1:02d}", INSPECTORS_TEAM, zones[k % len(zones)]) for k in range(people)]


def _sample_in(geom, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points (lon, lat) uniformly inside a polygon (rejection sampling on its bounds)."""
    minx, miny, maxx, maxy = geom.bounds
    got: list[np.ndarray] = []
    have = 0
    while have < n:
        x = rng.uniform(minx, maxx, 4 * n + 16)
        y = rng.uniform(miny, maxy, 4 * n + 16)
        ok = shapely.contains_xy(geom, x, y)
        got.append(np.column_stack([x[ok], y[ok]]))
        have += int(ok.sum())
    return np.concatenate(got)[:n]


def _zone_shapes(index) -> dict[str, object]:
    geoms = dict(zip(index.zones.zone_id, index.zones.geometry))
    for g in geoms.values():
        shapely.prepare(g)
    return geoms


def _first_day(start, days: int) -> date:
    if start is None:
        return datetime.now(TZ).date() - timedelta(days=days)
    if isinstance(start, datetime):
        return (start.astimezone(TZ) if start.tzinfo else start).date()
    return start


_ALONG = np.linspace(0.1, 0.9, 5)  # where a run is checked to stay inside the zone


def _legs(geom, start: np.ndarray, tgt: np.ndarray, rng):
    """Each leg's start, its corner (street-like: one straight run along each axis, the corner on the
    zone's side where there is one) and whether its runs stay inside the zone (checked at a few points)."""
    prev = np.vstack([start, tgt[:-1]])
    ew = rng.random(len(tgt)) < 0.5
    a = np.column_stack([tgt[:, 0], prev[:, 1]])
    b = np.column_stack([prev[:, 0], tgt[:, 1]])
    corner = np.where(ew[:, None], a, b)
    other = np.where(ew[:, None], b, a)
    corner = np.where(shapely.contains_xy(geom, corner[:, 0], corner[:, 1])[:, None], corner, other)
    f = _ALONG[None, :]
    xs = np.hstack([prev[:, :1] + (corner[:, :1] - prev[:, :1]) * f, corner[:, :1] + (tgt[:, :1] - corner[:, :1]) * f])
    ys = np.hstack([prev[:, 1:] + (corner[:, 1:] - prev[:, 1:]) * f, corner[:, 1:] + (tgt[:, 1:] - corner[:, 1:]) * f])
    inside = shapely.contains_xy(geom, xs, ys).all(axis=1) & shapely.contains_xy(geom, corner[:, 0], corner[:, 1])
    return prev, corner, inside


def _shift_waypoints(rng, geom, pool, home, hot, t0: float, t1: float, speed: float):
    """Waypoint times (s) and positions (lon, lat) of one shift from t0 to t1, starting at `home`.

    The places visited do not depend on the times, so a shift's legs are drawn at once: enough targets
    for the shift (each leg ends in a dwell of at least 5 min), then cut where the shift ends."""
    k = int((t1 - t0) // 300) + 2
    use_hot = (rng.random(k) < 0.5) & (len(hot) > 0)
    tgt = pool[rng.integers(len(pool), size=k)]
    if len(hot):
        tgt[use_hot] = hot[rng.integers(len(hot), size=int(use_hot.sum()))]
    start = np.asarray(home, float)[None, :]
    for _ in range(8):  # redraw the targets of legs that leave the zone (concave zones), a few rounds
        prev, corner, inside = _legs(geom, start, tgt, rng)
        if inside.all():
            break
        bad = np.flatnonzero(~inside)
        tgt[bad] = pool[rng.integers(len(pool), size=len(bad))]
    kx, ky = _M_PER_DEG * np.cos(np.radians(home[1])), _M_PER_DEG  # metres per degree
    run1 = np.hypot((corner[:, 0] - prev[:, 0]) * kx, (corner[:, 1] - prev[:, 1]) * ky) / speed
    run2 = np.hypot((tgt[:, 0] - corner[:, 0]) * kx, (tgt[:, 1] - corner[:, 1]) * ky) / speed
    dwell = rng.uniform(300, 1200, k)  # 5–20 min
    steps = np.column_stack([run1, run2, dwell]).ravel()  # corner reached, target reached, dwell over
    ts = t0 + np.r_[0.0, np.cumsum(steps)]
    xs = np.r_[home[0], np.column_stack([corner[:, 0], tgt[:, 0], tgt[:, 0]]).ravel()]
    ys = np.r_[home[1], np.column_stack([corner[:, 1], tgt[:, 1], tgt[:, 1]]).ravel()]
    end = int(np.searchsorted(ts, t1)) + 1
    return ts[:end], xs[:end], ys[:end]


def synthetic_tracks(index, days: int = 7, people: int = 36, fix_s: float = 10, seed: int = 0,
                     start: date | datetime | None = None, *, hotspots: tuple[np.ndarray, np.ndarray] | None = None,
                     hotspots_per_zone: int = 3) -> pd.DataFrame:
    """Plausible patrols of `people` people over `days` days, a fix every `fix_s` seconds (module docstring)."""
    rng = np.random.default_rng(seed)
    shapes = _zone_shapes(index)
    crew = _people(index, people)
    first = _first_day(start, days)
    hot_rng = np.random.default_rng(17)  # hot spots do not change with the seed
    zone_hot: dict[str, np.ndarray] = {}
    pools = {zid: _sample_in(g, 256, rng) for zid, g in shapes.items()}  # random targets, drawn from
    for zid, g in shapes.items():
        zone_hot[zid] = _sample_in(g, hotspots_per_zone, hot_rng)
        if hotspots is not None:  # given places (shops) too
            hx, hy = np.asarray(hotspots[0], float), np.asarray(hotspots[1], float)
            inside = shapely.contains_xy(g, hx, hy)
            zone_hot[zid] = np.vstack([zone_hot[zid], np.column_stack([hx[inside], hy[inside]])])
    speeds = np.where(rng.random(len(crew)) < 1 / 3, rng.uniform(3.5, 5.5, len(crew)), rng.uniform(1.0, 1.6, len(crew)))
    pid_parts, t_parts, x_parts, y_parts = [], [], [], []
    who: list[int] = []
    for d in range(days):
        day = first + timedelta(days=d)
        midnight = datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp()
        for k, (_, _, zid) in enumerate(crew):
            geom = shapes[zid]
            home = pools[zid][rng.integers(len(pools[zid]))]
            for a, b in ((8.0, 12.0), (13.5, 17.75)):
                t0 = midnight + a * 3600 + rng.uniform(0, 1200)
                t1 = midnight + b * 3600 - rng.uniform(0, 900)
                wt, wx, wy = _shift_waypoints(rng, geom, pools[zid], home, zone_hot[zid], t0, t1, speeds[k])
                tt = np.arange(t0, t1, fix_s)
                home = (wx[-1], wy[-1])
                pid_parts.append(np.full(len(tt), len(who) + 1, np.int64))
                t_parts.append(tt)
                x_parts.append(np.interp(tt, wt, wx))
                y_parts.append(np.interp(tt, wt, wy))
                who.append(k)
    if not who:
        from store.patrols_repo import empty_points

        out = empty_points()
        out.attrs["synthetic"] = True
        return out
    kept = rng.random(sum(len(p) for p in pid_parts)) >= _LOST  # fixes lost, then GPS noise: all at once
    pid = np.concatenate(pid_parts)[kept]
    x, y = np.concatenate(x_parts)[kept], np.concatenate(y_parts)[kept]
    noise = rng.standard_normal((2, len(x))) * _NOISE_M
    x += noise[0] / (_M_PER_DEG * np.cos(np.radians(y)))
    y += noise[1] / _M_PER_DEG
    person_of = [crew[k][0] for k in who]  # per patrol
    team_of = [crew[k][1] for k in who]
    t_ns = np.round(np.concatenate(t_parts)[kept] * 1e3).astype(np.int64) * 1_000_000  # whole milliseconds
    out = pd.DataFrame({"patrol_id": pid, "person_id": strings(person_of, pid - 1),
                        "team": strings(team_of, pid - 1),
                        "t": pd.to_datetime(t_ns, utc=True, unit="ns"),
                        "lon": np.round(x, 7), "lat": np.round(y, 7)})
    out.attrs["synthetic"] = True
    return out


def seed_demo_patrols(db, index, *, days: int = 7, fix_s: float = 30, people: int = 48, seed: int = 0,
                      start: date | datetime | None = None) -> dict:
    """`zonechief demo seed`'s patrols: the shipped illustrative teams, people and shops (when the store has
    no teams yet), and `days` days of synthetic tracks (replacing earlier synthetic ones) of the 36
    inspectors and 12 members of the women's team, a fix every 30 s (about 320k fixes a week: seeding
    stays a matter of seconds), stopping at the paired shops as well as at hot spots."""
    from store.patrols_repo import PatrolRepository
    from zonechief.patrol_reference import load_shipped
    from zonechief.patrols import import_frame

    repo = PatrolRepository.for_db(db)
    if repo.teams_frame().empty:
        load_shipped(db, index)
    shops = repo.shops_frame()
    frame = synthetic_tracks(index, days=days, people=people, fix_s=fix_s, seed=seed, start=start,
                             hotspots=(shops.lon.to_numpy(), shops.lat.to_numpy()) if len(shops) else None)
    with db.sessions.begin() as s:
        removed = repo.delete_synthetic(s)
    res = import_frame(db, index, frame, name=f"synthetic {days} days", actor="demo", synthetic=True)
    return {"patrols": len(res.imported), "points": sum(t.n_points for t in res.imported),
            "rejected": len(res.rejected), "replaced_synthetic": removed}
