#!/usr/bin/env python3
"""Benchmark medcurate against the naive approach and the codec floor, on inputs from generate.py.

    python bench/run.py fetal    [--data bench/data] [--cores 2]    # after: bench/generate.py fetal
    python bench/run.py inbreast [--data bench/data] [--cores 2]    # after: bench/generate.py inbreast
    python bench/run.py demo                                        # demo, no-op re-run, dry-runs only
    python bench/run.py table                                       # RESULTS.md table from both runs

For one input set it measures, each in a fresh folder under <data>/runs/:
  (a) medcurate end to end (fetch from a file:// URL with sha256 check, unpack or check_manual,
      convert shards, clean masks (segmentation), select, split, publish) with --cores N, and again
      with --cores 1 for the speed-up;
  (b) the naive approach: a generated Snakefile with one job per image (`python naive_one.py`,
      the same decode, digest and PNG encode; masks too for INbreast) plus an unzip and a manifest job;
  (c) the codec floor: N processes that only decode every input and encode every output with the
      same decoder and, as the floor was defined before PNG passthrough and pngframe, Pillow's PNG
      encoder at png_compress_level (so "medcurate / floor" stays comparable across versions);
  (d) the demo (config/sample.yaml), its no-op re-run, and dry-runs of config/config.yaml and of
      every catalogue entry;
  (e) re-builds after one change at a time, in (a)'s folder, from the state (a) left: a split
      fraction, a selection rule, a cleaning option (segmentation sets) and a download setting.
      Each: a dry-run (the jobs scheduled and Snakemake's reasons), the run itself (measured like
      (a)), then the baseline config again (the revert, measured too), after which a dry-run must
      say "Nothing to be done" and results/<set>/SHA256SUMS (which covers every output file) must
      equal (a)'s, so the next change starts from (a)'s state again. Reverting costs what the change
      cost; a copy of the run folder per change would cost its size (GBs) and a hard-linked copy
      (cp -al) would share files that Snakemake and the steps may rewrite in place (.snakemake
      metadata), so neither is used.
All of it runs a snapshot of the code taken when the run starts (<data>/runs/<set>/code/: Snakefile,
workflow/, config/, envs/, bench/; its package first on PYTHONPATH, so the Snakefile and the jobs'
`medcurate` command both import it), so edits made to the checkout meanwhile cannot change what is
measured or re-run steps through their code fingerprints; results.json records the snapshot's digest
and the commit it was taken from. --patch FILE applies a proposed change to the snapshot only.
A measurement during which other processes used more than --max-busy cores is repeated (up to
--attempts times; the least disturbed one is reported, every attempt is recorded).
For every run: wall, CPU (user+sys of the whole process tree), and per job kind the count, wall,
CPU and peak RSS (VmHWM of each job process, sampled every 50 ms). Other processes' CPU during a run
("foreign load", from /proc/stat minus our own) is printed: the machine is shared.

Orchestration share (medcurate run): time that is not spent in jobs, over the wall time:
    (wall - time during which at least one job process ran) + snakemake's own CPU while jobs ran / cores
i.e. start-up, DAG building, scheduling gaps and bookkeeping. Python start-up inside a job counts
as job time: a job runs from its fork (the kernel's start time) to its exit (the midpoint between
the last sample that saw it and the first that did not). "vs floor" is the plain (wall - floor wall) / wall.
"""

from __future__ import annotations

import argparse
import itertools
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
CODE = ROOT  # the code measured: main() points this at a snapshot of the checkout



def entry_file(code: Path, ds: str) -> Path:
    """A dataset's catalogue entry in a code snapshot: its folder (medcurate/datasets/<id>/) or,
    in snapshots before issue 13, config/datasets/<id>.yaml."""
    folder = code / "workflow" / "medcurate" / "datasets" / ds / "dataset.yaml"
    return folder if folder.is_file() else code / "config" / "datasets" / f"{ds}.yaml"


def catalogue_ids(code: Path) -> list[str]:
    found = sorted(p.parent.name for p in (code / "workflow" / "medcurate" / "datasets").glob("*/dataset.yaml"))
    return found or sorted(p.stem for p in (code / "config" / "datasets").glob("*.yaml"))

def snakemake() -> list[str]:
    return [PY, "-m", "snakemake", "-s", str(CODE / "Snakefile")]


