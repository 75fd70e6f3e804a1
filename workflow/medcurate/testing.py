"""Test helpers for medcurate's tests, in the checkout and in each dataset folder (a pytest
plugin: pyproject's addopts load it with ``-p medcurate.testing``, as tfds.testing serves TFDS's
dataset tests). Fixtures: ``realdata``, ``mirror``, ``plans``, ``sample_root``; helpers to
assemble a sample release and run every step in-process (``build``), and the small helpers the
dataset folders' tests share (``plan_of``, ``convert_rows``, ``png``, ``copy_tree``, ``by_id``,
``enumerator_fuzz``). Used from a checkout only: the paths below are the checkout's.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]  # the checkout: workflow/medcurate/testing.py

# Fuzz tests draw the same examples on every run, so CI is reproducible; set MEDCURATE_FUZZ=explore
# to draw new ones (and keep any failure found as a regular test).
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile("explore" if os.environ.get("MEDCURATE_FUZZ") == "explore" else "ci")


def pytest_configure(config) -> None:
    """Workflow runs started by tests find the `medcurate` command the rules call beside this
    interpreter, as they would in an activated venv (pytest run as venv/bin/pytest needs none)."""
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture
def realdata() -> Path:
    """Publisher files beside the project (../shared/realdata); tests skip where it is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """A freshly generated sample mirror (the same bytes as workflow/sample-mirror)."""
    from medcurate import samples

    out = tmp_path_factory.mktemp("mirror")
    samples.build(out)
    return out


@pytest.fixture
def plans():
    """Plans of the catalogue's entries, resolved against the default config."""
    from medcurate import catalogue

    config = catalogue.load_config({"datasets": ["fetal_planes_db"]}, ROOT)
    entries = catalogue.load_catalogue(config)
    return {ds: catalogue.plan(entry, config) for ds, entry in entries.items()}


def unpacked(mirror: Path, dataset: str, dest: Path) -> Path:
    """Unpack a dataset's sample archives the way the workflow does."""
    from medcurate.unpack import unpack

    unpack(sorted((mirror / dataset).iterdir()), dest)
    return dest


def snakemake_exe() -> str:
    """The snakemake beside this interpreter (works without an activated venv)."""
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    if exe is None:
        pytest.fail("snakemake is not installed (pip install -e .[test])")
    return exe


def entry_path(dataset: str) -> Path:
    """The package's catalogue entry of a dataset (its folder's dataset.yaml)."""
    return ROOT / "workflow" / "medcurate" / "datasets" / dataset / "dataset.yaml"


def catalogue_copy(dest: Path, *datasets: str) -> Path:
    """A config's own catalogue folder (config key ``catalogue``) holding copies of some package
    entries as <id>.yaml, for a test to edit: they replace the package's entries of those ids."""
    dest.mkdir(parents=True, exist_ok=True)
    for ds in datasets:
        shutil.copy(entry_path(ds), dest / f"{ds}.yaml")
    return dest


def sample_plan(dataset: str) -> dict:
    """A dataset's plan as the offline demo (config/sample.yaml) resolves it."""
    import yaml
    from medcurate import catalogue

    raw = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())
    config = catalogue.load_config({**raw, "datasets": [dataset]}, ROOT)
    return catalogue.plan(catalogue.load_catalogue(config)[dataset], config)


def prepared(mirror: Path, plan: dict, dest: Path) -> Path:
    """Assemble a gated dataset's root from a sample mirror the way the check_manual job does:
    the mirror's <id>/manual/ folder stands in for the user's folder, its other files for downloads."""
    from medcurate.atomic import file_digest
    from medcurate.manual import prepare
    from medcurate.unpack import Limits

    folder = mirror / plan["id"]
    downloads = [{"name": s["name"], "path": str(folder / s["name"]), "sha256": file_digest(folder / s["name"])}
                 for s in plan["sources"]]
    prepare({**plan, "manual_dir": str(folder / "manual")}, downloads, dest, Limits())
    return dest


@pytest.fixture(scope="session")
def sample_root(mirror, tmp_path_factory):
    """sample_root(id): the dataset's sample release assembled like the workflow does, once per
    session (tests that modify it copy it first)."""
    roots: dict[str, Path] = {}

    def root(dataset: str) -> Path:
        if dataset not in roots:
            roots[dataset] = prepared(mirror, sample_plan(dataset), tmp_path_factory.mktemp(dataset) / "root")
        return roots[dataset]

    return root


def build(root: Path, plan: dict, work: Path, out: Path, records: list[dict] | None = None, shards: int = 1) -> dict:
    """Every step after unpacking, in-process, as the workflow's rules chain them: convert (in
    ``shards``), clean (2-D segmentation), select, split, publish. Returns publish's counts."""
    from medcurate import catalogue, clean, convert, curation, publish, splits

    def step(name):
        return catalogue.step_slice(plan, name)

    converted = [work / "converted" / f"shard-{i}" for i in range(shards)]
    for i, folder in enumerate(converted):
        convert.convert_shard(root, step("convert"), i, shards, folder)
    cleaned = []
    if plan["task"] in catalogue.MASK_TASKS:
        cleaned = [work / "cleaned" / folder.name for folder in converted]
        for src, dest in zip(converted, cleaned):
            clean.clean_shard(src, step("clean"), dest)
    curation.select_step(cleaned or converted, step("select"), work / "selected.csv")
    splits.split_step(work / "selected.csv", step("split"), converted + cleaned, work / "split")
    return publish.publish(step("publish"), converted + cleaned, work / "split", out, records or [])


