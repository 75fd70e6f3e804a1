"""volumes.py: every reader on files written here (NIfTI, Analyze, MetaImage by SimpleITK and by
hand, a DICOM series), the affine conventions checked on voxels of known world position, damaged
inputs, deterministic NIfTI, lossless reorientation, one case end to end, the nnU-Net layout and
the volume QC tile."""

import copy
import gzip
import hashlib
import json
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import catalogue
from medcurate import curation, qc, volumes
from medcurate.datasets import Case
from medcurate.errors import CaseError
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

RNG = np.random.default_rng(7)


def ras(lps):
    return np.array([-lps[0], -lps[1], lps[2]], float)


def world(affine, ijk):
    return (affine @ np.r_[np.asarray(ijk, float), 1.0])[:3]


# ------------------------------------------------------------------ NIfTI and Analyze


def test_nifti_keeps_array_and_affine(tmp_path):
    arr = RNG.integers(-500, 500, size=(5, 4, 3)).astype(np.int16)
    affine = np.array([[0.0, -0.8, 0, 12], [0.9, 0, 0, -4], [0, 0, 2.5, 7], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(arr, affine), tmp_path / "x.nii.gz")
    vol = volumes.read_volume(tmp_path / "x.nii.gz")
    assert vol.array.dtype == np.int16 and np.array_equal(vol.array, arr)
    assert np.allclose(vol.affine, affine) and vol.source == tmp_path / "x.nii.gz"
    assert np.allclose(world(vol.affine, (2, 1, 1)), [12 - 0.8, 1.8 - 4, 2.5 + 7])


def test_analyze_pair_is_read_and_a_missing_img_is_named(tmp_path):
    arr = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    nib.save(nib.AnalyzeImage(arr, np.diag([2.0, 3.0, 4.0, 1.0])), tmp_path / "y.hdr")
    vol = volumes.read_volume(tmp_path / "y.hdr")
    assert np.array_equal(vol.array, arr)
    assert np.allclose(np.diag(vol.affine)[:3], [-2, 3, 4])  # Analyze is radiological: nibabel flips x
    assert vol.array[1, 2, 3] == 1 * 20 + 2 * 5 + 3
    (tmp_path / "y.img").unlink()
    with pytest.raises(CaseError) as err:
        volumes.read_volume(tmp_path / "y.hdr")
    assert err.value.path.endswith("y.img") and "missing" in err.value.reason


@pytest.mark.parametrize("name", ["t.nii.gz", "t.nii"])
def test_truncated_nifti_is_a_case_error(tmp_path, name):
    arr = RNG.integers(0, 30000, size=(40, 40, 20)).astype(np.int16)
    full = tmp_path / f"full{name[1:]}"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), full)
    data = full.read_bytes()
    (tmp_path / name).write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(CaseError) as err:
        volumes.read_volume(tmp_path / name)
    assert err.value.path == str(tmp_path / name) and "truncated or damaged" in err.value.reason


def test_trailing_singleton_dimension_is_dropped_and_2d_refused(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(4, 3, 2, 1)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), tmp_path / "t.nii.gz")
    assert volumes.read_volume(tmp_path / "t.nii.gz").array.shape == (4, 3, 2)
    nib.save(nib.Nifti1Image(arr[:, :, 0, 0], np.eye(4)), tmp_path / "f.nii.gz")
    with pytest.raises(CaseError, match="2-D data of shape"):
        volumes.read_volume(tmp_path / "f.nii.gz")


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(CaseError, match="file is missing"):
        volumes.read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(CaseError, match="not a volume format"):
        volumes.read_volume(tmp_path / "x.png")


# ------------------------------------------------------------------ MetaImage


