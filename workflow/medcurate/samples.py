"""The sample mirror: small deterministic archives in each publisher's real layout.

Names, folders, delimiters, header quirks (the 'Train ' trailing space, BOMs, two-space headers),
mask colours and nested zips follow ../shared/docs/DATASETS.md and the real excerpts in
../shared/realdata; pixel content is synthetic. Each dataset's builder is ``sample.py`` in its
folder (``medcurate/datasets/<id>/sample.py``: a function named after the id that writes
``<out>/<id>/...`` and returns the files it wrote); this module holds what they share
(deterministic archives, synthetic pixels) and the registry. ``medcurate samples`` writes the
mirror and each dataset's pins (``datasets/<id>/sample.sha256``, read by the catalogue).
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import lzma
import re
import tarfile
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw

from .atomic import atomic_path, file_digest

ZIP_TIME = (2020, 6, 22, 12, 0, 0)
TAR_MTIME = 1673827200  # 2023-01-16, the African record's publication date

# ---------------------------------------------------------------- synthetic pixels


def seeded(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()



def mammogram(name: str, size: tuple[int, int], bits: int = 14) -> np.ndarray:
    """A breast-shaped 16-bit frame (``bits`` stored bits) on a dark background, deterministic per
    name; smooth so the sample archives stay small. Breast on the left, chest wall at x=0."""
    w, h = size
    rng = seeded(name)
    coarse = rng.integers(0, 1 << 10, size=(8, 6)).astype(np.float32)
    tex = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    edge = w * (0.55 + 0.15 * rng.random()) * np.sqrt(np.clip(1 - ((yy - h / 2) / (h * 0.48)) ** 2, 0, 1))
    top = (1 << bits) - 1
    px = np.where(xx < edge, top * 0.45 + tex - (xx / w) * top * 0.2, top * 0.02)
    return (np.round(px / 64) * 64).clip(0, top).astype(np.uint16)  # banded: compresses well


# ---------------------------------------------------------------- deterministic archives


def zip_bytes(members: dict[str, bytes], store: tuple[str, ...] = ()) -> bytes:
    """A zip with fixed timestamps and modes, members in the given order; members whose names end
    in one of ``store`` are stored, not deflated (already compressed, e.g. .nii.gz)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED if store and name.endswith(store) else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=6)
    return buf.getvalue()


def write_zip(dest: Path, members: dict[str, bytes], store: tuple[str, ...] = ()) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(zip_bytes(members, store))


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """An uncompressed tar with fixed mtimes and modes; folder entries for nested members."""
    dirs = sorted({str(Path(n).parents[i]) for n in members for i in range(len(Path(n).parents) - 1)})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, TAR_MTIME
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, TAR_MTIME
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_tar(dest: Path, members: dict[str, bytes]) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(tar_bytes(members))


def write_tar_xz(dest: Path, members: dict[str, bytes]) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(lzma.compress(tar_bytes(members), preset=6))


def write_tar_gz(dest: Path, members: dict[str, bytes]) -> None:
    """gzip header without file name or time, so equal members give equal bytes."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(gzip.compress(tar_bytes(members), compresslevel=6, mtime=0))


def xlsx_bytes(book, when) -> bytes:
    """An openpyxl workbook saved with fixed creation/modification times (openpyxl stamps 'now'
    into docProps/core.xml) and fixed zip timestamps: same bytes on every run."""
    book.properties.creator = "medcurate sample"
    book.properties.created = when
    buf = io.BytesIO()
    book.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    members["docProps/core.xml"] = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                          rb"\g<1>" + stamp + rb"\g<2>", members["docProps/core.xml"])
    return zip_bytes(members)


def csv_bytes(rows: list[list[str]], delimiter: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


# ---------------------------------------------------------------- registry


def builders() -> dict:
    """dataset id -> builder(out) -> [paths], from every dataset folder's ``sample.py``."""
    from .catalogue import folder, ids

    found = {}
    for ds in ids():
        if (folder(ds) / "sample.py").is_file():
            found[ds] = getattr(importlib.import_module(f"{__package__}.datasets.{ds}.sample"), ds)
    return found


