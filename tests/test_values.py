"""Issue 18, items 5, 6 and 11: what a hostile tester found.

- DICOM values are never silently changed: after the modality LUT they are kept exactly, shifted
  by a fixed, recorded 32768 where they can be negative, or kept as the stored values with the
  rescale recorded; never clipped, rounded or shifted by an image's own minimum. Declared geometry
  that does not match the pixel data is an error naming it.
- One bad case never kills a dataset: decoders refuse headers declaring more pixels than the
  job's memory budget (MEDCURATE_MEM_MB) before decoding; absurd ROI coordinates quarantine their
  case before anything is allocated; a region ROI of fewer than 3 distinct points is flagged
  (degenerate_roi) for the curated subset to exclude.
- Known variants of real files are read: ISIC 2019 metadata saying 'gender' for 'sex'.

Every bad input gives a CaseError / MedcurateError naming the file and the reason.
"""

from __future__ import annotations

import gzip
import io
import logging
import plistlib
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import curation, images
from medcurate.formats import shapes
from medcurate.datasets import Case, bcdr, cbis_ddsm, cdd_cesm, inbreast, isic2019, mias
from medcurate.dicom import SIGNED_OFFSET, decode_dicom, read_dicom
from medcurate.errors import CaseError, MedcurateError
from medcurate.images import read_image
from PIL import Image, ImageFile
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on odd test files

SMALL = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def bundled(name: str) -> Path:
    path = get_testdata_file(name, download=False)  # only what pydicom ships
    assert path, f"pydicom no longer ships {name}"
    return Path(path)


def dicom_file(path: Path, stored: np.ndarray, bits_stored: int | None = None, photometric: str = "MONOCHROME2",
               pixel_data: bytes | None = None, **elements) -> Path:
    """A single-frame greyscale file as a modality writes it; signed when ``stored`` is."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = stored.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(stored.dtype.kind == "i")
    ds.PixelData = np.ascontiguousarray(stored).tobytes() if pixel_data is None else pixel_data
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def modality_values(path: Path) -> np.ndarray:
    """The file's own values after the modality LUT, by pydicom: what must come back exactly."""
    ds = pydicom.dcmread(path)
    return np.asarray(apply_modality_lut(ds.pixel_array, ds), np.float64)


def restored(decoded) -> np.ndarray:
    return decoded.pixels.astype(np.float64) * decoded.slope + decoded.intercept


# ================================================================ 5. DICOM values never silently changed


def test_signed_data_gets_the_fixed_offset_not_its_own_minimum(tmp_path):
    """Three signed images whose minima differ (one has none below 0): one offset for all."""
    outs = []
    for i, low in enumerate((-5, -3000, 40)):
        stored = (np.arange(20, dtype=np.int16).reshape(4, 5) * 7 + low).astype(np.int16)
        decoded = decode_dicom(dicom_file(tmp_path / f"s{i}.dcm", stored))
        np.testing.assert_array_equal(decoded.pixels, stored.astype(np.int64) + SIGNED_OFFSET)
        outs.append(decoded.manifest())
    assert outs == [{"pixel_values": "modality+32768", "pixel_slope": "1", "pixel_intercept": "-32768"}] * 3


