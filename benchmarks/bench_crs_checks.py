"""The CRS work of one GET /v1/lookup before and after the usable-CRS rule (issue 18), side by side.

    .venv/bin/python benchmarks/bench_crs_checks.py [--baseline ce1ef24] [--number 20000] [--repeats 7]

GET /v1/lookup normalizes a CRS three times (crs, out_crs, and inside ZoneIndex.lookup); it now
also asks gis.points.check_placed whether a projected point is evidently degrees. The baseline's
gis/crs.py is read from git (`git show REV:gis/crs.py`, nothing in the checkout changes) into a
module of its own; both versions run in this process, alternately, and the medians and their
ratio are printed, next to a whole ZoneIndex.lookup for scale. Then what a first (uncached)
verdict costs for a few inputs, and a repeated refusal.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis import crs as new  # noqa: E402
from gis.crs import UnknownCRSError  # noqa: E402
from gis.lookup import ZoneIndex  # noqa: E402
from gis.points import check_placed  # noqa: E402


def baseline_module(rev: str):
    """gis/crs.py as of `rev`, imported as its own module."""
    text = subprocess.run(["git", "show", f"{rev}:gis/crs.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "crs_baseline.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("crs_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="ce1ef24", help="git revision before the change (default: the main it was based on)")
    ap.add_argument("--number", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    old = baseline_module(a.baseline)
    index = ZoneIndex.load()
    print(f"baseline gis/crs.py from {a.baseline}; {a.repeats} alternating repeats of {a.number} calls; medians in µs per request\n")
    print(f"{'input crs':<12} {'before':>8} {'after':>8} {'after/before':>13} {'ZoneIndex.lookup':>17}")
    # the same point, inside a zone: 114.05, 23.06 and its metres in EPSG:4547
    for crs, (x, y) in (("wgs84", (114.05, 23.06)), ("EPSG:4547", (505123.9, 2551183.1))):
        def before(crs=crs):
            old.normalize_crs(crs), old.normalize_crs(crs), old.normalize_crs(crs)

        lon, lat = (float(v) for v in new.to_wgs84(x, y, crs))

        def after(crs=crs, x=x, y=y, lon=lon, lat=lat):
            new.normalize_crs(crs), new.normalize_crs(crs), new.normalize_crs(crs)
            check_placed(index, x, y, crs, lon, lat)  # with the point the lookup answered, as api/lookup.py does

        before(), after()  # caches filled, as in a running server
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(a.repeats):
            for name, f in (("before", before), ("after", after)):
                runs[name].append(timeit.timeit(f, number=a.number) / a.number * 1e6)
        b, f = statistics.median(runs["before"]), statistics.median(runs["after"])
        whole = statistics.median(timeit.repeat(lambda x=x, y=y, crs=crs: index.lookup(x, y, crs=crs),
                                                number=a.number // 10, repeat=a.repeats)) / (a.number // 10) * 1e6
        print(f"{crs:<12} {b:8.2f} {f:8.2f} {f / b:12.2f}× {whole:17.2f}")
    print("\nfirst verdict (uncached) and a repeated refusal, ms:")
    for text in ("EPSG:32650", "+proj=tmerc +lon_0=114 +k=1 +x_0=500000 +ellps=GRS80", "IAU_2015:30100",
                 "+proj=tmerc +lon_0=114 +k=1e300 +ellps=GRS80", "x" * 20_000):
        times = []
        for _ in range(2):
            t = time.perf_counter()
            try:
                new.normalize_crs(text)
                verdict = "usable"
            except UnknownCRSError as exc:
                verdict = "refused: " + (exc.reason or "unparseable")[:40]
            times.append((time.perf_counter() - t) * 1e3)
        print(f"  {text[:48]!r:<52} first {times[0]:8.2f}  again {times[1]:7.4f}  {verdict}")


if __name__ == "__main__":
    main()
