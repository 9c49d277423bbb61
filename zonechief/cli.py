"""The `zonechief` command line."""
from __future__ import annotations

import json
import sys

import click
import numpy as np
import pandas as pd


def _fail(msg: str):
    raise click.ClickException(msg)


def _at(value: str | None, name: str = "--at", end: bool = False):
    """A date/time option under the one time rule (gis.localtime), or a clear error instead of a traceback.

    A bare date is that day in Asia/Shanghai (with `end`, the whole day is included); a date-time
    without an offset is Asia/Shanghai wall time.
    """
    if value is None:
        return None
    from gis.localtime import TimeInputError, parse_instant

    try:
        return parse_instant(value, end=end, name=name)
    except TimeInputError as exc:
        _fail(str(exc))


def _crs_value(ctx, param, value):
    """A --crs option, checked as gis.crs decides (normalize_crs): an unusable CRS is a usage error, not a traceback."""
    if value is None:
        return None
    from gis.crs import UnknownCRSError, normalize_crs

    try:
        normalize_crs(value)
    except UnknownCRSError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zonechief")
def main():
    """zonechief: who is responsible here? Zones, chiefs and reports for Dongguan's 城管片长制."""


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _reports_service():
    from zonechief.services import Services

    return Services().reports


def _with_bar(total, desc, fn):
    from tqdm import tqdm

    with tqdm(total=total, unit="rep", desc=desc, file=sys.stderr, disable=None) as bar:
        res = fn(bar)
        bar.update(max(0, total - bar.n))
    return res


@main.command()
@click.argument("lon", type=float)
@click.argument("lat", type=float)
@click.option("--crs", default="wgs84", show_default=True, callback=_crs_value, help="wgs84, gcj02, bd09, cgcs2000 or EPSG:nnnn")
@click.option("--at", default=None, help="Roster date (ISO 8601); default now")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def lookup(lon, lat, crs, at, as_json):
    """Who is responsible for the point LON LAT?"""
    from api.app import assignment_json
    from gis.crs import UnknownCRSError, normalize_crs
    from gis.points import CoordinateError, check_placed
    from zonechief.services import load_index, load_settings

    try:
        c = normalize_crs(crs)
        index = load_index(load_settings())
        check_placed(index, lon, lat, c)  # degrees given with a projected --crs
        a = index.lookup(lon, lat, crs=c, at=_at(at))
    except (CoordinateError, UnknownCRSError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(assignment_json(a), ensure_ascii=False, indent=2))
        return
    if a.zone_id is None:
        click.echo(f"outside every zone: nearest {a.nearest_zone_id} at {a.distance_m:.0f} m")
        sys.exit(3)
    flags = [f for f, on in (("on boundary", a.on_boundary), (f"snapped from {a.distance_m:.0f} m", a.snapped)) if on]
    click.echo(f"zone     {a.zone_id} {a.zone_name}" + (f" ({', '.join(flags)})" if flags else ""))
    click.echo(f"village  {a.village_code} {a.village_name}")
    click.echo(f"town     {a.town_code} {a.town}")
    if a.chief:
        click.echo(f"chief    {a.chief.person_id} {a.chief.name} {a.chief.phone}")
    for p in a.inspectors:
        click.echo(f"inspector {p.person_id} {p.name} {p.phone}")


@main.command()
@click.argument("src", type=click.Path(exists=True))
@click.argument("dst", type=click.Path())
@click.option("--crs", default=None, callback=_crs_value,
              help="CRS of the input coordinates (CSV default wgs84; spatial files: their own CRS)")
@click.option("--lon", "lon_col", default=None, help="Longitude column of a CSV (default: lon/lng/longitude/x)")
@click.option("--lat", "lat_col", default=None, help="Latitude column of a CSV (default: lat/latitude/y)")
@click.option("--at", default=None, help="Roster date (ISO 8601); default now")
@click.option("--chunk-size", default=100_000, show_default=True, type=int)
@click.option("--engine", type=click.Choice(["memory", "dask"]), default="memory", show_default=True,
              help="dask: GeoParquet file or directory in, directory of GeoParquet parts out, partition by partition")
