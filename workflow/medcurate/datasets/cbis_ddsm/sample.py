"""Sample of CBIS-DDSM: the four case-description CSVs (downloadable sources) and a zip of an NBIA
Data Retriever download folder (the manual part).

The real download is a folder ``CBIS-DDSM/`` written by the retriever (a zip of it is accepted
too); the sample ships it zipped as manual/CBIS-DDSM.zip, in the retriever's "descriptive"
directory naming: CBIS-DDSM/<TCIA PatientID>/<MM-DD-YYYY>-DDSM-NA-<last 5 digits of the
StudyInstanceUID>/1.000000-<SeriesDescription>-<last 5 digits of the SeriesInstanceUID>/1-N.dcm.
The CSVs keep TCIA's old path layout <PatientID>/<StudyUID>/<SeriesUID>/00000N.dcm, real headers
(both density spellings), CRLF records, 'NA' cells and the newline inside the quoted last-but-one
(calc) or last (mass) path.

Pixels are synthetic: 16-bit MONOCHROME2 mammograms at about 1/10 of DDSM's ~3000x5000 scans
(260-320 x 440-520), 8-bit {0,255} ROI masks at the mammogram's size and 16-bit cropped patches.
Quirks shown: two abnormalities (BENIGN listed first, MALIGNANT second) on one image; the mask/crop
mix-up (two studies each with a series described "ROI mask images", the crop's listed first) and a
same-series pair described "cropped images"; file order that differs between mass (crop 1-1) and
calc (mask 1-1); a mask 4 % larger than its mammogram; a woman in the mass train and the calc test
CSVs; a CSV row whose DICOMs were not downloaded; irregular (traced) lesions plus one crude oval
and one crude box for the curation rules.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from ...formats import shapes
from ...atomic import atomic_path
from ...samples import mammogram, seeded, write_zip

UID_ROOT = "1.3.6.1.4.1.9590.100.1.2."  # the UID root the real CBIS-DDSM files use
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MASS_HEADER = ["patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]
CALC_HEADER = ["patient_id", "breast density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]
# Study dates seen in NBIA folder names, per TCIA PatientID prefix: (full mammogram, ROI).
DATES = {"Mass-Training": ("07-20-2016", "07-21-2016"), "Mass-Test": ("07-20-2016", "10-04-2016"),
         "Calc-Training": ("08-07-2016", "09-06-2017"), "Calc-Test": ("08-29-2017", "08-29-2017")}


@dataclass(frozen=True)
class Lesion:
    id: int
    pathology: str
    shape: str  # irregular | oval | box
    centre: tuple[float, float]  # (x, y) as fractions of the width/height, breast on the left
    radius: float  # fraction of the width
    descriptors: tuple[str, str]  # mass shape/margins or calc type/distribution ('NA' allowed)
    assessment: int = 4
    subtlety: int = 3
    roi: str = "same"  # same: one series (crop + mask); cropped: same, described "cropped images"; siblings: two studies
    mask_scale: float = 1.0  # != 1: the mask's matrix is this much larger than the mammogram's


@dataclass(frozen=True)
class Mammogram:
    key: str  # TCIA PatientID, e.g. Mass-Training_P_00001_LEFT_CC
    size: tuple[int, int]  # (width, height)
    density: int
    lesions: tuple[Lesion, ...]
    downloaded: bool = True

    @property
    def patient(self) -> str:
        return "P_" + self.key.split("_P_")[1][:5]

    @property
    def right(self) -> bool:
        return "_RIGHT_" in self.key


MAMMOGRAMS = (
    Mammogram("Mass-Training_P_00001_LEFT_CC", (300, 500), 3, (
        Lesion(1, "BENIGN", "irregular", (0.22, 0.36), 0.07, ("LOBULATED", "ILL_DEFINED"), 3, 4),
        Lesion(2, "MALIGNANT", "irregular", (0.30, 0.62), 0.09, ("IRREGULAR-ARCHITECTURAL_DISTORTION", "SPICULATED"), 5, 5,
               roi="cropped"))),
    Mammogram("Mass-Training_P_00004_LEFT_MLO", (280, 470), 2, (
        Lesion(1, "BENIGN", "irregular", (0.25, 0.45), 0.08, ("ROUND", "NA"), 4, 3, roi="siblings"),)),
    Mammogram("Mass-Training_P_00038_RIGHT_CC", (320, 520), 1, (
        Lesion(1, "BENIGN", "oval", (0.28, 0.5), 0.1, ("OVAL", "CIRCUMSCRIBED"), 2, 5),)),
    Mammogram("Mass-Test_P_00016_LEFT_CC", (310, 500), 4, (
        Lesion(1, "MALIGNANT", "irregular", (0.24, 0.55), 0.08, ("IRREGULAR", "SPICULATED"), 5, 5),)),
    Mammogram("Mass-Test_P_00016_LEFT_MLO", (310, 500), 4, (
        Lesion(1, "MALIGNANT", "irregular", (0.24, 0.5), 0.08, ("IRREGULAR", "SPICULATED"), 5, 5),), downloaded=False),
    Mammogram("Calc-Training_P_00041_RIGHT_CC", (260, 440), 2, (
        Lesion(1, "BENIGN_WITHOUT_CALLBACK", "irregular", (0.25, 0.4), 0.08, ("PUNCTATE", "NA"), 2, 2, mask_scale=1.04),)),
    Mammogram("Calc-Training_P_00050_LEFT_CC", (290, 460), 3, (
        Lesion(1, "BENIGN", "box", (0.26, 0.52), 0.08, ("AMORPHOUS", "CLUSTERED"), 3, 3),)),
    Mammogram("Calc-Test_P_00038_LEFT_MLO", (300, 480), 1, (
        Lesion(1, "MALIGNANT", "irregular", (0.27, 0.45), 0.09, ("PLEOMORPHIC", "SEGMENTAL"), 4, 4),)),
    Mammogram("Calc-Test_P_00077_RIGHT_MLO", (270, 450), 3, (
        Lesion(1, "BENIGN", "irregular", (0.23, 0.58), 0.07, ("NA", "CLUSTERED"), 2, 3),)),
)
CSV_OF = {"Mass-Training": "mass_case_description_train_set.csv", "Mass-Test": "mass_case_description_test_set.csv",
          "Calc-Training": "calc_case_description_train_set.csv", "Calc-Test": "calc_case_description_test_set.csv"}


def uid(name: str) -> str:
    """A deterministic 64-character UID under the real files' root."""
    return UID_ROOT + str(int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10**39).rjust(39, "1")


