"""INbreast (full-field digital mammography, Hospital de São João / INESC Porto) quirks.

Release layout ("INbreast Release 1.0/", nesting varies): AllDICOMs/, AllXML/, INbreast.csv,
plus AllROI/, MedicalReports/, PectoralMuscle/, INbreast.xls, README.txt (not used).

- Cases are the DICOMs: AllDICOMs/<FileName>_<patientHash>_MG_<L|R>_<view>_ANON.dcm. The patient id
  is only in that name (2nd token); the view token there is 'CC' or 'ML' while the CSV says 'MLO'
  (the manifest keeps the CSV's words). Matrix sizes differ (4084x3328 or 3328x2560 rows x cols):
  masks are rasterised at each DICOM's own Rows x Columns. Pixels: dicom.decode_dicom; the
  manifest's pixel_values, pixel_slope and pixel_intercept say how a PNG value p gives the file's
  value back (p * pixel_slope + pixel_intercept, exactly).
- INbreast.csv: ';'-separated, header 'Patient ID;Patient age;Laterality;View;Acquisition date;
  File Name;ACR;Bi-Rads'. Patient ID and age are the literal 'removed'; View has one 'FB'; the
  date is YYYY + semester (01/02, README), not a month; ACR has one blank, space-padded cell
  (kept as ''); Bi-Rads are strings 1,2,3,4a,4b,4c,5,6. Rows join DICOMs by File Name = the name's
  numeric prefix. A DICOM without a row would lose its labels: quarantined, reason given. A row or
  an XML without a DICOM is quarantined too (the image is missing: an incomplete copy).
- AllXML/<FileName>.xml: OsiriX ROI export, an Apple XML plist with a DOCTYPE. It is checked by
  defusedxml (entity declarations and external references refused) before plistlib reads it.
  Images[0].ROIs[]: Name, Type, NumberOfPoints, Point_px ["(x, y)", ...], Point_mm (all zeros in
  the real files), Area (cm²), Mean, Total, Min, Max, Dev, Center, IndexInImage. A DICOM without
  an XML is a normal image: empty mask, kept.
- ROI types: 15 (OsiriX's freehand ROI; tPencil in its enum, UNCONFIRMED) -> 'freehand'; 9 (oval,
  exported as 200 outline points) -> 'ellipse', rasterised as the polygon through those points;
  19 (2-D point) and any ROI of <= 2 distinct points -> 'point', a disk of curation.point_radius
  pixels (default 3 px = 0.21 mm, the size of a microcalcification). Another Type is an error (the
  case is quarantined). A freehand or oval ROI of <= 2 distinct points bounds no region: drawn as
  its points, recorded as '<label>:fewer_than_3_points:roi<i>' and flagged ``degenerate_roi``
  (whether the real release has such ROIs, e.g. a calcification traced as one click, is
  UNCONFIRMED; none of the 7 real XMLs has one), so the curated subset can leave the case out.
- Contour convention (formats/shapes.py): a pixel belongs to a shape when its centre lies inside.
  Point_px (x, y) are taken as pixel-centre coordinates (column x, row y); whether OsiriX puts the
  centre of pixel 0 at 0 or 0.5 is UNCONFIRMED (at most half a pixel).
  Freehand ROIs follow the curve OsiriX drew (what the radiologists saw while tracing) and
  measured, not the straight polygon through the points: OsiriX smooths a closed ROI with a
  natural cubic spline through its points (closed by repeating the first point, one phantom
  neighbour at each end, parameter = cumulative chord length), sampled about once per pixel, and
  its Area field is the area of that curve (Horos ROI.m: Area = shoelace of splinePoints). The
  spline is reimplemented here from that description with scipy; if two consecutive points
  coincide OsiriX does not smooth, and neither do we.
  Fidelity on the 9 freehand ROIs of the 7 real XMLs (tests/test_inbreast.py): the spline's
  geometric area matches Area within 0.83 % (masses within 0.006 %), the raw polygon is up to 17 %
  smaller (6-point calcification); the rasterised pixel count matches Area within 0.1 % for
  masses (>= 10,000 px) and within 2 % or 2 px for every freehand ROI - the rest is pixel-centre
  sampling of a small outline (a 7-point calcification is 50 px). Area cm² -> px: x 100 / 0.07²
  (INbreast pixels are 70 µm). Total/Mean (OsiriX's own pixel count for its statistics: 0.2-1 %
  above Area for masses, 6-26 % for small contours) includes the pixels the outline touches, i.e.
  another contour convention, not the one used here.
- Points outside the image: contour vertices are clipped by the rasteriser (a real 'Spiculated
  Region' oval reaches x = 3408 on a 3328-wide image), recorded as '<label>:clipped_at_border';
  a point ROI outside the image is dropped and recorded as '<label>:point_outside_image'. A
  coordinate absurdly far away (see formats/shapes.py) quarantines the case, naming the ROI,
  before the spline or any mask is computed.
- ROI names are normalised (NAMES below): 'Assymetry' (sic, in the real files) and 'Asymmetry',
  'Spiculated Region'/'Spiculated region'/'Espiculated Region', 'Calcifications'. Third-party
  analyses of the full release also list 'Point 1', 'Point 3' and 'Unnamed' (OsiriX's default
  names): taken as calcifications for point ROIs only (UNCONFIRMED; recorded as 'name:<name>->
  calcification'); any other name quarantines the case, naming the XML and the name.
"""

