"""KiTS19: kits.json, labelled cases only, the permuted (slices, height, width) affine reoriented to
RAS+ with every voxel in its place, lossless int16 imaging, the spacing cross-check, and the
hand-placed repository clone."""

import json
import logging
import shutil
import zipfile

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcurate import volumes
from medcurate.convert import convert_shard
from medcurate.datasets import kits19
from medcurate.datasets.kits19.sample import kits_affine
from medcurate.errors import CaseError, ManualDataError, MedcurateError
from medcurate.manual import prepare
from medcurate.testing import by_id, plan_of, prepared, sample_plan, with_exclusions
from medcurate.unpack import Limits

PIN = "456b293435b25303bbc7995f094f83a0afdff0eb"


@pytest.fixture(scope="module")
def sample(mirror, tmp_path_factory):
    return prepared(mirror, sample_plan("kits19"), tmp_path_factory.mktemp("kits19") / "root")


@pytest.fixture
def root(sample, tmp_path):
    """A writable copy of the sample's data (the prepared root links into the mirror)."""
    shutil.copytree(sample, tmp_path / "root", symlinks=False)
    return tmp_path / "root"


@pytest.fixture
def plan():
    return plan_of("kits19")


def data(root):
    return kits19.find_one(root, "kits.json").parent


# ------------------------------------------------------------------ kits.json


def test_kits_json_records_by_case(sample):
    path = data(sample) / "kits.json"
    records = kits19.parse_kits_json(path.read_text(), path)
    assert sorted(records) == ["case_00000", "case_00001", "case_00002", "case_00003"]
    assert records["case_00001"]["tumor_histologic_subtype"] == "papillary"
    assert kits19.spacing_of(records["case_00001"], path) == (0.919921875, 0.919921875, 5.0)
    assert kits19.spacing_of({"case_id": "case_00009"}, path) is None


@pytest.mark.parametrize("text, reason", [
    ("[{", "not valid JSON"),
    ('{"case_id": "case_00000"}', "expected a JSON list of case records, got dict"),
    ('[{"id": 1}]', "record 0: expected an object with a case_id like 'case_00000'"),
    ('[{"case_id": "case_00000"}, {"case_id": "case_00000"}]', "record 1: case_id 'case_00000' occurs twice"),
])
def test_malformed_kits_json_names_the_file_and_the_reason(text, reason):
    with pytest.raises(MedcurateError) as err:
        kits19.parse_kits_json(text, "data/kits.json")
    assert err.value.path == "data/kits.json" and reason in err.value.reason


def test_malformed_voxel_spacing_names_the_case():
    with pytest.raises(MedcurateError, match="case_00004: voxel_spacing must hold numeric"):
        kits19.spacing_of({"case_id": "case_00004", "voxel_spacing": {"x_spacing": "n/a"}}, "kits.json")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                               ["case_id", "voxel_spacing", "x_spacing", "y_spacing", "z_spacing", "gender"]), inner, max_size=4),
                           max_leaves=12)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=120), json_values.map(json.dumps),
                 st.lists(st.fixed_dictionaries({"case_id": st.sampled_from(["case_00000", "case_00001", "x"]),
                                                 "voxel_spacing": json_values}), max_size=3).map(json.dumps)))
def test_kits_json_parsing_raises_only_medcurate_errors(text):
    try:
        for record in kits19.parse_kits_json(text, "kits.json").values():
            kits19.spacing_of(record, "kits.json")
    except MedcurateError:
        pass


# ------------------------------------------------------------------ the sample


def test_sample_is_the_clone_after_get_imaging(mirror):
    with zipfile.ZipFile(mirror / "kits19" / "manual" / "kits19.zip") as zf:
        names = set(zf.namelist())
        text = zf.read("kits19/data/kits.json").decode()
    assert names == {"kits19/data/kits.json"} | {f"kits19/data/case_0000{i}/{f}" for i in range(4)
                                                for f in ("imaging.nii.gz", "segmentation.nii.gz")} | {"kits19/data/case_00210/imaging.nii.gz"}
    assert text.startswith('[\n  {\n    "case_id": "case_00000",\n    "age_at_nephrectomy": ')


