#!/usr/bin/env python3
"""Benchmark medcurate against the naive approach and the codec floor, on inputs from generate.py.

    python bench/run.py fetal    [--data bench/data] [--cores 2]    # after: bench/generate.py fetal
    python bench/run.py inbreast [--data bench/data] [--cores 2]    # after: bench/generate.py inbreast
    python bench/run.py demo                                        # demo, no-op re-run, dry-runs only

For one input set it measures, each in a fresh folder under <data>/runs/:
  (a) medcurate end to end (fetch from a file:// URL with sha256 check, unpack, convert shards,
      gather) with --cores N, and again with --cores 1 for the speed-up;
  (b) the naive approach: a generated Snakefile with one job per image (`python naive_one.py`,
      the same decode, digest and PNG encode; masks too for INbreast) plus an unzip and a manifest job;
  (c) the codec floor: N processes that only decode every input and encode every output with the
      same code and settings (medcurate.images.write_png, png_compress_level);
  (d) the demo (config/sample.yaml), its no-op re-run, and dry-runs of config/config.yaml and of
      every catalogue entry.
For every run: wall, CPU (user+sys of the whole process tree), and per job kind the count, wall,
CPU and peak RSS (VmHWM of each job process, sampled every 50 ms). Other processes' CPU during a run
("foreign load", from /proc/stat minus our own) is printed: the machine is shared.

Orchestration share (medcurate run): time that is not spent in jobs, over the wall time:
    (wall - time during which at least one job process ran) + snakemake's own CPU while jobs ran / cores
i.e. start-up, DAG building, scheduling gaps and bookkeeping. Python start-up inside a job counts
as job time. "vs floor" is the plain (wall - floor wall) / wall.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
PY = sys.executable
SNAKEMAKE = [PY, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
JOB = re.compile(r"-m medcurate (\S+)|naive_one\.py|-m zipfile")


# ------------------------------------------------------------------------------ measurement


def _busy_jiffies() -> tuple[float, float]:
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, os.sysconf("SC_CLK_TCK")


def wait_quiet(max_busy: float, patience: float) -> float:
    """Wait (up to ``patience`` s) until other processes use less than ``max_busy`` cores; return it."""
    deadline = time.time() + patience
    while True:
        b0, hz = _busy_jiffies()
        time.sleep(2)
        b1, _ = _busy_jiffies()
        busy = (b1 - b0) / hz / 2
        if busy < max_busy or time.time() > deadline:
            return busy
        print(f"  machine busy ({busy:.2f} cores in use by others); waiting", file=sys.stderr)


class Monitor(threading.Thread):
    """Samples the process tree of ``pid``: per job process first/last seen, VmHWM, CPU."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval, self.jobs, self.stop_flag = interval, {}, threading.Event()
        self.root_cpu: list[tuple[float, float]] = []  # (time, snakemake's own cpu)

    def run(self):
        while not self.stop_flag.is_set():
            now = time.time()
            try:
                ct = self.root.cpu_times()
                self.root_cpu.append((now, ct.user + ct.system))
                children = self.root.children(recursive=True)
            except psutil.Error:
                break
            for p in children:
                key = (p.pid, getattr(p, "_create_time", None))
                info = self.jobs.get(key)
                try:
                    if info is None:
                        cmd = " ".join(p.cmdline())
                        m = JOB.search(cmd)
                        if not m or not os.path.basename(p.cmdline()[0]).startswith("python"):
                            self.jobs[key] = False
                            continue
                        kind = m.group(1) if m.group(1) else ("naive_one" if "naive_one" in cmd else "unzip")
                        info = self.jobs[key] = {"kind": kind, "start": now, "end": now, "hwm_kb": 0, "cpu": 0.0}
                    if info is False:
                        continue
                    status = Path(f"/proc/{p.pid}/status").read_text()
                    hwm = re.search(r"VmHWM:\s+(\d+)", status)
                    ct = p.cpu_times()
                    info.update(end=now, cpu=ct.user + ct.system, hwm_kb=max(info["hwm_kb"], int(hwm.group(1)) if hwm else 0))
                except (psutil.Error, OSError):
                    continue
            time.sleep(self.interval)

    def job_list(self) -> list[dict]:
        return [j for j in self.jobs.values() if j]


