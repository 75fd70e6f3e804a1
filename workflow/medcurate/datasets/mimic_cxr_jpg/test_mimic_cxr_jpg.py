"""MIMIC-CXR-JPG: the placed release's tables and tree, the study-to-image join, the official
split, a subset download, and the converter on the sample. No real file of the release is here
(credentialed); the formats are the PhysioNet page's (DATASETS.md section 13)."""

import csv
import gzip
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from medcurate.testing import build, by_id, copy_tree, mirror_of, plan_of, prepared, sample_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate.datasets import files
from medcurate.families import cxr
from medcurate.datasets import mimic_cxr_jpg as mimic
from medcurate.errors import CaseError, MedcurateError

FRONTAL_PA = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
UNLABELLED = "3b1b1f4f-7f2f6c5a-a2b8d0a7-14e4e4c2-0f7d2f3e"
UNCERTAIN = "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab"
ORPHAN = "f6c90b1d-4c15e3f7-80a4c315-bdce6f70-b8c93a4b"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("mimic")
    return prepared(mirror_of(base / "mirror", "mimic_cxr_jpg"), sample_plan("mimic_cxr_jpg"), base / "root")


@pytest.fixture
def editable(root, tmp_path):
    return copy_tree(root, tmp_path / "mimic")


def rewrite(path: Path, edit) -> None:
    """Apply ``edit(rows)`` to a gzipped CSV's rows (header first) in place."""
    rows = list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode())))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(edit(rows))
    path.write_bytes(gzip.compress(buf.getvalue().encode()))


def test_sample_layout_is_the_release_layout(root):
    names = sorted(p.relative_to(root).as_posix() for p in files(root))  # files/ is linked: follow it
    assert "mimic-cxr-2.0.0-metadata.csv.gz" in names and "mimic-cxr-2.0.0-negbio.csv.gz" in names
    assert f"files/p10/p10000032/s50414267/{FRONTAL_PA}.jpg" in names
    meta = gzip.decompress((root / mimic.METADATA).read_bytes()).decode().splitlines()
    assert meta[0] == ("dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
                       "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
                       "PatientOrientationCodeSequence_CodeMeaning")
    labels = gzip.decompress((root / mimic.LABELS).read_bytes()).decode().splitlines()
    assert labels[0].split(",")[:3] == ["subject_id", "study_id", "Atelectasis"] and ",-1.0," in labels[2]


def test_cases_join_study_labels_views_and_the_official_split(root):
    cases = by_id(mimic.cases(root, sample_plan("mimic_cxr_jpg")))
    assert len(cases) == 10  # 9 placed images + the orphan; the unplaced subject's row is skipped
    pa = cases[FRONTAL_PA]
    assert (pa.patient_id, pa.split, pa.problem) == ("10000032", "train", None)
    assert pa.meta == {"study_id": "50414267", "view_position": "PA", "view": "frontal", "patient_orientation": "Erect",
                       "unlabelled": "0"}
    assert pa.labels["no_finding"] == "1" and pa.labels["h_no_finding"] == "1" and pa.labels["edema"] == ""
    lateral = cases["174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962"]
    assert lateral.labels == pa.labels and lateral.meta["view"] == "lateral"  # labels are per study
    u = cases[UNCERTAIN].labels
    assert (u["edema"], u["h_edema"], u["pleural_effusion"], u["h_effusion"], u["support_devices"]) == ("-1", "-1", "0", "0", "1")
    assert u["h_mass"] == "" and set(u) == set(mimic.OWN.values()) | set(cxr.columns())
    assert cases["6ad03ed1-97ee17ee-9cf8b320-f7011003-cd93b42d"].split == "val"  # 'validate'
    assert {c.split for c in cases.values() if c.patient_id == "15000033"} == {"test"}
    blank = cases[UNLABELLED]
    assert blank.meta["unlabelled"] == "1" and set(blank.labels.values()) == {""} and blank.meta["view"] == ""
    orphan = cases[ORPHAN].problem
    assert orphan.reason == f"image has no row in {mimic.METADATA}" and orphan.path.endswith(f"{ORPHAN}.jpg")
    assert sum(c.problem is not None for c in cases.values()) == 1


