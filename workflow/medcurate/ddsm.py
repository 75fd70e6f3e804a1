"""The original DDSM's (USF) text files, for a later LJPEG decoder: no catalogue entry uses this
yet, because no maintained decoder was shown to read DDSM's lossless JPEG (docs/task-kinds.md).
Facts: ../shared/docs/DATASETS.md section 20 (Heath's DDSM README and ICSio.c, ddsmraw2pnm.c,
pyddsm, get_ddsm_groundtruth.m).

- ``<L>-<NNNN>-1.ics``: space-separated header lines (``DIGITIZER LUMISYS LASER``, ``DENSITY 3``,
  ...) and one line per view: ``LEFT_CC LINES <rows> PIXELS_PER_LINE <cols> BITS_PER_PIXEL <b>
  RESOLUTION <microns> OVERLAY|NON_OVERLAY``.
- ``<L>_<NNNN>_1.<VIEW>.OVERLAY``: per abnormality its LESION_TYPE, ASSESSMENT, SUBTLETY,
  PATHOLOGY and TOTAL_OUTLINES outlines, each a keyword line (BOUNDARY, then CORE for the others)
  followed by a chain code ``<start col> <start row> d1 d2 ... #``; a digit moves one pixel:
  0 up, 1 up-right, 2 right, 3 down-right, 4 down, 5 down-left, 6 left, 7 up-left.
- Optical density from the raw grey level, per digitizer (the DDSM calibration pages as coded in
  ddsmraw2pnm, with its clamps); HOWTEK is told apart by the case letter (A = MGH, D = ISMD).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .formats import shapes
from .errors import CaseError

VIEWS = ("LEFT_CC", "LEFT_MLO", "RIGHT_CC", "RIGHT_MLO")
# chain digit -> (column step, row step), rows growing downwards
STEPS = {0: (0, -1), 1: (1, -1), 2: (1, 0), 3: (1, 1), 4: (0, 1), 5: (-1, 1), 6: (-1, 0), 7: (-1, -1)}
CASE = re.compile(r"^([A-D])[-_](\d{4})[-_]1$")
MAX_CHAIN = 1_000_000  # steps; a real outline of a 40-MB mammogram is far shorter


@dataclass
class View:
    rows: int
    cols: int
    bits: int
    microns: float
    overlay: bool


@dataclass
class Ics:
    filename: str
    digitizer: str
    fields: dict[str, str]
    views: dict[str, View]


@dataclass
class Outline:
    kind: str  # BOUNDARY or CORE
    xs: np.ndarray
    ys: np.ndarray


@dataclass
class Abnormality:
    number: int
    fields: dict[str, str]
    outlines: list[Outline] = field(default_factory=list)


def _text(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("ascii")
    except UnicodeDecodeError as exc:
        raise CaseError(path, f"not ASCII text ({exc})") from None
    except OSError as exc:
        raise CaseError(path, f"cannot read ({exc.strerror})") from None


def _int(path: Path, where: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CaseError(path, f"{where}: expected a whole number, got {value[:30]!r}") from None


def parse_ics(path: Path) -> Ics:
    fields, views = {}, {}
    for n, line in enumerate(_text(path).splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if words[0] in VIEWS:
            if len(words) < 10 or words[1:8:2] != ["LINES", "PIXELS_PER_LINE", "BITS_PER_PIXEL", "RESOLUTION"]:
                raise CaseError(path, f"line {n}: view line is not '<VIEW> LINES r PIXELS_PER_LINE c BITS_PER_PIXEL b "
                                      f"RESOLUTION um OVERLAY|NON_OVERLAY': {line.strip()[:120]!r}")
            rows, cols, bits = (_int(path, f"line {n}", words[i]) for i in (2, 4, 6))
            try:
                microns = float(words[8])
            except ValueError:
                raise CaseError(path, f"line {n}: RESOLUTION {words[8][:20]!r} is not a number") from None
            if words[9] not in ("OVERLAY", "NON_OVERLAY") or min(rows, cols) < 1 or bits not in (12, 16):
                raise CaseError(path, f"line {n}: view {words[0]} has {rows}x{cols} px, {bits} bits, {words[9]!r}")
            views[words[0]] = View(rows, cols, bits, microns, words[9] == "OVERLAY")
        else:
            fields[words[0]] = " ".join(words[1:])
    for key in ("filename", "DIGITIZER"):
        if key not in fields:
            raise CaseError(path, f"no '{key}' line: not a DDSM .ics header")
    if not views:
        raise CaseError(path, "no view line (LEFT_CC, LEFT_MLO, RIGHT_CC, RIGHT_MLO)")
    return Ics(fields["filename"], fields["DIGITIZER"], fields, views)


def image_stem(ics: Ics, view: str) -> str:
    """The .ics names the case with hyphens (A-1509-1); its images and overlays use underscores."""
    return f"{ics.filename.replace('-', '_')}.{view}"


def calibration(ics: Ics) -> str:
    """DBA, HOWTEK_MGH, HOWTEK_ISMD or LUMISYS, from the digitizer and the case letter."""
    m = CASE.match(ics.filename)
    brand = ics.digitizer.split()[0].upper() if ics.digitizer else ""
    if brand == "DBA":
        return "DBA"
    if brand == "LUMISYS":
        return "LUMISYS"
    if brand == "HOWTEK" and m and m.group(1) in "AD":
        return "HOWTEK_MGH" if m.group(1) == "A" else "HOWTEK_ISMD"
    raise CaseError(ics.filename, f"no optical density calibration known for digitizer {ics.digitizer!r} "
                                  f"(case {ics.filename})")


def optical_density(grey: np.ndarray, scanner: str) -> np.ndarray:
    """Raw grey levels -> optical density (float32), per DDSM's calibration for that digitizer,
    grey levels clamped to the calibrated range first (as ddsmraw2pnm does)."""
    gl = np.asarray(grey, np.float64)
    if scanner == "DBA":
        od = (np.log10(np.clip(gl, 4, 64064)) - 4.80662) / -1.07553
    elif scanner == "HOWTEK_MGH":
        od = 3.789 - 0.00094568 * np.minimum(gl, 4006)
    elif scanner == "HOWTEK_ISMD":
        od = 3.96604096240593 - 0.00099055807612 * np.minimum(gl, 4003)
    elif scanner == "LUMISYS":
        od = (np.clip(gl, 61, 4097) - 4096.99) / -1009.01
    else:
        raise ValueError(f"unknown DDSM scanner {scanner!r}")
    return od.astype(np.float32)


def parse_overlay(path: Path) -> list[Abnormality]:
    lines = [(n, line.split()) for n, line in enumerate(_text(path).splitlines(), start=1) if line.split()]
    out: list[Abnormality] = []
    i = 0
    while i < len(lines):
        n, words = lines[i]
        key = words[0]
        if key == "ABNORMALITY":
            out.append(Abnormality(_int(path, f"line {n}", words[1] if len(words) > 1 else ""), {}))
        elif key in ("BOUNDARY", "CORE"):
            if not out:
                raise CaseError(path, f"line {n}: {key} before any ABNORMALITY")
            if i + 1 >= len(lines):
                raise CaseError(path, f"line {n}: {key} without its chain code")
            xs, ys = chain(path, *lines[i + 1])
            out[-1].outlines.append(Outline(key, xs, ys))
            i += 1
        elif out:
            out[-1].fields[key] = " ".join(words[1:])
        i += 1
    for ab in out:
        declared = ab.fields.get("TOTAL_OUTLINES")
        if declared is not None and declared.isdigit() and int(declared) != len(ab.outlines):
            raise CaseError(path, f"abnormality {ab.number}: TOTAL_OUTLINES {declared} but {len(ab.outlines)} outlines")
    return out


def chain(path: Path, n: int, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """'<col> <row> d1 d2 ... #' -> the outline's pixel centres (start included)."""
    if len(words) < 3 or words[-1] != "#":
        raise CaseError(path, f"line {n}: a chain code is '<start col> <start row> digits... #', got {' '.join(words)[:80]!r}")
    col, row = _int(path, f"line {n}", words[0]), _int(path, f"line {n}", words[1])
    digits = words[2:-1]
    if len(digits) > MAX_CHAIN:
        raise CaseError(path, f"line {n}: {len(digits)} chain steps, more than any outline ({MAX_CHAIN})")
    if any(d not in ("0", "1", "2", "3", "4", "5", "6", "7") for d in digits):
        bad = next(d for d in digits if d not in "01234567" or len(d) != 1)
        raise CaseError(path, f"line {n}: chain step {bad[:10]!r} is not a direction 0-7")
    steps = np.array([STEPS[int(d)] for d in digits], np.int64).reshape(-1, 2)
    xs = np.concatenate([[col], col + np.cumsum(steps[:, 0])])
    ys = np.concatenate([[row], row + np.cumsum(steps[:, 1])])
    return xs.astype(float), ys.astype(float)


def outline_mask(outline: Outline, shape: tuple[int, int], source: Path) -> np.ndarray:
    """The closed outline filled by the one rasteriser (shapes.polygon); steps off the image by a
    pixel are clipped there."""
    try:
        mask, _ = shapes.polygon(outline.xs, outline.ys, shape)
    except shapes.CoordinateError as exc:
        raise CaseError(source, f"{outline.kind} outline: {exc.reason}") from None
    return mask
