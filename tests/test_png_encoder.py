"""The PNG encoder (pngframe: numpy-filtered rows, libdeflate): lossless for every array the
convert step writes, and the same bytes on every machine for the pinned libdeflate."""

import hashlib
import io

import numpy as np
import pytest
from medcurate import images, pngframe
from PIL import Image


def gradient(shape, dtype=np.uint8) -> np.ndarray:
    """Arithmetic only (no RNG): the same array everywhere, so its encoded bytes can be pinned."""
    idx = np.arange(int(np.prod(shape)), dtype=np.uint64).reshape(shape)
    top = 65536 if dtype == np.uint16 else 256
    return (((idx * 2654435761 >> 7) % 97 + idx % 13 * 31) % top).astype(dtype)


ARRAYS = {
    "grey8": gradient((37, 53)),
    "grey16": gradient((29, 41), np.uint16),
    "grey_alpha": gradient((5, 7, 2)),
    "rgb": gradient((23, 31, 3)),
    "rgba": gradient((11, 3, 4)),
    "one_row": gradient((1, 301)),
    "one_column": gradient((301, 1), np.uint16),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
@pytest.mark.parametrize("level", [0, 1, 6, 9])
@pytest.mark.parametrize("filter", sorted(pngframe.FILTERS))
def test_encoder_is_lossless(name, level, filter):
    arr = ARRAYS[name]
    data = pngframe.encode(arr, level, filter)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        back = np.asarray(im)
    assert back.dtype == arr.dtype and back.shape == arr.shape and (back == arr).all()
    assert data == pngframe.encode(arr, level, filter)


def test_write_png_uses_it_and_writes_no_ancillary_chunk(tmp_path):
    arr = ARRAYS["rgb"]
    digest = images.write_png(arr, tmp_path / "a.png", 1)
    data = (tmp_path / "a.png").read_bytes()
    assert data == pngframe.encode(arr, 1) and digest == hashlib.sha256(data).hexdigest()
    kinds, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kinds.append(data[pos + 4:pos + 8])
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_refuses_what_png_output_does_not_take():
    with pytest.raises(ValueError, match="16-bit colour"):
        pngframe.encode(np.zeros((2, 2, 3), np.uint16), 1)
    with pytest.raises(ValueError):
        pngframe.encode(np.zeros((2, 2), np.float32), 1)
    with pytest.raises(ValueError):
        pngframe.encode(np.zeros((2, 2, 5), np.uint8), 1)


# The bytes of two fixed arrays at level 1. They depend only on the libdeflate version linked into
# the pinned deflate wheel (not on the CPU, the OS or the system's zlib), so they are the same on
# every machine; a failure here means the encoder's output changed, and with it every dataset's
# published bytes: bump the pin deliberately and update these digests with it.
PINNED = {
    "grey8": "dbff41d0755baf80d6f286a29509e5d6a3ddce16a6b80b06b6bc5bef790f1e5a",
    "grey16": "6047898bedbfdacade6b552ce21fd611b8bfa315d32a7e14e3c72c29d70f7fea",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_same_bytes_on_every_machine(name):
    assert pngframe.LIBDEFLATE == "1.25"
    assert hashlib.sha256(pngframe.encode(ARRAYS[name], 1)).hexdigest() == PINNED[name]
