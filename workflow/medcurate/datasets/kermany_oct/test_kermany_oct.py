"""Kermany OCT: the sample mirror's layout, labels and patients read from the paths (and their
quirks), quarantine, and the converter moving a patient found in both train and test to test. No
real file of this set is in ../shared/realdata, so the formats are the ones this folder's
README.md documents.
"""

import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import splits
from medcurate.datasets import kermany_oct as oct_
from medcurate.errors import CaseError
from medcurate.testing import by_id, convert_and_gather, copy_tree, mirror_of, sample_plan, unpacked

IDS = ("kermany_oct",)


@pytest.fixture(scope="module")
def own_mirror(tmp_path_factory) -> Path:
    return mirror_of(tmp_path_factory.mktemp("cls-mirror"), *IDS)


@pytest.fixture(scope="module")
def roots(own_mirror, tmp_path_factory):
    """Kermany OCT's sample release unpacked the way the workflow does."""
    base = tmp_path_factory.mktemp("cls-roots")
    return {
        "kermany_oct": unpacked(own_mirror, "kermany_oct", base / "kermany_oct"),
    }


def editable(roots, ds: str, tmp_path: Path) -> Path:
    """A copy of a sample root that a test may modify (links resolved)."""
    return copy_tree(roots[ds], tmp_path / ds)


def test_kermany_sample_layout(own_mirror):
    with tarfile.open(own_mirror / "kermany_oct" / "OCT2017.tar.gz") as tf:
        files = [m.name for m in tf.getmembers() if m.isfile()]
        first = Image.open(tf.extractfile(files[0]))
    assert "OCT2017/train/.DS_Store" in files
    images = [f for f in files if f.endswith(".jpeg")]
    assert len(images) == 16 and first.mode == "L" and first.format == "JPEG"
    for name in images:
        top, split, folder, _ = name.split("/")
        assert top == "OCT2017" and split in ("train", "test") and folder in oct_.CLASSES
    assert "OCT2017/train/CNV/DRUSEN-1083159-3.jpeg" in images


def test_kermany_cases_labels_patients_and_quarantine(roots):
    cases = by_id(oct_.cases(roots["kermany_oct"], sample_plan("kermany_oct")))
    assert len(cases) == 16  # the .DS_Store is no case
    c = cases["train_CNV-1016042-2"]
    assert (c.patient_id, c.split, c.labels, c.problem) == ("1016042", "train", {"diagnosis": "CNV"}, None)
    assert cases["test_DME-1072015-5"].patient_id == cases["train_DME-1072015-1"].patient_id == "1072015"
    bad = cases["train_DRUSEN-1083159-3"].problem
    assert bad.reason == "file name says class DRUSEN but the image is in folder CNV/"
    assert bad.path.endswith("OCT2017/train/CNV/DRUSEN-1083159-3.jpeg")
    assert sum(c.problem is not None for c in cases.values()) == 1


@pytest.mark.parametrize("rel, expected", [
    ("OCT2017 /train/NORMAL/NORMAL-1384-3.jpeg", ("train_NORMAL-1384-3", "1384", "train", None)),  # Kaggle's top folder
    ("OCT2017/val/DME/DME-9000-1.jpeg", ("val_DME-9000-1", "9000", "val", None)),
    ("OCT2017/TRAIN/CNV/CNV-1-1.jpeg", ("TRAIN_CNV-1-1", "1", None, "not inside a train/test/val folder (found 'TRAIN')")),
    ("OCT2017/train/AMD/AMD-1-1.jpeg", ("train_AMD-1-1", "1", "train", "class folder 'AMD' is not one of CNV, DME, DRUSEN, NORMAL")),
    ("OCT2017/test/CNV/CNV-154835-1 (2).jpeg", ("test_CNV-154835-1_2", "test_CNV-154835-1_2", "test",
                                                 "file name is not <CLASS>-<patient>-<n>.jpeg")),
    ("OCT2017/test/CNV/cnv-5-1.jpeg", ("test_cnv-5-1", "5", "test", "file name says class cnv but the image is in folder CNV/")),
])
def test_kermany_path_quirks(rel, expected):
    c = oct_.case_for(Path("/data") / rel)
    assert (c.case_id, c.patient_id, c.split, c.problem and c.problem.reason) == expected


def test_kermany_converts_with_the_patient_in_train_and_test_moved_to_test(roots, tmp_path):
    manifest, counts = convert_and_gather(roots["kermany_oct"], "kermany_oct", tmp_path)
    assert counts["cases"] == 15 and counts["quarantined"] == 1
    moved = manifest[manifest.patient_id == "1072015"]
    assert set(moved.split) == {"test"} and set(moved.official_split) == {"train", "test"} and len(moved) == 3
    assert splits.check_disjoint(manifest.reset_index(), "kermany_oct") is None
    assert counts["splits"]["val"]["patients"] == 2 and counts["labels"]["diagnosis"] == {"CNV": 4, "DME": 3, "DRUSEN": 3, "NORMAL": 5}
    out = np.asarray(Image.open(tmp_path / "result" / "images" / "train_CNV-1016042-1.png"))
    src = np.asarray(Image.open(next(roots["kermany_oct"].rglob("CNV-1016042-1.jpeg"))))
    assert out.shape == (48, 64) and np.array_equal(out, src) and out.max() > 150 and out[0, 0] < 40


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                        min_size=1, max_size=12), min_size=3, max_size=3))
def test_fuzz_kermany_paths_never_raise(parts):
    case = oct_.case_for(Path("/data", *parts))
    assert case.problem is None or isinstance(case.problem, CaseError)
    assert case.case_id and "/" not in case.case_id