def code_env() -> dict:
    """The environment of a measured Snakemake run: its main process and its jobs (the installed
    `medcurate` entry point) import the package from the code snapshot, not from the checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CODE / "workflow"), env.get("PYTHONPATH")) if p)
    # the jobs' `medcurate` is the one installed beside this interpreter, activated or not
    env["PATH"] = os.pathsep.join(p for p in (str(Path(PY).parent), env.get("PATH")) if p)
    return env


# a job runs `medcurate <step>` (the console script: python .../bin/medcurate <step>) or -m medcurate
JOB = re.compile(r"(?:-m |/)medcurate (\S+)|naive_one\.py|-m zipfile")


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
    """Samples the process tree of ``pid``: per job process its start (fork time) and end (between
    the last sample that saw it and the first that did not), VmHWM and CPU."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval, self.jobs, self.stop_flag = interval, {}, threading.Event()
        self.root_cpu: list[tuple[float, float]] = []  # (time, snakemake's own cpu)
        # psutil's create_time counts from /proc/stat's btime, whole seconds: rebase it on /proc/uptime
        self.boot_shift = time.time() - float(Path("/proc/uptime").read_text().split()[0]) - psutil.boot_time()

    def run(self):
        while not self.stop_flag.is_set():
            now = time.time()
            try:
                ct = self.root.cpu_times()
                self.root_cpu.append((now, ct.user + ct.system))
                children = self.root.children(recursive=True)
            except psutil.Error:
                break
            seen = set()
            for p in children:
                try:
                    key = (p.pid, p.create_time() + self.boot_shift)
                    seen.add(key)
                    info = self.jobs.get(key)
                    if info is None:
                        # checked on every sample: a job's bash execs python under the same pid
                        cmd = p.cmdline()
                        m = JOB.search(" ".join(cmd))
                        if not m or not os.path.basename(cmd[0]).startswith("python"):
                            continue
                        kind = m.group(1) if m.group(1) else ("naive_one" if "naive_one" in " ".join(cmd) else "unzip")
                        # started when forked (create_time, to the clock tick), not when first sampled
                        info = self.jobs[key] = {"kind": kind, "start": key[1], "end": now, "hwm_kb": 0, "cpu": 0.0}
                    status = Path(f"/proc/{p.pid}/status").read_text()
                    hwm = re.search(r"VmHWM:\s+(\d+)", status)
                    ct = p.cpu_times()
                    info.update(end=now, cpu=ct.user + ct.system, hwm_kb=max(info["hwm_kb"], int(hwm.group(1)) if hwm else 0))
                except (psutil.Error, OSError):
                    continue
            for key, info in self.jobs.items():
                if key not in seen and not info.get("gone"):
                    # exited between the last sample that saw it and this one: the midpoint, unbiased
                    info.update(end=(info["end"] + now) / 2, gone=True)
            time.sleep(self.interval)

    def job_list(self) -> list[dict]:
        return list(self.jobs.values())


def measure(cmd: list[str], cwd: Path | None = None, log: Path | None = None, env=None) -> dict:
    """Run ``cmd``; wall, CPU of the whole tree (rusage), foreign CPU, and per-job statistics."""
    os.sync()  # the previous run's dirty pages are written back now, not during this one
    b0, hz = _busy_jiffies()
    t0 = time.time()
    with open(log or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env or code_env())
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
        merged: list[list[float]] = []
        for s, e in sorted((j["start"], j["end"]) for j in jobs):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        res.update(job_union=sum(e - s for s, e in merged),
                   # where the time with no job goes: start-up, hand-offs, the end of the run
                   outside={"before": merged[0][0] - t0, "between": sum(b[0] - a[1] for a, b in itertools.pairwise(merged)),
                            "hand_offs": len(merged) - 1, "after": t0 + wall - merged[-1][1]},
                   snakemake_cpu_during_jobs=cpu_within(mon.root_cpu, merged),
                   snakemake_cpu=mon.root_cpu[-1][1] if mon.root_cpu else 0.0)
    return res


def cpu_within(samples: list[tuple[float, float]], spans: list[list[float]]) -> float:
    """CPU added between consecutive (time, cpu) samples that both fall inside one span: the gaps
    between jobs are already counted whole as wall time, their CPU is not counted again."""
    total, k = 0.0, 0
    for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
        while k < len(spans) and spans[k][1] < t0:
            k += 1
        if k < len(spans) and spans[k][0] <= t0 and t1 <= spans[k][1]:
            total += c1 - c0
    return total


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


# ------------------------------------------------------------------------------ the code measured

