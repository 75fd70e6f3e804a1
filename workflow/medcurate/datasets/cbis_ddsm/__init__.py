"""CBIS-DDSM (TCIA) quirks.

- Annotations are four case-description CSVs (mass/calc x train/test), one row per ABNORMALITY;
  several rows can describe one full mammogram. One case = one full mammogram: the abnormalities'
  ROI masks are merged into one label map (label = abnormality type), each abnormality's pathology
  is kept in the ``abnormalities`` column, and the image label is any-malignant (MALIGNANT if any row
  is, else BENIGN if any row is, else BENIGN_WITHOUT_CALLBACK): first-row-wins mislabels images.
- The density column is 'breast_density' in the mass CSVs but 'breast density' in the calc CSVs;
  descriptor cells hold a literal 'NA'; one path column per row ends with a newline inside quotes
  (ROI mask path in the mass CSVs, cropped-image path in the calc CSVs); records end in CRLF.
  A re-published variant with renamed headers (side, view, abn_num, od_img_path, ...) and
  backslash paths is accepted too.
- CSV paths use TCIA's old layout <PatientID>/<StudyUID>/<SeriesUID>/00000N.dcm, which is not the
  NBIA Data Retriever's on-disk tree (e.g. <PatientID>/07-20-2016-DDSM-NA-NNNNN/1.000000-ROI mask
  images-NNNNN/1-2.dcm, with any of its directory naming options): DICOMs are joined by the
  SeriesInstanceUID (the path's 3rd component) read from the DICOM headers, never by path strings.
- An abnormality's ROI series holds the ROI mask AND the cropped patch (usually one series with two
  files; for 104 rows two series in two studies, both described "ROI mask images"; file order and
  the 00000N names disagree between mass and calc). The mask is told from the crop by pixel content:
  binary ({0, v}) and about the mammogram's size; the crop is a small non-binary patch.
- Some masks differ in matrix size (even aspect) from their mammogram: resized (nearest neighbour,
  flagged ``mask_resized``, action recorded) or quarantined, per curation ``mask_size_mismatch``.
- The TCIA PatientID is per view (Mass-Training_P_00001_LEFT_CC); the woman is the P_NNNNN token,
  shared by the mass and calc CSVs, and 31 women are in both the official train and test CSVs.
- Official split = which CSV a row is in.
- Pixels: dicom.decode_dicom; the manifest's pixel_values, pixel_slope and pixel_intercept say how
  a PNG value p gives the file's value back (p * pixel_slope + pixel_intercept, exactly).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pydicom
from skimage.transform import resize

from ... import masks
from ...dicom import decode_dicom, read_dicom
from ...errors import CaseError, MedcurateError
from .. import Case, Loaded, files, find_one, slug

log = logging.getLogger("medcurate.datasets.cbis_ddsm")

# Real file name -> (abnormality family, official split).
CSVS = {
    "mass_case_description_train_set.csv": ("mass", "train"),
    "mass_case_description_test_set.csv": ("mass", "test"),
    "calc_case_description_train_set.csv": ("calc", "train"),
    "calc_case_description_test_set.csv": ("calc", "test"),
}
# Canonical field -> accepted header spellings (publisher's first, then the renamed variant's).
COLUMNS = {
    "patient_id": ("patient_id",),
    "density": ("breast_density", "breast density"),
    "laterality": ("left or right breast", "side"),
    "view": ("image view", "view"),
    "abnormality_id": ("abnormality id", "abn_num"),
    "abnormality_type": ("abnormality type", "abnormality_type"),
    "descriptor_1": ("mass shape", "calc type", "mass_shape", "calc_type"),
    "descriptor_2": ("mass margins", "calc distribution", "mass_margins", "calc_distribution"),
    "assessment": ("assessment",),
    "pathology": ("pathology",),
    "subtlety": ("subtlety",),
    "image_path": ("image file path", "od_img_path"),
    "crop_path": ("cropped image file path", "od_crop_path"),
    "mask_path": ("ROI mask file path", "mask_path"),
}
PATHOLOGIES = ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK")  # any-malignant precedence
TYPES = ("mass", "calcification")
PATIENT = re.compile(r"P_\d{5}")
UID = re.compile(r"[0-9]+(\.[0-9]+)+")
# A mask's side may differ from its mammogram's by this fraction (the real mismatches are <= 13 %);
# a crop is both non-binary and far smaller.
MASK_SHAPE_TOLERANCE = 0.25


@dataclass(frozen=True)
class Abnormality:
    """One CSV row."""

    source: str  # CSV path, for messages
    line: int  # physical line the record starts on
    split: str
    patient: str  # P_NNNNN
    image_key: str  # TCIA PatientID of the full mammogram, e.g. Mass-Training_P_00001_LEFT_CC
    image_series: str
    roi_series: tuple[str, ...]  # crop's and mask's SeriesInstanceUIDs (one or two)
    abnormality_id: int
    abnormality_type: str
    density: str
    laterality: str
    view: str
    descriptor_1: str  # mass shape / calc type ('' for NA)
    descriptor_2: str  # mass margins / calc distribution ('' for NA)
    assessment: int
    pathology: str
    subtlety: int

    @property
    def where(self) -> str:
        return f"{Path(self.source).name} line {self.line}"


@dataclass
class MammogramCase(Case):
    """A Case plus what load_image/load_mask need (never written to the manifest)."""

    abnormalities: list[Abnormality] = field(default_factory=list)
    roi_files: dict[int, list[Path]] = field(default_factory=dict)  # abnormality id -> ROI series files


# ---------------------------------------------------------------- CSV parsing (pure)


def parse_case_csv(data: bytes, source: str | Path, split: str) -> list[Abnormality]:
    """Parse one case-description CSV (bytes) into its rows; MedcurateError naming the file (and
    line) on anything malformed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MedcurateError(source, f"not UTF-8 text ({exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise MedcurateError(source, "empty file: no header row")
        index = _header_index(header, source)
        rows, line = [], reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append(_row(cells, index, len(header), source, line, split))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise MedcurateError(source, f"line {reader.line_num}: malformed CSV ({exc})") from None
    return rows


def _header_index(header: list[str], source) -> dict[str, int]:
    names = [re.sub(r"\s+", " ", h).strip() for h in header]
    index, missing = {}, []
    for key, spellings in COLUMNS.items():
        hit = [names.index(s) for s in spellings if s in names]
        if hit:
            index[key] = hit[0]
        else:
            missing.append(" / ".join(repr(s) for s in spellings))
    if missing:
        raise MedcurateError(source, f"missing column(s) {', '.join(missing)}; found {names}")
    return index


def _row(cells: list[str], index: dict[str, int], width: int, source, line: int, split: str) -> Abnormality:
    where = f"line {line}"
    if len(cells) != width:
        raise MedcurateError(source, f"{where}: {len(cells)} fields, the header has {width}")
    v = {k: cells[i].strip() for k, i in index.items()}  # strip: the quoted trailing newline

    def one_of(key, allowed):
        if v[key] not in allowed:
            raise MedcurateError(source, f"{where}: {key} must be one of {list(allowed)}, got {v[key]!r}")
        return v[key]

    def integer(key, low, high):
        if not re.fullmatch(r"\d+", v[key]) or not low <= int(v[key]) <= high:
            raise MedcurateError(source, f"{where}: {key} must be an integer {low}-{high}, got {v[key]!r}")
        return int(v[key])

    if not PATIENT.fullmatch(v["patient_id"]):
        raise MedcurateError(source, f"{where}: patient_id must look like P_00001, got {v['patient_id']!r}")
    image = _path_parts(v["image_path"], "image file path", source, where)
    crop = _path_parts(v["crop_path"], "cropped image file path", source, where)
    mask = _path_parts(v["mask_path"], "ROI mask file path", source, where)
    if f"_{v['patient_id']}_" not in f"_{image[0]}_":
        raise MedcurateError(source, f"{where}: image path {image[0]!r} is not patient {v['patient_id']}'s")
    return Abnormality(
        source=str(source), line=line, split=split, patient=v["patient_id"], image_key=image[0],
        image_series=image[2], roi_series=tuple(dict.fromkeys([crop[2], mask[2]])),
        abnormality_id=integer("abnormality_id", 1, 99), abnormality_type=one_of("abnormality_type", TYPES),
        density=str(integer("density", 0, 4)), laterality=one_of("laterality", ("LEFT", "RIGHT")),
        view=one_of("view", ("CC", "MLO")), descriptor_1=_na(v["descriptor_1"]), descriptor_2=_na(v["descriptor_2"]),
        assessment=integer("assessment", 0, 6), pathology=one_of("pathology", PATHOLOGIES),
        subtlety=integer("subtlety", 0, 5),
    )


def _path_parts(value: str, column: str, source, where: str) -> list[str]:
    """<PatientID>/<StudyUID>/<SeriesUID>/<file>.dcm, '/' or '\\' separated."""
    parts = [p for p in re.split(r"[\\/]", value) if p]
    if len(parts) < 3 or not UID.fullmatch(parts[1]) or not UID.fullmatch(parts[2]):
        raise MedcurateError(source, f"{where}: {column} {value!r} is not <PatientID>/<StudyUID>/<SeriesUID>/<file>")
    return parts


def _na(value: str) -> str:
    return "" if value in ("NA", "N/A") else value  # the renamed-header variant writes N/A


def image_label(rows: list[Abnormality]) -> str:
    """Any-malignant: the most serious pathology among an image's abnormalities."""
    return min((r.pathology for r in rows), key=PATHOLOGIES.index)


# ---------------------------------------------------------------- DICOM index


@dataclass(frozen=True)
class DicomFile:
    path: Path
    shape: tuple[int, int]  # (rows, columns)


def index_series(root: Path) -> tuple[dict[str, list[DicomFile]], dict[Path, str]]:
    """SeriesInstanceUID -> files, from headers only (pixels are not read); plus unreadable files."""
    series: dict[str, list[DicomFile]] = {}
    unreadable: dict[Path, str] = {}
    for path in files(root, "*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID", "Rows", "Columns"])
            uid, shape = str(ds.SeriesInstanceUID).strip(), (int(ds.Rows), int(ds.Columns))
        except Exception as exc:  # noqa: BLE001 - any header failure makes the file unusable, not the dataset
            unreadable[path] = f"{type(exc).__name__}: {exc}"
            continue
        series.setdefault(uid, []).append(DicomFile(path, shape))
    if unreadable:
        log.warning("%d .dcm file(s) below %s have unreadable headers, e.g. %s", len(unreadable), root, next(iter(unreadable)))
    return series, unreadable


