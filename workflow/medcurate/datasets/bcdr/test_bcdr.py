"""BCDR: the ', '-separated outline CSVs (real excerpt), several lesions per image -> one label
map, every subset found, and the sample mirror's format."""

import csv
import io
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import convert, curation, masks
from medcurate.formats import shapes
from medcurate.convert import convert_shard, enumerate_cases
from medcurate.datasets import bcdr
from medcurate.datasets.bcdr.sample import lesions, tif_bytes
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import by_id, copy_tree, plan_of, with_exclusions

REAL = "BCDR/bcdr_d02_outlines.EXCERPT.csv"


@pytest.fixture(scope="module")
def root(sample_root):
    return sample_root("bcdr")


@pytest.fixture
def plan():
    return plan_of("bcdr")


# ------------------------------------------------------------------ the real excerpt


@pytest.mark.realdata
def test_every_real_row_parses_without_loss(realdata):
    path = realdata / REAL
    text = path.read_text()
    rows = bcdr.parse_outlines(text, path)
    raw = list(csv.reader(io.StringIO(text)))[1:]
    assert len(rows) == len(raw) == 7
    for row, cells in zip(rows, raw):
        assert len(row.xs) == len(row.ys) == len(cells[7].split()) == len(cells[8].split()) > 50
        assert row.xs == [int(v) for v in cells[7].split()] and row.ys == [int(v) for v in cells[8].split()]
        assert row.image_filename == cells[6].strip() and row.image_filename.endswith(f"_{row.view}.tif")
        assert row.view == {"1": "RCC", "2": "LCC", "3": "RO", "4": "LO"}[cells[5].strip()]
        assert cells[18] == " Benign" and row.classification == "Benign"  # the leading space is stripped
        assert row.image_filename == f"patient_{row.patient_id}/study_{row.study_id}/img_{row.patient_id}_{row.study_id}_{row.series}_{row.view}.tif"
        assert row.fields["age"] == cells[16].strip() and row.fields["density"] == cells[17].strip()
    assert [r.line for r in rows] == list(range(2, 9))


@pytest.mark.realdata
def test_real_outlines_rasterise_inside_a_plausible_image(realdata):
    """BCDR-D image size is UNCONFIRMED (3328x4084 assumed); rasterise at max coordinate + margin
    and at the assumed size: every outline gives a non-empty region of about its polygon area."""
    rows = bcdr.parse_outlines((realdata / REAL).read_text(), REAL)
    shape = (max(max(r.ys) for r in rows) + 64, max(max(r.xs) for r in rows) + 64)
    for r in rows:
        for size in (shape, (4084, 3328)):
            region, degenerate = shapes.polygon(r.xs, r.ys, size)
            x, y = np.asarray(r.xs, float), np.asarray(r.ys, float)
            area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
            assert not degenerate and abs(region.sum() - area) <= 0.15 * area + len(x)


@pytest.mark.realdata
def test_real_excerpt_gives_one_case_per_image(realdata, tmp_path, plan):
    folder = tmp_path / "BCDR-D02_dataset"
    folder.mkdir()
    shutil.copy(realdata / REAL, folder / "bcdr_d02_outlines.csv")
    cases = by_id(bcdr.cases(tmp_path, plan))
    assert len(cases) == 6 and {c.subset for c in cases.values()} == {"BCDR-D02"}
    two = cases["BCDR-D02_img_4_8_1_LO"]  # two lesions (9 and 10) on one image
    assert two.meta["lesions"] == "9:Benign;10:Benign" and two.meta["segmentation_ids"] == "14 16"
    assert two.meta["nodule"] == 1 and two.labels == {"classification": "Benign"} and two.patient_id == "4"
    assert two.image == folder / "patient_4" / "study_8" / "img_4_8_1_LO.tif"


# ------------------------------------------------------------------ parser errors


HEADER = ("patient_id,study_id,series,lesion_id,segmentation_id,image_view,image_filename,lw_x_points,lw_y_points,"
          "mammography_type,mammography_nodule,mammography_calcification,mammography_microcalcification,"
          "mammography_axillary_adenopathy,mammography_architectural_distortion,mammography_stroma_distortion,"
          "age,density,classification")


def line(view=2, name="patient_1/study_1/img_1_1_1_LCC.tif", xs="10 20 20 10", ys="10 10 20 20", cls="Benign", pid="1"):
    return f"{pid}, 1, 1, 1, 1, {view}, {name}, {xs}, {ys}, 1, 1, 0, 0, 0, 0, 0, 50, 2, {cls}"


