"""medcurate.splits: duplicate resolution, patient linking, split assignment, leakage check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from medcurate import splits
from medcurate.errors import MedcurateError

ROOT = Path(__file__).resolve().parents[1]
CURATION = {"val_fraction": 0.1, "test_fraction": 0.2}


def frame(rows: list[dict]) -> pd.DataFrame:
    """A gathered manifest: case_id, patient_id, official_split, pixel_sha256, exclusion, plane, mask_sha256."""
    defaults = {"official_split": "", "exclusion": "", "plane": "Fetal brain", "mask_sha256": ""}
    df = pd.DataFrame([{**defaults, **r} for r in rows])
    return df[["case_id", "patient_id", "official_split", "pixel_sha256", "exclusion", "plane", "mask_sha256"]]


def by_case(df: pd.DataFrame, column: str) -> dict[str, str]:
    return dict(zip(df["case_id"], df[column]))


# --- resolve_duplicates -----------------------------------------------------------------------


def test_identical_pixels_same_labels_keep_first_case_id():
    df = frame([
        {"case_id": "c3", "patient_id": "p3", "pixel_sha256": "aa" * 32},
        {"case_id": "c1", "patient_id": "p1", "pixel_sha256": "aa" * 32},
        {"case_id": "c2", "patient_id": "p2", "pixel_sha256": "aa" * 32},
        {"case_id": "c4", "patient_id": "p4", "pixel_sha256": "bb" * 32},
    ])
    report = splits.resolve_duplicates(df, ["plane"])
    assert by_case(df, "exclusion") == {"c1": "", "c2": "duplicate_of:c1", "c3": "duplicate_of:c1", "c4": ""}
    assert sorted(report["case_id"]) == ["c1", "c2", "c3"]  # every member, not the unique c4
    assert by_case(report, "resolution") == {"c1": "kept", "c2": "duplicate_of:c1", "c3": "duplicate_of:c1"}
    assert set(report["group"]) == {"aa" * 8}
    assert by_case(report, "patient_id") == {"c1": "p1", "c2": "p2", "c3": "p3"}
    assert set(report["plane"]) == {"Fetal brain"}


def test_identical_pixels_with_different_labels_exclude_all():
    df = frame([
        {"case_id": "a", "patient_id": "p1", "pixel_sha256": "11" * 32, "plane": "Fetal brain"},
        {"case_id": "b", "patient_id": "p2", "pixel_sha256": "11" * 32, "plane": "Fetal femur"},
        {"case_id": "c", "patient_id": "p3", "pixel_sha256": "11" * 32, "plane": "Fetal brain"},
    ])
    report = splits.resolve_duplicates(df, ["plane"])
    assert by_case(df, "exclusion") == {
        "a": "conflicting_duplicate:b|c",
        "b": "conflicting_duplicate:a|c",
        "c": "conflicting_duplicate:a|b",
    }
    assert sorted(report["case_id"]) == ["a", "b", "c"]
    assert by_case(report, "resolution") == by_case(df, "exclusion")
    assert by_case(report, "plane") == {"a": "Fetal brain", "b": "Fetal femur", "c": "Fetal brain"}


def test_identical_pixels_with_different_masks_conflict():
    df = frame([
        {"case_id": "a", "patient_id": "p1", "pixel_sha256": "11" * 32, "mask_sha256": "m1"},
        {"case_id": "b", "patient_id": "p1", "pixel_sha256": "11" * 32, "mask_sha256": "m2"},
    ])
    splits.resolve_duplicates(df, [])
    assert by_case(df, "exclusion") == {"a": "conflicting_duplicate:b", "b": "conflicting_duplicate:a"}


def test_label_columns_not_listed_do_not_conflict():
    df = frame([
        {"case_id": "a", "patient_id": "p1", "pixel_sha256": "11" * 32, "plane": "Fetal brain"},
        {"case_id": "b", "patient_id": "p1", "pixel_sha256": "11" * 32, "plane": "Fetal femur"},
    ])
    splits.resolve_duplicates(df, [])
    assert by_case(df, "exclusion") == {"a": "", "b": "duplicate_of:a"}


def test_existing_exclusion_is_not_overwritten():
    df = frame([
        {"case_id": "a", "patient_id": "p1", "pixel_sha256": "11" * 32},
        {"case_id": "b", "patient_id": "p2", "pixel_sha256": "11" * 32, "exclusion": "empty_mask"},
        {"case_id": "x", "patient_id": "p3", "pixel_sha256": "22" * 32, "plane": "Other"},
        {"case_id": "y", "patient_id": "p4", "pixel_sha256": "22" * 32, "exclusion": "empty_mask"},
    ])
    report = splits.resolve_duplicates(df, ["plane"])
    assert by_case(df, "exclusion") == {"a": "", "b": "empty_mask", "x": "conflicting_duplicate:y", "y": "empty_mask"}
    # the report still says what dedupe decided for every member
    assert by_case(report, "resolution") == {"a": "kept", "b": "duplicate_of:a",
                                             "x": "conflicting_duplicate:y", "y": "conflicting_duplicate:x"}


def test_copies_with_nothing_to_disagree_on_are_duplicates_not_conflicts():
    """No label column and no mask or box digest: identical pixels are plain duplicates (a
    pandas frame with no columns counted every row as distinct, a conflict)."""
    df = frame([{"case_id": "b", "patient_id": "p1", "pixel_sha256": "11" * 32},
                {"case_id": "a", "patient_id": "p2", "pixel_sha256": "11" * 32}]).drop(columns=["plane", "mask_sha256"])
    report = splits.resolve_duplicates(df, [])
    assert by_case(df, "exclusion") == {"a": "", "b": "duplicate_of:a"}
    assert list(report.columns) == ["group", "case_id", "patient_id", "resolution"]


def test_no_duplicates_gives_an_empty_report():
    df = frame([{"case_id": "a", "patient_id": "p1", "pixel_sha256": "1"},
                {"case_id": "b", "patient_id": "p1", "pixel_sha256": "2"}])
    report = splits.resolve_duplicates(df, ["plane"])
    assert report.empty
    assert list(df["exclusion"]) == ["", ""]


# --- patient_groups ---------------------------------------------------------------------------


def test_patient_groups_link_transitively():
    df = frame([
        {"case_id": "1", "patient_id": "pC", "pixel_sha256": "x"},
        {"case_id": "2", "patient_id": "pB", "pixel_sha256": "x"},   # pB ~ pC
        {"case_id": "3", "patient_id": "pB", "pixel_sha256": "y"},
        {"case_id": "4", "patient_id": "pA", "pixel_sha256": "y"},   # pA ~ pB
        {"case_id": "5", "patient_id": "pD", "pixel_sha256": "z"},
        {"case_id": "6", "patient_id": "pE", "pixel_sha256": "w"},
        {"case_id": "7", "patient_id": "pF", "pixel_sha256": "w"},   # pE ~ pF
        {"case_id": "8", "patient_id": "pD", "pixel_sha256": "v"},   # same patient twice: no link
    ])
    groups = splits.patient_groups(df)
    assert groups == {"pA": "pA", "pB": "pA", "pC": "pA", "pD": "pD", "pE": "pE", "pF": "pE"}


def test_patient_groups_long_chain_in_any_order():
    n = 50
    rows = [{"case_id": f"c{i}a", "patient_id": f"p{i:03d}", "pixel_sha256": f"h{i}"} for i in range(n)]
    rows += [{"case_id": f"c{i}b", "patient_id": f"p{i:03d}", "pixel_sha256": f"h{i + 1}"} for i in range(n - 1)]
    df = frame(rows).sample(frac=1, random_state=3)
    groups = splits.patient_groups(df)
    assert set(groups.values()) == {"p000"}
    assert len(groups) == n


# --- assign with official splits --------------------------------------------------------------


def official_frame(n: int = 400) -> pd.DataFrame:
    rows = []
    for i in range(n):
        split = "test" if i % 3 == 0 else "train"
        for k in range(2):
            rows.append({"case_id": f"c{i}_{k}", "patient_id": f"p{i}", "official_split": split,
                         "pixel_sha256": f"h{i}_{k}"})
    return frame(rows)


def test_official_test_stays_test_and_val_only_from_train():
    df = official_frame()
    warnings = splits.assign(df, "ds", {"val_fraction": 0.25, "test_fraction": 0.2})
    assert warnings == []
    test = df["official_split"] == "test"
    assert (df.loc[test, "split"] == "test").all()
    assert set(df.loc[~test, "split"]) == {"train", "val"}
    assert (df.loc[df["split"] == "val", "official_split"] == "train").all()
    # roughly val_fraction of the train patients (≈ 267 of them) go to validation
    train_patients = df.loc[~test].drop_duplicates("patient_id")
    share = (train_patients["split"] == "val").mean()
    assert 0.15 < share < 0.35
    splits.check_disjoint(df, "ds")


def test_official_val_is_kept():
    df = frame([
        {"case_id": "a", "patient_id": "p1", "official_split": "val", "pixel_sha256": "1"},
        {"case_id": "b", "patient_id": "p2", "official_split": "test", "pixel_sha256": "2"},
    ])
    splits.assign(df, "ds", {"val_fraction": 0.0, "test_fraction": 0.2})
    assert by_case(df, "split") == {"a": "val", "b": "test"}


def test_zero_val_fraction_keeps_official_train():
    df = official_frame(60)
    splits.assign(df, "ds", {"val_fraction": 0.0, "test_fraction": 0.2})
    assert (df["split"] == df["official_split"]).all()


def test_same_patient_same_split_with_official_splits():
    df = official_frame()
    splits.assign(df, "ds", CURATION)
    assert (df.groupby("patient_id")["split"].nunique() == 1).all()


def test_linked_patients_are_carved_together_and_withheld_test_labels_are_carved():
    """Two train patients sharing an image hash by their group, so they land in one split. Every
    case is official train (the publisher withheld its test labels, like KiTS19): test is carved
    from train by patient hash too, and said."""
    rows = []
    for i in range(200):
        rows.append({"case_id": f"a{i}", "patient_id": f"p{i}a", "official_split": "train", "pixel_sha256": f"s{i}"})
        rows.append({"case_id": f"b{i}", "patient_id": f"p{i}b", "official_split": "train", "pixel_sha256": f"s{i}"})
    df = frame(rows)
    warnings = splits.assign(df, "ds", {"val_fraction": 0.3, "test_fraction": 0.2})
    assert warnings == ["the official split holds no labelled test case: test carved from train by patient hash (test_fraction 0.2)"]
    pairs = df.assign(pair=df["case_id"].str[1:]).groupby("pair")["split"].nunique()
    assert (pairs == 1).all()
    share = df["split"].value_counts(normalize=True)
    assert set(share.index) == {"train", "val", "test"}
    assert 0.1 < share["test"] < 0.3 and 0.2 < share["val"] < 0.4


def test_linked_patients_in_different_official_splits_warn():
    df = frame([
        {"case_id": "a", "patient_id": "pA", "official_split": "train", "pixel_sha256": "same"},
        {"case_id": "b", "patient_id": "pB", "official_split": "test", "pixel_sha256": "same"},
        {"case_id": "c", "patient_id": "pC", "official_split": "train", "pixel_sha256": "other"},
        {"case_id": "d", "patient_id": "pD", "official_split": "test", "pixel_sha256": "other2"},
    ])
    warnings = splits.assign(df, "ds", {"val_fraction": 0.0, "test_fraction": 0.2})
    assert len(warnings) == 1
    assert "pA, pB" in warnings[0]
    assert "test/train" in warnings[0]
    assert "pC" not in warnings[0] and "pD" not in warnings[0]
    assert by_case(df, "split") == {"a": "train", "b": "test", "c": "train", "d": "test"}


def test_mixed_official_and_missing_splits_raise():
    df = frame([
        {"case_id": "a", "patient_id": "p1", "official_split": "train", "pixel_sha256": "1"},
        {"case_id": "b", "patient_id": "p2", "official_split": "", "pixel_sha256": "2"},
    ])
    with pytest.raises(MedcurateError, match="^ds: some cases have an official split and others none$"):
        splits.assign(df, "ds", CURATION)


# --- assign without official splits -----------------------------------------------------------


def synthetic(n_patients: int = 2000, per_patient: int = 2) -> pd.DataFrame:
    rows = [{"case_id": f"case{p:05d}_{k}", "patient_id": f"patient{p:05d}", "pixel_sha256": f"px{p}_{k}"}
            for p in range(n_patients) for k in range(per_patient)]
    return frame(rows)


def test_hash_splits_respect_fractions():
    df = synthetic()
    warnings = splits.assign(df, "fetal_planes_db", {"val_fraction": 0.1, "test_fraction": 0.2})
    assert warnings == []
    shares = df.drop_duplicates("patient_id")["split"].value_counts(normalize=True)
    assert set(shares.index) == {"train", "val", "test"}
    assert abs(shares["test"] - 0.2) < 0.03
    assert abs(shares["val"] - 0.1) < 0.03
    assert abs(shares["train"] - 0.7) < 0.03
    splits.check_disjoint(df, "fetal_planes_db")


@pytest.mark.parametrize("val, test", [(0.0, 0.0), (0.0, 0.5), (0.3, 0.0)])
def test_hash_splits_edge_fractions(val, test):
    df = synthetic(500, 1)
    splits.assign(df, "ds", {"val_fraction": val, "test_fraction": test})
    counts = df["split"].value_counts(normalize=True)
    assert ("val" in counts) == (val > 0)
    assert ("test" in counts) == (test > 0)
    if test:
        assert abs(counts["test"] - test) < 0.07
    if val:
        assert abs(counts["val"] - val) < 0.07


def test_hash_splits_deterministic_and_order_independent():
    a = synthetic(600)
    splits.assign(a, "ds", CURATION)
    b = synthetic(600)
    splits.assign(b, "ds", CURATION)
    assert by_case(a, "split") == by_case(b, "split")
    shuffled = synthetic(600).sample(frac=1, random_state=7).reset_index(drop=True)
    splits.assign(shuffled, "ds", CURATION)
    assert by_case(shuffled, "split") == by_case(a, "split")
    # a different dataset name draws differently
    other = synthetic(600)
    splits.assign(other, "another_ds", CURATION)
    assert by_case(other, "split") != by_case(a, "split")


def test_hash_splits_are_stable_when_cases_are_added():
    """A patient's split depends only on the patient, not on who else is in the manifest."""
    small = synthetic(300)
    splits.assign(small, "ds", CURATION)
    big = synthetic(900)
    splits.assign(big, "ds", CURATION)
    assert all(by_case(big, "split")[c] == s for c, s in by_case(small, "split").items())


