"""Kill and resume, determinism, and --cores beyond the machine.

A demo run (two datasets of the sample config: a tar.xz classification set and a segmentation set
of nested zips) is SIGKILLed -- the whole process group, Snakemake and its jobs -- at several
points: after the first download is recorded, while an archive is being unpacked, while shards are
being converted, while a result folder is being published. After each kill the user's recovery is
run: ``snakemake --unlock`` (Snakemake's own lock survives a SIGKILL; medcurate's does not), then the
same command again (the workflow profile sets --rerun-incomplete). The final ``results/`` must be
byte-identical (every file, hidden ones included, and file modes) to that of an uninterrupted run
made from scratch in another folder with ``--cores 8`` on this 2-core machine.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake_exe

pytestmark = pytest.mark.e2e

SAMPLE = ROOT / "config" / "sample.yaml"
DATASETS = ["african_fetal_planes", "fetal_head_biometry"]


@pytest.fixture(scope="module")
def reduced(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "reduced.yaml"
    path.write_text(yaml.safe_dump({"datasets": DATASETS}))
    return path


def command(workdir: Path, reduced: Path, *args) -> list[str]:
    return [snakemake_exe(), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--workflow-profile", str(ROOT / "profiles" / "default"),
            "--configfile", str(SAMPLE), str(reduced), *map(str, args)]


def tree(root: Path) -> dict[str, tuple]:
    """Every entry below root (hidden ones too): type, mode, and content digest or link target."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = p.relative_to(root).as_posix()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, reduced) -> tuple[Path, str]:
    """An uninterrupted run from scratch with --cores 8 (more than this 2-core machine has)."""
    workdir = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(command(workdir, reduced, "--cores", 8), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir, proc.stdout + proc.stderr


def test_more_cores_than_the_machine_has(reference):
    workdir, out = reference
    assert "Provided cores: 8" in out and "steps (100%) done" in out
    for ds in DATASETS:
        assert (workdir / "results" / ds / "SHA256SUMS").is_file()


KILL_POINTS = {  # name -> condition on the working directory that triggers the SIGKILL
    "after the first download is recorded": lambda w: any((w / "resources" / "fetched").glob("*/*.json")),
    "while unpacking an archive": lambda w: any((w / "resources" / "unpacked").glob(".*.staging")),
    "while converting shards": lambda w: any((w / "work").glob("*/converted/shard-*")),
    "while publishing a result folder": lambda w: any((w / "results").glob(".*.staging")),
}


def run_until(cmd: list[str], workdir: Path, trigger, timeout: float = 300) -> tuple[bool, str]:
    """Start the run in its own process group; SIGKILL the group when ``trigger`` holds.
    Returns (killed, output)."""
    log = workdir.parent / f"{workdir.name}-{time.monotonic_ns()}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        killed = False
        while proc.poll() is None and time.monotonic() < deadline:
            if trigger(workdir):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
        proc.wait()
    return killed, log.read_text()


def test_sigkill_at_several_points_then_resume_gives_the_same_results(reference, reduced, tmp_path):
    reference = reference[0]
    workdir = tmp_path / "killed"
    workdir.mkdir()
    run = command(workdir, reduced, "--cores", 2)
    for point, trigger in KILL_POINTS.items():
        killed, out = run_until(run, workdir, trigger)
        assert killed, f"the run ended before the kill point '{point}':\n{out[-3000:]}"
        # the user's recovery after a kill: Snakemake's lock outlives its process, medcurate's does not
        unlock = subprocess.run(run + ["--unlock"], capture_output=True, text=True, timeout=120, check=False)
        assert unlock.returncode == 0, unlock.stderr
    killed, out = run_until(run, workdir, lambda w: False)
    assert not killed and "steps (100%) done" in out, out[-3000:]

    for ds in DATASETS:
        assert (workdir / "results" / ds / "SHA256SUMS").read_text() == \
            (reference / "results" / ds / "SHA256SUMS").read_text(), ds
    # the whole tree, hidden files included: no staging folder or temporary file left behind
    assert tree(workdir / "results") == tree(reference / "results")
    again = subprocess.run(run + ["-n"], capture_output=True, text=True, timeout=120, check=False)
    assert "Nothing to be done" in again.stdout + again.stderr
