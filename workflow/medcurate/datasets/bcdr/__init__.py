"""BCDR (Breast Cancer Digital Repository, bcdr.eu) quirks.

- Subsets: digital BCDR-D01_dataset/, BCDR-D02_dataset/ and digitised-film BCDR-F01_dataset/,
  BCDR-F02_dataset/, BCDR-F03_dataset/BCDR-F03/ (one level deeper). Every bcdr_<subset>_outlines.csv
  found below the root is one subset (recorded in Case.subset as BCDR-D01 etc.); its
  image_filename paths (patient_<p>/study_<s>/img_<p>_<s>_<series>_<VIEW>.tif) are relative to the
  CSV's folder. The bcdr_<subset>_img.csv files are not needed (their columns are UNCONFIRMED), so
  images named in no outline row are not converted.
- Outline CSVs: the header is comma-separated, every data field after the first has a leading
  space (', ' separators): read with skipinitialspace and strip. lw_x_points / lw_y_points are
  space-separated integer pixel coordinates of a freehand outline; classification is ' Benign' or
  ' Malignant'; image_view 1=RCC 2=LCC 3=RO 4=LO, cross-checked against the file name's view.
- One row per lesion segmentation, several per image (several lesions, several segmentations of
  one lesion): one case per image, outlines merged per class (mask benign 1 / malignant 2,
  malignant wins an overlap), image label 'classification' = any-malignant, per-lesion detail in
  column 'lesions' (as CBIS-DDSM's 'abnormalities').
- Patient ids are used as they are, not prefixed by subset: whether they are global across the
  subsets is UNCONFIRMED, and treating equal numbers as one woman can only over-group, never leak.
- A malformed row (x/y counts differ, a non-integer, bad view or classification) quarantines its
  image with the CSV line; an outline reaching outside its image is clipped and flagged
  (``outline_clipped``), one absurdly far from it (see formats/shapes.py) quarantines the
  image, naming the line. An outline of fewer than 3 distinct points bounds no region: drawn as
  its vertices, recorded ('lesion_<id>:fewer_than_3_points') and flagged ``degenerate_roi``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path


from ...formats import shapes
from ...errors import CaseError, MedcurateError
from ...masks import compose
from .. import Case, Loaded, files, read_text, slug

VIEWS = {1: "RCC", 2: "LCC", 3: "RO", 4: "LO"}
CLASSES = ("Benign", "Malignant")
FLAGS = ["mammography_nodule", "mammography_calcification", "mammography_microcalcification",
         "mammography_axillary_adenopathy", "mammography_architectural_distortion", "mammography_stroma_distortion"]
COLUMNS = ["patient_id", "study_id", "series", "lesion_id", "segmentation_id", "image_view", "image_filename",
           "lw_x_points", "lw_y_points", "mammography_type", *FLAGS, "age", "density", "classification"]
INTEGER_COLUMNS = ["patient_id", "study_id", "series", "lesion_id", "segmentation_id", "image_view"]
FILE_VIEW = re.compile(r"_(RCC|LCC|RO|LO)\.tif$", re.IGNORECASE)
OUTLINES = "bcdr_*_outlines.csv"


@dataclass
class Outline:
    line: int
    patient_id: int
    study_id: int
    series: int
    lesion_id: int
    segmentation_id: int
    view: str
    image_filename: str
    xs: list[int]
    ys: list[int]
    classification: str
    fields: dict[str, str]  # the remaining columns, stripped


@dataclass
class BcdrCase(Case):
    outlines: list[Outline] = field(default_factory=list)


def parse_outlines(text: str, source, strict: bool = True) -> list[Outline | CaseError]:
    """Rows of a bcdr_*_outlines.csv. A malformed row raises CaseError naming the line (strict) or
    is returned as that CaseError carrying the row's image_filename (not strict). A missing column
    or an empty file is a MedcurateError."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise MedcurateError(source, "empty outlines file") from None
    except csv.Error as exc:
        raise MedcurateError(source, f"line 1: unreadable header ({exc})") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise MedcurateError(source, f"missing column(s) {missing}; found {header}")
    rows: list[Outline | CaseError] = []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise MedcurateError(source, f"line {reader.line_num}: unreadable CSV ({exc})") from None
        if not any(c.strip() for c in cells):
            continue
        try:
            rows.append(_row(header, cells, source, reader.line_num))
        except CaseError as exc:
            if strict:
                raise
            image = cells[header.index("image_filename")].strip() if len(cells) == len(header) else ""
            exc.image_filename = image
            rows.append(exc)
    return rows


