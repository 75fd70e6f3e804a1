"""PNG passthrough (pngcopy): a source PNG already in the output's mode and depth is written by
copying its IHDR and IDAT chunks, never re-encoded; everything else still goes through the encoder."""

import hashlib
import io
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from medcurate import convert, images, pngcopy
from medcurate.datasets import Case
from PIL import Image, PngImagePlugin

RNG = np.random.default_rng(17)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, read independently of pngcopy."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + payload)
        out.append((kind, payload))
        pos += 12 + length
    return out


def idat(data: bytes) -> bytes:
    return b"".join(p for k, p in chunks(data) if k == b"IDAT")


def with_metadata(arr: np.ndarray, **save) -> bytes:
    """A PNG as publishers' tools write them: text, a timestamp, a physical size, gamma, a colour
    profile, at level 9 (so a re-encode at level 1 could not give the same IDAT bytes)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "scanner 1.0")
    info.add_itxt("Comment", "patient text")
    info.add(b"tIME", struct.pack(">HBBBBB", 2019, 5, 17, 10, 31, 0))
    info.add(b"gAMA", struct.pack(">I", 45455))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", pnginfo=info, dpi=(72, 72), compress_level=9,
                              icc_profile=b"\0" * 128, **save)
    return buf.getvalue()


def texture(shape, dtype=np.uint8) -> np.ndarray:
    top = 65535 if dtype == np.uint16 else 255
    base = np.linspace(0, top, int(np.prod(shape)), dtype=np.float64).reshape(shape)
    return (base * 0.7 + RNG.integers(0, top // 4, shape)).astype(dtype)


COPIED = {
    "grey8": texture((37, 53)),
    "grey16": texture((29, 41), np.uint16),
    "rgb8": texture((23, 31, 3)),
    "rgba8": np.dstack([texture((23, 31, 3)), np.full((23, 31), 128, np.uint8)]),  # alpha carries something
    "grey_alpha8": np.dstack([texture((19, 17)), texture((19, 17))]),
}


@pytest.mark.parametrize("name", sorted(COPIED))
def test_copied_png_keeps_the_pixels_and_no_ancillary_chunk(tmp_path, name):
    arr = COPIED[name]
    src = tmp_path / f"{name}.png"
    src.write_bytes(with_metadata(arr))
    assert {k for k, _ in chunks(src.read_bytes())} >= {b"tEXt", b"iTXt", b"tIME", b"pHYs", b"gAMA", b"iCCP"}
    decoded, source = images.read_image_png(src)
    assert source is not None and (decoded == arr).all()
    digests = [images.write_png(decoded, tmp_path / f"out{i}.png", 1, source) for i in (1, 2)]
    out = (tmp_path / "out1.png").read_bytes()
    assert out == (tmp_path / "out2.png").read_bytes() and digests[0] == digests[1]
    assert [k for k, _ in chunks(out)] == [b"IHDR", b"IDAT", b"IEND"]  # nothing ancillary left
    assert idat(out) == idat(src.read_bytes())  # the source's level-9 data, not a level-1 re-encode
    assert idat(out) != idat(images.encode_png(decoded, 1))
    back, _ = images.read_image_png(tmp_path / "out1.png")
    assert back.dtype == arr.dtype and back.shape == arr.shape and (back == arr).all()
    assert images.pixel_digest(back) == images.pixel_digest(arr)
    with pytest.raises(ValueError):  # the copy stands for these values: they cannot change in place
        decoded[0, 0] = 1


def test_several_idat_chunks_are_kept_in_order(tmp_path):
    arr = texture((64, 300))
    data = with_metadata(arr)
    stream = idat(data)
    parts = [stream[i:i + 1000] for i in range(0, len(stream), 1000)]  # as libpng writes 8 KB chunks
    rebuilt = data[:8] + b"".join(_chunk(k, p) for k, p in chunks(data) if k not in (b"IDAT", b"IEND"))
    rebuilt += b"".join(_chunk(b"IDAT", p) for p in parts) + _chunk(b"tEXt", b"after\0data") + _chunk(b"IEND", b"")
    src = tmp_path / "multi.png"
    src.write_bytes(rebuilt)
    decoded, source = images.read_image_png(src)
    images.write_png(decoded, tmp_path / "out.png", 1, source)
    out = (tmp_path / "out.png").read_bytes()
    assert [k for k, _ in chunks(out)] == [b"IHDR"] + [b"IDAT"] * len(parts) + [b"IEND"]
    assert (np.asarray(Image.open(tmp_path / "out.png")) == arr).all()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _palette(arr):
    return Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)


ENCODED_INTERLACED = texture((20, 24))
ENCODED = {  # (file bytes, image_mode): the written array is not the file's own data
    "palette": (lambda: _save(_palette(texture((20, 24, 3)))), "keep"),
    "opaque_rgba_to_rgb": (lambda: _save(Image.fromarray(np.dstack([texture((20, 24, 3)), np.full((20, 24), 255, np.uint8)]))), "keep"),
    "rgb_to_L": (lambda: _save(Image.fromarray(texture((20, 24, 3)))), "L"),
    "grey_to_RGB": (lambda: _save(Image.fromarray(texture((20, 24)))), "RGB"),
    "bilevel": (lambda: _save(Image.fromarray(texture((20, 24)) > 128)), "keep"),
    "grey4bit": (lambda: _raw_png(20, 24, 4, 0, bytes(range(12)) * 1), "keep"),
    "rgb16_to_8": (lambda: _raw_png(20, 24, 16, 2, bytes(range(144))), "keep"),
    "interlaced": (lambda: _adam7(ENCODED_INTERLACED), "keep"),
    "animated": (lambda: _animated(), "keep"),
}


def _save(im, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _raw_png(height, width, depth, colour, row, interlace=0) -> bytes:
    """A PNG written by hand (Pillow writes neither 4-bit grey nor 16-bit RGB): every row the same."""
    raw = b"".join(b"\0" + row for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _adam7(arr: np.ndarray) -> bytes:
    """An interlaced 8-bit grey PNG (Pillow reads Adam7 but does not write it): the seven passes'
    sub-images one after the other, rows unfiltered."""
    passes = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
    raw = b"".join(b"\0" + row.tobytes() for r0, c0, dr, dc in passes for row in arr[r0::dr, c0::dc] if row.size)
    ihdr = struct.pack(">IIBBBBB", arr.shape[1], arr.shape[0], 8, 0, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _trailing() -> bytes:
    """A valid image whose zlib stream is followed by junk inside IDAT: decoders tolerate it."""
    arr = texture((20, 24))
    raw = b"".join(b"\0" + arr[r].tobytes() for r in range(20))
    ihdr = struct.pack(">IIBBBBB", 24, 20, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw) + b"junk") + _chunk(b"IEND", b"")


def _animated() -> bytes:
    frames = [Image.fromarray(texture((20, 24))) for _ in range(2)]
    return _save(frames[0], save_all=True, append_images=frames[1:])


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_a_png_that_needs_conversion_is_encoded(tmp_path, name):
    make, mode = ENCODED[name]
    src = tmp_path / f"{name}.png"
    src.write_bytes(make())
    decoded, source = images.read_image_png(src, mode)
    assert source is None
    if name == "interlaced":  # the file is read right, only not copied
        assert (decoded == ENCODED_INTERLACED).all()
    images.write_png(decoded, tmp_path / "out.png", 1, source)
    out = (tmp_path / "out.png").read_bytes()
    assert out == images.encode_png(decoded, 1)
    assert (np.asarray(Image.open(tmp_path / "out.png")) == decoded).all()


def test_a_changed_array_is_encoded_even_with_the_source(tmp_path):
    """A crop, flip or rescale makes a new array: the source's chunks no longer stand for it."""
    arr = texture((30, 40))
    src = tmp_path / "a.png"
    src.write_bytes(with_metadata(arr))
    decoded, source = images.read_image_png(src)
    for changed in (decoded[2:, :], decoded[:, ::-1], decoded.copy(), (decoded // 2).astype(np.uint8)):
        images.write_png(changed, tmp_path / "out.png", 1, source)
        assert (tmp_path / "out.png").read_bytes() == images.encode_png(changed, 1)


def test_gzip_wrapped_png_is_copied_too(tmp_path):
    import gzip

    arr = texture((16, 16))
    (tmp_path / "a.png.gz").write_bytes(gzip.compress(with_metadata(arr), mtime=0))
    decoded, source = images.read_image_png(tmp_path / "a.png.gz")
    assert source is not None and source.png() == b"".join(
        [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", chunks(with_metadata(arr))[0][1]), _chunk(b"IDAT", idat(with_metadata(arr))), _chunk(b"IEND", b"")])


def _plan(mode="keep"):
    return {"id": "toy", "task": "classification", "png_compress_level": 1, "module": "toy",
            "labels": {"classes": {}}, "convert": {"image_mode": mode}}


def test_convert_copies_the_image_and_digests_the_decoded_pixels(tmp_path):
    arr = texture((40, 50))
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    src.write_bytes(with_metadata(arr))
    for run in ("one", "two"):
        sums = {}
        row = convert._convert_case(Case("a", "p", src), tmp_path / "in", _plan(), SimpleNamespace(), tmp_path / run, sums)
        assert row["pixel_sha256"] == images.pixel_digest(arr)
    out = (tmp_path / "one" / "images" / "a.png").read_bytes()
    assert out == (tmp_path / "two" / "images" / "a.png").read_bytes()
    assert [k for k, _ in chunks(out)] == [b"IHDR", b"IDAT", b"IEND"] and idat(out) == idat(src.read_bytes())
    # image_mode L on a colour source: converted, so encoded at the configured level
    (tmp_path / "in" / "c.png").write_bytes(with_metadata(texture((40, 50, 3))))
    convert._convert_case(Case("c", "p", tmp_path / "in" / "c.png"), tmp_path / "in", _plan("L"), SimpleNamespace(), tmp_path / "three", {})
    written = (tmp_path / "three" / "images" / "c.png").read_bytes()
    assert written == images.encode_png(np.asarray(Image.open(tmp_path / "in" / "c.png").convert("L")), 1)


def test_a_module_reader_is_never_copied(tmp_path):
    """A dataset's own load_image may crop or rescale: its result is always encoded."""
    arr = texture((12, 12))
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    src.write_bytes(with_metadata(arr))
    module = SimpleNamespace(load_image=lambda case, plan: images.read_image(case.image))
    convert._convert_case(Case("a", "p", src), tmp_path / "in", _plan(), module, tmp_path / "out", {})
    assert (tmp_path / "out" / "images" / "a.png").read_bytes() == images.encode_png(arr, 1)


def test_pngcopy_refuses_what_it_does_not_know(tmp_path):
    arr = texture((8, 8))
    good = with_metadata(arr)
    assert pngcopy.copyable(good, arr) is not None
    assert pngcopy.copyable(good, arr.astype(np.uint16)) is None  # the array is not at the file's depth
    assert pngcopy.copyable(good, arr[:4]) is None
    cgbi = good[:8] + _chunk(b"CgBI", b"\0\0\0\0") + good[8:]  # Apple's variant: IDAT is not zlib
    assert pngcopy.copyable(cgbi, arr) is None
    broken = bytearray(good)
    at = good.index(b"IDAT") + 6
    broken[at] ^= 0xFF  # a flipped bit in the image data: CRC mismatch
    assert pngcopy.copyable(bytes(broken), arr) is None
    assert pngcopy.copyable(good[:-12], arr) is None  # no IEND


def test_a_source_with_nothing_to_drop_is_hard_linked(tmp_path):
    """The copy would equal the file: the converted image is the unpacked file itself (no disk)."""
    arr = texture((30, 40))
    src = tmp_path / "plain.png"
    src.write_bytes(_save(Image.fromarray(arr)))  # IHDR, IDAT, IEND only
    src.chmod(0o644)
    decoded, source = images.read_image_png(src)
    digest = images.write_png(decoded, tmp_path / "out" / "plain.png", 1, source)
    out = tmp_path / "out" / "plain.png"
    assert out.stat().st_ino == src.stat().st_ino and out.read_bytes() == src.read_bytes()
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()
    assert not list((tmp_path / "out").glob(".*"))  # no temporary link left behind
    # a file with another mode than the outputs' 0644 is copied, not linked (the tree stays uniform)
    src.chmod(0o600)
    decoded, source = images.read_image_png(src)
    images.write_png(decoded, tmp_path / "out" / "private.png", 1, source)
    assert (tmp_path / "out" / "private.png").stat().st_ino != src.stat().st_ino
    assert (tmp_path / "out" / "private.png").read_bytes() == src.read_bytes()
    # with metadata to drop, never a link
    (tmp_path / "meta.png").write_bytes(with_metadata(arr))
    decoded, source = images.read_image_png(tmp_path / "meta.png")
    images.write_png(decoded, tmp_path / "out" / "meta.png", 1, source)
    assert (tmp_path / "out" / "meta.png").stat().st_nlink == 1


def test_a_symlinked_source_is_copied_not_linked(tmp_path):
    """Gated sets' unpacked tier links the user's own files: those are never hard-linked into outputs."""
    arr = texture((10, 10))
    (tmp_path / "user.png").write_bytes(_save(Image.fromarray(arr)))
    (tmp_path / "user.png").chmod(0o644)
    (tmp_path / "link.png").symlink_to(tmp_path / "user.png")
    decoded, source = images.read_image_png(tmp_path / "link.png")
    images.write_png(decoded, tmp_path / "out.png", 1, source)
    assert (tmp_path / "out.png").stat().st_nlink == 1 and (tmp_path / "user.png").stat().st_nlink == 1


def test_a_stream_is_copied_as_the_publisher_wrote_it(tmp_path):
    """Not inflated twice (pngcopy's docstring): bytes after the zlib stream's end stay, and the
    copy decodes to the same pixels as the source."""
    src = tmp_path / "t.png"
    src.write_bytes(_trailing())
    decoded, source = images.read_image_png(src)
    assert source is not None and idat(source.png()) == idat(src.read_bytes())
    assert (np.asarray(Image.open(io.BytesIO(source.png()))) == decoded).all()
