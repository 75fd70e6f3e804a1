"""The typed manifest (medcurate.load), the exports' layouts, determinism and checksums, the
five patient-grouped folds, the export command and rules -- without the client libraries
(test_clients.py reads the same exports with them)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import medcurate
from medcurate import columns
from medcurate.errors import MedcurateError
from medcurate.exports import KINDS, applicable, export


TASKS = {"fetal_planes_db": "classification", "chestxray14": "classification", "drive": "segmentation",
         "inbreast": "segmentation", "acdc": "volume_segmentation"}


def sums_ok(folder):
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    listed = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    assert sorted(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_load_types_ids_lists_and_labels(demo):
    df = medcurate.load(demo("chestxray14"))
    assert df["patient_id"].iloc[0] == "00000001" and df["case_id"].iloc[0] == "00000001_000"  # not 1
    assert str(df["width"].dtype) == "Int64" and str(df["curated"].dtype) == "Int64"
    assert list(df["effusion"].cat.categories) == ["0", "1"]
    info = json.loads((demo("chestxray14") / "dataset.json").read_text())
    assert info["columns"]["patient_id"] == "string" and info["columns"]["effusion"] == "category"
    seg = medcurate.load(demo("inbreast"), curated=True)
    assert all(isinstance(v, list) and all(isinstance(x, int) for x in v) for v in seg["mask_labels"])
    assert [1, 2] in list(seg["mask_labels"]) and all(isinstance(v, list) for v in seg["roi_types"])
    assert list(seg["birads"].cat.categories) == ["1", "2", "3", "4a", "4b", "4c", "5", "6"]
    assert (seg["curated"] == 1).all() and seg.attrs["dataset"]["id"] == "inbreast"
    test = medcurate.load(demo("inbreast"), split="test")
    assert set(test["split"]) == {"test"} and len(test) < len(medcurate.load(demo("inbreast")))
    with pytest.raises(MedcurateError, match="unknown split"):
        medcurate.load(demo("inbreast"), split="training")


def test_load_refuses_a_folder_that_is_not_a_results_folder(tmp_path):
    with pytest.raises(MedcurateError, match="no dataset.json"):
        medcurate.load(tmp_path)


def test_column_types_one_list_separator_and_leading_zeros():
    raw = pd.DataFrame({"case_id": ["01", "02"], "site": ["007", "010"], "mask_labels": ["1 2", ""],
                        "spacing": ["0.5 0.5 3", "1 1 2"], "score": ["3", ""], "ratio": ["0.5", "1e-3"],
                        "mask_extra": ["masks_x/a.png", "masks_x/b.png"], "note": ["a b", "c"], "grade": ["B", ""]})
    types = columns.column_types(raw, {"classes": {"grade": ["M", "B"]}})
    assert types == {"case_id": "string", "site": "string", "mask_labels": "list[int]", "spacing": "list[float]",
                     "score": "int", "ratio": "float", "mask_extra": "path", "note": "string", "grade": "category"}
    df = columns.apply(raw, types, {"classes": {"grade": ["M", "B"]}})
    assert list(df["mask_labels"]) == [[1, 2], []] and df["spacing"][0] == [0.5, 0.5, 3.0]
    assert df["score"].isna().tolist() == [False, True] and df["site"].tolist() == ["007", "010"]
    assert df["grade"].cat.codes.tolist() == [1, -1]
    with pytest.raises(ValueError, match="'grade' holds \\['X'\\]"):
        columns.apply(raw.assign(grade=["X", "B"]), types, {"classes": {"grade": ["M", "B"]}})


@pytest.mark.parametrize("dataset", sorted(TASKS))
def test_every_applicable_export_is_deterministic_and_checksummed(demo, exported, tmp_path, dataset):
    for kind in KINDS:
        if not applicable(kind, medcurate.load(demo(dataset)).attrs["dataset"]):
            with pytest.raises(MedcurateError, match=f"no {kind} export|multi-label set has no ImageFolder"):
                export(kind, demo(dataset), tmp_path / kind)
            continue
        first = exported(dataset, kind)
        sums_ok(first)
        again = export(kind, demo(dataset), tmp_path / kind)
        assert (again / "SHA256SUMS").read_bytes() == (first / "SHA256SUMS").read_bytes(), kind


def test_webdataset_shards_are_reproducible_tars(exported):
    folder = exported("chestxray14", "webdataset")
    shards = sorted(folder.glob("*.tar"))
    assert [s.name for s in shards] == ["test-000000.tar", "train-000000.tar", "val-000000.tar"]
    with tarfile.open(shards[1]) as tar:
        members = tar.getmembers()
    assert all(m.mtime == 0 and m.uid == m.gid == 0 and m.uname == m.gname == "" and m.mode == 0o644 for m in members)
    keys = [m.name.split(".", 1)[0] for m in members]
    assert keys == sorted(keys)
    by_name = {m.name for m in members}
    assert all(f"{k}.png" in by_name and f"{k}.json" in by_name and f"{k}.labels.json" in by_name for k in keys)


def test_imagefolder_links_not_copies(demo, exported):
    folder = exported("fetal_planes_db", "imagefolder")
    df = medcurate.load(demo("fetal_planes_db"), curated=True)
    row = df.iloc[0]
    linked = folder / row["split"] / str(row["plane"]) / row["image"].split("/")[-1]
    assert linked.stat().st_ino == (demo("fetal_planes_db") / row["image"]).stat().st_ino
    files = sorted(folder.rglob("*.png"))
    assert len(files) == len(df)
    assert json.loads((folder / "classes.json").read_text())["label"] == "plane"


def _patients_disjoint(folds, patient):
    assert len(folds) == 5
    for f in folds:
        assert not {patient[c] for c in f["train"]} & {patient[c] for c in f["val"]}


@pytest.mark.parametrize("dataset", ["drive", "inbreast", "acdc"])
def test_nnunet_export_layout_and_five_patient_folds(demo, exported, dataset):
    folder = next(exported(dataset, "nnunet").glob("Dataset*_" + dataset))
    spec = json.loads((folder / "dataset.json").read_text())
    df = medcurate.load(demo(dataset), curated=True)
    trainval = df[df["split"] != "test"]
    assert spec["numTraining"] == len(trainval) == len(list((folder / "imagesTr").iterdir()))
    assert sorted(spec["labels"].values()) == list(range(len(spec["labels"])))
    folds = json.loads((folder / "splits_final.json").read_text())
    _patients_disjoint(folds, dict(zip(df.case_id, df.patient_id)))
    assert sorted(folds[0]["val"]) == sorted(trainval.loc[trainval.split == "val", "case_id"])
    if dataset == "drive":  # RGB: one _0000 file, three channels
        assert spec["channel_names"] == {"0": "R", "1": "G", "2": "B"} and spec["file_ending"] == ".png"
        assert Image.open(next((folder / "imagesTr").iterdir())).mode == "RGB"


def test_nnunet_export_makes_label_values_consecutive(demo, tmp_path):
    results = tmp_path / "results" / "drive"
    shutil.copytree(demo("drive"), results)
    info = json.loads((results / "dataset.json").read_text())
    info["labels"]["mask"] = {"background": 0, "vessel": 7}
    (results / "dataset.json").write_text(json.dumps(info))
    for mask in (results / "masks").glob("*.png"):
        arr = np.asarray(Image.open(mask))
        mask.unlink()  # a hard link into the session's build: replace, do not write through
        Image.fromarray((arr * 7).astype(np.uint8)).save(mask)
    folder = next(export("nnunet", results).glob("Dataset*"))
    assert json.loads((folder / "dataset.json").read_text())["labels"] == {"background": 0, "vessel": 1}
    values = set()
    for mask in (folder / "labelsTr").iterdir():
        values |= set(np.unique(np.asarray(Image.open(mask))).tolist())
    assert values == {0, 1}
    sums_ok(folder.parent)


def test_volume_results_carry_five_patient_folds(demo):
    df = medcurate.load(demo("acdc"), curated=True)
    folds = json.loads((demo("acdc") / "nnunet" / "splits_final.json").read_text())
    _patients_disjoint(folds, dict(zip(df.case_id, df.patient_id)))
    for f in folds:  # both frames of a patient on one side
        for side in ("train", "val"):
            ids = set(f[side])
            assert all({f"{c.rsplit('_', 1)[0]}_ED", f"{c.rsplit('_', 1)[0]}_ES"} <= ids for c in ids)


def test_monai_datalist_has_fold_keys(demo, exported):
    data = json.loads((exported("acdc", "monai") / "datalist.json").read_text())
    df = medcurate.load(demo("acdc"), curated=True)
    assert len(data["training"]) == int((df.split != "test").sum()) and len(data["test"]) == int((df.split == "test").sum())
    assert {d["fold"] for d in data["training"]} <= set(range(5))
    by_patient = {}
    for d in data["training"]:
        by_patient.setdefault(d["patient_id"], set()).add(d["fold"])
    assert all(len(f) == 1 for f in by_patient.values())
    from medcurate import monai as mm

    items = mm.data_dicts(demo("acdc"), split=["train", "val"])
    train, val = mm.fold(items, 0)
    assert {d["case_id"] for d in val} == set(df.loc[df.split == "val", "case_id"]) and train


def test_hf_metadata_names_images_masks_and_class_indices(demo, exported):
    folder = exported("fetal_planes_db", "hf")
    rows = [json.loads(line) for line in (folder / "train" / "metadata.jsonl").read_text().splitlines()]
    df = medcurate.load(demo("fetal_planes_db"), split="train", curated=True).set_index("case_id")
    for r in rows:
        assert (folder / "train" / r["file_name"]).is_file()
        assert r["plane"] == list(df["plane"].cat.categories).index(df.loc[r["case_id"], "plane"])
    seg = [json.loads(line) for line in (exported("drive", "hf") / "test" / "metadata.jsonl").read_text().splitlines()]
    assert all((exported("drive", "hf") / "test" / r["mask_file_name"]).is_file() for r in seg)


def test_export_command(demo, tmp_path):
    out = tmp_path / "croissant"
    done = subprocess.run([sys.executable, "-m", "medcurate", "export", "croissant", str(demo("drive")), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "croissant.json").read_text())["license"]
    bad = subprocess.run([sys.executable, "-m", "medcurate", "export", "imagefolder", str(demo("drive"))],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "no imagefolder export" in bad.stderr


def _jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> job count."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_export_rules_stay_outside_all(snakemake_bin, tmp_path):
    root = Path(__file__).resolve().parents[1]
    cmd = [snakemake_bin, "-s", str(root / "Snakefile"), "--directory", str(tmp_path), "-n",
           "--configfile", str(root / "config" / "sample.yaml"), "--config", "datasets=[drive,fetal_planes_db,chestxray14]"]
    every = subprocess.run(cmd + ["--", "exports"], capture_output=True, text=True)
    assert every.returncode == 0, every.stderr
    # drive: hf nnunet monai webdataset croissant; fetal_planes_db: hf imagefolder monai webdataset
    # croissant; chestxray14 (multi-label): the same less imagefolder
    assert _jobs(every.stdout)["export"] == 14
    one = subprocess.run(cmd + ["--", "exports/drive/nnunet"], capture_output=True, text=True)
    assert one.returncode == 0 and _jobs(one.stdout)["export"] == 1
    default = subprocess.run(cmd, capture_output=True, text=True)
    assert default.returncode == 0 and "export" not in _jobs(default.stdout)


def test_croissant_lists_the_publisher_sources_with_checksums(demo, tmp_path):
    results = tmp_path / "results" / "drive"
    shutil.copytree(demo("drive"), results)
    info = json.loads((results / "dataset.json").read_text())
    info["sources"] = [{"name": "DRIVE.zip", "url": "https://example.org/DRIVE.zip", "sha256": "ab" * 32, "size": 10},
                       {"name": "placed.zip", "origin": "manual", "sha256": "cd" * 32}]
    (results / "dataset.json").write_text(json.dumps(info))
    doc = json.loads((export("croissant", results) / "croissant.json").read_text())
    sources = [d for d in doc["distribution"] if d["@id"].startswith("source-")]
    assert [(s["contentUrl"], s["sha256"]) for s in sources] == [("https://example.org/DRIVE.zip", "ab" * 32), ("placed.zip", "cd" * 32)]
    assert doc["license"] == info["license"] and doc["citeAs"] == info["citation"]
    assert [r["splits/name"] for r in doc["recordSet"][0]["data"]] == ["train", "val", "test"]


def test_harmonised_columns_are_typed_and_kept_out_of_the_target(demo, exported):
    from medcurate import outputs

    df = medcurate.load(demo("chestxray14"))
    meta = df.attrs["dataset"]
    harmonised = [c for c in df.columns if c.startswith("h_")]
    assert harmonised and all(str(df[c].dtype) == "Int64" for c in harmonised)
    target = outputs.label_columns(meta)
    assert target and not set(target) & set(harmonised) and outputs.is_multilabel(meta)
    shard = sorted(exported("chestxray14", "webdataset").glob("train-*.tar"))[0]
    with tarfile.open(shard) as tar:
        vector = json.loads(next(tar.extractfile(m) for m in tar.getmembers() if m.name.endswith(".labels.json")).read())
    assert len(vector) == len(target)


def test_a_set_labelled_only_by_harmonised_terms_trains_on_those_it_provides(demo):
    from medcurate import outputs

    meta = medcurate.load(demo("openi")).attrs["dataset"]
    target = outputs.label_columns(meta)
    classes = meta["labels"]["classes"]
    assert target and all(c.startswith("h_") and outputs.binary(classes[c]) for c in target)
    assert "h_lung_lesion" not in target  # Open-i cannot provide it: blank only
    assert outputs.is_multilabel(meta)