@pytest.mark.parametrize("stored, bits, elements, photometric, mapping, slope, intercept", [
    # plain unsigned mammogram: the values themselves, no copy
    (np.arange(4096, dtype=np.uint16), 12, {}, "MONOCHROME2", "modality", 1, 0),
    # an integral negative intercept: whole values that can be negative -> + 32768
    (np.arange(4096, dtype=np.uint16), 12, {"RescaleSlope": 1, "RescaleIntercept": -1000}, "MONOCHROME2",
     "modality+32768", 1, -32768),
    # values too wide for 16 bits (0..131070): the stored values, slope recorded
    (np.arange(0, 65536, 16, dtype=np.uint16), 16, {"RescaleSlope": 2, "RescaleIntercept": 0}, "MONOCHROME2",
     "stored", 2, 0),
    # a fractional slope: stored values, never rounded
    (np.arange(4096, dtype=np.uint16), 12, {"RescaleSlope": 0.5, "RescaleIntercept": 0}, "MONOCHROME2",
     "stored", 0.5, 0),
    # signed and fractional
    (np.arange(-2048, 2048, dtype=np.int16), 12, {"RescaleSlope": 0.25, "RescaleIntercept": 3.5}, "MONOCHROME2",
     "stored+32768", 0.25, 3.5 - 0.25 * 32768),
    # CT-like: signed 16-bit with intercept -1024 spans -33792..31743, too wide even shifted
    (np.arange(-1000, 3096, dtype=np.int16), 16, {"RescaleSlope": 1, "RescaleIntercept": -1024}, "MONOCHROME2",
     "stored+32768", 1, -1024 - 32768),
    # MONOCHROME1: inverted within the header's range, recorded as a negative slope
    (np.arange(4096, dtype=np.uint16), 12, {}, "MONOCHROME1", "modality, inverted", -1, 4095),
    (np.arange(4096, dtype=np.uint16), 12, {"RescaleSlope": 0.5, "RescaleIntercept": 0}, "MONOCHROME1",
     "stored, inverted", -0.5, 0.5 * 4095),
], ids=["unsigned", "negative_intercept", "too_wide", "fractional", "signed_fractional", "ct", "mono1", "mono1_fractional"])
def test_values_come_back_exactly_from_the_record(tmp_path, stored, bits, elements, photometric, mapping, slope, intercept):
    path = dicom_file(tmp_path / "v.dcm", stored.reshape(-1, 64), bits, photometric, **elements)
    decoded = decode_dicom(path)
    assert decoded.pixels.dtype == np.uint16 and decoded.mapping == mapping
    assert (decoded.slope, decoded.intercept) == (slope, intercept)
    np.testing.assert_array_equal(restored(decoded), modality_values(path))  # exact: nothing clipped or rounded
    assert len(np.unique(decoded.pixels)) == len(np.unique(stored))  # no two values merged


def test_pydicoms_ct_file_keeps_every_value():
    path = bundled("CT_small.dcm")  # signed, intercept -1024
    decoded = decode_dicom(path)
    assert decoded.manifest() == {"pixel_values": "stored+32768", "pixel_slope": "1", "pixel_intercept": "-33792"}
    np.testing.assert_array_equal(restored(decoded), modality_values(path))


def test_full_16_bit_range_is_not_clipped(tmp_path):
    stored = np.array([[0, 1, 65534, 65535]], np.uint16)
    path = dicom_file(tmp_path / "full.dcm", stored, RescaleSlope=1, RescaleIntercept=1)  # 1..65536
    decoded = decode_dicom(path)
    assert decoded.mapping == "stored" and decoded.pixels.max() == 65535
    np.testing.assert_array_equal(restored(decoded), [[1, 2, 65535, 65536]])


def test_values_no_16_bit_pixel_can_hold_are_refused(tmp_path):
    stored = np.array([[0, 70000], [5, 2**32 - 1]], np.uint32)
    path = dicom_file(tmp_path / "wide.dcm", stored)
    with pytest.raises(CaseError) as err:
        decode_dicom(path)
    assert err.value.path == str(path)
    assert "does not fit 16 bits" in err.value.reason and "BitsStored 32" in err.value.reason
    assert "refused rather than clipped or rounded" in err.value.reason


