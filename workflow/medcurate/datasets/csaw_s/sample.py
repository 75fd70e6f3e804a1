"""Sample of CSAW-S: the CsawS/ release zipped as CsawS.zip (archive name UNCONFIRMED), plus the
authors' suggested validation split (same JSON structure, naming the sample's patients).

Layout from the authors' README and conversion code (../shared/realdata/CSAW-S/LAYOUT_NOTES.md):
anonymized_dataset/<patient>/<patient>_<k>.png with <stem>_<class>.png binary maps (0/255; the
real value range is UNCONFIRMED, the authors' code reads non-zero as inside), test_data/ with the
test screenings and three annotators' maps. Quirks shown: 1- and 2-digit screening numbers, a
3-channel screening with its grey _8bit sibling, overlapping classes (cancer over mammary gland,
calcifications under cancer, non-mammary tissue over gland, a lymph node over the pectoral
muscle), three test annotators that disagree about the cancer. Pixels are synthetic 8-bit
frames of 352x448 and 320x416, about 1/8 of a full-field mammogram (real CSAW-S matrix sizes
are UNCONFIRMED); training_random_splits.json (optional, structure unknown) is left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...samples import mammogram, png_bytes, write_zip

CLASSES = ["cancer", "calcifications", "axillary_lymph_nodes", "thick_vessels", "foreign_object", "skin",
           "nipple", "text", "non-mammary_tissue", "pectoral_muscle", "mammary_gland"]
SIZES = [(352, 448), (320, 416)]
# patient -> [(screening number, 3-channel?, cancer variant)]; variants below
TRAIN = {"000": [(0, False, "small"), (1, True, None)], "012": [(10, False, "small"), (11, False, None)],
         "107": [(3, False, "large")], "131": [(0, False, None)]}
VALIDATION = ["012", "131"]
TEST = {"300": [(0, False, None), (1, False, None)], "301": [(0, False, None)]}
# The three experts disagree on the test cancers: same site, other extent, or none at all.
EXPERT_CANCER = {"annotator_1": "small", "annotator_2": "large", "annotator_3": None}


def csaw_s(out: Path) -> list[Path]:
    members: dict[str, bytes] = {}
    n = 0
    for patient, screenings in TRAIN.items():
        for k, rgb, cancer in screenings:
            stem, size = f"{patient}_{k}", SIZES[n % 2]
            folder = f"CsawS/anonymized_dataset/{patient}"
            members.update(_screening(folder, stem, size, rgb, cancer))
            members.update(_maps(folder, stem, size, cancer))
            n += 1
    for patient, screenings in TEST.items():
        for k, _, _ in screenings:
            stem, size = f"{patient}_{k}", SIZES[n % 2]
            # the image shows the first expert's cancer (the converter's default annotator)
            members.update(_screening(f"CsawS/test_data/anonymized_dataset/{patient}", stem, size, False,
                                      EXPERT_CANCER["annotator_1"]))
            for expert, cancer in EXPERT_CANCER.items():
                members.update(_maps(f"CsawS/test_data/{expert}/{patient}", stem, size, cancer))
            n += 1
    archive = out / "csaw_s" / "manual" / "CsawS.zip"
    write_zip(archive, dict(sorted(members.items())))
    split = out / "csaw_s" / "suggested_validation_split.json"
    split.write_text(json.dumps(VALIDATION))  # the real file: one line, no trailing newline
    return [archive, split]


# Grey levels of the classes drawn into the screening, so each map lies on what the image shows
# (drawn in the reverse of the authors' overlap order: the class that wins an overlap is on top).
TONES = {"mammary_gland": 200, "pectoral_muscle": 240, "non-mammary_tissue": 55, "text": 255, "nipple": 250,
         "thick_vessels": 30, "axillary_lymph_nodes": 120, "calcifications": 255, "cancer": 250}


def _screening(folder: str, stem: str, size: tuple[int, int], rgb: bool, cancer: str | None) -> dict[str, bytes]:
    grey = Image.fromarray((mammogram(f"csaw_s/{stem}", size) >> 6).astype(np.uint8))
    draw = ImageDraw.Draw(grey)
    drawn = shapes(size, cancer)
    for name in reversed(CLASSES):
        for kind, geometry in drawn.get(name, []):
            _draw(draw, kind, geometry, TONES[name])
    if not rgb:
        return {f"{folder}/{stem}.png": png_bytes(grey)}
    # A 3-channel screening whose channels differ slightly, with the grey copy beside it.
    tinted = Image.merge("RGB", [grey, grey.point(lambda v: max(v - 3, 0)), grey])
    return {f"{folder}/{stem}.png": png_bytes(tinted), f"{folder}/{stem}_8bit.png": png_bytes(grey)}


def shapes(size: tuple[int, int], cancer: str | None) -> dict[str, list]:
    """Per-class drawing instructions (kind, box or points) in pixels; breast on the left."""
    w, h = size

    def box(cx, cy, rx, ry):
        return [w * (cx - rx), h * (cy - ry), w * (cx + rx), h * (cy + ry)]

    drawn = {
        "mammary_gland": [("ellipse", box(0.22, 0.5, 0.16, 0.2))],
        "non-mammary_tissue": [("ellipse", box(0.3, 0.72, 0.12, 0.08))],
        "pectoral_muscle": [("polygon", [(0, 0), (w * 0.18, 0), (0, h * 0.3)])],
        "axillary_lymph_nodes": [("ellipse", box(0.06, 0.1, 0.03, 0.02))],
        "nipple": [("ellipse", box(0.5, 0.5, 0.02, 0.015))],
        "thick_vessels": [("line", [(w * 0.05, h * 0.6), (w * 0.35, h * 0.78)])],
        "text": [("rectangle", [w * 0.8, h * 0.04, w * 0.95, h * 0.09])],
        "calcifications": [("ellipse", box(0.25, 0.5, 0.01, 0.008)), ("ellipse", box(0.14, 0.42, 0.01, 0.008))],
    }
    if cancer:
        r = {"small": (0.05, 0.04), "large": (0.08, 0.06)}[cancer]
        drawn["cancer"] = [("ellipse", box(0.25, 0.5, *r))]
    return drawn


def _maps(folder: str, stem: str, size: tuple[int, int], cancer: str | None) -> dict[str, bytes]:
    drawn = shapes(size, cancer)
    out = {}
    for name in CLASSES:  # every class has a map, empty where the class is absent
        im = Image.new("L", size, 0)
        draw = ImageDraw.Draw(im)
        for kind, geometry in drawn.get(name, []):
            _draw(draw, kind, geometry, 255)
        out[f"{folder}/{stem}_{name}.png"] = png_bytes(im)
    return out


def _draw(draw: ImageDraw.ImageDraw, kind: str, geometry: list, fill: int) -> None:
    if kind == "line":
        draw.line(geometry, fill=fill, width=3)
    else:
        getattr(draw, kind)(geometry, fill=fill)
