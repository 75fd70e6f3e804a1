"""MURA (header-less CSVs, study labels, AppleDouble junk), ODIR-5K (per-patient xlsx, per-eye
full-width-comma keywords, non-fundus flags) and mini-MIAS (variable-field Info.txt, bottom-left
origin, circle masks). No real files of these three are in ../shared/realdata: the formats are
checked against DATASETS.md facts written into the samples."""

import copy
import csv
import io
import shutil
import tarfile
import zipfile

import numpy as np
import openpyxl
import pytest
from conftest import sample_plan, unpacked, with_exclusions
from hypothesis import given, settings
from hypothesis import strategies as st
from medcurate import convert, curation
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import mias, mura, odir5k
from medcurate.errors import CaseError, MedcurateError
from medcurate.samples import mixed, zip_bytes
from PIL import Image


def by_id(cases):
    return {c.case_id: c for c in cases}


def quarantine(out):
    return {r["case_id"]: r for r in csv.DictReader((out / "quarantine.csv").open())}


def manifest(out):
    return {r["case_id"]: r for r in csv.DictReader((out / "part.csv").open())}


@pytest.fixture
def plans():
    return {ds: copy.deepcopy(sample_plan(ds)) for ds in ("mura", "odir5k", "mias")}


# ================================================================== MURA


@pytest.fixture(scope="module")
def mura_root(sample_root):
    return sample_root("mura")


@pytest.fixture
def mura_copy(mura_root, tmp_path):
    dest = tmp_path / "mura"
    shutil.copytree(mura_root, dest)
    return dest


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


# ================================================================== ODIR-5K


@pytest.fixture(scope="module")
def odir_root(sample_root):
    return sample_root("odir5k")


def write_odir(root, rows, header=None, images=None):
    """A minimal ODIR release: the xlsx (first sheet) and grey JPEGs for ``images`` names."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header or mixed.ODIR_HEADER)
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
    assert data == mixed.odir_workbook()
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
    write_odir(tmp_path, [row(7)], header=mixed.ODIR_HEADER[:-1])
    with pytest.raises(MedcurateError, match=r"missing column\(s\) \['O'\]"):
        odir5k.cases(tmp_path, plans["odir5k"])
    write_odir(tmp_path, [row(7), row(7)])
    with pytest.raises(MedcurateError, match="row 3: ID 7 already on row 2"):
        odir5k.cases(tmp_path, plans["odir5k"])
    with pytest.raises(MedcurateError, match="not an xlsx workbook"):
        odir5k.parse_annotations(b"ID,Patient Age\n", "a.xlsx")


def test_odir_workbook_with_an_xml_entity_is_refused():
    with zipfile.ZipFile(io.BytesIO(mixed.odir_workbook())) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    sheet = "xl/worksheets/sheet1.xml"
    members[sheet] = members[sheet].replace(b"<worksheet", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><worksheet', 1)
    with pytest.raises(MedcurateError, match=f"{sheet}: unsafe or malformed XML"):
        odir5k.parse_annotations(zip_bytes(members), "a.xlsx")
    assert b"<!ENTITY" in members[sheet]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), max_size=8))
def test_odir_workbook_fuzz_raises_only_medcurate_errors(flips):
    data = bytearray(mixed.odir_workbook())
    for pos, value in flips:
        data[pos % len(data)] = value
    try:
        rows = odir5k.parse_annotations(bytes(data), "fuzz.xlsx")
    except MedcurateError:
        return
    for r in rows:
        for side in ("Left", "Right"):
            odir5k.eye_facts(odir5k.split_keywords(r[f"{side}-Diagnostic Keywords"]))


# ================================================================== mini-MIAS


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
    mask, actions = mias.load_mask(case, plans["mias"])
    assert mask[height - 40, 50] == 1 and mask[40, 50] == 0  # centre row = image height - Y
    assert mask[height - 40 - 9, 50] == 1 and mask[height - 40 - 11, 50] == 0
    assert abs(int(mask.sum()) - np.pi * 100) < 12 and actions == [] and case.meta["roi_types"] == "circle"


def test_mias_malignant_wins_overlap_and_edges_are_recorded(plans):
    benign = mias.Finding(1, "mdb001", "G", "CIRC", "B", x=50, y=50, radius=20)
    malignant = mias.Finding(2, "mdb001", "G", "SPIC", "M", x=60, y=50, radius=10)
    edge = mias.Finding(3, "mdb001", "G", "MISC", "B", x=95, y=90, radius=10)
    outside = mias.Finding(4, "mdb001", "G", "MISC", "B", x=500, y=90, radius=10)
    case = case_with([benign, malignant, edge, outside], (100, 100))
    mask, actions = mias.load_mask(case, plans["mias"])
    assert mask[50, 60] == 2 and mask[50, 35] == 1 and mask[10, 99] == 1
    assert actions == ["abnormality_3:circle_clipped_to_image", "abnormality_4:circle_outside_image"]
    assert case.meta["roi_outside_image"] == 1
    facts = curation.measures(mask)
    assert curation.exclusions(mask, case.meta, facts, plans["mias"]["select"]) == ["roi_outside_image"]


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
