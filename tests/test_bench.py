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


def test_job_spans_run_from_fork_to_exit(tmp_path):
    """Ten back-to-back jobs leave little time outside them (~0.1 s: each end is known to half a
    50-ms sample). Spans from the first to the last sample that saw a job lose ~50 ms per job."""
    run = _load("run")
    job = tmp_path / "medcurate"
    job.write_text(f"#!{sys.executable} -S\nimport time\ntime.sleep(0.2)\n")
    job.chmod(0o755)
    driver = tmp_path / "driver.sh"
    driver.write_text("".join(f"{job} convert {n}\n" for n in range(10)))
    res = run.measure(["bash", str(driver)], env={"PATH": "/usr/bin:/bin"})
    assert [j["kind"] for j in res["jobs"]] == ["convert"] * 10
    # each job sleeps 0.2 s after its interpreter starts: ~0.22 s on average from fork to exit
    # (each end known to +-25 ms); first to last sample gave ~0.16 s
    assert sum(j["end"] - j["start"] for j in res["jobs"]) / 10 >= 0.19, res["jobs"]
    assert res["wall"] - res["job_union"] < 0.25, res
    o = res["outside"]
    assert o["hand_offs"] <= 9 and o["before"] + o["between"] + o["after"] == pytest.approx(res["wall"] - res["job_union"])
