"""What moved between two boundary sets: per village and per zone, area gained and lost, renamed, merged,
split, new and gone, plus the gained and lost pieces for a map.

Everything is measured in METRIC (EPSG:4547, metres) and follows from one sparse overlap table: for every
pair (old feature i, new feature j) whose geometries intersect (an STRtree query), A(i, j) = area(old i ∩ new j),
computed by vectorised shapely. Zones are unions of their villages, so their table is the village table summed
by (old zone, new zone), and their map pieces are cut from the changed villages alone (no zone is ever unioned
whole). No naive overlay of everything against everything: benchmarks/bench_boundary_diff.py compares.

Definitions, the same for villages (keyed by code) and zones (keyed by zone_id); t = `tolerance_m2`:

- gained = area(new − old) = area(new) − A(same id); lost = area(old − new) = area(old) − A(same id).
  A new id gains its whole area, a gone id loses its whole area. Float noise below 1e-6 m² is zero.
- changed: gained > t or lost > t.
- renamed: the id is in both sets and its name differs (villages: the official name, else the short name);
  it may come with changed. `renamed_from` is the old name.
- new / gone: the id is only in the new / only in the old set.
- old i "went mostly into" new j when A(i, j) ≥ MOSTLY (50 %) of area(old i); new j "is mostly made of"
  old i when A(i, j) ≥ MOSTLY of area(new j).
- merged (a new j): at least two old features went mostly into j, each part > t and ≥ MIN_SHARE (10 %) of
  area(new j). j gets `merged_from` (the old ids, its own included if it kept one); every other old
  feature among them gets `merged_into` = j and the tag merged (besides gone, if its id is gone).
- split (an old i): at least two new features are mostly made of i, each part > t and ≥ MIN_SHARE of
  area(old i). i gets `split_into` (the new ids); every other new feature among them gets `split_from` = i
  and the tag split (besides new, if its id is new).
- same: none of the above.

Each change carries its tags and one `status`, the first tag in STATUS_ORDER. `gained_from` / `lost_to` list the
other ids that area came from or went to (each part > t), largest first. Zones also list `villages_in` /
`villages_out`: the village codes that are in the zone now and were not before (moved in or new), and the other
way round.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.boundaries import METRIC, BoundaryError
from gis.lookup import ZoneIndex
from gis.shipped import OVERLAP_TOLERANCE_M2

MOSTLY = 0.5  # "went mostly into" / "is mostly made of"
MIN_SHARE = 0.10  # a part of a merger or a split must be at least this share of the merged feature / split village
NOISE_M2 = 1e-6  # float noise of overlay arithmetic; below it an area is zero
STATUS_ORDER = ("merged", "split", "new", "gone", "changed", "renamed", "moved", "same")
SUMMARY_ORDER = ("same", "changed", "renamed", "moved", "new", "gone", "merged", "split")
PIECE_COLUMNS = ["level", "kind", "id", "name", "area_m2", "geometry"]


@dataclass
class Change:
    """What happened to one village (level "village", id = code) or one zone (level "zone", id = zone_id)."""

    level: str
    id: str
    status: str
    tags: tuple[str, ...]
    name_old: str | None
    name_new: str | None
    area_old_m2: float
    area_new_m2: float
    gained_m2: float
    lost_m2: float
    gained_from: list[tuple[str, float]] = field(default_factory=list)
    lost_to: list[tuple[str, float]] = field(default_factory=list)
    renamed_from: str | None = None
    merged_from: list[str] = field(default_factory=list)
    merged_into: str | None = None
    split_into: list[str] = field(default_factory=list)
    split_from: str | None = None
    zone_old: str | None = None  # villages only
    zone_new: str | None = None
    villages_in: list[str] = field(default_factory=list)  # zones only
    villages_out: list[str] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        """The name in force: the new one, or the old one for a gone feature."""
        return self.name_new if self.name_new is not None else self.name_old

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, keys in a fixed order; areas in m² rounded to 0.01."""
        d: dict[str, Any] = {"id": self.id, "status": self.status, "tags": list(self.tags),
                             "name_old": self.name_old, "name_new": self.name_new}
        if self.level == "village":
            d.update(zone_old=self.zone_old, zone_new=self.zone_new)
        d.update(area_old_m2=_r(self.area_old_m2), area_new_m2=_r(self.area_new_m2),
                 gained_m2=_r(self.gained_m2), lost_m2=_r(self.lost_m2),
                 gained_from=[[k, _r(a)] for k, a in self.gained_from], lost_to=[[k, _r(a)] for k, a in self.lost_to],
                 renamed_from=self.renamed_from, merged_from=list(self.merged_from), merged_into=self.merged_into,
                 split_into=list(self.split_into), split_from=self.split_from)
        if self.level == "zone":
            d.update(villages_in=list(self.villages_in), villages_out=list(self.villages_out))
        return d


