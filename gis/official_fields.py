"""Which column of an official layer is what, and what stops it being imported: 三调 field names, codes, zones.

Official layers name their columns as 三调 / 行政区 exports do (ZLDWDM/ZLDWMC 坐落单位代码/名称, XZQDM/XZQMC,
QSDWDM/QSDWMC, CJDM/CJMC, DM/MC, 代码/名称 ...). guess_mapping says which column is the village code, the
name, the zone, the town and the short name, how sure it is and what else it could be; explicit columns
win. apply_mapping gives the project's columns with normalised codes; check_codes and zone_for_codes
list every problem at once. Read through gis.official_layers, which re-exports all of this.
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.boundaries import BoundaryError, Issue

CODE_RE = re.compile(r"^\d{12}$")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_SPACES = " \t\r\n\u3000\ufeff"
_TOWN_SUFFIXES = ("镇", "街道", "乡", "街道办事处")
_COMMITTEE = re.compile(r"(村民委员会|居民委员会|村委会|居委会)$")
FIELDS = ("code", "name", "zone", "zone_name", "town", "short_name")

# Column names per field, best first; matched case-insensitively. Code and name columns come in pairs.
CODE_NAME_PAIRS = (
    ("village_code", "village_name"), ("code", "name"), ("cjdm", "cjmc"), ("村代码", "村名称"),
    ("村级代码", "村级名称"), ("zldwdm", "zldwmc"), ("坐落单位代码", "坐落单位名称"), ("qsdwdm", "qsdwmc"),
    ("权属单位代码", "权属单位名称"), ("xzqdm", "xzqmc"), ("行政区代码", "行政区名称"), ("dm", "mc"),
    ("代码", "名称"), ("unit_id", "unit_name"),
)
OTHER_NAMES = {
    "zone": ("zone_id", "zone", "zoneid", "片区编号", "片区代码", "片区id", "片区", "pqbh", "pqdm"),
    "zone_name": ("zone_name", "片区名称", "pqmc"),
    "town": ("town", "town_name", "镇街", "镇街名称", "乡镇", "乡镇名称", "镇", "xzmc", "zjmc"),
    "short_name": ("short_name", "village_short_name", "简称", "村简称", "jc"),
}


class OfficialLayerError(BoundaryError):
    """An official layer that cannot be read or mapped as given; the message says why and what to pass."""


# ---------------------------------------------------------------------------------------------- mapping


@dataclass
class FieldMapping:
    """Which source column gives each field, how sure the guess is, and what else could have been meant.

    confidence per field: "explicit" (given), "high" (one clear candidate, or values that fit),
    "low" (a candidate by name only), "ambiguous" (several fit equally: confirm or say which),
    "none" (no column). `samples`: up to 3 values per field, for confirmation.
    """

    code: str | None = None
    name: str | None = None
    zone: str | None = None
    town: str | None = None
    short_name: str | None = None
    zone_name: str | None = None
    confidence: dict[str, str] = field(default_factory=dict)
    alternatives: dict[str, list[str]] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ambiguous(self) -> list[str]:
        """The fields whose column could not be told apart from another: to be confirmed or given."""
        return [f for f in FIELDS if self.confidence.get(f) == "ambiguous"]


def guess_mapping(columns: Iterable[str] | pd.DataFrame, *, code: str | None = None, name: str | None = None,
                  zone: str | None = None, town: str | None = None, short_name: str | None = None,
                  zone_name: str | None = None) -> FieldMapping:
    """Guess which columns hold the code, name, zone, town and short name from common 三调 / 行政区 names.

    Given a frame rather than column names, the values decide between candidates (a code column
    holds 12-digit codes, or 19-digit 坐落单位代码 ending in 7 zeros; a town column names 镇/街道)
    and samples are kept. Explicit arguments override any guess and must name existing columns.
    """
    frame = columns if isinstance(columns, pd.DataFrame) else None
    cols = [str(c) for c in (frame.columns if frame is not None else columns) if str(c) != "geometry"]
    by_lower: dict[str, str] = {}
    for c in cols:
        by_lower.setdefault(c.strip().lower(), c)
    explicit = {"code": code, "name": name, "zone": zone, "town": town, "short_name": short_name,
                "zone_name": zone_name}
    for f, given_col in explicit.items():
        if given_col is not None and given_col not in cols:
            raise OfficialLayerError(f"{f} column {given_col!r} not found; the layer has {cols}")
    m = FieldMapping()
    pairs = [(by_lower[c], by_lower.get(n)) for c, n in CODE_NAME_PAIRS if c in by_lower]

    # The code: a 12-digit village code column.
    cands = [c for c, _ in pairs]
    if code is None and frame is not None and cands:
        scores = {c: _code_score(frame[c]) for c in cands}
        fitting = [c for c in cands if scores[c] >= 0.9]
        for c in cands:
            if scores[c] < 0.9 and _share_9_digits(frame[c]) >= 0.9:
                m.notes.append(f"{c} holds 9-digit codes (towns), not village codes")
        distinct = {tuple(_code_values(frame[c])) for c in fitting}
        if len(distinct) == 1:  # several columns with the same codes: any will do
            _pick(m, "code", fitting[0], "high", [c for c in cands if c != fitting[0]])
        elif fitting:
            _pick(m, "code", fitting[0], "ambiguous", fitting[1:])
        else:
            _pick(m, "code", cands[0], "low", cands[1:])
            m.notes.append(f"no column holds 12-digit village codes; {cands[0]} is the likeliest by name")
    elif code is None and cands:
        _pick(m, "code", cands[0], "high" if len(cands) == 1 else "ambiguous", cands[1:])
    if code is not None:
        _pick(m, "code", code, "explicit", [c for c in cands if c != code])

    # The name: the code column's partner first.
    partner = dict(pairs).get(m.code) if m.code else None
    names = [n for _, n in pairs if n is not None]
    if name is not None:
        _pick(m, "name", name, "explicit", [n for n in names if n != name])
    elif partner is not None:
        _pick(m, "name", partner, "high", [n for n in names if n != partner])
    elif names:
        _pick(m, "name", names[0], "high" if len(names) == 1 else "ambiguous", names[1:])

    used = {m.code, m.name}
    for f in ("zone", "zone_name", "town", "short_name"):
        found = [by_lower[n] for n in OTHER_NAMES[f] if n in by_lower and by_lower[n] not in used]
        chosen = explicit[f]
        if chosen is not None:
            _pick(m, f, chosen, "explicit", [c for c in found if c != chosen])
        elif found:
            _pick(m, f, found[0], "high" if len(found) == 1 else "ambiguous", found[1:])
        elif f == "town" and frame is not None:  # e.g. XZQMC when the 行政区 is the town
            towns = [c for c in cols if c not in used and _share_town_names(frame[c]) >= 0.9]
            if towns:
                _pick(m, "town", towns[0], "high" if len(towns) == 1 else "ambiguous", towns[1:])
        used.add(getattr(m, f))
    for f in FIELDS:
        m.confidence.setdefault(f, "none")
        m.alternatives.setdefault(f, [])
        col = getattr(m, f)
        if frame is not None and col is not None:
            m.samples[f] = [str(v) for v in frame[col].dropna().astype(str).head(3)]
    return m


def _pick(m: FieldMapping, f: str, col: str, confidence: str, alternatives: list[str]) -> None:
    setattr(m, f, col)
    m.confidence[f] = confidence
    m.alternatives[f] = [a for a in dict.fromkeys(alternatives) if a != col]


def _code_values(s: pd.Series) -> list[str | None]:
    return [normalize_code(v)[0] for v in s]


def _code_score(s: pd.Series) -> float:
    """Share of non-empty values that are 12-digit codes once normalised (0 if they repeat a lot)."""
    vals = [v for v in _code_values(s) if v]
    if not vals:
        return 0.0
    share = sum(bool(CODE_RE.match(v)) for v in vals) / len(vals)
    return share if len(set(vals)) >= 0.9 * len(vals) else share / 2


def _share_9_digits(s: pd.Series) -> float:
    vals = [v for v in _code_values(s) if v]
    return sum(len(v) == 9 and v.isdigit() for v in vals) / len(vals) if vals else 0.0


def _share_town_names(s: pd.Series) -> float:
    if s.dtype.kind not in "OSU":
        return 0.0
    vals = [str(v).strip(_SPACES) for v in s if isinstance(v, str) and v.strip(_SPACES)]
    return sum(v.endswith(_TOWN_SUFFIXES) for v in vals) / len(vals) if vals else 0.0


def normalize_code(value) -> tuple[str | None, str | None]:
    """A code as 12-digit text where it can be: (code or None, what was done to it or None).

    Strips spaces, turns full-width digits into ASCII and floats such as 441900105001.0 into text,
    and cuts a 19-digit 坐落单位代码 ending in 7 zeros to its 12-digit village code. Anything else
    is returned as text for check_codes to list.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None, None
    note = None
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or value != int(value):
            return str(value), None
        if value >= 1e17:  # a 19-digit code as a double: its last digits are gone, the first 12 survive
            return str(int(round(value / 1e7))), "19-digit float"
        text, note = str(int(value)), "float"
    elif isinstance(value, (int, np.integer)):
        text = str(int(value))
    else:
        text = str(value).strip(_SPACES).translate(_FULL_WIDTH)
        if re.fullmatch(r"\d+\.0*", text):
            text, note = text.split(".")[0], "float text"
    if not text:
        return None, None
    if len(text) == 19 and text.isdigit() and text.endswith("0000000"):
        return text[:12], "19-digit"
    return text, note


