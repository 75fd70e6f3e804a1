"""Sample of CDD-CESM (TCIA): the metadata xlsx, the VIA segmentation CSV, and the image folders
of the Aspera package zipped as manual/CDD-CESM.zip.

Real layout and quirks (DATASETS.md section 8 and ../shared/realdata/CDD-CESM): sheet 'all' with
the real 12 column names (plus a per-finding sheet, as the real workbook has nine), Image_name
without extension and with stray trailing spaces on some names, Type DM | CESM against _DM_ | _CM_
file names, '_' density on CESM rows, '$'-joined BIRADS, a name listed twice as identical rows
(as P99/P281 are); the VIA CSV with the '#filename' header, polygon / ellipse / circle / point
regions as JSON, file_size = the JPEG's real byte size, a region_count 0 row for an image opened
but not annotated. One JPEG carries the space before '.jpg' that a third-party converter renames
(UNCONFIRMED in the release itself). Pixels are synthetic: samples.mammogram() at 1/8 of the
documented average 2355 x 1315 (height x width), 8-bit, fixed JPEG quality.
"""

from __future__ import annotations

import datetime
import io
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...samples import csv_bytes, mammogram, write_zip, xlsx_bytes

SIZE = (164, 294)  # (width, height): 1/8 of the average 1315 x 2355 frame
HEADER = ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS", "Findings",
          "View", "Tags", "Machine", "Pathology Classification/ Follow up"]
VIA_HEADER = ["#filename", "file_size", "file_attributes", "region_count", "region_id",
              "region_shape_attributes", "region_attributes"]
FIXED_TIME = datetime.datetime(2022, 11, 10, 8, 49, 6)

# (Image_name as written, age, density, BIRADS, findings, tags, machine, pathology, regions).
# Regions in fractions of the breast: (shape, x, y, size); x from the chest wall, y from the top.
IMAGES = [
    ("P1_L_DM_MLO", 46, "C", 4, "Architectural distortion ", "suspicious, distortion", 1, "Malignant",
     [("polygon", 0.30, 0.45, 0.10)]),
    ("P1_L_CM_MLO", 46, "_", 4, "Heterogenous non mass enhancement ", "suspicious, non mass", 1, "Malignant",
     [("polygon", 0.32, 0.47, 0.11)]),
    ("P1_R_DM_CC", 46, "C", 1, "Normal", "normal", 1, "Normal", []),
    ("P1_R_CM_CC", 46, "_", 1, "No mass or non mass enhancement", "normal", 1, "Normal", []),
    ("P2_R_DM_CC", 31, "C", "3$2", "Multiple equal density  masses$Benign macrocalcifications ",
     "benign, masses, macrocalcification", 2, "Benign", [("ellipse", 0.35, 0.60, 0.07), ("circle", 0.20, 0.35, 0.04)]),
    ("P2_R_CM_CC", 31, "_", 3, "Multiple homogenously enhancing  masses ", "benign, masses, homogenous", 2, "Benign",
     [("ellipse", 0.36, 0.61, 0.08), ("circle", 0.21, 0.36, 0.05), ("point", 0.45, 0.30, 0)]),
    ("P3_L_DM_CC", 45, "C", 5, "High density mass with speculated margin ", "malignant, mass, speculated", 1,
     "Malignant", [("polygon", 0.40, 0.55, 0.09)]),
    ("P3_L_CM_CC ", 45, "_", 5, "Heterogenously enhancing mass with speculated margin ", "malignant, mass, speculated",
     1, "Malignant", [("polygon", 0.41, 0.56, 0.10)]),
    ("P4_L_DM_MLO ", 53, "B", 2, "Benign macrocalcification", "benign macrocalcification", 1, "Benign",
     [("ellipse", 0.25, 0.70, 0.03), ("point", 0.50, 0.40, 0)]),
    ("P4_L_CM_MLO ", 53, "_", 2, "No enhancement", "benign macrocalcification", 1, "Benign", []),
    ("P5_R_DM_MLO", 61, "B", 1, "Normal", "normal", 1, "Normal", []),
    ("P5_R_CM_MLO", 61, "_", 1, "No mass or non mass enhancement", "normal", 1, "Normal", []),
]
DUPLICATE_ROW = "P5_R_DM_MLO"  # listed twice, identically (as P99_L_DM_MLO is in the real sheet)
NO_REGION_ROW = "P1_R_DM_CC"  # opened in VIA, no region drawn: one region_count 0 row
SPACED_FILE = "P3_L_CM_CC"  # JPEG named 'P3_L_CM_CC .jpg'
NAME = re.compile(r"^P(\d+)_([LR])_(DM|CM)_(CC|MLO)$")


