"""Kermany/Zhang/Goldbaum labelled OCT (Mendeley rscbjbr9sj, OCT2017.tar.gz) quirks.

- Layout OCT2017/{train,test}/{CNV,DME,DRUSEN,NORMAL}/<CLASS>-<patientID>-<n>.jpeg; only the last
  three path parts are read, because the top folder's name varies between copies (the Kaggle
  re-pack has 'OCT2017 ' with a trailing space and adds val/; whether the Mendeley archive does is
  UNCONFIRMED). A val/ folder, where present, is kept as an official val split.
- Label = the class folder. The class in the file name must agree with the folder, else the image
  is quarantined (as are names not of the <CLASS>-<patient>-<n>.jpeg form and folders outside
  train/test/val or the four classes).
- Patient = the file name's middle token. Many B-scans per patient: any re-split must group by
  patient. Some patients are in both train and test (third-party re-analysis removed 3,663 such
  training images); the generic ``split_conflicts`` option decides (catalogue: move_to_test).
- Non-JPEG files (the Kaggle copy's .DS_Store) are not images and are ignored; AppleDouble '._'
  files are skipped by datasets.files().
- Case id = <split>_<file stem>, so a file name reused across splits stays two cases.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from ...errors import CaseError
from .. import Case, files, slug

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
SPLITS = ("train", "test", "val")
NAME = re.compile(r"^([A-Za-z]+)-(\d+)-(\d+)\.jpe?g$", re.IGNORECASE)


def cases(root: Path, plan: dict) -> list[Case]:
    out = []
    for path in files(root):
        if path.suffix.lower() not in (".jpeg", ".jpg"):
            continue
        out.append(case_for(path))
    return out


def case_for(path: Path) -> Case:
    """One image from its last three path parts: <split>/<class>/<CLASS>-<patient>-<n>.jpeg."""
    split, folder = path.parent.parent.name, path.parent.name
    # the id names output files; a name with nothing file-safe in it still gets a stable one
    case_id = slug(f"{split}_{path.stem}") or f"unnamed_{zlib.crc32(str(path).encode()):08x}"
    match = NAME.match(path.name)
    case = Case(case_id=case_id, patient_id=match.group(2) if match else case_id, image=path,
                split=split if split in SPLITS else None, labels={"diagnosis": folder})
    case.problem = problem(path, split, folder, match)
    return case


def problem(path: Path, split: str, folder: str, match: re.Match | None) -> CaseError | None:
    if split not in SPLITS:
        return CaseError(path, f"not inside a {'/'.join(SPLITS)} folder (found {split!r})")
    if folder not in CLASSES:
        return CaseError(path, f"class folder {folder!r} is not one of {', '.join(CLASSES)}")
    if match is None:
        return CaseError(path, "file name is not <CLASS>-<patient>-<n>.jpeg")
    if match.group(1) != folder:
        return CaseError(path, f"file name says class {match.group(1)} but the image is in folder {folder}/")
    return None
