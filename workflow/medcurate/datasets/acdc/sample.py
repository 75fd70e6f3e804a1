"""Sample of ACDC (cine MRI): synthetic voxels in the real layout.

ACDC (DATASETS.md 11b; open): acdc/ACDC.zip, the HumanHeart/Girder collection download, holding
ACDC/database/{MANDATORY_CITATION.md, training/patientNNN/, testing/patientNNN/}; each patient
folder has Info.cfg ("key: value" lines in the order ED, ES, Group, Height, NbFrame, Weight,
heights/weights written as floats "184.0", the form of a real Info.cfg quoted in
mathpluscode/CineMA's README), MANDATORY_CITATION.md, patientNNN_4d.nii.gz (i, j, k, t) and,
for the ED and ES frames Info.cfg names, patientNNN_frameXX.nii.gz + patientNNN_frameXX_gt.nii.gz
(0 background, 1 RV, 2 MYO, 3 LV). Three training patients and one testing patient (gt present,
as in the current release), 16x16x4 voxels x 6 frames; patient003's ED/ES are 2/5 (not 1/N).
Voxel dtypes (int16 image, uint8 label), the diagonal 1.5625 x 1.5625 x 10 mm affine and the text
of MANDATORY_CITATION.md are UNCONFIRMED stand-ins. The .nii.gz members are stored (already
gzip-compressed), the text members deflated, like a zip of gzip files: every member's ratio is
far under the unpacker's zip-bomb limits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...formats import shapes
from ...samples import nifti_gz, seeded, write_zip

ACDC_SHAPE = (16, 16, 4)  # i, j, k
ACDC_FRAMES = 6
ACDC_AFFINE = np.diag([1.5625, 1.5625, 10.0, 1.0])
# patient -> (folder, ED, ES, Group, Height, Weight)
ACDC_PATIENTS = {
    "patient001": ("training", 1, 4, "DCM", 184.0, 95.0),
    "patient002": ("training", 1, 3, "NOR", 160.0, 52.0),
    "patient003": ("training", 2, 5, "MINF", 175.0, 78.5),
    "patient101": ("testing", 1, 4, "HCM", 169.0, 88.0),
}
CITATION = (b"# Mandatory citation\n\nStand-in text (the real file's wording is not reproduced): cite\n"
            b"O. Bernard et al., IEEE TMI 37(11):2514-2525 (2018) when using this data.\n")


def info_cfg(ed: int, es: int, group: str, height: float, frames: int, weight: float) -> bytes:
    return (f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: {height:.1f}\nNbFrame: {frames}\n"
            f"Weight: {weight:.1f}\n").encode()


def heart_labels(t: int, ed: int, es: int, shift: float = 0.0, shape=ACDC_SHAPE) -> np.ndarray:
    """Concentric rings per slice: LV cavity (3) inside the myocardium (2), the RV cavity (1) beside
    it; cavities largest at ED, smallest at ES, smaller towards the apex (higher k); ``shift``
    moves the heart along j (a different patient)."""
    phase = 0.0 if t == ed - 1 else 1.0 if t == es - 1 else 0.5
    out = np.zeros(shape, np.uint8)
    for k in range(shape[2]):
        taper = 1.0 - 0.15 * k
        lv = (3.2 - 1.0 * phase) * taper
        rv = (2.6 - 0.6 * phase) * taper
        # formats/shapes.py works in (row = y, column = x); here the plane is (i, j): i as x, j as y
        myo_disk, _ = shapes.circle(6.5, 7.5 + shift, lv + 1.8, shape[1::-1])
        lv_disk, _ = shapes.circle(6.5, 7.5 + shift, lv, shape[1::-1])
        rv_disk, _ = shapes.circle(12.0, 7.5 + shift, rv, shape[1::-1])
        plane = np.zeros(shape[1::-1], np.uint8)
        plane[rv_disk] = 1
        plane[myo_disk] = 2
        plane[lv_disk] = 3
        out[:, :, k] = plane.T  # (j, i) -> (i, j)
    return out


def heart_shift(patient: str) -> float:
    """A per-patient shift of the heart along j: -1, 0 or 1 voxel (patient001 -> 1)."""
    return float((int(patient[-3:]) % 3 + 1) % 3 - 1)


def cine(patient: str, ed: int, es: int) -> np.ndarray:
    """The 4D series (i, j, k, t): blood bright, myocardium dark, smooth noise; every frame is
    drawn from that frame's own rings (frames between ED and ES take the middle phase)."""
    rng = seeded(f"acdc/{patient}")
    tone = np.array([30, 180, 70, 210], np.int16)  # background, RV, MYO, LV
    frames = []
    for t in range(ACDC_FRAMES):
        labels = heart_labels(t, ed, es, heart_shift(patient))
        noise = rng.integers(-4, 5, size=ACDC_SHAPE).astype(np.int16)
        frames.append(tone[labels] + noise)
    return np.stack(frames, axis=-1)


def acdc(out: Path) -> list[Path]:
    members: dict[str, bytes] = {"ACDC/database/MANDATORY_CITATION.md": CITATION}
    for patient, (folder, ed, es, group, height, weight) in ACDC_PATIENTS.items():
        base = f"ACDC/database/{folder}/{patient}/"
        series = cine(patient, ed, es)
        members[base + "Info.cfg"] = info_cfg(ed, es, group, height, ACDC_FRAMES, weight)
        members[base + "MANDATORY_CITATION.md"] = CITATION
        members[base + f"{patient}_4d.nii.gz"] = nifti_gz(series, ACDC_AFFINE)
        for frame in sorted({ed, es}):
            members[base + f"{patient}_frame{frame:02d}.nii.gz"] = nifti_gz(series[..., frame - 1], ACDC_AFFINE)
            members[base + f"{patient}_frame{frame:02d}_gt.nii.gz"] = nifti_gz(heart_labels(frame - 1, ed, es, heart_shift(patient)), ACDC_AFFINE)
    dest = out / "acdc" / "ACDC.zip"
    write_zip(dest, members, store=(".nii.gz",))
    return [dest]
