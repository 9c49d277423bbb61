"""Patrol tracks and their reference data (teams, people, paired shops) on PostGIS or SQLite.

THE CONTRACT (issue 17; gis/patrol_coverage.py, maps/patrols.py and the notebook read through it):

    from store.patrols_repo import PatrolRepository, points_frame, patrols_frame
    repo = PatrolRepository.for_db(db)              # db: store.db.Database
    pts = repo.points_frame(since, until, town=None, team=None, person_ids=None)
    pts = points_frame(db, since, until, ...)       # the same; `db` may also be an Engine or a Session

``points_frame`` -> pandas.DataFrame, one row per GPS fix, sorted by (patrol_id, t):

    patrol_id  int64                  the patrol (a track: one person's fixes with no gap > 30 min)
    person_id  str                    who walked it (pandas' default string dtype)
    team       str                    the patrol's team_id (patrol_teams.team_id); missing (NaN) if unknown
    t          datetime64[ns, UTC]    the fix's time
    lon, lat   float64                WGS-84 degrees

Filters: ``since <= t < until`` (aware datetimes, None = open; parse user text with
gis.localtime.parse_instant, the project's one time rule); ``town``: the patrol's town
("企石镇", "樟木头镇": the town most of its fixes lie in, decided at import); ``team``: a
team_id; ``person_ids``: an iterable of person ids. A filter applies to whole patrols
except since/until, which cut fixes. An empty result still has the columns and dtypes.
A frame from zonechief.patrols_synthetic.synthetic_tracks has the same layout.

``patrols_frame(since, until, town=None, team=None, person_ids=None)`` -> geopandas.GeoDataFrame
(EPSG:4326), one row per patrol overlapping [since, until), sorted by patrol_id:
patrol_id int64, person_id str, team str|None, town str|None, started_at / ended_at
datetime64[ns, UTC], n_points int64, length_m float64 (geodesic-ish: EPSG:4547 metres),
source str (file name, "api", "synthetic"...), synthetic bool, imported_at datetime64[ns, UTC],
imported_by str|None, geometry LineString (WGS-84; all the patrol's fixes, not cut to the window).

Reference data (shipped illustrative CSVs in data/boundaries/, replaced by
``zonechief patrols teams|shops import``):

    teams_frame()  -> team_id str, name str, kind str ("inspectors" | "womens_team" | other text), town str|None
    people_frame() -> person_id str, name str|None, team_id str|None, zone_id str|None
    shops_frame()  -> GeoDataFrame: shop_id str, name str, team_id str|None, person_id str|None,
                      zone_id str|None, lon, lat float64 (WGS-84), geometry Point

Storage: patrols (one row per track, LINESTRING geometry with a GiST index on PostGIS) and
patrol_points (patrol_id, t, lon, lat): plain float columns, no per-point geometry. Points are
only ever read whole per patrol and time window, never searched spatially (the patrol's line
and its index answer "where"), so a POINT column would cost an EWKB encode on write and a
decode on read for nothing. On PostGIS floats go in by binary COPY (store.pg_bulk) and come out
packed into one bytea per patrol (see PostgisPatrolRepository._points); on SQLite executemany and
one SELECT (times there: epoch microseconds).
The primary key (patrol_id, t) serves the ordered reads; there is no foreign key to patrols
(its per-row check tripled COPY time): the repository writes and deletes fixes with their patrol.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, and_, delete, insert, select
from sqlalchemy.orm import Session

from store.models import PairedShop, Patrol, PatrolPerson, PatrolPoint, PatrolTeam

POINT_COLUMNS = ["patrol_id", "person_id", "team", "t", "lon", "lat"]
PATROL_COLUMNS = ["patrol_id", "person_id", "team", "town", "started_at", "ended_at", "n_points", "length_m",
                  "source", "synthetic", "imported_at", "imported_by", "geometry"]


def empty_points() -> pd.DataFrame:
    """A points frame with no rows and the contract's dtypes."""
    return pd.DataFrame({"patrol_id": pd.Series([], dtype="int64"), "person_id": pd.Series([], dtype="str"),
                         "team": pd.Series([], dtype="str"), "t": pd.Series([], dtype="datetime64[ns, UTC]"),
                         "lon": pd.Series([], dtype="float64"), "lat": pd.Series([], dtype="float64")})


