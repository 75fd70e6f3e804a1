"""Bounded property-based fuzzing of the parsers and decoders not fuzzed in their own test files:
nothing but the declared error type escapes (so every bad input becomes a message naming the file,
never a traceback), and what is returned keeps its contract.

Fuzzed elsewhere: archive member names (test_unpack), DICOM (test_dicom), the mammography
annotation parsers -- OsiriX plists (test_inbreast), VIA CSVs (test_cdd_cesm), BCDR outlines
(test_bcdr), CBIS-DDSM CSVs (test_cbis_ddsm), CSAW-S splits (test_csaw_s). Here: colour masks,
the image reader (PNG, TIFF, JPEG), mask cleaning, whole archives, and the CSV/text parsers of the
fetal datasets. Every test runs few examples with no deadline: the file stays well under 60 s.
"""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from medcurate import masks
from medcurate.datasets import (
    african_fetal_planes,
    fetal_head_biometry,
    fetal_planes_db,
    read_table,
)
from medcurate.errors import CaseError, MedcurateError
from medcurate.images import colours_to_labels, read_image
from medcurate.unpack import unpack
from PIL import Image

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
SMALL = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


# --- colour masks --------------------------------------------------------------------------------

PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (255, 255, 0), (0, 0, 255), (1, 0, 0), (254, 255, 0)]


@st.composite
def colour_masks(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    channels = draw(st.sampled_from([3, 4]))
    idx = draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, len(PALETTE) - 1)))
    rgb = np.array(PALETTE, np.uint8)[idx]
    if channels == 4:
        alpha = draw(hnp.arrays(np.uint8, (h, w)))
        rgb = np.dstack([rgb, alpha])
    names = draw(st.lists(st.sampled_from(["background", "brain", "csp", "lv"]), min_size=1, max_size=4, unique=True))
    table = {n: list(draw(st.sampled_from(PALETTE))) for n in names}
    values = {n: i for i, n in enumerate(names)}
    return rgb, table, values


@FAST
@given(colour_masks())
def test_colours_to_labels_maps_known_colours_and_counts_the_rest(case):
    rgb, table, values = case
    labels, unknown = colours_to_labels(rgb, table, values)
    assert labels.shape == rgb.shape[:2] and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(values.values()) | {0}
    known = {tuple(c) for c in table.values()}
    n_unknown = sum(tuple(px) not in known for px in rgb[..., :3].reshape(-1, 3).tolist())
    assert sum(unknown.values()) == n_unknown
    for colour in table.values():  # every pixel of a table colour carries a label of that colour
        hit = np.all(rgb[..., :3] == colour, axis=-1)
        assert set(np.unique(labels[hit])) <= {values[n] for n, c in table.items() if c == colour}


@FAST
@given(hnp.arrays(np.uint8, st.one_of(st.tuples(st.integers(1, 6), st.integers(1, 6)),
                                      st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 2, 5])))))
def test_colours_to_labels_refuses_non_colour_masks(grey):
    """Single-channel, two-channel or odd arrays are refused with ValueError, never IndexError."""
    with pytest.raises(ValueError):
        colours_to_labels(grey, {"background": [0, 0, 0]}, {"background": 0})


@SMALL
@given(colour_masks(), st.sampled_from(["quarantine", "background"]))
def test_fetal_head_colour_mask_loader(tmp_path, case, policy):
    """The whole colour-mask path of a dataset module: a decoded PNG, the subset's table, the
    unknown-colour policy. A mask gives a label map, or a CaseError naming it."""
    rgb, table, values = case
    path = tmp_path / "mask.png"
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
    plan = {"mask_colours": {"default": table}, "labels": {"mask": values}, "convert": {"unknown_colour": policy}}
    case_ = fetal_head_biometry.Case(case_id="c", patient_id="p", image=tmp_path / "i.png", mask=path, subset="Trans-thalamic")
    try:
        labels, actions = fetal_head_biometry.load_mask(case_, plan)
    except CaseError as exc:
        assert exc.path == str(path) and policy == "quarantine" and "colours not in the catalogue" in exc.reason
    else:
        assert labels.shape == rgb.shape[:2] and set(np.unique(labels)) <= set(values.values()) | {0}
        assert all(a.startswith("unknown_colours_to_background:") for a in actions)


# --- the image reader ----------------------------------------------------------------------------

def _encoded(fmt: str, arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format=fmt)
    return out.getvalue()


_IMAGES = {fmt: _encoded(fmt, (np.arange(24 * 20 * 3) % 251).astype(np.uint8).reshape(20, 24, 3))
           for fmt in ("PNG", "TIFF", "JPEG")}


@st.composite
def damaged_images(draw):
    data = bytearray(_IMAGES[draw(st.sampled_from(sorted(_IMAGES)))])
    kind = draw(st.sampled_from(["truncate", "overwrite", "random"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "overwrite":
        for _ in range(draw(st.integers(1, 6))):
            at = draw(st.integers(0, len(data) - 1))
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at: at + len(chunk)] = chunk
        return bytes(data)
    return draw(st.binary(max_size=512))


@FAST
@given(damaged_images(), st.sampled_from(["keep", "L", "RGB"]))
def test_read_image_raises_only_case_errors(tmp_path, data, mode):
    path = tmp_path / "image.png"
    path.write_bytes(data)
    try:
        arr = read_image(path, mode)
    except CaseError as exc:
        assert exc.path == str(path) and exc.reason
    else:
        assert isinstance(arr, np.ndarray) and arr.ndim in (2, 3) and arr.size > 0


# --- mask cleaning -------------------------------------------------------------------------------

@FAST
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 10), st.integers(1, 10)), elements=st.integers(0, 4)),
       st.tuples(st.integers(1, 10), st.integers(1, 10)), st.integers(0, 5), st.booleans())
