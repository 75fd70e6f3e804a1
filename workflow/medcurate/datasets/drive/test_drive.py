"""DRIVE: the real files' documented formats converted without loss, the sample's layout and
formats, GIF palettes and 1-bit labels, the field-of-view mask and second observer, test images
without a first-observer label quarantined, the gated release (what to place, the Grand Challenge
message, training and test zips), the catalogue entry, and bounded fuzzing of the enumerator.
"""

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcurate import samples
from medcurate.convert import enumerate_cases
from medcurate.datasets import drive
from medcurate.datasets.drive import sample
from medcurate.errors import ManualDataError, MedcurateError
from medcurate.manual import prepare
from medcurate.testing import (
    RETINAL_FOLDERS,
    RETINAL_NAMES,
    convert_rows,
    copy_tree,
    enumerator_fuzz,
    plan_of,
    png,
    prepared,
    sample_plan,
)
from medcurate.unpack import Limits

IDS = ("drive",)


@pytest.fixture(scope="module")
def roots(mirror, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("retinal-roots")
    return {
        "drive": prepared(mirror, sample_plan("drive"), base / "drive"),
    }


@pytest.fixture(params=IDS)
def plan(request):
    return plan_of(request.param)


REAL_DRIVE = {  # id: (vessel pixels in 1st_manual, FOV pixels in mask), counted in the real GIFs
    "21": (24658, 225600),
    "22": (29809, 227686),
    "23": (21723, 228187),
}


@pytest.fixture
def real_drive(realdata, tmp_path) -> Path:
    """The real training files copied into a tree laid out like the release (DRIVE/training/...)."""
    root = tmp_path / "root"
    for sub in ("images", "1st_manual", "mask"):
        dest = root / "DRIVE" / "training" / sub
        dest.mkdir(parents=True)
        for f in sorted((realdata / "DRIVE" / "training" / sub).iterdir()):
            shutil.copy(f, dest / f.name)
    return root


@pytest.mark.realdata
def test_real_drive_files_have_the_documented_formats(realdata):
    for nn in REAL_DRIVE:
        with Image.open(realdata / f"DRIVE/training/images/{nn}_training.tif") as im:
            assert (im.format, im.mode, im.size, im.info["compression"]) == ("TIFF", "RGB", (565, 584), "tiff_lzw")
        for name in (f"1st_manual/{nn}_manual1.gif", f"mask/{nn}_training_mask.gif"):
            raw = (realdata / "DRIVE/training" / name).read_bytes()
            assert raw[:6] == b"GIF89a" and raw[10] == 0xF7  # 256-entry global palette
            assert list(raw[13:13 + 768]) == [v for i in range(256) for v in (i, i, i)]  # grey identity
            assert set(np.unique(np.asarray(Image.open(io.BytesIO(raw)))).tolist()) == {0, 255}


@pytest.mark.realdata
def test_real_drive_converts_without_loss(real_drive, realdata, tmp_path):
    plan = plan_of("drive")
    cases = {c.case_id: c for c in enumerate_cases(real_drive, plan)}
    assert sorted(cases) == ["21_training", "22_training", "23_training"]
    rows, quarantined = convert_rows(real_drive, plan, tmp_path / "out")
    assert not quarantined
    for nn, (vessels, fov_pixels) in REAL_DRIVE.items():
        cid = f"{nn}_training"
        row, case = rows[cid], cases[cid]
        assert (case.split, case.patient_id, row["official_split"]) == ("train", nn, "train")
        assert (row["width"], row["height"]) == ("565", "584")
        real_gif = np.asarray(Image.open(realdata / f"DRIVE/training/1st_manual/{nn}_manual1.gif"))
        mask = png(tmp_path / "out" / row["mask"])
        assert mask.shape == (584, 565) and mask.dtype == np.uint8
        assert int((mask == 1).sum()) == int((real_gif > 0).sum()) == vessels
        assert np.array_equal(mask, (real_gif > 0).astype(np.uint8))
        real_fov = np.asarray(Image.open(realdata / f"DRIVE/training/mask/{nn}_training_mask.gif"))
        fov = png(tmp_path / "out" / row["mask_fov"])
        assert row["mask_fov"] == f"masks_fov/{cid}.png"
        assert int((fov == 1).sum()) == int((real_fov > 0).sum()) == fov_pixels
        assert np.array_equal(fov, (real_fov > 0).astype(np.uint8))
        assert row["mask_observer2"] == ""  # the training set has no second observer
        image = png(tmp_path / "out" / row["image"])
        assert np.array_equal(image, np.asarray(Image.open(realdata / f"DRIVE/training/images/{nn}_training.tif")))
        assert row["source"] == f"DRIVE/training/images/{cid}.tif"
        assert row["mask_source"] == f"DRIVE/training/1st_manual/{nn}_manual1.gif"
        assert row["cleaning"] == "" and row["exclusion"] == ""


@pytest.mark.realdata
def test_real_drive_test_image_without_1st_manual_is_quarantined(real_drive, tmp_path):
    """A 'test' copy of a real image without its first-observer label (some redistributions)."""
    test = real_drive / "DRIVE" / "test"
    (test / "images").mkdir(parents=True)
    shutil.copy(real_drive / "DRIVE/training/images/21_training.tif", test / "images" / "01_test.tif")
    rows, quarantined = convert_rows(real_drive, plan_of("drive"), tmp_path / "out")
    assert set(rows) == {"21_training", "22_training", "23_training"}
    assert quarantined["01_test"]["source"] == "DRIVE/test/1st_manual/01_manual1.gif"
    assert "first-observer vessel mask is missing" in quarantined["01_test"]["reason"]


def test_drive_sample_layout_and_formats(mirror):
    with zipfile.ZipFile(mirror / "drive" / "manual" / "DRIVE.zip") as zf:
        names = zf.namelist()
        members = {n: zf.read(n) for n in names}
    expected = set()
    for nn in ("21", "22", "27"):
        expected |= {f"DRIVE/training/images/{nn}_training.tif", f"DRIVE/training/1st_manual/{nn}_manual1.gif",
                     f"DRIVE/training/mask/{nn}_training_mask.gif"}
    for nn in ("01", "02"):
        expected |= {f"DRIVE/test/images/{nn}_test.tif", f"DRIVE/test/1st_manual/{nn}_manual1.gif",
                     f"DRIVE/test/2nd_manual/{nn}_manual2.gif", f"DRIVE/test/mask/{nn}_test_mask.gif"}
    assert set(names) == expected
    for name, data in members.items():
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (565, 584)
            if name.endswith(".tif"):
                assert (im.mode, im.info["compression"]) == ("RGB", "tiff_lzw")
            else:  # the real GIFs' header, palette and values
                assert data[:6] == b"GIF89a" and data[10] == 0xF7 and im.mode == "L"
                assert list(data[13:13 + 768]) == [v for i in range(256) for v in (i, i, i)]
                assert data[13 + 768:13 + 768 + 8] == b"\x21\xf9\x04\x00\x00\x00\x00\x00"
                assert set(np.unique(np.asarray(im)).tolist()) == {0, 255}


def test_drive_sample_converts_with_fov_and_second_observer(roots, tmp_path):
    rows, quarantined = convert_rows(roots["drive"], plan_of("drive"), tmp_path)
    assert not quarantined
    assert sorted(rows) == ["01_test", "02_test", "21_training", "22_training", "27_training"]
    for cid, row in rows.items():
        nn, kind = cid.split("_")
        _, first, second, fov = sample.fundus(f"drive/{nn}", sample.DRIVE_SIZE)
        assert row["official_split"] == ("test" if kind == "test" else "train") and row["patient_id"] == nn
        assert np.array_equal(png(tmp_path / row["mask"]), first.astype(np.uint8))
        assert np.array_equal(png(tmp_path / row["mask_fov"]), fov.astype(np.uint8))
        if kind == "test":
            assert np.array_equal(png(tmp_path / row["mask_observer2"]), second.astype(np.uint8))
        else:
            assert row["mask_observer2"] == "" and not (tmp_path / f"masks_observer2/{cid}.png").exists()
    image = png(tmp_path / rows["21_training"]["image"])
    rgb = sample.fundus("drive/21", sample.DRIVE_SIZE)[0]
    assert np.array_equal(image, rgb)  # LZW TIFF: lossless
    assert tuple(image[292, 10]) == (0, 0, 0) and image[292, 282, 0] > 100  # outside / inside the FOV


def test_drive_palette_gif_is_read_through_its_palette(roots, tmp_path):
    """A GIF whose index 0 is white (vessel) and 1 black: thresholding the raw indices would invert it."""
    root = copy_tree(roots["drive"], tmp_path / "root")
    gif = root / "DRIVE/DRIVE/training/1st_manual/21_manual1.gif"
    vessels = np.asarray(Image.open(gif)) > 0
    im = Image.fromarray(np.where(vessels, 0, 1).astype(np.uint8), "P")
    im.putpalette([255, 255, 255, 0, 0, 0] + [0, 0, 0] * 254)
    gif.unlink()
    im.save(gif, format="GIF", optimize=False)
    assert Image.open(gif).mode == "P"
    case = next(c for c in drive.cases(root, plan_of("drive")) if c.case_id == "21_training")
    mask, actions = drive.load_mask(case, plan_of("drive"))
    assert np.array_equal(mask, vessels.astype(np.uint8)) and actions == []


def test_drive_one_bit_label_reads_like_the_gif(roots, tmp_path):
    root = copy_tree(roots["drive"], tmp_path / "root")
    gif = root / "DRIVE/DRIVE/training/1st_manual/21_manual1.gif"
    vessels = np.asarray(Image.open(gif)) > 0
    gif.unlink()
    Image.fromarray(vessels).save(gif, format="GIF")
    case = next(c for c in drive.cases(root, plan_of("drive")) if c.case_id == "21_training")
    assert np.array_equal(drive.load_mask(case, plan_of("drive"))[0], vessels.astype(np.uint8))


def test_drive_test_set_without_1st_manual_is_quarantined(roots, tmp_path):
    root = copy_tree(roots["drive"], tmp_path / "root")
    shutil.rmtree(root / "DRIVE/DRIVE/test/1st_manual")
    rows, quarantined = convert_rows(root, plan_of("drive"), tmp_path / "out")
    assert sorted(quarantined) == ["01_test", "02_test"] and len(rows) == 3
    assert quarantined["01_test"]["source"] == "DRIVE/DRIVE/test/1st_manual/01_manual1.gif"
    assert quarantined["01_test"]["reason"].startswith("first-observer vessel mask is missing")


def test_drive_label_without_image_and_mask_of_the_wrong_size(roots, tmp_path):
    root = copy_tree(roots["drive"], tmp_path / "root")
    (root / "DRIVE/DRIVE/training/images/22_training.tif").unlink()
    fov = root / "DRIVE/DRIVE/training/mask/27_training_mask.gif"
    fov.unlink()
    Image.new("L", (100, 80)).save(fov, format="GIF")
    rows, quarantined = convert_rows(root, plan_of("drive"), tmp_path / "out")
    assert quarantined["22_training"]["reason"] == "mask has no matching image"
    assert quarantined["22_training"]["source"] == "DRIVE/DRIVE/training/1st_manual/22_manual1.gif"
    assert quarantined["27_training"]["source"] == "DRIVE/DRIVE/training/mask/27_training_mask.gif"
    assert quarantined["27_training"]["reason"] == "mask is 100x80 but its image is 565x584"
    assert sorted(rows) == ["01_test", "02_test", "21_training"]


def test_drive_without_images_names_what_to_place(tmp_path):
    (tmp_path / "training").mkdir()
    with pytest.raises(MedcurateError, match="no DRIVE image") as err:
        drive.cases(tmp_path, plan_of("drive"))
    assert err.value.path == str(tmp_path) and "DRIVE.zip" in err.value.reason


def test_drive_gated_message_names_grand_challenge(tmp_path):
    plan = {**plan_of("drive"), "manual_dir": str(tmp_path / "empty")}
    with pytest.raises(ManualDataError) as err:
        prepare(plan, [], tmp_path / "dest", Limits())
    text = str(err.value)
    assert "https://drive.grand-challenge.org/" in text and "grand-challenge" in plan["access"]["instructions"]
    assert "missing or empty folder: training/images/" in text


def test_drive_as_training_zip_and_test_zip(mirror, tmp_path):
    """The other arrangement a user may place: training.zip and test.zip (no DRIVE/ top folder)."""
    with zipfile.ZipFile(mirror / "drive" / "manual" / "DRIVE.zip") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manual = tmp_path / "manual"
    manual.mkdir()
    for split in ("training", "test"):
        samples.write_zip(manual / f"{split}.zip", {n.removeprefix("DRIVE/"): d for n, d in members.items()
                                                     if n.startswith(f"DRIVE/{split}/")})
    plan = {**plan_of("drive"), "manual_dir": str(manual), "manual_pins": {}}
    prepare(plan, [], tmp_path / "root", Limits())
    cases = {c.case_id: c for c in drive.cases(tmp_path / "root", plan)}
    assert sorted(cases) == ["01_test", "02_test", "21_training", "22_training", "27_training"]
    assert cases["01_test"].extra_masks["observer2"].name == "01_manual2.gif"


def test_catalogue_entries(plan):
    assert plan["modality"] == "fundus" and plan["task"] == "segmentation"
    assert plan["labels"]["mask"] == {"background": 0, "vessel": 1}
    assert plan["labels"]["extra_masks"]["observer2"] == {"background": 0, "vessel": 1}
    assert "fov" in plan["labels"]["extra_masks"]  # DRIVE ships field-of-view masks
    assert plan["convert"]["image_mode"] == "RGB"
    assert plan["clean"]["fill_holes"] is False and plan["clean"]["min_component_area"] == 0
    assert plan["access"]["mode"] == "manual"


# Duplicate DRIVE ids are allowed here: enumerate_cases rejects them.
test_fuzz_enumerators_raise_only_dataset_errors = enumerator_fuzz(drive, "drive", RETINAL_NAMES, RETINAL_FOLDERS,
                                                                 unique_ids=False)
