"""CBIS-DDSM: the real case-description CSVs, the sample mirror (NBIA tree + CSVs), the converter
(join by SeriesInstanceUID, mask vs crop by pixels, merged label maps, size mismatches) and the
curated subset."""

import collections
import csv
import io
import json
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate.convert import enumerate_cases
from medcurate.datasets import cbis_ddsm as cb
from medcurate.datasets.cbis_ddsm import sample
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import build, prepared, sample_plan

REAL = "CBIS-DDSM"
DENSITY = {"mass": "breast_density", "calc": "breast density"}
DESCRIPTORS = {"mass": ("mass shape", "mass margins"), "calc": ("calc type", "calc distribution")}


def _real_rows(realdata: Path) -> list[cb.Abnormality]:
    rows = []
    for name, (_, split) in cb.CSVS.items():
        path = realdata / REAL / name
        rows += cb.parse_case_csv(path.read_bytes(), path, split)
    return rows


# ------------------------------------------------------------------ real CSVs


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(cb.CSVS))
def test_real_csv_parses_every_row_without_loss(realdata, name):
    path = realdata / REAL / name
    kind, split = cb.CSVS[name]
    parsed = cb.parse_case_csv(path.read_bytes(), path, split)
    raw = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert len(parsed) == len(raw) > 0
    for row, r in zip(parsed, raw):
        assert (row.patient, row.laterality, row.view) == (r["patient_id"], r["left or right breast"], r["image view"])
        assert row.density == r[DENSITY[kind]]  # the density column is spelled differently per family
        assert (row.abnormality_id, row.assessment, row.subtlety) == (int(r["abnormality id"]), int(r["assessment"]), int(r["subtlety"]))
        assert (row.abnormality_type, row.pathology, row.split) == (r["abnormality type"], r["pathology"], split)
        assert [row.descriptor_1, row.descriptor_2] == [("" if r[c] == "NA" else r[c]) for c in DESCRIPTORS[kind]]
        image = r["image file path"].strip().split("/")
        assert (row.image_key, row.image_series) == (image[0], image[2])
        assert row.roi_series == tuple(dict.fromkeys(r[c].strip().split("/")[2] for c in ("cropped image file path", "ROI mask file path")))
        assert all(cb.UID.fullmatch(u) for u in (row.image_series, *row.roi_series))  # no stray newline kept


@pytest.mark.realdata
def test_real_csv_quirks_and_counts(realdata):
    mass, calc = (realdata / REAL / f"{k}_case_description_train_set.csv" for k in ("mass", "calc"))
    assert mass.read_bytes().split(b"\r\n")[0].split(b",")[1] == b"breast_density"
    assert calc.read_bytes().split(b"\r\n")[0].split(b",")[1] == b"breast density"
    # The newline inside quotes: at the end of the ROI mask path (mass), of the cropped path (calc).
    assert re.search(rb'000001\.dcm\n"\r\n', mass.read_bytes()) and re.search(rb'000001\.dcm\n",', calc.read_bytes())
    rows = _real_rows(realdata)
    assert len(rows) == 3568
    images = collections.defaultdict(list)
    for r in rows:
        images[r.image_series].append(r)
    assert len(images) == 3103
    assert collections.Counter(v[0].split for v in images.values()) == {"train": 2458, "test": 645}
    assert sum(len(v) > 1 for v in images.values()) == 293  # 3568 - 3103 = 465 extra rows
    splits = collections.defaultdict(set)
    for r in rows:
        splits[r.patient].add(r.split)
    assert len(splits) == 1566 and sum(len(s) == 2 for s in splits.values()) == 31
    assert sum(len(r.roi_series) == 2 for r in rows) == 104  # crop and mask in separate series
    assert sum(r.descriptor_1 == "" for r in rows) == 28 and sum(r.descriptor_2 == "" for r in rows) == 499  # 'NA'


@pytest.mark.realdata
def test_real_image_label_is_any_malignant(realdata):
    images = collections.defaultdict(list)
    for r in _real_rows(realdata):
        images[r.image_series].append(r)
    labels = {uid: cb.image_label(v) for uid, v in images.items()}
    for uid, v in images.items():
        paths = {r.pathology for r in v}
        assert labels[uid] == ("MALIGNANT" if "MALIGNANT" in paths else "BENIGN" if "BENIGN" in paths else "BENIGN_WITHOUT_CALLBACK")
    # First-row-wins would hide the malignancy of 11 mammograms.
    assert sum(v[0].pathology != "MALIGNANT" and labels[u] == "MALIGNANT" for u, v in images.items()) == 11


