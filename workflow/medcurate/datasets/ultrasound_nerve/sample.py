"""Sample of the Kaggle "Ultrasound Nerve Segmentation" release, as placed by hand.

<id>/manual/ holds train.zip (train/<subject>_<img>.tif and train/<subject>_<img>_mask.tif) and
train_masks.csv (header subject,img,pixels; Kaggle run-length encoding, 1-indexed column-major;
an empty cell for an empty mask), consistent with the mask TIFs. Images are at the real size,
580x420 8-bit grey, uncompressed TIFF (real compression UNCONFIRMED) with synthetic banded pixels
(low entropy: the mirror stays small); masks are 0/255 TIFFs of one rotated ellipse drawn with
shapes.ellipse. Whether train.zip nests a train/ folder, its member order and the CSV's row order
and line ends are UNCONFIRMED (train/ folder, sorted, LF assumed).

Four subjects, 12 images (subjects picked so the hash split gives train, val and test):
empty masks (negatives), a near-duplicate pair with contradictory masks (5_1 outlined, its twin
5_2 empty), a near-duplicate pair whose masks agree (5_3, 5_4), and a byte-identical pair with
contradictory masks (10_2, 10_3).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ...formats import rle, shapes
from ...atomic import atomic_path
from ...samples import seeded, write_zip

SIZE = (580, 420)  # w x h, the real size
# (subject, img) -> nerve ellipse (cx, cy, rx, ry, theta) or None (nerve not visible), and the
# frame it is a near copy of ("twin") or an identical copy of ("copy").
FRAMES = {
    (1, 1): {"nerve": (250, 200, 55, 30, 0.3)},
    (1, 2): {"nerve": None},
    (1, 3): {"nerve": (300, 230, 60, 34, -0.2)},
    (5, 1): {"nerve": (210, 180, 50, 28, 0.1)},
    (5, 2): {"nerve": None, "twin": (5, 1)},  # contradictory: the same view, nerve not outlined
    (5, 3): {"nerve": (330, 250, 48, 26, 0.5)},
    (5, 4): {"nerve": (333, 252, 47, 27, 0.5), "twin": (5, 3)},  # agrees with 5_3
    (8, 1): {"nerve": None},
    (8, 2): {"nerve": (280, 160, 58, 32, -0.4)},
    (10, 1): {"nerve": (240, 260, 52, 30, 0.0)},
    (10, 2): {"nerve": (200, 210, 45, 25, 0.2)},
    (10, 3): {"nerve": None, "copy": (10, 2)},  # byte-identical image, contradictory mask
}


def ultrasound_nerve(out: Path) -> list[Path]:
    members, lines = {}, ["subject,img,pixels"]
    for (subject, img), frame in sorted(FRAMES.items()):
        mask = nerve_mask(frame["nerve"])
        members[f"train/{subject}_{img}.tif"] = tif_bytes(frame_pixels((subject, img)))
        members[f"train/{subject}_{img}_mask.tif"] = tif_bytes(mask * np.uint8(255))
        lines.append(f"{subject},{img},{rle.encode(mask)}")
    folder = out / "ultrasound_nerve" / "manual"
    write_zip(folder / "train.zip", dict(sorted(members.items())))
    with atomic_path(folder / "train_masks.csv") as tmp:
        tmp.write_bytes(("\n".join(lines) + "\n").encode())
    return [folder / "train.zip", folder / "train_masks.csv"]


def nerve_mask(nerve: tuple | None) -> np.ndarray:
    if nerve is None:
        return np.zeros(SIZE[::-1], np.uint8)
    cx, cy, rx, ry, theta = nerve
    return shapes.ellipse(cx, cy, rx, ry, SIZE[::-1], theta)[0].astype(np.uint8)


def frame_pixels(key: tuple[int, int]) -> np.ndarray:
    """A banded speckle-free neck-ultrasound-like frame: smooth tissue layers per subject and
    frame, the nerve as a dark oval with a bright rim where one is drawn. A twin is its frame
    with a slightly brighter patch (probe pressure); a copy is its frame, unchanged."""
    frame = FRAMES[key]
    if "copy" in frame:
        return frame_pixels(frame["copy"])
    if "twin" in frame:
        px = frame_pixels(frame["twin"]).astype(np.int16)
        px[40:90, 400:470] += 12
        return px.clip(0, 255).astype(np.uint8)
    w, h = SIZE
    rng = seeded(f"ultrasound_nerve/{key[0]}_{key[1]}")
    coarse = rng.integers(30, 170, size=(6, 8)).astype(np.float32)
    tissue = np.asarray(Image.fromarray(coarse).resize(SIZE, Image.Resampling.BILINEAR), np.float32)
    yy = np.mgrid[0:h, 0:w][0]
    px = (tissue * (1.1 - 0.5 * yy / h)) // 16 * 16  # banded, darker with depth
    if frame["nerve"] is not None:
        cx, cy, rx, ry, theta = frame["nerve"]
        px[shapes.ellipse(cx, cy, rx + 4, ry + 4, (h, w), theta)[0]] = 200
        px[shapes.ellipse(cx, cy, rx, ry, (h, w), theta)[0]] = 48
    return px.clip(0, 255).astype(np.uint8)


def tif_bytes(px: np.ndarray) -> bytes:
    """An 8-bit grey uncompressed TIFF (Pillow writes no date or software tag: deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="TIFF", compression="raw")
    return buf.getvalue()
