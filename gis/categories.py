"""Report categories: GB/T 47678.5-2026 管理事项 (built by data/build_categories.py)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from gis.shipped import CATEGORIES as PATH


def load_categories(path: str | Path | None = None) -> pd.DataFrame:
    """The 管理事项 table (code, major_code, major_name, name, demo_weight); codes keep leading zeros."""
    df = pd.read_csv(Path(path) if path else PATH, dtype={"code": str, "major_code": str}, encoding="utf-8")
    return normalize_categories(df)


def normalize_categories(df: pd.DataFrame) -> pd.DataFrame:
    """Check a categories table and put it in canonical form: zero-padded codes, demo_weight ≥ 0 (1 where missing)."""
    if "code" not in df.columns or "name" not in df.columns:
        raise ValueError("categories need columns code and name")
    df = df.copy()
    df["code"] = df["code"].astype(str).str.strip().str.zfill(5)
    if "major_code" in df.columns:
        df["major_code"] = df["major_code"].astype(str).str.strip().str.zfill(2)
    w = pd.to_numeric(df["demo_weight"], errors="coerce") if "demo_weight" in df.columns else pd.Series(1.0, index=df.index)
    df["demo_weight"] = w.fillna(1.0).clip(lower=0.0)
    if df.empty or df["demo_weight"].sum() <= 0:
        raise ValueError("categories need at least one code with a positive demo_weight")
    return df.reset_index(drop=True)
