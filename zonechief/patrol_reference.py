"""Patrol reference data (issue 17): teams, their people and the shops paired with them, from CSV.

Each import replaces its tables whole, in one transaction with an audit entry, and is all or nothing:
a file with a bad row changes nothing and says which rows. The shipped files (illustrative, built by
data/build_patrol_reference.py) are in data/boundaries/: patrol_teams.csv (team_id, name, kind, town),
patrol_people.csv (person_id, name, team_id, zone_id) and paired_shops.csv (shop_id, name, team_id,
person_id, lon, lat, crs).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gis.crs import UnknownCRSError, normalize_crs, to_wgs84
from gis.errors import ZonechiefError
from gis.shipped import DATA_DIR
from store import audit
from store.patrols_repo import PatrolRepository

TEAM_KINDS = ("inspectors", "womens_team")  # known kinds; others are kept as written
SHIPPED = {"teams": DATA_DIR / "patrol_teams.csv", "people": DATA_DIR / "patrol_people.csv",
           "shops": DATA_DIR / "paired_shops.csv"}


class PatrolReferenceError(ZonechiefError, ValueError):
    """A teams, people or shops file that cannot be imported; the message lists the bad rows."""


def _csv(data: bytes | str | Path, name: str, required: list[str]) -> pd.DataFrame:
    raw = Path(data).read_bytes() if isinstance(data, (str, Path)) else data
    try:
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PatrolReferenceError(f"{name}: not a CSV file: {str(exc).splitlines()[0][:200]}") from None
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise PatrolReferenceError(f"{name}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
    return df.apply(lambda c: c.str.strip())


def _none(v: str) -> str | None:
    return v or None


def _unique(df: pd.DataFrame, key: str, name: str) -> None:
    empty = df.index[df[key] == ""]
    if len(empty):
        raise PatrolReferenceError(f"{name}: row {empty[0] + 2} has no {key}")
    dup = df[key][df[key].duplicated()]
    if len(dup):
        raise PatrolReferenceError(f"{name}: {key} {dup.iloc[0]!r} appears more than once")


def read_teams(data, name: str = "teams") -> list[dict]:
    """Rows of patrol_teams from a CSV: team_id, name, kind (inspectors | womens_team | …), town."""
    df = _csv(data, name, ["team_id", "name", "kind"])
    _unique(df, "team_id", name)
    return [{"team_id": r.team_id, "name": r.name or r.team_id, "kind": r.kind or "other",
             "town": _none(getattr(r, "town", ""))} for r in df.itertuples()]


def read_people(data, index, teams: set[str], name: str = "people") -> list[dict]:
    """Rows of patrol_people: person_id, name, team_id (a known team), zone_id (a known zone, or empty)."""
    df = _csv(data, name, ["person_id", "team_id"])
    _unique(df, "person_id", name)
    zones = set(index.zones.zone_id)
    for r in df.itertuples():
        if r.team_id and r.team_id not in teams:
            raise PatrolReferenceError(f"{name}: row {r.Index + 2}: unknown team {r.team_id!r}")
        z = getattr(r, "zone_id", "")
        if z and z not in zones:
            raise PatrolReferenceError(f"{name}: row {r.Index + 2}: unknown zone {z!r}")
    return [{"person_id": r.person_id, "name": _none(getattr(r, "name", "")), "team_id": _none(r.team_id),
             "zone_id": _none(getattr(r, "zone_id", ""))} for r in df.itertuples()]


def read_shops(data, index, teams: set[str], crs: str | None = None, name: str = "shops") -> list[dict]:
    """Rows of paired_shops from a CSV (shop_id, name, team_id, person_id, lon, lat, crs; or --crs), in WGS-84,
    each with the zone it lies in. A shop outside both towns, or in an unknown CRS, rejects the file."""
    df = _csv(data, name, ["shop_id", "name", "lon", "lat"] + ([] if crs else ["crs"]))
    _unique(df, "shop_id", name)
    x = pd.to_numeric(df["lon"], errors="coerce").to_numpy(float)
    y = pd.to_numeric(df["lat"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if len(bad):
        raise PatrolReferenceError(f"{name}: row {bad[0] + 2} has no numeric lon/lat")
    lon, lat = np.empty(len(df)), np.empty(len(df))
    systems = pd.Series(crs, index=df.index) if crs else df["crs"]
    for c, rows in systems.groupby(systems).indices.items():
        try:
            lon[rows], lat[rows] = to_wgs84(x[rows], y[rows], normalize_crs(c))
        except UnknownCRSError as exc:
            raise PatrolReferenceError(f"{name}: row {rows[0] + 2}: {exc}") from None
    unit, _ = index.locate(lon, lat)
    out = np.flatnonzero(unit < 0)
    if len(out):
        raise PatrolReferenceError(f"{name}: {len(out)} shop(s) outside both towns, e.g. row {out[0] + 2} "
                                   f"({df.shop_id.iloc[out[0]]})")
    zone = index.units.zone_id.astype(str).to_numpy()[unit]
    for r in df.itertuples():
        team = getattr(r, "team_id", "")
        if team and team not in teams:
            raise PatrolReferenceError(f"{name}: row {r.Index + 2}: unknown team {team!r}")
    return [{"shop_id": r.shop_id, "name": r.name, "team_id": _none(getattr(r, "team_id", "")),
             "person_id": _none(getattr(r, "person_id", "")), "zone_id": str(zone[i]),
             "geom": shapely.Point(lon[i], lat[i])} for i, r in enumerate(df.itertuples())]


def import_reference(db, index, *, actor: str, teams=None, people=None, shops=None, crs: str | None = None,
                     dry_run: bool = False) -> dict:
    """Replace the given tables (each a CSV path or bytes) in one transaction with an audit entry: a summary."""
    repo = PatrolRepository.for_db(db)
    known = set(repo.teams_frame().team_id)
    team_rows = read_teams(teams) if teams is not None else None
    team_ids = {r["team_id"] for r in team_rows} if team_rows is not None else known
    people_rows = read_people(people, index, team_ids) if people is not None else None
    shop_rows = read_shops(shops, index, team_ids, crs) if shops is not None else None
    summary = {k: len(v) for k, v in (("teams", team_rows), ("people", people_rows), ("shops", shop_rows))
               if v is not None}
    if dry_run:
        return summary
    with db.sessions.begin() as s:
        repo.replace_reference(s, teams=team_rows, people=people_rows, shops=shop_rows)
        summary["audit_id"] = audit.record(s, actor, "patrols.reference", dict(summary)).id
    return summary


def load_shipped(db, index, actor: str = "demo") -> dict:
    """Import the shipped illustrative teams, people and shops (data/boundaries/)."""
    return import_reference(db, index, actor=actor, teams=SHIPPED["teams"], people=SHIPPED["people"],
                            shops=SHIPPED["shops"])