def test_metaimage_written_by_simpleitk_lps_to_ras(tmp_path):
    arr_kji = RNG.integers(0, 1000, size=(4, 5, 6)).astype(np.int16)  # ITK order (z, y, x)
    img = sitk.GetImageFromArray(arr_kji)
    img.SetSpacing((0.7, 0.8, 3.0))
    img.SetOrigin((-20.0, 15.0, 40.0))
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, -s, 0, s, c, 0, 0, 0, 1))
    sitk.WriteImage(img, str(tmp_path / "a.mhd"))
    vol = volumes.read_volume(tmp_path / "a.mhd")
    assert vol.array.shape == (6, 5, 4) and vol.array.dtype == np.int16
    for ijk in [(0, 0, 0), (5, 4, 3), (2, 3, 1)]:
        lps = img.TransformIndexToPhysicalPoint(ijk)
        assert np.allclose(world(vol.affine, ijk), ras(lps))
        assert vol.array[ijk] == img.GetPixel(ijk)


def write_mhd(folder: Path, name: str, arr_xyz: np.ndarray, *, spacing="2 3 4", offset="10 20 30",
              matrix="1 0 0 0 1 0 0 0 1", data_file=None, element="MET_SHORT") -> Path:
    data_file = data_file or f"{name}.raw"
    header = (f"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              f"CompressedData = False\nTransformMatrix = {matrix}\nOffset = {offset}\n"
              f"CenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\nElementSpacing = {spacing}\n"
              f"DimSize = {' '.join(map(str, arr_xyz.shape))}\nElementType = {element}\nElementDataFile = {data_file}\n")
    (folder / f"{name}.mhd").write_text(header)
    (folder / f"{name}.raw").write_bytes(np.ascontiguousarray(arr_xyz.transpose(2, 1, 0)).tobytes())  # x fastest
    return folder / f"{name}.mhd"


def test_hand_written_mhd_header_and_raw(tmp_path):
    arr = np.arange(4 * 3 * 2, dtype="<i2").reshape(4, 3, 2) * 7  # (x, y, z)
    vol = volumes.read_volume(write_mhd(tmp_path, "h", arr))
    assert np.array_equal(vol.array, arr)
    # voxel (1, 2, 1): LPS = offset + index * spacing = (12, 26, 34) -> RAS (-12, -26, 34)
    assert np.allclose(world(vol.affine, (1, 2, 1)), [-12, -26, 34])
    assert vol.array[1, 2, 1] == arr[1, 2, 1] == (1 * 6 + 2 * 2 + 1) * 7


def test_hand_written_transform_matrix_lists_axis_directions(tmp_path):
    """TransformMatrix holds the direction of axis i first (MetaImage writes the columns)."""
    arr = np.arange(24, dtype="<i2").reshape(4, 3, 2)
    vol = volumes.read_volume(write_mhd(tmp_path, "r", arr, matrix="0 1 0 -1 0 0 0 0 1"))
    # axis i runs along +y (LPS), axis j along -x: voxel (1, 2, 0) is at LPS (10 - 6, 20 + 2, 30)
    assert np.allclose(world(vol.affine, (1, 2, 0)), ras((4, 22, 30)))
    assert "".join(nib.aff2axcodes(vol.affine)) == "PRS"


def test_truncated_raw_names_the_raw_file(tmp_path):
    header = write_mhd(tmp_path, "t", np.ones((4, 3, 2), "<i2"))
    raw = tmp_path / "t.raw"
    raw.write_bytes(raw.read_bytes()[:20])
    with pytest.raises(CaseError) as err:
        volumes.read_volume(header)
    assert err.value.path == str(raw) and "truncated: 20 bytes, expected 48" in err.value.reason


def test_header_pointing_to_a_missing_file(tmp_path):
    header = write_mhd(tmp_path, "m", np.ones((4, 3, 2), "<i2"), data_file="elsewhere.raw")
    with pytest.raises(CaseError) as err:
        volumes.read_volume(header)
    assert err.value.path == str(header) and "'elsewhere.raw' is missing" in err.value.reason


