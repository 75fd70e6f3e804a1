"""Reliability: the pipeline loses nothing under faults and hostile input.

1. The bad-input matrix (``ROWS``): one row per fault. Each row starts from a workspace laid out
   like a real run (``resources/``, ``work/``, ``results/``, ``logs/``) holding outputs built
   earlier: an open dataset (african_fetal_planes, from the sample mirror) and a small synthetic
   segmentation dataset ("matrix": PNG, TIFF, JPEG and DICOM images with label masks). The row
   plants its fault, runs the job(s) it hits exactly as a Snakemake job does (``medcurate <step>``
   with its log file), and asserts four things:

   a. the job log names the file and the reason;
   b. the job fails (so the Snakemake run fails) -- or, where the dataset can go on without that
      file, the case is quarantined: listed in ``quarantine.csv``, counted in ``dataset.json`` and
      named in the log -- or, for transient faults, the job recovers and says so;
   c. nothing partial is promoted: the job's outputs are absent or unchanged (quarantine: the
      case has no image or mask in the result, which verifies against its SHA256SUMS), and no
      temporary file is left behind (a download's ``.part`` is kept on purpose: it is resumed);
   d. outputs built earlier are untouched: every other file in the workspace is byte-, inode-
      and mtime-identical.

   The mammography annotation rows (OsiriX plist XML, VIA CSV, BCDR outlines) run the real dataset
   modules end to end on their sample-mirror release (``*_real_module``), and their pure parser
   functions directly (``test_annotation_parser``); they skip, naming the module, if it is absent.
2. Disk full: the same four assertions with the job's destination on a small tmpfs; a killed
   attempt's staging folder is removed by the next attempt.
3. Concurrency: a second run on the same output folder is refused naming the folder and holder.
4. Secrets: tokens reach only their host and never a log, record, output or error message.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import types
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, prepared, sample_plan, snakemake_exe
from loopback import DATA, HTML, SHA256, Loopback, Server
from medcurate import catalogue, cli
from medcurate import secrets as secrets_mod
from medcurate.datasets import Case, find_one, read_table
from medcurate.dicom import read_dicom
from medcurate.errors import CaseError, FetchError, MedcurateError
from medcurate.fetch import fetch
from medcurate.images import read_image
from medcurate.lock import ENV as LOCK_ENV
from medcurate.lock import LOCK_NAME, FolderLock, LockedError, RunLock
from PIL import Image
from test_unpack import make_tar, make_zip, tar_member, zeros_zip

MIRROR = ROOT / "workflow" / "sample-mirror"
MiB = 2**20
TEMP_NAME = re.compile(r"(\.tmp|\.staging|\.old|\.unpacking)$|^\.medcurate\.lock$")


# =================================================================================================
# The synthetic "matrix" dataset: the generic readers and writers, without any dataset's quirks
# =================================================================================================

MODULE = "reliability_matrix"


def _matrix_cases(root: Path, plan: dict) -> list[Case]:
    table = find_one(root, "cases.csv")
    df = read_table(table, ",", ["case_id", "patient_id", "image", "mask"])
    return [Case(case_id=r.case_id, patient_id=r.patient_id, image=table.parent / r.image,
                 mask=table.parent / r.mask if r.mask else None) for r in df.itertuples()]


def _matrix_image(case: Case, plan: dict) -> np.ndarray:
    if case.image.suffix == ".dcm":
        return read_dicom(case.image, plan["dicom"])
    return read_image(case.image, plan["convert"]["image_mode"])


def _matrix_mask(case: Case, plan: dict):
    if case.mask is None:
        raise CaseError(case.image, "image has no mask")
    return read_image(case.mask, "L"), []


@pytest.fixture(scope="module", autouse=True)
def matrix_module():
    mod = types.ModuleType(f"medcurate.datasets.{MODULE}")
    mod.cases, mod.load_image, mod.load_mask = _matrix_cases, _matrix_image, _matrix_mask
    sys.modules[mod.__name__] = mod
    yield mod
    sys.modules.pop(mod.__name__, None)


def _config() -> dict:
    return catalogue.load_config({"datasets": ["african_fetal_planes"], "shards": 2}, ROOT)


def matrix_plan(**curation) -> dict:
    entry = catalogue.validate({
        "id": "matrix", "name": "Reliability matrix (synthetic)", "module": MODULE, "task": "segmentation",
        "modality": "mammography", "license": "CC0", "citation": "none", "homepage": "https://example.org",
        "access": {"mode": "open"}, "sources": [], "labels": {"mask": {"background": 0, "lesion": 1}},
        "split": {"val_fraction": 0.2, "test_fraction": 0.2}, "qc": {"qc_samples": 4},
        **{step: {k: v for k, v in curation.items() if catalogue.MOVED[k] == step} for step in ("convert", "clean", "select")},
    }, "dataset", "matrix")
    return catalogue.plan(entry, _config())


def grey(seed: int, shape=(40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape[0] * shape[1]).reshape(shape) // 8 * 8).astype(np.uint8)


def lesion_mask(shape=(40, 48)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[10:25, 12:30] = 1
    return m


def write_dicom(path: Path, pixels: np.ndarray, syntax=None) -> Path:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    if syntax is not None:  # a compressed syntax: declare it over an encapsulated frame
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])
    ds.save_as(path, enforce_file_format=True)
    return path


MATRIX_CASES = {  # case id -> image file (masks are masks/<case id>.png)
    "m01_png": "images/m01_png.png", "m02_tif": "images/m02_tif.tif", "m03_jpg": "images/m03_jpg.jpg",
    "m04_dcm": "images/m04_dcm.dcm", "m05_png": "images/m05_png.png", "m06_png": "images/m06_png.png",
    "m07_png": "images/m07_png.png", "m08_png": "images/m08_png.png",
}


def matrix_release(folder: Path) -> Path:
    """The synthetic dataset's files, as a publisher would ship them (before zipping)."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i, (case, image) in enumerate(MATRIX_CASES.items()):
        pixels, path = grey(i), folder / image
        if path.suffix == ".dcm":
            write_dicom(path, pixels.astype(np.uint16) * 16)
        else:
            Image.fromarray(pixels).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(pixels).save(path)
        Image.fromarray(lesion_mask()).save(folder / "masks" / f"{case}.png")
    rows = [{"case_id": c, "patient_id": f"P{i // 2:02d}", "image": img, "mask": f"masks/{c}.png"}
            for i, (c, img) in enumerate(MATRIX_CASES.items())]
    with open(folder / "cases.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["case_id", "patient_id", "image", "mask"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return folder


# =================================================================================================
# Workspace: the folders of one run, and jobs run exactly as the Snakemake rules run them
# =================================================================================================

@dataclass
class Job:
    argv: list[str]
    log: str  # relative to logs/
    env: dict = field(default_factory=dict)  # as the workflow sets it (download settings)


@dataclass
class Result:
    rc: int
    logs: dict[str, str]

    @property
    def text(self) -> str:
        return "\n".join(self.logs.values())


class Workspace:
    def __init__(self, root: Path):
        self.root = root
        self.res, self.work, self.out, self.logs = (root / d for d in ("resources", "work", "results", "logs"))

    def slice_file(self, plan: dict, step: str, source: str | None = None) -> str:
        """The step's slice, as the workflow writes it (catalogue.step_slice)."""
        path = self.work / "slices" / plan["id"] / f"{step}{'-' + source if source else ''}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = catalogue.step_slice(plan, step, source)
        path.write_text(json.dumps({**data, **({"placed": "test"} if step == "check_manual" else {})}, indent=1))
        return str(path)

    def run(self, jobs: list[Job]) -> Result:
        """Run jobs in order, like Snakemake, stopping at the first failure."""
        logs, rc = {}, 0
        for job in jobs:
            rc, logs[job.log] = run_job(self.logs / job.log, job.argv, job.env)
            if rc:
                break
        return Result(rc, logs)

    # -- the jobs of each rule ----------------------------------------------------------------
    def fetch_jobs(self, plan: dict, name: str) -> list[Job]:
        ds = plan["id"]
        env = {cli.DOWNLOAD_ENV: json.dumps(plan["download"])} if "download" in plan else {}
        return [Job(["fetch", "--slice", self.slice_file(plan, "fetch", name), "--source", name,
                     "--dest", str(self.res / "downloads" / ds / name),
                     "--record", str(self.res / "fetched" / ds / f"{name}.json")], f"fetch/{ds}/{name}.log", env)]

    def unpack_jobs(self, plan: dict, records: list[Path]) -> list[Job]:
        ds = plan["id"]
        return [Job(["unpack", "--slice", self.slice_file(plan, "unpack"), "--records", *map(str, records),
                     "--dest", str(self.res / "unpacked" / ds), "--out", str(self.res / "ready" / f"{ds}.json")],
                    f"unpack/{ds}.log")]

    def manual_jobs(self, plan: dict) -> list[Job]:
        ds = plan["id"]
        return [Job(["check-manual", "--slice", self.slice_file(plan, "check_manual"), "--records",
                     "--dest", str(self.res / "unpacked" / ds), "--out", str(self.res / "ready" / f"{ds}.json")],
                    f"check_manual/{ds}.log")]

    def convert_jobs(self, plan: dict, out: Path | None = None) -> list[Job]:
        """convert (every shard), clean (2-D segmentation), select, split and publish."""
        ds, n = plan["id"], catalogue.shard_count(plan)
        ready, work = str(self.res / "ready" / f"{ds}.json"), self.work / ds
        converted = [str(work / "converted" / f"shard-{i}") for i in range(n)]
        cleaned = [str(work / "cleaned" / f"shard-{i}") for i in range(n)] if plan["task"] == "segmentation" else []
        jobs = [Job(["convert", "--slice", self.slice_file(plan, "convert"), "--ready", ready, "--shard", str(i),
                     "--shards", str(n), "--out", converted[i]], f"convert/{ds}/shard-{i}.log") for i in range(n)]
        jobs += [Job(["clean", "--slice", self.slice_file(plan, "clean"), "--converted", src, "--out", dest],
                     f"clean/{ds}/shard-{i}.log") for i, (src, dest) in enumerate(zip(converted, cleaned))]
        selected, split = str(work / "selected.csv"), str(work / "split")
        return jobs + [
            Job(["select", "--slice", self.slice_file(plan, "select"), "--tiers", *(cleaned or converted), "--out", selected],
                f"select/{ds}.log"),
            Job(["split", "--slice", self.slice_file(plan, "split"), "--selected", selected, "--tiers", *converted, *cleaned,
                 "--out", split], f"split/{ds}.log"),
            Job(["publish", "--slice", self.slice_file(plan, "publish"), "--ready", ready, "--tiers", *converted, *cleaned,
                 "--split", split, "--out", str(out or self.out / ds)], f"publish/{ds}.log")]

    def record(self, ds: str, archive: Path) -> Path:
        """A fetch record for a file already in resources/downloads (as the fetch job writes it)."""
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        path = self.res / "fetched" / ds / f"{archive.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": archive.name, "path": str(archive), "sha256": digest,
                                    "size": archive.stat().st_size, "checksum_source": "pinned"}))
        return path


