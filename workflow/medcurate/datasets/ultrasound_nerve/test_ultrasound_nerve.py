"""Kaggle ultrasound nerve segmentation: train_masks.csv run-length masks cross-checked against the
_mask.tif files, subjects as patients, the sample's layout; and the generic near-duplicate check
(neardup.py) on synthetic shard folders and on the converted sample.

No real file of this dataset is in ../shared/realdata, so there is no real-format test."""

import csv
import io
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import neardup, splits
from medcurate.formats import rle
from medcurate.convert import PART, convert_shard, enumerate_cases
from medcurate.datasets import ultrasound_nerve as nerve
from medcurate.datasets.ultrasound_nerve import sample
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import by_id, copy_tree, plan_of, prepared, sample_plan, with_exclusions

ID = "ultrasound_nerve"


@pytest.fixture(scope="module")
def mirror_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("nerve-mirror")
    sample.ultrasound_nerve(out)
    return out


@pytest.fixture(scope="module")
def root(mirror_dir, tmp_path_factory):
    return prepared(mirror_dir, sample_plan(ID), tmp_path_factory.mktemp("nerve") / "root")


@pytest.fixture
def plan():
    return plan_of(ID)


@pytest.fixture
def copy_root(root, tmp_path):
    return copy_tree(root, tmp_path / "root")  # links followed: the copy\'s files can be edited


def table(root):
    return next(root.rglob(nerve.TABLE))


def edit_rows(root, change):
    """Rewrite train_masks.csv with change(lines) applied to its lines."""
    path = table(root)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")
    return path


def loaded(case, plan):
    case.shape = (420, 580)  # as convert sets it from the decoded image
    return nerve.load_mask(case, plan)


# ------------------------------------------------------------------ sample layout


