"""FETAL_PLANES_DB: the real excerpt parsed, the sample CSV's format against it, delimiter and Train-column errors."""

import shutil

import pandas as pd
import pytest

from medcurate import datasets
from medcurate.errors import MedcurateError
from medcurate.testing import unpacked


@pytest.mark.realdata
def test_fetal_planes_real_excerpt_parses(realdata, tmp_path, plans):
    excerpt = realdata / "FETAL_PLANES_DB" / "FETAL_PLANES_DB_data.EXCERPT.csv"
    shutil.copy(excerpt, tmp_path / "FETAL_PLANES_DB_data.csv")
    cases = datasets.load("fetal_planes_db").cases(tmp_path, plans["fetal_planes_db"])
    raw = excerpt.read_text().splitlines()
    assert len(cases) == len(raw) - 1
    classes = plans["fetal_planes_db"]["labels"]["classes"]
    for case, line in zip(cases, raw[1:]):
        cells = line.split(";")
        assert case.case_id == cells[0]
        assert case.patient_id == f"Patient{int(cells[1]):05d}"
        assert case.labels == {"plane": cells[2], "brain_plane": cells[3]}
        assert case.labels["plane"] in classes["plane"] and case.labels["brain_plane"] in classes["brain_plane"]
        assert case.split == {"1 ": "train", "0 ": "test"}[cells[6]]  # values carry a trailing space
        assert case.image == tmp_path / "Images" / f"{cells[0]}.png"
        assert case.meta == {"operator": cells[4], "us_machine": cells[5]}


@pytest.mark.realdata
def test_sample_csv_matches_the_real_format(realdata, mirror, tmp_path):
    """The sample mirror's CSV has the real header (modulo the documented 'Train ' space),
    delimiter, trailing-space values, and name patterns of the real excerpts."""
    root = unpacked(mirror, "fetal_planes_db", tmp_path / "fp")
    sample = (root / "FETAL_PLANES_ZENODO" / "FETAL_PLANES_DB_data.csv").read_text().splitlines()
    real = (realdata / "FETAL_PLANES_DB" / "FETAL_PLANES_DB_data.EXCERPT.csv").read_text().splitlines()
    assert [c.strip() for c in sample[0].split(";")] == real[0].split(";")
    assert sample[0].endswith("Train ")  # the original header's trailing space (DATASETS.md)
    assert all(line.endswith((";1 ", ";0 ")) for line in real[1:] + sample[1:])
    pattern = r"^Patient\d{5}_Plane[1-6]_\d+_of_\d+$"
    assert pd.Series([l.split(";")[0] for l in real[1:] + sample[1:]]).str.match(pattern).all()


def test_fetal_planes_wrong_delimiter_names_file_and_columns(tmp_path, plans):
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text("Image_name,Patient_num,Plane\nx,1,Other\n")
    with pytest.raises(MedcurateError, match=r"FETAL_PLANES_DB_data.csv: missing column.*wrong delimiter"):
        datasets.load("fetal_planes_db").cases(tmp_path, plans["fetal_planes_db"])


def test_fetal_planes_bad_train_value(tmp_path, plans):
    (tmp_path / "FETAL_PLANES_DB_data.csv").write_text(
        "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \nx;1;Other;Not A Brain;Other;Aloka;yes \n")
    with pytest.raises(MedcurateError, match=r"line 2: Train must be 1 or 0, got 'yes'"):
        datasets.load("fetal_planes_db").cases(tmp_path, plans["fetal_planes_db"])
