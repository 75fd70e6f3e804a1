"""DICOM mammogram reading: one 2-D array per file, lossless by default, every failure a CaseError."""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder

from .errors import CaseError
from .images import FILE_SLACK, budget_setting, over_budget, pixel_budget

DEFAULTS = {"output": "uint16"}
# pydicom hands these to us as RGB (it converts YCbCr itself), so they are all "RGB" to a caller.
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}
# The Pixel Data tag (7FE0,0010) as it appears in little- and big-endian files.
_PIXEL_DATA_TAG = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")
# Fixed, documented shift for data whose values can be negative: stored = value + 32768, the same
# for every image with that header (never an image's own minimum, which would differ per image).
SIGNED_OFFSET = 32768
UINT16_MAX = 65535


@dataclass(frozen=True)
class Decoded:
    """Decoded pixels and how to get the file's values back from them.

    For uint16 output ``value = pixel * slope + intercept`` is exact, where value is the
    modality-LUT output (Rescale Slope/Intercept or Modality LUT Sequence) before any MONOCHROME1
    inversion. For uint8 output (windowing is lossy by choice) slope and intercept are None.
    """
    pixels: np.ndarray
    slope: float | None
    intercept: float | None
    mapping: str  # modality | modality+32768 | stored | stored+32768 (each possibly ', inverted') | window

    def manifest(self) -> dict[str, str]:
        """The per-case record a dataset module puts into case.meta (manifest columns)."""
        return {"pixel_values": self.mapping, "pixel_slope": _number(self.slope), "pixel_intercept": _number(self.intercept)}


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def read_dicom(path: Path, options: dict | None = None) -> np.ndarray:
    """decode_dicom(path, options).pixels: for callers that need no record (masks)."""
    return decode_dicom(path, options).pixels


def decode_dicom(path: Path, options: dict | None = None) -> Decoded:
    """Decode a single-frame DICOM image into a 2-D array, never changing a value silently.

    options:
      {"output": "uint16"} (default): the values after the modality LUT (Rescale Slope/Intercept or
        Modality LUT Sequence), exactly. Where the header lets them be negative (signed data, a
        negative intercept) every pixel is stored as value + 32768 (the same for every file with
        that header). Where they are not whole numbers (a fractional slope) or do not fit 16 bits
        that way, the file's stored values are kept instead (+ 32768 if signed) and the rescale is
        recorded; where neither fits (a Modality LUT Sequence out of range, 32-bit data) the file
        is refused. Nothing is clipped or rounded. Decoded.slope/intercept say how to get the
        values back; the mapping is 'modality', 'modality+32768', 'stored' or 'stored+32768'.
      {"output": "uint8", "window": "voi"}: the file's first VOI LUT (VOI LUT Sequence, else
        WindowCenter/WindowWidth with its VOI LUT Function) applied after the modality LUT, its output
        range scaled to 0..255; min-max scaling when the file has neither.
      {"output": "uint8", "window": "minmax"}: min..max of the modality-LUT values scaled to 0..255.

    MONOCHROME1 (higher = darker) is inverted so that, as in MONOCHROME2, higher = brighter: for
    uint16 each value v becomes lo + hi - v, where lo..hi is the range the stored bits can take
    (after the modality LUT, or as stored when those are kept; for plain unsigned data:
    2**BitsStored - 1 - v), recorded as a negative slope; for uint8 after windowing.
    RGB (and YCbCr, which pydicom converts to RGB) 8-bit images are returned as (rows, cols, 3) uint8
    whatever the options; any other photometric interpretation is refused.

    Raises CaseError naming the file and the reason for anything the file gets wrong: not DICOM,
    truncated, pixel data shorter or longer than Rows x Columns x SamplesPerPixel x frames x
    BitsAllocated declare, several frames, a transfer syntax no installed plugin decodes, a header
    declaring more pixels than images.pixel_budget() allows, values that cannot be kept exactly.
    """
    output, window = _parse_options(options)
    path = Path(path)
    budget = pixel_budget()
    try:
        size = path.stat().st_size
        if size > budget + FILE_SLACK:  # reading it would already take more than the budget
            raise CaseError(path, f"file is {size} bytes, more than the pixel budget of {budget} bytes ({budget_setting()}) "
                                  "allows; refused before reading. If the image is real, raise the convert rule's mem_mb")
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
        photometric = _check_header(path, ds, data, budget)
    with _case_errors(path, f"cannot decode {_syntax_name(ds.file_meta.TransferSyntaxUID)} pixel data"):
        arr = ds.pixel_array
    with _case_errors(path, "cannot apply the file's pixel transforms"):
        if photometric in COLOUR:
            if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise CaseError(path, f"expected 8-bit RGB pixels, decoded {arr.dtype} {arr.shape}")
            return Decoded(arr, 1.0, 0.0, "stored")
        if arr.ndim != 2:
            raise CaseError(path, f"expected a 2-D {photometric} image, decoded shape {arr.shape}")
        invert = photometric == "MONOCHROME1"
        if output == "uint16":
            return _to_uint16(path, ds, arr, invert)
        return Decoded(_to_uint8(ds, arr, window, invert), None, None, "window")


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


