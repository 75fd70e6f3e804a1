"""Sample of KiTS19 (CT): synthetic voxels in the real layout.

KiTS19 (DATASETS.md 11c; placed by hand): kits19/manual/kits19.zip, a stand-in for the user's
clone of neheller/kits19 after starter_code/get_imaging.py: kits19/data/kits.json (a JSON list
of per-case records, 2-space indent, the field names of the real file, synthetic values) and
kits19/data/case_0000{0..3}/{imaging.nii.gz, segmentation.nii.gz}, plus case_00210/imaging.nii.gz
only (a test case: labels withheld). Arrays are (slices, height, width) with the affine the
kits19 README documents: [[0, 0, -pixel_width, 0], [0, -pixel_width, 0, 0],
[-slice_thickness, 0, 0, 0], [0, 0, 0, 1]]; imaging float32 holding integer HU values,
segmentation uint8 (0 background, 1 kidney, 2 tumour; case_00002 has no tumour).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...formats import shapes
from ...samples import nifti_gz, seeded, write_zip

KITS_SHAPE = (8, 24, 24)  # slices, height, width
# case -> (pixel width, slice thickness, has segmentation, has tumour, clinical record)
KITS_CASES = {
    "case_00000": (0.78125, 3.0, True, True, {"age": 61, "gender": "male", "malignant": True, "subtype": "clear_cell_rcc"}),
    "case_00001": (0.919921875, 5.0, True, True, {"age": 47, "gender": "female", "malignant": True, "subtype": "papillary"}),
    "case_00002": (0.703125, 2.5, True, False, {"age": 55, "gender": "male", "malignant": False, "subtype": "oncocytoma"}),
    "case_00003": (0.8359375, 3.0, True, True, {"age": 70, "gender": "female", "malignant": True, "subtype": "chromophobe"}),
    "case_00210": (0.78125, 5.0, False, True, None),
}


def kits_affine(pixel_width: float, slice_thickness: float) -> np.ndarray:
    return np.array([[0, 0, -pixel_width, 0], [0, -pixel_width, 0, 0], [-slice_thickness, 0, 0, 0], [0, 0, 0, 1]], float)


def kidney_labels(case: str, tumour: bool) -> np.ndarray:
    """(slices, height, width): one kidney (1) at low column indices (the patient's right: columns
    run towards L), spanning slices 2-6, with a tumour (2) bulging from its lower pole; drawn
    per slice with shapes.ellipse."""
    seg = np.zeros(KITS_SHAPE, np.uint8)
    rng = seeded(f"kits19/{case}")
    cx, cy = 7.0 + rng.integers(0, 3), 12.0 + rng.integers(-2, 3)
    for s in range(2, 7):
        kidney, _ = shapes.ellipse(cx, cy, 3.0, 4.5 - abs(s - 4) * 0.6, KITS_SHAPE[1:])
        seg[s][kidney] = 1
        if tumour and s in (4, 5):
            lump, _ = shapes.circle(cx + 2.5, cy + 3.0, 2.0, KITS_SHAPE[1:])
            seg[s][lump] = 2
    return seg


def ct_volume(case: str, seg: np.ndarray) -> np.ndarray:
    """Integer HU values stored as float32 (the real imaging dtype): air outside a body ellipse,
    soft tissue inside, kidney and tumour enhancing."""
    rng = seeded(f"kits19/ct/{case}")
    body, _ = shapes.ellipse(11.5, 11.5, 10.5, 9.0, KITS_SHAPE[1:])
    hu = np.where(body, 40, -1000).astype(np.int16)[None].repeat(KITS_SHAPE[0], 0)
    hu = hu + np.array([0, 150, 90], np.int16)[seg] + rng.integers(-10, 11, size=KITS_SHAPE).astype(np.int16)
    return hu.astype(np.float32)


def kits_record(case: str, width: float, thickness: float, facts: dict) -> dict:
    """A kits.json entry: the real field names (a selection) in the real order, synthetic values."""
    return {
        "case_id": case,
        "age_at_nephrectomy": facts["age"],
        "gender": facts["gender"],
        "body_mass_index": 27.5,
        "malignant": facts["malignant"],
        "tumor_histologic_subtype": facts["subtype"],
        "tumor_isup_grade": 2 if facts["malignant"] else None,
        "surgical_procedure": "partial_nephrectomy",
        "vital_status": "censored",
        "voxel_spacing": {"x_spacing": width, "y_spacing": width, "z_spacing": thickness},
    }


def kits19(out: Path) -> list[Path]:
    records, members = [], {}
    for case, (width, thickness, labelled, tumour, facts) in KITS_CASES.items():
        seg = kidney_labels(case, tumour)
        affine = kits_affine(width, thickness)
        members[f"kits19/data/{case}/imaging.nii.gz"] = nifti_gz(ct_volume(case, seg), affine)
        if labelled:
            members[f"kits19/data/{case}/segmentation.nii.gz"] = nifti_gz(seg, affine)
            records.append(kits_record(case, width, thickness, facts))
    members = {"kits19/data/kits.json": json.dumps(records, indent=2).encode(), **members}
    dest = out / "kits19" / "manual" / "kits19.zip"
    write_zip(dest, members, store=(".nii.gz",))
    return [dest]