@pytest.mark.realdata
def test_real_variant_with_renamed_headers_and_backslashes(realdata):
    variant = next((realdata / REAL / "variants").glob("mass_case_description_train_set.*.csv"))
    assert b"od_img_path" in variant.read_bytes()[:400] and b"\\" in variant.read_bytes()
    parsed = cb.parse_case_csv(variant.read_bytes(), variant, "train")
    original = {(r.image_series, r.abnormality_id): r for r in _real_rows(realdata) if "mass_case_description_train" in r.source}
    assert len(parsed) == len(original) - 1 == 1317
    for r in parsed:
        assert replace(r, source="", line=0) == replace(original[(r.image_series, r.abnormality_id)], source="", line=0)


@pytest.mark.realdata
def test_real_csvs_without_dicoms_quarantine_every_case(realdata, tmp_path):
    for name in cb.CSVS:
        (tmp_path / name).symlink_to(realdata / REAL / name)
    cases = enumerate_cases(tmp_path, sample_plan("cbis_ddsm"))  # ids unique, one per mammogram
    assert len(cases) == 3103 and len({c.patient_id for c in cases}) == 1566
    assert all(c.problem for c in cases)
    problem = next(c for c in cases if c.case_id == "Mass-Training_P_00001_LEFT_CC").problem
    assert Path(problem.path).name == "mass_case_description_train_set.csv" and problem.reason.startswith("line 2: ")
    assert "1.3.6.1.4.1.9590.100.1.2.342386194811267636608694132590482924515 not found" in problem.reason


# ------------------------------------------------------------------ malformed CSVs

HEADER = ",".join(sample.MASS_HEADER)
ROW = ("P_00001,3,LEFT,CC,1,mass,IRREGULAR,SPICULATED,4,MALIGNANT,4,Mass-Training_P_00001_LEFT_CC/1.2.3/1.2.4/000000.dcm,"
       'Mass-Training_P_00001_LEFT_CC_1/1.2.5/1.2.6/000000.dcm,"Mass-Training_P_00001_LEFT_CC_1/1.2.5/1.2.6/000001.dcm\n"')


def _parse(text: str, name: str = "mass_case_description_train_set.csv"):
    return cb.parse_case_csv(text.encode(), Path("/x") / name, "train")


def test_minimal_row_parses():
    [row] = _parse(f"{HEADER}\r\n{ROW}\r\n")
    assert (row.image_series, row.roi_series, row.line, row.descriptor_2) == ("1.2.4", ("1.2.6",), 2, "SPICULATED")


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty file"),
    (HEADER.replace("pathology", "diagnosis") + "\r\n", "missing column(s) 'pathology'"),
    (HEADER.replace("breast_density", "density") + "\r\n", "'breast_density' / 'breast density'"),
    (f"{HEADER}\r\n{ROW.replace('MALIGNANT', 'MALIGN')}\r\n", "line 2: pathology must be one of"),
    (f"{HEADER}\r\n{ROW}\r\n{ROW.replace(',4,MALIGNANT', ',x,MALIGNANT')}\r\n", "line 4: assessment must be an integer"),
    (f"{HEADER}\r\n{ROW.replace('P_00001,', 'P_1,', 1)}\r\n", "line 2: patient_id must look like P_00001"),
    (f"{HEADER}\r\n{ROW.replace('P_00001,', 'P_00002,', 1)}\r\n", "is not patient P_00002's"),
    (f"{HEADER}\r\n{ROW.replace('/1.2.4/', '/')}\r\n", "line 2: image file path"),
    (f"{HEADER}\r\nP_00001,3,LEFT\r\n", "line 2: 3 fields, the header has 14"),
    (f'{HEADER}\r\n{ROW}"oops\r\n', "malformed CSV"),
])
def test_malformed_csv_names_file_line_and_reason(text, message):
    with pytest.raises(MedcurateError) as err:
        _parse(text)
    assert "mass_case_description_train_set.csv" in str(err.value) and message in str(err.value)


def test_non_utf8_csv_is_refused():
    with pytest.raises(MedcurateError, match="not UTF-8"):
        cb.parse_case_csv(b"patient_id\xff\r\n", "x.csv", "train")


