"""Sample of mini-MIAS (open): real names, folders,
delimiters and quirks (DATASETS.md 12b, 12c, 12f); synthetic pixels, values and text.
- MIAS: all-mias.tar.gz with members at the top level (as a third-party loader reads it; UNCONFIRMED):
  eight mdbNNN.pgm (four women) at 256x256, i.e. 1/4 of the real 1024 (Info.txt coordinates
  are in the sample's pixels, Y from the BOTTOM), Info.txt with its header line, NORM rows with a
  trailing space, a REFNUM on two rows (SPIC M + CALC B, overlapping), a CALC row without
  coordinates and a circle reaching over the image's edge; README and Licence.txt with our own
  summary text. Abnormalities are drawn as bright blobs where the flip puts them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...samples import mammogram, write_tar_gz

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
