"""Part of the demo (one dataset per kind of job) through a real SLURM (single node on this machine,
started by .ci/slurm.sh) with the shipped profile profiles/slurm: same SHA256SUMS as a
local run.

Skipped only where the SLURM binaries are absent (`bash .ci/run` installs them: slurm-wlm, munge).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake_exe
from medcurate import catalogue

pytestmark = pytest.mark.e2e
SAMPLE = ROOT / "config" / "sample.yaml"
PROFILE = ROOT / "profiles" / "slurm"
SLURM_SH = ROOT / ".ci" / "slurm.sh"
BINARIES = ("sbatch", "squeue", "srun", "slurmctld", "slurmd", "munged")

# Test-only options on top of the profile. There is no accounting database (no sacct): job status
# comes from squeue, which keeps finished jobs for MinJobAge=600 s. The whole run is one SLURM job
# (every rule in one group, all connected components merged): the executor's status checks come
# at growing intervals and each job costs a few seconds of sbatch/srun/snakemake start-up, so on
# 2 cores one job is the fastest way through ~46 small jobs. --cores 2 caps the group job at the
# node's 2 CPUs (its shards then run one after another inside it).
# One dataset per kind of job (open zip -> PNG classes, gated DICOM + XML, extra masks, NIfTI
# volumes): the whole catalogue would add ~15 s per dataset without exercising anything new.
DATASETS = ["fetal_planes_db", "inbreast", "drive", "promise12"]
RULES = ("fetch_source", "unpack_archives", "check_manual", "convert_shard", "clean_masks", "select_curated",
         "split_dataset", "publish_dataset")
SLURM_OPTIONS = [
    "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-keep-successful-logs",
    "--groups", *(f"{r}=demo" for r in RULES), "--group-components", "demo=1000",
    "--cores", "2",
]


@pytest.fixture(scope="module")
def slurm():
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM binaries absent ({', '.join(missing)}): apt-get install slurm-wlm munge "
                    "(bash .ci/run installs them and starts SLURM with .ci/slurm.sh)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.fail('snakemake-executor-plugin-slurm is not installed: pip install -e ".[slurm]"')
    env = {**os.environ, "SLURM_CONF": _slurm_conf()}
    started = subprocess.run(["bash", str(SLURM_SH), "status"], env=env, capture_output=True, check=False).returncode != 0
    if started:  # not running yet (CI starts it before pytest): start it here and stop it after
        proc = subprocess.run(["bash", str(SLURM_SH), "start"], env=env, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            pytest.fail(f".ci/slurm.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    yield env
    if started:
        subprocess.run(["bash", str(SLURM_SH), "stop"], env=env, capture_output=True, timeout=120, check=False)


def _slurm_conf() -> str:
    return subprocess.run(["bash", str(SLURM_SH), "env"], capture_output=True, text=True, check=True).stdout.split("=", 1)[1].strip()


def _run(cmd, env, timeout):
    return subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout, env=env, check=False)


def _logs(workdir: Path) -> str:
    """The SLURM job logs and the rules' logs, for assertion messages."""
    parts = []
    for pattern in (".snakemake/slurm_logs/**/*.log", "logs/**/*.log"):
        for f in sorted(workdir.glob(pattern)):
            parts.append(f"--- {f.relative_to(workdir)}\n{f.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)[-20000:]


def test_demo_through_slurm_matches_a_local_run(slurm, tmp_path):
    exe = snakemake_exe()
    assert set(DATASETS) <= set(catalogue.ids())  # config/sample.yaml builds every dataset folder
    subset = tmp_path / "subset.yaml"
    subset.write_text(yaml.safe_dump({"datasets": DATASETS}))
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    base = [exe, "-s", ROOT / "Snakefile", "--configfile", SAMPLE, subset]

    proc = _run([*base, "--directory", local, "--cores", 2], slurm, 300)
    assert proc.returncode == 0, f"local run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    proc = _run([*base, "--directory", cluster, "--workflow-profile", PROFILE, *SLURM_OPTIONS], slurm, 420)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"SLURM run failed:\n{out[-6000:]}\n{_logs(cluster)}"

    # It really went through SLURM: submitted jobs, each COMPLETED according to squeue.
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", out)
    assert job_ids, f"no SLURM job was submitted:\n{out[-4000:]}"
    states = _run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i %T"], slurm, 60).stdout
    assert all(line.endswith("COMPLETED") for line in states.splitlines()) and len(states.splitlines()) == len(job_ids), \
        f"SLURM job states:\n{states}\n{_logs(cluster)}"
    assert list(cluster.glob(".snakemake/slurm_logs/**/*.log")), "no SLURM job log was written"

    for ds in DATASETS:
        sums = (cluster / "results" / ds / "SHA256SUMS")
        assert sums.is_file(), f"{ds}: no SHA256SUMS from the SLURM run\n{_logs(cluster)}"
        assert sums.read_text() == (local / "results" / ds / "SHA256SUMS").read_text(), ds

    # And the SLURM run left nothing to do.
    proc = _run([*base, "--directory", cluster, "--workflow-profile", PROFILE, *SLURM_OPTIONS, "-n"], slurm, 120)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
