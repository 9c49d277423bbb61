#!/usr/bin/env python3
"""Regenerate data/boundaries/ from ../shared/reference.

Run from the repository root:  .venv/bin/python data/build_boundaries.py [--reference DIR]

Inputs (read-only reference data, not shipped):
  villages_nbs2023.csv   official names and 12-digit codes (NBS 2023)
  towns_wgs84.geojson    approximate town outlines (WGS-84)
Inputs (committed, editable):
  data/boundaries/zone_groups.csv   which village-level units form each zone

Outputs (committed): towns.geojson, villages.geojson, zones.geojson,
roster.csv, facilities.geojson. The output is deterministic: rerunning the
script reproduces the committed files byte for byte.

Village cells are ILLUSTRATIVE: no public source gives village polygons, so
each town is tiled by a centroidal Voronoi partition (k-means seeds on a fixed
random sample). Town outlines are the reference generalized by ~30 m.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pyproj
import shapely
from shapely.geometry import MultiPoint, Point, mapping, shape
from shapely.ops import polygonize, unary_union

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "boundaries"
GRID = 1e-6  # output coordinate grid in degrees (~0.1 m); exact shared edges
SIMPLIFY_M = 30.0  # generalization of the town outlines
METRIC = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Kruger CM 114E: metres over Dongguan
SEED = 20261127

TOWNS = {
    "441900105": {"name": "企石镇", "name_en": "Qishi", "prefix": "QS"},
    "441900112": {"name": "樟木头镇", "name_en": "Zhangmutou", "prefix": "ZMT"},
}

_fwd = pyproj.Transformer.from_crs("EPSG:4326", METRIC, always_xy=True).transform
_inv = pyproj.Transformer.from_crs(METRIC, "EPSG:4326", always_xy=True).transform


def to_m(g):
    return shapely.transform(g, lambda xy: np.column_stack(_fwd(xy[:, 0], xy[:, 1])))


def to_deg(g):
    return shapely.transform(g, lambda xy: np.column_stack(_inv(xy[:, 0], xy[:, 1])))


def kmeans_seeds(poly_m, k: int, rng: np.random.Generator, n_sample: int = 20000, iters: int = 60):
    """Centroidal seeds: Lloyd's k-means on a uniform sample of the polygon."""
    minx, miny, maxx, maxy = poly_m.bounds
    pts = np.empty((0, 2))
    while len(pts) < n_sample:
        cand = rng.uniform([minx, miny], [maxx, maxy], size=(n_sample, 2))
        inside = shapely.contains_xy(poly_m, cand[:, 0], cand[:, 1])
        pts = np.vstack([pts, cand[inside]])
    pts = pts[:n_sample]
    centers = pts[rng.choice(len(pts), k, replace=False)]
    for _ in range(iters):
        d = ((pts[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
        lab = d.argmin(1)
        centers = np.array([pts[lab == j].mean(0) for j in range(k)])
    # order seeds north-west to south-east so codes are laid out readably
    order = np.lexsort((centers[:, 0], -np.round(centers[:, 1], -3)))
    return centers[order]


def tile_town(town_deg, seeds_m):
    """Exact tiling of town_deg into one face-set per seed, on the GRID."""
    town_m = to_m(town_deg)
    cells_m = shapely.voronoi_polygons(MultiPoint(seeds_m), extend_to=town_m.buffer(2000))
    cells_m = [c for c in cells_m.geoms]
    lines = [town_deg.boundary] + [to_deg(c.intersection(town_m.buffer(500))).boundary for c in cells_m]
    noded = shapely.set_precision(unary_union(lines), GRID)
    faces = [f for f in polygonize(noded.geoms if hasattr(noded, "geoms") else [noded])]
    faces = [f for f in faces if town_deg.contains(f.representative_point())]
    owner = []
    for f in faces:
        rp = to_m(f.representative_point())
        owner.append(int(np.argmin([rp.distance(Point(s)) for s in seeds_m])))
    groups = {j: [f for f, o in zip(faces, owner) if o == j] for j in range(len(seeds_m))}
    villages = {j: unary_union(fs) for j, fs in groups.items()}
    # Detached fragments (Voronoi cells cut by a concave outline) join the neighbour
    # they share most border with, so every village is one polygon.
    for _ in range(10):
        moved = False
        for j, g in list(villages.items()):
            if g.geom_type != "MultiPolygon":
                continue
            parts = sorted(g.geoms, key=lambda p: p.area, reverse=True)
            for part in parts[1:]:
                best, best_len = None, 0.0
                for k, h in villages.items():
                    if k == j:
                        continue
                    shared = part.boundary.intersection(h.boundary).length
                    if shared > best_len:
                        best, best_len = k, shared
                if best is not None:
                    villages[best] = unary_union([villages[best], part])
                    villages[j] = unary_union([p for p in parts if p is not part and not p.equals(part)])
                    moved = True
                    break
        if not moved:
            break
    out = {j: shapely.set_precision(shapely.normalize(g), GRID) for j, g in villages.items()}
    # Snap-rounding the cut points moves the outline by <0.1 m, so the town is
    # redefined as the union of its cells: the tiling is then exact by construction.
    town = shapely.set_precision(shapely.normalize(unary_union(list(out.values()))), GRID)
    return out, town


def check_tiling(town, parts: list, label: str):
    town_m = to_m(town)
    parts_m = [to_m(p) for p in parts]
    overlap = sum(parts_m[i].intersection(parts_m[j]).area for i in range(len(parts_m)) for j in range(i + 1, len(parts_m)))
    gap = town_m.symmetric_difference(unary_union(parts_m)).area
    if overlap > 1e-3 or gap > 1e-3:
        sys.exit(f"{label}: tiling not exact (overlap {overlap:.4f} m², gap {gap:.4f} m²)")
    return overlap, gap


def feature_collection(name: str, feats: list) -> str:
    """Deterministic GeoJSON text: one feature per line, coordinates at 6 decimals."""

    def rnd(obj):
        if isinstance(obj, float):
            return float(f"{obj:.6f}")
        if isinstance(obj, (list, tuple)):
            return [rnd(o) for o in obj]
        return obj

    lines = []
    for props, geom in feats:
        gj = mapping(geom)
        gj = {"type": gj["type"], "coordinates": rnd(gj["coordinates"])}
        lines.append(json.dumps({"type": "Feature", "properties": props, "geometry": gj}, ensure_ascii=False, separators=(",", ":")))
    return '{"type":"FeatureCollection","name":"%s",\n"features":[\n%s\n]}\n' % (name, ",\n".join(lines))


def adjacent(a, b) -> bool:
    return a.boundary.intersection(b.boundary).length > 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    args = ap.parse_args(argv)
    ref = args.reference
    rng = np.random.default_rng(SEED)

    with open(ref / "villages_nbs2023.csv", encoding="utf-8") as fh:
        units = list(csv.DictReader(fh))
    towns_ref = {f["properties"]["code"]: shape(f["geometry"]) for f in json.loads((ref / "towns_wgs84.geojson").read_text(encoding="utf-8"))["features"]}

    towns, villages = {}, {}
    for tcode, meta in TOWNS.items():
        ref_m = to_m(towns_ref[tcode])
        gen_m = ref_m.simplify(SIMPLIFY_M, preserve_topology=True)
        town = shapely.set_precision(shapely.normalize(to_deg(gen_m)), GRID)
        tunits = sorted((u for u in units if u["town_code9"] == tcode), key=lambda u: u["code12"])
        seeds = kmeans_seeds(to_m(town), len(tunits), rng)
        cells, town = tile_town(town, seeds)
        towns[tcode] = town
        check_tiling(town, list(cells.values()), meta["name"])
        ratio = to_m(town).area / ref_m.area
        if abs(ratio - 1) > 0.02:
            sys.exit(f"{meta['name']}: generalized area off by {100 * (ratio - 1):.2f}%")
        for j, u in enumerate(tunits):
            villages[u["code12"]] = {"unit": u, "geom": cells[j]}
        print(f"{meta['name']}: {len(town.exterior.coords)} vertices, area {to_m(town).area / 1e6:.2f} km² "
              f"({100 * (ratio - 1):+.2f}% vs reference), {len(tunits)} cells", file=sys.stderr)

    # zones from the editable grouping table
    with open(OUT / "zone_groups.csv", encoding="utf-8") as fh:
        groups = list(csv.DictReader(fh))
    zone_members: dict[str, list[str]] = {}
    for row in groups:
        zone_members.setdefault(row["zone_id"], []).append(row["village_code"])
    seen = [c for cs in zone_members.values() for c in cs]
    if sorted(seen) != sorted(villages):
        sys.exit("zone_groups.csv must list every village code exactly once")
    zones = {}
    for zid, codes in zone_members.items():
        geoms = [villages[c]["geom"] for c in codes]
        if len(codes) > 1 and not all(any(adjacent(g, h) for h in geoms if h is not g) for g in geoms):
            sys.exit(f"{zid}: villages {codes} are not adjacent")
        geom = shapely.set_precision(shapely.normalize(unary_union(geoms)), GRID)
        tcode = villages[codes[0]]["unit"]["town_code9"]
        zones[zid] = {"geom": geom, "codes": codes, "town_code": tcode}
        for c in codes:
            villages[c]["zone_id"] = zid
    for tcode in TOWNS:
        check_tiling(towns[tcode], [z["geom"] for z in zones.values() if z["town_code"] == tcode], f"zones of {tcode}")

    # ---- write geography
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "towns.geojson").write_text(feature_collection("towns", [
        ({"town_code": t, "name": TOWNS[t]["name"], "name_en": TOWNS[t]["name_en"], "geometry_quality": "approximate"}, g)
        for t, g in towns.items()]), encoding="utf-8")
    (OUT / "villages.geojson").write_text(feature_collection("villages", [
        ({"code": c, "name": v["unit"]["name_official"], "short_name": v["unit"]["short_name"],
          "town": v["unit"]["town"], "town_code": v["unit"]["town_code9"], "zone_id": v["zone_id"],
          "geometry_quality": "illustrative"}, v["geom"])
        for c, v in sorted(villages.items())]), encoding="utf-8")
    short = {c: v["unit"]["short_name"] for c, v in villages.items()}
    (OUT / "zones.geojson").write_text(feature_collection("zones", [
        ({"zone_id": z, "name": "、".join(short[c] for c in d["codes"]) + "片区",
          "town": TOWNS[d["town_code"]]["name"], "town_code": d["town_code"],
          "village_codes": ",".join(d["codes"]), "geometry_quality": "illustrative"}, d["geom"])
        for z, d in sorted(zones.items())]), encoding="utf-8")

    # ---- roster (sample placeholders)
    write_roster(zones, rng)
    write_facilities(zones, rng)
    print("wrote", ", ".join(sorted(p.name for p in OUT.iterdir())), file=sys.stderr)


ROSTER_FROM = "2024-01-01"
CHANGEOVER = "2025-07-01"


def write_roster(zones, rng):
    rows = []
    zmt = sorted(z for z in zones if z.startswith("ZMT"))
    qs = sorted(z for z in zones if z.startswith("QS"))
    for i, z in enumerate(zmt, 1):
        rows.append(person(f"ZMT-C{i:02d}", "chief", f"片长 {z}", [z], i))
    # One hand-over, so that time-dependent lookups have something to show:
    # ZMT-03's first chief served until 2025-07-01, then ZMT-C03 took over.
    rows.append(person("ZMT-C10", "chief", "片长 ZMT-03（前任）", ["ZMT-03"], 10, "2024-01-01", CHANGEOVER))
    rows[2][0]["effective_from"] = CHANGEOVER
    # Qishi: 17 chiefs for 20 villages; 3 chiefs each cover two adjacent villages,
    # chosen greedily by longest shared border (illustrative).
    pairs, used = [], set()
    cand = sorted(((zones[a]["geom"].boundary.intersection(zones[b]["geom"].boundary).length, a, b)
                   for i, a in enumerate(qs) for b in qs[i + 1:]), reverse=True)
    for length, a, b in cand:
        if length > 0 and a not in used and b not in used and len(pairs) < 3:
            pairs.append((a, b))
            used |= {a, b}
    covers = [[a, b] for a, b in pairs] + [[z] for z in qs if z not in used]
    covers.sort(key=lambda zs: zs[0])
    for i, zs in enumerate(covers, 1):
        rows.append(person(f"QS-C{i:02d}", "chief", f"片长 {'/'.join(zs)}", zs, 100 + i))
    # 36 patrol inspectors over 20 villages: two in each of the 16 largest, one elsewhere
    by_area = sorted(qs, key=lambda z: -to_m(zones[z]["geom"]).area)
    n = 0
    for z in qs:
        for _ in range(2 if z in by_area[:16] else 1):
            n += 1
            rows.append(person(f"QS-I{n:02d}", "inspector", f"巡查员 QS-I{n:02d}", [z], 200 + n))
    assert n == 36 and len(covers) == 17
    with open(OUT / "roster.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0][0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerows(r)


def person(pid, role, name, zone_ids, k, start=ROSTER_FROM, end=""):
    phone = f"0769-8{k:07d}"  # placeholder, not a real number
    return [{"person_id": pid, "role": role, "name": name, "phone": phone, "zone_id": z,
             "effective_from": start, "effective_to": end, "note": "sample placeholder"} for z in zone_ids]


def random_point_in(geom, rng, margin_m=30.0):
    inner = to_deg(to_m(geom).buffer(-margin_m))
    minx, miny, maxx, maxy = inner.bounds
    while True:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if inner.contains(Point(x, y)):
            return Point(round(x, 6), round(y, 6))


def write_facilities(zones, rng):
    feats = []
    zmt = sorted(z for z in zones if z.startswith("ZMT"))
    qs = sorted(z for z in zones if z.startswith("QS"))
    for i in range(15):
        z = zmt[i % len(zmt)]
        feats.append(({"facility_id": f"ZMT-WC-{i + 1:02d}", "kind": "public_toilet", "name": f"樟木头公厕 {i + 1:02d}",
                       "service_code": f"DGCS-441900112-WC{i + 1:03d}", "town": "樟木头镇", "zone_id": z,
                       "geometry_quality": "illustrative"}, random_point_in(zones[z]["geom"], rng)))
    picks = [("chengguan_station", "城管驿站", 2), ("community_service_station", "社区服务站", 3)]
    k = 0
    for kind, label, n in picks:
        for i in range(n):
            z = qs[(k * 7 + 3) % len(qs)]
            k += 1
            feats.append(({"facility_id": f"QS-{'YZ' if kind.startswith('cheng') else 'FW'}-{i + 1:02d}", "kind": kind,
                           "name": f"企石{label} {i + 1:02d}",
                           "service_code": f"DGCS-441900105-{'YZ' if kind.startswith('cheng') else 'FW'}{i + 1:03d}",
                           "town": "企石镇", "zone_id": z, "geometry_quality": "illustrative"},
                          random_point_in(zones[z]["geom"], rng)))
    (OUT / "facilities.geojson").write_text(feature_collection("facilities", feats), encoding="utf-8")


if __name__ == "__main__":
    main()
