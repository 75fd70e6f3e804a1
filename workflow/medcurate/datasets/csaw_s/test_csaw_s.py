"""CSAW-S: the authors' validation split file, the per-class maps -> label map, the test set's
annotator option, the 8-bit sibling, and the sample mirror's layout."""

import json
import shutil
import zipfile

import numpy as np
import pandas as pd
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import convert, curation, masks
from medcurate.atomic import file_digest
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import csaw_s
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import by_id, copy_tree, plan_of

CATALOGUE = yaml.safe_load((Path(__file__).parent / "dataset.yaml").read_text())


@pytest.fixture(scope="module")
def root(sample_root):
    return sample_root("csaw_s")


@pytest.fixture
def plan():
    return plan_of("csaw_s")


def label_map(case, plan):
    """(label map, the facts load_mask returned)."""
    convert.load_image(case, plan, csaw_s)
    drawn = csaw_s.load_mask(case, plan)
    return drawn.array, drawn.facts


# ------------------------------------------------------------------ the real split file


@pytest.mark.realdata
def test_real_validation_split_parses_and_matches_the_pin(realdata):
    path = realdata / "CSAW-S" / "suggested_validation_split.json"
    ids = csaw_s.parse_validation_split(path.read_text(), path)
    assert len(ids) == 20 and ids[:3] == ["000", "001", "012"] and ids[-1] == "249"
    assert all(len(p) == 3 and p.isdigit() for p in ids)
    source = CATALOGUE["sources"][0]
    assert source["name"] == path.name and "276ea316d8e6e495da502b9b14fd4c42ae5652b3" in source["url"]
    assert file_digest(path) == source["sha256"] and path.stat().st_size == source["size"]


@pytest.mark.parametrize("text, reason", [
    ("{\"val\": [\"000\"]}", "expected a JSON list"),
    ("[\"000\", 1]", "expected a JSON list"),
    ("[\"000\", \"000\"]", "listed twice"),
    ("[\"000\",", "not valid JSON"),
])
def test_malformed_split_file_names_file_and_reason(text, reason):
    with pytest.raises(MedcurateError, match=reason) as err:
        csaw_s.parse_validation_split(text, "split.json")
    assert err.value.path == "split.json"


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=60), st.recursive(st.none() | st.integers() | st.text(max_size=5),
                                                    lambda c: st.lists(c, max_size=4), max_leaves=8).map(json.dumps)))
def test_split_parser_fuzz_raises_only_medcurate_error(text):
    try:
        ids = csaw_s.parse_validation_split(text, "fuzz.json")
    except MedcurateError:
        return
    assert isinstance(ids, list) and all(isinstance(i, str) for i in ids)


# ------------------------------------------------------------------ sample layout


def test_sample_layout_follows_the_authors_tree(mirror):
    with zipfile.ZipFile(mirror / "csaw_s" / "manual" / "CsawS.zip") as zf:
        names = set(zf.namelist())
    assert "CsawS/anonymized_dataset/000/000_0.png" in names
    assert {"CsawS/anonymized_dataset/000/000_1.png", "CsawS/anonymized_dataset/000/000_1_8bit.png"} <= names
    assert "CsawS/anonymized_dataset/012/012_10.png" in names  # 2-digit screening number
    assert "CsawS/anonymized_dataset/000/000_0_non-mammary_tissue.png" in names
    for expert in ("annotator_1", "annotator_2", "annotator_3"):
        assert f"CsawS/test_data/{expert}/300/300_0_cancer.png" in names
    assert "CsawS/test_data/anonymized_dataset/300/300_0.png" in names
    assert not any(n.startswith("CsawS/test_data/anonymized_dataset/") and n.endswith("_cancer.png") for n in names)
    split = json.loads((mirror / "csaw_s" / "suggested_validation_split.json").read_text())
    assert split == ["012", "131"]  # the real file's structure: a list of patient-folder names


# ------------------------------------------------------------------ conversion


