"""The generic convert/gather path (quarantine, dedupe, leakage) on real-layout inputs (the fetal
sets as vehicles; each dataset's own parsing is tested in its folder)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build, unpacked
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.errors import MedcurateError
from PIL import Image


def _fake_images(paths: list[Path]) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), len(p.name), np.uint8)).save(p)


# ------------------------------------------------------------------ convert + gather


def test_corrupt_image_is_quarantined_and_listed(mirror, tmp_path, plans):
    plan = plans["fetal_planes_db"]
    root = unpacked(mirror, "fetal_planes_db", tmp_path / "root")
    victim = root / "FETAL_PLANES_ZENODO" / "Images" / "Patient00003_Plane5_1_of_2.png"
    victim.write_bytes(victim.read_bytes()[:200])  # truncated PNG
    out = tmp_path / "out"
    build(root, plan, tmp_path / "work", out, shards=2)
    quarantine = pd.read_csv(out / "quarantine.csv")
    assert list(quarantine.case_id) == ["Patient00003_Plane5_1_of_2"]
    assert "cannot decode image" in quarantine.reason[0]
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert "Patient00003_Plane5_1_of_2" not in set(manifest.case_id)
    assert json.loads((out / "dataset.json").read_text())["counts"]["quarantined"] == 1


def test_gather_output_contract_and_dedupe(mirror, tmp_path, plans):
    plan = plans["fetal_planes_db"]
    plan["split"]["val_fraction"] = 0.3  # ten train patients: make a validation split certain
    root = unpacked(mirror, "fetal_planes_db", tmp_path / "root")
    out = tmp_path / "out"
    build(root, plan, tmp_path / "work", out, shards=3)
    m = pd.read_csv(out / "manifest.csv", keep_default_na=False).set_index("case_id")
    assert list(m.columns[:5]) == ["patient_id", "split", "official_split", "image", "mask"]
    assert m.loc["Patient00002_Plane4_2_of_3", "exclusion"] == "duplicate_of:Patient00002_Plane4_1_of_3"
    assert m.loc["Patient00002_Plane4_1_of_3", "curated"] == 1
    for cid in ("Patient01272_Plane2_1_of_1", "Patient01272_Plane3_1_of_2"):  # cross-class duplicate
        assert m.loc[cid, "exclusion"].startswith("conflicting_duplicate:") and m.loc[cid, "curated"] == 0
    assert set(m.split) == {"train", "val", "test"}
    assert (m[m.official_split == "test"].split == "test").all()
    assert m.groupby("patient_id").split.nunique().max() == 1
    for cid, row in m.iterrows():
        im = Image.open(out / row.image)
        assert (im.width, im.height) == (row.width, row.height)
    sums = dict(reversed(l.split("  ")) for l in (out / "SHA256SUMS").read_text().splitlines())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(sums) == files
    info = json.loads((out / "dataset.json").read_text())
    assert info["counts"]["exclusions"] == {"conflicting_duplicate": 2, "duplicate_of": 1}
    assert info["config_digest"] == plan["config_digest"]


def test_official_split_leaking_a_patient_fails(mirror, tmp_path, plans):
    plan = plans["fetal_planes_db"]
    root = unpacked(mirror, "fetal_planes_db", tmp_path / "root")
    csv_path = root / "FETAL_PLANES_ZENODO" / "FETAL_PLANES_DB_data.csv"
    lines = csv_path.read_text().splitlines()
    lines = [l[:-2] + "0 " if l.startswith("Patient00001_Plane1_1_of_3;") else l for l in lines]
    csv_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    (out).mkdir()
    (out / "keep.txt").write_text("earlier output")
    with pytest.raises(MedcurateError, match=r"patient\(s\) in more than one split \(Patient00001: test/train"):
        build(root, plan, tmp_path / "work", out, shards=2)
    assert (out / "keep.txt").read_text() == "earlier output"  # nothing promoted, nothing lost


def test_duplicate_case_ids_fail(tmp_path, plans):
    header = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \n"
    row = "Patient00001_Plane1_1_of_1;1;Other;Not A Brain;Other;Aloka;1 \n"
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(header + row + row)
    with pytest.raises(MedcurateError, match="occurs twice"):
        enumerate_cases(tmp_path, plans["fetal_planes_db"])


def test_unknown_label_value_is_quarantined(tmp_path, plans):
    header = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \n"
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(
        header + "Patient00001_Plane1_1_of_1;1;Fetal heart;Not A Brain;Other;Aloka;1 \n")
    _fake_images([tmp_path / "Images" / "Patient00001_Plane1_1_of_1.png"])
    convert_shard(tmp_path, plans["fetal_planes_db"], 0, 1, tmp_path / "out")
    reason = pd.read_csv(tmp_path / "out" / "quarantine.csv").reason[0]
    assert "plane='Fetal heart' is not one of the catalogue's" in reason
