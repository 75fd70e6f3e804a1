"""Snakemake's own cost per run, without medcurate: the floor under bench/run.py's orchestration share.

A generated Snakefile runs `sleep S` jobs with the same exit as medcurate's hooks (the pending
rate-limit timer cancelled), three ways: one job; a chain of --depth dependent ones, as deep as a
medcurate build (fetch -> unpack -> convert -> select -> split -> publish); the same chain with
a parameter on each rule, as medcurate's rules have (Snakemake then imports pandas to hash
parameters, once per run). Prints wall minus the jobs' sleep, best of --repeat, and that time as
a share of a build of --build-wall seconds:

    python bench/engine.py --build-wall 38.6
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# medcurate.hooks.cancel_pending_timers, written out: importing medcurate would add its start here
EXIT = """
onsuccess:
    import threading
    for t in threading.enumerate():
        if isinstance(t, threading.Timer):
            t.cancel()
"""


def snakefile(depth: int, sleep: float, params: bool) -> str:
    param = "    params:\n        code='x',\n" if params else ""
    rules = [f"rule all:\n    input: 'f{depth}'\n"]
    for n in range(1, depth + 1):
        needs = f"    input: 'f{n - 1}'\n" if n > 1 else ""
        rules.append(f"rule r{n}:\n{needs}    output: 'f{n}'\n{param}    shell: 'sleep {sleep}; touch {{output}}'\n")
    return "\n".join(rules) + EXIT


def overhead(depth: int, sleep: float, params: bool, repeat: int, cores: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "Snakefile").write_text(snakefile(depth, sleep, params))
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "-q"], cwd=d, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            best = min(best, time.perf_counter() - t0 - depth * sleep)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depth", type=int, default=6, help="dependent jobs in the chain (a FETAL build's depth)")
    p.add_argument("--sleep", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--build-wall", type=float, help="a build's wall time: print the floor as its share")
    a = p.parse_args()
    if shutil.which("sleep") is None:
        raise SystemExit("needs the sleep command")
    print(f"Snakemake {subprocess.run([sys.executable, '-m', 'snakemake', '--version'], capture_output=True, text=True).stdout.strip()}, "
          f"{sys.executable}, best of {a.repeat}")
    for depth, params in ((1, False), (a.depth, False), (a.depth, True)):
        s = overhead(depth, a.sleep, params, a.repeat, a.cores)
        share = f"  = {s / a.build_wall:.1%} of a {a.build_wall:g}-s build" if a.build_wall else ""
        print(f"  {depth} job(s){' with params' if params else '':12}  outside the jobs {s:5.2f} s{share}")


if __name__ == "__main__":
    main()
