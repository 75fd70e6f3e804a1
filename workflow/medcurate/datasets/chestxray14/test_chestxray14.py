"""NIH ChestX-ray14: the sample mirror's layout, Data_Entry CSV header variants and bad rows, the
official train/test lists (problems, orphans, a patient in both), an image in two archives, and
the single-channel conversion. No real file of this set is in ../shared/realdata, so the formats
are the ones this folder's README.md documents.
"""

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medcurate import splits
from medcurate.datasets import chestxray14 as cxr
from medcurate.errors import CaseError, MedcurateError
from medcurate.testing import by_id, convert_and_gather, copy_tree, mirror_of, plan_of, prepared, sample_plan

IDS = ("chestxray14",)


@pytest.fixture(scope="module")
def own_mirror(tmp_path_factory) -> Path:
    return mirror_of(tmp_path_factory.mktemp("cls-mirror"), *IDS)


@pytest.fixture(scope="module")
def roots(own_mirror, tmp_path_factory):
    """ChestX-ray14's sample release assembled the way the workflow does (its CSV and lists
    are the manual part)."""
    base = tmp_path_factory.mktemp("cls-roots")
    return {
        "chestxray14": prepared(own_mirror, sample_plan("chestxray14"), base / "chestxray14"),
    }


def editable(roots, ds: str, tmp_path: Path) -> Path:
    """A copy of a sample root that a test may modify (links resolved)."""
    return copy_tree(roots[ds], tmp_path / ds)


def test_chestxray14_sample_layout(own_mirror):
    folder = own_mirror / "chestxray14"
    per_archive = {}
    for n in range(1, 13):
        with tarfile.open(folder / f"images_{n:03d}.tar.gz") as tf:
            files = [m.name for m in tf.getmembers() if m.isfile()]
        assert files and all(f.startswith("images/") and f.endswith(".png") for f in files)
        per_archive[n] = len(files)
    assert set(per_archive.values()) == {1, 2} and sum(per_archive.values()) == 14
    text = (folder / "manual" / "Data_Entry_2017_v2020.csv").read_text()
    assert text.splitlines()[0] == ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
                                    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
    assert "00000002_000.png,No Finding,0,2," in text and "|Pleural_Thickening," in text
    listed = [(folder / "manual" / f).read_text().split() for f in ("train_val_list.txt", "test_list.txt")]
    assert len(listed[0]) + len(listed[1]) == 14 and not {n[:8] for n in listed[0]} & {n[:8] for n in listed[1]}
    with tarfile.open(folder / "images_008.tar.gz") as tf:
        assert Image.open(tf.extractfile("images/00000007_000.png")).mode == "RGBA"


def test_chestxray14_cases_multilabel_patients_and_splits(roots):
    cases = by_id(cxr.cases(roots["chestxray14"], sample_plan("chestxray14")))
    assert len(cases) == 14 and all(c.problem is None for c in cases.values())
    c = cases["00000001_002"]
    own = {k: v for k, v in c.labels.items() if not k.startswith("h_")}
    assert set(own) == {"no_finding", *(f.lower() for f in cxr.FINDINGS)} and len(own) == 15
    assert {k for k, v in own.items() if v == "1"} == {"cardiomegaly", "effusion", "pleural_thickening"}
    # the chest X-ray family's harmonised columns: the same findings, the six it lacks blank
    assert {k for k, v in c.labels.items() if v == "1" and k.startswith("h_")} == {"h_cardiomegaly", "h_effusion", "h_pleural_thickening"}
    assert [k for k, v in c.labels.items() if v == ""] == ["h_enlarged_cardiomediastinum", "h_lung_opacity", "h_lung_lesion",
                                                          "h_pleural_other", "h_fracture", "h_support_devices"]
    assert cases["00000002_000"].labels["h_no_finding"] == "1" and c.labels["h_no_finding"] == "0"
    assert {k for k, v in cases["00000002_000"].labels.items() if v == "1"} == {"no_finding", "h_no_finding"}
    assert {cases[f"00000001_00{i}"].patient_id for i in range(3)} == {"00000001"}
    assert c.meta == {"finding_labels": "Cardiomegaly|Effusion|Pleural_Thickening", "follow_up": "2", "age": "64",
                      "gender": "M", "view_position": "AP", "original_width": "2500", "original_height": "2048",
                      "pixel_spacing_x": "0.168", "pixel_spacing_y": "0.168", "view": "frontal"}
    assert cases["00000001_000"].meta["original_width"] == "2750" and cases["00000001_000"].meta["original_height"] == "2687"
    assert {k for k, c in cases.items() if c.split == "test"} == {"00000003_000", "00000005_000", "00000005_001", "00000011_000"}
    assert c.image.as_posix().endswith("images_002/images/00000001_002.png")


