"""The `zonechief` command line."""
from __future__ import annotations

import json
import sys

import click
import numpy as np
import pandas as pd


def _fail(msg: str):
    raise click.ClickException(msg)


def _at(value: str | None):
    """--at as a datetime, or a clear error instead of a pandas traceback."""
    if value is None:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--at {value!r} is not an ISO 8601 date or time (e.g. 2025-07-01)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zonechief")
def main():
    """zonechief: who is responsible here? Zones, chiefs and reports for Dongguan's 城管片长制."""


@main.command()
@click.option("--host", default=None, help="Bind address (default 127.0.0.1, or ZONECHIEF_HOST)")
@click.option("--port", default=None, type=int, help="Port (default 8000, or ZONECHIEF_PORT)")
@click.option("--demo", is_flag=True, help="Seed demo reports if the store is empty")
@click.option("--demo-reports", default=2000, show_default=True, help="How many demo reports --demo writes")
def serve(host, port, demo, demo_reports):
    """Run the HTTP API (docs at /docs)."""
    import uvicorn

    from api.app import create_app
    from gis.settings import get_settings

    s = get_settings()
    host, port = host or s.host, port or s.port
    app = create_app()
    services = app.state.services
    db = services.db  # migrate and load reference data before taking requests
    click.echo(f"report store: {_safe_url(db.url)}", err=True)
    if demo:
        _seed_if_empty(services.reports, demo_reports)
    click.echo(f"zonechief API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _reports_service():
    from api.services import Services
    from gis.settings import get_settings

    return Services(get_settings()).reports


def _seed_if_empty(reports, n: int):
    from sqlalchemy import func, select

    from gis.bulk import seed_demo
    from gis.store.models import Report

    with reports.db.sessions() as s:
        have = s.scalar(select(func.count()).select_from(Report))
    if have:
        click.echo(f"store already has {have} reports; not seeding", err=True)
        return
    res = _with_bar(n, "seed", lambda bar: seed_demo(reports, n, progress=bar.update))
    click.echo(f"demo: {res}", err=True)


def _with_bar(total, desc, fn):
    from tqdm import tqdm

    with tqdm(total=total, unit="rep", desc=desc, file=sys.stderr, disable=None) as bar:
        res = fn(bar)
        bar.update(max(0, total - bar.n))
    return res


@main.command()
@click.argument("lon", type=float)
@click.argument("lat", type=float)
@click.option("--crs", default="wgs84", show_default=True, help="wgs84, gcj02, bd09, cgcs2000 or EPSG:nnnn")
@click.option("--at", default=None, help="Roster date (ISO 8601); default now")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def lookup(lon, lat, crs, at, as_json):
    """Who is responsible for the point LON LAT?"""
    from api.app import assignment_json
    from gis.crs import UnknownCRSError, normalize_crs
    from gis.lookup import ZoneIndex
    from gis.points import CoordinateError

    try:
        c = normalize_crs(crs)
        a = ZoneIndex.load().lookup(lon, lat, crs=c, at=_at(at))
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
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--crs", default=None, help="CRS of the input coordinates (CSV default wgs84; spatial files: their own CRS)")
@click.option("--lon", "lon_col", default=None, help="Longitude column of a CSV (default: lon/lng/longitude/x)")
@click.option("--lat", "lat_col", default=None, help="Latitude column of a CSV (default: lat/latitude/y)")
@click.option("--at", default=None, help="Roster date (ISO 8601); default now")
@click.option("--chunk-size", default=100_000, show_default=True, type=int)
def assign(src, dst, crs, lon_col, lat_col, at, chunk_size):
    """Assign every point of SRC (CSV, GeoJSON, GPKG, GeoParquet) to a zone and chief; write DST.

    Rows that cannot be assigned are kept, with status "invalid" or "outside".
    """
    from tqdm import tqdm

    from gis.crs import UnknownCRSError, normalize_crs
    from gis.lookup import ZoneIndex
    from gis.points import read_points, write_points

    try:
        table, x, y, file_crs = read_points(src, lon_col, lat_col)
        c = normalize_crs(crs or file_crs or "wgs84")
        at = _at(at)
    except (ValueError, FileNotFoundError, UnknownCRSError) as exc:
        _fail(str(exc))
    index = ZoneIndex.load()
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


@main.group()
def boundaries():
    """Boundary files: validate official layers before use."""


@boundaries.command("validate")
@click.argument("path", type=click.Path(exists=True))
@click.option("--id-field", default=None, help="Feature id column (default: code, village_code, unit_id, zone_id or id)")
@click.option("--crs", default=None, help="CRS when the file has none, e.g. EPSG:4547")
@click.option("--layer", default=None, help="Layer of a multi-layer file (GeoPackage)")
@click.option("--tolerance-m2", default=None, type=float, help="Report overlaps/gaps above this area")
def validate(path, id_field, crs, layer, tolerance_m2):
    """Check a boundary layer: geometry validity, overlaps and gaps. Exit 1 if it cannot be used as is."""
    from gis.boundaries import BoundaryError, load_and_validate
    from gis.settings import get_settings

    tol = tolerance_m2 if tolerance_m2 is not None else get_settings().overlap_tolerance_m2
    try:
        _, report = load_and_validate(path, id_field=id_field, tolerance_m2=tol, layer=layer, crs=crs)
    except BoundaryError as exc:
        _fail(str(exc))
    click.echo(str(report))
    if not report.ok:
        sys.exit(1)


@main.group()
def keys():
    """API keys (stored hashed; the token is shown once)."""


@keys.command("create")
@click.option("--role", type=click.Choice(["public", "staff", "admin"]), required=True)
@click.option("--name", required=True, help="Who or what holds the key")
@click.option("--chief", "chief_id", default=None, help="Staff key acting for this chief (own queue only)")
def keys_create(role, name, chief_id):
    """Create an API key and print its token."""
    from gis.keys import create_key

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
@click.option("--crs", default=None, help="CRS of lon/lat when rows don't name it")
def reports_import(path, rejects, crs):
    """Import reports from CSV, GeoJSON or GeoParquet, all or nothing; bad rows go to a rejects file."""
    from gis.bulk import import_file

    svc = _reports_service()
    n = _count_rows(path)
    res = _with_bar(n, "import", lambda bar: import_file(svc, path, rejects, crs=crs, progress=bar.update))
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
def demo_seed(n, seed):
    """Write N realistic synthetic reports (weighted categories, daily/weekly rhythm, clusters, progressing statuses)."""
    from gis.bulk import seed_demo

    svc = _reports_service()
    res = _with_bar(n, "seed", lambda bar: seed_demo(svc, n, seed=seed, progress=bar.update))
    click.echo(f"demo: {res}")


@main.group()
def db():
    """The report store."""


@db.command("upgrade")
def db_upgrade():
    """Apply migrations and load reference data (zones, villages, roster, facilities, categories)."""
    svc = _reports_service()
    click.echo(f"up to date: {_safe_url(svc.db.url)}")


if __name__ == "__main__":
    main()