@pytest.mark.parametrize("row, reason", [
    (line(xs="10 20 20"), "lw_x_points has 3 values but lw_y_points 4"),
    (line(ys="10 10 2o 20"), "lw_y_points holds a non-integer"),
    (line(xs="10.5 20 20 10"), "lw_x_points holds a non-integer"),
    (line(xs="", ys=""), "empty outline"),
    (line(view=5), "image_view must be 1-4"),
    (line(view=1), r"image_view 1 \(RCC\) does not match the file name"),
    (line(cls="Normal"), "classification must be one of"),
    (line(pid="x"), "patient_id must be an integer"),
    (line() + ", 7", "20 fields, the header has 19"),
])
def test_malformed_rows_name_the_line(row, reason):
    text = f"{HEADER}\n{line()}\n{row}\n"
    with pytest.raises(CaseError, match=f"line 3: {reason}") as err:
        bcdr.parse_outlines(text, "bcdr_d01_outlines.csv")
    assert err.value.path == "bcdr_d01_outlines.csv"


def test_missing_column_and_empty_file_are_dataset_errors():
    with pytest.raises(MedcurateError, match=r"missing column\(s\) \['classification'\]"):
        bcdr.parse_outlines(HEADER.rsplit(",", 1)[0] + "\n", "x.csv")
    with pytest.raises(MedcurateError, match="empty outlines file"):
        bcdr.parse_outlines("", "x.csv")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["1", " 2", "x", "", ",", ", ", " ", "\n", "\"", "10 20", " 4", "LO.tif",
                                 "patient_1/study_1/img_1_1_1_LO.tif", " Malignant", "-3"]), max_size=60).map("".join),
       st.booleans())
def test_parser_fuzz_raises_only_medcurate_errors(body, strict):
    try:
        rows = bcdr.parse_outlines(HEADER + "\n" + body, "fuzz.csv", strict=strict)
    except MedcurateError:
        return
    assert all(isinstance(r, (bcdr.Outline, CaseError)) for r in rows)


# ------------------------------------------------------------------ sample format


@pytest.mark.realdata
def test_sample_csv_has_the_real_format(realdata, mirror):
    real = (realdata / REAL).read_text().splitlines()
    with zipfile.ZipFile(mirror / "bcdr" / "manual" / "BCDR-D01_dataset.zip") as zf:
        names = zf.namelist()
        sample = zf.read("BCDR-D01_dataset/bcdr_d01_outlines.csv").decode().splitlines()
    assert sample[0] == real[0]  # header exactly, comma-only
    for text in real[1:] + sample[1:]:
        cells = text.split(",")
        assert len(cells) == 19 and all(c.startswith(" ") and not c.startswith("  ") for c in cells[1:])
        assert cells[18] in (" Benign", " Malignant")
    rows = bcdr.parse_outlines("\n".join(sample), "sample")
    assert {r.view for r in rows} == {"RCC", "LCC", "RO", "LO"}
    rcc = [r for r in rows if r.image_filename.endswith("img_1_1_1_RCC.tif")]
    assert sorted(r.classification for r in rcc) == ["Benign", "Malignant"]
    assert all(max(abs(np.diff(r.xs)).max(), abs(np.diff(r.ys)).max()) <= 1 for r in rows)  # traced, like the real ones
    assert "BCDR-D01_dataset/patient_1/study_1/img_1_1_1_RCC.tif" in names


def test_sample_images_are_16bit_and_deterministic(mirror):
    with zipfile.ZipFile(mirror / "bcdr" / "manual" / "BCDR-D02_dataset.zip") as zf:
        data = zf.read("BCDR-D02_dataset/patient_6/study_9/img_6_9_1_RCC.tif")
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "I;16" and im.size == (416, 510)
    name = "patient_6/study_9/img_6_9_1_RCC.tif"
    assert data == tif_bytes(f"bcdr/{name}", lesions("d02", name))
    assert len(lesions("d02", name)) == 2  # the lesion segmented twice, both drawn in


# ------------------------------------------------------------------ conversion


def test_cases_of_both_subsets(root, plan):
    cases = by_id(enumerate_cases(root, plan))
    assert sorted(cases) == ["BCDR-D01_img_1_1_1_RCC", "BCDR-D01_img_1_1_1_RO", "BCDR-D01_img_3_4_1_LCC",
                             "BCDR-D01_img_3_4_1_LO", "BCDR-D02_img_5_6_1_LCC", "BCDR-D02_img_5_6_1_LO",
                             "BCDR-D02_img_6_9_1_RCC"]
    rcc = cases["BCDR-D01_img_1_1_1_RCC"]
    assert rcc.labels == {"classification": "Malignant"}  # any-malignant over its two lesions
    assert rcc.meta["lesions"] == "1:Benign;2:Malignant" and rcc.subset == "BCDR-D01" and rcc.split is None
    assert cases["BCDR-D02_img_6_9_1_RCC"].meta["segmentation_ids"] == "9 10"  # one lesion, segmented twice
    assert cases["BCDR-D02_img_5_6_1_LO"].labels == {"classification": "Benign"}


