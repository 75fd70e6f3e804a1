"""DRIVE (Digital Retinal Images for Vessel Extraction) quirks.

- Gated: the official copy is behind a grand-challenge registration (the Dropbox mirror in
  DATASETS.md is third-party), so the user places DRIVE.zip, training.zip + test.zip, or the
  extracted folders. Files are found at any depth; the pairing is by folder, relative to each
  image: <split>/images/<nn>_<training|test>.tif -> <split>/1st_manual/<nn>_manual1.gif,
  <split>/2nd_manual/<nn>_manual2.gif, <split>/mask/<nn>_<training|test>_mask.gif.
- Official split from the file name: <nn>_training (21-40) = train, <nn>_test (01-20) = test.
  One image per subject (40 subjects, DATASETS.md): patient = the two-digit number.
- Images: RGB TIFF, LZW, 565x584 (the real files). Labels and FOV masks: GIF with a 256-entry grey
  palette and pixel values 0/255 (real files; Pillow opens them as L). Vessel = grey level > 0
  after conversion through the palette, so a colour-palette or 1-bit copy reads the same way.
- The primary mask is the first observer (1st_manual, the usual ground truth). The second observer
  (2nd_manual, test set only) and the field-of-view mask (mask/) are extra masks 'observer2' and
  'fov' (written to masks_observer2/, masks_fov/); a case without one has an empty column.
- Some redistributions leave out the test set's 1st_manual (UNCONFIRMED for the grand-challenge
  zip): such a case has no ground truth and is quarantined, naming the missing file.
- A label GIF with no image beside it becomes a case without image (quarantined by convert).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ... import masks
from ...errors import CaseError, MedcurateError
from .. import Case, files

IMAGE = re.compile(r"^(\d{2})_(training|test)\.tif$")
MANUAL1 = re.compile(r"^(\d{2})_manual1\.gif$")
SPLITS = {"training": "train", "test": "test"}


def cases(root: Path, plan: dict) -> list[Case]:
    images = [p for p in files(root, "*.tif") if IMAGE.match(p.name)]
    if not images:
        raise MedcurateError(root, "no DRIVE image (<nn>_training.tif or <nn>_test.tif) anywhere below it: "
                                   "is DRIVE.zip (or training.zip and test.zip) in place?")
    out = [_case(p) for p in images]
    covered = {c.mask for c in out}
    for manual in files(root, "*_manual1.gif"):
        if MANUAL1.match(manual.name) and manual not in covered:
            out.append(_orphan(manual))
    return out


def _case(image: Path) -> Case:
    nn, kind = IMAGE.match(image.name).groups()
    folder = image.parent.parent  # training/ or test/
    manual1 = folder / "1st_manual" / f"{nn}_manual1.gif"
    extra = {"fov": folder / "mask" / f"{nn}_{kind}_mask.gif",
             "observer2": folder / "2nd_manual" / f"{nn}_manual2.gif"}
    problem = None
    if not manual1.is_file():
        problem = CaseError(manual1, "first-observer vessel mask is missing (some redistributions leave out "
                                     "the test set's 1st_manual); the case has no ground truth")
    return Case(case_id=f"{nn}_{kind}", patient_id=nn, image=image, split=SPLITS[kind], mask=manual1,
                extra_masks={k: p for k, p in extra.items() if p.is_file()}, problem=problem)


def _orphan(manual: Path) -> Case:
    nn = MANUAL1.match(manual.name).group(1)
    kind = manual.parent.parent.name
    return Case(case_id=f"{nn}_{kind}" if kind in SPLITS else f"{nn}_manual1", patient_id=nn, image=None,
                split=SPLITS.get(kind), mask=manual)


def load_mask(case: Case, plan: dict) -> tuple[np.ndarray, list[str]]:
    return masks.binary(case.mask, plan["labels"]["mask"]), []
