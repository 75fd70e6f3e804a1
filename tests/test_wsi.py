"""Whole-slide tiling (wsi.py) on ACDC@LungHP's sample slides: ASAP XML parsing (order, decimal commas, hostile
XML, fuzzed), the window rasteriser against the whole-image one, level choice, tiles and masks
against a reference rasterisation of the whole level, and a slide far larger (decoded) than the memory limit of the job that tiles it."""

import json
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import sample_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import samples, wsi
from medcurate.formats import asap, shapes
from medcurate.datasets import Case, acdc_lunghp
from medcurate.errors import CaseError
from medcurate.datasets.acdc_lunghp import sample
from PIL import Image

openslide = pytest.importorskip("openslide")

XML = """<?xml version="1.0"?>
<ASAP_Annotations><Annotations>
<Annotation Name="A" Type="Polygon" PartOfGroup="_0" Color="#F4FA58"><Coordinates>
<Coordinate Order="2" X="30" Y="40"/><Coordinate Order="0" X="10,5" Y="10"/><Coordinate Order="1" X="30" Y="10"/>
</Coordinates></Annotation>
<Annotation Name="P" Type="Dot" PartOfGroup="None" Color="#F4FA58"><Coordinates>
<Coordinate Order="0" X="5" Y="6"/></Coordinates></Annotation>
</Annotations><AnnotationGroups/></ASAP_Annotations>
"""


# ------------------------------------------------------------------ ASAP XML


def test_asap_coordinates_sorted_by_order_with_decimal_commas(tmp_path):
    (tmp_path / "a.xml").write_text(XML)
    a, p = asap.parse(tmp_path / "a.xml")
    assert (a.name, a.group, a.kind) == ("A", "_0", "Polygon")
    assert a.xs.tolist() == [10.5, 30, 30] and a.ys.tolist() == [10, 10, 40]
    assert p.kind == "Dot" and p.xs.tolist() == [5]


@pytest.mark.parametrize("text, reason", [
    ("<ASAP_Annotations><Annotations>", "not well-formed"),
    ("<Other/>", "not <ASAP_Annotations>"),
    ('<ASAP_Annotations><Annotations><Annotation Name="Q"><Coordinates><Coordinate Order="0" X="1"/>'
     "</Coordinates></Annotation></Annotations></ASAP_Annotations>", "annotation 'Q': a Coordinate lacks"),
    ('<ASAP_Annotations><Annotations><Annotation Name="Q"><Coordinates><Coordinate Order="0" X="1" Y="1"/>'
     '<Coordinate Order="0" X="2" Y="2"/></Coordinates></Annotation></Annotations></ASAP_Annotations>', "share an Order"),
    ('<ASAP_Annotations><Annotations><Annotation Name="Q"><Coordinates><Coordinate Order="0" X="inf" Y="1"/>'
     "</Coordinates></Annotation></Annotations></ASAP_Annotations>", "not finite"),
    ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><ASAP_Annotations>&b;</ASAP_Annotations>',
     "not well-formed"),  # entity declarations refused (defusedxml)
])
def test_bad_asap_files_name_file_and_reason(tmp_path, text, reason):
    (tmp_path / "a.xml").write_text(text)
    with pytest.raises(CaseError) as err:
        asap.parse(tmp_path / "a.xml")
    assert err.value.path == str(tmp_path / "a.xml") and reason in err.value.reason


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(XML)), pos=st.integers(0, len(XML) - 1), char=st.sampled_from(list('<>"=/ ,.0-9xXYO&')))
def test_fuzz_asap_parser_raises_only_case_errors(tmp_path, cut, pos, char):
    text = (XML[:pos] + char + XML[pos + 1:])[: len(XML) - cut]
    (tmp_path / "f.xml").write_text(text)
    try:
        regions = asap.parse(tmp_path / "f.xml")
    except CaseError as exc:
        assert exc.path == str(tmp_path / "f.xml") and exc.reason
    else:
        assert all(np.isfinite(r.xs).all() and r.xs.shape == r.ys.shape for r in regions)


