"""Report files read a window of rows at a time, and the rejects file written as rejects are found.

An import holds one window of the file, never the whole of it. CSV is streamed with Arrow
(pyarrow.csv.open_csv): every column as text, no cell taken for null, so each cell is exactly
as written; a UTF-8 byte-order mark is skipped; the header's names are pandas' own (empty →
"Unnamed: i", repeated → "name.1"). That is what `pd.read_csv(engine="pyarrow", dtype=str,
keep_default_na=False, encoding="utf-8-sig")` gave when imports read whole files. A CSV that
Arrow cannot parse (say, rows with fewer fields than the header) is read by pandas' own parser
instead, a chunk at a time, as `pd.read_csv` with those options reads it. GeoParquet, GeoJSON
and GDAL's other formats are read whole (geopandas, pyogrio) and then cut into windows.
"""
from __future__ import annotations

import os
from itertools import chain, repeat
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

CSV_OPTIONS = dict(dtype=str, keep_default_na=False, encoding="utf-8-sig")  # pandas' reading, for the fallback
BLOCK = 1 << 18  # bytes Arrow parses at a time (its pools keep some dozens of blocks: small ones)

Window = tuple[int, "pd.DataFrame | pa.Table", "np.ndarray | None", "np.ndarray | None"]


class ArrowUnreadable(Exception):
    """Arrow failed on a CSV after some of its windows were handed out: read it again with pandas."""


class ReportFile:
    """A CSV / GeoJSON / GeoParquet of reports, read in windows of rows, each time from the start."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.csv = self.path.suffix.lower() in (".csv", ".txt")
        self.file_crs: str | None = None  # a CSV has none: its lon/lat name theirs per row, or the import's
        self.engine = "arrow" if self.csv else "whole"
        if self.csv:
            self.names = [str(c) for c in pd.read_csv(self.path, nrows=0, **CSV_OPTIONS).columns]
        else:
            self._whole = _read_geo(self.path)
            self.file_crs = self._whole[3]

    def use_pandas(self) -> None:
        """Read the CSV with pandas' parser from now on (Arrow could not)."""
        self.engine = "pandas"

    def windows(self, sizes: Iterator[int], arrow: bool = False) -> Iterator[Window]:
        """(0-based position of the window's first row, its attribute table, point x, y or None) per window.

        Each window has as many rows as the next number from `sizes` (the last: what is left).
        x, y come from a geometry column (None for CSV). `arrow`: a CSV that Arrow reads comes as
        pyarrow Tables rather than DataFrames. A CSV that Arrow cannot parse falls back to
        pandas' parser if nothing was handed out yet; otherwise ArrowUnreadable.
        """
        sizes = iter(sizes)
        first = next(sizes)
        if self.engine == "whole":
            yield from self._whole_windows(chain([first], sizes))
        elif self.engine == "pandas":
            yield from self._pandas_windows(chain([first], sizes))
        else:
            started = False
            try:
                for w in self._arrow_windows(chain([first], sizes), arrow):
                    started = True
                    yield w
            except pa.ArrowException as exc:
                if started:
                    raise ArrowUnreadable(str(exc)) from exc
                self.use_pandas()  # nothing handed out yet, and only the first size taken
                yield from self._pandas_windows(chain([first], sizes))

    def _whole_windows(self, sizes: Iterator[int]) -> Iterator[Window]:
        table, xs, ys, _ = self._whole
        start = 0
        while True:
            end = min(start + next(sizes), len(table))
            yield (start, table.iloc[start:end].reset_index(drop=True),
                   None if xs is None else xs[start:end], None if ys is None else ys[start:end])
            if end == len(table):
                return
            start = end

    def _arrow_windows(self, sizes: Iterator[int], arrow: bool) -> Iterator[Window]:
        read = pacsv.ReadOptions(column_names=self.names, skip_rows=1, block_size=BLOCK)
        convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in self.names}, null_values=[],
                                       strings_can_be_null=False, quoted_strings_can_be_null=False)
        start = 0
        # A Python file, not the path: given a path, Arrow reads the whole file ahead into memory.
        with open(self.path, "rb") as fh, pacsv.open_csv(fh, read_options=read, convert_options=convert) as reader:
            for t in _cut(reader, sizes):
                yield start, t if arrow else t.to_pandas(), None, None
                start += t.num_rows

    def _pandas_windows(self, sizes: Iterator[int]) -> Iterator[Window]:
        start = 0
        with pd.read_csv(self.path, iterator=True, **CSV_OPTIONS) as reader:
            for size in sizes:
                try:
                    df = reader.get_chunk(size)
                except StopIteration:
                    if start == 0:  # a header alone: one empty window, as Arrow gives
                        yield 0, pd.read_csv(self.path, nrows=0, **CSV_OPTIONS), None, None
                    return
                yield start, df.reset_index(drop=True), None, None
                start += len(df)


