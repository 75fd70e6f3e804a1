"""medcurate.dicom.read_dicom: lossless decoding of every transfer syntax a mammogram may come in,
photometric handling, rescale and VOI windowing, and a CaseError for every bad file."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate.dicom import read_dicom
from medcurate.errors import CaseError
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    HEVCMP51,
    MPEG2MPML,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on odd test files


def bundled(name: str) -> Path:
    # download=False: only the files pydicom ships, never its on-demand downloads.
    path = get_testdata_file(name, download=False)
    assert path, f"pydicom no longer ships {name}"
    return Path(path)


MR_SMALL = bundled("MR_small.dcm")
REFERENCE = pydicom.dcmread(MR_SMALL).pixel_array  # int16, values 127..2145
SIGNED = 32768  # the fixed offset of signed data (dicom.SIGNED_OFFSET): MR_small is signed


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int = 16,
                syntax=ExplicitVRLittleEndian, **elements) -> Path:
    """A minimal single-frame unsigned greyscale file, as a modality would write it."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


def modified_copy(tmp_path: Path, source: Path = MR_SMALL, **elements) -> Path:
    ds = pydicom.dcmread(source)
    for keyword, value in elements.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = tmp_path / f"modified_{source.name}"
    ds.save_as(out)
    return out


def mammogram(rows: int = 512, cols: int = 400, bits: int = 14) -> np.ndarray:
    """Smooth tissue-like signal plus noise over a zero background, using the whole bit range."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:rows, 0:cols]
    signal = 2 ** (bits - 1) * (1 + 0.8 * np.sin(x / 37) * np.cos(y / 53)) + rng.normal(0, 60, (rows, cols))
    img = np.clip(signal, 0, 2**bits - 1).astype(np.uint16)
    img[:, : cols // 5] = 0
    img[0, -1] = 2**bits - 1
    return img


# --- lossless decoding ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "MR_small.dcm",                   # Explicit VR Little Endian
    "MR_small_implicit.dcm",          # Implicit VR Little Endian
    "MR_small_bigendian.dcm",         # Explicit VR Big Endian
    "MR_small_RLE.dcm",               # RLE Lossless (pydicom's own decoder)
    "MR_small_jp2klossless.dcm",      # JPEG 2000 lossless (pylibjpeg-openjpeg)
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless (pyjpegls)
])
def test_lossless_transfer_syntaxes_give_the_reference_pixels(name):
    arr = read_dicom(bundled(name))
    assert arr.dtype == np.uint16 and arr.shape == (64, 64)
    np.testing.assert_array_equal(arr.astype(np.int64) - SIGNED, REFERENCE)


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "JPEGLSNearLossless_16.dcm"])
def test_other_compressed_files_decode_to_their_declared_size(name):
    ds = pydicom.dcmread(bundled(name))
    raw = ds.pixel_array.astype(np.int64)  # JPEG2000.dcm is signed (min -30): + 32768, whatever its minimum
    arr = read_dicom(bundled(name))
    assert arr.dtype == np.uint16 and arr.shape == (ds.Rows, ds.Columns)
    np.testing.assert_array_equal(arr, raw + (SIGNED if ds.PixelRepresentation else 0))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless])
def test_14_bit_mammogram_round_trips_exactly(tmp_path, syntax):
    img = mammogram()
    path = write_dicom(tmp_path / "mg.dcm", img, bits_stored=14, syntax=syntax)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    arr = read_dicom(path)
    assert arr.dtype == np.uint16 and arr.shape == (512, 400)
    np.testing.assert_array_equal(arr, img)


# --- modality LUT -----------------------------------------------------------------------------


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    img = mammogram(bits=12)  # 0..4095 -> 10..8200: whole numbers that fit, so stored as they are
    path = write_dicom(tmp_path / "r.dcm", img, bits_stored=12, RescaleSlope=2, RescaleIntercept=10)
    np.testing.assert_array_equal(read_dicom(path), 2 * img + 10)


# Rescales the PNG cannot hold exactly (fractional, signed, too wide): tests/test_values.py


# --- photometric interpretation ---------------------------------------------------------------


def test_monochrome1_is_inverted_within_bits_stored(tmp_path):
    img = mammogram()
    arr = read_dicom(write_dicom(tmp_path / "m1.dcm", img, "MONOCHROME1", bits_stored=14))
    np.testing.assert_array_equal(arr, 16383 - img)


def test_monochrome1_is_inverted_within_the_rescaled_range(tmp_path):
    img = mammogram(bits=12)
    path = write_dicom(tmp_path / "m1.dcm", img, "MONOCHROME1", bits_stored=12, RescaleSlope=2, RescaleIntercept=10)
    # stored 0..4095 -> 10..8200 after rescale; v -> 10 + 8200 - (2 * stored + 10)
    np.testing.assert_array_equal(read_dicom(path), 8200 - 2 * img)


@pytest.mark.parametrize("window", ["voi", "minmax"])
def test_monochrome1_is_inverted_after_windowing(tmp_path, window):
    img = mammogram()
    extra = {"WindowCenter": 8000, "WindowWidth": 6000}
    mono2 = read_dicom(write_dicom(tmp_path / "m2.dcm", img, bits_stored=14, **extra),
                       {"output": "uint8", "window": window})
    mono1 = read_dicom(write_dicom(tmp_path / "m1.dcm", img, "MONOCHROME1", bits_stored=14, **extra),
                       {"output": "uint8", "window": window})
    np.testing.assert_array_equal(mono1, 255 - mono2)


def test_rgb_is_returned_unchanged_whatever_the_options():
    path = bundled("SC_rgb_small_odd.dcm")
    expected = pydicom.dcmread(path).pixel_array
    for options in (None, {"output": "uint8", "window": "voi"}):
        arr = read_dicom(path, options)
        assert arr.dtype == np.uint8 and arr.shape == (3, 3, 3)
        np.testing.assert_array_equal(arr, expected)


def test_palette_colour_is_refused():
    with pytest.raises(CaseError, match="'PALETTE COLOR' is unsupported"):
        read_dicom(bundled("examples_palette.dcm"))


def test_multi_frame_is_refused():
    with pytest.raises(CaseError, match="has 2 frames"):
        read_dicom(bundled("SC_rgb_rle_2frame.dcm"))


# --- 8-bit windowing --------------------------------------------------------------------------


def test_voi_window_uses_window_center_and_width(tmp_path):
    img = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    path = write_dicom(tmp_path / "w.dcm", img, bits_stored=12, WindowCenter=[2048, 100], WindowWidth=[1024, 50],
                       VOILUTFunction="LINEAR_EXACT")
    arr = read_dicom(path, {"output": "uint8", "window": "voi"})
    assert arr.dtype == np.uint8 and arr.shape == (64, 64)
    flat = arr.ravel()
    # The first window, 1536..2560, spans 0..255; outside it the image saturates.
    assert (flat[:1537] == 0).all() and (flat[2560:] == 255).all()
    inside = np.arange(1537, 2560)
    assert np.abs(flat[inside].astype(int) - np.rint((inside - 1536) / 1024 * 255)).max() <= 1
    assert np.all(np.diff(flat.astype(int)) >= 0)


def test_voi_lut_sequence_is_preferred_and_scaled_by_its_range(tmp_path):
    img = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    item = Dataset()
    item.LUTDescriptor = [1024, 1000, 16]          # inputs 1000..2023
    item.add_new(0x00283006, "US", [4 * i for i in range(1024)])  # LUTData, 0..4092
    path = write_dicom(tmp_path / "lut.dcm", img, bits_stored=12, VOILUTSequence=[item],
                       WindowCenter=100, WindowWidth=10)
    flat = read_dicom(path, {"output": "uint8"}).ravel()
    assert (flat[:1001] == 0).all() and (flat[2023:] == 255).all()
    assert flat[1000 + 511] == round(4 * 511 / 4092 * 255)


def test_voi_without_a_window_falls_back_to_minmax(tmp_path):
    path = modified_copy(tmp_path, WindowCenter=None, WindowWidth=None)
    voi = read_dicom(path, {"output": "uint8", "window": "voi"})
    np.testing.assert_array_equal(voi, read_dicom(path, {"output": "uint8", "window": "minmax"}))


def test_minmax_scales_min_to_0_and_max_to_255():
    arr = read_dicom(MR_SMALL, {"output": "uint8", "window": "minmax"})
    expected = np.rint((REFERENCE - 127) * (255 / (2145 - 127)))
    assert arr.dtype == np.uint8 and arr.min() == 0 and arr.max() == 255
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.parametrize("options", [{"output": "float"}, {"output": "uint8", "window": "auto"},
                                     {"output": "uint16", "window": "auto"}, {"frame": 0}])
def test_bad_options_are_the_callers_error(options):
    with pytest.raises(ValueError):
        read_dicom(MR_SMALL, options)


def test_window_is_ignored_for_lossless_output():
    """The config's default window (voi) must not stop the default uint16 output."""
    np.testing.assert_array_equal(read_dicom(MR_SMALL, {"output": "uint16", "window": "voi"}), read_dicom(MR_SMALL))


