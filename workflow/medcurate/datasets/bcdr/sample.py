"""Sample of BCDR: the digital subsets BCDR-D01 and BCDR-D02, one zip per subset folder
(BCDR-D01_dataset.zip, BCDR-D02_dataset.zip: archive names UNCONFIRMED, bcdr.eu serves them
after login).

Each zip holds <subset>_dataset/bcdr_<subset>_outlines.csv in the real format (the excerpt in
../shared/realdata/BCDR: a comma-only header, ', '-separated rows, space-separated point lists of
an 8-connected traced outline, ' Benign'/' Malignant', LF line ends) and
patient_<p>/study_<s>/img_<p>_<s>_<series>_<VIEW>.tif images. The real digital TIFs are assumed to
be 16-bit grey, 3328x4084 (both UNCONFIRMED); the sample's are synthetic 16-bit grey frames at 1/8
of that (416x510), uncompressed TIFF inside the deflated zip. The bcdr_<subset>_img.csv files are
left out (their columns are UNCONFIRMED). Quirks shown: all four view codes, an image with a benign
and a malignant lesion, a lesion segmented twice on one image, the same lesion on both views of a
breast.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ...formats import shapes
from ...samples import mammogram, write_zip

HEADER = ("patient_id,study_id,series,lesion_id,segmentation_id,image_view,image_filename,lw_x_points,lw_y_points,"
          "mammography_type,mammography_nodule,mammography_calcification,mammography_microcalcification,"
          "mammography_axillary_adenopathy,mammography_architectural_distortion,mammography_stroma_distortion,"
          "age,density,classification")
VIEW_CODES = {"RCC": 1, "LCC": 2, "RO": 3, "LO": 4}
SIZE = (416, 510)  # 1/8 of 3328x4084 (w x h)
# subset -> rows of (patient, study, series, lesion, segmentation, view, outline (cx, cy, rx, ry),
#                    flags (nodule, calcification, microcalcification, adenopathy, arch., stroma), age, density, class)
ROWS = {
    "d01": [
        (1, 1, 1, 1, 1, "RCC", (120, 200, 22, 16), (1, 0, 0, 0, 0, 0), 54, 2, "Benign"),
        (1, 1, 1, 2, 2, "RCC", (150, 330, 30, 24), (1, 0, 1, 0, 0, 0), 54, 2, "Malignant"),
        (1, 1, 1, 1, 3, "RO", (130, 240, 20, 17), (1, 0, 0, 0, 0, 0), 54, 2, "Benign"),
        (1, 1, 1, 2, 4, "RO", (160, 360, 28, 22), (1, 0, 1, 0, 0, 0), 54, 2, "Malignant"),
        (3, 4, 1, 3, 5, "LCC", (180, 250, 35, 26), (0, 0, 0, 0, 1, 0), 67, 3, "Malignant"),
        (3, 4, 1, 3, 6, "LO", (170, 290, 32, 28), (0, 0, 0, 0, 1, 0), 67, 3, "Malignant"),
    ],
    "d02": [
        (5, 6, 1, 4, 7, "LCC", (110, 260, 14, 12), (0, 1, 0, 0, 0, 0), 48, 1, "Benign"),
        (5, 6, 1, 4, 8, "LO", (125, 280, 15, 11), (0, 1, 0, 0, 0, 0), 48, 1, "Benign"),
        (6, 9, 1, 5, 9, "RCC", (140, 220, 25, 20), (1, 0, 0, 0, 0, 0), 71, 4, "Benign"),
        (6, 9, 1, 5, 10, "RCC", (143, 222, 27, 19), (1, 0, 0, 0, 0, 0), 71, 4, "Benign"),  # second segmentation
    ],
}


def bcdr(out: Path) -> list[Path]:
    written = []
    for subset, rows in ROWS.items():
        folder = f"BCDR-{subset.upper()}_dataset"
        lines, names = [HEADER], []
        for p, s, series, lesion, seg, view, ellipse, flags, age, density, cls in rows:
            name = image_name(p, s, series, view)
            xs, ys = traced_outline(*ellipse)
            cells = [p, s, series, lesion, seg, VIEW_CODES[view], name, " ".join(map(str, xs)), " ".join(map(str, ys)),
                     1, *flags, age, density, cls]
            lines.append(", ".join(map(str, cells)))
            names += [name] if name not in names else []
        images = {name: tif_bytes(f"bcdr/{name}", lesions(subset, name)) for name in names}
        members = {f"{folder}/bcdr_{subset}_outlines.csv": ("\n".join(lines) + "\n").encode()}
        members.update({f"{folder}/{name}": data for name, data in sorted(images.items())})
        dest = out / "bcdr" / "manual" / f"{folder}.zip"
        write_zip(dest, members)
        written.append(dest)
    return written


def image_name(patient: int, study: int, series: int, view: str) -> str:
    return f"patient_{patient}/study_{study}/img_{patient}_{study}_{series}_{view}.tif"


def lesions(subset: str, name: str) -> list[tuple[list[int], list[int], str]]:
    """The traced outlines (xs, ys, classification) of one image's rows."""
    return [(*traced_outline(*row[6]), row[10]) for row in ROWS[subset] if image_name(*row[:3], row[5]) == name]


def traced_outline(cx: int, cy: int, rx: int, ry: int) -> tuple[list[int], list[int]]:
    """An ellipse traced as an 8-connected chain of integer pixels (the real outlines' style:
    consecutive points one pixel apart), wobbling a little so it is not a perfect oval."""
    t = np.linspace(0, 2 * np.pi, 8 * (rx + ry), endpoint=False)
    wobble = 1 + 0.08 * np.sin(3 * t) + 0.05 * np.cos(5 * t)
    xs = np.round(cx + rx * wobble * np.cos(t)).astype(int)
    ys = np.round(cy + ry * wobble * np.sin(t)).astype(int)
    keep = np.ones(len(xs), bool)
    keep[1:] = (np.diff(xs) != 0) | (np.diff(ys) != 0)
    return xs[keep].tolist(), ys[keep].tolist()


BRIGHTER = {"Benign": 1500, "Malignant": 2600}  # of 2**14 - 1: the malignant lesion, on top where both are


def tif_bytes(name: str, lesions: list[tuple[list[int], list[int], str]]) -> bytes:
    """A 16-bit grey TIFF (uncompressed; Pillow writes no date or software tag, so it is
    deterministic) with each lesion drawn in, filled as the module fills its outline."""
    base = mammogram(name, SIZE, bits=14).astype(np.int32)
    px = base.copy()
    for xs, ys, cls in sorted(lesions, key=lambda lesion: BRIGHTER[lesion[2]]):
        region, _ = shapes.polygon(xs, ys, px.shape)
        px[region] = base[region] + BRIGHTER[cls]
    im = Image.fromarray(px.clip(0, (1 << 14) - 1).astype(np.uint16))
    buf = io.BytesIO()
    im.save(buf, format="TIFF", compression="raw")
    return buf.getvalue()
