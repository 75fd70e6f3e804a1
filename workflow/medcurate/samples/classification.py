"""Samples of three classification sets: ISIC 2019, NIH ChestX-ray14 and Kermany OCT 2018.

Layouts follow DATASETS.md sections 12a, 12d and 12e (no real files of these sets are in
../shared/realdata); pixels are synthetic and tiny, names and folders real.

- ISIC 2019: ISIC_2019_Training_Input.zip (ISIC_2019_Training_Input/ISIC_NNNNNNN.jpg) and the
  ground-truth and metadata CSVs as separate sources. One-hot float cells (1.0/0.0), a lesion
  (HAM_...) with two images, rows without lesion_id (patient falls back to the image id), a
  '_downsampled' image named so in the CSVs too, every class but UNK, and one row with two classes
  marked 1.0 (quarantined).
- ChestX-ray14: the twelve images_0NN.tar.gz (images/<patient8>_<fu3>.png, one or two each, one
  PNG saved as RGBA) and, in manual/, Data_Entry_2017_v2020.csv (the header whose bracketed
  names split into four columns, ending in an empty column), train_val_list.txt and
  test_list.txt. Multi-label rows, 'No Finding', 'Pleural_Thickening', a patient with three
  follow-ups, test patients disjoint from train_val ones.
- Kermany OCT: OCT2017.tar.gz with OCT2017/{train,test}/{CNV,DME,DRUSEN,NORMAL}/<CLASS>-<pid>-<n>.jpeg,
  several B-scans per patient, a patient in both train and test, a DRUSEN-named file in the CNV
  folder (quarantined) and a .DS_Store in train/ (seen in the Kaggle copy).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_path
from . import csv_bytes, png_bytes, seeded, write_tar_gz, write_zip

DATASETS = ("isic2019", "chestxray14", "kermany_oct")


# ---------------------------------------------------------------- helpers


def jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _smooth(name: str, size: tuple[int, int], lo: int, hi: int) -> np.ndarray:
    w, h = size
    coarse = seeded(name).integers(lo, hi, size=(6, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), np.float32)


# ---------------------------------------------------------------- ISIC 2019

ISIC_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
# image: (classes marked 1.0, age_approx, anatom_site_general, lesion_id, sex)
ISIC_ROWS = {
    "ISIC_0000000": (["NV"], "55.0", "anterior torso", "", "female"),
    "ISIC_0000001": (["NV"], "30.0", "anterior torso", "", "female"),
    "ISIC_0000002": (["MEL"], "60.0", "upper extremity", "", "female"),
    "ISIC_0000003": (["MEL", "NV"], "30.0", "upper extremity", "", "male"),  # two 1.0s: quarantined
    "ISIC_0000004_downsampled": (["MEL"], "80.0", "posterior torso", "", "male"),
    "ISIC_0024306": (["NV"], "45.0", "", "HAM_0000550", "male"),
    "ISIC_0024307": (["NV"], "45.0", "lower extremity", "HAM_0000550", "male"),  # same lesion, second image
    "ISIC_0024308": (["BKL"], "50.0", "lower extremity", "HAM_0002730", "female"),
    "ISIC_0024318": (["DF"], "70.0", "lower extremity", "HAM_0002152", "female"),
    "ISIC_0053454": (["BCC"], "", "head/neck", "BCN_0000019", ""),
    "ISIC_0053460": (["AK"], "75.0", "head/neck", "BCN_0003925", "male"),
    "ISIC_0053470": (["SCC"], "65.0", "anterior torso", "BCN_0002670", "male"),
    "ISIC_0055000": (["VASC"], "40.0", "lower extremity", "BCN_0001245", "female"),
}


def lesion(name: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A dermoscopy-like frame: skin-tone background with a dark irregular blob."""
    w, h = size
    rng = seeded(name)
    skin = np.stack([_smooth(name + c, size, 170, 230) for c in "rgb"], -1) * np.array([1.0, 0.78, 0.66])
    im = Image.fromarray(skin.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    cx, cy, r = w * (0.4 + 0.2 * rng.random()), h * (0.4 + 0.2 * rng.random()), h * (0.2 + 0.1 * rng.random())
    draw.ellipse([cx - r * 1.2, cy - r, cx + r * 1.2, cy + r], fill=tuple(int(v) for v in rng.integers(40, 110, 3)))
    return jpeg_bytes(im)


def isic2019(out: Path) -> list[Path]:
    folder = out / "isic2019"
    truth = [["image", *ISIC_CLASSES]]
    meta = [["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]]
    members = {}
    for name, (hot, age, site, lesion_id, sex) in ISIC_ROWS.items():
        truth.append([name, *("1.0" if c in hot else "0.0" for c in ISIC_CLASSES)])
        meta.append([name, age, site, lesion_id, sex])
        members[f"ISIC_2019_Training_Input/{name}.jpg"] = lesion(name)
    paths = [folder / "ISIC_2019_Training_Input.zip", folder / "ISIC_2019_Training_GroundTruth.csv",
             folder / "ISIC_2019_Training_Metadata.csv"]
    write_zip(paths[0], members)
    for path, rows in zip(paths[1:], (truth, meta)):
        with atomic_path(path) as tmp:
            tmp.write_bytes(csv_bytes(rows, ","))
    return paths


# ---------------------------------------------------------------- ChestX-ray14

CXR_HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
              "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]", ""]
# image: (archive number, Finding Labels, age, gender, view, original width, height, spacing)
CXR_ROWS = {
    "00000001_000.png": (1, "Effusion", "63", "M", "PA", "2750", "2687", "0.14300000000000002"),
    "00000001_001.png": (1, "Effusion|Emphysema", "63", "M", "PA", "2790", "2745", "0.14300000000000002"),
    "00000001_002.png": (2, "Cardiomegaly|Effusion|Pleural_Thickening", "64", "M", "AP", "2500", "2048", "0.168"),
    "00000002_000.png": (3, "No Finding", "81", "M", "PA", "2500", "2048", "0.171"),
    "00000003_000.png": (4, "Hernia", "74", "F", "PA", "2500", "2048", "0.168"),
    "00000004_000.png": (5, "Mass|Nodule", "82", "M", "AP", "2048", "2500", "0.168"),
    "00000005_000.png": (6, "No Finding", "69", "F", "PA", "2048", "2500", "0.168"),
    "00000005_001.png": (6, "Infiltration|Pneumonia", "69", "F", "AP", "2048", "2500", "0.168"),
    "00000006_000.png": (7, "Atelectasis", "22", "M", "PA", "2500", "2048", "0.168"),
    "00000007_000.png": (8, "No Finding", "35", "F", "PA", "2048", "2500", "0.168"),
    "00000008_000.png": (9, "Consolidation|Edema", "68", "F", "AP", "2048", "2500", "0.171"),
    "00000009_000.png": (10, "Pneumothorax", "72", "M", "PA", "2500", "2048", "0.168"),
    "00000010_000.png": (11, "Fibrosis|Effusion", "84", "F", "PA", "2992", "2991", "0.143"),
    "00000011_000.png": (12, "No Finding", "75", "M", "PA", "2500", "2048", "0.168"),
}
CXR_TEST_PATIENTS = {"00000003", "00000005", "00000011"}
CXR_RGBA = "00000007_000.png"  # saved RGBA (opaque), as some real PNGs reportedly are


def xray(name: str, size: tuple[int, int] = (64, 64), rgba: bool = False) -> bytes:
    """A chest-radiograph-like frame: bright body, two dark lung fields, banded so it stays small."""
    w, h = size
    rng = seeded(name)
    px = (_smooth(name, size, 150, 220) // 16) * 16
    im = Image.fromarray(px.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for side in (0.27, 0.73):
        cx = w * (side + 0.04 * (rng.random() - 0.5))
        draw.ellipse([cx - w * 0.17, h * 0.18, cx + w * 0.17, h * 0.82], fill=int(rng.integers(40, 80)))
    return png_bytes(im.convert("RGBA") if rgba else im)


def chestxray14(out: Path) -> list[Path]:
    folder = out / "chestxray14"
    archives: dict[int, dict[str, bytes]] = {n: {} for n in range(1, 13)}
    entry = [CXR_HEADER]
    train_val, test = [], []
    for name, (archive, labels, age, gender, view, width, height, spacing) in CXR_ROWS.items():
        archives[archive][f"images/{name}"] = xray(name, rgba=name == CXR_RGBA)
        pid, follow_up = name[:8], name[9:12]
        entry.append([name, labels, str(int(follow_up)), str(int(pid)), age, gender, view, width, height, spacing, spacing, ""])
        (test if pid in CXR_TEST_PATIENTS else train_val).append(name)
    paths = []
    for n, members in archives.items():
        paths.append(folder / f"images_{n:03d}.tar.gz")
        write_tar_gz(paths[-1], members)
    for name, data in (("Data_Entry_2017_v2020.csv", csv_bytes(entry, ",")),
                       ("train_val_list.txt", "".join(f"{n}\n" for n in train_val).encode()),
                       ("test_list.txt", "".join(f"{n}\n" for n in test).encode())):
        paths.append(folder / "manual" / name)
        with atomic_path(paths[-1]) as tmp:
            tmp.write_bytes(data)
    return paths


# ---------------------------------------------------------------- Kermany OCT

# (split, class folder, file name)
OCT_FILES = [
    ("train", "CNV", "CNV-1016042-1.jpeg"), ("train", "CNV", "CNV-1016042-2.jpeg"),
    ("train", "CNV", "CNV-103044-5.jpeg"),
    ("train", "CNV", "DRUSEN-1083159-3.jpeg"),  # name class disagrees with its folder: quarantined
    ("train", "DME", "DME-1072015-1.jpeg"), ("train", "DME", "DME-1072015-2.jpeg"),
    ("train", "DRUSEN", "DRUSEN-1001666-1.jpeg"), ("train", "DRUSEN", "DRUSEN-1083159-1.jpeg"),
    ("train", "NORMAL", "NORMAL-1001772-1.jpeg"), ("train", "NORMAL", "NORMAL-1001772-2.jpeg"),
    ("train", "NORMAL", "NORMAL-1384-3.jpeg"),
    ("test", "CNV", "CNV-1569-1.jpeg"), ("test", "DME", "DME-1072015-5.jpeg"),  # 1072015 also in train
    ("test", "DRUSEN", "DRUSEN-1219727-1.jpeg"), ("test", "NORMAL", "NORMAL-1025847-1.jpeg"),
    ("test", "NORMAL", "NORMAL-1025847-2.jpeg"),
]


def bscan(name: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """An OCT B-scan-like frame: dark background with bright wavy retinal layers."""
    w, h = size
    rng = seeded(name)
    yy, xx = np.mgrid[0:h, 0:w]
    top = h * (0.35 + 0.1 * rng.random()) + 3 * np.sin(xx / w * np.pi * (1 + rng.random()))
    band = np.exp(-((yy - top) / 2.5) ** 2) * 200 + np.exp(-((yy - top - 12) / 2.0) ** 2) * 150
    px = (band + _smooth(name, size, 0, 30)).clip(0, 255)
    return jpeg_bytes(Image.fromarray(px.astype(np.uint8)))


def kermany_oct(out: Path) -> list[Path]:
    members = {f"OCT2017/{split}/{cls}/{name}": bscan(name) for split, cls, name in OCT_FILES}
    members["OCT2017/train/.DS_Store"] = b"\x00\x00\x00\x01Bud1" + bytes(26)
    path = out / "kermany_oct" / "OCT2017.tar.gz"
    write_tar_gz(path, members)
    return [path]

