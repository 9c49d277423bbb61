"""Chiefs and patrol inspectors per zone, with effective dates.

The roster is a table of (person, role, zone, effective_from, effective_to)
rows; a person covering two zones has two rows. Who is in force is decided
at a given time, so an old report keeps the chief it was assigned to.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import pandas as pd

from gis.errors import ZonechiefError
from gis.localtime import local_day

REQUIRED = ["person_id", "role", "name", "phone", "zone_id", "effective_from", "effective_to"]
ROLES = {"chief", "inspector"}


class RosterError(ZonechiefError, ValueError):
    """The roster cannot be used: missing columns, unknown roles, unreadable dates or two chiefs at once."""


@dataclass(frozen=True)
class Person:
    """One person on the roster, as lookups answer with them."""

    person_id: str
    name: str
    phone: str
    role: str


class Roster:
    """The roster table, checked on load; answers who is in force per zone on a given day (cached per day)."""

    def __init__(self, table: pd.DataFrame):
        missing = [c for c in REQUIRED if c not in table.columns]
        if missing:
            raise RosterError(f"roster is missing columns {missing}; expected {REQUIRED}")
        t = table.copy()
        bad_roles = sorted(set(t["role"]) - ROLES)
        if bad_roles:
            raise RosterError(f"unknown roles {bad_roles}; use one of {sorted(ROLES)}")
        t["effective_from"] = pd.to_datetime(t["effective_from"], errors="raise").dt.date
        # Element-wise: with no end date at all, .dt.date would keep a datetime64 column that dates cannot be compared with.
        t["effective_to"] = pd.Series([None if pd.isna(d) else d.date() for d in
                                       pd.to_datetime(t["effective_to"].replace("", None), errors="raise")],
                                      index=t.index, dtype=object)
        t = t.fillna({"phone": ""}).astype({"person_id": str, "zone_id": str, "name": str, "phone": str})
        self.table = t.reset_index(drop=True)
        self._check_one_chief()
        # Per date: filtering the table with pandas costs ~1 ms, far more than a lookup.
        self._by_zone = lru_cache(maxsize=512)(self._by_zone_uncached)

    @classmethod
    def read_csv(cls, path: str | Path) -> "Roster":
        """A roster from a CSV file with the REQUIRED columns, every cell read as text (an empty effective_to is open-ended)."""
        return cls(pd.read_csv(path, dtype=str, keep_default_na=False))

    def _check_one_chief(self):
        """Two chiefs in force for the same zone at the same time is a data error."""
        chiefs = self.table[self.table.role == "chief"]
        for zone, rows in chiefs.groupby("zone_id"):
            # An open end is NaT, which is truthy: test it explicitly.
            spans = sorted((r.effective_from, date.max if pd.isna(r.effective_to) else r.effective_to, r.person_id)
                           for r in rows.itertuples())
            for (_a0, a1, pa), (b0, _b1, pb) in zip(spans, spans[1:]):
                if b0 < a1:
                    raise RosterError(f"zone {zone} has two chiefs at once ({pa} and {pb} from {b0})")

    @staticmethod
    def _covers(effective_from, effective_to, day):
        """The in-force rule: from effective_from up to, not including, effective_to; no end date is open."""
        return (effective_from <= day) & (pd.isna(effective_to) | (effective_to > day))

    def in_force(self, at=None) -> pd.DataFrame:
        """The rows in force on the Dongguan day of `at` (today if None)."""
        t = self.table
        return t[self._covers(t.effective_from, t.effective_to, local_day(at))]

    def chiefs_by_zone(self, at=None) -> dict[str, Person]:
        """zone_id → the chief in force on the day of `at` (today if None); a zone without one is absent."""
        return dict(self._by_zone(local_day(at))[0])  # a copy: callers may change it, the cache must not

    def inspectors_by_zone(self, at=None) -> dict[str, list[Person]]:
        """zone_id → the patrol inspectors in force on the day of `at`, by person_id; a zone without any is absent."""
        return {z: list(ps) for z, ps in self._by_zone(local_day(at))[1].items()}

    def staff(self, zone_id: str, at=None) -> tuple[Person | None, list[Person]]:
        """The chief (or None) and the inspectors in force for one zone."""
        chiefs, insp = self._by_zone(local_day(at))
        return chiefs.get(zone_id), list(insp.get(zone_id, ()))

    def _by_zone_uncached(self, d: date) -> tuple[dict[str, Person], dict[str, tuple[Person, ...]]]:
        t = self.in_force(d)
        chiefs = {r.zone_id: Person(r.person_id, r.name, r.phone, "chief") for r in t[t.role == "chief"].itertuples()}
        insp: dict[str, list[Person]] = {}
        for r in t[t.role == "inspector"].sort_values("person_id").itertuples():
            insp.setdefault(r.zone_id, []).append(Person(r.person_id, r.name, r.phone, "inspector"))
        return chiefs, {z: tuple(ps) for z, ps in insp.items()}

    def people(self, role: str | None = None, at=None) -> pd.DataFrame:
        """One row per person in force, with the zones they cover (';'-joined)."""
        t = self.in_force(at)
        if role:
            t = t[t.role == role]
        g = t.groupby(["person_id", "role", "name", "phone"], sort=True)["zone_id"].apply(lambda s: ";".join(sorted(s)))
        return g.reset_index().rename(columns={"zone_id": "zone_ids"})
