#!/usr/bin/env python3
"""Regenerate data/categories.csv (GB/T 47678.5-2026 管理事项) from ../shared/reference.

Run from the repository root: .venv/bin/python data/build_categories.py [--reference DIR]

Only the 250 管理事项 (issue kinds) are report categories; 管理部件 (facility
kinds) are not. `demo_weight` is this project's illustrative guess of how often
each kind is reported, used only by `zonechief demo seed`.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Frequent kinds in city-management hotlines (illustrative weights for demo data).
WEIGHTS = {
    "06010": 30, "06036": 25, "06012": 20, "09006": 22, "09005": 18, "07001": 18, "09009": 15,
    "09010": 12, "06042": 12, "06013": 10, "06028": 8, "06027": 6, "06001": 8, "06007": 6,
    "08002": 6, "08004": 5, "06011": 8, "09011": 8, "06041": 6, "03001": 5, "01001": 4,
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    args = ap.parse_args(argv)
    with open(args.reference / "gbt47678_5_2026_categories.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "管理事项"]
    codes = [r["code5"] for r in rows]
    assert len(codes) == len(set(codes)), "duplicate 管理事项 codes"
    out = ROOT / "data" / "categories.csv"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["code", "major_code", "major_name", "name", "demo_weight"])
        for r in sorted(rows, key=lambda r: r["code5"]):
            w.writerow([r["code5"], r["major_code"], r["major_name"], r["name"], WEIGHTS.get(r["code5"], 1)])
    print(f"wrote {out} ({len(rows)} categories)")


if __name__ == "__main__":
    main()
