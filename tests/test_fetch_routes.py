"""Which route a dataset takes (a service, its manual route, the sample mirror), the subset option,
and the whole workflow building CBIS-DDSM and KiTS19 from loopback services by `snakemake` alone."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml
from medcurate.testing import catalogue_copy
from conftest import ROOT, snakemake_exe
from loopback import Services
from medcurate import catalogue
from medcurate.errors import CatalogueError

MIRROR = ROOT / "workflow" / "sample-mirror"
COMMIT = "456b293435b25303bbc7995f094f83a0afdff0eb"


@pytest.fixture
def no_tokens(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "MEDCURATE_SECRETS_FILE", "MEDCURATE_TCIA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def plan_of(ds: str, **config) -> dict:
    cfg = catalogue.load_config({"datasets": [ds], **config}, ROOT)
    return catalogue.plan(catalogue.load_catalogue(cfg)[ds], cfg)


def test_cbis_ddsm_is_open_through_tcia_and_keeps_its_manual_route(no_tokens, tmp_path):
    p = plan_of("cbis_ddsm")
    assert p["access"]["mode"] == "open"
    assert [s["name"] for s in p["sources"]][0] == "CBIS-DDSM" and p["sources"][0]["tcia"]["collection"] == "CBIS-DDSM"
    placed = plan_of("cbis_ddsm", manual_dirs={"cbis_ddsm": str(tmp_path)})
    assert placed["access"]["mode"] == "manual" and "CBIS-DDSM" not in [s["name"] for s in placed["sources"]]
    assert len(placed["sources"]) == 4  # the case-description CSVs are still downloaded


def test_kaggle_dataset_is_fetched_with_a_token_and_manual_without(no_tokens, monkeypatch):
    assert plan_of("ultrasound_nerve")["access"]["mode"] == "manual"
    assert plan_of("ultrasound_nerve")["sources"] == []
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    p = plan_of("ultrasound_nerve")
    assert p["access"]["mode"] == "open" and p["sources"][0]["kaggle"]["competition"] == "ultrasound-nerve-segmentation"


def test_subset_is_part_of_the_fetch_slice_and_of_the_output_digest(no_tokens):
    full, part = plan_of("kits19"), plan_of("kits19", options={"kits19": {"fetch": {"subset": 3}}})
    assert part["sources"][0]["subset"] == 3 and "subset" not in full["sources"][0]
    assert catalogue.step_slice(full, "fetch", "kits19") != catalogue.step_slice(part, "fetch", "kits19")
    assert full["config_digest"] != part["config_digest"]
    for step in ("convert", "clean", "select", "split"):  # the same code path after the download
        assert catalogue.step_slice(full, step) == catalogue.step_slice(part, step)


def test_subset_without_a_folder_source_is_refused_naming_the_field(no_tokens):
    with pytest.raises(CatalogueError, match=r"options\.stare\.fetch\.subset': stare has no source that can be cut"):
        plan_of("stare", options={"stare": {"fetch": {"subset": 3}}})
    with pytest.raises(CatalogueError, match="options"):
        plan_of("kits19", options={"kits19": {"fetch": {"subset": 0}}})


def test_sample_mode_keeps_the_placed_releases(no_tokens):
    cfg = catalogue.load_config(yaml.safe_load((ROOT / "config" / "sample.yaml").read_text()), ROOT)
    entries = catalogue.load_catalogue(cfg)
    for ds in ("cbis_ddsm", "kits19", "ultrasound_nerve"):
        p = catalogue.plan(entries[ds], cfg)
        assert p["access"]["mode"] == "manual" and all("url" in s for s in p["sources"])


# -- the whole workflow -----------------------------------------------------------------------------
def snakemake(workdir: Path, *args, check=True) -> subprocess.CompletedProcess:
    cmd = [snakemake_exe(), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *map(str, args)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def services():
    s = Services()
    s.load_tcia(MIRROR / "cbis_ddsm" / "manual" / "CBIS-DDSM.zip", "CBIS-DDSM")
    s.load_kits(MIRROR / "kits19" / "manual" / "kits19.zip", "neheller/kits19", COMMIT)
    yield s
    s.shutdown()
    s.server_close()


def _catalogue(tmp_path: Path, services: Services) -> Path:
    cat = tmp_path / "catalogue"
    catalogue_copy(cat, "cbis_ddsm", "kits19")
    cbis = yaml.safe_load((cat / "cbis_ddsm.yaml").read_text())
    for src in cbis["sources"]:
        if "tcia" in src:
            src["tcia"]["api"] = services.url("/nbia/v4")
        else:  # the case-description CSVs from the sample mirror
            src["url"] = (MIRROR / "cbis_ddsm" / src["name"]).as_uri()
    (cat / "cbis_ddsm.yaml").write_text(yaml.safe_dump(cbis, sort_keys=False))
    kits = yaml.safe_load((cat / "kits19.yaml").read_text())
    kits["sources"][0]["kits19"].update(github_api=services.url("/github"), raw=services.url("/raw"),
                                        imaging=services.url("/hf/images/{case}.nii.gz"),
                                        imaging_listing=services.url("/hf-api/images"))
    (cat / "kits19.yaml").write_text(yaml.safe_dump(kits, sort_keys=False))
    return cat


@pytest.mark.e2e
def test_workflow_builds_cbis_ddsm_and_kits19_from_the_services_alone(services, tmp_path, no_tokens):
    cat = _catalogue(tmp_path, services)
    # space_check off: the plan sizes the real releases (~164 GB + ~30 GB), the loopback serves samples
    config = {"datasets": ["cbis_ddsm", "kits19"], "catalogue": str(cat), "shards": 1, "space_check": False,
              "download": {"retries": 1, "backoff": 0}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", 2, "--configfile", tmp_path / "config.yaml")
    for ds, name in (("cbis_ddsm", "CBIS-DDSM"), ("kits19", "kits19")):
        info = json.loads((tmp_path / "results" / ds / "dataset.json").read_text())
        assert info["counts"]["curated"] > 0 and "subset" not in info
        (folder,) = [s for s in info["sources"] if s["name"] == name]
        assert folder["kind"] == "folder" and folder["files"] > 0
    served = len(services.paths("/nbia/v4/getImage")) + len(services.paths("/hf/"))

    # The manual route still works: the same release placed by hand gives the same output.
    placed = tmp_path / "placed"
    with zipfile.ZipFile(MIRROR / "cbis_ddsm" / "manual" / "CBIS-DDSM.zip") as zf:
        zf.extractall(placed)
    manual = tmp_path / "manual-run"
    manual.mkdir()
    (manual / "config.yaml").write_text(yaml.safe_dump({**config, "datasets": ["cbis_ddsm"],
                                                         "manual_dirs": {"cbis_ddsm": str(placed)}}))
    snakemake(manual, "--cores", 2, "--configfile", manual / "config.yaml")
    ours, theirs = tmp_path / "results" / "cbis_ddsm", manual / "results" / "cbis_ddsm"
    for sub in ("images", "masks"):  # the same pixels, case for case
        files = sorted(p.relative_to(ours).as_posix() for p in (ours / sub).rglob("*.png"))
        assert files and files == sorted(p.relative_to(theirs).as_posix() for p in (theirs / sub).rglob("*.png"))
        assert all((ours / f).read_bytes() == (theirs / f).read_bytes() for f in files)
    import pandas as pd

    a, b = pd.read_csv(ours / "manifest.csv"), pd.read_csv(theirs / "manifest.csv")
    same = [c for c in a.columns if not a[c].astype(str).str.contains("CBIS-DDSM/").any()]  # not the source paths
    assert list(a.columns) == list(b.columns) and a[same].equals(b[same])

    # A subset: the first 2 women and 2 cases, from what was fetched (no new series or imaging).
    config["options"] = {"cbis_ddsm": {"fetch": {"subset": 2}}, "kits19": {"fetch": {"subset": 2}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", 2, "--configfile", tmp_path / "config.yaml")
    for ds, unit in (("cbis_ddsm", "patients"), ("kits19", "cases")):
        info = json.loads((tmp_path / "results" / ds / "dataset.json").read_text())
        (part,) = info["subset"].values()
        assert part["first"] == 2 and part["unit"] == unit and part["of"] > 2
        assert info["counts"]["patients"] <= 2
    assert len(services.paths("/nbia/v4/getImage")) + len(services.paths("/hf/")) == served


@pytest.mark.e2e
def test_workflow_builds_ultrasound_nerve_through_the_kaggle_api_with_a_token(tmp_path, no_tokens):
    import io

    s = Services()
    try:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:  # the competition's download-all zip
            for name in ("train.zip", "train_masks.csv"):
                zf.write(MIRROR / "ultrasound_nerve" / "manual" / name, name)
        s.kaggle["ultrasound-nerve-segmentation"] = buf.getvalue()
        s.kaggle_user = ("alice", "kaggle-key-456")
        cat = tmp_path / "catalogue"
        catalogue_copy(cat, "ultrasound_nerve")
        entry = yaml.safe_load((cat / "ultrasound_nerve.yaml").read_text())
        entry["sources"][0]["kaggle"]["api"] = s.url("/kaggle/api/v1")
        (cat / "ultrasound_nerve.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
        secrets = tmp_path / "home" / "secrets.yaml"
        secrets.parent.mkdir(parents=True, exist_ok=True)
        secrets.write_text(yaml.safe_dump({"kaggle": {"hosts": ["127.0.0.1"], "username": "alice",
                                                      "key": "kaggle-key-456"}}))
        secrets.chmod(0o600)
        config = {"datasets": ["ultrasound_nerve"], "catalogue": str(cat), "shards": 1,
                  "secrets_file": str(secrets), "download": {"retries": 1, "backoff": 0}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        s.rules_accepted = False
        proc = snakemake(tmp_path, "--cores", 1, "--configfile", tmp_path / "config.yaml", check=False)
        log = (tmp_path / "logs" / "fetch" / "ultrasound_nerve" / "ultrasound-nerve-segmentation.zip.log").read_text()
        assert proc.returncode != 0
        assert "https://www.kaggle.com/competitions/ultrasound-nerve-segmentation/rules" in log
        s.rules_accepted = True
        snakemake(tmp_path, "--cores", 2, "--configfile", tmp_path / "config.yaml")
        info = json.loads((tmp_path / "results" / "ultrasound_nerve" / "dataset.json").read_text())
        assert info["counts"]["cases"] > 0 and info["sources"][0]["name"] == "ultrasound-nerve-segmentation.zip"
        written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*")
                          if p.is_file() and p.suffix in (".json", ".log", ".csv") and p != secrets)
        assert "kaggle-key-456" not in written
    finally:
        s.shutdown()
        s.server_close()


def test_a_folder_source_is_linked_beside_a_placed_release(tmp_path):
    """A gated dataset may also have a service's folder source (e.g. PhysioNet files next to placed
    ones): check_manual links it as it links placed folders, never copying it."""
    from medcurate.manual import prepare
    from medcurate.unpack import Limits

    manual, fetched = tmp_path / "manual", tmp_path / "downloads" / "2.1.0"
    (manual / "extra").mkdir(parents=True)
    (manual / "extra" / "notes.csv").write_text("a\n")
    (fetched / "files" / "p10").mkdir(parents=True)
    (fetched / "files" / "p10" / "x.jpg").write_bytes(b"jpg")
    plan = {"id": "g", "name": "G", "manual_dir": str(manual), "manual_pins": {}, "unpack": {"nested": True},
            "access": {"mode": "manual", "request_url": "https://example.org", "instructions": "x",
                       "expected": [{"path": "extra", "kind": "dir"}, {"path": "2.1.0/files", "kind": "dir"}]}}
    record = {"name": "2.1.0", "path": str(fetched), "kind": "folder", "sha256": "0" * 64, "files": 1}
    ready = prepare(plan, [record], tmp_path / "root", Limits())
    assert (tmp_path / "root" / "2.1.0").is_symlink() and (tmp_path / "root" / "2.1.0" / "files" / "p10" / "x.jpg").is_file()
    assert ready["sources"][0]["kind"] == "folder"


def test_physionet_entry_in_token_mode_is_fetched_only_with_credentials(no_tokens, monkeypatch, tmp_path):
    cat = tmp_path / "catalogue"
    catalogue_copy(cat, "stare")
    entry = yaml.safe_load((cat / "stare.yaml").read_text())
    entry.update(id="physio", sources=[{"name": "mimic-cxr-jpg", "physionet": {"project": "mimic-cxr-jpg",
                                                                               "version": "2.1.0"}}],
                 access={"mode": "token", "request_url": "https://physionet.org/content/mimic-cxr-jpg/2.1.0/",
                         "instructions": "Sign the DUA.", "expected": [{"path": "files", "kind": "dir"}]})
    (cat / "physio.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    assert plan_of("physio", catalogue=str(cat))["access"]["mode"] == "manual"
    monkeypatch.setenv("MEDCURATE_PHYSIONET_USERNAME", "alice")
    monkeypatch.setenv("MEDCURATE_PHYSIONET_PASSWORD", "pw")
    p = plan_of("physio", catalogue=str(cat), options={"physio": {"fetch": {"subset": 10}}})
    assert p["access"]["mode"] == "open" and p["sources"][0]["subset"] == 10
