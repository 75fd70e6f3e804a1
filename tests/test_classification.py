"""ISIC 2019, NIH ChestX-ray14 and Kermany OCT: parsers, quirks, the sample mirror and the
converter on it. No real files of these sets are in ../shared/realdata, so the formats are the
ones DATASETS.md documents (sections 12a, 12d, 12e)."""

import copy
import csv
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, build, prepared, sample_plan, unpacked
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import samples, splits
from medcurate.atomic import file_digest
from medcurate.datasets import chestxray14 as cxr
from medcurate.datasets import isic2019 as isic
from medcurate.datasets import kermany_oct as oct_
from medcurate.errors import CaseError, MedcurateError
from PIL import Image

IDS = ("isic2019", "chestxray14", "kermany_oct")


@pytest.fixture(scope="module")
def own_mirror(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cls-mirror")
    samples.build(out, list(IDS))
    return out


@pytest.fixture(scope="module")
def roots(own_mirror, tmp_path_factory):
    """Each dataset's sample release assembled the way the workflow does (ChestX-ray14's CSV and
    lists are the manual part)."""
    base = tmp_path_factory.mktemp("cls-roots")
    return {
        "isic2019": unpacked(own_mirror, "isic2019", base / "isic2019"),
        "kermany_oct": unpacked(own_mirror, "kermany_oct", base / "kermany_oct"),
        "chestxray14": prepared(own_mirror, sample_plan("chestxray14"), base / "chestxray14"),
    }


def editable(roots, ds: str, tmp_path: Path) -> Path:
    """A copy of a sample root that a test may modify (links resolved)."""
    dest = tmp_path / ds
    shutil.copytree(roots[ds], dest, symlinks=False)
    return dest


def by_id(cases):
    return {c.case_id: c for c in cases}


def convert_and_gather(root: Path, ds: str, out: Path) -> tuple[pd.DataFrame, dict]:
    plan = copy.deepcopy(sample_plan(ds))
    counts = build(root, plan, out / "work", out / "result")
    manifest = pd.read_csv(out / "result" / "manifest.csv", dtype=str, keep_default_na=False)
    return manifest.set_index("case_id"), counts


# ------------------------------------------------------------------ the sample mirror


def test_samples_are_deterministic_small_and_pinned(own_mirror, tmp_path):
    pins = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())["sample_mirror"]["sha256"]
    again = samples.build(tmp_path, list(IDS))
    built = {p.relative_to(own_mirror).as_posix(): file_digest(p) for p in own_mirror.rglob("*") if p.is_file()}
    assert built == again == {k: v for k, v in pins.items() if k.split("/")[0] in IDS}
    for ds in IDS:
        assert sum(p.stat().st_size for p in (own_mirror / ds).rglob("*") if p.is_file()) < 250_000
    # every catalogue source has a mirror file (sample mode needs one per source)
    for ds in IDS:
        for src in sample_plan(ds)["sources"]:
            assert (own_mirror / ds / src["name"]).is_file()


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


def test_kermany_sample_layout(own_mirror):
    with tarfile.open(own_mirror / "kermany_oct" / "OCT2017.tar.gz") as tf:
        files = [m.name for m in tf.getmembers() if m.isfile()]
        first = Image.open(tf.extractfile(files[0]))
    assert "OCT2017/train/.DS_Store" in files
    images = [f for f in files if f.endswith(".jpeg")]
    assert len(images) == 16 and first.mode == "L" and first.format == "JPEG"
    for name in images:
        top, split, folder, _ = name.split("/")
        assert top == "OCT2017" and split in ("train", "test") and folder in oct_.CLASSES
    assert "OCT2017/train/CNV/DRUSEN-1083159-3.jpeg" in images


# ------------------------------------------------------------------ ISIC 2019


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


# ------------------------------------------------------------------ ChestX-ray14


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
    plan = copy.deepcopy(sample_plan("chestxray14"))
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


# ------------------------------------------------------------------ Kermany OCT


