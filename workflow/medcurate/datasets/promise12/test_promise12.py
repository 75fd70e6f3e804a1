"""PROMISE12: the sample's layout and MetaImage headers (as SimpleITK writes them), case
enumeration and its quirks, and the converter end to end on the unpacked sample (voxels checked
at known positions through the reorientation, the nnU-Net layout). No real PROMISE12 file is in
../shared/realdata, so there is no real-file test."""

import csv
import io
import json
import shutil
import zipfile

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medcurate import volumes
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import promise12
from medcurate.datasets.promise12 import sample
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import build, plan_of, sample_plan, unpacked

KEYS = ["ObjectType", "NDims", "BinaryData", "BinaryDataByteOrderMSB", "CompressedData", "TransformMatrix", "Offset",
        "CenterOfRotation", "AnatomicalOrientation", "ElementSpacing", "DimSize", "ElementType", "ElementDataFile"]


@pytest.fixture(scope="module")
def root(mirror, tmp_path_factory):
    return unpacked(mirror, "promise12", tmp_path_factory.mktemp("p12") / "root")


@pytest.fixture
def plan():
    return plan_of("promise12")


def members(mirror):
    with zipfile.ZipFile(mirror / "promise12" / "training_data.zip") as zf:
        return {n: zf.read(n) for n in zf.namelist()}


# ------------------------------------------------------------------ the sample


def test_sample_layout(mirror):
    files = members(mirror)
    assert sorted(files) == [f"training_data/Case0{i}{part}" for i in range(4)
                             for part in (".mhd", ".raw", "_segmentation.mhd", "_segmentation.raw")]
    assert (mirror / "promise12" / "training_data.zip").stat().st_size < 250_000
    for name, data in files.items():
        if name.endswith(".mhd"):
            header = dict(line.split(" = ", 1) for line in data.decode().splitlines())
            assert list(header) == KEYS
            assert header["ElementType"] == ("MET_CHAR" if "_segmentation" in name else "MET_SHORT")
            assert header["ElementDataFile"] == name.rsplit("/", 1)[1].replace(".mhd", ".raw")
            size = 1 if "_segmentation" in name else 2
            assert len(files[name.replace(".mhd", ".raw")]) == 24 * 24 * 6 * size
    assert "ElementSpacing = 0.2734375 0.2734375 2.2000000000000002\n" in files["training_data/Case01.mhd"].decode()  # anisotropic, %.17g
    assert "TransformMatrix = 1 0 0 0 0.97814760073380569 0.20791169081775934" in files["training_data/Case02.mhd"].decode()


def test_sample_headers_are_what_simpleitk_writes(mirror, tmp_path):
    """The builder writes headers by hand (no SimpleITK-version drift in the mirror's bytes); they
    must equal what SimpleITK's own writer gives for the same geometry."""
    files = members(mirror)
    for case in ("Case00", "Case02", "Case03"):
        (tmp_path / f"{case}.mhd").write_bytes(files[f"training_data/{case}.mhd"])
        (tmp_path / f"{case}.raw").write_bytes(files[f"training_data/{case}.raw"])
        spacing, matrix = sample.CASES[case]
        img = sitk.GetImageFromArray(np.zeros((6, 24, 24), np.int16))
        img.SetSpacing(spacing)
        img.SetDirection(tuple(np.asarray(matrix, float).reshape(3, 3).T.ravel()))  # columns -> row-major
        img.SetOrigin(tuple(-0.5 * d * s for d, s in zip(sample.DIMS, spacing)))
        sitk.WriteImage(img, str(tmp_path / f"w_{case}.mhd"))
        written = (tmp_path / f"w_{case}.mhd").read_text().replace(f"w_{case}.raw", f"{case}.raw")
        assert written == files[f"training_data/{case}.mhd"].decode()


def test_sample_is_deterministic(mirror, tmp_path):
    again = sample.promise12(tmp_path)
    assert again[0].read_bytes() == (mirror / "promise12" / "training_data.zip").read_bytes()


# ------------------------------------------------------------------ cases


def test_cases_of_the_sample(root, plan):
    cases = promise12.cases(root, plan)
    assert [c.case_id for c in cases] == ["Case00", "Case01", "Case02", "Case03"]
    for c in cases:
        assert c.patient_id == c.case_id and c.split is None and c.problem is None and c.subset == "training_data"
        assert c.image.name == f"{c.case_id}.mhd" and c.mask.name == f"{c.case_id}_segmentation.mhd"


def test_unpaired_files_are_quarantined_not_dropped(root, plan, tmp_path):
    work = tmp_path / "root"
    shutil.copytree(root, work)
    data = next(work.rglob("Case00.mhd")).parent
    (data / "Case01_segmentation.mhd").unlink()
    (data / "Case02.mhd").unlink()
    (data / "case07.mhd").write_bytes((data / "Case03.mhd").read_bytes())  # lower-case name, no label
    by_id = {c.case_id: c for c in promise12.cases(work, plan)}
    assert sorted(by_id) == ["Case00", "Case01", "Case02", "Case03", "Case07"]
    assert "image without its segmentation Case01_segmentation.mhd" in by_id["Case01"].problem.reason
    assert by_id["Case02"].problem.path == str(data / "Case02_segmentation.mhd")
    assert "segmentation without its image" in by_id["Case02"].problem.reason
    assert by_id["Case07"].problem.path == str(data / "case07.mhd")


