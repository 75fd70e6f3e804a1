"""Volumes (task volume_segmentation): read NIfTI-1/-2 / Analyze / MINC1/MINC2 / MetaImage / DICOM series, check
image against label, reorient losslessly to RAS+, write deterministic NIfTI, lay the result out
for nnU-Net v2.

Conventions: a Volume's array is indexed (i, j, k[, t]) as nibabel orders voxels, and its affine
maps a voxel index to RAS+ world millimetres (nibabel's convention). MetaImage and DICOM describe
space in LPS (ITK/DICOM), so their affines are flipped in x and y on reading. Every failure that
concerns one case is a CaseError naming the file and the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
from nibabel import orientations
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from skimage import measure

from . import splits
from .atomic import atomic_path
from .datasets import files  # follows symlinks, as a gated dataset's root needs
from .errors import CaseError
from .images import pixel_digest, write_png
from .rows import case_row, rel

log = logging.getLogger("medcurate.volumes")
INT16 = np.iinfo(np.int16)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# A corrupt header must not make a reader allocate without bound; a large CT is ~1 GB in float32.
MAX_VOLUME_BYTES = 8 * 2**30
AFFINE_TOLERANCE_MM = 1e-3
GZIP_LEVEL = 1  # as png_compress_level: level 6 would triple the write time for ~10 % smaller files
MET_SIZES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
             "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}
NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")
# MINC1 (NetCDF) and MINC2 (HDF5, read through h5py) share the suffix; nibabel tells them apart by
# their magic bytes. Whole-file compression is MINC1-only (nibabel's rule).
MINC_SUFFIXES = (".mnc", ".mnc.gz", ".mnc.bz2")


@dataclass
class Volume:
    array: np.ndarray   # voxels indexed (i, j, k) as nibabel orders them (4D: (i, j, k, t))
    affine: np.ndarray  # 4x4, voxel index -> RAS+ world millimetres (nibabel convention)
    source: Path
    facts: dict = field(default_factory=dict)  # manifest columns a dataset's loader found (e.g. spacing_mismatch)


# ---------------------------------------------------------------- reading


def read_volume(path: Path) -> Volume:
    """Load a whole volume (so truncation is caught here): NIfTI-1/-2, Analyze and MINC1/MINC2 via
    nibabel, MetaImage via SimpleITK, a folder of DICOM slices via pydicom."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return _read_dicom_series(path)
    if not path.exists():
        raise CaseError(path, "file is missing")
    if name.endswith(NIFTI_SUFFIXES + MINC_SUFFIXES):
        return _read_nibabel(path)
    if name.endswith((".mhd", ".mha")):
        return _read_metaimage(path)
    raise CaseError(path, "not a volume format medcurate reads (.nii, .nii.gz, .hdr/.img, .mnc, .mhd/.raw, .mha, a DICOM folder)")


def _read_nibabel(path: Path) -> Volume:
    try:
        img = nib.load(path)
        shape = img.shape
        _check_size(path, shape, img.get_data_dtype().itemsize)
        array = np.asanyarray(img.dataobj)  # applies scl_slope/inter (MINC: image-min/max), reads every byte
        affine = np.asarray(img.affine, float)
        if isinstance(img, nib.minc1.Minc1Image):  # Minc2Image is a subclass
            array = _minc_spatial_first(img, array)
    except FileNotFoundError as exc:  # the .img of an Analyze pair
        raise CaseError(exc.filename or path, "file is missing (the data file of an Analyze/NIfTI pair)") from None
    except CaseError:
        raise
    except ImportError as exc:  # nibabel imports h5py only when it meets a MINC2 (HDF5) file
        raise CaseError(path, f"MINC2 (HDF5) volume needs h5py ({_one_line(exc)})") from None
    except nib.minc1.MincError as exc:
        raise CaseError(path, f"cannot read MINC volume ({_one_line(exc)})") from None
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, KeyError, zlib.error, MemoryError) as exc:
        # KeyError: an HDF5 file without MINC2's /minc-2.0/image/0/image dataset
        raise CaseError(path, f"cannot read volume ({_one_line(exc)}): truncated or damaged?") from None
    return _checked(Volume(array, affine, path))


