"""Write data/boundaries/stations.csv: the existing stations siting keeps open (gis/siting.py).

Public source: 企石镇 has 2 城管驿站 and 3 社区服务站; their positions are not public. The
positions here are those of the same stations in facilities.geojson, which are ILLUSTRATIVE
(random points in a zone, see build_boundaries.py). Rerun after facilities.geojson changes:

    .venv/bin/python data/build_stations.py

Replace the file, or pass `--stations FILE` / ZONECHIEF_STATIONS, when real positions are known.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent / "boundaries"
KINDS = {"chengguan_station": "城管驿站", "community_service_station": "社区服务站"}
COLUMNS = ["station_id", "name", "kind", "town", "lon", "lat", "crs", "note"]


def main() -> None:
    """Read facilities.geojson, keep the stations, write stations.csv sorted by id (byte-stable)."""
    fc = json.loads((HERE / "facilities.geojson").read_text(encoding="utf-8"))
    rows = []
    for f in fc["features"]:
        p = f["properties"]
        if p.get("kind") not in KINDS:
            continue
        lon, lat = f["geometry"]["coordinates"][:2]
        rows.append({"station_id": p["facility_id"], "name": p["name"], "kind": p["kind"], "town": p["town"],
                     "lon": f"{lon:.6f}", "lat": f"{lat:.6f}", "crs": "wgs84",
                     "note": f"illustrative position ({KINDS[p['kind']]}; real position not public)"})
    rows.sort(key=lambda r: r["station_id"])
    with open(HERE / "stations.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} stations to {HERE / 'stations.csv'}")


if __name__ == "__main__":
    main()
