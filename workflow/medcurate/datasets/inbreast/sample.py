"""Sample of the INbreast release (gated: placed by the user, so it lives in inbreast/manual/).

One zip of the release folder "INbreast Release 1.0/" (the top folder name public code uses):
AllDICOMs/, AllXML/, INbreast.csv, README.txt and one MedicalReports/ file (synthetic text). Ten
images of three patients with 16-hex patient hashes: one with four views, one mastectomy patient
with two (one breast), one more with four; two images without XML (normal findings).

- Pixels: synthetic (samples.mammogram), 16-bit, BitsStored 14, at 1/8 of the two real detector
  matrices: 4084x3328 -> 510x416 and 3328x2560 -> 416x320 (rows x cols); PixelSpacing 0.56 mm
  (8 x 0.07). Right breasts are mirrored so the chest wall is on the right, as the real XML
  coordinates show (right-breast findings reach x = 3327, left ones start near x = 400).
- DICOM: explicit VR little endian, MONOCHROME2, except one MONOCHROME1 file (stored inverted) to
  exercise inversion. The real files' photometric interpretation is UNCONFIRMED.
- File names <FileName>_<hash>_MG_<L|R>_<CC|ML>_ANON.dcm: the view token is 'ML' where the CSV
  says 'MLO' (as in public listings of the real names). The CSV's one 'FB' view is given to the
  mastectomy patient's second image, whose file name says ML (its real token is UNCONFIRMED).
- INbreast.csv exactly in the real format: ';', 'removed' placeholders, YYYY+semester dates, a
  blank space-padded ACR cell, BI-RADS 4a/4b/4c.
- XMLs in the real OsiriX plist structure and formatting (DOCTYPE, tab indents, sorted keys,
  reals as %.17g of float32, Point_px '(%f, %f)', all-zero Point_mm and Center): freehand (Type
  15) masses and small calcification contours, ellipse (Type 9, 200 outline points) Cluster,
  'Spiculated Region' (partly outside the image) and 'Assymetry' (sic), single-point (Type 19)
  calcifications including one outside the image and one named 'Point 1'. Area (cm², from the
  sample's 0.56 mm pixels) is the area of the OsiriX spline (freehand), pi*rx*ry (ellipse) or 0
  (point); Mean/Total/Min/Max/Dev are over the pixels the module rasterises.
"""

from __future__ import annotations

import hashlib
import io
import plistlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from ...samples import csv_bytes, mammogram, seeded, write_zip
from . import Roi as ParsedRoi
from . import osirix_outline, rasterise

TOP = "INbreast Release 1.0"
SCALE = 8
SHAPES = {"large": (510, 416), "small": (416, 320)}  # rows x cols: 4084x3328 and 3328x2560 / 8
SPACING_MM = 0.07 * SCALE
MAMMO_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
UID_ROOT = "2.25."
POINT_RADIUS = 3  # as the catalogue's point_radius, so the XML statistics match the masks
HEADER = ["Patient ID", "Patient age", "Laterality", "View", "Acquisition date", "File Name", "ACR", "Bi-Rads"]
BLANK_ACR = " " * 193  # the real blank cell is a long run of spaces


@dataclass
class Roi:
    name: str
    type: int  # OsiriX: 15 freehand, 9 oval, 19 point
    points: list[tuple[float, float]]  # (x, y) in sample pixels
    ellipse: tuple[float, float] | None = None  # (rx, ry) of a Type 9 ROI


@dataclass
class Image:
    file_name: str
    patient: str
    side: str
    csv_view: str  # CC | MLO | FB
    token: str  # the file name's view: CC | ML
    date: str
    acr: str
    birads: str
    shape: str
    rois: list[Roi] = field(default_factory=list)
    monochrome1: bool = False


def _hash(name: str) -> str:
    return seeded(f"inbreast/{name}").bytes(8).hex()


def blob(cx: float, cy: float, r: float, n: int, seed: str) -> list[tuple[float, float]]:
    """An irregular closed freehand outline of ``n`` points (a mass or a calcification)."""
    rng = seeded(seed)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = r * (1 + 0.18 * np.sin(3 * t + rng.random() * 6) + 0.08 * np.cos(5 * t + rng.random() * 6))
    return [(float(cx + a), float(cy + b)) for a, b in zip(rad * np.cos(t), rad * np.sin(t))]


def oval(name: str, cx: float, cy: float, rx: float, ry: float) -> Roi:
    """A Type 9 ROI as OsiriX exports it: 200 outline points from angle 0, y increasing."""
    t = 2 * np.pi * np.arange(200) / 200
    return Roi(name, 9, [(float(cx + rx * np.cos(a)), float(cy + ry * np.sin(a))) for a in t], (rx, ry))


