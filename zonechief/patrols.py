"""Importing patrol GPS tracks (issue 17): GPX, CSV or JSON points in; patrols, or reasons per track, out.

Rules (the README's "Patrols" section says the same):
- Inputs: GPX (WGS-84 by the GPX standard unless --crs says otherwise; the person is --person, else
  the track's or file's <name>); CSV with person_id, time, lon, lat and crs columns (the crs column may
  be left out when --crs names the system); JSON points (the API). Times follow the one time rule
  (gis.localtime): without an offset they are Asia/Shanghai wall time. Positions are stored in WGS-84.
- A CSV or JSON file is a set of fixes: row order does not matter, exact duplicates count once (so any
  permutation or duplication of the same fixes imports the same patrols). A GPX track keeps its order:
  times going backwards reject it.
- A track (a patrol) is one person's fixes with no gap over 30 minutes.
- Per track, rejected with the reason, the rest imported: times going backwards (GPX), two places at
  the same time, a jump faster than 150 km/h, more than 10 % of its fixes outside both towns, fewer
  than 2 fixes; bad times, positions or CRS in a person's rows reject that person's fixes. Up to 10 %
  of fixes outside both towns (GPS drift at a border) are dropped and counted instead.
- Per file: not XML / not GPX, a CSV without the needed columns, a file imported before (same sha256)
  reject the whole file.
- Everything valid of one call is written in one transaction, with an audit entry; --dry-run writes nothing.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import select

from gis.crs import UnknownCRSError, normalize_crs, to_wgs84
from gis.errors import ZonechiefError
from gis.localtime import LOCAL_NAME
from gis.tracks import MAX_OUTSIDE_SHARE, MAX_SPEED_KMH, RawTrack, TrackFileError, backwards_at, fastest_jump, metric_xy, path_length_m, read_gpx, split_at_gaps
from store import audit
from store.models import Patrol, PatrolPerson
from store.patrols_repo import PatrolRepository

CSV_TIME = ("time", "t", "timestamp", "datetime")


class PatrolImportError(ZonechiefError, ValueError):
    """Nothing importable: every file or track was rejected (the result says why)."""

    def __init__(self, message: str, result: "PatrolImport"):
        super().__init__(message)
        self.result = result


@dataclass
class TrackOutcome:
    """What became of one track: imported as patrol `patrol_id`, or rejected for `reasons`."""

    label: str
    person_id: str | None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    n_points: int = 0
    dropped_outside: int = 0
    length_m: float = 0.0
    town: str | None = None
    patrol_id: int | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Imported (or importable, in a dry run)."""
        return not self.reasons


@dataclass
class PatrolImport:
    """The result of one import: each file's sha256 or error, and each track's outcome."""

    files: list[dict]
    tracks: list[TrackOutcome]
    dry_run: bool = False
    audit_id: int | None = None

    @property
    def imported(self) -> list[TrackOutcome]:
        """Tracks that were (or, in a dry run, would be) imported."""
        return [t for t in self.tracks if t.ok]

    @property
    def rejected(self) -> list[TrackOutcome]:
        """Tracks rejected, with their reasons."""
        return [t for t in self.tracks if not t.ok]

    def as_dict(self) -> dict:
        """JSON-ready: counts, files, imported and rejected tracks (times ISO 8601)."""
        def one(t: TrackOutcome) -> dict:
            d = asdict(t)
            for k in ("started_at", "ended_at"):
                d[k] = d[k].isoformat() if d[k] else None
            d["length_m"] = round(d["length_m"], 1)
            return d
        return {"dry_run": self.dry_run, "imported": len(self.imported), "rejected": len(self.rejected),
                "points": sum(t.n_points for t in self.imported), "files": self.files, "audit_id": self.audit_id,
                "tracks": [one(t) for t in self.imported], "rejected_tracks": [one(t) for t in self.rejected]}


