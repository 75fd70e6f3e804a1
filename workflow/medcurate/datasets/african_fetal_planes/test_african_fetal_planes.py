"""African fetal planes: the real excerpt parsed, the sample CSV's format against it, the country in the patient key."""

import csv
import shutil

import pandas as pd
import pytest

from medcurate import datasets
from medcurate.convert import enumerate_cases
from medcurate.errors import MedcurateError
from medcurate.testing import unpacked


@pytest.mark.realdata
def test_african_real_excerpt_parses(realdata, tmp_path, plans):
    excerpt = realdata / "African_fetal_planes" / "African_planes_database.EXCERPT.csv"
    shutil.copy(excerpt, tmp_path / "African_planes_database.csv")
    cases = datasets.load("african_fetal_planes").cases(tmp_path, plans["african_fetal_planes"])
    rows = list(csv.DictReader(excerpt.open()))
    assert len(cases) == len(rows)
    for case, row in zip(cases, rows):
        assert case.image == tmp_path / row["Center"] / f"{row['Filename']}.png"
        assert case.patient_id == f"{row['Center']}-{int(row['Patient_num']):03d}"
        assert case.labels["plane"] in plans["african_fetal_planes"]["labels"]["classes"]["plane"]
        assert case.split == {"1": "train", "0": "test"}[row["Train"]]


@pytest.mark.realdata
def test_sample_csv_matches_the_real_format(realdata, mirror, tmp_path):
    """The sample mirror's CSV has the real header and name pattern of the real excerpt."""
    root = unpacked(mirror, "african_fetal_planes", tmp_path / "af")
    sample = (root / "Zenodo_dataset" / "Zenodo_dataset" / "African_planes_database.csv").read_text().splitlines()
    real = (realdata / "African_fetal_planes" / "African_planes_database.EXCERPT.csv").read_text().splitlines()
    assert sample[0] == real[0]
    pattern = r"^patient\d{3}_(DZA|EGY|GHA|MWI|UGA)_plane[0-3]$"
    assert pd.Series([l.split(",")[4] for l in real[1:] + sample[1:]]).str.match(pattern).all()


def test_missing_annotation_file_is_named(tmp_path, plans):
    with pytest.raises(MedcurateError, match="African_planes_database.csv' not found"):
        datasets.load("african_fetal_planes").cases(tmp_path, plans["african_fetal_planes"])


def test_african_patient_key_includes_country(mirror, tmp_path, plans):
    root = unpacked(mirror, "african_fetal_planes", tmp_path)
    cases = enumerate_cases(root, plans["african_fetal_planes"])
    by_patient = {}
    for c in cases:
        by_patient.setdefault(c.patient_id, set()).add(c.meta["center"])
    assert all(len(centres) == 1 for centres in by_patient.values())
    assert {"Algeria-001", "Egypt-001", "Ghana-001", "Uganda-001"} <= by_patient.keys()  # numbers collide
    assert all(c.image.is_file() for c in cases)
    assert not any(c.labels["plane"] == "Fetal thorax" and c.meta["center"] in ("Ghana", "Uganda") for c in cases)