def run_job(log_path: Path, argv: list[str], env: dict | None = None) -> tuple[int, str]:
    """``python -m medcurate <argv> > log 2>&1``, in-process (the rules' command, minus interpreter start)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    logger, root = logging.getLogger("medcurate"), logging.getLogger()
    with open(log_path, "w") as fh, contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        level, placeholder = logger.level, logging.NullHandler()
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        root.addHandler(placeholder)  # so cli.main's basicConfig adds no handler of its own
        try:
            rc = cli.main(argv)
        except Exception as exc:  # noqa: BLE001 - an unhandled exception is a finding: no clear message
            import traceback

            traceback.print_exc(file=fh)
            rc = f"crashed with {type(exc).__name__}"
        finally:
            logger.removeHandler(handler)
            root.removeHandler(placeholder)
            logger.setLevel(level)
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return rc, log_path.read_text()


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything under root but logs/: kind, content digest, inode, mtime (symlinks not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts[:1] == ("logs",):
            continue
        for name in dirnames + filenames:
            if not rel_dir.parts and name == "logs":
                continue
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                out[(rel_dir / name).as_posix()] = ("link", os.readlink(p))
            elif p.is_dir():
                out[(rel_dir / name).as_posix()] = ("dir", st.st_ino)
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[(rel_dir / name).as_posix()] = ("file", digest, st.st_ino, st.st_mtime_ns)
    return out


def changes(before: dict, after: dict) -> dict[str, str]:
    out = {}
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            out[path] = "removed"
        elif path not in before:
            out[path] = "added"
        elif before[path] != after[path]:
            out[path] = "changed"
    return out


def copy_workspace(template: Path, dest: Path) -> Workspace:
    shutil.copytree(template, dest, symlinks=True)
    for folder in ("resources/ready", "resources/fetched"):
        for path in (dest / folder).rglob("*.json"):
            path.write_text(path.read_text().replace(str(template), str(dest)))
    return Workspace(dest)


@pytest.fixture(scope="module")
def template(tmp_path_factory, matrix_module) -> Path:
    """Outputs built earlier: african_fetal_planes (fetched from the sample mirror, unpacked,
    converted, gathered) and the matrix dataset (unpacked from its zip, converted, gathered)."""
    root = tmp_path_factory.mktemp("template")
    ws = Workspace(root)
    raw = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())
    config = catalogue.load_config({**raw, "datasets": ["african_fetal_planes"]}, ROOT)
    plan = catalogue.plan(catalogue.load_catalogue(config)["african_fetal_planes"], config)
    (source,) = plan["sources"]
    jobs = ws.fetch_jobs(plan, source["name"])
    jobs += ws.unpack_jobs(plan, [ws.res / "fetched" / plan["id"] / f"{source['name']}.json"])
    jobs += ws.convert_jobs(plan)
    result = ws.run(jobs)
    assert result.rc == 0, result.text

    release = matrix_release(tmp_path_factory.mktemp("matrix-release") / "matrix")
    archive = ws.res / "downloads" / "matrix" / "matrix.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(release.rglob("*")):
            zf.write(p, p.relative_to(release.parent).as_posix())
    plan = matrix_plan()
    result = ws.run(ws.unpack_jobs(plan, [ws.record("matrix", archive)]) + ws.convert_jobs(plan))
    assert result.rc == 0, result.text
    shutil.rmtree(ws.logs)
    shutil.rmtree(ws.work / "matrix")
    shutil.rmtree(ws.work / "african_fetal_planes")
    return root


# =================================================================================================
# The matrix
# =================================================================================================

@dataclass
class Setup:
    """What a row planted: the jobs to run, the file the error must name, the job's own outputs."""
    jobs: list[Job]
    file: str  # the path (or archive label) the message must name
    outputs: list[Path] = field(default_factory=list)
    keeps: list[Path] = field(default_factory=list)  # left on purpose (a download's .part, for the resume)
    scratch: list[Path] = field(default_factory=list)  # complete outputs of jobs that succeeded before the failure
    check: Callable[[Workspace, Result], None] | None = None  # row-specific assertions


@dataclass
class Row:
    id: str
    expect: str  # "fails" | "quarantined" | "recovers"
    reason: str  # regex the log must match
    setup: Callable[..., Setup]
    case: str | None = None  # quarantined rows: the case id
    marks: tuple = ()


def _matrix_root(ws: Workspace) -> Path:
    return ws.res / "unpacked" / "matrix" / "matrix" / "matrix"


# -- downloads -------------------------------------------------------------------------------------

