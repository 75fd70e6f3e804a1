"""PadChest: the gzipped labels table with Python-list Labels, 16-bit PNGs over numbered zips,
the known unreadable images, and the converter on the sample (DATASETS.md section 15; no real
file of the release is here)."""

import csv
import gzip
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from medcurate.testing import build, by_id, copy_tree, mirror_of, plan_of, prepared, sample_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate.datasets import padchest
from medcurate.errors import CaseError, MedcurateError
from PIL import Image

TABLE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
EFFUSION = "216840111366964012558082906712009300162151055_00-078-079"
TRUNCATED = "216840111366964012373310883942009152114636712_00-102-045"
MISSING = "216840111366964012819207061112010307142602253_04-014-084"
NAN_LABELS = "216840111366964012989926673512011074122523406_00-163-061"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("padchest")
    return prepared(mirror_of(base / "mirror", "padchest"), sample_plan("padchest"), base / "root")


@pytest.fixture
def editable(root, tmp_path):
    return copy_tree(root, tmp_path / "padchest")


def test_sample_is_gzipped_table_and_numbered_zips_of_16_bit_pngs(root):
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["0", "54", TABLE]
    text = gzip.decompress((root / TABLE).read_bytes()).decode()
    assert text.startswith("ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,")
    assert "\"['pleural effusion', ' cardiomegaly', 'NSG tube']\"" in text
    im = Image.open(root / "0" / f"{EFFUSION}.png")
    assert im.mode == "I;16" and np.asarray(im).max() > 255


@pytest.mark.parametrize("text, expected", [
    ("['normal']", ["normal"]),
    ("['pleural effusion', ' cardiomegaly', 'cardiomegaly']", ["pleural effusion", "cardiomegaly"]),
    ("[' loc   basal ']", ["loc basal"]),
    ("", None), ("nan", None), ("[]", None), ("['', ' ']", None),
])
def test_labels_literal(text, expected):
    assert padchest.parse_labels(text, padchest.Path("t.csv"), 5) == expected


@pytest.mark.parametrize("text, reason", [
    ("['normal'", "line 5: Labels \"['normal'\" is not a Python list literal (SyntaxError)"),
    ("__import__('os')", "line 5: Labels \"__import__('os')\" is not a Python list literal (ValueError)"),
    ("['a', 1]", "line 5: Labels \"['a', 1]\" is not a list of strings"),
    ("'normal'", "line 5: Labels \"'normal'\" is not a list of strings"),
    ("['a;b']", "line 5: a label contains ';' (\"['a;b']\"), the separator of finding_labels"),
    ("[" + "'x'," * 5000 + "]", "line 5: Labels is 20002 characters long, more than 20000"),
])
def test_bad_labels_name_the_line(text, reason):
    with pytest.raises(CaseError) as exc:
        padchest.parse_labels(text, padchest.Path("t.csv"), 5)
    assert exc.value.reason == reason


def test_cases_labels_flags_views_and_known_faults(root):
    cases = by_id(padchest.cases(root, sample_plan("padchest")))
    assert len(cases) == 10 and all(c.problem is None for c in cases.values())
    c = cases[EFFUSION]
    assert (c.patient_id, c.split) == ("p-0002", None)
    assert c.meta["finding_labels"] == "pleural effusion;cardiomegaly;NSG tube"
    assert (c.meta["projection"], c.meta["view"], c.meta["image_dir"], c.meta["method_label"]) == ("AP", "frontal", "0", "RNN_model")
    assert {k for k, v in c.labels.items() if v == "1"} == {"h_effusion", "h_cardiomegaly", "h_support_devices"}
    assert c.labels["h_lung_opacity"] == "" and c.labels["h_pneumonia"] == "0"
    assert cases[NAN_LABELS].meta["unlabelled"] == "1" and set(cases[NAN_LABELS].labels.values()) == {""}
    flags = {k: (c.meta["label_exclude"], c.meta["label_suboptimal"], c.meta["view"]) for k, c in cases.items()}
    assert flags["216840111366964012989926673512011074122523405_00-163-060"] == ("1", "0", "other")  # COSTAL, 'exclude'
    assert flags["216840111366964012989926673512011074122523404_00-163-059"] == ("0", "1", "frontal")
    assert cases["216840111366964012339356563862009068084200744_00-045-106"].meta["view"] == "lateral"
    assert not cases[MISSING].image.exists()