def test_kermany_cases_labels_patients_and_quarantine(roots):
    cases = by_id(oct_.cases(roots["kermany_oct"], sample_plan("kermany_oct")))
    assert len(cases) == 16  # the .DS_Store is no case
    c = cases["train_CNV-1016042-2"]
    assert (c.patient_id, c.split, c.labels, c.problem) == ("1016042", "train", {"diagnosis": "CNV"}, None)
    assert cases["test_DME-1072015-5"].patient_id == cases["train_DME-1072015-1"].patient_id == "1072015"
    bad = cases["train_DRUSEN-1083159-3"].problem
    assert bad.reason == "file name says class DRUSEN but the image is in folder CNV/"
    assert bad.path.endswith("OCT2017/train/CNV/DRUSEN-1083159-3.jpeg")
    assert sum(c.problem is not None for c in cases.values()) == 1


@pytest.mark.parametrize("rel, expected", [
    ("OCT2017 /train/NORMAL/NORMAL-1384-3.jpeg", ("train_NORMAL-1384-3", "1384", "train", None)),  # Kaggle's top folder
    ("OCT2017/val/DME/DME-9000-1.jpeg", ("val_DME-9000-1", "9000", "val", None)),
    ("OCT2017/TRAIN/CNV/CNV-1-1.jpeg", ("TRAIN_CNV-1-1", "1", None, "not inside a train/test/val folder (found 'TRAIN')")),
    ("OCT2017/train/AMD/AMD-1-1.jpeg", ("train_AMD-1-1", "1", "train", "class folder 'AMD' is not one of CNV, DME, DRUSEN, NORMAL")),
    ("OCT2017/test/CNV/CNV-154835-1 (2).jpeg", ("test_CNV-154835-1_2", "test_CNV-154835-1_2", "test",
                                                 "file name is not <CLASS>-<patient>-<n>.jpeg")),
    ("OCT2017/test/CNV/cnv-5-1.jpeg", ("test_cnv-5-1", "5", "test", "file name says class cnv but the image is in folder CNV/")),
])
def test_kermany_path_quirks(rel, expected):
    c = oct_.case_for(Path("/data") / rel)
    assert (c.case_id, c.patient_id, c.split, c.problem and c.problem.reason) == expected


def test_kermany_converts_with_the_patient_in_train_and_test_moved_to_test(roots, tmp_path):
    manifest, counts = convert_and_gather(roots["kermany_oct"], "kermany_oct", tmp_path)
    assert counts["cases"] == 15 and counts["quarantined"] == 1
    moved = manifest[manifest.patient_id == "1072015"]
    assert set(moved.split) == {"test"} and set(moved.official_split) == {"train", "test"} and len(moved) == 3
    assert splits.check_disjoint(manifest.reset_index(), "kermany_oct") is None
    assert counts["splits"]["val"]["patients"] == 2 and counts["labels"]["diagnosis"] == {"CNV": 4, "DME": 3, "DRUSEN": 3, "NORMAL": 5}
    out = np.asarray(Image.open(tmp_path / "result" / "images" / "train_CNV-1016042-1.png"))
    src = np.asarray(Image.open(next(roots["kermany_oct"].rglob("CNV-1016042-1.jpeg"))))
    assert out.shape == (48, 64) and np.array_equal(out, src) and out.max() > 150 and out[0, 0] < 40


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


# ------------------------------------------------------------------ fuzzing (bounded)

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


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                        min_size=1, max_size=12), min_size=3, max_size=3))
def test_fuzz_kermany_paths_never_raise(parts):
    case = oct_.case_for(Path("/data", *parts))
    assert case.problem is None or isinstance(case.problem, CaseError)
    assert case.case_id and "/" not in case.case_id


def test_a_column_read_under_its_alias_is_recorded_in_dataset_json(roots, tmp_path):
    """A re-release whose metadata header says 'gender' builds, and dataset.json says so."""
    import json

    root = editable(roots, "isic2019", tmp_path)
    meta = next(root.rglob(isic.METADATA))
    header, rest = meta.read_text().split("\n", 1)
    meta.write_text(header.replace(",sex", ",gender") + "\n" + rest)
    build(root, copy.deepcopy(sample_plan("isic2019")), tmp_path / "work", tmp_path / "out")
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["release_facts"] == {"column_aliases": {isic.METADATA: {"gender": "sex"}}}
    assert "facts.json" not in (tmp_path / "out" / "SHA256SUMS").read_text()
