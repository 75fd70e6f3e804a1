"""Cached by step, never stale (DESIGN principle 7), end to end on the sample mirror.

One build of two datasets -- african_fetal_planes (open, classification) and inbreast (gated,
2-D segmentation) -- from a copy of the repository (so a test can edit a dataset module), then
one change at a time: for each, the exact jobs a dry-run schedules, then the run. At the end,
the incrementally updated results must equal a fresh build with every change applied.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake_exe

pytestmark = pytest.mark.e2e
BASE = ["african_fetal_planes", "inbreast"]


def stats(text: str) -> dict[str, int]:
    """The 'Job stats' table of a (dry-)run: rule -> job count (the 'all' target left out)."""
    if "Nothing to be done" in text:
        return {}
    table = text[text.index("Job stats:"):]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table.split("total")[0], re.M)
    return {rule: int(n) for rule, n in rows if rule != "all"}


class Repo:
    """A copy of the workflow (Snakefile, package, catalogue, sample mirror) and a run folder."""

    def __init__(self, tmp: Path):
        self.root, self.run, self.exe = tmp / "repo", tmp / "run", snakemake_exe()
        self.root.mkdir()
        for part in ("Snakefile", "workflow", "config", "envs"):
            src = ROOT / part
            (shutil.copytree(src, self.root / part, ignore=shutil.ignore_patterns("__pycache__"))
             if src.is_dir() else shutil.copy2(src, self.root / part))
        self.run.mkdir()
        self.config = yaml.safe_load((ROOT / "config" / "sample.yaml").read_text())
        self.config["datasets"] = list(BASE)

    def snakemake(self, *args, config: dict | None = None, workdir: Path | None = None) -> str:
        path = self.run.parent / "config.yaml"
        path.write_text(yaml.safe_dump(config or self.config))
        cmd = [self.exe, "-s", str(self.root / "Snakefile"), *args, "--directory", str(workdir or self.run),
               "--cores", "2", "--configfile", str(path)]
        # the copy's package, not the installed one, runs (in this process and in the jobs' `medcurate`)
        env = {**os.environ, "PYTHONPATH": str(self.root / "workflow")}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)
        if proc.returncode:
            pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout + proc.stderr

    def change(self, expected: dict[str, int]) -> None:
        """Dry-run: exactly the expected jobs; then run, and a second dry-run has nothing to do."""
        assert stats(self.snakemake("-n")) == expected
        self.snakemake()
        assert stats(self.snakemake("-n")) == {}

    def sums(self, run: Path) -> dict[str, str]:
        return {ds: (run / "results" / ds / "SHA256SUMS").read_text() for ds in self.config["datasets"]}


def options(repo: Repo, ds: str, step: str, **values) -> None:
    repo.config.setdefault("options", {}).setdefault(ds, {}).setdefault(step, {}).update(values)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    repo = Repo(tmp_path_factory.mktemp("staleness"))
    repo.snakemake()
    return repo


# Each change builds on the ones before (a module-scoped build), in this order.

def test_download_settings_rerun_nothing(repo):
    repo.config["download"] = {"timeout": 7, "retries": 1, "backoff": 0.5}
    repo.change({})


def test_a_qc_option_reruns_only_publish(repo):
    options(repo, "inbreast", "qc", qc_samples=3)
    repo.change({"publish_dataset": 1})


def test_a_split_fraction_reruns_split_and_publish(repo):
    options(repo, "african_fetal_planes", "split", val_fraction=0.2)
    repo.change({"split_dataset": 1, "publish_dataset": 1})


def test_a_selection_rule_reruns_select_split_publish(repo):
    options(repo, "inbreast", "select", empty_mask="exclude")
    repo.change({"select_curated": 1, "split_dataset": 1, "publish_dataset": 1})


def test_a_cleaning_option_reruns_from_clean_and_decodes_no_source_image(repo):
    # 3-px point disks (29 px) go: masks change, so the cleaned masks are decoded, edited, re-encoded
    options(repo, "inbreast", "clean", min_component_area=40, fill_holes=True)
    repo.change({"clean_masks": 1, "select_curated": 1, "split_dataset": 1, "publish_dataset": 1})
    log = (repo.run / "logs" / "clean" / "inbreast" / "shard-0.log").read_text()
    assert int(re.search(r"(\d+) changed by cleaning", log)[1]) > 0
    manifest = (repo.run / "results" / "inbreast" / "manifest.csv").read_text()
    assert ":removed_small:" in manifest


def test_a_fix_in_a_dataset_module_reruns_that_dataset_from_convert(repo):
    module = repo.root / "workflow" / "medcurate" / "datasets" / "african_fetal_planes" / "__init__.py"
    module.write_text(module.read_text() + "\n# a fixed bug\n")
    repo.change({"convert_shard": 1, "select_curated": 1, "split_dataset": 1, "publish_dataset": 1})


def test_a_dataset_folders_sample_builder_and_tests_rerun_nothing(repo):
    """They sit beside the quirks module but are not imported by it: not in any step's code."""
    folder = repo.root / "workflow" / "medcurate" / "datasets" / "african_fetal_planes"
    for name in ("sample.py", "test_african_fetal_planes.py", "README.md"):
        (folder / name).write_text((folder / name).read_text() + "\n# an edit\n")
    repo.change({})


