"""ACDC: Info.cfg parsing, ED/ES frames picked from Info.cfg and cross-checked against the 4D
series, patient x phase cases, the sample's layout and the zip-bomb quirk, and the conversion."""

import io
import shutil
import zipfile

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import acdc
from medcurate.datasets.acdc.sample import CITATION, info_cfg, nifti_gz
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import by_id, plan_of, sample_plan, unpacked, with_exclusions
from medcurate.unpack import Limits, unpack

# The form of a real Info.cfg (patient001, quoted in mathpluscode/CineMA's README).
REAL_FORM = "ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n"
TRAIN = "ACDC/ACDC/database/training"


@pytest.fixture(scope="module")
def sample(mirror, tmp_path_factory):
    return unpacked(mirror, "acdc", tmp_path_factory.mktemp("acdc") / "root")


@pytest.fixture
def root(sample, tmp_path):
    """A copy of the unpacked sample that a test may damage."""
    return shutil.copytree(sample, tmp_path / "root")


@pytest.fixture
def plan():
    return plan_of("acdc")


# ------------------------------------------------------------------ Info.cfg


def test_info_cfg_in_the_real_form_parses_without_loss():
    info = acdc.parse_info(REAL_FORM, "Info.cfg")
    assert info == {"ED": "1", "ES": "12", "Group": "DCM", "Height": "184.0", "NbFrame": "30", "Weight": "95.0"}
    assert list(info) == list(acdc.KEYS)


def test_info_cfg_tolerates_crlf_bom_and_blank_lines():
    text = "\ufeff" + REAL_FORM.replace("\n", "\r\n") + "\r\n"
    assert acdc.parse_info(text, "Info.cfg")["Weight"] == "95.0"


def test_sample_info_cfg_is_byte_identical_to_the_real_form():
    assert info_cfg(1, 12, "DCM", 184.0, 30, 95.0).decode() == REAL_FORM


@pytest.mark.parametrize("text, reason", [
    ("ED 1\n", "line 1: expected 'key: value'"),
    (REAL_FORM + "ED: 2\n", "line 7: key 'ED' given twice"),
    (REAL_FORM.replace("Group: DCM\n", ""), "missing key(s) ['Group']"),
    (REAL_FORM.replace("ES: 12", "ES: twelve"), "ES must be a positive integer, got 'twelve'"),
    (REAL_FORM.replace("ED: 1", "ED: 0"), "ED must be a positive integer, got '0'"),
    (REAL_FORM.replace("Height: 184.0", "Height: tall"), "Height must be a number, got 'tall'"),
    (REAL_FORM.replace("ES: 12", "ES: 31"), "ES frame 31 is beyond NbFrame 30"),
])
def test_malformed_info_cfg_names_the_file_and_the_reason(text, reason):
    with pytest.raises(CaseError) as err:
        acdc.parse_info(text, "patient042/Info.cfg")
    assert err.value.path == "patient042/Info.cfg" and reason in err.value.reason


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.lists(st.sampled_from([*(f"{k}: " for k in acdc.KEYS), "1", "12", "0", "-3", "1e3", "NOR", "\n", ":", " "]),
                          max_size=40).map("".join)))
def test_info_cfg_parser_raises_only_case_errors(text):
    try:
        info = acdc.parse_info(text, "Info.cfg")
    except CaseError:
        return
    assert 1 <= int(info["ED"]) <= int(info["NbFrame"]) and 1 <= int(info["ES"]) <= int(info["NbFrame"])


# ------------------------------------------------------------------ the sample archive


def test_sample_zip_has_the_collection_layout(mirror):
    with zipfile.ZipFile(mirror / "acdc" / "ACDC.zip") as zf:
        names = set(zf.namelist())
        info = {i.filename: i for i in zf.infolist()}
        cfg = zf.read("ACDC/database/training/patient003/Info.cfg").decode()
    assert "ACDC/database/MANDATORY_CITATION.md" in names
    for patient, folder, frames in [("patient001", "training", (1, 4)), ("patient002", "training", (1, 3)),
                                    ("patient003", "training", (2, 5)), ("patient101", "testing", (1, 4))]:
        base = f"ACDC/database/{folder}/{patient}/"
        expected = {base + n for n in ("Info.cfg", "MANDATORY_CITATION.md", f"{patient}_4d.nii.gz")}
        expected |= {base + f"{patient}_frame{f:02d}{gt}.nii.gz" for f in frames for gt in ("", "_gt")}
        assert expected == {n for n in names if n.startswith(base)}
    assert cfg == "ED: 2\nES: 5\nGroup: MINF\nHeight: 175.0\nNbFrame: 6\nWeight: 78.5\n"  # ED/ES not 1/N
    assert all(i.compress_type == zipfile.ZIP_STORED for n, i in info.items() if n.endswith(".nii.gz"))
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for n, i in info.items() if n.endswith((".cfg", ".md")))


