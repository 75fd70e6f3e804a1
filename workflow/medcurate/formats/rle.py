"""Run-length encoded binary masks in the Kaggle convention.

A mask is a string of space-separated "start length" pairs. Pixels are numbered from 1, top to
bottom then left to right: pixel 1 is (row 0, column 0), pixel 2 is (row 1, column 0), i.e. the
mask flattened in column-major (Fortran) order. Runs are sorted and do not overlap; the empty
string is the empty mask. ``encode`` writes the canonical form (maximal runs, single spaces), so
``encode(decode(s)) == s`` for every canonical ``s``.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import CaseError, MedcurateError

INTEGER = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() would also take '1_000' and other scripts' digits


def decode(text: str, shape: tuple[int, int], source, error: type[MedcurateError] = CaseError) -> np.ndarray:
    """The uint8 0/1 mask of ``shape`` (rows, columns) that ``text`` encodes. Malformed text raises
    ``error`` (default CaseError: one bad row spoils one mask) naming ``source`` and the reason."""
    rows, cols = (int(v) for v in shape[:2])
    tokens = text.split()
    if len(tokens) % 2:
        raise error(source, f"run-length encoding has an odd number of values ({len(tokens)}): it must be 'start length' pairs")
    if bad := next((t for t in tokens if not INTEGER.fullmatch(t)), None):
        raise error(source, f"run-length encoding holds a non-integer value {bad[:20]!r}")
    if bad := next((t for t in tokens if len(t.lstrip("+-0")) > 15), None):
        raise error(source, f"run-length encoding holds a value too large for any image ({bad[:20]}...)")
    values = np.array([int(t) for t in tokens], dtype=np.int64)
    starts, lengths = values[0::2], values[1::2]
    _check_runs(starts, lengths, (rows, cols), source, error)
    flat = np.zeros(rows * cols, np.int8)
    # +1 at each run's first pixel, -1 after its last: the running sum marks the runs.
    np.add.at(flat, starts - 1, 1)
    ends = starts - 1 + lengths
    np.add.at(flat, ends[ends < flat.size], -1)
    return np.cumsum(flat, dtype=np.int8).astype(np.uint8).reshape((rows, cols), order="F")


def _check_runs(starts: np.ndarray, lengths: np.ndarray, shape: tuple[int, int], source, error) -> None:
    size = shape[0] * shape[1]

    def first(bad: np.ndarray) -> int:
        return int(np.flatnonzero(bad)[0])

    if (bad := starts < 1).any():
        i = first(bad)
        raise error(source, f"run {i + 1}: start {starts[i]} < 1 (pixels are numbered from 1)")
    if (bad := lengths < 1).any():
        i = first(bad)
        raise error(source, f"run {i + 1}: length {lengths[i]} < 1")
    if (bad := starts - 1 + lengths > size).any():
        i = first(bad)
        raise error(source, f"run {i + 1}: pixels {starts[i]}..{starts[i] + lengths[i] - 1} lie beyond the {shape[1]}x{shape[0]} image ({size} pixels)")
    if (bad := starts[1:] < starts[:-1] + lengths[:-1]).any():
        i = first(bad) + 1
        kind = "overlaps" if starts[i] >= starts[i - 1] else "comes before"
        raise error(source, f"run {i + 1} (start {starts[i]}) {kind} run {i} (pixels {starts[i - 1]}..{starts[i - 1] + lengths[i - 1] - 1}): runs must be sorted and disjoint")


def encode(mask: np.ndarray) -> str:
    """The canonical run-length string of a 2-D mask (any non-zero pixel is foreground)."""
    flat = np.asarray(mask).reshape(-1, order="F") != 0
    edges = np.flatnonzero(np.diff(np.concatenate(([False], flat, [False])).astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts.tolist(), stops.tolist()))
