"""EAD2019 and the detection task kind: the one box conversion (organisers' worked example, the
pixel-edge convention, clipping, refusals), the box-file parser (errors name file and line,
fuzzed), the 5-channel semantic masks, and the sample release through every step (boxes.csv,
COCO per split, masks, curation, the QC montage drawing the boxes)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medcurate.testing import build, prepared, sample_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import boxes, samples
from medcurate.boxes import Annotation
from medcurate.datasets import ead2019
from medcurate.errors import CaseError
from PIL import Image

SRC = Path("00003.txt")


def ann(coords, form="cxcywh_normalised", label="bubbles"):
    return Annotation(label, tuple(coords), form, SRC, 1)


# ------------------------------------------------------------------ the one conversion


@pytest.mark.parametrize("line, gt", [
    # sharib-vision/EAD2019: annotationImages_and_labels/00003.txt (512x512) against
    # mAP-IoU_testdata/ground-truth/00003.txt ('bubbles x1 y1 x2 y2' in pixels)
    ((0.111328125, 0.1650390625, 0.06640625, 0.056640625), (40, 70, 74, 99)),
    ((0.1416015625, 0.220703125, 0.056640625, 0.03125), (58, 105, 87, 121)),
    ((0.5068359375, 0.1298828125, 0.048828125, 0.052734375), (247, 53, 272, 80)),
])
def test_normalised_boxes_give_the_organisers_pixel_ground_truth(line, gt):
    box, clipped = boxes.to_pixels(ann(line), (512, 512, 3))
    assert (box.x0, box.y0, box.x1, box.y1) == gt and not clipped


def test_width_and_height_scale_x_and_y_separately():
    # a 100-wide, 50-high frame: x by 100, y by 50 (a swap would give other numbers)
    box, _ = boxes.to_pixels(ann((0.5, 0.5, 0.2, 0.4)), (50, 100, 3))
    assert (box.x0, box.y0, box.x1, box.y1) == (40, 15, 60, 35)


def test_fractional_edges_widen_to_the_enclosing_pixels_and_rounding_residue_does_not():
    box, _ = boxes.to_pixels(ann((10.2, 3.7, 20.1, 9.0), "xyxy_pixels"), (64, 64))
    assert (box.x0, box.y0, box.x1, box.y1) == (10, 3, 21, 9)
    box, _ = boxes.to_pixels(ann((10.0000000001, 3, 19.9999999999, 9), "xyxy_pixels"), (64, 64))
    assert (box.x0, box.x1) == (10, 20)


def test_a_box_past_the_border_is_clipped_and_counted():
    rows, columns = boxes.convert([ann((0.95, 0.5, 0.2, 0.2))], (100, 100), ["bubbles"], "c")
    assert rows == [{"case_id": "c", "class": "bubbles", "x0": 85, "y0": 40, "x1": 100, "y1": 60}]
    assert {k: columns[k] for k in ("boxes", "box_classes", "boxes_clipped")} == {"boxes": 1, "box_classes": "bubbles", "boxes_clipped": 1}


@pytest.mark.parametrize("coords, form, reason", [
    ((0.5, 0.5, 0.0, 0.2), "cxcywh_normalised", "no area"),
    ((0.5, 0.5, -0.1, 0.2), "cxcywh_normalised", "no area"),
    ((float("nan"), 0.5, 0.1, 0.1), "cxcywh_normalised", "not finite"),
    ((120, 10, 130, 20), "xyxy_pixels", "outside"),
    ((10, 10, 1e9, 20), "xyxy_pixels", "absurdly far"),
])
def test_boxes_that_cannot_be_one_are_refused_naming_file_and_line(coords, form, reason):
    with pytest.raises(CaseError) as err:
        boxes.to_pixels(ann(coords, form), (100, 100))
    assert err.value.path == str(SRC) and "line 1" in err.value.reason and reason in err.value.reason


def test_unknown_class_is_refused():
    with pytest.raises(CaseError, match="not one of the catalogue"):
        boxes.convert([ann((0.5, 0.5, 0.1, 0.1), label="polyp")], (10, 10), ["bubbles"], "c")


def test_coco_bbox_is_x_y_width_height_of_the_pixel_edges():
    manifest = pd.DataFrame([{"case_id": "b", "patient_id": "p", "image": "images/b.png", "width": "64", "height": "48"},
                             {"case_id": "a", "patient_id": "p", "image": "images/a.png", "width": "64", "height": "48"}])
    table = pd.DataFrame([{"case_id": "b", "class": "blur", "x0": "0", "y0": "0", "x1": "64", "y1": "48"},
                          {"case_id": "a", "class": "bubbles", "x0": "3", "y0": "4", "x1": "10", "y1": "6"}])
    out = boxes.coco(manifest, table, {"name": "n", "license": "l", "labels": {"boxes": ["bubbles", "blur"]}})
    assert [i["file_name"] for i in out["images"]] == ["images/a.png", "images/b.png"]
    assert out["annotations"][0] == {"id": 1, "image_id": 1, "category_id": 1, "bbox": [3, 4, 7, 2], "area": 14, "iscrowd": 0}
    assert out["annotations"][1]["bbox"] == [0, 0, 64, 48] and out["annotations"][1]["category_id"] == 2


# ------------------------------------------------------------------ the box-file parser


def test_parse_box_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("5 0.5 0.5 0.25 0.125\n\n0 0.1 0.2 0.05 0.05\n")
    parsed = ead2019.parse_boxes(path)
    assert [(a.label, a.coords, a.line, a.form) for a in parsed] == [
        ("bubbles", (0.5, 0.5, 0.25, 0.125), 1, "cxcywh_normalised"),
        ("specularity", (0.1, 0.2, 0.05, 0.05), 3, "cxcywh_normalised")]
    path.write_text("")
    assert ead2019.parse_boxes(path) == []


@pytest.mark.parametrize("text, reason", [
    ("7 0.5 0.5 0.1 0.1\n", "class id '7'"),
    ("bubbles 0.5 0.5 0.1 0.1\n", "class id 'bubbles'"),
    ("1 0.5 0.5 0.1\n", "expected 'class_id"),
    ("1 0.5 0.5 0.1 x\n", "not numbers"),
    ("1 40 70 74 99\n", "not fractions"),  # pixel corners where fractions belong
    ("1 nan 0.5 0.1 0.1\n", "not fractions"),
])
def test_malformed_lines_name_file_and_line(tmp_path, text, reason):
    path = tmp_path / "f.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n" + text)
    with pytest.raises(CaseError) as err:
        ead2019.parse_boxes(path)
    assert err.value.path == str(path) and err.value.reason.startswith("line 2:") and reason in err.value.reason


def test_undecodable_box_file_is_named(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"0 0.5 0.5 0.1 0.1\n\xff\xfe\n")
    with pytest.raises(CaseError) as err:
        ead2019.parse_boxes(path)
    assert err.value.path == str(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="0123456789 .-+eEnaif\n\t", max_size=200),
       shape=st.tuples(st.integers(1, 2000), st.integers(1, 2000)))
def test_fuzz_box_parser_and_conversion_raise_only_case_errors(tmp_path, text, shape):
    path = tmp_path / "f.txt"
    path.write_text(text)
    try:
        rows, columns = boxes.convert(ead2019.parse_boxes(path), shape, list(ead2019.CLASSES), "c")
    except CaseError as exc:
        assert exc.path == str(path) and exc.reason.startswith("line ")
    else:
        for r in rows:  # every box that comes out is a valid, non-empty box inside the image
            assert 0 <= r["x0"] < r["x1"] <= shape[1] and 0 <= r["y0"] < r["y1"] <= shape[0]
        assert columns["boxes"] == len(rows)


# ------------------------------------------------------------------ semantic masks


def test_semantic_mask_channels_in_the_organisers_order(tmp_path):
    import tifffile

    stack = np.zeros((5, 6, 8), np.uint8)
    for i in range(5):
        stack[i, i, i] = 255
    tifffile.imwrite(tmp_path / "x_mask.tif", stack, photometric="minisblack", planarconfig="separate")
    case = ead2019.Case("x", "x", None, extra_masks={n: tmp_path / "x_mask.tif" for n in ead2019.MASK_CHANNELS})
    for i, name in enumerate(["instrument", "specularity", "artefact", "bubbles", "saturation"]):
        mask = ead2019.load_extra_mask(case, {}, name)
        assert mask.dtype == np.uint8 and mask.sum() == 1 and mask[i, i] == 1
    tifffile.imwrite(tmp_path / "x_mask.tif", stack[:3], photometric="minisblack", planarconfig="separate")
    with pytest.raises(CaseError, match=r"shape \(3, 6, 8\)"):
        ead2019.load_extra_mask(case, {}, "bubbles")
    (tmp_path / "x_mask.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(CaseError) as err:
        ead2019.load_extra_mask(case, {}, "bubbles")
    assert err.value.path == str(tmp_path / "x_mask.tif")


def test_sequence_names_group_frames():
    assert ead2019.sequence("1772_A_M62_00309") == ead2019.sequence("1772_A_M62_00310") == "1772_A_M62"
    assert ead2019.sequence("DB58_colitis_full_01908") == "DB58_colitis_full"
    assert ead2019.sequence("00186") == "00186" and ead2019.sequence("00110_batch2") == "00110_batch2"


# ------------------------------------------------------------------ the sample release, every step


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    mirror = tmp_path_factory.mktemp("mirror")
    samples.build(mirror, ["ead2019"])
    plan = sample_plan("ead2019")
    tmp = tmp_path_factory.mktemp("ead")
    root = prepared(mirror, plan, tmp / "root")
    counts = build(root, plan, tmp / "work", tmp / "out", shards=2)
    return tmp / "out", counts, plan


def test_sample_release_through_every_step(published):
    out, counts, plan = published
    df = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert len(df) == 8 and counts["quarantined"] == 0 and "mask_labels" not in df.columns
    table = pd.read_csv(out / "boxes.csv", dtype=str)
    assert list(table.columns) == boxes.FIELDS
    # 1772_A_M62_00310's specularity (cx 80, w 10 in an 84-px-wide frame) is clipped at the border
    clipped = df.set_index("case_id").loc["1772_A_M62_00310"]
    assert clipped["boxes_clipped"] == "1"
    assert table[(table.case_id == "1772_A_M62_00310") & (table["class"] == "specularity")][["x0", "x1"]].values.tolist() == [["75", "84"]]
    # boxes inside their images; per case counts agree with the manifest
    merged = table.merge(df[["case_id", "width", "height"]], on="case_id")
    assert (merged.x1.astype(int) <= merged.width.astype(int)).all() and (merged.x0.astype(int) >= 0).all()
    assert table.groupby("case_id").size().to_dict() == {r.case_id: int(r.boxes) for r in df.itertuples() if r.boxes != "0"}
    # the frame with an empty box file is kept (no artefact is an answer)
    assert df.set_index("case_id").loc["010412", "boxes"] == "0"
    assert clipped["box_source"] == "trainingData_detection/trainingData_detection/1772_A_M62_00310.txt"
    # frames of one sequence share the patient key and the split
    seq = df[df.case_id.str.startswith("1772_A_M62")]
    assert set(seq.patient_id) == {"1772_A_M62"} and seq.split.nunique() == 1
    info = json.loads((out / "dataset.json").read_text())
    assert info["task"] == "detection" and sum(info["counts"]["boxes_per_class"].values()) == len(table)
    assert info["release_facts"] == {"semantic_masks": 2, "semantic_masks_without_detection_frame": 0}


def test_coco_files_per_split_hold_the_curated_cases(published):
    out, _, plan = published
    df = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    table = pd.read_csv(out / "boxes.csv", dtype=str)
    seen = []
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        assert [c["name"] for c in coco["categories"]] == plan["labels"]["boxes"]
        ids = [i["case_id"] for i in coco["images"]]
        assert ids == sorted(df[(df.split == split) & (df.curated == "1")].case_id)
        seen += ids
        for a in coco["annotations"]:
            image = coco["images"][a["image_id"] - 1]
            x, y, w, h = a["bbox"]
            row = table[(table.case_id == image["case_id"]) & (table["class"] == coco["categories"][a["category_id"] - 1]["name"])]
            assert [str(x), str(y), str(x + w), str(y + h)] in row[["x0", "y0", "x1", "y1"]].values.tolist()
            assert (out / image["file_name"]).is_file()
    assert sorted(seen) == sorted(df[df.curated == "1"].case_id)


def test_semantic_masks_land_as_binary_extra_masks(published):
    out, _, _ = published
    df = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False).set_index("case_id")
    assert df.loc["0000606", "semantic_mask"] == "1" and df.loc["00186", "mask_instrument"] == ""
    inst = np.asarray(Image.open(out / df.loc["0000606", "mask_instrument"]))
    assert set(np.unique(inst)) == {0, 1}
    table = pd.read_csv(out / "boxes.csv", dtype=str)
    box = table[(table.case_id == "0000606") & (table["class"] == "instrument")].iloc[0]
    ys, xs = np.nonzero(inst)  # the sample draws each mask inside its box
    assert xs.min() >= int(box.x0) and xs.max() < int(box.x1) and ys.min() >= int(box.y0) and ys.max() < int(box.y1)
    assert not np.asarray(Image.open(out / df.loc["0000606", "mask_bubbles"])).any()


def test_montage_draws_the_boxes(published):
    out, _, plan = published
    sheet = np.asarray(Image.open(out / "qc" / "montage.png").convert("RGB"))
    frames = sheet[:, 160:]  # right of the first tile, the colour legend
    # the sample's frames are reddish: the box outlines' colours (cyan, orange...) appear only as outlines
    for colour in [(0, 255, 255), (255, 140, 0)]:  # specularity, instrument
        assert (frames == colour).all(axis=-1).sum() > 20
    legend = sheet[:150, :160].astype(int)  # anti-aliased text: near the class colours
    assert (legend == (40, 40, 40)).all(axis=-1).sum() > 0.5 * 120 * 160  # the legend tile, not a frame
    for colour in [(0, 255, 255), (255, 140, 0)]:
        assert (np.abs(legend - colour).max(axis=-1) < 60).sum() > 5


def test_no_boxes_rule_excludes_frames_without_boxes(tmp_path):
    plan = sample_plan("ead2019")
    plan["select"] = {**plan["select"], "empty_mask": "exclude"}
    from medcurate import catalogue, curation

    table = pd.DataFrame([{"case_id": "a", "boxes": "0"}, {"case_id": "b", "boxes": "2"}])
    selected = curation.select(table, catalogue.step_slice(plan, "select"), None)
    assert selected.exclusion.tolist() == ["no_boxes", ""]


def test_a_detection_entry_must_name_its_box_classes():
    import yaml
    from medcurate import catalogue
    from medcurate.errors import CatalogueError

    entry = yaml.safe_load((Path(__file__).parent / "dataset.yaml").read_text())
    del entry["labels"]["boxes"]
    with pytest.raises(CatalogueError, match="'boxes' is a required property"):
        catalogue.validate(entry, "dataset", "ead2019.yaml")


def test_identical_frames_whose_boxes_differ_are_a_conflicting_duplicate(tmp_path):
    from medcurate import splits

    a, _ = boxes.convert([ann((0.5, 0.5, 0.2, 0.2))], (100, 100), ["bubbles"], "a")
    b, cols_b = boxes.convert([ann((0.5, 0.5, 0.4, 0.2))], (100, 100), ["bubbles"], "b")
    _, cols_a = boxes.convert([ann((0.5, 0.5, 0.2, 0.2))], (100, 100), ["bubbles"], "a")
    _, cols_c = boxes.convert([ann((0.5, 0.5, 0.2, 0.2))], (100, 100), ["bubbles"], "c")
    assert cols_a["boxes_sha256"] == cols_c["boxes_sha256"] != cols_b["boxes_sha256"]
    df = pd.DataFrame([{"case_id": k, "patient_id": k, "pixel_sha256": "same", "exclusion": "", "boxes_sha256": c["boxes_sha256"]}
                       for k, c in (("a", cols_a), ("b", cols_b))])
    splits.resolve_duplicates(df, [])
    assert all(r.startswith("conflicting_duplicate") for r in df.exclusion)
    df = pd.DataFrame([{"case_id": k, "patient_id": k, "pixel_sha256": "same", "exclusion": "", "boxes_sha256": c["boxes_sha256"]}
                       for k, c in (("a", cols_a), ("c", cols_c))])
    splits.resolve_duplicates(df, [])
    assert df.exclusion.tolist() == ["", "duplicate_of:a"]
