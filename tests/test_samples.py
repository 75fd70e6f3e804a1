"""The sample mirror is deterministic, matches its pins, and follows the documented layouts."""

import zipfile

import yaml
from conftest import ROOT
from medcurate.atomic import file_digest

PINS = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())["sample_mirror"]


def test_regenerated_mirror_matches_pins_and_committed_copy(mirror):
    generated = {p.relative_to(mirror).as_posix(): file_digest(p) for p in mirror.rglob("*") if p.is_file()}
    assert generated == PINS["sha256"], "run `medcurate samples` and update config/sample.yaml"
    committed = ROOT / PINS["root"]
    assert {k: file_digest(committed / k) for k in PINS["sha256"]} == PINS["sha256"]


def test_fetal_head_archives_follow_the_documented_names(mirror):
    """Names from ../shared/realdata/FetalHeadBiometry_zenodo8265464/LAYOUT_NOTES.md."""
    def names(zip_name):
        with zipfile.ZipFile(mirror / "fetal_head_biometry" / zip_name) as zf:
            return set(zf.namelist())

    tt, tc, tv = names("Trans-thalamic.zip"), names("Trans-cerebellum.zip"), names("Trans-ventricular.zip")
    diverse = names("Diverse Fetal Head Images.zip")
    assert {"Trans-Thalamic-Pixel-Size.csv", "Trans-thalamic-Cityscapes.zip"} <= tt
    assert "Trans-ventricular-CityScapes.zip" in tv and "Test-Dataset-CitySpaces.zip" in diverse
    assert any(n.startswith("Trans-cerebellum-Segmentation/SegmentationClass/") for n in tc)
    assert any(n.startswith("Orginal_train_images_to_959_661/") for n in diverse)
    assert any(n.startswith("Test-Dataset-Segmentation/SegmentationClass/") for n in diverse)
    assert not any("Pixel-Size" in n for n in diverse)
    with zipfile.ZipFile(mirror / "fetal_head_biometry" / "Trans-cerebellum.zip") as zf:
        raw = zf.read("Trans-cerebellum-Pixel-Size.csv")
    assert raw.startswith(b"\xef\xbb\xbfLabel,Pixel  in mm")  # BOM and the two-space header
