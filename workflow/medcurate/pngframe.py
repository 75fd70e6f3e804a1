"""A PNG encoder whose bytes do not depend on the machine: rows filtered with numpy, one zlib
stream from a deflate library shipped inside a wheel (so its version is pinned with the package,
not taken from the operating system), IHDR + one IDAT + IEND, no ancillary chunk.

Why not Pillow: Pillow deflates through whatever libz.so.1 the system provides (zlib 1.2.13 on
Debian 12, zlib-ng's compatibility build on Fedora 40 and later, Apple's zlib on macOS), and
those give different bytes for the same rows, so equal inputs gave equal outputs only on equal
systems. libdeflate (linked into the deflate wheel) gives the same output for the same version,
level and input on every CPU (its maintainer: it has never been non-deterministic; output changes
only between versions), and is the fastest at level 1 here (bench/encoders.py,
docs/performance.md). zlib-ng is not used for outputs: its maintainers do not promise equal
output across architectures and it has differed between x86-64 and aarch64.
"""

from __future__ import annotations

import struct
import zlib
from importlib.metadata import version

import deflate
import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILTERS = {"none": 0, "sub": 1, "up": 2}
DEFLATERS = ("libdeflate", "zlib", "zlib-ng", "isal")  # the first writes outputs; the others are for bench/encoders.py
# The libdeflate the pinned deflate wheel links in (its output changes only with this version:
# pyproject.toml pins the wheel, tests/test_png_encoder.py pins the bytes).
LIBDEFLATE = "1.25"
# (dtype, channels) -> PNG colour type; 16-bit only for greyscale (as images.write_png allowed before)
COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}


def deflater(name: str):
    """A function (bytes-like, level) -> zlib stream. ImportError when its package is missing."""
    if name == "libdeflate":
        return deflate.zlib_compress  # levels 0 (stored) to 12; png_compress_level's 0-9 map 1:1
    if name == "zlib":
        return zlib.compress
    if name == "zlib-ng":
        from zlib_ng import zlib_ng

        return zlib_ng.compress
    if name == "isal":
        from isal import isal_zlib

        return lambda data, level: isal_zlib.compress(data, min(level, 3))  # ISA-L has levels 0-3
    raise ValueError(f"unknown deflate library {name!r}")


def deflater_version(name: str) -> str:
    if name == "libdeflate":
        return f"libdeflate {LIBDEFLATE} (deflate {version('deflate')} wheel, linked statically)"
    if name == "zlib":
        return f"system libz {zlib.ZLIB_RUNTIME_VERSION} (Python's zlib module)"
    if name == "zlib-ng":
        from zlib_ng import zlib_ng

        return f"zlib-ng {zlib_ng.ZLIBNG_VERSION} (zlib-ng wheel)"
    import isal

    return f"ISA-L (isal {isal.__version__} wheel)"


def filtered_rows(arr: np.ndarray, filter: str = "up") -> np.ndarray:
    """The image's scanlines as PNG stores them: a filter-type byte, then the filtered bytes
    (samples big-endian). ``up`` subtracts the row above, ``sub`` the pixel to the left (mod 256)."""
    if arr.ndim not in (2, 3) or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"cannot write a {arr.dtype} array of shape {arr.shape} as PNG")
    height, width = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(">")).view(np.uint8).reshape(height, -1)
    out = np.empty((height, raw.shape[1] + 1), np.uint8)
    out[:, 0] = FILTERS[filter]
    if filter == "up":
        out[0, 1:] = raw[0]
        np.subtract(raw[1:], raw[:-1], out=out[1:, 1:])
    elif filter == "sub":
        bpp = channels * arr.dtype.itemsize
        out[:, 1:bpp + 1] = raw[:, :bpp]
        np.subtract(raw[:, bpp:], raw[:, :-bpp], out=out[:, bpp + 1:])
    else:
        out[:, 1:] = raw
    return out


def encode(arr: np.ndarray, level: int, filter: str = "up", library: str = "libdeflate") -> bytes:
    """PNG bytes of a uint8 (grey, grey+alpha, RGB, RGBA) or uint16 greyscale array."""
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.ndim not in (2, 3) or channels not in COLOUR:
        raise ValueError(f"cannot write an array of shape {arr.shape} as PNG")
    if arr.dtype == np.uint16 and channels != 1:
        raise ValueError("16-bit colour images are not supported")
    height, width = arr.shape[:2]
    depth = 8 * arr.dtype.itemsize
    ihdr = struct.pack(">IIBBBBB", width, height, depth, COLOUR[channels], 0, 0, 0)
    data = deflater(library)(filtered_rows(arr, filter), level)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))