def test_converts_16_bit_and_quarantines_known_faults_with_the_reason(root, tmp_path):
    counts = build(root, plan_of("padchest"), tmp_path / "work", tmp_path / "out")
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False).set_index("case_id")
    q = pd.read_csv(tmp_path / "out" / "quarantine.csv", dtype=str).set_index("case_id")
    assert counts["cases"] == 8 and counts["quarantined"] == 2 and counts["exclusions"] == {"unlabelled": 1}
    assert q.loc[TRUNCATED, "reason"] == ("cannot decode image (image file is truncated); known fault of the public release: "
                                          "truncated file (listed by torchxrayvision)")
    assert q.loc[MISSING, "reason"] == "file is missing; known fault of the public release: missing from the release (listed by torchxrayvision)"
    out = np.asarray(Image.open(tmp_path / "out" / "images" / f"{EFFUSION}.png"))
    src = np.asarray(Image.open(root / "0" / f"{EFFUSION}.png"))
    assert out.dtype == np.uint16 and np.array_equal(out, src)
    assert m.loc[EFFUSION, "official_split"] == "" and m.groupby("patient_id").split.nunique().max() == 1
    facts = json.loads((tmp_path / "out" / "dataset.json").read_text())["release_facts"]
    assert facts == {"labels_rows": 10, "unmapped_labels": {"exclude": 1, "suboptimal study": 1}}


def test_a_readable_copy_of_a_listed_image_is_kept(editable):
    """The known list names faults of the public copy; a good copy converts like any other."""
    good = next(editable.rglob(f"{EFFUSION}.png"))
    shutil.copy(good, good.parent / f"{MISSING}.png")
    case = by_id(padchest.cases(editable, sample_plan("padchest")))[MISSING]
    assert padchest.load_image(case, sample_plan("padchest")).dtype == np.uint16


def test_table_problems(editable):
    text = gzip.decompress((editable / TABLE).read_bytes()).decode()
    (editable / TABLE).write_bytes(gzip.compress(text.replace(",PatientID,", ",Patient,").encode()))
    with pytest.raises(MedcurateError, match=r"missing column\(s\) \['PatientID'\]"):
        padchest.cases(editable, sample_plan("padchest"))
    shutil.copy(editable / TABLE, editable / "0" / TABLE.replace(".gz", ""))
    with pytest.raises(MedcurateError, match=r"expected one labels table .*found 2"):
        padchest.cases(editable, sample_plan("padchest"))


def test_row_problems_are_quarantined(editable):
    text = gzip.decompress((editable / TABLE).read_bytes()).decode()
    text = text.replace(",p-0002,", ",,").replace("['normal']", "['normal'", 1)
    (editable / TABLE).write_bytes(gzip.compress(text.encode()))
    cases = by_id(padchest.cases(editable, sample_plan("padchest")))
    assert cases[EFFUSION].problem.reason == "line 4: PatientID is empty"
    assert cases["216840111366964012339356563862009068084200743_00-045-105"].problem.reason == \
        "line 2: Labels \"['normal'\" is not a Python list literal (SyntaxError)"


# ------------------------------------------------------------------ fuzzing (bounded)

CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.one_of(CELL, st.builds(repr, st.lists(st.one_of(CELL, st.integers(), st.none()), max_size=4)),
                 st.builds(str, st.recursive(st.lists(CELL, max_size=3), lambda inner: st.lists(inner, max_size=3), max_leaves=8))))
def test_fuzz_labels_raise_only_case_errors(text):
    try:
        terms = padchest.parse_labels(text, padchest.Path("t.csv"), 2)
    except CaseError as exc:
        assert exc.reason.startswith("line 2: ")
        return
    assert terms is None or (terms and all(isinstance(t, str) and t == t.strip() and t and ";" not in t for t in terms))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(CELL, st.sampled_from([f"{EFFUSION}.png", "0", "p-0001", "PA", "['normal']", ""])),
                         max_size=16), max_size=5))
def test_fuzz_table_raises_only_medcurate_errors(root, tmp_path_factory, rows):
    dest = tmp_path_factory.mktemp("fuzz-padchest")
    header = gzip.decompress((root / TABLE).read_bytes()).decode().splitlines()[0]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (dest / TABLE).write_bytes(gzip.compress((header + "\n" + buf.getvalue()).encode()))
    (dest / "0").symlink_to(root / "0")
    try:
        for case in padchest.cases(dest, sample_plan("padchest")):
            assert case.problem is None or isinstance(case.problem, CaseError)
            assert "/" not in case.case_id
    except MedcurateError as exc:
        assert exc.path and exc.reason


def test_a_repeated_row_is_quarantined_not_fatal(editable):
    lines = gzip.decompress((editable / TABLE).read_bytes()).decode().splitlines()
    (editable / TABLE).write_bytes(gzip.compress(("\n".join([*lines, lines[3]]) + "\n").encode()))
    cases = by_id(padchest.cases(editable, sample_plan("padchest")))
    assert cases[EFFUSION].problem is None
    assert cases[f"{EFFUSION}_line12"].problem.reason == f"line 12: ImageID {EFFUSION}.png is listed again"