def test_subset_download_counts_the_rows_it_skips(root):
    facts = mimic.dataset_facts(root, sample_plan("mimic_cxr_jpg"))
    assert facts == {"metadata_rows": 10, "subjects_placed": 5, "metadata_rows_outside_placed_subset": 1,
                     "label_table": mimic.LABELS}


def test_a_placed_subject_missing_an_image_is_quarantined(editable):
    next(editable.rglob(f"{UNCERTAIN}.jpg")).unlink()  # (copytree resolved the links)
    cases = by_id(mimic.cases(editable, sample_plan("mimic_cxr_jpg")))
    c = cases[UNCERTAIN]
    assert c.image.as_posix().endswith(f"files/p10/p10000032/s53189527/{UNCERTAIN}.jpg") and not c.image.exists()


def test_a_misplaced_image_is_quarantined(editable):
    src = next(editable.rglob(f"{UNCERTAIN}.jpg"))
    src.rename(src.parent.parent / "s50414267" / src.name)
    c = by_id(mimic.cases(editable, sample_plan("mimic_cxr_jpg")))[UNCERTAIN]
    assert c.problem.reason == f"metadata line 4 puts this image at files/p10/p10000032/s53189527/{UNCERTAIN}.jpg"


@pytest.mark.parametrize("edit, case, reason", [
    (lambda rows: [r if r[0] != FRONTAL_PA else [r[0], r[1], r[2], "validate"] for r in rows], None, None),
    (lambda rows: [r for r in rows if r[0] != FRONTAL_PA], FRONTAL_PA, f"{FRONTAL_PA} has no row"),
    (lambda rows: rows + [r for r in rows if r[0] == FRONTAL_PA], FRONTAL_PA, f"dicom_id {FRONTAL_PA} is listed twice (lines 2 and 12)"),
    (lambda rows: [r if r[0] != FRONTAL_PA else [*r[:3], "training"] for r in rows], FRONTAL_PA,
     "line 2: split 'training' is not one of train, validate, test"),
    (lambda rows: [r if r[0] != FRONTAL_PA else [r[0], "50000000", *r[2:]] for r in rows], FRONTAL_PA,
     "line 2 gives subject/study 10000032/50000000, the metadata 10000032/50414267"),
])
def test_split_table_problems_quarantine_the_image(editable, edit, case, reason):
    rewrite(editable / mimic.SPLIT, edit)
    cases = by_id(mimic.cases(editable, sample_plan("mimic_cxr_jpg")))
    if case is None:  # a patient put in two splits is the split step's business (split_conflicts)
        assert cases[FRONTAL_PA].split == "val" and cases[FRONTAL_PA].problem is None
        return
    assert cases[case].problem.reason == reason and cases[case].problem.path.endswith(mimic.SPLIT)


def test_label_table_problems_name_the_line(editable):
    def edit(rows):
        rows[1][2] = "yes"  # Atelectasis of the first study
        return rows + [rows[3]]  # a second row for the third study
    rewrite(editable / mimic.LABELS, edit)
    cases = by_id(mimic.cases(editable, sample_plan("mimic_cxr_jpg")))
    assert cases[FRONTAL_PA].problem.reason == "line 2: label(s) not 1.0/0.0/-1.0/blank: Atelectasis='yes'"
    assert cases["096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4"].problem.reason == \
        "line 8: study 57375967 of subject 10000764 has a second label row"


