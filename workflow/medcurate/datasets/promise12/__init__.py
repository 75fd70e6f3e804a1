"""PROMISE12 (MICCAI 2012 prostate MR segmentation; Zenodo record 8026660) quirks.

- training_data.zip holds training_data/CaseNN.mhd + CaseNN.raw (T2-weighted image) and
  CaseNN_segmentation.mhd + .raw (label: 0 background, 1 prostate, whole gland), NN = 00..49.
  Cases are found at any depth (publishers and mirrors nest top folders inconsistently).
- MetaImage pairs: the .mhd header names its .raw (ElementDataFile); volumes.read_volume reads
  them with SimpleITK, after checking the .raw is beside its header and of the declared size.
  Voxel types per the challenge's description (third-party copy): images MET_SHORT (int16),
  labels MET_CHAR (int8), cast to uint8 on conversion. The exact header keys and their order in
  the real files are UNCONFIRMED (the sample mimics SimpleITK's writer).
- Multi-centre, multi-vendor (with and without endorectal coil): spacing, matrix and intensity
  differ per case; spacing and the original orientation are recorded per case (manifest columns
  spacing, orientation_in), no resampling (nnU-Net plans its own).
- Patient = case (50 men; one scan each, UNCONFIRMED beyond the challenge's description); no
  official validation/test split among the labelled cases: all three splits carved by hash.
- test_data.zip / livechallenge_test_data.zip hold no labels (test labels in the Zenodo version
  UNCONFIRMED): not downloaded, not converted.
- An image without its segmentation, or a segmentation without its image, is quarantined and
  listed, never silently dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import CaseError, MedcurateError
from .. import Case, index_files

IMAGE = re.compile(r"^(Case\d+)\.mhd$", re.IGNORECASE)
LABEL = re.compile(r"^(Case\d+)_segmentation\.mhd$", re.IGNORECASE)


def cases(root: Path, plan: dict) -> list[Case]:
    images, labels = _index(root, IMAGE), _index(root, LABEL)
    if not images and not labels:
        raise MedcurateError(root, "no CaseNN.mhd / CaseNN_segmentation.mhd found below it: is training_data.zip unpacked?")
    out = []
    for case_id in sorted(images.keys() | labels.keys()):
        image, label = images.get(case_id), labels.get(case_id)
        problem = None
        if image is None:
            problem = CaseError(label, f"segmentation without its image {case_id}.mhd")
        elif label is None:
            problem = CaseError(image, f"image without its segmentation {case_id}_segmentation.mhd")
        out.append(Case(case_id=case_id, patient_id=case_id, image=image, mask=label,
                        subset=(image or label).parent.name, problem=problem))
    return out


def _index(root: Path, pattern: re.Pattern) -> dict[str, Path]:
    def case_id(path: Path) -> str | None:
        m = pattern.match(path.name)
        return m and m.group(1)[:1].upper() + m.group(1)[1:].lower()  # 'case03' and 'Case03' are one case

    return index_files(root, "*.[mM][hH][dD]", key=case_id)
