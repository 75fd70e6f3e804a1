"""Dataset folders: everything specific to one dataset sits in ``datasets/<id>/``.

``__init__.py`` (its quirks module), ``dataset.yaml`` (its catalogue entry), ``sample.py`` (its
sample-mirror builder), ``sample.sha256`` (the mirror's pins, written by ``medcurate samples``),
``README.md`` (its facts and their sources) and ``test_<id>.py`` (its tests). This module holds what
the quirks modules share (``Case``, file finders, CSV reading); catalogue.py lists the folders.

A quirks module defines ``cases(root, plan) -> list[Case]`` (enumerate cases, labels, official split,
image and mask sources, and the facts known from the annotations in ``case.meta``). It may define
``load_image(case, plan) -> Loaded``, ``load_mask(case, plan) -> Loaded`` (``case.shape`` is then the
decoded image's shape) and ``load_extra_mask(case, plan, name)`` where the generic readers do not
fit. What loading finds -- ``roi_types``, flags such as ``mask_resized`` that drive the curation
rules, decoding parameters, the file actually read -- is returned in ``Loaded``, never set on the
case. Volume datasets may define ``load_volume`` / ``load_label`` instead (volumes.py; their
``Volume`` carries ``facts`` likewise). Everything else (sharding, PNG writing, cleaning,
splitting, manifests, reports) is generic.
"""

from __future__ import annotations

import csv
import fnmatch
import importlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pandas as pd

from ..errors import CaseError, MedcurateError
from ..walk import walk


@dataclass
class Case:
    case_id: str
    patient_id: str
    image: Path | None
    split: str | None = None  # official split: train / val / test, or None
    labels: dict[str, str] = field(default_factory=dict)
    mask: Path | None = None
    subset: str = ""
    meta: dict[str, object] = field(default_factory=dict)
    # Found while enumerating (no DICOM for a CSV row, a malformed annotation row...): the case is
    # quarantined with it before anything is decoded.
    problem: CaseError | None = None
    # Further masks beside the label map (catalogue labels.extra_masks), e.g. a retinal field of view.
    extra_masks: dict[str, Path] = field(default_factory=dict)
    # The decoded image's shape, set by convert before load_mask.
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Loaded:
    """What a module's load_image / load_mask returns: the pixels and what loading found."""
    array: object  # np.ndarray: the image, or the label map
    facts: dict[str, object] = field(default_factory=dict)  # manifest columns (roi_types, mask_resized, pixel_slope...)
    actions: list[str] = field(default_factory=list)  # masks: what was done to the drawing ('cleaning' column)
    source: Path | None = None  # the file actually read, where not case.image / case.mask (a sibling, one of several)


def loaded(result) -> Loaded:
    """A loader's result as Loaded; a bare array (an image) or an (array, actions) pair (a mask
    without facts) is accepted too."""
    if isinstance(result, Loaded):
        return result
    if isinstance(result, tuple):
        array, actions = result
        return Loaded(array, actions=list(actions))
    return Loaded(result)


