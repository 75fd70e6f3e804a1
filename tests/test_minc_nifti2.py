"""MINC1, MINC2 and NIfTI-2 through volumes.read_volume and one case end to end, on the real example
files nibabel ships in nibabel/tests/data (read from the installed package, never copied): shape,
voxel values and affine against nibabel's own reading, the lossless RAS+ reorientation checked
against nibabel's as_closest_canonical, damaged files as CaseErrors naming the file."""

import gzip
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import volumes
from medcurate.datasets import Case
from medcurate.errors import CaseError

DATA = Path(nib.__file__).parent / "tests" / "data"
# file -> (format, shape medcurate gives: spatial axes first, then time)
REAL = {
    "tiny.mnc": ("MINC1", (10, 20, 20)),
    "minc1_1_scale.mnc": ("MINC1", (10, 20, 20)),
    "minc1-no-att.mnc": ("MINC1", (10, 20, 20)),
    "minc1_4d.mnc": ("MINC1", (10, 20, 20, 2)),
    "small.mnc": ("MINC2", (18, 28, 29)),
    "minc2_1_scale.mnc": ("MINC2", (10, 20, 20)),
    "minc2-no-att.mnc": ("MINC2", (10, 20, 20)),
    "minc2_4d.mnc": ("MINC2", (10, 20, 20, 2)),
    "minc2-4d-d.mnc": ("MINC2", (16, 16, 16, 5)),
    "example_nifti2.nii.gz": ("NIfTI-2", (32, 20, 12, 2)),
}
MAGIC = {"MINC1": b"CDF\x01", "MINC2": b"\x89HDF"}


