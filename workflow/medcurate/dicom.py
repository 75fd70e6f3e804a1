"""DICOM mammogram reading: one 2-D array per file, lossless by default, every failure a CaseError."""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder

from .errors import CaseError

DEFAULTS = {"output": "uint16"}
# pydicom hands these to us as RGB (it converts YCbCr itself), so they are all "RGB" to a caller.
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}
# A corrupt Rows/Columns must not make a decoder allocate gigabytes; a full-field mammogram is ~40 MB.
MAX_PIXEL_BYTES = 2**30
# The Pixel Data tag (7FE0,0010) as it appears in little- and big-endian files.
_PIXEL_DATA_TAG = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


def read_dicom(path: Path, options: dict | None = None) -> np.ndarray:
    """Decode a single-frame DICOM image into a 2-D array.

    options:
      {"output": "uint16"} (default): the values after the modality LUT (Rescale Slope/Intercept or
        Modality LUT Sequence), losslessly. Non-integral values are rounded to nearest (half to even);
        if the minimum is negative the whole image is shifted so that it becomes 0 (only then);
        values still above 65535 are clipped to 65535.
      {"output": "uint8", "window": "voi"}: the file's first VOI LUT (VOI LUT Sequence, else
        WindowCenter/WindowWidth with its VOI LUT Function) applied after the modality LUT, its output
        range scaled to 0..255; min-max scaling when the file has neither.
      {"output": "uint8", "window": "minmax"}: min..max of the modality-LUT values scaled to 0..255.

    MONOCHROME1 (higher = darker) is inverted so that, as in MONOCHROME2, higher = brighter: for
    uint16 each value v becomes lo + hi - v, where lo..hi is the range the stored bits can take after
    the modality LUT (for plain unsigned data: 2**BitsStored - 1 - v); for uint8 after windowing.
    RGB (and YCbCr, which pydicom converts to RGB) 8-bit images are returned as (rows, cols, 3) uint8
    whatever the options; any other photometric interpretation is refused.

    Raises CaseError naming the file and the reason for anything the file gets wrong: not DICOM,
    truncated, no or short pixel data, several frames, a transfer syntax no installed plugin decodes,
    a header declaring more than MAX_PIXEL_BYTES of pixels.
    """
    output, window = _parse_options(options)
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CaseError(path, "file is missing") from None
    except OSError as exc:
        raise CaseError(path, f"cannot read file ({exc})") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        raise CaseError(path, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)") from None
    except Exception as exc:  # noqa: BLE001 - the parser raises many types on malformed bytes
        raise CaseError(path, f"malformed DICOM file ({type(exc).__name__}: {exc})") from None

    with _case_errors(path, "malformed DICOM header"):
        photometric = _check_header(path, ds, data)
    with _case_errors(path, f"cannot decode {_syntax_name(ds.file_meta.TransferSyntaxUID)} pixel data"):
        arr = ds.pixel_array
    with _case_errors(path, "cannot apply the file's pixel transforms"):
        if photometric in COLOUR:
            if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise CaseError(path, f"expected 8-bit RGB pixels, decoded {arr.dtype} {arr.shape}")
            return arr
        if arr.ndim != 2:
            raise CaseError(path, f"expected a 2-D {photometric} image, decoded shape {arr.shape}")
        invert = photometric == "MONOCHROME1"
        return _to_uint16(ds, arr, invert) if output == "uint16" else _to_uint8(ds, arr, window, invert)


def _parse_options(options: dict | None) -> tuple[str, str | None]:
    # A bad option is the caller's (catalogue's) mistake, not the case's: ValueError, not CaseError.
    opts = {**DEFAULTS, **(options or {})}
    unknown = set(opts) - {"output", "window"}
    if unknown:
        raise ValueError(f"unknown read_dicom options {sorted(unknown)}")
    output, window = opts["output"], opts.get("window")
    if window not in (None, "voi", "minmax"):
        raise ValueError(f"read_dicom: window must be 'voi' or 'minmax', not {window!r}")
    if output == "uint16":
        return output, None  # the window (a config default) applies only to uint8 output
    if output == "uint8":
        window = window or "voi"
        if window not in ("voi", "minmax"):
            raise ValueError(f"read_dicom: window must be 'voi' or 'minmax', not {window!r}")
        return output, window
    raise ValueError(f"read_dicom: output must be 'uint16' or 'uint8', not {output!r}")


@contextmanager
def _case_errors(path: Path, what: str):
    """pydicom and its plugins raise many exception types on bad files; the case gets a CaseError."""
    try:
        yield
    except CaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - see above: any failure here is the file's
        raise CaseError(path, f"{what} ({type(exc).__name__}: {exc})") from None


def _syntax_name(uid) -> str:
    return f"{uid.name} ({uid})" if uid.name != uid else f"unknown transfer syntax {uid}"


