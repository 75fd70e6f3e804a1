"""A wheel built from the repository works outside the checkout: built with pip, installed into a
fresh venv in a temporary folder, and run there -- the `medcurate` command writes a dataset's
sample files, the catalogue and schemas load from package data (importlib.resources), and the
fetch, unpack and convert steps run one dataset through the installed entry point."""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from medcurate.testing import ROOT

pytestmark = pytest.mark.e2e

DRIVER = textwrap.dedent('''
    import csv, json, subprocess
    from pathlib import Path

    import medcurate
    from medcurate import catalogue

    here = Path.cwd()
    assert "site-packages" in medcurate.__file__, medcurate.__file__
    run = lambda *args: subprocess.run(["medcurate", *map(str, args)], check=True)
    run("samples", "--no-pins", "--out", "mirror", "stare")
    config = catalogue.load_config({"datasets": ["stare"], "sample_mirror": {"root": "mirror"}, "shards": 1}, here)
    plan = catalogue.plan(catalogue.load_catalogue(config)["stare"], config)

    def slice_file(step, source=None):
        path = here / f"{step}-{source or ''}.json"
        path.write_text(json.dumps(catalogue.step_slice(plan, step, source)))
        return path

    records = []
    for src in plan["sources"]:
        records.append(here / "fetched" / f"{src['name']}.json")
        run("fetch", "--slice", slice_file("fetch", src["name"]), "--source", src["name"],
            "--dest", here / "downloads" / src["name"], "--record", records[-1])
    run("unpack", "--slice", slice_file("unpack"), "--records", *records, "--dest", here / "unpacked", "--out", "ready.json")
    run("convert", "--slice", slice_file("convert"), "--ready", "ready.json", "--shard", 0, "--shards", 1, "--out", "converted")
    rows = list(csv.DictReader(open("converted/part.csv")))
    print(json.dumps({"cases": len(rows), "pins": catalogue.sample_pins("stare"), "module": medcurate.__file__}))
''')


def test_wheel_installed_outside_the_checkout_runs_a_dataset(tmp_path):
    # built from a copy of what the wheel is made of, so the build leaves nothing in the checkout
    src = tmp_path / "src"
    shutil.copytree(ROOT / "workflow" / "medcurate", src / "workflow" / "medcurate",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("medcurate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "medcurate/schemas/dataset.schema.yaml" in names and "medcurate/datasets/stare/dataset.yaml" in names
    assert "medcurate/datasets/stare/sample.sha256" in names and "medcurate/datasets/stare/README.md" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # the dependencies (numpy, pandas, ...) from this interpreter's site-packages, appended to the
    # fresh venv's path by a .pth file; .pth files in that folder (this checkout's editable install)
    # are not processed, so medcurate itself can only come from the wheel
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"])
    proc = subprocess.run([python, "-c", DRIVER], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["module"].startswith(str(venv)) and out["cases"] == 4
    assert out["pins"] and all(len(d) == 64 for d in out["pins"].values())
    assert (work / "converted" / "images").is_dir() and not str(ROOT) in out["module"]
