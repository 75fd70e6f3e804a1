"""Sample of Kermany OCT 2018, a classification set.

Layouts follow DATASETS.md sections 12a, 12d and 12e (no real files of these sets are in
../shared/realdata); pixels are synthetic and tiny, names and folders real.
- Kermany OCT: OCT2017.tar.gz with OCT2017/{train,test}/{CNV,DME,DRUSEN,NORMAL}/<CLASS>-<pid>-<n>.jpeg,
  several B-scans per patient, a patient in both train and test, a DRUSEN-named file in the CNV
  folder (quarantined) and a .DS_Store in train/ (seen in the Kaggle copy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...samples import jpeg_bytes, seeded, smooth, write_tar_gz

# (split, class folder, file name)
OCT_FILES = [
    ("train", "CNV", "CNV-1016042-1.jpeg"), ("train", "CNV", "CNV-1016042-2.jpeg"),
    ("train", "CNV", "CNV-103044-5.jpeg"),
    ("train", "CNV", "DRUSEN-1083159-3.jpeg"),  # name class disagrees with its folder: quarantined
    ("train", "DME", "DME-1072015-1.jpeg"), ("train", "DME", "DME-1072015-2.jpeg"),
    ("train", "DRUSEN", "DRUSEN-1001666-1.jpeg"), ("train", "DRUSEN", "DRUSEN-1083159-1.jpeg"),
    ("train", "NORMAL", "NORMAL-1001772-1.jpeg"), ("train", "NORMAL", "NORMAL-1001772-2.jpeg"),
    ("train", "NORMAL", "NORMAL-1384-3.jpeg"),
    ("test", "CNV", "CNV-1569-1.jpeg"), ("test", "DME", "DME-1072015-5.jpeg"),  # 1072015 also in train
    ("test", "DRUSEN", "DRUSEN-1219727-1.jpeg"), ("test", "NORMAL", "NORMAL-1025847-1.jpeg"),
    ("test", "NORMAL", "NORMAL-1025847-2.jpeg"),
]


def bscan(name: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """An OCT B-scan-like frame: dark background with bright wavy retinal layers."""
    w, h = size
    rng = seeded(name)
    yy, xx = np.mgrid[0:h, 0:w]
    top = h * (0.35 + 0.1 * rng.random()) + 3 * np.sin(xx / w * np.pi * (1 + rng.random()))
    band = np.exp(-((yy - top) / 2.5) ** 2) * 200 + np.exp(-((yy - top - 12) / 2.0) ** 2) * 150
    px = (band + smooth(name, size, 0, 30)).clip(0, 255)
    return jpeg_bytes(Image.fromarray(px.astype(np.uint8)))


def kermany_oct(out: Path) -> list[Path]:
    members = {f"OCT2017/{split}/{cls}/{name}": bscan(name) for split, cls, name in OCT_FILES}
    members["OCT2017/train/.DS_Store"] = b"\x00\x00\x00\x01Bud1" + bytes(26)
    path = out / "kermany_oct" / "OCT2017.tar.gz"
    write_tar_gz(path, members)
    return [path]
