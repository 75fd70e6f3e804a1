"""CDD-CESM: the VIA export and the xlsx metadata (real files and sample), the join, label maps,
curation rules, quarantine reasons, and bounded fuzzing of both parsers."""

import csv
import io
import json
import math
import os
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import catalogue
from medcurate import convert, samples
from medcurate.atomic import file_digest
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import cdd_cesm as cdd
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import prepared, sample_plan, with_exclusions

EXCERPT = "CDD-CESM/Radiology_hand_drawn_segmentations_v2.EXCERPT.csv"
XLSX = "CDD-CESM/Radiology-manual-annotations.xlsx"
VIA_HEADER = "#filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes"
REAL_HEADER = ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS", "Findings",
               "View", "Tags", "Machine", "Pathology Classification/ Follow up"]
AVERAGE = (2355, 1315)  # documented average frame (height, width)
LOW, SUB = "Low energy images of CDD-CESM", "Subtracted images of CDD-CESM"


def _via(*rows: str) -> str:
    return "\n".join([VIA_HEADER, *rows]) + "\n"


def _row(name: str, shape: dict | str, count: int = 1, rid: int = 0) -> str:
    text = shape if isinstance(shape, str) else json.dumps(shape, separators=(",", ":"))
    return f'{name},100,{{}},{count},{rid},"{text.replace(chr(34), chr(34) * 2)}",{{}}'


def _frame(regions) -> tuple[int, int]:
    """A plausible frame for an image's regions: the documented average, grown to hold every vertex."""
    xs = [v for r in regions for v in (r.params.get("xs") or [r.params.get("cx", 0) + r.params.get("rx", r.params.get("r", 0))])]
    ys = [v for r in regions for v in (r.params.get("ys") or [r.params.get("cy", 0) + r.params.get("ry", r.params.get("r", 0))])]
    return max(AVERAGE[0], int(max(ys)) + 16), max(AVERAGE[1], int(max(xs)) + 16)


# ------------------------------------------------------------------ real VIA excerpt


@pytest.mark.realdata
def test_every_row_of_the_real_excerpt_parses_and_rasterises(realdata):
    path = realdata / EXCERPT
    text = path.read_text()
    assert text.splitlines()[0] == VIA_HEADER
    images = cdd.parse_via(text, path)
    regions = [r for image in images.values() for r in image.regions]
    assert len(images) == 14 and len(regions) == 36 == len(text.splitlines()) - 1
    assert sorted(r.line for r in regions) == list(range(2, 38))  # every data line became a region
    assert Counter(r.shape for r in regions) == {"ellipse": 16, "polygon": 11, "circle": 5, "point": 4}
    assert images["P10_R_DM_CC.jpg"].region_count == 8 and len(images["P10_R_DM_CC.jpg"].regions) == 7  # excerpt cut
    assert images["P2_R_CM_CC.jpg"].region_count == 9 == len(images["P2_R_CM_CC.jpg"].regions)
    for image in images.values():
        frame = _frame(image.regions)
        for r in image.regions:
            mask, degenerate = cdd.rasterise(r, frame, 3)
            assert mask.any() and not degenerate, (image.filename, r.line)
            p = r.params
            if r.shape == "polygon":
                xs, ys = np.array(p["xs"]), np.array(p["ys"])
                area = abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2
                assert mask.sum() == pytest.approx(area, rel=0.03)
            elif r.shape in ("ellipse", "circle"):
                rx, ry = (p["r"], p["r"]) if r.shape == "circle" else (p["rx"], p["ry"])
                assert mask.sum() == pytest.approx(math.pi * rx * ry, rel=0.03)
                assert mask[int(p["cy"]), int(p["cx"])]
            else:
                assert mask[int(p["cy"]), int(p["cx"])] and mask.sum() == 25  # radius-3 disk: centres strictly inside


# ------------------------------------------------------------------ real xlsx