def _cut(reader, sizes: Iterator[int]) -> Iterator[pa.Table]:
    """Arrow's record batches regrouped into tables of the sizes asked for; at least one table."""
    buf: list[pa.RecordBatch] = []
    have, want, given = 0, next(sizes), False
    for b in reader:
        buf.append(b)
        have += b.num_rows
        while have >= want and have:
            t = pa.Table.from_batches(buf)
            yield t.slice(0, want)
            given = True
            rest = t.slice(want)
            buf, have, want = rest.to_batches(), rest.num_rows, next(sizes)
    if have or not given:
        yield pa.Table.from_batches(buf, schema=reader.schema) if buf else reader.schema.empty_table()


def _read_geo(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str | None]:
    import geopandas as gpd

    ext = path.suffix.lower()
    table = gpd.read_parquet(path) if ext in (".parquet", ".geoparquet") else gpd.read_file(path, engine="pyogrio")
    geom = table.geometry
    ok = geom.notna() & ~geom.is_empty & (geom.geom_type == "Point")
    xs = np.where(ok, geom.x.where(ok), np.nan)
    ys = np.where(ok, geom.y.where(ok), np.nan)
    file_crs = table.crs.to_string() if table.crs is not None else None
    return pd.DataFrame(table.drop(columns=table.geometry.name)), xs, ys, file_crs


def read_table(path: str | Path) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray | None, str | None]:
    """A whole report file as (attribute table, point x, point y, the file's CRS); x, y are None for CSV."""
    f = ReportFile(path)
    _, table, xs, ys = next(f.windows(repeat(1 << 62)))
    return table, xs, ys, f.file_crs


class RejectsFile:
    """The rejects CSV (row, reason, then the row's cells as read), written window by window.

    It is written beside its final name and put in place only when the import commits; an
    import without rejects leaves no file (and an older file of that name alone).
    """

    def __init__(self, path: Path):
        self.path = path
        self._part = path.with_name(path.name + ".part")
        self._fh: TextIO | None = None
        self.count = 0

    def add(self, table: pd.DataFrame, start: int, rejects: list[tuple[int, str]]) -> None:
        """Rejects [(1-based row, reason)] in row order, of the window `table` whose first row is at `start`."""
        if not rejects:
            return
        out = table.iloc[[r - 1 - start for r, _ in rejects]].copy()
        out.insert(0, "reason", [reason for _, reason in rejects])
        out.insert(0, "row", [r for r, _ in rejects])
        if self._fh is None:
            self._fh = open(self._part, "w", newline="", encoding="utf-8")
        out.to_csv(self._fh, index=False, header=self.count == 0)
        self.count += len(rejects)

    def __enter__(self) -> "RejectsFile":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if self._fh is not None:
            self._fh.close()
            if exc_type is None:
                os.replace(self._part, self.path)
            else:
                self._part.unlink(missing_ok=True)