def test_sample_layout(mirror_dir):
    folder = mirror_dir / ID / "manual"
    assert sorted(p.name for p in folder.iterdir()) == ["train.zip", "train_masks.csv"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 250_000
    with zipfile.ZipFile(folder / "train.zip") as zf:
        names = zf.namelist()
        image = Image.open(io.BytesIO(zf.read("train/5_1.tif")))
        mask = Image.open(io.BytesIO(zf.read("train/5_1_mask.tif")))
        assert image.format == "TIFF" and image.mode == "L" and image.size == (580, 420)
        assert mask.mode == "L" and mask.size == (580, 420) and set(np.unique(mask)) == {0, 255}
    stems = [f"{s}_{i}" for s, i in sorted(sample.FRAMES)]
    assert sorted(names) == sorted([f"train/{s}.tif" for s in stems] + [f"train/{s}_mask.tif" for s in stems])
    lines = (folder / "train_masks.csv").read_text().splitlines()
    assert lines[0] == "subject,img,pixels" and len(lines) == 13
    assert {line.split(",")[0] for line in lines[1:]} == {"1", "5", "8", "10"}
    assert sum(line.endswith(",") for line in lines[1:]) == 4  # empty masks: an empty cell


def test_sample_is_deterministic(mirror_dir, tmp_path):
    sample.ultrasound_nerve(tmp_path)
    for name in ("train.zip", "train_masks.csv"):
        assert (tmp_path / ID / "manual" / name).read_bytes() == (mirror_dir / ID / "manual" / name).read_bytes()


def test_every_csv_row_round_trips_and_equals_its_mask_tif(mirror_dir):
    """The competition's RLE convention, proved on the sample: encode(decode(row)) == row, and the
    decoded mask is the _mask.tif (0/255 -> 0/1)."""
    text = (mirror_dir / ID / "manual" / "train_masks.csv").read_text()
    rows = nerve.parse_masks(text, "train_masks.csv")
    assert len(rows) == 12 and all(isinstance(r, nerve.Row) for r in rows)
    with zipfile.ZipFile(mirror_dir / ID / "manual" / "train.zip") as zf:
        for row in rows:
            decoded = rle.decode(row.pixels, (420, 580), "train_masks.csv")
            assert rle.encode(decoded) == row.pixels
            tif = np.asarray(Image.open(io.BytesIO(zf.read(f"train/{row.subject}_{row.img}_mask.tif"))))
            assert (decoded == tif // 255).all()


# ------------------------------------------------------------------ parser


def test_parse_rows_and_empty_pixels():
    rows = nerve.parse_masks("subject,img,pixels\n1,1,2 3\n1,2,\n\n47,120,7 1\n", "t.csv")
    assert rows == [nerve.Row(2, 1, 1, "2 3"), nerve.Row(3, 1, 2, ""), nerve.Row(5, 47, 120, "7 1")]


def test_bom_and_padded_header_and_cells():
    rows = nerve.parse_masks("\ufeffsubject , img,pixels\r\n 3 , 4 , 5 2 \r\n", "t.csv")
    assert rows == [nerve.Row(2, 3, 4, "5 2")]


@pytest.mark.parametrize("line, reason", [
    ("x,1,", "line 3: subject must be a whole number, got 'x'"),
    ("1,-2,", "line 3: img must be a whole number, got '-2'"),
    ("1,2", "line 3: 2 fields, the header has 3"),
    ("1,2,3 4,5", "line 3: 4 fields, the header has 3"),
])
def test_malformed_row_is_a_case_error_naming_the_line(line, reason):
    rows = nerve.parse_masks(f"subject,img,pixels\n1,1,\n{line}\n", "t.csv")
    assert isinstance(rows[0], nerve.Row)
    assert isinstance(rows[1], CaseError) and rows[1].reason == reason and rows[1].path == "t.csv"


def test_missing_column_and_empty_file_are_dataset_errors():
    with pytest.raises(MedcurateError, match=r"t.csv: missing column\(s\) \['pixels'\]"):
        nerve.parse_masks("subject,img,rle\n1,1,\n", "t.csv")
    with pytest.raises(MedcurateError, match="t.csv: empty file"):
        nerve.parse_masks("", "t.csv")
    with pytest.raises(MedcurateError, match=r"missing column\(s\) \['subject', 'img', 'pixels'\]; found \['subject;img;pixels'\]"):
        nerve.parse_masks("subject;img;pixels\n", "t.csv")  # another delimiter


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["1", "47", ",", "\n", " ", "x", "2 3", '"', "\r", "-", "\ufeff", "\x00", "1,1,"]),
                max_size=50).map("".join))
def test_parser_fuzz_raises_only_medcurate_errors(body):
    try:
        rows = nerve.parse_masks("subject,img,pixels\n" + body, "fuzz.csv")
    except MedcurateError as exc:
        assert exc.path == "fuzz.csv"
        return
    assert all(isinstance(r, (nerve.Row, CaseError)) for r in rows)


# ------------------------------------------------------------------ cases and masks


def test_one_case_per_train_image_patient_is_subject(root, plan):
    cases = by_id(enumerate_cases(root, plan))
    assert sorted(cases) == sorted(f"{s}_{i}" for s, i in sample.FRAMES)
    assert {c.patient_id for c in cases.values()} == {"1", "5", "8", "10"}
    case = cases["10_2"]
    assert case.patient_id == "10" and case.split is None and case.problem is None
    assert case.mask == table(root) and case.meta == {"rle_line": 12, "mask_tif": "train/train/10_2_mask.tif"}
    assert case.image.name == "10_2.tif" and case.mask_tif.name == "10_2_mask.tif"


def test_mask_values_at_known_pixels(root, plan):
    cases = by_id(enumerate_cases(root, plan))
    mask, actions = loaded(cases["5_1"], plan)
    assert mask.dtype == np.uint8 and mask.shape == (420, 580) and actions == []
    # 5_1's first run starts at pixel 67793: column 161, row 172 (column-major, 420 rows)
    assert table(root).read_text().splitlines()[4].startswith("5,1,67793 10 ")
    assert mask[172, 161] == 1 and mask[171, 161] == 0 and mask[172, 160] == 0
    assert mask[180, 210] == 1 and mask[0, 0] == 0 and int(mask.sum()) == 4405
    empty, _ = loaded(cases["5_2"], plan)
    assert not empty.any()