def test_sample_volumes_are_4d_series_and_ring_labels(sample):
    folder = sample / TRAIN / "patient003"
    series = nib.load(folder / "patient003_4d.nii.gz")
    assert series.shape == (16, 16, 4, 6)
    gt = np.asarray(nib.load(folder / "patient003_frame02_gt.nii.gz").dataobj)
    assert gt.dtype == np.uint8 and set(np.unique(gt)) == {0, 1, 2, 3}
    # concentric: LV (3) at the centre, myocardium (2) around it, RV (1) beside it, background at the corner
    assert gt[6, 7, 0] == 3 and gt[6, 3, 0] == 2 and gt[13, 7, 0] == 1 and gt[0, 0, 0] == 0


def test_zip_with_many_highly_compressible_members_unpacks_with_default_limits(mirror, tmp_path):
    """Info-ZIP's unzip refuses the real ACDC.zip as a possible zip bomb. Ours (Python zipfile)
    checks ratios only above 16 MiB and per archive: the sample and a zip shaped like the full
    release (150 patients' Info.cfg and MANDATORY_CITATION.md deflated, .nii.gz stored) pass."""
    unpack([mirror / "acdc" / "ACDC.zip"], tmp_path / "sample", limits=Limits())
    assert len(acdc.cases(tmp_path / "sample", sample_plan("acdc"))) == 8
    members = {}
    for n in range(1, 151):
        folder = "training" if n <= 100 else "testing"
        base = f"ACDC/database/{folder}/patient{n:03d}/"
        members[base + "Info.cfg"] = info_cfg(1, 12, "NOR", 170.0, 30, 70.0)
        members[base + "MANDATORY_CITATION.md"] = CITATION * 50  # highly compressible
        members[base + f"patient{n:03d}_4d.nii.gz"] = nifti_gz(np.zeros((4, 4, 2, 3), np.int16), np.eye(4))
    big = tmp_path / "ACDC.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED)
    big.write_bytes(buf.getvalue())
    ratios = [i.file_size / i.compress_size for i in zipfile.ZipFile(big).infolist() if i.filename.endswith(".md")]
    assert min(ratios) > 20  # members far more compressible than the archive as a whole
    unpack([big], tmp_path / "full", limits=Limits())
    assert len(list((tmp_path / "full").rglob("Info.cfg"))) == 150


# ------------------------------------------------------------------ cases


def test_cases_are_patient_by_phase_with_frames_from_info_cfg(sample, plan):
    cases = by_id(acdc.cases(sample, plan))
    assert sorted(cases) == [f"{p}_{ph}" for p in ("patient001", "patient002", "patient003", "patient101") for ph in ("ED", "ES")]
    ed, es = cases["patient003_ED"], cases["patient003_ES"]
    assert ed.image.name == "patient003_frame02.nii.gz" and ed.mask.name == "patient003_frame02_gt.nii.gz"
    assert es.image.name == "patient003_frame05.nii.gz" and es.frame == 5
    assert ed.patient_id == es.patient_id == "patient003"
    assert ed.labels == {"group": "MINF", "phase": "ED"}
    assert ed.meta == {"frame": 2, "patient_height": "175.0", "patient_weight": "78.5", "nb_frames": 6}
    assert {c.split for c in cases.values() if c.patient_id == "patient101"} == {"test"}
    assert {c.split for c in cases.values() if c.patient_id != "patient101"} == {"train"}
    assert all(c.problem is None for c in cases.values())


def test_the_folder_download_layout_without_acdc_top_folder_works(sample, tmp_path, plan):
    shutil.copytree(sample / "ACDC" / "ACDC" / "database", tmp_path / "database")
    assert len(acdc.cases(tmp_path, plan)) == 8


def test_no_patient_folder_fails_naming_the_root(tmp_path, plan):
    (tmp_path / "database").mkdir()
    with pytest.raises(MedcurateError, match="no training/patientNNN or testing/patientNNN folder"):
        acdc.cases(tmp_path, plan)


def test_frame_named_by_info_cfg_but_missing_quarantines_that_phase(root, plan):
    cfg = root / TRAIN / "patient002" / "Info.cfg"
    cfg.write_text(cfg.read_text().replace("ES: 3", "ES: 6"))
    cases = by_id(acdc.cases(root, plan))
    problem = cases["patient002_ES"].problem
    assert problem.path.endswith("patient002_frame06.nii.gz")
    assert "Info.cfg gives ES = frame 6, but patient002_frame06.nii.gz is not in patient002/" in problem.reason
    assert cases["patient002_ED"].problem is None