SNAPSHOT = ("Snakefile", "pyproject.toml", "workflow", "config", "envs", "bench")


def snapshot_code(dest: Path, patches: list[Path] = (), rev: str | None = None) -> dict:
    """Copy the checkout's code (as it is, committed or not; or commit ``rev``) to ``dest`` and
    apply ``patches`` to the copy (a proposed change measured without touching the checkout)."""
    import hashlib

    def git(*a):
        return subprocess.run(["git", "-C", str(ROOT), *a], check=False, capture_output=True, text=True).stdout.strip()

    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if rev:
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "--", *SNAPSHOT], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    else:
        skip = {"__pycache__", "data", "medcurate.egg-info", ".ruff_cache"}

        def ignore(folder, names):
            return [n for n in names if n in skip and (n != "data" or Path(folder).resolve() == ROOT / "bench")]

        for name in SNAPSHOT:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, dest / name, ignore=ignore, symlinks=True)
            elif src.exists():
                shutil.copy2(src, dest / name)
    for patch in patches:
        proc = subprocess.run(["git", "apply", "--verbose", str(patch.resolve())], cwd=dest, check=False,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"--patch {patch} does not apply to the checkout (fixed meanwhile?):\n{proc.stderr}")
    h = hashlib.sha256()
    for f in sorted(q for q in dest.rglob("*") if q.is_file()):
        h.update(f.relative_to(dest).as_posix().encode() + b"\0" + f.read_bytes())

    return {"path": str(dest), "digest": h.hexdigest()[:16], "git_head": git("rev-parse", "--short", rev or "HEAD"),
            "uncommitted_files": 0 if rev else len(git("status", "--porcelain", "--untracked-files=no", "--", *SNAPSHOT).splitlines()),
            "patches": [p.name for p in patches], "rev": rev}


def config_for(base: Path, work: Path) -> Path:
    """The generated set's config, with (for a set served from a file:// archive) a catalogue entry
    made from the measured code's own entry and the generated source: data generated under one
    catalogue layout can be measured with code of another (e.g. before and after a change)."""
    import yaml

    config = yaml.safe_load((base / "config.yaml").read_text())
    if "catalogue" in config:
        folder = work / "catalogue"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for generated in sorted(Path(config["catalogue"]).glob("*.yaml")):
            entry = yaml.safe_load(entry_file(CODE, generated.stem).read_text())
            entry["sources"] = yaml.safe_load(generated.read_text())["sources"]
            (folder / generated.name).write_text(yaml.safe_dump(entry, sort_keys=False))
        config["catalogue"] = str(folder)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work / "config.yaml"


# ------------------------------------------------------------------------------ the three approaches


def warm_sources(config: Path) -> None:
    """Read every file:// source of the measured set once, so each build (1 core, 2 cores, another
    commit) fetches from a mirror in the page cache: whether the last build's writes evicted the
    2 GB archive otherwise decides the fetch step's time (2.6 to 6.5 s for the same code)."""
    import urllib.parse
    import urllib.request

    import yaml

    folder = yaml.safe_load(config.read_text()).get("catalogue")
    for entry in sorted(Path(folder).glob("*.yaml")) if folder else []:
        for source in yaml.safe_load(entry.read_text()).get("sources", []):
            url = urllib.parse.urlsplit(source.get("url", ""))
            if url.scheme == "file":
                with open(urllib.request.url2pathname(url.path), "rb") as fh:
                    while fh.read(1 << 24):
                        pass


def run_medcurate(config: Path, work: Path, cores: int, name: str) -> dict:
    shutil.rmtree(work / name, ignore_errors=True)
    (work / name).mkdir(parents=True)
    warm_sources(config)
    cmd = [*snakemake(), "--directory", str(work / name), "--cores", str(cores), "--configfile", str(config)]
    return measure(cmd, log=work / f"{name}.log")


def disk_use(d: Path) -> dict:
    """Bytes per tier of a run folder (du: each file once, so hard links between tiers count once
    in the total) and the total relative to the downloads."""
    def du(*paths: Path) -> int:
        paths = [str(p) for p in paths if p.exists()]
        if not paths:
            return 0
        out = subprocess.run(["du", "-s", "-b", "-c", *paths], check=True, capture_output=True, text=True).stdout
        return int(out.strip().splitlines()[-1].split()[0])

    tiers = {"downloads": [d / "resources" / "downloads"], "unpacked": [d / "resources" / "unpacked"],
             "converted": sorted(d.glob("work/*/converted")), "cleaned": sorted(d.glob("work/*/cleaned")),
             "results": [d / "results"]}
    out = {name: du(*paths) for name, paths in tiers.items()}  # each alone (a linked file counts in each)
    out["total"] = du(*[p for paths in tiers.values() for p in paths])
    out["x_download"] = out["total"] / out["downloads"] if out["downloads"] else None
    return out


