"""store.backup and `zonechief db backup/restore`: backups restored row for row on both backends, schema
revisions checked, refusals and failures that leave the store as it was, bounded waits on a silent server.

Stores are seeded through the application (demo import with histories, single reports moved along the
workflow, API keys, an audited roster import) and compared table by table over store.models' metadata,
plus any table a migration adds without a model, so new tables are covered without touching this file.
PostgreSQL databases are few and reused (each costs seconds to create and drop); the console script runs
only where its own behaviour (exit codes, messages, the settings' store) is what is checked.
"""
from __future__ import annotations

import csv
import io
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import shapely
import sqlalchemy as sa

from gis.shipped import DATA_DIR
from store.backup import BackupError, TargetNotEmpty, backup, code_revisions, pg_tool, restore
from store.db import make_engine, migrate
from store.models import Base
from tests.helpers import free_port, inner, pg_database

# Tables seeding must fill, so a comparison of empty tables cannot pass for a round trip.
SEEDED = ("zones", "villages", "roster", "facilities", "categories", "reports", "report_events", "api_keys", "audit_log")
PASSWORD = "s3cret-Pw"
ZONECHIEF = Path(sys.executable).parent / "zonechief"


# ------------------------------------------------------------------ seeding and comparing
def roster_file(tmp_path, phone: str):
    """The shipped roster with QS-C05's phone changed."""
    with open(DATA_DIR / "roster.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        if r["person_id"] == "QS-C05":
            r["phone"] = phone
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    path = tmp_path / "roster.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def seed(url: str, tmp_path, n_demo: int = 40) -> dict:
    """Fill a store through the application; returns what the tests check after a restore."""
    from store.keys import create_key
    from tests.helpers import shipped_index
    from zonechief.bulk import seed_demo
    from zonechief.reference import import_reference
    from zonechief.reports import ReportIn
    from zonechief.services import Services
    from zonechief.settings import Settings

    svc = Services(Settings(), index=shipped_index(), database_url=url)
    reports = svc.reports
    seed_demo(reports, n_demo, seed=7)
    lon, lat = inner(svc.index, "QS-05")
    r, _ = reports.create(ReportIn(source="gps", category="06010", description="垃圾桶满溢 'quoted' \\ back\tslash",
                                   location={"lon": lon, "lat": lat, "crs": "wgs84"},
                                   reporter={"name": "李四", "phone": "+86 138-0000-0000"},
                                   photo_url="https://example.org/p/1.jpg", idempotency_key="backup-test-1"))
    reports.transition(r.id, "in_progress", "staff:QS-C05", note="到场处理\n第二行")
    reports.create(ReportIn(source="address", category="06010", location={"address": "无此地址 xyz"}))  # needs review, no point
    with svc.db.sessions.begin() as s:
        _, token = create_key(s, "staff", "片长 QS-05", chief_id="QS-C05")
        revoked, _ = create_key(s, "public", "old app")
        revoked.revoked = True
    import_reference(svc.db, svc.index, svc.facilities, "测试员", roster=roster_file(tmp_path, "0769-12345678"))
    svc.db.engine.dispose()
    return {"token": token, "report_id": r.id}


def _plain(v):
    return shapely.to_wkb(v, hex=True) if isinstance(v, shapely.Geometry) else v


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, by table, in primary-key order; geometries as WKB."""
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as c:
            names = set(sa.inspect(c).get_table_names()) - {"spatial_ref_sys"}  # PostGIS's own
            extra = sa.MetaData()
            tables = [t for t in Base.metadata.sorted_tables if t.name in names]
            tables += [sa.Table(n, extra, autoload_with=c) for n in sorted(names - set(Base.metadata.tables))]
            out = {}
            for t in tables:
                order = list(t.primary_key.columns) or list(t.columns)
                out[t.name] = [tuple(_plain(v) for v in row) for row in c.execute(sa.select(t).order_by(*order))]
            return out
    finally:
        eng.dispose()


def revision(url: str) -> str:
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as c:
            return c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    finally:
        eng.dispose()


def table_names(url: str) -> set[str]:
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as c:
            return set(sa.inspect(c).get_table_names())
    finally:
        eng.dispose()


def execute(url: str, *statements: str) -> None:
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.begin() as c:
            for sql in statements:
                c.exec_driver_sql(sql)
    finally:
        eng.dispose()


class Stores:
    """Fresh store URLs of one backend, dropped at the end (few: each PostgreSQL database costs seconds)."""

    def __init__(self, kind: str, tmp_path_factory):
        self.kind, self.tmp, self._dbs = kind, tmp_path_factory, []

    def new(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp.mktemp('store') / 'zonechief.sqlite'}"
        cm = pg_database()
        self._dbs.append(cm)
        return cm.__enter__()

    def close(self):
        for cm in self._dbs:
            cm.__exit__(None, None, None)


def migrated(url: str, revision: str = "head") -> str:
    engine = make_engine(url)
    try:
        migrate(engine, revision)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgis"])
def stores(request, tmp_path_factory):
    s = Stores(request.param, tmp_path_factory)
    yield s
    s.close()


@pytest.fixture(scope="module")
def seeded(stores, tmp_path_factory):
    """A seeded store, its backup file (made by the library) and its rows as backed up."""
    url = stores.new()
    facts = seed(url, tmp_path_factory.mktemp("seed"))
    path = tmp_path_factory.mktemp("backup") / ("store.dump" if stores.kind == "postgis" else "store.sqlite")
    messages: list[str] = []
    res = backup(url, path, progress=messages.append)
    return {"url": url, "path": path, "rows": snapshot(url), "result": res, "messages": messages, **facts}


@pytest.fixture(scope="module")
def backups_of_empty_stores(tmp_path_factory):
    """A backup of a migrated, empty store of each kind: {"postgis": path, "sqlite": path}."""
    d = tmp_path_factory.mktemp("empty")
    out = {"sqlite": d / "empty.sqlite", "postgis": d / "empty.dump"}
    backup(migrated(f"sqlite:///{d / 'store.sqlite'}"), out["sqlite"])
    with pg_database() as url:
        backup(migrated(url), out["postgis"])
    return out


def zc(url: str, *args, cwd) -> subprocess.CompletedProcess:
    """The installed console script on the store at `url`, in `cwd` (no stray .env)."""
    env = {**os.environ, "ZONECHIEF_DATABASE_URL": url}
    return subprocess.run([str(ZONECHIEF), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def restored_by_cli(seeded, stores, tmp_path_factory):
    """`zonechief db backup` of the seeded store, then `zonechief db restore` into a fresh one."""
    d = tmp_path_factory.mktemp("cli")
    target = stores.new()
    made = zc(seeded["url"], "db", "backup", d / "cli.backup", cwd=d)
    back = zc(target, "db", "restore", d / "cli.backup", cwd=d)
    return {"url": target, "file": d / "cli.backup", "made": made, "back": back, "cwd": d}


# ------------------------------------------------------------------ round trip
def test_cli_round_trip_restores_every_row(seeded, restored_by_cli):
    rows = seeded["rows"]
    for t in SEEDED:
        assert rows[t], f"seeding left {t} empty"
    made, back = restored_by_cli["made"], restored_by_cli["back"]
    assert made.returncode == 0, made.stderr
    assert "backing up" in made.stderr and f"(schema {code_revisions()[0]})" in made.stdout
    assert back.returncode == 0, back.stderr
    assert "restored" in back.stderr and "restart running servers" in back.stdout
    assert snapshot(restored_by_cli["url"]) == rows


def test_library_round_trip_reports_what_it_did(seeded, stores):
    assert seeded["result"].revision == code_revisions()[0] and seeded["result"].size > 0
    assert any("backing up" in m for m in seeded["messages"])
    target = stores.new() if stores.kind == "sqlite" else None  # PostgreSQL: the CLI test covers a fresh database
    if target is not None:
        res = restore(target, seeded["path"])
        assert res.revision == res.migrated_to == code_revisions()[0] and res.replaced == {}
        assert snapshot(target) == seeded["rows"]


def test_restored_store_works_and_force_brings_the_backup_back(seeded, stores, restored_by_cli):
    """Keys verify, the imported roster is in force, new reports get new ids (sequences came along);
    a store with data is refused without --force, and with it is replaced completely."""
    from store.keys import verify_key
    from zonechief.reports import ReportIn
    from zonechief.services import Services
    from zonechief.settings import Settings

    target = restored_by_cli["url"]
    svc = Services(Settings(), database_url=target)
    svc.db  # noqa: B018 (opens the store: migrations, the stored reference data put in force)
    try:
        with svc.db.sessions() as s:
            key = verify_key(s, seeded["token"])
            assert key is not None and key.chief_id == "QS-C05"
        people = svc.index.roster.table.set_index("person_id")
        assert people.loc["QS-C05", "phone"] == "0769-12345678"
        assert svc.reports.get(seeded["report_id"]).status == "in_progress"
        lon, lat = inner(svc.index, "ZMT-02")
        r, created = svc.reports.create(ReportIn(source="gps", category="06010", location={"lon": lon, "lat": lat}))
        assert created and r.id > max(row[0] for row in seeded["rows"]["reports"])
        from zonechief.reports import KeyReused

        with pytest.raises(KeyReused):  # the restored key is known: another report under it is refused
            svc.reports.create(ReportIn(source="gps", category="06010", idempotency_key="backup-test-1",
                                        location={"lon": lon, "lat": lat}))
    finally:
        svc.db.engine.dispose()
    execute(target, "DELETE FROM api_keys", "CREATE TABLE zz_leftover (x integer)", "INSERT INTO zz_leftover VALUES (1)")
    before = snapshot(target)
    n = len(seeded["rows"]["reports"]) + 1
    with pytest.raises(TargetNotEmpty) as exc:
        restore(target, seeded["path"])
    assert exc.value.tables["reports"] == n and exc.value.tables["zz_leftover"] == 1 and "api_keys" not in exc.value.tables
    if stores.kind == "sqlite":  # the command line's answer once (the same code path for both backends)
        refused = zc(target, "db", "restore", restored_by_cli["file"], cwd=restored_by_cli["cwd"])
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"reports ({n:,} rows)" in refused.stderr and "zz_leftover (1 rows)" in refused.stderr
        assert "give --force to replace it" in refused.stderr
    assert snapshot(target) == before
    res = restore(target, seeded["path"], force=True)
    assert res.replaced["reports"] == n and res.replaced["zz_leftover"] == 1
    assert snapshot(target) == seeded["rows"]
    assert "zz_leftover" not in table_names(target)


# ------------------------------------------------------------------ revisions
def test_older_backup_is_migrated_forward(stores, tmp_path):
    from alembic.script import ScriptDirectory

    from store.db import alembic_config

    head, _ = code_revisions()
    older = ScriptDirectory.from_config(alembic_config(None)).get_revision(head).down_revision
    store = migrated(stores.new(), older)
    execute(store, "INSERT INTO categories (code, major_code, major_name, name) VALUES ('99001', '99', '测试', '旧版')")
    path = tmp_path / "old.backup"
    assert backup(store, path).revision == older
    execute(store, "DELETE FROM categories")
    res = restore(store, path)  # empty again: no force needed
    assert (res.revision, res.migrated_to) == (older, head) and revision(store) == head
    assert set(Base.metadata.tables) <= table_names(store)
    assert snapshot(store)["categories"] == [("99001", "99", "测试", "旧版")]


def test_newer_backup_is_refused(stores, tmp_path):
    store = migrated(stores.new())
    execute(store, "UPDATE alembic_version SET version_num = '9999_future'")
    path = tmp_path / "new.backup"
    backup(store, path)
    execute(store, "UPDATE alembic_version SET version_num = 'before'")
    with pytest.raises(BackupError, match=r"9999_future.*newer version"):
        restore(store, path, force=True)
    assert revision(store) == "before"


# ------------------------------------------------------------------ refusals and bad files (the store stays as it was)
def test_restore_refuses_a_store_with_data(seeded):
    with pytest.raises(TargetNotEmpty) as exc:
        restore(seeded["url"], seeded["path"])
    n = len(seeded["rows"]["reports"])
    assert exc.value.tables["reports"] == n and f"reports ({n:,} rows)" in str(exc.value)
    assert snapshot(seeded["url"]) == seeded["rows"]


def test_backup_of_the_other_kind_is_refused(seeded, stores, backups_of_empty_stores):
    other = backups_of_empty_stores["sqlite" if stores.kind == "postgis" else "postgis"]
    expected = "is a SQLite backup.*configured store is PostgreSQL" if stores.kind == "postgis" \
        else "is a PostgreSQL.*configured store is the embedded SQLite file"
    with pytest.raises(BackupError, match=expected):
        restore(seeded["url"], other, force=True)
    assert snapshot(seeded["url"]) == seeded["rows"]


def test_missing_and_foreign_files_are_refused(seeded, stores, tmp_path):
    url = seeded["url"]
    with pytest.raises(BackupError, match="no such file"):
        restore(url, tmp_path / "nothing.dump", force=True)
    with pytest.raises(BackupError, match="not a file"):
        restore(url, tmp_path, force=True)
    junk = tmp_path / "junk.csv"
    junk.write_text("id,lon,lat\n1,113.9,22.9\n", encoding="utf-8")
    with pytest.raises(BackupError, match="not a zonechief backup"):
        restore(url, junk, force=True)
    if stores.kind == "sqlite":  # a SQLite file that is not a zonechief store
        plain = tmp_path / "plain.sqlite"
        execute(f"sqlite:///{plain}", "CREATE TABLE t (x integer)")
        with pytest.raises(BackupError, match="no schema revision"):
            restore(url, plain, force=True)
    assert snapshot(url) == seeded["rows"]


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_damaged_backup_changes_nothing(seeded, tmp_path, damage):
    """A backup cut short or with garbage inside is refused even with force, and the store stays as it was
    (PostGIS: the garbage surfaces only half-way through the restore, after the drop: one transaction undoes it)."""
    data = bytearray(seeded["path"].read_bytes())
    i, j = int(len(data) * 0.5), int(len(data) * 0.9)
    if damage == "truncated":
        del data[j:]
    else:
        data[i:j] = random.Random(1).randbytes(j - i)
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    with pytest.raises(BackupError):
        restore(seeded["url"], bad, force=True)
    assert snapshot(seeded["url"]) == seeded["rows"]


# ------------------------------------------------------------------ the server
class HoldingServer:
    """Accepts TCP connections and never answers: a database that stopped talking."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self.stop = True
        for s in [*self.held, self.sock]:
            s.close()


def test_unreachable_server_is_a_clear_error_without_the_password(tmp_path):
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{free_port()}/zonechief"
    path = tmp_path / "b.dump"
    with pytest.raises(BackupError, match="cannot reach the database") as exc:
        backup(url, path)
    assert PASSWORD not in str(exc.value) and "***" in str(exc.value)
    assert not list(tmp_path.iterdir())
    r = zc(url, "db", "backup", path, cwd=tmp_path)
    assert r.returncode == 1 and "cannot reach the database" in r.stderr and "Traceback" not in r.stderr
    assert PASSWORD not in r.stdout + r.stderr and not list(tmp_path.iterdir())
    dump = tmp_path / "x.dump"
    dump.write_bytes(b"PGDMP" + b"\0" * 100)  # the server is asked first
    with pytest.raises(BackupError, match="cannot reach the database"):
        restore(url, dump)


def test_a_server_that_never_answers_ends_at_the_connect_timeout(tmp_path):
    server = HoldingServer()
    try:
        # The URL's own connect_timeout wins over the default 5 s (libpq's least is 2 s).
        url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{server.port}/zonechief?connect_timeout=2"
        t0 = time.monotonic()
        with pytest.raises(BackupError, match="cannot reach the database") as exc:
            backup(url, tmp_path / "b.dump")
        assert time.monotonic() - t0 < 10
        assert PASSWORD not in str(exc.value) and server.held
    finally:
        server.close()


def test_timeout_stops_the_job_and_changes_nothing(seeded, tmp_path):
    path = tmp_path / "late.backup"
    # A progress reader too slow for the deadline: the job must stop, not finish late.
    with pytest.raises(BackupError, match="did not finish in time"):
        backup(seeded["url"], path, timeout=0.3, progress=lambda _: time.sleep(0.5), sqlite_step_pages=1)
    assert not list(tmp_path.iterdir())
    with pytest.raises(BackupError, match="did not finish in time"):
        restore(seeded["url"], seeded["path"], force=True, timeout=0.3, progress=lambda _: time.sleep(0.5))
    assert snapshot(seeded["url"]) == seeded["rows"]


def test_pg_tools_are_found_and_a_wrong_folder_is_named(tmp_path):
    tool, major = pg_tool("pg_dump")
    assert tool.is_file() and major >= 15
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(BackupError, match=f"pg_dump not found in {empty}"):
        pg_tool("pg_dump", empty)
    shutil.copy(tool, empty / "pg_dump")  # a copy still answers --version
    assert pg_tool("pg_dump", empty)[1] == major


# ------------------------------------------------------------------ SQLite while the API writes
def test_sqlite_backup_is_one_consistent_snapshot_while_writing(tmp_path):
    """Reports keep being filed during a slow, many-step backup: it finishes, and holds each report with its history."""
    from zonechief.reports import ReportIn
    from zonechief.services import Services
    from zonechief.settings import Settings

    url = f"sqlite:///{tmp_path / 'live.sqlite'}"
    svc = Services(Settings(), database_url=url)
    lon, lat = inner(svc.index, "QS-03")
    reports = svc.reports
    written: list[int] = []
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            r, _ = reports.create(ReportIn(source="gps", category="06010", location={"lon": lon, "lat": lat}))
            written.append(r.id)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        while len(written) < 5:
            time.sleep(0.01)
        at_start = len(written)
        steps: list[str] = []
        # Slow steps: a copy that restarted on every write would never finish.
        backup(url, tmp_path / "b.sqlite", sqlite_step_pages=1, timeout=60,
               progress=lambda m: (steps.append(m), time.sleep(0.1)))
        at_end = len(written)
    finally:
        stop.set()
        t.join(10)
        svc.db.engine.dispose()
    assert sum("%" in m for m in steps) >= 5 and at_end > at_start  # many steps, and writing went on meanwhile
    copy = snapshot(f"sqlite:///{tmp_path / 'b.sqlite'}")
    ids = [r[0] for r in copy["reports"]]
    assert ids == written[: len(ids)] and at_start <= len(ids) <= at_end
    assert sorted({e[1] for e in copy["report_events"]}) == ids  # every report with its history, no orphan event