def _row(header: list[str], cells: list[str], source, line: int) -> Outline:
    def fail(reason: str) -> CaseError:
        return CaseError(source, f"line {line}: {reason}")

    if len(cells) != len(header):
        raise fail(f"{len(cells)} fields, the header has {len(header)}")
    row = dict(zip(header, (c.strip() for c in cells)))
    ints = {}
    for col in INTEGER_COLUMNS:
        try:
            ints[col] = int(row[col])
        except ValueError:
            raise fail(f"{col} must be an integer, got {row[col]!r}") from None
    xs, ys = _points(row, "lw_x_points", fail), _points(row, "lw_y_points", fail)
    if len(xs) != len(ys):
        raise fail(f"lw_x_points has {len(xs)} values but lw_y_points {len(ys)}")
    if not xs:
        raise fail("empty outline")
    view = VIEWS.get(ints["image_view"])
    if view is None:
        raise fail(f"image_view must be 1-4 (RCC, LCC, RO, LO), got {ints['image_view']}")
    named = FILE_VIEW.search(row["image_filename"])
    if not named or named.group(1).upper() != view:
        raise fail(f"image_view {ints['image_view']} ({view}) does not match the file name {row['image_filename']!r}")
    if row["classification"] not in CLASSES:
        raise fail(f"classification must be one of {list(CLASSES)}, got {row['classification']!r}")
    rest = {k: v for k, v in row.items() if k not in {*INTEGER_COLUMNS, "image_filename", "lw_x_points", "lw_y_points", "classification"}}
    return Outline(line, ints["patient_id"], ints["study_id"], ints["series"], ints["lesion_id"], ints["segmentation_id"],
                   view, row["image_filename"], xs, ys, row["classification"], rest)


def _points(row: dict, col: str, fail) -> list[int]:
    try:
        return [int(v) for v in row[col].split()]
    except ValueError:
        raise fail(f"{col} holds a non-integer value ({row[col][:40]!r}...)") from None


# ---------------------------------------------------------------- cases


def subset_name(csv_path: Path) -> str:
    """bcdr_d01_outlines.csv -> BCDR-D01."""
    return "BCDR-" + csv_path.name[len("bcdr_"):-len("_outlines.csv")].upper()


def cases(root: Path, plan: dict) -> list[Case]:
    found = files(root, OUTLINES)
    if not found:
        raise MedcurateError(root, "no bcdr_<subset>_outlines.csv anywhere below it: is a BCDR subset (e.g. BCDR-D01_dataset/) in place?")
    out = []
    for path in found:
        subset = subset_name(path)
        text = read_text(path)
        groups: dict[str, list] = {}
        for row in parse_outlines(text, path, strict=False):
            key = row.image_filename if isinstance(row, Outline) else getattr(row, "image_filename", "")
            if not key:  # a row too broken to name its image cannot be set aside per image
                raise MedcurateError(path, row.reason)
            groups.setdefault(key, []).append(row)
        out += [_case(path, subset, name, rows) for name, rows in sorted(groups.items())]
    return out


def _case(csv_path: Path, subset: str, name: str, rows: list) -> BcdrCase:
    good = [r for r in rows if isinstance(r, Outline)]
    bad = [r for r in rows if not isinstance(r, Outline)]
    image = csv_path.parent / name
    first = good[0] if good else None
    patient = str(first.patient_id) if first else _patient_from_name(name)
    case = BcdrCase(case_id=f"{subset}_{slug(Path(name).stem)}", patient_id=patient, image=image, mask=csv_path,
                    subset=subset, outlines=good, problem=bad[0] if bad else None)
    if bad:
        return case  # quarantined in load_mask with the row's line; no labels to check before that
    malignant = any(r.classification == "Malignant" for r in good)
    case.labels = {"classification": "Malignant" if malignant else "Benign"}
    lesions = {}
    for r in sorted(good, key=lambda r: (r.lesion_id, r.segmentation_id)):
        lesions.setdefault(r.lesion_id, r.classification)
    case.meta = {
        "view": first.view,
        "study_id": first.study_id,
        "lesions": ";".join(f"{lid}:{cls}" for lid, cls in lesions.items()),
        "segmentation_ids": " ".join(str(r.segmentation_id) for r in sorted(good, key=lambda r: r.segmentation_id)),
        "n_outlines": len(good),
        **{f.removeprefix("mammography_"): int(any(r.fields[f] == "1" for r in good)) for f in FLAGS},
        "age": first.fields["age"],
        "density": first.fields["density"],
        "outline_clipped": 0,
        "degenerate_roi": 0,
    }
    return case


def _patient_from_name(name: str) -> str:
    m = re.match(r"patient_(\d+)/", name)
    return str(int(m.group(1))) if m else name


def load_mask(case: BcdrCase, plan: dict) -> Loaded:
    shape = case.shape[:2]
    layers, actions, facts = [], [], {}
    for r in case.outlines:
        try:
            region, degenerate = shapes.polygon(r.xs, r.ys, shape)
        except shapes.CoordinateError as exc:
            raise CaseError(case.mask, f"line {r.line}: lesion {r.lesion_id}: {exc.reason}") from None
        if not shapes.is_region(r.xs, r.ys):
            facts["degenerate_roi"] = 1
            actions.append(f"lesion_{r.lesion_id}:fewer_than_3_points")
        elif degenerate:
            actions.append(f"lesion_{r.lesion_id}:degenerate_outline_kept_as_vertices")
        if min(r.xs) < 0 or min(r.ys) < 0 or max(r.xs) >= shape[1] or max(r.ys) >= shape[0]:
            facts["outline_clipped"] = 1
            actions.append(f"lesion_{r.lesion_id}:outline_clipped_to_image")
        layers.append((r.classification.lower(), region))
    facts["roi_types"] = "freehand"
    return Loaded(compose(shape, layers, plan["labels"]), facts, actions)