def test_cases_splits_and_annotator(root, plan):
    cases = by_id(enumerate_cases(root, plan))
    assert sorted(cases) == ["test_300_0", "test_300_1", "test_301_0", "trainval_000_0", "trainval_000_1",
                             "trainval_012_10", "trainval_012_11", "trainval_107_3", "trainval_131_0"]
    assert {cid: c.split for cid, c in cases.items()} == {
        "test_300_0": "test", "test_300_1": "test", "test_301_0": "test", "trainval_000_0": "train",
        "trainval_000_1": "train", "trainval_012_10": "val", "trainval_012_11": "val",
        "trainval_107_3": "train", "trainval_131_0": "val"}
    assert cases["trainval_012_10"].patient_id == "012"
    assert cases["test_300_1"].mask.parts[-3:] == ("test_data", "annotator_1", "300")
    assert {c.meta["annotator"] for c in cases.values()} == {"annotator_1"}
    assert plan["split"]["val_fraction"] == 0


def test_label_map_values_and_overlap_priority(root, plan):
    case = by_id(enumerate_cases(root, plan))["trainval_000_0"]
    mask, facts = label_map(case, plan)
    w, h = 352, 448
    values = plan["labels"]["mask"]
    at = lambda fx, fy: int(mask[int(h * fy), int(w * fx)])
    assert mask.shape == (h, w) and mask.dtype == np.uint8
    assert at(0.25, 0.5) == values["cancer"] == 1         # cancer over gland and over a calcification
    assert at(0.14, 0.42) == values["calcifications"] == 2  # calcification over gland
    assert at(0.15, 0.58) == values["mammary_gland"] == 11
    assert at(0.26, 0.68) == values["non-mammary_tissue"] == 9  # over the gland's lower edge
    assert at(0.2, 0.69) == values["thick_vessels"] == 4  # over gland and non-mammary tissue
    assert at(0.06, 0.1) == values["axillary_lymph_nodes"] == 3  # over the pectoral muscle
    assert at(0.03, 0.25) == values["pectoral_muscle"] == 10
    assert at(0.5, 0.5) == values["nipple"] == 7
    assert at(0.9, 0.06) == values["text"] == 8
    assert at(0.9, 0.5) == 0
    assert facts["missing_maps"] == "" and facts["roi_types"] == "mask"
    assert list(values)[1:] == plan["labels"]["overlap"]  # values = the authors' index + 1


def test_three_channel_screening_uses_its_8bit_sibling(root, plan):
    case = by_id(enumerate_cases(root, plan))["trainval_000_1"]
    decoded = convert.load_image(case, plan, csaw_s)
    image = decoded.array
    assert image.ndim == 2 and image.dtype == np.uint8
    assert decoded.source.name == "000_1_8bit.png" and decoded.facts["image_variant"] == "8bit_sibling"
    assert case.image.name == "000_1.png"  # the case is left as enumerated
    assert csaw_s.load_mask(case, plan).array.shape == image.shape  # maps found for the original stem


@pytest.mark.parametrize("expert, cancer_px", [("annotator_1", "small"), ("annotator_2", "large"), ("annotator_3", None)])
def test_test_set_annotator_is_configurable(root, plan, expert, cancer_px):
    plan["convert"]["annotator"] = expert
    case = by_id(enumerate_cases(root, plan))["test_300_0"]
    assert case.meta["annotator"] == expert and case.mask.parts[-2] == expert
    n = int((label_map(case, plan)[0] == 1).sum())
    expected = {"small": (0.05, 0.04), "large": (0.08, 0.06), None: (0, 0)}[cancer_px]
    area = np.pi * expected[0] * 352 * expected[1] * 448
    assert abs(n - area) <= 0.1 * area + 1


def test_unknown_annotator_is_refused(root, plan):
    plan["convert"]["annotator"] = "annotator_4"
    with pytest.raises(MedcurateError, match="annotator_4"):
        enumerate_cases(root, plan)


def test_convert_shard_writes_the_documented_columns(root, plan, tmp_path):
    convert_shard(root, plan, 0, 1, tmp_path)
    part = pd.read_csv(tmp_path / "part.csv", dtype=str, keep_default_na=False).set_index("case_id")
    assert len(part) == 9 and (tmp_path / "quarantine.csv").read_text().count("\n") == 1
    assert part.loc["trainval_000_1", "source"].endswith("anonymized_dataset/000/000_1_8bit.png")
    assert part.loc["test_301_0", "annotator"] == "annotator_1"
    assert part.loc["trainval_012_10", "official_split"] == "val"
    assert (curation.select(part.reset_index(), plan, None)["exclusion"] == "").all()