def test_missing_ground_truth_quarantines_the_case(root, plan):
    (root / TRAIN / "patient001" / "patient001_frame04_gt.nii.gz").unlink()
    problem = by_id(acdc.cases(root, plan))["patient001_ES"].problem
    assert problem.path.endswith("patient001_frame04_gt.nii.gz") and "missing" in problem.reason


def test_missing_or_malformed_info_cfg_quarantines_both_phases(root, plan):
    (root / TRAIN / "patient001" / "Info.cfg").unlink()
    (root / TRAIN / "patient002" / "Info.cfg").write_text("ED: 1\nES 3\n")
    cases = by_id(acdc.cases(root, plan))
    for phase in ("ED", "ES"):
        assert cases[f"patient001_{phase}"].problem.reason == "Info.cfg is missing from the patient folder"
        assert cases[f"patient002_{phase}"].problem.reason == "line 2: expected 'key: value', got 'ES 3'"
        assert cases[f"patient002_{phase}"].problem.path.endswith("patient002/Info.cfg")


def test_frame_file_differing_from_the_4d_frame_is_quarantined(root, plan):
    """Info.cfg says ES = 4, but the file holds frame 3 of the series: caught by the cross-check."""
    folder = root / TRAIN / "patient001"
    series = nib.load(folder / "patient001_4d.nii.gz")
    wrong = np.asarray(series.dataobj)[..., 2]
    (folder / "patient001_frame04.nii.gz").write_bytes(nifti_gz(wrong, series.affine))
    case = by_id(acdc.cases(root, plan))["patient001_ES"]
    with pytest.raises(CaseError) as err:
        acdc.load_volume(case, plan)
    assert err.value.path.endswith("patient001_frame04.nii.gz")
    assert "differs from frame 4 (t index 3) of patient001_4d.nii.gz" in err.value.reason


def test_nbframe_disagreeing_with_the_4d_series_is_quarantined(root, plan):
    cfg = root / TRAIN / "patient003" / "Info.cfg"
    cfg.write_text(cfg.read_text().replace("NbFrame: 6", "NbFrame: 7"))
    case = by_id(acdc.cases(root, plan))["patient003_ED"]
    with pytest.raises(CaseError) as err:
        acdc.load_volume(case, plan)
    assert err.value.path.endswith("patient003_4d.nii.gz") and "has 6 frames but Info.cfg says NbFrame: 7" in err.value.reason


def test_truncated_4d_series_names_the_file(root, plan):
    path = root / TRAIN / "patient002" / "patient002_4d.nii.gz"
    path.write_bytes(path.read_bytes()[:300])
    case = by_id(acdc.cases(root, plan))["patient002_ED"]
    with pytest.raises(CaseError) as err:
        acdc.load_volume(case, plan)
    assert err.value.path.endswith("patient002_4d.nii.gz")


# ------------------------------------------------------------------ conversion


def test_converter_on_the_sample_writes_volumes_with_known_voxels(sample, plan, tmp_path):
    result = convert_shard(sample, plan, 0, 1, tmp_path)
    assert result == {"converted": 8, "quarantined": 0}
    rows = with_exclusions(tmp_path, plan)
    row = rows["patient003_ES"]
    assert (row["group"], row["phase"], row["frame"], row["nb_frames"]) == ("MINF", "ES", "5", "6")
    assert (row["patient_height"], row["patient_weight"], row["height"], row["depth"]) == ("175.0", "78.5", "16", "4")
    assert row["orientation_in"] == "RAS" and row["spacing"] == "1.5625 1.5625 10" and row["mask_labels"] == "1 2 3"
    assert row["source"].endswith("training/patient003/patient003_frame05.nii.gz") and row["exclusion"] == ""
    label = np.asarray(nib.load(tmp_path / row["mask"]).dataobj)
    image = np.asarray(nib.load(tmp_path / row["image"]).dataobj)
    series = np.asarray(nib.load(sample / TRAIN / "patient003" / "patient003_4d.nii.gz").dataobj)
    # the sample is already RAS: voxels stay where they are; the image is frame ES-1 of the series
    assert label[6, 7, 0] == 3 and label[6, 4, 0] == 2 and label[6, 3, 0] == 0 and label[13, 7, 0] == 1
    assert np.array_equal(image, series[..., 4]) and image.dtype == np.int16


def test_every_case_of_the_sample_enumerates_once(sample, plan):
    ids = [c.case_id for c in enumerate_cases(sample, plan)]
    assert len(ids) == len(set(ids)) == 8
