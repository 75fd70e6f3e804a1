"""ACDC (Automated Cardiac Diagnosis Challenge, MICCAI 2017; DATASETS.md 11b) quirks.

- The HumanHeart/Girder collection zip unpacks to ACDC/database/, the folder download to
  database/: patient folders are found as training/patientNNN and testing/patientNNN at any depth.
  Info-ZIP's unzip refuses the zip as a possible zip bomb (UNZIP_DISABLE_ZIPBOMB_DETECTION=TRUE
  is the documented workaround); our unpacker is Python's zipfile with its own ratio limits, which
  a zip of .nii.gz files passes (why Info-ZIP objects to the real zip is UNCONFIRMED).
- Info.cfg: "key: value" lines ED, ES, Group, Height, NbFrame, Weight (form of a real one quoted in
  mathpluscode/CineMA's README: "ED: 1", "Height: 184.0"). The ED and ES frame numbers differ per
  patient: the frame files are picked by the numbers in Info.cfg (patientNNN_frameXX.nii.gz, XX =
  the number, two digits), never assumed to be 01 and 12.
- Cases are patient x phase (patient001_ED, patient001_ES); the patient key is patientNNN, so both
  phases share a split. Official split: training -> train, testing -> test (the current release
  ships the testing ground truth too).
- Each ED/ES frame file is cross-checked against frame ED-1 / ES-1 (t axis) of patientNNN_4d.nii.gz,
  and NbFrame against the 4D's t size: a mismatch quarantines the case naming the file. That the
  frame files are exact copies of the 4D's frames (same voxel values and affine) is what we expect
  of the release but UNCONFIRMED on real files.
- Missing Info.cfg, frame, _gt or 4D file, or a malformed Info.cfg: the case is quarantined
  naming the file and the reason. The group label is 'RV' in Info.cfg ('ARV' in some papers).
- Manifest columns from Info.cfg: frame, patient_height, patient_weight (as written; units cm and
  kg by their values, UNCONFIRMED), nb_frames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import CaseError, MedcurateError
from ...volumes import Volume, read_volume
from .. import Case, files

KEYS = ("ED", "ES", "Group", "Height", "NbFrame", "Weight")
INTEGER_KEYS = ("ED", "ES", "NbFrame")
SPLITS = {"training": "train", "testing": "test"}
PATIENT = re.compile(r"patient\d{3}")
PHASES = ("ED", "ES")


@dataclass
class AcdcCase(Case):
    cine: Path | None = None  # patientNNN_4d.nii.gz
    frame: int = 0  # 1-based frame number from Info.cfg
    nb_frames: int = 0


def parse_info(text: str, source) -> dict[str, str]:
    """Info.cfg as {key: value} (stripped strings); ED, ES, NbFrame checked as positive integers
    with ED, ES <= NbFrame, Height and Weight as numbers. Raises CaseError naming the line."""
    info: dict[str, str] = {}
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise CaseError(source, f"line {number}: expected 'key: value', got {line[:60]!r}")
        if key in info:
            raise CaseError(source, f"line {number}: key {key!r} given twice")
        info[key] = value
    missing = [k for k in KEYS if k not in info]
    if missing:
        raise CaseError(source, f"missing key(s) {missing}; found {sorted(info)}")
    for key in INTEGER_KEYS:
        if not re.fullmatch(r"\d+", info[key]) or int(info[key]) < 1:
            raise CaseError(source, f"{key} must be a positive integer, got {info[key]!r}")
    for key in ("Height", "Weight"):
        try:
            float(info[key])
        except ValueError:
            raise CaseError(source, f"{key} must be a number, got {info[key]!r}") from None
    for key in PHASES:
        if int(info[key]) > int(info["NbFrame"]):
            raise CaseError(source, f"{key} frame {info[key]} is beyond NbFrame {info['NbFrame']}")
    return info


def cases(root: Path, plan: dict) -> list[Case]:
    folders = _patient_folders(root)
    if not folders:
        raise MedcurateError(root, "no training/patientNNN or testing/patientNNN folder anywhere below it: is ACDC.zip (database/) complete?")
    return [case for folder in folders for case in _patient_cases(folder)]


def _patient_folders(root: Path) -> list[Path]:
    found = {p.parent for p in files(root) if PATIENT.fullmatch(p.parent.name) and p.parent.parent.name in SPLITS}
    return sorted(found)


def _patient_cases(folder: Path) -> list[AcdcCase]:
    patient, split = folder.name, SPLITS[folder.parent.name]
    cfg = folder / "Info.cfg"
    info, problem = {}, None
    try:
        info = parse_info(_read_text(cfg), cfg)
    except CaseError as exc:
        problem = exc
    out = []
    for phase in PHASES:
        case = AcdcCase(case_id=f"{patient}_{phase}", patient_id=patient, image=None, split=split,
                        cine=folder / f"{patient}_4d.nii.gz", problem=problem)
        if problem is None:
            _fill(case, folder, phase, info)
        out.append(case)
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseError(path, "Info.cfg is missing from the patient folder") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise CaseError(path, f"cannot read Info.cfg ({exc})") from None


def _fill(case: AcdcCase, folder: Path, phase: str, info: dict[str, str]) -> None:
    frame = int(info[phase])
    stem = f"{folder.name}_frame{frame:02d}"
    case.image, case.mask = folder / f"{stem}.nii.gz", folder / f"{stem}_gt.nii.gz"
    case.frame, case.nb_frames = frame, int(info["NbFrame"])
    case.labels = {"group": info["Group"], "phase": phase}
    # patient_ prefix: 'height' is the manifest's image-height column
    case.meta = {"frame": frame, "patient_height": info["Height"], "patient_weight": info["Weight"], "nb_frames": case.nb_frames}
    for path in (case.image, case.mask, case.cine):
        if not path.is_file():
            case.problem = CaseError(path, f"missing: Info.cfg gives {phase} = frame {frame}, but {path.name} is not in {folder.name}/")
            return


def load_volume(case: AcdcCase, plan: dict) -> Volume:
    """The ED/ES frame file, after checking it against the same frame of the 4D series."""
    image = read_volume(case.image)
    series = read_volume(case.cine)
    if series.array.ndim != 4:
        raise CaseError(case.cine, f"expected a 4D (i, j, k, t) series, got shape {series.array.shape}")
    if series.array.shape[3] != case.nb_frames:
        raise CaseError(case.cine, f"has {series.array.shape[3]} frames but Info.cfg says NbFrame: {case.nb_frames}")
    frame = series.array[..., case.frame - 1]
    if frame.shape != image.array.shape or not np.array_equal(frame, image.array):
        raise CaseError(case.image, f"differs from frame {case.frame} (t index {case.frame - 1}) of {case.cine.name}: "
                                    "Info.cfg's frame number and the frame file disagree")
    if not np.allclose(series.affine, image.affine, atol=1e-3):
        raise CaseError(case.image, f"affine differs from {case.cine.name}'s")
    return image