@dataclass
class BoundaryDiff:
    """The result of diff_units: changes per village and zone, map pieces, and both village sets (WGS-84)."""

    villages: list[Change]
    zones: list[Change]
    pieces: gpd.GeoDataFrame  # level, kind (gained|lost), id, name, area_m2, geometry (WGS-84)
    old_villages: gpd.GeoDataFrame  # code, name, zone_id, geometry (WGS-84): outlines for the map
    new_villages: gpd.GeoDataFrame
    tolerance_m2: float

    def village(self, code: str) -> Change:
        """The change of one village, by code (KeyError if neither set has it)."""
        return _by_id(self.villages, code)

    def zone(self, zone_id: str) -> Change:
        """The change of one zone, by id (KeyError if neither set has it)."""
        return _by_id(self.zones, zone_id)

    def summary(self) -> dict[str, Any]:
        """Counts: features before and after (`before`, `after`), and per tag (one feature can carry several tags), per level; total areas."""
        out: dict[str, Any] = {}
        for level, changes in (("villages", self.villages), ("zones", self.zones)):
            counts: dict[str, float] = {"before": sum("new" not in c.tags for c in changes), "after": sum("gone" not in c.tags for c in changes)}
            counts.update({t: sum(t in c.tags for c in changes) for t in SUMMARY_ORDER})
            counts["gained_m2"] = _r(sum(c.gained_m2 for c in changes))
            counts["lost_m2"] = _r(sum(c.lost_m2 for c in changes))
            out[level] = counts
        return out

    def to_json(self) -> dict[str, Any]:
        """The whole diff as a plain dict (stable key order): tolerance, CRS of the areas, summary, villages, zones."""
        return {"tolerance_m2": self.tolerance_m2, "area_crs": METRIC, "summary": self.summary(),
                "villages": [c.to_dict() for c in self.villages], "zones": [c.to_dict() for c in self.zones]}


def _r(a: float) -> float:
    return round(float(a), 2)


def _by_id(changes: list[Change], key: str) -> Change:
    for c in changes:
        if c.id == key:
            return c
    raise KeyError(key)


# ------------------------------------------------------------------ inputs
@dataclass
class _Side:
    """One boundary set, in METRIC: village ids, names, zones, geometries; zone names."""

    codes: np.ndarray  # object (str)
    names: list[str | None]
    zones: np.ndarray  # object (str)
    geoms: np.ndarray  # METRIC
    wgs84: gpd.GeoDataFrame
    zone_names: dict[str, str | None]


def _text(v) -> str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    s = str(v).strip()
    return s or None


def _side(units, what: str) -> _Side:
    """A units frame (ZoneIndex.units layout) or a ZoneIndex, checked and projected."""
    zone_names: dict[str, str | None] = {}
    if isinstance(units, ZoneIndex):  # its zone names (given, or made from the villages' names) are authoritative
        zone_names = {str(z): _text(n) for z, n in zip(units.zones["zone_id"], units.zones["name"])}
        units = units.units
    missing = [c for c in ("unit_id", "zone_id", "geometry") if c not in units.columns]
    if missing:
        raise BoundaryError(f"{what} boundaries: missing columns {missing} (expected the ZoneIndex.units layout)")
    if units.crs is None:
        raise BoundaryError(f"{what} boundaries: no CRS")
    codes = units["unit_id"].astype(str).to_numpy(dtype=object)
    dup = sorted(set(pd.Series(codes)[pd.Series(codes).duplicated()]))
    if dup:
        raise BoundaryError(f"{what} boundaries: codes used by more than one feature: {', '.join(dup[:20])}")
    bad = [codes[k] for k, g in enumerate(units.geometry.values) if g is None or g.is_empty]
    if bad:
        raise BoundaryError(f"{what} boundaries: features without geometry: {', '.join(bad[:20])}")
    col = lambda c: [_text(v) for v in units[c]] if c in units.columns else [None] * len(units)  # noqa: E731
    names = [n or s for n, s in zip(col("village_name"), col("village_short_name"))]
    zones = units["zone_id"].astype(str).to_numpy(dtype=object)
    if not zone_names:  # the most common zone_name of its villages (one stray village does not rename a zone)
        counts: dict[str, Counter] = {z: Counter() for z in zones}
        for z, name in zip(zones, col("zone_name")):
            if name is not None:
                counts[z][name] += 1
        zone_names = {z: min(c, key=lambda k: (-c[k], k)) if c else None for z, c in counts.items()}
    wgs84 = gpd.GeoDataFrame({"code": codes, "name": names, "zone_id": zones},
                             geometry=units.geometry.values, crs=units.crs).to_crs(4326)
    geoms = np.asarray(gpd.GeoSeries(units.geometry.values, crs=units.crs).to_crs(METRIC).values, dtype=object)
    return _Side(codes, names, zones, geoms, wgs84, zone_names)


