"""ODIR-5K: the per-patient xlsx (real columns, deterministic sample, bad rows, refused XML
entities, fuzzed), per-eye keywords split on full-width and ASCII commas, cases per eye with the
non-fundus flags excluded, and mismatched, missing or unlisted images quarantined. No real file
of this set is in ../shared/realdata: the formats are checked against the documented facts
written into the sample.
"""

import io
import zipfile

import numpy as np
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import odir5k
from medcurate.datasets.odir5k import sample
from medcurate.samples import zip_bytes
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import by_id, plan_of, with_exclusions


@pytest.fixture
def plans():
    return {ds: plan_of(ds) for ds in ("odir5k",)}


@pytest.fixture(scope="module")
def odir_root(sample_root):
    return sample_root("odir5k")


def write_odir(root, rows, header=None, images=None):
    """A minimal ODIR release: the xlsx (first sheet) and grey JPEGs for ``images`` names."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header or sample.ODIR_HEADER)
    for row in rows:
        sheet.append(list(row))
    book.save(root / odir5k.XLSX)
    folder = root / odir5k.IMAGES
    folder.mkdir(parents=True, exist_ok=True)
    for name in images if images is not None else [n for r in rows for n in r[3:5]]:
        Image.new("RGB", (20, 16), (90, 40, 20)).save(folder / name)


def row(pid=7, left="normal fundus", right="cataract", flags=(0, 0, 0, 1, 0, 0, 0, 0), lname=None, rname=None):
    return (pid, 50, "Male", lname or f"{pid}_left.jpg", rname or f"{pid}_right.jpg", left, right, *flags)


def test_odir_keywords_split_on_full_width_and_ascii_commas():
    assert odir5k.split_keywords("moderate non proliferative retinopathy\uff0chypertensive retinopathy") == \
        ["moderate non proliferative retinopathy", "hypertensive retinopathy"]
    assert odir5k.split_keywords("drusen, normal fundus") == ["drusen", "normal fundus"]  # ASCII accepted too
    assert odir5k.split_keywords(" \uff0c ") == []


@pytest.mark.parametrize("keywords, normal, flags", [
    (["normal fundus"], "1", {}),
    (["lens dust", "normal fundus"], "1", {"lens_dust": 1}),
    (["drusen", "normal fundus"], "0", {}),
    (["anterior segment image"], "0", {"not_fundus": 1, "no_diagnosis": 1}),
    (["no fundus image"], "0", {"not_fundus": 1, "no_diagnosis": 1}),
    (["low image quality", "glaucoma"], "0", {"low_quality": 1}),
    (["image offset", "Normal Fundus"], "1", {"low_quality": 1}),
    (["optic disk photographically invisible", "cataract"], "0", {"low_quality": 1}),
])
def test_odir_eye_facts(keywords, normal, flags):
    got_normal, got_flags = odir5k.eye_facts(keywords)
    assert got_normal == normal
    assert got_flags == {f: flags.get(f, 0) for f in odir5k.FLAGS}


def test_odir_sample_workbook_has_the_real_columns_and_is_deterministic(mirror):
    data = (mirror / "odir5k" / "manual" / odir5k.XLSX).read_bytes()
    assert data == sample.odir_workbook()
    rows = odir5k.parse_annotations(data, "x.xlsx")
    assert len(rows) == 6 and rows[2]["ID"] == "2" and rows[2]["Left-Fundus"] == "2_left.jpg"
    assert "\uff0c" in rows[2]["Left-Diagnostic Keywords"] and "," not in rows[2]["Left-Diagnostic Keywords"]
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    assert [c.value for c in sheet[1]] == odir5k.COLUMNS
    with zipfile.ZipFile(mirror / "odir5k" / "manual" / "ODIR-5K_Training_Images.zip") as zf:
        assert sorted(zf.namelist())[:2] == ["ODIR-5K_Training_Images/0_left.jpg", "ODIR-5K_Training_Images/0_right.jpg"]


def test_odir_cases_per_eye_with_patient_flags_apart(odir_root, plans):
    cases = by_id(enumerate_cases(odir_root, plans["odir5k"]))
    assert len(cases) == 12 and all(c.problem is None for c in cases.values())
    left, right = cases["2_left"], cases["2_right"]
    assert left.patient_id == right.patient_id == "2"
    assert left.labels == {"normal": "0"} and right.labels == {"normal": "1"}  # per eye, not the patient's N=0
    assert left.meta["keywords"] == "moderate non proliferative retinopathy;hypertensive retinopathy"
    for d, v in zip(odir5k.DISEASES, "01000100"):
        assert left.meta[f"patient_{d}"] == right.meta[f"patient_{d}"] == v
    assert cases["3_left"].meta["not_fundus"] == 1 and cases["4_right"].meta["low_quality"] == 1
    assert cases["4_left"].meta["lens_dust"] == 1 and cases["4_left"].labels == {"normal": "1"}
    assert cases["1_left"].split is None  # no labelled official test set: drawn by hash


def test_odir_flags_are_excluded_and_images_kept_in_colour(odir_root, plans, tmp_path):
    convert_shard(odir_root, plans["odir5k"], 0, 1, tmp_path)
    rows = with_exclusions(tmp_path, plans["odir5k"])
    assert rows["3_left"]["exclusion"] == "not_fundus;no_diagnosis"
    assert rows["4_right"]["exclusion"] == "low_quality" and rows["4_left"]["exclusion"] == "lens_dust"
    assert rows["1_left"]["exclusion"] == ""
    image = np.asarray(Image.open(tmp_path / "images" / "1_left.png"))
    h, w, _ = image.shape
    assert image[0, 0].tolist() == [0, 0, 0] or image[0, 0].max() < 8  # black corner (JPEG)
    assert np.abs(image[h // 2, w // 2 - 5].astype(int) - [200, 90, 40]).max() < 12  # the orange fundus
    assert rows["1_left"]["width"] == str(w) and rows["1_left"]["height"] == str(h)


def test_odir_mismatched_missing_and_unlisted_images_are_quarantined(tmp_path, plans):
    write_odir(tmp_path, [row(7), row(8, lname="8_right.jpg"), row(9)], images=["7_left.jpg", "7_right.jpg",
               "8_right.jpg", "9_left.jpg", "10_left.jpg"])
    xlsx = tmp_path / odir5k.XLSX
    cases = by_id(odir5k.cases(tmp_path, plans["odir5k"]))
    assert cases["7_left"].problem is None and cases["7_right"].labels == {"normal": "0"}
    assert cases["8_left"].problem.reason == "row 3 (ID 8): Left-Fundus is '8_right.jpg', expected '8_left.jpg'"
    assert cases["8_left"].problem.path == str(xlsx)
    assert cases["9_right"].problem.reason == f"row 4 (ID 9): 9_right.jpg is listed but not in {odir5k.IMAGES}/"
    assert cases["unlisted_10_left"].problem.reason == f"present in {odir5k.IMAGES}/ but in no row of {odir5k.XLSX}"


@pytest.mark.parametrize("bad, reason", [
    (row(7, flags=(0, 0, 0, 2, 0, 0, 0, 0)), r"row 2 \(ID 7\): \['C'\] must be 0 or 1"),
    (row(7, left=""), r"row 2 \(ID 7\): no Left-Diagnostic Keywords"),
])
def test_odir_bad_rows_quarantine_their_eyes(tmp_path, plans, bad, reason):
    write_odir(tmp_path, [bad])
    cases = by_id(odir5k.cases(tmp_path, plans["odir5k"]))
    assert cases["7_left"].problem is not None
    with pytest.raises(CaseError, match=reason):
        raise cases["7_left"].problem


def test_odir_workbook_errors_are_dataset_errors(tmp_path, plans):
    write_odir(tmp_path, [row(7)], header=sample.ODIR_HEADER[:-1])
    with pytest.raises(MedcurateError, match=r"missing column\(s\) \['O'\]"):
        odir5k.cases(tmp_path, plans["odir5k"])
    write_odir(tmp_path, [row(7), row(7)])
    with pytest.raises(MedcurateError, match="row 3: ID 7 already on row 2"):
        odir5k.cases(tmp_path, plans["odir5k"])
    with pytest.raises(MedcurateError, match="not an xlsx workbook"):
        odir5k.parse_annotations(b"ID,Patient Age\n", "a.xlsx")


def test_odir_workbook_with_an_xml_entity_is_refused():
    with zipfile.ZipFile(io.BytesIO(sample.odir_workbook())) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    members[sheet] = members[sheet].replace(b"<worksheet", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><worksheet', 1)
    with pytest.raises(MedcurateError, match=f"{sheet}: unsafe or malformed XML"):
        odir5k.parse_annotations(zip_bytes(members), "a.xlsx")
    assert b"<!ENTITY" in members[sheet]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), max_size=8))
def test_odir_workbook_fuzz_raises_only_medcurate_errors(flips):
    data = bytearray(sample.odir_workbook())
    for pos, value in flips:
        data[pos % len(data)] = value
    try:
        rows = odir5k.parse_annotations(bytes(data), "fuzz.xlsx")
    except MedcurateError:
        return
    for r in rows:
        for side in ("Left", "Right"):
            odir5k.eye_facts(odir5k.split_keywords(r[f"{side}-Diagnostic Keywords"]))