def test_rows_of_one_mammogram_must_agree(tmp_path):
    second = ROW.replace(",1,mass,", ",2,mass,").replace("_1/1.2.5/1.2.6", "_2/1.2.7/1.2.8")
    rows = _parse(f"{HEADER}\r\n{ROW}\r\n{second.replace('P_00001,3,', 'P_00001,2,', 1)}\r\n")
    with pytest.raises(MedcurateError, match="line 4: density '2' disagrees with mass_case_description_train_set.csv line 2"):
        cb._case(rows, {}, {})
    rows = _parse(f"{HEADER}\r\n{ROW}\r\n{ROW}\r\n")
    with pytest.raises(MedcurateError, match="abnormality id 1 occurs twice"):
        cb._case(rows, {}, {})


_VALID = f"{HEADER}\r\n{ROW}\r\n"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=400),
    st.tuples(st.integers(0, len(_VALID)), st.integers(0, 40), st.text(max_size=20)).map(
        lambda t: (_VALID[:t[0]] + t[2] + _VALID[t[0] + t[1]:]).encode("utf-8", "surrogatepass")),
))
def test_fuzzed_csv_raises_only_medcurate_errors(data):
    try:
        cb.parse_case_csv(data, "fuzz.csv", "train")
    except MedcurateError:
        pass


# ------------------------------------------------------------------ sample mirror layout


@pytest.fixture(scope="module")
def mirror_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cbis-mirror")
    sample.cbis_ddsm(out)
    return out


def test_sample_is_deterministic_and_small(mirror_dir, tmp_path):
    again = sample.cbis_ddsm(tmp_path)
    for path in again:
        assert path.read_bytes() == (mirror_dir / path.relative_to(tmp_path)).read_bytes()
    assert sum(p.stat().st_size for p in again) < 300_000


def test_sample_csvs_have_the_real_quirks(mirror_dir):
    base = mirror_dir / "cbis_ddsm"
    mass, calc = (base / "mass_case_description_train_set.csv").read_bytes(), (base / "calc_case_description_train_set.csv").read_bytes()
    assert mass.startswith(b"patient_id,breast_density,") and calc.startswith(b"patient_id,breast density,")
    for data in (mass, calc):
        assert data.endswith(b"\r\n")
        assert data.count(b"\r\n") == data.decode().count("\n") - data.count(b'\n"')  # bare LF only inside quotes
    assert re.search(rb'000001\.dcm\n"\r\n', mass) and re.search(rb'000001\.dcm\n",', calc)
    assert b",NA," in mass and b",NA," in calc


@pytest.mark.realdata
def test_sample_csv_headers_are_the_real_ones(realdata, mirror_dir):
    for name in cb.CSVS:
        real = (realdata / REAL / name).read_bytes().split(b"\r\n")[0]
        assert (mirror_dir / "cbis_ddsm" / name).read_bytes().split(b"\r\n")[0] == real


def test_sample_tree_is_an_nbia_descriptive_download(mirror_dir):
    with zipfile.ZipFile(mirror_dir / "cbis_ddsm" / "manual" / "CBIS-DDSM.zip") as zf:
        names = zf.namelist()
        pattern = re.compile(r"CBIS-DDSM/(?P<pid>(Mass|Calc)-(Training|Test)_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)(_\d)?)/"
                             r"\d\d-\d\d-\d{4}-DDSM-NA-(?P<study>\d{5})/1\.000000-(?P<desc>full mammogram images|ROI mask images|cropped images)"
                             r"-(?P<series>\d{5})/1-[12]\.dcm")
        for name in names:
            m = pattern.fullmatch(name)
            assert m, name
            ds = pydicom.dcmread(io.BytesIO(zf.read(name)))
            assert (ds.PatientID, ds.SeriesDescription) == (m["pid"], m["desc"])
            assert ds.StudyInstanceUID.endswith(m["study"]) and ds.SeriesInstanceUID.endswith(m["series"])
    # The mix-up: two studies of one abnormality, both "ROI mask images", the crop's listed first.
    sibs = sorted(n for n in names if n.startswith("CBIS-DDSM/Mass-Training_P_00004_LEFT_MLO_1/"))
    assert len(sibs) == 2 and len({n.split("/")[2] for n in sibs}) == 2 and all("ROI mask images" in n for n in sibs)
    with zipfile.ZipFile(mirror_dir / "cbis_ddsm" / "manual" / "CBIS-DDSM.zip") as zf:
        first, second = (pydicom.dcmread(io.BytesIO(zf.read(n))) for n in sibs)
    assert first.Rows < 100 and first.BitsAllocated == 16 and (second.Rows, second.Columns) == (470, 280)
    assert not any("Mass-Test_P_00016_LEFT_MLO" in n for n in names)  # a series that was not downloaded