# ------------------------------------------------------------------ the overlap table
def _overlaps(old: _Side, new: _Side) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, A(i, j)) for every intersecting pair with a positive overlap area.

    A feature equal to its namesake on the other side (same code, same coordinates) is "unchanged": its own
    pair is its area, with no overlay, and a pair of two unchanged features with different codes is not
    overlaid at all (they overlap only as much as the set overlaps itself, which validation bounds).
    """
    a_all, b_all = old.geoms, new.geoms
    if len(a_all) == 0 or len(b_all) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    pos = {c: k for k, c in enumerate(new.codes)}
    both = np.array([[k, pos[c]] for k, c in enumerate(old.codes) if c in pos], dtype=int).reshape(-1, 2)
    same_o, same_n = np.zeros(len(a_all), bool), np.zeros(len(b_all), bool)
    eq = shapely.equals_exact(a_all[both[:, 0]], b_all[both[:, 1]], tolerance=0.0)
    same_o[both[eq, 0]] = same_n[both[eq, 1]] = True
    i, j = shapely.STRtree(b_all).query(a_all, predicate="intersects")
    own = old.codes[i] == new.codes[j]
    keep = ~(same_o[i] & same_n[j] & ~own)
    i, j, own = i[keep], j[keep], own[keep]
    area = np.zeros(len(i))
    exact = own & same_o[i]
    area[exact] = shapely.area(a_all[i[exact]])
    cut = np.flatnonzero(~exact)
    a, b = a_all[i[cut]], b_all[j[cut]]
    shapely.prepare(a)
    # Neighbours only touch: a prepared predicate is far cheaper than an overlay that yields a line.
    inside = ~shapely.touches(a, b)
    area[cut[inside]] = shapely.area(shapely.intersection(a[inside], b[inside]))
    keep = area > NOISE_M2
    return i[keep], j[keep], area[keep]


@dataclass
class _Table:
    """Ids on both sides, their areas and the sparse overlap table, for one level."""

    old_ids: list[str]
    new_ids: list[str]
    old_area: np.ndarray
    new_area: np.ndarray
    i: np.ndarray
    j: np.ndarray
    a: np.ndarray


def _classify(level: str, t: _Table, old_names: dict, new_names: dict, tol: float) -> dict[str, Change]:
    """Changes per id from an overlap table (see the module docstring for the rules)."""
    old_pos = {k: n for n, k in enumerate(t.old_ids)}
    new_pos = {k: n for n, k in enumerate(t.new_ids)}
    kept = np.zeros(len(t.old_ids))  # A(id, id) per old position
    same_id = np.array([t.old_ids[i] == t.new_ids[j] for i, j in zip(t.i, t.j)], dtype=bool)
    np.add.at(kept, t.i[same_id], t.a[same_id])
    big = t.a > tol
    into = big & (t.a >= MOSTLY * t.old_area[t.i])  # old i went mostly into new j
    made = big & (t.a >= MOSTLY * t.new_area[t.j])  # new j is mostly made of old i
    merge_part = into & (t.a >= MIN_SHARE * t.new_area[t.j])
    split_part = made & (t.a >= MIN_SHARE * t.old_area[t.i])
    merged_from: dict[int, list[int]] = {}
    split_into: dict[int, list[int]] = {}
    for k in np.flatnonzero(merge_part):
        merged_from.setdefault(int(t.j[k]), []).append(int(t.i[k]))
    for k in np.flatnonzero(split_part):
        split_into.setdefault(int(t.i[k]), []).append(int(t.j[k]))
    merged_from = {j: v for j, v in merged_from.items() if len(v) >= 2}
    split_into = {i: v for i, v in split_into.items() if len(v) >= 2}
    merged_into = {i: j for j, v in merged_from.items() for i in v}
    split_from = {j: i for i, v in split_into.items() for j in v}
    flows_from: dict[str, list[tuple[str, float]]] = {}
    flows_to: dict[str, list[tuple[str, float]]] = {}
    for k in np.flatnonzero(big & ~same_id):
        o, n, a = t.old_ids[t.i[k]], t.new_ids[t.j[k]], float(t.a[k])
        flows_from.setdefault(n, []).append((o, a))
        flows_to.setdefault(o, []).append((n, a))

    out: dict[str, Change] = {}
    for key in sorted(set(t.old_ids) | set(t.new_ids)):
        io, jn = old_pos.get(key), new_pos.get(key)
        a_old = float(t.old_area[io]) if io is not None else 0.0
        a_new = float(t.new_area[jn]) if jn is not None else 0.0
        both = float(kept[io]) if io is not None and jn is not None else 0.0
        gained, lost = _clean(a_new - both), _clean(a_old - both)
        name_old, name_new = old_names.get(key), new_names.get(key)
        tags = []
        if jn is not None and jn in merged_from or io is not None and io in merged_into:
            tags.append("merged")
        if io is not None and io in split_into or jn is not None and jn in split_from:
            tags.append("split")
        if io is None:
            tags.append("new")
        if jn is None:
            tags.append("gone")
        if io is not None and jn is not None:
            if gained > tol or lost > tol:
                tags.append("changed")
            if name_old != name_new:
                tags.append("renamed")
        if not tags:
            tags.append("same")
        c = Change(level, key, tags[0], tuple(tags), name_old, name_new, a_old, a_new, gained, lost,
                   gained_from=sorted(flows_from.get(key, []), key=lambda p: (-p[1], p[0])),
                   lost_to=sorted(flows_to.get(key, []), key=lambda p: (-p[1], p[0])),
                   renamed_from=name_old if "renamed" in tags else None)
        if jn is not None and jn in merged_from:
            c.merged_from = sorted(t.old_ids[i] for i in merged_from[jn])
        if io is not None and io in merged_into and t.new_ids[merged_into[io]] != key:
            c.merged_into = t.new_ids[merged_into[io]]
        if io is not None and io in split_into:
            c.split_into = sorted(t.new_ids[j] for j in split_into[io])
        if jn is not None and jn in split_from and t.old_ids[split_from[jn]] != key:
            c.split_from = t.old_ids[split_from[jn]]
        out[key] = c
    return out


def _clean(a: float) -> float:
    return 0.0 if a < NOISE_M2 else a


# ------------------------------------------------------------------ pieces
def _polygonal(g):
    """The polygonal part of an overlay result (drops the lines and points of touching edges)."""
    if g is None or g.is_empty:
        return None
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    polys = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty]
    return shapely.union_all(polys) if polys else None


def _pieces(level: str, changes: dict[str, Change], old: dict, new: dict, tol: float) -> list[dict]:
    """Gained (new − old) and lost (old − new) geometries of every change above tolerance, in METRIC."""
    empty = shapely.Polygon()
    rows = []
    for kind, pick, first, second in (("gained", lambda c: c.gained_m2, new, old), ("lost", lambda c: c.lost_m2, old, new)):
        keys = [k for k, c in changes.items() if pick(c) > tol]
        a = np.array([first.get(k, empty) for k in keys], dtype=object)
        b = np.array([second.get(k, empty) for k in keys], dtype=object)
        geoms = shapely.difference(a, b) if len(keys) else []
        for k, g in zip(keys, geoms):
            g = _polygonal(g)
            if g is not None:
                rows.append({"level": level, "kind": kind, "id": k, "name": changes[k].name,
                             "area_m2": float(pick(changes[k])), "geometry": g})
    return rows


def _zone_pieces(zones: dict[str, Change], villages: dict[str, Change], o: _Side, n: _Side, i: np.ndarray,
                 j: np.ndarray, tol: float) -> list[dict]:
    """Gained and lost geometries per zone, without unioning whole zones.

    new Z − old Z is the union, over the villages k now in Z, of k − (the old villages of Z that overlap k);
    a village unchanged and in Z on both sides adds nothing, so only the others are cut (likewise for lost).
    """
    rows = []
    unchanged = {c.id for c in villages.values() if c.gained_m2 == 0 and c.lost_m2 == 0 and c.zone_old == c.zone_new}
    for kind, first, second, fi, si in (("gained", n, o, j, i), ("lost", o, n, i, j)):
        wanted = {z for z, c in zones.items() if (c.gained_m2 if kind == "gained" else c.lost_m2) > tol}
        overlapping: dict[int, list[int]] = {}
        for a, b in zip(fi.tolist(), si.tolist()):
            overlapping.setdefault(a, []).append(b)
        ks = [k for k in range(len(first.codes)) if first.zones[k] in wanted and first.codes[k] not in unchanged]
        cutters = [shapely.union_all(second.geoms[[b for b in overlapping.get(k, []) if second.zones[b] == first.zones[k]]])
                   for k in ks]
        parts = shapely.difference(first.geoms[ks], np.array(cutters, dtype=object)) if ks else []
        by_zone: dict[str, list] = {}
        for k, g in zip(ks, parts):
            g = _polygonal(g)
            if g is not None:
                by_zone.setdefault(str(first.zones[k]), []).append(g)
        for z in sorted(by_zone):
            g = _polygonal(shapely.union_all(by_zone[z]))
            if g is not None:
                rows.append({"level": "zone", "kind": kind, "id": z, "name": zones[z].name,
                             "area_m2": float(zones[z].gained_m2 if kind == "gained" else zones[z].lost_m2), "geometry": g})
    return rows


# ------------------------------------------------------------------ the diff
def diff_units(old, new, *, tolerance_m2: float = OVERLAP_TOLERANCE_M2) -> BoundaryDiff:
    """Compare two boundary sets: units frames in the ZoneIndex.units layout (or ZoneIndex objects).

    Villages are matched by code (unit_id), zones by zone_id; the rules are in the module docstring.
    Areas are m² in EPSG:4547. Raises BoundaryError for duplicate codes, missing columns or empty geometries.
    """
    tol = float(tolerance_m2)
    o, n = _side(old, "old"), _side(new, "new")
    i, j, a = _overlaps(o, n)
    vt = _Table(list(o.codes), list(n.codes), shapely.area(o.geoms), shapely.area(n.geoms), i, j, a)
    villages = _classify("village", vt, dict(zip(o.codes, o.names)), dict(zip(n.codes, n.names)), tol)
    zone_old, zone_new = dict(zip(o.codes, o.zones)), dict(zip(n.codes, n.zones))
    for c in villages.values():
        c.zone_old, c.zone_new = zone_old.get(c.id), zone_new.get(c.id)
        if c.zone_old is not None and c.zone_new is not None and c.zone_old != c.zone_new:
            c.tags = tuple(t for t in c.tags if t != "same") + ("moved",)
            c.status = c.tags[0]

    # Zones: the village table summed by (old zone, new zone).
    zo, zo_idx = np.unique(o.zones.astype(str), return_inverse=True) if len(o.zones) else (np.array([]), np.array([], int))
    zn, zn_idx = np.unique(n.zones.astype(str), return_inverse=True) if len(n.zones) else (np.array([]), np.array([], int))
    pairs = pd.DataFrame({"i": zo_idx[i], "j": zn_idx[j], "a": a}).groupby(["i", "j"], sort=True)["a"].sum()
    zt = _Table(list(zo), list(zn), np.bincount(zo_idx, shapely.area(o.geoms), len(zo)),
                np.bincount(zn_idx, shapely.area(n.geoms), len(zn)),
                pairs.index.get_level_values(0).to_numpy(int), pairs.index.get_level_values(1).to_numpy(int),
                pairs.to_numpy(float))
    zones = _classify("zone", zt, o.zone_names, n.zone_names, tol)
    members_old = pd.Series(o.codes).groupby(o.zones).apply(set).to_dict() if len(o.codes) else {}
    members_new = pd.Series(n.codes).groupby(n.zones).apply(set).to_dict() if len(n.codes) else {}
    for c in zones.values():
        before, after = members_old.get(c.id, set()), members_new.get(c.id, set())
        c.villages_in, c.villages_out = sorted(after - before), sorted(before - after)

    rows = _pieces("village", villages, dict(zip(o.codes, o.geoms)), dict(zip(n.codes, n.geoms)), tol)
    rows += _zone_pieces(zones, villages, o, n, i, j, tol)
    pieces = gpd.GeoDataFrame(rows, columns=PIECE_COLUMNS, geometry="geometry", crs=METRIC).to_crs(4326)
    return BoundaryDiff(list(villages.values()), list(zones.values()), pieces, o.wgs84, n.wgs84, tol)