@pytest.mark.parametrize("data_file", ["../outside.raw", "/etc/passwd"])
def test_header_pointing_outside_its_folder_is_refused(tmp_path, data_file):
    (tmp_path / "outside.raw").write_bytes(b"\0" * 48)
    sub = tmp_path / "sub"
    sub.mkdir()
    header = write_mhd(sub, "e", np.ones((4, 3, 2), "<i2"), data_file=data_file)
    with pytest.raises(CaseError, match="outside the header's folder"):
        volumes.read_volume(header)


@pytest.mark.parametrize("form", ["LIST", "pattern"])
def test_one_file_per_slice_forms(tmp_path, form):
    arr = np.arange(4 * 3 * 2, dtype="<i2").reshape(4, 3, 2)
    header = write_mhd(tmp_path, "s", arr, data_file="LIST\ns_0.raw\ns_1.raw" if form == "LIST" else "s_%d.raw 0 1 1")
    for k in range(2):
        (tmp_path / f"s_{k}.raw").write_bytes(np.ascontiguousarray(arr[:, :, k].T).tobytes())
    vol = volumes.read_volume(header)
    assert np.array_equal(vol.array, arr)
    (tmp_path / "s_1.raw").unlink()
    with pytest.raises(CaseError, match="its data file 's_1.raw' is missing"):
        volumes.read_volume(header)


def test_header_with_a_missing_key(tmp_path):
    (tmp_path / "k.mhd").write_text("ObjectType = Image\nNDims = 3\nElementDataFile = k.raw\n")
    with pytest.raises(CaseError, match="missing DimSize, ElementType"):
        volumes.read_volume(tmp_path / "k.mhd")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.text(alphabet=st.sampled_from(list("ObjectTypeNDimsSizeElementDataFileMET_SHORTLOCAL=0123456789 .-\n%"))),
       raw=st.binary(max_size=64))
def test_fuzz_metaimage_raises_only_case_errors(tmp_path, header, raw):
    (tmp_path / "f.mhd").write_text("NDims = 3\nElementType = MET_SHORT\n" + header, encoding="latin-1")
    (tmp_path / "f.raw").write_bytes(raw)
    try:
        vol = volumes.read_volume(tmp_path / "f.mhd")
    except CaseError as exc:
        assert exc.path and exc.reason
    else:
        assert vol.array.ndim in (3, 4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), flip=st.integers(0, 399), suffix=st.sampled_from([".nii", ".nii.gz"]))
def test_fuzz_nifti_raises_only_case_errors(tmp_path, cut, flip, suffix):
    img = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4))
    data = bytearray(img.to_bytes())
    data[flip] ^= 0xFF
    data = bytes(data[: len(data) - cut])
    (tmp_path / f"z{suffix}").write_bytes(gzip.compress(data, mtime=0) if suffix == ".nii.gz" else data)
    try:
        volumes.read_volume(tmp_path / f"z{suffix}")
    except CaseError as exc:
        assert exc.path == str(tmp_path / f"z{suffix}")


# ------------------------------------------------------------------ DICOM series

SERIES = "1.2.826.0.1.3680043.8.498.17"
ROW_DIR = np.array([1.0, 0.0, 0.0])
COL_DIR = np.array([0.0, np.cos(0.2), -np.sin(0.2)])  # a slightly oblique acquisition
ORIGIN = np.array([-30.0, -40.0, 25.0])
PIXEL_SPACING = (0.8, 0.6)  # (between rows, between columns)
STEP = 2.5


