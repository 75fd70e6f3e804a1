"""MURA: the header-less CSVs and study labels (bad lines named, fuzzed), the sample's layout,
AppleDouble junk quarantined, images decoded as grey, labels disagreeing with the folder, listed
missing or unlisted images, and paths of the other split. No real file of this set is in
../shared/realdata: the formats are checked against the documented facts written into the sample.
"""

import csv
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import mura
from medcurate.errors import MedcurateError
from medcurate.testing import by_id, copy_tree, plan_of


def quarantine(out):
    return {r["case_id"]: r for r in csv.DictReader((out / "quarantine.csv").open())}


def manifest(out):
    return {r["case_id"]: r for r in csv.DictReader((out / "part.csv").open())}


@pytest.fixture
def plans():
    return {ds: plan_of(ds) for ds in ("mura",)}


@pytest.fixture(scope="module")
def mura_root(sample_root):
    return sample_root("mura")


@pytest.fixture
def mura_copy(mura_root, tmp_path):
    return copy_tree(mura_root, tmp_path / "mura")  # links followed: the copy\'s files can be edited


def release(root):
    return next(root.rglob("train_image_paths.csv")).parent


def test_mura_csvs_without_header():
    paths = mura.parse_image_paths("MURA-v1.1/train/XR_WRIST/patient00002/study1_negative/image1.png\n\n"
                                   "MURA-v1.1/train/XR_WRIST/patient00002/study1_negative/image2.png\n", "p.csv")
    assert [(p.rel, p.line) for p in paths] == [("train/XR_WRIST/patient00002/study1_negative/image1.png", 1),
                                                ("train/XR_WRIST/patient00002/study1_negative/image2.png", 3)]
    studies = mura.parse_labeled_studies("MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/,1\n"
                                         "MURA-v1.1/valid/XR_HAND/patient11186/study1_negative/,0\n", "s.csv")
    assert studies == {"valid/XR_WRIST/patient11185/study1_positive": ("1", 1),
                       "valid/XR_HAND/patient11186/study1_negative": ("0", 2)}


@pytest.mark.parametrize("text, reason", [
    ("MURA-v1.1/train/XR_HAND/patient1/study1_positive/,2\n", "line 1: label must be 0 or 1, got '2'"),
    ("MURA-v1.1/train/XR_HAND/patient1/study1_positive/\n", "line 1: expected '<study path>/,<0|1>'"),
    ("x,1\n", "line 1: expected '<study path>/,<0|1>'"),
    ("MURA-v1.1/train/a/,1\nMURA-v1.1/train/a/,0\n", "line 2: study train/a is labelled 0 here but 1 on line 1"),
])
def test_mura_bad_labeled_studies_name_the_line(text, reason):
    with pytest.raises(MedcurateError, match=reason) as err:
        mura.parse_labeled_studies(text, "train_labeled_studies.csv")
    assert err.value.path == "train_labeled_studies.csv"


def test_mura_bad_image_path_names_the_line():
    with pytest.raises(MedcurateError, match="line 2: expected one path"):
        mura.parse_image_paths("MURA-v1.1/train/a.png\nMURA-v1.1/train/b.png,1\n", "train_image_paths.csv")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["MURA-v1.1/", "train/", "XR_WRIST/", "patient00001/", "study1_positive/", "image1.png",
                                 ",", "0", "1", "\n", "\"", " ", "\r", "\ufeff", "._", "\x00"]), max_size=40).map("".join))
def test_mura_parsers_fuzz_raise_only_medcurate_errors(text):
    for parse in (mura.parse_image_paths, mura.parse_labeled_studies):
        try:
            parse(text, "fuzz.csv")
        except MedcurateError as exc:
            assert exc.path == "fuzz.csv" and exc.reason  # the error names the file and the reason


def test_mura_sample_layout(mirror):
    with zipfile.ZipFile(mirror / "mura" / "manual" / "MURA-v1.1.zip") as zf:
        names = zf.namelist()
        csvs = {n.rsplit("/", 1)[1]: zf.read(n).decode() for n in names if n.endswith(".csv")}
    assert sorted(csvs) == ["train_image_paths.csv", "train_labeled_studies.csv", "valid_image_paths.csv",
                            "valid_labeled_studies.csv"]
    for text in csvs.values():  # no header: every line is data
        assert all(line.startswith("MURA-v1.1/") for line in text.splitlines())
    assert all(line.endswith(("/,0", "/,1")) for line in csvs["train_labeled_studies.csv"].splitlines())
    junk = [n for n in names if n.rsplit("/", 1)[1].startswith("._")]
    assert len(junk) == 3 and all("/XR_WRIST/" in n for n in junk)
    assert not any("._" in text for text in csvs.values())
    assert "MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png" in csvs["valid_image_paths.csv"]