def _minc_spatial_first(img, array: np.ndarray) -> np.ndarray:
    """MINC keeps its dimensions in file order, a 'time' (or other non-space) dimension among
    them, usually first; nibabel's affine maps the spatial ones only, in that order. Move the
    others to the end, so the array is (i, j, k[, t]) as every other reader gives it."""
    names = list(img.dataobj.minc_file._dim_names)  # nibabel exposes the order only here
    spatial = [n.endswith("space") for n in names]
    if len(names) != array.ndim or sum(spatial) != 3:
        raise CaseError(img.get_filename(), f"MINC dimensions {names} do not give 3 spatial axes for data of shape {array.shape}")
    order = [i for i, s in enumerate(spatial) if s] + [i for i, s in enumerate(spatial) if not s]
    return np.ascontiguousarray(array.transpose(order)) if order != list(range(array.ndim)) else array


def _read_metaimage(path: Path) -> Volume:
    if path.name.lower().endswith(".mhd"):
        _check_metaimage_header(path)
    import SimpleITK as sitk  # imported here: ~0.3 s, and only MetaImage datasets need it

    try:
        img = sitk.ReadImage(str(path))
        if img.GetNumberOfComponentsPerPixel() != 1:
            raise CaseError(path, f"{img.GetNumberOfComponentsPerPixel()} components per voxel; expected a scalar volume")
        array = sitk.GetArrayFromImage(img)
    except RuntimeError as exc:
        raise CaseError(path, f"cannot read MetaImage ({_itk_reason(exc)})") from None
    n = img.GetDimension()
    if n not in (3, 4):
        raise CaseError(path, f"{n}-D image; expected a 3-D (or 4-D) volume")
    array = array.transpose(tuple(range(n - 1, -1, -1)))  # ITK arrays are (k, j, i): back to (i, j, k)
    direction = np.asarray(img.GetDirection(), float).reshape(n, n)[:3, :3]
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(img.GetSpacing()[:3], float)
    lps[:3, 3] = img.GetOrigin()[:3]
    return _checked(Volume(array, LPS_TO_RAS @ lps, path))


def metaimage_header(path: Path) -> dict[str, str]:
    """The 'Key = Value' lines of a .mhd header up to ElementDataFile (the last key); for
    ElementDataFile = LIST the file names that follow are joined with newlines."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(1 << 16).decode("latin-1")
    except OSError as exc:
        raise CaseError(path, f"cannot read header ({exc.strerror})") from None
    fields: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        if not sep:
            continue
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            if value.strip().upper().startswith("LIST"):
                fields["ElementDataFile"] = "\n".join(["LIST", *(v.strip() for v in lines[i + 1:] if v.strip())])
            break
    return fields


def _check_metaimage_header(path: Path) -> None:
    """Refuse before ITK reads: data files that are missing, outside the header's folder (a hostile
    archive's header must not pull /etc/passwd into a volume), or shorter/longer than declared."""
    fields = metaimage_header(path)
    missing = [k for k in ("NDims", "DimSize", "ElementType", "ElementDataFile") if k not in fields]
    if missing:
        raise CaseError(path, f"not a MetaImage header: missing {', '.join(missing)}")
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
    except ValueError:
        raise CaseError(path, f"DimSize is not a list of integers: {fields['DimSize']!r}") from None
    if not dims or min(dims) < 1:
        raise CaseError(path, f"DimSize must be positive integers, got {fields['DimSize']!r}")
    element = MET_SIZES.get(fields["ElementType"])
    channels = int(fields.get("ElementNumberOfChannels", "1")) if fields.get("ElementNumberOfChannels", "1").isdigit() else 1
    _check_size(path, tuple(dims) + (channels,), element or 1)
    data = fields["ElementDataFile"]
    if data.upper() == "LOCAL":
        return
    names = data.split("\n")[1:] if "\n" in data else [data]
    if "%" in data:  # 'name%03d.raw first last step': one file per slice
        names = _pattern_files(path, data)
    targets = [_data_file(path, name) for name in names]
    compressed = fields.get("CompressedData", "False").lower() == "true"
    header_size = fields.get("HeaderSize", "0")
    if element and len(targets) == 1 and not compressed and header_size in ("0", ""):
        expected = int(np.prod(dims, dtype=np.int64)) * element * channels
        actual = targets[0].stat().st_size
        if actual != expected:
            how = "truncated" if actual < expected else "longer than its header declares"
            raise CaseError(targets[0], f"data file is {how}: {actual} bytes, expected {expected} "
                                        f"(DimSize {fields['DimSize']}, {fields['ElementType']}) from {path.name}")