def dicom_slice(path: Path, pixels: np.ndarray, k: int, series: str = SERIES, position=None) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{series}.{k + 1}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality, ds.InstanceNumber = series, "CT", k + 1
    normal = np.cross(ROW_DIR, COL_DIR)
    ds.ImagePositionPatient = [round(float(v), 6) for v in (ORIGIN + k * STEP * normal if position is None else position)]
    ds.ImageOrientationPatient = [round(float(v), 8) for v in (*ROW_DIR, *COL_DIR)]
    ds.PixelSpacing = list(PIXEL_SPACING)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def series(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    slices = [RNG.integers(0, 2000, size=(3, 4)).astype(np.uint16) for _ in range(5)]
    names = ["IM-0004.dcm", "IM-0001.dcm", "IM-0003.dcm", "IM-0000.dcm", "IM-0002.dcm"]  # not spatial order
    for k, (name, px) in enumerate(zip(names, slices)):
        dicom_slice(folder / name, px, k)
    return folder, slices, names


def test_dicom_series_stacked_along_the_normal_with_its_affine(series):
    folder, slices, _ = series
    vol = volumes.read_volume(folder)
    assert vol.array.shape == (4, 3, 5) and vol.array.dtype == np.int16
    for k, px in enumerate(slices):
        assert np.array_equal(vol.array[:, :, k], px.T.astype(np.int16) - 1024)  # (column, row), modality LUT
    normal = np.cross(ROW_DIR, COL_DIR)
    for i, j, k in [(0, 0, 0), (3, 2, 4), (1, 2, 3)]:
        lps = ORIGIN + i * PIXEL_SPACING[1] * ROW_DIR + j * PIXEL_SPACING[0] * COL_DIR + k * STEP * normal
        assert np.allclose(world(vol.affine, (i, j, k)), ras(lps), atol=1e-4)


def test_dicom_mixed_series_is_refused(series):
    folder, slices, names = series
    dicom_slice(folder / names[0], slices[0], 0, series=SERIES + ".2")
    with pytest.raises(CaseError) as err:
        volumes.read_volume(folder)
    assert err.value.path == str(folder) and "mixed series: 2 SeriesInstanceUIDs" in err.value.reason


def test_dicom_missing_slice_is_refused(series):
    folder, _, names = series
    (folder / names[2]).unlink()  # slice k=2: a 5 mm gap among 2.5 mm steps
    with pytest.raises(CaseError, match=r"uneven slice spacing: 5.000 mm after IM-0001.dcm against 2.500 mm elsewhere \(a missing slice\?\)"):
        volumes.read_volume(folder)


def test_dicom_duplicate_position_and_junk_file(series):
    folder, slices, _ = series
    dicom_slice(folder / "copy.dcm", slices[1], 1, position=ORIGIN + STEP * np.cross(ROW_DIR, COL_DIR))
    with pytest.raises(CaseError, match="two slices at the same position"):
        volumes.read_volume(folder)
    (folder / "copy.dcm").write_bytes(b"not dicom")
    with pytest.raises(CaseError) as err:
        volumes.read_volume(folder)
    assert err.value.path == str(folder / "copy.dcm")


def test_dicom_truncated_pixel_data_names_the_slice(series):
    folder, _, names = series
    path = folder / names[1]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CaseError) as err:
        volumes.read_volume(folder)
    assert err.value.path == str(path)


# ------------------------------------------------------------------ writing and reorienting


def test_write_nifti_is_deterministic_and_round_trips(tmp_path):
    arr = RNG.integers(-1000, 3000, size=(7, 6, 5)).astype(np.int16)
    affine = np.array([[0.0, 0.0, -3.0, 50.5], [0.7, 0.0, 0.0, -20.25], [0.0, -0.7, 0.0, 10.0], [0, 0, 0, 1]])
    first = volumes.write_nifti(arr, affine, tmp_path / "a.nii.gz")
    second = volumes.write_nifti(arr, affine, tmp_path / "b.nii.gz")
    data = (tmp_path / "a.nii.gz").read_bytes()
    assert first == second == hashlib.sha256(data).hexdigest() and data == (tmp_path / "b.nii.gz").read_bytes()
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime
    back = nib.load(tmp_path / "a.nii.gz")
    assert back.get_data_dtype() == np.int16 and np.array_equal(np.asanyarray(back.dataobj), arr)
    assert np.allclose(back.affine, affine, atol=1e-5)
    assert int(back.header["sform_code"]) == int(back.header["qform_code"]) == 1
    assert list(tmp_path.glob(".*")) == []  # the atomic write left no temporary


