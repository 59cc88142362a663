"""Duplicate keys inside one file are errors, detected across chunks in 12 bytes a row.

For every row read so far, a 64-bit hash of its key and its line number are kept in two sorted
numpy arrays (12 MB for a million rows), the only state of an import that grows with the file. A
hash collision (chance about n**2 / 2**65, 3e-8 for a million rows) would report a false duplicate,
never miss one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from techtouch.services.importing.csvfile import ParsedChunk


class SeenKeys:
    """Keys read so far: sorted 64-bit hashes and the line each came from (12 bytes a key)."""

    def __init__(self) -> None:
        self.hashes: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self.lines: npt.NDArray[np.uint32] = np.empty(0, dtype=np.uint32)

    def add(self, hashes: npt.NDArray[np.uint64], lines: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Record keys in file order; returns, per key, the line of its first occurrence or 0."""
        n = len(hashes)
        first = np.zeros(n, dtype=np.int64)
        if n == 0:
            return first
        order = np.argsort(hashes, kind="stable")
        sorted_hashes = hashes[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
        run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
        # Repeats within this chunk point at the first row of their run ...
        repeat = ~starts
        first[order[repeat]] = lines[order[run_start[repeat]]]
        # ... and every key seen in an earlier chunk at that earlier row.
        if len(self.hashes):
            at = np.minimum(np.searchsorted(self.hashes, sorted_hashes), len(self.hashes) - 1)
            earlier = self.hashes[at] == sorted_hashes
            first[order[earlier]] = self.lines[at[earlier]]
            new = starts & ~earlier
        else:
            new = starts
        # Merge the new keys in (both sides sorted): one O(n) copy per chunk.
        at_new = np.searchsorted(self.hashes, sorted_hashes[new])
        self.hashes = np.insert(self.hashes, at_new, sorted_hashes[new])
        self.lines = np.insert(self.lines, at_new, lines[order[new]].astype(np.uint32))
        return first


def check_duplicates(
    parsed: ParsedChunk, seen: SeenKeys, keys: Sequence[str], column: str, what: str
) -> None:
    """Rows whose key (all of `keys`) appeared on an earlier line become problems in `column`."""
    rows_ok = parsed.keep.copy()
    for key in keys:
        rows_ok &= parsed.ok[key]
    rows = np.flatnonzero(rows_ok)
    frame = pd.DataFrame({key: parsed.values[key][rows] for key in keys})
    hashes = np.asarray(pd.util.hash_pandas_object(frame, index=False), dtype=np.uint64)
    first = seen.add(hashes, parsed.lines[rows])
    position = parsed.column_position(column)
    for row, line in zip(rows[first > 0], first[first > 0], strict=True):
        parsed.problems.append((int(parsed.lines[row]), position, column, f"duplicate of row {line}{what}"))