def load(module: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{module}")


def slug(text: str) -> str:
    """A file-system- and CSV-safe id fragment."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def files(root: Path, pattern: str = "*") -> list[Path]:
    """Files below ``root`` whose name matches ``pattern`` (fnmatch, case-sensitive), sorted.
    Unlike Path.rglob this follows symlinks: a gated dataset's root links to the placed folders.
    A link loop, a folder reached twice or a broken link is an error naming the link (walk.py)."""
    hits = []
    for dirpath, dirnames, filenames in walk(root):
        hits += [Path(dirpath, n) for n in fnmatch.filter(filenames, pattern) if not n.startswith("._")]
    return sorted(hits)


def index_files(root: Path, pattern: str, key=lambda path: path.name) -> dict[str, Path]:
    """``key(path)`` -> the one file below ``root`` matching ``pattern`` (files whose key is None
    are left out); a key found twice (a release placed twice, two copies) is an error naming both."""
    found: dict[str, Path] = {}
    for path in files(root, pattern):
        k = key(path)
        if k is None:
            continue
        if k in found:
            raise MedcurateError(root, f"{path.name} found twice ({found[k]}, {path}); cannot tell which to use")
        found[k] = path
    return found


def images_without_rows(images: dict[str, Path], listed, table, patient=None) -> list[Case]:
    """A quarantined case for each image of ``images`` (key -> path) whose key the table does not
    list (the table is the truth: such an image has no labels), in key order; ``patient(path)``
    where the layout names the patient, else the image's own id."""
    return [Case(case_id=slug(path.stem), patient_id=patient(path) if patient else slug(path.stem), image=path,
                 problem=CaseError(path, f"image has no row in {table}"))
            for key, path in sorted(images.items()) if key not in listed]


def junk_files(root: Path) -> list[Path]:
    """macOS AppleDouble files ('._name': resource-fork metadata, not data) below ``root``, which
    files() skips; a module lists them so they are reported rather than silently dropped."""
    hits = []
    for dirpath, dirnames, filenames in walk(root):
        hits += [Path(dirpath, n) for n in filenames if n.startswith("._")]
    return sorted(hits)


def find_one(root: Path, name: str) -> Path:
    """The one file called ``name`` anywhere under ``root`` (publishers nest top folders inconsistently)."""
    hits = files(root, name)
    if not hits:
        raise MedcurateError(root, f"expected file '{name}' not found anywhere below it: is the download complete?")
    if len(hits) > 1:
        raise MedcurateError(root, f"'{name}' found {len(hits)} times ({', '.join(map(str, hits[:3]))}); cannot tell which to use")
    return hits[0]


def read_text(path: Path, encoding: str = "utf-8-sig") -> str:
    """A text annotation file (a leading BOM dropped); bytes that do not decode are a
    MedcurateError naming the file."""
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError as exc:
        raise MedcurateError(path, f"not {'ASCII' if encoding == 'ascii' else 'UTF-8'} text ({exc})") from None


def read_table(path: Path, sep: str | None, required: list[str], encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Read a CSV as strings with headers and cells whitespace-stripped (runs of spaces inside
    headers folded to one); check required columns. ``sep=None`` sniffs the delimiter."""
    try:
        # index_col=False: rows with more fields than the header (a trailing separator) must not
        # turn the first column into the index and shift every other one; pandas then drops the
        # extra fields with a warning, which is only harmless if they are all empty.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding, index_col=False,
                             engine="python" if sep is None else "c")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise MedcurateError(path, f"cannot parse as '{sep}'-separated CSV: {exc}") from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        _check_extra_fields_empty(path, sep, encoding, len(df.columns))
    df.columns = [re.sub(r"\s+", " ", str(c)).strip() for c in df.columns]
    df = df.apply(lambda col: col.str.strip())
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MedcurateError(path, f"missing column(s) {missing}; found {list(df.columns)} (wrong delimiter?)")
    return df


def _check_extra_fields_empty(path: Path, sep: str | None, encoding: str, width: int) -> None:
    with open(path, newline="", encoding=encoding) as fh:
        sample = fh.read(65536)
        fh.seek(0)
        dialect = csv.Sniffer().sniff(sample) if sep is None else None
        for line, cells in enumerate(csv.reader(fh, dialect) if dialect else csv.reader(fh, delimiter=sep), start=1):
            if any(c.strip() for c in cells[width:]):
                raise MedcurateError(path, f"line {line} has {len(cells)} fields but the header names {width}; "
                                           "cannot tell the columns apart")


def official_split(path: Path, line: int, value: str) -> str:
    """The Train column convention of the fetal sets: 1 = train, 0 = test."""
    if value == "1":
        return "train"
    if value == "0":
        return "test"
    raise MedcurateError(path, f"line {line}: Train must be 1 or 0, got {value!r}")


def integer(path: Path, line: int, column: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MedcurateError(path, f"line {line}: column {column} must be an integer, got {value!r}") from None
