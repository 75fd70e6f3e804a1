"""ISIC 2019: the sample mirror's layout, the one-hot ground-truth and metadata CSVs (cell forms,
bad rows naming the line, column aliases, the downsampled suffix), images without a row and rows
without an image, and the converter keeping a lesion's images together. No real file of this set
is in ../shared/realdata, so the formats are the ones this folder's README.md documents.
"""

import csv
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate.datasets import isic2019 as isic
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import build, by_id, convert_and_gather, copy_tree, mirror_of, plan_of, sample_plan, unpacked

IDS = ("isic2019",)


@pytest.fixture(scope="module")
def own_mirror(tmp_path_factory) -> Path:
    return mirror_of(tmp_path_factory.mktemp("cls-mirror"), *IDS)


@pytest.fixture(scope="module")
def roots(own_mirror, tmp_path_factory):
    """ISIC 2019's sample release unpacked the way the workflow does."""
    base = tmp_path_factory.mktemp("cls-roots")
    return {
        "isic2019": unpacked(own_mirror, "isic2019", base / "isic2019"),
    }


def editable(roots, ds: str, tmp_path: Path) -> Path:
    """A copy of a sample root that a test may modify (links resolved)."""
    return copy_tree(roots[ds], tmp_path / ds)


def test_isic_sample_layout(own_mirror):
    folder = own_mirror / "isic2019"
    with zipfile.ZipFile(folder / "ISIC_2019_Training_Input.zip") as zf:
        names = zf.namelist()
        first = Image.open(io.BytesIO(zf.read(names[0])))
    assert all(n.startswith("ISIC_2019_Training_Input/ISIC_") and n.endswith(".jpg") for n in names)
    assert "ISIC_2019_Training_Input/ISIC_0000004_downsampled.jpg" in names and len(names) == 13
    assert first.format == "JPEG" and first.mode == "RGB"
    truth = (folder / "ISIC_2019_Training_GroundTruth.csv").read_text().splitlines()
    assert truth[0] == "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"
    assert truth[1] == "ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0"
    meta = (folder / "ISIC_2019_Training_Metadata.csv").read_text().splitlines()
    assert meta[0] == "image,age_approx,anatom_site_general,lesion_id,sex"
    assert meta[1] == "ISIC_0000000,55.0,anterior torso,,female"


def test_isic_cases_labels_lesions_and_quarantine(roots):
    cases = by_id(isic.cases(roots["isic2019"], sample_plan("isic2019")))
    assert len(cases) == 13 and all(c.split is None for c in cases.values())
    assert cases["ISIC_0024306"].patient_id == cases["ISIC_0024307"].patient_id == "HAM_0000550"
    assert cases["ISIC_0000000"].patient_id == "ISIC_0000000"  # no lesion_id: the image id
    assert cases["ISIC_0000000"].meta == {"lesion_id": "", "age_approx": "55.0", "anatom_site_general": "anterior torso",
                                          "sex": "female"}
    assert {k: c.labels["diagnosis"] for k, c in cases.items() if c.problem is None and k.startswith("ISIC_005")} == {
        "ISIC_0053454": "BCC", "ISIC_0053460": "AK", "ISIC_0053470": "SCC", "ISIC_0055000": "VASC"}
    bad = cases["ISIC_0000003"].problem
    assert isinstance(bad, CaseError) and bad.path.endswith("ISIC_2019_Training_GroundTruth.csv")
    assert bad.reason == "line 5: expected exactly one class marked 1.0, found MEL+NV"
    assert cases["ISIC_0000004_downsampled"].image.name == "ISIC_0000004_downsampled.jpg"


@pytest.mark.parametrize("cells, expected", [
    ({"NV": "1.0"}, "NV"), ({"MEL": "1"}, "MEL"), ({"UNK": "1.00"}, "UNK"), ({"SCC": "1", "MEL": "0"}, "SCC"),
])
def test_isic_one_hot_accepts_integer_and_float_cells(cells, expected):
    row = {c: "0.0" for c in isic.CLASSES} | cells
    assert isic.diagnosis(row, Path("gt.csv"), 7) == expected


@pytest.mark.parametrize("cells, reason", [
    ({}, "line 7: expected exactly one class marked 1.0, found none"),
    ({"MEL": "1.0", "BCC": "1"}, "line 7: expected exactly one class marked 1.0, found MEL+BCC"),
    ({"NV": "0.5"}, "line 7: NV must be 1.0 or 0.0, got '0.5'"),
    ({"AK": ""}, "line 7: AK must be 1.0 or 0.0, got ''"),
    ({"DF": "nan"}, "line 7: DF must be 1.0 or 0.0, got 'nan'"),
])
def test_isic_bad_one_hot_rows_name_the_line(cells, reason):
    row = {c: "0.0" for c in isic.CLASSES} | cells
    with pytest.raises(CaseError) as err:
        isic.diagnosis(row, Path("gt.csv"), 7)
    assert err.value.reason == reason and err.value.path == "gt.csv"


def _rewrite(path: Path, edit) -> None:
    rows = list(csv.reader(path.open()))
    path.write_text("".join(",".join(r) + "\n" for r in edit(rows)))


