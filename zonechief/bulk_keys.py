"""Idempotency keys of an import that is read a window at a time.

The rule is that of a single POST: a row whose key is stored already is skipped (counted as
already present); of the rows that share a key not stored yet, the first is imported and each
later one is rejected ("repeats row N"). Which rows take part is only known once each row is
checked (a row that cannot be parsed does not), window by window, so it is settled in two steps:

  KeyBook.scan    a first pass over the keys alone. It asks the database which of them are
                  stored (before the write takes any lock) and notes the positions of those
                  rows, and it hashes every key, keeping the hashes that occur more than once.
  KeyBook.settle  per window of checked rows, in file order: rows noted as stored are dropped;
                  a row whose key's hash occurs more than once is looked up by the key's text
                  among the earlier rows with such keys.

So what is held is the positions of stored rows and the texts of repeated keys, not every key
of the file. A hash that two different keys share only means remembering both texts. The hashes
themselves go to a temporary file during the scan and are sorted a part at a time (by hash
modulo the number of parts), so the scan too holds a bounded number of them.
"""
from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

KEY = "idempotency_key"
PART = 1_000_000  # hashes sorted at a time when finding the repeated ones (8 MB)


@njit(cache=True, nogil=True)
def _fnv1a(offsets, data, out):
    for i in range(len(out)):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(0x100000001B3)
        out[i] = h


def key_hashes(keys: pa.Array) -> np.ndarray:
    """64-bit FNV-1a of each key's UTF-8 bytes (`keys`: strings without nulls)."""
    a = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    wide = pa.types.is_large_string(a.type)
    _, off, data = a.buffers()
    offsets = np.frombuffer(off, np.int64 if wide else np.int32, count=len(a) + 1, offset=a.offset * (8 if wide else 4))
    out = np.empty(len(a), np.uint64)
    _fnv1a(offsets, np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8), out)
    return out


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if not len(sorted_set) or not len(values):
        return np.zeros(len(values), bool)
    i = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[i] == values


def _repeated(spill, n: int) -> np.ndarray:
    """The sorted distinct hashes that occur more than once among the `n` in the file `spill`."""
    parts = -(-n // PART)
    out = []
    for p in range(parts):  # one part's hashes in memory at a time: those equal to p modulo parts
        spill.seek(0)
        mine = []
        for _ in range(0, n, PART):
            h = np.fromfile(spill, np.uint64, count=PART)
            mine.append(h[h % np.uint64(parts) == p] if parts > 1 else h)
        h = mine[0] if len(mine) == 1 else np.concatenate(mine)
        del mine
        h.sort()
        out.append(np.unique(h[1:][h[1:] == h[:-1]]))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.uint64)


def _stored_at(stored_keys: Callable[[pa.Array], pa.Array], keys: pa.Array, pos: np.ndarray) -> np.ndarray:
    found = stored_keys(pc.unique(keys))
    # a copy either way: a view of `pos` would keep the whole window's positions alive
    return pos[pc.is_in(keys, found).to_numpy(zero_copy_only=False)] if len(found) else np.zeros(0, np.int64)


@dataclass
class KeyBook:
    """What the first pass found out about an import's keys, and the repeated keys seen so far."""

    rows: int  # rows scanned
    stored: np.ndarray  # sorted 0-based positions of the rows whose key is stored already
    repeated: np.ndarray  # sorted hashes of the keys that more than one row holds
    first: dict[str, int] = field(default_factory=dict)  # such a key -> the row that took it (1-based)

    @classmethod
    def scan(cls, windows: Iterable[tuple[int, pa.Array]], stored_keys: Callable[[pa.Array], pa.Array]) -> "KeyBook":
        """The first pass over (0-based position of the window's first row, its cleaned keys; null: none).

        `stored_keys(distinct keys)` answers which are stored; it runs in a thread, one
        window's lookup while the next window is read.
        """
        stored: list[np.ndarray] = []
        rows = n = 0
        with ThreadPoolExecutor(1) as pool, tempfile.TemporaryFile() as spill:
            asked = []
            for start, keys in windows:
                rows = start + len(keys)
                has = keys.is_valid().to_numpy(zero_copy_only=False)
                if not has.any():
                    continue
                pos = np.flatnonzero(has) + start
                keys = keys.filter(pa.array(has)) if not has.all() else keys
                key_hashes(keys).tofile(spill)
                n += len(keys)
                asked.append(pool.submit(_stored_at, stored_keys, keys, pos))
                if len(asked) > 1:
                    stored.append(asked.pop(0).result())
            stored += [f.result() for f in asked]
            repeated = _repeated(spill, n)
        return cls(rows, np.concatenate(stored) if stored else np.zeros(0, np.int64), repeated)

    def settle(self, pos: np.ndarray, rows: np.ndarray, keys: pa.Array) -> tuple[np.ndarray, np.ndarray,
                                                                                 list[tuple[int, str]]]:
        """For checked rows in file order (positions as scanned, 1-based rows, their keys or null):
        (stored already, repeats an earlier row, the repeats' rejects[(row, reason)])."""
        has = keys.is_valid().to_numpy(zero_copy_only=False)
        present = has & _member(pos, self.stored)
        repeat = np.zeros(len(pos), bool)
        rejects = []
        rest = np.flatnonzero(has & ~present)
        if len(self.repeated) and len(rest):
            maybe = rest[_member(key_hashes(keys.take(pa.array(rest))), self.repeated)]
            for i, key in zip(maybe.tolist(), keys.take(pa.array(maybe, pa.int64())).to_pylist()):
                row = int(rows[i])
                first = self.first.get(key)
                if first is None:
                    self.first[key] = row
                else:
                    repeat[i] = True
                    rejects.append((row, f"idempotency_key {key!r} repeats row {first}"))
        return present, repeat, rejects