def _check_header(path: Path, ds: pydicom.Dataset, data: bytes, budget: int) -> str:
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
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.BitsAllocated)
    frames = int(ds.get("NumberOfFrames") or 1)
    if min(rows, cols, samples, bits, frames) <= 0:
        raise CaseError(path, f"declares an empty image (Rows={rows}, Columns={cols}, SamplesPerPixel={samples}, "
                              f"BitsAllocated={bits}, NumberOfFrames={frames})")
    geometry = f"Rows={rows} x Columns={cols} x SamplesPerPixel={samples} x frames={frames} at BitsAllocated={bits}"
    # Decoded, a sample takes whole bytes (1-bit data becomes uint8): the budget counts those.
    decoded = rows * cols * samples * frames * max(1, -(-bits // 8))
    if reason := over_budget(geometry, decoded, budget):
        raise CaseError(path, reason)
    if frames != 1:
        raise CaseError(path, f"has {frames} frames; a mammogram must be a single frame")
    if photometric == "YBR_FULL_422" and not uid.is_encapsulated:
        samples = 2  # 4:2:2 stores two chroma samples per pair of pixels
    expected = -(-rows * cols * samples * frames * bits // 8)
    actual = len(ds.PixelData)
    # Uncompressed pixel data must be exactly as long as declared, but for the one pad byte that
    # keeps an element's length even: anything else means the geometry does not describe the bytes.
    if not uid.is_encapsulated and actual not in (expected, expected + expected % 2):
        what = "shorter" if actual < expected else "longer"
        why = ("file truncated, or Rows/Columns/BitsAllocated wrong" if actual < expected
               else "Rows/Columns/BitsAllocated/SamplesPerPixel too small for the data, or trailing bytes")
        raise CaseError(path, f"pixel data is {what} than declared ({actual} of {expected} bytes): "
                              f"{geometry} need {expected} bytes; {why}")
    return photometric


def _stored_range(ds: pydicom.Dataset) -> tuple[int, int]:
    """The range BitsStored and PixelRepresentation allow (pydicom masks bits above BitsStored)."""
    bits = int(ds.BitsStored)
    if int(ds.PixelRepresentation) == 0:
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _modality_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """The range every storable value can reach after the modality LUT (MONOCHROME1 mirrors in it)."""
    probe = list(_stored_range(ds))
    if ds.get("ModalityLUTSequence"):
        entries, first = ds.ModalityLUTSequence[0].LUTDescriptor[:2]
        probe += range(first, first + (entries or 2**16))
    values = apply_modality_lut(np.asarray(probe, np.int64), ds)
    return float(values.min()), float(values.max())


def _to_uint16(path: Path, ds: pydicom.Dataset, arr: np.ndarray, invert: bool) -> Decoded:
    """The header alone chooses the mapping, so every file with the same header gets the same one:
    the modality-LUT values where they are whole numbers that fit 16 bits (+ 32768 if they can be
    negative), else the stored values (+ 32768 if signed) with the rescale recorded."""
    lut = bool(ds.get("ModalityLUTSequence"))
    # As pydicom's apply_modality_lut: a rescale applies only when both elements are present.
    rescaled = not lut and "RescaleSlope" in ds and "RescaleIntercept" in ds
    slope, intercept = (float(ds.RescaleSlope), float(ds.RescaleIntercept)) if rescaled else (1.0, 0.0)
    lo, hi = _modality_range(ds)
    offset = SIGNED_OFFSET if lo < 0 else 0
    whole = slope.is_integer() and intercept.is_integer()
    if whole and 0 <= lo + offset and hi + offset <= UINT16_MAX:
        pixels, a, c = _shift(path, apply_modality_lut(arr, ds), lo, hi, offset, invert, "after the modality LUT")
        return Decoded(pixels, a, c, _mapping("modality", offset, invert))
    if lut or int(ds.BitsStored) > 16:
        why = "are not whole numbers" if not whole else f"span {lo:g}..{hi:g}, which does not fit 16 bits even shifted"
        raise CaseError(path, f"values after the modality LUT {why}, and the stored values cannot carry them "
                              f"({'a Modality LUT Sequence' if lut else f'BitsStored {int(ds.BitsStored)}'}); "
                              "refused rather than clipped or rounded")
    slo, shi = _stored_range(ds)
    offset = SIGNED_OFFSET if slo < 0 else 0
    pixels, a, c = _shift(path, arr, slo, shi, offset, invert, "stored")
    # stored = a * pixel + c, value = slope * stored + intercept
    return Decoded(pixels, slope * a, slope * c + intercept, _mapping("stored", offset, invert))


def _shift(path: Path, values: np.ndarray, lo: float, hi: float, offset: int, invert: bool, what: str):
    """``values`` (whole numbers within lo..hi, which fits 16 bits with ``offset``) as uint16 pixels
    with ``values = a * pixel + c``: (pixels, a, c). A value outside lo..hi (which pydicom's masking
    of unused bits should make impossible) is refused, never clipped."""
    vmin, vmax = float(values.min()), float(values.max())
    if not lo <= vmin <= vmax <= hi:
        raise CaseError(path, f"values {what} span {vmin:g}..{vmax:g}, outside the range {lo:g}..{hi:g} the header "
                              "allows; refused rather than clipped")
    if values.dtype == np.uint16 and not invert and not offset:
        return values, 1.0, 0.0  # the common mammogram: no copy
    wide = values.astype(np.int32 if values.dtype.kind in "ui" and values.dtype.itemsize <= 2 else np.int64)
    if invert:
        # pixel = (lo + hi - value) + offset, so value = -pixel + (lo + hi + offset)
        return (int(lo + hi + offset) - wide).astype(np.uint16), -1.0, lo + hi + offset
    return (wide + offset).astype(np.uint16), 1.0, -float(offset)


def _mapping(kind: str, offset: int, invert: bool) -> str:
    return f"{kind}{f'+{offset}' if offset else ''}{', inverted' if invert else ''}"


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
