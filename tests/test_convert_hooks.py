"""The generic hooks dataset modules rely on: case.shape before load_mask, extra masks beside the
label map, the exclude_flags rule on classification sets, and AppleDouble junk listing."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from medcurate import convert, curation, datasets
from medcurate.datasets import Case
from medcurate.errors import CaseError, MedcurateError
from PIL import Image


def _plan(task="segmentation", **select):
    return {
        "id": "toy", "task": task, "png_compress_level": 1, "module": "toy",
        "labels": {"classes": {}, "mask": {"background": 0, "vessel": 1},
                   "extra_masks": {"fov": {"background": 0, "fov": 1}}},
        "convert": {"image_mode": "keep"}, "select": {"empty_mask": "keep", **select},
    }


def _exclusion(row: dict, plan: dict) -> str:
    """What the select step decides for one converted row (read back as the table's strings)."""
    table = pd.DataFrame([{k: str(v) for k, v in row.items()}])
    return curation.select(table, plan, None)["exclusion"][0]


def _png(path: Path, arr) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8)).save(path)
    return path


def _module(seen: list):
    def load_mask(case, plan):
        seen.append(case.shape)
        mask = np.zeros(case.shape[:2], np.uint8)
        mask[1, 1] = 1
        return mask, []

    return SimpleNamespace(load_mask=load_mask)


def test_extra_mask_written_beside_the_label_map(tmp_path):
    image = _png(tmp_path / "in" / "a.png", np.full((6, 9), 80))
    fov = np.zeros((6, 9))
    fov[1:5, 2:8] = 255  # a 0/255 file, as publishers ship them
    case = Case("a", "p", image, extra_masks={"fov": _png(tmp_path / "in" / "a_fov.gif", fov)})
    seen = []
    sums = {}
    row = convert._convert_case(case, tmp_path / "in", _plan(), _module(seen), tmp_path / "out", sums)
    assert seen == [(6, 9)]  # load_mask saw the decoded image's shape
    assert row["mask_fov"] == "masks_fov/a.png" and "masks_fov/a.png" in sums
    written = np.asarray(Image.open(tmp_path / "out" / "masks_fov" / "a.png"))
    assert written.dtype == np.uint8 and set(np.unique(written)) == {0, 1} and int(written.sum()) == 24
    # A case without that mask keeps an empty column rather than losing it.
    other = Case("b", "p", _png(tmp_path / "in" / "b.png", np.zeros((6, 9))))
    assert convert._convert_case(other, tmp_path / "in", _plan(), _module([]), tmp_path / "out", {})["mask_fov"] == ""


def test_extra_mask_of_another_size_is_a_case_error_naming_it(tmp_path):
    image = _png(tmp_path / "a.png", np.zeros((6, 9)))
    fov = _png(tmp_path / "a_fov.png", np.full((5, 9), 255))
    case = Case("a", "p", image, extra_masks={"fov": fov})
    with pytest.raises(CaseError, match="mask is 9x5 but its image is 9x6") as err:
        convert._convert_case(case, tmp_path, _plan(), _module([]), tmp_path / "out", {})
    assert err.value.path == str(fov)


def test_undeclared_extra_mask_stops_the_dataset(tmp_path):
    image = _png(tmp_path / "a.png", np.zeros((6, 9)))
    case = Case("a", "p", image, extra_masks={"observer2": image})
    with pytest.raises(MedcurateError, match=r"\['observer2'\] not declared in the catalogue's labels.extra_masks"):
        convert._convert_case(case, tmp_path, _plan(), _module([]), tmp_path / "out", {})


def test_exclude_flags_apply_to_classification_sets(tmp_path):
    image = _png(tmp_path / "a.png", np.zeros((4, 4)))
    plan = _plan("classification", exclude_flags=["not_fundus"])
    flagged = Case("a", "p", image, meta={"not_fundus": 1, "low_quality": 1})
    assert _exclusion(convert._convert_case(flagged, tmp_path, plan, SimpleNamespace(), tmp_path / "out", {}), plan) == "not_fundus"
    clean = Case("b", "p", image, meta={"not_fundus": 0})
    assert _exclusion(convert._convert_case(clean, tmp_path, plan, SimpleNamespace(), tmp_path / "out", {}), plan) == ""


