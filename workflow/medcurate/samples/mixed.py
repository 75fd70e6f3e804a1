"""Samples of MURA v1.1 (gated), ODIR-5K (gated) and mini-MIAS (open): real names, folders,
delimiters and quirks (DATASETS.md 12b, 12c, 12f); synthetic pixels, values and text.

- MURA: manual/MURA-v1.1.zip holding MURA-v1.1/{train,valid}/XR_<TYPE>/patientNNNNN/studyK_<suffix>/imageN.png
  and the four header-less CSVs ('MURA-v1.1/...' paths; studies with a trailing '/'). Three train
  patients (one with two studies of one body part, one positive) and one valid patient (the real
  valid set's first id, patient11185). Three macOS AppleDouble '._imageN.png' files in XR_WRIST,
  listed in no CSV, as in the real release. PNGs of varying small sizes, one saved as RGB.
- ODIR-5K: manual/ODIR-5K_Training_Annotations(Updated)_V2.xlsx (first sheet, the real 15 column
  names; byte-deterministic) and manual/ODIR-5K_Training_Images.zip (folder
  ODIR-5K_Training_Images/ of <ID>_left.jpg/<ID>_right.jpg). Keywords joined by the full-width
  comma; one anterior-segment (not fundus) eye, one low-quality eye, one with lens dust, patient
  flags N..O set for both eyes together. Fundus JPEGs at ~1/20 of real sizes.
- MIAS: all-mias.tar.gz with members at the top level (as a third-party loader reads it; UNCONFIRMED):
  eight mdbNNN.pgm (four women) at 256x256, i.e. 1/4 of the real 1024 (Info.txt coordinates
  are in the sample's pixels, Y from the BOTTOM), Info.txt with its header line, NORM rows with a
  trailing space, a REFNUM on two rows (SPIC M + CALC B, overlapping), a CALC row without
  coordinates and a circle reaching over the image's edge; README and Licence.txt with our own
  summary text. Abnormalities are drawn as bright blobs where the flip puts them.
"""

from __future__ import annotations

import datetime
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_path
from . import (
    csv_bytes,
    mammogram,
    png_bytes,
    seeded,
    write_tar_gz,
    write_zip,
    xlsx_bytes,
)

DATASETS = ("mura", "odir5k", "mias")

# ---------------------------------------------------------------- MURA

MURA = "MURA-v1.1"
# (split, body part, patient, study folder, images, RGB-saved image or 0)
MURA_STUDIES = [
    ("train", "XR_SHOULDER", "patient00001", "study1_positive", 3, 0),
    ("train", "XR_WRIST", "patient00002", "study1_negative", 2, 2),
    ("train", "XR_WRIST", "patient00002", "study2_positive", 1, 0),
    ("train", "XR_ELBOW", "patient00003", "study1_negative", 2, 0),
    ("valid", "XR_WRIST", "patient11185", "study1_positive", 2, 0),
]
MURA_JUNK = ["train/XR_WRIST/patient00002/study1_negative/._image1.png",
             "train/XR_WRIST/patient00002/study1_negative/._image2.png",
             "train/XR_WRIST/patient00002/study2_positive/._image1.png"]


def mura(out: Path) -> list[Path]:
    members: dict[str, bytes] = {}
    lines = {split: ([], []) for split in ("train", "valid")}
    for split, part, patient, study, n, rgb in MURA_STUDIES:
        folder = f"{MURA}/{split}/{part}/{patient}/{study}"
        for i in range(1, n + 1):
            members[f"{folder}/image{i}.png"] = radiograph(f"{folder}/image{i}", i == rgb)
            lines[split][0].append([f"{folder}/image{i}.png"])
        lines[split][1].append([f"{folder}/", "1" if study.endswith("positive") else "0"])
    for rel in MURA_JUNK:
        members[f"{MURA}/{rel}"] = appledouble()
    for split, (paths, studies) in lines.items():
        members[f"{MURA}/{split}_image_paths.csv"] = csv_bytes(paths, ",")
        members[f"{MURA}/{split}_labeled_studies.csv"] = csv_bytes(studies, ",")
    dest = out / "mura" / "manual" / "MURA-v1.1.zip"
    write_zip(dest, dict(sorted(members.items())))
    return [dest]