def test_hash_splits_keep_linked_patients_together():
    rows = []
    for i in range(300):
        rows.append({"case_id": f"a{i}", "patient_id": f"q{i}a", "pixel_sha256": f"s{i}"})
        rows.append({"case_id": f"b{i}", "patient_id": f"q{i}b", "pixel_sha256": f"s{i}"})
    df = frame(rows)
    splits.assign(df, "ds", {"val_fraction": 0.2, "test_fraction": 0.3})
    pairs = df.assign(pair=df["case_id"].str[1:]).groupby("pair")["split"].nunique()
    assert (pairs == 1).all()
    assert set(df["split"]) == {"train", "val", "test"}


# --- check_disjoint ---------------------------------------------------------------------------


def test_check_disjoint_names_leaking_patient():
    df = frame([
        {"case_id": "a", "patient_id": "p_ok", "pixel_sha256": "1"},
        {"case_id": "b", "patient_id": "p_leak", "pixel_sha256": "2"},
        {"case_id": "c", "patient_id": "p_leak", "pixel_sha256": "3"},
        {"case_id": "d", "patient_id": "p_ok", "pixel_sha256": "4"},
    ])
    df["split"] = ["train", "train", "test", "train"]
    with pytest.raises(MedcurateError) as info:
        splits.check_disjoint(df, "ds")
    msg = str(info.value)
    assert msg.startswith("ds: 1 patient(s) in more than one split")
    assert "p_leak: test/train" in msg
    assert "p_ok" not in msg


