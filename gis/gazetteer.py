"""Free-text addresses → place: an offline gazetteer over the project's own data.

``Gazetteer`` indexes towns, villages/communities, facilities and
data/boundaries/gazetteer_extra.csv; ``geocode_address`` ranks its candidates,
decides whether the best one is sure enough, and only when it is not asks an
optional online ``GeocodingProvider`` (zonechief.amap.AmapProvider).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import shapely
from rapidfuzz.distance import OSA

from gis.errors import ZonechiefError
from gis.gazetteer_text import none_if_blank, normalize_text, numbers_in
from gis.geocode_result import Candidate, GeocodeResult
from gis.shipped import DATA_DIR

__all__ = ["Gazetteer", "geocode_address", "GeocodingProvider", "ProviderError"]

# Tie-break when scores are equal: the more specific place first.
_SPECIFICITY = {"facility": 4, "landmark": 3, "village": 2, "retired": 2, "road": 1, "town": 0}
# A town alone never reaches the default min_confidence (0.75): knowing only the
# town does not tell which of its zones a report belongs to.
# "retired": a village name of earlier boundaries that the boundaries in force no longer have.
_KIND_WEIGHT = {"facility": 1.0, "landmark": 1.0, "village": 1.0, "retired": 1.0, "road": 0.9, "town": 0.6}
_PRIMARY = 1.0          # official name, short name, facility name/code
_EXTRA_ALIAS = 0.95     # aliases listed in gazetteer_extra.csv
_STRIPPED = 0.85        # 铁岗 for 铁岗村: common in speech, but a 2-character word can occur by chance
_TOWN_CONFLICT = 0.7    # a place in another town than the one the text names
_TOWN_AGREES = 0.05     # ... or in that town: lifts a one-typo match (企石镇铁刚村) over 0.75
_SUFFIXES = ("社区", "村")                  # stripped from village short names
_GENERIC = ("社区", "村", "镇")             # not counted as distinctive when scoring typos
_MAX_EXACT_CHARS = 1000                     # bound work on pathological input
_MAX_FUZZY_CHARS = 200
_CJK = re.compile(r"[\u3400-\u9fff]")


def _distinctive_len(alias: str) -> int:
    for suf in _GENERIC:
        if alias.endswith(suf) and len(alias) > len(suf):
            return len(alias) - len(suf)
    return len(alias)


# ============================================================================ gazetteer


@dataclass
class _Alias:
    text: str       # normalized
    quality: float
    fuzzy: bool     # whether typo matching is allowed on this alias


@dataclass
class _Entry:
    kind: str
    name: str
    lon: float
    lat: float
    zone_id: str | None
    village_code: str | None
    town: str | None
    facility_id: str | None = None
    aliases: list[_Alias] = field(default_factory=list)
    successors: list[Candidate] = field(default_factory=list)  # a retired name: the villages now covering its area



class Gazetteer:
    """Offline place-name index over the project's own data.

    >>> gz = Gazetteer.load()
    >>> gz.search("企石鎮鐵崗村")[0].village_code      # doctest: +SKIP
    '441900105200'
    """

    def __init__(self, entries: list[_Entry], villages=None):
        self.entries = list(entries)
        # villages (GeoDataFrame, WGS-84) lets locate() give a zone for provider points.
        self._villages = villages
        if villages is not None and len(villages):
            self._vgeoms = np.asarray(villages.geometry.values, dtype=object)
            shapely.prepare(self._vgeoms)
        else:
            self._vgeoms = np.empty(0, dtype=object)
        self._index: dict[str, list[tuple[int, float]]] = {}
        self._fuzzy: list[tuple[str, int, float]] = []
        for i, e in enumerate(self.entries):
            for a in e.aliases:
                self._index.setdefault(a.text, []).append((i, a.quality))
                if a.fuzzy:
                    self._fuzzy.append((a.text, i, a.quality))

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, data_dir: str | Path | None = None) -> "Gazetteer":
        """Build from towns.geojson, villages.geojson, facilities.geojson and gazetteer_extra.csv."""
        import geopandas as gpd

        d = Path(data_dir) if data_dir is not None else DATA_DIR
        fpath = d / "facilities.geojson"
        return cls.from_layers(gpd.read_file(d / "towns.geojson", engine="pyogrio"),
                               gpd.read_file(d / "villages.geojson", engine="pyogrio"),
                               gpd.read_file(fpath, engine="pyogrio") if fpath.exists() else None,
                               d / "gazetteer_extra.csv")

    @classmethod
    def from_index(cls, index, towns, facilities=None, extra_csv: str | Path | None = None,
                   retired=None) -> "Gazetteer":
        """Build from the boundaries in force (a ZoneIndex's villages), so new and renamed villages are found by name;
        `retired`: villages of earlier boundaries that these no longer have (code, name, short_name, town, geometry)."""
        u = index.units
        villages = u[["geometry"]].assign(code=u.unit_id.astype(str), name=u.village_name, short_name=u.village_short_name,
                                          zone_id=u.zone_id.astype(str), town=u.town)
        return cls.from_layers(towns, villages, facilities, extra_csv, retired)

    @classmethod
    def from_layers(cls, towns, villages, facilities=None, extra_csv: str | Path | None = None,
                    retired=None) -> "Gazetteer":
        """Build from layers: towns (name[, name_en]), villages (code, name, short_name, zone_id, town), facilities
        (facility_id, name, service_code, zone_id, town), the aliases CSV, and retired villages (see from_index).

        Village and town positions are representative points of their polygons (always inside, unlike
        centroids). Landmarks and facilities get their zone from the village under them, so a redrawn
        zone is followed; a retired name gives the villages now covering its old area as candidates.
        """
        entries: list[_Entry] = []
        derived: list[tuple[_Entry, str]] = []  # (entry, stripped alias), checked for clashes below

        towns = towns.to_crs(4326)
        villages = villages.to_crs(4326)
        for _, t in towns.iterrows():
            name = str(t["name"])
            p = t.geometry.representative_point()
            e = _Entry("town", name, p.x, p.y, None, None, name)
            names = [name]
            if name.endswith("镇") and len(name) >= 3:
                names.append(name[:-1])
            if none_if_blank(t.get("name_en")):
                names.append(str(t["name_en"]))
            e.aliases = [_Alias(normalize_text(n), _PRIMARY, len(n) >= 3 and bool(_CJK.search(n))) for n in names]
            entries.append(e)

        for _, v in villages.iterrows():
            p = v.geometry.representative_point()
            short = none_if_blank(v.get("short_name")) or str(v["name"])
            e = _Entry("village", short, p.x, p.y, none_if_blank(v.get("zone_id")),
                       none_if_blank(v.get("code")), none_if_blank(v.get("town")))
            # Typos are matched on the short name only: official names share the long
            # suffix 村民委员会/居民委员会, which would make every village look alike.
            e.aliases = [_Alias(normalize_text(v["name"]), _PRIMARY, False),
                         _Alias(normalize_text(short), _PRIMARY, True)]
            for suf in _SUFFIXES:
                if short.endswith(suf) and len(short) - len(suf) >= 2:
                    derived.append((e, normalize_text(short[: -len(suf)])))
                    break
            entries.append(e)

        if facilities is not None:
            fac = facilities.to_crs(4326)
            for _, f in fac.iterrows():
                g = f.geometry
                if g is None or g.is_empty:
                    continue
                p = g if g.geom_type == "Point" else g.representative_point()
                name = none_if_blank(f.get("name")) or str(f["facility_id"])
                e = _Entry("facility", name, p.x, p.y, none_if_blank(f.get("zone_id")), None,
                           none_if_blank(f.get("town")), facility_id=str(f["facility_id"]))
                e.aliases = [_Alias(normalize_text(name), _PRIMARY, True),
                             _Alias(normalize_text(f["service_code"]), _PRIMARY, False),
                             _Alias(normalize_text(f["facility_id"]), _PRIMARY, False)]
                entries.append(e)

        xpath = Path(extra_csv) if extra_csv is not None else None
        if xpath is not None and xpath.exists():
            with open(xpath, encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    kind = (row.get("kind") or "").strip()
                    if kind not in ("landmark", "road"):
                        raise ValueError(f"{xpath}: kind must be landmark or road, got {kind!r} for {row.get('name')!r}")
                    name = row["name"].strip()
                    e = _Entry(kind, name, float(row["lon"]), float(row["lat"]), none_if_blank(row.get("zone_id")),
                               None, none_if_blank(row.get("town")))
                    e.aliases = [_Alias(normalize_text(name), _PRIMARY, True)]
                    for a in (row.get("aliases") or "").split("|"):
                        if a.strip():
                            e.aliases.append(_Alias(normalize_text(a), _EXTRA_ALIAS, len(a.strip()) >= 3))
                    entries.append(e)

        # A stripped name that is also someone else's name is dropped: 企石村 → 企石
        # would otherwise compete with the town 企石(镇), which is what people mean.
        taken: dict[str, set[int]] = {}
        for e in entries:
            for a in e.aliases:
                taken.setdefault(a.text, set()).add(id(e))
        counts: dict[str, int] = {}
        for _, s in derived:
            counts[s] = counts.get(s, 0) + 1
        for e, s in derived:
            if len(s) >= 2 and counts[s] == 1 and not (taken.get(s, set()) - {id(e)}):
                e.aliases.append(_Alias(s, _STRIPPED, False))

        for e in entries:
            # drop empty aliases (a name of pure punctuation) and duplicates, keeping the best quality
            best: dict[str, _Alias] = {}
            for a in e.aliases:
                if a.text and (a.text not in best or a.quality > best[a.text].quality):
                    best[a.text] = a
            e.aliases = list(best.values())
            if e.kind in ("facility", "landmark", "road") and e.village_code is None:
                e.village_code = cls._village_at(villages, e.lon, e.lat, e.zone_id)
            if e.kind in ("facility", "landmark") and e.zone_id is not None:
                e.zone_id, e.village_code = cls._zone_at(villages, e.lon, e.lat, e.zone_id, e.village_code)
        entries.extend(cls._retired(retired, villages, {a.text for e in entries for a in e.aliases}))
        return cls(entries, villages)

    @staticmethod
    def _zone_at(villages, lon, lat, zone_id, village_code):
        """The zone and village under a point (the boundaries in force), else what the source said."""
        hit = villages[villages.geometry.covers(shapely.Point(lon, lat))]
        if not len(hit):
            return zone_id, village_code
        return none_if_blank(hit["zone_id"].iloc[0]), none_if_blank(hit["code"].iloc[0])

    @staticmethod
    def _retired(retired, villages, taken: set[str]) -> list[_Entry]:
        """Entries for names the boundaries in force no longer have, each with the villages now covering its area."""
        if retired is None or not len(retired):
            return []
        out = []
        retired = retired.to_crs(4326)
        vg = np.asarray(villages.geometry.values, dtype=object)
        for _, r in retired.iterrows():
            names = [n for n in (none_if_blank(r.get("name")), none_if_blank(r.get("short_name"))) if n]
            aliases = [_Alias(normalize_text(n), _PRIMARY, False) for n in names if normalize_text(n) not in taken]
            if not aliases or r.geometry is None or r.geometry.is_empty:
                continue
            p = r.geometry.representative_point()
            cover = np.flatnonzero(shapely.intersects(vg, r.geometry))
            area = shapely.area(shapely.intersection(vg[cover], r.geometry)) if len(cover) else np.array([])
            succ = [Candidate(kind="village", name=str(villages.iloc[k].get("short_name") or villages.iloc[k]["name"]),
                              matched=names[0], lon=float(villages.iloc[k].geometry.representative_point().x),
                              lat=float(villages.iloc[k].geometry.representative_point().y),
                              zone_id=none_if_blank(villages.iloc[k]["zone_id"]),
                              village_code=none_if_blank(villages.iloc[k]["code"]), town=none_if_blank(villages.iloc[k].get("town")),
                              score=round(float(a / r.geometry.area), 4) if r.geometry.area else 0.0)
                    for k, a in sorted(zip(cover, area), key=lambda ka: -ka[1]) if a > 0]
            e = _Entry("retired", names[0], p.x, p.y, None, none_if_blank(r.get("code")), none_if_blank(r.get("town")))
            e.aliases, e.successors = aliases, succ
            out.append(e)
        return out

    @staticmethod
    def _village_at(villages, lon, lat, zone_id):
        if zone_id is None:
            return None  # a multi-zone road has no single village
        hit = villages[villages.geometry.covers(shapely.Point(lon, lat))]
        return str(hit["code"].iloc[0]) if len(hit) else None

    def locate(self, lon: float, lat: float) -> tuple[str | None, str | None, str | None]:
        """(zone_id, village_code, town) of the village covering a WGS-84 point, or Nones."""
        if self._villages is None or not (np.isfinite(lon) and np.isfinite(lat)):
            return None, None, None
        hits = np.flatnonzero(shapely.intersects_xy(self._vgeoms, lon, lat))
        if not len(hits):
            return None, None, None
        v = self._villages.iloc[int(hits[0])]
        return none_if_blank(v.get("zone_id")), none_if_blank(v.get("code")), none_if_blank(v.get("town"))

    # ---------------------------------------------------------------- search
    def search(self, text, limit: int = 5) -> list[Candidate]:
        """Ranked candidates for free text; [] when nothing is recognised.

        Exact alias substrings score kind weight × alias quality (a village by
        name: 1.0; a town: 0.6). A name found only inside a longer name of another
        place does not count (樟木头 inside 樟木头生活区). Typos are matched
        with rapidfuzz (optimal string alignment distance ≤ 1, ≤ 2 for names of 6+
        characters) on parts of the text not already explained by an exact match;
        one typo in a name with two distinctive characters (铁刚村) scores
        0.725, i.e. found but flagged for review by default. When the text names
        a town, places in it gain 0.05 (企石镇铁刚村: 0.775) and places in the
        other town are multiplied by 0.7.
        """
        if limit <= 0:
            return []
        norm = normalize_text(text)[:_MAX_EXACT_CHARS]
        if not norm:
            return []
        best: dict[int, tuple[float, str]] = {}

        # ---- exact substrings
        occ: list[tuple[int, int, int, float, str]] = []
        for alias, refs in self._index.items():
            start = norm.find(alias)
            while start != -1:
                for ei, q in refs:
                    occ.append((start, start + len(alias), ei, q, alias))
                start = norm.find(alias, start + 1)
        # drop a match lying inside a longer match of another place
        occ.sort(key=lambda o: (o[0], -(o[1] - o[0])))
        kept = []
        for o in occ:
            if not any(p[2] != o[2] and p[0] <= o[0] and p[1] >= o[1] and p[1] - p[0] > o[1] - o[0] for p in occ):
                kept.append(o)
        for _s, _e, ei, q, alias in kept:
            score = _KIND_WEIGHT[self.entries[ei].kind] * q
            if ei not in best or score > best[ei][0]:
                best[ei] = (score, alias)

        # ---- typos
        ftext = norm[:_MAX_FUZZY_CHARS]
        fchars = set(ftext)
        cache: dict[int, np.ndarray] = {}
        for alias, ei, q in self._fuzzy:
            L = len(alias)
            if L < 3:
                continue
            dmax = 1 if L <= 5 else 2
            if len(set(alias) & fchars) < len(set(alias)) - dmax:
                continue  # cannot be within dmax edits of any window
            nums = numbers_in(alias)
            covered = self._covered(kept, len(ftext), L - dmax, cache)
            for w in range(max(1, L - dmax), L + dmax + 1):
                for s in range(0, len(ftext) - w + 1):
                    if covered[s:s + w].sum() * 2 >= w:
                        continue  # mostly explained by an exact match of a name as long as this one
                    win = ftext[s:s + w]
                    d = OSA.distance(win, alias, score_cutoff=dmax)
                    if d == 0 or d > dmax or numbers_in(win) != nums:
                        continue
                    score = _KIND_WEIGHT[self.entries[ei].kind] * q * max(0.0, 0.95 - 0.45 * d / _distinctive_len(alias))
                    if ei not in best or score > best[ei][0]:
                        best[ei] = (score, win)

        # ---- town consistency: the town named in the text corroborates or contradicts
        named_towns = {self.entries[ei].town for _, _, ei, _, _ in kept if self.entries[ei].kind == "town"}
        out = []
        for ei, (score, matched) in best.items():
            e = self.entries[ei]
            if named_towns and e.kind != "town":
                score = score + _TOWN_AGREES if e.town in named_towns else score * _TOWN_CONFLICT
            out.append(Candidate(kind=e.kind, name=e.name, matched=matched, lon=float(e.lon), lat=float(e.lat),
                                 zone_id=e.zone_id, village_code=e.village_code, town=e.town,
                                 score=round(min(1.0, max(0.0, score)), 4)))
        out.sort(key=lambda c: (-c.score, -_SPECIFICITY[c.kind], c.name))
        return out[:limit]

    @staticmethod
    def _covered(kept, n: int, min_len: int, cache: dict) -> np.ndarray:
        """Positions inside exact matches at least min_len long.

        Such a match blocks typo matching on the same characters (上截村 must not
        also suggest 下截村), but a shorter one does not: 樟木头 inside
        樟木头公厕1 must not stop the typo match to 樟木头公厕01.
        """
        if min_len not in cache:
            m = np.zeros(n + 1, dtype=bool)
            for s, e, *_ in kept:
                if e - s >= min_len:
                    m[s:e] = True
            cache[min_len] = m
        return cache[min_len]

    def facility_id_of(self, cand: Candidate) -> str | None:
        """facility_id for a facility candidate (by name and position)."""
        for e in self.entries:
            if e.kind == "facility" and e.name == cand.name and e.lon == cand.lon and e.lat == cand.lat:
                return e.facility_id
        return None


# ============================================================================ address → result


def _conflicts(a: Candidate, b: Candidate) -> bool:
    """Whether b points somewhere else than a (a zone-less place conflicts only across towns)."""
    if a.zone_id and b.zone_id:
        return a.zone_id != b.zone_id
    return a.town != b.town


def _decide(cands: list[Candidate], min_confidence: float, min_margin: float, gazetteer: Gazetteer) -> GeocodeResult:
    if not cands:
        return GeocodeResult("gazetteer", None, None, 0.0, True, [], note="no known place name in the text")
    b = cands[0]
    if b.kind == "retired":  # not a stale zone: the villages now covering it, for a person to choose
        succ = next((e.successors for e in gazetteer.entries if e.kind == "retired" and e.name == b.name), [])
        return GeocodeResult("gazetteer", b.lon, b.lat, b.score, True, succ + cands[1:],
                             note=f"{b.name} no longer exists under the boundaries in force; "
                                  f"now covered by {', '.join(c.name for c in succ) or 'no village'}")
    reasons = []
    if b.kind == "town":
        reasons.append("only the town is known")
    elif b.zone_id is None:
        reasons.append(f"only {b.name} is known, which spans several zones; no village named")
    elif b.score < min_confidence:
        reasons.append(f"low confidence: {b.score:.2f} < {min_confidence:g}")
    rivals = [c for c in cands[1:] if round(b.score - c.score, 6) < min_margin and _conflicts(b, c)]
    if rivals:
        reasons.append(f"ambiguous: {len(rivals) + 1} candidates within {min_margin:g}")
    return GeocodeResult(
        method="gazetteer", lon=b.lon, lat=b.lat, confidence=b.score, needs_review=bool(reasons),
        candidates=cands, zone_id=b.zone_id,
        facility_id=gazetteer.facility_id_of(b) if b.kind == "facility" else None,
        note="; ".join(reasons) if reasons else f"{b.kind} {b.name} matched {b.matched!r}",
    )


def geocode_address(text, gazetteer: Gazetteer, min_confidence: float = 0.75, min_margin: float = 0.1,
                    provider: "GeocodingProvider | None" = None) -> GeocodeResult:
    """Geocode free text with the offline gazetteer, then (optionally) an online provider.

    needs_review is True when the best score < min_confidence, when a candidate
    in another zone scores within min_margin of the best, when only a town or a
    multi-zone road is known, or when nothing matches (then lon/lat are None).
    Never raises on odd text. The provider is asked only when the offline answer
    needs review; its best candidate is used if it scores >= min_confidence and
    falls inside a known zone (and in the town the text names, if any).
    """
    cands = gazetteer.search(text, limit=10)
    result = _decide(cands, min_confidence, min_margin, gazetteer)
    result.candidates = result.candidates[:5]
    if not result.needs_review or provider is None or not normalize_text(text):
        return result
    return _with_provider(str(text).strip(), result, gazetteer, provider, min_confidence)


def _with_provider(text: str, offline: GeocodeResult, gazetteer: Gazetteer, provider, min_confidence: float):
    pname = getattr(provider, "name", type(provider).__name__)
    try:
        pcands = list(provider.geocode(text))
    except Exception as exc:  # any provider failure falls back to the offline answer
        msg = str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}"
        offline.note = f"{offline.note}; provider {pname} failed: {msg}"
        return offline
    placed = []
    for c in pcands:
        zone, code, town = gazetteer.locate(c.lon, c.lat)
        placed.append(replace(c, zone_id=zone, village_code=code, town=town or c.town))
    placed.sort(key=lambda c: -c.score)
    if not placed:
        offline.note = f"{offline.note}; provider {pname} found nothing"
        return offline
    p = placed[0]
    named_towns = {c.town for c in offline.candidates if c.kind == "town"}
    why_not = None
    if p.score < min_confidence:
        why_not = f"best score {p.score:.2f} < {min_confidence:g}"
    elif p.zone_id is None:
        why_not = "its point is outside every zone"
    elif named_towns and p.town not in named_towns:
        why_not = f"its point is in {p.town}, not in {'/'.join(sorted(t for t in named_towns if t))}"
    if why_not:
        offline.note = f"{offline.note}; provider {pname} not used: {why_not}"
        offline.candidates = offline.candidates + placed[:3]
        return offline
    return GeocodeResult(
        method=f"provider:{pname}", lon=p.lon, lat=p.lat, confidence=p.score, needs_review=False,
        candidates=placed[:3] + offline.candidates, zone_id=p.zone_id,
        note=f"offline: {offline.note}; used {pname} result {p.name!r} ({p.kind})",
    )


# ============================================================================ online providers


class ProviderError(ZonechiefError, RuntimeError):
    """An online geocoder could not answer (network, timeout, HTTP or API error, bad JSON)."""


@runtime_checkable
class GeocodingProvider(Protocol):
    """An online geocoder. Candidates must be WGS-84; zone fields may be left None."""

    name: str

    def geocode(self, text: str) -> list[Candidate]:
        """Candidates for the text (empty when nothing matches); raise ProviderError when the service cannot answer."""
        ...