def radiograph(name: str, rgb: bool = False) -> bytes:
    """A dark frame with a bright bone-like bar, size varying per image (max side 128)."""
    rng = seeded(name)
    w, h = int(rng.integers(72, 112)), int(rng.integers(96, 128))
    im = Image.new("L", (w, h), 12)
    draw = ImageDraw.Draw(im)
    x = w * (0.3 + 0.3 * rng.random())
    draw.polygon([(x, 4), (x + w * 0.22, 4), (x + w * 0.15, h - 4), (x - w * 0.08, h - 4)], fill=200)
    draw.ellipse([x - 6, h * 0.45, x + w * 0.25, h * 0.6], fill=230)
    return png_bytes(im.convert("RGB") if rgb else im)


def appledouble() -> bytes:
    """An AppleDouble header (magic 0x00051607, version 2, 'Mac OS X' filler, no entries)."""
    return struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 0)


# ---------------------------------------------------------------- ODIR-5K

ODIR_XLSX = "ODIR-5K_Training_Annotations(Updated)_V2.xlsx"
ODIR_HEADER = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus", "Left-Diagnostic Keywords",
               "Right-Diagnostic Keywords", "N", "D", "G", "C", "A", "H", "M", "O"]
FW = "\uff0c"  # the full-width comma between keywords
# (ID, age, sex, left keywords, right keywords, N D G C A H M O)
ODIR_ROWS = [
    (0, 69, "Female", "cataract", "normal fundus", "00010000"),
    (1, 57, "Male", "normal fundus", "normal fundus", "10000000"),
    (2, 42, "Male", f"moderate non proliferative retinopathy{FW}hypertensive retinopathy", "normal fundus", "01000100"),
    (3, 66, "Female", "anterior segment image", "pathological myopia", "00000010"),
    (4, 53, "Male", f"lens dust{FW}normal fundus", f"low image quality{FW}glaucoma", "00100000"),
    (5, 61, "Female", f"drusen{FW}normal fundus", f"mild nonproliferative retinopathy{FW}epiretinal membrane", "01000001"),
]
ODIR_TIME = datetime.datetime(2019, 10, 1, 9, 0, 0)


def odir5k(out: Path) -> list[Path]:
    members = {}
    for pid, *_rest in ODIR_ROWS:
        for eye in ("left", "right"):
            members[f"ODIR-5K_Training_Images/{pid}_{eye}.jpg"] = fundus(f"{pid}_{eye}", anterior=(pid, eye) == (3, "left"))
    manual = out / "odir5k" / "manual"
    manual.mkdir(parents=True, exist_ok=True)
    xlsx, images = manual / ODIR_XLSX, manual / "ODIR-5K_Training_Images.zip"
    with atomic_path(xlsx) as tmp:
        tmp.write_bytes(odir_workbook())
    write_zip(images, members)
    return [xlsx, images]


def fundus(name: str, anterior: bool = False) -> bytes:
    """A colour fundus-like JPEG: orange disc on black with a bright optic disc (or, for an
    anterior-segment photograph, an iris-like ring filling the frame)."""
    rng = seeded(name)
    w, h = int(rng.integers(120, 160)), int(rng.integers(100, 120))
    im = Image.new("RGB", (w, h), (0, 0, 0))
    draw = ImageDraw.Draw(im)
    r = h * 0.46
    if anterior:
        draw.ellipse([w / 2 - r, h / 2 - r, w / 2 + r, h / 2 + r], fill=(190, 160, 140))
        draw.ellipse([w / 2 - r / 2, h / 2 - r / 2, w / 2 + r / 2, h / 2 + r / 2], fill=(70, 50, 30))
    else:
        draw.ellipse([w / 2 - r, h / 2 - r, w / 2 + r, h / 2 + r], fill=(200, 90, 40))
        cx = w / 2 + (1 if name.endswith("right") else -1) * r * 0.45
        draw.ellipse([cx - 8, h / 2 - 8, cx + 8, h / 2 + 8], fill=(250, 220, 150))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85, optimize=False, progressive=False)
    return buf.getvalue()