def real(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{name} not in this nibabel's test data")
    return path


def nibabel_reading(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """nibabel's array with its non-spatial (time) axis moved last, and its affine."""
    img = nib.load(path)
    arr = np.asanyarray(img.dataobj)
    if isinstance(img, nib.minc1.Minc1Image) and arr.ndim == 4:
        assert img.dataobj.minc_file._dim_names[0] == "time"  # all the 4-D examples put time first
        arr = np.moveaxis(arr, 0, -1)
    return arr, np.asarray(img.affine, float)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_file_reads_as_nibabel_reads_it(name):
    path = real(name)
    kind, shape = REAL[name]
    if kind in MAGIC:
        assert path.read_bytes()[:4] == MAGIC[kind]  # the file really is the format named
    else:
        assert nib.load(path).header.sizeof_hdr == 540  # NIfTI-2, not NIfTI-1 (348)
    vol = volumes.read_volume(path)
    expected, affine = nibabel_reading(path)
    assert vol.array.shape == shape == expected.shape
    assert np.array_equal(vol.array, expected) and np.allclose(vol.affine, affine)
    assert vol.source == path


@pytest.mark.parametrize("name", ["tiny.mnc", "small.mnc", "minc2_1_scale.mnc", "minc2-4d-d.mnc", "example_nifti2.nii.gz"])
def test_reorientation_agrees_with_nibabel_closest_canonical(name):
    vol = volumes.read_volume(real(name))
    arr3 = vol.array if vol.array.ndim == 3 else vol.array[..., 0]
    out, affine = volumes.canonical(arr3, vol.affine)
    ref = nib.as_closest_canonical(nib.Nifti1Image(arr3, vol.affine))
    assert "".join(nib.aff2axcodes(affine)) == "RAS"
    assert np.array_equal(out, np.asanyarray(ref.dataobj)) and np.allclose(affine, ref.affine)
    # a voxel keeps its world position: the corner voxel (0, 0, 0) of the input is found again
    point = (vol.affine @ np.r_[0, 0, 0, 1.0])[:3]
    target = np.round(np.linalg.solve(affine[:3, :3], point - affine[:3, 3])).astype(int)
    assert out[tuple(target)] == arr3[0, 0, 0]


def test_minc_orientation_and_zooms_are_the_files():
    """small.mnc stores z, y, x (MINC's usual order): axes S, A, R with 9, 8, 7 mm steps;
    minc2-4d-d.mnc stores x, y, z."""
    small = volumes.read_volume(real("small.mnc"))
    assert nib.aff2axcodes(small.affine) == ("S", "A", "R")
    assert np.allclose(np.sqrt((small.affine[:3, :3] ** 2).sum(axis=0)), [9, 8, 7])
    assert nib.aff2axcodes(volumes.read_volume(real("minc2-4d-d.mnc")).affine) == ("R", "A", "S")
    # NIfTI-2's example is stored left-to-right in x
    assert nib.aff2axcodes(volumes.read_volume(real("example_nifti2.nii.gz")).affine) == ("L", "A", "S")


@pytest.mark.parametrize("name", ["tiny.mnc", "small.mnc"])
def test_convert_case_writes_a_minc_volume_as_ras_nifti(tmp_path, name):
    """A MINC image with a NIfTI label on its grid: written like every other volume (RAS+ NIfTI-1,
    world positions kept)."""
    src = real(name)
    vol = volumes.read_volume(src)
    label = (vol.array > np.percentile(vol.array, 80)).astype(np.uint8)
    nib.save(nib.Nifti1Image(label, vol.affine), tmp_path / "lab.nii.gz")
    plan = {"id": "m", "module": "m", "task": "volume_segmentation", "png_compress_level": 1,
            "labels": {"mask": {"background": 0, "bright": 1}}, "convert": {}}
    case = Case("c1", "p1", src, mask=tmp_path / "lab.nii.gz")
    row = volumes.convert_case(case, tmp_path, plan, types.SimpleNamespace(), tmp_path / "out", {})
    img = nib.load(tmp_path / "out" / row["image"])
    lab = nib.load(tmp_path / "out" / row["mask"])
    assert isinstance(img, nib.Nifti1Image) and "".join(nib.aff2axcodes(img.affine)) == "RAS"
    assert row["orientation_in"] == "SAR" and row["mask_labels"] == "1"
    written, affine = np.asanyarray(img.dataobj), img.affine
    stored = volumes.compact(vol.array)  # MINC's scaled floats: int16 where whole, else float32
    assert sorted(written.shape) == sorted(vol.array.shape)
    for ijk in [(0, 0, 0), (3, 5, 7), tuple(s - 1 for s in vol.array.shape)]:
        point = (vol.affine @ np.r_[ijk, 1.0])[:3]
        target = tuple(np.round(np.linalg.solve(affine[:3, :3], point - affine[:3, 3])).astype(int))
        assert written[target] == stored[ijk]
        assert np.asarray(lab.dataobj)[target] == label[ijk]


def test_minc_with_a_bad_spacing_attribute_is_read_with_nibabels_warning():
    with pytest.warns(UserWarning, match="spacing"):
        vol = volumes.read_volume(real("minc2_baddim.mnc"))
    assert vol.array.shape == (10, 10, 10)


@pytest.mark.parametrize("name", ["tiny.mnc", "small.mnc"])
def test_truncated_minc_is_a_case_error_naming_it(tmp_path, name):
    data = real(name).read_bytes()
    bad = tmp_path / "cut.mnc"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaseError) as err:
        volumes.read_volume(bad)
    assert err.value.path == str(bad) and err.value.reason


def test_hdf5_that_is_not_minc2_is_a_case_error(tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.mnc", "w") as fh:
        fh["data"] = np.zeros((2, 2, 2))
    with pytest.raises(CaseError) as err:
        volumes.read_volume(tmp_path / "other.mnc")
    assert err.value.path == str(tmp_path / "other.mnc")


def test_gzipped_minc1_is_read(tmp_path):
    """nibabel accepts whole-file gzip for MINC1 (not MINC2)."""
    (tmp_path / "t.mnc.gz").write_bytes(gzip.compress(real("tiny.mnc").read_bytes(), mtime=0))
    vol = volumes.read_volume(tmp_path / "t.mnc.gz")
    assert np.array_equal(vol.array, volumes.read_volume(real("tiny.mnc")).array)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["tiny.mnc", "small.mnc"]), cut=st.integers(0, 4000), flip=st.integers(0, 6000))
def test_fuzz_minc_raises_only_case_errors(tmp_path, name, cut, flip):
    data = bytearray(real(name).read_bytes())
    data[flip] ^= 0xFF
    (tmp_path / "f.mnc").write_bytes(bytes(data[: len(data) - cut]))
    try:
        vol = volumes.read_volume(tmp_path / "f.mnc")
    except CaseError as exc:
        assert exc.path == str(tmp_path / "f.mnc") and exc.reason
    else:
        assert vol.array.ndim in (3, 4)
