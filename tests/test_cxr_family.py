"""The chest X-ray family's shared pieces: the harmonised vocabulary and its mapping
(families/cxr.py), the uncertain/blank label policy (label_policy.py) and view selection (select
step), and the harmonised columns agreeing across the five datasets' sample builds."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from medcurate.testing import entry_path
from conftest import build, prepared, sample_plan, unpacked
from medcurate import catalogue, curation, label_policy, samples
from medcurate.families import cxr
from medcurate.errors import MedcurateError

FAMILY = ("chestxray14", "mimic_cxr_jpg", "chexpert", "padchest", "openi")


# ------------------------------------------------------------------ vocabulary and mapping


def test_vocabulary_is_chestxray14_plus_the_chexpert_observations():
    nih = ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
           "consolidation", "edema", "emphysema", "fibrosis", "pleural_thickening", "hernia"]
    assert cxr.VOCABULARY[:14] == nih and len(cxr.VOCABULARY) == len(set(cxr.VOCABULARY)) == 21
    assert set(cxr.CHEXPERT.values()) <= set(cxr.VOCABULARY)  # every CheXpert observation has a place
    assert cxr.CHEXPERT["Pleural Effusion"] == "effusion"


def test_what_each_dataset_cannot_provide():
    assert cxr.unavailable("chestxray14") == ["enlarged_cardiomediastinum", "lung_opacity", "lung_lesion", "pleural_other",
                                              "fracture", "support_devices"]
    assert cxr.unavailable("chexpert") == cxr.unavailable("mimic_cxr_jpg") == [
        "infiltration", "mass", "nodule", "emphysema", "fibrosis", "pleural_thickening", "hernia"]
    assert cxr.unavailable("padchest") == ["enlarged_cardiomediastinum", "lung_opacity", "lung_lesion", "pleural_other"]
    assert cxr.unavailable("openi") == ["lung_lesion", "pleural_other"]


def test_terms_match_whole_or_as_head_never_as_substring():
    h = cxr.from_terms("openi", ["Cardiomegaly/mild", "Calcified Granuloma/lung", "Thickening/pleura/apex", "Opacity/lung"])
    assert (h["h_cardiomegaly"], h["h_pleural_thickening"], h["h_lung_opacity"]) == ("1", "1", "1")
    assert h["h_nodule"] == h["h_mass"] == "0" and h["h_pleural_other"] == ""
    # PadChest: 'mass' must not fire on 'breast mass'... nor 'fracture' on 'callus' alone
    p = cxr.from_terms("padchest", ["breast mass", " cardiomegaly", "NSG tube"])
    assert (p["h_mass"], p["h_cardiomegaly"], p["h_support_devices"]) == ("0", "1", "1")
    assert set(cxr.from_terms("padchest", None).values()) == {""}  # no labels at all: unknown, not negative
    assert cxr.unmapped("padchest", ["breast mass", "cardiomegaly", " "]) == ["breast mass"]


@pytest.mark.parametrize("values, expected", [
    ({"pleural effusion": "-1"}, "-1"), ({"pleural effusion": "1"}, "1"), ({"pleural effusion": ""}, ""),
    ({"pleural effusion": "0"}, "0"),
])
def test_chexpert_values_carry_over(values, expected):
    assert cxr.from_values("chexpert", values)["h_effusion"] == expected


def test_several_own_terms_combine_positive_over_uncertain_over_negative():
    cxr.MAPPING["_probe"] = {"effusion": ["a", "b", "c"]}
    try:
        assert cxr.from_values("_probe", {"a": "0", "b": "-1", "c": ""})["h_effusion"] == "-1"
        assert cxr.from_values("_probe", {"a": "0", "b": "-1", "c": "1"})["h_effusion"] == "1"
        assert cxr.from_values("_probe", {"a": "", "b": "", "c": "0"})["h_effusion"] == "0"
    finally:
        del cxr.MAPPING["_probe"]


@pytest.mark.parametrize("raw, view", [
    ("PA", "frontal"), ("AP", "frontal"), ("AP_horizontal", "frontal"), ("POSTEROANTERIOR", "frontal"),
    ("LATERAL", "lateral"), ("LL", "lateral"), ("L", "lateral"), ("RL", "lateral"), ("XTABLE LATERAL", "lateral"),
    ("LAO", "other"), ("SWIMMERS", "other"), ("COSTAL", "other"), ("EXCLUDE", "other"), ("AP AXIAL", "other"),
    ("", ""), ("UNK", ""), ("  pa ", "frontal"),
])
def test_view_classes(raw, view):
    assert cxr.view(raw) == view


def test_entries_declare_the_vocabulary_as_the_mapping_says():
    """Every family entry has the 21 h_ columns in vocabulary order; a finding the dataset cannot
    provide has '' as its only value, the others can be 0 and 1."""
    for ds in FAMILY:
        classes = yaml.safe_load(entry_path(ds).read_text())["labels"]["classes"]
        h = {k: v for k, v in classes.items() if k.startswith("h_")}
        assert list(h) == cxr.columns(), ds
        for name in cxr.VOCABULARY:
            if name in cxr.unavailable(ds):
                assert h[cxr.column(name)] == [""], (ds, name)
            else:
                assert {"0", "1"} <= set(h[cxr.column(name)]), (ds, name)


# ------------------------------------------------------------------ the label policy


CLASSES = {"edema": ["1", "0", "-1", ""], "h_edema": ["1", "0", "-1", ""], "h_mass": [""], "diagnosis": ["A", "B"]}
TABLE = pd.DataFrame({"edema": ["1", "0", "-1", ""], "h_edema": ["1", "0", "-1", ""], "h_mass": ["", "", "", ""],
                      "diagnosis": ["A", "B", "A", "B"]})


@pytest.mark.parametrize("options, edema, h_edema", [
    ({}, ["1", "0", "-1", ""], ["1", "0", "", ""]),  # default: ignore, keep
    ({"uncertain_labels": "ignore"}, ["1", "0", "-1", ""], ["1", "0", "", ""]),
    ({"uncertain_labels": "zeros"}, ["1", "0", "0", ""], ["1", "0", "0", ""]),
    ({"uncertain_labels": "ones"}, ["1", "0", "1", ""], ["1", "0", "1", ""]),
    ({"blank_labels": "zeros"}, ["1", "0", "-1", "0"], ["1", "0", "", "0"]),
    ({"uncertain_labels": "ones", "blank_labels": "zeros"}, ["1", "0", "1", "0"], ["1", "0", "1", "0"]),
])
def test_policy(options, edema, h_edema):
    out = label_policy.apply(TABLE, CLASSES, options)
    assert list(out.edema) == edema and list(out.h_edema) == h_edema
    assert list(out.h_mass) == [""] * 4 and list(out.diagnosis) == ["A", "B", "A", "B"]  # not providable / not labeller columns
    assert list(TABLE.edema) == ["1", "0", "-1", ""]  # the input is not modified


def test_policy_is_a_select_option_only_select_and_later_rerun():
    """A policy change alters the select step's slice (so select, split and publish re-run) and
    not the convert step's (no image is decoded again)."""
    base = sample_plan("chexpert")
    changed = copy.deepcopy(base)
    changed["select"]["uncertain_labels"] = "ones"
    assert catalogue.step_slice(base, "convert") == catalogue.step_slice(changed, "convert")
    assert catalogue.step_slice(base, "select") != catalogue.step_slice(changed, "select")
    with pytest.raises(MedcurateError, match=r"field 'select\.uncertain_labels'"):
        catalogue.validate({**yaml.safe_load(entry_path("chexpert").read_text()),
                            "select": {"uncertain_labels": "maybe"}}, "dataset", "x.yaml")


