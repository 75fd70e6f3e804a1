"""Sample of MIMIC-CXR-JPG 2.x as placed by a credentialed user (DATASETS.md section 13).

manual/ holds the version root: files/pXX/pNNNNNNNN/sMMMMMMMM/<dicom_id>.jpg and the gzipped
metadata, split, CheXpert and NegBio tables with the publisher's headers and value conventions
(1.0 / 0.0 / -1.0 / blank; split train / validate / test). Pixels are synthetic and tiny.

- five placed subjects over p10, p11 and p15, frontal (PA, AP) and lateral (LATERAL, LL) images,
  one image with a blank ViewPosition, patients disjoint across the official splits;
- a study with 'No Finding' 1.0, uncertain (-1.0) and unmentioned (blank) observations;
- a study without a CheXpert label row (its images: unlabelled);
- a metadata row of a subject not placed (outside a subset download: skipped, counted);
- a JPG with no metadata row (quarantined).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from PIL import Image

from ...atomic import atomic_path
from ...samples import csv_bytes, jpeg_bytes, xray

DATASETS = ("mimic_cxr_jpg",)

META_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
               "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
               "PatientOrientationCodeSequence_CodeMeaning"]
OBSERVATIONS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
                "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
                "Pneumothorax", "Support Devices"]
VIEW_CODE = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral", "": ""}

# (subject, study, dicom_id, ViewPosition, split)
IMAGES = [
    ("10000032", "50414267", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "PA", "train"),
    ("10000032", "50414267", "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "LATERAL", "train"),
    ("10000032", "53189527", "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "AP", "train"),
    ("10000764", "57375967", "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4", "AP", "train"),
    ("10000764", "57375967", "b79e55c3-735ce5ac-64412506-cdc9ea79-f1af521f", "LL", "train"),
    ("10000898", "50771383", "6ad03ed1-97ee17ee-9cf8b320-f7011003-cd93b42d", "PA", "validate"),
    ("11000011", "52446286", "3b1b1f4f-7f2f6c5a-a2b8d0a7-14e4e4c2-0f7d2f3e", "", "train"),  # blank ViewPosition
    ("15000033", "58766883", "c3f6d8aa-19e2b0c4-5d71f0e2-8a9b3c4d-e5f60718", "PA", "test"),
    ("15000033", "58766883", "d4a7e9bb-2af3c1d5-6e82a1f3-9bac4d5e-f6a71829", "LATERAL", "test"),
]
OUTSIDE = ("19999987", "55555555", "e5b8fa0c-3b04d2e6-7f93b204-acbd5e6f-a7b8293a", "PA", "train")  # subject not placed
ORPHAN = ("10000032", "50414267", "f6c90b1d-4c15e3f7-80a4c315-bdce6f70-b8c93a4b")  # JPG without a metadata row

# (subject, study) -> observation -> cell, as in mimic-cxr-2.0.0-chexpert.csv.gz (unlisted: blank)
LABELS = {
    ("10000032", "50414267"): {"No Finding": "1.0"},
    ("10000032", "53189527"): {"Cardiomegaly": "1.0", "Edema": "-1.0", "Pleural Effusion": "0.0", "Support Devices": "1.0"},
    ("10000764", "57375967"): {"Atelectasis": "-1.0", "Consolidation": "1.0", "Pneumonia": "-1.0", "Lung Opacity": "1.0"},
    ("10000898", "50771383"): {"Pneumothorax": "1.0", "Fracture": "0.0"},
    ("15000033", "58766883"): {"Lung Lesion": "1.0", "Pleural Other": "-1.0", "Enlarged Cardiomediastinum": "1.0"},
    ("19999987", "55555555"): {"No Finding": "1.0"},
    # 11000011 / 52446286 has no label row (as ~2,400 real studies)
}


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _jpg(name: str, view: str) -> bytes:
    size = (56, 64) if view in ("LATERAL", "LL") else (64, 64)
    return jpeg_bytes(Image.open(io.BytesIO(xray(name, size))))


def mimic_cxr_jpg(out: Path) -> list[Path]:
    root = out / "mimic_cxr_jpg" / "manual"
    files: dict[str, bytes] = {}
    meta, split = [META_HEADER], [["dicom_id", "study_id", "subject_id", "split"]]
    for subject, study, dicom, view, part in IMAGES + [OUTSIDE]:
        lateral = view in ("LATERAL", "LL")
        meta.append([dicom, subject, study, "CHEST (PA AND LAT)", view, "64", "56" if lateral else "64", "21800506",
                     "213014.531", "CHEST (PA AND LAT)", VIEW_CODE[view], "Erect"])
        split.append([dicom, study, subject, part])
        if (subject, study, dicom, view, part) != OUTSIDE:
            files[f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"] = _jpg(dicom, view)
    subject, study, dicom = ORPHAN
    files[f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg"] = _jpg(dicom, "PA")
    labels = [["subject_id", "study_id", *OBSERVATIONS]]
    for (subject, study), cells in LABELS.items():
        labels.append([subject, study, *(cells.get(o, "") for o in OBSERVATIONS)])
    # NegBio: same layout, its own (here: more confident) values; not read by medcurate
    negbio = [labels[0]] + [[r[0], r[1], *(c.replace("-1.0", "1.0") for c in r[2:])] for r in labels[1:]]
    files["mimic-cxr-2.0.0-metadata.csv.gz"] = _gz(csv_bytes(meta, ","))
    files["mimic-cxr-2.0.0-split.csv.gz"] = _gz(csv_bytes(split, ","))
    files["mimic-cxr-2.0.0-chexpert.csv.gz"] = _gz(csv_bytes(labels, ","))
    files["mimic-cxr-2.0.0-negbio.csv.gz"] = _gz(csv_bytes(negbio, ","))
    paths = []
    for rel, data in files.items():
        paths.append(root / rel)
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(paths[-1]) as tmp:
            tmp.write_bytes(data)
    return paths