def odir_workbook() -> bytes:
    """The xlsx, byte-deterministic (openpyxl stamps the save time: re-packed with fixed times)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"  # the real sheet name is UNCONFIRMED; the module reads the first sheet
    sheet.append(ODIR_HEADER)
    for pid, age, sex, left, right, flags in ODIR_ROWS:
        sheet.append([pid, age, sex, f"{pid}_left.jpg", f"{pid}_right.jpg", left, right, *(int(c) for c in flags)])
    return xlsx_bytes(book, ODIR_TIME)


# ---------------------------------------------------------------- mini-MIAS

MIAS_SIZE = 256  # 1/4 of the real 1024
# REFNUM -> (tissue, [(class, severity, x, y, radius) | (class,) | (class, severity)]); Y from the bottom
MIAS_ROWS = {
    "mdb001": ("G", [("CIRC", "B", 150, 170, 22)]),
    "mdb002": ("G", [("NORM",)]),
    "mdb003": ("F", [("SPIC", "M", 120, 90, 18), ("CALC", "B", 140, 100, 10)]),
    "mdb004": ("F", [("NORM",)]),
    "mdb005": ("D", [("CALC", "M")]),
    "mdb006": ("D", [("NORM",)]),
    "mdb007": ("G", [("MISC", "B", 240, 200, 24)]),
    "mdb008": ("G", [("NORM",)]),
}
MIAS_README = """MINI-MIAS SAMPLE (medcurate's synthetic stand-in for all-mias.tar.gz)

Our summary of the real archive's README: the MIAS films reduced to 200 micron pixels and
padded/clipped to 1024 x 1024; Info.txt lists REFNUM, background tissue (F/G/D), class of
abnormality (CALC, CIRC, SPIC, MISC, ARCH, ASYM, NORM), severity (B/M), the X Y centre and the
radius of an enclosing circle. Films come in pairs: left (even number) and right (odd number)
of one woman. The origin of the coordinates is the bottom-left corner. Widely distributed
calcifications have no centre or radius. This sample's images are 256 x 256 and synthetic.
"""
MIAS_LICENCE = """LICENCE (our summary of the real archive's Licence.txt)

The real database is licensed by the Mammographic Image Analysis Society for research use only;
it may not be rented, leased or sold, and publications must cite it (Suckling et al. 1994).
This sample holds no MIAS data: its pixels and values are synthetic.
"""


def mias(out: Path) -> list[Path]:
    members = {"Info.txt": mias_info(), "Licence.txt": MIAS_LICENCE.encode(), "README": MIAS_README.encode()}
    for ref in MIAS_ROWS:
        members[f"{ref}.pgm"] = mias_pgm(ref)
    dest = out / "mias" / "all-mias.tar.gz"
    write_tar_gz(dest, dict(sorted(members.items())))
    return [dest]


def mias_info() -> bytes:
    lines = ["REFNUM BG CLASS SEVERITY X Y RADIUS "]
    for ref, (tissue, rows) in MIAS_ROWS.items():
        for row in rows:
            lines.append(" ".join([ref, tissue, *map(str, row)]) + (" " if row == ("NORM",) else ""))
    return ("\n".join(lines) + "\n").encode("ascii")


def mias_pgm(ref: str) -> bytes:
    """8-bit breast on black (left films: chest wall on the left, right films mirrored), every
    located abnormality a bright blob at (X, height - Y)."""
    px = (mammogram(f"mias/{ref}", (MIAS_SIZE, MIAS_SIZE)) >> 6).astype(np.uint8)
    if int(ref[3:]) % 2:
        px = px[:, ::-1]
    im = Image.fromarray(np.ascontiguousarray(px), "L")
    draw = ImageDraw.Draw(im)
    for row in MIAS_ROWS[ref][1]:
        if len(row) == 5:
            _, _, x, y, r = row
            cy = MIAS_SIZE - y
            draw.ellipse([x - r * 0.8, cy - r * 0.8, x + r * 0.8, cy + r * 0.8], fill=250)
    buf = io.BytesIO()
    im.save(buf, format="PPM")  # mode L -> binary P5 PGM
    return buf.getvalue()