@pytest.mark.realdata
def test_real_xlsx_sheet_all(realdata):
    path = realdata / XLSX
    book = openpyxl.load_workbook(path, read_only=True)  # the header exactly as shipped
    assert next(book["all"].iter_rows(max_row=1, values_only=True)) == tuple(REAL_HEADER)
    assert len(book.sheetnames) == 9
    book.close()
    rows = cdd.parse_metadata(path.read_bytes(), path)
    names = Counter(r["name"] for r in rows)
    assert len(rows) == 2006 and len(names) == 2002
    assert sorted(n for n, k in names.items() if k > 1) == ["P281_L_CM_MLO", "P281_L_DM_MLO", "P99_L_CM_MLO", "P99_L_DM_MLO"]
    assert [r["raw_name"] for r in rows if r["raw_name"] != r["name"]] == \
        ["P3_L_CM_CC ", "P4_L_DM_MLO ", "P4_L_CM_MLO ", "P10_R_DM_CC ", "P10_R_DM_MLO "]
    assert Counter(r["pathology"] for r in rows) == {"Normal": 757, "Malignant": 662, "Benign": 587}
    assert Counter(r["type"] for r in rows) == {"DM": 1003, "CESM": 1003}
    assert len({r["patient"] for r in rows}) == 326
    assert all(cdd.NAME.match(r["name"]) for r in rows)
    assert all(cdd.TYPE[cdd.NAME.match(r["name"]).group(3)] == r["type"] for r in rows)
    assert Counter(r["birads"] for r in rows)["3$2"] == 31
    assert rows[0]["findings"] == "Architectural distortion"  # trailing space stripped


@pytest.mark.realdata
def test_real_excerpt_joins_the_real_xlsx(realdata, tmp_path):
    """Every annotated image of the excerpt finds its xlsx row (stray spaces included), gets its
    regions and a mask; xlsx images without a file are quarantined with the reason."""
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(realdata / XLSX, root / "Radiology-manual-annotations.xlsx")
    os.symlink(realdata / EXCERPT, root / "Radiology_hand_drawn_segmentations_v2.csv")
    images = cdd.parse_via((realdata / EXCERPT).read_text(), "excerpt")
    for name, image in images.items():
        folder = root / "CDD-CESM" / (LOW if "_DM_" in name else SUB)
        folder.mkdir(parents=True, exist_ok=True)
        h, w = _frame(image.regions)
        Image.new("L", (w, h)).save(folder / name, format="JPEG")
    plan = sample_plan("cdd_cesm")
    cases = {c.case_id: c for c in cdd.cases(root, plan)}
    assert len(cases) == 2002
    annotated = {cdd.image_key(n) for n in images}
    assert all(cases[k].problem is None for k in annotated)
    missing = [c for c in cases.values() if c.case_id not in annotated]
    assert len(missing) == 1988 and all("not found in" in c.problem.reason for c in missing)
    assert cases["P10_R_DM_CC"].labels == {"pathology": "Benign"} and cases["P10_R_DM_CC"].patient_id == "P10"
    assert cases["P3_L_CM_CC"].labels == {"pathology": "Malignant"} and cases["P3_L_CM_CC"].meta["type"] == "CESM"
    roi = {}
    for key in sorted(annotated):
        convert.load_image(cases[key], plan, cdd)
        drawn = cdd.load_mask(cases[key], plan)
        mask, actions = drawn.array, drawn.actions
        assert set(np.unique(mask)) == {0, 1} and actions == []
        roi[key] = drawn.facts["roi_types"]
        assert drawn.facts["regions_missing"] == (key == "P10_R_DM_CC")
        assert drawn.facts["roi_outside_image"] == 0
    assert roi["P6_R_DM_CC"] == "circle ellipse point" and roi["P2_L_DM_CC"] == "polygon"
    assert roi["P10_R_DM_CC"] == "circle ellipse polygon" and roi["P2_R_CM_CC"] == "circle ellipse"


# ------------------------------------------------------------------ VIA parser