# ---------------------------------------------------------------- reading
def _time_us(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(µs since 1970 UTC, valid) for ISO 8601 texts under the one time rule: no offset = Asia/Shanghai."""
    s = text.astype("str").str.strip()
    has_offset = s.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True, na=False)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us, UTC]")
    if has_offset.any():
        out[has_offset] = pd.to_datetime(s[has_offset], format="ISO8601", utc=True, errors="coerce")
    if (~has_offset).any():
        naive = pd.to_datetime(s[~has_offset], format="ISO8601", errors="coerce")
        out[~has_offset] = naive.dt.tz_localize(LOCAL_NAME).dt.tz_convert("UTC")
    valid = out.notna().to_numpy()
    us = out.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    return us, valid


def frame_tracks(df: pd.DataFrame, name: str, person: str | None, crs: str | None) -> list[RawTrack]:
    """A table of fixes (person_id, time, lon, lat[, crs]) as one unordered RawTrack per person, in WGS-84."""
    cols = {c.lower().strip(): c for c in df.columns}
    tcol = next((cols[c] for c in CSV_TIME if c in cols), None)
    missing = [c for c in ("lon", "lat") if c not in cols] + ([] if tcol else ["time"])
    if "person_id" not in cols and not person:
        missing.append("person_id (or --person)")
    if "crs" not in cols and not crs:
        missing.append("crs (or --crs: every input names its coordinate system)")
    if missing:
        raise TrackFileError(f"{name}: missing column(s) {', '.join(missing)}; expected person_id, time, lon, lat, crs")
    who = pd.Series(person, index=df.index) if person else df[cols["person_id"]].astype("str").str.strip()
    t_us, t_ok = _time_us(df[tcol])
    x = pd.to_numeric(df[cols["lon"]], errors="coerce").to_numpy(float)
    y = pd.to_numeric(df[cols["lat"]], errors="coerce").to_numpy(float)
    xy_ok = np.isfinite(x) & np.isfinite(y)
    system = (df[cols["crs"]].astype("str").str.strip() if "crs" in cols and not crs
              else pd.Series(crs, index=df.index))
    lon, lat = np.full(len(df), np.nan), np.full(len(df), np.nan)
    crs_bad: dict[str, str] = {}
    for c, rows in system.groupby(system, sort=False).groups.items():
        k = np.asarray(df.index.get_indexer(rows))
        try:
            lon[k], lat[k] = to_wgs84(x[k], y[k], normalize_crs(str(c)))
        except UnknownCRSError as exc:
            crs_bad[str(c)] = str(exc)
    out = []
    for p, rows in who.groupby(who, sort=True).groups.items():
        k = np.asarray(df.index.get_indexer(rows))
        problems = []
        if not p or p == "nan":
            problems.append("rows without a person_id")
        bad_t = k[~t_ok[k]]
        if len(bad_t):
            problems.append(f"{len(bad_t)} row(s) with a time that is not ISO 8601, e.g. row {bad_t[0] + 2}: "
                            f"{str(df[tcol].iloc[bad_t[0]])[:40]!r}")
        bad_xy = k[~xy_ok[k]]
        if len(bad_xy):
            problems.append(f"{len(bad_xy)} row(s) without a numeric lon/lat, e.g. row {bad_xy[0] + 2}")
        for c in sorted(set(system.iloc[k]) & set(crs_bad)):
            problems.append(crs_bad[c])
        no_crs = int((system.iloc[k].fillna("") == "").sum())
        if no_crs:
            problems.append(f"{no_crs} row(s) without a crs: every input names its coordinate system")
        out.append(RawTrack(str(p), f"{name} {p}", t_us[k], lon[k], lat[k], ordered=False, problems=problems))
    return out


def read_source(name: str, data: bytes, person: str | None = None, crs: str | None = None) -> list[RawTrack]:
    """The raw tracks of one file (GPX or CSV, by name, else by content), positions in WGS-84."""
    head = data[:200].lstrip(b"\xef\xbb\xbf \t\r\n")
    if name.lower().endswith(".gpx") or head.startswith(b"<"):
        tracks = read_gpx(data, name, person)
        if crs and normalize_crs(crs) != "wgs84":
            for t in tracks:
                t.x, t.y = to_wgs84(t.x, t.y, normalize_crs(crs))
        return tracks
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TrackFileError(f"{name}: not a CSV file: {str(exc).splitlines()[0][:200]}") from None
    return frame_tracks(df, name, person, crs)


# ---------------------------------------------------------------- checking
@dataclass
class Checked:
    """A valid track, ready to write: its outcome and fixes (µs UTC, WGS-84)."""

    outcome: TrackOutcome
    t_us: np.ndarray
    lon: np.ndarray
    lat: np.ndarray


def _fmt(us: int) -> str:
    return pd.Timestamp(us * 1000, tz="UTC").tz_convert(LOCAL_NAME).isoformat()


def check_tracks(raw: RawTrack, index) -> tuple[list[Checked], list[TrackOutcome]]:
    """Split one raw track into patrols and check each (module docstring): (valid ones, rejected ones)."""
    bad = TrackOutcome(raw.label, raw.person_id, n_points=len(raw.t_us), reasons=list(raw.problems))
    if raw.person_id and len(raw.person_id) > 32:
        bad.reasons.append(f"person id {raw.person_id[:40]!r} is longer than 32 characters")
    if bad.reasons:
        return [], [bad]
    t, x, y = raw.t_us, raw.x, raw.y
    if raw.ordered and (k := backwards_at(t)) is not None:
        bad.reasons.append(f"times go backwards at fix {k + 1}: {_fmt(int(t[k]))} after {_fmt(int(t[k - 1]))}")
        return [], [bad]
    order = np.lexsort((y, x, t))  # a set of fixes: any order, duplicates once
    t, x, y = t[order], x[order], y[order]
    keep = np.r_[True, (np.diff(t) != 0) | (np.diff(x) != 0) | (np.diff(y) != 0)]
    t, x, y = t[keep], x[keep], y[keep]
    unit, _ = index.locate(x, y)
    towns = np.asarray(index.units.town.astype(str).to_numpy(), dtype=object)
    good, rejected = [], []
    for part in split_at_gaps(t):
        pt, px, py, pu = t[part], x[part], y[part], unit[part]
        o = TrackOutcome(raw.label, raw.person_id, _dt(pt[0]), _dt(pt[-1]), len(pt))
        outside = pu < 0
        if outside.mean() > MAX_OUTSIDE_SHARE:
            o.reasons.append(f"{int(outside.sum())} of {len(pt)} fixes outside both towns "
                             f"(more than {MAX_OUTSIDE_SHARE:.0%})")
        else:
            o.dropped_outside = int(outside.sum())
            pt, px, py, pu = pt[~outside], px[~outside], py[~outside], pu[~outside]
            o.n_points = len(pt)
            mx, my = metric_xy(px, py)
            same = np.flatnonzero(np.diff(pt) == 0)
            if len(same):
                o.reasons.append(f"two positions at the same time {_fmt(int(pt[same[0]]))}")
            elif len(pt) < 2:
                o.reasons.append("fewer than 2 fixes")
            elif (jump := fastest_jump(pt, mx, my)) is not None:
                k, d, kmh = jump
                o.reasons.append(f"a jump of {d:,.0f} m at {_fmt(int(pt[k]))} ({kmh:,.0f} km/h, faster than "
                                 f"{MAX_SPEED_KMH:.0f} km/h)")
            else:
                o.started_at, o.ended_at = _dt(pt[0]), _dt(pt[-1])
                o.length_m = path_length_m(mx, my)
                vals, counts = np.unique(towns[pu], return_counts=True)
                o.town = str(vals[np.argmax(counts)])
                good.append(Checked(o, pt, px, py))
                continue
        rejected.append(o)
    return good, rejected


def _dt(us) -> datetime:
    return datetime.fromtimestamp(int(us) / 1e6, tz=timezone.utc)


# ---------------------------------------------------------------- importing
def import_patrols(db, index, sources: list[tuple[str, bytes]], *, actor: str, person: str | None = None,
                   team: str | None = None, crs: str | None = None, dry_run: bool = False, synthetic: bool = False,
                   progress: Callable[[int], object] | None = None) -> PatrolImport:
    """Read, check and store the tracks of `sources` ((name, bytes) each) in one transaction.

    Raises PatrolImportError when nothing is importable; otherwise returns what was imported and what
    was rejected, per track. `progress` is called with bytes read, then with fixes written.
    """
    if crs:
        crs = normalize_crs(crs)
    files: list[dict] = []
    parsed: list[tuple[str, list[RawTrack]]] = []
    with db.sessions() as s:
        known = set(s.scalars(select(Patrol.sha256).where(Patrol.sha256.in_(
            [hashlib.sha256(d).hexdigest() for _, d in sources]))).all())
    for name, data in sources:
        sha = hashlib.sha256(data).hexdigest()
        entry = {"name": name, "sha256": sha, "bytes": len(data), "error": None}
        files.append(entry)
        try:
            if sha in known:
                raise TrackFileError(f"{name}: this file was imported before (sha256 {sha[:12]}…)")
            parsed.append((sha, read_source(name, data, person, crs)))
            known.add(sha)
        except (TrackFileError, UnknownCRSError) as exc:
            entry["error"] = str(exc)
        finally:
            if progress:
                progress(len(data))
    return import_raw(db, index, files, parsed, actor=actor, team=team, dry_run=dry_run, synthetic=synthetic,
                      progress=progress)


def frame_raw(frame: pd.DataFrame, name: str) -> list[RawTrack]:
    """A points frame (store.patrols_repo layout, WGS-84; e.g. zonechief.patrols_synthetic) as one RawTrack
    per person, unordered."""
    t_us = frame["t"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    out = []
    for p, rows in frame.groupby("person_id", sort=True).indices.items():
        out.append(RawTrack(str(p), f"{name} {p}", t_us[rows], frame["lon"].to_numpy(float)[rows],
                            frame["lat"].to_numpy(float)[rows], ordered=False))
    return out


def import_frame(db, index, frame: pd.DataFrame, *, name: str, actor: str, synthetic: bool = False,
                 dry_run: bool = False) -> PatrolImport:
    """Import a points frame (WGS-84) as if it were one file called `name`; the team comes from the
    people table (patrol_people)."""
    sha = hashlib.sha256(pd.util.hash_pandas_object(frame[["person_id", "t", "lon", "lat"]]).to_numpy().tobytes()).hexdigest()
    files = [{"name": name, "sha256": sha, "bytes": 0, "error": None}]
    return import_raw(db, index, files, [(sha, frame_raw(frame, name))], actor=actor, dry_run=dry_run,
                      synthetic=synthetic)


def import_raw(db, index, files: list[dict], parsed: list[tuple[str, list[RawTrack]]], *, actor: str,
               team: str | None = None, dry_run: bool = False, synthetic: bool = False,
               progress: Callable[[int], object] | None = None) -> PatrolImport:
    """Check raw tracks (per file sha256) and write the valid ones (import_patrols, after reading)."""
    if team and len(team) > 32:
        raise TrackFileError(f"team id {team[:40]!r} is longer than 32 characters")
    checked: list[tuple[Checked, str]] = []
    rejected: list[TrackOutcome] = []
    for sha, raws in parsed:
        for raw in raws:
            ok, bad = check_tracks(raw, index)
            checked += [(c, sha) for c in ok]
            rejected += bad
    result = PatrolImport(files, [c.outcome for c, _ in checked] + rejected, dry_run)
    if not checked:
        reasons = [f["error"] for f in files if f["error"]] + [f"{t.label}: {'; '.join(t.reasons)}" for t in rejected]
        raise PatrolImportError("nothing to import: " + (" | ".join(reasons[:5]) or "no tracks"), result)
    if dry_run:
        return result
    _write(db, checked, result, actor=actor, team=team, synthetic=synthetic,
           names={f["sha256"]: f["name"] for f in files}, progress=progress)
    return result


def _write(db, checked: list[tuple[Checked, str]], result: PatrolImport, *, actor: str, team: str | None,
           synthetic: bool, names: dict[str, str], progress) -> None:
    repo = PatrolRepository.for_db(db)
    now = datetime.now(timezone.utc)
    with db.sessions.begin() as s:
        teams = dict(s.execute(select(PatrolPerson.person_id, PatrolPerson.team_id)).all())
        rows = []
        for c, sha in checked:
            o = c.outcome
            rows.append({"person_id": o.person_id, "team_id": team or teams.get(o.person_id), "town": o.town,
                         "started_at": o.started_at, "ended_at": o.ended_at, "n_points": len(c.t_us),
                         "length_m": o.length_m, "source": names[sha][:200], "sha256": sha, "synthetic": synthetic,
                         "imported_at": now, "imported_by": actor[:100],
                         "geom": shapely.linestrings(np.column_stack([c.lon, c.lat]))})
        sizes = np.array([len(c.t_us) for c, _ in checked])
        points = pd.DataFrame({
            "track": np.repeat(np.arange(len(checked)), sizes),
            "t": pd.to_datetime(np.concatenate([c.t_us for c, _ in checked]) * 1000, utc=True),
            "lon": np.concatenate([c.lon for c, _ in checked]), "lat": np.concatenate([c.lat for c, _ in checked])})
        ids = repo.write(s, rows, points)
        for (c, _), pid in zip(checked, ids):
            c.outcome.patrol_id = pid
        result.audit_id = audit.record(s, actor, "patrols.import", {
            "files": [{"name": f["name"], "sha256": f["sha256"], "error": f["error"]} for f in result.files],
            "patrols": len(ids), "points": int(sizes.sum()), "rejected": len(result.rejected),
            "patrol_ids": [min(ids), max(ids)], "synthetic": synthetic}).id
        if progress:
            progress(int(sizes.sum()))


def import_json(db, index, payload, *, actor: str, person: str | None = None, team: str | None = None,
                crs: str | None = None, dry_run: bool = False) -> PatrolImport:
    """Import JSON points: {"person_id", "crs", "points": [{"time", "lon", "lat"}, ...]}, a list of such
    objects, or {"tracks": [...]}; a point may carry its own person_id and crs. Raises TrackFileError for
    JSON of another shape."""
    import json

    tracks = payload.get("tracks") if isinstance(payload, dict) and "tracks" in payload else payload
    tracks = [tracks] if isinstance(tracks, dict) else tracks
    if not isinstance(tracks, list) or not all(isinstance(t, dict) and isinstance(t.get("points"), list)
                                               for t in tracks):
        raise TrackFileError('expected {"person_id": ..., "crs": ..., "points": [{"time", "lon", "lat"}, ...]}, '
                             'a list of them, or {"tracks": [...]}')
    rows = []
    for t in tracks:
        for p in t["points"]:
            if not isinstance(p, dict):
                raise TrackFileError("each point is an object with time, lon and lat")
            rows.append({"person_id": p.get("person_id", t.get("person_id")), "time": p.get("time", p.get("t")),
                         "lon": p.get("lon"), "lat": p.get("lat"), "crs": p.get("crs", t.get("crs"))})
    df = pd.DataFrame(rows, columns=["person_id", "time", "lon", "lat", "crs"]).fillna("").astype(str)
    if not crs and (df["crs"] == "").any():
        raise TrackFileError("every point needs a crs (on the track, the point, or the crs parameter): "
                             "wgs84, gcj02, bd09, cgcs2000 or EPSG:nnnn")
    if crs:
        df = df.drop(columns="crs")
    body = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()
    sha = hashlib.sha256(body).hexdigest()
    files = [{"name": "api", "sha256": sha, "bytes": len(body), "error": None}]
    return import_raw(db, index, files, [(sha, frame_tracks(df, "api", person, normalize_crs(crs) if crs else None))],
                      actor=actor, team=team, dry_run=dry_run)
