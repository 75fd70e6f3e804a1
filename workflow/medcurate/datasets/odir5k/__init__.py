"""ODIR-5K (Ocular Disease Intelligent Recognition, training set) quirks.

- ODIR-5K_Training_Images/<ID>_left.jpg, <ID>_right.jpg beside
  'ODIR-5K_Training_Annotations(Updated)_V2.xlsx' (release archive names UNCONFIRMED: the images
  folder is found at any depth, the xlsx by name). The testing images carry no public labels and
  are not converted.
- The workbook's first sheet (its name is UNCONFIRMED) has one row per PATIENT: ID, Patient Age,
  Patient Sex, Left-Fundus, Right-Fundus (the file names), Left-/Right-Diagnostic Keywords, and
  N D G C A H M O as 0/1. Those eight are PATIENT-level (both eyes together): they are kept as
  ``patient_N`` ... ``patient_O`` columns and are NOT the eye's labels. Every XML part of the
  workbook passes defusedxml before openpyxl reads it.
- One case per eye. Per-eye keywords are separated by the FULL-WIDTH comma '，' (U+FF0C); an ASCII
  ',' is accepted too (a hand-edited row may use it); the list is column ``keywords``
  (';'-joined). Label ``normal`` = 1 when the eye's diagnostic keywords are exactly 'normal fundus'.
- Keywords that describe the photograph, not the eye, become flags (excluded by the catalogue's
  exclude_flags): ``not_fundus`` ('anterior segment image', 'no fundus image': an eye photograph
  or a second image of the other side), ``low_quality`` ('low image quality', 'image offset',
  'optic disk photographically invisible'), ``lens_dust``; an eye with only such keywords has no
  diagnosis (``no_diagnosis``).
- Left-/Right-Fundus must name <ID>_left.jpg / <ID>_right.jpg (else quarantined, naming both); an
  image listed but missing (some were discarded from the release), or present but in no row, is
  quarantined. No official split with labels: train/val/test drawn by patient (ID) hash.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import CaseError, MedcurateError
from ...formats import xlsx
from .. import Case, files, find_one, slug

# CDD-CESM's safe xlsx reading (every XML part through defusedxml first) is generic: reused here.

XLSX = "ODIR-5K_Training_Annotations(Updated)_V2.xlsx"
IMAGES = "ODIR-5K_Training_Images"
DISEASES = ["N", "D", "G", "C", "A", "H", "M", "O"]
COLUMNS = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus",
           "Left-Diagnostic Keywords", "Right-Diagnostic Keywords", *DISEASES]
EYES = ("left", "right")
SEPARATORS = re.compile("[\uff0c,]")  # full-width comma (the release's) and ASCII comma
NORMAL = "normal fundus"
FLAG_KEYWORDS = {
    "not_fundus": {"anterior segment image", "no fundus image"},
    "low_quality": {"low image quality", "image offset", "optic disk photographically invisible"},
    "lens_dust": {"lens dust"},
}
FLAGS = [*FLAG_KEYWORDS, "no_diagnosis"]


# ------------------------------------------------------------------ workbook (pure)


def parse_annotations(data: bytes, source) -> list[dict]:
    """The first sheet -> one dict per non-blank row: 'row' (sheet row number) and each column
    as a stripped string."""
    header, rows = xlsx.read_rows(data, source)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise MedcurateError(source, f"missing column(s) {missing}; found {header}")
    col = {name: header.index(name) for name in COLUMNS}
    out = []
    for number, cells in rows:
        out.append({"row": number, **{name: cells[i].strip() for name, i in col.items()}})
    return out


def split_keywords(text: str) -> list[str]:
    return [k.strip() for k in SEPARATORS.split(text) if k.strip()]


def eye_facts(keywords: list[str]) -> tuple[str, dict[str, int]]:
    """(normal '0'/'1', flags) of one eye from its keywords."""
    lowered = {k.lower() for k in keywords}
    flags = {flag: int(bool(lowered & words)) for flag, words in FLAG_KEYWORDS.items()}
    diagnoses = lowered - set().union(*FLAG_KEYWORDS.values())
    flags["no_diagnosis"] = int(not diagnoses)
    return ("1" if diagnoses == {NORMAL} else "0"), flags


# ------------------------------------------------------------------ cases


def cases(root: Path, plan: dict) -> list[Case]:
    xlsx = find_one(root, XLSX)
    rows = parse_annotations(xlsx.read_bytes(), xlsx)
    images: dict[str, list[Path]] = {}
    for path in files(root, "*.jpg"):
        if IMAGES in path.parts:
            images.setdefault(path.name, []).append(path)
    if not images:
        raise MedcurateError(root, f"no JPEG in any {IMAGES}/ folder below it: are the training images in place?")
    out, seen_ids, listed = [], {}, set()
    for row in rows:
        if row["ID"] in seen_ids:
            raise MedcurateError(xlsx, f"row {row['row']}: ID {row['ID']} already on row {seen_ids[row['ID']]}")
        seen_ids[row["ID"]] = row["row"]
        for eye in EYES:
            listed.add(row[f"{eye.capitalize()}-Fundus"])
            out.append(_case(row, eye, images, xlsx))
    for name in sorted(images.keys() - listed):
        path = images[name][0]
        out.append(Case(case_id=f"unlisted_{slug(Path(name).stem)}", patient_id="", image=path,
                        problem=CaseError(path, f"present in {IMAGES}/ but in no row of {xlsx.name}")))
    return out


def _case(row: dict, eye: str, images: dict[str, list[Path]], xlsx: Path) -> Case:
    pid, side = row["ID"], eye.capitalize()
    name = row[f"{side}-Fundus"]
    found = images.get(name, [])
    case = Case(case_id=f"{slug(pid)}_{eye}", patient_id=pid, image=found[0] if found else None)
    where = f"row {row['row']} (ID {pid})"
    bad = [d for d in DISEASES if row[d] not in ("0", "1")]
    keywords = split_keywords(row[f"{side}-Diagnostic Keywords"])
    if not re.fullmatch(r"\d+", pid):
        problem = CaseError(xlsx, f"{where}: ID must be a number")
    elif name != f"{pid}_{eye}.jpg":
        problem = CaseError(xlsx, f"{where}: {side}-Fundus is {name!r}, expected '{pid}_{eye}.jpg'")
    elif bad:
        problem = CaseError(xlsx, f"{where}: {bad} must be 0 or 1, got {[row[d] for d in bad]}")
    elif not keywords:
        problem = CaseError(xlsx, f"{where}: no {side}-Diagnostic Keywords")
    elif not found:
        problem = CaseError(xlsx, f"{where}: {name} is listed but not in {IMAGES}/")
    elif len(found) > 1:
        problem = CaseError(found[1], f"{name} found {len(found)} times ({', '.join(map(str, found))})")
    else:
        problem = None
    if problem is not None:
        case.problem = problem
        return case
    normal, flags = eye_facts(keywords)
    case.labels = {"normal": normal}
    case.meta = {"eye": eye, "keywords": ";".join(keywords), "age": row["Patient Age"], "sex": row["Patient Sex"],
                 **flags, **{f"patient_{d}": row[d] for d in DISEASES}}
    return case
