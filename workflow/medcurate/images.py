"""Generic image reading and deterministic PNG writing."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageMode, UnidentifiedImageError

from .atomic import atomic_path
from .errors import CaseError, MedcurateError
from .pngcopy import PngCopy, copyable, linkable
from .pngframe import encode

# Pillow's own decompression-bomb guard stays on as a backstop for every other Image.open (QC,
# near-duplicates read our own PNGs); read_image refuses far earlier, by the pixel budget below.
Image.MAX_IMAGE_PIXELS = 40_000 * 40_000
# A gzip-wrapped image (STARE ships .ppm.gz) is inflated in memory up to the pixel budget (plus
# room for headers), and never beyond this: far above any 2-D image in the catalogue (a 4084x3328
# 16-bit mammogram is 27 MB), far below a gzip bomb's.
MAX_GUNZIP_BYTES = 512 * 2**20
FILE_SLACK = 16 * 2**20  # headers, metadata and container bytes beside the pixels of an image file

# The convert job exports its Snakemake mem_mb here; without it (tests, the CLI by hand) the convert
# rule's first-attempt mem_mb is assumed.
MEM_ENV = "MEDCURATE_MEM_MB"
DEFAULT_MEM_MB = 2000
# Decoding needs working copies beside the decoded pixels (the decoder's buffer, the array, a mode
# conversion, DICOM's modality LUT), so one image may take only this share of the job's memory.
BUDGET_SHARE = 4


def pixel_budget() -> int:
    """Bytes of decoded pixels one image may take: a quarter of the job's memory (MEDCURATE_MEM_MB,
    set by the convert rule to its mem_mb; DEFAULT_MEM_MB when unset). A malformed value is the
    job's fault, not a case's: MedcurateError."""
    raw = os.environ.get(MEM_ENV, "").strip()
    if not raw:
        return DEFAULT_MEM_MB * 2**20 // BUDGET_SHARE
    try:
        mem_mb = int(raw)
    except ValueError:
        mem_mb = 0
    if mem_mb <= 0:
        raise MedcurateError(None, f"{MEM_ENV}={raw!r} must be a positive whole number of megabytes (the job's mem_mb)")
    return mem_mb * 2**20 // BUDGET_SHARE


def over_budget(declared: str, nbytes: int, budget: int) -> str | None:
    """The refusal reason when ``nbytes`` of decoded pixels (``declared``: what the header says)
    exceed ``budget`` (pixel_budget()), else None."""
    if nbytes <= budget:
        return None
    return (f"header declares {declared}: {nbytes} bytes of decoded pixels, over the pixel budget of {budget} bytes "
            f"(1/{BUDGET_SHARE} of the job's memory, {budget_setting()}); refused before decoding. A corrupt header? "
            "If the image is real, raise the convert rule's mem_mb")


def budget_setting() -> str:
    raw = os.environ.get(MEM_ENV, "").strip()
    return f"{MEM_ENV}={raw}" if raw else f"{MEM_ENV} unset: {DEFAULT_MEM_MB} MB assumed"


def read_image(path: Path, mode: str = "keep") -> np.ndarray:
    """Decode an image file fully (so truncation is caught here, not later) into an array. A
    ``.gz`` file is an image compressed once more with gzip, inflated first. The size its header
    declares is checked against pixel_budget() before any pixel is decoded."""
    return read_image_png(path, mode)[0]


def read_image_png(path: Path, mode: str = "keep") -> tuple[np.ndarray, PngCopy | None]:
    """read_image, and the source's PNG chunks to copy (pngcopy) when the file is a PNG whose
    pixels the array holds unchanged (no mode change, same bit depth, sequential): pass it to
    write_png with that array, which then copies instead of encoding."""
    budget = pixel_budget()
    try:
        data = _file_bytes(Path(path), budget)
        with warnings.catch_warnings():
            # Pillow warns from 1.6 Gpx; the budget below decides, so its warning is only noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            width, height = im.size
            per_pixel = _bytes_per_pixel(im.mode, mode)
            declared = f"{width}x{height} {im.mode} pixels, {per_pixel} bytes each once decoded"
            if reason := over_budget(declared, width * height * per_pixel, budget):
                raise CaseError(path, reason)
            im.load()
            normal = _normalise_mode(im, mode)
            arr = np.asarray(normal)
            copy = copyable(data, arr) if normal is im and im.format == "PNG" else None
            return arr, (linkable(copy, data, Path(path)) if copy and not Path(path).name.endswith(".gz") else copy)
    except FileNotFoundError:
        raise CaseError(path, "file is missing") from None
    except Image.DecompressionBombError as exc:  # a header declaring billions of pixels
        raise CaseError(path, f"refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CaseError(path, f"cannot decode image ({exc})") from None


def _bytes_per_pixel(native: str, mode: str) -> int:
    """Bytes per pixel of the array read_image returns: the larger of the file's mode and the one
    it is converted to (a palette image may become RGBA)."""
    try:
        info = ImageMode.getmode(native)
        size = len(info.bands) * np.dtype(info.typestr).itemsize
    except (KeyError, TypeError, ValueError):
        size = 8  # a mode Pillow does not describe: assume the widest
    return max(size, {"L": 1, "RGB": 3}.get(mode, 4 if native in ("P", "PA") else 0))


def _file_bytes(path: Path, budget: int) -> bytes:
    size = path.stat().st_size  # FileNotFoundError: the caller's "file is missing"
    if not path.name.endswith(".gz"):
        if size > budget + FILE_SLACK:  # reading it would already take more than the budget
            raise CaseError(path, f"file is {size} bytes, more than the pixel budget of {budget} bytes "
                                  f"({budget_setting()}) allows; refused before reading. If the image is real, "
                                  "raise the convert rule's mem_mb")
        return path.read_bytes()
    limit = min(MAX_GUNZIP_BYTES, budget + FILE_SLACK)
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise CaseError(path, f"not a valid gzip file ({exc or type(exc).__name__})") from None
    if len(data) > limit:
        raise CaseError(path, f"decompresses to more than {limit} bytes, over the pixel budget ({budget_setting()}); "
                              "refused as a gzip bomb")
    return data


def _normalise_mode(im: Image.Image, mode: str) -> Image.Image:
    """The image in the output mode; ``im`` itself when nothing changes (read_image_png relies on
    that to know the pixels are the file's own)."""
    if mode in ("L", "RGB"):
        if im.mode == mode:
            return im
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


def write_png(arr: np.ndarray, dest: Path, level: int, source: PngCopy | None = None) -> str:
    """PNG without timestamps or text chunks, so equal inputs give equal bytes. With ``source``
    (read_image_png's, for this very array) the source's image data chunks are copied instead of
    encoding (pngcopy). Returns the file's sha256 (from the bytes written: SHA256SUMS need not read
    the file back)."""
    if source is not None and source.fits(arr):
        data = source.png()
        if source.same_as is not None and _link(source.same_as, Path(dest)):
            return hashlib.sha256(data).hexdigest()
    else:
        data = encode_png(arr, level)
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _link(src: Path, dest: Path) -> bool:
    """Hard-link ``src`` (a file equal to the output) to ``dest`` atomically; False when it cannot
    be (another file system, links not supported, a mode other than the outputs' 0644), and the
    caller writes a copy."""
    try:
        if stat.S_IMODE(src.stat().st_mode) != 0o644:
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.link")
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, dest)
        return True
    except OSError:
        return False


def encode_png(arr: np.ndarray, level: int) -> bytes:
    """PNG bytes of the array: 'up'-filtered rows deflated by the pinned libdeflate (pngframe: the
    same bytes on every machine, ~3x faster than Pillow at level 1)."""
    return encode(arr, level)


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