from __future__ import annotations

import plistlib
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree
import numpy as np
from scipy.interpolate import CubicSpline

from ...formats import shapes
from ...dicom import decode_dicom
from ...errors import CaseError, MedcurateError
from ...masks import compose
from .. import Case, Loaded, files, find_one, read_table, slug

CSV_NAME = "INbreast.csv"
COLUMNS = ["Patient ID", "Patient age", "Laterality", "View", "Acquisition date", "File Name", "ACR", "Bi-Rads"]
DICOM_NAME = re.compile(r"^(\d+)_([0-9A-Za-z]+)_MG_([LR])_([A-Z]+)_ANON\.dcm$")
PIXEL_MM = 0.07  # detector pixel pitch: Area (cm²) x 100 / 0.07² = pixels
MAX_OUTLINE_SAMPLES = 1_000_000  # points of one smoothed outline (16 MB)

# OsiriX ROI Type codes seen in INbreast.
FREEHAND, ELLIPSE, POINT = 15, 9, 19
KINDS = {FREEHAND: "freehand", ELLIPSE: "ellipse", POINT: "point"}

# ROI Name (lower case, spaces folded) -> mask label.
NAMES = {
    "mass": "mass",
    "calcification": "calcification",
    "calcifications": "calcification",  # UNCONFIRMED: one third party reads it as a cluster
    "cluster": "cluster",
    "asymmetry": "asymmetry",
    "assymetry": "asymmetry",  # sic, in the real XMLs
    "distortion": "distortion",
    "spiculated region": "spiculated_region",
    "espiculated region": "spiculated_region",
}
DEFAULT_POINT_NAME = re.compile(r"^(point \d+|unnamed)$")  # OsiriX default names of point ROIs


@dataclass(frozen=True)
class Roi:
    index: int  # position in the XML's ROI list, for messages and actions
    name: str
    type: int
    kind: str  # freehand | ellipse | point
    points: tuple[tuple[float, float], ...]  # (x, y) pixel coordinates
    area_cm2: float | None


# ---------------------------------------------------------------- enumerate


def cases(root: Path, plan: dict) -> list[Case]:
    table = find_one(root, CSV_NAME)
    rows = read_rows(table)
    dicoms = _by_key([p for p in files(root, "*.dcm") if p.parent.name == "AllDICOMs"], _dicom_key)
    xmls = _by_key([p for p in files(root, "*.xml") if p.parent.name == "AllXML"], lambda p: p.stem)
    out = []
    for key in sorted(rows.keys() | dicoms.keys() | xmls.keys()):
        row, image = rows.get(key), dicoms.get(key)
        match = DICOM_NAME.match(image.name) if image else None
        out.append(Case(
            case_id=slug(key),
            patient_id=match.group(2) if match else "",
            image=image,
            problem=_join_problem(key, row, image, match, table, xmls.get(key)),
            labels={"birads": row["Bi-Rads"]} if row else {},
            mask=xmls.get(key),
            meta={
                "laterality": row["Laterality"] if row else "",
                "view": row["View"] if row else "",
                "acquisition_date": row["Acquisition date"] if row else "",
                "acr": row["ACR"] if row else "",
            },
        ))
    return out


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """INbreast.csv rows by File Name (cells stripped: the blank ACR becomes '')."""
    df = read_table(path, ";", COLUMNS)
    rows: dict[str, dict[str, str]] = {}
    for line, row in enumerate(df.to_dict("records"), start=2):
        key = row["File Name"]
        if not key.isdigit():
            raise MedcurateError(path, f"line {line}: File Name must be the DICOM's numeric prefix, got {key!r}")
        if key in rows:
            raise MedcurateError(path, f"line {line}: File Name {key} occurs twice")
        rows[key] = row
    return rows


def _dicom_key(path: Path) -> str:
    match = DICOM_NAME.match(path.name)
    return match.group(1) if match else path.stem  # a misnamed file is quarantined in load_image


def _by_key(paths: list[Path], key) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        k = key(path)
        if k in found:
            raise MedcurateError(path, f"'{k}' also names {found[k]}; cannot tell which belongs to INbreast.csv's File Name {k} "
                                       "(the release placed twice?)")
        found[k] = path
    return found