def measure(cmd: list[str], cwd: Path | None = None, log: Path | None = None, env=None) -> dict:
    """Run ``cmd``; wall, CPU of the whole tree (rusage), foreign CPU, and per-job statistics."""
    b0, hz = _busy_jiffies()
    t0 = time.time()
    with open(log or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        mon = Monitor(proc.pid)
        mon.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.time() - t0
        mon.stop_flag.set()
        mon.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    b1, _ = _busy_jiffies()
    cpu = ru.ru_utime + ru.ru_stime
    if proc.returncode != 0:
        tail = log.read_text()[-3000:] if log else ""
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    jobs = mon.job_list()
    res = {"wall": wall, "cpu": cpu, "foreign_cores": max(0.0, ((b1 - b0) / hz - cpu) / wall),
           "max_rss_mb": ru.ru_maxrss / 1024, "jobs": jobs}
    # Orchestration: time with no job running, plus snakemake's own CPU while jobs ran.
    if jobs:
        spans = sorted((j["start"], j["end"]) for j in jobs)
        union, cur_s, cur_e = 0.0, *spans[0]
        for s, e in spans[1:]:
            if s > cur_e:
                union += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        union += cur_e - cur_s
        first, last = spans[0][0], max(e for _, e in spans)
        own = [c for t, c in mon.root_cpu if first <= t <= last]
        res.update(job_union=union, snakemake_cpu_during_jobs=(own[-1] - own[0]) if len(own) > 1 else 0.0,
                   snakemake_cpu=mon.root_cpu[-1][1] if mon.root_cpu else 0.0)
    return res


def by_kind(jobs: list[dict]) -> dict[str, dict]:
    kinds: dict[str, dict] = {}
    for j in jobs:
        k = kinds.setdefault(j["kind"], {"n": 0, "wall": 0.0, "wall_max": 0.0, "cpu": 0.0, "rss_mb_max": 0.0})
        k["n"] += 1
        k["wall"] += j["end"] - j["start"]
        k["wall_max"] = max(k["wall_max"], j["end"] - j["start"])
        k["cpu"] += j["cpu"]
        k["rss_mb_max"] = max(k["rss_mb_max"], j["hwm_kb"] / 1024)
    return kinds


# ------------------------------------------------------------------------------ the three approaches


def run_medcurate(config: Path, work: Path, cores: int, name: str) -> dict:
    shutil.rmtree(work / name, ignore_errors=True)
    (work / name).mkdir(parents=True)
    cmd = [*SNAKEMAKE, "--directory", str(work / name), "--cores", str(cores), "--configfile", str(config)]
    return measure(cmd, log=work / f"{name}.log")


NAIVE_SNAKEFILE = '''\
# Generated by bench/run.py: the naive approach, one Snakemake job per image.
import json

INPUTS = json.load(open({inputs!r}))
NAMES = [n.rsplit("/", 1)[-1].rsplit(".", 1)[0] for n in INPUTS["inputs"]][:{limit}]


rule all:
    input:
        "out/manifest.csv",


rule unzip:
    output:
        expand("unpacked/{sub}/{{name}}{ext}", name=NAMES),
    shell:
        {unzip!r}


rule convert_one:
    input:
        "unpacked/{sub}/{{name}}{ext}",
    output:
        png="out/images/{{name}}.png",
        row="out/rows/{{name}}.json",
    shell:
        "{py} {script} {kind} {{input}} {{output.png}} {{output.row}} {level}"


rule manifest:
    input:
        expand("out/rows/{{name}}.json", name=NAMES),
    output:
        "out/manifest.csv",
    run:
        import csv, hashlib
        rows = [json.load(open(f)) for f in input]
        with open(output[0], "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
'''


def run_naive(inputs: dict, work: Path, cores: int, kind: str, level: int, limit: int | None) -> dict:
    d = work / "naive"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    if kind == "fetal":
        sub, ext = "Images", ".png"
        unzip = f"{PY} -m zipfile -e {inputs['archive']} unpacked"
    else:  # a manual dataset: the release folder is linked, not unpacked
        sub, ext = "AllDICOMs", ".dcm"
        unzip = f"mkdir -p unpacked && cp -al '{inputs['root']}/AllDICOMs' unpacked/ && cp -al '{inputs['root']}/AllXML' unpacked/"
    (d / "Snakefile").write_text(NAIVE_SNAKEFILE.format(
        inputs=inputs["_path"], limit=limit or len(inputs["inputs"]), sub=sub, ext=ext,
        unzip=unzip, py=PY, script=ROOT / "bench" / "naive_one.py", kind=kind, level=level))
    cmd = [PY, "-m", "snakemake", "-s", str(d / "Snakefile"), "--directory", str(d), "--cores", str(cores),
           "--workflow-profile", "none", "--quiet", "rules"]
    return measure(cmd, log=work / "naive.log")


def kind_dir(kind: str) -> str:
    return "fetal_planes_db" if kind == "fetal" else "inbreast"


def _floor_one(args) -> int:
    kind, src, dest, level = args
    import numpy as np
    from medcurate.images import read_image, write_png

    if kind == "fetal":
        arr = read_image(Path(src))
        write_png(arr, Path(dest), level)
    else:
        from medcurate.dicom import read_dicom

        arr = read_dicom(Path(src))
        write_png(arr, Path(dest), level)
        write_png(np.zeros(arr.shape, np.uint8), Path(dest).with_suffix(".mask.png"), level)
    return arr.size


def floor_main(argv: list[str]) -> None:
    """(in a subprocess, so it is measured like the others) decode + encode every input."""
    kind, inputs_json, out, cores, level = argv[0], argv[1], Path(argv[2]), int(argv[3]), int(argv[4])
    inputs = json.loads(Path(inputs_json).read_text())
    out.mkdir(parents=True, exist_ok=True)
    todo = [(kind, os.path.join(inputs["root"], rel), str(out / (Path(rel).stem + ".png")), level) for rel in inputs["inputs"]]
    with Pool(cores) as pool:
        for _ in pool.imap_unordered(_floor_one, todo, chunksize=8):
            pass


def run_floor(kind: str, inputs_json: str, work: Path, cores: int, level: int) -> dict:
    d = work / "floor"
    shutil.rmtree(d, ignore_errors=True)
    cmd = [PY, str(Path(__file__).resolve()), "_floor", kind, inputs_json, str(d), str(cores), str(level)]
    res = measure(cmd, log=work / "floor.log")
    shutil.rmtree(d, ignore_errors=True)
    return res


# ------------------------------------------------------------------------------ demo, no-op, dry-run


def run_demo(work: Path, cores: int) -> dict:
    d = work / "demo"
    shutil.rmtree(d, ignore_errors=True)
    sample = ROOT / "config" / "sample.yaml"
    base = [*SNAKEMAKE, "--directory", str(d), "--cores", str(cores), "--configfile", str(sample)]
    out = {"demo": measure(base, log=work / "demo.log")}
    noop = [measure(base, log=work / "demo-noop.log") for _ in range(3)]
    assert "Nothing to be done" in (work / "demo-noop.log").read_text()
    out["noop"] = min(noop, key=lambda r: r["wall"])
    out["noop_walls"] = [r["wall"] for r in noop]
    dry = work / "dry"
    shutil.rmtree(dry, ignore_errors=True)
    dry.mkdir(parents=True)
    out["dry_config"] = measure([*SNAKEMAKE, "--directory", str(dry), "--cores", str(cores), "-n", "--quiet", "rules"],
                                log=work / "dry-config.log")
    every = sorted(p.stem for p in (ROOT / "config" / "datasets").glob("*.yaml"))
    out["dry_catalogue"] = measure([*SNAKEMAKE, "--directory", str(dry), "--cores", str(cores), "-n", "--quiet", "rules",
                                    "--config", f"datasets=[{','.join(every)}]"], log=work / "dry-catalogue.log")
    out["catalogue"] = every
    return out


# ------------------------------------------------------------------------------ report


def fmt_kinds(res: dict) -> str:
    lines = []
    for kind, k in sorted(by_kind(res["jobs"]).items()):
        lines.append(f"      {kind:<14} {k['n']:>6} jobs  wall {k['wall']:8.1f} s (max {k['wall_max']:6.1f})  "
                     f"CPU {k['cpu']:8.1f} s  peak RSS/job {k['rss_mb_max']:7.0f} MB")
    return "\n".join(lines)


def line(name: str, res: dict) -> str:
    return (f"  {name:<28} wall {res['wall']:8.1f} s  CPU {res['cpu']:8.1f} s  foreign load {res['foreign_cores']:.2f} cores\n"
            + fmt_kinds(res))


def orchestration(res: dict, cores: int) -> float:
    if "job_union" not in res:
        return float("nan")
    return ((res["wall"] - res["job_union"]) + res["snakemake_cpu_during_jobs"] / cores) / res["wall"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_floor":
        floor_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["fetal", "inbreast", "demo"])
    p.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--skip", default="", help="comma-separated: medcurate,one-core,naive,floor,demo")
    p.add_argument("--naive-limit", type=int, help="naive approach on the first N images only (scaled up in the ratio)")
    p.add_argument("--max-busy", type=float, default=0.3, help="wait until others use fewer cores than this")
    p.add_argument("--patience", type=float, default=300)
    p.add_argument("--keep", action="store_true", help="keep the medcurate run's folder (outputs, logs)")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    data = args.data.resolve()
    import yaml
    from medcurate import catalogue

    level = catalogue.load_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), ROOT)["png_compress_level"]
    results: dict = {"cores": args.cores, "png_compress_level": level, "loadavg_start": os.getloadavg()}
    work = data / "runs" / args.what
    work.mkdir(parents=True, exist_ok=True)

    def quiet(name):
        busy = wait_quiet(args.max_busy, args.patience)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: others use {busy:.2f} cores, loadavg {os.getloadavg()[0]:.2f}", file=sys.stderr)

    if args.what in ("fetal", "inbreast"):
        base = data / kind_dir(args.what)
        inputs = json.loads((base / "inputs.json").read_text())
        inputs["_path"] = str(base / "inputs.json")
        config = base / "config.yaml"
        results["images"] = inputs["images"]
        if "medcurate" not in skip:
            quiet("medcurate")
            results["medcurate"] = run_medcurate(config, work, args.cores, f"medcurate-{args.cores}c")
            if not args.keep:
                shutil.rmtree(work / f"medcurate-{args.cores}c", ignore_errors=True)  # disk: outputs are GBs
        if "floor" not in skip:
            quiet("floor")
            results["floor"] = run_floor(args.what, inputs["_path"], work, args.cores, level)
        if "naive" not in skip:
            quiet("naive")
            results["naive"] = run_naive(inputs, work, args.cores, args.what, level, args.naive_limit)
            results["naive"]["images"] = args.naive_limit or inputs["images"]
            shutil.rmtree(work / "naive", ignore_errors=True)
        if "one-core" not in skip and args.cores > 1:
            quiet("medcurate, 1 core")
            results["medcurate_1c"] = run_medcurate(config, work, 1, "medcurate-1c")
            shutil.rmtree(work / "medcurate-1c", ignore_errors=True)
    if "demo" not in skip:
        quiet("demo")
        results["demo"] = run_demo(work, args.cores)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    report(results, args.what, args.cores)
    return 0