@pytest.mark.parametrize("column, value, reason", [
    (0, "02AA804E-xyz", "line 2: dicom_id '02AA804E-xyz' is not five dash-separated groups of 8 hex digits"),
    (1, "1000003", "line 2: subject_id '1000003' is not an 8-digit number"),
])
def test_malformed_ids_quarantine_the_row(editable, column, value, reason):
    def edit(rows):
        rows[1][column] = value
        return rows
    rewrite(editable / mimic.METADATA, edit)
    if column == 1:  # the subject's folder then is not placed: the row is outside the subset
        assert len(mimic.cases(editable, sample_plan("mimic_cxr_jpg"))) == 9
        (editable / "files/p10/p1000003/s50414267").mkdir(parents=True)
        shutil.copy(next(editable.rglob(f"{ORPHAN}.jpg")), editable / "files/p10/p1000003/s50414267/x.jpg")
    cases = mimic.cases(editable, sample_plan("mimic_cxr_jpg"))
    bad = [c for c in cases if c.problem and c.problem.path.endswith(mimic.METADATA)]
    assert [c.problem.reason for c in bad] == [reason]


def test_broken_tables_fail_naming_the_file(editable):
    (editable / mimic.SPLIT).write_bytes(gzip.compress(b"dicom_id,split\nx,train\n"))
    with pytest.raises(MedcurateError, match=r"split\.csv\.gz: missing column\(s\) \['study_id', 'subject_id'\]"):
        mimic.cases(editable, sample_plan("mimic_cxr_jpg"))
    (editable / mimic.SPLIT).write_bytes(gzip.compress(b"dicom_id,study_id,subject_id,split\n")[:20])
    with pytest.raises(MedcurateError, match=r"split\.csv\.gz: not a valid gzip file"):
        mimic.cases(editable, sample_plan("mimic_cxr_jpg"))


def test_converts_with_the_official_split_and_labels_per_study(root, tmp_path):
    plan = plan_of("mimic_cxr_jpg")
    counts = build(root, plan, tmp_path / "work", tmp_path / "out")
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False).set_index("case_id")
    assert counts["cases"] == 9 and counts["quarantined"] == 1 and counts["curated"] == 8
    assert (m.split == m.official_split).all() and counts["splits"]["val"]["cases"] == 1
    assert m.loc[UNLABELLED, "exclusion"] == "unlabelled" and m.loc[UNCERTAIN, "edema"] == "-1"
    assert m.loc[UNCERTAIN, "h_edema"] == ""  # uncertain is blank in the harmonised columns under 'ignore'
    assert m.loc[FRONTAL_PA, "width"] == "64" and m.loc["174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "width"] == "56"


# ------------------------------------------------------------------ fuzzing (bounded)

CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)


@settings(max_examples=100, deadline=None)
@given(st.one_of(CELL, st.sampled_from(["1.0", "0.0", "-1.0", "", "1", "-1", " 1.0 "])))
def test_fuzz_label_cells(cell):
    value = cxr.chexpert_value(cell)
    assert value in ("1", "0", "-1", "", None)
    if value is not None:
        assert float(value or 0) in (1, 0, -1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(CELL, st.sampled_from([FRONTAL_PA, "10000032", "50414267", "train", "1.0", "-1.0"])),
                         max_size=16), max_size=5),
       st.sampled_from([mimic.METADATA, mimic.SPLIT, mimic.LABELS]), st.booleans())
def test_fuzz_tables_raise_only_medcurate_errors(root, tmp_path_factory, rows, table, keep_header):
    dest = tmp_path_factory.mktemp("fuzz-mimic")
    for name in (mimic.METADATA, mimic.SPLIT, mimic.LABELS):
        shutil.copy(root / name, dest / name)
    (dest / "files").symlink_to(root / "files")
    header = gzip.decompress((root / table).read_bytes()).decode().splitlines()[0] + "\n" if keep_header else ""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    (dest / table).write_bytes(gzip.compress((header + buf.getvalue()).encode()))
    try:
        for case in mimic.cases(dest, sample_plan("mimic_cxr_jpg")):
            assert case.problem is None or isinstance(case.problem, CaseError)
    except MedcurateError as exc:
        assert exc.path and exc.reason