# ---------------------------------------------------------------- image


def load_image(case: Case, plan: dict) -> Loaded:
    decoded = decode_dicom(case.image, plan["dicom"])
    return Loaded(decoded.pixels, decoded.manifest())  # how the PNG's values give the file's back (pixel_slope...)


def _join_problem(key: str, row, image: Path | None, match, table: Path, xml: Path | None) -> CaseError | None:
    """Why a File Name that cannot be joined completely is quarantined."""
    if image is None and row is not None:
        return CaseError(table, f"File Name {key} is listed but AllDICOMs/ has no {key}_*.dcm (incomplete copy?)")
    if image is None:
        return CaseError(xml, f"annotations for File Name {key}, which has neither a DICOM in AllDICOMs/ nor a row in {CSV_NAME}")
    if match is None:
        return CaseError(image, "file name does not follow <FileName>_<patientHash>_MG_<L|R>_<view>_ANON.dcm, "
                                "so neither patient nor CSV row is known")
    if row is None:
        return CaseError(image, f"no row with File Name {key} in {CSV_NAME}: BI-RADS, ACR, laterality and view unknown")
    return None


# ---------------------------------------------------------------- mask


def load_mask(case: Case, plan: dict) -> Loaded:
    shape = case.shape[:2]
    if case.mask is None:  # no findings: a normal image
        return Loaded(np.zeros(shape, np.uint8), {"roi_types": "", "degenerate_roi": 0})
    try:
        data = case.mask.read_bytes()
    except OSError as exc:
        raise CaseError(case.mask, f"cannot read ({exc.strerror})") from None
    rois = parse_rois(data, case.mask)
    layers, actions = [], []
    for roi in rois:
        label, named = roi_label(roi, case.mask)
        try:
            region, notes = rasterise(roi, shape, plan["convert"]["point_radius"])
        except shapes.CoordinateError as exc:
            raise CaseError(case.mask, f"ROI #{roi.index} ({roi.name}): {exc.reason}") from None
        actions += named + [f"{label}:{note}:roi{roi.index}" for note in notes]
        if region is not None:
            layers.append((label, region))
    facts = {"roi_types": " ".join(sorted({roi.kind for roi in rois})),
             "degenerate_roi": int(any(degenerate_region(roi) for roi in rois))}
    return Loaded(compose(shape, layers, plan["labels"]), facts, actions)


def degenerate_region(roi: Roi) -> bool:
    """A freehand or oval ROI that bounds no region (<= 2 distinct points: drawn as points)."""
    return roi.type != POINT and roi.kind == "point"


def roi_label(roi: Roi, source: Path) -> tuple[str, list[str]]:
    """The mask label of an ROI name, and the action to record when the name was a guess."""
    key = " ".join(roi.name.split()).lower()
    if key in NAMES:
        return NAMES[key], []
    if roi.kind == "point" and DEFAULT_POINT_NAME.match(key):
        return "calcification", [f"name:{roi.name}->calcification:roi{roi.index}"]
    raise CaseError(source, f"ROI #{roi.index} is named {roi.name!r}, which is none of the known INbreast names "
                            f"({', '.join(sorted(NAMES))})")


def rasterise(roi: Roi, shape: tuple[int, int], point_radius: float) -> tuple[np.ndarray | None, list[str]]:
    """Boolean region of one ROI and notes for the record (None: nothing of it lies in the image)."""
    pts = np.stack(shapes.check_points(*np.asarray(roi.points, float).T, shape), axis=1)  # before the spline
    rows, cols = shape
    inside = (pts[:, 0] >= -0.5) & (pts[:, 0] < cols - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] < rows - 0.5)
    if roi.kind == "point":
        if not inside.any():
            return None, ["point_outside_image"]
        region = np.zeros(shape, bool)
        for x, y in pts[inside]:
            region |= shapes.point(x, y, point_radius, shape)
        notes = [] if inside.all() else ["point_outside_image"]
        return region, notes + (["fewer_than_3_points"] if degenerate_region(roi) else [])
    outline = osirix_outline(pts) if roi.kind == "freehand" else pts
    region, degenerate = shapes.polygon(outline[:, 0], outline[:, 1], shape)
    notes = [] if inside.all() else ["clipped_at_border"]
    if not region.any():
        return None, ["outside_image"]
    return region, notes + (["degenerate_contour"] if degenerate else [])


