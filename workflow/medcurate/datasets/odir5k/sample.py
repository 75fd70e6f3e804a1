"""Sample of ODIR-5K (gated): real names, folders,
delimiters and quirks (DATASETS.md 12b, 12c, 12f); synthetic pixels, values and text.
- ODIR-5K: manual/ODIR-5K_Training_Annotations(Updated)_V2.xlsx (first sheet, the real 15 column
  names; byte-deterministic) and manual/ODIR-5K_Training_Images.zip (folder
  ODIR-5K_Training_Images/ of <ID>_left.jpg/<ID>_right.jpg). Keywords joined by the full-width
  comma; one anterior-segment (not fundus) eye, one low-quality eye, one with lens dust, patient
  flags N..O set for both eyes together. Fundus JPEGs at ~1/20 of real sizes.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

from PIL import Image, ImageDraw

from ...atomic import atomic_path
from ...samples import seeded, write_zip, xlsx_bytes

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