def point(x: float, y: float, name: str = "Calcification") -> Roi:
    return Roi(name, 19, [(x, y)])


def images() -> list[Image]:
    p1, p2, p3 = _hash("p1"), _hash("p2"), _hash("p3")
    return [
        # Patient 1: four views, 4084x3328 detector.
        Image("22614074", p1, "R", "CC", "CC", "201001", "2", "4c", "large", [
            Roi("Mass", 15, blob(300, 240, 24, 28, "m1")),
            point(280, 300), point(292, 305), point(286, 312),
            point(416 + 6, 200),  # outside the 416-wide image: dropped and recorded
        ]),
        Image("22614097", p1, "L", "CC", "CC", "201001", "2", "1", "large"),
        Image("22614127", p1, "R", "MLO", "ML", "201001", "2", "4c", "large", [
            Roi("Mass", 15, blob(310, 200, 20, 24, "m2")),
            Roi("Calcification", 15, blob(280, 260, 2.4, 7, "c1")),
        ]),
        Image("22614150", p1, "L", "MLO", "ML", "201001", BLANK_ACR, "1", "large", monochrome1=True),
        # Patient 2: mastectomy (left breast only), 3328x2560 detector.
        Image("50993781", p2, "L", "CC", "CC", "200901", "3", "4a", "small", [
            oval("Cluster", 110, 200, 16, 14), point(105, 196), point(116, 205),
        ]),
        Image("50993808", p2, "L", "FB", "ML", "200901", "3", "4b", "small", [
            oval("Spiculated Region", 12, 150, 30, 26),  # reaches x < 0: clipped
            oval("Assymetry", 120, 260, 40, 30),
        ]),
        # Patient 3: four views, 3328x2560 detector.
        Image("20586612", p3, "R", "CC", "CC", "200802", "1", "5", "small", [
            Roi("Mass", 15, blob(220, 190, 18, 22, "m3")),
            Roi("Calcification", 15, blob(250, 150, 3, 10, "c2")),
            point(240, 240, "Point 1"),
        ]),
        Image("20586635", p3, "L", "CC", "CC", "200802", "1", "3", "small", [
            point(80, 180), point(95, 230), point(120, 205),
        ]),
        Image("20586658", p3, "R", "MLO", "ML", "200802", "1", "5", "small", [
            Roi("Mass", 15, blob(230, 160, 16, 20, "m4")),
            oval("Distortion", 235, 250, 22, 18),
        ]),
        Image("20586681", p3, "L", "MLO", "ML", "200802", "1", "2", "small", [
            Roi("Calcification", 15, blob(90, 220, 2.2, 6, "c3")),
            point(110, 170),
        ]),
    ]


# How much each finding brightens the breast where its ROI lies (of 2**14 - 1): calcifications
# near white, masses clearly denser, the loosely outlined regions (clusters, asymmetries...) less.
BRIGHTER = {"Mass": 2600, "Calcification": 16383, "Point 1": 16383, "Cluster": 1400, "Spiculated Region": 1800,
            "Assymetry": 1100, "Distortion": 1500}


def pixels(im: Image) -> np.ndarray:
    """The synthetic mammogram with every ROI drawn in where the module rasterises it (regions
    first, calcifications last), so the masks lie on what the image shows."""
    rows, cols = SHAPES[im.shape]
    px = mammogram(f"inbreast/{im.file_name}", (cols, rows))
    px = (px[:, ::-1] if im.side == "R" else px).astype(np.int32)
    for index, roi in sorted(enumerate(im.rois), key=lambda r: BRIGHTER[r[1].name]):
        region = _region(index, roi, px.shape)
        if region is not None:
            px[region] += BRIGHTER[roi.name]
    return px.clip(0, (1 << 14) - 1).astype(np.uint16)


def _region(index: int, roi: Roi, shape: tuple[int, int]) -> np.ndarray | None:
    kind = "point" if roi.type == 19 else "ellipse" if roi.ellipse else "freehand"
    return rasterise(ParsedRoi(index, roi.name, roi.type, kind, tuple(map(tuple, roi.points)), None), shape, POINT_RADIUS)[0]


def uid(name: str) -> str:
    return UID_ROOT + str(int(hashlib.sha256(name.encode()).hexdigest()[:30], 16))