def test_via_shapes_and_conventions():
    text = _via(
        _row("A.jpg", {"name": "rect", "x": 10, "y": 20, "width": 30, "height": 5}, 3, 0),
        _row("A.jpg", {"name": "polyline", "all_points_x": [0, 40, 40], "all_points_y": [0, 0, 40]}, 3, 1),
        _row("A.jpg", {"name": "ellipse", "cx": 50, "cy": 50, "rx": 20, "ry": 5, "theta": math.pi / 2}, 3, 2),
        "B.jpg,5,{},0,0,{},{}",
        "",
    )
    images = cdd.parse_via(text, "x.csv")
    assert list(images) == ["A.jpg", "B.jpg"]
    assert images["B.jpg"].regions == [] and images["B.jpg"].region_count == 0
    rect, polyline, ellipse = images["A.jpg"].regions
    assert (rect.line, polyline.line, ellipse.line) == (2, 3, 4)
    box = cdd.rasterise(rect, (100, 100), 3)[0]
    # half-open rule on integer edges: a 30 x 5 rect covers exactly 30 x 5 pixel centres
    assert box[20:25, 10:40].all() and box.sum() == 30 * 5
    closed = cdd.rasterise(polyline, (100, 100), 3)[0]
    assert closed[5, 30] and not closed[30, 5]  # the open trace is closed into a triangle
    turned = cdd.rasterise(ellipse, (100, 100), 3)[0]
    assert turned[50, 46:55].all() and turned[31:70, 50].all() and turned.sum() == pytest.approx(math.pi * 100, rel=0.05)
    assert not turned[50, 32] and not turned[50, 68]  # rotated a quarter turn: long axis vertical
    vía2 = cdd.parse_via(text.replace("#filename", "filename", 1), "x.csv")  # VIA 2 header
    assert vía2.keys() == images.keys()


@pytest.mark.parametrize(("row", "reason"), [
    ('A.jpg,1,{},1,0,"{""name"":""polygon"",",{}', "line 2: region_shape_attributes is not valid JSON"),
    (_row("A.jpg", {"name": "ellipse", "cx": 1, "cy": 2, "rx": 3}), "line 2: ellipse lacks 'ry'"),
    (_row("A.jpg", {"name": "circle", "cx": 1, "cy": 2, "r": "4"}), "line 2: 'r' must be a finite number"),
    (_row("A.jpg", {"name": "polygon", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]}), "line 2: polygon has 3 x but 2 y"),
    (_row("A.jpg", {"name": "polygon", "all_points_x": [1, 2, 3]}), "line 2: polygon lacks the list 'all_points_y'"),
    (_row("A.jpg", {"name": "freehand", "cx": 1}), "line 2: unsupported region shape 'freehand'"),
    (_row("A.jpg", {"name": "circle", "cx": 1, "cy": 2, "r": -4}), "line 2: negative size"),
    (_row("A.jpg", {"name": "point", "cx": 1, "cy": 2}, count=0), "line 2: a region on an image whose region_count is 0"),
    (_row("A.jpg", "[1, 2]"), "line 2: region_shape_attributes must be a JSON object"),
    ("A.jpg,1,{},one,0,{},{}", "line 2: region_count must be an integer"),
    ("A.jpg,1,{},1,0,{}", "line 2: 6 fields, the header has 7"),
    ("A.jpg,1,{},2,0,{},{}", "line 2: empty region_shape_attributes but region_count 2"),
])
def test_malformed_via_rows_name_the_line(row, reason):
    with pytest.raises(CaseError) as err:
        cdd.parse_via(_via(row), "segs.csv")
    assert err.value.path == "segs.csv" and err.value.reason.startswith(reason)


def test_inconsistent_region_count_and_lenient_mode():
    text = _via(_row("A.jpg", {"name": "point", "cx": 1, "cy": 2}, 2, 0),
                _row("A.jpg", {"name": "point", "cx": 3, "cy": 4}, 3, 1),
                _row("B.jpg", {"name": "point", "cx": 1, "cy": 2}))
    with pytest.raises(CaseError, match="line 3: region_count 3 differs from 2 on line 2"):
        cdd.parse_via(text, "s.csv")
    images = cdd.parse_via(text, "s.csv", strict=False)
    assert "line 3" in images["A.jpg"].error.reason and len(images["A.jpg"].regions) == 1
    assert images["B.jpg"].error is None and len(images["B.jpg"].regions) == 1


