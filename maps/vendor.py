"""Refresh the vendored browser assets in maps/static/vendor/ from their npm packages.

    python -m maps.vendor            # needs `npm` and the npm registry; rewrites maps/static/vendor/

The pages never load anything from a CDN: every script and stylesheet that the
folium elements we use reference is copied here, at the version folium's
templates name (see maps.assets.CDN for the mapping), with its licence file.

Pinned packages and what is taken from each:

| package               | files                                                          | licence      |
|-----------------------|----------------------------------------------------------------|--------------|
| leaflet@1.9.3         | dist/leaflet.js, dist/leaflet.css, dist/images/*.png           | BSD-2-Clause |
| leaflet.heat@0.2.0    | dist/leaflet-heat.js (includes simpleheat)                     | BSD-2-Clause |
| heatmap.js@2.0.5      | build/heatmap.min.js, plugins/leaflet-heatmap/leaflet-heatmap.js | MIT        |
| leaflet-timedimension@1.1.1 | dist/leaflet.timedimension.min.js, dist/leaflet.timedimension.control.css | MIT |
| iso8601-js-period@0.2.1 | iso8601.js                                                   | Apache-2.0   |
| jquery@3.7.1          | dist/jquery.min.js (HeatMapWithTime's template calls $.extend) | MIT          |
| vega@6.2.0            | build/vega.min.js (the /dashboard charts)                      | BSD-3-Clause |
| vega-lite@6.4.1       | build/vega-lite.min.js (the Vega-Lite version altair writes)   | BSD-3-Clause |
| vega-embed@7.1.0      | build/vega-embed.min.js (run with ast: true: no eval under the CSP) | BSD-3-Clause |

Changes made while copying (and only these):
- leaflet.timedimension.control.css: the @font-face block that loads the
  Glyphicons font from netdna.bootstrapcdn.com is removed; zonechief.css draws
  the player buttons with Unicode symbols instead.
- iso8601-js-period ships no licence file; LICENSE here is the Apache-2.0 text
  its package.json declares (from Debian's /usr/share/common-licenses).

Equivalence with what folium links: heatmap.js's build/heatmap.min.js is byte-for-byte folium's
pa7_hm.min.js, and its plugins/leaflet-heatmap/leaflet-heatmap.js is folium's pa7_leaflet_hm.min.js
up to whitespace and comments. folium's leaflet_heat.min.js is Leaflet.heat 0.2.0 patched (PR #78)
to rescale on every redraw; we keep the npm file as published and do that rescaling in our own
maps/static/zonechief/heat-scale.js (with a high quantile instead of the maximum).

Not vendored, because no page uses them: bootstrap, glyphicons, font-awesome and
Leaflet.awesome-markers (folium's Map lists them for Marker icons and popups;
zonechief draws circle markers and binds its own pre-escaped popups).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"

# package -> (version, {source path in the npm tarball: destination name}, licence file or None)
PACKAGES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "leaflet": ("1.9.3", {
        "dist/leaflet.js": "leaflet.js",
        "dist/leaflet.css": "leaflet.css",
        "dist/images/layers.png": "images/layers.png",
        "dist/images/layers-2x.png": "images/layers-2x.png",
        "dist/images/marker-icon.png": "images/marker-icon.png",
        "dist/images/marker-icon-2x.png": "images/marker-icon-2x.png",
        "dist/images/marker-shadow.png": "images/marker-shadow.png",
    }, "LICENSE"),
    "leaflet.heat": ("0.2.0", {"dist/leaflet-heat.js": "leaflet-heat.js"}, "LICENSE"),
    "heatmap.js": ("2.0.5", {
        "build/heatmap.min.js": "heatmap.min.js",
        "plugins/leaflet-heatmap/leaflet-heatmap.js": "leaflet-heatmap.js",
    }, "LICENSE"),
    "leaflet-timedimension": ("1.1.1", {
        "dist/leaflet.timedimension.min.js": "leaflet.timedimension.min.js",
        "dist/leaflet.timedimension.control.css": "leaflet.timedimension.control.css",
    }, "LICENSE"),
    "iso8601-js-period": ("0.2.1", {"iso8601.js": "iso8601.js"}, None),
    "jquery": ("3.7.1", {"dist/jquery.min.js": "jquery.min.js"}, "LICENSE.txt"),
    # /dashboard's charts: Vega-Lite specs from altair (maps/charts.py), rendered in the page.
    "vega": ("6.2.0", {"build/vega.min.js": "vega.min.js"}, "LICENSE"),
    "vega-lite": ("6.4.1", {"build/vega-lite.min.js": "vega-lite.min.js"}, "LICENSE"),
    "vega-embed": ("7.1.0", {"build/vega-embed.min.js": "vega-embed.min.js"}, "LICENSE"),
}

_GLYPHICONS_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*bootstrapcdn[^}]*\}\s*", re.S)
# Anything that makes a browser fetch: url(...) in CSS, and protocol-relative or absolute URLs in it.
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")


def _postprocess(pkg: str, name: str, data: bytes) -> bytes:
    if pkg == "leaflet-timedimension" and name.endswith(".css"):
        text, n = _GLYPHICONS_FONT_FACE.subn("", data.decode("utf-8"))
        if n != 1:
            raise SystemExit(f"{pkg}/{name}: expected one Glyphicons @font-face block, found {n}")
        data = text.encode("utf-8")
    if name.endswith(".css"):
        for url in _CSS_URL.findall(data.decode("utf-8")):
            if url.startswith(("//", "http:", "https:")):
                raise SystemExit(f"{pkg}/{name} still loads {url}; handle it in maps/vendor.py")
    return data


def refresh(dest: Path = VENDOR) -> None:
    """Download the pinned npm packages and rewrite `dest` with the files taken, their licences and versions."""
    npm = shutil.which("npm")
    if not npm:
        raise SystemExit("npm is needed to refresh the vendored assets (apt-get install npm)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        specs = [f"{p}@{v}" for p, (v, _, _) in PACKAGES.items()]
        out = subprocess.run([npm, "pack", "--json", *specs], cwd=tmp, check=True, capture_output=True, text=True)
        tarballs = {e["name"]: tmp / e["filename"] for e in json.loads(out.stdout)}
        if dest.exists():
            shutil.rmtree(dest)
        for pkg, (version, files, licence) in PACKAGES.items():
            with tarfile.open(tarballs[pkg]) as tf:
                def read(path: str) -> bytes:
                    return tf.extractfile(f"package/{path}").read()

                meta = json.loads(read("package.json"))
                if meta["version"] != version:
                    raise SystemExit(f"{pkg}: npm gave {meta['version']}, expected {version}")
                target = dest / pkg
                for src, name in files.items():
                    (target / name).parent.mkdir(parents=True, exist_ok=True)
                    (target / name).write_bytes(_postprocess(pkg, name, read(src)))
                if licence:
                    (target / "LICENSE").write_bytes(read(licence))
                else:
                    # The package declares its licence in package.json only.
                    if meta.get("license") != "Apache-2.0":
                        raise SystemExit(f"{pkg}: no licence file and license={meta.get('license')!r}; add its text")
                    text = Path("/usr/share/common-licenses/Apache-2.0").read_text()
                    (target / "LICENSE").write_text(
                        f"{pkg}@{version} ships no licence file; its package.json declares "
                        f"\"license\": \"{meta.get('license')}\". The text of that licence follows.\n\n{text}")
                (target / "VERSION").write_text(f"{pkg}@{version} (npm)\n")
            print(f"{pkg}@{version}: {', '.join(files.values())}", file=sys.stderr)


if __name__ == "__main__":
    refresh()