def _check_header(path: Path, ds: pydicom.Dataset, data: bytes) -> str:
    """Refuse, before decoding, what cannot give one image; return the photometric interpretation."""
    uid = ds.file_meta.get("TransferSyntaxUID")
    if uid is None:
        raise CaseError(path, "file meta has no Transfer Syntax UID (truncated or malformed header)")
    if "PixelData" not in ds:
        # pydicom stops silently at a truncated element, so a Pixel Data tag in the bytes that did not
        # become an element means the file ends inside it.
        if any(tag in data for tag in _PIXEL_DATA_TAG):
            raise CaseError(path, "file is truncated inside its Pixel Data element")
        raise CaseError(path, "no Pixel Data element (not an image, or the file is truncated)")
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise CaseError(path, f"{_syntax_name(uid)}: pydicom {pydicom.__version__} has no decoder for it "
                              "(transcode the file, e.g. to Explicit VR Little Endian)") from None
    if not decoder.is_available:
        # pydicom's own list of plugins that could decode it and what each would need installed.
        needs = "; ".join(decoder.missing_dependencies) or "no plugin is known"
        raise CaseError(path, f"{_syntax_name(uid)}: no installed decoder; install one of: {needs}")

    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in {"MONOCHROME1", "MONOCHROME2", *COLOUR}:
        raise CaseError(path, f"photometric interpretation {photometric or '(missing)'!r} is unsupported "
                              "for mammograms (MONOCHROME1, MONOCHROME2 or RGB)")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames != 1:
        raise CaseError(path, f"has {frames} frames; a mammogram must be a single frame")

    rows, cols = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.BitsAllocated)
    if photometric == "YBR_FULL_422" and not uid.is_encapsulated:
        samples = 2  # 4:2:2 stores two chroma samples per pair of pixels
    expected = -(-rows * cols * samples * bits // 8)
    if expected > MAX_PIXEL_BYTES:
        raise CaseError(path, f"declares an implausibly large image ({rows}x{cols}x{samples}, {bits} bits)")
    if not uid.is_encapsulated and len(ds.PixelData) < expected:
        raise CaseError(path, f"pixel data is shorter than declared ({len(ds.PixelData)} of {expected} "
                              "bytes): file truncated or Rows/Columns/BitsAllocated wrong")
    return photometric


def _modality_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """The range every storable value can reach after the modality LUT (MONOCHROME1 mirrors in it)."""
    bits = int(ds.BitsStored)
    if int(ds.PixelRepresentation) == 0:
        probe = [0, 2**bits - 1]
    else:
        probe = [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1]
    if ds.get("ModalityLUTSequence"):
        entries, first = ds.ModalityLUTSequence[0].LUTDescriptor[:2]
        probe += range(first, first + (entries or 2**16))
    values = apply_modality_lut(np.asarray(probe, np.int64), ds)
    return float(values.min()), float(values.max())


def _to_uint16(ds: pydicom.Dataset, arr: np.ndarray, invert: bool) -> np.ndarray:
    values = apply_modality_lut(arr, ds)
    if invert:
        lo, hi = _modality_range(ds)
        # Out-of-range values (stray high bits) are clipped first so the mirror stays in lo..hi.
        values = (lo + hi) - np.clip(values, lo, hi)
    if values.dtype == np.uint16:
        return values
    # Widen first: shifting int16 data by its minimum would overflow in place.
    values = np.rint(values) if values.dtype.kind == "f" else values.astype(np.int64)
    low = values.min()
    if low < 0:
        values = values - low
    return np.clip(values, 0, 65535).astype(np.uint16)


def _to_uint8(ds: pydicom.Dataset, arr: np.ndarray, window: str, invert: bool) -> np.ndarray:
    values = apply_modality_lut(arr, ds)
    lut = ds.get("VOILUTSequence")
    # The same precedence as pydicom.pixels.apply_voi_lut: a complete VOI LUT, else a window.
    has_lut = bool(lut) and None not in (lut[0].get("LUTDescriptor"), lut[0].get("LUTData"))
    has_window = None not in (ds.get("WindowCenter"), ds.get("WindowWidth"))
    if window == "voi" and has_lut:
        entries, first = lut[0].LUTDescriptor[:2]
        last = first + (entries or 2**16) - 1
        # pydicom indexes the LUT by truncation and wraps indices above 65535: give it clipped ints.
        values = apply_voi(np.clip(np.rint(values), first, last).astype(np.int64), ds, 0)
        table = apply_voi(np.arange(first, last + 1, dtype=np.int64), ds, 0)
        lo, hi = float(table.min()), float(table.max())
    elif window == "voi" and has_window:
        values = apply_windowing(values, ds, 0)
        with np.errstate(over="ignore"):  # SIGMOID at the probe's extremes
            ends = apply_windowing(np.array([-1e300, 1e300]), ds, 0)
        lo, hi = float(ends.min()), float(ends.max())
    else:
        lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        scaled = np.rint((values - lo) * (255.0 / (hi - lo)))
        out = np.clip(scaled, 0, 255).astype(np.uint8)
    else:
        out = np.zeros(values.shape, np.uint8)
    return 255 - out if invert else out
