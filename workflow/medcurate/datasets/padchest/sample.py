"""Sample of PadChest as placed after the request form (DATASETS.md section 15).

manual/ holds PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz (gzipped, as published) and
two of the numbered image zips, 0.zip and 54.zip (the catch-all), with 16-bit grayscale PNGs named
by ImageID. The table has the columns loaders document (ImageID, ImageDir, StudyDate_DICOM,
StudyID, PatientID, PatientBirth, PatientSex_DICOM, ViewPosition_DICOM, Projection,
MethodProjection, ReportID, Report, MethodLabel, Labels, Localizations; their order and the
further DICOM/UMLS columns of the real file are UNCONFIRMED). Pixels are synthetic and tiny.

- Labels as Python-list strings, one with a leading-space entry, 'normal', the meta-labels
  'exclude' and 'suboptimal study', an empty (NaN) cell;
- Projections PA, L, AP, AP_horizontal, COSTAL; MethodLabel Physician and RNN_model;
- two ImageIDs from the known-unreadable list: one truncated PNG in 54.zip, one missing from every
  zip (both quarantined, naming the known fault).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ...atomic import atomic_path
from ...samples import csv_bytes, png_bytes, write_zip, xray

DATASETS = ("padchest",)

TABLE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
HEADER = ["ImageID", "ImageDir", "StudyDate_DICOM", "StudyID", "PatientID", "PatientBirth", "PatientSex_DICOM",
          "ViewPosition_DICOM", "Projection", "MethodProjection", "ReportID", "Report", "MethodLabel", "Labels",
          "Localizations"]
TRUNCATED = "216840111366964012373310883942009152114636712_00-102-045.png"  # torchxrayvision: truncated
MISSING = "216840111366964012819207061112010307142602253_04-014-084.png"    # torchxrayvision: missing
# (ImageID, ImageDir, StudyID, PatientID, birth, sex, Projection, MethodLabel, Labels)
ROWS = [
    ("216840111366964012339356563862009068084200743_00-045-105.png", "0", "1001", "p-0001", "1950", "M", "PA",
     "Physician", "['normal']"),
    ("216840111366964012339356563862009068084200744_00-045-106.png", "0", "1001", "p-0001", "1950", "M", "L",
     "Physician", "['normal']"),
    ("216840111366964012558082906712009300162151055_00-078-079.png", "0", "1002", "p-0002", "1937", "F", "AP",
     "RNN_model", "['pleural effusion', ' cardiomegaly', 'NSG tube']"),
    ("216840111366964012819207061112010281134410802_00-129-132.png", "0", "1003", "p-0003", "1961", "M", "AP_horizontal",
     "RNN_model", "['pneumonia', 'alveolar pattern', 'central venous catheter via jugular vein']"),
    ("216840111366964012989926673512011074122523404_00-163-059.png", "54", "1004", "p-0004", "1944", "F", "PA",
     "Physician", "['rib fracture', 'suboptimal study', 'laminar atelectasis']"),
    ("216840111366964012989926673512011074122523405_00-163-060.png", "54", "1005", "p-0005", "1929", "F", "COSTAL",
     "RNN_model", "['exclude']"),
    ("216840111366964012989926673512011074122523406_00-163-061.png", "54", "1006", "p-0006", "1980", "M", "PA",
     "RNN_model", ""),  # NaN Labels
    ("216840111366964012989926673512011074122523407_00-163-062.png", "54", "1007", "p-0007", "1975", "M", "PA",
     "Physician", "['nodule', 'hiatal hernia', 'emphysema', 'apical pleural thickening']"),
    (TRUNCATED, "54", "1008", "p-0008", "1955", "F", "PA", "RNN_model", "['cardiomegaly']"),
    (MISSING, "4", "1009", "p-0009", "1966", "M", "PA", "RNN_model", "['normal']"),
]


def radiograph16(name: str, lateral: bool) -> bytes:
    """A 16-bit grayscale PNG (12 bits used, as a CR detector stores)."""
    px = np.asarray(Image.open(io.BytesIO(xray(name, (48, 56) if lateral else (56, 56)))), np.uint16)
    return png_bytes(Image.fromarray(px * 16 + 7))


def padchest(out: Path) -> list[Path]:
    folder = out / "padchest" / "manual"
    table = [HEADER]
    zips: dict[str, dict[str, bytes]] = {"0": {}, "54": {}}
    for image_id, image_dir, study, patient, birth, sex, projection, method, labels in ROWS:
        view = {"PA": "POSTEROANTERIOR", "L": "LATERAL", "AP": "ANTEROPOSTERIOR", "AP_horizontal": "ANTEROPOSTERIOR"}.get(projection, "")
        table.append([image_id, image_dir, "20120813", study, patient, birth, sex, view, projection,
                      "Manual review of DICOM fields", f"r{study}", "sin hallazg patolog relev", method, labels,
                      "[]" if labels in ("", "['normal']") else "['loc basal']"])
        if image_id == MISSING:
            continue
        data = radiograph16(image_id, projection == "L")
        zips[image_dir][image_id] = data[: len(data) // 2] if image_id == TRUNCATED else data
    paths = []
    for n, members in zips.items():
        paths.append(folder / f"{n}.zip")
        write_zip(paths[-1], members, store=(".png",))
    paths.append(folder / TABLE)
    with atomic_path(paths[-1]) as tmp:
        tmp.write_bytes(gzip.compress(csv_bytes(table, ","), compresslevel=6, mtime=0))
    return paths
