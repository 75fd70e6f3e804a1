"""CheXpert v1.0: train.csv / valid.csv, paths of both release namings, the official valid set,
and the converter on the sample (DATASETS.md section 14; no real file of the release is here)."""

import csv
import io
import shutil

import pandas as pd
import pytest
from medcurate.testing import build, by_id, copy_tree, mirror_of, plan_of, prepared, sample_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate.datasets import chexpert
from medcurate.families import cxr
from medcurate.errors import CaseError, MedcurateError

HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,"
          "Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("chexpert")
    return prepared(mirror_of(base / "mirror", "chexpert"), sample_plan("chexpert"), base / "root")


@pytest.fixture
def editable(root, tmp_path):
    return copy_tree(root, tmp_path / "chexpert")


def test_sample_tables_have_the_real_header_and_conventions(root):
    train = next(root.rglob("train.csv")).read_text().splitlines()
    assert train[0] == HEADER
    assert train[1] == "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,,,,,1.0"
    assert any(",-1.0," in line for line in train) and any(",Lateral,," in line for line in train)
    valid = next(root.rglob("valid.csv")).read_text().splitlines()
    assert valid[0] == HEADER and not any("-1.0" in line for line in valid)


def test_cases_patients_views_labels_and_the_official_split(root):
    cases = by_id(chexpert.cases(root, sample_plan("chexpert")))
    assert len(cases) == 11 and sum(c.problem is not None for c in cases.values()) == 1
    c = cases["patient00002_study2_view1_frontal"]
    assert (c.patient_id, c.split, c.problem) == ("patient00002", "train", None)
    assert c.meta == {"study": "study2", "sex": "Female", "age": "87", "view_position": "AP", "view": "frontal"}
    assert (c.labels["cardiomegaly"], c.labels["h_cardiomegaly"], c.labels["pleural_effusion"], c.labels["h_effusion"]) == \
        ("-1", "-1", "0", "0")
    assert c.labels["pneumonia"] == c.labels["h_pneumonia"] == "" and c.labels["h_nodule"] == ""
    assert c.image.as_posix().endswith("CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg")
    lateral = cases["patient00002_study1_view2_lateral"]
    assert lateral.meta["view"] == "lateral" and lateral.meta["view_position"] == ""
    assert {c.split for c in cases.values() if c.patient_id.startswith("patient6454")} == {"val"}
    orphan = cases["patient00005_study1_view1_frontal"].problem
    assert orphan.reason == "image is listed in neither train.csv nor valid.csv"


def test_full_resolution_naming_and_any_extraction_root(editable):
    """'CheXpert-v1.0/' paths (the full release) read the same; images are found by their last
    four path parts wherever they were extracted."""
    csv_path = next(editable.rglob("train.csv"))
    csv_path.write_text(csv_path.read_text().replace("CheXpert-v1.0-small/", "CheXpert-v1.0/"))
    release = csv_path.parent
    (editable / "batch2").mkdir()
    shutil.move(release / "train", editable / "batch2" / "train")  # as if train came from another zip
    cases = by_id(chexpert.cases(editable, sample_plan("chexpert")))
    c = cases["patient00003_study1_view1_frontal"]
    assert c.problem is None and c.image.as_posix().endswith("batch2/train/patient00003/study1/view1_frontal.jpg")


@pytest.mark.parametrize("line, reason", [
    ("CheXpert-v2/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,,,,,1.0",
     "line 2: Path starts with 'CheXpert-v2', not CheXpert-v1.0-small or CheXpert-v1.0"),
    ("CheXpert-v1.0-small/valid/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,,,,,1.0",
     "line 2: Path is in valid/ but the row is in train.csv"),
    ("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Lateral,AP,1.0,,,,,,,,,,,,,1.0",
     "line 2: Frontal/Lateral 'Lateral' disagrees with the file name view1_frontal.jpg"),
    ("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,,,,,2.0",
     "line 2: label(s) not 1.0/0.0/-1.0/blank: Support Devices='2.0'"),
    ("train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,,,,,1.0",
     "line 2: Path 'train/patient00001/study1/view1_frontal.jpg' is not <release>/<train|valid>/patientNNNNN/studyN/"
     "viewN_<frontal|lateral>.jpg"),
])
def test_row_problems_are_quarantined_naming_the_line(editable, line, reason):
    csv_path = next(editable.rglob("train.csv"))
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([lines[0], line, *lines[2:]]) + "\n")
    bad = [c for c in chexpert.cases(editable, sample_plan("chexpert")) if c.problem and c.problem.path.endswith("train.csv")]
    assert [c.problem.reason for c in bad] == [reason]