def test_write_nifti_narrows_int64_and_bool(tmp_path):
    volumes.write_nifti(np.arange(8, dtype=np.int64).reshape(2, 2, 2), np.eye(4), tmp_path / "i.nii.gz")
    assert nib.load(tmp_path / "i.nii.gz").get_data_dtype() == np.int32
    volumes.write_nifti(np.ones((2, 2, 2), bool), np.eye(4), tmp_path / "b.nii.gz")
    assert nib.load(tmp_path / "b.nii.gz").get_data_dtype() == np.uint8
    with pytest.raises(CaseError, match="beyond int32"):
        volumes.write_nifti(np.full((2, 2, 2), 2**40, np.int64), np.eye(4), tmp_path / "x.nii.gz")


def test_reorientation_keeps_every_voxel_at_its_world_point():
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    # stored as LPS-ish with permuted axes: i -> -y (P), j -> +z (S), k -> -x (L)
    affine = np.array([[0, 0, -2.0, 30], [-0.5, 0, 0, 10], [0, 1.5, 0, -5], [0, 0, 0, 1]])
    assert "".join(nib.aff2axcodes(affine)) == "PSL"
    out, new = volumes.canonical(arr, affine)
    assert "".join(nib.aff2axcodes(new)) == "RAS" and out.shape == (6, 4, 5)
    for ijk in [(0, 0, 0), (3, 4, 5), (1, 2, 3), (2, 0, 4)]:
        point = world(affine, ijk)
        target = np.round(np.linalg.solve(new[:3, :3], point - new[:3, 3])).astype(int)
        assert out[tuple(target)] == arr[ijk]
        assert np.allclose(world(new, target), point)


# ------------------------------------------------------------------ one case


def plan(slices=False, qc_samples=24, **select):
    return {"id": "vol", "name": "Volumes", "module": "vol", "task": "volume_segmentation", "modality": "mri",
            "license": "CC0", "citation": "Someone 2024", "png_compress_level": 1,
            "labels": {"mask": {"background": 0, "organ": 1, "lesion": 2}, "channels": {"0": "T2"}},
            "convert": {"slices": slices}, "qc": {"qc_samples": qc_samples},
            "select": {"empty_mask": "keep", "exclude_flags": [], "crude_shapes": None,
                       "allowed_roi_types": None, "area_fraction": None, "max_components": None, **select}}


def exclusion(row: dict, p: dict) -> str:
    """What the select step decides for one converted row (read back as the table's strings)."""
    return curation.select(pd.DataFrame([{k: str(v) for k, v in row.items()}]), p, None)["exclusion"][0]


LPS_AFFINE = np.array([[-0.5, 0, 0, 10], [0, -0.5, 0, 12], [0, 0, 3.0, -9], [0, 0, 0, 1]])


def nifti_pair(tmp_path, image=None, label=None, label_affine=None):
    image = RNG.integers(0, 800, size=(8, 6, 4)).astype(np.int16) if image is None else image
    if label is None:
        label = np.zeros(image.shape, np.uint8)
        label[2:5, 1:4, 1:3] = 1
        label[6, 5, 3] = 2
    nib.save(nib.Nifti1Image(image, LPS_AFFINE), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(label, LPS_AFFINE if label_affine is None else label_affine), tmp_path / "lab.nii.gz")
    return Case("c1", "p1", tmp_path / "img.nii.gz", mask=tmp_path / "lab.nii.gz", meta={"site": "A"}), image, label


NO_HOOKS = types.SimpleNamespace()