@pytest.mark.parametrize(("text", "reason"), [
    ("", "not a VIA export: missing column(s)"),
    ("#filename,file_size\nA.jpg,1\n", "not a VIA export: missing column(s) ['region_count'"),
    (_via(',1,{},1,0,{},{}'), "line 2: empty filename"),
])
def test_via_structure_errors_are_dataset_errors(text, reason):
    with pytest.raises(MedcurateError) as err:
        cdd.parse_via(text, "segs.csv")
    assert not isinstance(err.value, CaseError) and err.value.reason.startswith(reason)


def test_join_keys_strip_stray_spaces():
    assert {cdd.image_key(n) for n in ("P10_R_DM_CC .jpg", "P10_R_DM_CC ", " P10_R_DM_CC.JPG", "P10_R_DM_CC")} == {"P10_R_DM_CC"}


# ------------------------------------------------------------------ xlsx parser


def _xlsx(rows: list[list], header: list[str] = REAL_HEADER, sheet: str = "all") -> bytes:
    book = openpyxl.Workbook()
    book.active.title = sheet
    for row in [header, *rows]:
        book.active.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_metadata_errors_name_the_file_and_reason():
    with pytest.raises(MedcurateError, match="not an xlsx workbook"):
        cdd.parse_metadata(b"Image_name,Patient_ID\n", "meta.xlsx")
    with pytest.raises(MedcurateError, match=r"no sheet 'all' \(sheets: \['mass'\]\)"):
        cdd.parse_metadata(_xlsx([], sheet="mass"), "meta.xlsx")
    with pytest.raises(MedcurateError, match=r"missing column\(s\) \['Pathology Classification/ Follow up'\]"):
        cdd.parse_metadata(_xlsx([], header=REAL_HEADER[:-1] + ["Pathology"]), "meta.xlsx")
    with pytest.raises(MedcurateError, match="row 3: empty Image_name"):
        cdd.parse_metadata(_xlsx([["P1_L_DM_CC", 1], [None, 2]]), "meta.xlsx")
    rows = cdd.parse_metadata(_xlsx([["P1_L_DM_CC ", 1.0, "L"], [None] * 12]), "meta.xlsx")
    assert len(rows) == 1 and rows[0]["name"] == "P1_L_DM_CC" and rows[0]["patient"] == "1" and rows[0]["pathology"] == ""


def test_metadata_with_xml_entities_is_refused():
    data = _xlsx([["P1_L_DM_CC", 1]])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["docProps/core.xml"] = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;&a;</x>'
    with pytest.raises(MedcurateError, match="docProps/core.xml: unsafe or malformed XML"):
        cdd.parse_metadata(samples.zip_bytes(members), "meta.xlsx")


# ------------------------------------------------------------------ sample mirror


