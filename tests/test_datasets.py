"""Dataset modules: parsing of the real publisher excerpts and of the sample mirror, and the
generic convert/gather path (quarantine, dedupe, leakage) on real-layout inputs."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build, unpacked
from medcurate import datasets
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.errors import MedcurateError
from PIL import Image


def _fake_images(paths: list[Path]) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), len(p.name), np.uint8)).save(p)


# ------------------------------------------------------------------ real excerpts


@pytest.mark.realdata
def test_fetal_planes_real_excerpt_parses(realdata, tmp_path, plans):
    excerpt = realdata / "FETAL_PLANES_DB" / "FETAL_PLANES_DB_data.EXCERPT.csv"
    shutil.copy(excerpt, tmp_path / "FETAL_PLANES_DB_data.csv")
    cases = datasets.load("fetal_planes_db").cases(tmp_path, plans["fetal_planes_db"])
    raw = excerpt.read_text().splitlines()
    assert len(cases) == len(raw) - 1
    classes = plans["fetal_planes_db"]["labels"]["classes"]
    for case, line in zip(cases, raw[1:]):
        cells = line.split(";")
        assert case.case_id == cells[0]
        assert case.patient_id == f"Patient{int(cells[1]):05d}"
        assert case.labels == {"plane": cells[2], "brain_plane": cells[3]}
        assert case.labels["plane"] in classes["plane"] and case.labels["brain_plane"] in classes["brain_plane"]
        assert case.split == {"1 ": "train", "0 ": "test"}[cells[6]]  # values carry a trailing space
        assert case.image == tmp_path / "Images" / f"{cells[0]}.png"
        assert case.meta == {"operator": cells[4], "us_machine": cells[5]}


@pytest.mark.realdata
def test_african_real_excerpt_parses(realdata, tmp_path, plans):
    excerpt = realdata / "African_fetal_planes" / "African_planes_database.EXCERPT.csv"
    shutil.copy(excerpt, tmp_path / "African_planes_database.csv")
    cases = datasets.load("african_fetal_planes").cases(tmp_path, plans["african_fetal_planes"])
    rows = list(csv.DictReader(excerpt.open()))
    assert len(cases) == len(rows)
    for case, row in zip(cases, rows):
        assert case.image == tmp_path / row["Center"] / f"{row['Filename']}.png"
        assert case.patient_id == f"{row['Center']}-{int(row['Patient_num']):03d}"
        assert case.labels["plane"] in plans["african_fetal_planes"]["labels"]["classes"]["plane"]
        assert case.split == {"1": "train", "0": "test"}[row["Train"]]


@pytest.mark.realdata
def test_sample_csvs_match_real_formats(realdata, mirror, tmp_path):
    """The sample mirror's CSVs have the real header (modulo the documented 'Train ' space),
    delimiter, trailing-space values, and name patterns of the real excerpts."""
    root = unpacked(mirror, "fetal_planes_db", tmp_path / "fp")
    sample = (root / "FETAL_PLANES_ZENODO" / "FETAL_PLANES_DB_data.csv").read_text().splitlines()
    real = (realdata / "FETAL_PLANES_DB" / "FETAL_PLANES_DB_data.EXCERPT.csv").read_text().splitlines()
    assert [c.strip() for c in sample[0].split(";")] == real[0].split(";")
    assert sample[0].endswith("Train ")  # the original header's trailing space (DATASETS.md)
    assert all(line.endswith((";1 ", ";0 ")) for line in real[1:] + sample[1:])
    pattern = r"^Patient\d{5}_Plane[1-6]_\d+_of_\d+$"
    assert pd.Series([l.split(";")[0] for l in real[1:] + sample[1:]]).str.match(pattern).all()

    root = unpacked(mirror, "african_fetal_planes", tmp_path / "af")
    sample = (root / "Zenodo_dataset" / "Zenodo_dataset" / "African_planes_database.csv").read_text().splitlines()
    real = (realdata / "African_fetal_planes" / "African_planes_database.EXCERPT.csv").read_text().splitlines()
    assert sample[0] == real[0]
    pattern = r"^patient\d{3}_(DZA|EGY|GHA|MWI|UGA)_plane[0-3]$"
    assert pd.Series([l.split(",")[4] for l in real[1:] + sample[1:]]).str.match(pattern).all()


# ------------------------------------------------------------------ parser quirks


def test_fetal_planes_wrong_delimiter_names_file_and_columns(tmp_path, plans):
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text("Image_name,Patient_num,Plane\nx,1,Other\n")
    with pytest.raises(MedcurateError, match=r"FETAL_PLANES_DB_data.csv: missing column.*wrong delimiter"):
        datasets.load("fetal_planes_db").cases(tmp_path, plans["fetal_planes_db"])


def test_fetal_planes_bad_train_value(tmp_path, plans):
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(
        "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \nx;1;Other;Not A Brain;Other;Aloka;yes \n")
    with pytest.raises(MedcurateError, match=r"line 2: Train must be 1 or 0, got 'yes'"):
        datasets.load("fetal_planes_db").cases(tmp_path, plans["fetal_planes_db"])


def test_missing_annotation_file_is_named(tmp_path, plans):
    with pytest.raises(MedcurateError, match="African_planes_database.csv' not found"):
        datasets.load("african_fetal_planes").cases(tmp_path, plans["african_fetal_planes"])


def test_african_patient_key_includes_country(mirror, tmp_path, plans):
    root = unpacked(mirror, "african_fetal_planes", tmp_path)
    cases = enumerate_cases(root, plans["african_fetal_planes"])
    by_patient = {}
    for c in cases:
        by_patient.setdefault(c.patient_id, set()).add(c.meta["center"])
    assert all(len(centres) == 1 for centres in by_patient.values())
    assert {"Algeria-001", "Egypt-001", "Ghana-001", "Uganda-001"} <= by_patient.keys()  # numbers collide
    assert all(c.image.is_file() for c in cases)
    assert not any(c.labels["plane"] == "Fetal thorax" and c.meta["center"] in ("Ghana", "Uganda") for c in cases)


def test_fetal_head_layout_colours_and_provenance(mirror, tmp_path, plans):
    plan = plans["fetal_head_biometry"]
    root = unpacked(mirror, "fetal_head_biometry", tmp_path)
    module = datasets.load("fetal_head_biometry")
    cases = {c.case_id: c for c in enumerate_cases(root, plan)}
    assert len(cases) == 12
    tt = cases["Trans-thalamic__Patient00168_Plane3_1_of_3"]
    assert tt.meta["derived_from"] == "FETAL_PLANES_DB" and tt.patient_id == "Patient00168"
    assert tt.meta["pixel_mm"] == "0.1"  # from Trans-Thalamic-Pixel-Size.csv (BOM, capital T)
    assert cases["Trans-cerebellum__Patient01110_Plane3_1_of_1"].meta["pixel_mm"] == "0.12"  # "Pixel  in mm"
    hc = cases["Diverse_Fetal_Head_Images__010_2HC"]
    assert hc.meta["derived_from"] == "HC18" and hc.patient_id == "HC18-010" and hc.meta["pixel_mm"] == ""
    assert cases["Trans-ventricular__Patient00912_Plane3_1_of_2"].mask is None  # image without a mask
    # CSP is green in the plane subsets and yellow in the Diverse subset: both map to label 2.
    values = plan["labels"]["mask"]
    for case in (tt, hc):
        mask, actions = module.load_mask(case, plan)
        assert actions == [] and values["csp"] in np.unique(mask) and values["brain"] in np.unique(mask)


def test_fetal_head_labelmap_disagreeing_with_catalogue_fails(mirror, tmp_path, plans):
    root = unpacked(mirror, "fetal_head_biometry", tmp_path)
    labelmap = next((root / "Diverse Fetal Head Images").rglob("labelmap.txt"))
    labelmap.write_text(labelmap.read_text().replace("CSP:255,255,0", "CSP:0,255,0"))
    with pytest.raises(MedcurateError, match=r"labelmap.txt: 'CSP' is coloured \[0, 255, 0\]"):
        enumerate_cases(root, plans["fetal_head_biometry"])


def test_fetal_head_unknown_colour_is_quarantined(mirror, tmp_path, plans):
    plan = plans["fetal_head_biometry"]
    root = unpacked(mirror, "fetal_head_biometry", tmp_path)
    mask_path = next(root.rglob("SegmentationClass/000_HC.png"))
    rgb = np.asarray(Image.open(mask_path)).copy()
    rgb[:5, :5] = (0, 255, 0)  # green is CSP elsewhere, but not in the Diverse subset
    Image.fromarray(rgb).save(mask_path)
    out = tmp_path / "shard"
    convert_shard(root, plan, 0, 1, out)
    quarantine = pd.read_csv(out / "quarantine.csv")
    row = quarantine[quarantine.case_id == "Diverse_Fetal_Head_Images__000_HC"].iloc[0]
    assert "#00ff00" in row.reason and row.source.endswith("SegmentationClass/000_HC.png")


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
