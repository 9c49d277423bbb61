#!/usr/bin/env python3
"""Regenerate the illustrative patrol reference data in data/boundaries/ (issue 17).

Run from the repository root: .venv/bin/python data/build_patrol_reference.py

Writes patrol_teams.csv (the 企石 inspectors and the women's enforcement team), patrol_people.csv
(the roster's 36 inspectors and 12 illustrative members of the women's team) and paired_shops.csv
(24 illustrative shops placed inside 企石's zones). Deterministic: rerunning reproduces the files
byte for byte. Nothing here is real: the source gives only counts (36 inspectors; the women's
team's 432 patrols and 290+ paired shops).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "data" / "boundaries"
WOMEN = 12
SHOPS = 24
NOTE = "illustrative"


def main() -> None:
    """Write the three CSV files."""
    from gis.lookup import ZoneIndex

    idx = ZoneIndex.load(OUT / "villages.geojson", OUT / "roster.csv")
    qs = idx.zones[idx.zones.town == "企石镇"].sort_values("zone_id")
    insp = idx.roster.table[(idx.roster.table.role == "inspector") & idx.roster.table.zone_id.isin(qs.zone_id)]
    insp = insp.drop_duplicates("person_id").sort_values("person_id")
    with open(OUT / "patrol_teams.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["team_id", "name", "kind", "town", "note"])
        w.writerow(["QS-INSP", "企石镇巡查员队伍 (inspectors)", "inspectors", "企石镇", NOTE])
        w.writerow(["QS-WET", "企石镇女子执法队 (women's enforcement team)", "womens_team", "企石镇", NOTE])
    women = [(f"QS-W{k + 1:02d}", qs.zone_id.iloc[(2 * k) % len(qs)]) for k in range(WOMEN)]
    with open(OUT / "patrol_people.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["person_id", "name", "team_id", "zone_id", "note"])
        for r in insp.itertuples():
            w.writerow([r.person_id, r.name, "QS-INSP", r.zone_id, "sample placeholder"])
        for pid, zone in women:
            w.writerow([pid, f"女子执法队员 {pid}", "QS-WET", zone, NOTE])
    rng = np.random.default_rng(20261203)
    with open(OUT / "paired_shops.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["shop_id", "name", "team_id", "person_id", "lon", "lat", "crs", "note"])
        for k in range(SHOPS):
            pid, zone = women[k % WOMEN]
            geom = qs.set_index("zone_id").geometry[zone].buffer(-0.001)
            minx, miny, maxx, maxy = geom.bounds
            while True:  # a point well inside the zone
                x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                if shapely.contains_xy(geom, x, y):
                    break
            w.writerow([f"QS-S{k + 1:03d}", f"示例商铺 {k + 1:02d} (illustrative shop)", "QS-WET", pid,
                        f"{x:.6f}", f"{y:.6f}", "wgs84", NOTE])
    print(f"wrote patrol_teams.csv, patrol_people.csv ({len(insp)} + {WOMEN}), paired_shops.csv ({SHOPS}) to {OUT}")


if __name__ == "__main__":
    main()