def osirix_outline(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """The closed curve OsiriX draws through a freehand ROI's points (see the module docstring):
    a natural cubic spline over cumulative chord length through the points, closed by repeating
    the first point and padded with one phantom neighbour at each end (the last real point before
    the start, the second point after the end), sampled every ``step`` pixels of chord within each
    segment. Returns the raw points where OsiriX would not smooth (< 3 points, or two consecutive
    points equal)."""
    pts = np.asarray(points, float)
    if len(pts) < 3:
        return pts
    closed = np.vstack([pts, pts[:1]])
    ext = np.vstack([closed[-2:-1], closed, closed[1:2]])
    chords = np.hypot(*np.diff(ext, axis=0).T)
    if not np.all(chords > 0):
        return pts
    knots = np.concatenate([[0.0], np.cumsum(chords)])
    curve = CubicSpline(knots, ext, bc_type="natural")
    # A contour reaching far outside its image (accepted up to a few image sizes) must not
    # cost gigabytes of samples: coarser steps beyond MAX_OUTLINE_SAMPLES (real outlines: thousands).
    step = max(step, float(chords[1:-1].sum()) / MAX_OUTLINE_SAMPLES)
    # Segments 1..n are the real ones (0 and n+1 end at the phantom neighbours).
    samples = [knots[i] + np.arange(0.0, chords[i], step) for i in range(1, len(ext) - 2)]
    return curve(np.concatenate(samples))


# ---------------------------------------------------------------- XML parser


def parse_rois(data: bytes, source: Path) -> list[Roi]:
    """The ROIs of an OsiriX XML plist export. Pure: raises only CaseError naming ``source``."""
    plist = _safe_plist(data, source)
    images = plist.get("Images") if isinstance(plist, dict) else None
    if not isinstance(images, list):
        raise CaseError(source, "not an OsiriX ROI export: no 'Images' array at the top of the plist")
    rois: list[Roi] = []
    for image in images:
        if not isinstance(image, dict) or not isinstance(image.get("ROIs", []), list):
            raise CaseError(source, "malformed plist: an Images entry is not a dict with a 'ROIs' array")
        if image.get("ImageIndex", 0) != 0:
            raise CaseError(source, f"ROIs on image index {image.get('ImageIndex')!r}, but an INbreast DICOM has one frame")
        for raw in image.get("ROIs", []):
            rois.append(_roi(raw, len(rois), source))
    return rois


def _safe_plist(data: bytes, source: Path) -> object:
    try:
        # The real files carry Apple's DOCTYPE (allowed); entities and external references are not.
        defusedxml.ElementTree.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise CaseError(source, f"refused unsafe XML ({type(exc).__name__}: {exc})") from None
    except (ParseError, ValueError, TypeError) as exc:
        raise CaseError(source, f"not well-formed XML ({exc})") from None
    try:
        return plistlib.loads(data, fmt=plistlib.FMT_XML)
    except Exception as exc:  # noqa: BLE001 - plistlib raises many types on malformed plists
        raise CaseError(source, f"malformed plist ({type(exc).__name__}: {exc})") from None


_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
_POINT = re.compile(rf"^\s*\({_NUMBER},{_NUMBER}(?:,{_NUMBER})?\)\s*$")


def _roi(raw: object, index: int, source: Path) -> Roi:
    where = f"ROI #{index}"
    if not isinstance(raw, dict):
        raise CaseError(source, f"{where} is not a dict")
    name, code, points = raw.get("Name"), raw.get("Type"), raw.get("Point_px")
    if not isinstance(name, str) or not name.strip():
        raise CaseError(source, f"{where} has no Name")
    if isinstance(code, bool) or not isinstance(code, int):
        raise CaseError(source, f"{where} ({name}) has no integer Type")
    if not isinstance(points, list) or not points:
        raise CaseError(source, f"{where} ({name}) has no Point_px points")
    parsed = []
    for text in points:
        match = _POINT.match(text) if isinstance(text, str) else None
        if not match:
            raise CaseError(source, f"{where} ({name}): Point_px entry {text!r} is not '(x, y)'")
        parsed.append((float(match.group(1)), float(match.group(2))))
    if not np.isfinite(parsed).all():
        raise CaseError(source, f"{where} ({name}): non-finite coordinates")
    declared = raw.get("NumberOfPoints", len(parsed))
    if declared != len(parsed):
        raise CaseError(source, f"{where} ({name}): NumberOfPoints is {declared!r} but Point_px holds {len(parsed)}")
    if code == POINT or len(set(parsed)) <= 2:  # two clicks, or one point repeated, bound no region
        kind = "point"
    elif code in KINDS:
        kind = KINDS[code]
    else:
        raise CaseError(source, f"{where} ({name}) has OsiriX ROI Type {code}, which INbreast does not use "
                                f"(known: {', '.join(f'{k} {v}' for k, v in sorted(KINDS.items()))})")
    area = raw.get("Area")
    area = float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else None
    return Roi(index, name, code, kind, tuple(parsed), area)


def area_px(area_cm2: float) -> float:
    """An XML Area (cm²) in INbreast pixels (70 µm)."""
    return area_cm2 * 100.0 / PIXEL_MM**2

