"""Generic image reading and deterministic PNG writing."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path
from .errors import CaseError

# Decompression-bomb guard stays on, but full-field mammograms (~4k x 5k) must pass.
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000
# A gzip-wrapped image (STARE ships .ppm.gz) is inflated in memory up to this size: far above any
# 2-D image in the catalogue (a 4084x3328 16-bit mammogram is 27 MB), far below a gzip bomb's.
MAX_GUNZIP_BYTES = 512 * 2**20


def read_image(path: Path, mode: str = "keep") -> np.ndarray:
    """Decode an image file fully (so truncation is caught here, not later) into an array. A
    ``.gz`` file is an image compressed once more with gzip, inflated first."""
    try:
        with Image.open(io.BytesIO(_file_bytes(Path(path)))) as im:
            im.load()
            im = _normalise_mode(im, mode)
            return np.asarray(im)
    except FileNotFoundError:
        raise CaseError(path, "file is missing") from None
    except Image.DecompressionBombError as exc:  # a header declaring billions of pixels
        raise CaseError(path, f"refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CaseError(path, f"cannot decode image ({exc})") from None


def _file_bytes(path: Path) -> bytes:
    if not path.name.endswith(".gz"):
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read(MAX_GUNZIP_BYTES + 1)
    except FileNotFoundError:
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise CaseError(path, f"not a valid gzip file ({exc or type(exc).__name__})") from None
    if len(data) > MAX_GUNZIP_BYTES:
        raise CaseError(path, f"decompresses to more than {MAX_GUNZIP_BYTES} bytes; refused as a gzip bomb")
    return data


def _normalise_mode(im: Image.Image, mode: str) -> Image.Image:
    if mode in ("L", "RGB"):
        return im.convert(mode)
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() == 255:  # opaque alpha carries nothing
            return im.convert(im.mode[:-1])
    if im.mode == "1":
        return im.convert("L")
    return im


def pixel_digest(arr: np.ndarray) -> str:
    """Content hash of decoded pixels (shape and dtype included), for duplicate detection."""
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype.str}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def write_png(arr: np.ndarray, dest: Path, level: int) -> str:
    """PNG without timestamps or text chunks, so equal pixels give equal bytes. Returns the file's
    sha256 (from the encoded bytes: SHA256SUMS need not read the file back)."""
    if arr.dtype == np.uint16 and arr.ndim != 2:
        raise ValueError("16-bit colour images are not supported")
    im = Image.fromarray(np.ascontiguousarray(arr))  # uint16 -> 'I;16', saved as 16-bit PNG
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=level, optimize=False)
    data = buf.getvalue()
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def colours_to_labels(rgb: np.ndarray, table: dict[str, list[int]], values: dict[str, int]) -> tuple[np.ndarray, dict]:
    """Map an RGB colour-coded mask to a label map. Returns (labels, {colour: pixel count}) for
    colours that are in no table entry (they are left at background)."""
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        kind = "a single-channel image" if rgb.ndim == 2 else f"an array of shape {rgb.shape}"
        raise ValueError(f"expected a colour (RGB/RGBA) mask, got {kind}")
    rgb = rgb[..., :3]
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    labels = np.zeros(packed.shape, np.uint8)
    known = np.zeros(packed.shape, bool)
    for name, (r, g, b) in table.items():
        hit = packed == ((r << 16) | (g << 8) | b)
        labels[hit] = values[name]
        known |= hit
    unknown = {}
    if not known.all():
        cols, counts = np.unique(packed[~known], return_counts=True)
        unknown = {f"#{int(c):06x}": int(n) for c, n in zip(cols, counts)}
    return labels, unknown