def _pattern_files(path: Path, spec: str) -> list[str]:
    parts = spec.split()
    try:
        first, last, step = (int(v) for v in parts[1:4])
        return [parts[0] % i for i in range(first, last + 1, step or 1)]
    except (ValueError, TypeError, IndexError):
        raise CaseError(path, f"ElementDataFile pattern {spec!r} is not 'name%d first last step'") from None


def _data_file(header: Path, name: str) -> Path:
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise CaseError(header, f"ElementDataFile '{name}' points outside the header's folder; refusing to read it")
    target = header.parent / rel
    if not target.is_file():
        raise CaseError(header, f"its data file '{name}' is missing (expected at {target}): keep .mhd and .raw together")
    return target


def _read_dicom_series(folder: Path) -> Volume:
    """One series per folder; slices sorted along the slice normal; refused when mixed, missing a
    slice (uneven spacing) or inconsistent. Values after the modality LUT (e.g. CT Hounsfield)."""
    paths = files(folder)
    if not paths:
        raise CaseError(folder, "DICOM series folder holds no files")
    headers = []
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, AttributeError, TypeError, EOFError) as exc:
            raise CaseError(p, f"not a readable DICOM file ({_one_line(exc)})") from None
        headers.append((p, ds))
    geometry = _series_geometry(folder, headers)
    slices = []
    for p, _ in geometry["order"]:
        try:
            ds = pydicom.dcmread(p)
            px = apply_modality_lut(ds.pixel_array, ds)
        except Exception as exc:  # noqa: BLE001 - pydicom and its decoders raise many types on bad data
            raise CaseError(p, f"cannot decode pixel data ({_one_line(exc)})") from None
        if px.ndim != 2:
            raise CaseError(p, f"pixel data of shape {px.shape}; expected one 2-D grey slice per file")
        slices.append(px.T)  # (rows, columns) -> (i = column, j = row)
    array = compact(np.stack(slices, axis=-1))  # the rescale gives float64: keep HU as int16
    return _checked(Volume(array, LPS_TO_RAS @ geometry["affine"], folder))