def test_views_rule_excludes_with_a_reason_and_needs_a_view_column():
    table = pd.DataFrame({"case_id": ["a", "b", "c", "d"], "view": ["frontal", "lateral", "", "other"]})
    step = {"id": "x", "task": "classification", "labels": {}, "select": {"views": "frontal"}}
    assert list(curation.select(table, step, None).exclusion) == ["", "view:lateral", "view:unknown", "view:other"]
    step["select"]["views"] = "lateral"
    assert list(curation.select(table, step, None).exclusion) == ["view:frontal", "", "view:unknown", "view:other"]
    step["select"]["views"] = "all"
    assert list(curation.select(table, step, None).exclusion) == [""] * 4
    with pytest.raises(MedcurateError, match="needs a per-image 'view' column"):
        curation.select(table.drop(columns="view"), {**step, "select": {"views": "frontal"}}, None)


# ------------------------------------------------------------------ across the family


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """The five datasets built from the sample mirror as the demo builds them (in-process)."""
    base = tmp_path_factory.mktemp("family")
    samples.build(base / "mirror", list(FAMILY))
    out = {}
    for ds in FAMILY:
        plan = copy.deepcopy(sample_plan(ds))
        root = (prepared(base / "mirror", plan, base / "roots" / ds) if plan["access"]["mode"] == "manual"
                else unpacked(base / "mirror", ds, base / "roots" / ds))
        build(root, plan, base / "work" / ds, base / "out" / ds)
        out[ds] = base / "out" / ds
    return out