def test_missing_table_or_column_fails_naming_it(editable):
    valid = next(editable.rglob("valid.csv"))
    valid.write_text(valid.read_text().replace(",Support Devices", ",Support Device"))
    with pytest.raises(MedcurateError, match=r"valid\.csv: missing column\(s\) \['Support Devices'\]"):
        chexpert.cases(editable, sample_plan("chexpert"))
    valid.unlink()
    with pytest.raises(MedcurateError, match="expected file 'valid.csv' not found"):
        chexpert.cases(editable, sample_plan("chexpert"))


def test_converts_with_valid_as_val_and_test_carved_by_patient(root, tmp_path):
    counts = build(root, plan_of("chexpert"), tmp_path / "work", tmp_path / "out")
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False).set_index("case_id")
    assert counts["cases"] == 10 and counts["quarantined"] == 1
    assert set(m.loc[m.official_split == "val", "split"]) == {"val"} and counts["splits"]["val"]["patients"] == 2
    assert set(m.loc[m.split == "test", "official_split"]) == {"train"}  # test carved from train (sample: 0.45)
    assert m.groupby("patient_id").split.nunique().max() == 1
    assert m.loc["patient00003_study1_view1_frontal", "consolidation"] == "-1"
    assert m.loc["patient00003_study1_view1_frontal", "h_consolidation"] == ""


# ------------------------------------------------------------------ fuzzing (bounded)

CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
PATHS = st.builds(lambda r, f, p, s, v: f"{r}/{f}/{p}/{s}/{v}.jpg",
                  st.sampled_from(["CheXpert-v1.0-small", "CheXpert-v1.0", "x", ""]), st.sampled_from(["train", "valid", "test"]),
                  st.sampled_from(["patient00001", "patient1", "p/../x"]), st.sampled_from(["study1", "study", "s1"]),
                  st.sampled_from(["view1_frontal", "view2_lateral", "view1_oblique", "../x"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(CELL, PATHS, st.sampled_from(["1.0", "-1.0", "0.0", "Frontal", "Lateral"])), max_size=20),
                max_size=5), st.sampled_from(["train.csv", "valid.csv"]))
def test_fuzz_tables_raise_only_medcurate_errors(root, tmp_path_factory, rows, table):
    dest = tmp_path_factory.mktemp("fuzz-chexpert")
    for name in ("train.csv", "valid.csv"):
        shutil.copy(next(root.rglob(name)), dest / name)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (dest / table).write_text(HEADER + "\n" + buf.getvalue())
    try:
        for case in chexpert.cases(dest, sample_plan("chexpert")):
            assert case.problem is None or isinstance(case.problem, CaseError)
            assert "/" not in case.case_id and ".." not in case.case_id.split("_")
            if case.problem is None:
                assert set(case.labels) == set(chexpert.OWN.values()) | set(cxr.columns())
    except MedcurateError as exc:
        assert exc.path and exc.reason


# ------------------------------------------------------------------ the real table (when present)


def test_real_train_csv_parses_with_the_published_counts(realdata, tmp_path):
    """torchxrayvision ships the real CheXpert-v1.0-small train.csv (data/chexpert_train.csv.gz at
    f4087a0); put it anywhere below ../shared/realdata to run this."""
    import gzip

    found = sorted(realdata.rglob("chexpert_train.csv.gz"))
    if not found:
        pytest.skip("chexpert_train.csv.gz is not in ../shared/realdata")
    release = tmp_path / "CheXpert-v1.0-small"
    release.mkdir()
    (release / "train.csv").write_bytes(gzip.decompress(found[0].read_bytes()))
    (release / "valid.csv").write_text(HEADER + "\n")
    cases = chexpert.cases(tmp_path, {})
    assert len(cases) == 223_414 and not any(c.problem for c in cases)
    assert len({c.patient_id for c in cases}) == 64_540
    assert sum(c.meta["view"] == "frontal" for c in cases) == 191_027


def test_a_repeated_row_is_quarantined_not_fatal(editable):
    csv_path = next(editable.rglob("train.csv"))
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([*lines, lines[1]]) + "\n")
    cases = by_id(chexpert.cases(editable, sample_plan("chexpert")))
    assert cases["patient00001_study1_view1_frontal"].problem is None
    assert cases["patient00001_study1_view1_frontal_line9"].problem.reason == \
        "line 9: train/patient00001/study1/view1_frontal.jpg is listed again"
