"""Report categories: GB/T 47678.5-2026 管理事项 (built by data/build_categories.py)."""
from __future__ import annotations

from functools import lru_cache
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


FACILITY_CATEGORIES = PATH.parent / "facility_categories.csv"  # kind,code,rank: the codes most reported at each kind


@lru_cache(maxsize=4)
def load_facility_categories(path: str | Path | None = None) -> pd.DataFrame:
    """The common codes of each facility kind (kind, code, rank), sorted by kind then rank."""
    df = pd.read_csv(Path(path) if path else FACILITY_CATEGORIES, dtype={"kind": str, "code": str}, encoding="utf-8")
    if not {"kind", "code", "rank"} <= set(df.columns):
        raise ValueError("facility categories need columns kind, code and rank")
    df["code"] = df["code"].str.strip().str.zfill(5)
    return df.sort_values(["kind", "rank"], kind="stable").reset_index(drop=True)


def categories_for_kind(kind: str | None, categories: pd.DataFrame, common: pd.DataFrame | None = None) -> pd.DataFrame:
    """`categories` with the codes common at facilities of `kind` first, in rank order, then the rest in
    catalogue order; column `common` marks the first ones. Codes not in `categories` are left out."""
    common = load_facility_categories() if common is None else common
    ranked = [c for c in common.loc[common["kind"] == kind, "code"] if c in set(categories["code"])]
    first = categories.set_index("code").loc[list(dict.fromkeys(ranked))].reset_index()
    rest = categories[~categories["code"].isin(ranked)]
    out = pd.concat([first.assign(common=True), rest.assign(common=False)], ignore_index=True)
    return out[[*categories.columns, "common"]]