@pytest.mark.parametrize("header", [
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Sex,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]",
    "image index,finding labels,Follow-up#,Patient ID,Patient Age,Patient  Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],",
])
def test_chestxray14_header_variants(header, roots, tmp_path):
    root = editable(roots, "chestxray14", tmp_path)
    path = next(root.rglob(cxr.CSV))
    lines = path.read_text().splitlines()
    trailing = header.endswith(",")
    path.write_text("\n".join([header] + [ln if trailing else ln.removesuffix(",") for ln in lines[1:]]) + "\n")
    cases = by_id(cxr.cases(root, sample_plan("chestxray14")))
    assert cases["00000003_000"].meta["gender"] == "F" and cases["00000003_000"].labels["hernia"] == "1"
    assert cases["00000001_000"].meta["pixel_spacing_y"] == "0.14300000000000002"


def test_chestxray14_missing_column_fails_naming_it(tmp_path):
    path = tmp_path / cxr.CSV
    path.write_text("Image Index,Finding Labels,Patient ID\n00000001_000.png,Mass,1\n")
    with pytest.raises(MedcurateError) as err:
        cxr.read_entries(path)
    assert err.value.path == str(path) and "missing column(s) ['Follow-up #', 'Patient Age', 'Patient Gender or Patient Sex'" in err.value.reason


def test_chestxray14_rows_longer_than_the_header_never_shift_columns(roots, tmp_path):
    root = editable(roots, "chestxray14", tmp_path)
    path = next(root.rglob(cxr.CSV))
    lines = path.read_text().splitlines()
    expected = {c.case_id: c.labels for c in cxr.cases(root, sample_plan("chestxray14"))}
    path.write_text("\n".join([lines[0].removesuffix(",")] + lines[1:]) + "\n")  # rows keep their trailing comma
    assert {c.case_id: c.labels for c in cxr.cases(root, sample_plan("chestxray14"))} == expected
    lines[3] += "surplus"  # a non-empty extra field: the columns are ambiguous
    path.write_text("\n".join([lines[0].removesuffix(",")] + lines[1:]) + "\n")
    with pytest.raises(MedcurateError, match="line 4 has 12 fields but the header names 11"):
        cxr.cases(root, sample_plan("chestxray14"))


@pytest.mark.parametrize("text, reason", [
    ("Pleural Thickening", "line 9: unknown finding(s) ['Pleural Thickening'] in Finding Labels 'Pleural Thickening'"),
    ("Mass|Covid", "line 9: unknown finding(s) ['Covid'] in Finding Labels 'Mass|Covid'"),
    ("", "line 9: unknown finding(s) [''] in Finding Labels ''"),
    ("No Finding|Mass", "line 9: 'No Finding' together with findings in 'No Finding|Mass'"),
])
def test_chestxray14_bad_finding_labels_name_the_line(text, reason):
    with pytest.raises(CaseError) as err:
        cxr.findings(text, Path("entry.csv"), 9)
    assert err.value.reason == reason and err.value.path == "entry.csv"


def test_chestxray14_list_problems_and_orphans_are_quarantined(roots, tmp_path):
    root = editable(roots, "chestxray14", tmp_path)
    train_val = next(root.rglob(cxr.TRAIN_VAL))
    train_val.write_text(train_val.read_text().replace("00000006_000.png\n", "") + "00000011_000.png\r\n\n")
    entry = next(root.rglob(cxr.CSV))
    entry.write_text("".join(ln for ln in entry.read_text().splitlines(True) if not ln.startswith("00000009_000.png")))
    cases = by_id(cxr.cases(root, sample_plan("chestxray14")))
    assert cases["00000006_000"].problem.reason.endswith("00000006_000.png is in neither of train_val_list.txt and test_list.txt")
    assert cases["00000011_000"].problem.reason.endswith("00000011_000.png is in both of train_val_list.txt and test_list.txt")
    assert cases["00000011_000"].problem.path.endswith(cxr.CSV)
    assert cases["00000009_000"].problem.reason == "image has no row in Data_Entry_2017_v2020.csv"
    assert cases["00000009_000"].problem.path.endswith("images_010/images/00000009_000.png")


