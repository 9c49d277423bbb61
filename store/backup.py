"""Backup and restore of the report store: one file each, with the schema revision checked on the way back.

PostGIS: a pg_dump custom-format archive (-Fc) of the whole database, taken in one snapshot;
restored by pg_restore into psql inside ONE transaction that first drops what the target
holds, so a failed or interrupted restore changes nothing. The embedded SQLite store: a
copy made with SQLite's online backup API while holding one read transaction, so it is
consistent even while the API keeps writing; restored through the same API.

A restore refuses a target that holds rows unless forced, refuses a backup whose schema
revision this code does not know (made by a newer version) and migrates an older one forward.
Every external program runs under a deadline, connects with a timeout and TCP keepalives,
and gets the password through its environment, never its command line.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from gis.errors import ZonechiefError
from store.db import alembic_config, make_engine, migrate
from store.deadline import KEEPALIVES, Timeouts

Progress = Callable[[str], None]
PG_MAGIC, SQLITE_MAGIC = b"PGDMP", b"SQLite format 3\x00"
# Where PostgreSQL client programs live besides PATH (Debian/Ubuntu, RHEL, source builds, Homebrew, EDB).
PG_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin",
                "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin", "/Library/PostgreSQL/*/bin")
CONNECT_TIMEOUT_S = 5  # an operator's job: a little more patience than a request (store.deadline.Timeouts)
PROBE_STATEMENT_S = 300.0  # counting the rows a restore would replace
SQLITE_STEP_PAGES = 4096  # 16 MB per step at the default page size: progress without slowing the copy


class BackupError(ZonechiefError):
    """A backup or restore was refused or failed; the message says why (never with a password)."""


class TargetNotEmpty(BackupError):
    """The restore target holds rows; `tables` maps each table that does to its row count."""

    def __init__(self, where: str, tables: dict[str, int]):
        self.tables = tables
        listed = ", ".join(f"{t} ({n:,} rows)" for t, n in sorted(tables.items()))
        super().__init__(f"{where} is not empty: restoring would overwrite {listed}")


@dataclass
class BackupResult:
    """What a backup wrote: the file, its format, the schema revision in it, its size and the time taken."""

    path: Path
    dialect: str
    revision: str
    size: int
    seconds: float


@dataclass
class RestoreResult:
    """What a restore did: the backup's revision, the revision after migrating, and the rows it replaced."""

    revision: str
    migrated_to: str
    replaced: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _say(progress: Progress | None, t0: float, msg: str) -> None:
    if progress is not None:
        progress(f"[{time.monotonic() - t0:5.0f} s] {msg}")