def report(r: dict, what: str, cores: int) -> None:
    print(f"\n== medcurate benchmark: {what}, {r.get('images', '-')} images, --cores {cores}, png_compress_level {r['png_compress_level']}"
          f" (loadavg at start {r['loadavg_start'][0]:.2f})")
    m, f, n = r.get("medcurate"), r.get("floor"), r.get("naive")
    if m:
        print(line(f"(a) medcurate, {cores} cores", m))
        print(f"      snakemake process: CPU {m.get('snakemake_cpu', 0):.1f} s, peak RSS of any process {m['max_rss_mb']:.0f} MB")
    if n:
        scale = r["images"] / n["images"]
        print(line(f"(b) naive, {n['images']} images" + (f" (x{scale:.2f})" if scale != 1 else ""), n))
    if f:
        print(line("(c) codec floor", f))
    if "medcurate_1c" in r:
        print(line("(a') medcurate, 1 core", r["medcurate_1c"]))
    if m:
        print("\n  ratios")
        if n:
            print(f"    medcurate / naive           {m['wall'] / (n['wall'] * r['images'] / n['images']):6.2f}  "
                  f"(naive is {n['wall'] * r['images'] / n['images'] / m['wall']:.1f}x slower)")
        if f:
            print(f"    medcurate / codec floor     {m['wall'] / f['wall']:6.2f}  (target <= 1.3)")
            print(f"    overhead vs floor           {(m['wall'] - f['wall']) / m['wall']:6.1%}  ((wall - floor) / wall)")
        print(f"    orchestration share         {orchestration(m, cores):6.1%}  (target <= 5 %; no-job time + snakemake CPU / cores)")
        if "medcurate_1c" in r:
            print(f"    speed-up 1 -> {cores} cores       {r['medcurate_1c']['wall'] / m['wall']:6.2f}  (target >= 1.8)")
    if "demo" in r:
        d = r["demo"]
        print(f"\n  demo ({len(d['catalogue'])} catalogue entries; config/sample.yaml)")
        print(line("demo, fresh", d["demo"]))
        print(f"  {'no-op re-run (best of 3)':<28} wall {d['noop']['wall']:8.2f} s  (all: {', '.join(f'{w:.2f}' for w in d['noop_walls'])}; target <= 3 s)")
        print(f"  {'dry-run config/config.yaml':<28} wall {d['dry_config']['wall']:8.2f} s")
        print(f"  {'dry-run, whole catalogue':<28} wall {d['dry_catalogue']['wall']:8.2f} s")


if __name__ == "__main__":
    sys.exit(main())
