"""Fetal head biometry: nested annotation exports, colour tables per subset, provenance flags."""

import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medcurate import datasets
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.errors import MedcurateError
from medcurate.testing import unpacked


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


def test_fetal_head_archives_follow_the_documented_names(mirror):
    """Names from ../shared/realdata/FetalHeadBiometry_zenodo8265464/LAYOUT_NOTES.md."""
    def names(zip_name):
        with zipfile.ZipFile(mirror / "fetal_head_biometry" / zip_name) as zf:
            return set(zf.namelist())

    tt, tc, tv = names("Trans-thalamic.zip"), names("Trans-cerebellum.zip"), names("Trans-ventricular.zip")
    diverse = names("Diverse Fetal Head Images.zip")
    assert {"Trans-Thalamic-Pixel-Size.csv", "Trans-thalamic-Cityscapes.zip"} <= tt
    assert "Trans-ventricular-CityScapes.zip" in tv and "Test-Dataset-CitySpaces.zip" in diverse
    assert any(n.startswith("Trans-cerebellum-Segmentation/SegmentationClass/") for n in tc)
    assert any(n.startswith("Orginal_train_images_to_959_661/") for n in diverse)
    assert any(n.startswith("Test-Dataset-Segmentation/SegmentationClass/") for n in diverse)
    assert not any("Pixel-Size" in n for n in diverse)
    with zipfile.ZipFile(mirror / "fetal_head_biometry" / "Trans-cerebellum.zip") as zf:
        raw = zf.read("Trans-cerebellum-Pixel-Size.csv")
    assert raw.startswith(b"\xef\xbb\xbfLabel,Pixel  in mm")  # BOM and the two-space header