def test_sample_volumes_carry_the_permuted_affine(sample):
    folder = data(sample) / "case_00001"
    image, seg = nib.load(folder / "imaging.nii.gz"), nib.load(folder / "segmentation.nii.gz")
    assert image.shape == seg.shape == (8, 24, 24)  # (slices, height, width)
    assert image.get_data_dtype() == np.float32 and seg.get_data_dtype() == np.uint8
    expected = np.array([[0, 0, -0.919921875, 0], [0, -0.919921875, 0, 0], [-5.0, 0, 0, 0], [0, 0, 0, 1]])
    assert np.array_equal(image.affine, expected) and np.array_equal(seg.affine, expected)
    assert nib.aff2axcodes(image.affine) == ("I", "P", "L")


# ------------------------------------------------------------------ cases


def test_only_labelled_cases_are_enumerated_and_the_rest_counted(sample, plan, caplog):
    with caplog.at_level(logging.INFO, logger="medcurate.datasets.kits19"):
        cases = by_id(kits19.cases(sample, plan))
    assert sorted(cases) == ["case_00000", "case_00001", "case_00002", "case_00003"]
    assert "1 case folder(s) without segmentation.nii.gz (test cases, labels withheld) are not converted" in caplog.text
    case = cases["case_00002"]
    assert case.split == "train" and case.patient_id == "case_00002" and case.problem is None
    assert case.meta == {"age_at_nephrectomy": "55", "gender": "male", "malignant": "0",
                         "tumor_histologic_subtype": "oncocytoma", "spacing_mismatch": 0}


def test_segmentation_without_imaging_is_quarantined_with_the_fix(root, plan):
    (data(root) / "case_00003" / "imaging.nii.gz").unlink()
    problem = by_id(kits19.cases(root, plan))["case_00003"].problem
    assert problem.path.endswith("case_00003/imaging.nii.gz")
    assert "run `python3 -m starter_code.get_imaging` in the kits19 folder" in problem.reason


def test_case_missing_from_kits_json_keeps_empty_clinical_columns(root, plan):
    path = data(root) / "kits.json"
    path.write_text(json.dumps([r for r in json.loads(path.read_text()) if r["case_id"] != "case_00000"]))
    case = by_id(kits19.cases(root, plan))["case_00000"]
    assert case.meta["gender"] == "" and case.spacing is None


def test_no_labelled_case_fails_naming_the_data_folder(root, plan):
    for seg in data(root).glob("case_*/segmentation.nii.gz"):
        seg.unlink()
    with pytest.raises(MedcurateError, match="no case_XXXXX/segmentation.nii.gz below it"):
        kits19.cases(root, plan)


# ------------------------------------------------------------------ conversion


def converted(root, plan, out):
    assert convert_shard(root, plan, 0, 1, out) == {"converted": 4, "quarantined": 0}
    return with_exclusions(out, plan)


def test_permuted_affine_is_reoriented_with_every_voxel_in_place(sample, plan, tmp_path):
    rows = converted(sample, plan, tmp_path)
    row = rows["case_00000"]
    assert row["orientation_in"] == "IPL" and row["spacing"] == "0.78125 0.78125 3"
    assert (row["width"], row["height"], row["depth"]) == ("24", "24", "8")
    src = data(sample) / "case_00000"
    seg_in, img_in = (nib.load(src / n) for n in ("segmentation.nii.gz", "imaging.nii.gz"))
    seg_out, img_out = nib.load(tmp_path / row["mask"]), nib.load(tmp_path / row["image"])
    assert nib.aff2axcodes(seg_out.affine) == ("R", "A", "S")
    assert np.allclose(seg_out.affine[:3, :3], np.diag([0.78125, 0.78125, 3.0]))
    a_in, a_out = np.asarray(seg_in.dataobj), np.asarray(seg_out.dataobj)
    # a known tumour voxel: slice 4, row 12+, the lump's column; the same world point after conversion
    s, r, c = 4, *np.argwhere(a_in[4] == 2)[0]
    world = seg_in.affine @ [s, r, c, 1]
    i, j, k = np.round(np.linalg.inv(seg_out.affine) @ world)[:3].astype(int)
    assert a_out[i, j, k] == 2
    assert np.asarray(img_out.dataobj)[i, j, k] == np.asarray(img_in.dataobj)[s, r, c]
    # the whole reorientation: x = reversed columns, y = reversed rows, z = reversed slices
    assert np.array_equal(a_out, a_in.transpose(2, 1, 0)[::-1, ::-1, ::-1])