# ---------------------------------------------------------------- cases


def cases(root: Path, plan: dict) -> list[Case]:
    rows = []
    for name, (_, split) in CSVS.items():
        path = root / name if (root / name).is_file() else find_one(root, name)
        rows += parse_case_csv(path.read_bytes(), path, split)
    series, unreadable = index_series(root)
    by_image: dict[str, list[Abnormality]] = {}
    for row in rows:
        by_image.setdefault(row.image_series, []).append(row)
    return [_case(group, series, unreadable) for group in by_image.values()]


def _case(group: list[Abnormality], series: dict[str, list[DicomFile]], unreadable: dict) -> MammogramCase:
    group = sorted(group, key=lambda r: r.abnormality_id)
    first = group[0]
    _check_consistent(group)
    case = MammogramCase(
        case_id=slug(first.image_key), patient_id=first.patient, image=Path(first.source), split=first.split,
        labels={"pathology": image_label(group)}, subset=first.image_key.split("_P_")[0], abnormalities=group,
        meta={
            "abnormality_type": " ".join(sorted({r.abnormality_type for r in group})),
            "abnormalities": ";".join(f"{r.abnormality_id}:{r.abnormality_type}:{r.pathology}" for r in group),
            "findings": ";".join(f"{r.abnormality_id}:{r.descriptor_1}/{r.descriptor_2}" for r in group),
            "n_abnormalities": len(group),
            "assessment": max(r.assessment for r in group),  # BI-RADS: the most suspicious
            "subtlety": max(r.subtlety for r in group),
            "breast_density": first.density,
            "laterality": first.laterality,
            "view": first.view,
            "csv_lines": f"{Path(first.source).name}:" + ",".join(str(r.line) for r in group),
        },
    )
    image = series.get(first.image_series, [])
    if len(image) != 1:
        case.problem = CaseError(first.source, f"line {first.line}: full mammogram series {first.image_series} "
                                 + (f"holds {len(image)} files ({', '.join(str(f.path) for f in image)}); expected one" if image
                                    else f"not found below the root{_unreadable_note(unreadable)}"))
        return case
    case.image, case.shape = image[0].path, image[0].shape
    for r in group:
        found = [f.path for uid in r.roi_series for f in series.get(uid, [])]
        if not found:
            case.problem = CaseError(r.source, f"line {r.line}: ROI series {' / '.join(r.roi_series)} of abnormality "
                                               f"{r.abnormality_id} not found below the root{_unreadable_note(unreadable)}")
            return case
        case.roi_files[r.abnormality_id] = sorted(set(found))
    case.mask = case.roi_files[group[0].abnormality_id][0].parent
    return case