def fetch_row(route: dict | None = None, part: bytes | None = None, check=None, **source):
    """Fetch f.zip (300 kB, sha256 pinned) from the loopback server; an older release of it is in place."""

    def setup(ws: Workspace, server: Server) -> Setup:
        server.routes["/f.zip"] = dict(route or {})
        plan = matrix_plan()
        plan["sources"] = [{"name": "f.zip", "url": server.url("/f.zip"), "sha256": SHA256, **source}]
        plan["download"] = {"zenodo_api": server.url("/api"), "timeout": 5, "retries": 2, "backoff": 0.01}
        dest = ws.res / "downloads" / "matrix" / "f.zip"
        dest.write_bytes(b"PK\x03\x04 an older release of f.zip")
        if part is not None:
            Path(f"{dest}.part").write_bytes(part)
        return Setup(ws.fetch_jobs(plan, "f.zip"), str(dest), outputs=[
            dest, Path(f"{dest}.part"), Path(f"{dest}.verified.json"), ws.res / "fetched" / "matrix" / "f.zip.json"],
            check=(lambda ws, result: check(server)) if check else None)
    return setup


def _resumed(server: Server, k: int = 100_000) -> None:
    assert [h.get("Range") for p, h in server.requests] == [None, f"bytes={k}-"]
    assert server.sent == len(DATA)  # only the remainder was sent again


# -- archives --------------------------------------------------------------------------------------

def archive_row(build: Callable[[Path], Path], **limits):
    """A new download of the matrix dataset that is hostile or broken; unpacked over the earlier one."""

    def setup(ws: Workspace, server: Server) -> Setup:
        folder = ws.res / "downloads" / "matrix"
        archive = build(folder)
        plan = matrix_plan()
        plan["unpack"].update(limits)
        return Setup(ws.unpack_jobs(plan, [ws.record("matrix", archive)]), str(archive),
                     outputs=[ws.res / "unpacked" / "matrix", ws.res / "ready" / "matrix.json"])
    return setup


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _tar_with(name: str, **attrs):
    def build(folder: Path) -> Path:
        path = folder / "evil.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            tar_member(tf, "matrix/cases.csv", b"case_id,patient_id,image,mask\n")
            tar_member(tf, name, b"" if attrs else b"evil", **attrs)
        return path
    return build


def _zip_with(name: str) -> Callable[[Path], Path]:
    return lambda folder: make_zip(folder / "evil.zip", {"matrix/cases.csv": b"case_id\n", name: b"evil"})


def _html(folder: Path) -> Path:
    path = folder / "matrix.zip"  # a login page saved under the archive's name (e.g. a manual download)
    path.write_bytes(HTML)
    return path


# -- gated dataset placed by hand --------------------------------------------------------------------

def manual_row(place: Callable[[Path], None], expected: list[dict]):
    def setup(ws: Workspace, server: Server) -> Setup:
        plan = matrix_plan()
        folder = ws.root / "placed" / "matrix"
        folder.mkdir(parents=True)
        place(folder)
        plan["access"] = {"mode": "manual", "request_url": "https://example.org/apply",
                          "instructions": "Sign the agreement.", "expected": expected}
        plan["manual_dir"] = str(folder)
        return Setup(ws.manual_jobs(plan), str(folder),
                     outputs=[ws.res / "unpacked" / "matrix", ws.res / "ready" / "matrix.json"])
    return setup


def _place_release(broken: str | None = None):
    def place(folder: Path) -> None:
        matrix_release(folder / "release")
        if broken:
            (folder / "release" / broken).write_text("edited by hand\n")
    return place


# -- cases -----------------------------------------------------------------------------------------

def case_row(damage: Callable[[Path], str], **curation):
    """Damage the matrix dataset's unpacked files, then convert every shard and gather."""

    def setup(ws: Workspace, server: Server) -> Setup:
        rel = damage(_matrix_root(ws))
        plan = matrix_plan(**curation)
        # quarantine.csv and the log give sources relative to the dataset root (resources/unpacked/matrix)
        file = rel if rel == "matrix" else f"matrix/matrix/{rel}"
        return Setup(ws.convert_jobs(plan), file, outputs=[ws.out / "matrix"], scratch=[ws.work / "matrix"])
    return setup


def _overwrite(rel: str, data: Callable[[bytes], bytes]):
    def damage(root: Path) -> str:
        path = root / rel
        path.write_bytes(data(path.read_bytes()))
        return rel
    return damage


