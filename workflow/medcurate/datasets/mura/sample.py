"""Sample of MURA v1.1 (gated): real names, folders,
delimiters and quirks (DATASETS.md 12b, 12c, 12f); synthetic pixels, values and text.
- MURA: manual/MURA-v1.1.zip holding MURA-v1.1/{train,valid}/XR_<TYPE>/patientNNNNN/studyK_<suffix>/imageN.png
  and the four header-less CSVs ('MURA-v1.1/...' paths; studies with a trailing '/'). Three train
  patients (one with two studies of one body part, one positive) and one valid patient (the real
  valid set's first id, patient11185). Three macOS AppleDouble '._imageN.png' files in XR_WRIST,
  listed in no CSV, as in the real release. PNGs of varying small sizes, one saved as RGB.
"""

from __future__ import annotations

import struct
from pathlib import Path

from PIL import Image, ImageDraw

from ...samples import csv_bytes, png_bytes, seeded, write_zip

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
