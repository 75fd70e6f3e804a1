"""CHASE_DB1: the real files converted without loss, the sample's flat zip with stems that differ
between images and labels, both eyes of a child kept in one split at the conventional boundary,
a missing first-observer label and an orphan label, a release without files or with a duplicate,
the catalogue entry, and bounded fuzzing of the enumerator.
"""

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcurate.datasets import chase_db1
from medcurate.datasets.chase_db1 import sample
from medcurate.errors import MedcurateError
from medcurate.testing import (
    RETINAL_FOLDERS,
    RETINAL_NAMES,
    convert_rows,
    copy_tree,
    enumerator_fuzz,
    plan_of,
    png,
    unpacked,
)

IDS = ("chase_db1",)


@pytest.fixture(scope="module")
def roots(mirror, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("retinal-roots")
    return {
        "chase_db1": unpacked(mirror, "chase_db1", base / "chase_db1"),
    }


@pytest.fixture(params=IDS)
def plan(request):
    return plan_of(request.param)


@pytest.mark.realdata
def test_real_chase_converts_without_loss(realdata, tmp_path):
    root = tmp_path / "root" / "CHASEDB1"
    root.mkdir(parents=True)
    for f in sorted((realdata / "CHASE_DB1").iterdir()):
        shutil.copy(f, root / f.name)
    with Image.open(root / "Image_01L_1stHO.png") as im:
        assert (im.format, im.mode, im.size) == ("PNG", "1", (999, 960))  # 1-bit grey
    with Image.open(root / "Image_01L.jpg") as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (999, 960))
    plan = plan_of("chase_db1")
    rows, quarantined = convert_rows(root.parent, plan, tmp_path / "out")
    assert not quarantined and list(rows) == ["Image_01L"]
    row = rows["Image_01L"]
    assert (row["patient_id"], row["official_split"], row["eye"]) == ("child01", "train", "L")
    assert (row["width"], row["height"]) == ("999", "960")
    for column, name, count in (("mask", "1stHO", 66885), ("mask_observer2", "2ndHO", 63058)):
        real = np.asarray(Image.open(root / f"Image_01L_{name}.png"))
        mask = png(tmp_path / "out" / row[column])
        assert mask.shape == (960, 999) and set(np.unique(mask).tolist()) == {0, 1}
        assert int(mask.sum()) == int(real.sum()) == count
        assert np.array_equal(mask.astype(bool), real)
    image = png(tmp_path / "out" / row["image"])
    assert np.array_equal(image, np.asarray(Image.open(root / "Image_01L.jpg").convert("RGB")))


def test_chase_sample_is_a_flat_zip_with_differing_stems(mirror):
    with zipfile.ZipFile(mirror / "chase_db1" / "CHASEDB1.zip") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    stems = [f"Image_{c}{e}" for c in ("01", "02", "12") for e in "LR"]
    assert set(members) == {f"{s}{x}" for s in stems for x in (".jpg", "_1stHO.png", "_2ndHO.png")}
    for name, data in members.items():
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (999, 960)
            assert (im.format, im.mode) == (("JPEG", "RGB") if name.endswith(".jpg") else ("PNG", "1"))


def test_chase_sample_pairs_stems_and_keeps_both_eyes_together(roots, tmp_path):
    rows, quarantined = convert_rows(roots["chase_db1"], plan_of("chase_db1"), tmp_path)
    assert not quarantined
    assert {cid: (r["patient_id"], r["official_split"], r["eye"]) for cid, r in rows.items()} == {
        "Image_01L": ("child01", "train", "L"), "Image_01R": ("child01", "train", "R"),
        "Image_02L": ("child02", "train", "L"), "Image_02R": ("child02", "train", "R"),
        "Image_12L": ("child12", "test", "L"), "Image_12R": ("child12", "test", "R"),
    }
    for cid, row in rows.items():
        _, first, second, _ = sample.fundus(f"chase_db1/{cid}", sample.CHASE_SIZE, band=1)
        assert row["source"] == f"CHASEDB1/{cid}.jpg" and row["mask_source"] == f"CHASEDB1/{cid}_1stHO.png"
        assert np.array_equal(png(tmp_path / row["mask"]), first.astype(np.uint8))
        assert np.array_equal(png(tmp_path / row["mask_observer2"]), second.astype(np.uint8))
        assert png(tmp_path / row["image"]).shape == (960, 999, 3)


def test_chase_split_is_by_child_at_the_conventional_boundary(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for child in ("10", "11", "14"):
        for eye in "LR":
            for suffix in (".jpg", "_1stHO.png"):
                (root / f"Image_{child}{eye}{suffix}").write_bytes(b"")
    got = {c.case_id: (c.patient_id, c.split) for c in chase_db1.cases(root, plan_of("chase_db1"))}
    assert got == {"Image_10L": ("child10", "train"), "Image_10R": ("child10", "train"),
                   "Image_11L": ("child11", "test"), "Image_11R": ("child11", "test"),
                   "Image_14L": ("child14", "test"), "Image_14R": ("child14", "test")}


def test_chase_missing_first_observer_and_orphan_label(roots, tmp_path):
    root = copy_tree(roots["chase_db1"], tmp_path / "root")
    (root / "CHASEDB1/Image_01R_1stHO.png").unlink()
    (root / "CHASEDB1/Image_02L.jpg").unlink()
    rows, quarantined = convert_rows(root, plan_of("chase_db1"), tmp_path / "out")
    assert sorted(quarantined) == ["Image_01R", "Image_02L"] and len(rows) == 4
    assert quarantined["Image_01R"]["source"] == "CHASEDB1/Image_01R_1stHO.png"
    assert quarantined["Image_01R"]["reason"].startswith("first-observer vessel mask is missing")
    assert quarantined["Image_02L"]["source"] == "CHASEDB1/Image_02L_1stHO.png"
    assert quarantined["Image_02L"]["reason"] == "label has no matching image Image_02L.jpg"


def test_chase_without_files_and_with_a_duplicate(roots, tmp_path):
    with pytest.raises(MedcurateError, match="no CHASE_DB1 file"):
        chase_db1.cases(tmp_path, plan_of("chase_db1"))
    root = copy_tree(roots["chase_db1"], tmp_path / "root")
    (root / "copy").mkdir()
    shutil.copy(root / "CHASEDB1/Image_12L.jpg", root / "copy/Image_12L.jpg")
    with pytest.raises(MedcurateError, match="Image_12L.jpg found twice"):
        chase_db1.cases(root, plan_of("chase_db1"))


def test_catalogue_entries(plan):
    assert plan["modality"] == "fundus" and plan["task"] == "segmentation"
    assert plan["labels"]["mask"] == {"background": 0, "vessel": 1}
    assert plan["labels"]["extra_masks"]["observer2"] == {"background": 0, "vessel": 1}
    assert "fov" not in plan["labels"]["extra_masks"]  # CHASE_DB1 ships no field-of-view masks
    assert plan["convert"]["image_mode"] == "RGB"
    assert plan["clean"]["fill_holes"] is False and plan["clean"]["min_component_area"] == 0
    assert plan["access"]["mode"] == "open"


test_fuzz_enumerators_raise_only_dataset_errors = enumerator_fuzz(chase_db1, "chase_db1",
                                                                 RETINAL_NAMES, RETINAL_FOLDERS)
