"""Kaggle "Ultrasound Nerve Segmentation" (2016; brachial plexus in neck ultrasound) quirks.

- Gated: a Kaggle login and the competition's rules; the user places what
  ``kaggle competitions download -c ultrasound-nerve-segmentation`` gives (train.zip and
  train_masks.csv, or the combined zip holding them; archives inside archives are unpacked).
- Layout: train/<subject>_<img>.tif and train/<subject>_<img>_mask.tif (580x420 8-bit grey;
  masks 0/255). test/<img>.tif has neither labels nor subject ids: it is not converted.
- train_masks.csv (header subject,img,pixels: from third-party code, UNCONFIRMED by a real
  file): one row per train image, ``pixels`` the Kaggle run-length encoding (formats/rle.py: 1-indexed,
  column-major; the orientation comes from third-party submission code, UNCONFIRMED by a real
  file), empty where the nerve is not in the image.
- The mask is the CSV's run-length encoding (the ground truth the competition scored), checked
  pixel by pixel against the _mask.tif (any non-zero pixel is nerve). They are meant to be one
  annotation, so a disagreement means one copy is damaged and nobody can tell which: the case is
  quarantined naming both files (so is a case whose _mask.tif is missing: it cannot be checked).
- Many masks are empty (the nerve not visible): valid negatives, kept.
- Patient = subject (every image of a subject is one person); the labelled set has no official
  split, so test and validation are drawn by subject hash.
- The acquisition produced identical and near-identical frames whose masks contradict each other
  (known label noise): exact copies are resolved by pixel hash, near ones flagged by the generic
  near-duplicate check (neardup.py, catalogue curation.near_duplicates).
- A row, image or mask that cannot be matched, a malformed row, a row repeated with other pixels
  and a train/ TIF not named <subject>_<img>[_mask].tif are quarantined with the file and reason.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...formats import rle
from ...errors import CaseError, MedcurateError
from ...images import read_image
from .. import Case, files, find_one, read_text, slug

TABLE = "train_masks.csv"
COLUMNS = ["subject", "img", "pixels"]
NAME = re.compile(r"(\d+)_(\d+)(_mask)?\.tif")
NUMBER = re.compile(r"[0-9]+")


@dataclass
class Row:
    line: int
    subject: int
    img: int
    pixels: str


@dataclass
class NerveCase(Case):
    rle: str = ""
    rle_line: int = 0
    mask_tif: Path | None = None


def parse_masks(text: str, source) -> list[Row | CaseError]:
    """Rows of train_masks.csv, in file order; a malformed row is returned as a CaseError naming
    its line. An unreadable file or a missing column is a MedcurateError."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise MedcurateError(source, "empty file") from None
    except csv.Error as exc:
        raise MedcurateError(source, f"line 1: unreadable header ({exc})") from None
    if missing := [c for c in COLUMNS if c not in header]:
        raise MedcurateError(source, f"missing column(s) {missing}; found {header} (expected {','.join(COLUMNS)})")
    rows: list[Row | CaseError] = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise MedcurateError(source, f"line {reader.line_num}: unreadable CSV ({exc})") from None
        if any(c.strip() for c in cells):
            rows.append(_row(header, cells, source, reader.line_num))


def _row(header: list[str], cells: list[str], source, line: int) -> Row | CaseError:
    def bad(reason: str) -> CaseError:
        err = CaseError(source, f"line {line}: {reason}")
        err.line = line
        return err

    if len(cells) != len(header):
        return bad(f"{len(cells)} fields, the header has {len(header)}")
    row = {h: c.strip() for h, c in zip(header, cells)}
    for col in ("subject", "img"):
        if not NUMBER.fullmatch(row[col]) or len(row[col]) > 9:
            return bad(f"{col} must be a whole number, got {row[col][:40]!r}")
    return Row(line, int(row["subject"]), int(row["img"]), row["pixels"])


# ---------------------------------------------------------------- cases