def test_label_map_per_lesion_class(root, plan):
    case = by_id(enumerate_cases(root, plan))["BCDR-D01_img_1_1_1_RCC"]
    convert.load_image(case, plan, bcdr)
    drawn = bcdr.load_mask(case, plan)
    mask, actions = drawn.array, drawn.actions
    assert mask.shape == (510, 416) and actions == [] and drawn.facts["roi_types"] == "freehand"
    assert mask[200, 120] == 1 and mask[330, 150] == 2 and mask[10, 400] == 0 and mask[200, 160] == 0
    assert set(np.unique(mask)) == {0, 1, 2}


def test_malignant_wins_an_overlap(plan):
    a = np.ones((3, 3), bool)
    assert (masks.compose((3, 3), [("malignant", a), ("benign", a)], plan["labels"]) == 2).all()
    assert (masks.compose((3, 3), [("benign", a), ("malignant", a)], plan["labels"]) == 2).all()


def test_convert_shard_reads_16bit_tifs(root, plan, tmp_path):
    convert_shard(root, plan, 0, 1, tmp_path)
    image = np.asarray(Image.open(tmp_path / "images" / "BCDR-D02_img_6_9_1_RCC.png"))
    assert image.dtype == np.uint16 and image.max() < 1 << 14
    part = list(with_exclusions(tmp_path, plan).values())
    assert len(part) == 7 and all(r["exclusion"] == "" for r in part)
    assert {r["subset"] for r in part} == {"BCDR-D01", "BCDR-D02"}


@pytest.fixture
def copy_root(root, tmp_path):
    return copy_tree(root, tmp_path / "root")  # links followed: the copy\'s files can be edited


def outlines_csv(root, subset="d01"):
    return next(root.rglob(f"bcdr_{subset}_outlines.csv"))


def test_bad_row_quarantines_only_its_image(copy_root, plan):
    path = outlines_csv(copy_root)
    lines = path.read_text().splitlines()
    cells = lines[5].split(", ")  # LCC of patient 3
    cells[7] += " 200"
    lines[5] = ", ".join(cells)
    path.write_text("\n".join(lines) + "\n")
    cases = by_id(enumerate_cases(copy_root, plan))
    assert len(cases) == 7
    problem = cases["BCDR-D01_img_3_4_1_LCC"].problem
    assert "line 6: lw_x_points has" in problem.reason and problem.path == str(path)
    assert cases["BCDR-D01_img_3_4_1_LO"].problem is None
    convert.load_image(cases["BCDR-D01_img_3_4_1_LO"], plan, bcdr)
    bcdr.load_mask(cases["BCDR-D01_img_3_4_1_LO"], plan)


def test_outline_outside_image_is_clipped_flagged_and_excluded(copy_root, plan):
    path = outlines_csv(copy_root, "d02")
    lines = path.read_text().splitlines()
    cells = lines[1].split(", ")
    cells[7], cells[8] = "400 430 430 400", "20 20 60 60"  # reaches past x = 415
    lines[1] = ", ".join(cells)
    path.write_text("\n".join(lines) + "\n")
    case = by_id(enumerate_cases(copy_root, plan))["BCDR-D02_img_5_6_1_LCC"]
    convert.load_image(case, plan, bcdr)
    drawn = bcdr.load_mask(case, plan)
    mask, actions, meta = drawn.array, drawn.actions, {**case.meta, **drawn.facts}
    assert mask[40, 410] == 1 and meta["outline_clipped"] == 1 and case.meta["outline_clipped"] == 0  # returned, not set
    assert actions == ["lesion_4:outline_clipped_to_image"]
    assert curation.exclusions(mask, meta, curation.measures(mask), plan["select"]) == ["outline_clipped"]


def test_every_subset_found_including_nested_f03(tmp_path, plan):
    folder = tmp_path / "BCDR-F03_dataset" / "BCDR-F03"
    image = folder / "patient_7" / "study_2" / "img_7_2_1_RO.tif"
    image.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((60, 50), np.uint8)).save(image)
    (folder / "bcdr_f03_outlines.csv").write_text(HEADER + "\n" + line(view=3, name="patient_7/study_2/img_7_2_1_RO.tif", pid="7") + "\n")
    (case,) = bcdr.cases(tmp_path, plan)
    assert case.subset == "BCDR-F03" and case.image == image and case.case_id == "BCDR-F03_img_7_2_1_RO"
    convert.load_image(case, plan, bcdr)
    mask = bcdr.load_mask(case, plan).array
    assert mask[15, 15] == 1 and mask.sum() == 100


def test_no_outlines_csv_is_a_dataset_error(tmp_path, plan):
    with pytest.raises(MedcurateError, match="no bcdr_<subset>_outlines.csv"):
        bcdr.cases(tmp_path, plan)


def test_missing_image_is_quarantined(copy_root, plan, tmp_path):
    next(copy_root.rglob("img_1_1_1_RO.tif")).unlink()
    convert_shard(copy_root, plan, 0, 1, tmp_path / "out")
    quarantine = list(csv.DictReader((tmp_path / "out" / "quarantine.csv").open()))
    assert [(q["case_id"], q["reason"]) for q in quarantine] == [("BCDR-D01_img_1_1_1_RO", "file is missing")]
