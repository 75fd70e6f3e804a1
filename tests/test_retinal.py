"""Retinal vessel datasets DRIVE, STARE and CHASE_DB1: the real DRIVE and CHASE_DB1 files converted
without loss, each dataset's quirks (GIF palettes, gzipped PPMs inside tars, stems that differ,
both eyes of a child in one split, missing first-observer labels), the sample mirror's layout and
formats, and bounded fuzzing of the enumerators and the gzip/PPM reader."""

import copy
import csv
import functools
import gzip
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import prepared, sample_plan, unpacked, with_exclusions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import images, masks, samples
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import chase_db1, drive, stare
from medcurate.errors import CaseError, ManualDataError, MedcurateError
from medcurate.images import read_image
from medcurate.manual import prepare
from medcurate.samples import retinal
from medcurate.unpack import Limits
from PIL import Image

IDS = ("drive", "stare", "chase_db1")


@pytest.fixture(scope="module")
def roots(mirror, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("retinal-roots")
    return {
        "drive": prepared(mirror, sample_plan("drive"), base / "drive"),
        "stare": unpacked(mirror, "stare", base / "stare"),
        "chase_db1": unpacked(mirror, "chase_db1", base / "chase_db1"),
    }


@pytest.fixture(params=IDS)
def plan(request):
    return plan_of(request.param)


@functools.cache
def _plan(dataset: str) -> dict:
    return sample_plan(dataset)  # validates the whole catalogue: done once per dataset


def plan_of(dataset: str) -> dict:
    return copy.deepcopy(_plan(dataset))


def convert(root: Path, plan: dict, out: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Run the generic conversion on root; return ({case_id: manifest row}, {case_id: quarantine row})."""
    convert_shard(root, plan, 0, 1, out)
    rows = with_exclusions(out, plan)
    quarantined = {r["case_id"]: r for r in csv.DictReader((out / "quarantine.csv").open())}
    return rows, quarantined


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=False)
    return dest


# ------------------------------------------------------------------ real DRIVE files

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
    rows, quarantined = convert(real_drive, plan, tmp_path / "out")
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
    rows, quarantined = convert(real_drive, plan_of("drive"), tmp_path / "out")
    assert set(rows) == {"21_training", "22_training", "23_training"}
    assert quarantined["01_test"]["source"] == "DRIVE/test/1st_manual/01_manual1.gif"
    assert "first-observer vessel mask is missing" in quarantined["01_test"]["reason"]


# ------------------------------------------------------------------ real CHASE_DB1 files


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
    rows, quarantined = convert(root.parent, plan, tmp_path / "out")
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


# ------------------------------------------------------------------ sample mirror: layout and formats


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


def test_stare_sample_is_three_flat_tars_of_gzipped_ppms(mirror):
    found = {}
    for tar in ("stare-images.tar", "labels-ah.tar", "labels-vk.tar"):
        with tarfile.open(mirror / "stare" / tar) as tf:
            found[tar] = {m.name: tf.extractfile(m).read() for m in tf}
    ids = retinal.STARE_IDS
    assert list(found["stare-images.tar"]) == [f"{i}.ppm.gz" for i in ids]
    assert list(found["labels-ah.tar"]) == [f"{i}.ah.ppm.gz" for i in ids]
    assert list(found["labels-vk.tar"]) == [f"{i}.vk.ppm.gz" for i in ids]
    assert all(int(i[2:]) in stare.LABELLED for i in ids)
    for members in found.values():
        for data in members.values():
            ppm = gzip.decompress(data)
            assert data[:2] == b"\x1f\x8b" and ppm.startswith(b"P6\n700 605\n255\n")


def test_chase_sample_is_a_flat_zip_with_differing_stems(mirror):
    with zipfile.ZipFile(mirror / "chase_db1" / "CHASEDB1.zip") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    stems = [f"Image_{c}{e}" for c in ("01", "02", "12") for e in "LR"]
    assert set(members) == {f"{s}{x}" for s in stems for x in (".jpg", "_1stHO.png", "_2ndHO.png")}
    for name, data in members.items():
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (999, 960)
            assert (im.format, im.mode) == (("JPEG", "RGB") if name.endswith(".jpg") else ("PNG", "1"))


def test_sample_pins_match_the_generated_mirror(mirror):
    import yaml

    pins = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "sample.yaml").read_text())["sample_mirror"]["sha256"]
    from medcurate.atomic import file_digest

    ours = {k: v for k, v in pins.items() if k.split("/")[0] in IDS}
    assert len(ours) == 5
    for key, digest in ours.items():
        assert file_digest(mirror / key) == digest, key


# ------------------------------------------------------------------ the sample through the converter


def test_drive_sample_converts_with_fov_and_second_observer(roots, tmp_path):
    rows, quarantined = convert(roots["drive"], plan_of("drive"), tmp_path)
    assert not quarantined
    assert sorted(rows) == ["01_test", "02_test", "21_training", "22_training", "27_training"]
    for cid, row in rows.items():
        nn, kind = cid.split("_")
        _, first, second, fov = retinal.fundus(f"drive/{nn}", retinal.DRIVE_SIZE)
        assert row["official_split"] == ("test" if kind == "test" else "train") and row["patient_id"] == nn
        assert np.array_equal(png(tmp_path / row["mask"]), first.astype(np.uint8))
        assert np.array_equal(png(tmp_path / row["mask_fov"]), fov.astype(np.uint8))
        if kind == "test":
            assert np.array_equal(png(tmp_path / row["mask_observer2"]), second.astype(np.uint8))
        else:
            assert row["mask_observer2"] == "" and not (tmp_path / f"masks_observer2/{cid}.png").exists()
    image = png(tmp_path / rows["21_training"]["image"])
    rgb = retinal.fundus("drive/21", retinal.DRIVE_SIZE)[0]
    assert np.array_equal(image, rgb)  # LZW TIFF: lossless
    assert tuple(image[292, 10]) == (0, 0, 0) and image[292, 282, 0] > 100  # outside / inside the FOV


def test_stare_sample_converts_through_both_compression_levels(roots, tmp_path):
    rows, quarantined = convert(roots["stare"], plan_of("stare"), tmp_path)
    assert not quarantined and sorted(rows) == list(retinal.STARE_IDS)
    for sid, row in rows.items():
        rgb, first, second, _ = retinal.fundus(f"stare/{sid}", retinal.STARE_SIZE)
        assert (row["width"], row["height"], row["official_split"]) == ("700", "605", "")
        assert row["source"] == f"stare-images/{sid}.ppm.gz" and row["mask_source"] == f"labels-ah/{sid}.ah.ppm.gz"
        assert np.array_equal(png(tmp_path / row["image"]), rgb)
        assert np.array_equal(png(tmp_path / row["mask"]), first.astype(np.uint8))
        assert np.array_equal(png(tmp_path / row["mask_observer2"]), second.astype(np.uint8))
        assert first.sum() > second.sum() > 0  # the second observer's tracing differs


def test_chase_sample_pairs_stems_and_keeps_both_eyes_together(roots, tmp_path):
    rows, quarantined = convert(roots["chase_db1"], plan_of("chase_db1"), tmp_path)
    assert not quarantined
    assert {cid: (r["patient_id"], r["official_split"], r["eye"]) for cid, r in rows.items()} == {
        "Image_01L": ("child01", "train", "L"), "Image_01R": ("child01", "train", "R"),
        "Image_02L": ("child02", "train", "L"), "Image_02R": ("child02", "train", "R"),
        "Image_12L": ("child12", "test", "L"), "Image_12R": ("child12", "test", "R"),
    }
    for cid, row in rows.items():
        _, first, second, _ = retinal.fundus(f"chase_db1/{cid}", retinal.CHASE_SIZE, band=1)
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


# ------------------------------------------------------------------ quirks and errors, DRIVE


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
    rows, quarantined = convert(root, plan_of("drive"), tmp_path / "out")
    assert sorted(quarantined) == ["01_test", "02_test"] and len(rows) == 3
    assert quarantined["01_test"]["source"] == "DRIVE/DRIVE/test/1st_manual/01_manual1.gif"
    assert quarantined["01_test"]["reason"].startswith("first-observer vessel mask is missing")


def test_drive_label_without_image_and_mask_of_the_wrong_size(roots, tmp_path):
    root = copy_tree(roots["drive"], tmp_path / "root")
    (root / "DRIVE/DRIVE/training/images/22_training.tif").unlink()
    fov = root / "DRIVE/DRIVE/training/mask/27_training_mask.gif"
    fov.unlink()
    Image.new("L", (100, 80)).save(fov, format="GIF")
    rows, quarantined = convert(root, plan_of("drive"), tmp_path / "out")
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


# ------------------------------------------------------------------ quirks and errors, STARE


def test_stare_missing_files_are_quarantined_and_unlabelled_images_ignored(roots, tmp_path):
    root = copy_tree(roots["stare"], tmp_path / "root")
    (root / "stare-images/im0002.ppm.gz").unlink()
    (root / "labels-ah/im0044.ah.ppm.gz").unlink()
    (root / "labels-vk/im0235.vk.ppm.gz").unlink()
    shutil.copy(root / "stare-images/im0001.ppm.gz", root / "stare-images/im0006.ppm.gz")  # not vessel-labelled
    rows, quarantined = convert(root, plan_of("stare"), tmp_path / "out")
    assert sorted(rows) == ["im0001", "im0235"] and sorted(quarantined) == ["im0002", "im0044"]
    assert quarantined["im0002"]["source"] == "labels-ah/im0002.ah.ppm.gz"
    assert quarantined["im0002"]["reason"] == "its image im0002.ppm.gz (stare-images.tar) is missing"
    assert quarantined["im0044"]["source"] == "stare-images/im0044.ppm.gz"
    assert quarantined["im0044"]["reason"] == "first-observer label im0044.ah.ppm.gz (labels-ah.tar) is missing"
    assert rows["im0235"]["mask_observer2"] == "" and rows["im0001"]["mask_observer2"] == "masks_observer2/im0001.png"


def test_stare_reads_an_already_gunzipped_ppm(roots, tmp_path):
    root = copy_tree(roots["stare"], tmp_path / "root")
    gz = root / "labels-ah/im0001.ah.ppm.gz"
    gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    case = next(c for c in stare.cases(root, plan_of("stare")) if c.case_id == "im0001")
    first = retinal.fundus("stare/im0001", retinal.STARE_SIZE)[1]
    assert case.mask.name == "im0001.ah.ppm"
    assert np.array_equal(stare.load_mask(case, plan_of("stare"))[0], first.astype(np.uint8))


def test_stare_grey_label_reads_like_the_colour_one(tmp_path):
    """The labels' Netpbm flavour is UNCONFIRMED: P5 (grey) and P6 (colour) give the same mask."""
    vessels = np.zeros((6, 9), bool)
    vessels[2, 1:7] = True
    for name, im in (("p5.ppm.gz", Image.fromarray(vessels.astype(np.uint8) * 255)),
                     ("p6.ppm.gz", Image.fromarray(vessels.astype(np.uint8) * 255).convert("RGB"))):
        buf = io.BytesIO()
        im.save(buf, format="PPM")
        (tmp_path / name).write_bytes(gzip.compress(buf.getvalue(), mtime=0))
        assert np.array_equal(masks.binary(tmp_path / name, {"background": 0, "vessel": 1}), vessels.astype(np.uint8))


def test_stare_gzip_errors_name_the_file(tmp_path, monkeypatch):
    """The generic reader inflates gzip-wrapped images (STARE's .ppm.gz) and names the file."""
    bad = tmp_path / "im0001.ppm.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(CaseError, match="not a valid gzip file") as err:
        read_image(bad, "RGB")
    assert err.value.path == str(bad)
    good = gzip.compress(b"P6\n4 4\n255\n" + bytes(48), mtime=0)
    (tmp_path / "ok.ppm.gz").write_bytes(good)
    assert read_image(tmp_path / "ok.ppm.gz", "RGB").shape == (4, 4, 3)
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(CaseError, match="not a valid gzip file"):
        read_image(bad, "RGB")
    bad.write_bytes(gzip.compress(b"P6\n4 4\n255\n" + bytes(10), mtime=0))
    with pytest.raises(CaseError, match="cannot decode image"):
        read_image(bad, "RGB")
    with pytest.raises(CaseError, match="file is missing"):
        read_image(tmp_path / "absent.ppm.gz", "RGB")
    monkeypatch.setattr(images, "MAX_GUNZIP_BYTES", 4096)
    bomb = tmp_path / "bomb.ppm.gz"
    bomb.write_bytes(gzip.compress(bytes(5000), mtime=0))
    with pytest.raises(CaseError, match="decompresses to more than 4096 bytes"):
        read_image(bomb, "RGB")


def test_stare_without_images_is_a_dataset_error(tmp_path):
    (tmp_path / "labels-ah").mkdir()
    (tmp_path / "labels-ah" / "im0001.ah.ppm.gz").write_bytes(b"")
    with pytest.raises(MedcurateError, match="no STARE image"):
        stare.cases(tmp_path, plan_of("stare"))


def test_stare_duplicate_file_is_a_dataset_error(roots, tmp_path):
    root = copy_tree(roots["stare"], tmp_path / "root")
    (root / "again").mkdir()
    shutil.copy(root / "labels-vk/im0001.vk.ppm.gz", root / "again/im0001.vk.ppm.gz")
    with pytest.raises(MedcurateError, match="im0001 vk label found twice"):
        stare.cases(root, plan_of("stare"))


# ------------------------------------------------------------------ quirks and errors, CHASE_DB1


def test_chase_missing_first_observer_and_orphan_label(roots, tmp_path):
    root = copy_tree(roots["chase_db1"], tmp_path / "root")
    (root / "CHASEDB1/Image_01R_1stHO.png").unlink()
    (root / "CHASEDB1/Image_02L.jpg").unlink()
    rows, quarantined = convert(root, plan_of("chase_db1"), tmp_path / "out")
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


# ------------------------------------------------------------------ catalogue


def test_catalogue_entries(plan):
    assert plan["modality"] == "fundus" and plan["task"] == "segmentation"
    assert plan["labels"]["mask"] == {"background": 0, "vessel": 1}
    assert plan["labels"]["extra_masks"]["observer2"] == {"background": 0, "vessel": 1}
    assert ("fov" in plan["labels"]["extra_masks"]) == (plan["id"] == "drive")  # STARE/CHASE ship none
    assert plan["convert"]["image_mode"] == "RGB"
    assert plan["clean"]["fill_holes"] is False and plan["clean"]["min_component_area"] == 0
    assert plan["access"]["mode"] == ("manual" if plan["id"] == "drive" else "open")


# ------------------------------------------------------------------ fuzzing (bounded)

NAMES = st.one_of(
    st.sampled_from(["im0001.ppm.gz", "im0001.ah.ppm.gz", "im0002.vk.ppm.gz", "im0044.ppm", "im12.ppm.gz",
                     "Image_01L.jpg", "Image_01L_1stHO.png", "Image_02R_2ndHO.png", "Image_3L.jpg", "Image_01L.png",
                     "21_training.tif", "01_test.tif", "01_manual1.gif", "21_training_mask.gif", "x.tif"]),
    st.text(st.sampled_from("Imagest_0123LR.pnjgifvkah"), min_size=1, max_size=20),
)
LAYOUT = st.lists(st.tuples(st.sampled_from(["", "images", "training/images", "test/1st_manual", "a/b"]), NAMES),
                  max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=LAYOUT)
def test_fuzz_enumerators_raise_only_dataset_errors(tmp_path_factory, layout):
    root = tmp_path_factory.mktemp("fuzz")
    for folder, name in layout:
        if name in (".", "..") or "/" in name:
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(b"")
    for module, dataset in ((drive, "drive"), (stare, "stare"), (chase_db1, "chase_db1")):
        try:
            found = module.cases(root, plan_of(dataset))
        except MedcurateError:
            continue
        ids = [c.case_id for c in found]
        assert all(c.image is not None or c.problem is not None or c.mask is not None for c in found)
        assert all(c.problem is None or c.problem.path is not None for c in found)
        assert len(ids) == len(set(ids)) or dataset == "drive"  # duplicate DRIVE ids fail in enumerate_cases


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), gz=st.booleans(), header=st.sampled_from([b"", b"P6\n3 2\n255\n", b"P5\n3 2\n255\n", b"P6\n99999 99999\n255\n"]))
def test_fuzz_stare_reader_raises_only_case_errors(tmp_path_factory, data, gz, header):
    path = tmp_path_factory.mktemp("fuzz") / ("x.ppm.gz" if gz else "x.ppm")
    payload = header + data
    path.write_bytes(gzip.compress(payload, mtime=0) if gz and data[:1] != b"\x00" else payload)
    try:
        arr = read_image(path, "L")
    except CaseError as exc:
        assert exc.path == str(path) and exc.reason
        return
    assert arr.dtype == np.uint8 and arr.ndim == 2