def test_layout_errors_name_the_root(plan, tmp_path):
    with pytest.raises(MedcurateError, match="no CaseNN.mhd"):
        promise12.cases(tmp_path, plan)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "Case00.mhd").write_text("x")
    with pytest.raises(MedcurateError, match="Case00.mhd found twice"):
        promise12.cases(tmp_path, plan)


# ------------------------------------------------------------------ conversion


def raw_volume(root, name, dtype):
    """The sample's raw voxels as (x, y, z), read without SimpleITK."""
    return np.fromfile(next(root.rglob(name)), dtype).reshape(6, 24, 24).transpose(2, 1, 0)


@pytest.fixture(scope="module")
def converted(root, tmp_path_factory):
    plan = sample_plan("promise12")
    out = tmp_path_factory.mktemp("results") / "promise12"
    counts = build(root, plan, tmp_path_factory.mktemp("work"), out, shards=2)
    return out, counts


def test_converted_manifest(converted):
    out, counts = converted
    assert counts["cases"] == counts["curated"] == 4 and counts["quarantined"] == 0
    rows = {r["case_id"]: r for r in csv.DictReader(io.StringIO((out / "manifest.csv").read_text()))}
    assert {k: r["orientation_in"] for k, r in rows.items()} == {"Case00": "LPS", "Case01": "LPS", "Case02": "LPS", "Case03": "LAI"}
    assert rows["Case01"]["spacing"] == "0.2734375 0.2734375 2.2" and rows["Case03"]["spacing"] == "0.625 0.625 4"
    assert {r["split"] for r in rows.values()} == {"train", "val", "test"}
    assert all(r["cleaning"] == "label_dtype:int8->uint8" and r["dtype"] == "int16" and r["mask_labels"] == "1" for r in rows.values())
    assert rows["Case03"]["image"].startswith("nnunet/images") and rows["Case03"]["source"].endswith("training_data/Case03.mhd")


def test_converted_voxels_at_known_positions(root, converted):
    out, _ = converted
    manifest = (out / "manifest.csv").read_text()
    row = next(line.split(",") for line in manifest.splitlines() if line.startswith("Case03,"))
    image = nib.load(out / row[4])
    label = nib.load(out / row[5])
    assert "".join(nib.aff2axcodes(image.affine)) == "RAS" and image.shape == label.shape == (24, 24, 6)
    raw_image = raw_volume(root, "Case03.raw", "<i2")
    raw_label = raw_volume(root, "Case03_segmentation.raw", "i1")
    img, lab = np.asarray(image.dataobj), np.asarray(label.dataobj)
    # Case03 is stored with i towards the left (LPS x), rows and slices flipped: i and k are reversed
    assert np.array_equal(img, raw_image[::-1, :, ::-1]) and np.array_equal(lab, raw_label[::-1, :, ::-1])
    hdr = sitk.ReadImage(str(next(root.rglob("Case03.mhd"))))
    for ijk in [(0, 0, 0), (5, 17, 2), (12, 12, 3)]:
        lps = hdr.TransformIndexToPhysicalPoint(ijk)  # world position of a raw voxel
        target = np.round(np.linalg.solve(image.affine[:3, :3], np.array([-lps[0], -lps[1], lps[2]]) - image.affine[:3, 3])).astype(int)
        assert img[tuple(target)] == raw_image[ijk]
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, 1} and lab.sum() == raw_label.sum()


def test_converted_nnunet_folder(converted):
    out, _ = converted
    info = json.loads((out / "nnunet" / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "T2"} and info["labels"] == {"background": 0, "prostate": 1}
    assert info["numTraining"] == len(list((out / "nnunet" / "imagesTr").glob("*_0000.nii.gz"))) == 3
    folds = json.loads((out / "nnunet" / "splits_final.json").read_text())
    assert folds[0] == {"train": ["Case00", "Case03"], "val": ["Case01"]} and len(folds) == 5
    assert all(sorted(f["train"] + f["val"]) == ["Case00", "Case01", "Case03"] for f in folds)
    assert sorted(p.name for p in (out / "nnunet" / "imagesTs").iterdir()) == ["Case02_0000.nii.gz"]
    assert not (out / "volumes").exists()
    sums = dict(reversed(line.split("  ", 1)) for line in (out / "SHA256SUMS").read_text().splitlines())
    assert "nnunet/labelsTs/Case02.nii.gz" in sums and "qc/montage.png" in sums


def test_a_truncated_raw_is_quarantined_with_its_name(root, plan, tmp_path):
    work = tmp_path / "root"
    shutil.copytree(root, work)
    raw = next(work.rglob("Case01.raw"))
    raw.write_bytes(raw.read_bytes()[:1000])
    shard = tmp_path / "shard"
    assert len(enumerate_cases(work, plan)) == 4
    assert convert_shard(work, plan, 0, 1, shard) == {"converted": 3, "quarantined": 1}
    quarantine = (shard / "quarantine.csv").read_text()
    assert 'Case01,Case01,training_data/training_data/Case01.raw,"data file is truncated: 1000 bytes, expected 6912' in quarantine


def test_label_outside_the_catalogue_is_quarantined(root, plan, tmp_path):
    work = tmp_path / "root"
    shutil.copytree(root, work)
    raw = next(work.rglob("Case02_segmentation.raw"))
    data = bytearray(raw.read_bytes())
    data[0] = 2  # a second structure the catalogue does not name
    raw.write_bytes(bytes(data))
    case = {c.case_id: c for c in promise12.cases(work, plan)}["Case02"]
    with pytest.raises(CaseError) as err:
        volumes.convert_case(case, work, plan, promise12, tmp_path / "out", {})
    assert err.value.path == str(case.mask) and "label values [2]" in err.value.reason