def test_check_disjoint_passes_when_disjoint():
    df = frame([
        {"case_id": "a", "patient_id": "p1", "pixel_sha256": "1"},
        {"case_id": "b", "patient_id": "p1", "pixel_sha256": "2"},
        {"case_id": "c", "patient_id": "p2", "pixel_sha256": "3"},
    ])
    df["split"] = ["val", "val", "test"]
    assert splits.check_disjoint(df, "ds") is None


# --- unit_hash --------------------------------------------------------------------------------

SAMPLES = [("fetal_planes_db", "patient001"), ("ds", ""), ("ds", "Ünïcode/ключ"), ("a", "b:c")]


def test_unit_hash_range_and_stability():
    for ds, key in SAMPLES:
        u = splits.unit_hash(ds, key)
        assert isinstance(u, float)
        assert 0.0 <= u < 1.0
        assert splits.unit_hash(ds, key) == u
    values = {splits.unit_hash("ds", f"p{i}") for i in range(2000)}
    assert len(values) == 2000
    assert min(values) < 0.01 and max(values) > 0.99
    assert splits.unit_hash("ds1", "p") != splits.unit_hash("ds2", "p")


def test_unit_hash_is_the_same_in_a_fresh_interpreter():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from medcurate.splits import unit_hash\n"
        f"print('\\n'.join(repr(unit_hash(d, k)) for d, k in {SAMPLES!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "workflow")], capture_output=True,
                         text=True, check=True, env={"PYTHONHASHSEED": "12345", "PYTHONIOENCODING": "utf-8"})
    fresh = [float(line) for line in out.stdout.split()]
    assert fresh == [splits.unit_hash(d, k) for d, k in SAMPLES]