def lesion_region(m: Mammogram, lesion: Lesion, scale: float = 1.0) -> np.ndarray:
    """The lesion's mask on a matrix ``scale`` times the mammogram's (as displayed, RIGHT flipped)."""
    w, h = m.size
    shape = (round(h * scale), round(w * scale))
    cx, cy, r = lesion.centre[0] * w * scale, lesion.centre[1] * h * scale, lesion.radius * w * scale
    if lesion.shape == "oval":
        region, _ = shapes.ellipse(cx, cy, r * 1.3, r * 0.8, shape, theta=0.4)
    elif lesion.shape == "box":
        region, _ = shapes.polygon([cx - r, cx + r, cx + r, cx - r], [cy - r * 0.8, cy - r * 0.8, cy + r * 0.8, cy + r * 0.8], shape)
    else:  # a traced outline: irregular radii around the centre
        rng = seeded(f"{m.key}/{lesion.id}/outline")
        angles = np.sort(rng.uniform(0, 2 * np.pi, 16))
        radii = r * rng.uniform(0.55, 1.25, 16)
        region, _ = shapes.polygon(cx + radii * np.cos(angles), cy + radii * np.sin(angles), shape)
    return region[:, ::-1] if m.right else region


def pixels(m: Mammogram) -> np.ndarray:
    """The synthetic mammogram with its lesions drawn in (masses brighter, calcifications as specks)."""
    px = mammogram(m.key, m.size)
    if m.right:
        px = px[:, ::-1].copy()
    for lesion in m.lesions:
        region = lesion_region(m, lesion)
        if m.key.startswith("Mass"):
            px[region] = np.minimum(px[region] + 2048, (1 << 14) - 1)
        else:  # a cluster: specks on a faintly denser patch, so the outlined region shows as one
            rng = seeded(f"{m.key}/{lesion.id}/specks")
            specks = region & (rng.random(region.shape) < 0.2)
            px[region] = np.minimum(px[region] + 2048, (1 << 14) - 1)
            px[specks] = (1 << 14) - 1
    return px


