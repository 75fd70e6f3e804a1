"""Sample archives of STARE, a retinal vessel dataset (DATASETS.md section 10).

Pixels are synthetic fundus-like frames (a lit disc on black, an optic disc, vessels drawn as
polylines); the vessel masks are the same polylines, so image and mask agree. The second
observer's mask leaves out the thinnest branch and traces the others one pixel thinner, as a
second human grader would differ. File formats copy the real files in ../shared/realdata:
- STARE (``stare/{stare-images,labels-ah,labels-vk}.tar``): flat tars of individually gzipped
  PPMs (im0001.ppm.gz, im0001.ah.ppm.gz, im0001.vk.ppm.gz) for 4 of the 20 labelled ids, 700x605
  (the size DATASETS.md gives). Images binary PPM (P6). The labels' exact Netpbm flavour is
  UNCONFIRMED (no real STARE file was obtainable): written as P6 with 0/255 in every channel.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ...samples import fundus, write_tar

STARE_SIZE = (700, 605)
STARE_IDS = ("im0001", "im0002", "im0044", "im0235")  # labelled ids: test, val, train, train by hash


def ppm_gz(arr: np.ndarray) -> bytes:
    """A binary PPM (P6), gzipped without a name or timestamp (deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(arr).convert("RGB").save(buf, format="PPM")
    return gzip.compress(buf.getvalue(), compresslevel=9, mtime=0)


def stare(out: Path) -> list[Path]:
    tars: dict[str, dict[str, bytes]] = {"stare-images.tar": {}, "labels-ah.tar": {}, "labels-vk.tar": {}}
    for sid in STARE_IDS:
        rgb, first, second, _ = fundus(f"stare/{sid}", STARE_SIZE)
        tars["stare-images.tar"][f"{sid}.ppm.gz"] = ppm_gz(rgb)
        tars["labels-ah.tar"][f"{sid}.ah.ppm.gz"] = ppm_gz(np.where(first, 255, 0).astype(np.uint8))
        tars["labels-vk.tar"][f"{sid}.vk.ppm.gz"] = ppm_gz(np.where(second, 255, 0).astype(np.uint8))
    written = []
    for name, members in tars.items():
        dest = out / "stare" / name
        write_tar(dest, members)
        written.append(dest)
    return written
