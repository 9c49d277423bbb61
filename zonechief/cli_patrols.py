"""`zonechief patrols`: import GPS tracks, patrol teams and paired shops (issue 17).

Attaches itself to `zonechief.cli.main` when imported (zonechief/cli.py imports it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from zonechief.cli import _actor, _crs_value, _fail, main


@main.group()
def patrols():
    """Patrol tracks (GPX/CSV), teams and paired shops."""


@patrols.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--person", default=None, help="Person id of every track (default: the GPX track's name, the CSV's person_id)")
@click.option("--team", default=None, help="Team id of every track (default: the person's team in patrol_people)")
@click.option("--crs", default=None, callback=_crs_value,
              help="Coordinate system when the file does not name one: wgs84, gcj02, bd09, cgcs2000 or EPSG:nnnn (GPX: wgs84)")
@click.option("--actor", default=None, help="Who imports, for the audit log (default cli:<user>)")
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing")
@click.option("--json", "as_json", is_flag=True, help="Print the per-track report as JSON")
def patrols_import(files, person, team, crs, actor, dry_run, as_json):
    """Import GPX or CSV (person_id, time, lon, lat, crs) tracks; bad tracks are reported, the rest imported."""
    from tqdm import tqdm

    from gis.localtime import LOCAL
    from gis.tracks import TrackFileError
    from zonechief.patrols import PatrolImportError, import_patrols
    from zonechief.services import Services

    svc = Services()
    sources = [(Path(f).name, Path(f).read_bytes()) for f in files]
    total = sum(len(d) for _, d in sources)
    with tqdm(total=total, unit="B", unit_scale=True, desc="read", file=sys.stderr, disable=None) as bar:
        def advance(n):
            if bar.n < total:
                bar.update(n)
            else:  # then fixes written
                bar.set_description("written")
        try:
            res = import_patrols(svc.db, svc.index, sources, actor=_actor(actor), person=person, team=team, crs=crs,
                                 dry_run=dry_run, progress=advance)
        except PatrolImportError as exc:
            if as_json:
                click.echo(json.dumps(exc.result.as_dict(), ensure_ascii=False, indent=2))
            _fail(str(exc))
        except TrackFileError as exc:
            _fail(str(exc))
    out = res.as_dict()
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        for t in res.imported:
            click.echo(f"{'ok' if dry_run else f'patrol {t.patrol_id}'}  {t.label}  {t.n_points} fixes  "
                       f"{t.started_at.astimezone(LOCAL):%Y-%m-%d %H:%M}–{t.ended_at.astimezone(LOCAL):%H:%M}  {t.length_m / 1000:.1f} km"
                       + (f"  ({t.dropped_outside} outside both towns dropped)" if t.dropped_outside else ""))
        for t in res.rejected:
            click.echo(f"REJECTED  {t.label}: {'; '.join(t.reasons)}")
        for f in res.files:
            if f["error"]:
                click.echo(f"REJECTED FILE  {f['error']}")
    click.echo(f"{'dry run: would import' if dry_run else 'imported'} {out['imported']} patrol(s), "
               f"{out['points']} fixes; rejected {out['rejected']} track(s)", err=True)


@patrols.group("teams")
def teams():
    """Patrol teams and their people."""


@teams.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--people", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Replace the people (person_id, name, team_id, zone_id) in the same transaction")
@click.option("--actor", default=None, help="Who imports, for the audit log")
@click.option("--dry-run", is_flag=True, help="Check; write nothing")
def teams_import(path, people, actor, dry_run):
    """Replace the patrol teams (CSV: team_id, name, kind, town)."""
    _reference(actor, dry_run, teams=path, people=people)


@patrols.group("shops")
def shops():
    """Shops paired with patrol teams."""


@shops.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--crs", default=None, callback=_crs_value, help="Coordinate system when the file has no crs column")
@click.option("--actor", default=None, help="Who imports, for the audit log")
@click.option("--dry-run", is_flag=True, help="Check; write nothing")
def shops_import(path, crs, actor, dry_run):
    """Replace the paired shops (CSV: shop_id, name, team_id, person_id, lon, lat, crs)."""
    _reference(actor, dry_run, shops=path, crs=crs)


def _reference(actor, dry_run, **files):
    from zonechief.patrol_reference import PatrolReferenceError, import_reference
    from zonechief.services import Services

    svc = Services()
    try:
        out = import_reference(svc.db, svc.index, actor=_actor(actor), dry_run=dry_run, **files)
    except PatrolReferenceError as exc:
        _fail(str(exc))
    click.echo(json.dumps(out, ensure_ascii=False))
    if dry_run:
        click.echo("dry run: valid; nothing was changed", err=True)