def _half(b: bytes) -> bytes:
    return b[: len(b) // 2]


def _tif_garbled(b: bytes) -> bytes:  # a TIFF whose strip offsets point past the end
    out = io.BytesIO()
    Image.fromarray(grey(1)).save(out, format="TIFF")
    data = out.getvalue()
    return data[: len(data) // 3]


def _no_decoder(root: Path) -> str:
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLosslessSV1

    # JPEG Lossless needs the opt-in GPL codec; where that is installed, a vendor's private syntax
    syntax = JPEGLosslessSV1 if not get_decoder(JPEGLosslessSV1).is_available else "1.2.826.0.1.3680043.9999.1"
    write_dicom(root / "images/m04_dcm.dcm", grey(3).astype(np.uint16), syntax=syntax)
    return "images/m04_dcm.dcm"


def _mask_of_other_size(root: Path) -> str:
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(root / "masks/m05_png.png")
    return "masks/m05_png.png"


def _every_image_corrupt(root: Path) -> str:
    for image in MATRIX_CASES.values():
        (root / image).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return "matrix"


def _every_mask_empty(root: Path) -> str:
    for case in MATRIX_CASES:
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(root / "masks" / f"{case}.png")
    return "matrix"


def _drop_column(root: Path) -> str:
    path = root / "cases.csv"
    rows = [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]
    path.write_text("\n".join(rows) + "\n")
    return "cases.csv"


def african_row(damage: Callable[[Path], str]):
    """The same, on a real dataset module (african_fetal_planes)."""

    def setup(ws: Workspace, server: Server) -> Setup:
        root = ws.res / "unpacked" / "african_fetal_planes"
        rel = damage(root)
        raw = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())
        config = catalogue.load_config({**raw, "datasets": ["african_fetal_planes"]}, ROOT)
        plan = catalogue.plan(catalogue.load_catalogue(config)["african_fetal_planes"], config)
        return Setup(ws.convert_jobs(plan), rel, outputs=[ws.out / "african_fetal_planes"],
                     scratch=[ws.work / "african_fetal_planes"])
    return setup


def _african_drop_plane(root: Path) -> str:
    path = find_one(root, "African_planes_database.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    i = header.index("Plane")
    path.write_text("\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in lines) + "\n")
    return path.relative_to(root).as_posix()


def _african_truncated_png(root: Path) -> str:
    path = min((root / "Zenodo_dataset").rglob("*.png"))
    path.write_bytes(_half(path.read_bytes()))
    return path.relative_to(root).as_posix()


# -- mammography datasets, end to end on their sample-mirror release -----------------------------

def _module(name: str):
    if importlib.util.find_spec(f"medcurate.datasets.{name}") is None:
        pytest.skip(f"medcurate/datasets/{name}.py does not exist yet: row pending")
    return importlib.import_module(f"medcurate.datasets.{name}")


def mammo_row(ds: str, damage: Callable[[Path, Server], str]):
    """A gated mammography dataset assembled from the sample mirror as check_manual does, one of
    its annotation files damaged, then every shard converted and gathered with the real module."""

    def setup(ws: Workspace, server: Server) -> Setup:
        _module(ds)
        plan = sample_plan(ds)
        root = prepared(MIRROR, plan, ws.res / "unpacked" / ds)
        (ws.res / "ready" / f"{ds}.json").write_text(json.dumps({"root": str(root.resolve()), "sources": []}))
        rel = damage(root, server)
        assert not (root / rel).is_symlink() and (root / rel).resolve().is_relative_to(root.resolve())
        return Setup(ws.convert_jobs(plan), rel, outputs=[ws.out / ds], scratch=[ws.work / ds],
                     check=lambda ws, result: _nothing_fetched(server))
    return setup


def _nothing_fetched(server: Server) -> None:
    assert server.requests == []


def _first(root: Path, pattern: str) -> Path:
    return min(p for p in root.rglob(pattern) if not p.is_symlink())


def _inbreast_entity(root: Path, server: Server) -> str:
    xml = _first(root, "AllXML/*.xml")
    xml.write_bytes(re.sub(rb"<!DOCTYPE[^>]*>", f'<!DOCTYPE plist [<!ENTITY x SYSTEM "{server.url("/x")}">]>'.encode(),
                           xml.read_bytes()).replace(b"<string>Mass</string>", b"<string>&x;</string>"))
    return xml.relative_to(root).as_posix()


def _inbreast_truncated_xml(root: Path, server: Server) -> str:
    xml = _first(root, "AllXML/*.xml")
    xml.write_bytes(xml.read_bytes()[:700])
    return xml.relative_to(root).as_posix()


def _via_invalid_json(root: Path, server: Server) -> str:
    via = _first(root, "Radiology_hand_drawn_segmentations_v2.csv")
    lines = via.read_text().splitlines()
    lines[1] = lines[1].replace('""all_points_x"":[', '""all_points_x"":[,', 1)
    via.write_text("\n".join(lines) + "\n")
    return via.relative_to(root).as_posix()


def _bcdr_outline(root: Path, server: Server) -> str:
    csv_path = _first(root, "bcdr_*_outlines.csv")
    lines = csv_path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[7] = " 143 14x3 143"
    lines[1] = ",".join(cells)
    csv_path.write_text("\n".join(lines) + "\n")
    return csv_path.relative_to(root).as_posix()


ROWS = [
    # --- downloads (loopback HTTP server) -----------------------------------------------------
    Row("html_page_instead_of_archive", "fails", r"returned an HTML page instead of f\.zip",
        fetch_row({"data": HTML, "content_type": "text/html"})),
    Row("checksum_mismatch", "fails", rf"does not match: sha256 expected {'0' * 64}, got {SHA256}",
        fetch_row(sha256="0" * 64)),
    Row("connection_dropped_mid_download", "recovers", r"connection lost at byte 100000(.|\n)*resuming at byte 100000",
        fetch_row({"drop_after": 100_000}, check=_resumed)),
    Row("http_416_for_a_complete_part", "recovers", r"\.part already complete", fetch_row({"status": 416}, part=DATA)),
    Row("http_416_for_a_full_download", "fails", r"answered HTTP 416 to a full download", fetch_row({"status": 416})),
    Row("http_500_until_retries_run_out", "fails", r"answered HTTP 500 .*\(after 2 retries\)", fetch_row({"status": 500})),
    Row("http_429_then_ok", "recovers", r"retrying .*/f\.zip after HTTP 429", fetch_row({"fail": [429], "retry_after": "0"})),
    Row("http_429_until_retries_run_out", "fails", r"answered HTTP 429 .*\(after 2 retries\)", fetch_row({"status": 429})),
    Row("http_401_needs_a_login", "fails", r"answered HTTP 401 .*access denied", fetch_row({"status": 401})),
    # --- archives -----------------------------------------------------------------------------------
    Row("truncated_zip", "fails", r"truncated or corrupt archive",
        archive_row(lambda f: _truncated(make_zip(f / "cut.zip", {"matrix/a.bin": os.urandom(50_000)})))),
    Row("truncated_tar_xz", "fails", r"truncated or corrupt archive",
        archive_row(lambda f: _truncated(make_tar(f / "cut.tar.xz", {"matrix/a.bin": os.urandom(50_000)}, "w:xz")))),
    Row("dotdot_path_zip", "fails", r"member 'matrix/\.\./\.\./evil\.txt' contains a '\.\.' component; refusing",
        archive_row(_zip_with("matrix/../../evil.txt"))),
    Row("dotdot_path_tar", "fails", r"member '\.\./evil\.txt' contains a '\.\.' component; refusing",
        archive_row(_tar_with("../evil.txt"))),
    Row("absolute_path_tar", "fails", r"member '/tmp/evil\.txt' is an absolute path; refusing",
        archive_row(_tar_with("/tmp/evil.txt"))),
    Row("absolute_path_zip", "fails", r"member '/tmp/evil\.txt' is an absolute path; refusing",
        archive_row(_zip_with("/tmp/evil.txt"))),
    Row("symlink_escaping", "fails", r"member 'matrix/link' links to '\.\./\.\./etc', outside the archive; refusing",
        archive_row(_tar_with("matrix/link", type=tarfile.SYMTYPE, linkname="../../etc"))),
    Row("hardlink_escaping", "fails", r"member 'matrix/link' links to '/etc/passwd', outside the archive; refusing",
        archive_row(_tar_with("matrix/link", type=tarfile.LNKTYPE, linkname="/etc/passwd"))),
    Row("zip_bomb_by_ratio", "fails", r"expands \d+ bytes to 33554432 \(\d+x, limit 200x\): looks like a zip bomb",
        archive_row(lambda f: zeros_zip(f / "bomb.zip", 32))),
    Row("zip_bomb_by_absolute_size", "fails", r"declares 8388608 uncompressed bytes, over max_bytes=4194304",
        archive_row(lambda f: make_zip(f / "big.zip", {"matrix/x.bin": os.urandom(8 * MiB)}, zipfile.ZIP_STORED),
                    max_bytes=4 * MiB)),
    Row("html_page_saved_as_archive", "fails", r"is an HTML page, not an archive", archive_row(_html)),
    # --- gated dataset placed by hand -----------------------------------------------------------------
    Row("manual_files_missing", "fails", r"is a gated dataset and is not \(completely\) in place(.|\n)*"
        r"missing file: annotations\.xml(.|\n)*missing or empty folder: DICOM/",
        manual_row(_place_release(), [{"path": "cases.csv"}, {"path": "annotations.xml"},
                                      {"path": "DICOM", "kind": "dir"}])),
    Row("manual_files_wrong", "fails", r"cases\.csv: sha256 expected 0{64}, actual [0-9a-f]{64} \(wrong version or damaged",
        manual_row(_place_release("cases.csv"), [{"path": "cases.csv", "sha256": "0" * 64}])),
    # --- cases (convert + gather) -----------------------------------------------------------------------
    Row("corrupted_png", "quarantined", r"cannot decode image", case_row(_overwrite("images/m01_png.png", _half)),
        case="m01_png"),
    Row("corrupted_tif", "quarantined", r"cannot decode image", case_row(_overwrite("images/m02_tif.tif", _tif_garbled)),
        case="m02_tif"),
    Row("corrupted_jpeg", "quarantined", r"cannot decode image", case_row(_overwrite("images/m03_jpg.jpg", _half)),
        case="m03_jpg"),
    Row("truncated_dicom", "quarantined", r"truncated", case_row(_overwrite("images/m04_dcm.dcm", _half)),
        case="m04_dcm"),
    Row("dicom_without_installed_decoder", "quarantined", r"(no installed decoder|has no decoder)",
        case_row(_no_decoder), case="m04_dcm"),
    Row("mask_image_size_mismatch", "quarantined", r"mask is 24x20 but its image is 48x40",
        case_row(_mask_of_other_size), case="m05_png"),
    Row("corrupted_png_real_module", "quarantined", r"cannot decode image", african_row(_african_truncated_png)),
    Row("csv_missing_column", "fails", r"missing column\(s\) \['mask'\]", case_row(_drop_column)),
    Row("csv_missing_column_real_module", "fails", r"missing column\(s\) \['Plane'\]", african_row(_african_drop_plane)),
    Row("every_case_quarantined", "fails", r"no case could be converted \(8 quarantined", case_row(_every_image_corrupt)),
    Row("dataset_empty_after_curation", "fails", r"dataset is empty after curation: every case was excluded",
        case_row(_every_mask_empty, empty_mask="exclude")),
    # --- mammography annotations, with the real dataset modules (see also test_annotation_parser) ---
    Row("osirix_xml_external_entity_real_module", "quarantined", r"refused unsafe XML",
        mammo_row("inbreast", _inbreast_entity)),
    Row("osirix_xml_truncated_real_module", "quarantined", r"not well-formed XML",
        mammo_row("inbreast", _inbreast_truncated_xml)),
    Row("via_csv_invalid_json_real_module", "quarantined", r"line 2: region_shape_attributes is not valid JSON",
        mammo_row("cdd_cesm", _via_invalid_json)),
    Row("bcdr_outline_malformed_real_module", "quarantined", r"line 2: lw_x_points holds a non-integer value",
        mammo_row("bcdr", _bcdr_outline)),
]


def temporary_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if TEMP_NAME.search(p.name) or p.name.endswith(".part"))


def assert_row(row: Row, ws: Workspace, spec: Setup, result: Result, before: dict, after: dict) -> None:
    def rel(paths):
        return [p.relative_to(ws.root).as_posix() for p in paths]

    def under(path: str, folders: list[str]) -> bool:
        return any(path == o or path.startswith(o + "/") for o in folders)

    own, scratch, kept = rel(spec.outputs), rel(spec.scratch), set(rel(spec.keeps))
    diff = {p: c for p, c in changes(before, after).items() if not under(p, scratch)}

    def is_own(path: str) -> bool:
        return under(path, own)

    if row.expect == "fails":
        # (a) the job's error message names the file and the reason
        at = result.text.find(": error: ")
        assert at >= 0, f"no error message in the job log:\n{result.text}"
        error = result.text[at:]
        assert spec.file in error, f"{spec.file} not named:\n{result.text}"
        assert re.search(row.reason, error), f"reason /{row.reason}/ not in:\n{result.text}"
        # (b) the job, and so the run, fails
        assert result.rc == 1, result.text
        # (c) nothing partial promoted: the job's outputs are as they were, no temporary file
        assert [p for p in diff if is_own(p) and p not in kept] == [], diff
        assert [t for t in temporary_files(ws.root) if t not in kept] == []
        # (d) outputs built earlier untouched: nothing else changed either
        assert {p: c for p, c in diff.items() if p not in kept} == {}, diff
    elif row.expect == "quarantined":
        info = json.loads((ws.out / spec.outputs[0].name / "dataset.json").read_text())
        out = spec.outputs[0]
        with open(out / "quarantine.csv") as fh:
            quarantined = {r["case_id"]: r for r in csv.DictReader(fh)}
        with open(out / "manifest.csv") as fh:
            converted = {r["case_id"] for r in csv.DictReader(fh)}
        case = row.case or next(iter(quarantined), None)
        # (a) named in quarantine.csv (file, reason) and in the log
        assert result.rc == 0, result.text
        assert case in quarantined, quarantined
        assert quarantined[case]["source"] == spec.file and re.search(row.reason, quarantined[case]["reason"])
        assert re.search(rf"quarantined {re.escape(case)}: .*{re.escape(spec.file)}: .*{row.reason}", result.text)
        # (b) the dataset goes on without it, and says so
        assert case not in converted and converted
        assert info["counts"]["quarantined"] == len(quarantined) >= 1
        # (c) no image or mask of it, the output is complete, no temporary file
        assert not list(out.glob(f"*/{case}.png"))
        for line in (out / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split("  ", 1)
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
        assert temporary_files(ws.root) == []
        # (d) every other output untouched
        assert [p for p in diff if not is_own(p)] == [], diff
    else:  # recovers
        assert result.rc == 0, result.text
        assert spec.file in result.text and re.search(row.reason, result.text), result.text
        dest = Path(spec.file)
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == SHA256
        assert temporary_files(ws.root) == []
        assert [p for p in diff if not is_own(p)] == [], diff


@pytest.mark.parametrize("row", [pytest.param(r, marks=r.marks, id=r.id) for r in ROWS])
def test_bad_input(row, template, tmp_path, server):
    ws = copy_workspace(template, tmp_path / "ws")
    spec = row.setup(ws, server)
    before = snapshot(ws.root)
    result = ws.run(spec.jobs)
    assert_row(row, ws, spec, result, before, snapshot(ws.root))
    if spec.check:
        spec.check(ws, result)


# =================================================================================================
# Disk full: the job's destination on a small tmpfs holding earlier outputs
# =================================================================================================

@pytest.fixture
def small_fs():
    mounted = []

    def mount(path: Path, free: int) -> Path:
        """Mount a tmpfs at ``path`` holding what is there now plus ``free`` bytes."""
        keep = path.with_name(path.name + ".before")
        path.rename(keep)
        path.mkdir()
        used = sum(-(-p.stat().st_size // 4096) * 4096 for p in keep.rglob("*") if p.is_file())
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={used + free},mode=0755", "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            path.rmdir()
            keep.rename(path)
            pytest.skip(f"cannot mount a size-limited tmpfs here ({proc.stderr.strip() or proc.returncode}): "
                        "needs root with CAP_SYS_ADMIN, as in CI")
        mounted.append(path)
        shutil.copytree(keep, path, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy2)
        shutil.rmtree(keep)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _big_images(root: Path) -> None:
    rng = np.random.default_rng(0)
    for case, image in MATRIX_CASES.items():
        if image.endswith(".png"):
            Image.fromarray(rng.integers(0, 256, (40, 48), dtype=np.uint8)).resize((480, 400)).save(root / image)
            Image.fromarray(lesion_mask()).resize((480, 400)).save(root / "masks" / f"{case}.png")
    for case, image in MATRIX_CASES.items():
        if not image.endswith(".png"):
            (root / image).unlink()
            (root / "masks" / f"{case}.png").unlink()
    rows = [r for r in (root / "cases.csv").read_text().splitlines() if not re.search(r"\.(tif|jpg|dcm),", r)]
    (root / "cases.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("stage", ["fetch", "unpack", "gather"])
def test_disk_full(stage, template, tmp_path, server, small_fs):
    """ENOSPC while writing a download, an unpacked tree, a result folder: the error names the file
    and ENOSPC, the earlier outputs on that file system are intact, no temporary file is left."""
    ws = copy_workspace(template, tmp_path / "ws")
    if stage == "fetch":
        spec = fetch_row()(ws, server)
        fs = small_fs(ws.res / "downloads", 64 * 1024)  # f.zip is 300 kB
        spec.keeps = [Path(f"{spec.file}.part"), Path(f"{spec.file}.part.json")]
        reason = r"cannot write .*f\.zip\.part \(No space left on device \(ENOSPC\)\); the bytes downloaded so far are kept"
    elif stage == "unpack":
        spec = archive_row(lambda f: make_zip(f / "matrix.zip", {"matrix/x.bin": os.urandom(MiB)}, zipfile.ZIP_STORED))(ws, server)
        fs = small_fs(ws.res / "unpacked", 256 * 1024)
        reason = r"cannot extract to .*x\.bin: No space left on device \(ENOSPC\)"
    else:
        _big_images(_matrix_root(ws))
        spec = case_row(lambda root: "matrix")(ws, server)
        fs = small_fs(ws.out, 256 * 1024)
        spec.file = str(ws.out / "matrix")
        reason = r"No space left on device \(ENOSPC\).*nothing was promoted and any earlier version is untouched"
    before = snapshot(ws.root)
    result = ws.run(spec.jobs)
    assert_row(Row(f"disk_full_{stage}", "fails", reason, None), ws, spec, result, before, snapshot(ws.root))
    if stage == "fetch":  # space freed: the next run resumes from the bytes kept
        subprocess.run(["mount", "-o", "remount,size=16m", str(fs)], check=True)
        done = len(Path(f"{spec.file}.part").read_bytes())
        assert 0 < done < len(DATA)
        result = ws.run(spec.jobs)
        assert result.rc == 0, result.text
        assert server.requests[-1][1]["Range"] == f"bytes={done}-"
        assert hashlib.sha256(Path(spec.file).read_bytes()).hexdigest() == SHA256


def test_a_killed_attempt_leaves_no_staging_folder_behind(tmp_path):
    """SIGKILL skips ``finally``: the staging (and trash) folders of a killed attempt at a result
    folder are removed by the next attempt at it, never promoted, and never touch other folders."""
    from medcurate.atomic import atomic_dir

    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "old.txt").write_text("earlier")
    killed = [tmp_path / ".ds.abc_1234.staging", tmp_path / ".ds.zz99yy88.old", tmp_path / ".ds2.abcd1234.staging"]
    for folder in killed:
        (folder / "images").mkdir(parents=True)
    with atomic_dir(tmp_path / "ds") as stage:
        (stage / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds2.abcd1234.staging", "ds"]  # another dest's is kept
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["new.txt"]


def test_a_link_never_writes_through_a_file_already_in_its_place(tmp_path, monkeypatch):
    """``link`` makes a missing folder, links where it can, and where it must copy (another file
    system, or the name taken) renames a full copy onto the name: a name that is another tier's
    file under a second link is replaced, and that tier's bytes stay as they were."""
    from medcurate.atomic import link

    tier = tmp_path / "converted"
    tier.mkdir()
    (tier / "a.png").write_bytes(b"converted")
    link(tier / "a.png", tmp_path / "stage" / "masks" / "a.png")  # folder missing: made
    assert (tmp_path / "stage" / "masks" / "a.png").stat().st_ino == (tier / "a.png").stat().st_ino
    (tmp_path / "cleaned.png").write_bytes(b"cleaned")
    link(tmp_path / "cleaned.png", tmp_path / "stage" / "masks" / "a.png")  # taken: EEXIST
    assert (tmp_path / "stage" / "masks" / "a.png").read_bytes() == b"cleaned"
    assert (tier / "a.png").read_bytes() == b"converted"  # a copy written in place would change it

    def cross_device(src, dest):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    link(tier / "a.png", tmp_path / "other" / "a.png")
    assert (tmp_path / "other" / "a.png").read_bytes() == b"converted"
    with pytest.raises(FileNotFoundError):
        link(tier / "missing.png", tmp_path / "other" / "b.png")
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["a.png"]  # no temporary left


def test_files_below_lists_what_rglob_lists_without_a_stat_per_file(tmp_path):
    """publish's and SHA256SUMS' listing: files, and links to files, at any depth; a link to a
    folder is not entered (as Path.rglob)."""
    from medcurate.walk import files_below

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "real").mkdir()
    for f in ("top.txt", "a/x.png", "a/b/y.png", "real/z.png"):
        (tmp_path / f).write_text(f)
    (tmp_path / "a" / "folder_link").symlink_to(tmp_path / "real")
    (tmp_path / "a" / "file_link").symlink_to(tmp_path / "real" / "z.png")
    (tmp_path / "a" / "broken").symlink_to(tmp_path / "gone")
    listed = sorted(rel for rel, _ in files_below(tmp_path))
    assert listed == sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert listed == ["a/b/y.png", "a/file_link", "a/x.png", "real/z.png", "top.txt"]
    assert all(full == str(tmp_path / rel) for rel, full in files_below(tmp_path))


# =================================================================================================
# Mammography annotation parsers: the dataset modules' pure parser functions
# =================================================================================================
# Each row feeds one parser a bad input built from the sample mirror's real files and asserts that
# exactly the declared error type comes out, naming the file and the reason, and that nothing an
# input refers to (external entities, DTDs: a file and a loopback URL) is ever read. What the
# pipeline does with that error type is what the matrix rows above show: CaseError = the case is
# quarantined (the module records it as the case's problem), MedcurateError = the job fails; the
# matrix's *_real_module rows run those modules end to end on the sample mirror.

def _member(zip_path: str, suffix: str) -> bytes:
    with zipfile.ZipFile(MIRROR / zip_path) as zf:
        return zf.read(next(n for n in sorted(zf.namelist()) if n.endswith(suffix)))


def _plist_with(doctype: str, value: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n<plist version="1.0"><dict><key>Images</key><array>'
            f'<dict><key>ImageIndex</key><integer>0</integer><key>ROIs</key><array><dict><key>Name</key>'
            f'<string>{value}</string></dict></array></dict></array></dict></plist>').encode()


_LAUGHS = "<!DOCTYPE plist [<!ENTITY a \"ha\">" + "".join(
    f"<!ENTITY {chr(98 + i)} \"{('&' + chr(97 + i) + ';') * 10}\">" for i in range(9)) + "]>"


def _via_bad_json() -> str:
    text = (MIRROR / "cdd_cesm" / "Radiology_hand_drawn_segmentations_v2.csv").read_text()
    lines = text.splitlines()
    lines[1] = lines[1].replace('""all_points_x"":[', '""all_points_x"":[,', 1)  # invalid JSON
    return "\n".join(lines) + "\n"


def _bcdr_bad_outline() -> str:
    lines = _member("bcdr/manual/BCDR-D01_dataset.zip", "outlines.csv").decode().splitlines()
    cells = lines[1].split(",")
    cells[7] = " 143 14x3 143"  # lw_x_points
    lines[1] = ",".join(cells)
    return "\n".join(lines) + "\n"


def _xlsx_with_entity() -> bytes:
    raw = (MIRROR / "cdd_cesm" / "Radiology-manual-annotations.xlsx").read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("sheet1.xml"):
                head, _, rest = data.partition(b"?>")
                data = head + b'?><!DOCTYPE x [<!ENTITY e SYSTEM "{url}">]>' + rest
            dst.writestr(info, data)
    return out.getvalue()


@dataclass
class ParserRow:
    id: str
    module: str
    function: str
    make: Callable[[str], object]  # given the URL of a loopback server: the parser's first argument
    error: type | None  # exactly this type, or None: parses (and still resolves nothing)
    reason: str = ""
    kwargs: dict = field(default_factory=dict)


PARSER_ROWS = [
    ParserRow("osirix_plist_truncated", "inbreast", "parse_rois",
              lambda url: _member("inbreast/manual/INbreast Release 1.0.zip", ".xml")[:700], CaseError,
              r"not well-formed XML"),
    ParserRow("osirix_plist_malformed", "inbreast", "parse_rois",
              lambda url: _plist_with("", "x").replace(b"<string>x</string>", b"<integer>x</integer>"), CaseError,
              r"malformed plist"),
    ParserRow("osirix_xml_external_entity", "inbreast", "parse_rois",
              lambda url: _plist_with(f'<!DOCTYPE plist [<!ENTITY x SYSTEM "{url}">]>', "&x;"), CaseError,
              r"refused unsafe XML"),
    ParserRow("osirix_xml_external_file_entity", "inbreast", "parse_rois",
              lambda url: _plist_with('<!DOCTYPE plist [<!ENTITY x SYSTEM "file:///etc/hostname">]>', "&x;"), CaseError,
              r"refused unsafe XML"),
    ParserRow("osirix_xml_entity_expansion", "inbreast", "parse_rois",
              lambda url: _plist_with(_LAUGHS, "&j;"), CaseError, r"refused unsafe XML"),
    ParserRow("osirix_xml_external_dtd", "inbreast", "parse_rois",
              lambda url: re.sub(rb"<!DOCTYPE[^>]*>", f'<!DOCTYPE plist SYSTEM "{url}">'.encode(),
                                 _member("inbreast/manual/INbreast Release 1.0.zip", ".xml")), None),  # DTD never fetched
    ParserRow("xlsx_xml_external_entity", "cdd_cesm", "parse_metadata",
              lambda url: _xlsx_with_entity().replace(b"{url}", url.encode()), MedcurateError,
              r"sheet1\.xml: unsafe or malformed XML"),
    ParserRow("via_csv_invalid_json", "cdd_cesm", "parse_via", lambda url: _via_bad_json(), CaseError,
              r"line 2: region_shape_attributes is not valid JSON"),
    ParserRow("via_csv_missing_column", "cdd_cesm", "parse_via",
              lambda url: _via_bad_json().replace("region_shape_attributes", "shape", 1), MedcurateError,
              r"not a VIA export: missing column\(s\) \['region_shape_attributes'\]"),
    ParserRow("bcdr_outline_not_integers", "bcdr", "parse_outlines", lambda url: _bcdr_bad_outline(), CaseError,
              r"line 2: lw_x_points holds a non-integer value"),
    ParserRow("bcdr_outlines_missing_column", "bcdr", "parse_outlines",
              lambda url: _bcdr_bad_outline().replace("lw_y_points", "y", 1), MedcurateError,
              r"missing column\(s\) \['lw_y_points'\]"),
]


@pytest.mark.parametrize("row", PARSER_ROWS, ids=[r.id for r in PARSER_ROWS])
def test_annotation_parser(row, server, tmp_path):
    func = getattr(_module(row.module), row.function)
    source = tmp_path / f"annotation-of-{row.id}"
    data = row.make(server.url("/entity"))
    if row.error is None:
        func(data, source, **row.kwargs)
    else:
        with pytest.raises(row.error) as err:
            func(data, source, **row.kwargs)
        assert type(err.value) is row.error, f"{type(err.value).__name__}: {err.value}"
        assert err.value.path == str(source) and re.search(row.reason, err.value.reason), err.value.reason
        assert socket.gethostname() not in err.value.reason or row.id != "osirix_xml_external_file_entity"
    assert server.requests == []  # nothing the input refers to was fetched


# =================================================================================================
# Concurrency: one run per output folder
# =================================================================================================

HOLD = """
import sys, time
sys.path.insert(0, {pkg!r})
from medcurate.lock import RunLock
RunLock([{folder!r}]).acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of a folder (killed with SIGKILL at the end)."""
    procs = []

    def start(folder: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD.format(pkg=str(ROOT / "workflow"), folder=str(folder))],
                                stdout=subprocess.PIPE, text=True, cwd=tmp_path)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_lock_refuses_a_second_run_naming_the_folder_and_the_holder(holder, tmp_path):
    folder = tmp_path / "shared results"
    proc = holder(folder)
    with pytest.raises(LockedError) as err:
        RunLock([folder]).acquire()
    msg = str(err.value)
    assert msg.startswith(f"{folder.resolve()}: is in use by another medcurate run: pid {proc.pid} on host {socket.gethostname()}")
    assert re.search(r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ in " + re.escape(str(tmp_path)), msg)
    assert "Two runs writing the same folder would corrupt it" in msg
    proc.kill()  # SIGKILL: the kernel drops a flock with its process, so no stale lock is left
    proc.wait()
    lock = RunLock([folder])
    lock.acquire()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (folder / LOCK_NAME).exists() and LOCK_ENV not in os.environ


def test_lock_is_all_or_nothing(holder, tmp_path):
    holder(tmp_path / "resources")
    lock = RunLock([tmp_path / "results", tmp_path / "resources", tmp_path / "results"])
    with pytest.raises(LockedError, match="resources"):
        lock.acquire()
    assert not (tmp_path / "results").exists()  # the first lock was given back, leaving no trace


def test_lock_inherited_by_the_runs_own_processes(tmp_path, monkeypatch):
    """Job-level processes of the holding run (they inherit MEDCURATE_LOCKED) do not lock again."""
    mine = RunLock([tmp_path / "out"])
    mine.acquire()
    try:
        assert os.environ[LOCK_ENV] == os.path.realpath(tmp_path / "out")
        with pytest.raises(LockedError):  # this process, as a second run, would be refused ...
            FolderLock(tmp_path / "out").acquire()
        RunLock([tmp_path / "out"]).acquire()  # ... but a process inside the run passes
    finally:
        mine.release()


def test_lock_without_flock_uses_an_exclusive_file(tmp_path, monkeypatch):
    import errno

    import medcurate.lock as lock_mod

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_mod.fcntl, "flock", no_flock)
    folder = tmp_path / "nfs"
    first = FolderLock(folder)
    first.acquire()
    with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        FolderLock(folder).acquire()
    first.release()
    FolderLock(folder).acquire()  # free again
    # a lock left by a process that died on this host is taken over; one from another host is reported
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    taken = FolderLock(folder)
    taken.acquire()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    taken.release()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "node-17", "started": "2026-01-01T00:00:00Z"}))
    with pytest.raises(LockedError, match=r"pid 1 on host node-17(.|\n)*rm .*\.medcurate\.lock"):
        FolderLock(folder).acquire()


@pytest.fixture
def loopback():
    servers = []

    def start(**kw) -> Loopback:
        archive = (MIRROR / "african_fetal_planes" / "Zenodo_dataset.tar.xz").read_bytes()
        srv = Loopback({"Zenodo_dataset.tar.xz": archive}, 7540448, **kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.gate.set()
        srv.shutdown()
        srv.server_close()


def loopback_config(tmp_path: Path, srv: Loopback, **extra) -> Path:
    """african_fetal_planes from the loopback server (a catalogue copy with its URLs replaced)."""
    cat = tmp_path / "catalogue"
    if not cat.exists():
        cat.mkdir()
        shutil.copy(catalogue.folder("african_fetal_planes") / "dataset.yaml", cat / "african_fetal_planes.yaml")
        entry = cat / "african_fetal_planes.yaml"
        text = entry.read_text().replace("https://zenodo.org/records/7540448/files/", f"{srv.base}/files/")
        entry.write_text(text.replace("https://zenodo.org/api/records/7540448/files/Zenodo_dataset.tar.xz/content",
                                      f"{srv.base}/files/missing"))
    config = tmp_path / f"config-{len(list(tmp_path.glob('config-*.yaml')))}.yaml"
    config.write_text(yaml.safe_dump({"datasets": ["african_fetal_planes"], "catalogue": str(cat), "shards": 1,
                                      "download": {"zenodo_api": f"{srv.base}/api", "retries": 0, "backoff": 0},
                                      **extra}))
    return config


def smk(workdir: Path, config: Path, *args) -> list[str]:
    return [snakemake_exe(), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
            *map(str, args)]


def sh(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.e2e
def test_second_snakemake_on_the_same_output_folder_is_refused(tmp_path, loopback):
    srv = loopback()
    srv.gate.clear()  # the first run's download hangs until the test lets it go
    shared = tmp_path / "shared-results"
    config = loopback_config(tmp_path, srv, output_dir=str(shared))
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first = subprocess.Popen(smk(first_dir, config, "--cores", 2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        deadline = time.monotonic() + 60
        while not (shared / LOCK_NAME).exists() or not any(p for p, _ in srv.requests if p.startswith("/files/")):
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read() if first.poll() else "timeout"
            time.sleep(0.05)
        # a dry-run is no writer: it is not refused
        dry = sh(smk(second_dir, config, "-n", "--cores", 2), 120)
        assert dry.returncode == 0, dry.stderr
        # a job-level snakemake (as a cluster executor runs each job: --mode remote) is not refused
        job = sh(smk(second_dir, config, "--mode", "remote", "--cores", 1,
                                 "resources/ready/african_fetal_planes.json"), 120)
        assert job.returncode == 0, job.stdout + job.stderr
        # a second run writing the same folder is refused at once, naming the folder and the holder
        t0 = time.monotonic()
        second = sh(smk(second_dir, config, "--cores", 2), 120)
        out = second.stdout + second.stderr
        assert second.returncode != 0 and time.monotonic() - t0 < 30, out
        assert f"{shared}: is in use by another medcurate run: pid {first.pid} on host {socket.gethostname()}" in out, out
        assert f"in {first_dir}" in out
        assert not (shared / "african_fetal_planes").exists()  # it wrote nothing there
    finally:
        srv.gate.set()
        first_out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, first_out
    assert not (shared / LOCK_NAME).exists()
    # once the first run is over, the second one runs
    again = sh(smk(second_dir, config, "--cores", 2), 300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (shared / "african_fetal_planes" / "SHA256SUMS").exists() and not (shared / LOCK_NAME).exists()


# =================================================================================================
# Secrets: tokens for gated sources
# =================================================================================================

TOKEN = "mc-TEST-token-6f1d0c2a9b"


def secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "private" / "secrets.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No credential of the developer's own leaks into these tests."""
    for name in ("MEDCURATE_ZENODO_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "MEDCURATE_TCIA_TOKEN",
                 secrets_mod.FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    monkeypatch.setattr(secrets_mod, "DEFAULT_FILE", tmp_path / "no-default.yaml")


def test_tokens_come_from_the_environment_and_go_only_to_their_host(clean_env, monkeypatch):
    monkeypatch.setenv("MEDCURATE_ZENODO_TOKEN", TOKEN)
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "kaggle-key-123")
    s = secrets_mod.load()
    zen = s.for_url("https://zenodo.org/api/records/1")
    assert zen.header() == f"Bearer {TOKEN}" and zen.origin == "environment variable MEDCURATE_ZENODO_TOKEN"
    assert s.for_url("https://www.kaggle.com/api/v1/datasets/download/x/y").header().startswith("Basic ")
    assert s.for_url("https://example.org/zenodo.org") is None  # another host
    assert s.for_url("https://zenodo.org.evil.example/f.zip") is None
    assert s.for_url("http://zenodo.org/f.zip") is None  # never over plain http (but to loopback)
    assert TOKEN not in repr(s) and TOKEN not in repr(zen) and "kaggle-key-123" not in repr(s.credentials)


@pytest.mark.parametrize("text, words", [
    ("zenodo: {token: %s\n", "not valid YAML (line"),  # the parser would quote the line: we do not
    ("zenodo: {tokn: %s}\n", "unknown field(s) ['tokn']"),
    ("zenodo: %s\n", "'zenodo': expected a mapping"),
    ("custom: {token: %s}\n", "'custom': 'hosts' must list the host names"),
    ("zenodo: {token: ''}  # %s\n", "needs a non-empty string 'token'"),
])
def test_malformed_secrets_file_is_refused_without_showing_it(clean_env, tmp_path, text, words):
    path = secrets_file(tmp_path, text % TOKEN)
    with pytest.raises(secrets_mod.SecretsError) as err:
        secrets_mod.load(path)
    assert str(path) in str(err.value) and words in str(err.value) and TOKEN not in str(err.value)


def test_secrets_file_inside_the_repository_or_readable_by_others_is_refused(clean_env, tmp_path):
    readable = secrets_file(tmp_path, f"zenodo: {{token: {TOKEN}}}\n", mode=0o644)
    with pytest.raises(secrets_mod.SecretsError, match=r"readable by group or others \(mode 644\); run: chmod 600"):
        secrets_mod.load(readable)
    with pytest.raises(secrets_mod.SecretsError, match="is inside the repository"):
        secrets_mod.check_file(readable, repo=tmp_path)
    readable.chmod(0o600)
    s = secrets_mod.load(readable)
    assert s.for_url("https://zenodo.org/x").origin == f"secrets file {readable}"


def test_redaction():
    s = secrets_mod.Secrets([secrets_mod.Credential("zenodo", ("zenodo.org",), "test", token=TOKEN),
                             secrets_mod.Credential("kaggle", ("kaggle.com",), "test", username="u", password="pw-123")])
    text = (f"GET https://zenodo.org/f?access_token={TOKEN}&x=1 Bearer {TOKEN} "
            f"https://u:pw-123@kaggle.com/d Basic {secrets_mod.base64.b64encode(b'u:pw-123').decode()} "
            "https://bucket.s3.amazonaws.com/f?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA123")
    clean = s.redact(text)
    for secret in (TOKEN, "pw-123", "dTpwdy0xMjM=", "abcdef0123", "AKIA123"):
        assert secret not in clean
    assert "access_token=***&x=1" in clean and "https://***@kaggle.com/d" in clean


@pytest.fixture
def token_server(loopback):
    return loopback(token=TOKEN)


def _zenodo_source(srv: Loopback, query: str = "") -> dict:
    return {"name": "Zenodo_dataset.tar.xz", "url": f"{srv.base}/files/Zenodo_dataset.tar.xz{query}",
            "zenodo": {"record": 7540448}}


def _loopback_secrets(token: str) -> secrets_mod.Secrets:
    return secrets_mod.Secrets([secrets_mod.Credential("zenodo", ("127.0.0.1",), "secrets file /x/secrets.yaml",
                                                       token=token)])


def test_fetch_sends_the_token_and_writes_it_nowhere(token_server, tmp_path, caplog):
    dest = tmp_path / "dl" / "Zenodo_dataset.tar.xz"
    with caplog.at_level(logging.DEBUG):
        record = fetch(_zenodo_source(token_server), dest, zenodo_api=f"{token_server.base}/api", retries=0,
                       secrets=_loopback_secrets(TOKEN))
    assert record["checksum_source"] == "zenodo-api"
    assert [auth for _, auth in token_server.requests] == [f"Bearer {TOKEN}"] * 2  # the API and the file
    assert "with the zenodo credentials from secrets file /x/secrets.yaml" in caplog.text
    for text in (caplog.text, json.dumps(record), Path(f"{dest}.verified.json").read_text()):
        assert TOKEN not in text


@pytest.mark.parametrize("query", ["", f"?access_token={TOKEN}"])
def test_rejected_token_says_so_without_echoing_it(token_server, tmp_path, caplog, query):
    dest = tmp_path / "dl" / "Zenodo_dataset.tar.xz"
    wrong = _loopback_secrets("mc-WRONG-token-77aa")
    with caplog.at_level(logging.DEBUG), pytest.raises(FetchError) as err:
        fetch({**_zenodo_source(token_server, query), "sha256": "0" * 64}, dest,
              zenodo_api=f"{token_server.base}/api", retries=0, secrets=wrong)
    msg = str(err.value)
    assert msg.startswith(f"{dest}: ") and "token rejected (HTTP 401" in msg
    assert "zenodo credentials from secrets file /x/secrets.yaml were refused" in msg
    for text in (msg, caplog.text):
        assert "mc-WRONG-token-77aa" not in text and TOKEN not in text
    assert not dest.exists()


def test_401_without_a_token_says_how_to_give_one(clean_env, tmp_path, monkeypatch, token_server):
    monkeypatch.setitem(secrets_mod.SERVICES["zenodo"], "hosts", ["127.0.0.1"])
    with pytest.raises(FetchError, match=r"HTTP 401 .*access denied.*set MEDCURATE_ZENODO_TOKEN or add 'zenodo:' "
                                         r"to the secrets file"):
        fetch({**_zenodo_source(token_server), "sha256": "0" * 64}, tmp_path / "f", retries=0,
              zenodo_api=f"{token_server.base}/api")


def _grep(root: Path, needle: str) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and needle.encode() in p.read_bytes():
            hits.append(str(p))
    return hits


@pytest.mark.e2e
def test_workflow_with_a_token_leaves_it_in_no_file(clean_env, tmp_path, token_server):
    """A whole run against a server that requires the token: it is sent, and no file under the
    working directory (logs/, results/, resources/, work/, .snakemake/ logs and metadata) nor
    Snakemake's output contains it -- also when the server rejects it."""
    good = secrets_file(tmp_path, f"zenodo:\n  token: {TOKEN}\n  hosts: [127.0.0.1]\n")
    config = loopback_config(tmp_path, token_server, secrets_file=str(good))
    run = sh(smk(tmp_path / "good", config, "--cores", 2), 300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "good" / "results" / "african_fetal_planes" / "SHA256SUMS").exists()
    assert {auth for _, auth in token_server.requests} == {f"Bearer {TOKEN}"}
    assert _grep(tmp_path / "good", TOKEN) == [] and TOKEN not in run.stdout + run.stderr
    assert "with the zenodo credentials from secrets file" in (
        tmp_path / "good" / "logs" / "fetch" / "african_fetal_planes" / "Zenodo_dataset.tar.xz.log").read_text()

    # a secrets file others can read is refused when the workflow starts, before any job
    good.chmod(0o640)
    dry = sh(smk(tmp_path / "good", config, "-n"), 120)
    assert dry.returncode != 0 and f"{good}: secrets file is readable by group or others" in dry.stdout + dry.stderr
    assert TOKEN not in dry.stdout + dry.stderr

    wrong = "mc-WRONG-token-77aa"
    (tmp_path / "other").mkdir()
    bad = secrets_file(tmp_path / "other", f"zenodo:\n  token: {wrong}\n  hosts: [127.0.0.1]\n")
    config = loopback_config(tmp_path, token_server, secrets_file=str(bad))
    run = sh(smk(tmp_path / "bad", config, "--cores", 2), 300)
    assert run.returncode != 0
    log = (tmp_path / "bad" / "logs" / "fetch" / "african_fetal_planes" / "Zenodo_dataset.tar.xz.log").read_text()
    assert "token rejected (HTTP 401" in log
    assert _grep(tmp_path / "bad", wrong) == [] and wrong not in run.stdout + run.stderr