def test_patient_in_two_official_splits_fails_or_moves_wholly_to_test():
    """CBIS-DDSM's official split puts some women in train (mass) and test (calc)."""
    df = pd.DataFrame({"case_id": ["a", "b", "c"], "patient_id": ["P_1", "P_1", "P_2"],
                       "official_split": ["train", "test", "train"], "exclusion": "", "pixel_sha256": ["1", "2", "3"]})
    splits.assign(df, "ds", {"val_fraction": 0.0, "test_fraction": 0.2})
    with pytest.raises(MedcurateError, match="P_1: test/train"):
        splits.check_disjoint(df, "ds")
    warnings = splits.assign(df, "ds", {"val_fraction": 0.0, "test_fraction": 0.2, "split_conflicts": "move_to_test"})
    assert list(df["split"]) == ["test", "test", "train"] and list(df["official_split"]) == ["train", "test", "train"]
    assert warnings == ["1 patient(s) in several official splits moved wholly to test: P_1"]
    splits.check_disjoint(df, "ds")


def test_patient_ids_differing_by_case_or_whitespace_are_one_patient():
    df = frame([
        {"case_id": "c1", "patient_id": "P_00038", "pixel_sha256": "a" * 64},
        {"case_id": "c2", "patient_id": " P_00038 ", "pixel_sha256": "b" * 64},
        {"case_id": "c3", "patient_id": "p_00038", "pixel_sha256": "c" * 64},
        {"case_id": "c4", "patient_id": "P_00039", "pixel_sha256": "d" * 64},
    ])
    step = {"id": "ds", "labels": {"classes": {"plane": ["Fetal brain"]}},
            "split": {**CURATION, "dedupe": True, "near_duplicates": None}}
    table, _, warnings = splits.split_dataset(df, step, [])
    assert set(table.loc[table.case_id.isin(["c1", "c2", "c3"]), "patient_id"]) == {"P_00038"}
    assert table.loc[table.case_id.isin(["c1", "c2", "c3"]), "split"].nunique() == 1
    assert "1 patient id(s) had surrounding whitespace, removed" in warnings
    assert any("letter case taken as one patient: P_00038/p_00038" in w for w in warnings)
    assert set(df["patient_id"]) == {"P_00038", " P_00038 ", "p_00038", "P_00039"}  # the input is not changed


