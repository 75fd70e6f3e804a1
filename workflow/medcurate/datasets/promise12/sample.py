"""Sample archive of PROMISE12 (Zenodo 8026660): training_data.zip with MetaImage .mhd/.raw pairs.

Layout and voxel types as DATASETS.md section 11a and the challenge's description give them
(images MET_SHORT, labels MET_CHAR 0/1). No real header was found in any public source: the
headers are written key for key as SimpleITK's MetaImage writer writes them (UNCONFIRMED for the
real files). Pixels are synthetic: a smooth pelvis-like field with a brighter ellipsoid gland.
Quirks shown: anisotropic spacing that differs per case (multi-centre), an oblique
TransformMatrix, and a flipped one (the label shares its image's header geometry).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...samples import seeded, write_zip

DIMS = (24, 24, 6)  # x, y, z as DimSize lists them
_C, _S = np.cos(np.radians(12)), np.sin(np.radians(12))
# case: (ElementSpacing, TransformMatrix as MetaImage writes it: the direction of axis i, then j, then k, in LPS)
CASES = {
    "Case00": ((0.625, 0.625, 3.6), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
    "Case01": ((0.2734375, 0.2734375, 2.2), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
    "Case02": ((0.5, 0.5, 3.0), (1, 0, 0, 0, _C, _S, 0, -_S, _C)),  # oblique: tilted 12 degrees about x
    "Case03": ((0.625, 0.625, 4.0), (1, 0, 0, 0, -1, 0, 0, 0, -1)),  # rows and slices stored flipped
}


def promise12(out: Path) -> list[Path]:
    members: dict[str, bytes] = {}
    for case, (spacing, matrix) in CASES.items():
        image, label = _volumes(case)
        offset = tuple(-0.5 * d * s for d, s in zip(DIMS, spacing))
        members[f"training_data/{case}.mhd"] = header(f"{case}.raw", spacing, matrix, offset, "MET_SHORT")
        members[f"training_data/{case}.raw"] = image.astype("<i2").tobytes()
        members[f"training_data/{case}_segmentation.mhd"] = header(f"{case}_segmentation.raw", spacing, matrix, offset, "MET_CHAR")
        members[f"training_data/{case}_segmentation.raw"] = label.astype("i1").tobytes()
    dest = out / "promise12" / "training_data.zip"
    write_zip(dest, dict(sorted(members.items())))
    return [dest]


def header(data_file: str, spacing, matrix, offset, element_type: str) -> bytes:
    """A MetaImage header with SimpleITK's keys, order and number formatting (%.17g)."""
    def nums(values) -> str:
        return " ".join(f"{float(v):.17g}" for v in values)

    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        f"TransformMatrix = {nums(matrix)}",
        f"Offset = {nums(offset)}",
        "CenterOfRotation = 0 0 0",
        f"AnatomicalOrientation = {itk_orientation(matrix)}",
        f"ElementSpacing = {nums(spacing)}",
        f"DimSize = {' '.join(map(str, DIMS))}",
        f"ElementType = {element_type}",
        f"ElementDataFile = {data_file}",
    ]
    return ("\n".join(lines) + "\n").encode()


def itk_orientation(matrix) -> str:
    """ITK's AnatomicalOrientation code: per axis, the side it comes from (identity in LPS -> 'RAI')."""
    code = ""
    for axis in range(3):
        d = np.asarray(matrix[3 * axis:3 * axis + 3], float)
        c = int(np.argmax(np.abs(d)))
        code += ("RAI" if d[c] > 0 else "LPS")[c]
    return code


def _volumes(case: str) -> tuple[np.ndarray, np.ndarray]:
    """(z, y, x) int16 image and 0/1 label, smooth so the archive stays small."""
    nx, ny, nz = DIMS
    rng = seeded(f"promise12/{case}")
    coarse = rng.integers(120, 360, size=(4, 4)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse).resize((nx, ny), Image.Resampling.BILINEAR), np.float32)
    zz, yy, xx = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float32)
    cx, cy = nx / 2 + rng.uniform(-2, 2), ny / 2 + rng.uniform(-2, 2)
    rx, ry, rz = rng.uniform(4.5, 6.5), rng.uniform(3.5, 5.5), rng.uniform(1.6, 2.4)
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 + ((zz - (nz - 1) / 2) / rz) ** 2
    gland = inside <= 1.0
    image = field[None] + np.where(gland, 420 - 120 * inside, 0) - 6 * np.abs(zz - nz / 2)
    return (np.round(image / 16) * 16).astype(np.int16), gland.astype(np.int8)