def with_exclusions(out: Path, plan: dict) -> dict[str, dict]:
    """{case_id: row} of one converted shard's table (folder ``out``), each with the exclusion the
    select step gives it (cleaning off, so the raw masks are the cleaned ones)."""
    from medcurate import catalogue, curation, tiers

    table = tiers.read_table(out / tiers.PART)
    selected = curation.select(table, catalogue.step_slice(plan, "select"), lambda rel: out / rel)
    return {r["case_id"]: r for r in selected.to_dict("records")}


@contextlib.contextmanager
def within(seconds: float = 10):
    """A regression that loops fails here, by SIGALRM, instead of hanging the run."""
    def stop(*_):
        raise TimeoutError(f"still running after {seconds} s: a link loop or an endless walk")
    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@functools.cache
def _plan(dataset: str) -> dict:
    return sample_plan(dataset)  # validates the whole catalogue: done once per dataset


def plan_of(dataset: str) -> dict:
    """A dataset's sample plan (as ``sample_plan``), resolved once per session; each call returns
    a fresh copy that the caller may modify."""
    return copy.deepcopy(_plan(dataset))


def mirror_of(dest: Path, *datasets: str) -> Path:
    """A sample mirror in ``dest`` holding only the given datasets (cheaper than ``mirror``)."""
    from medcurate import samples

    samples.build(dest, list(datasets))
    return dest


def convert_rows(root: Path, plan: dict, out: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Run the generic conversion on root; return ({case_id: manifest row}, {case_id: quarantine row})."""
    from medcurate.convert import convert_shard

    convert_shard(root, plan, 0, 1, out)
    rows = with_exclusions(out, plan)
    quarantined = {r["case_id"]: r for r in csv.DictReader((out / "quarantine.csv").open())}
    return rows, quarantined


def convert_and_gather(root: Path, dataset: str, out: Path):
    """Every step on root with the dataset's sample plan (``build``); return (the published
    manifest indexed by case_id, publish's counts)."""
    import pandas as pd

    counts = build(root, plan_of(dataset), out / "work", out / "result")
    manifest = pd.read_csv(out / "result" / "manifest.csv", dtype=str, keep_default_na=False)
    return manifest.set_index("case_id"), counts


def png(path: Path):
    """An image file's pixels as a numpy array."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path))


def copy_tree(src: Path, dest: Path) -> Path:
    """A copy of a (sample) root that a test may modify, links resolved."""
    shutil.copytree(src, dest, symlinks=False)
    return dest


def by_id(cases) -> dict:
    """{case_id: case} of an enumerator's cases."""
    return {c.case_id: c for c in cases}


def write_layout(root: Path, layout) -> Path:
    """Empty files at (folder, name) pairs under root, as a fuzz test draws them (names that are
    not one path component are skipped)."""
    for folder, name in layout:
        if name in (".", "..") or "/" in name:
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(b"")
    return root


RETINAL_NAMES = st.one_of(
    st.sampled_from(["im0001.ppm.gz", "im0001.ah.ppm.gz", "im0002.vk.ppm.gz", "im0044.ppm", "im12.ppm.gz",
                     "Image_01L.jpg", "Image_01L_1stHO.png", "Image_02R_2ndHO.png", "Image_3L.jpg", "Image_01L.png",
                     "21_training.tif", "01_test.tif", "01_manual1.gif", "21_training_mask.gif", "x.tif"]),
    st.text(st.sampled_from("Imagest_0123LR.pnjgifvkah"), min_size=1, max_size=20),
)
"""File names of the retinal vessel sets (STARE, CHASE_DB1, DRIVE) and near misses: each set's
enumerator is fuzzed with all three's names."""
RETINAL_FOLDERS = ["", "images", "training/images", "test/1st_manual", "a/b"]


def check_enumerator(module, dataset: str, root: Path, unique_ids: bool = True) -> None:
    """A dataset enumerator (``module.cases``) on any tree either raises a MedcurateError or
    returns cases that each have an image, a mask or a problem with a path, under distinct ids
    (``unique_ids=False`` where enumerate_cases, not the enumerator, rejects duplicates)."""
    from medcurate.errors import MedcurateError

    try:
        found = module.cases(root, plan_of(dataset))
    except MedcurateError:
        return
    ids = [c.case_id for c in found]
    assert all(c.image is not None or c.problem is not None or c.mask is not None for c in found)
    assert all(c.problem is None or c.problem.path is not None for c in found)
    if unique_ids:
        assert len(ids) == len(set(ids))


def enumerator_fuzz(module, dataset: str, names, folders, max_examples: int = 60, unique_ids: bool = True):
    """A bounded fuzz test of a dataset's enumerator: trees of up to 12 empty files, named by the
    ``names`` strategy, in ``folders``, checked by ``check_enumerator``. Assign it to a test_ name
    in the dataset's test module."""
    layouts = st.lists(st.tuples(st.sampled_from(folders), names), max_size=12)

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(layout=layouts)
    def test(tmp_path_factory, layout):
        check_enumerator(module, dataset, write_layout(tmp_path_factory.mktemp("fuzz"), layout), unique_ids)

    test.__doc__ = f"{dataset}'s enumerator raises only dataset errors on fuzzed trees"
    return test