def _text(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
        value = int(value)  # zone numbers stored as numbers
    text = str(value).strip(_SPACES)
    return text or None


def apply_mapping(gdf: gpd.GeoDataFrame, mapping: FieldMapping) -> gpd.GeoDataFrame:
    """The layer in the project's columns: code, name, short_name, town, town_code, zone_id, zone_name.

    Codes are normalised (normalize_code); town_code is the first 9 digits of a 12-digit code; without
    a short-name column, short names are the names without 村民委员会 / 居民委员会 (short_name).
    zone_id / zone_name are present only when mapped (see zone_for_codes otherwise). `feature` is
    each row's 1-based number in the source, for messages. ``attrs["notes"]`` says what was changed.
    """
    if mapping.code is None:
        raise OfficialLayerError("no code column: say which column holds the 12-digit village code")
    notes = list(gdf.attrs.get("notes", []))
    out = gpd.GeoDataFrame({"feature": np.arange(1, len(gdf) + 1)}, geometry=gdf.geometry.values, crs=gdf.crs)
    codes, how = zip(*(normalize_code(v) for v in gdf[mapping.code])) if len(gdf) else ((), ())
    out["code"] = _objects(codes, out.index)
    for what, said in (("19-digit", "19-digit codes ending in 7 zeros (坐落单位代码) cut to their first 12 digits"),
                       ("19-digit float", "19-digit codes stored as numbers cut to their first 12 digits"),
                       ("float", "codes stored as numbers turned into text"),
                       ("float text", "codes written as decimals (441900105001.0) turned into integers")):
        n = sum(h == what for h in how)
        if n:
            notes.append(f"{mapping.code}: {n} {said}")
    for dst, src in (("name", mapping.name), ("short_name", mapping.short_name), ("town", mapping.town),
                     ("zone_id", mapping.zone), ("zone_name", mapping.zone_name)):
        if src is not None:
            out[dst] = _objects([_text(v) for v in gdf[src]], out.index)
        elif dst not in ("zone_id", "zone_name"):
            out[dst] = _objects([None] * len(out), out.index)
    out["town_code"] = _objects([c[:9] if c and CODE_RE.match(c) else None for c in out["code"]], out.index)
    if mapping.short_name is None and mapping.name is not None:  # the gazetteer finds villages by short name
        out["short_name"] = _objects([short_name(n) for n in out["name"]], out.index)
        if any(s != n for s, n in zip(out["short_name"], out["name"]) if n):
            notes.append("short names made from the names (…村村民委员会 → …村, …社区居民委员会 → …社区)")
    out.attrs.update(gdf.attrs)
    out.attrs["notes"] = notes
    return out


def short_name(name: str | None) -> str | None:
    """The name without its committee suffix, as the shipped short names are: 铁岗村村民委员会 → 铁岗村."""
    return _COMMITTEE.sub("", name) or name if name else name


def _objects(values, index) -> pd.Series:
    """Text with None for missing, as normalize_units gives it (pandas 3 would infer str with NaN)."""
    return pd.Series(list(values), index=index, dtype=object)


def describe_mapping(mapping: FieldMapping, gdf: pd.DataFrame | None = None) -> str:
    """The text shown for confirmation: each field's column, how sure, up to 3 sample values, alternatives."""
    lines = []
    for f in FIELDS:
        col = getattr(mapping, f)
        conf = mapping.confidence.get(f, "explicit" if col else "none")
        if col is None:
            lines.append(f"{f:<10} (none)")
            continue
        samples = [str(v) for v in gdf[col].dropna().head(3)] if gdf is not None else mapping.samples.get(f, [])
        line = f"{f:<10} ← {col} [{conf}]" + (f": {', '.join(samples)}" if samples else "")
        if mapping.alternatives.get(f):
            line += f" (also: {', '.join(mapping.alternatives[f])})"
        lines.append(line)
    lines += [f"note: {n}" for n in mapping.notes]
    if mapping.ambiguous:
        lines.append(f"confirm or give explicitly: {', '.join(mapping.ambiguous)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- problems


@dataclass
class LayerProblem(Issue):
    """One reason an official layer is refused: `what` it is, the features (1-based numbers) and town."""

    what: str = ""  # bad_code, no_code, duplicate_code, empty_name, no_zone, not_covered
    town: str | None = None


def check_codes(frame: pd.DataFrame) -> list[LayerProblem]:
    """Every code and name problem of an apply_mapping frame, all at once (empty: none).

    Codes must match ^\\d{12}$ and be unique; names must not be empty.
    """
    problems: list[LayerProblem] = []
    feats = frame["feature"].to_numpy() if "feature" in frame.columns else np.arange(1, len(frame) + 1)
    codes = [_text(c) for c in frame["code"]]
    for n, c in zip(feats, codes):
        if c is None:
            problems.append(LayerProblem("error", f"feature {n} has no code", [str(n)], what="no_code"))
        elif not CODE_RE.match(c):
            problems.append(LayerProblem("error", f"feature {n}: code {c!r} is not 12 digits ({len(c)} characters)",
                                         [str(n)], what="bad_code"))
    seen: dict[str, list[str]] = {}
    for n, c in zip(feats, codes):
        if c is not None:
            seen.setdefault(c, []).append(str(n))
    for c, ns in seen.items():
        if len(ns) > 1:
            problems.append(LayerProblem("error", f"code {c} is used by features {', '.join(ns)}", ns,
                                         what="duplicate_code"))
    names = frame["name"] if "name" in frame.columns else pd.Series([None] * len(frame))
    for n, c, v in zip(feats, codes, names):
        if _text(v) is None:
            problems.append(LayerProblem("error", f"feature {n} (code {c}) has no name", [str(n)], what="empty_name"))
    return problems


def format_problems(problems: list[LayerProblem], limit: int | None = None) -> str:
    """The problems as the lines of a refusal message ("  - ..."), all of them unless `limit`."""
    shown = problems if limit is None else problems[:limit]
    more = [] if len(shown) == len(problems) else [f"  ... and {len(problems) - len(shown)} more"]
    return "\n".join([f"  - {p}" for p in shown] + more)


# ---------------------------------------------------------------------------------------------- zones


def read_zone_map(path: str | Path) -> dict[str, tuple[str, str | None]]:
    """A zones CSV (code,zone_id[,zone_name]; UTF-8 or GBK, as Excel saves it) as {12-digit code: (zone_id, zone_name)}."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    t = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    t.columns = [str(c).strip(_SPACES).lower() for c in t.columns]
    if not {"code", "zone_id"} <= set(t.columns):
        raise OfficialLayerError(f"{path}: a zones CSV needs the columns code,zone_id[,zone_name]; it has {list(t.columns)}")
    out: dict[str, tuple[str, str | None]] = {}
    problems = []
    for i, r in enumerate(t.itertuples(index=False), start=2):
        c, zid = normalize_code(r.code)[0], _text(r.zone_id)
        zname = _text(getattr(r, "zone_name", None))
        if not c or not CODE_RE.match(c) or not zid:
            problems.append(f"line {i}: code {r.code!r}, zone_id {r.zone_id!r}")
        elif c in out and out[c][0] != zid:
            problems.append(f"line {i}: code {c} is given zones {out[c][0]} and {zid}")
        else:
            out[c] = (zid, zname)
    if problems:
        raise OfficialLayerError(f"{path}: unusable rows: " + "; ".join(problems))
    return out


def zone_for_codes(frame: gpd.GeoDataFrame, current_units: pd.DataFrame,
                   zone_map: Mapping[str, tuple[str, str | None]] | None = None
                   ) -> tuple[gpd.GeoDataFrame, list[LayerProblem]]:
    """Give each village a zone: its zone in the layer, else in `zone_map`, else the one its code has now.

    `current_units` (the units in force: village_code, zone_id, zone_name, town, town_code) also
    give zone names by zone id and town names by town code where the layer has none. A village
    whose code is new and has no zone is a problem (give a zones CSV: read_zone_map).
    """
    out = frame.copy()
    cur = current_units[current_units["village_code"].notna()]
    zone_of = dict(zip(cur["village_code"].astype(str), cur["zone_id"].astype(str)))
    zone_names = {str(z): n for z, n in zip(current_units["zone_id"], current_units.get("zone_name", [None] * len(current_units)))
                  if _text(n)}
    zmap = dict(zone_map or {})
    have = list(out["zone_id"]) if "zone_id" in out.columns else [None] * len(out)
    have_names = list(out["zone_name"]) if "zone_name" in out.columns else [None] * len(out)
    zones, znames, problems = [], [], []
    for n, c, z, zn, name in zip(out["feature"], out["code"], have, have_names, out["name"]):
        z = _text(z)
        if z is None and c in zmap:
            z, zn = zmap[c][0], zmap[c][1] or zn
        if z is None and c in zone_of:
            z = zone_of[c]
        if z is None:
            problems.append(LayerProblem("error", f"feature {n}: village {c} ({name}) is new and has no zone; "
                                         "give a zones CSV (code,zone_id[,zone_name])", [str(n)], what="no_zone"))
        zones.append(z)
        znames.append(_text(zn) or (zone_names.get(z) if z is not None else None))
    out["zone_id"], out["zone_name"] = _objects(zones, out.index), _objects(znames, out.index)
    if "town_code" in current_units.columns and "town" in current_units.columns:
        towns = {str(tc): t for tc, t in zip(current_units["town_code"], current_units["town"]) if _text(t) and _text(tc)}
        out["town"] = _objects([_text(t) or towns.get(tc) for t, tc in zip(out["town"], out["town_code"])], out.index)
    return out, problems
