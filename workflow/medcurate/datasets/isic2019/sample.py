"""Sample of ISIC 2019, a classification set.

Layouts follow DATASETS.md sections 12a, 12d and 12e (no real files of these sets are in
../shared/realdata); pixels are synthetic and tiny, names and folders real.
- ISIC 2019: ISIC_2019_Training_Input.zip (ISIC_2019_Training_Input/ISIC_NNNNNNN.jpg) and the
  ground-truth and metadata CSVs as separate sources. One-hot float cells (1.0/0.0), a lesion
  (HAM_...) with two images, rows without lesion_id (patient falls back to the image id), a
  '_downsampled' image named so in the CSVs too, every class but UNK, and one row with two classes
  marked 1.0 (quarantined).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...atomic import atomic_path
from ...samples import csv_bytes, jpeg_bytes, seeded, smooth, write_zip

ISIC_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
# image: (classes marked 1.0, age_approx, anatom_site_general, lesion_id, sex)
ISIC_ROWS = {
    "ISIC_0000000": (["NV"], "55.0", "anterior torso", "", "female"),
    "ISIC_0000001": (["NV"], "30.0", "anterior torso", "", "female"),
    "ISIC_0000002": (["MEL"], "60.0", "upper extremity", "", "female"),
    "ISIC_0000003": (["MEL", "NV"], "30.0", "upper extremity", "", "male"),  # two 1.0s: quarantined
    "ISIC_0000004_downsampled": (["MEL"], "80.0", "posterior torso", "", "male"),
    "ISIC_0024306": (["NV"], "45.0", "", "HAM_0000550", "male"),
    "ISIC_0024307": (["NV"], "45.0", "lower extremity", "HAM_0000550", "male"),  # same lesion, second image
    "ISIC_0024308": (["BKL"], "50.0", "lower extremity", "HAM_0002730", "female"),
    "ISIC_0024318": (["DF"], "70.0", "lower extremity", "HAM_0002152", "female"),
    "ISIC_0053454": (["BCC"], "", "head/neck", "BCN_0000019", ""),
    "ISIC_0053460": (["AK"], "75.0", "head/neck", "BCN_0003925", "male"),
    "ISIC_0053470": (["SCC"], "65.0", "anterior torso", "BCN_0002670", "male"),
    "ISIC_0055000": (["VASC"], "40.0", "lower extremity", "BCN_0001245", "female"),
}


def lesion(name: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A dermoscopy-like frame: skin-tone background with a dark irregular blob."""
    w, h = size
    rng = seeded(name)
    skin = np.stack([smooth(name + c, size, 170, 230) for c in "rgb"], -1) * np.array([1.0, 0.78, 0.66])
    im = Image.fromarray(skin.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    cx, cy, r = w * (0.4 + 0.2 * rng.random()), h * (0.4 + 0.2 * rng.random()), h * (0.2 + 0.1 * rng.random())
    draw.ellipse([cx - r * 1.2, cy - r, cx + r * 1.2, cy + r], fill=tuple(int(v) for v in rng.integers(40, 110, 3)))
    return jpeg_bytes(im)


def isic2019(out: Path) -> list[Path]:
    folder = out / "isic2019"
    truth = [["image", *ISIC_CLASSES]]
    meta = [["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]]
    members = {}
    for name, (hot, age, site, lesion_id, sex) in ISIC_ROWS.items():
        truth.append([name, *("1.0" if c in hot else "0.0" for c in ISIC_CLASSES)])
        meta.append([name, age, site, lesion_id, sex])
        members[f"ISIC_2019_Training_Input/{name}.jpg"] = lesion(name)
    paths = [folder / "ISIC_2019_Training_Input.zip", folder / "ISIC_2019_Training_GroundTruth.csv",
             folder / "ISIC_2019_Training_Metadata.csv"]
    write_zip(paths[0], members)
    for path, rows in zip(paths[1:], (truth, meta)):
        with atomic_path(path) as tmp:
            tmp.write_bytes(csv_bytes(rows, ","))
    return paths
