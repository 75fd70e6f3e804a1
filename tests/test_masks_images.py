"""medcurate.masks.clean and medcurate.images: label-map cleaning, colour-coded masks, robust image
reading and deterministic PNG writing."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from medcurate import catalogue, images, masks
from medcurate.datasets import fetal_head_biometry
from medcurate.errors import CaseError
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
VALUES = {"background": 0, "brain": 1, "csp": 2, "lv": 3}


def clean(mask, options, shape=None, values=VALUES):
    return masks.clean(mask, shape if shape is not None else mask.shape, values, options, "case/mask.png")


# --- masks.clean ------------------------------------------------------------------------------


def test_clean_without_options_changes_nothing():
    mask = np.zeros((10, 10), np.uint8)
    mask[1:4, 1:4] = 1
    mask[7, 7] = 2
    out, actions = clean(mask.copy(), {"min_component_area": 0, "fill_holes": False})
    assert actions == []
    np.testing.assert_array_equal(out, mask)


def test_small_components_below_min_area_are_removed():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:8, 2:8] = 1      # 36 px brain: kept
    mask[15, 15] = 1        # 1 px brain speck
    mask[18, 1:3] = 1       # 2 px brain speck
    mask[10:12, 10:12] = 2  # 4 px csp == min area: kept
    mask[0, 19] = 3         # 1 px lv speck
    expected = mask.copy()
    expected[15, 15] = expected[18, 1:3] = expected[0, 19] = 0
    out, actions = clean(mask.copy(), {"min_component_area": 4})
    np.testing.assert_array_equal(out, expected)
    assert actions == ["brain:removed_small:3px", "lv:removed_small:1px"]


def test_min_area_uses_4_connectivity_per_label():
    mask = np.zeros((6, 6), np.uint8)
    mask[1, 1] = mask[2, 2] = 1   # diagonal neighbours: two 1-px components
    mask[4, 4] = 1
    mask[4, 5] = 2                # touches the brain pixel but is another label
    out, actions = clean(mask.copy(), {"min_component_area": 2})
    assert out.sum() == 0
    assert actions == ["brain:removed_small:3px", "csp:removed_small:1px"]


def test_fill_holes_fills_only_an_enclosed_hole():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:9, 2:9] = 1
    mask[5, 5] = 0          # a one-pixel hole enclosed by brain
    expected = mask.copy()
    expected[5, 5] = 1
    out, actions = clean(mask.copy(), {"fill_holes": True})
    assert actions == ["brain:filled_holes:1px"]
    np.testing.assert_array_equal(out, expected)


def test_fill_holes_fills_the_enclosed_hole_and_records_it():
    """The part of the fill_holes contract that holds today: the hole is filled and recorded."""
    mask = np.zeros((12, 12), np.uint8)
    mask[2:9, 2:9] = 1
    mask[4:6, 4:7] = 0      # a 6-pixel hole
    out, actions = clean(mask.copy(), {"fill_holes": True})
    assert (out[2:9, 2:9] == 1).all()
    assert len(actions) == 1 and actions[0].startswith("brain:filled_holes:")


def test_fill_holes_does_not_overwrite_another_label():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:9, 2:9] = 1
    mask[4:6, 4:6] = 3      # lv sits inside brain: not a hole
    out, actions = clean(mask.copy(), {"fill_holes": True})
    assert (out[4:6, 4:6] == 3).all()
    assert int((out == 3).sum()) == 4
    assert not any(a.startswith("lv:") for a in actions)


def test_fill_holes_off_leaves_holes():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:9, 2:9] = 1
    mask[5, 5] = 0
    out, actions = clean(mask.copy(), {"fill_holes": False, "min_component_area": 0})
    assert out[5, 5] == 0 and actions == []


def test_values_outside_the_catalogue_are_a_case_error():
    mask = np.zeros((5, 5), np.uint8)
    mask[0, 0] = 7
    mask[1, 1] = 255
    with pytest.raises(CaseError) as info:
        clean(mask, {})
    msg = str(info.value)
    assert msg.startswith("case/mask.png: ")
    assert "[7, 255]" in msg
    assert "[0, 1, 2, 3]" in msg


@pytest.mark.parametrize("image_shape", [(10, 13, 3), (10, 13)])
def test_shape_mismatch_names_both_sizes(image_shape):
    mask = np.zeros((10, 12), np.uint8)
    with pytest.raises(CaseError) as info:
        clean(mask, {}, shape=image_shape)
    msg = str(info.value)
    assert msg.startswith("case/mask.png: ")
    assert "12x10" in msg and "13x10" in msg


def test_colour_image_of_matching_size_is_accepted():
    mask = np.zeros((10, 12), np.uint8)
    out, actions = clean(mask, {}, shape=(10, 12, 3))
    assert out.shape == (10, 12) and actions == []


# --- images.colours_to_labels -----------------------------------------------------------------

DEFAULT = {"background": [0, 0, 0], "brain": [255, 0, 0], "csp": [0, 255, 0], "lv": [0, 0, 255]}


def rgb_of(rows: list[list[tuple[int, int, int]]]) -> np.ndarray:
    return np.array(rows, np.uint8)


def test_colours_map_exactly():
    rgb = rgb_of([[(0, 0, 0), (255, 0, 0), (0, 255, 0)],
                  [(0, 0, 255), (255, 0, 0), (0, 0, 0)]])
    labels, unknown = images.colours_to_labels(rgb, DEFAULT, VALUES)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, [[0, 1, 2], [3, 1, 0]])
    assert unknown == {}


def test_near_colours_are_not_matched():
    rgb = rgb_of([[(254, 0, 0), (255, 0, 0), (0, 255, 1)]])
    labels, unknown = images.colours_to_labels(rgb, DEFAULT, VALUES)
    np.testing.assert_array_equal(labels, [[0, 1, 0]])
    assert unknown == {"#fe0000": 1, "#00ff01": 1}


def test_unknown_colours_reported_with_counts():
    rgb = rgb_of([[(1, 2, 3), (1, 2, 3), (255, 255, 255)],
                  [(1, 2, 3), (0, 0, 0), (255, 0, 0)]])
    labels, unknown = images.colours_to_labels(rgb, DEFAULT, VALUES)
    assert unknown == {"#010203": 3, "#ffffff": 1}
    np.testing.assert_array_equal(labels, [[0, 0, 0], [0, 0, 1]])  # unknown colours left at background


def test_alpha_channel_is_ignored():
    rgba = np.array([[(255, 0, 0, 0), (0, 0, 255, 128)]], np.uint8)
    labels, unknown = images.colours_to_labels(rgba, DEFAULT, VALUES)
    np.testing.assert_array_equal(labels, [[1, 3]])
    assert unknown == {}


def test_single_channel_input_raises():
    with pytest.raises(ValueError, match="single-channel"):
        images.colours_to_labels(np.zeros((4, 4), np.uint8), DEFAULT, VALUES)


@pytest.fixture(scope="module")
def head_plan() -> dict:
    config = catalogue.load_config({"datasets": ["fetal_head_biometry"]}, ROOT)
    entries = catalogue.load_catalogue(config)
    return catalogue.plan(entries["fetal_head_biometry"], config)


def test_per_subset_table_override_csp_yellow_vs_green(head_plan):
    values = head_plan["labels"]["mask"]
    yellow, green = (255, 255, 0), (0, 255, 0)
    rgb = rgb_of([[yellow, green, (255, 0, 0)]])

    plane = fetal_head_biometry.colour_table(head_plan, "Trans-thalamic")
    labels, unknown = images.colours_to_labels(rgb, plane, values)
    np.testing.assert_array_equal(labels, [[0, values["csp"], values["brain"]]])
    assert unknown == {"#ffff00": 1}

    diverse = fetal_head_biometry.colour_table(head_plan, "Diverse Fetal Head Images")
    assert diverse["csp"] == [255, 255, 0] and diverse["brain"] == [255, 0, 0]
    labels, unknown = images.colours_to_labels(rgb, diverse, values)
    np.testing.assert_array_equal(labels, [[values["csp"], 0, values["brain"]]])
    assert unknown == {"#00ff00": 1}


# --- images.read_image ------------------------------------------------------------------------


def noise(shape, seed=0, dtype=np.uint8, high=256):
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=np.int64).astype(dtype)


def test_truncated_png_is_a_case_error_naming_the_file(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(noise((64, 64, 3))).save(good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaseError) as info:
        images.read_image(bad)
    assert str(info.value).startswith(f"{bad}: cannot decode image")
    assert info.value.path == str(bad)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n", b"not an image at all"], ids=["empty", "signature", "text"])
def test_undecodable_file_is_a_case_error(tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(CaseError, match="cannot decode image"):
        images.read_image(bad)


def test_missing_file_is_a_case_error(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(CaseError) as info:
        images.read_image(missing)
    assert str(info.value) == f"{missing}: file is missing"


def test_opaque_rgba_becomes_rgb(tmp_path):
    rgb = noise((8, 9, 3), seed=1)
    rgba = np.dstack([rgb, np.full((8, 9), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    arr = images.read_image(tmp_path / "a.png")
    assert arr.shape == (8, 9, 3)
    np.testing.assert_array_equal(arr, rgb)


def test_translucent_rgba_keeps_alpha(tmp_path):
    rgba = np.dstack([noise((8, 9, 3), seed=2), np.full((8, 9), 255, np.uint8)])
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(tmp_path / "a.png")
    arr = images.read_image(tmp_path / "a.png")
    assert arr.shape == (8, 9, 4)
    np.testing.assert_array_equal(arr, rgba)


def test_opaque_grey_alpha_becomes_grey(tmp_path):
    grey = noise((5, 6), seed=3)
    Image.fromarray(np.dstack([grey, np.full((5, 6), 255, np.uint8)])).save(tmp_path / "la.png")
    arr = images.read_image(tmp_path / "la.png")
    assert arr.shape == (5, 6)
    np.testing.assert_array_equal(arr, grey)


def test_palette_becomes_rgb(tmp_path):
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    im = Image.new("P", (3, 2))
    im.putdata(idx.ravel().tolist())
    palette = [10, 20, 30, 200, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9)
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    arr = images.read_image(tmp_path / "p.png")
    assert arr.shape == (2, 3, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, [[(10, 20, 30), (200, 0, 0), (0, 255, 0)],
                                        [(0, 255, 0), (200, 0, 0), (10, 20, 30)]])


def test_bilevel_becomes_grey(tmp_path):
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1").save(tmp_path / "b.png")
    arr = images.read_image(tmp_path / "b.png")
    assert arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, [[0, 255], [255, 0]])


@pytest.mark.parametrize("mode, shape", [("L", (4, 5)), ("RGB", (4, 5, 3))])
def test_forced_mode(tmp_path, mode, shape):
    Image.fromarray(noise((4, 5, 3), seed=4)).save(tmp_path / "c.png")
    assert images.read_image(tmp_path / "c.png", mode).shape == shape
    Image.fromarray(noise((4, 5), seed=4)).save(tmp_path / "g.png")
    assert images.read_image(tmp_path / "g.png", mode).shape == shape


def test_16bit_grey_png_is_read_as_uint16(tmp_path):
    arr16 = noise((6, 7), seed=5, dtype=np.uint16, high=65536)
    arr16[0, 0], arr16[0, 1] = 0, 65535
    Image.fromarray(arr16).save(tmp_path / "g16.png")
    arr = images.read_image(tmp_path / "g16.png")
    assert arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, arr16)


def test_16bit_grey_round_trips_through_write_png(tmp_path):
    arr16 = noise((6, 7), seed=5, dtype=np.uint16, high=65536)
    arr16[0, 0], arr16[0, 1] = 0, 65535
    Image.fromarray(arr16).save(tmp_path / "g16.png")
    arr = images.read_image(tmp_path / "g16.png")
    images.write_png(arr, tmp_path / "out.png", 1)
    back = images.read_image(tmp_path / "out.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, arr16)
    assert chunks(tmp_path / "out.png")[0][1][8] == 16  # IHDR bit depth


def test_16bit_colour_is_refused(tmp_path):
    with pytest.raises(ValueError, match="16-bit colour"):
        images.write_png(np.zeros((2, 2, 3), np.uint16), tmp_path / "x.png", 1)
    assert not (tmp_path / "x.png").exists()


# --- images.write_png -------------------------------------------------------------------------


def chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        out.append((kind, body))
        pos += 12 + length
    assert out[-1][0] == b"IEND"
    return out


@pytest.mark.parametrize("arr", [noise((33, 17), seed=6), noise((20, 21, 3), seed=7), noise((9, 8, 4), seed=8)],
                         ids=["grey", "rgb", "rgba"])
def test_write_png_is_deterministic_and_lossless(tmp_path, arr):
    images.write_png(arr, tmp_path / "a.png", 1)
    images.write_png(arr.copy(), tmp_path / "sub" / "b.png", 1)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "sub" / "b.png").read_bytes()
    np.testing.assert_array_equal(images.read_image(tmp_path / "a.png"), arr)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_write_png_has_no_text_or_time_chunks(tmp_path):
    images.write_png(noise((16, 16, 3), seed=9), tmp_path / "a.png", 6)
    kinds = [k for k, _ in chunks(tmp_path / "a.png")]
    assert kinds[0] == b"IHDR"
    assert not {b"tEXt", b"zTXt", b"iTXt", b"tIME"} & set(kinds)
    assert set(kinds) <= {b"IHDR", b"IDAT", b"IEND"}


def test_write_png_compress_level_is_used(tmp_path):
    arr = np.tile(np.arange(64, dtype=np.uint8), (64, 1))
    images.write_png(arr, tmp_path / "0.png", 0)
    images.write_png(arr, tmp_path / "9.png", 9)
    assert (tmp_path / "9.png").stat().st_size < (tmp_path / "0.png").stat().st_size
    np.testing.assert_array_equal(images.read_image(tmp_path / "0.png"), images.read_image(tmp_path / "9.png"))


def test_write_png_replaces_an_existing_file(tmp_path):
    dest = tmp_path / "a.png"
    dest.write_bytes(b"old")
    images.write_png(np.zeros((2, 2), np.uint8), dest, 1)
    np.testing.assert_array_equal(images.read_image(dest), np.zeros((2, 2), np.uint8))


# --- images.pixel_digest ----------------------------------------------------------------------


def test_pixel_digest_includes_shape_and_dtype():
    flat = np.arange(12, dtype=np.uint8)
    a, b = flat.reshape(3, 4), flat.reshape(4, 3)
    assert a.tobytes() == b.tobytes()
    assert images.pixel_digest(a) != images.pixel_digest(b)
    assert images.pixel_digest(a) != images.pixel_digest(flat.reshape(2, 6))
    assert images.pixel_digest(a) != images.pixel_digest(a.view(np.int8))


def test_pixel_digest_depends_on_pixels_only():
    a = noise((10, 12, 3), seed=10)
    assert images.pixel_digest(a) == images.pixel_digest(a.copy())
    assert images.pixel_digest(a[:, ::2]) == images.pixel_digest(np.ascontiguousarray(a[:, ::2]))
    b = a.copy()
    b[9, 11, 2] ^= 1
    assert images.pixel_digest(a) != images.pixel_digest(b)
    assert len(images.pixel_digest(a)) == 64


def test_montage_stretches_16_bit_images_instead_of_clipping(tmp_path):
    """Mammograms are 16-bit: a plain convert('RGB') would show them white."""
    from medcurate import qc
    from medcurate.images import write_png

    px = np.linspace(1000, 3000, 64 * 48).reshape(48, 64).astype(np.uint16)
    write_png(px, tmp_path / "m.png", 1)
    rgb = qc._rgb(np.asarray(Image.open(tmp_path / "m.png")))
    assert rgb.shape == (48, 64, 3) and rgb.min() == 0 and rgb.max() == 255 and len(np.unique(rgb)) > 200
    tile = np.asarray(qc._image_tile(tmp_path / "m.png", qc.THUMB))
    assert tile.min() < 20 and tile.max() > 235  # stretched in the tile too, not white
    big = np.zeros((3000, 2000), np.uint16)
    size = qc.fit((2000, 3000), qc.THUMB)
    small = qc._subsample(big, size)
    assert small.shape[0] >= 2 * size[1] and small.shape[1] >= 2 * size[0] and small.size < big.size / 100


def test_cleaning_on_the_foreground_box_equals_whole_image_cleaning():
    """clean() works on the bounding box of the foreground; it must give what whole-image
    morphology gives, holes and border contact included."""
    from medcurate.masks import clean
    from scipy import ndimage
    from skimage import morphology

    rng = np.random.default_rng(7)
    for _ in range(20):
        mask = np.zeros((60, 80), np.uint8)
        for value in (1, 2):
            for _ in range(3):
                r, c = rng.integers(0, 60), rng.integers(0, 80)
                mask[max(r - rng.integers(1, 9), 0):r + rng.integers(1, 9), max(c - 6, 0):c + rng.integers(1, 9)] = value
        mask[rng.random(mask.shape) < 0.05] = 0  # pinholes
        expected = mask.copy()
        for value in (1, 2):
            region = expected == value
            kept = morphology.remove_small_objects(region, max_size=4)
            kept = ndimage.binary_fill_holes(kept) & ((expected == 0) | (expected == value))
            expected[region & ~kept] = 0
            expected[kept & ~region] = value
        got, _ = clean(mask.copy(), mask.shape, {"background": 0, "a": 1, "b": 2},
                       {"min_component_area": 5, "fill_holes": True}, "m.png")
        np.testing.assert_array_equal(got, expected)


def test_image_declaring_billions_of_pixels_is_a_case_error(tmp_path):
    """Found by the fuzzer: a TIFF header claiming 3.2 Gpx made Pillow raise DecompressionBombError."""
    import zlib

    from medcurate.errors import CaseError
    from medcurate.images import read_image
    from PIL import Image

    path = tmp_path / "bomb.png"
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = (70000).to_bytes(4, "big") + (70000).to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # a valid chunk CRC
    path.write_bytes(bytes(data))
    with pytest.raises(CaseError, match="decompression bomb") as err:
        read_image(path)
    assert err.value.path == str(path)