def crop(px: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The cropped patch: the lesion's bounding box plus a margin (a small, non-binary image)."""
    rows, cols = np.nonzero(region)
    r0, r1 = max(rows.min() - 8, 0), min(rows.max() + 9, px.shape[0])
    c0, c1 = max(cols.min() - 8, 0), min(cols.max() + 9, px.shape[1])
    return px[r0:r1, c0:c1].copy()


def dicom_bytes(arr: np.ndarray, patient_id: str, study: str, series: str, description: str, instance: int) -> bytes:
    sop = uid(f"{series}/{instance}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"  # fixed: bytes must not depend on the pydicom version
    meta.ImplementationVersionName = "MEDCURATE_SAMPLE"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, sop
    ds.PatientID, ds.PatientName = patient_id, patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.Modality, ds.BodyPartExamined, ds.SeriesDescription = "MG", "BREAST", description
    ds.SeriesNumber, ds.InstanceNumber = 1, instance
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _series_dir(key: str, date: str, study: str, series: str, description: str) -> str:
    return f"CBIS-DDSM/{key}/{date}-DDSM-NA-{study[-5:]}/1.000000-{description}-{series[-5:]}"


def _rois(m: Mammogram, lesion: Lesion, px: np.ndarray, members: dict[str, bytes]) -> tuple[str, str]:
    """Write one abnormality's ROI DICOMs; return the CSV's (cropped image path, ROI mask path)."""
    key, date = f"{m.key}_{lesion.id}", DATES[m.key.split("_P_")[0]][1]
    mask = lesion_region(m, lesion, lesion.mask_scale).astype(np.uint8) * 255
    patch = crop(px, lesion_region(m, lesion))
    is_mass = m.key.startswith("Mass")
    if lesion.roi == "siblings":  # crop and mask in two studies, both described "ROI mask images"
        # The study folder listed first (by its UID's last digits) gets the crop.
        ids = sorted(((uid(f"{key}/study/{k}"), uid(f"{key}/series/{k}")) for k in "ab"), key=lambda i: i[0][-5:])
        for (study, series), arr in zip(ids, (patch, mask)):
            members[_series_dir(key, date, study, series, "ROI mask images") + "/1-1.dcm"] = dicom_bytes(arr, key, study, series, "ROI mask images", 1)
        return tuple(f"{key}/{study}/{series}/000000.dcm" for study, series in ids)
    study, series = uid(f"{key}/study"), uid(f"{key}/series")
    description = "cropped images" if lesion.roi == "cropped" else "ROI mask images"
    folder = _series_dir(key, date, study, series, description)
    order = (patch, mask) if is_mass else (mask, patch)  # mass: crop first; calc: mask first
    for n, arr in enumerate(order, 1):
        members[f"{folder}/1-{n}.dcm"] = dicom_bytes(arr, key, study, series, description, n)
    crop_file, mask_file = ("000000.dcm", "000001.dcm") if is_mass else ("000001.dcm", "000000.dcm")
    return f"{key}/{study}/{series}/{crop_file}", f"{key}/{study}/{series}/{mask_file}"


def _csv_row(m: Mammogram, lesion: Lesion, image_path: str, crop_path: str, mask_path: str) -> list[str]:
    is_mass = m.key.startswith("Mass")
    side, view = m.key.split("_")[-2:]
    # The publisher's quirk: one path cell ends with a newline (inside quotes once written).
    crop_path, mask_path = (crop_path, mask_path + "\n") if is_mass else (crop_path + "\n", mask_path)
    return [m.patient, str(m.density), side, view, str(lesion.id), "mass" if is_mass else "calcification",
            *lesion.descriptors, str(lesion.assessment), lesion.pathology, str(lesion.subtlety),
            image_path, crop_path, mask_path]


def _csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    """Minimal quoting, CRLF records (a newline inside a cell stays a bare LF), like the real files."""
    def cell(value: str) -> str:
        return f'"{value}"' if any(c in value for c in ',"\n') else value
    return "".join(",".join(cell(v) for v in row) + "\r\n" for row in [header, *rows]).encode()


def cbis_ddsm(out: Path) -> list[Path]:
    base = out / "cbis_ddsm"
    members: dict[str, bytes] = {}
    rows: dict[str, list[list[str]]] = {name: [] for name in CSV_OF.values()}
    for m in MAMMOGRAMS:
        prefix = m.key.split("_P_")[0]
        study, series = uid(f"{m.key}/study"), uid(f"{m.key}/series")
        px = pixels(m)
        if m.downloaded:
            folder = _series_dir(m.key, DATES[prefix][0], study, series, "full mammogram images")
            members[f"{folder}/1-1.dcm"] = dicom_bytes(px, m.key, study, series, "full mammogram images", 1)
        for lesion in m.lesions:
            scratch: dict[str, bytes] = {}
            crop_path, mask_path = _rois(m, lesion, px, scratch)
            if m.downloaded:
                members.update(scratch)
            rows[CSV_OF[prefix]].append(_csv_row(m, lesion, f"{m.key}/{study}/{series}/000000.dcm", crop_path, mask_path))
    written = []
    for name, body in rows.items():
        dest = base / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            tmp.write_bytes(_csv_bytes(MASS_HEADER if name.startswith("mass") else CALC_HEADER, sorted(body)))
        written.append(dest)
    (base / "manual").mkdir(parents=True, exist_ok=True)
    write_zip(base / "manual" / "CBIS-DDSM.zip", dict(sorted(members.items())))
    return [*written, base / "manual" / "CBIS-DDSM.zip"]