def test_windowed_output_records_no_mapping(tmp_path):
    path = dicom_file(tmp_path / "w.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8), 12)
    decoded = decode_dicom(path, {"output": "uint8", "window": "minmax"})
    assert decoded.pixels.dtype == np.uint8
    assert decoded.manifest() == {"pixel_values": "window", "pixel_slope": "", "pixel_intercept": ""}


@pytest.mark.parametrize("module", [inbreast, cbis_ddsm])
def test_mammography_modules_record_the_mapping_per_case(tmp_path, module):
    path = dicom_file(tmp_path / "m.dcm", np.arange(-8, 12, dtype=np.int16).reshape(4, 5))
    case = Case(case_id="c", patient_id="p", image=path)
    decoded = module.load_image(case, {"dicom": {"output": "uint16"}})
    pixels = decoded.array
    assert decoded.facts == {"pixel_values": "modality+32768", "pixel_slope": "1", "pixel_intercept": "-32768"}
    assert case.meta == {}  # returned, not set on the case
    np.testing.assert_array_equal(pixels.astype(int) - 32768, np.arange(-8, 12).reshape(4, 5))


_HEADERS = st.fixed_dictionaries({
    "bits": st.integers(8, 16),
    "signed": st.booleans(),
    "slope": st.sampled_from([1, 2, -1, 0.5, 0.25, 3, 1000]),
    "intercept": st.sampled_from([0, 10, -1024, 3.5, -32768, 40000, 65535]),
    "rescale": st.booleans(),
    "photometric": st.sampled_from(["MONOCHROME1", "MONOCHROME2"]),
})


@SMALL
@given(_HEADERS, st.randoms(use_true_random=False))
def test_fuzz_every_header_round_trips_or_is_refused(tmp_path, header, rnd):
    """Any 8-16-bit greyscale header: the record gives back pydicom's modality values exactly,
    and the mapping depends on the header only (two images, one mapping)."""
    lo, hi = ((-(2 ** (header["bits"] - 1)), 2 ** (header["bits"] - 1) - 1) if header["signed"]
              else (0, 2 ** header["bits"] - 1))
    dtype = np.int16 if header["signed"] else np.uint16
    extra = {"RescaleSlope": header["slope"], "RescaleIntercept": header["intercept"]} if header["rescale"] else {}
    records = set()
    for i in range(2):
        stored = np.array([rnd.randint(lo, hi) for _ in range(12)], dtype).reshape(3, 4)
        path = dicom_file(tmp_path / f"f{i}.dcm", stored, header["bits"], header["photometric"], **extra)
        decoded = decode_dicom(path)
        np.testing.assert_array_equal(restored(decoded), modality_values(path))
        records.add((decoded.mapping, decoded.slope, decoded.intercept))
    assert len(records) == 1


# ---------------------------------------------------------------- declared geometry


def test_pixel_data_longer_than_declared_names_the_geometry():
    path = bundled("MR_small_padded.dcm")  # 128 bytes beyond 64 x 64 x 16 bits
    with pytest.raises(CaseError) as err:
        read_dicom(path)
    assert err.value.path == str(path)
    reason = err.value.reason
    assert "pixel data is longer than declared (8320 of 8192 bytes)" in reason
    for part in ("Rows=64", "Columns=64", "SamplesPerPixel=1", "frames=1", "BitsAllocated=16"):
        assert part in reason


def test_pixel_data_shorter_than_declared_names_the_geometry(tmp_path):
    stored = np.zeros((10, 8), np.uint16)
    path = dicom_file(tmp_path / "short.dcm", stored, pixel_data=stored.tobytes()[:100])
    with pytest.raises(CaseError, match=r"shorter than declared \(100 of 160 bytes\): Rows=10 x Columns=8 x "
                                        r"SamplesPerPixel=1 x frames=1 at BitsAllocated=16 need 160 bytes") as err:
        read_dicom(path)
    assert err.value.path == str(path)


def test_only_the_even_length_pad_byte_is_accepted(tmp_path):
    odd = np.arange(9, dtype=np.uint8).reshape(3, 3)  # 9 bytes: written with one pad byte
    np.testing.assert_array_equal(read_dicom(dicom_file(tmp_path / "odd.dcm", odd)), odd)
    path = dicom_file(tmp_path / "extra.dcm", odd, pixel_data=odd.tobytes() + bytes(3))
    with pytest.raises(CaseError, match=r"longer than declared \(12 of 9 bytes\)"):
        read_dicom(path)


# ================================================================ 6. memory budget


@pytest.fixture
def mem_mb(monkeypatch):
    """Set the job's mem_mb as the convert rule does."""
    def set_(value):
        monkeypatch.setenv(images.MEM_ENV, str(value))
    monkeypatch.delenv(images.MEM_ENV, raising=False)
    return set_


def test_pixel_budget_is_a_quarter_of_the_jobs_memory(mem_mb, monkeypatch):
    assert images.pixel_budget() == 500 * 2**20  # unset: the convert rule's 2000 MB
    mem_mb(8000)
    assert images.pixel_budget() == 2000 * 2**20
    for bad in ("lots", "0", "-5", "1.5"):
        mem_mb(bad)
        with pytest.raises(MedcurateError, match=rf"MEDCURATE_MEM_MB='{bad}' must be a positive whole number") as err:
            images.pixel_budget()
        assert not isinstance(err.value, CaseError)  # the job's fault: not one case's


def _never_decode(monkeypatch):
    def boom(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    monkeypatch.setattr(Image.Image, "load", boom)


@pytest.mark.parametrize("name, fmt", [("big.png", "PNG"), ("big.tif", "TIFF"), ("big.jpg", "JPEG"),
                                       ("big.gif", "GIF"), ("big.png.gz", "PNG")])
def test_images_over_the_budget_are_refused_before_decoding(tmp_path, mem_mb, monkeypatch, name, fmt):
    rgb = np.random.default_rng(0).integers(0, 255, (500, 600, 3), dtype=np.uint8)  # 900,000 bytes decoded
    im = Image.fromarray(rgb).convert("P") if fmt == "GIF" else Image.fromarray(rgb)
    buf = io.BytesIO()
    im.save(buf, fmt)
    path = tmp_path / name
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0) if name.endswith(".gz") else buf.getvalue())
    mem_mb(8)  # budget 2 MiB: decodes
    assert read_image(path).shape[:2] == (500, 600)
    mem_mb(2)  # budget 512 KiB: refused from the header alone
    _never_decode(monkeypatch)
    with pytest.raises(CaseError) as err:
        read_image(path)
    assert err.value.path == str(path)
    assert "600x500" in err.value.reason and "over the pixel budget of 524288 bytes" in err.value.reason
    assert "MEDCURATE_MEM_MB=2" in err.value.reason and "mem_mb" in err.value.reason


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """An 8x8 PNG whose IHDR (CRC fixed) declares another size: the pixels are a lie."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def test_header_lying_about_its_size_is_refused_by_the_default_budget(tmp_path, mem_mb, monkeypatch):
    path = _png_declaring(tmp_path / "liar.png", 30000, 30000)  # 900 Mpx: under Pillow's own guard
    _never_decode(monkeypatch)
    with pytest.raises(CaseError, match=r"30000x30000 L pixels.*MEDCURATE_MEM_MB unset: 2000 MB assumed") as err:
        read_image(path)
    assert err.value.path == str(path)


def test_dicom_over_the_budget_is_refused_before_decoding(tmp_path, mem_mb, monkeypatch):
    path = dicom_file(tmp_path / "big.dcm", np.zeros((512, 400), np.uint16))  # 409,600 bytes
    assert read_dicom(path).shape == (512, 400)
    mem_mb(1)  # budget 256 KiB
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(lambda self: pytest.fail("decoded")))
    with pytest.raises(CaseError) as err:
        read_dicom(path)
    assert err.value.path == str(path)
    for part in ("Rows=512", "Columns=400", "SamplesPerPixel=1", "frames=1", "BitsAllocated=16", "409600 bytes",
                 "pixel budget of 262144 bytes", "MEDCURATE_MEM_MB=1", "mem_mb"):
        assert part in err.value.reason


def test_dicom_header_declaring_gigabytes_is_refused_by_the_default_budget(tmp_path, mem_mb):
    ds = pydicom.dcmread(bundled("MR_small.dcm"))
    ds.Rows = ds.Columns = 65535  # 8.6 GB declared over 8 KB of pixels
    path = tmp_path / "huge.dcm"
    ds.save_as(path)
    with pytest.raises(CaseError, match=r"Rows=65535 x Columns=65535 .*8589672450 bytes of decoded pixels, over the "
                                        r"pixel budget of 524288000 bytes"):
        read_dicom(path)


@pytest.mark.parametrize("name", ["huge.png", "huge.dcm"])
def test_files_larger_than_the_budget_are_not_even_read(tmp_path, mem_mb, monkeypatch, name):
    path = tmp_path / name
    with path.open("wb") as fh:  # sparse: costs no disk
        fh.truncate(images.FILE_SLACK + 2**20)
    mem_mb(1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read"))
    reader = read_dicom if name.endswith(".dcm") else read_image
    with pytest.raises(CaseError, match=rf"file is {images.FILE_SLACK + 2**20} bytes, more than the pixel budget") as err:
        reader(path)
    assert err.value.path == str(path)


@SMALL
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1), st.sampled_from(["1", "2", "64", ""]),
       st.sampled_from(["keep", "L", "RGB"]))
def test_fuzz_declared_sizes_are_refused_or_decoded_never_a_memory_error(tmp_path, width, height, mem, mode):
    path = _png_declaring(tmp_path / "declared.png", width, height)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(images.MEM_ENV, mem) if mem else mp.delenv(images.MEM_ENV, raising=False)
        budget = images.pixel_budget()
        try:
            read_image(path, mode)
        except CaseError as exc:
            assert exc.path == str(path) and exc.reason
            if width * height > budget:  # at least one byte a pixel
                assert "pixel budget" in exc.reason or "decompression bomb" in exc.reason


# ================================================================ 6. absurd coordinates, degenerate ROIs

LABELS = {"mask": {"background": 0, "mass": 1, "calcification": 2, "lesion": 1, "benign": 1, "malignant": 2},
          "overlap": ["calcification", "mass", "malignant", "benign", "lesion"]}
PLAN = {"labels": LABELS, "convert": {"point_radius": 3}, "curation": {"point_radius": 3}}


def _osirix(path: Path, *rois) -> Path:
    path.write_bytes(plistlib.dumps({"Images": [{"ImageIndex": 0, "ROIs": [
        {"Name": name, "Type": kind, "NumberOfPoints": len(points), "Point_px": [f"({x}, {y})" for x, y in points]}
        for name, kind, points in rois]}]}))
    return path


def _inbreast_case(xml: Path) -> Case:
    case = Case(case_id="c", patient_id="p", image=None, mask=xml)
    case.shape = (100, 80)
    return case


@pytest.mark.parametrize("point", ["(1e12, 5)", "(10, -1e15)", "(1e400, 5)"])
def test_inbreast_absurd_point_quarantines_its_case_before_the_spline(tmp_path, monkeypatch, point):
    x, y = point.strip("()").split(", ")
    xml = _osirix(tmp_path / "1.xml", ("Mass", 15, [(10, 10), (30, 10), (x, y), (10, 30)]))
    monkeypatch.setattr(inbreast, "osirix_outline", lambda *a: pytest.fail("spline computed"))
    try:
        rois = inbreast.parse_rois(xml.read_bytes(), xml)
    except CaseError as exc:  # 1e400 is refused by the parser already (non-finite)
        assert exc.path == str(xml) and "non-finite" in exc.reason
        return
    assert len(rois) == 1
    with pytest.raises(CaseError) as err:
        inbreast.load_mask(_inbreast_case(xml), PLAN)
    assert err.value.path == str(xml) and err.value.reason.startswith("ROI #0 (Mass): ")
    assert "absurdly far" in err.value.reason


def test_inbreast_region_of_fewer_than_3_points_is_flagged(tmp_path):
    xml = _osirix(tmp_path / "2.xml", ("Mass", 15, [(20, 20), (20, 20), (40, 40)]),  # 2 distinct points
                  ("Calcification", 19, [(50, 50)]))  # a real point ROI: not flagged
    case = _inbreast_case(xml)
    drawn = inbreast.load_mask(case, PLAN)
    mask, actions = drawn.array, drawn.actions
    assert drawn.facts["degenerate_roi"] == 1 and "mass:fewer_than_3_points:roi0" in actions
    assert mask[20, 20] == 1 and mask[40, 40] == 1 and mask[30, 30] == 0  # its points, not a region
    assert curation.flagged(drawn.facts, {"exclude_flags": ["degenerate_roi"]}) == ["degenerate_roi"]
    good = _inbreast_case(_osirix(tmp_path / "3.xml", ("Calcification", 19, [(50, 50)])))
    assert inbreast.load_mask(good, PLAN).facts["degenerate_roi"] == 0


def _cesm_case(tmp_path, *regions) -> cdd_cesm.CesmCase:
    case = cdd_cesm.CesmCase(case_id="P1_L_DM_CC", patient_id="P1", image=None, mask=tmp_path / "via.csv",
                             regions=list(regions), region_count=len(regions))
    case.meta, case.labels, case.shape = {}, {"pathology": "Benign"}, (100, 80)
    return case


def test_cdd_cesm_absurd_region_quarantines_its_image_naming_the_line(tmp_path):
    case = _cesm_case(tmp_path, cdd_cesm.Region(7, 0, "polygon", {"xs": [1e12, 20, 30], "ys": [5, 40, 5]}))
    with pytest.raises(CaseError) as err:
        cdd_cesm.load_mask(case, PLAN)
    assert err.value.path == str(tmp_path / "via.csv")
    assert err.value.reason.startswith("line 7: region 0 (polygon): x = 1e+12 is absurdly far")


@pytest.mark.parametrize("region, flagged", [
    (cdd_cesm.Region(3, 0, "polygon", {"xs": [5, 9, 5], "ys": [5, 9, 5]}), 1),
    (cdd_cesm.Region(3, 0, "polyline", {"xs": [5, 5], "ys": [5, 50]}), 1),
    (cdd_cesm.Region(3, 0, "rect", {"x": 5, "y": 5, "width": 0, "height": 30}), 1),
    (cdd_cesm.Region(3, 0, "polygon", {"xs": [5, 30, 5], "ys": [5, 30, 30]}), 0),
    (cdd_cesm.Region(3, 0, "point", {"cx": 5, "cy": 5}), 0),
], ids=["polygon_2_points", "polyline_2_points", "flat_rect", "triangle", "point"])
def test_cdd_cesm_region_of_fewer_than_3_points_is_flagged(tmp_path, region, flagged):
    case = _cesm_case(tmp_path, region)
    drawn = cdd_cesm.load_mask(case, PLAN)
    mask, actions = drawn.array, drawn.actions
    assert drawn.facts["degenerate_roi"] == flagged
    assert (f"fewer_than_3_points_{region.shape}:0" in actions) == bool(flagged)
    assert mask.any()  # the finding is never silently lost


def _bcdr_case(xs, ys, line=3) -> bcdr.BcdrCase:
    outline = bcdr.Outline(line, 1, 1, 1, 4, 1, "RCC", "img_1_1_1_RCC.tif", xs, ys, "Benign", {})
    case = bcdr.BcdrCase(case_id="c", patient_id="1", image=None, mask=Path("bcdr_d01_outlines.csv"), outlines=[outline])
    case.meta, case.shape = {"outline_clipped": 0, "degenerate_roi": 0}, (100, 80)
    return case


def test_bcdr_absurd_outline_quarantines_its_image_naming_the_line():
    with pytest.raises(CaseError) as err:
        bcdr.load_mask(_bcdr_case([10, 10**13, 30], [10, 20, 30]), PLAN)
    assert err.value.path == "bcdr_d01_outlines.csv"
    assert err.value.reason.startswith("line 3: lesion 4: x = 1e+13 is absurdly far")
    with pytest.raises(CaseError, match="not numbers a rasteriser can use"):
        bcdr.load_mask(_bcdr_case([10, 10**400, 30], [10, 20, 30]), PLAN)


def test_bcdr_outline_of_fewer_than_3_points_is_flagged():
    case = _bcdr_case([10, 20, 10, 20], [10, 20, 10, 20])
    drawn = bcdr.load_mask(case, PLAN)
    mask, actions = drawn.array, drawn.actions
    assert drawn.facts["degenerate_roi"] == 1 and actions == ["lesion_4:fewer_than_3_points"]
    assert mask[10, 10] == 1 and mask[20, 20] == 1 and mask.sum() == 2
    traced = _bcdr_case([10, 40, 10], [10, 10, 40])
    assert "degenerate_roi" not in bcdr.load_mask(traced, PLAN).facts and traced.meta["degenerate_roi"] == 0


def test_mias_absurd_circle_quarantines_its_image_naming_the_line():
    far = mias.Finding(4, "mdb001", "F", "CIRC", "B", x=10**12, y=5, radius=3)
    near = mias.Finding(5, "mdb001", "F", "CIRC", "B", x=40, y=40, radius=3)
    case = mias.MiasCase(case_id="mdb001", patient_id="woman001", image=None, mask=Path("Info.txt"), findings=[near, far])
    case.meta, case.shape = {"roi_outside_image": 0}, (100, 80)
    with pytest.raises(CaseError) as err:
        mias.load_mask(case, PLAN)
    assert err.value.path == "Info.txt"
    assert err.value.reason.startswith("line 4 (mdb001): abnormality 2: x = 1e+12 is absurdly far")
    case.findings = [near]
    assert mias.load_mask(case, PLAN).array.any()


_COORD = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                   st.floats(-200, 200))


@SMALL
@given(st.lists(st.tuples(_COORD, _COORD), min_size=1, max_size=8), _COORD, st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_fuzz_shapes_raise_only_coordinate_errors(points, size, shape):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    for draw_it in (lambda: shapes.polygon(xs, ys, shape)[0], lambda: shapes.ellipse(xs[0], ys[0], size, size, shape)[0],
                    lambda: shapes.point(xs[0], ys[0], size, shape)):
        try:
            mask = draw_it()
        except shapes.CoordinateError as exc:
            assert exc.reason and isinstance(exc, CaseError)
        else:
            assert mask.shape == shape and mask.dtype == bool


# ================================================================ 11. ISIC 2019 metadata variants

OFFICIAL = ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]


def isic_root(tmp_path: Path, header: list[str]) -> Path:
    """A minimal ISIC 2019 release: two JPEGs, their one-hot ground truth, metadata with ``header``."""
    root = tmp_path / "isic"
    (root / "ISIC_2019_Training_Input").mkdir(parents=True)
    for name in ("ISIC_0000000", "ISIC_0000001"):
        Image.new("RGB", (8, 6), (200, 120, 100)).save(root / "ISIC_2019_Training_Input" / f"{name}.jpg")
    classes = ",".join(isic2019.CLASSES)
    (root / isic2019.GROUND_TRUTH).write_text(f"image,{classes}\nISIC_0000000,0.0,1.0,0,0,0,0,0,0,0\n"
                                              "ISIC_0000001,1.0,0,0,0,0,0,0,0,0\n")
    values = {"image": ["ISIC_0000000", "ISIC_0000001"], "age_approx": ["55.0", "30.0"],
              "anatom_site_general": ["anterior torso", ""], "lesion_id": ["", "HAM_1"],
              "sex": ["female", "male"], "gender": ["female", "male"]}
    rows = [",".join(values.get(col, ["x", "y"])[i] for col in header) for i in range(2)]
    (root / isic2019.METADATA).write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    return root


def test_isic_gender_for_sex_is_read_and_recorded(tmp_path, caplog):
    root = isic_root(tmp_path, ["image", "age_approx", "anatom_site_general", "lesion_id", "gender"])
    with caplog.at_level(logging.WARNING, logger="medcurate.datasets.isic2019"):
        cases = {c.case_id: c for c in isic2019.cases(root, {})}
    assert cases["ISIC_0000000"].meta["sex"] == "female" and cases["ISIC_0000001"].meta["sex"] == "male"
    assert "gender" not in cases["ISIC_0000000"].meta and cases["ISIC_0000001"].patient_id == "HAM_1"
    assert isic2019.dataset_facts(root, {}) == {"column_aliases": {isic2019.METADATA: {"gender": "sex"}}}
    assert any("column 'gender' read as 'sex'" in r.getMessage() for r in caplog.records)


def test_isic_official_header_records_no_alias(tmp_path):
    root = isic_root(tmp_path, OFFICIAL)
    assert len(isic2019.cases(root, {})) == 2 and isic2019.dataset_facts(root, {}) == {}


@pytest.mark.parametrize("header, reason", [
    (OFFICIAL + ["gender"], "has both a 'sex' and a 'gender' column ('gender' is an alias of 'sex'); cannot tell which to use"),
    (["image", "age", "site", "lesion_id", "sex"], ("missing column(s) ['age_approx', 'anatom_site_general']; found "
                                                    "['image', 'age', 'site', 'lesion_id', 'sex'] (accepted aliases: gender for sex)")),
    (["image", "age_approx", "anatom_site_general", "lesion_id", "Gender"], "missing column(s) ['sex']"),
], ids=["both", "unknown_layout", "case_differs"])
def test_isic_unknown_or_ambiguous_layouts_fail_naming_the_file(tmp_path, header, reason):
    root = isic_root(tmp_path, header)
    with pytest.raises(MedcurateError) as err:
        isic2019.cases(root, {})
    assert err.value.path == str(root / isic2019.METADATA) and reason in err.value.reason


@SMALL
@given(st.lists(st.sampled_from(OFFICIAL + ["gender", "age", "Sex", "patient_id", ""]), min_size=1, max_size=7, unique=True))
def test_fuzz_isic_metadata_headers(tmp_path_factory, header):
    """Any header: read with every official column (aliases recorded), or refused naming the file."""
    root = isic_root(tmp_path_factory.mktemp("isic-header"), header)
    try:
        cases = isic2019.cases(root, {})
    except MedcurateError as exc:
        assert exc.path == str(root / isic2019.METADATA) and exc.reason
        return
    assert all(set(isic2019.META) <= set(c.meta) for c in cases)
    assert set(isic2019.dataset_facts(root, {}).get("column_aliases", {}).get(isic2019.METADATA, {})) == (
        {"gender"} & set(header))