def reclaim(config: Path, d: Path) -> dict:
    """The reclaim command a user runs when the build is done, then the disk again."""
    # the target first: --configfile takes several values and would swallow it
    proc = subprocess.run([*snakemake(), "reclaim", "--directory", str(d), "--cores", "1", "--configfile", str(config)],
                          check=False, capture_output=True, text=True, env=code_env())
    said = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "reclaimed" in ln]
    out = {"returncode": proc.returncode, "said": said[-1] if said else "", "disk": disk_use(d)}
    if proc.returncode:
        out["output_tail"] = (proc.stdout + proc.stderr)[-2000:]
    return out


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
        unzip=unzip, py=PY, script=CODE / "bench" / "naive_one.py", kind=kind, level=level))
    cmd = [PY, "-m", "snakemake", "-s", str(d / "Snakefile"), "--directory", str(d), "--cores", str(cores),
           "--workflow-profile", "none", "--quiet", "rules"]
    return measure(cmd, log=work / "naive.log")


def kind_dir(kind: str) -> str:
    return "fetal_planes_db" if kind == "fetal" else "inbreast"


def _floor_one(args) -> int:
    """Decode one input and encode its outputs with Pillow at the configured level: the codec floor
    as issue 17 defines it (today's encoder, every image decoded and encoded), kept fixed while
    medcurate's own writer changed (PNG passthrough, pngframe), so ratios stay comparable."""
    kind, src, dest, level = args
    import io

    import numpy as np
    from medcurate.images import read_image
    from PIL import Image

    def pillow_png(arr, path):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=level, optimize=False)
        Path(path).write_bytes(buf.getvalue())

    if kind == "fetal":
        arr = read_image(Path(src))
        pillow_png(arr, dest)
    else:
        from medcurate.dicom import read_dicom

        arr = read_dicom(Path(src))
        pillow_png(arr, dest)
        pillow_png(np.zeros(arr.shape, np.uint8), Path(dest).with_suffix(".mask.png"))
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
    cmd = [PY, str(CODE / "bench" / "run.py"), "_floor", kind, inputs_json, str(d), str(cores), str(level)]
    res = measure(cmd, log=work / "floor.log")
    shutil.rmtree(d, ignore_errors=True)
    return res


# ------------------------------------------------------------------------------ re-builds after one change


def changes(what: str, ds: str, task: str) -> list[tuple[str, str, dict]]:
    """(kind, what changes, config fragment) for each kind of change, as a user would write it."""
    def opt(step, o):
        return {"options": {ds: {step: o}}}

    out = [("split", "split.val_fraction 0.1 -> 0.2", opt("split", {"val_fraction": 0.2}))]
    if what == "inbreast":
        out.append(("select", "select.empty_mask keep -> exclude", opt("select", {"empty_mask": "exclude"})))
    else:  # classification: exclude_flags is the one rule that applies. FETAL has no flag column,
        # so it excludes nothing, but select reads only the tables, whatever it excludes.
        out.append(("select", "select.exclude_flags [] -> [low_quality]", opt("select", {"exclude_flags": ["low_quality"]})))
    if task == "segmentation":
        out.append(("clean", "clean.min_component_area 0 -> 5", opt("clean", {"min_component_area": 5})))
    out.append(("download", "download.timeout 60 -> 30", {"download": {"timeout": 30}}))
    return out


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


RULE = re.compile(r"^(?:local)?rule (\w+):\s*$")


def scheduled(text: str) -> dict[str, dict]:
    """Jobs a dry-run (or a run) lists, per rule: count and Snakemake's reasons (without 'all')."""
    jobs: dict[str, dict] = {}
    rule = None
    for ln in text.splitlines():
        m = RULE.match(ln)
        if m:
            rule = None if m.group(1) == "all" else m.group(1)
            if rule:
                jobs.setdefault(rule, {"n": 0, "reasons": []})["n"] += 1
        elif rule and ln.strip().startswith("reason:"):
            for r in ln.split("reason:", 1)[1].split(";"):
                r = r.split(":", 1)[0].strip()
                if r and r not in jobs[rule]["reasons"]:
                    jobs[rule]["reasons"].append(r)
        elif not ln.startswith((" ", "\t")):
            rule = None
    return jobs