# ------------------------------------------------------------------ the window rasteriser


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_polygon_window_is_the_whole_image_polygon_cropped(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 10))
    xs, ys = rng.uniform(-30, 130, n), rng.uniform(-30, 110, n)
    full, degenerate = shapes.polygon(xs, ys, (80, 100))
    r0, c0, h, w = int(rng.integers(-20, 90)), int(rng.integers(-20, 110)), int(rng.integers(1, 60)), int(rng.integers(1, 60))
    window = shapes.polygon_window(xs, ys, (80, 100), (r0, c0, h, w))
    padded = np.zeros((80 + 160, 100 + 160), bool)
    padded[80:160, 80:180] = full if not degenerate else False
    expected = padded[r0 + 80:r0 + 80 + h, c0 + 80:c0 + 80 + w]
    if degenerate:  # polygon() keeps a vertex pixel for a shape covering no centre; the window draws none
        assert not window.any()
    else:
        assert np.array_equal(window, expected)


def test_polygon_window_refuses_absurd_coordinates():
    with pytest.raises(shapes.CoordinateError):
        shapes.polygon_window([0, 1e12, 5], [0, 5, 5], (100, 100), (0, 0, 10, 10))


# ------------------------------------------------------------------ levels and tiles


@pytest.fixture(scope="module")
def sample_slides(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirror")
    samples.build(out, ["acdc_lunghp"])
    return out / "acdc_lunghp" / "manual"


def test_level_by_index_or_microns_per_pixel(sample_slides):
    slide = wsi.open_slide(sample_slides / "2.tif")
    assert slide.level_downsamples == (1.0, 4.0, 16.0)
    assert wsi.pick_level(slide, Path("s"), {"mpp": 1.1, "level": None}) == (1, 1.0)
    assert wsi.pick_level(slide, Path("s"), {"mpp": 3.0, "level": None}) == (2, 4.0)
    assert wsi.pick_level(slide, Path("s"), {"mpp": None, "level": 1}) == (1, 1.0)
    with pytest.raises(CaseError, match="has 3 level"):
        wsi.pick_level(slide, Path("s"), {"mpp": None, "level": 3})


def test_slide_without_microns_per_pixel_refuses_an_mpp_setting(tmp_path):
    sample.write_pyramid(tmp_path / "s.tif", np.full((256, 256, 3), 200, np.uint8), 0.25, (1, 4), 64)
    data = (tmp_path / "s.tif").read_bytes()
    slide = wsi.open_slide(tmp_path / "s.tif")
    assert slide.properties.get("openslide.mpp-x") == "0.25"
    slide.close()
    # the same slide without resolution tags
    import tifffile

    with tifffile.TiffWriter(tmp_path / "n.tif") as tw:
        for down in (1, 4):
            tw.write(np.full((256 // down, 256 // down, 3), 200, np.uint8), tile=(64, 64), photometric="rgb", subfiletype=int(down > 1))
    with pytest.raises(CaseError, match="no microns per pixel"):
        wsi.pick_level(wsi.open_slide(tmp_path / "n.tif"), tmp_path / "n.tif", {"mpp": 0.5})
    assert data


def test_unreadable_slide_is_a_case_error(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(CaseError) as err:
        wsi.open_slide(tmp_path / "bad.tif")
    assert err.value.path == str(tmp_path / "bad.tif")


def plan_for(tiling):
    plan = sample_plan("acdc_lunghp")
    return {**plan, "convert": {**plan["convert"], "tiling": tiling}}


@pytest.mark.parametrize("level", [0, 1])
def test_tiles_and_masks_match_the_whole_level(sample_slides, tmp_path, level):
    """Every tile is the level's pixels at its place, and its mask the whole level's rasterised
    polygons cropped there (polygons scaled by the level's downsample)."""
    size = 128 if level == 0 else 32
    plan = plan_for({"level": level, "mpp": None, "tile_size": size, "min_tissue": 0.5})
    case = Case("2", "2", sample_slides / "2.tif", mask=sample_slides / "2.xml")
    rows = wsi.convert_case(case, sample_slides, plan, acdc_lunghp, tmp_path, {})
    slide = openslide.OpenSlide(str(sample_slides / "2.tif"))
    down = slide.level_downsamples[level]
    lw, lh = slide.level_dimensions[level]
    whole = wsi.rgb(slide.read_region((0, 0), level, (lw, lh)))
    regions = [r for r in asap.parse(sample_slides / "2.xml") if r.kind == "Polygon"]
    reference = np.zeros((lh, lw), bool)
    for r in regions:
        reference |= shapes.polygon(r.xs / down, r.ys / down, (lh, lw))[0]
    assert len(rows) >= 4 and {r["patient_id"] for r in rows} == {"2"} and {r["level"] for r in rows} == {level}
    cancer = 0
    for row in rows:
        tx, ty = round(row["x0"] / down), round(row["y0"] / down)
        px = np.asarray(Image.open(tmp_path / row["image"]))
        mask = np.asarray(Image.open(tmp_path / row["mask"]))
        assert px.shape == (size, size, 3) and mask.shape == (size, size)
        assert np.array_equal(px, whole[ty:ty + size, tx:tx + size])
        assert np.array_equal(mask == 1, reference[ty:ty + size, tx:tx + size])
        assert row["tissue_fraction"] >= 0.5
        cancer += int(mask.any())
    assert cancer >= 2
    overview = np.asarray(Image.open(tmp_path / "overviews" / "2_mask.png"))
    assert overview.shape == (768, 1024) and overview.any()  # level 0 is within the overview size


# ------------------------------------------------------------------ memory bounded by the tile

SIDE = 65536  # level 0: 65536 x 65536 RGB = 12.9 GB decoded
TILE = 512
LIMIT_MB = 512  # the job's address-space budget beyond its imports


def huge_slide(dest: Path) -> None:
    """A pyramid (downsamples 1, 4, 32) written from pre-compressed tiles, so neither writing nor
    the file costs the decoded size: glass everywhere but a 2048-px tissue square at (30720, 30720)."""
    import tifffile

    def tile_bytes(value):
        return zlib.compress(np.full((TILE, TILE, 3), value, np.uint8).tobytes(), 1)

    glass = tile_bytes(240)
    tissue = zlib.compress(np.tile(np.array([200, 110, 170], np.uint8), (TILE, TILE, 1)).tobytes(), 1)
    start, stop = 30720, 30720 + 2048
    with tifffile.TiffWriter(dest, bigtiff=True) as tw:
        for k, down in enumerate((1, 4)):
            side = SIDE // down
            lo, hi = start // down, stop // down

            def tiles(side=side, lo=lo, hi=hi):
                for ty in range(0, side, TILE):
                    for tx in range(0, side, TILE):
                        yield tissue if lo <= tx < hi and lo <= ty < hi else glass

            tw.write(tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(TILE, TILE), compression="zlib",
                     photometric="rgb", subfiletype=int(k > 0), resolution=(4e4 / down, 4e4 / down),
                     resolutionunit="CENTIMETER", metadata=None)
        small = np.full((SIDE // 32, SIDE // 32, 3), 240, np.uint8)
        small[start // 32:stop // 32, start // 32:stop // 32] = (200, 110, 170)
        tw.write(small, tile=(TILE, TILE), compression="zlib", photometric="rgb", subfiletype=1,
                 resolution=(4e4 / 32, 4e4 / 32), resolutionunit="CENTIMETER", metadata=None)


def test_tiling_a_slide_far_larger_than_the_jobs_memory(tmp_path):
    huge_slide(tmp_path / "big.tif")
    (tmp_path / "big.xml").write_bytes(sample.asap_xml([[(31000, 31000), (32000, 31000), (32000, 32500), (31000, 32500)]]))
    slide = openslide.OpenSlide(str(tmp_path / "big.tif"))
    decoded = [w * h * 3 for w, h in slide.level_dimensions]
    assert slide.level_dimensions[0] == (SIDE, SIDE) and decoded[0] > 15 * LIMIT_MB * 2**20 and decoded[1] > LIMIT_MB * 2**20
    slide.close()
    # The limit is on what the job maps beyond its imports (pandas maps far more address space when
    # optional packages such as pyarrow are installed): the imports' size, plus LIMIT_MB.
    budget = textwrap.dedent(f"""
        import resource

        def status(key):
            return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) * 1024

        start_rss = status("VmRSS")
        limit = status("VmSize") + {LIMIT_MB} * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    """)
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from medcurate import wsi
        from medcurate.datasets import Case, acdc_lunghp
    """) + budget + textwrap.dedent("""
        plan = json.loads(sys.argv[1])
        root = Path(sys.argv[2])
        rows = wsi.convert_case(Case("big", "big", root / "big.tif", mask=root / "big.xml"), root, plan, acdc_lunghp,
                                root / "out", {})
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report pytest's own peak
        print(json.dumps({"rows": rows, "peak_mb": status("VmHWM") // 2**20, "start_mb": start_rss // 2**20}))
    """)
    plan = plan_for({"level": 0, "mpp": None, "tile_size": TILE, "min_tissue": 0.5})
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(plan), str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rows = result["rows"]
    assert len(rows) == 16  # the 4x4 tissue tiles, nothing of the glass
    assert {(r["x0"], r["y0"]) for r in rows} == {(30720 + i * TILE, 30720 + j * TILE) for i in range(4) for j in range(4)}
    cancer = sum(int(r["mask_labels"] == "1") for r in rows)
    assert cancer == 12  # the polygon spans x 31000..32000 (tile columns 0-2), y 31000..32500 (rows 0-3)
    assert result["peak_mb"] - result["start_mb"] < LIMIT_MB
    # control: under the same budget, reading one whole level (what a slide-sized reader does) fails
    whole = "import sys\nimport openslide\n" + budget + textwrap.dedent("""
        s = openslide.OpenSlide(sys.argv[1])
        s.read_region((0, 0), 1, s.level_dimensions[1])
    """)
    control = subprocess.run([sys.executable, "-c", whole, str(tmp_path / "big.tif")], capture_output=True, text=True,
                             env=env, timeout=300)
    assert control.returncode != 0 and ("MemoryError" in control.stderr or "memory" in control.stderr.lower())
    print(f"slide level 0 decoded: {decoded[0] / 2**30:.1f} GiB; job budget {LIMIT_MB} MiB beyond its imports; "
          f"peak RSS {result['peak_mb']} MiB ({result['start_mb']} MiB after the imports)")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_slide_is_a_case_error_naming_it(sample_slides, tmp_path, keep):
    data = (sample_slides / "2.tif").read_bytes()
    (tmp_path / "2.tif").write_bytes(data[: int(len(data) * keep)])
    (tmp_path / "2.xml").write_bytes((sample_slides / "2.xml").read_bytes())
    plan = plan_for({"level": 0, "mpp": None, "tile_size": 128, "min_tissue": 0.5})
    with pytest.raises(CaseError) as err:
        wsi.convert_case(Case("2", "2", tmp_path / "2.tif", mask=tmp_path / "2.xml"), tmp_path, plan, acdc_lunghp, tmp_path / "out", {})
    assert err.value.path == str(tmp_path / "2.tif") and err.value.reason


def test_annotation_absurdly_far_from_the_slide_quarantines_it(sample_slides, tmp_path):
    (tmp_path / "2.xml").write_bytes(sample.asap_xml([[(0, 0), (10**9, 0), (10, 10)]]))
    plan = plan_for({"level": 0, "mpp": None, "tile_size": 128, "min_tissue": 0.5})
    with pytest.raises(CaseError) as err:
        wsi.convert_case(Case("2", "2", sample_slides / "2.tif", mask=tmp_path / "2.xml"), tmp_path, plan, acdc_lunghp, tmp_path / "out", {})
    assert err.value.path == str(tmp_path / "2.xml") and "absurdly far" in err.value.reason