def test_convert_case_writes_canonical_nifti_and_the_row(tmp_path):
    case, image, _ = nifti_pair(tmp_path)
    sums = {}
    row = volumes.convert_case(case, tmp_path, plan(), NO_HOOKS, tmp_path / "out", sums)
    assert sorted(sums) == ["volumes/images/c1_0000.nii.gz", "volumes/labels/c1.nii.gz"]
    img = nib.load(tmp_path / "out" / row["image"])
    lab = nib.load(tmp_path / "out" / row["mask"])
    assert "".join(nib.aff2axcodes(img.affine)) == "RAS" and np.allclose(img.affine, lab.affine)
    # LPS in (i, j) -> both flipped: voxel (6, 5, 3) of the input is (1, 0, 3) of the output
    assert np.asarray(lab.dataobj)[1, 0, 3] == 2 and np.asarray(img.dataobj)[1, 0, 3] == image[6, 5, 3]
    assert lab.get_data_dtype() == np.uint8
    assert row["orientation_in"] == "LPS" and row["spacing"] == "0.5 0.5 3" and row["dtype"] == "int16"
    assert (row["width"], row["height"], row["depth"]) == (8, 6, 4) and row["slices"] == ""
    assert row["mask_labels"] == "1 2" and row["mask_components"] == 2 and row["site"] == "A"
    assert row["mask_area_fraction"] == round(19 / 192, 6) and exclusion(row, plan()) == ""
    assert row["source"] == "img.nii.gz" and row["mask_source"] == "lab.nii.gz"
    assert sums["volumes/labels/c1.nii.gz"] == hashlib.sha256((tmp_path / "out" / row["mask"]).read_bytes()).hexdigest()


def test_convert_case_slices(tmp_path):
    case, _, _ = nifti_pair(tmp_path)
    sums = {}
    row = volumes.convert_case(case, tmp_path, plan(slices=True), NO_HOOKS, tmp_path / "out", sums)
    assert row["slices"] == 4
    assert len([k for k in sums if k.startswith("slices/images/")]) == len([k for k in sums if k.startswith("slices/masks/")]) == 4
    mask = np.asarray(Image.open(tmp_path / "out" / "slices/masks/c1_003.png"))
    # canonical voxel (1, 0, 3) shown with anterior up and the patient's right on the left
    assert mask.shape == (6, 8) and mask[6 - 1 - 0, 8 - 1 - 1] == 2
    grey = np.asarray(Image.open(tmp_path / "out" / "slices/images/c1_001.png"))
    assert grey.dtype == np.uint8 and grey.shape == (6, 8) and grey.max() > grey.min()


@pytest.mark.parametrize("what, reason", [
    ("shape", "label volume is 8x6x3 but its image is 8x6x4"),
    ("affine", "mm away from its image's grid"),
    ("value", "label values [7] are not in the catalogue's mask labels"),
    ("float", "non-integer values"),
    ("nan", "image holds 1 NaN/inf voxels"),
])
def test_convert_case_refuses_inconsistent_pairs(tmp_path, what, reason):
    image = RNG.integers(0, 800, size=(8, 6, 4)).astype(np.float32 if what == "nan" else np.int16)
    label = np.zeros((8, 6, 4), np.uint8)
    label_affine = None
    if what == "shape":
        label = label[:, :, :3]
    elif what == "affine":
        label_affine = LPS_AFFINE.copy()
        label_affine[2, 2] = 3.01  # 0.01 mm per slice: 0.03 mm at the far corner
    elif what == "value":
        label[0, 0, 0] = 7
    elif what == "float":
        label = label.astype(np.float32)
        label[0, 0, 0] = 0.5
    else:
        image[1, 1, 1] = np.nan
    case, _, _ = nifti_pair(tmp_path, image=image, label=label, label_affine=label_affine)
    with pytest.raises(CaseError) as err:
        volumes.convert_case(case, tmp_path, plan(), NO_HOOKS, tmp_path / "out", {})
    assert reason in err.value.reason
    assert err.value.path == str(tmp_path / ("img.nii.gz" if what == "nan" else "lab.nii.gz"))