def test_convert_keeps_empty_masks_as_negatives(root, plan, tmp_path):
    convert_shard(root, plan, 0, 1, tmp_path)
    part = with_exclusions(tmp_path, plan)
    assert len(part) == 12 and not list(csv.DictReader((tmp_path / "quarantine.csv").open()))
    assert [r["mask_labels"] for r in part.values()].count("") == 4
    assert all(r["exclusion"] == "" for r in part.values())  # empty_mask: keep
    mask = np.asarray(Image.open(tmp_path / "raw_masks" / "1_1.png"))
    assert set(np.unique(mask)) == {0, 1} and mask[200, 250] == 1
    assert part["1_1"]["mask_source"] == "train_masks.csv" and part["1_1"]["rle_line"] == "2"
    image = np.asarray(Image.open(tmp_path / "images" / "1_1.png"))
    assert image.shape == (420, 580) and image.dtype == np.uint8 and image[200, 250] == 48  # the dark nerve


def test_rle_and_mask_tif_disagreeing_quarantines_naming_both(copy_root, plan, tmp_path):
    def shift(lines):
        subject, img, pixels = lines[1].split(",")  # 1_1 (line 2): every run one pixel further down
        nums = pixels.split()
        nums[0::2] = [str(int(v) + 1) for v in nums[0::2]]
        lines[1] = f"{subject},{img},{' '.join(nums)}"
        return lines

    path = edit_rows(copy_root, shift)
    convert_shard(copy_root, plan, 0, 1, tmp_path)
    (q,) = csv.DictReader((tmp_path / "quarantine.csv").open())
    assert q["case_id"] == "1_1" and q["source"] == "train_masks.csv"
    # one pixel down: each of the 107 column runs gains a pixel at its foot and loses its head
    assert q["reason"] == ("line 2: the run-length mask (5179 px) and train/train/1_1_mask.tif (5179 px) disagree on 214 pixels; "
                           "cannot tell which copy is right")
    with pytest.raises(CaseError) as err:
        loaded(by_id(nerve.cases(copy_root, plan))["1_1"], plan)
    assert err.value.path == str(path)


def test_malformed_rle_is_quarantined_with_its_line(copy_root, plan):
    path = edit_rows(copy_root, lambda lines: [*lines[:2], "1,2,5 3 4 1", *lines[3:]])
    with pytest.raises(CaseError, match=r"line 3: run 2 \(start 4\) comes before run 1") as err:
        loaded(by_id(nerve.cases(copy_root, plan))["1_2"], plan)
    assert err.value.path == str(path)


def test_missing_mask_tif_cannot_be_cross_checked(copy_root, plan):
    next(copy_root.rglob("8_2_mask.tif")).unlink()
    case = by_id(nerve.cases(copy_root, plan))["8_2"]
    assert case.problem.path == str(case.image) and case.problem.reason == "no 8_2_mask.tif beside it to cross-check line 10 of train_masks.csv"


def test_unmatched_rows_images_and_stray_names_are_quarantined(copy_root, plan):
    path = edit_rows(copy_root, lambda lines: [line for line in lines if not line.startswith("8,1,")] + ["9,4,", "oops,1,"])
    train = next(copy_root.rglob("1_1.tif")).parent
    shutil.copy(train / "1_1.tif", train / "1_1 (copy).tif")
    cases = by_id(nerve.cases(copy_root, plan))
    assert cases["8_1"].problem.reason == "no row for subject 8 img 1 in train_masks.csv"
    assert cases["9_4"].problem.path == str(path) and cases["9_4"].problem.reason == "no train/9_4.tif for line 13 of train_masks.csv"
    broken = cases["train_masks_line_14"].problem
    assert broken.path == str(path) and broken.reason == "line 14: subject must be a whole number, got 'oops'"
    stray = cases["stray_1_1_copy"].problem
    assert stray.path == str(train / "1_1 (copy).tif") and "not named <subject>_<img>.tif" in stray.reason
    assert sum(c.problem is None for c in cases.values()) == 11


