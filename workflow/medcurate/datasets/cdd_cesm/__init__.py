"""CDD-CESM (TCIA) quirks: low-energy (DM) and subtracted (CESM) mammograms with VIA outlines.

- Images (JPEG) come only through TCIA's Aspera package: ``CDD-CESM/Low energy images of CDD-CESM/``
  holds ``P<id>_<L|R>_DM_<CC|MLO>.jpg``, ``CDD-CESM/Subtracted images of CDD-CESM/`` the
  ``..._CM_...`` files. A file in the other kind's folder is quarantined.
- Metadata: the xlsx, sheet 'all' (one row per image; other sheets are per-finding subsets).
  Image_name has no extension and some values carry stray trailing spaces ('P10_R_DM_CC ');
  names are stripped before joining (a third-party converter also renames 'NAME .jpg' files, so
  file names are stripped the same way). Type says DM | CESM where names say _DM_ | _CM_;
  Type, Patient_ID, Side and View are cross-checked against the name (a contradiction quarantines
  the image). Four names occur twice as identical rows (P99/P281 L MLO): collapsed; differing
  duplicates are quarantined. "Breast density (ACR)" is '_' on CESM rows (not applicable) -> empty;
  BIRADS is an int or a '$'-joined string ('3$2', one value per finding).
- Outlines: the VGG Image Annotator (VIA 1.x) CSV export, header '#filename,...'; one row per
  region, region_shape_attributes as JSON: polygon (all_points_x/y), ellipse (cx, cy, rx, ry,
  optional theta), circle (cx, cy, r), point (cx, cy); rect (x, y, width, height) and polyline
  (an open trace, closed here like a polygon) are accepted too. An image loaded in VIA but never
  annotated has one row with region_count 0 and '{}' shape attributes. A malformed row
  quarantines its image with the CSV line number. Fewer region rows than region_count (or gaps in
  region_id) flag ``regions_missing``.
- Images without regions are kept with an empty mask (Normal breasts are true negatives); a
  Benign/Malignant image without regions is flagged ``finding_without_roi`` (its mask is
  incomplete). Coordinates are in image pixels; images vary in size, so a region wholly outside
  its image is flagged ``roi_outside_image``. A polygon, polyline or rect of fewer than 3 distinct
  points bounds no region: drawn as its vertices, recorded ('fewer_than_3_points_<shape>:<id>')
  and flagged ``degenerate_roi``. A coordinate absurdly far from the image (see
  formats/shapes.py) quarantines the image, naming the CSV line.
- Labels: pathology (Normal/Benign/Malignant) is per image, not per region (one Malignant image
  may also hold outlined benign calcifications), so the mask has one foreground label, lesion = 1.
- Patient = Patient_ID: both breasts, both views, DM and CM of one woman share a split.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path


from ... import masks
from ...formats import shapes, xlsx
from ...formats.via import SHAPES, Region, ViaImage, bounds_no_region, parse_via, rasterise  # noqa: F401 (used by tests)
from ...errors import CaseError, MedcurateError
from .. import Case, Loaded, files, read_text

log = logging.getLogger("medcurate.datasets.cdd_cesm")

LOW, SUB = "Low energy images of CDD-CESM", "Subtracted images of CDD-CESM"
FOLDER = {"DM": LOW, "CM": SUB}
TYPE = {"DM": "DM", "CM": "CESM"}  # name token -> xlsx Type
SUBSET = {"DM": "low_energy", "CM": "subtracted"}
XLSX_PATTERN = "Radiology*manual*annotations.xlsx"  # new host: hyphens; old wiki: spaces
VIA_NAME = "Radiology_hand_drawn_segmentations_v2.csv"
SHEET = "all"
PATHOLOGY = "Pathology Classification/ Follow up"
REQUIRED = ["Image_name", "Patient_ID", "Side", "Type", "View", PATHOLOGY]
OPTIONAL = {"Age": "age", "Breast density (ACR)": "breast_density", "BIRADS": "birads",
            "Findings": "findings", "Tags": "tags", "Machine": "machine"}
NAME = re.compile(r"^P(\d+)_([LR])_(DM|CM)_(CC|MLO)$")
FLAGS = ("regions_missing", "finding_without_roi", "roi_outside_image", "degenerate_roi")


# ------------------------------------------------------------------ xlsx metadata (pure)


def parse_metadata(data: bytes, source: str | Path) -> list[dict]:
    """Sheet 'all' of the annotations workbook -> one dict per non-blank row (cells as stripped
    strings, 'row' = sheet row number, 'raw_name' = Image_name as written)."""
    header, rows = xlsx.read_rows(data, source, SHEET)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise MedcurateError(source, f"sheet '{SHEET}': missing column(s) {missing}; found {header}")
    col = {name: i for i, name in enumerate(header) if name}
    out = []
    for number, cells in rows:
        values = {name: cells[i].strip() for name, i in col.items()}
        get = values.get
        raw = cells[col["Image_name"]]
        if not raw.strip():
            raise MedcurateError(source, f"sheet '{SHEET}' row {number}: empty Image_name")
        row = {"row": number, "raw_name": raw, "name": raw.strip(), "patient": get("Patient_ID", ""),
               "side": get("Side", ""), "type": get("Type", ""), "view": get("View", ""), "pathology": get(PATHOLOGY, "")}
        row.update({key: get(name, "") for name, key in OPTIONAL.items()})
        out.append(row)
    return out


def image_key(name: str) -> str:
    """'P10_R_DM_CC .jpg' / 'P10_R_DM_CC ' -> 'P10_R_DM_CC' (the join key of CSV, xlsx and files)."""
    name = name.strip()
    if name.lower().endswith((".jpg", ".jpeg")):
        name = name.rsplit(".", 1)[0].strip()
    return name


# ------------------------------------------------------------------ cases


@dataclass
class CesmCase(Case):
    regions: list[Region] = field(default_factory=list)
    region_count: int = 0


def cases(root: Path, plan: dict) -> list[Case]:
    xlsx, via_csv = _one(root, XLSX_PATTERN), _one(root, VIA_NAME)
    rows = parse_metadata(xlsx.read_bytes(), xlsx)
    text = read_text(via_csv)
    via = {}
    for name, entry in parse_via(text, via_csv, strict=False).items():
        via.setdefault(image_key(name), []).append(entry)
    images = _images(root)
    folders = _folders(images)
    meta_rows: dict[str, list[dict]] = {}
    for row in rows:
        meta_rows.setdefault(row["name"], []).append(row)
    out = []
    for key in sorted(meta_rows.keys() | via.keys() | images.keys()):
        out.append(_case(root, key, meta_rows.get(key, []), via.get(key, []), images.get(key, []), folders, xlsx, via_csv))
    return out


def _case(root: Path, key: str, rows: list[dict], entries: list[ViaImage], found: list[Path], folders: dict[str, Path],
          xlsx: Path, via_csv: Path) -> CesmCase:
    m = NAME.match(key)
    token = m.group(3) if m else "DM"
    # where a missing image should have been, so the quarantine listing points at the right folder
    image = found[0] if len(found) == 1 else folders.get(token, root / FOLDER[token]) / f"{key}.jpg"
    case = CesmCase(case_id=key, patient_id=f"P{int(m.group(1))}" if m else key, image=image,
                    subset=SUBSET[token] if m else "", mask=via_csv if entries else None)
    case.meta = {"type": "", "side": "", "view": "", "age": "", "breast_density": "", "birads": "",
                 "findings": "", "tags": "", "machine": "", "regions": 0, "roi_types": "", **{f: 0 for f in FLAGS}}
    problems = []
    distinct = {tuple((k, v) for k, v in r.items() if k not in ("row", "raw_name")) for r in rows}
    if len(distinct) > 1:
        problems.append((xlsx, f"sheet '{SHEET}' rows {[r['row'] for r in rows]} describe {key} differently"))
    elif len(rows) > 1:
        log.info("%s: identical rows %s in sheet '%s' collapsed", key, [r["row"] for r in rows], SHEET)
    if rows:
        row = rows[0]
        case.patient_id = f"P{row['patient']}"
        case.labels = {"pathology": row["pathology"]}
        case.meta.update({k: row[k] for k in ("type", "side", "view", "age", "birads", "findings", "tags", "machine")})
        case.meta["breast_density"] = "" if row["breast_density"] == "_" else row["breast_density"]
        problems += _cross_check(key, m, row, xlsx)
    else:
        first = f"line {entries[0].line} of {via_csv.name}" if entries else "the image folders"
        problems.append((xlsx, f"{key} (in {first}) has no row in sheet '{SHEET}': no pathology label"))
    if len(entries) > 1:
        problems.append((via_csv, f"{key} is listed under {len(entries)} file names ({[e.filename for e in entries]})"))
    elif entries:
        entry = entries[0]
        if entry.error:
            problems.append((entry.error.path, entry.error.reason))
        case.regions, case.region_count = entry.regions, entry.region_count
    if len(found) > 1:
        problems.append((found[0], f"{key} found {len(found)} times: {[str(p.relative_to(root)) for p in found]}"))
    elif not found:
        problems.append((image, f"image file {key}.jpg not found in '{FOLDER[token]}'"))
    elif m and FOLDER[token] not in found[0].parts:
        problems.append((found[0], f"a _{token}_ image in the wrong folder (expected '{FOLDER[token]}')"))
    case.problem = CaseError(*problems[0]) if problems else None
    return case


def _cross_check(key: str, m: re.Match | None, row: dict, xlsx: Path) -> list[tuple]:
    where = f"sheet '{SHEET}' row {row['row']}"
    if not m:
        return [(xlsx, f"{where}: Image_name {row['raw_name']!r} is not P<id>_<L|R>_<DM|CM>_<CC|MLO>")]
    expect = {"Patient_ID": (m.group(1), row["patient"]), "Side": (m.group(2), row["side"]),
              "Type": (TYPE[m.group(3)], row["type"]), "View": (m.group(4), row["view"])}
    return [(xlsx, f"{where}: {col} {got!r} contradicts the name {key} ({want!r})")
            for col, (want, got) in expect.items() if want != got]


def _images(root: Path) -> dict[str, list[Path]]:
    """JPEGs in the two image folders, by join key."""
    out: dict[str, list[Path]] = {}
    for path in files(root):
        if path.suffix.lower() in (".jpg", ".jpeg") and (LOW in path.parts or SUB in path.parts):
            out.setdefault(image_key(path.name), []).append(path)
    return out


def _folders(images: dict[str, list[Path]]) -> dict[str, Path]:
    """Name token (DM/CM) -> the image folder found for it: where a missing image was expected."""
    out: dict[str, Path] = {}
    for path in (p for paths in images.values() for p in paths):
        for token, name in FOLDER.items():
            if path.parent.name == name:
                out.setdefault(token, path.parent)
    return out


def _one(root: Path, pattern: str) -> Path:
    """The metadata file matching ``pattern``: the workflow's own download at the top of the root
    (the copy whose checksum is recorded) or else the one copy found below it; byte-identical
    copies count as one."""
    top = sorted(p for p in root.glob(pattern) if p.is_file())
    if len(top) == 1:
        return top[0]
    hits = files(root, pattern)
    if not hits:
        raise MedcurateError(root, f"expected file '{pattern}' not found anywhere below it: is the download complete?")
    if len({p.read_bytes() for p in hits}) > 1:
        raise MedcurateError(root, f"'{pattern}' found {len(hits)} times with different contents ({', '.join(map(str, hits[:3]))}); cannot tell which to use")
    return hits[0]


# ------------------------------------------------------------------ conversion


def load_mask(case: CesmCase, plan: dict) -> Loaded:
    shape = case.shape[:2]
    layers, actions, kinds, outside, no_region = [], [], set(), 0, 0
    for region in case.regions:
        try:
            region_mask, degenerate = rasterise(region, shape, plan["convert"]["point_radius"])
        except shapes.CoordinateError as exc:
            raise CaseError(case.mask, f"line {region.line}: region {region.region_id} ({region.shape}): {exc.reason}") from None
        kinds.add(SHAPES[region.shape][1])
        if region.shape == "polyline":
            actions.append(f"polyline_closed:{region.region_id}")
        flat = bounds_no_region(region)
        if flat:
            no_region += 1
            actions.append(f"fewer_than_3_points_{region.shape}:{region.region_id}")
        if not region_mask.any():
            outside += 1
            actions.append(f"region_outside_image:{region.region_id}")
        elif degenerate and not flat:
            actions.append(f"degenerate_{region.shape}:{region.region_id}")
        layers.append(("lesion", region_mask))
    ids = sorted(r.region_id for r in case.regions)
    facts = dict(
        regions=len(case.regions),
        roi_types=" ".join(sorted(kinds)),
        regions_missing=int(ids != list(range(case.region_count))),
        finding_without_roi=int(not case.regions and case.labels.get("pathology") != "Normal"),
        roi_outside_image=int(outside > 0),
        degenerate_roi=int(no_region > 0),
    )
    return Loaded(masks.compose(shape, layers, plan["labels"]), facts, actions)