def test_mask_cleaning(mask, image_shape, min_area, fill):
    values = {"background": 0, "a": 1, "b": 2, "c": 3}
    try:
        out, actions = masks.clean(mask.copy(), image_shape, values, {"min_component_area": min_area, "fill_holes": fill},
                                   "m.png")
    except CaseError as exc:
        assert exc.path == "m.png"
        assert mask.shape != image_shape or 4 in mask
    else:
        assert out.shape == image_shape and set(np.unique(out)) <= set(values.values())
        assert (out == mask).all() or actions


# --- whole archives ------------------------------------------------------------------------------

def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/one.txt", b"one" * 50)
        zf.writestr("a/two.csv", b"x,y\n1,2\n" * 20)
    return out.getvalue()


def _tar(mode: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:
        for name, data in (("a/one.txt", b"one" * 50), ("a/two.csv", b"x,y\n1,2\n" * 20)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


_ARCHIVES = {"f.zip": _zip(), "f.tar.gz": _tar("w:gz"), "f.tar.xz": _tar("w:xz"), "f.tar": _tar("w")}


@SMALL
@given(st.sampled_from(sorted(_ARCHIVES)), st.data())
def test_damaged_archives_raise_only_medcurate_errors(tmp_path_factory, name, data):
    tmp = tmp_path_factory.mktemp("arc")
    raw = bytearray(_ARCHIVES[name])
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=8))
        raw[at: at + len(chunk)] = chunk
    raw = raw[: data.draw(st.integers(1, len(raw)))]
    archive = tmp / name
    archive.write_bytes(bytes(raw))
    try:
        record = unpack([archive], tmp / "out")
    except MedcurateError as exc:
        assert exc.path and exc.reason and str(archive) in str(exc)
        assert not (tmp / "out").exists()
        assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []
    else:
        assert record["files"] >= 0 and (tmp / "out").is_dir()
    for p in tmp.rglob("*"):  # whatever happened, nothing escaped the output folder
        assert p.resolve().is_relative_to(tmp.resolve())


# --- CSV and text parsers of the fetal datasets -----------------------------------------------------

CELLS = st.sampled_from(["", " ", "1", "0", "2", "x", "Patient01", "Fetal brain", "Trans-thalamic", "Train ",
                         "DZA", '"', '""', "a;b", "a,b", "\t", "é", "\ufeff", "001", "-3", "1e3"])


@st.composite
def csv_texts(draw, headers: list[str], sep: str):
    header = draw(st.lists(st.sampled_from(headers + ["Other", "", " Plane"]), min_size=1, max_size=len(headers) + 2))
    if draw(st.booleans()):
        header = headers  # often the right header, so parsing goes past it
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=len(header) + 1), max_size=6))
    text = "\n".join(sep.join(r) for r in [header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"])), errors="replace")


@FAST
@given(csv_texts(fetal_planes_db.COLUMNS, ";"))
def test_fetal_planes_csv(tmp_path, data):
    (tmp_path / fetal_planes_db.CSV).write_bytes(data)
    try:
        cases = fetal_planes_db.cases(tmp_path, {})
    except MedcurateError as exc:
        assert exc.path == str(tmp_path / fetal_planes_db.CSV) and exc.reason
    else:
        assert all(c.split in ("train", "test") and c.patient_id.startswith("Patient") for c in cases)


@FAST
@given(csv_texts(african_fetal_planes.COLUMNS, ","))
def test_african_planes_csv(tmp_path, data):
    (tmp_path / african_fetal_planes.CSV).write_bytes(data)
    try:
        cases = african_fetal_planes.cases(tmp_path, {})
    except MedcurateError as exc:
        assert exc.path == str(tmp_path / african_fetal_planes.CSV) and exc.reason
    else:
        assert all(c.split in ("train", "test") for c in cases)


@FAST
@given(st.binary(max_size=300), st.sampled_from([",", ";", None]))
def test_read_table_on_arbitrary_bytes(tmp_path, data, sep):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    try:
        df = read_table(path, sep, ["a"])
    except MedcurateError as exc:
        assert exc.path == str(path)
    else:
        assert "a" in df.columns


@FAST
@given(st.lists(st.tuples(st.sampled_from(["Label", "Pixel in mm", "Pixel  in mm", "x"]),
                          st.sampled_from(["1_HC.png", "0,1", "0.07", "", "x", "1e-2", "nan"])), min_size=1, max_size=5))
def test_fetal_head_pixel_size_csv(tmp_path, cells):
    sub = tmp_path / "Trans-thalamic"
    sub.mkdir(exist_ok=True)
    header = ";".join(c[0] for c in cells)
    body = ";".join(c[1] for c in cells)
    (sub / "Trans-thalamic-Pixel-Size.csv").write_text(f"{header}\n{body}\n")
    try:
        sizes = fetal_head_biometry._pixel_sizes(sub)
    except MedcurateError as exc:
        assert exc.path.endswith("Trans-thalamic-Pixel-Size.csv") and exc.reason
    else:
        assert all(isinstance(v, str) for v in sizes.values())


@FAST
@given(st.lists(st.text(alphabet="csp:bckgroundLV0123456789, #-x\t", max_size=30), max_size=5))
def test_fetal_head_labelmap_txt(tmp_path, lines):
    sub = tmp_path / "Trans-thalamic"
    sub.mkdir(exist_ok=True)
    (sub / "labelmap.txt").write_text("\n".join(lines) + "\n")
    table = {"background": [0, 0, 0], "csp": [0, 255, 0]}
    try:
        fetal_head_biometry._check_labelmaps(sub, table)
    except MedcurateError as exc:
        assert exc.path.endswith("labelmap.txt") and exc.reason
