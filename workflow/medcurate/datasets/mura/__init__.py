"""MURA v1.1 (Stanford musculoskeletal radiographs) quirks.

- MURA-v1.1.zip unpacks to MURA-v1.1/{train,valid}/XR_<TYPE>/patientNNNNN/studyK_<positive|negative>/imageN.png
  beside {train,valid}_image_paths.csv and {train,valid}_labeled_studies.csv.
- The CSVs have NO header. image_paths: one path per line; labeled_studies: '<study path>/,<0|1>'.
  Paths start with the release folder ('MURA-v1.1/train/...'): that first component is replaced
  by the folder the CSV lies in, so a renamed or nested release still resolves.
- Labels are per STUDY (a patient has several studies, a study several views): every image gets
  its study's label, ``abnormal`` 1/0, from labeled_studies.csv, cross-checked with the folder
  suffix (_positive = 1); a disagreement quarantines the study's images naming both. The body part
  (XR_WRIST ...) is label ``study_type``.
- Images are checked against image_paths.csv both ways: listed but missing, or present but
  unlisted, are quarantined with the reason (an image in a study absent from labeled_studies.csv
  too).
- Three macOS AppleDouble files '._imageN.png' (resource-fork metadata, not PNGs) sit in XR_WRIST
  of the real release: each is listed in quarantine.csv, never decoded, never silently dropped.
- Splits: official train -> train (validation carved from it by patient hash); the public
  'valid' set -> test: it is the de-facto test set (the official test set is hidden), so model
  selection must not use it. Patient = patientNNNNN (several studies, never across splits).
- Images are mostly greyscale PNGs of varying size (max side 512): decoded as L.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...errors import CaseError, MedcurateError
from .. import Case, files, find_one, junk_files, read_text, slug

SPLITS = {"train": "train", "valid": "test"}
IMAGE = re.compile(r"^(?P<split>train|valid)/(?P<type>XR_[A-Z]+)/(?P<patient>patient\d+)/"
                   r"(?P<study>study\d+_(?P<suffix>positive|negative))/(?P<image>[^/]+)\.png$")
SUFFIX_LABEL = {"positive": "1", "negative": "0"}
JUNK = "macOS AppleDouble metadata file, not an image"


@dataclass(frozen=True)
class Listed:
    rel: str  # path below the release folder, e.g. train/XR_WRIST/patient00001/study1_positive/image1.png
    line: int


# ------------------------------------------------------------------ CSVs (pure)


def _release_relative(path: str) -> str:
    """'MURA-v1.1/train/...' -> 'train/...' (the release folder is where the CSV lies)."""
    parts = PurePosixPath(path.strip()).parts
    return PurePosixPath(*parts[1:]).as_posix() if len(parts) > 1 else ""


def _rows(text: str, source) -> list[tuple[int, list[str]]]:
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as exc:
        raise MedcurateError(source, f"unreadable CSV ({exc})") from None
    return [(n, cells) for n, cells in enumerate(rows, start=1) if any(c.strip() for c in cells)]


def parse_image_paths(text: str, source) -> list[Listed]:
    """<split>_image_paths.csv: one image path per line, no header."""
    out = []
    for line, cells in _rows(text, source):
        if len(cells) != 1 or not (rel := _release_relative(cells[0])):
            raise MedcurateError(source, f"line {line}: expected one path 'MURA-v1.1/<split>/...png', got {','.join(cells)[:80]!r}")
        out.append(Listed(rel, line))
    return out


def parse_labeled_studies(text: str, source) -> dict[str, tuple[str, int]]:
    """<split>_labeled_studies.csv: '<study path>/,<0|1>', no header -> {study rel path: (label, line)}."""
    out: dict[str, tuple[str, int]] = {}
    for line, cells in _rows(text, source):
        if len(cells) != 2 or not (rel := _release_relative(cells[0]).rstrip("/")):
            raise MedcurateError(source, f"line {line}: expected '<study path>/,<0|1>', got {','.join(cells)[:80]!r}")
        label = cells[1].strip()
        if label not in ("0", "1"):
            raise MedcurateError(source, f"line {line}: label must be 0 or 1, got {label!r}")
        if rel in out and out[rel][0] != label:
            raise MedcurateError(source, f"line {line}: study {rel} is labelled {label} here but {out[rel][0]} on line {out[rel][1]}")
        out.setdefault(rel, (label, line))
    return out


# ------------------------------------------------------------------ cases


def cases(root: Path, plan: dict) -> list[Case]:
    out = []
    for split in SPLITS:
        paths_csv = find_one(root, f"{split}_image_paths.csv")
        studies_csv = find_one(root, f"{split}_labeled_studies.csv")
        release = paths_csv.parent
        if studies_csv.parent != release:
            raise MedcurateError(studies_csv, f"expected beside {paths_csv.name} in {release}")
        listed = {item.rel: item for item in parse_image_paths(read_text(paths_csv), paths_csv)}
        if stray := next((i for i in listed.values() if not i.rel.startswith(f"{split}/")), None):
            raise MedcurateError(paths_csv, f"line {stray.line}: {stray.rel} is not in the {split} set")
        studies = parse_labeled_studies(read_text(studies_csv), studies_csv)
        on_disk = {p.relative_to(release).as_posix(): p for p in files(release / split, "*.png")}
        for rel in sorted(listed.keys() | on_disk.keys()):
            out.append(_case(rel, release, on_disk.get(rel), listed.get(rel), paths_csv, studies, studies_csv))
    out += [_junk(path, root) for path in junk_files(root)]
    return out


def _case(rel: str, release: Path, found: Path | None, listed: Listed | None, paths_csv: Path,
          studies: dict[str, tuple[str, int]], studies_csv: Path) -> Case:
    m = IMAGE.match(rel)
    image = found or release / rel
    if m is None:
        return Case(case_id=f"unparsed_{slug(rel)}", patient_id="", image=image,
                    problem=CaseError(image, "path is not <split>/XR_<TYPE>/patientNNNNN/studyK_<positive|negative>/<image>.png"))
    case = Case(case_id=f"{m['type']}_{m['patient']}_{m['study']}_{slug(m['image'])}", patient_id=m["patient"],
                image=image, split=SPLITS[m["split"]], subset=m["split"],
                meta={"study": f"{m['type']}/{m['patient']}/{m['study']}"})
    study = rel.rsplit("/", 1)[0]
    label = studies.get(study)
    if found is None:
        case.problem = CaseError(image, f"listed on line {listed.line} of {paths_csv.name} but missing")
    elif listed is None:
        case.problem = CaseError(image, f"present but not listed in {paths_csv.name}")
    elif label is None:
        case.problem = CaseError(studies_csv, f"study {study}/ of {Path(rel).name} is not in {studies_csv.name}: no label")
    elif label[0] != SUFFIX_LABEL[m["suffix"]]:
        case.problem = CaseError(studies_csv, f"line {label[1]}: study {study}/ is labelled {label[0]} but its folder says "
                                              f"'{m['suffix']}' ({SUFFIX_LABEL[m['suffix']]})")
    else:
        case.labels = {"abnormal": label[0], "study_type": m["type"]}
    return case


def _junk(path: Path, root: Path) -> Case:
    patient = next((p for p in path.parts if re.fullmatch(r"patient\d+", p)), "")
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    return Case(case_id=f"junk_{slug(rel)}", patient_id=patient, image=path, problem=CaseError(path, JUNK))
