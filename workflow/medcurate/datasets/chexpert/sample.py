"""Sample of CheXpert v1.0, the downsampled copy as placed after the agreement (DATASETS.md 14).

manual/CheXpert-v1.0-small.zip holds CheXpert-v1.0-small/{train.csv, valid.csv, train/, valid/}
with the real 19-column header, Path values starting with the release folder, label cells 1.0 /
0.0 / -1.0 / blank in train.csv and 1.0 / 0.0 in valid.csv, Sex Female / Male / Unknown, AP/PA
blank for laterals. Pixels are synthetic and tiny.

- four train patients (one with two studies, frontal and lateral views), two valid patients;
- 'No Finding' 1.0 with Support Devices 1.0 (as 8,808 real rows), uncertain and blank cells;
- a train JPG listed in no table (quarantined).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ...samples import csv_bytes, jpeg_bytes, write_zip, xray

DATASETS = ("chexpert",)

RELEASE = "CheXpert-v1.0-small"
HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly",
          "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
          "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]
# (folder, patient, study, view file, sex, age, AP/PA, {observation: cell})
ROWS = [
    ("train", "patient00001", "study1", "view1_frontal", "Female", "68", "AP", {"No Finding": "1.0", "Support Devices": "1.0"}),
    ("train", "patient00002", "study2", "view1_frontal", "Female", "87", "AP",
     {"Lung Opacity": "1.0", "Cardiomegaly": "-1.0", "Fracture": "1.0", "Pleural Effusion": "0.0", "Edema": "-1.0"}),
    ("train", "patient00002", "study1", "view1_frontal", "Female", "83", "AP", {"Lung Opacity": "1.0", "Fracture": "1.0"}),
    ("train", "patient00002", "study1", "view2_lateral", "Female", "83", "", {"Lung Opacity": "1.0", "Fracture": "1.0"}),
    ("train", "patient00003", "study1", "view1_frontal", "Male", "41", "AP",
     {"Edema": "1.0", "Consolidation": "-1.0", "Pneumonia": "-1.0", "Atelectasis": "-1.0"}),
    ("train", "patient00004", "study1", "view1_frontal", "Unknown", "20", "PA", {"No Finding": "1.0", "Pneumothorax": "0.0"}),
    ("train", "patient00004", "study1", "view2_lateral", "Unknown", "20", "", {"No Finding": "1.0", "Pneumothorax": "0.0"}),
    ("valid", "patient64541", "study1", "view1_frontal", "Male", "73", "AP",
     {**{o: "0.0" for o in HEADER[5:]}, "Cardiomegaly": "1.0", "Lung Opacity": "1.0", "Support Devices": "1.0"}),
    ("valid", "patient64542", "study1", "view1_frontal", "Male", "70", "PA", {**{o: "0.0" for o in HEADER[5:]}, "No Finding": "1.0"}),
    ("valid", "patient64542", "study1", "view2_lateral", "Male", "70", "", {**{o: "0.0" for o in HEADER[5:]}, "No Finding": "1.0"}),
]
ORPHAN = "train/patient00005/study1/view1_frontal.jpg"


def _jpg(name: str, lateral: bool) -> bytes:
    return jpeg_bytes(Image.open(io.BytesIO(xray(name, (48, 56) if lateral else (56, 56)))))


def chexpert(out: Path) -> list[Path]:
    tables = {"train": [HEADER], "valid": [HEADER]}
    members: dict[str, bytes] = {}
    for folder, patient, study, view, sex, age, ap_pa, cells in ROWS:
        rel = f"{folder}/{patient}/{study}/{view}.jpg"
        lateral = view.endswith("lateral")
        tables[folder].append([f"{RELEASE}/{rel}", sex, age, "Lateral" if lateral else "Frontal", ap_pa,
                               *(cells.get(o, "") for o in HEADER[5:])])
        members[f"{RELEASE}/{rel}"] = _jpg(rel, lateral)
    members[f"{RELEASE}/{ORPHAN}"] = _jpg(ORPHAN, False)
    members = {f"{RELEASE}/train.csv": csv_bytes(tables["train"], ","), f"{RELEASE}/valid.csv": csv_bytes(tables["valid"], ","),
               **dict(sorted(members.items()))}
    dest = out / "chexpert" / "manual" / f"{RELEASE}.zip"
    write_zip(dest, members, store=(".jpg",))
    return [dest]
