"""`zonechief plan stations`: where to add stations (gis/siting.py over the report store).

Attaches itself to `zonechief.cli.main` when imported (the last line of zonechief/cli.py imports it).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from zonechief.cli import _at, _fail, main


@main.group("plan")
def plan():
    """Planning questions answered next to the zones (station siting)."""


@plan.command("stations")
@click.option("--add", "add", type=int, default=2, show_default=True, help="Stations to add (mclp, pmedian)")
@click.option("--radius", type=float, default=1000.0, show_default=True,
              help="Coverage radius: metres, or seconds with --travel-times (mclp, lscp)")
@click.option("--model", type=click.Choice(["mclp", "pmedian", "lscp"]), default="mclp", show_default=True,
              help="mclp: most demand within the radius; pmedian: least mean distance; lscp: fewest stations covering all")
@click.option("--since", default=None, help="Reports from this date or time (ISO 8601, Asia/Shanghai when no offset)")
@click.option("--until", default=None, help="Reports before this date or time; a date includes that day")
@click.option("--category", multiple=True, help="GB/T 47678.5 code, e.g. 06010 (repeatable)")
@click.option("--status", multiple=True, help="Report status (repeatable)")
@click.option("--town", default=None, help="Town name or code: demand, candidates and stations inside it")
@click.option("--grid", "grid_m", type=float, default=250.0, show_default=True, help="Demand/candidate grid cell (m)")
@click.option("--candidates", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV of extra candidate sites: candidate_id, lon, lat[, crs, name]")
@click.option("--travel-times", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV origin (demand cell r<row>c<col>), destination (site id), seconds; replaces straight lines")
@click.option("--stations", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV of existing stations (default data/boundaries/stations.csv, illustrative positions)")
@click.option("--time-limit", type=float, default=30.0, show_default=True, help="Solver time limit (s)")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write stations and sites as GeoJSON")
def stations(add, radius, model, since, until, category, status, town, grid_m, candidates, travel_times, stations,
             time_limit, as_json, out):
    """Where to add stations to the existing ones, and how much report demand they then reach."""
    from gis.siting import SitingInputError
    from maps import MapInputError, ReportFilter
    from zonechief.planning import plan_stations
    from zonechief.services import Services

    svc = Services()
    try:
        flt = ReportFilter(since=_at(since, "--since"), until=_at(until, "--until", end=True),
                           categories=tuple(category), statuses=tuple(status), town=town)
        params = {"model": model, "add": add, "radius": radius, "grid_m": grid_m, "since": since, "until": until,
                  "category": list(category), "status": list(status), "town": town, "time_limit": time_limit}
        p = plan_stations(svc.db, svc.index, flt.conditions(svc.index), flt.zone_scope(svc.index), model=model,
                          add=add, radius=radius, grid_m=grid_m, candidates_path=candidates,
                          travel_times_path=travel_times, stations_path=stations, time_limit=time_limit,
                          parameters=params)
    except (MapInputError, SitingInputError) as exc:
        _fail(str(exc))
    if out:
        Path(out).write_text(json.dumps(p.geojson(), ensure_ascii=False), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(p.to_dict(), ensure_ascii=False, indent=1))
        return
    r = p.result
    unit = "s" if travel_times else "m"
    click.echo(f"{r.model}: {r.status}{'' if r.proven_optimal else ' (NOT proven optimal)'}, gap {r.gap}, "
               f"{r.seconds:.1f} s, {r.method} on {r.solver}; {p.n_reports} reports in {len(p.demand)} cells")
    if r.message:
        click.echo(r.message)
    for s in p.sites:
        click.echo(f"  + {s['id']:>12}  {s['lon']:.6f} {s['lat']:.6f}  {s['zone_id']} {s['zone_name'] or ''}  "
                   f"serves {s['demand_served']:g}")
    b, a = r.before, r.after
    if r.radius and a:
        click.echo(f"within {r.radius:g} {unit}: before {b.get('covered', 0):g} ({(b.get('covered_share') or 0):.1%}), "
                   f"after {a.get('covered', 0):g} ({(a.get('covered_share') or 0):.1%})")
    if a:
        mb = b.get("mean_cost")
        click.echo(f"mean {'time' if travel_times else 'distance'} to nearest station: "
                   f"before {'—' if mb is None else f'{mb:.0f}'} {unit}, after {a['mean_cost']:.0f} {unit}")
