"""`zonechief qr`: the QR code of every facility's service code, and a printable sheet of them.

Attaches itself to `zonechief.cli.main` when imported (the last line of zonechief/cli.py imports it).
"""
from __future__ import annotations

from pathlib import Path

import click

from zonechief.cli import _at, _fail, main


@main.command("qr")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder to write {service_code}.svg per facility and sheet.html into (made if missing)")
@click.option("--public-url", default=None,
              help="Base URL phones reach this server at (default: ZONECHIEF_PUBLIC_URL); codes encode {URL}/r/{code}")
@click.option("--town", default=None, help="Only this town's facilities, by name or code, e.g. 樟木头镇")
@click.option("--at", default=None, help="Roster date for the chief printed on each card (ISO 8601); default today")
def qr_cmd(out, public_url, town, at):
    """Write each facility's QR code (SVG) and sheet.html, a printable A4 sheet of cards to put up."""
    from zonechief.qr import PublicUrlError, check_public_url, facility_cards, is_loopback, qr_svg, report_url, sheet_html
    from zonechief.services import Services

    svc = Services()
    try:
        base = check_public_url(public_url or svc.settings.public_url)
    except PublicUrlError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-url") from None
    if is_loopback(base):
        click.echo(f"warning: the codes point at {base}, which phones cannot reach; set ZONECHIEF_PUBLIC_URL "
                   "or give --public-url before printing them", err=True)
    facilities = svc.facilities
    if town:
        codes = dict(zip(svc.index.zones.zone_id, svc.index.zones.town_code))
        facilities = facilities[(facilities.town == town) | (facilities.zone_id.map(codes) == town)]
        if facilities.empty:
            _fail(f"no facilities in town {town!r}; towns with facilities: {', '.join(sorted(set(svc.facilities.town)))}")
    cards = facility_cards(svc.index, facilities, _at(at))
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    for c in cards:
        # The code is a file name here: refuse one that would leave the folder.
        name = f"{c.service_code}.svg"
        if Path(name).name != name or name.startswith("."):
            _fail(f"service code {c.service_code!r} cannot be a file name")
        (d / name).write_text(qr_svg(report_url(base, c.service_code)), encoding="utf-8")
    (d / "sheet.html").write_text(sheet_html(cards, base), encoding="utf-8")
    click.echo(f"wrote {len(cards)} QR codes and sheet.html to {d}", err=True)
