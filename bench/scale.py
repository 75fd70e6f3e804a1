#!/usr/bin/env python3
"""Scale bench at ChestX-ray14's layout: the full build at several sizes, to show the per-image
cost and each job kind's peak memory flat as the set grows.

    python bench/generate.py cxr14 --sizes 1000,2000,4000
    python bench/scale.py --sizes 1000,2000,4000 [--cores 2] [--one-core 4000]
    python bench/scale.py --dry-run-only          # the real config's dry-run time (all datasets)

For each size (bench/data/chestxray14-<n>/, from generate.py): a fresh run folder, the full build
(fetch from file:// with sha256, unpack the 12 tar.gz, check_manual, 16 convert shards, select,
split, publish) with --cores N, measured as bench/run.py measures (wall, CPU of the process tree,
per job kind the count, summed wall and CPU, and the peak RSS of any one job); the disk per tier
after the build (its peak: a build deletes nothing) and after `snakemake reclaim`; then the run
folder is deleted. Then the dry-run of config/config.yaml (every catalogue dataset) in an empty
folder, best of 3. Results: bench/data/runs/scale/results.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (bench/run.py: measure, run_medcurate, disk_use, reclaim, config_for)

# job kinds as run.by_kind names them (the medcurate subcommand of each job process)
KINDS = ("fetch", "unpack", "check-manual", "convert", "select", "split", "publish")


def dry_run_real(work: Path) -> dict:
    """snakemake -n on config/config.yaml (all datasets) in an empty folder: best of 3."""
    d = work / "dry"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    walls = []
    for _ in range(3):
        t = time.time()
        proc = subprocess.run([*run.snakemake(), "--directory", str(d), "--cores", "2", "--configfile",
                               str(run.CODE / "config" / "config.yaml"), "-n"], capture_output=True, text=True, check=False,
                              env=run.code_env())
        walls.append(time.time() - t)
        if proc.returncode:
            raise SystemExit(f"dry-run failed: {(proc.stdout + proc.stderr)[-2000:]}")
    jobs = sum(j["n"] for j in run.scheduled(proc.stdout + proc.stderr).values())
    return {"walls": walls, "best": min(walls), "jobs": jobs}


def one_size(n: int, data: Path, work: Path, cores: int, name: str = "build") -> dict:
    base = data / f"chestxray14-{n}"
    if not (base / "config.yaml").is_file():
        raise SystemExit(f"{base} missing: python bench/generate.py cxr14 --sizes {n}")
    inputs = json.loads((base / "inputs.json").read_text())
    sub = work / f"n{n}"
    sub.mkdir(parents=True, exist_ok=True)
    config = run.config_for(base, sub)
    # the manual folder is the generated one: config_for copies only the catalogue
    busy = run.wait_quiet(0.3, 30)
    res = run.run_medcurate(config, sub, cores, name)
    res["others_before"] = busy
    res["disk"] = run.disk_use(sub / name)
    res["after_reclaim"] = run.reclaim(config, sub / name)
    res["kinds"] = run.by_kind(res.pop("jobs"))
    res["images"] = inputs["images"]
    res["archive_bytes"] = inputs["archive_bytes"]
    res["loadavg"] = os.getloadavg()
    shutil.rmtree(sub / name, ignore_errors=True)
    return res


def table(results: dict) -> str:
    seen = {k for r in results["sizes"].values() for k in r["kinds"]}
    kinds = [k for k in KINDS if k in seen] + sorted(seen - set(KINDS))
    rows = ["| images | wall | CPU | wall / image | CPU / image | orchestration | others' load | "
            + " | ".join(f"{k} peak RSS" for k in kinds) + " |",
            "|" + "---:|" * (7 + len(kinds))]
    for n, r in sorted(results["sizes"].items(), key=lambda kv: int(kv[0])):
        rss = [f"{r['kinds'][k]['rss_mb_max']:.0f} MB" if k in r["kinds"] else "-" for k in kinds]
        rows.append(f"| {int(n):,} | {r['wall']:.1f} s | {r['cpu']:.1f} s | {r['wall'] / r['images'] * 1000:.1f} ms | "
                    f"{r['cpu'] / r['images'] * 1000:.1f} ms | {run.orchestration(r, results['cores']):.1%} | "
                    f"{r['foreign_cores']:.2f} cores | " + " | ".join(rss) + " |")
    rows += ["", "| images | downloads | unpacked | converted | results | total (links once) | x download | after reclaim |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, r in sorted(results["sizes"].items(), key=lambda kv: int(kv[0])):
        d, a = r["disk"], r["after_reclaim"]["disk"]
        rows.append(f"| {int(n):,} | {d['downloads'] / 1e9:.2f} GB | {d['unpacked'] / 1e9:.2f} GB | {d['converted'] / 1e9:.2f} GB | "
                    f"{d['results'] / 1e9:.2f} GB | {d['total'] / 1e9:.2f} GB | {d['x_download']:.2f}x | "
                    f"{a['total'] / 1e9:.2f} GB ({a['x_download']:.2f}x) |")
    for n, r in sorted(results.get("one_core", {}).items(), key=lambda kv: int(kv[0])):
        two = results["sizes"][n]
        rows += ["", f"{int(n):,} images on 1 core: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU (others {r['foreign_cores']:.2f} "
                     f"cores); on {results['cores']}: {two['wall']:.1f} s: speed-up **{r['wall'] / two['wall']:.2f}x**"]
    if "dry_run" in results:
        dr = results["dry_run"]
        rows += ["", f"dry-run of config/config.yaml ({dr['jobs']} jobs): best {dr['best']:.2f} s of "
                     + ", ".join(f"{w:.2f}" for w in dr["walls"]) + " s (target < 3 s)"]
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,2000,4000")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--data", type=Path, default=HERE / "data")
    p.add_argument("--one-core", default="", help="sizes also built with --cores 1, for the speed-up")
    p.add_argument("--dry-run-only", action="store_true")
    p.add_argument("--table", action="store_true", help="only print the table of the last run's results.json")
    args = p.parse_args()
    work = args.data.resolve() / "runs" / "scale"
    if args.table:
        print(table(json.loads((work / "results.json").read_text())))
        return 0
    work.mkdir(parents=True, exist_ok=True)
    code = run.snapshot_code(work / "code")
    run.CODE = Path(code["path"])
    results = {"cores": args.cores, "code": code, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "loadavg_start": os.getloadavg(), "command": " ".join(["python bench/scale.py", *sys.argv[1:]]), "sizes": {}}
    if not args.dry_run_only:
        for n in map(int, args.sizes.split(",")):
            print(f"[{time.strftime('%H:%M:%S')}] {n} images", file=sys.stderr)
            results["sizes"][str(n)] = one_size(n, args.data.resolve(), work, args.cores)
            (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
        for n in [int(x) for x in args.one_core.split(",") if x]:
            print(f"[{time.strftime('%H:%M:%S')}] {n} images, 1 core", file=sys.stderr)
            results.setdefault("one_core", {})[str(n)] = one_size(n, args.data.resolve(), work, 1, "build-1c")
            (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    results["dry_run"] = dry_run_real(work)
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