def test_chestxray14_image_in_two_archives_is_an_error(roots, tmp_path):
    root = editable(roots, "chestxray14", tmp_path)
    shutil.copy(next(root.rglob("00000002_000.png")), root / "images_012" / "images" / "00000002_000.png")
    with pytest.raises(MedcurateError, match=r"00000002_000.png found twice \(.*images_003.*, .*images_012.*\)"):
        cxr.cases(root, sample_plan("chestxray14"))


def test_chestxray14_patient_in_both_lists_follows_split_conflicts(roots, tmp_path):
    root = editable(roots, "chestxray14", tmp_path)
    train_val, test = next(root.rglob(cxr.TRAIN_VAL)), next(root.rglob(cxr.TEST))
    test.write_text(test.read_text().replace("00000005_000.png\n", ""))
    train_val.write_text(train_val.read_text() + "00000005_000.png\n")
    plan = plan_of("chestxray14")
    cases = by_id(cxr.cases(root, plan))
    assert (cases["00000005_000"].split, cases["00000005_001"].split) == ("train", "test")
    df = pd.DataFrame([{"case_id": c.case_id, "patient_id": c.patient_id, "official_split": c.split,
                        "pixel_sha256": c.case_id} for c in cases.values()])
    warnings = splits.assign(df, "chestxray14", plan["split"])
    assert set(df.loc[df.patient_id == "00000005", "split"]) == {"test"}
    assert warnings == ["1 patient(s) in several official splits moved wholly to test: 00000005"]
    with pytest.raises(MedcurateError, match=r"1 patient\(s\) in more than one split \(00000005: test/train\)"):
        splits.assign(df, "chestxray14", {**plan["split"], "split_conflicts": "fail"})
        splits.check_disjoint(df, "chestxray14")


def test_chestxray14_converts_to_single_channel(roots, tmp_path):
    manifest, counts = convert_and_gather(roots["chestxray14"], "chestxray14", tmp_path)
    assert counts["cases"] == 14 and counts["quarantined"] == 0
    assert counts["labels"]["no_finding"] == {"0": 10, "1": 4} and counts["labels"]["effusion"] == {"0": 10, "1": 4}
    for case_id in ("00000007_000", "00000001_000"):  # the RGBA one and a grayscale one
        out = np.asarray(Image.open(tmp_path / "result" / "images" / f"{case_id}.png"))
        src = Image.open(next(roots["chestxray14"].rglob(f"{case_id}.png")))
        assert out.ndim == 2 and out.dtype == np.uint8
        assert np.array_equal(out, np.asarray(src.convert("L")))
        assert out[32, 17] < 80 <= out[2, 2]  # a dark lung field, a bright border
    row = manifest.loc["00000001_002"]
    assert (row.split, row.official_split, row.pleural_thickening, row.no_finding) == ("train", "train", "1", "0")
    assert row.finding_labels == "Cardiomegaly|Effusion|Pleural_Thickening" and row.width == "64"


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)


@settings(max_examples=100, deadline=None)
@given(st.one_of(CELL, st.lists(st.sampled_from([*cxr.FINDINGS, "No Finding", "", " Mass", "x"]), max_size=4).map("|".join)))
def test_fuzz_chestxray14_findings_raise_only_case_errors(text):
    try:
        labels = cxr.findings(text, Path("entry.csv"), 2)
    except CaseError:
        return
    assert set(labels.values()) <= {"0", "1"} and len(labels) == 15


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=200))
def test_fuzz_chestxray14_csv_and_lists_raise_only_medcurate_errors(tmp_path_factory, blob, text):
    folder = tmp_path_factory.mktemp("fuzz-cxr")
    (folder / "list.txt").write_bytes(blob)
    (folder / cxr.CSV).write_text(",".join(h[0] for h in cxr.COLUMNS.values()) + "\n" + text)
    for path, call in ((folder / "list.txt", cxr.read_list), (folder / cxr.CSV, cxr.read_entries)):
        try:
            parsed = call(path)
        except MedcurateError as exc:
            assert exc.path == str(path) and exc.reason  # the error names the file and the reason
        else:
            assert isinstance(parsed, (list, set, dict))

