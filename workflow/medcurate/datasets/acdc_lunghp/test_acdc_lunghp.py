"""ACDC@LungHP: its sample release through every step (tiles of a slide share its patient and split,
the slide without annotation, the point annotation counted, overviews). The whole-slide machinery
and the ASAP parser are tested in tests/test_wsi.py on this dataset's sample slides."""

import json

import pandas as pd
from medcurate import samples
from medcurate.testing import build, prepared, sample_plan


def test_sample_release_through_every_step(tmp_path):
    mirror = tmp_path / "mirror"
    samples.build(mirror, ["acdc_lunghp"])
    plan = sample_plan("acdc_lunghp")
    root = prepared(mirror, plan, tmp_path / "root")
    counts = build(root, plan, tmp_path / "work", tmp_path / "out", shards=2)
    out = tmp_path / "out"
    df = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert counts["quarantined"] == 0 and set(df.slide) == {"1", "2", "3"}  # slide 4 has no annotation
    # tiles of a slide share its patient and its split
    assert (df.groupby("slide")["split"].nunique() == 1).all() and (df.slide == df.patient_id).all()
    assert sorted(df.split.unique()) == ["test", "train", "val"]
    assert set(df[df.slide == "3"].mask_labels) == {""}  # an annotation file without outlines
    assert (df[df.slide == "1"].point_annotations == "1").all()  # the Dot left out, counted
    for slide in ("1", "2", "3"):
        assert (out / "overviews" / f"{slide}.png").is_file() and (out / "overviews" / f"{slide}_mask.png").is_file()
    info = json.loads((out / "dataset.json").read_text())
    assert info["task"] == "wsi_tiling" and info["release_facts"] == {"slides": 4, "slides_without_annotation": 1}
    assert info["counts"]["masks_with_label"]["cancer"] >= 4
    assert (out / "qc" / "montage.png").is_file()