def _check_consistent(group: list[Abnormality]) -> None:
    """The rows of one mammogram must agree on what describes the image, and not repeat an id."""
    first = group[0]
    for prev, r in pairwise(group):
        for key in ("patient", "image_key", "split", "laterality", "view", "density"):
            if getattr(r, key) != getattr(first, key):
                raise MedcurateError(r.source, f"line {r.line}: {key} {getattr(r, key)!r} disagrees with "
                                               f"{first.where} ({getattr(first, key)!r}) for series {first.image_series}")
        if r.abnormality_id == prev.abnormality_id:  # group is sorted by id
            raise MedcurateError(r.source, f"line {r.line}: abnormality id {r.abnormality_id} occurs twice for {first.image_key}")


def _unreadable_note(unreadable: dict) -> str:
    if not unreadable:
        return " (incomplete download?)"
    return f" (incomplete download? {len(unreadable)} .dcm file(s) have unreadable headers, e.g. {next(iter(unreadable))})"


# ---------------------------------------------------------------- pixels


def load_image(case: MammogramCase, plan: dict) -> Loaded:
    decoded = decode_dicom(case.image, plan["dicom"])
    return Loaded(decoded.pixels, decoded.manifest())  # how the PNG's values give the file's back (pixel_slope...)


def load_mask(case: MammogramCase, plan: dict) -> Loaded:
    layers, actions, chosen = [], [], []
    for r in case.abnormalities:
        path, region = pick_mask(case.roi_files[r.abnormality_id], case.shape, r)
        chosen.append(path)
        if region.shape != case.shape:
            size = f"{region.shape[1]}x{region.shape[0]}->{case.shape[1]}x{case.shape[0]}"
            if plan["convert"]["mask_size_mismatch"] == "quarantine":
                raise CaseError(path, f"mask is {region.shape[1]}x{region.shape[0]} but its mammogram {case.image} "
                                      f"is {case.shape[1]}x{case.shape[0]} (mask_size_mismatch: quarantine)")
            region = resize(region.astype(np.uint8), case.shape, order=0, preserve_range=True, anti_aliasing=False) > 0
            actions.append(f"mask_resized:{size}")
        layers.append((r.abnormality_type, region))
    facts = {"mask_resized": int(bool(actions)), "roi_types": "mask"}
    return Loaded(masks.compose(case.shape, layers, plan["labels"]), facts, actions, source=chosen[0])


