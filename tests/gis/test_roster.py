"""The roster is read by Dongguan (UTC+8) calendar day: a hand-over at local midnight is exact."""
from datetime import datetime, timedelta, timezone
from functools import cache

import pandas as pd
import pytest

from gis.roster import Roster, RosterError
from gis.shipped import DATA_DIR as REPO_DATA

UTC8 = timezone(timedelta(hours=8))


@cache
def roster() -> Roster:
    """The shipped roster, read on first use."""
    return Roster.read_csv(REPO_DATA / "roster.csv")


@pytest.mark.parametrize("at,chief", [
    (datetime(2025, 6, 30, 23, 59, tzinfo=UTC8), "ZMT-C10"),
    (datetime(2025, 7, 1, 0, 0, tzinfo=UTC8), "ZMT-C03"),
    (datetime(2025, 6, 30, 16, 30, tzinfo=timezone.utc), "ZMT-C03"),  # 00:30 local on 1 July
    (datetime(2025, 6, 30, 15, 30, tzinfo=timezone.utc), "ZMT-C10"),  # 23:30 local on 30 June
    ("2025-06-30T16:30:00Z", "ZMT-C03"),
    ("2025-06-30", "ZMT-C10"),
])
def test_handover_by_local_day(index, at, chief):
    assert roster().chiefs_by_zone(at)["ZMT-03"].person_id == chief
    p = index.zones.set_index("zone_id").geometry["ZMT-03"].representative_point()
    assert index.lookup(p.x, p.y, at=at).chief.person_id == chief


def test_two_chiefs_at_once_is_an_error():
    t = roster().table.copy()
    row = t[t.person_id == "ZMT-C01"].copy()
    row["person_id"] = "ZMT-C99"
    with pytest.raises(RosterError, match="two chiefs"):
        Roster(pd.concat([t, row]).astype({"effective_from": str, "effective_to": str})
               .replace({"effective_to": {"None": "", "NaT": ""}}))


def test_a_roster_where_nobody_has_an_end_date_answers():
    """All effective_to empty (everyone still in post): it used to fail comparing datetime64 with a date."""
    import pandas as pd

    from gis.roster import Roster

    r = Roster(pd.DataFrame({"person_id": ["P1", "P2"], "role": ["chief", "chief"], "name": ["甲", "乙"],
                             "phone": ["1", "2"], "zone_id": ["Z1", "Z2"], "effective_from": ["2020-01-01", "2021-06-01"],
                             "effective_to": ["", ""]}))
    assert set(r.chiefs_by_zone()) == {"Z1", "Z2"}
    assert set(r.chiefs_by_zone(pd.Timestamp("2021-01-01").date())) == {"Z1"}