def build(out: Path, datasets: list[str] | None = None) -> dict[str, str]:
    """Write the mirror; return '<dataset>/<path below it>' -> sha256 pins."""
    known = builders()
    pins = {}
    for ds in datasets or list(known):
        for path in known[ds](out):
            pins[path.relative_to(out).as_posix()] = file_digest(path)
    return pins


def write_pins(pins: dict[str, str]) -> list[Path]:
    """Each dataset's pins into its folder's sample.sha256 (sha256sum format, sorted by name)."""
    from .catalogue import PINS, folder

    written = []
    for ds in sorted({key.split("/", 1)[0] for key in pins}):
        lines = sorted(f"{digest}  {key.split('/', 1)[1]}\n" for key, digest in pins.items() if key.startswith(f"{ds}/"))
        dest = Path(str(folder(ds) / PINS))
        with atomic_path(dest) as tmp:
            tmp.write_text("".join(sorted(lines, key=lambda line: line.split("  ", 1)[1])))
        written.append(dest)
    return written


# ---------------------------------------------------------------- pixels shared by several builders
# (one dataset's builder never imports another's: what two datasets draw alike lives here)

# fundus photographs: DRIVE, STARE, CHASE_DB1

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


# ultrasound frames: the three fetal sets

def fan(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Smooth banded tissue in an ultrasound fan, black outside it (compresses well)."""
    w, h = size
    coarse = rng.integers(20, 200, size=(12, 16), dtype=np.uint8)
    tex = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = np.arctan2(xx - w / 2, yy + h * 0.05)
    inside = (np.abs(angle) < 0.75) & (yy < h * 0.95)
    return np.where(inside, (tex // 24) * 24 + 8, 0).astype(np.uint8)  # banded: keeps the mirror small


def ultrasound(name: str, size: tuple[int, int]) -> bytes:
    """A fan-shaped ultrasound-like frame with an oval outline (deterministic per name)."""
    w, h = size
    rng = seeded(name)
    im = Image.fromarray(fan(rng, size))
    draw = ImageDraw.Draw(im)
    cx, cy = w * (0.35 + 0.3 * rng.random()), h * (0.4 + 0.2 * rng.random())
    draw.ellipse([cx - w * 0.15, cy - h * 0.12, cx + w * 0.15, cy + h * 0.12], outline=235, width=4)
    return png_bytes(im)


# JPEG frames and smooth textures: ISIC 2019, ChestX-ray14, Kermany OCT

def jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def smooth(name: str, size: tuple[int, int], lo: int, hi: int) -> np.ndarray:
    w, h = size
    coarse = seeded(name).integers(lo, hi, size=(6, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), np.float32)


# NIfTI volumes: ACDC, KiTS19

def nifti_gz(array: np.ndarray, affine: np.ndarray, xyzt: tuple[str, str] = ("mm", "sec")) -> bytes:
    """A .nii.gz with sform and qform both set to ``affine``, byte-identical on every run
    (nibabel writes no timestamps; gzip mtime 0, no file name)."""
    img = nib.Nifti1Image(array, affine)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    img.header.set_xyzt_units(*xyzt)
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


# chest radiographs: the chest X-ray family (ChestX-ray14, CheXpert, MIMIC-CXR-JPG, PadChest, Open-i)

def xray(name: str, size: tuple[int, int] = (64, 64), rgba: bool = False) -> bytes:
    """A chest-radiograph-like frame: bright body, two dark lung fields, banded so it stays small."""
    w, h = size
    rng = seeded(name)
    px = (smooth(name, size, 150, 220) // 16) * 16
    im = Image.fromarray(px.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for side in (0.27, 0.73):
        cx = w * (side + 0.04 * (rng.random() - 0.5))
        draw.ellipse([cx - w * 0.17, h * 0.18, cx + w * 0.17, h * 0.82], fill=int(rng.integers(40, 80)))
    return png_bytes(im.convert("RGBA") if rgba else im)