def test_mask_tif_without_image_is_quarantined(copy_root, plan):
    next(copy_root.rglob("10_1.tif")).unlink()
    case = by_id(nerve.cases(copy_root, plan))["10_1"]
    assert case.problem.reason == "no train/10_1.tif for line 11 of train_masks.csv"


def test_repeated_rows(copy_root, plan):
    path = edit_rows(copy_root, lambda lines: [*lines, lines[1], "5,4,1 1"])
    cases = by_id(nerve.cases(copy_root, plan))
    assert cases["1_1"].problem is None  # repeated unchanged: harmless
    assert cases["5_4"].problem.path == str(path)
    assert cases["5_4"].problem.reason == "lines 8 and 15 give subject 5 img 4 different masks"


def test_test_images_are_not_converted(copy_root, plan):
    test = copy_root / "test" / "test"
    test.mkdir(parents=True)
    shutil.copy(next(copy_root.rglob("1_1.tif")), test / "1.tif")
    assert len(nerve.cases(copy_root, plan)) == 12


def test_release_placed_twice_is_a_dataset_error(copy_root, plan):
    shutil.copytree(next(copy_root.rglob("1_1.tif")).parent, copy_root / "again" / "train")
    with pytest.raises(MedcurateError, match=r"10_1.tif found twice .*placed twice"):
        nerve.cases(copy_root, plan)


def test_no_masks_table_is_a_dataset_error(copy_root, plan):
    table(copy_root).unlink()
    with pytest.raises(MedcurateError, match="expected file 'train_masks.csv' not found"):
        nerve.cases(copy_root, plan)


# ------------------------------------------------------------------ near duplicates (neardup.py)


def smooth(seed: int, size=(64, 48)) -> np.ndarray:
    coarse = np.random.default_rng(seed).integers(0, 255, size=(4, 5)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BILINEAR)).astype(np.uint8)


def noised(img: np.ndarray, seed: int) -> np.ndarray:
    return (img + np.random.default_rng(seed).normal(0, 3, img.shape)).clip(0, 255).astype(np.uint8)


def blob(x0: int, size=(64, 48)) -> np.ndarray:
    mask = np.zeros(size[::-1], np.uint8)
    mask[10:30, x0:x0 + 20] = 1
    return mask


EMPTY = np.zeros((48, 64), np.uint8)


