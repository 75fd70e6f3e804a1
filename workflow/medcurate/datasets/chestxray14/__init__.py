"""NIH ChestX-ray14 quirks.

- Twelve images_001..012.tar.gz archives (the Box shared-link files are called <hash>.gz; the
  catalogue names them back), each unpacking into images/<patient8>_<followup3>.png. An image
  name found in two archives is an error; a PNG without a CSV row is quarantined.
- Data_Entry_2017_v2020.csv: its header splits "OriginalImage[Width,Height]" and
  "OriginalImagePixelSpacing[x,y]" into four columns ("OriginalImage[Width", "Height]", ...) and
  may end with an empty column; the gender column is "Patient Gender" (2017 file) or "Patient
  Sex" (third-party copies of the v2020 file). Exact header UNCONFIRMED: columns are matched
  case-, space- and punctuation-insensitively.
- Finding Labels: '|'-separated findings or 'No Finding' -> one 0/1 column per finding (14,
  'Pleural_Thickening' with its underscore), ``no_finding``, and the raw ``finding_labels``. An
  unknown finding, an empty cell or 'No Finding' mixed with findings quarantines the image,
  naming the CSV line. Labels are NLP-mined from reports: noisy.
- Official patient-wise split from train_val_list.txt (-> train; val is carved from it by patient
  hash) and test_list.txt. An image in both lists or in neither is quarantined; a patient in both
  is handled by the generic ``split_conflicts`` option.
- Chest X-ray family (cxr.py): harmonised ``h_*`` columns from the findings (ChestX-ray14 cannot
  provide the six CheXpert-only observations: blank), and ``view`` from View Position (PA/AP:
  frontal).
- Some PNGs are reportedly RGBA (UNCONFIRMED): images are read in mode L.
- The CSV and list files have no published direct link (only the Box folder page), so they are
  placed by hand beside the twelve downloaded archives.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from ...errors import CaseError, MedcurateError
from ...families import cxr
from .. import Case, find_one, images_without_rows, index_files, read_table, read_text, slug

CSV = "Data_Entry_2017_v2020.csv"
TRAIN_VAL, TEST = "train_val_list.txt", "test_list.txt"
FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
            "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
NO_FINDING = "No Finding"
# our column -> accepted headers, compared after _norm (lower case, letters and digits only)
COLUMNS = {
    "image": ["Image Index"],
    "finding_labels": ["Finding Labels"],
    "follow_up": ["Follow-up #"],
    "patient": ["Patient ID"],
    "age": ["Patient Age"],
    "gender": ["Patient Gender", "Patient Sex"],
    "view_position": ["View Position"],
    "original_width": ["OriginalImage[Width"],
    "original_height": ["Height]"],
    "pixel_spacing_x": ["OriginalImagePixelSpacing[x"],
    "pixel_spacing_y": ["y]"],
}
META = ["follow_up", "age", "gender", "view_position", "original_width", "original_height",
        "pixel_spacing_x", "pixel_spacing_y"]


@functools.cache  # one string per column, shared by every case's labels (not one per case)
def column(name: str) -> str:
    """The manifest column of a finding: 'Pleural_Thickening' -> 'pleural_thickening'."""
    return name.lower()


def cases(root: Path, plan: dict) -> list[Case]:
    csv = find_one(root, CSV)
    entries = read_entries(csv)
    split = official_splits(find_one(root, TRAIN_VAL), find_one(root, TEST))
    images = image_index(root)
    out, seen = [], set()
    for line, row in entries:
        name, listed = row["image"], split.get(row["image"])
        seen.add(name)
        case_id = slug(name.removesuffix(".png")) or f"line{line}"
        case = Case(case_id=case_id, patient_id=row["patient"], image=images.get(name, csv.parent / "images" / name),
                    split=listed if listed in ("train", "test") else None,
                    meta={"finding_labels": row["finding_labels"], **{k: row[k] for k in META},
                          "view": cxr.view(row["view_position"])})
        try:
            if f"{case_id}.png" != name:  # the id names output files: never a path
                raise CaseError(csv, f"line {line}: Image Index {name!r} is not a plain <name>.png file name")
            case.patient_id = patient(row["patient"], csv, line)
            case.labels = findings(row["finding_labels"], csv, line)
            case.labels.update(cxr.from_terms("chestxray14", str(row["finding_labels"]).split("|")))
            if case.split is None:
                raise CaseError(csv, f"line {line}: {name} is in {'both' if listed else 'neither'} of {TRAIN_VAL} and {TEST}")
        except CaseError as exc:
            case.problem = exc
        out.append(case)
    return out + images_without_rows(images, seen, CSV)


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def read_entries(path: Path) -> list[tuple[int, dict]]:
    """(CSV line, row with our column names) for every row of the Data_Entry CSV."""
    df = read_table(path, ",", [])
    found = {_norm(c): c for c in df.columns}
    rename, missing = {}, []
    for ours, headers in COLUMNS.items():
        hit = next((found[_norm(h)] for h in headers if _norm(h) in found), None)
        if hit is None:
            missing.append(" or ".join(headers))
        else:
            rename[hit] = ours
    if missing:
        raise MedcurateError(path, f"missing column(s) {missing}; found {list(df.columns)} (wrong delimiter?)")
    rows = df[list(rename)].rename(columns=rename).to_dict("records")
    return list(enumerate(rows, start=2))


def findings(text: str, path: Path, line: int) -> dict[str, str]:
    """'Effusion|Mass' -> {'no_finding': '0', 'atelectasis': '0', ..., 'effusion': '1', ...}."""
    names = [n.strip() for n in str(text).split("|")]
    if names == [NO_FINDING]:
        return {"no_finding": "1", **{column(f): "0" for f in FINDINGS}}
    if NO_FINDING in names:
        raise CaseError(path, f"line {line}: '{NO_FINDING}' together with findings in {text!r}")
    if unknown := sorted({n for n in names if n not in FINDINGS}):
        raise CaseError(path, f"line {line}: unknown finding(s) {unknown} in Finding Labels {text!r}")
    return {"no_finding": "0", **{column(f): "1" if f in names else "0" for f in FINDINGS}}


def patient(value: str, path: Path, line: int) -> str:
    """Patient ID as the 8 digits of the image names (the CSV has it unpadded)."""
    if not re.fullmatch(r"\d{1,8}", str(value)):
        raise CaseError(path, f"line {line}: Patient ID must be a number, got {value!r}")
    return f"{int(value):08d}"


def read_list(path: Path) -> list[str]:
    """Image names, one a line (blank lines and surrounding spaces ignored)."""
    text = read_text(path)
    return [n.strip() for n in text.splitlines() if n.strip()]


def official_splits(train_val: Path, test: Path) -> dict[str, str]:
    """image name -> 'train', 'test', or 'both' (listed in the two files)."""
    split = {name: "train" for name in read_list(train_val)}
    for name in read_list(test):
        split[name] = "both" if split.get(name, "test") != "test" else "test"
    return split


def image_index(root: Path) -> dict[str, Path]:
    return index_files(root, "*.png")

