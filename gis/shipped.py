"""Where the reference data shipped with zonechief lies (a location, not a setting)."""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "boundaries"  # villages, roster, facilities
CATEGORIES = DATA_DIR.parent / "categories.csv"  # GB/T 47678.5 管理事项 (data/build_categories.py)
SNAP_TOLERANCE_M = 100.0  # default: points outside every zone but this close attach to the nearest one
OVERLAP_TOLERANCE_M2 = 1.0  # default: overlaps or gaps between zones larger than this are reported
