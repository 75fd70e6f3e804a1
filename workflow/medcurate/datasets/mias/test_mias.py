"""mini-MIAS: the variable-field Info.txt (malformed rows, lines without a reference number,
fuzzed), a woman's pair of films, circle masks placed by the bottom-left origin with malignant
winning overlaps, the sample archive, and the converter. No real file of this set is in
../shared/realdata: the formats are checked against the documented facts written into the sample.
"""

import shutil
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import convert, curation
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import mias
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import by_id, plan_of, unpacked, with_exclusions


@pytest.fixture
def plans():
    return {ds: plan_of(ds) for ds in ("mias",)}


@pytest.fixture(scope="module")
def mias_root(mirror, tmp_path_factory):
    return unpacked(mirror, "mias", tmp_path_factory.mktemp("mias") / "root")


INFO = (
    "REFNUM BG CLASS SEVERITY X Y RADIUS \n"  # the real header and NORM rows end with a space
    "mdb001 G CIRC B 535 425 197\n"
    "mdb002 G NORM \n"
    "mdb005 F CIRC B 477 133 30\n"
    "mdb005 F CIRC M 500 168 26\n"
    "mdb059 F CIRC B\n"
    "mdb060 D CALC M *NOTE 3*\n"
)


def test_mias_info_variable_field_counts():
    rows, problems = mias.parse_info(INFO, "Info.txt")
    assert problems == {} and sorted(rows) == ["mdb001", "mdb002", "mdb005", "mdb059", "mdb060"]
    assert rows["mdb002"][0].kind == "NORM" and rows["mdb002"][0].severity == ""
    assert [(f.x, f.y, f.radius, f.severity, f.line) for f in rows["mdb005"]] == [(477, 133, 30, "B", 4), (500, 168, 26, "M", 5)]
    assert not rows["mdb059"][0].located and rows["mdb059"][0].severity == "B"
    assert rows["mdb060"][0].note == "*NOTE 3*" and rows["mdb060"][0].describe() == "CALC:M:*NOTE 3*"


@pytest.mark.parametrize("line, reason", [
    ("mdb003 D NORM B", "a NORM row has no severity or coordinates"),
    ("mdb003 X NORM", "background tissue must be one of"),
    ("mdb003 D MASS B 1 2 3", "class must be one of"),
    ("mdb003 D CIRC N 1 2 3", "severity must be B or M, got 'N'"),
    ("mdb003 D CIRC", "severity must be B or M, got 'nothing'"),
    ("mdb003 D CIRC B 1 2", "expected X Y RADIUS after the severity"),
    ("mdb003 D CIRC B 1 2.5 3", "X Y RADIUS must be integers"),
    ("mdb003 D CIRC B 1 2 0", "RADIUS > 0"),
    ("mdb003 D", "2 fields"),
])
def test_mias_malformed_rows_quarantine_their_image(line, reason):
    rows, problems = mias.parse_info(f"REFNUM BG CLASS SEVERITY X Y RADIUS\nmdb001 G NORM\n{line}\n", "Info.txt")
    assert list(rows) == ["mdb001"] and list(problems) == ["mdb003"]
    assert problems["mdb003"].path == "Info.txt" and problems["mdb003"].reason.startswith("line 3 (mdb003): ")
    assert reason in problems["mdb003"].reason


def test_mias_line_without_refnum_is_a_dataset_error():
    with pytest.raises(MedcurateError, match=r"line 2: 'mbd002' is not a REFNUM"):
        mias.parse_info("mdb001 G NORM\nmbd002 G NORM\n", "Info.txt")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["mdb001", "mdb002", " ", "\n", "G", "F", "NORM", "CALC", "CIRC", "B", "M", "535",
                                 "-3", "0", "*NOTE", "3*", "REFNUM", "x", "\t", "1e3"]), max_size=50).map(" ".join))
def test_mias_parser_fuzz_raises_only_medcurate_errors(text):
    try:
        rows, problems = mias.parse_info(text, "fuzz.txt")
    except MedcurateError:
        return
    assert all(isinstance(p, CaseError) for p in problems.values())
    assert all(f.radius is None or f.radius > 0 for found in rows.values() for f in found)


def test_mias_woman_is_a_pair_of_films():
    assert mias.patient_of("mdb001") == mias.patient_of("mdb002") == "woman001"
    assert mias.patient_of("mdb003") == mias.patient_of("mdb004") == "woman002"
    assert mias.patient_of("mdb321") == mias.patient_of("mdb322") == "woman161"


def case_with(findings, shape):
    case = mias.MiasCase(case_id="mdb001", patient_id="woman001", image=None, findings=findings,
                         meta={"roi_types": "", "roi_outside_image": 0})
    case.shape = shape
    return case