def dicom_bytes(im: Image, px: np.ndarray) -> bytes:
    sop = uid(f"sop/{im.file_name}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"  # fixed: bytes must not depend on pydicom
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MAMMO_FOR_PRESENTATION, sop
    ds.StudyInstanceUID = uid(f"study/{im.patient}/{im.date}")
    ds.SeriesInstanceUID = uid(f"series/{im.file_name}")
    ds.Modality, ds.PatientID, ds.PatientName = "MG", im.patient, "ANON"
    ds.ImageLaterality, ds.ViewPosition = im.side, "MLO" if im.token == "ML" else im.token
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Rows, ds.Columns = px.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 14, 13, 0
    ds.PhotometricInterpretation = "MONOCHROME1" if im.monochrome1 else "MONOCHROME2"
    ds.PixelSpacing = [f"{SPACING_MM:.2f}", f"{SPACING_MM:.2f}"]
    stored = (2**14 - 1) - px if im.monochrome1 else px  # same picture once inverted back
    ds.PixelData = stored.astype("<u2").tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


# ---------------------------------------------------------------- OsiriX XML


def _roi_dict(index: int, roi: Roi, px: np.ndarray) -> dict:
    pts = np.asarray(roi.points)
    if roi.type == 19:
        area = 0.0
    elif roi.ellipse:
        area = np.pi * roi.ellipse[0] * roi.ellipse[1]
    else:
        outline = osirix_outline(pts)
        area = 0.5 * abs(np.dot(outline[:, 0], np.roll(outline[:, 1], -1)) - np.dot(outline[:, 1], np.roll(outline[:, 0], -1)))
    region = _region(index, roi, px.shape)  # statistics over the pixels the module's own rasteriser gives
    values = px[region].astype(float) if region is not None else np.zeros(1)
    zero = "(0.000000, 0.000000, 0.000000)"
    return {
        "Area": _f32(area * SPACING_MM**2 / 100),
        "Center": zero,
        "Dev": _f32(values.std()),
        "IndexInImage": index,
        "Max": _f32(values.max()),
        "Mean": _f32(values.mean()),
        "Min": _f32(values.min()),
        "Name": roi.name,
        "NumberOfPoints": len(roi.points),
        "Point_mm": [zero] * len(roi.points),
        "Point_px": [f"({x:f}, {y:f})" for x, y in roi.points],
        "Total": _f32(values.sum()),
        "Type": roi.type,
    }


def _f32(v: float) -> float:
    return float(np.float32(v))


def xml_bytes(im: Image, px: np.ndarray) -> bytes:
    rois = [_roi_dict(i, r, px) for i, r in enumerate(im.rois)]
    data = plistlib.dumps({"Images": [{"ImageIndex": 0, "NumberOfROIs": len(rois), "ROIs": rois}]}, fmt=plistlib.FMT_XML)
    # OsiriX (Cocoa) writes reals with 17 significant digits and no '.0' on whole numbers.
    return re.sub(rb"<real>([^<]+)</real>", lambda m: b"<real>%s</real>" % (b"%.17g" % float(m.group(1))), data)


# ---------------------------------------------------------------- release


README = """INbreast Release 1.0 (SAMPLE: synthetic images in the release layout, not the real data)

- AllDICOMs: one DICOM per image, <FileName>_<patientID>_MG_<side>_<view>_ANON.dcm; the second
  token is the anonymised patient ID.
- AllXML: lesion contours exported from OsiriX, <FileName>.xml.
- INbreast.csv: per-image summary (';'); the date is year and semester (01 or 02).
- MedicalReports: reports named by patient ID.
"""


def inbreast(out: Path) -> list[Path]:
    members: dict[str, bytes] = {}
    rows = [HEADER]
    for im in images():
        px = pixels(im)
        members[f"{TOP}/AllDICOMs/{im.file_name}_{im.patient}_MG_{im.side}_{im.token}_ANON.dcm"] = dicom_bytes(im, px)
        if im.rois:
            members[f"{TOP}/AllXML/{im.file_name}.xml"] = xml_bytes(im, px)
        rows.append(["removed", "removed", im.side, im.csv_view, im.date, im.file_name, im.acr, im.birads])
    members[f"{TOP}/INbreast.csv"] = csv_bytes(rows, ";")
    members[f"{TOP}/MedicalReports/{_hash('p2')}.txt"] = b"Synthetic report: left mastectomy; grouped calcifications, BI-RADS 4.\n"
    members[f"{TOP}/README.txt"] = README.encode()
    dest = out / "inbreast" / "manual" / f"{TOP}.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_zip(dest, dict(sorted(members.items())))
    return [dest]