def manifest(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)


@pytest.mark.e2e
def test_harmonised_columns_agree_across_the_family(family):
    for ds, folder in family.items():
        m = manifest(folder)
        h = [c for c in m.columns if c.startswith("h_")]
        assert h == cxr.columns(), ds  # same names, same order
        cols = list(m.columns)  # beside the dataset's own labels: right before the fixed tail columns
        assert cols.index("h_support_devices") + 1 == cols.index("width"), ds
        for name in cxr.VOCABULARY:
            values = set(m.loc[m.curated == "1", cxr.column(name)])
            assert values <= {"0", "1", ""}, (ds, name, values)  # -1 never reaches h_ (policy ignore)
            if name in cxr.unavailable(ds):
                assert values == {""}, (ds, name)
        info = json.loads((folder / "dataset.json").read_text())
        assert info["options"]["select"]["uncertain_labels"] == "ignore" and info["options"]["select"]["blank_labels"] == "keep"
        assert set(m["view"]) <= {"frontal", "lateral", "other", ""}
    # the same finding means the same thing: a positive cardiomegaly is there in every dataset
    # whose sample has one, and 'no finding' never co-occurs with a positive pathology
    for ds, folder in family.items():
        m = manifest(folder)
        assert (m.h_cardiomegaly == "1").any(), ds
        pathologies = [cxr.column(n) for n in cxr.VOCABULARY if n not in ("no_finding", "support_devices")]
        normal = m[m.h_no_finding == "1"]
        assert not (normal[pathologies] == "1").any(axis=None), ds


@pytest.mark.e2e
def test_policy_and_views_change_only_what_they_should(family, tmp_path):
    """CheXpert rebuilt with uncertain=ones, blank=zeros and frontal views: own and h_ columns
    follow the policy, laterals are kept but not curated."""
    base = manifest(family["chexpert"]).set_index("case_id")
    plan = copy.deepcopy(sample_plan("chexpert"))
    plan["select"].update(uncertain_labels="ones", blank_labels="zeros", views="frontal")
    mirror = tmp_path / "mirror"
    samples.build(mirror, ["chexpert"])
    build(prepared(mirror, plan, tmp_path / "root"), plan, tmp_path / "work", tmp_path / "out")
    m = manifest(tmp_path / "out").set_index("case_id")
    row, was = m.loc["patient00002_study2_view1_frontal"], base.loc["patient00002_study2_view1_frontal"]
    assert (was.cardiomegaly, was.h_cardiomegaly, row.cardiomegaly, row.h_cardiomegaly) == ("-1", "", "1", "1")
    assert (was.pneumonia, row.pneumonia, row.h_pneumonia) == ("", "0", "0")
    assert row.h_mass == "" and row.h_hernia == ""  # CheXpert cannot provide these: stay blank
    laterals = m[m.view == "lateral"]
    assert len(laterals) == 3 and set(laterals.curated) == {"0"} and set(laterals.exclusion) == {"view:lateral"}
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["options"]["select"]["uncertain_labels"] == "ones" and info["counts"]["labels"]["cardiomegaly"].get("-1") is None
