"""Sample of NIH ChestX-ray14, a classification set.

Layouts follow DATASETS.md sections 12a, 12d and 12e (no real files of these sets are in
../shared/realdata); pixels are synthetic and tiny, names and folders real.
- ChestX-ray14: the twelve images_0NN.tar.gz (images/<patient8>_<fu3>.png, one or two each, one
  PNG saved as RGBA) and, in manual/, Data_Entry_2017_v2020.csv (the header whose bracketed
  names split into four columns, ending in an empty column), train_val_list.txt and
  test_list.txt. Multi-label rows, 'No Finding', 'Pleural_Thickening', a patient with three
  follow-ups, test patients disjoint from train_val ones.
"""

from __future__ import annotations

from pathlib import Path


from ...atomic import atomic_path
from ...samples import csv_bytes, write_tar_gz, xray

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