def dry_run(config: Path, d: Path, cores: int, log: Path) -> dict[str, dict]:
    cmd = [*snakemake(), "--directory", str(d), "--cores", str(cores), "--configfile", str(config), "-n"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=code_env())
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"dry-run failed ({proc.returncode}): {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-3000:]}")
    return scheduled(proc.stdout + proc.stderr)


def outputs_digest(d: Path, ds: str) -> str:
    """results/<ds>/SHA256SUMS lists every published file with its digest: its own digest stands
    for the whole output folder."""
    import hashlib

    return hashlib.sha256((d / "results" / ds / "SHA256SUMS").read_bytes()).hexdigest()[:16]


def run_rebuilds(what: str, config: Path, work: Path, name: str, cores: int, quiet, again) -> dict:
    """Each change in turn, from the state the full build left in ``work/name``; see (e) above.
    ``again(res)`` says whether a measurement was disturbed by other processes and is repeated."""
    import yaml

    d = work / name
    base = yaml.safe_load(config.read_text())
    ds = base["datasets"][0]
    task = "segmentation" if what == "inbreast" else "classification"
    out = {"dataset": ds, "baseline_digest": outputs_digest(d, ds), "changes": []}
    noop = dry_run(config, d, cores, work / "rebuild-baseline-dry.log")
    out["baseline_noop"] = not noop
    if noop:
        print(f"  warning: the baseline is not up to date after the full build: {noop}", file=sys.stderr)

    def run(cfg: Path, log: Path) -> dict:
        res = measure([*snakemake(), "--directory", str(d), "--cores", str(cores), "--configfile", str(cfg)], log=log)
        text = log.read_text()
        res.update(ran=scheduled(text), nothing_to_do="Nothing to be done" in text)
        return res

    for kind, desc, fragment in changes(what, ds, task):
        changed = work / f"config-{kind}.yaml"
        changed.write_text(yaml.safe_dump(_merge(base, fragment), sort_keys=False))
        entry = {"kind": kind, "change": desc, "config": str(changed)}
        entry["dry_run"] = dry_run(changed, d, cores, work / f"rebuild-{kind}-dry.log")
        tries = []
        while True:
            quiet(f"re-build after {desc}" + (f", again (others used {tries[-1]['foreign_cores']:.2f} cores)" if tries else ""))
            try:
                res = run(changed, work / f"rebuild-{kind}.log")
            except SystemExit as exc:  # a step failed: recorded, and the next change still runs
                print(f"  FAILED: re-build after {desc}:\n{exc}", file=sys.stderr)
                entry["failed"] = str(exc)[-3000:]
                res = {"wall": float("nan"), "cpu": float("nan"), "foreign_cores": 0.0, "jobs": [], "ran": {}, "nothing_to_do": False}
            res["digest"] = outputs_digest(d, ds)
            if entry["dry_run"] or not res["nothing_to_do"]:  # back to the baseline
                res["revert"] = run(config, work / f"rebuild-{kind}-revert.log")
            after = dry_run(config, d, cores, work / f"rebuild-{kind}-revert-dry.log")
            res["restored"] = not after and outputs_digest(d, ds) == out["baseline_digest"]
            if not res["restored"]:
                print(f"  warning: after reverting {desc}: baseline dry-run {_jobs(after)}, "
                      f"outputs {outputs_digest(d, ds)} vs {out['baseline_digest']}", file=sys.stderr)
            tries.append(res)
            print(f"[{time.strftime('%H:%M:%S')}]   {kind}: {res['wall']:.1f} s, ran {_jobs(res['ran'])}, "
                  f"others used {res['foreign_cores']:.2f} cores", file=sys.stderr)
            if "failed" in entry or not again(tries):
                break
        res = entry["run"] = best(tries)
        entry["restored"] = all(t["restored"] for t in tries)
        # Source images are decoded by convert jobs only (unpack and check_manual copy or link files):
        # the jobs the run's log lists, and the convert processes the monitor saw, in every attempt.
        entry["convert_jobs"] = max(max(t["ran"].get("convert_shard", {}).get("n", 0),
                                        sum(1 for j in t["jobs"] if j["kind"] == "convert")) for t in tries)
        out["changes"].append(entry)
    return out


