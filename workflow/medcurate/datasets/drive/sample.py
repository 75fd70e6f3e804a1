"""Sample archives of DRIVE, a retinal vessel dataset (DATASETS.md section 10).

Pixels are synthetic fundus-like frames (a lit disc on black, an optic disc, vessels drawn as
polylines); the vessel masks are the same polylines, so image and mask agree. The second
observer's mask leaves out the thinnest branch and traces the others one pixel thinner, as a
second human grader would differ. File formats copy the real files in ../shared/realdata:
- DRIVE (``drive/manual/DRIVE.zip``, gated: the mirror's manual folder stands in for the user's):
  DRIVE/training/{images,1st_manual,mask}/ and DRIVE/test/{images,1st_manual,2nd_manual,mask}/;
  images RGB TIFF, LZW, 565x584 (the real size); labels and FOV masks GIF89a with a 256-entry
  grey global palette, non-interlaced, pixel values 0/255 (Pillow opens them as mode L). Three
  training ids (21, 22, 27) and two test ids (01, 02). The top folder DRIVE/ inside DRIVE.zip is
  UNCONFIRMED (DATASETS.md's layout).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ...samples import fundus, write_zip

DRIVE_SIZE = (565, 584)  # w x h, the real DRIVE size
DRIVE_TRAIN = ("21", "22", "27")  # 27 falls in val by subject hash
DRIVE_TEST = ("01", "02")


def tif_lzw(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="TIFF", compression="tiff_lzw")
    return buf.getvalue()


def gif_grey(binary: np.ndarray) -> bytes:
    """A 0/255 GIF like DRIVE's: GIF89a, 256-entry grey global palette (colour resolution 8 bits),
    a zero graphic-control extension, non-interlaced. Pillow writes GIF87a with the same palette
    and image data, so only the header and the extension are patched in."""
    buf = io.BytesIO()
    Image.fromarray(np.where(binary, 255, 0).astype(np.uint8)).save(buf, format="GIF", optimize=False, interlace=False)
    data = buf.getvalue()
    flags = data[10]
    assert flags & 0x80 and flags & 0x07 == 0x07, "expected a 256-entry global palette"
    start = 13 + 3 * 256
    gce = b"\x21\xf9\x04\x00\x00\x00\x00\x00"
    return b"GIF89a" + data[6:10] + bytes([flags | 0x70]) + data[11:start] + gce + data[start:]


def drive(out: Path) -> list[Path]:
    members: dict[str, bytes] = {}
    for folder, ids, kind in (("training", DRIVE_TRAIN, "training"), ("test", DRIVE_TEST, "test")):
        for nn in ids:
            rgb, first, second, fov = fundus(f"drive/{nn}", DRIVE_SIZE)
            members[f"DRIVE/{folder}/images/{nn}_{kind}.tif"] = tif_lzw(rgb)
            members[f"DRIVE/{folder}/1st_manual/{nn}_manual1.gif"] = gif_grey(first)
            if folder == "test":  # the second observer graded the test set only
                members[f"DRIVE/{folder}/2nd_manual/{nn}_manual2.gif"] = gif_grey(second)
            members[f"DRIVE/{folder}/mask/{nn}_{kind}_mask.gif"] = gif_grey(fov)
    dest = out / "drive" / "manual" / "DRIVE.zip"
    write_zip(dest, dict(sorted(members.items())))
    return [dest]
