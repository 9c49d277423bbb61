"""`zonechief boundaries diff OLD NEW`: what moved between two boundary files (gis.boundary_diff), as a table,
as JSON, or as a map.

zonechief/cli.py registers the command on its `boundaries` group (`boundaries.add_command`); this module does
not import zonechief.cli, so either can be imported first.
"""
from __future__ import annotations

import json
import unicodedata

import click


def _width(s: str) -> int:
    """Columns a terminal gives `s`: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def _pad(s: str, w: int, right: bool = False) -> str:
    gap = " " * max(0, w - _width(s))
    return gap + s if right else s + gap


def table(header: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """A plain text table, columns aligned by display width; `numeric` columns right-aligned."""
    widths = [max([_width(h)] + [_width(r[k]) for r in rows]) for k, h in enumerate(header)]
    lines = ["  ".join(_pad(h, widths[k], k in numeric) for k, h in enumerate(header)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(_pad(c, widths[k], k in numeric) for k, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)


def _names(c) -> str:
    if c.name_old and c.name_new and c.name_old != c.name_new:
        return f"{c.name_old} → {c.name_new}"
    return c.name or ""


def _details(c) -> str:
    out = []
    if c.merged_from:
        out.append("merged from " + ", ".join(c.merged_from))
    if c.merged_into:
        out.append("merged into " + c.merged_into)
    if c.split_into:
        out.append("split into " + ", ".join(c.split_into))
    if c.split_from:
        out.append("split from " + c.split_from)
    if "moved" in c.tags:
        out.append(f"zone {c.zone_old} → {c.zone_new}")
    if c.villages_in:
        out.append("in: " + ", ".join(c.villages_in))
    if c.villages_out:
        out.append("out: " + ", ".join(c.villages_out))
    out += [f"from {k}: {a:,.0f} m²" for k, a in c.gained_from[:3]] + [f"to {k}: {a:,.0f} m²" for k, a in c.lost_to[:3]]
    return "; ".join(out)


def report_text(diff, show_all: bool = False) -> str:
    """The readable report: a summary line per level, then the villages and zones that changed."""
    s = diff.summary()
    parts = []
    for level, label in (("villages", "villages"), ("zones", "zones")):
        c = s[level]
        moved = ", ".join(f"{c[t]} {t}" for t in ("changed", "renamed", "moved", "new", "gone", "merged", "split") if c.get(t))
        parts.append(f"{label}: {c['before']} → {c['after']}; {moved or 'no change'}; "
                     f"gained {c['gained_m2'] / 1e6:,.4f} km², lost {c['lost_m2'] / 1e6:,.4f} km²")
    parts.append(f"(areas in EPSG:4547; changes above {diff.tolerance_m2:g} m²)")
    for level, changes, head in (("villages", diff.villages, "code"), ("zones", diff.zones, "zone")):
        shown = [c for c in changes if show_all or c.status != "same"]
        if not shown:
            continue
        rows = [[",".join(c.tags), c.id, _names(c), f"{c.area_old_m2 / 1e6:,.4f}", f"{c.area_new_m2 / 1e6:,.4f}",
                 f"{c.gained_m2:,.0f}", f"{c.lost_m2:,.0f}", _details(c)] for c in shown]
        parts.append("")
        parts.append(f"{level} ({len(shown)}):")
        parts.append(table(["status", head, "name", "km² before", "km² after", "gained m²", "lost m²", "details"],
                           rows, {3, 4, 5, 6}))
    return "\n".join(parts)


@click.command("diff")
@click.argument("old", type=click.Path(exists=True))
@click.argument("new", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the whole diff as JSON")
@click.option("--id-field", default=None, help="Feature id column of both files (default: code, village_code, unit_id, zone_id or id)")
@click.option("--zone-field", default="zone_id", show_default=True, help="Column grouping villages into zones")
@click.option("--crs", default=None, help="CRS of a file that has none, e.g. EPSG:4547")
@click.option("--layer", default=None, help="Layer of a multi-layer file (GeoPackage)")
@click.option("--tolerance-m2", default=None, type=float,
              help="Areas gained or lost at or below this are no change (default: the overlap tolerance)")
@click.option("--allow-repairs", is_flag=True, help="Accept invalid polygons that can be repaired")
@click.option("--all", "show_all", is_flag=True, help="List unchanged villages and zones too")
@click.option("--out-map", default=None, type=click.Path(dir_okay=False),
              help="Also write the map of what moved: one self-contained HTML file that opens offline")
@click.option("--basemap", type=click.Choice(["none", "osm", "tianditu", "amap"]), default="none", show_default=True,
              help="Tiles under the map (none works with no network)")
def boundaries_diff(old, new, as_json, id_field, zone_field, crs, layer, tolerance_m2, allow_repairs, show_all,
                    out_map, basemap):
    """What moved between two boundary files: per village and zone, area gained and lost, renamed, merged,
    split, new and gone. Both files are validated as an import would validate them."""
    from pathlib import Path

    from gis.boundary_diff import diff_units
    from gis.crs import UnknownCRSError, normalize_crs
    from zonechief.reference import ImportRejected, read_boundaries
    from zonechief.services import load_settings

    settings = load_settings()
    if crs is not None:
        try:
            normalize_crs(crs)
        except UnknownCRSError as exc:
            raise click.BadParameter(str(exc), param_hint="--crs") from None
    tol = settings.overlap_tolerance_m2 if tolerance_m2 is None else tolerance_m2
    indexes = []
    for path in (old, new):
        try:
            index, _ = read_boundaries(path, None, id_field=id_field, zone_field=zone_field, layer=layer, crs=crs,
                                       allow_repairs=allow_repairs, overlap_tolerance_m2=settings.overlap_tolerance_m2)
        except (ImportRejected, UnknownCRSError) as exc:  # UnknownCRSError: a file's own CRS
            raise click.ClickException(f"{path}: {exc}") from None
        indexes.append(index)
    diff = diff_units(indexes[0], indexes[1], tolerance_m2=tol)
    if as_json:
        click.echo(json.dumps(diff.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(report_text(diff, show_all))
    if out_map:
        from maps import BasemapError, boundary_diff_map
        from maps.assets import standalone_html

        try:
            m = boundary_diff_map(diff, basemap=basemap, tianditu_key=settings.tianditu_key,
                                  title=f"边界变化 What moved: {Path(old).name} → {Path(new).name}")
        except BasemapError as exc:
            raise click.ClickException(str(exc)) from None
        html = standalone_html(m)
        out = Path(out_map)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
        click.echo(f"wrote {out} ({len(html.encode()):,} bytes)", err=True)