def strings(values: list, codes: np.ndarray) -> pd.Series:
    """values[codes] as a pandas str column (None: missing), built in Arrow: no Python string per row."""
    import pyarrow as pa

    arr = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, np.int32)), pa.array(values, pa.string()))
    return pd.Series(arr.cast(pa.string()), dtype="str")


def _engine(source) -> Engine:
    """The engine behind a Database, Engine or Session."""
    if isinstance(source, Engine):
        return source
    if isinstance(source, Session):
        return source.get_bind()  # type: ignore[return-value]
    return source.engine


class PatrolRepository(ABC):
    """Writing imported patrols and reading them (and the reference data) back as frames."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @staticmethod
    def for_db(db) -> "PatrolRepository":
        """The implementation for the dialect of `db` (a Database, Engine or Session)."""
        engine = _engine(db)
        cls = PostgisPatrolRepository if engine.dialect.name == "postgresql" else SqlitePatrolRepository
        return cls(engine)

    # ---------------------------------------------------------------- writes (one transaction: the caller's)
    @abstractmethod
    def write(self, session: Session, patrols: list[dict], points: pd.DataFrame) -> list[int]:
        """Insert patrols (dicts with Patrol's columns but id; `geom` a LineString) and their fixes.

        `points`: columns track (0..len(patrols)-1, the index of its patrol in `patrols`), t (UTC),
        lon, lat. Returns the new patrol ids in the order of `patrols`. Nothing is committed here.
        """

    @abstractmethod
    def _points(self, ids: list[int], since: datetime | None, until: datetime | None) -> pd.DataFrame:
        """patrol_id, t, lon, lat of these patrols' fixes in [since, until), sorted by patrol_id, t."""

    def delete_synthetic(self, session: Session) -> int:
        """Remove every synthetic patrol (and its fixes); how many."""
        from store.deadline import Deadlines

        Deadlines.of(self.engine).extend(session.connection())  # hundreds of thousands of fixes: the bulk deadline
        synthetic = select(Patrol.id).where(Patrol.synthetic.is_(True))
        session.execute(delete(PatrolPoint).where(PatrolPoint.patrol_id.in_(synthetic)))
        return session.execute(delete(Patrol).where(Patrol.synthetic.is_(True))).rowcount

    def replace_reference(self, session: Session, *, teams: list[dict] | None = None,
                          people: list[dict] | None = None, shops: list[dict] | None = None) -> None:
        """Replace the given reference tables whole (shops: dicts with `geom` a WGS-84 Point)."""
        for model, rows in ((PairedShop, shops), (PatrolPerson, people), (PatrolTeam, teams)):
            if rows is not None:
                session.execute(delete(model))
                if rows:
                    session.execute(insert(model), rows)

    # ---------------------------------------------------------------- reads
    @staticmethod
    def _conds(since, until, town, team, person_ids) -> list:
        conds = []
        if since is not None:
            conds.append(Patrol.ended_at >= since)
        if until is not None:
            conds.append(Patrol.started_at < until)
        if town:
            conds.append(Patrol.town == town)
        if team:
            conds.append(Patrol.team_id == team)
        if person_ids is not None:
            conds.append(Patrol.person_id.in_(sorted(set(person_ids))))
        return conds

    def points_frame(self, since: datetime | None = None, until: datetime | None = None, town: str | None = None,
                     team: str | None = None, person_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Every fix of the matching patrols in [since, until): the contract's points frame (module docstring)."""
        conds = self._conds(since, until, town, team, person_ids)
        with self.engine.connect() as c:
            heads = c.execute(select(Patrol.id, Patrol.person_id, Patrol.team_id).where(and_(*conds))).all()
        if not heads:
            return empty_points()
        pts = self._points(sorted(h[0] for h in heads), since, until)
        if pts.empty:
            return empty_points()
        pid, tt = pts["patrol_id"].to_numpy(), pts["t"].array.asi8
        if not np.all((np.diff(pid) > 0) | ((np.diff(pid) == 0) & (np.diff(tt) > 0))):  # fixes are stored in order
            pts = pts.iloc[np.lexsort((tt, pid))].reset_index(drop=True)
        heads = sorted(heads)
        ids = np.array([h[0] for h in heads], dtype=np.int64)
        k = np.searchsorted(ids, pts["patrol_id"].to_numpy())
        pts.insert(1, "person_id", strings([h[1] for h in heads], k))
        pts.insert(2, "team", strings([h[2] for h in heads], k))
        return pts.reset_index(drop=True)

    def patrols_frame(self, since: datetime | None = None, until: datetime | None = None, town: str | None = None,
                      team: str | None = None, person_ids: Iterable[str] | None = None) -> gpd.GeoDataFrame:
        """One row per matching patrol (module docstring), sorted by patrol_id."""
        conds = self._conds(since, until, town, team, person_ids)
        cols = [Patrol.id, Patrol.person_id, Patrol.team_id, Patrol.town, Patrol.started_at, Patrol.ended_at,
                Patrol.n_points, Patrol.length_m, Patrol.source, Patrol.synthetic, Patrol.imported_at,
                Patrol.imported_by, Patrol.geom]
        with self.engine.connect() as c:
            rows = c.execute(select(*cols).where(and_(*conds)).order_by(Patrol.id)).all()
        df = pd.DataFrame(rows, columns=PATROL_COLUMNS)
        for col in ("started_at", "ended_at", "imported_at"):
            df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
        df = df.astype({"patrol_id": "int64", "n_points": "int64", "length_m": "float64", "synthetic": bool})
        return gpd.GeoDataFrame(df, geometry="geometry", crs="EPSG:4326")

    def teams_frame(self) -> pd.DataFrame:
        """team_id, name, kind, town: every team, by team_id."""
        with self.engine.connect() as c:
            rows = c.execute(select(PatrolTeam.team_id, PatrolTeam.name, PatrolTeam.kind, PatrolTeam.town)
                             .order_by(PatrolTeam.team_id)).all()
        return pd.DataFrame(rows, columns=["team_id", "name", "kind", "town"])

    def people_frame(self) -> pd.DataFrame:
        """person_id, name, team_id, zone_id: everyone on a patrol team, by person_id."""
        with self.engine.connect() as c:
            rows = c.execute(select(PatrolPerson.person_id, PatrolPerson.name, PatrolPerson.team_id,
                                    PatrolPerson.zone_id).order_by(PatrolPerson.person_id)).all()
        return pd.DataFrame(rows, columns=["person_id", "name", "team_id", "zone_id"])

    def shops_frame(self) -> gpd.GeoDataFrame:
        """shop_id, name, team_id, person_id, zone_id, lon, lat, geometry: the paired shops, by shop_id."""
        with self.engine.connect() as c:
            rows = c.execute(select(PairedShop.shop_id, PairedShop.name, PairedShop.team_id, PairedShop.person_id,
                                    PairedShop.zone_id, PairedShop.geom).order_by(PairedShop.shop_id)).all()
        df = pd.DataFrame(rows, columns=["shop_id", "name", "team_id", "person_id", "zone_id", "geometry"])
        geoms = np.asarray(df["geometry"].to_numpy(), dtype=object)
        df.insert(5, "lon", shapely.get_x(geoms) if len(df) else np.zeros(0))
        df.insert(6, "lat", shapely.get_y(geoms) if len(df) else np.zeros(0))
        return gpd.GeoDataFrame(df, geometry="geometry", crs="EPSG:4326")


def points_frame(db, since: datetime | None = None, until: datetime | None = None, town: str | None = None,
                 team: str | None = None, person_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """PatrolRepository.for_db(db).points_frame(...): `db` a Database, Engine or Session."""
    return PatrolRepository.for_db(db).points_frame(since, until, town, team, person_ids)


def patrols_frame(db, since: datetime | None = None, until: datetime | None = None, town: str | None = None,
                  team: str | None = None, person_ids: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    """PatrolRepository.for_db(db).patrols_frame(...)."""
    return PatrolRepository.for_db(db).patrols_frame(since, until, town, team, person_ids)


def teams_frame(db) -> pd.DataFrame:
    """PatrolRepository.for_db(db).teams_frame()."""
    return PatrolRepository.for_db(db).teams_frame()


def people_frame(db) -> pd.DataFrame:
    """PatrolRepository.for_db(db).people_frame()."""
    return PatrolRepository.for_db(db).people_frame()


def shops_frame(db) -> gpd.GeoDataFrame:
    """PatrolRepository.for_db(db).shops_frame()."""
    return PatrolRepository.for_db(db).shops_frame()


def _insert_patrols(session: Session, patrols: list[dict]) -> list[int]:
    """INSERT ... RETURNING id for each patrol, in the order given."""
    if not patrols:
        return []
    res = session.execute(insert(Patrol).returning(Patrol.id, sort_by_parameter_order=True), patrols)
    return [int(r[0]) for r in res]


_US = np.int64(1000)


def _epoch_us(t: pd.Series) -> np.ndarray:
    """Aware times as int64 microseconds since 1970 (UTC)."""
    return t.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)


class PostgisPatrolRepository(PatrolRepository):
    """PostGIS: fixes go in by binary COPY and come out packed per patrol, decoded with numpy (no Python object per fix)."""

    def write(self, session, patrols, points):
        """Patrols and their fixes by binary COPY in the session's transaction, under the bulk deadline.

        (An INSERT of a thousand lines of a thousand points each, as EWKT, takes PostgreSQL longer than a
        request's statement timeout; COPY sends EWKB.)"""
        import pyarrow as pa

        from store import pg_bulk
        from store.bulk_write import _bulk_cursor

        if not patrols:
            return []
        with _bulk_cursor(session.connection()) as cur:
            cur.execute("SELECT nextval(pg_get_serial_sequence('patrols', 'id')) FROM generate_series(1, %s)",
                        (len(patrols),))
            ids = [int(r[0]) for r in cur.fetchall()]
            geoms = shapely.set_srid(np.array([p["geom"] for p in patrols], dtype=object), 4326)
            cols = {"id": pa.array(ids, pa.int64()), "geom": pa.array(shapely.to_wkb(geoms, include_srid=True), pa.binary()),
                    "n_points": pa.array([p["n_points"] for p in patrols], pa.int32()),
                    "length_m": pa.array([p["length_m"] for p in patrols], pa.float64()),
                    "synthetic": pa.array([bool(p["synthetic"]) for p in patrols], pa.bool_())}
            for c in ("started_at", "ended_at", "imported_at"):
                cols[c] = pa.array([p[c] for p in patrols], pa.timestamp("us", tz="UTC"))
            for c in ("person_id", "team_id", "town", "source", "sha256", "imported_by"):
                cols[c] = pa.array([p.get(c) for p in patrols], pa.string())
            pg_bulk.copy_columns(cur, "patrols", list(cols), [list(cols.values())])
            if len(points):
                pid = np.asarray(ids, np.int64)[points["track"].to_numpy()]
                t = pa.array(_epoch_us(points["t"]), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
                fix = [pa.array(pid), t, pa.array(points["lon"].to_numpy(np.float64)),
                       pa.array(points["lat"].to_numpy(np.float64))]
                step = 500_000
                pg_bulk.copy_columns(cur, "patrol_points", ["patrol_id", "t", "lon", "lat"],
                                     ([c.slice(i, step) for c in fix] for i in range(0, len(pid), step)))
        return ids

    # One patrol's fixes as the server packs them: big-endian (µs since 2000-01-01, lon, lat) records.
    _PACKED = np.dtype([("t", ">i8"), ("lon", ">f8"), ("lat", ">f8")])

    def _points(self, ids, since, until):
        """One row per patrol, its fixes packed into one bytea in time order (timestamptz_send, float8send),
        decoded with numpy. COPY TO would be simpler, but libpq hands it out one row at a time: about 7 µs
        of Python per fix, 2–3 times slower than this for a million fixes (benchmarks/bench_patrols_import.py)."""
        from store.deadline import Deadlines

        cond = "patrol_id = ANY(%(ids)s)"
        if since is not None:
            cond += " AND t >= %(since)s"
        if until is not None:
            cond += " AND t < %(until)s"
        sql = ("SELECT patrol_id, string_agg(timestamptz_send(t) || float8send(lon) || float8send(lat), ''::bytea "
               f"ORDER BY t) FROM patrol_points WHERE {cond} GROUP BY patrol_id ORDER BY patrol_id")
        with self.engine.connect() as conn:
            deadlines = Deadlines.of(self.engine)
            deadlines.extend(conn)  # millions of fixes: the bulk deadline
            with conn.connection.driver_connection.cursor(binary=True) as raw:
                cur = deadlines.cursor(raw)
                cur.execute(sql, {"ids": ids, "since": since, "until": until})
                rows = cur.fetchall()
        parts = [np.frombuffer(b, self._PACKED) for _, b in rows]
        a = np.concatenate(parts) if parts else np.zeros(0, self._PACKED)
        pid = np.repeat(np.array([r[0] for r in rows], np.int64), [len(p) for p in parts])
        t = (a["t"].astype(np.int64) + 946_684_800_000_000) * 1000  # PostgreSQL's epoch is 2000-01-01
        return pd.DataFrame({"patrol_id": pid, "t": pd.to_datetime(t, utc=True, unit="ns"),
                             "lon": a["lon"].astype(np.float64), "lat": a["lat"].astype(np.float64)})


class SqlitePatrolRepository(PatrolRepository):
    """SQLite: fixes by executemany and one SELECT; times as epoch microseconds (models.PointTime)."""

    def write(self, session, patrols, points):
        """Patrols by INSERT … RETURNING, their fixes by executemany on the session's sqlite3 connection."""
        ids = _insert_patrols(session, patrols)
        if not len(points):
            return ids
        pid = np.asarray(ids, np.int64)[points["track"].to_numpy()]
        rows = zip(pid.tolist(), _epoch_us(points["t"]).tolist(), points["lon"].to_numpy(np.float64).tolist(),
                   points["lat"].to_numpy(np.float64).tolist())
        cur = session.connection().connection.driver_connection.cursor()
        cur.executemany("INSERT INTO patrol_points (patrol_id, t, lon, lat) VALUES (?, ?, ?, ?)", rows)
        return ids

    def _points(self, ids, since, until):
        import json

        sql = "SELECT patrol_id, t, lon, lat FROM patrol_points WHERE patrol_id IN (SELECT value FROM json_each(?))"
        params: list = [json.dumps(ids)]
        if since is not None:
            sql += " AND t >= ?"
            params.append(int(pd.Timestamp(since).value // 1000))
        if until is not None:
            sql += " AND t < ?"
            params.append(int(pd.Timestamp(until).value // 1000))
        with self.engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()  # plain tuples, no Row per fix
            rows = cur.execute(sql, params).fetchall()  # in table order: sorted below only if need be
        if not rows:
            return pd.DataFrame({"patrol_id": [], "t": [], "lon": [], "lat": []})
        a = np.array(rows, dtype=[("patrol_id", "i8"), ("t", "i8"), ("lon", "f8"), ("lat", "f8")])
        return pd.DataFrame({"patrol_id": a["patrol_id"], "t": pd.to_datetime(a["t"] * 1000, utc=True, unit="ns"),
                             "lon": a["lon"], "lat": a["lat"]})
