"""KiTS19 (Kidney Tumor Segmentation Challenge 2019; DATASETS.md 11c) quirks.

- Two sources: labels and data/kits.json live in the git repository neheller/kits19 (pinned at
  commit 456b293435b25303bbc7995f094f83a0afdff0eb: labels were corrected after the release and the
  affines fixed, see its changelog.md), the CT volumes on Hugging Face, fetched into
  data/case_XXXXX/imaging.nii.gz by starter_code/get_imaging.py. 300 separate files, so the set
  is placed by hand (catalogue access: manual); data/kits.json is found at any depth and its
  folder is the data folder.
- Only cases with a segmentation.nii.gz (case_00000-00209) are converted, all official 'train'
  (the 90 test cases' labels are withheld); folders without one are counted in a log line. A
  segmentation without its imaging.nii.gz (get_imaging.py not run or interrupted) is quarantined.
- Arrays are (slices, height, width) and the affine is permuted with negative entries (kits19
  README): [[0, 0, -pixel_width, 0], [0, -pixel_width, 0, 0], [-slice_thickness, 0, 0, 0],
  [0, 0, 0, 1]], orientation code IPL; volumes.convert_case reorients it to RAS+ losslessly.
- Imaging is float32 holding HU values: volumes.compact writes it as int16 when every voxel is an
  integer within int16's range (lossless; checked per case), otherwise float32 (manifest 'dtype').
  Whether every real volume is integer-valued is UNCONFIRMED; the check decides.
- kits.json (a JSON list of per-case records): age_at_nephrectomy, gender, malignant and
  tumor_histologic_subtype are joined into the manifest when present. Its voxel_spacing is
  cross-checked against the affine (the initial release had wrong slice thicknesses): a
  difference over 1e-3 mm sets the flag spacing_mismatch (curated subset excludes it). Whether
  the pinned commit's kits.json carries voxel_spacing and every clinical field is UNCONFIRMED
  (seen in an earlier stored version of the file); absent fields leave the columns empty.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import CaseError, MedcurateError
from ...volumes import Volume, read_volume
from .. import Case, files, find_one, read_text

log = logging.getLogger("medcurate.datasets.kits19")

CASE = re.compile(r"case_\d{5}")
CLINICAL = ("age_at_nephrectomy", "gender", "malignant", "tumor_histologic_subtype")
SPACING_TOLERANCE = 1e-3  # mm


@dataclass
class KitsCase(Case):
    # kits.json's voxel_spacing as (x, y, z) = (pixel width, pixel height, slice thickness), or None
    spacing: tuple[float, float, float] | None = None
    record: dict = field(default_factory=dict)


def parse_kits_json(text: str, source) -> dict[str, dict]:
    """kits.json -> {case_id: record}. Raises MedcurateError naming the file and the reason."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MedcurateError(source, f"not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise MedcurateError(source, f"expected a JSON list of case records, got {type(data).__name__}")
    records: dict[str, dict] = {}
    for n, rec in enumerate(data):
        if not isinstance(rec, dict) or not isinstance(rec.get("case_id"), str) or not CASE.fullmatch(rec["case_id"]):
            raise MedcurateError(source, f"record {n}: expected an object with a case_id like 'case_00000'")
        if rec["case_id"] in records:
            raise MedcurateError(source, f"record {n}: case_id {rec['case_id']!r} occurs twice")
        records[rec["case_id"]] = rec
    return records


def spacing_of(record: dict, source) -> tuple[float, float, float] | None:
    """voxel_spacing {x_spacing, y_spacing, z_spacing} as floats; None when the record has none."""
    spacing = record.get("voxel_spacing")
    if spacing is None:
        return None
    try:
        values = tuple(float(spacing[k]) for k in ("x_spacing", "y_spacing", "z_spacing"))
    except (TypeError, KeyError, ValueError):
        raise MedcurateError(source, f"{record['case_id']}: voxel_spacing must hold numeric x/y/z_spacing, got {spacing!r}") from None
    if not all(np.isfinite(values)):
        raise MedcurateError(source, f"{record['case_id']}: voxel_spacing is not finite: {spacing!r}")
    return values


def cases(root: Path, plan: dict) -> list[Case]:
    meta_file = find_one(root, "kits.json")
    data = meta_file.parent
    text = read_text(meta_file)
    records = parse_kits_json(text, meta_file)
    folders = sorted({p.parent for p in files(data, "*.nii.gz") if CASE.fullmatch(p.parent.name) and p.parent.parent == data})
    labelled = [f for f in folders if (f / "segmentation.nii.gz").is_file()]
    unlabelled = len(folders) - len(labelled)
    if unlabelled:
        log.info("%d case folder(s) without segmentation.nii.gz (test cases, labels withheld) are not converted", unlabelled)
    if not labelled:
        raise MedcurateError(data, "no case_XXXXX/segmentation.nii.gz below it: is this the kits19 repository's data/ folder?")
    return [_case(folder, records.get(folder.name, {}), meta_file) for folder in labelled]


def _case(folder: Path, record: dict, meta_file: Path) -> KitsCase:
    image = folder / "imaging.nii.gz"
    case = KitsCase(case_id=folder.name, patient_id=folder.name, image=image, split="train",
                    mask=folder / "segmentation.nii.gz", record=record)
    case.meta = {k: _text(record.get(k)) for k in CLINICAL}
    case.meta["spacing_mismatch"] = 0
    case.spacing = spacing_of(record, meta_file) if record else None
    if not image.is_file():
        case.problem = CaseError(image, "missing: segmentation.nii.gz is there but not the imaging; "
                                        "run `python3 -m starter_code.get_imaging` in the kits19 folder")
    return case


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def load_volume(case: KitsCase, plan: dict) -> Volume:
    volume = read_volume(case.image)
    volume.facts = _check_spacing(case, volume.affine)
    return volume


def _check_spacing(case: KitsCase, affine: np.ndarray) -> dict:
    """Voxel sizes from the affine's columns (slices, rows, columns) against kits.json's
    (z, y, x) spacing: the initial release's affines had wrong slice thicknesses."""
    if case.spacing is None:
        return {}
    x, y, z = case.spacing
    found = np.linalg.norm(affine[:3, :3], axis=0)
    return {} if np.allclose(found, [z, y, x], atol=SPACING_TOLERANCE) else {"spacing_mismatch": 1}
