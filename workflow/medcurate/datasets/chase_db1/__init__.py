"""CHASE_DB1 (Child Heart and Health Study in England) retinal vessel quirks.

- One open zip, flat: Image_<child><eye>.jpg with Image_<child><eye>_1stHO.png and _2ndHO.png
  (child 01-14, eye L/R). Image and label stems differ: they are paired by the Image_<nn><eye>
  prefix, never by identical names.
- Images: RGB JPEG (JFIF), 999x960 (the real Image_01L.jpg). Labels: 1-bit grey PNGs (real files);
  vessel = pixel > 0. The primary mask is the first human observer (1stHO, the usual ground
  truth); the second (2ndHO) is the extra mask 'observer2'. No FOV masks are shipped; none are
  derived here.
- Patient = the child: both eyes of a child must share a split. There is no official split; the
  common convention (first 20 images train, last 8 test, i.e. children 01-10 / 11-14, both eyes
  each) is used as the official split, and validation is carved from train by child hash.
- An image without 1stHO, or a label without its image, is quarantined naming the missing file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ... import masks
from ...errors import CaseError, MedcurateError
from .. import Case, files

NAME = re.compile(r"^Image_(\d{2})([LR])(?:_(1stHO|2ndHO))?\.(jpg|png)$")
LAST_TRAIN_CHILD = 10  # children 01-10 train (20 images), 11-14 test (8 images)


def cases(root: Path, plan: dict) -> list[Case]:
    groups: dict[tuple[str, str], dict[str, Path]] = {}
    for path in files(root, "Image_*"):
        m = NAME.match(path.name)
        if not m:
            continue
        child, eye, observer, ext = m.groups()
        role = observer or "image"
        if (role == "image") != (ext == "jpg"):
            continue  # not the published pairing (jpg images, png labels)
        slot = groups.setdefault((child, eye), {})
        if role in slot:
            raise MedcurateError(root, f"{path.name} found twice ({slot[role]}, {path}); cannot tell which to use")
        slot[role] = path
    if not groups:
        raise MedcurateError(root, "no CHASE_DB1 file (Image_<nn><L|R>.jpg, ..._1stHO.png) anywhere below it: "
                                   "is CHASEDB1.zip unpacked?")
    return [_case(child, eye, slot) for (child, eye), slot in sorted(groups.items())]


def _case(child: str, eye: str, slot: dict[str, Path]) -> Case:
    image, first = slot.get("image"), slot.get("1stHO")
    problem = None
    if image is None:
        label = first or slot["2ndHO"]
        problem = CaseError(label, f"label has no matching image Image_{child}{eye}.jpg")
    elif first is None:
        problem = CaseError(image.with_name(f"Image_{child}{eye}_1stHO.png"),
                            "first-observer vessel mask is missing; the case has no ground truth")
    return Case(case_id=f"Image_{child}{eye}", patient_id=f"child{child}", image=image,
                split="train" if int(child) <= LAST_TRAIN_CHILD else "test", mask=first,
                meta={"eye": eye}, extra_masks={"observer2": slot["2ndHO"]} if "2ndHO" in slot else {},
                problem=problem)


def load_mask(case: Case, plan: dict) -> tuple[np.ndarray, list[str]]:
    return masks.binary(case.mask, plan["labels"]["mask"]), []