# ------------------------------------------------------------------ schema revisions
def code_revisions() -> tuple[str, set[str]]:
    """(the newest revision of this code's migrations, every revision they know)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(None))
    head = script.get_current_head()
    assert head is not None, "store/migrations has no revisions"
    return head, {r.revision for r in script.walk_revisions()}


def _check_revision(revision: str | None, path: Path) -> str:
    head, known = code_revisions()
    if revision is None:
        raise BackupError(f"{path} is not a zonechief backup: it has no schema revision (alembic_version)")
    if revision not in known:
        raise BackupError(f"{path} has schema revision {revision}, which this zonechief does not know (its newest is "
                          f"{head}): it was made by a newer version; restore it with that version")
    return head


def backup_kind(path: str | Path) -> str:
    """"postgresql" or "sqlite", from the file's first bytes; BackupError if it is neither or missing."""
    p = Path(path)
    if not p.exists():
        raise BackupError(f"{p}: no such file")
    if not p.is_file():
        raise BackupError(f"{p} is not a file")
    with open(p, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head.startswith(PG_MAGIC):
        return "postgresql"
    if head == SQLITE_MAGIC:
        return "sqlite"
    raise BackupError(f"{p} is not a zonechief backup (neither a pg_dump custom-format archive nor a SQLite file)")


def _dialect(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in ("postgresql", "sqlite"):
        raise BackupError(f"cannot back up or restore a {name} database; zonechief stores are PostgreSQL or SQLite")
    return name


def backup(url: str, path: str | Path, *, timeout: float = 3600.0, progress: Progress | None = None,
           pg_bin: str | Path | None = None, sqlite_step_pages: int = SQLITE_STEP_PAGES) -> BackupResult:
    """Back up the store at `url` to `path` (replaced only once the backup is complete).

    SQLite copies `sqlite_step_pages` pages per step; writers go on between steps.
    """
    path = Path(path)
    t0 = time.monotonic()
    if path.is_dir():
        raise BackupError(f"{path} is a directory; give a file name")
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.touch()  # can we write there? Better told now than after the dump
        if _dialect(url) == "postgresql":
            revision = _pg_backup(url, partial, t0 + timeout, progress, pg_bin)
        else:
            revision = _sqlite_backup(url, partial, t0 + timeout, progress, sqlite_step_pages)
        os.replace(partial, path)
    except OSError as exc:
        raise BackupError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(path, _dialect(url), revision, path.stat().st_size, time.monotonic() - t0)


def restore(url: str, path: str | Path, *, force: bool = False, timeout: float = 3600.0,
            progress: Progress | None = None, pg_bin: str | Path | None = None) -> RestoreResult:
    """Replace the store at `url` with the backup at `path`, then migrate it to this code's schema.

    Refuses (TargetNotEmpty) a target that holds rows unless `force`, a backup of the other
    backend, and a backup from a newer schema. On PostGIS a failure leaves the target unchanged.
    """
    path = Path(path)
    t0 = time.monotonic()
    dialect, kind = _dialect(url), backup_kind(path)
    if kind != dialect:
        made = "a PostgreSQL (pg_dump) archive" if kind == "postgresql" else "a SQLite backup of the embedded store"
        store = "PostgreSQL" if dialect == "postgresql" else "the embedded SQLite file"
        raise BackupError(f"{path} is {made}, but the configured store is {store} ({safe_url(url)}); "
                          "restore it into a store of the same kind")
    if dialect == "postgresql":
        revision, replaced = _pg_restore(url, path, force, t0 + timeout, progress, pg_bin)
    else:
        try:
            revision, replaced = _sqlite_restore(url, path, force, t0 + timeout, progress)
        except (OSError, sqlite3.Error) as exc:
            raise BackupError(f"cannot restore into {safe_url(url)}: {exc}") from exc
    head, _ = code_revisions()
    if revision != head:
        _say(progress, t0, f"migrating the schema from {revision} to {head}")
        engine = make_engine(url)
        try:
            migrate(engine)
        except DBAPIError as exc:
            raise BackupError(f"restored {path} (schema {revision}), but migrating it to {head} failed: {exc.orig}; "
                              "run zonechief db upgrade") from exc
        finally:
            engine.dispose()
    _say(progress, t0, "restored")
    return RestoreResult(revision, head, replaced, time.monotonic() - t0)


# ------------------------------------------------------------------ SQLite
def _sqlite_path(url: str) -> Path:
    db = make_url(url).database
    if not db or db == ":memory:" or db.startswith("file:"):
        raise BackupError(f"{safe_url(url)} is not a SQLite file")
    return Path(db)


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table
        return None
    return None if row is None else row[0]


def _sqlite_rows(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version'")]
    counts = {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    return {n: c for n, c in counts.items() if c}


def _copy_sqlite(src: sqlite3.Connection, dst: sqlite3.Connection, deadline: float, progress: Progress | None,
                 t0: float, verb: str, pages: int = SQLITE_STEP_PAGES) -> None:
    """The online backup API in steps, reporting every tenth and giving up at the deadline."""
    shown = [-1]
    late = BackupError(f"{verb} did not finish in time; the copy was abandoned")
    if time.monotonic() > deadline:
        raise late

    def step(_status, remaining, total):
        if remaining and time.monotonic() > deadline:  # raising after the last step would not undo it
            raise late  # an unfinished copy into a store is rolled back by SQLite
        tenth = (total - remaining) * 10 // max(total, 1)
        if tenth != shown[0] and total > pages:
            shown[0] = tenth
            _say(progress, t0, f"{verb}: {tenth * 10}% ({total - remaining:,} of {total:,} pages)")

    try:
        src.backup(dst, pages=pages, progress=step)
    except sqlite3.Error as exc:
        raise BackupError(f"{verb} failed: {exc}") from exc


def _sqlite_backup(url: str, partial: Path, deadline: float, progress: Progress | None, pages: int) -> str:
    t0 = time.monotonic()
    db = _sqlite_path(url)
    if not db.is_file():  # sqlite3.connect would create an empty store
        raise BackupError(f"no store at {db}: nothing to back up")
    src = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        # One read transaction for the whole copy: every step sees the same snapshot (WAL lets
        # writers go on meanwhile), so the copy is consistent and never restarts.
        src.execute("BEGIN")
        revision = _sqlite_revision(src)
        if revision is None:
            raise BackupError(f"{db} is not a zonechief store (no schema revision): nothing to back up")
        _say(progress, t0, f"backing up {db} (schema {revision})")
        partial.unlink(missing_ok=True)
        dst = sqlite3.connect(partial)
        try:
            _copy_sqlite(src, dst, deadline, progress, t0, "backup", pages)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {db}: {exc}") from exc
    finally:
        src.close()
    return revision


def _sqlite_restore(url: str, path: Path, force: bool, deadline: float, progress: Progress | None):
    t0 = time.monotonic()
    target = _sqlite_path(url)
    src = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    try:
        try:
            check = src.execute("PRAGMA quick_check").fetchone()[0]  # a damaged file is refused before anything is replaced
            revision = _sqlite_revision(src)
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path} cannot be read as a SQLite backup: {exc}") from exc
        if check != "ok":
            raise BackupError(f"{path} is damaged ({check}); nothing was restored")
        head = _check_revision(revision, path)
        assert revision is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(target, timeout=30)
        try:
            try:
                replaced = _sqlite_rows(dst)
            except sqlite3.DatabaseError as exc:
                raise BackupError(f"{target} is not a SQLite store: {exc}") from exc
            if replaced and not force:
                raise TargetNotEmpty(str(target), replaced)
            _say(progress, t0, f"restoring {path} (schema {revision}; this code: {head}) into {target}")
            _copy_sqlite(src, dst, deadline, progress, t0, "restore")
        finally:
            dst.close()
    finally:
        src.close()
    return revision, replaced


# ------------------------------------------------------------------ PostgreSQL: programs and connections
def _major(program: Path) -> int | None:
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(m.group(1)) if m else None


def pg_tool(name: str, pg_bin: str | Path | None = None) -> tuple[Path, int]:
    """(path, major version) of a PostgreSQL client program: from `pg_bin`, else the newest on PATH or in the usual folders."""
    if pg_bin is not None:
        candidates = [Path(pg_bin) / name]
    else:
        on_path = shutil.which(name)
        candidates = [Path(on_path)] if on_path else []
        candidates += [Path(d) / name for pattern in PG_BIN_GLOBS for d in sorted(glob.glob(pattern))]
    found = [(c, v) for c in candidates if c.is_file() for v in [_major(c)] if v is not None]
    if not found:
        where = f"in {pg_bin}" if pg_bin is not None else "on PATH or in " + ", ".join(PG_BIN_GLOBS)
        raise BackupError(f"{name} not found {where}: install the PostgreSQL client programs "
                          "(e.g. apt install postgresql-client) or give the folder holding them")
    return max(found, key=lambda cv: cv[1])  # a newer client reads and writes older servers' data


def _quote(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """(a libpq connection string without the password, the environment with PGPASSWORD) for the URL."""
    u = make_url(url)
    params = {k: v for k, v in u.query.items() if isinstance(v, str)}  # psycopg hands these to libpq too
    params.update({k: str(v) for k, v in (("host", u.host), ("port", u.port), ("user", u.username),
                                          ("dbname", u.database)) if v is not None})
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    for k, v in KEEPALIVES.items():
        params.setdefault(k, str(v))
    env = dict(os.environ)
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    return " ".join(f"{k}={_quote(v)}" for k, v in params.items()), env


# Objects of the current schema that belong to no extension (not PostGIS's): ours, to count and to drop.
_NOT_EXTENSION = ("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass AND d.objid = {oid} "
                  "AND d.deptype = 'e')")
_OWN_RELATIONS = """
    SELECT c.relname, c.relkind FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ({kinds}) AND """ \
    + _NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")


def _pg_probe(url: str) -> tuple[int, str | None, dict[str, int]]:
    """(server major version, schema revision or None, rows per table of our own) of a reachable database."""
    # Every call under a deadline (store.deadline): a server that stops answering cannot hold the job.
    # The URL's own connect_timeout wins, as with the programs (_libpq).
    given = make_url(url).query.get("connect_timeout")
    connect_s = int(given) if isinstance(given, str) else CONNECT_TIMEOUT_S
    engine = make_engine(url, Timeouts(connect_s=connect_s, statement_s=PROBE_STATEMENT_S))
    try:
        c = engine.connect()
    except DBAPIError as exc:
        reason = _reason(exc)
        hint = "; create it first (createdb)" if "does not exist" in reason else ""
        engine.dispose()
        raise BackupError(f"cannot reach the database {safe_url(url)}: {reason}{hint}") from exc
    try:
        major = int(c.exec_driver_sql("SHOW server_version_num").scalar_one()) // 10000
        names = [r[0] for r in c.execute(text(_OWN_RELATIONS.format(kinds="'r', 'p'")))]
        revision = c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() \
            if "alembic_version" in names else None
        q = c.dialect.identifier_preparer.quote
        counts = {n: c.exec_driver_sql(f"SELECT count(*) FROM {q(n)}").scalar_one()
                  for n in names if n != "alembic_version"}
    except DBAPIError as exc:
        raise BackupError(f"cannot read the database {safe_url(url)}: {_reason(exc)}") from exc
    finally:
        c.close()
        engine.dispose()
    return major, revision, {n: k for n, k in counts.items() if k}


def _reason(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__


def _tool_for(name: str, server_major: int, pg_bin) -> Path:
    tool, major = pg_tool(name, pg_bin)
    if major < server_major:
        raise BackupError(f"{tool} is version {major} but the server runs PostgreSQL {server_major}: "
                          f"install the version {server_major} client programs or give their folder")
    return tool


def _run(commands: list[list[str]], env: dict, deadline: float, on_line: Callable[[str], None],
         head: bytes = b"", tail: bytes = b"") -> list[tuple[int, list[str]]]:
    """Run one program, or two piped (the second's input: head, the first's output, and tail only if the first succeeded).

    Every stderr line goes to on_line as it comes. Past the deadline all are killed. Returns (exit code, stderr lines) each.
    """
    piped = len(commands) == 2
    procs = [subprocess.Popen(commands[0], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              stdout=subprocess.PIPE if piped else subprocess.DEVNULL)]
    if piped:
        procs.append(subprocess.Popen(commands[1], env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE))
    errs: list[list[str]] = [[] for _ in procs]

    def read(p, sink):
        for raw in p.stderr:
            line = raw.decode(errors="replace").rstrip()
            sink.append(line)
            on_line(line)

    def pump(src, dst):
        try:
            dst.stdin.write(head)
            shutil.copyfileobj(src.stdout, dst.stdin, 1 << 20)
            # The tail (COMMIT) only once the producer ended well: otherwise psql ends without it and
            # the server rolls the whole restore back.
            if src.wait() == 0:
                dst.stdin.write(tail)
        except (BrokenPipeError, ValueError):  # psql stopped on an error (its stderr says which): stop the producer too
            src.kill()
        finally:
            try:
                dst.stdin.close()
            except BrokenPipeError:
                pass

    threads = [threading.Thread(target=read, args=(p, e), daemon=True) for p, e in zip(procs, errs)]
    if piped:
        threads.append(threading.Thread(target=pump, args=tuple(procs), daemon=True))
    for t in threads:
        t.start()
    try:
        for p in procs:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        raise BackupError(f"{Path(commands[0][0]).name} did not finish in time and was stopped") from None
    finally:
        for t in threads:
            t.join(timeout=10)
    return [(p.returncode, e) for p, e in zip(procs, errs)]


def _errors(lines: list[str]) -> str:
    bad = [ln for ln in lines if re.search(r"\b(error|fatal|detail|hint)\b", ln, re.I)]
    return "; ".join((bad or lines)[-4:]) or "no message"


_TABLE = re.compile(r'(?:dumping contents of table|processing data for table) "?([^"\s]+)"?')


def _table_progress(progress: Progress | None, t0: float, verb: str) -> Callable[[str], None]:
    def on_line(line: str) -> None:
        m = _TABLE.search(line)
        if m:
            _say(progress, t0, f"{verb} {m.group(1)}")
    return on_line


# ------------------------------------------------------------------ PostgreSQL: backup and restore
def _pg_backup(url: str, partial: Path, deadline: float, progress: Progress | None, pg_bin) -> str:
    t0 = time.monotonic()
    major, revision, _ = _pg_probe(url)
    if revision is None:
        raise BackupError(f"{safe_url(url)} is not a zonechief store (no schema revision): nothing to back up")
    pg_dump = _tool_for("pg_dump", major, pg_bin)
    conninfo, env = _libpq(url)
    _say(progress, t0, f"backing up {safe_url(url)} (schema {revision}) with {pg_dump}")
    [(rc, lines)] = _run([[str(pg_dump), "--format=custom", "--verbose", f"--file={partial}", f"--dbname={conninfo}"]],
                         env, deadline, _table_progress(progress, t0, "dumping"))
    if rc != 0:
        raise BackupError(f"pg_dump failed (exit {rc}); nothing was written: {_errors(lines)}")
    return revision


def _toc(pg_restore: Path, path: Path, args: list[str]) -> str:
    # errors="replace": a damaged archive can put any bytes in the listing; it must fail as damaged, not as UTF-8.
    r = subprocess.run([str(pg_restore), *args, str(path)], capture_output=True, text=True, errors="replace", timeout=600)
    if r.returncode != 0:
        raise BackupError(f"{path} cannot be read as a pg_dump archive: {_errors(r.stderr.splitlines())}")
    return r.stdout


def _dump_revision(pg_restore: Path, path: Path, toc: str) -> str | None:
    if not re.search(r"^\d+; \d+ \d+ TABLE DATA \S+ alembic_version ", toc, re.M):
        return None
    script = _toc(pg_restore, path, ["--data-only", "--table=alembic_version", "--file=-"])
    m = re.search(r"^COPY \S*alembic_version \(version_num\) FROM stdin;\n([^\n]+)\n", script, re.M)
    return None if m is None or m.group(1) == "\\." else m.group(1)


# Runs first in the restore's transaction: drop what the target holds of its own (not PostGIS's objects).
# Each list is built in full before the first DROP, whose CASCADE may take later items along.
_DROP_OWN = """SET client_min_messages = warning;
SET lock_timeout = '60s';
DO $zc$
DECLARE stmt text;
BEGIN
  FOREACH stmt IN ARRAY coalesce((
    SELECT array_agg(format('DROP %s IF EXISTS %s CASCADE', CASE p.prokind WHEN 'p' THEN 'PROCEDURE'
                            WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, p.oid::regprocedure))
    FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace AND """ \
    + _NOT_EXTENSION.format(catalog="pg_proc", oid="p.oid") + """), '{}')
  LOOP EXECUTE stmt; END LOOP;
  FOREACH stmt IN ARRAY coalesce((
    SELECT array_agg(format('DROP %s IF EXISTS %I.%I CASCADE', CASE own.relkind WHEN 'v' THEN 'VIEW'
                            WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE'
                            ELSE 'TABLE' END, current_schema(), own.relname))
    FROM (""" + _OWN_RELATIONS.format(kinds="'r', 'p', 'v', 'm', 'f', 'S'") + """) own), '{}')
  LOOP EXECUTE stmt; END LOOP;
  FOREACH stmt IN ARRAY coalesce((
    SELECT array_agg(format('DROP TYPE IF EXISTS %I.%I CASCADE', current_schema(), t.typname))
    FROM pg_type t WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype IN ('e', 'd', 'r', 'm')
      AND """ + _NOT_EXTENSION.format(catalog="pg_type", oid="t.oid") + """), '{}')
  LOOP EXECUTE stmt; END LOOP;
  -- The rows pg_dump keeps of extensions' own tables (user SRIDs in spatial_ref_sys): the backup brings its own.
  FOREACH stmt IN ARRAY coalesce((
    SELECT array_agg(format('DELETE FROM %s %s', x.cfg::regclass, x.cond))
    FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig, e.extcondition) AS x(cfg, cond)
    JOIN pg_class c ON c.oid = x.cfg WHERE c.relkind = 'r'), '{}')
  LOOP EXECUTE stmt; END LOOP;
END $zc$;
"""


def _pg_restore(url: str, path: Path, force: bool, deadline: float, progress: Progress | None, pg_bin):
    t0 = time.monotonic()
    pg_restore, _ = pg_tool("pg_restore", pg_bin)
    major, _, replaced = _pg_probe(url)
    toc = _toc(pg_restore, path, ["--list"])
    revision = _dump_revision(pg_restore, path, toc)
    head = _check_revision(revision, path)
    if replaced and not force:
        raise TargetNotEmpty(safe_url(url), replaced)
    psql = _tool_for("psql", major, pg_bin)
    conninfo, env = _libpq(url)
    # COMMENT ON EXTENSION needs the extension's owner: a restore as the database owner must not fail on it.
    listing = "".join(ln + "\n" for ln in toc.splitlines() if not re.match(r"^\d+; \d+ \d+ COMMENT - EXTENSION ", ln))
    _say(progress, t0, f"restoring {path} (schema {revision}; this code: {head}) into {safe_url(url)}")
    with tempfile.NamedTemporaryFile("w", suffix=".list", encoding="utf-8") as lst:
        lst.write(listing)
        lst.flush()
        (rc1, err1), (rc2, err2) = _run(
            [[str(pg_restore), "--no-owner", "--no-privileges", "--verbose", f"--use-list={lst.name}", "--file=-",
              str(path)],
             [str(psql), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", f"--dbname={conninfo}", "--file=-"]],
            env, deadline, _table_progress(progress, t0, "restoring"),
            head=b"BEGIN;\n" + _DROP_OWN.encode(), tail=b"COMMIT;\n")
    if rc2 != 0 or any(re.search(r"\b(ERROR|FATAL)\b", ln) for ln in err2):
        raise BackupError(f"the restore failed and was rolled back; the database was not changed: {_errors(err2)}")
    if rc1 != 0:  # psql ended without the COMMIT
        raise BackupError(f"pg_restore could not read {path} (exit {rc1}); the database was not changed: {_errors(err1)}")
    assert revision is not None
    return revision, replaced