def test_mura_cases_labels_splits_and_junk(mura_root, plans):
    cases = by_id(enumerate_cases(mura_root, plans["mura"]))
    good = {k: c for k, c in cases.items() if c.problem is None}
    assert len(good) == 10 and len(cases) == 13
    shoulder = good["XR_SHOULDER_patient00001_study1_positive_image2"]
    assert shoulder.labels == {"abnormal": "1", "study_type": "XR_SHOULDER"} and shoulder.patient_id == "patient00001"
    assert shoulder.split == "train" and shoulder.subset == "train"
    assert good["XR_WRIST_patient11185_study1_positive_image1"].split == "test"  # public valid = de-facto test
    # one patient, two studies, each image labelled by its own study
    assert good["XR_WRIST_patient00002_study1_negative_image1"].labels["abnormal"] == "0"
    assert good["XR_WRIST_patient00002_study2_positive_image1"].labels["abnormal"] == "1"
    junk = [c for c in cases.values() if c.problem is not None]
    assert len(junk) == 3 and all(c.problem.reason == mura.JUNK and c.image.name.startswith("._") for c in junk)
    assert {c.patient_id for c in junk} == {"patient00002"}


def test_mura_junk_is_quarantined_and_images_decoded_as_grey(mura_root, plans, tmp_path):
    convert_shard(mura_root, plans["mura"], 0, 1, tmp_path)
    q = quarantine(tmp_path)
    assert len(q) == 3 and {r["reason"] for r in q.values()} == {mura.JUNK}
    assert all(r["source"].endswith(("._image1.png", "._image2.png")) and "XR_WRIST" in r["source"] for r in q.values())
    rows = manifest(tmp_path)
    assert len(rows) == 10
    rgb_saved = np.asarray(Image.open(tmp_path / "images" / "XR_WRIST_patient00002_study1_negative_image2.png"))
    assert rgb_saved.ndim == 2 and rgb_saved[2, 2] == 12 and rgb_saved.max() == 230  # saved RGB, written as L


def test_mura_label_disagreeing_with_folder_is_quarantined(mura_copy, plans):
    studies = release(mura_copy) / "train_labeled_studies.csv"
    text = studies.read_text().replace("patient00003/study1_negative/,0", "patient00003/study1_negative/,1")
    studies.write_text(text)
    cases = by_id(enumerate_cases(mura_copy, plans["mura"]))
    problem = cases["XR_ELBOW_patient00003_study1_negative_image1"].problem
    assert problem.path == str(studies)
    assert "study train/XR_ELBOW/patient00003/study1_negative/ is labelled 1 but its folder says 'negative' (0)" in problem.reason
    assert cases["XR_SHOULDER_patient00001_study1_positive_image1"].problem is None


def test_mura_listed_missing_unlisted_and_unlabelled_images_are_quarantined(mura_copy, plans):
    base = release(mura_copy)
    (base / "train/XR_SHOULDER/patient00001/study1_positive/image3.png").unlink()
    shutil.copy(base / "train/XR_ELBOW/patient00003/study1_negative/image1.png",
                base / "train/XR_ELBOW/patient00003/study1_negative/image9.png")
    stray = base / "valid/XR_HAND/patient11186/study1_negative/image1.png"
    stray.parent.mkdir(parents=True)
    shutil.copy(base / "train/XR_ELBOW/patient00003/study1_negative/image1.png", stray)
    with open(base / "valid_image_paths.csv", "a") as fh:
        fh.write("MURA-v1.1/valid/XR_HAND/patient11186/study1_negative/image1.png\n")
    cases = by_id(enumerate_cases(mura_copy, plans["mura"]))
    assert cases["XR_SHOULDER_patient00001_study1_positive_image3"].problem.reason == \
        "listed on line 3 of train_image_paths.csv but missing"
    assert cases["XR_ELBOW_patient00003_study1_negative_image9"].problem.reason == \
        "present but not listed in train_image_paths.csv"
    assert "study valid/XR_HAND/patient11186/study1_negative/ of image1.png is not in valid_labeled_studies.csv" in \
        cases["XR_HAND_patient11186_study1_negative_image1"].problem.reason


def test_mura_path_of_the_other_split_is_a_dataset_error(mura_copy, plans):
    with open(release(mura_copy) / "train_image_paths.csv", "a") as fh:
        fh.write("MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png\n")
    with pytest.raises(MedcurateError, match="line 9: valid/XR_WRIST/.* is not in the train set"):
        mura.cases(mura_copy, plans["mura"])