def test_a_fix_in_a_generic_step_reruns_that_step_everywhere(repo):
    module = repo.root / "workflow" / "medcurate" / "splits.py"
    module.write_text(module.read_text() + "\n# a fixed bug\n")
    repo.change({"split_dataset": 2, "publish_dataset": 2})


def test_an_edited_file_in_a_placed_release_reruns_that_dataset(repo):
    placed = repo.run / "placed" / "inbreast"
    shutil.copytree(repo.root / "workflow" / "sample-mirror" / "inbreast" / "manual", placed)
    repo.config["manual_dirs"] = {"inbreast": str(placed)}
    # another folder: check_manual runs again (its slice names the folder), and what follows its
    # rewritten ready record
    repo.change({"check_manual": 1, "convert_shard": 1, "clean_masks": 1, "select_curated": 1,
                 "split_dataset": 1, "publish_dataset": 1})
    (placed / "README.txt").write_text("notes the user added\n")
    repo.change({"check_manual": 1, "convert_shard": 1, "clean_masks": 1, "select_curated": 1,
                 "split_dataset": 1, "publish_dataset": 1})


def test_adding_a_dataset_schedules_only_its_jobs(repo):
    repo.config["datasets"].append("drive")
    repo.change({"check_manual": 1, "convert_shard": 1, "clean_masks": 1, "select_curated": 1,
                 "split_dataset": 1, "publish_dataset": 1})


def test_png_compress_level_reruns_every_step_that_writes_pngs(repo):
    repo.config["png_compress_level"] = 3
    n = len(repo.config["datasets"])
    repo.change({"convert_shard": n, "clean_masks": 2, "select_curated": n, "split_dataset": n, "publish_dataset": n})


def test_after_every_change_the_results_equal_a_fresh_build(repo, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    repo.snakemake(workdir=fresh)
    assert repo.sums(repo.run) == repo.sums(fresh)


def test_reclaim_frees_the_tiers_and_keeps_the_no_op(repo):
    out = repo.snakemake("reclaim")
    assert not (repo.run / "work" / "inbreast" / "converted").exists()
    assert not (repo.run / "resources" / "unpacked" / "african_fetal_planes").exists()
    assert re.search(r"reclaimed [\d.]+ MB; [\d.]+ MB more stay as the results' hard links", out)
    assert stats(repo.snakemake("-n")) == {}
    for ds in repo.config["datasets"]:  # the results keep their files (hard links)
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=repo.run / "results" / ds, check=True)
    # a later change rebuilds the tiers it needs (publish links the converted images) from the
    # cached download and the placed release: nothing is fetched again
    options(repo, "african_fetal_planes", "split", val_fraction=0.3)
    options(repo, "inbreast", "clean", min_component_area=2)
    repo.change({"unpack_archives": 1, "check_manual": 1, "convert_shard": 2, "clean_masks": 1, "select_curated": 2,
                 "split_dataset": 2, "publish_dataset": 2})