def _series_geometry(folder: Path, headers: list) -> dict:
    uids = sorted({str(getattr(ds, "SeriesInstanceUID", "")) for _, ds in headers})
    if len(uids) > 1:
        raise CaseError(folder, f"mixed series: {len(uids)} SeriesInstanceUIDs ({', '.join(uids[:3])}); one folder must hold one series")
    for p, ds in headers:
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
            if getattr(ds, tag, None) in (None, ""):
                raise CaseError(p, f"no {tag}: cannot place the slice in space")
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            raise CaseError(p, "multi-frame DICOM: a series folder must hold one slice per file")
    first = headers[0][1]
    iop = np.asarray(first.ImageOrientationPatient, float)
    for p, ds in headers:
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, float), iop, atol=1e-4):
            raise CaseError(p, "ImageOrientationPatient differs from the series' first slice")
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns):
            raise CaseError(p, f"slice is {ds.Columns}x{ds.Rows} but the series' first is {first.Columns}x{first.Rows}")
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = [np.asarray(ds.ImagePositionPatient, float) for _, ds in headers]
    along = np.array([pos @ normal for pos in positions])
    order = np.argsort(along, kind="stable")
    gaps = np.diff(along[order])
    if gaps.size and gaps.min() < 1e-3:
        k = int(np.argmin(gaps))
        raise CaseError(headers[order[k + 1]][0], f"two slices at the same position ({along[order[k]]:.3f} mm along the normal)")
    if gaps.size > 1 and gaps.max() - gaps.min() > max(0.01, 0.01 * float(np.median(gaps))):
        k = int(np.argmax(np.abs(gaps - np.median(gaps))))
        raise CaseError(folder, f"uneven slice spacing: {gaps[k]:.3f} mm after {headers[order[k]][0].name} against "
                                f"{float(np.median(gaps)):.3f} mm elsewhere (a missing slice?)")
    spacing = np.asarray(first.PixelSpacing, float)  # (between rows, between columns)
    if gaps.size:
        step = (positions[order[-1]] - positions[order[0]]) / gaps.size  # keeps a gantry tilt's shear
    else:
        step = normal * float(getattr(first, "SliceThickness", 0) or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * spacing[1]
    affine[:3, 1] = col_dir * spacing[0]
    affine[:3, 2] = step
    affine[:3, 3] = positions[order[0]]
    return {"order": [headers[i] for i in order], "affine": affine}


def _check_size(path: Path, shape: tuple, itemsize: int) -> None:
    n = int(np.prod([max(int(s), 0) for s in shape], dtype=np.float64) * itemsize)
    if n > MAX_VOLUME_BYTES:
        raise CaseError(path, f"declares {n} bytes of voxels (shape {tuple(shape)}), over the {MAX_VOLUME_BYTES} limit")


def _checked(vol: Volume) -> Volume:
    while vol.array.ndim > 3 and vol.array.shape[-1] == 1:  # (x, y, z, 1): a 3-D volume in a 4-D header
        vol.array = vol.array[..., 0]
    if vol.array.ndim not in (3, 4):
        raise CaseError(vol.source, f"{vol.array.ndim}-D data of shape {vol.array.shape}; expected a 3-D (or 4-D) volume")
    if vol.affine.shape != (4, 4) or not np.all(np.isfinite(vol.affine)) or abs(np.linalg.det(vol.affine[:3, :3])) < 1e-12:
        raise CaseError(vol.source, "voxel-to-world matrix is degenerate (zero spacing or collinear axes)")
    return vol


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _itk_reason(exc: RuntimeError) -> str:
    """ITK's message without its source-file preamble."""
    text = str(exc)
    tail = text.split("Reason:", 1)[-1] if "Reason:" in text else text.split("ITK ERROR:", 1)[-1]
    return _one_line(tail)


# ---------------------------------------------------------------- writing


def write_nifti(array: np.ndarray, affine: np.ndarray, dest: Path) -> str:
    """Gzipped NIfTI-1 with no timestamp (gzip mtime 0, no file name), written atomically; equal
    inputs give equal bytes. Returns the file's sha256."""
    array = _storable(np.asarray(array), dest)
    img = nib.Nifti1Image(array, affine)
    img.set_sform(affine, code=1)  # scanner-anatomical, both forms: readers pick either
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    data = gzip.compress(img.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def compact(array: np.ndarray) -> np.ndarray:
    """Intensities stored as int16 where that loses nothing (CT in HU shipped as float32 (KiTS19),
    DICOM series after the rescale), otherwise unchanged (floats as float32): half the bytes of
    float32, and nnU-Net reads either. The manifest's dtype column says which."""
    if not array.size or (array.dtype.kind in "iu" and array.dtype.itemsize <= 2):
        return array  # already as small as it gets (uint8 stays uint8)
    whole = array.dtype.kind in "iu" or np.array_equal(np.round(array), array)
    if whole and INT16.min <= array.min() and array.max() <= INT16.max:
        return array.astype(np.int16)
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _storable(array: np.ndarray, dest: Path) -> np.ndarray:
    """NIfTI has no bool and nibabel refuses 64-bit integers by default: narrow losslessly."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        info = np.iinfo(np.int32)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise CaseError(dest, f"{array.dtype} values beyond int32 cannot be stored in NIfTI-1 losslessly")
        return array.astype(np.int32)
    return array


# ---------------------------------------------------------------- one case


def canonical(array: np.ndarray, affine: np.ndarray, ornt: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The closest canonical RAS+ form: an axis permutation and flips (lossless), the affine
    adjusted so every voxel keeps its world position."""
    if ornt is None:
        ornt = orientations.io_orientation(affine)
    out = np.ascontiguousarray(orientations.apply_orientation(array, ornt))
    return out, affine @ orientations.inv_ornt_aff(ornt, array.shape)


def convert_case(case, root: Path, plan: dict, module, out: Path, sums: dict) -> dict:
    """The volume_segmentation path of convert: load, check, reorient, write NIfTI (and optional
    slices); return the manifest row."""
    if case.mask is None:
        raise CaseError(case.image, "image has no label volume")
    image = _load(module, "load_volume", case, plan, case.image)
    label = _load(module, "load_label", case, plan, case.mask)
    if image.array.ndim != 3:
        raise CaseError(image.source, f"image has shape {image.array.shape}; expected 3-D (a 4-D series needs the dataset's load_volume to pick a frame)")
    _check_pair(image, label)
    if not np.all(np.isfinite(image.array)):
        raise CaseError(image.source, f"image holds {int((~np.isfinite(image.array)).sum())} NaN/inf voxels")
    labels, actions = _label_values(label, plan["labels"]["mask"])
    ornt = orientations.io_orientation(image.affine)
    orientation_in = "".join(orientations.aff2axcodes(image.affine))
    arr, affine = canonical(compact(image.array), image.affine, ornt)
    labels, _ = canonical(labels, image.affine, ornt)  # the label shares the image's grid
    images_dir, labels_dir = out / "volumes" / "images", out / "volumes" / "labels"
    image_rel = f"volumes/images/{case.case_id}_0000.nii.gz"
    label_rel = f"volumes/labels/{case.case_id}.nii.gz"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    sums[image_rel] = write_nifti(arr, affine, out / image_rel)
    sums[label_rel] = write_nifti(labels, affine, out / label_rel)
    n_slices = write_slices(arr, labels, case.case_id, out, plan, sums) if plan["convert"].get("slices") else ""
    present = sorted(set(np.unique(labels).tolist()) - {0})
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return case_row(case, root, plan["module"], image_rel, label_rel,
                    width=arr.shape[0], height=arr.shape[1], depth=arr.shape[2],
                    spacing=" ".join(f"{v:.9g}" for v in spacing), orientation_in=orientation_in,
                    dtype=str(arr.dtype), slices=n_slices, pixel_sha256=pixel_digest(arr),
                    mask_sha256=pixel_digest(labels), mask_source=rel(case.mask, root),
                    mask_labels=" ".join(str(v) for v in present), cleaning=";".join(actions),
                    facts={**image.facts, **label.facts}, **volume_measures(labels))


def _load(module, hook: str, case, plan: dict, path: Path) -> Volume:
    reader = getattr(module, hook, None)
    return reader(case, plan) if reader else read_volume(path)


def _check_pair(image: Volume, label: Volume) -> None:
    if label.array.shape != image.array.shape:
        raise CaseError(label.source, f"label volume is {_dims(label.array.shape)} but its image is {_dims(image.array.shape)}")
    # compare where the two grids put the volume's corners: a spacing error shows up scaled by the size
    corners = np.array([[i, j, k, 1] for i in (0, image.array.shape[0] - 1)
                        for j in (0, image.array.shape[1] - 1) for k in (0, image.array.shape[2] - 1)], float).T
    shift = float(np.abs(image.affine @ corners - label.affine @ corners).max())
    if shift > AFFINE_TOLERANCE_MM:
        raise CaseError(label.source, f"label volume lies {shift:.4g} mm away from its image's grid "
                                      f"(affines differ; tolerance {AFFINE_TOLERANCE_MM} mm)")


def _dims(shape: tuple) -> str:
    return "x".join(str(s) for s in shape)


def _label_values(label: Volume, values: dict[str, int]) -> tuple[np.ndarray, list[str]]:
    """uint8 label map; every value must be one the catalogue names."""
    arr, actions = label.array, []
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise CaseError(label.source, "label volume holds non-integer values")
        actions.append(f"label_dtype:{arr.dtype}->uint8")
    found = set(np.unique(arr).tolist())
    unknown = sorted(found - set(values.values()))
    if unknown:
        raise CaseError(label.source, f"label values {unknown[:10]} are not in the catalogue's mask labels {values}")
    if arr.dtype != np.uint8 and arr.dtype.kind != "f":
        actions.append(f"label_dtype:{arr.dtype}->uint8")
    return arr.astype(np.uint8), actions


def volume_measures(labels: np.ndarray) -> dict:
    """Foreground voxel fraction and 26-connected (3-D) component count: the volume analogues of
    curation.measures, so curation's rules read them unchanged."""
    fg = labels > 0
    if not fg.any():
        return {"mask_area_fraction": 0.0, "mask_components": 0}
    box = tuple(slice(int(np.flatnonzero(fg.any(axis=other))[0]), int(np.flatnonzero(fg.any(axis=other))[-1]) + 1)
                for other in ((1, 2), (0, 2), (0, 1)))
    return {"mask_area_fraction": round(float(fg.sum() / fg.size), 6),
            "mask_components": int(measure.label(fg[box], connectivity=3).max())}


def axial(array: np.ndarray, k: int) -> np.ndarray:
    """Slice k of a RAS+ volume as radiologists view it: anterior up, the patient's right on the left."""
    return array[:, :, k].T[::-1, ::-1]


def window(array: np.ndarray) -> np.ndarray:
    """uint8 display range of the whole volume: its 0.5-99.5 percentiles."""
    lo, hi = np.percentile(array, [0.5, 99.5])
    scaled = (array.astype(np.float32) - lo) * (255.0 / max(float(hi - lo), 1e-6))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def largest_label_slice(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """For the QC montage, from written (RAS+) NIfTI: the axial slice holding most label voxels,
    windowed over that slice, and its labels. Only that slice of the image is decoded: a CT
    volume can be a gigabyte."""
    label = np.asanyarray(nib.load(label_path).dataobj)
    k = int(np.argmax((label > 0).sum(axis=(0, 1))))
    image = np.asanyarray(nib.load(image_path).dataobj[:, :, k])
    return np.ascontiguousarray(axial(window(image[:, :, None]), 0)), np.ascontiguousarray(axial(label, k))


def write_slices(image: np.ndarray, labels: np.ndarray, case_id: str, out: Path, plan: dict, sums: dict) -> int:
    grey = window(image)
    level = plan.get("png_compress_level", 1)
    for k in range(image.shape[2]):
        for kind, arr in (("images", grey), ("masks", labels)):
            rel = f"slices/{kind}/{case_id}_{k:03d}.png"
            sums[rel] = write_png(np.ascontiguousarray(axial(arr, k)), out / rel, level)
    return int(image.shape[2])


# ---------------------------------------------------------------- nnU-Net layout


def nnunet_layout(df: pd.DataFrame, stage: Path, plan: dict, sums: dict) -> pd.DataFrame:
    """Move the staged volumes of the curated cases into nnU-Net v2's raw layout (train and val ->
    *Tr, test -> *Ts), write its dataset.json and a splits_final.json of five patient-grouped
    folds (fold 0 = our split); rewrite df.image/df.mask and the keys of ``sums``. Excluded cases stay in volumes/
    (listed in the manifest with their reasons), so no nnU-Net fold, not even 'all', trains on them."""
    df = df.copy()
    nn = stage / "nnunet"
    curated = df["exclusion"].fillna("") == ""
    for idx, row in df[curated].iterrows():
        tail = "Tr" if row["split"] in ("train", "val") else "Ts"
        for column, folder in (("image", f"images{tail}"), ("mask", f"labels{tail}")):
            old = str(row[column])
            new = f"nnunet/{folder}/{Path(old).name}"
            (nn / folder).mkdir(parents=True, exist_ok=True)
            os.replace(stage / old, stage / new)
            if old in sums:
                sums[new] = sums.pop(old)
            df.at[idx, column] = new
    for sub in ("volumes/images", "volumes/labels", "volumes"):
        if (stage / sub).is_dir() and not any((stage / sub).iterdir()):
            (stage / sub).rmdir()
    folds = splits.nnunet_splits(df[curated], plan["id"])  # five patient-grouped folds, fold 0 = our split
    training = int((curated & df["split"].isin(["train", "val"])).sum())
    _write_json(nn / "dataset.json", nnunet_dataset_json(plan, training))
    _write_json(nn / "splits_final.json", folds)
    return df


def nnunet_dataset_json(plan: dict, num_training: int) -> dict:
    labels = plan["labels"]
    return {
        "channel_names": labels.get("channels") or {"0": plan["modality"]},
        "labels": dict(sorted(labels["mask"].items(), key=lambda kv: kv[1])),
        "numTraining": num_training,
        "file_ending": ".nii.gz",
        "name": plan["name"],
        "licence": plan["license"],
        "reference": plan["citation"],
    }


def _write_json(dest: Path, obj) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