@click.option("--partitions", default=None, type=int, help="With --engine dask: repartition into this many parts")
def assign(src, dst, crs, lon_col, lat_col, at, chunk_size, engine, partitions):
    """Assign every point of SRC (CSV, GeoJSON, GPKG, GeoParquet) to a zone and chief; write DST.

    Rows that cannot be assigned are kept, with status "invalid" or "outside".
    With --engine dask, SRC is a GeoParquet file or a directory of them and DST a new directory.
    """
    from pathlib import Path

    if engine == "dask":
        return _assign_dask(src, dst, crs, at, partitions)
    if Path(src).is_dir():
        _fail(f"{src} is a directory: use --engine dask for a directory of GeoParquet files")
    from tqdm import tqdm

    from gis.crs import UnknownCRSError, normalize_crs
    from gis.points import read_points, write_points
    from zonechief.services import load_index, load_settings

    try:
        table, x, y, file_crs = read_points(src, lon_col, lat_col)
        c = normalize_crs(crs or file_crs or "wgs84")
        at = _at(at)
    except (ValueError, FileNotFoundError, UnknownCRSError) as exc:
        _fail(str(exc))
    index = load_index(load_settings())
    parts = []
    with tqdm(total=len(x), unit="pt", desc="assign", file=sys.stderr, disable=None) as bar:
        for s in range(0, len(x), chunk_size):
            parts.append(index.assign(x[s:s + chunk_size], y[s:s + chunk_size], crs=c, at=at))
            bar.update(len(parts[-1]))
    res = pd.concat(parts, ignore_index=True) if parts else index.assign(np.array([]), np.array([]))
    out = pd.DataFrame(table.drop(columns="geometry", errors="ignore")).reset_index(drop=True)
    for col in res.columns:
        out[col if col not in out.columns else f"{col}_zc"] = res[col].to_numpy()
    try:
        write_points(out, dst, res["lon_wgs84"].to_numpy(), res["lat_wgs84"].to_numpy())
    except ValueError as exc:
        _fail(str(exc))
    counts = res["status"].value_counts().to_dict()
    click.echo(f"{len(res)} rows → {dst}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), err=True)


def _assign_dask(src, dst, crs, at, partitions):
    from pathlib import Path

    from gis.crs import UnknownCRSError
    from gis.dask_assign import assign_parquet
    from zonechief.services import load_index, load_settings

    p = Path(src)
    if p.is_file() and p.suffix.lower() not in (".parquet", ".geoparquet"):
        _fail(f"{src}: --engine dask reads GeoParquet (a .parquet file or a directory of them)")
    try:
        res = assign_parquet(src, dst, crs=crs, npartitions=partitions, at=_at(at),
                             index=load_index(load_settings()))
    except (ValueError, FileNotFoundError, FileExistsError, UnknownCRSError) as exc:
        _fail(str(exc))
    click.echo(f"{res.rows} rows → {dst} ({res.partitions} parts): "
               + ", ".join(f"{k} {v}" for k, v in sorted(res.counts.items())), err=True)


@main.group()
def boundaries():
    """Boundary files: validate official layers before use."""


@boundaries.command("validate")
@click.argument("path", type=click.Path(exists=True))
@click.option("--id-field", default=None, help="Feature id column (default: code, village_code, unit_id, zone_id or id)")
@click.option("--crs", default=None, callback=_crs_value, help="CRS when the file has none, e.g. EPSG:4547")
@click.option("--layer", default=None, help="Layer of a multi-layer file (GeoPackage)")
@click.option("--tolerance-m2", default=None, type=float, help="Report overlaps/gaps above this area")
def validate(path, id_field, crs, layer, tolerance_m2):
    """Check a boundary layer: geometry validity, overlaps and gaps. Exit 1 if it cannot be used as is."""
    from gis.boundaries import BoundaryError, load_and_validate
    from gis.crs import UnknownCRSError
    from zonechief.services import load_settings

    tol = tolerance_m2 if tolerance_m2 is not None else load_settings().overlap_tolerance_m2
    try:
        _, report = load_and_validate(path, id_field=id_field, tolerance_m2=tol, layer=layer, crs=crs)
    except (BoundaryError, UnknownCRSError) as exc:  # UnknownCRSError: the file's own CRS
        _fail(str(exc))
    click.echo(str(report))
    if not report.ok:
        sys.exit(1)


def _actor(actor: str | None) -> str:
    import getpass

    return actor or f"cli:{getpass.getuser()}"


def _import_reference(actor, dry_run, quiet: bool = False, **files):
    """Validate and replace reference data in the store, in one transaction with an audit entry.

    `quiet`: a dry run showing only how an official layer's columns were read (to confirm them).
    """
    from gis.crs import UnknownCRSError
    from zonechief.reference import ImportRejected, import_reference
    from zonechief.services import Services

    services = Services()
    try:
        out = import_reference(services.db, services.index, services.facilities, _actor(actor), dry_run=dry_run,
                               public_url=services.settings.public_url, **files)
    except (ImportRejected, UnknownCRSError) as exc:  # UnknownCRSError: a file's own CRS
        _fail(str(exc))
    if quiet:
        click.echo("\n".join(n for n in out.summary["boundaries"]["repairs"] if n.startswith(("official layer", "columns read"))),
                   err=True)
        return
    click.echo(json.dumps(out.summary, ensure_ascii=False, indent=2, default=str))
    if out.diff is not None:
        from zonechief.cli_boundaries import report_text

        click.echo("\n" + report_text(out.diff), err=True)
    if dry_run:
        click.echo("dry run: valid; nothing was changed", err=True)
    else:
        click.echo(f"imported {', '.join(out.kinds)} (audit #{', #'.join(map(str, out.audit_ids))}); "
                   + ("running servers on this database take it up within a second" if services.db.dialect == "postgresql"
                      else "a running server takes it up when restarted"), err=True)


_actor_opt = click.option("--actor", default=None, help="Who makes the change, for the audit log (default cli:<user>)")
_dry_opt = click.option("--dry-run", is_flag=True, help="Validate and show the changes; change nothing")


@boundaries.command("import")
@click.argument("path", type=click.Path(exists=True))
@click.option("--roster", "roster", default=None, type=click.Path(exists=True, dir_okay=False), help="Replace the roster in the same transaction")
@click.option("--facilities", "facilities_file", default=None, type=click.Path(exists=True, dir_okay=False), help="Replace the facilities in the same transaction")
@click.option("--id-field", default=None, help="Feature id column")
@click.option("--zone-field", default="zone_id", show_default=True, help="Column grouping features into zones")
@click.option("--crs", default=None, callback=_crs_value, help="CRS when the file has none")
@click.option("--layer", default=None, help="Layer of a multi-layer file")
@click.option("--allow-repairs", is_flag=True, help="Accept invalid polygons that can be repaired")
@click.option("--valid-from", default=None, help="When the boundaries take effect (ISO 8601; a bare date is that day in "
                                                 "Asia/Shanghai); default now. Later: kept until then")
@click.option("--rewrite-history", is_flag=True, help="Allow a past --valid-from that re-explains reports already filed (audited)")
@click.option("--allow-uncovered", is_flag=True, help="Accept boundaries that leave parts of the old towns uncovered (audited)")
@click.option("--code-field", default=None, help="Official layer: the column of the 12-digit village code (default: guessed)")
@click.option("--name-field", default=None, help="Official layer: the column of the village name (default: guessed)")
@click.option("--town-field", default=None, help="Official layer: the column of the town (default: guessed)")
@click.option("--zones", "zones_csv", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Official layer: CSV code,zone_id[,zone_name] for villages whose code has no zone now")
@click.option("--encoding", default=None, help="Official layer: the .dbf encoding (default: the .cpg, else UTF-8 or GB18030)")
@click.option("--yes", is_flag=True, help="Official layer: do not ask to confirm the guessed columns")
@_actor_opt
@_dry_opt
def boundaries_import(path, roster, facilities_file, id_field, zone_field, crs, layer, allow_repairs, valid_from,
                      rewrite_history, allow_uncovered, code_field, name_field, town_field, zones_csv, encoding, yes,
                      actor, dry_run):
    """Import boundaries as a new generation (validated; all or nothing; audited).

    In force from --valid-from (default now): the zones are replaced and every open report whose point falls
    in another zone moves to it and its chief. --dry-run shows what moved and how many open reports would move.
    A layer without this project's columns (code, zone_id), e.g. a 三调 village layer, is read as an official
    layer: its columns are guessed and shown for confirmation, and villages keep the zone their code has now.
    """
    from zonechief.reference import is_official

    opts: dict = {"id_field": id_field, "zone_field": zone_field, "crs": crs, "layer": layer, "allow_repairs": allow_repairs}
    given = {"code": code_field, "name": name_field, "town": town_field, "zone": zone_field if zone_field != "zone_id" else None}
    if any(given.values()) or zones_csv or encoding or is_official(path, layer):
        opts["official"] = {"columns": given, "zones": zones_csv, "encoding": encoding}
        if not (yes or dry_run or (code_field and name_field)):
            _import_reference(actor, True, boundaries=path, boundary_options=opts, quiet=True)
            click.confirm("import with these columns?", abort=True, err=True)
    _import_reference(actor, dry_run, boundaries=path, roster=roster, facilities_file=facilities_file,
                      boundary_options=opts, valid_from=_at(valid_from, "--valid-from"), rewrite_history=rewrite_history,
                      allow_uncovered=allow_uncovered)


@boundaries.command("generations")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def boundaries_generations(as_json):
    """The boundary generations in the store: every import, from when it is valid, which is in force."""
    from store.generations import GenerationRepository
    from zonechief.services import Services

    services = Services()
    db = services.db
    with db.sessions() as s:
        rows = GenerationRepository.for_db(db).all(s)
    current = services.index.generation
    items = [{"id": g.id, "valid_from": g.valid_from.isoformat(), "activated_at": g.activated_at and g.activated_at.isoformat(),
              "in_force": g.id == current, "actor": g.actor, "source": g.source,
              "villages": (g.summary or {}).get("villages_after")} for g in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for g in items:
        state = "in force" if g["in_force"] else ("scheduled" if g["activated_at"] is None else "past")
        click.echo(f"#{g['id']:<4} valid from {g['valid_from']:<32} {state:<10} {g['source']} ({g['actor']})")


@boundaries.command("activate")
def boundaries_activate():
    """Put in force a generation whose --valid-from has come (servers do it within 30 s; this is for cron)."""
    from zonechief.services import Services

    services = Services()
    if services.activate_due_generations():
        click.echo(f"generation {services.index.generation} is in force", err=True)
    else:
        click.echo("nothing to do: no generation waits for its time", err=True)


@main.group()
def roster():
    """The roster of chiefs and inspectors."""


@roster.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_actor_opt
@_dry_opt
def roster_import(path, actor, dry_run):
    """Replace the roster (CSV) in the report store (validated; all or nothing; audited)."""
    _import_reference(actor, dry_run, roster=path)


@main.group()
def facilities():
    """Facilities with city service codes."""


@facilities.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_actor_opt
@_dry_opt
def facilities_import(path, actor, dry_run):
    """Replace the facilities (GeoJSON points) in the report store (validated; all or nothing; audited)."""
    _import_reference(actor, dry_run, facilities_file=path)


@main.command("audit")
@click.option("--action", default=None, help="Only this action, e.g. roster.import")
@click.option("--limit", default=20, show_default=True, type=int)
def audit_cmd(action, limit):
    """Recent reference-data changes: who, when, what."""
    from store import audit

    svc = _reports_service()
    with svc.db.sessions() as s:
        for e in audit.entries(s, action, limit):
            click.echo(json.dumps(audit.to_dict(e), ensure_ascii=False, default=str))


@main.group()
def keys():
    """API keys (stored hashed; the token is shown once)."""


@keys.command("create")
@click.option("--role", type=click.Choice(["public", "staff", "admin"]), required=True)
@click.option("--name", required=True, help="Who or what holds the key")
@click.option("--chief", "chief_id", default=None, help="Staff key acting for this chief (own queue only)")
def keys_create(role, name, chief_id):
    """Create an API key and print its token."""
    from store.keys import create_key

    reports = _reports_service()
    with reports.db.sessions.begin() as s:
        row, token = create_key(s, role, name, chief_id)
    click.echo(f"created {role} key {row.prefix} for {name}; keep the token, it is not stored:", err=True)
    click.echo(token)


@main.group()
def reports():
    """Reports: bulk import."""


@reports.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--rejects", default=None, type=click.Path(dir_okay=False), help="Rejects CSV (default: <file>.rejects.csv)")
@click.option("--crs", default=None, callback=_crs_value, help="CRS of lon/lat when rows don't name it")
@click.option("--rebuild-indexes/--keep-indexes", default=None,
              help="PostGIS: drop and rebuild the report indexes around the load (faster, but locks the reports "
                   "tables until it commits). Default: rebuild when the file has at least 10,000 rows and at least "
                   "as many as are stored.")
def reports_import(path, rejects, crs, rebuild_indexes):
    """Import reports from CSV, GeoJSON or GeoParquet, all or nothing; bad rows go to a rejects file."""
    from zonechief.bulk import import_file

    svc = _reports_service()
    n = _count_rows(path)
    res = _with_bar(n, "import", lambda bar: import_file(svc, path, rejects, crs=crs, progress=bar.update,
                                                         rebuild_indexes=rebuild_indexes))
    click.echo(str(res))
    if res.rejected:
        sys.exit(2)


def _count_rows(path) -> int:
    if str(path).lower().endswith((".csv", ".txt")):
        with open(path, encoding="utf-8-sig") as fh:
            return max(0, sum(1 for _ in fh) - 1)
    return 0


@main.group()
def demo():
    """Demo data."""


@demo.command("seed")
@click.option("--reports", "n", default=2000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--patrol-days", default=7, show_default=True, type=int,
              help="Days of synthetic patrol tracks (a fix every 30 s; 0: none), with the illustrative teams and shops")
def demo_seed(n, seed, patrol_days):
    """Write N realistic synthetic reports (weighted categories, daily/weekly rhythm, clusters, progressing statuses)."""
    from zonechief.bulk import seed_demo

    svc = _reports_service()
    res = _with_bar(n, "seed", lambda bar: seed_demo(svc, n, seed=seed, progress=bar.update))
    click.echo(f"demo: {res}")
    if patrol_days > 0:
        from zonechief.patrols_synthetic import seed_demo_patrols

        click.echo(f"demo patrols (synthetic): {seed_demo_patrols(svc.db, svc.index, days=patrol_days, seed=seed)}")


@main.group()
def db():
    """The report store."""


@db.command("upgrade")
def db_upgrade():
    """Apply migrations and load reference data (zones, villages, roster, facilities, categories)."""
    svc = _reports_service()
    click.echo(f"up to date: {_safe_url(svc.db.url)}")


_timeout_opt = click.option("--timeout", default=3600.0, show_default=True, type=click.FloatRange(min=1),
                            help="Stop after this many seconds (the store and FILE are left as they were)")
_pg_bin_opt = click.option("--pg-bin", default=None, type=click.Path(file_okay=False),
                           help="PostGIS: folder of pg_dump, pg_restore and psql (default: the newest on PATH "
                                "or in /usr/lib/postgresql/*/bin)")


def _store_url() -> str:
    """The configured store's URL, without opening (migrating, seeding) it."""
    from zonechief.services import load_settings

    try:
        return load_settings().store_url()
    except OSError as exc:  # the embedded store's folder cannot be made
        raise click.ClickException(f"cannot use the store's folder: {exc}") from exc


def _progress(msg: str) -> None:
    click.echo(msg, err=True)


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@_timeout_opt
@_pg_bin_opt
def db_backup(file, timeout, pg_bin):
    """Back up the store to FILE: pg_dump's custom format for PostGIS, a SQLite copy for the embedded store.

    Consistent while the API is serving; FILE is replaced only when the backup is complete.
    """
    from store.backup import BackupError, backup

    try:
        res = backup(_store_url(), file, timeout=timeout, progress=_progress, pg_bin=pg_bin)
    except BackupError as exc:
        _fail(str(exc))
    click.echo(f"backed up {res.dialect} store (schema {res.revision}) to {res.path}: "
               f"{res.size:,} bytes in {res.seconds:.1f} s")


@db.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace a store that holds data (everything in it is lost)")
@_timeout_opt
@_pg_bin_opt
def db_restore(file, force, timeout, pg_bin):
    """Replace the store with the backup in FILE, then migrate it to this version's schema.

    Refuses a store that holds data unless --force, a backup of the other kind of store, and a
    backup made by a newer zonechief. On PostGIS the restore is one transaction: on failure nothing changes.
    """
    from store.backup import BackupError, TargetNotEmpty, restore

    try:
        res = restore(_store_url(), file, force=force, timeout=timeout, progress=_progress, pg_bin=pg_bin)
    except TargetNotEmpty as exc:
        _fail(f"{exc}; give --force to replace it")
    except BackupError as exc:
        _fail(str(exc))
    schema = res.revision if res.revision == res.migrated_to else f"{res.revision}, migrated to {res.migrated_to}"
    click.echo(f"restored {file} (schema {schema}) in {res.seconds:.1f} s; "
               "restart running servers so they load the restored reference data")



@main.command("map")
@click.argument("kind", type=click.Choice(["zones", "heatmap", "hotspots"]))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="HTML file to write")
@click.option("--basemap", type=click.Choice(["none", "osm", "tianditu", "amap"]), default="none", show_default=True,
              help="Tiles under the map; none works with no network (amap shifts overlays to GCJ-02)")
@click.option("--standalone", is_flag=True,
              help="Inline every script and stylesheet: one file that opens from disk with no network")
@click.option("--static-url", default=None,
              help="Where the page loads its scripts (default: copied next to FILE in zonechief_static/)")
@click.option("--since", default=None, help="Reports from this date or time (ISO 8601; a date is that day in "
                                            "Asia/Shanghai, a time without an offset Asia/Shanghai wall time)")
@click.option("--until", default=None, help="Reports before this date or time; a date includes that day")
@click.option("--category", multiple=True, help="GB/T 47678.5 code, e.g. 06010 (repeatable)")
@click.option("--status", multiple=True, help="Report status, e.g. assigned (repeatable)")
@click.option("--town", default=None, help="Town name or code, e.g. 企石镇")
@click.option("--zone", multiple=True, help="Zone id, e.g. QS-15 (repeatable)")
@click.option("--by", type=click.Choice(["week", "month"]), default=None, help="heatmap: animate by week or month")
@click.option("--cell-m", type=float, default=None, help="Grid cell in metres (heatmap 150, hotspots 500)")
@click.option("--recent", type=int, default=200, show_default=True, help="heatmap: latest reports as markers")
@click.option("--permutations", type=int, default=9999, show_default=True, help="hotspots: permutations for p-values")
@click.option("--at", default=None, help="zones: roster date (ISO 8601); default today")
def map_cmd(kind, out, basemap, standalone, static_url, since, until, category, status, town, zone, by, cell_m,
            recent, permutations, at):
    """Write a planner map as HTML: zones, a report heat map, or hot spots."""
    import shutil
    from pathlib import Path

    from maps import BasemapError, MapInputError, ReportFilter, report_heatmap, report_hotspots, zones_map
    from maps.assets import STATIC, standalone_html
    from zonechief.services import Services

    out = Path(out)
    if standalone:
        url = None
    elif static_url:
        url = static_url.rstrip("/")
    else:
        url = "zonechief_static"  # relative to the HTML file
    svc = Services()
    key = svc.settings.tianditu_key
    try:
        if kind == "zones":
            m = zones_map(svc.index, svc.facilities, basemap=basemap, town=town, at=_at(at), tianditu_key=key,
                          static_url=url)
        else:
            flt = ReportFilter(since=_at(since, "--since"), until=_at(until, "--until", end=True),
                               categories=tuple(category), statuses=tuple(status),
                               town=town, zone_ids=tuple(zone))
            names = dict(zip(svc.categories["code"], svc.categories["name"]))
            if kind == "heatmap":
                m = report_heatmap(svc.db, svc.index, flt, by=by, cell_m=cell_m or 150.0, basemap=basemap,
                                   recent=recent, category_names=names, tianditu_key=key, static_url=url)
            else:
                m = report_hotspots(svc.db, svc.index, flt, cell_m=cell_m or 500.0, permutations=permutations,
                                    basemap=basemap, category_names=names, tianditu_key=key, static_url=url)
    except (MapInputError, BasemapError) as exc:
        _fail(str(exc))
    html = standalone_html(m) if standalone else m.get_root().render()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    if url == "zonechief_static":
        shutil.copytree(STATIC, out.parent / url, dirs_exist_ok=True)
    click.echo(f"wrote {out} ({len(html.encode()):,} bytes)" + ("" if url != "zonechief_static" else
                                                                f" and its scripts in {out.parent / url}"), err=True)

from zonechief.cli_boundaries import boundaries_diff  # noqa: E402

boundaries.add_command(boundaries_diff)  # `zonechief boundaries diff`
# Each registers its commands on `main`: `zonechief patrols`, `plan`, `qr` and `serve`.
from zonechief import cli_patrols, cli_plan, cli_qr, cli_serve  # noqa: E402,F401

if __name__ == "__main__":
    # `python -m zonechief.cli`: this module runs as __main__, and cli_serve/cli_qr registered their
    # commands on the imported zonechief.cli, so run that one.
    from zonechief.cli import main as _main

    _main()