def test_imaging_is_written_as_int16_when_lossless(sample, plan, tmp_path):
    rows = converted(sample, plan, tmp_path)
    row = rows["case_00001"]
    assert row["dtype"] == "int16"
    out = np.asarray(nib.load(tmp_path / row["image"]).dataobj)
    src = np.asarray(nib.load(data(sample) / "case_00001" / "imaging.nii.gz").dataobj)
    assert out.dtype == np.int16 and np.array_equal(out, src.transpose(2, 1, 0)[::-1, ::-1, ::-1])
    assert row["malignant"] == "1" and row["tumor_histologic_subtype"] == "papillary"


@pytest.mark.parametrize("values, stored", [
    (np.array([-1024.0, 0.0, 3071.0], np.float32), "int16"),
    (np.array([-1024.0, 0.5], np.float32), "float32"),       # fractional: kept
    (np.array([-40000.0, 0.0], np.float32), "float32"),      # beyond int16: kept
    (np.array([np.nan, 0.0], np.float32), "float32"),        # NaN: kept (convert refuses it, naming the file)
])
def test_int16_only_when_nothing_is_lost(values, stored):
    out = volumes.compact(values)
    assert str(out.dtype) == stored
    if stored == "int16":
        assert np.array_equal(out.astype(np.float32), values)


def test_spacing_disagreeing_with_kits_json_is_flagged_and_excluded(root, plan, tmp_path):
    """The first release had wrong slice thicknesses in its affines: kits.json says 1 mm here."""
    path = data(root) / "kits.json"
    records = json.loads(path.read_text())
    records[1]["voxel_spacing"]["z_spacing"] = 1.0
    path.write_text(json.dumps(records, indent=2))
    rows = converted(root, plan, tmp_path / "out")
    assert rows["case_00001"]["spacing_mismatch"] == "1" and rows["case_00001"]["exclusion"] == "spacing_mismatch"
    assert rows["case_00000"]["spacing_mismatch"] == "0" and rows["case_00000"]["exclusion"] == ""


def test_label_on_another_grid_is_quarantined(root, plan, tmp_path):
    seg = data(root) / "case_00002" / "segmentation.nii.gz"
    img = nib.load(seg)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), kits_affine(0.703125, 5.0)), seg)
    assert convert_shard(root, plan, 0, 1, tmp_path / "out")["quarantined"] == 1
    text = (tmp_path / "out" / "quarantine.csv").read_text()
    assert "case_00002/segmentation.nii.gz" in text and "away from its image's grid" in text


# ------------------------------------------------------------------ the hand-placed clone


def test_catalogue_instructions_pin_the_commit_and_run_get_imaging(plan):
    text = plan["access"]["instructions"]
    assert f"git checkout {PIN}" in text and "python3 -m starter_code.get_imaging" in text
    assert "git clone https://github.com/neheller/kits19" in text
    assert {e["path"] for e in plan["access"]["expected"]} == {
        "data/kits.json", "data/case_00000/segmentation.nii.gz", "data/case_00000/imaging.nii.gz"}


def test_clone_without_images_fails_saying_what_to_run(mirror, plan, tmp_path):
    """A user who cloned but did not run get_imaging.py is told what is missing and what to run."""
    folder = tmp_path / "manual" / "kits19"
    with zipfile.ZipFile(mirror / "kits19" / "manual" / "kits19.zip") as zf:
        zf.extractall(tmp_path / "manual")
    for image in folder.glob("data/case_*/imaging.nii.gz"):
        image.unlink()
    with pytest.raises(ManualDataError) as err:
        prepare({**plan, "manual_dir": str(tmp_path / "manual")}, [], tmp_path / "root", Limits())
    assert "missing file: data/case_00000/imaging.nii.gz" in str(err.value)
    assert "python3 -m starter_code.get_imaging" in str(err.value) and PIN in str(err.value)


def test_unreadable_imaging_is_a_case_error(root, plan):
    path = data(root) / "case_00000" / "imaging.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    case = by_id(kits19.cases(root, plan))["case_00000"]
    with pytest.raises(CaseError) as err:
        kits19.load_volume(case, plan)
    assert err.value.path.endswith("case_00000/imaging.nii.gz")