def best(tries: list[dict]) -> dict:
    """The attempt least disturbed by other processes, with every attempt's wall, CPU and foreign load."""
    res = dict(min(tries, key=lambda r: r["foreign_cores"]))
    res["attempts"] = [{k: round(t[k], 2) for k in ("wall", "cpu", "foreign_cores")} for t in tries]
    return res


def _jobs(jobs: dict[str, dict]) -> str:
    return ", ".join(f"{r} {j['n']}" for r, j in jobs.items()) or "nothing"


# ------------------------------------------------------------------------------ demo, no-op, dry-run


def run_demo(work: Path, cores: int) -> dict:
    d = work / "demo"
    shutil.rmtree(d, ignore_errors=True)
    sample = CODE / "config" / "sample.yaml"
    base = [*snakemake(), "--directory", str(d), "--cores", str(cores), "--configfile", str(sample)]
    out = {"demo": measure(base, log=work / "demo.log")}
    noop = [measure(base, log=work / "demo-noop.log") for _ in range(3)]
    assert "Nothing to be done" in (work / "demo-noop.log").read_text()
    out["noop"] = min(noop, key=lambda r: r["wall"])
    out["noop_walls"] = [r["wall"] for r in noop]
    dry = work / "dry"
    shutil.rmtree(dry, ignore_errors=True)
    dry.mkdir(parents=True)
    out["dry_config"] = measure([*snakemake(), "--directory", str(dry), "--cores", str(cores), "-n", "--quiet", "rules"],
                                log=work / "dry-config.log")
    every = catalogue_ids(CODE)
    out["dry_catalogue"] = measure([*snakemake(), "--directory", str(dry), "--cores", str(cores), "-n", "--quiet", "rules",
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


TARGETS = {"split": "<= 5 %", "select": "<= 5 %", "clean": "<= 25 %, no convert job", "download": "nothing to do"}
NAMES = {"fetal": "FETAL_PLANES_DB", "inbreast": "INbreast"}


def markdown(data: Path) -> str:
    """The RESULTS.md tables from <data>/runs/{fetal,inbreast}/results.json."""
    runs = {w: json.loads(p.read_text()) for w in ("fetal", "inbreast") if (p := data / "runs" / w / "results.json").is_file()}
    others = {(w, p.parent.name.split("@", 1)[1]): json.loads(p.read_text())
              for w in ("fetal", "inbreast") for p in sorted((data / "runs").glob(f"{w}@*/results.json"))}
    lines = [("| set | images | full build (wall, CPU) | codec floor (wall, CPU) | full / floor, wall | ... CPU "
              "| others' load (full, floor) | code |"),
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for w, rev, r in [(w, "", r) for w, r in runs.items()] + [(w, rev, r) for (w, rev), r in others.items()]:
        m, f = r.get("medcurate"), r.get("floor")
        if not (m and f):
            continue
        c = r.get("code", {})
        lines.append(f"| {NAMES[w]}{f' at {rev}' if rev else ''} | {r['images']:,} | {m['wall']:.1f} s, {m['cpu']:.0f} s | {f['wall']:.1f} s, {f['cpu']:.0f} s "
                     f"| **{m['wall'] / f['wall']:.2f}x** | {m['cpu'] / f['cpu']:.2f}x "
                     f"| {m['foreign_cores']:.2f}, {f['foreign_cores']:.2f} cores | {c.get('git_head', '?')}"
                     f"{' + ' + str(c['uncommitted_files']) + ' uncommitted' if c.get('uncommitted_files') else ''}"
                     f"{''.join(' + ' + x for x in c.get('patches', []))} (snapshot {c.get('digest', '?')[:8]}) |")
    lines += ["", ("| set | change | jobs scheduled (dry-run) | wall | % of full build | target | CPU | convert jobs "
                   "| others' load | baseline restored |"),
              "|---|---|---|---:|---:|---|---:|---:|---:|---|"]
    for w, r in runs.items():
        m = r.get("medcurate")
        for c in r.get("rebuilds", {}).get("changes", []) if m else []:
            run = c["run"]
            jobs = ", ".join(f"{rule} {j['n']}" for rule, j in c["dry_run"].items()) or "nothing to be done"
            if "failed" in c:
                jobs += " (**failed**: see results.json)"
            lines.append(f"| {NAMES[w]} | `{c['change']}` | {jobs} | {run['wall']:.1f} s | **{run['wall'] / m['wall']:.1%}** "
                         f"| {TARGETS[c['kind']]} | {run['cpu']:.1f} s | {c['convert_jobs']} | {run['foreign_cores']:.2f} cores "
                         f"| {'yes' if c['restored'] else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_floor":
        floor_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["fetal", "inbreast", "demo", "table"])
    p.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--skip", default="", help="comma-separated: medcurate,rebuilds,one-core,naive,floor,demo")
    p.add_argument("--naive-limit", type=int, help="naive approach on the first N images only (scaled up in the ratio)")
    p.add_argument("--max-busy", type=float, default=0.3, help="wait until others use fewer cores than this")
    p.add_argument("--patience", type=float, default=300)
    p.add_argument("--attempts", type=int, default=3,
                   help="repeat a measurement (full build, floor, re-build) during which others used more than "
                        "--max-busy cores, up to this many times; the least disturbed one is reported")
    p.add_argument("--keep", action="store_true", help="keep the medcurate run's folder (outputs, logs)")
    p.add_argument("--patch", type=Path, action="append", default=[],
                   help="apply this patch (git apply) to the code snapshot before measuring; repeatable")
    p.add_argument("--rev", help="measure this commit instead of the checkout (results in <data>/runs/<set>@<rev>/)")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    data = args.data.resolve()
    if args.what == "table":
        print(markdown(data))
        return 0
    global CODE
    work = data / "runs" / (args.what + (f"@{args.rev}" if args.rev else ""))
    work.mkdir(parents=True, exist_ok=True)
    code = snapshot_code(work / "code", args.patch, args.rev)
    CODE = Path(code["path"])
    sys.path.insert(0, str(CODE / "workflow"))
    import yaml
    from medcurate import catalogue

    level = catalogue.load_config(yaml.safe_load((CODE / "config" / "config.yaml").read_text()), CODE)["png_compress_level"]
    results: dict = {"cores": args.cores, "png_compress_level": level, "loadavg_start": os.getloadavg(), "code": code,
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python bench/run.py", *argv])}
    print(f"code: snapshot {code['digest']} of {code['git_head']} ({code['uncommitted_files']} files uncommitted"
          f"{', patched: ' + ', '.join(code['patches']) if code['patches'] else ''}) in {CODE}", file=sys.stderr)

    def quiet(name):
        busy = wait_quiet(args.max_busy, args.patience)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: others use {busy:.2f} cores, loadavg {os.getloadavg()[0]:.2f}", file=sys.stderr)

    def again(tries: list[dict]) -> bool:
        return tries[-1]["foreign_cores"] >= args.max_busy and len(tries) < args.attempts

    def measured(name, fn):
        tries = []
        while True:
            quiet(name + (f", again (others used {tries[-1]['foreign_cores']:.2f} cores)" if tries else ""))
            tries.append(fn())
            print(f"[{time.strftime('%H:%M:%S')}]   {name}: {tries[-1]['wall']:.1f} s, others used "
                  f"{tries[-1]['foreign_cores']:.2f} cores", file=sys.stderr)
            if not again(tries):
                return best(tries)

    if args.what in ("fetal", "inbreast"):
        base = data / kind_dir(args.what)
        inputs = json.loads((base / "inputs.json").read_text())
        inputs["_path"] = str(base / "inputs.json")
        config = config_for(base, work)
        results["images"] = inputs["images"]
        if "medcurate" not in skip:
            results["medcurate"] = measured("medcurate", lambda: run_medcurate(config, work, args.cores, f"medcurate-{args.cores}c"))
            # peak disk: nothing is deleted during a build, so its end state is its largest
            results["disk"] = disk_use(work / f"medcurate-{args.cores}c")
            if "rebuilds" not in skip:
                results["rebuilds"] = run_rebuilds(args.what, config, work, f"medcurate-{args.cores}c", args.cores, quiet, again)
            results["disk_after_reclaim"] = reclaim(config, work / f"medcurate-{args.cores}c")
            if not args.keep:
                shutil.rmtree(work / f"medcurate-{args.cores}c", ignore_errors=True)  # disk: outputs are GBs
        if "floor" not in skip:
            results["floor"] = measured("floor", lambda: run_floor(args.what, inputs["_path"], work, args.cores, level))
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
    for key, label in (("medcurate", "(a)"), ("floor", "(c)")):
        if r.get(key, {}).get("attempts"):
            print(f"  {label} attempts (wall s / others' cores): " + ", ".join(f"{a['wall']:.1f}/{a['foreign_cores']:.2f}" for a in r[key]["attempts"]))
    if "medcurate_1c" in r:
        print(line("(a') medcurate, 1 core", r["medcurate_1c"]))
    for key, label in (("disk", "disk after the build (peak)"), ("disk_after_reclaim", "disk after reclaim")):
        if key in r:
            dk = r[key].get("disk", r[key])
            print(f"  {label}: " + ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in dk.items() if k != "x_download")
                  + (f" = {dk['x_download']:.2f}x the download (target <= 2.2x)" if dk.get("x_download") else "")
                  + (f"  ({r[key]['said']})" if r[key].get("said") else ""))
    if m:
        print("\n  ratios")
        if n:
            print(f"    medcurate / naive           {m['wall'] / (n['wall'] * r['images'] / n['images']):6.2f}  "
                  f"(naive is {n['wall'] * r['images'] / n['images'] / m['wall']:.1f}x slower)")
        if f:
            print(f"    medcurate / codec floor     {m['wall'] / f['wall']:6.2f}  (target {'<= 0.6' if what == 'fetal' else '<= 1.15'}; "
                  "the floor decodes every input and encodes every output with Pillow)")
            print(f"    ... in CPU                  {m['cpu'] / f['cpu']:6.2f}  (less sensitive to other processes than wall)")
            print(f"    overhead vs floor           {(m['wall'] - f['wall']) / m['wall']:6.1%}  ((wall - floor) / wall)")
        print(f"    orchestration share         {orchestration(m, cores):6.1%}  (target <= 2 %; no-job time + snakemake CPU / cores)")
        if "outside" in m:
            o = m["outside"]
            print(f"      no job running: {o['before']:.2f} s before the first, {o['between']:.2f} s in {o['hand_offs']} gaps"
                  f" between, {o['after']:.2f} s after the last; snakemake CPU while jobs ran {m['snakemake_cpu_during_jobs']:.2f} s")
        if "medcurate_1c" in r:
            print(f"    speed-up 1 -> {cores} cores       {r['medcurate_1c']['wall'] / m['wall']:6.2f}  (target >= 1.85)")
    if "rebuilds" in r and m:
        rb = r["rebuilds"]
        print(f"\n  re-builds in (a)'s folder, one change at a time (then reverted; baseline up to date after (a): {rb['baseline_noop']})")
        for c in rb["changes"]:
            run = c["run"]
            print(f"    {c['kind']:<9} {c['change']:<40} wall {run['wall']:6.1f} s = {run['wall'] / m['wall']:5.1%} of (a)"
                  f"  CPU {run['cpu']:6.1f} s  (target {TARGETS[c['kind']]})")
            if "failed" in c:
                print("      FAILED: " + c["failed"].strip().splitlines()[0] + "\n      ..." + c["failed"][-600:].replace("\n", "\n      "))
            print(f"      dry-run: {_jobs(c['dry_run'])}; ran: {_jobs(run['ran'])}; convert jobs {c['convert_jobs']}; "
                  f"reverted in {run['revert']['wall'] if 'revert' in run else 0:.1f} s, restored {c['restored']}")
            print(f"      jobs running {run.get('job_union', 0):.1f} s, start-up and gaps {run['wall'] - run.get('job_union', 0):.1f} s; "
                  f"others used {run['foreign_cores']:.2f} cores; attempts (wall s / others' cores): "
                  + ", ".join(f"{a['wall']:.1f}/{a['foreign_cores']:.2f}" for a in run['attempts']))
            for rule, j in c["dry_run"].items():
                print(f"        {rule:<16} {j['n']:>3}  reason: {'; '.join(j['reasons'])}")
    if "demo" in r:
        d = r["demo"]
        print(f"\n  demo ({len(d['catalogue'])} catalogue entries; config/sample.yaml)")
        print(line("demo, fresh", d["demo"]))
        print(f"  {'no-op re-run (best of 3)':<28} wall {d['noop']['wall']:8.2f} s  (all: {', '.join(f'{w:.2f}' for w in d['noop_walls'])}; target <= 3 s)")
        print(f"  {'dry-run config/config.yaml':<28} wall {d['dry_config']['wall']:8.2f} s")
        print(f"  {'dry-run, whole catalogue':<28} wall {d['dry_catalogue']['wall']:8.2f} s")


if __name__ == "__main__":
    sys.exit(main())