# ------------------------------------------------------------------ converter on the sample


@pytest.fixture(scope="module")
def root(mirror_dir, tmp_path_factory) -> Path:
    return prepared(mirror_dir, sample_plan("cbis_ddsm"), tmp_path_factory.mktemp("cbis-root") / "root")


@pytest.fixture
def plan() -> dict:
    return sample_plan("cbis_ddsm")


def _cases(root, plan) -> dict:
    return {c.case_id: c for c in cb.cases(root, plan)}


def test_cases_one_per_mammogram_with_any_malignant_label(root, plan):
    cases = _cases(root, plan)
    assert sorted(cases) == sorted(m.key for m in sample.MAMMOGRAMS)
    two = cases["Mass-Training_P_00001_LEFT_CC"]
    assert two.labels == {"pathology": "MALIGNANT"}  # the first row says BENIGN
    assert two.meta["abnormalities"] == "1:mass:BENIGN;2:mass:MALIGNANT"
    assert (two.meta["assessment"], two.meta["n_abnormalities"], two.meta["breast_density"]) == (5, 2, "3")
    assert {c.patient_id for c in cases.values()} == {m.patient for m in sample.MAMMOGRAMS}
    assert cases["Mass-Training_P_00038_RIGHT_CC"].split == "train" and cases["Calc-Test_P_00038_LEFT_MLO"].split == "test"
    assert cases["Calc-Test_P_00038_LEFT_MLO"].meta["breast_density"] == "1"  # the calc spelling
    assert cases["Calc-Training_P_00041_RIGHT_CC"].meta["findings"] == "1:PUNCTATE/"  # 'NA'
    assert cases["Mass-Training_P_00004_LEFT_MLO"].subset == "Mass-Training"


@pytest.mark.parametrize("m", [m for m in sample.MAMMOGRAMS if m.downloaded and all(x.mask_scale == 1 for x in m.lesions)],
                         ids=lambda m: m.key)
