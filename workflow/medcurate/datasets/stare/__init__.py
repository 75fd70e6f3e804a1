"""STARE (STructured Analysis of the Retina) vessel subset quirks.

- Three open tars (stare-images.tar, labels-ah.tar, labels-vk.tar), each a flat list of
  individually gzipped PPMs: im0001.ppm.gz, im0001.ah.ppm.gz, im0001.vk.ppm.gz (double
  compression). unpack.py extracts the tars and leaves the .gz files; the generic image reader
  inflates them in memory (size-limited). A plain .ppm beside (already gunzipped) is read too.
- Cases: every id with a label file, and every image of the 20 vessel-labelled ids (LABELLED,
  DATASETS.md); other images (e.g. from all-images.zip) are not part of the vessel subset. An id
  whose image or first-observer label is missing is quarantined, naming the missing file; a
  labelled id with no file at all is reported in the log.
- Primary mask = Adam Hoover's labels (ah, the usual ground truth); Valentina Kouznetsova's (vk)
  is the extra mask 'observer2'. Vessel = grey level > 0. The labels' Netpbm flavour (P6 colour or
  P5 grey) is UNCONFIRMED (no real STARE file was obtainable): both read the same way.
- No FOV masks are shipped; none are derived here.
- No official split (Maninis et al. use 10/10, others leave-one-out): val/test are carved by
  patient hash (catalogue curation). Patient = image id: which images share a patient is
  UNCONFIRMED (ids like im0235/im0236 may be one person's two eyes or visits).
- Image size 700x605 (DATASETS.md; UNCONFIRMED against a real file).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ... import masks
from ...errors import CaseError, MedcurateError
from .. import Case, files

LABELLED = (1, 2, 3, 4, 5, 44, 77, 81, 82, 139, 162, 163, 235, 236, 239, 240, 255, 291, 319, 324)
NAME = re.compile(r"^(im\d{4})(?:\.(ah|vk))?\.ppm(\.gz)?$")

log = logging.getLogger("medcurate.stare")


def cases(root: Path, plan: dict) -> list[Case]:
    found = _index(root)
    if not any(kind == "" for _, kind in found):
        raise MedcurateError(root, "no STARE image (imNNNN.ppm.gz) anywhere below it: is stare-images.tar unpacked?")
    labelled = {f"im{n:04d}" for n in LABELLED}
    ids = {sid for sid, kind in found if kind or sid in labelled}
    if absent := sorted(labelled - ids):
        log.warning("%s: %d of the %d vessel-labelled STARE ids have no file at all: %s",
                    root, len(absent), len(labelled), " ".join(absent))
    return [_case(sid, found) for sid in sorted(ids)]


def _index(root: Path) -> dict[tuple[str, str], Path]:
    """(id, '' | 'ah' | 'vk') -> file, over the .ppm.gz (and plain .ppm) files below root."""
    found: dict[tuple[str, str], Path] = {}
    for path in files(root, "im*.ppm*"):
        m = NAME.match(path.name)
        if not m:
            continue
        key = (m.group(1), m.group(2) or "")
        if key in found:
            raise MedcurateError(root, f"{key[0]} {'image' if not key[1] else key[1] + ' label'} found twice "
                                       f"({found[key]}, {path}); cannot tell which to use")
        found[key] = path
    return found


def _case(sid: str, found: dict) -> Case:
    image, ah, vk = found.get((sid, "")), found.get((sid, "ah")), found.get((sid, "vk"))
    problem = None
    if image is None:
        problem = CaseError(ah or vk, f"its image {sid}.ppm.gz (stare-images.tar) is missing")
    elif ah is None:
        problem = CaseError(image, f"first-observer label {sid}.ah.ppm.gz (labels-ah.tar) is missing")
    return Case(case_id=sid, patient_id=sid, image=image, mask=ah,
                extra_masks={"observer2": vk} if vk else {}, problem=problem)


# ---------------------------------------------------------------- decoding


def load_mask(case: Case, plan: dict) -> tuple[np.ndarray, list[str]]:
    return masks.binary(case.mask, plan["labels"]["mask"]), []