def test_isic_downsampled_suffix_missing_from_the_csv_names(roots, tmp_path):
    root = editable(roots, "isic2019", tmp_path)
    def strip(rows):
        return [[r[0].removesuffix("_downsampled"), *r[1:]] for r in rows]

    _rewrite(next(root.rglob("ISIC_2019_Training_GroundTruth.csv")), strip)
    _rewrite(next(root.rglob("ISIC_2019_Training_Metadata.csv")), strip)
    cases = by_id(isic.cases(root, sample_plan("isic2019")))
    assert "ISIC_0000004_downsampled" not in cases
    case = cases["ISIC_0000004"]
    assert case.problem is None and case.image.name == "ISIC_0000004_downsampled.jpg"
    assert case.labels == {"diagnosis": "MEL"} and case.meta["age_approx"] == "80.0"


def test_isic_image_without_a_row_and_row_without_an_image(roots, tmp_path):
    root = editable(roots, "isic2019", tmp_path)
    _rewrite(next(root.rglob("ISIC_2019_Training_GroundTruth.csv")), lambda rows: [r for r in rows if r[0] != "ISIC_0024308"])
    next(root.rglob("ISIC_0055000.jpg")).unlink()
    cases = by_id(isic.cases(root, sample_plan("isic2019")))
    orphan = cases["ISIC_0024308"]
    assert orphan.problem.reason == "image has no row in ISIC_2019_Training_GroundTruth.csv"
    assert orphan.problem.path.endswith("ISIC_0024308.jpg")
    assert cases["ISIC_0055000"].problem is None and not cases["ISIC_0055000"].image.exists()  # read_image quarantines it


def test_isic_missing_column_and_duplicate_metadata_fail_naming_the_file(roots, tmp_path):
    root = editable(roots, "isic2019", tmp_path)
    gt = next(root.rglob("ISIC_2019_Training_GroundTruth.csv"))
    meta = next(root.rglob("ISIC_2019_Training_Metadata.csv"))
    _rewrite(meta, lambda rows: rows + [rows[1]])
    with pytest.raises(MedcurateError, match=r"Metadata.csv: line 15: image ISIC_0000000 has a second metadata row"):
        isic.cases(root, sample_plan("isic2019"))
    _rewrite(gt, lambda rows: [r[:-1] for r in rows])
    with pytest.raises(MedcurateError, match=r"GroundTruth.csv: missing column\(s\) \['UNK'\]"):
        isic.cases(root, sample_plan("isic2019"))


def test_isic_converts_rgb_with_lesions_kept_together(roots, tmp_path):
    manifest, counts = convert_and_gather(roots["isic2019"], "isic2019", tmp_path)
    assert counts["cases"] == 12 and counts["quarantined"] == 1
    assert manifest.loc["ISIC_0024306", "split"] == manifest.loc["ISIC_0024307", "split"]
    assert set(manifest.split) == {"train", "val", "test"} and set(manifest.official_split) == {""}
    assert manifest.loc["ISIC_0000004_downsampled", "diagnosis"] == "MEL"
    out = np.asarray(Image.open(tmp_path / "result" / "images" / "ISIC_0000000.png"))
    assert out.shape == (48, 64, 3) and out[0, 0, 0] > out[0, 0, 2]  # skin tone: more red than blue
    q = pd.read_csv(tmp_path / "result" / "quarantine.csv", dtype=str)
    assert q.to_dict("records") == [{"case_id": "ISIC_0000003", "patient_id": "ISIC_0000003",
                                     "source": "ISIC_2019_Training_GroundTruth.csv",
                                     "reason": "line 5: expected exactly one class marked 1.0, found MEL+NV"}]


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(isic.CLASSES), st.one_of(CELL, st.sampled_from(["0.0", "1.0", "1", "0"])), max_size=9))
def test_fuzz_isic_one_hot_raises_only_case_errors(row):
    try:
        assert isic.diagnosis(row, Path("gt.csv"), 2) in isic.CLASSES
    except CaseError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(CELL, st.sampled_from(["ISIC_0000000", "1.0", "0.0", "HAM_1"])), max_size=11), max_size=5),
       st.sampled_from(["gt", "meta"]))
def test_fuzz_isic_csvs_raise_only_medcurate_errors(roots, tmp_path_factory, rows, which):
    root = tmp_path_factory.mktemp("fuzz-isic")
    for name in (isic.GROUND_TRUTH, isic.METADATA):
        shutil.copy(next(roots["isic2019"].rglob(name)), root / name)
    target = root / (isic.GROUND_TRUTH if which == "gt" else isic.METADATA)
    header = target.read_text().splitlines()[0]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    target.write_text(header + "\n" + buf.getvalue())
    try:
        isic.cases(root, {})
    except MedcurateError:
        pass


def test_a_column_read_under_its_alias_is_recorded_in_dataset_json(roots, tmp_path):
    """A re-release whose metadata header says 'gender' builds, and dataset.json says so."""
    import json

    root = editable(roots, "isic2019", tmp_path)
    meta = next(root.rglob(isic.METADATA))
    header, rest = meta.read_text().split("\n", 1)
    meta.write_text(header.replace(",sex", ",gender") + "\n" + rest)
    build(root, plan_of("isic2019"), tmp_path / "work", tmp_path / "out")
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["release_facts"] == {"column_aliases": {isic.METADATA: {"gender": "sex"}}}
    assert "facts.json" not in (tmp_path / "out" / "SHA256SUMS").read_text()
