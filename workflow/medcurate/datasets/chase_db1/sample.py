"""Sample archives of CHASE_DB1, a retinal vessel dataset (DATASETS.md section 10).

Pixels are synthetic fundus-like frames (a lit disc on black, an optic disc, vessels drawn as
polylines); the vessel masks are the same polylines, so image and mask agree. The second
observer's mask leaves out the thinnest branch and traces the others one pixel thinner, as a
second human grader would differ. File formats copy the real files in ../shared/realdata:
- CHASE_DB1 (``chase_db1/CHASEDB1.zip``, flat): Image_<child><L|R>.jpg (RGB JPEG, JFIF 1.01,
  999x960 as the real Image_01L.jpg) with Image_<..>_1stHO.png / _2ndHO.png as 1-bit grey PNGs,
  for children 01, 02 (train) and 12 (test), both eyes each.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ...samples import fundus, write_zip

CHASE_SIZE = (999, 960)
CHASE_CHILDREN = ("01", "02", "12")


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def png_1bit(binary: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(binary.astype(bool)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def chase_db1(out: Path) -> list[Path]:
    members: dict[str, bytes] = {}
    for child in CHASE_CHILDREN:
        for eye in "LR":
            stem = f"Image_{child}{eye}"
            rgb, first, second, _ = fundus(f"chase_db1/{stem}", CHASE_SIZE, band=1)  # smooth: JPEG blocks on bands
            members[f"{stem}.jpg"] = jpeg(rgb)
            members[f"{stem}_1stHO.png"] = png_1bit(first)
            members[f"{stem}_2ndHO.png"] = png_1bit(second)
    dest = out / "chase_db1" / "CHASEDB1.zip"
    write_zip(dest, dict(sorted(members.items())))
    return [dest]