def test_cv_folds_group_patients_and_keep_the_published_split():
    # ACDC-like: two frames per patient; 3 val patients, 17 train, 4 test
    rows = [(f"p{i:02d}_{ph}", f"p{i:02d}", "val" if i < 3 else "test" if i >= 20 else "train")
            for i in range(24) for ph in ("ED", "ES")]
    df = pd.DataFrame(rows, columns=["case_id", "patient_id", "split"])
    fold = splits.cv_folds(df, "acdc")
    assert fold == splits.cv_folds(df.sample(frac=1, random_state=1), "acdc")  # row order does not matter
    assert not any(c.startswith(("p20", "p21", "p22", "p23")) for c in fold)  # test cases have no fold
    assert {c for c, f in fold.items() if f == 0} == set(df.loc[df.split == "val", "case_id"])
    folds = splits.nnunet_splits(df, "acdc")
    patient = dict(zip(df.case_id, df.patient_id))
    assert len(folds) == 5
    for f in folds:
        assert not {patient[c] for c in f["train"]} & {patient[c] for c in f["val"]}  # no patient on both sides
        assert sorted(f["train"] + f["val"]) == sorted(fold)
    sizes = sorted(len(f["val"]) // 2 for f in folds[1:])
    assert sizes == [4, 4, 4, 5]  # 17 train patients spread evenly over folds 1-4
    # without val patients every fold is drawn from the patient hash
    df["split"] = df["split"].replace("val", "train")
    assert sorted({f for f in splits.cv_folds(df, "acdc").values()}) == [0, 1, 2, 3, 4]