def test_label_map_is_the_drawn_lesions_whatever_the_file_order(root, plan, m):
    case = _cases(root, plan)[m.key]
    image = cb.load_image(case, plan).array
    drawn = cb.load_mask(case, plan)
    mask, actions = drawn.array, drawn.actions
    value = 1 if m.key.startswith("Mass") else 2
    expected = np.zeros(image.shape, np.uint8)
    for lesion in m.lesions:
        expected[sample.lesion_region(m, lesion)] = value
    assert image.dtype == np.uint16 and image.shape == (m.size[1], m.size[0])
    assert np.array_equal(mask, expected) and actions == []
    assert drawn.facts["mask_resized"] == 0 and drawn.facts["roi_types"] == "mask"
    x, y = m.lesions[0].centre
    assert mask[int(y * m.size[1]), int(x * m.size[0]) if "_LEFT_" in m.key else m.size[0] - 1 - int(x * m.size[0])] == value
    assert mask[0, 0] == 0 and mask[-1, m.size[0] // 2] == 0


def test_mask_is_told_from_the_crop_by_pixels_not_names(root, plan, tmp_path):
    case = _cases(root, plan)["Mass-Training_P_00004_LEFT_MLO"]
    files = case.roi_files[1]
    assert len(files) == 2 and all("ROI mask images" in str(f) for f in files)
    assert cb.load_mask(case, plan).source == files[1]  # the second listed: the first is the crop
    row = case.abnormalities[0]
    with pytest.raises(CaseError, match=r"no binary ROI mask near the mammogram's 280x470 .*1-1\.dcm: \d+x\d+, not binary"):
        cb.pick_mask(files[:1], case.shape, row)
    # Full-size but not binary (the mammogram itself), binary but crop-sized: neither is a mask.
    with pytest.raises(CaseError, match=r"1-1\.dcm: 280x470, not binary"):
        cb.pick_mask([case.image], case.shape, row)
    small = tmp_path / "small.dcm"
    small.write_bytes(sample.dicom_bytes(np.full((60, 50), 255, np.uint8), "x", "1.2", "1.3", "ROI mask images", 1))
    with pytest.raises(CaseError, match=r"small\.dcm: 50x60, binary"):
        cb.pick_mask([small], case.shape, row)
    # Two different binary masks for one abnormality: ambiguous, never decided by order.
    other = tmp_path / "other.dcm"
    other.write_bytes(sample.dicom_bytes(np.zeros((470, 280), np.uint8), "x", "1.2", "1.3", "ROI mask images", 1))
    with pytest.raises(CaseError, match="2 different binary masks"):
        cb.pick_mask([files[1], other], case.shape, row)


def test_size_mismatch_resized_and_flagged_or_quarantined(root, plan):
    case = _cases(root, plan)["Calc-Training_P_00041_RIGHT_CC"]
    drawn = cb.load_mask(case, plan)
    mask, actions, chosen = drawn.array, drawn.actions, drawn.source
    assert actions == ["mask_resized:270x458->260x440"] and drawn.facts["mask_resized"] == 1
    m = next(m for m in sample.MAMMOGRAMS if m.key == case.case_id)
    drawn = sample.lesion_region(m, m.lesions[0])
    assert mask.shape == drawn.shape and ((mask == 2) & drawn).sum() / ((mask == 2) | drawn).sum() > 0.9
    strict = {**plan, "convert": {**plan["convert"], "mask_size_mismatch": "quarantine"}}
    with pytest.raises(CaseError) as err:
        cb.load_mask(_cases(root, plan)[case.case_id], strict)
    assert Path(err.value.path) == chosen and "mask is 270x458 but its mammogram" in err.value.reason and "is 260x440" in err.value.reason


def test_missing_series_quarantines_naming_uid_and_csv_line(root, plan, tmp_path):
    problem = _cases(root, plan)["Mass-Test_P_00016_LEFT_MLO"].problem
    assert Path(problem.path).name == "mass_case_description_test_set.csv"
    assert re.search(r"line 4: full mammogram series 1\.3\.6\.1\.4\.1\.9590\.100\.1\.2\.\d+ not found", problem.reason)
    # An ROI series missing from an otherwise complete download.
    for name in cb.CSVS:
        (tmp_path / name).symlink_to(root / name)
    keep = _cases(root, plan)["Mass-Test_P_00016_LEFT_CC"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "1-1.dcm").symlink_to(keep.image)
    problem = _cases(tmp_path, plan)["Mass-Test_P_00016_LEFT_CC"].problem
    assert Path(problem.path).name == "mass_case_description_test_set.csv"
    assert re.search(r"^line 2: ROI series .* of abnormality 1 not found", problem.reason)


def test_unreadable_dicom_header_is_reported_not_fatal(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1-1.dcm").write_bytes(b"not a dicom")
    series, unreadable = cb.index_series(tmp_path)
    assert series == {} and list(unreadable) == [tmp_path / "a" / "1-1.dcm"]


# ------------------------------------------------------------------ whole dataset: curation, splits


def test_converted_sample_curation_splits_and_quarantine(root, plan, tmp_path):
    out = tmp_path / "out"
    build(root, plan, tmp_path / "work", out, shards=2)
    rows = {r["case_id"]: r for r in csv.DictReader((out / "manifest.csv").open())}
    assert len(rows) == 8
    excluded = {k: r["exclusion"] for k, r in rows.items() if r["exclusion"]}
    assert excluded == {"Mass-Training_P_00038_RIGHT_CC": "crude_shape:oval", "Calc-Training_P_00050_LEFT_CC": "crude_shape:box",
                        "Calc-Training_P_00041_RIGHT_CC": "mask_resized"}
    assert rows["Calc-Training_P_00041_RIGHT_CC"]["cleaning"] == "mask_resized:270x458->260x440"
    assert {r["split"] for r in rows.values() if r["patient_id"] == "P_00038"} == {"test"}  # moved: official train + test
    assert rows["Mass-Training_P_00038_RIGHT_CC"]["official_split"] == "train"
    assert rows["Mass-Training_P_00001_LEFT_CC"]["pathology"] == "MALIGNANT"
    assert rows["Mass-Training_P_00001_LEFT_CC"]["mask_labels"] == "1" and rows["Calc-Test_P_00038_LEFT_MLO"]["mask_labels"] == "2"
    info = json.loads((out / "dataset.json").read_text())
    assert any("P_00038" in w and "moved wholly to test" in w for w in info["warnings"])
    assert info["counts"]["exclusions"] == {"crude_shape": 2, "mask_resized": 1} and info["counts"]["quarantined"] == 1
    [q] = list(csv.DictReader((out / "quarantine.csv").open()))
    assert q["case_id"] == "Mass-Test_P_00016_LEFT_MLO" and q["source"] == "mass_case_description_test_set.csv"
    mask = np.asarray(Image.open(out / rows["Mass-Training_P_00001_LEFT_CC"]["mask"]))
    assert set(np.unique(mask)) == {0, 1}