# --- bad files --------------------------------------------------------------------------------


def test_truncated_file_names_the_file_and_says_so(tmp_path):
    data = MR_SMALL.read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaseError) as err:
        read_dicom(path)
    assert err.value.path == str(path)
    assert "shorter than declared" in err.value.reason and "truncated" in err.value.reason


def test_truncated_compressed_file_says_truncated(tmp_path):
    data = bundled("MR_small_jp2klossless.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(CaseError, match="truncated inside its Pixel Data"):
        read_dicom(path)


def test_pydicoms_own_truncated_file():
    with pytest.raises(CaseError, match="shorter than declared"):
        read_dicom(bundled("MR_truncated.dcm"))


def test_header_declaring_more_pixels_than_stored(tmp_path):
    with pytest.raises(CaseError, match=r"shorter than declared \(8192 of 16384 bytes\)"):
        read_dicom(modified_copy(tmp_path, Rows=128))


def test_non_dicom_and_missing_files(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("not a dicom file\n" * 20)
    with pytest.raises(CaseError, match="not a DICOM file") as err:
        read_dicom(text)
    assert err.value.path == str(text)
    with pytest.raises(CaseError, match="file is missing"):
        read_dicom(tmp_path / "absent.dcm")


def test_file_without_pixel_data():
    with pytest.raises(CaseError, match="no Pixel Data element"):
        read_dicom(bundled("rtplan.dcm"))


@pytest.mark.parametrize("uid, name", [
    (MPEG2MPML, "MPEG2 Main Profile / Main Level"),
    (HEVCMP51, "HEVC/H.265 Main Profile / Level 5.1"),
    ("1.2.826.0.1.3680043.9999.1", "unknown transfer syntax"),  # a vendor's private syntax
])
def test_transfer_syntax_without_a_decoder_is_named(tmp_path, uid, name):
    ds = pydicom.dcmread(MR_SMALL)
    ds.file_meta.TransferSyntaxUID = uid
    ds.PixelData = encapsulate([ds.PixelData])
    path = tmp_path / "video.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    with pytest.raises(CaseError) as err:
        read_dicom(path)
    assert name in err.value.reason and uid in err.value.reason and "no decoder" in err.value.reason


def test_missing_decoder_plugin_says_what_to_install(monkeypatch):
    # As on a machine without the JPEG 2000 plugins: pydicom's decoder knows what it would need.
    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-openjpeg>=2.0")})
    with pytest.raises(CaseError) as err:
        read_dicom(bundled("MR_small_jp2klossless.dcm"))
    assert "JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90)" in err.value.reason
    assert "install" in err.value.reason and "pylibjpeg-openjpeg" in err.value.reason


_SOURCES = {name: bundled(name).read_bytes() for name in ("MR_small.dcm", "MR_small_jp2klossless.dcm")}


@st.composite
def damaged(draw):
    data = bytearray(draw(st.sampled_from(sorted(_SOURCES.values()))))
    kind = draw(st.sampled_from(["truncate", "overwrite", "random"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "overwrite":
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(128, len(data) - 1))  # keep the preamble so the parser goes deeper
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at: at + len(chunk)] = chunk
        return bytes(data)
    return bytes(128) + b"DICM" + draw(st.binary(max_size=2048))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=damaged())
def test_damaged_files_raise_only_case_errors(tmp_path, data):
    path = tmp_path / "damaged.dcm"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            arr = read_dicom(path)
        except CaseError as exc:
            assert exc.path == str(path) and exc.reason
        else:
            assert isinstance(arr, np.ndarray) and arr.ndim in (2, 3)


def test_12_bit_jpeg_needs_the_opt_in_gpl_codec():
    """12-bit JPEG Extended decodes only with pylibjpeg-libjpeg (medcurate[gpl-codecs]); without it
    the case is refused with the transfer syntax named, never mis-decoded."""
    path = bundled("JPGExtended.dcm")
    if importlib.util.find_spec("libjpeg"):
        assert read_dicom(path).shape == (pydicom.dcmread(path).Rows, pydicom.dcmread(path).Columns)
        return
    with pytest.raises(CaseError) as err:
        read_dicom(path)
    assert err.value.path == str(path) and "JPEG Extended" in err.value.reason and "1.2.840.10008.1.2.4.51" in err.value.reason
