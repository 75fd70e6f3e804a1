"""Sample archives of the retinal vessel datasets DRIVE, STARE and CHASE_DB1 (DATASETS.md section 10).

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
- STARE (``stare/{stare-images,labels-ah,labels-vk}.tar``): flat tars of individually gzipped
  PPMs (im0001.ppm.gz, im0001.ah.ppm.gz, im0001.vk.ppm.gz) for 4 of the 20 labelled ids, 700x605
  (the size DATASETS.md gives). Images binary PPM (P6). The labels' exact Netpbm flavour is
  UNCONFIRMED (no real STARE file was obtainable): written as P6 with 0/255 in every channel.
- CHASE_DB1 (``chase_db1/CHASEDB1.zip``, flat): Image_<child><L|R>.jpg (RGB JPEG, JFIF 1.01,
  999x960 as the real Image_01L.jpg) with Image_<..>_1stHO.png / _2ndHO.png as 1-bit grey PNGs,
  for children 01, 02 (train) and 12 (test), both eyes each.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import seeded, write_tar, write_zip

DATASETS = ("drive", "stare", "chase_db1")

DRIVE_SIZE = (565, 584)  # w x h, the real DRIVE size
STARE_SIZE = (700, 605)
CHASE_SIZE = (999, 960)
DRIVE_TRAIN = ("21", "22", "27")  # 27 falls in val by subject hash
DRIVE_TEST = ("01", "02")
STARE_IDS = ("im0001", "im0002", "im0044", "im0235")  # labelled ids: test, val, train, train by hash
CHASE_CHILDREN = ("01", "02", "12")


# ---------------------------------------------------------------- synthetic fundus


def fundus(name: str, size: tuple[int, int], band: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(RGB image, observer-1 vessels, observer-2 vessels, field of view), deterministic per name.
    ``band`` quantises the background gradient (flat bands keep LZW/gzip archives small)."""
    w, h = size
    rng = seeded(name)
    cx, cy, r = w / 2, h / 2, min(w, h) * 0.46
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx - cx, yy - cy) / r
    fov = d < 1
    base = np.stack([205 - 70 * d, 95 - 45 * d, 35 - 20 * d], -1)
    base = np.round(base / band) * band if band > 1 else base
    side = 1 if rng.random() < 0.5 else -1
    ox, oy = cx + side * 0.35 * r, cy + (rng.random() - 0.5) * 0.2 * r
    disc = np.hypot(xx - ox, yy - oy) < 0.12 * r
    first, second = Image.new("L", size, 0), Image.new("L", size, 0)
    d1, d2 = ImageDraw.Draw(first), ImageDraw.Draw(second)
    branches = 7
    for k in range(branches):
        angle = 2 * np.pi * k / branches + rng.uniform(-0.3, 0.3)
        x, y, pts = ox, oy, [(ox, oy)]
        for _ in range(6):
            angle += rng.uniform(-0.35, 0.35)
            x, y = x + np.cos(angle) * 0.17 * r, y + np.sin(angle) * 0.17 * r
            pts.append((float(x), float(y)))
        width = int(rng.integers(2, 6)) if k else 1  # branch 0 is the thinnest
        d1.line(pts, fill=255, width=width, joint="curve")
        if k:  # the second observer misses the thinnest branch and traces one pixel thinner
            d2.line(pts, fill=255, width=max(width - 1, 1), joint="curve")
    vessels1 = (np.asarray(first) > 0) & fov
    vessels2 = (np.asarray(second) > 0) & fov
    px = np.where(disc[..., None], np.array([245, 205, 130]), base)
    px = np.where(vessels1[..., None], np.array([120, 35, 25]), px)
    rgb = np.where(fov[..., None], px, 0).clip(0, 255).astype(np.uint8)
    return rgb, vessels1, vessels2, fov


# ---------------------------------------------------------------- file formats


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


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def png_1bit(binary: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(binary.astype(bool)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def ppm_gz(arr: np.ndarray) -> bytes:
    """A binary PPM (P6), gzipped without a name or timestamp (deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(arr).convert("RGB").save(buf, format="PPM")
    return gzip.compress(buf.getvalue(), compresslevel=9, mtime=0)


# ---------------------------------------------------------------- builders


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