def cdd_cesm(out: Path) -> list[Path]:
    folder = out / "cdd_cesm"
    jpegs, via_rows = {}, [VIA_HEADER]
    for spec in sorted(IMAGES, key=lambda s: (int(NAME.match(s[0].strip()).group(1)), s[0].strip())):
        name, regions = spec[0].strip(), spec[-1]
        size = _size(name)
        shapes = [_region(kind, x, y, r, size, name) for kind, x, y, r in regions]
        jpegs[name] = _jpeg(name, size, shapes)
        filename = f"{name}.jpg"
        for i, shape in enumerate(shapes):
            via_rows.append([filename, str(len(jpegs[name])), "{}", str(len(shapes)), str(i),
                             json.dumps(shape, separators=(",", ":")), "{}"])
        if name == NO_REGION_ROW:
            via_rows.append([filename, str(len(jpegs[name])), "{}", "0", "0", "{}", "{}"])
    members = {}
    for name in sorted(jpegs):
        kind = "Low energy images of CDD-CESM" if "_DM_" in name else "Subtracted images of CDD-CESM"
        file = f"{name} .jpg" if name == SPACED_FILE else f"{name}.jpg"
        members[f"CDD-CESM/{kind}/{file}"] = jpegs[name]
    folder.mkdir(parents=True, exist_ok=True)
    xlsx, csv_path, archive = (folder / "Radiology-manual-annotations.xlsx",
                               folder / "Radiology_hand_drawn_segmentations_v2.csv", folder / "manual" / "CDD-CESM.zip")
    xlsx.write_bytes(workbook())
    csv_path.write_bytes(csv_bytes(via_rows, ","))
    write_zip(archive, members)
    return [xlsx, csv_path, archive]


def _size(name: str) -> tuple[int, int]:
    """Real frames vary in size: +-6 % per patient."""
    patient = int(NAME.match(name).group(1))
    scale = 1 + 0.03 * ((patient % 5) - 2)
    return round(SIZE[0] * scale), round(SIZE[1] * scale)


def _region(kind: str, fx: float, fy: float, fr: float, size: tuple[int, int], name: str) -> dict:
    """A VIA shape dict in pixels; the breast lies at the chest wall (x=0 on L, x=w on R images)."""
    w, h = size
    right = NAME.match(name).group(2) == "R"
    cx = round((1 - fx) * w if right else fx * w)
    cy = round(fy * h)
    r = fr * w
    if kind == "polygon":  # a lumpy hand-traced outline, closed by repeating the first vertex (as VIA does)
        angles = np.linspace(0, 2 * np.pi, 13)[:-1]
        radii = r * (1 + 0.25 * np.sin(3 * angles + len(name)))
        xs = [round(cx + rr * np.cos(a)) for a, rr in zip(angles, radii)]
        ys = [round(cy + rr * 1.3 * np.sin(a)) for a, rr in zip(angles, radii)]
        return {"name": "polygon", "all_points_x": xs + xs[:1], "all_points_y": ys + ys[:1]}
    if kind == "ellipse":
        return {"name": "ellipse", "cx": cx, "cy": cy, "rx": round(r), "ry": round(r * 1.4)}
    if kind == "circle":
        return {"name": "circle", "cx": cx, "cy": cy, "r": round(r)}
    return {"name": "point", "cx": cx, "cy": cy}


def _jpeg(name: str, size: tuple[int, int], shapes: list[dict]) -> bytes:
    """8-bit synthetic frame (subtracted images darker), findings drawn a little brighter."""
    px = (mammogram(name, size) >> 6).astype(np.uint8)
    if NAME.match(name).group(2) == "R":
        px = px[:, ::-1]
    if "_CM_" in name:
        px = (px * 0.6).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(px), "L")
    draw = ImageDraw.Draw(im)
    for s in shapes:
        if s["name"] == "polygon":
            draw.polygon(list(zip(s["all_points_x"], s["all_points_y"])), fill=230)
        elif s["name"] != "point":
            rx, ry = (s["r"], s["r"]) if s["name"] == "circle" else (s["rx"], s["ry"])
            draw.ellipse([s["cx"] - rx, s["cy"] - ry, s["cx"] + rx, s["cy"] + ry], fill=210)
        else:
            draw.ellipse([s["cx"] - 1, s["cy"] - 1, s["cx"] + 1, s["cy"] + 1], fill=255)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85, optimize=False, progressive=False)
    return buf.getvalue()


def workbook() -> bytes:
    """The xlsx, byte-deterministic: openpyxl stamps docProps/core.xml with the save time and the
    zip members with the clock, so the saved file is re-packed with fixed times."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "all"
    sheet.append(HEADER)
    rows = []
    for name, age, density, birads, findings, tags, machine, pathology, _ in IMAGES:
        m = NAME.match(name.strip())
        row = [name, int(m.group(1)), m.group(2), "DM" if m.group(3) == "DM" else "CESM", age, density, birads,
               findings, m.group(4), tags, machine, pathology]
        rows += [row, row] if name == DUPLICATE_ROW else [row]
    for row in rows:
        sheet.append(row)
    calc = book.create_sheet("calcifications")  # a per-finding sheet: 'ACR', no Tags column
    calc.append(["Image_name", "Patient_ID", "Side", "Type", "Age", "ACR", "BIRADS", "Findings", "View", "Machine",
                 "Pathology Classification/ Follow up"])
    for row in rows:
        if "calcification" in row[7]:
            calc.append(row[:9] + row[10:])
    return xlsx_bytes(book, FIXED_TIME)