def pick_mask(paths: list[Path], shape: tuple[int, int], row: Abnormality) -> tuple[Path, np.ndarray]:
    """The ROI mask among an abnormality's ROI-series files, by pixel content: binary ({0, v}) and
    within MASK_SHAPE_TOLERANCE of the mammogram's size. Folder names and file order are ignored
    (the crop often sits in a series described "ROI mask images", listed first)."""
    found, notes = [], []
    for path in paths:
        arr = read_dicom(path, {"output": "uint16"})  # lossless: the binary test needs the stored values
        binary = arr.ndim == 2 and (arr.max() == 0 or not np.count_nonzero((arr != 0) & (arr != arr.max())))
        near = arr.ndim == 2 and all(abs(a / b - 1) <= MASK_SHAPE_TOLERANCE for a, b in zip(arr.shape, shape))
        if binary and near:
            found.append((path, arr > 0))
        else:
            notes.append(f"{path.name}: {arr.shape[1]}x{arr.shape[0]}, {'binary' if binary else 'not binary'}")
    exact = [f for f in found if f[1].shape == tuple(shape)]
    found = exact or found
    if not found:
        raise CaseError(paths[0].parent, f"{row.where}: no binary ROI mask near the mammogram's {shape[1]}x{shape[0]} "
                                         f"among abnormality {row.abnormality_id}'s ROI files ({'; '.join(notes)})")
    if any(f[1].shape != found[0][1].shape or not np.array_equal(f[1], found[0][1]) for f in found[1:]):
        raise CaseError(paths[0].parent, f"{row.where}: {len(found)} different binary masks for abnormality "
                                         f"{row.abnormality_id}: {', '.join(str(f[0]) for f in found)}")
    return found[0]