def shards(tmp_path, cases: dict, n_shards=2, segmentation=True):
    """Shard folders holding images/<id>.png (and masks/) dealt round-robin, and the manifest."""
    dirs = [tmp_path / f"shard-{i}" for i in range(n_shards)]
    rows = []
    for k, (case_id, (patient, image, mask)) in enumerate(sorted(cases.items())):
        d = dirs[k % n_shards]
        for sub, arr in (("images", image), ("masks", mask if segmentation else None)):
            if arr is not None:
                (d / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(d / sub / f"{case_id}.png")
        rows.append({"case_id": case_id, "patient_id": patient, "image": f"images/{case_id}.png",
                     "mask": f"masks/{case_id}.png" if segmentation else "", "exclusion": ""})
    return pd.DataFrame(rows, dtype=str), dirs


OPTIONS = {"min_correlation": 0.98, "max_dice": 0.5}


def test_noised_twins_with_contradictory_masks_are_flagged(tmp_path):
    a = smooth(1)
    df, dirs = shards(tmp_path, {"p1_a": ("p1", a, blob(10)), "p1_b": ("p1", noised(a, 2), EMPTY),
                                 "p1_c": ("p1", smooth(3), blob(30))})
    df.loc[df.case_id == "p1_a", "exclusion"] = "area_fraction"
    pairs = neardup.flag(df, dirs, OPTIONS)
    assert list(pairs.columns) == ["case_a", "case_b", "patient_id", "correlation", "dice", "conflict"]
    assert len(pairs) == 1 and pairs.loc[0, ["case_a", "case_b", "patient_id", "dice", "conflict"]].tolist() == ["p1_a", "p1_b", "p1", 0.0, 1]
    assert 0.98 <= pairs.loc[0, "correlation"] < 1 and pairs.loc[0, "correlation"] == round(pairs.loc[0, "correlation"], 6)
    assert df.set_index("case_id")["exclusion"].to_dict() == {
        "p1_a": "area_fraction;near_duplicate_conflict", "p1_b": "near_duplicate_conflict", "p1_c": ""}
    neardup.flag(df, dirs, OPTIONS)  # run twice: the reason is not repeated
    assert df.loc[df.case_id == "p1_a", "exclusion"].item() == "area_fraction;near_duplicate_conflict"


def test_agreeing_twins_are_paired_not_excluded(tmp_path):
    a = smooth(4)
    df, dirs = shards(tmp_path, {"a": ("p", a, blob(10)), "b": ("p", noised(a, 5), blob(12)),
                                 "c": ("p", noised(a, 6), EMPTY), "d": ("p", noised(a, 7), EMPTY)})
    pairs = neardup.flag(df, dirs, OPTIONS)
    got = {(r.case_a, r.case_b): (r.dice, r.conflict) for r in pairs.itertuples()}
    assert got == {("a", "b"): (0.9, 0), ("a", "c"): (0.0, 1), ("a", "d"): (0.0, 1), ("b", "c"): (0.0, 1),
                   ("b", "d"): (0.0, 1), ("c", "d"): (1.0, 0)}  # two empty masks agree
    assert (df.exclusion == "near_duplicate_conflict").all()


def test_different_images_and_other_patients_are_never_paired(tmp_path):
    a = smooth(8)
    df, dirs = shards(tmp_path, {"x1": ("x", a, blob(10)), "y1": ("y", a.copy(), EMPTY), "y2": ("y", smooth(9), EMPTY),
                                 "z1": ("z", noised(a, 1), blob(40))})
    assert neardup.flag(df, dirs, OPTIONS).empty
    assert (df.exclusion == "").all()


def test_thresholds_come_from_the_options(tmp_path):
    a = smooth(10)
    df, dirs = shards(tmp_path, {"a": ("p", a, blob(10)), "b": ("p", noised(a, 11), blob(15))})  # dice 0.75
    assert neardup.flag(df.copy(), dirs, {"min_correlation": 0.98, "max_dice": 0.8}).conflict.tolist() == [1]
    assert neardup.flag(df.copy(), dirs, {"min_correlation": 0.98, "max_dice": 0.5}).conflict.tolist() == [0]
    assert neardup.flag(df.copy(), dirs, {"min_correlation": 0.99999, "max_dice": 0.5}).empty
    assert neardup.flag(df.copy(), dirs, None).conflict.tolist() == [0]  # the defaults


def test_resolved_exact_copies_are_left_to_the_exact_check(tmp_path):
    a = smooth(12)
    df, dirs = shards(tmp_path, {"a": ("p", a, blob(10)), "b": ("p", a.copy(), EMPTY), "c": ("p", a.copy(), blob(10))})
    df["pixel_sha256"] = "same"
    df.loc[df.case_id == "c", "exclusion"] = "duplicate_of:a"
    assert neardup.flag(df, dirs, OPTIONS).empty


def test_classification_pairs_are_reported_not_judged(tmp_path):
    a = smooth(13)
    df, dirs = shards(tmp_path, {"a": ("p", a, None), "b": ("p", noised(a, 14), None)}, segmentation=False)
    pairs = neardup.flag(df, dirs, OPTIONS)
    assert pairs[["dice", "conflict"]].values.tolist() == [["", 0]] and (df.exclusion == "").all()


def test_blocks_rgb_and_16bit_give_the_same_pairs(tmp_path, monkeypatch):
    base = [smooth(s) for s in range(20, 26)]
    cases = {f"c{i:02d}": ("p", img, blob(10)) for i, img in enumerate(base)}
    cases.update({f"n{i:02d}": ("p", noised(img, i), EMPTY) for i, img in enumerate(base)})
    cases["rgb"] = ("p", np.stack([noised(base[0], 99)] * 3, axis=2), EMPTY)
    cases["wide"] = ("p", base[1].astype(np.uint16) * 257, EMPTY)
    df, dirs = shards(tmp_path, cases, n_shards=3)
    whole = neardup.flag(df.copy(), dirs, OPTIONS)
    monkeypatch.setattr(neardup, "BLOCK", 5)
    assert neardup.flag(df.copy(), dirs, OPTIONS).equals(whole)
    assert {("c00", "n00"), ("c00", "rgb"), ("c01", "wide")} <= set(zip(whole.case_a, whole.case_b))
    assert len(whole) == 6 + 2 + 2  # each twin pair; rgb with c00 and n00; wide with c01 and n01
    assert whole.equals(whole.sort_values(["patient_id", "case_a", "case_b"], ignore_index=True))


def test_flat_images_correlate_with_nothing(tmp_path):
    flat = np.full((48, 64), 90, np.uint8)
    df, dirs = shards(tmp_path, {"a": ("p", flat, blob(10)), "b": ("p", flat.copy(), EMPTY)})
    assert neardup.flag(df, dirs, OPTIONS).empty


def test_missing_shard_file_names_it(tmp_path):
    df, dirs = shards(tmp_path, {"a": ("p", smooth(1), EMPTY), "b": ("p", smooth(2), EMPTY)})
    next(tmp_path.rglob("b.png")).unlink()
    with pytest.raises(MedcurateError, match="images/b.png: not found in any convert shard"):
        neardup.flag(df, dirs, OPTIONS)


def test_dice_of_label_maps():
    a = np.array([[1, 1, 0], [2, 0, 0]], np.uint8)
    assert neardup.dice(a, a) == 1.0 and neardup.dice(EMPTY, EMPTY) == 1.0 and neardup.dice(a, np.zeros_like(a)) == 0.0
    assert neardup.dice(a, np.array([[1, 0, 0], [1, 0, 0]], np.uint8)) == 2 * 1 / 5  # the same place, another label
    assert neardup.dice(np.ones((2, 2), np.uint8), np.ones((4, 4), np.uint8)) == 1.0  # compared at the first's size


def test_near_duplicates_of_the_nerve_sample(root, plan, tmp_path):
    dirs = [tmp_path / "shard-0", tmp_path / "shard-1"]
    for i, d in enumerate(dirs):
        convert_shard(root, plan, i, 2, d)
    df = pd.concat([pd.read_csv(d / PART, dtype=str, keep_default_na=False) for d in dirs]).sort_values("case_id", ignore_index=True)
    df["exclusion"] = ""
    splits.resolve_duplicates(df, [])
    pairs = neardup.flag(df, dirs, plan["split"]["near_duplicates"])
    assert pairs[["case_a", "case_b", "patient_id", "dice", "conflict"]].values.tolist() == [
        ["5_1", "5_2", "5", 0.0, 1],
        ["5_3", "5_4", "5", pytest.approx(0.946144, abs=1e-6), 0],
    ]  # 10_2/10_3 are byte-identical: judged by the exact check (conflicting_duplicate)
    excl = df.set_index("case_id")["exclusion"]
    assert excl["5_1"] == excl["5_2"] == "near_duplicate_conflict"
    assert excl["10_2"] == "conflicting_duplicate:10_3" and excl["5_3"] == excl["5_4"] == excl["1_1"] == ""
