"""The QC montage: captions name the label columns (multi-label: the positive labels), ids wrap
at token boundaries, the layout never overlaps at any tile size, tiny findings on a full-size
mammogram stay visible, the empty-split warning, determinism."""

from __future__ import annotations

import hashlib
import itertools
import time

import numpy as np
import pandas as pd
import pytest
from medcurate import qc
from medcurate.outputs import is_multilabel
from medcurate.samples import mammogram
from PIL import Image, ImageFont

MASK = {"background": 0, "mass": 1, "calcification": 2}


def seg_plan(**classes) -> dict:
    return {"id": "inbreast", "task": "segmentation", "qc": {"qc_samples": 24},
            "labels": {"classes": classes or {"birads": ["1", "2", "3", "4a", "4b", "4c", "5", "6"]}, "mask": MASK}}


def manifest(rows: list[dict]) -> pd.DataFrame:
    base = {"patient_id": "p", "split": "train", "official_split": "", "curated": 1, "exclusion": "", "mask": ""}
    return pd.DataFrame([{**base, **r} for r in rows])


def specks(shape: tuple[int, int], pixels: int = 1000, size: int = 3, seed: int = 0) -> np.ndarray:
    """``pixels`` calcification pixels as L-shaped specks of ``size`` pixels inside the breast."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    h, w = shape
    for _ in range(pixels // size):
        y, x = int(rng.integers(h // 8, h * 7 // 8)), int(rng.integers(20, w // 2))
        for dy, dx in [(0, 0), (0, 1), (1, 0), (1, 1)][:size]:
            mask[y + dy, x + dx] = 2
    return mask


def test_tiny_calcifications_on_a_full_size_mammogram_stay_visible(tmp_path):
    """3328 x 4084 (INbreast's larger format), 16-bit, only ~1,000 calcification pixels as 3-pixel
    specks: each tile pixel whose block holds a speck is tinted, and no other."""
    w, h = 3328, 4084
    image = mammogram("calc", (w, h))
    mask = specks((h, w))
    Image.fromarray(image).save(tmp_path / "img.png", compress_level=1)
    Image.fromarray(mask).save(tmp_path / "mask.png", compress_level=1)
    Image.fromarray(np.zeros_like(mask)).save(tmp_path / "none.png", compress_level=1)
    row = next(manifest([{"case_id": "c", "image": "img.png", "mask": "mask.png", "mask_labels": "2"}]).itertuples())
    start = time.perf_counter()
    tile = np.asarray(qc._overlay(tmp_path, row, seg_plan()), np.int16)
    seconds = time.perf_counter() - start
    plain = np.asarray(qc._overlay(tmp_path, row._replace(mask="none.png"), seg_plan()), np.int16)
    assert tile.shape[:2] == (120, 98)
    tinted = np.abs(tile - plain).sum(axis=2) > 30
    # the expected tile pixels: the blocks (of qc.pool_labels' uneven grid) holding a speck pixel
    rows, cols = (np.arange(120) * h) // 120, (np.arange(98) * w) // 98
    ys, xs = np.nonzero(mask)
    expected = np.zeros((120, 98), bool)
    expected[np.searchsorted(rows, ys, "right") - 1, np.searchsorted(cols, xs, "right") - 1] = True
    assert expected.sum() > 250  # ~330 specks: most land in a block of their own
    assert (tinted == expected).all()
    # what every-k-th-pixel subsampling kept of them (the old montage): a handful
    step = max(1, min(h // 240, w // 320))
    assert (mask[::step, ::step] == 2).sum() < 0.05 * (mask == 2).sum()
    assert seconds < 10, f"one full-size tile took {seconds:.1f} s"


def test_pool_labels_keeps_each_label_apart_and_never_invents_one():
    mask = np.zeros((50, 70), np.uint8)
    mask[3, 4] = 1
    mask[40:50, 60:70] = 2
    pooled = qc.pool_labels(mask, (7, 5), [1, 2, 3])
    assert set(pooled) == {1, 2}
    assert np.argwhere(pooled[1]).tolist() == [[0, 0]] and np.argwhere(pooled[2]).tolist() == [[4, 6]]


@pytest.mark.parametrize("seed", range(12))
def test_pool_labels_equals_a_plain_block_maximum(seed):
    """Against a per-block loop, on random sizes, sparse labels anywhere (edges included)."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
    th, tw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    mask = np.where(rng.random((h, w)) < rng.choice([0.0, 0.002, 0.05]), rng.integers(1, 4, (h, w)), 0).astype(np.uint8)
    pooled = qc.pool_labels(mask, (tw, th), [1, 2, 3])
    rows, cols = list((np.arange(th) * h) // th) + [h], list((np.arange(tw) * w) // tw) + [w]
    for v in (1, 2, 3):
        naive = np.array([[(mask[rows[i]:rows[i + 1], cols[j]:cols[j + 1]] == v).any() for j in range(tw)] for i in range(th)])
        assert (pooled[v] == naive).all() if v in pooled else not naive.any()


def test_captions_name_the_label_columns_and_mask_labels(tmp_path):
    Image.fromarray(np.full((40, 30), 100, np.uint8)).save(tmp_path / "i.png")
    m = np.zeros((40, 30), np.uint8)
    m[5:9, 5:9], m[20, 20] = 1, 2
    Image.fromarray(m).save(tmp_path / "m.png")
    df = manifest([{"case_id": "a", "image": "i.png", "mask": "m.png", "mask_labels": "1 2", "birads": "4a"}])
    header, rows = qc.compose(df, tmp_path, seg_plan())
    assert rows[0][0][1] == ["a", "birads=4a", "mask: mass, calcification"]


def classification_case(tmp_path, rows: list[dict], plan: dict):
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(tmp_path / "i.png")
    return qc.compose(manifest([{"image": "i.png", **r} for r in rows]), tmp_path, plan)


def test_multi_label_sets_show_their_positive_labels(tmp_path):
    plan = {"id": "chestxray14", "task": "classification", "qc": {"qc_samples": 24},
            "labels": {"classes": {"no_finding": ["0", "1"], "effusion": ["0", "1"], "mass": ["0", "1"], "hernia": ["0", "1"]}}}
    assert is_multilabel(plan)
    header, rows = classification_case(tmp_path, [
        {"case_id": "x1", "no_finding": "0", "effusion": "1", "mass": "1", "hernia": "0"},
        {"case_id": "x2", "no_finding": "1", "effusion": "0", "mass": "0", "hernia": "0"},
    ], plan)
    captions = [caption for row in rows for _, caption in row]
    assert ["x1", "positive: effusion, mass"] in captions and ["x2", "positive: no_finding"] in captions
    assert [caption[0] for caption in captions] == ["x2", "x1"]  # each case once, in label order, in one row
    assert "no curated case: hernia" in header


def test_multi_label_picks_cases_per_label_within_qc_samples(tmp_path):
    labels = [f"f{i}" for i in range(10)]
    plan = {"id": "m", "task": "classification", "qc": {"qc_samples": 20},
            "labels": {"classes": {f: ["0", "1"] for f in labels}}}
    rows = [{"case_id": f"c{i:02d}", **{f: "1" if i % 10 == k else "0" for k, f in enumerate(labels)}} for i in range(60)]
    _, sheet = classification_case(tmp_path, rows, plan)
    ids = [caption[0] for row in sheet for _, caption in row]
    assert len(ids) == 20 == len(set(ids)) and [len(r) for r in sheet] == [6, 6, 6, 2]
    assert ids[:2] == ["c00", "c10"] and ids[2:4] == ["c01", "c11"]  # two per label, label by label


def test_label_lines_wrap_between_label_names_only():
    font = ImageFont.load_default()
    line = "mask: cancer, calcifications, axillary_lymph_nodes, thick_vessels, non-mammary_tissue"
    lines = qc.wrap(line, 120, font, qc.WORD)
    assert " ".join(lines) == line and all(not l.endswith(("_", "-")) for l in lines)
    _, boxes = qc.render_sheet([], [[(Image.new("RGB", (10, 10)), ["a_b", line])]], (40, 30))
    texts_ = [b["text"] for b in boxes if b["kind"] == "text"]
    assert "axillary_lymph_nodes," in " ".join(texts_).split() and texts_[0] == "a_b"


def test_label_columns_of_any_name_are_captioned(tmp_path):
    plan = {"id": "d", "task": "classification", "qc": {"qc_samples": 4},
            "labels": {"classes": {"class": ["a"], "non-mammary": ["x"]}}}
    _, rows = classification_case(tmp_path, [{"case_id": "k", "class": "a", "non-mammary": "x"}], plan)
    assert rows[0][0][1] == ["k", "class=a", "non-mammary=x"]


def test_single_label_classification_names_every_column(tmp_path):
    plan = {"id": "fetal_planes_db", "task": "classification", "qc": {"qc_samples": 24},
            "labels": {"classes": {"plane": ["Fetal brain", "Other"], "brain_plane": ["Trans-thalamic", "Not A Brain"]}}}
    assert not is_multilabel(plan) and not is_multilabel({"labels": {"classes": {"normal": ["0", "1"]}}})
    header, rows = classification_case(tmp_path, [{"case_id": "b", "plane": "Fetal brain", "brain_plane": "Trans-thalamic"}], plan)
    assert rows == [[(rows[0][0][0], ["b", "plane=Fetal brain", "brain_plane=Trans-thalamic"])]]
    assert "no curated case: plane=Other" in header


def test_header_warns_about_a_split_without_curated_case(tmp_path):
    plan = {"id": "d", "task": "classification", "qc": {"qc_samples": 4}, "labels": {"classes": {"c": ["k"]}}}
    header, _ = classification_case(tmp_path, [{"case_id": "1", "c": "k", "split": "val"},
                                               {"case_id": "2", "c": "k", "split": "test"},
                                               {"case_id": "3", "c": "k", "split": "train", "curated": 0, "exclusion": "empty_mask"}], plan)
    assert "curated per split: train 0, val 1, test 1" in header
    assert "WARNING: no curated case in train" in header


ID = "Trans-thalamic__Patient00168_Plane3_1_of_3"


@pytest.mark.parametrize("width", [1, 30, 60, 90, 400])
def test_wrap_breaks_only_between_tokens(width):
    font = ImageFont.load_default()
    lines = qc.wrap(ID, width, font)
    tokens = [t.strip() for t in qc.TOKEN.findall(ID)]
    assert "".join(lines) == ID  # nothing lost, nothing cut: the lines are whole tokens end to end
    for line in lines:
        assert line == "".join(qc.TOKEN.findall(line)) and all(t.strip() in tokens for t in qc.TOKEN.findall(line))
        assert font.getlength(line) <= width or len(qc.TOKEN.findall(line)) == 1
    if width == 400:
        assert lines == [ID]


def disjoint(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def inside(box, slot) -> bool:
    return slot[0] <= box[0] and slot[1] <= box[1] and box[2] <= slot[2] and box[3] <= slot[3]


@pytest.mark.parametrize("thumb", [(16, 12), (60, 40), (160, 120), (400, 300)])
def test_layout_never_overlaps_at_any_tile_size(thumb):
    rng = np.random.default_rng(thumb[0])
    words = ["Patient01769", "Plane3", "Trans-ventricular", "mask: brain, csp, lv", "birads=4c", "P_00038_LEFT_CC", "a" * 40]
    rows = []
    for r in range(3):
        row = []
        for k in range(int(rng.integers(1, 8))):
            size = (int(rng.integers(1, thumb[0] + 1)), int(rng.integers(1, thumb[1] + 1)))
            caption = ["_".join(rng.choice(words, int(rng.integers(1, 4)))) for _ in range(int(rng.integers(1, 4)))]
            row.append((Image.new("RGB", size, (200, 0, 0)), caption))
        rows.append(row)
    header = ["d: 10 cases, 3 curated", "excluded from the curated subset: " + ", ".join(f"reason_{i} {i}" for i in range(30))]
    sheet, boxes = qc.render_sheet(header, rows, thumb)
    frame = (0, 0, *sheet.size)
    slots = [b["slot"] for b in boxes if b["kind"] in ("tile", "caption")]
    assert all(inside(s, frame) for s in slots)
    assert all(disjoint(a, b) for a, b in itertools.combinations(slots, 2))
    for b in boxes:
        assert inside(b["box"], b["slot"]), b
    texts_ = [b for b in boxes if b["kind"] == "text"]
    assert all(disjoint(a["box"], b["box"]) for a, b in itertools.combinations(texts_, 2))


def test_montage_is_deterministic_whatever_the_thread_count(tmp_path):
    for i in range(8):
        px = (np.indices((90, 120)).sum(axis=0) * (i + 1) % 255).astype(np.uint8)
        Image.fromarray(px).save(tmp_path / f"i{i}.png")
        m = np.zeros((90, 120), np.uint8)
        m[10 + i:30 + i, 20:50] = 1 + i % 2
        Image.fromarray(m).save(tmp_path / f"m{i}.png")
    df = manifest([{"case_id": f"c{i}", "image": f"i{i}.png", "mask": f"m{i}.png", "mask_labels": str(1 + i % 2),
                    "birads": "2"} for i in range(8)])
    digests = set()
    for threads in (1, 2, 2):
        qc.montage(df, tmp_path, seg_plan(), tmp_path / f"m-{threads}.png", 0, threads)
        digests.add(hashlib.sha256((tmp_path / f"m-{threads}.png").read_bytes()).hexdigest())
    assert len(digests) == 1
