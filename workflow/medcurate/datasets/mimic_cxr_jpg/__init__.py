"""MIMIC-CXR-JPG 2.x quirks (PhysioNet, credentialed).

- Placed release: files/pXX/pNNNNNNNN/sMMMMMMMM/<dicom_id>.jpg (pXX = 'p' + the subject id's first
  two digits) and the gzipped tables at the version root. The path is rebuilt from the three ids
  of a metadata row; a JPG found elsewhere than its ids say is quarantined, as is a JPG with no
  metadata row.
- mimic-cxr-2.0.0-metadata.csv.gz: one row per image (dicom_id, subject_id, study_id, ViewPosition,
  PatientOrientationCodeSequence_CodeMeaning, ...). ViewPosition is kept raw (view_position) and
  classified into view (PA/AP frontal, LATERAL/LL lateral, rare others such as LAO or SWIMMERS
  'other', blank unknown).
- mimic-cxr-2.0.0-split.csv.gz: the official patient-disjoint split per image; 'validate' is our
  'val'. An image without a split row is quarantined.
- mimic-cxr-2.0.0-chexpert.csv.gz: labels per STUDY (subject_id, study_id, 14 CheXpert
  observations as 1.0 / 0.0 / -1.0 / blank) joined to every image of the study. About 2,400
  studies have no label row: their images keep blank labels with unlabelled = 1 (the entry
  excludes them from the curated subset by default). The NegBio table is not read.
- A subset download (some pXX or subject folders only, e.g. p10): metadata rows of subjects with
  no placed folder are outside the subset and skipped; their count is in dataset.json's
  release_facts. A row of a placed subject whose JPG is missing is quarantined.
- Ids: subject and study ids are 8 digits; dicom ids are five dash-separated groups of 8 hex
  digits. Anything else quarantines the row, naming the CSV line.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import CaseError, MedcurateError
from ...families import cxr
from .. import Case, find_one, images_without_rows, index_files, slug

METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
LABELS = "mimic-cxr-2.0.0-chexpert.csv.gz"
SPLITS = {"train": "train", "validate": "val", "test": "test"}
DICOM_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}")
ID8 = re.compile(r"\d{8}")
OWN = {name: name.lower().replace(" ", "_") for name in cxr.CHEXPERT}  # 'Pleural Effusion' -> pleural_effusion


def cases(root: Path, plan: dict) -> list[Case]:
    meta_csv = find_one(root, METADATA)
    meta = cxr.read_csv_gz(meta_csv, ["dicom_id", "subject_id", "study_id", "ViewPosition"])
    split_csv = find_one(root, SPLIT)
    split = read_split(split_csv)
    labels = read_labels(find_one(root, LABELS))
    images = index_files(root, "*.jpg", key=lambda p: p.stem)
    placed = placed_subjects(images)
    out, seen = [], {}
    for line, row in enumerate(meta.to_dict("records"), start=2):
        dicom, subject, study = row["dicom_id"], row["subject_id"], row["study_id"]
        if dicom in seen:
            raise MedcurateError(meta_csv, f"dicom_id {dicom} is on lines {seen[dicom]} and {line}")
        seen[dicom] = line
        if subject not in placed:
            continue  # outside the placed subset (counted by dataset_facts)
        case = Case(case_id=slug(dicom) or f"line{line}", patient_id=subject, image=images.get(dicom),
                    meta={"study_id": study, "view_position": row["ViewPosition"], "view": cxr.view(row["ViewPosition"]),
                          "patient_orientation": row.get("PatientOrientationCodeSequence_CodeMeaning", ""), "unlabelled": "1"})
        try:
            check_ids(dicom, subject, study, meta_csv, line)
            expected = Path("files", f"p{subject[:2]}", f"p{subject}", f"s{study}", f"{dicom}.jpg")
            if case.image is None:
                case.image = meta_csv.parent / expected
            elif case.image.parts[-4:] != expected.parts[-4:]:
                raise CaseError(case.image, f"metadata line {line} puts this image at {expected.as_posix()}")
            case.split = official_split(split, split_csv, dicom, subject, study)
            found = labels.get((subject, study))
            if isinstance(found, CaseError):
                raise found
            case.labels = own_and_harmonised(found or {})
            case.meta["unlabelled"] = "0" if found else "1"
        except CaseError as exc:
            case.problem = exc
        out.append(case)
    return out + images_without_rows(images, seen, METADATA, patient=lambda path: path.parent.parent.name.removeprefix("p"))


def placed_subjects(images: dict[str, Path]) -> set[str]:
    """Subject ids whose files/pXX/p<subject>/ folder holds at least one JPG."""
    return {p.parent.parent.name.removeprefix("p") for p in images.values()}


def dataset_facts(root: Path, plan: dict) -> dict:
    meta = cxr.read_csv_gz(find_one(root, METADATA), ["dicom_id", "subject_id"])
    placed = placed_subjects(index_files(root, "*.jpg", key=lambda p: p.stem))
    outside = int((~meta["subject_id"].isin(placed)).sum())
    return {"metadata_rows": len(meta), "subjects_placed": len(placed), "metadata_rows_outside_placed_subset": outside,
            "label_table": LABELS}


def check_ids(dicom: str, subject: str, study: str, path: Path, line: int) -> None:
    if not DICOM_ID.fullmatch(dicom):
        raise CaseError(path, f"line {line}: dicom_id {dicom!r} is not five dash-separated groups of 8 hex digits")
    for name, value in (("subject_id", subject), ("study_id", study)):
        if not ID8.fullmatch(value):
            raise CaseError(path, f"line {line}: {name} {value!r} is not an 8-digit number")


def read_split(path: Path) -> dict[str, tuple[int, dict] | CaseError]:
    """dicom_id -> (line, row) of the split table; an id listed twice -> CaseError."""
    out: dict = {}
    for line, row in enumerate(cxr.read_csv_gz(path, ["dicom_id", "study_id", "subject_id", "split"]).to_dict("records"), start=2):
        dicom = row["dicom_id"]
        if dicom in out:
            first = out[dicom][0] if isinstance(out[dicom], tuple) else "earlier"
            out[dicom] = CaseError(path, f"dicom_id {dicom} is listed twice (lines {first} and {line})")
        else:
            out[dicom] = (line, row)
    return out


def official_split(split: dict, path: Path, dicom: str, subject: str, study: str) -> str:
    found = split.get(dicom)
    if found is None:
        raise CaseError(path, f"{dicom} has no row")
    if isinstance(found, CaseError):
        raise found
    line, row = found
    if (row["subject_id"], row["study_id"]) != (subject, study):
        raise CaseError(path, f"line {line} gives subject/study {row['subject_id']}/{row['study_id']}, "
                              f"the metadata {subject}/{study}")
    if row["split"] not in SPLITS:
        raise CaseError(path, f"line {line}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
    return SPLITS[row["split"]]


def read_labels(path: Path) -> dict[tuple[str, str], dict[str, str] | CaseError]:
    """(subject_id, study_id) -> {CheXpert observation: '1'/'0'/'-1'/''}, or a CaseError naming
    the line for a malformed or repeated study row (its images are quarantined, not the dataset)."""
    df = cxr.read_csv_gz(path, ["subject_id", "study_id", *cxr.CHEXPERT])
    out: dict = {}
    for line, row in enumerate(df.to_dict("records"), start=2):
        key = (row["subject_id"], row["study_id"])
        if key in out:
            out[key] = CaseError(path, f"line {line}: study {key[1]} of subject {key[0]} has a second label row")
            continue
        values, bad = {}, []
        for name in cxr.CHEXPERT:
            value = cxr.chexpert_value(row[name])
            if value is None:
                bad.append(f"{name}={row[name]!r}")
            values[name] = value
        out[key] = CaseError(path, f"line {line}: label(s) not 1.0/0.0/-1.0/blank: {', '.join(bad)}") if bad else values
    return out


def own_and_harmonised(values: dict[str, str]) -> dict[str, str]:
    """Own columns (snake case of the 14 observations) and the h_* columns; a study without a
    label row has every value blank."""
    own = {OWN[name]: values.get(name, "") for name in cxr.CHEXPERT}
    harmonised = cxr.from_values("mimic_cxr_jpg", {name.lower(): values.get(name, "") for name in cxr.CHEXPERT})
    return {**own, **harmonised}