def test_junk_files_lists_what_files_skips(tmp_path):
    _png(tmp_path / "XR_WRIST" / "image1.png", np.zeros((2, 2)))
    (tmp_path / "XR_WRIST" / "._image1.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble magic
    assert datasets.files(tmp_path) == [tmp_path / "XR_WRIST" / "image1.png"]
    assert datasets.junk_files(tmp_path) == [tmp_path / "XR_WRIST" / "._image1.png"]


def test_module_columns_never_overwrite_generic_ones(tmp_path):
    image = _png(tmp_path / "a.png", np.zeros((4, 5)))
    plan = _plan("classification")
    plan["module"] = "toy"
    case = Case("a", "p", image, meta={"height": "172 cm"})
    with pytest.raises(MedcurateError, match=r"module toy sets manifest column\(s\) \['height'\]"):
        convert._convert_case(case, tmp_path, plan, SimpleNamespace(), tmp_path / "out", {})
    case = Case("a", "p", image, meta={"patient_height": "172 cm"})
    row = convert._convert_case(case, tmp_path, plan, SimpleNamespace(), tmp_path / "out", {})
    assert row["height"] == 4 and row["patient_height"] == "172 cm"


def test_read_table_keeps_columns_when_rows_end_in_a_separator(tmp_path):
    """ChestX-ray14-style rows with a trailing ',' the header lacks: pandas would make the first
    column the index and shift every other column by one."""
    path = tmp_path / "t.csv"
    path.write_text("Image Index,Finding Labels\n00000001_000.png,Cardiomegaly,\n00000001_001.png,No Finding,\n")
    df = datasets.read_table(path, ",", ["Image Index", "Finding Labels"])
    assert list(df["Image Index"]) == ["00000001_000.png", "00000001_001.png"]
    assert list(df["Finding Labels"]) == ["Cardiomegaly", "No Finding"]


def test_read_text_drops_a_bom_and_names_an_undecodable_file(tmp_path):
    path = tmp_path / "Info.txt"
    path.write_bytes(b"\xef\xbb\xbfmdb001 G CIRC B 535 425 197\n")
    assert datasets.read_text(path).startswith("mdb001")
    path.write_bytes(b"mdb001 \xe9\n")
    with pytest.raises(MedcurateError, match="not ASCII text") as err:
        datasets.read_text(path, "ascii")
    assert err.value.path == str(path)
    with pytest.raises(MedcurateError, match="not UTF-8 text"):
        datasets.read_text(path)


def test_a_memory_error_quarantines_that_case_only(tmp_path, monkeypatch):
    """One image too large for the job's memory must not take the dataset down with it."""
    images = [_png(tmp_path / "in" / f"{n}.png", np.full((4, 4), 9)) for n in ("a", "b")]
    cases = [Case("a", "p1", images[0]), Case("b", "p2", images[1])]

    def load_image(case, plan):
        if case.case_id == "a":
            raise MemoryError
        return np.full((4, 4), 9, np.uint8)

    module = SimpleNamespace(cases=lambda root, plan: cases, load_image=load_image)
    monkeypatch.setattr(datasets, "load", lambda name: module)
    plan = {**_plan("classification"), "labels": {"classes": {}}}
    assert convert.convert_shard(tmp_path / "in", plan, 0, 1, tmp_path / "out") == {"converted": 1, "quarantined": 1}
    quarantine = (tmp_path / "out" / "quarantine.csv").read_text()
    assert 'a,p1,a.png,"out of memory while converting this case (raise the convert rule\'s mem_mb' in quarantine
    assert (tmp_path / "out" / "images" / "b.png").is_file() and not (tmp_path / "out" / "images" / "a.png").exists()
