"""bench/ is measured by hand, not in CI; these only keep its entry points working."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_engine_measures_snakemake_alone():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "engine.py"), "--depth", "2", "--sleep", "0.1",
                           "--repeat", "1", "--build-wall", "10"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if "outside the jobs" in line]
    assert [r.split()[0] for r in rows] == ["1", "2", "2"] and "with params" in rows[2]
    assert all(0 < float(r.split("outside the jobs")[1].split()[0]) < 30 for r in rows)


def test_measured_runs_use_the_medcurate_beside_the_interpreter(monkeypatch):
    """The jobs run `medcurate`: the bench's venv's, activated or not."""
    run = _load("run")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = run.code_env()
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["PYTHONPATH"].split(":")[0] == str(run.CODE / "workflow")


def test_orchestration_counts_snakemakes_cpu_only_while_jobs_run():
    """A gap between jobs is counted whole as wall time; Snakemake's CPU in it is not added again."""
    run = _load("run")
    samples = [(t, 0.1 * t) for t in range(11)]  # Snakemake busy at 0.1 core throughout
    assert run.cpu_within(samples, [[2, 4], [6, 9]]) == pytest.approx(0.5)  # (2-4) + (6-9), not 2-9
    assert run.cpu_within(samples, []) == 0.0
    res = {"wall": 10.0, "job_union": 5.0, "snakemake_cpu_during_jobs": 0.5}
    assert run.orchestration(res, 2) == pytest.approx((5.0 + 0.25) / 10.0)