def cases(root: Path, plan: dict) -> list[Case]:
    table = find_one(root, TABLE)
    text = read_text(table)
    rows, out = _rows_by_image(parse_masks(text, table), table)
    images, masks, strays = _train_files(root)
    out += [NerveCase(case_id=f"stray_{slug(p.stem)}", patient_id="", image=p,
                      problem=CaseError(p, "not named <subject>_<img>.tif or <subject>_<img>_mask.tif")) for p in strays]
    for key in sorted(rows.keys() | images.keys() | masks.keys()):
        out.append(_case(root, table, key, rows.get(key), images.get(key), masks.get(key)))
    return out


def _rows_by_image(parsed: list[Row | CaseError], table: Path) -> tuple[dict, list[Case]]:
    """One row per (subject, img). A row too broken to name its image becomes a quarantined
    case of its own; a repeated row is harmless when equal, else it spoils that image's case."""
    rows: dict[tuple[int, int], Row | CaseError] = {}
    broken = []
    for row in parsed:
        if isinstance(row, CaseError):
            broken.append(NerveCase(case_id=f"train_masks_line_{row.line}", patient_id="", image=None, mask=table, problem=row))
            continue
        key = (row.subject, row.img)
        first = rows.get(key)
        if first is None:
            rows[key] = row
        elif isinstance(first, Row) and first.pixels != row.pixels:
            rows[key] = CaseError(table, f"lines {first.line} and {row.line} give subject {row.subject} img {row.img} different masks")
    return rows, broken


def _train_files(root: Path) -> tuple[dict, dict, list[Path]]:
    images: dict[tuple[int, int], Path] = {}
    masks: dict[tuple[int, int], Path] = {}
    strays = []
    for path in files(root, "*.tif"):
        if path.parent.name != "train":  # test/<img>.tif: no labels, no subject
            continue
        m = NAME.fullmatch(path.name)
        if not m:
            strays.append(path)
            continue
        found = masks if m.group(3) else images
        key = (int(m.group(1)), int(m.group(2)))
        if key in found:
            raise MedcurateError(root, f"{path.name} found twice ({found[key]}, {path}): was the release placed twice? keep one copy")
        found[key] = path
    return images, masks, strays


def _case(root: Path, table: Path, key: tuple[int, int], row, image: Path | None, mask_tif: Path | None) -> NerveCase:
    subject, img = key
    case = NerveCase(case_id=f"{subject}_{img}", patient_id=str(subject), image=image, mask=table, mask_tif=mask_tif)
    if isinstance(row, Row):
        case.rle, case.rle_line = row.pixels, row.line
        case.meta = {"rle_line": row.line, "mask_tif": mask_tif.relative_to(root).as_posix() if mask_tif else ""}
    if isinstance(row, CaseError):
        case.problem = row
    elif image is None:
        where = f"line {row.line} of {TABLE}" if row else f"{mask_tif.name}"
        case.problem = CaseError(mask_tif or table, f"no train/{subject}_{img}.tif for {where}")
    elif row is None:
        case.problem = CaseError(image, f"no row for subject {subject} img {img} in {table.name}")
    elif mask_tif is None:
        case.problem = CaseError(image, f"no {subject}_{img}_mask.tif beside it to cross-check line {row.line} of {table.name}")
    return case


# ---------------------------------------------------------------- mask


def load_mask(case: NerveCase, plan: dict) -> tuple[np.ndarray, list[str]]:
    shape = case.shape[:2]
    try:
        mask = rle.decode(case.rle, shape, case.mask)
    except CaseError as exc:
        raise CaseError(case.mask, f"line {case.rle_line}: {exc.reason}") from None
    tif = read_image(case.mask_tif)
    if tif.shape[:2] != mask.shape:
        raise CaseError(case.mask_tif, f"is {tif.shape[1]}x{tif.shape[0]} but its image is {shape[1]}x{shape[0]}")
    drawn = tif.any(axis=2) if tif.ndim == 3 else tif > 0
    if differ := int((drawn != mask.astype(bool)).sum()):
        raise CaseError(case.mask, f"line {case.rle_line}: the run-length mask ({int(mask.sum())} px) and "
                                   f"{case.meta['mask_tif']} ({int(drawn.sum())} px) disagree on {differ} pixels; "
                                   "cannot tell which copy is right")
    return mask * np.uint8(plan["labels"]["mask"]["brachial_plexus"]), []
