"""Near-duplicate images with contradictory masks (catalogue option curation.near_duplicates).

Byte-identical images are resolved by pixel hash (splits.resolve_duplicates). Some acquisitions
also give near-identical frames (consecutive ultrasound frames) that annotators labelled
differently: one shows the structure, its twin an empty mask or another outline. Such pairs are
label noise a model cannot learn from, so both cases are excluded from the curated subset
(reason ``near_duplicate_conflict``) and every near-duplicate pair is reported.

Only images of one patient are compared: near-identical frames come from one acquisition, and
comparing every pair of a whole dataset would grow with its square. Two images are near
duplicates when the Pearson correlation of their 32x32 area-averaged grey thumbnails reaches
``min_correlation``; their masks conflict when the Dice of the label maps (same label at the same
pixel; both empty = 1, one empty = 0) is below ``max_dice``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .errors import MedcurateError

THUMB = 32
BLOCK = 256  # rows of a patient's correlation matrix computed at once: memory O(BLOCK x cases)
SLACK = 1e-4  # candidates from the fast matrix product are re-checked with an exact sum
REASON = "near_duplicate_conflict"
COLUMNS = ["case_a", "case_b", "patient_id", "correlation", "dice", "conflict"]
DEFAULTS = {"min_correlation": 0.98, "max_dice": 0.5}


def flag(df: pd.DataFrame, shard_dirs: list[Path], options: dict | None) -> pd.DataFrame:
    """Append ``near_duplicate_conflict`` to df.exclusion (in place) for both cases of every
    near-duplicate pair whose masks conflict; return one row per near-duplicate pair, sorted."""
    options = {**DEFAULTS, **(options or {})}
    files = _locate(shard_dirs)
    # A copy already resolved as 'duplicate_of' another case is represented by that case.
    eligible = df[~df["exclusion"].str.contains("duplicate_of:", regex=False)]
    pairs = []
    for patient, group in eligible.groupby("patient_id", sort=True):
        if len(group) > 1:
            pairs += _patient_pairs(str(patient), group.sort_values("case_id"), files, options)
    conflicted = {c for p in pairs if p["conflict"] for c in (p["case_a"], p["case_b"])}
    for idx in df.index[df["case_id"].isin(conflicted)]:
        reasons = [r for r in str(df.at[idx, "exclusion"]).split(";") if r]
        if REASON not in reasons:
            df.at[idx, "exclusion"] = ";".join([*reasons, REASON])
    out = pd.DataFrame(pairs, columns=COLUMNS)
    return out.sort_values(["patient_id", "case_a", "case_b"], ignore_index=True)


def _locate(shard_dirs: list[Path]) -> dict[str, Path]:
    """'images/<id>.png' / 'masks/<id>.png' (or a converted tier's 'raw_masks/<id>.png') -> the
    shard file holding it."""
    found = {}
    for shard in shard_dirs:
        for sub in ("images", "masks", "raw_masks"):
            folder = Path(shard) / sub
            for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
                found[f"{sub}/{path.name}"] = path
    return found


def _file(files: dict[str, Path], rel: str) -> Path:
    if rel not in files:
        raise MedcurateError(rel, "not found in any convert shard (was a shard lost?)")
    return files[rel]


def _patient_pairs(patient: str, group: pd.DataFrame, files: dict[str, Path], options: dict) -> list[dict]:
    thumbs = np.stack([thumbnail(_file(files, rel)) for rel in group["image"]])
    rows = group.to_dict("records")
    masks: dict[int, np.ndarray | None] = {}  # loaded once per case, dropped with the patient
    pairs = []
    for i, j, corr in similar(thumbs, options["min_correlation"]):
        a, b = rows[i], rows[j]
        if a.get("pixel_sha256") and a.get("pixel_sha256") == b.get("pixel_sha256"):
            continue  # byte-identical: the exact-duplicate resolution has judged this pair
        for k in (i, j):
            if k not in masks:
                masks[k] = _mask(files, rows[k].get("mask", ""))
        score = dice(masks[i], masks[j]) if masks[i] is not None and masks[j] is not None else None
        pairs.append({"case_a": a["case_id"], "case_b": b["case_id"], "patient_id": patient,
                      "correlation": round(corr, 6), "dice": "" if score is None else round(score, 6),
                      "conflict": int(score is not None and score < options["max_dice"])})
    return pairs


def thumbnail(path: Path) -> np.ndarray:
    """The image as a THUMB x THUMB area-averaged grey thumbnail, centred and scaled to unit
    length (so a dot product of two is their Pearson correlation). A flat image has no defined
    correlation: its thumbnail is all zeros and correlates with nothing."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im, np.float32)
    except (OSError, ValueError) as exc:
        raise MedcurateError(path, f"cannot read the converted image ({exc})") from None
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=2, dtype=np.float32)
    small = np.asarray(Image.fromarray(arr).resize((THUMB, THUMB), Image.Resampling.BOX), np.float64).ravel()
    small -= small.mean()
    norm = math.sqrt(math.fsum(small * small))
    return (small / norm if norm > 1e-9 * small.size else np.zeros_like(small)).astype(np.float32)


def similar(thumbs: np.ndarray, min_correlation: float):
    """(i, j, correlation) for i < j whose correlation reaches min_correlation, in (i, j) order.
    Blocks of the matrix product find candidates; an exactly rounded sum decides, so the result
    does not depend on how the BLAS in use splits the work."""
    n = len(thumbs)
    wide = thumbs.astype(np.float64)
    for start in range(0, n, BLOCK):
        block = thumbs[start:start + BLOCK] @ thumbs.T
        for i, j in zip(*np.nonzero(block >= min_correlation - SLACK)):
            i = int(i) + start
            if j <= i:
                continue
            corr = math.fsum(wide[i] * wide[j])
            if corr >= min_correlation:
                yield i, int(j), corr


def _mask(files: dict[str, Path], rel: str) -> np.ndarray | None:
    if not rel:
        return None  # classification datasets: near duplicates are reported, not judged
    path = _file(files, rel)
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except (OSError, ValueError) as exc:
        raise MedcurateError(path, f"cannot read the converted mask ({exc})") from None


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement of two label maps: 2 |same non-zero label| / (|a > 0| + |b > 0|); both empty = 1.
    Masks of different sizes are compared at the first one's (nearest neighbour)."""
    if a.shape != b.shape:
        b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.Resampling.NEAREST))
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return 1.0
    return 2 * int(np.count_nonzero((a == b) & (a > 0))) / total
