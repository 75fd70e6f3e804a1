"""PadChest quirks (BIMCV, Hospital San Juan, Alicante; request form, then a share link).

- One labels table, PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz (160,861 rows per a
  third-party count), and the images as 16-bit grayscale PNGs spread over numbered zips (0.zip ...
  50.zip and 54.zip; ImageDir = the zip number). Images are found by ImageID wherever they were
  extracted. The full header beyond the columns read here is UNCONFIRMED.
- Labels: a Python-literal list in a string ("['cardiomegaly', 'pleural effusion']", 'normal' for a
  normal study), read with ast.literal_eval (never eval); entries are stripped (some carry a
  leading space), kept ';'-joined in finding_labels. Positive-only: a finding not listed is 0 in
  the h_* columns. An empty or NaN Labels cell (103 real rows) leaves every h_* blank with
  unlabelled = 1; the meta-labels 'exclude' and 'suboptimal study' become the flags
  label_exclude / label_suboptimal (reported, not excluded unless select.exclude_flags says so).
  A Labels cell that is not a list of strings quarantines the image, naming the CSV line.
- Projection (PA, L, AP, AP_horizontal, COSTAL, EXCLUDE, UNK) -> view (PA, AP and AP_horizontal
  frontal; L lateral; COSTAL, EXCLUDE other; UNK unknown). No official split: patient-hash split
  on PatientID.
- 21 images are known to be missing or unreadable in the public release (torchxrayvision's list:
  11 missing, 8 truncated, 2 with a broken PNG chunk); they are decoded like every other image and,
  when that fails, quarantined with the known fault added to the decoder's reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np

from ...errors import CaseError, MedcurateError
from ...images import read_image
from ...families import cxr
from .. import Case, files, images_without_rows, index_files, slug

CSV_PATTERN = "PADCHEST_chest_x_ray_images_labels_160K*.csv*"
REQUIRED = ["ImageID", "ImageDir", "StudyID", "PatientID", "Projection", "MethodLabel", "Labels"]
OPTIONAL = {"PatientBirth": "patient_birth", "PatientSex_DICOM": "patient_sex", "ViewPosition_DICOM": "view_position_dicom"}
NO_LABELS = {"", "nan", "[]"}
MAX_LABELS_CHARS = 20_000  # the longest real cell is a few hundred; literal_eval of more is refused
META_LABELS = {"exclude": "label_exclude", "suboptimal study": "label_suboptimal"}
MISSING = "missing from the release"
TRUNCATED = "truncated file"
BROKEN_CHUNK = "broken PNG chunk"
# ImageID -> the fault torchxrayvision's PC_Dataset records for it (DATASETS.md section 15)
KNOWN_UNREADABLE = {
    **dict.fromkeys([
        "216840111366964012819207061112010307142602253_04-014-084.png",
        "216840111366964012989926673512011074122523403_00-163-058.png",
        "216840111366964012959786098432011033083840143_00-176-115.png",
        "216840111366964012558082906712009327122220177_00-102-064.png",
        "216840111366964012339356563862009072111404053_00-043-192.png",
        "216840111366964013076187734852011291090445391_00-196-188.png",
        "216840111366964012373310883942009117084022290_00-064-025.png",
        "216840111366964012283393834152009033102258826_00-059-087.png",
        "216840111366964012373310883942009170084120009_00-097-074.png",
        "216840111366964012819207061112010315104455352_04-024-184.png",
        "216840111366964012819207061112010306085429121_04-020-102.png"], MISSING),
    **dict.fromkeys([
        "216840111366964012373310883942009152114636712_00-102-045.png",
        "216840111366964012819207061112010281134410801_00-129-131.png",
        "216840111366964012487858717522009280135853083_00-075-001.png",
        "216840111366964013686042548532013208193054515_02-026-007.png",
        "216840111366964013590140476722013058110301622_02-056-111.png",
        "216840111366964013590140476722013043111952381_02-065-198.png",
        "216840111366964013829543166512013353113303615_02-092-190.png",
        "216840111366964013962490064942014134093945580_01-178-104.png"], TRUNCATED),
    **dict.fromkeys([
        "216840111366964012989926673512011083134050913_00-168-009.png",
        "216840111366964012989926673512011151082430686_00-157-045.png"], BROKEN_CHUNK),
}


def find_table(root: Path) -> Path:
    hits = files(root, CSV_PATTERN)
    if len(hits) != 1:
        raise MedcurateError(root, f"expected one labels table {CSV_PATTERN}, found {len(hits)}"
                                   + (f" ({', '.join(map(str, hits[:3]))})" if hits else ": is the download complete?"))
    return hits[0]


def cases(root: Path, plan: dict) -> list[Case]:
    table = find_table(root)
    df = cxr.read_csv_gz(table, REQUIRED)
    images = index_files(root, "*.png")
    out, seen = [], set()
    for line, row in enumerate(df.to_dict("records"), start=2):
        name = row["ImageID"]
        case_id = slug(name.removesuffix(".png")) or f"line{line}"
        if name in seen:  # a row repeated: the first stands, the repeat is quarantined
            out.append(Case(case_id=f"{case_id}_line{line}", patient_id=row["PatientID"] or case_id, image=None,
                            problem=CaseError(table, f"line {line}: ImageID {name} is listed again")))
            continue
        seen.add(name)
        case = Case(case_id=case_id, patient_id=row["PatientID"] or case_id, image=images.get(name, table.parent / name),
                    meta={"study_id": row["StudyID"], "image_dir": row["ImageDir"], "projection": row["Projection"],
                          "view": cxr.view(row["Projection"]), "method_label": row["MethodLabel"],
                          **{ours: row.get(theirs, "") for theirs, ours in OPTIONAL.items()}})
        try:
            if f"{case_id}.png" != name:
                raise CaseError(table, f"line {line}: ImageID {name!r} is not a plain <name>.png file name")
            if not row["PatientID"]:
                raise CaseError(table, f"line {line}: PatientID is empty")
            terms = parse_labels(row["Labels"], table, line)
            case.labels = cxr.from_terms("padchest", terms)
            case.meta.update(finding_labels=";".join(terms or []), unlabelled="1" if terms is None else "0",
                             **{flag: "1" if term in (terms or []) else "0" for term, flag in META_LABELS.items()})
        except CaseError as exc:
            case.problem = exc
        out.append(case)
    return out + images_without_rows(images, seen, table.name)


def dataset_facts(root: Path, plan: dict) -> dict:
    """Labels entries the harmonised mapping does not use, by the number of images carrying them."""
    df = cxr.read_csv_gz(find_table(root), ["Labels"])
    lists = []
    for line, text in enumerate(df["Labels"], start=2):
        try:
            lists.append(parse_labels(text, root, line))
        except CaseError:
            continue  # quarantined by cases()
    return {"labels_rows": len(df), "unmapped_labels": cxr.unmapped_counts("padchest", lists)}


def parse_labels(text: str, path: Path, line: int) -> list[str] | None:
    """"['pleural effusion', ' cardiomegaly']" -> ['pleural effusion', 'cardiomegaly'] (stripped,
    first occurrence order, repeats dropped); an empty or NaN cell -> None."""
    if text.strip().lower() in NO_LABELS:
        return None
    if len(text) > MAX_LABELS_CHARS:
        raise CaseError(path, f"line {line}: Labels is {len(text)} characters long, more than {MAX_LABELS_CHARS}")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise CaseError(path, f"line {line}: Labels {text[:80]!r} is not a Python list literal ({type(exc).__name__})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CaseError(path, f"line {line}: Labels {text[:80]!r} is not a list of strings")
    terms = list(dict.fromkeys(t for t in (re.sub(r"\s+", " ", v).strip() for v in value) if t))
    if any(";" in t for t in terms):
        raise CaseError(path, f"line {line}: a label contains ';' ({text[:80]!r}), the separator of finding_labels")
    return terms or None


def load_image(case: Case, plan: dict) -> np.ndarray:
    """16-bit grayscale PNG kept at 16 bits; a known fault of the release is named on failure."""
    name = Path(case.image).name
    try:
        image = read_image(case.image, plan["convert"]["image_mode"])
    except CaseError as exc:
        if name in KNOWN_UNREADABLE:
            raise CaseError(exc.path, f"{exc.reason}; known fault of the public release: {KNOWN_UNREADABLE[name]} "
                                      "(listed by torchxrayvision)") from None
        raise
    if image.ndim != 2:
        raise CaseError(case.image, f"expected a single-channel radiograph, got shape {image.shape}")
    if image.dtype != np.uint16 and image.dtype != np.uint8:
        if image.min() < 0 or image.max() > 65535:
            raise CaseError(case.image, f"pixel values {image.min()}..{image.max()} do not fit 16 bits")
        image = image.astype(np.uint16)
    return image
