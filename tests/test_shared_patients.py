"""Cross-dataset split consistency (split.shared_patients / follow_shared_split) and the warning
for a split left without a curated case: the split step's functions, the plan's resolution and
the split step's report."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from conftest import ROOT
from medcurate import catalogue, splits
from medcurate.errors import MedcurateError

SHARED = {"dataset": "fetal_planes_db", "derived_from": "FETAL_PLANES_DB"}
OPTIONS = {"val_fraction": 0.2, "test_fraction": 0.25, "dedupe": True, "split_conflicts": "fail",
           "shared_patients": SHARED, "follow_shared_split": True, "split_source": "fetal_planes_db"}


def derived(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """(case_id, patient_id, derived_from, pixel_sha256) rows of a selected table."""
    return pd.DataFrame([{"case_id": c, "patient_id": p, "official_split": "", "pixel_sha256": px, "exclusion": "",
                          "derived_from": d, "mask_labels": "1", "mask_sha256": ""} for c, p, d, px in rows])


def source(splits_by_patient: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"case_id": f"{p}_x", "patient_id": p, "split": s} for p, s in splits_by_patient.items()])


def step(options: dict) -> dict:
    return {"id": "fetal_head_biometry", "task": "segmentation", "labels": {"mask": {"background": 0, "brain": 1}},
            "split": options}


def test_shared_patients_take_the_source_split_and_others_keep_their_hash():
    many = [(f"c{i}", f"Patient{i:05d}", "FETAL_PLANES_DB", f"px{i}") for i in range(60)]
    hc18 = [(f"h{i}", f"HC18-{i:03d}", "HC18", f"hx{i}") for i in range(40)]
    df = derived(many + hc18)
    theirs = {f"Patient{i:05d}": ("train", "val", "test")[i % 3] for i in range(50)}  # 50 of the 60 in the source
    alone = derived(many + hc18)
    splits.assign(alone, "fetal_head_biometry", OPTIONS)

    out, _, warnings = splits.split_dataset(df, step(OPTIONS), [], source(theirs))
    got = dict(zip(out["patient_id"], out["split"]))
    assert all(got[p] == s for p, s in theirs.items())
    # patients the source does not hold, and HC18 patients, keep the hash split of the old behaviour
    before = dict(zip(alone["patient_id"], alone["split"]))
    for p in [f"Patient{i:05d}" for i in range(50, 60)] + [f"HC18-{i:03d}" for i in range(40)]:
        assert got[p] == before[p]
    summary = out.attrs["shared_patients"]
    assert summary["patients"] == 50 and summary["not_in_source"] == 10
    assert summary["splits"] == {"train": 17, "val": 17, "test": 16}
    assert summary["moved_cases"] == sum(before[p] != s for p, s in theirs.items()) > 0
    assert warnings == []


def test_only_rows_marked_with_the_source_follow_it():
    """A patient id that happens to exist in the source but is marked derived from elsewhere keeps its own split."""
    df = derived([("a", "Patient00001", "HC18", "p1"), ("b", "Patient00002", "FETAL_PLANES_DB", "p2")])
    alone = df.copy()
    splits.assign(alone, "fetal_head_biometry", OPTIONS)
    flip = {"train": "test", "val": "test", "test": "train"}
    theirs = {p: flip[s] for p, s in zip(alone["patient_id"], alone["split"])}  # both differ from the hash split
    out, _, _ = splits.split_dataset(df, step(OPTIONS), [], source(theirs))
    got = dict(zip(out["patient_id"], out["split"]))
    assert got["Patient00002"] == theirs["Patient00002"]
    assert got["Patient00001"] == dict(zip(alone["patient_id"], alone["split"]))["Patient00001"]


def test_linked_patients_follow_together_to_the_strictest_split_with_a_warning():
    # Patient00001 and Patient00002 share an identical image here; the source has them apart.
    df = derived([("a", "Patient00001", "FETAL_PLANES_DB", "same"), ("b", "Patient00002", "FETAL_PLANES_DB", "same"),
                  ("c", "Patient00003", "", "other")])
    out, _, warnings = splits.split_dataset(df, step(OPTIONS), [], source({"Patient00001": "train", "Patient00002": "test"}))
    got = dict(zip(out["patient_id"], out["split"]))
    assert got["Patient00001"] == got["Patient00002"] == "test"
    assert any("train/test of fetal_planes_db" in w and "all put in test" in w for w in warnings)


def test_follow_off_or_missing_table():
    df = derived([(f"c{i}", f"Patient{i:05d}", "FETAL_PLANES_DB", f"px{i}") for i in range(30)])
    off = {**OPTIONS, "follow_shared_split": False, "split_source": None}
    a, _, _ = splits.split_dataset(df, step(off), [], source({f"Patient{i:05d}": "test" for i in range(30)}))
    alone = df.copy()
    splits.assign(alone, "fetal_head_biometry", off)
    assert list(a["split"]) == list(alone["split"]) and "shared_patients" not in a.attrs
    with pytest.raises(MedcurateError, match="split_source is fetal_planes_db, but its split table was not given"):
        splits.split_dataset(df, step(OPTIONS), [], None)


def test_split_step_report_and_bad_source_table(tmp_path):
    df = derived([(f"c{i}", f"Patient{i:05d}", "FETAL_PLANES_DB", f"px{i}") for i in range(12)])
    df.loc[df.index[:6], "exclusion"] = "empty_mask"
    df.to_csv(tmp_path / "selected.csv", index=False)
    src = tmp_path / "src"
    src.mkdir()
    source({f"Patient{i:05d}": "test" if i < 6 else "train" for i in range(12)}).to_csv(src / "table.csv", index=False)
    splits.split_step(tmp_path / "selected.csv", step(OPTIONS), [], tmp_path / "out", [src])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # the six test patients are all excluded: test and val have no curated case
    assert report["empty_splits"] == ["val", "test"]
    assert any(w.startswith("split 'test' has no curated case (6 case(s)") for w in report["warnings"])
    assert report["shared_patients"]["splits"] == {"train": 6, "val": 0, "test": 6}
    table = pd.read_csv(tmp_path / "out" / "table.csv", dtype=str)
    assert dict(zip(table["patient_id"], table["split"]))["Patient00000"] == "test"

    pd.DataFrame({"case_id": ["x"], "label": ["y"]}).to_csv(src / "table.csv", index=False)
    with pytest.raises(MedcurateError, match=r"src/table.csv.*needs patient_id and split"):
        splits.split_step(tmp_path / "selected.csv", step(OPTIONS), [], tmp_path / "out2", [src])


def test_empty_splits_lists_splits_without_a_curated_case():
    df = pd.DataFrame({"split": ["train", "train", "val", "test"], "curated": [0, 0, 1, 1]})
    assert splits.empty_splits(df) == ["train"]
    assert splits.empty_splits(df.assign(curated=1)) == []


def plan_of(datasets: list[str], options: dict | None = None) -> dict:
    raw = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())
    config = catalogue.load_config({**raw, "datasets": datasets, "options": options or {}}, ROOT)
    return catalogue.plan(catalogue.load_catalogue(config)["fetal_head_biometry"], config)


def test_plan_resolves_split_source_only_when_both_are_built_and_the_option_is_on():
    assert catalogue.step_slice(plan_of(["fetal_head_biometry", "fetal_planes_db"]), "split")["split"]["split_source"] == "fetal_planes_db"
    assert plan_of(["fetal_head_biometry"])["split"]["split_source"] is None
    off = plan_of(["fetal_planes_db", "fetal_head_biometry"], {"fetal_head_biometry": {"split": {"follow_shared_split": False}}})
    assert off["split"]["split_source"] is None
    # the slice (and so the step's parameter) differs: switching the option re-runs the split step
    assert plan_of(["fetal_head_biometry"])["config_digest"] != plan_of(["fetal_head_biometry", "fetal_planes_db"])["config_digest"]


def test_split_source_cannot_be_set_by_hand():
    with pytest.raises(Exception, match="split_source"):
        plan_of(["fetal_head_biometry"], {"fetal_head_biometry": {"split": {"split_source": "fetal_planes_db"}}})


# --- end to end: the demo with both fetal sets ---------------------------------------------------


def snakemake(workdir, config: dict, *args) -> str:
    import subprocess

    from conftest import snakemake_exe

    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [snakemake_exe(), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(workdir / "config.yaml"), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def manifest(workdir, ds: str) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / ds / "manifest.csv", dtype=str, keep_default_na=False)


@pytest.mark.e2e
def test_demo_shared_patients_land_in_the_same_split_in_both_folders(tmp_path):
    sample = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())
    both = {**sample, "datasets": ["fetal_planes_db", "fetal_head_biometry"]}
    snakemake(tmp_path, both, "--cores", 2)
    source, head = manifest(tmp_path, "fetal_planes_db"), manifest(tmp_path, "fetal_head_biometry")
    theirs = dict(zip(source["patient_id"], source["split"]))
    shared = head[(head["derived_from"] == "FETAL_PLANES_DB") & head["patient_id"].isin(theirs.keys())]
    assert shared["patient_id"].nunique() == 4  # Patient00001, 00003, 01769, 01771 are in both samples
    assert all(theirs[p] == s for p, s in zip(shared["patient_id"], shared["split"]))
    info = json.loads((tmp_path / "results" / "fetal_head_biometry" / "dataset.json").read_text())
    assert info["options"]["split"]["split_source"] == "fetal_planes_db"
    assert info["shared_patients"]["patients"] == 4 and info["shared_patients"]["moved_cases"] > 0

    # never stale: a change of the source's split re-runs the derived set's split step
    changed = {**both, "options": {**both["options"], "fetal_planes_db": {"split": {"val_fraction": 0.5}}}}
    jobs = snakemake(tmp_path, changed, "-n")
    assert re.search(r"output: work/fetal_head_biometry/split\n(.*\n){2}\s*reason: Input files updated by another job: work/fetal_planes_db/split", jobs)

    # option off: the old behaviour, the hash split of the derived set's own options
    off = {**both, "options": {**both["options"], "fetal_head_biometry": {
        **both["options"]["fetal_head_biometry"], "split": {**both["options"]["fetal_head_biometry"]["split"], "follow_shared_split": False}}}}
    snakemake(tmp_path, off, "--cores", 2)
    head = manifest(tmp_path, "fetal_head_biometry")
    expected = head.drop(columns="split").copy()
    splits.assign(expected, "fetal_head_biometry", off["options"]["fetal_head_biometry"]["split"] | {"val_fraction": 0.2, "test_fraction": 0.25})
    assert list(head["split"]) == list(expected["split"])
    shared = head[(head["derived_from"] == "FETAL_PLANES_DB") & head["patient_id"].isin(theirs.keys())]
    assert any(theirs[p] != s for p, s in zip(shared["patient_id"], shared["split"]))  # the leak the option closes
    info = json.loads((tmp_path / "results" / "fetal_head_biometry" / "dataset.json").read_text())
    assert info["options"]["split"]["split_source"] is None and "shared_patients" not in info

    # the derived set alone: no job of the source set is planned
    alone = snakemake(tmp_path, {**sample, "datasets": ["fetal_head_biometry"]}, "-n", "--forceall")
    assert "fetal_planes_db" not in alone