def test_convert_case_float_label_and_module_hooks(tmp_path):
    case, image, _ = nifti_pair(tmp_path, label=np.zeros((8, 6, 4), np.float32))
    four_d = np.stack([image, image + 1], axis=-1)
    hooks = types.SimpleNamespace(load_volume=lambda c, p: volumes.Volume(four_d[..., 1], LPS_AFFINE, c.image))
    row = volumes.convert_case(case, tmp_path, plan(empty_mask="exclude"), hooks, tmp_path / "out", {})
    assert row["cleaning"] == "label_dtype:float32->uint8" and exclusion(row, plan(empty_mask="exclude")) == "empty_mask"
    assert np.asarray(nib.load(tmp_path / "out" / row["image"]).dataobj)[7, 5, 0] == image[0, 0, 0] + 1
    hooks = types.SimpleNamespace(load_volume=lambda c, p: volumes.Volume(four_d, LPS_AFFINE, c.image))
    with pytest.raises(CaseError, match="expected 3-D"):
        volumes.convert_case(case, tmp_path, plan(), hooks, tmp_path / "out", {})


def test_curation_rules_read_volume_facts(tmp_path):
    label = np.zeros((8, 6, 4), np.uint8)
    label[1, 1, 1] = label[2, 2, 2] = 1  # touching only at a corner: one 26-connected component
    label[6, 4, 2] = 1
    assert volumes.volume_measures(label) == {"mask_area_fraction": round(3 / 192, 6), "mask_components": 2}
    case, _, _ = nifti_pair(tmp_path, label=label)
    case.meta["motion"] = 1
    rules = plan(max_components=1, exclude_flags=["motion"], area_fraction={"min": 0.05, "max": 1})
    row = volumes.convert_case(case, tmp_path, rules, NO_HOOKS, tmp_path / "out", {})
    assert exclusion(row, rules) == "motion;area_fraction;components"


# ------------------------------------------------------------------ nnU-Net layout and QC


def staged(tmp_path, splits_and_exclusions):
    stage = tmp_path / "stage"
    rows, sums = [], {}
    for n, (split, exclusion) in enumerate(splits_and_exclusions):
        cid = f"case{n}"
        image = np.full((6, 5, 4), 100 * n, np.int16)
        image[1:4, 1:4, 2] = 500
        label = np.zeros((6, 5, 4), np.uint8)
        label[1:4, 1:4, 2] = 1
        for rel, arr in ((f"volumes/images/{cid}_0000.nii.gz", image), (f"volumes/labels/{cid}.nii.gz", label)):
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            sums[rel] = volumes.write_nifti(arr, np.eye(4), stage / rel)
        rows.append({"case_id": cid, "patient_id": cid, "split": split, "image": f"volumes/images/{cid}_0000.nii.gz",
                     "mask": f"volumes/labels/{cid}.nii.gz", "mask_labels": "1", "exclusion": exclusion,
                     "curated": int(exclusion == "")})
    return stage, pd.DataFrame(rows), sums