@pytest.mark.parametrize("height", [1024, 300])
def test_mias_circle_lands_where_the_bottom_left_origin_says(height, plans):
    finding = mias.Finding(1, "mdb001", "G", "CIRC", "B", x=50, y=40, radius=10)
    case = case_with([finding], (height, 200))
    drawn = mias.load_mask(case, plans["mias"])
    mask, actions = drawn.array, drawn.actions
    assert mask[height - 40, 50] == 1 and mask[40, 50] == 0  # centre row = image height - Y
    assert mask[height - 40 - 9, 50] == 1 and mask[height - 40 - 11, 50] == 0
    assert abs(int(mask.sum()) - np.pi * 100) < 12 and actions == [] and drawn.facts["roi_types"] == "circle"


def test_mias_malignant_wins_overlap_and_edges_are_recorded(plans):
    benign = mias.Finding(1, "mdb001", "G", "CIRC", "B", x=50, y=50, radius=20)
    malignant = mias.Finding(2, "mdb001", "G", "SPIC", "M", x=60, y=50, radius=10)
    edge = mias.Finding(3, "mdb001", "G", "MISC", "B", x=95, y=90, radius=10)
    outside = mias.Finding(4, "mdb001", "G", "MISC", "B", x=500, y=90, radius=10)
    case = case_with([benign, malignant, edge, outside], (100, 100))
    drawn = mias.load_mask(case, plans["mias"])
    mask, actions = drawn.array, drawn.actions
    assert mask[50, 60] == 2 and mask[50, 35] == 1 and mask[10, 99] == 1
    assert actions == ["abnormality_3:circle_clipped_to_image", "abnormality_4:circle_outside_image"]
    assert drawn.facts["roi_outside_image"] == 1
    facts = curation.measures(mask)
    assert curation.exclusions(mask, {**case.meta, **drawn.facts}, facts, plans["mias"]["select"]) == ["roi_outside_image"]


def test_mias_sample_archive_format(mirror):
    with tarfile.open(mirror / "mias" / "all-mias.tar.gz") as tf:
        names = tf.getnames()
        info = tf.extractfile("Info.txt").read().decode("ascii")
        pgm = tf.extractfile("mdb001.pgm").read()
    assert {"Info.txt", "README", "Licence.txt"} <= set(names) and all("/" not in n for n in names)
    lines = info.splitlines()
    assert lines[0] == "REFNUM BG CLASS SEVERITY X Y RADIUS "
    assert "mdb002 G NORM " in lines and "mdb005 D CALC M" in lines
    assert sum(line.startswith("mdb003 ") for line in lines) == 2
    assert pgm.startswith(b"P5\n256 256\n255\n")


def test_mias_cases_and_converted_masks(mias_root, plans, tmp_path):
    cases = by_id(enumerate_cases(mias_root, plans["mias"]))
    assert len(cases) == 8 and all(c.problem is None for c in cases.values())
    two = cases["mdb003"]
    assert two.labels == {"tissue": "F", "abnormality": "SPIC", "severity": "M"}  # first row's class, any-malignant
    assert two.meta["abnormalities"] == "SPIC:M:120,90,18;CALC:B:140,100,10" and two.meta["n_abnormalities"] == 2
    assert cases["mdb002"].labels == {"tissue": "G", "abnormality": "NORM", "severity": "N"}
    assert cases["mdb005"].meta["no_roi"] == 1 and cases["mdb001"].meta["side"] == "R"
    convert_shard(mias_root, plans["mias"], 0, 1, tmp_path)
    rows = with_exclusions(tmp_path, plans["mias"])
    assert rows["mdb005"]["exclusion"] == "no_roi" and rows["mdb002"]["exclusion"] == ""
    mask = np.asarray(Image.open(tmp_path / "raw_masks" / "mdb001.png"))
    image = np.asarray(Image.open(tmp_path / "images" / "mdb001.png"))
    assert mask.shape == image.shape == (256, 256)
    # mdb001: CIRC B at X=150, Y=170 (from the bottom): the blob drawn there is at row 256 - 170 = 86
    assert mask[86, 150] == 1 and image[86, 150] == 250 and mask[170, 150] == 0
    three = np.asarray(Image.open(tmp_path / "raw_masks" / "mdb003.png"))
    assert three[256 - 90, 120] == 2 and three[256 - 100, 148] == 1  # malignant over benign where they overlap
    assert rows["mdb007"]["cleaning"] == "abnormality_1:circle_clipped_to_image"


def test_mias_missing_image_and_image_without_row_are_quarantined(mias_root, plans, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(mias_root, root)
    next(root.rglob("mdb004.pgm")).unlink()
    shutil.copy(next(root.rglob("mdb002.pgm")), next(root.rglob("mdb002.pgm")).with_name("mdb009.pgm"))
    cases = by_id(mias.cases(root, plans["mias"]))
    assert cases["mdb004"].problem.reason == "mdb004 is described on line(s) 6 but mdb004.pgm is missing"
    assert cases["mdb009"].problem.reason == "image has no row in Info.txt: no labels"
    convert.load_image(cases["mdb002"], plans["mias"], mias)  # the others still convert