# ------------------------------------------------------------------ quirks on a modified copy


@pytest.fixture
def copy_root(root, tmp_path):
    return copy_tree(root, tmp_path / "root")  # links followed: the copy\'s files can be edited


def patient_dir(root, patient="000"):
    return next(root.rglob(f"anonymized_dataset/{patient}"))


def test_missing_class_map_is_empty_and_listed(copy_root, plan):
    (patient_dir(copy_root) / "000_0_nipple.png").unlink()
    case = by_id(enumerate_cases(copy_root, plan))["trainval_000_0"]
    mask, facts = label_map(case, plan)
    assert facts["missing_maps"] == "nipple" and 7 not in mask


def test_map_of_unknown_class_quarantines(copy_root, plan):
    shutil.copy(patient_dir(copy_root) / "000_0_nipple.png", patient_dir(copy_root) / "000_0_Nipple.png")
    case = by_id(enumerate_cases(copy_root, plan))["trainval_000_0"]
    with pytest.raises(CaseError, match="no known class") as err:
        label_map(case, plan)
    assert err.value.path.endswith("000_0_Nipple.png")


def test_map_size_mismatch_resized_and_flagged_or_quarantined(copy_root, plan):
    path = patient_dir(copy_root) / "000_0_text.png"
    Image.open(path).resize((176, 224), Image.Resampling.NEAREST).save(path)
    case = by_id(enumerate_cases(copy_root, plan))["trainval_000_0"]
    convert.load_image(case, plan, csaw_s)
    drawn = csaw_s.load_mask(case, plan)
    mask, actions = drawn.array, drawn.actions
    assert mask.shape == (448, 352) and actions == ["text:resized"] and drawn.facts["mask_resized"] == 1
    facts = curation.measures(mask)
    assert curation.exclusions(mask, {**case.meta, **drawn.facts}, facts, plan["select"]) == ["mask_resized"]
    plan["convert"]["mask_size_mismatch"] = "quarantine"
    with pytest.raises(CaseError, match="176x224 but the screening is 352x448"):
        csaw_s.load_mask(case, plan)


def test_empty_label_map_is_excluded(copy_root, plan):
    folder = patient_dir(copy_root, "107")
    for p in folder.glob("107_3_*.png"):
        Image.new("L", (352, 448), 0).save(p)
    case = by_id(enumerate_cases(copy_root, plan))["trainval_107_3"]
    mask, _ = label_map(case, plan)
    assert not mask.any()
    assert curation.exclusions(mask, case.meta, curation.measures(mask), plan["select"]) == ["empty_mask"]


def test_three_channel_screening_without_sibling(copy_root, plan):
    folder = patient_dir(copy_root)
    (folder / "000_1_8bit.png").unlink()
    case = by_id(enumerate_cases(copy_root, plan))["trainval_000_1"]
    with pytest.raises(CaseError, match="unequal channels"):
        csaw_s.load_image(case, plan)
    grey = np.full((416, 320), 90, np.uint8)
    Image.fromarray(np.dstack([grey] * 3)).save(folder / "000_1.png")
    case = by_id(enumerate_cases(copy_root, plan))["trainval_000_1"]
    decoded = csaw_s.load_image(case, plan)
    assert (decoded.array == grey).all() and decoded.facts["image_variant"] == "channel_0"


def test_missing_layout_and_split_file_are_dataset_errors(copy_root, plan):
    (copy_root / "suggested_validation_split.json").unlink()
    with pytest.raises(MedcurateError, match="suggested_validation_split.json"):
        enumerate_cases(copy_root, plan)
    shutil.rmtree(next(copy_root.rglob("test_data")))
    with pytest.raises(MedcurateError, match="found 1 and 0"):
        csaw_s._image_dirs(copy_root)


def test_compose_follows_the_catalogue_overlap(plan):
    a = np.ones((4, 4), bool)
    out = masks.compose((4, 4), [("mammary_gland", a), ("cancer", a), ("skin", a)], plan["labels"])
    assert (out == 1).all()