@pytest.fixture(scope="module")
def own_mirror(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cdd-mirror")
    samples.build(out, ["cdd_cesm"])
    return out


def test_sample_is_deterministic_and_pinned(own_mirror, tmp_path):
    pins = {f"cdd_cesm/{name}": digest for name, digest in catalogue.sample_pins("cdd_cesm").items()}
    again = samples.build(tmp_path, ["cdd_cesm"])
    built = {p.relative_to(own_mirror).as_posix(): file_digest(p) for p in own_mirror.rglob("*") if p.is_file()}
    assert built == again == pins
    assert set(built) == {"cdd_cesm/Radiology-manual-annotations.xlsx", "cdd_cesm/Radiology_hand_drawn_segmentations_v2.csv",
                          "cdd_cesm/manual/CDD-CESM.zip"}
    assert sum(p.stat().st_size for p in own_mirror.rglob("*") if p.is_file()) < 700_000


def test_sample_follows_the_real_layout(own_mirror):
    folder = own_mirror / "cdd_cesm"
    text = (folder / "Radiology_hand_drawn_segmentations_v2.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == VIA_HEADER
    assert any(",0,0,{},{}" in line for line in lines)  # an image opened but not annotated
    shapes = {json.loads(r["region_shape_attributes"])["name"] for r in csv.DictReader(lines) if r["region_count"] != "0"}
    assert shapes == {"polygon", "ellipse", "circle", "point"}
    book = openpyxl.load_workbook(folder / "Radiology-manual-annotations.xlsx", read_only=True)
    assert book.sheetnames[0] == "all" and len(book.sheetnames) > 1
    rows = list(book["all"].iter_rows(values_only=True))
    assert list(rows[0]) == REAL_HEADER
    names = [r[0] for r in rows[1:]]
    assert {n for n in names if n != n.strip()} == {"P3_L_CM_CC ", "P4_L_DM_MLO ", "P4_L_CM_MLO "}
    assert [n for n, k in Counter(names).items() if k > 1] == ["P5_R_DM_MLO"]
    assert {r[3] for r in rows[1:]} == {"DM", "CESM"} and isinstance(rows[1][1], int)
    with zipfile.ZipFile(folder / "manual" / "CDD-CESM.zip") as zf:
        members = zf.namelist()
        first = Image.open(io.BytesIO(zf.read(members[0])))
    assert all(m.startswith((f"CDD-CESM/{LOW}/", f"CDD-CESM/{SUB}/")) and m.endswith(".jpg") for m in members)
    assert all(("_DM_" in m) == (LOW in m) for m in members)
    assert f"CDD-CESM/{SUB}/P3_L_CM_CC .jpg" in members and len(members) == 12
    assert first.format == "JPEG" and first.mode == "L"


@pytest.mark.realdata
def test_sample_csv_matches_the_real_quoting(own_mirror, realdata):
    real = (realdata / EXCERPT).read_text().splitlines()
    sample = (own_mirror / "cdd_cesm" / "Radiology_hand_drawn_segmentations_v2.csv").read_text().splitlines()
    assert sample[0] == real[0]
    for lines in (real[1:], sample[1:]):  # JSON quoted with doubled quotes, attributes bare '{}'
        assert all(line.count(',{},') >= 1 and line.endswith(",{}") for line in lines)
        assert all('"{""name"":""' in line for line in lines if ",0,0,{},{}" not in line)


# ------------------------------------------------------------------ converter on the sample


@pytest.fixture
def sample_root(own_mirror, tmp_path) -> tuple[Path, dict]:
    plan = sample_plan("cdd_cesm")
    return prepared(own_mirror, plan, tmp_path / "root"), plan


def _convert(root: Path, plan: dict, out: Path) -> tuple[dict, list[dict]]:
    convert_shard(root, plan, 0, 1, out)
    rows = with_exclusions(out, plan)
    return rows, list(csv.DictReader((out / "quarantine.csv").open()))


def test_sample_converts_with_documented_labels_and_exclusions(sample_root, tmp_path):
    root, plan = sample_root
    rows, quarantined = _convert(root, plan, tmp_path / "out")
    assert quarantined == [] and len(rows) == 12
    assert {k: r["pathology"] for k, r in rows.items() if k.startswith(("P1_", "P4_"))} == {
        "P1_L_CM_MLO": "Malignant", "P1_L_DM_MLO": "Malignant", "P1_R_CM_CC": "Normal", "P1_R_DM_CC": "Normal",
        "P4_L_CM_MLO": "Benign", "P4_L_DM_MLO": "Benign"}
    assert rows["P3_L_CM_CC"]["source"].endswith(f"{SUB}/P3_L_CM_CC .jpg")  # stray-space file joined
    assert rows["P3_L_CM_CC"]["type"] == "CESM" and rows["P3_L_DM_CC"]["breast_density"] == "C"
    assert rows["P3_L_CM_CC"]["breast_density"] == "" and rows["P2_R_DM_CC"]["birads"] == "3$2"
    assert {r["patient_id"] for r in rows.values()} == {"P1", "P2", "P3", "P4", "P5"}
    exclusions = {k: r["exclusion"] for k, r in rows.items() if r["exclusion"]}
    assert exclusions == {
        "P2_R_CM_CC": "roi_type:circle;roi_type:ellipse;roi_type:point",
        "P2_R_DM_CC": "roi_type:circle;roi_type:ellipse",
        "P4_L_DM_MLO": "roi_type:ellipse;roi_type:point",
        "P4_L_CM_MLO": "finding_without_roi",
    }
    assert rows["P1_R_DM_CC"]["mask_components"] == "0" and rows["P1_R_DM_CC"]["mask_source"].endswith(".csv")
    assert rows["P1_R_CM_CC"]["mask_source"] == ""  # never opened in VIA


def test_sample_label_maps_lie_on_the_drawn_findings(sample_root, tmp_path):
    root, plan = sample_root
    out = tmp_path / "out"
    _convert(root, plan, out)
    via = cdd.parse_via((root / "Radiology_hand_drawn_segmentations_v2.csv").read_text(), "s")
    for name, entry in via.items():
        key = cdd.image_key(name)
        mask = np.asarray(Image.open(out / "raw_masks" / f"{key}.png"))
        image = np.asarray(Image.open(out / "images" / f"{key}.png"))
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert mask[0, 0] == 0
        for r in entry.regions:
            cx = round(np.mean(r.params["xs"])) if r.shape == "polygon" else int(r.params["cx"])
            cy = round(np.mean(r.params["ys"])) if r.shape == "polygon" else int(r.params["cy"])
            assert mask[cy, cx] == 1, (key, r.shape)
            assert image[cy, cx] > 180, (key, r.shape)  # the synthetic finding is drawn bright there
    assert not np.asarray(Image.open(out / "raw_masks" / "P5_R_DM_MLO.png")).any()


def _edit_xlsx(path: Path, edit) -> None:
    book = openpyxl.load_workbook(path)
    edit(book["all"])
    path.unlink()  # a copy, not the mirror (the root holds copies of downloads)
    book.save(path)


def test_quarantine_reasons(sample_root, tmp_path):
    root, plan = sample_root
    (root / "CDD-CESM" / "CDD-CESM" / LOW / "P3_L_DM_CC.jpg").unlink()
    shutil.move(root / "CDD-CESM" / "CDD-CESM" / SUB / "P5_R_CM_MLO.jpg", root / "CDD-CESM" / "CDD-CESM" / LOW / "P5_R_CM_MLO.jpg")
    xlsx = root / "Radiology-manual-annotations.xlsx"

    def edit(sheet):
        for row in sheet.iter_rows(min_row=2):
            name = row[0].value.strip()
            if name == "P1_L_CM_MLO":
                row[3].value = "DM"  # Type contradicts _CM_
            if name == "P5_R_DM_MLO" and row[0].row == 13:
                row[11].value = "Benign"  # the duplicate row now disagrees
            if name == "P2_R_DM_CC":
                row[0].value = "P2_R_DM_CCX"  # annotated image without an xlsx row
    _edit_xlsx(xlsx, edit)
    via_csv = root / "Radiology_hand_drawn_segmentations_v2.csv"
    text = via_csv.read_text().replace('""cx"":90', '""cx"":""ninety""')  # P2_R_CM_CC point
    via_csv.unlink()
    via_csv.write_text(text)
    rows, quarantined = _convert(root, plan, tmp_path / "out")
    reasons = {q["case_id"]: (q["source"], q["reason"]) for q in quarantined}
    assert reasons["P3_L_DM_CC"] == (f"CDD-CESM/CDD-CESM/{LOW}/P3_L_DM_CC.jpg", f"image file P3_L_DM_CC.jpg not found in '{LOW}'")
    assert reasons["P5_R_CM_MLO"][1] == f"a _CM_ image in the wrong folder (expected '{SUB}')"
    assert reasons["P1_L_CM_MLO"] == ("Radiology-manual-annotations.xlsx", "sheet 'all' row 3: Type 'DM' contradicts the name P1_L_CM_MLO ('CESM')")
    assert reasons["P5_R_DM_MLO"][1] == "sheet 'all' rows [12, 13] describe P5_R_DM_MLO differently"
    assert reasons["P2_R_DM_CC"][1].startswith("P2_R_DM_CC (in line 8 of Radiology_hand_drawn_segmentations_v2.csv) has no row")
    assert reasons["P2_R_CM_CC"] == ("Radiology_hand_drawn_segmentations_v2.csv", "line 7: 'cx' must be a finite number, got 'ninety'")
    assert "P2_R_DM_CCX" in reasons  # the renamed row has no image
    assert len(rows) == 12 + 1 - len(reasons) and "P1_L_DM_MLO" in rows


def test_metadata_copies_inside_the_package(sample_root):
    """The downloaded copy at the top of the root wins over one inside the placed package; without
    it, identical copies count as one and differing copies are an error."""
    root, plan = sample_root
    top = root / "Radiology_hand_drawn_segmentations_v2.csv"
    inner = [root / "CDD-CESM" / top.name, root / "CDD-CESM" / "CDD-CESM" / top.name]
    inner[0].write_text(VIA_HEADER + "\n")  # a different (empty) version inside the package
    assert sum(len(c.regions) for c in cdd.cases(root, plan)) == 11
    top.unlink()
    inner[1].write_text(VIA_HEADER + "\n")
    assert sum(len(c.regions) for c in enumerate_cases(root, plan)) == 0  # identical copies: one
    inner[1].write_text(VIA_HEADER + "\nA.jpg,1,{},0,0,{},{}\n")
    with pytest.raises(MedcurateError, match="found 2 times with different contents"):
        cdd.cases(root, plan)


def test_polyline_and_region_outside_the_image_are_recorded(sample_root):
    root, plan = sample_root
    case = next(c for c in cdd.cases(root, plan) if c.case_id == "P1_L_DM_MLO")
    case.regions += [cdd.Region(98, 1, "polyline", {"xs": [10.0, 30.0, 30.0], "ys": [10.0, 10.0, 40.0]}),
                     cdd.Region(99, 2, "circle", {"cx": 5000, "cy": 5000, "r": 10})]
    case.region_count = 3
    convert.load_image(case, plan, cdd)
    drawn = cdd.load_mask(case, plan)
    mask, actions, facts = drawn.array, drawn.actions, drawn.facts
    assert actions == ["polyline_closed:1", "region_outside_image:2"]
    assert facts["roi_types"] == "circle polygon" and facts["regions"] == 3
    assert facts["roi_outside_image"] == 1 and facts["regions_missing"] == 0
    assert mask.shape == (285, 159) and mask[15, 25] == 1 and mask[35, 12] == 0
    case.region_count = 4  # region_id 3 never listed
    assert cdd.load_mask(case, plan).facts["regions_missing"] == 1


# ------------------------------------------------------------------ fuzz


NUMBER = st.one_of(st.integers(-5, 5000), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3), st.none())
SHAPE = st.fixed_dictionaries(
    {"name": st.sampled_from(["polygon", "polyline", "ellipse", "circle", "point", "rect", "x"])},
    optional={k: NUMBER for k in ("cx", "cy", "rx", "ry", "r", "x", "y", "width", "height", "theta")}
    | {"all_points_x": st.lists(NUMBER, max_size=5), "all_points_y": st.lists(NUMBER, max_size=5)},
)
CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["A.jpg", "B .jpg", ""]), st.sampled_from(["0", "1", "2", "x"]),
                          st.sampled_from(["0", "1", "-1"]), st.one_of(SHAPE.map(json.dumps), CELL)), max_size=6),
       CELL)
def test_fuzz_via_parser_raises_only_its_errors(rows, noise):
    text = _via(*[f'{n},1,{{}},{c},{i},"{s.replace(chr(34), chr(34) * 2)}",{{}}' for n, c, i, s in rows], noise)
    for strict in (True, False):
        try:
            images = cdd.parse_via(text, "fuzz.csv", strict=strict)
        except MedcurateError:
            continue
        for image in images.values():
            for region in image.regions:
                cdd.rasterise(region, (64, 48), 3)


@pytest.fixture(scope="module")
def sample_xlsx(own_mirror) -> bytes:
    return (own_mirror / "cdd_cesm" / "Radiology-manual-annotations.xlsx").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_metadata_parser_raises_only_its_errors(sample_xlsx, data):
    blob = bytearray(sample_xlsx)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    try:
        cdd.parse_metadata(bytes(blob), "fuzz.xlsx")
    except MedcurateError:
        pass
