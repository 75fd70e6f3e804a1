"""End to end: snakemake on the sample config in temp folders, the output contract, no-op
re-runs, byte-identical fresh runs, the report, lint and dry-runs, gated datasets, and real
downloads from a loopback server through the whole workflow."""

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, snakemake_exe
from loopback import Loopback
from medcurate import catalogue
from PIL import Image

pytestmark = pytest.mark.e2e
SAMPLE = ROOT / "config" / "sample.yaml"
DATASETS = list(catalogue.ids())  # config/sample.yaml builds them all
OPEN = ["fetal_planes_db", "african_fetal_planes", "fetal_head_biometry"]


def snakemake(exe, workdir: Path, *args, check=True) -> subprocess.CompletedProcess:
    cmd = [exe, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *map(str, args)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    exe = snakemake_exe()
    workdir = tmp_path_factory.mktemp("demo")
    snakemake(exe, workdir, "--cores", 2, "--configfile", SAMPLE)
    return exe, workdir


def test_output_contract(demo):
    _, workdir = demo
    for ds in DATASETS:
        out = workdir / "results" / ds
        info = json.loads((out / "dataset.json").read_text())
        for key in ("name", "task", "modality", "labels", "license", "citation", "sources", "counts",
                    "medcurate_version", "config_digest"):
            assert key in info, (ds, key)
        m = pd.read_csv(out / "manifest.csv", keep_default_na=False)
        for col in ("case_id", "patient_id", "split", "image", "mask", "width", "height", "source", "curated", "exclusion"):
            assert col in m.columns, (ds, col)
        assert m.case_id.is_unique and set(m.split) == {"train", "val", "test"}
        assert m.groupby("patient_id").split.nunique().max() == 1, "a patient in two splits"
        assert set(m.curated) <= {0, 1} and ((m.curated == 0) == (m.exclusion != "")).all()
        if info["task"] == "volume_segmentation":
            _check_nnunet(out, m, info)
        else:
            assert sorted(p.name for p in (out / "images").iterdir()) == sorted(Path(i).name for i in m.image)
        values = set(info["labels"].get("mask", {}).values())
        extra = {f"mask_{name}": set(table.values()) for name, table in info["labels"].get("extra_masks", {}).items()}
        for row in m.to_dict("records"):
            if info["task"] == "volume_segmentation":
                continue
            im = Image.open(out / row["image"])
            assert (im.width, im.height) == (row["width"], row["height"])
            if info["task"] in ("segmentation", "wsi_tiling", "detection"):
                for column, allowed in [("mask", values), *extra.items()]:
                    if not row[column]:
                        assert column != "mask" or info["task"] == "detection", (ds, row["case_id"])
                        continue
                    mask = np.asarray(Image.open(out / row[column]))
                    assert mask.dtype == np.uint8 and mask.shape == (row["height"], row["width"]), (ds, column)
                    assert set(np.unique(mask)) <= allowed, (ds, column)
        if info["task"] == "detection":
            _check_boxes(out, m, info)
        if info["task"] == "wsi_tiling":
            assert all((out / "overviews" / f"{slide}.png").is_file() for slide in set(m.slide.astype(str)))
        for s, c in info["counts"]["splits"].items():
            assert c["cases"] == (m.split == s).sum()
        for src in info["sources"]:  # downloads and placed archives are checksummed; folders are linked
            assert src.get("sha256") or src.get("kind") in ("folder", "file"), (ds, src)
            assert src.get("origin") == "manual" or src["url"].startswith(("https://", "http://peipa.essex.ac.uk/")), (ds, src)
        if ds in OPEN:
            assert all(src["url"].startswith("https://zenodo.org/") for src in info["sources"])
        assert (out / "qc" / "montage.png").stat().st_size > 1000
        for line in (out / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split("  ", 1)
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    seg = pd.read_csv(workdir / "results" / "fetal_head_biometry" / "manifest.csv", keep_default_na=False)
    assert set(seg.derived_from) == {"FETAL_PLANES_DB", "HC18"}
    assert not (workdir / "work" / "fetal_planes_db" / "shard-0").exists()  # shards are temporary


def _check_boxes(out: Path, m: pd.DataFrame, info: dict) -> None:
    """Detection datasets: boxes.csv inside each image, COCO per split holding the curated cases."""
    boxes = pd.read_csv(out / "boxes.csv", dtype={"case_id": str})
    sizes = m.assign(case_id=m.case_id.astype(str)).set_index("case_id")[["width", "height"]]
    joined = boxes.join(sizes, on="case_id")
    assert not joined.width.isna().any() and set(boxes["class"]) <= set(info["labels"]["boxes"])
    assert ((0 <= joined.x0) & (joined.x0 < joined.x1) & (joined.x1 <= joined.width)).all()
    assert ((0 <= joined.y0) & (joined.y0 < joined.y1) & (joined.y1 <= joined.height)).all()
    for split in ("train", "val", "test"):
        coco = json.loads((out / "coco" / f"{split}.json").read_text())
        expected = m[(m.split == split) & (m.curated == 1)].case_id.astype(str)
        assert sorted(i["case_id"] for i in coco["images"]) == sorted(expected)
        assert len(coco["annotations"]) == int(boxes.case_id.isin(set(expected)).sum())


def _check_nnunet(out: Path, m: pd.DataFrame, info: dict) -> None:
    """Volume datasets: NIfTI volumes in nnU-Net v2's layout, as its integrity check expects."""
    import nibabel as nib

    nn = out / "nnunet"
    spec = json.loads((nn / "dataset.json").read_text())
    assert spec["file_ending"] == ".nii.gz" and spec["labels"] == info["labels"]["mask"]
    assert spec["channel_names"] == info["labels"]["channels"]
    training = sorted((nn / "imagesTr").glob("*_0000.nii.gz"))
    assert spec["numTraining"] == len(training) == len(list((nn / "labelsTr").glob("*.nii.gz")))
    folds = json.loads((nn / "splits_final.json").read_text())
    curated = m[m.curated == 1]
    assert sorted(folds[0]["train"]) == sorted(curated.loc[curated.split == "train", "case_id"])
    assert sorted(folds[0]["val"]) == sorted(curated.loc[curated.split == "val", "case_id"])
    patients = dict(zip(curated.case_id, curated.patient_id))
    assert len(folds) == 5 and all(not {patients[c] for c in f["train"]} & {patients[c] for c in f["val"]} for f in folds)
    for row in m.itertuples():
        image, label = nib.load(out / row.image), nib.load(out / row.mask)
        home = "volumes/images/" if not row.curated else "nnunet/imagesTs/" if row.split == "test" else "nnunet/imagesTr/"
        assert row.image.startswith(home), (row.case_id, row.image)
        assert image.shape == label.shape == (row.width, row.height, row.depth)
        assert np.allclose(image.affine, label.affine)
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        data = np.asarray(label.dataobj)
        assert data.dtype == np.uint8 and set(np.unique(data)) <= set(spec["labels"].values())


def test_rerun_has_nothing_to_do(demo):
    exe, workdir = demo
    proc = snakemake(exe, workdir, "--cores", 2, "--configfile", SAMPLE, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_fresh_runs_are_byte_identical(demo, tmp_path):
    exe, first = demo
    snakemake(exe, tmp_path, "--cores", 1, "--configfile", SAMPLE)
    for ds in DATASETS:
        a = (first / "results" / ds / "SHA256SUMS").read_text()
        assert a == (tmp_path / "results" / ds / "SHA256SUMS").read_text(), ds


def test_report_shows_the_montages(demo):
    exe, workdir = demo
    snakemake(exe, workdir, "--configfile", SAMPLE, "--report", workdir / "report.zip")
    import zipfile

    names = zipfile.ZipFile(workdir / "report.zip").namelist()
    assert sum(n.endswith("montage.png") for n in names) == len(DATASETS)


def test_lint_and_offline_dry_run_of_the_real_config(snakemake_bin, tmp_path):
    proc = snakemake(snakemake_bin, tmp_path, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr
    proc = snakemake(snakemake_bin, tmp_path, "-n", "--cores", 2)
    out = proc.stdout + proc.stderr
    for rule in ("fetch_source", "unpack_archives", "convert_shard", "clean_masks", "select_curated", "split_dataset",
                 "publish_dataset"):
        assert rule in out


def test_rulegraph_shows_the_chain(snakemake_bin, tmp_path):
    proc = snakemake(snakemake_bin, tmp_path, "--configfile", SAMPLE, "--rulegraph")
    nodes = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", proc.stdout, re.M))
    edges = {(nodes[a], nodes[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)$", proc.stdout, re.M)}
    chain = [("fetch_source", "unpack_archives"), ("fetch_source", "check_manual"), ("unpack_archives", "convert_shard"),
             ("check_manual", "convert_shard"), ("convert_shard", "clean_masks"), ("clean_masks", "select_curated"),
             ("convert_shard", "select_curated"), ("select_curated", "split_dataset"), ("split_dataset", "publish_dataset"),
             ("convert_shard", "publish_dataset"), ("clean_masks", "publish_dataset")]
    assert set(chain) <= edges


def _catalogue_copy(tmp_path: Path, ds: str = "african_fetal_planes") -> Path:
    """A config's own catalogue folder holding a copy of one entry (it replaces the package's)."""
    cat = tmp_path / "catalogue"
    cat.mkdir()
    shutil.copy(catalogue.folder(ds) / "dataset.yaml", cat / f"{ds}.yaml")
    return cat


def test_malformed_catalogue_entry_stops_the_workflow(snakemake_bin, tmp_path):
    cat = _catalogue_copy(tmp_path)
    entry = cat / "african_fetal_planes.yaml"
    entry.write_text(entry.read_text().replace("task: classification", "task: clasification"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"datasets": ["fetal_planes_db"], "catalogue": str(cat)}))
    proc = snakemake(snakemake_bin, tmp_path, "-n", "--configfile", config, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"{entry}: invalid dataset entry" in out and "field 'task'" in out


def test_gated_dataset_fails_first_with_instructions_then_builds(snakemake_bin, mirror, tmp_path, server):
    """With nothing placed, the console shows what to request (the main process says it before any
    job runs) and nothing is downloaded, even where the dataset has downloads of its own."""
    server.routes["/notes.txt"] = {"data": b"extra file\n", "content_type": "text/plain"}
    cat = _catalogue_copy(tmp_path)
    entry = yaml.safe_load((catalogue.folder("fetal_planes_db") / "dataset.yaml").read_text())
    entry.update(id="gated_planes", sources=[{"name": "notes.txt", "url": server.url("/notes.txt")}], access={
        "mode": "manual", "request_url": "https://example.org/request-access",
        "instructions": "Sign the data-use agreement; you receive a download link by e-mail.",
        "expected": [{"path": "FETAL_PLANES_DB_data.csv"}, {"path": "Images", "kind": "dir"}]})
    (cat / "gated_planes.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"datasets": ["gated_planes"], "catalogue": str(cat), "shards": 2}))

    proc = snakemake(snakemake_bin, tmp_path, "--cores", 2, "--configfile", config, check=False)
    assert proc.returncode != 0
    console = proc.stdout + proc.stderr
    assert "is a gated dataset and is not (completely) in place" in console
    assert "1. Request access: https://example.org/request-access" in console
    assert server.requests == []
    log = (tmp_path / "logs" / "check_manual" / "gated_planes.log").read_text()
    assert "https://example.org/request-access" in log and "resources/manual/gated_planes/" in log
    assert "missing file: FETAL_PLANES_DB_data.csv" in log and "missing or empty folder: Images/" in log
    assert not (tmp_path / "work" / "gated_planes").exists() and not (tmp_path / "results").exists()

    import zipfile

    with zipfile.ZipFile(mirror / "fetal_planes_db" / "FETAL_PLANES_ZENODO.zip") as zf:
        zf.extractall(tmp_path / "resources" / "manual" / "gated_planes")
    snakemake(snakemake_bin, tmp_path, "--cores", 2, "--configfile", config)
    info = json.loads((tmp_path / "results" / "gated_planes" / "dataset.json").read_text())
    assert info["counts"]["cases"] > 0 and [s["name"] for s in info["sources"]] == ["notes.txt", "FETAL_PLANES_DB_data.csv", "Images"]
    assert server.hits("/notes.txt") == 1


def test_real_download_path_with_zenodo_checksum(snakemake_bin, mirror, tmp_path):
    archive = (mirror / "african_fetal_planes" / "Zenodo_dataset.tar.xz").read_bytes()
    server = Loopback({"Zenodo_dataset.tar.xz": archive}, 7540448)
    base = server.base
    try:
        cat = _catalogue_copy(tmp_path)
        entry = cat / "african_fetal_planes.yaml"
        text = entry.read_text().replace("https://zenodo.org/records/7540448/files/", f"{base}/files/")
        entry.write_text(text.replace("https://zenodo.org/api/records/7540448/files/Zenodo_dataset.tar.xz/content",
                                      f"{base}/files/missing"))
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"datasets": ["african_fetal_planes"], "catalogue": str(cat),
                                          "download": {"zenodo_api": f"{base}/api", "retries": 1, "backoff": 0}}))
        snakemake(snakemake_bin, tmp_path, "--cores", 2, "--configfile", config)
        info = json.loads((tmp_path / "results" / "african_fetal_planes" / "dataset.json").read_text())
        (source,) = info["sources"]
        assert source["checksum_source"] == "zenodo-api"
        assert source["md5"] == hashlib.md5(archive).hexdigest()
        assert source["sha256"] == hashlib.sha256(archive).hexdigest()
        n = len(server.requests)
        # Cached and verified: a forced re-run of the whole dataset does not download again.
        snakemake(snakemake_bin, tmp_path, "--cores", 2, "--configfile", config, "--forceall")
        assert len(server.requests) == n
    finally:
        server.shutdown()
        server.server_close()
