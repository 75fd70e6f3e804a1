"""STARE: the sample's three flat tars of gzipped PPMs converted through both compression levels,
missing files quarantined and unlabelled images ignored, the gzip/PPM reader (already gunzipped
files, grey labels, errors naming the file), a release without images or with a duplicate, the
catalogue entry, and bounded fuzzing of the enumerator and the reader.
"""

import gzip
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import images, masks
from medcurate.datasets import stare
from medcurate.datasets.stare import sample
from medcurate.errors import CaseError, MedcurateError
from medcurate.images import read_image
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

IDS = ("stare",)


@pytest.fixture(scope="module")
def roots(mirror, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("retinal-roots")
    return {
        "stare": unpacked(mirror, "stare", base / "stare"),
    }


@pytest.fixture(params=IDS)
def plan(request):
    return plan_of(request.param)


def test_stare_sample_is_three_flat_tars_of_gzipped_ppms(mirror):
    found = {}
    for tar in ("stare-images.tar", "labels-ah.tar", "labels-vk.tar"):
        with tarfile.open(mirror / "stare" / tar) as tf:
            found[tar] = {m.name: tf.extractfile(m).read() for m in tf}
    ids = sample.STARE_IDS
    assert list(found["stare-images.tar"]) == [f"{i}.ppm.gz" for i in ids]
    assert list(found["labels-ah.tar"]) == [f"{i}.ah.ppm.gz" for i in ids]
    assert list(found["labels-vk.tar"]) == [f"{i}.vk.ppm.gz" for i in ids]
    assert all(int(i[2:]) in stare.LABELLED for i in ids)
    for members in found.values():
        for data in members.values():
            ppm = gzip.decompress(data)
            assert data[:2] == b"\x1f\x8b" and ppm.startswith(b"P6\n700 605\n255\n")


def test_stare_sample_converts_through_both_compression_levels(roots, tmp_path):
    rows, quarantined = convert_rows(roots["stare"], plan_of("stare"), tmp_path)
    assert not quarantined and sorted(rows) == list(sample.STARE_IDS)
    for sid, row in rows.items():
        rgb, first, second, _ = sample.fundus(f"stare/{sid}", sample.STARE_SIZE)
        assert (row["width"], row["height"], row["official_split"]) == ("700", "605", "")
        assert row["source"] == f"stare-images/{sid}.ppm.gz" and row["mask_source"] == f"labels-ah/{sid}.ah.ppm.gz"
        assert np.array_equal(png(tmp_path / row["image"]), rgb)
        assert np.array_equal(png(tmp_path / row["mask"]), first.astype(np.uint8))
        assert np.array_equal(png(tmp_path / row["mask_observer2"]), second.astype(np.uint8))
        assert first.sum() > second.sum() > 0  # the second observer's tracing differs


def test_stare_missing_files_are_quarantined_and_unlabelled_images_ignored(roots, tmp_path):
    root = copy_tree(roots["stare"], tmp_path / "root")
    (root / "stare-images/im0002.ppm.gz").unlink()
    (root / "labels-ah/im0044.ah.ppm.gz").unlink()
    (root / "labels-vk/im0235.vk.ppm.gz").unlink()
    shutil.copy(root / "stare-images/im0001.ppm.gz", root / "stare-images/im0006.ppm.gz")  # not vessel-labelled
    rows, quarantined = convert_rows(root, plan_of("stare"), tmp_path / "out")
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
    first = sample.fundus("stare/im0001", sample.STARE_SIZE)[1]
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


def test_catalogue_entries(plan):
    assert plan["modality"] == "fundus" and plan["task"] == "segmentation"
    assert plan["labels"]["mask"] == {"background": 0, "vessel": 1}
    assert plan["labels"]["extra_masks"]["observer2"] == {"background": 0, "vessel": 1}
    assert "fov" not in plan["labels"]["extra_masks"]  # STARE ships no field-of-view masks
    assert plan["convert"]["image_mode"] == "RGB"
    assert plan["clean"]["fill_holes"] is False and plan["clean"]["min_component_area"] == 0
    assert plan["access"]["mode"] == "open"


test_fuzz_enumerators_raise_only_dataset_errors = enumerator_fuzz(stare, "stare",
                                                                 RETINAL_NAMES, RETINAL_FOLDERS)


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