def test_nnunet_layout(tmp_path):
    stage, df, sums = staged(tmp_path, [("train", ""), ("train", "empty_mask"), ("val", ""), ("test", ""), ("train", "")])
    before = dict(sums)
    out = volumes.nnunet_layout(df, stage, plan(), sums)
    # The excluded case stays in volumes/: no nnU-Net fold (not even 'all') can train on it.
    assert list(out["image"]) == ["nnunet/imagesTr/case0_0000.nii.gz", "volumes/images/case1_0000.nii.gz",
                                  "nnunet/imagesTr/case2_0000.nii.gz", "nnunet/imagesTs/case3_0000.nii.gz",
                                  "nnunet/imagesTr/case4_0000.nii.gz"]
    assert out.loc[3, "mask"] == "nnunet/labelsTs/case3.nii.gz" and out.loc[2, "mask"] == "nnunet/labelsTr/case2.nii.gz"
    assert out.loc[1, "mask"] == "volumes/labels/case1.nii.gz"
    assert sorted(p.name for p in (stage / "volumes").rglob("*.nii.gz")) == ["case1.nii.gz", "case1_0000.nii.gz"]
    for rel in list(out["image"]) + list(out["mask"]):
        assert hashlib.sha256((stage / rel).read_bytes()).hexdigest() == sums[rel]
    assert sums["nnunet/imagesTs/case3_0000.nii.gz"] == before["volumes/images/case3_0000.nii.gz"]
    assert sorted(k for k in sums if k.startswith("volumes/")) == ["volumes/images/case1_0000.nii.gz", "volumes/labels/case1.nii.gz"]
    info = json.loads((stage / "nnunet/dataset.json").read_text())
    assert info == {"channel_names": {"0": "T2"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
                    "numTraining": 3, "file_ending": ".nii.gz", "name": "Volumes", "licence": "CC0",
                    "reference": "Someone 2024"}
    assert len(list((stage / "nnunet/imagesTr").iterdir())) == info["numTraining"]
    folds = json.loads((stage / "nnunet/splits_final.json").read_text())
    # five folds, fold 0 our split; excluded case1 is in none; too few patients leave folds 3-4 without val
    assert folds[0] == {"train": ["case0", "case4"], "val": ["case2"]} and len(folds) == 5
    assert sorted(v for f in folds[1:] for v in f["val"]) == ["case0", "case4"]
    assert all(sorted(f["train"] + f["val"]) == ["case0", "case2", "case4"] for f in folds)


def test_volume_qc_tile_is_the_largest_label_slice(tmp_path):
    stage, df, sums = staged(tmp_path, [("train", ""), ("test", "")])
    df = volumes.nnunet_layout(df, stage, plan(), sums)
    p = copy.deepcopy(plan(qc_samples=4))
    p["task"] = "volume_segmentation"
    qc.montage(df, stage, p, stage / "qc" / "montage.png")
    tile = np.asarray(qc._volume_overlay(stage, next(df.itertuples()), p))
    assert tile.shape[:2] == (5 * 24, 6 * 24)  # 6x5 slice enlarged by whole pixels to the tile height
    red = (tile[..., 0] > tile[..., 1] + 40)  # label 1 takes the first palette colour (red)
    assert red.sum() == 9 * 24 * 24  # the 3x3 label of slice k=2, the only one holding label voxels
    assert Image.open(stage / "qc" / "montage.png").size[0] >= 6 * qc.THUMB[0]


@pytest.mark.parametrize("option, value", [("fill_holes", True), ("min_component_area", 10),
                                           ("crude_shapes", {"box_fill": 0.9})])
def test_two_dimensional_cleaning_is_refused_for_volume_datasets(option, value):
    """They would leave the labels silently unchanged: the catalogue check names the field."""
    import yaml
    from medcurate.errors import CatalogueError

    path = catalogue.folder("promise12") / "dataset.yaml"
    entry = yaml.safe_load(path.read_text())
    step = "select" if option == "crude_shapes" else "clean"
    entry.setdefault(step, {})[option] = value
    with pytest.raises(CatalogueError, match=rf"field '{step}.{option}'"):
        catalogue.validate(entry, "dataset", path)
    entry["task"] = "segmentation"  # the same options are fine on 2-D masks
    catalogue.validate(entry, "dataset", path)


@pytest.mark.parametrize("values, stored", [
    (np.array([0, 255], np.uint8), "uint8"),                 # already small: never widened
    (np.array([-1024, 3071], np.int32), "int16"),
    (np.array([0, 70000], np.int32), "int32"),
    (np.array([12.0, -3.0], np.float64), "int16"),
    (np.array([0.25, 1.0], np.float64), "float32"),
])
def test_compact_narrows_only_losslessly(values, stored):
    out = volumes.compact(values)
    assert str(out.dtype) == stored and np.array_equal(out.astype(np.float64), values.astype(np.float64))
