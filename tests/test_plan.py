"""`medcurate plan` and the free-space check (medcurate/plan.py): the plan's figures against the
sample mirror's real files, archive listings against real unpacking, sizes a real HTTP server
gives, folders on one small tmpfs counted together, and (e2e) snakemake refusing a dataset that
cannot fit before any download, its override, and the summary line per dataset."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from medcurate.testing import entry_path
from conftest import ROOT, snakemake_exe

from medcurate import catalogue, plan

SAMPLE = ROOT / "config" / "sample.yaml"
MIRROR = ROOT / "workflow" / "sample-mirror"


def _sample(datasets=None, **over):
    raw = yaml.safe_load(SAMPLE.read_text())
    raw.update(over)
    if datasets:
        raw["datasets"] = datasets
    config = catalogue.load_config(raw, ROOT)
    entries = catalogue.load_catalogue(config)
    return config, entries, {ds: catalogue.plan(entries[ds], config) for ds in config["datasets"]}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # resources/, work/, results/ are relative to where a run starts
    return tmp_path


@pytest.fixture
def small_fs(tmp_path):
    """small_fs(path, size): a real size-limited tmpfs mounted at ``path`` (root with CAP_SYS_ADMIN, as in CI)."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a size-limited tmpfs here ({proc.stderr.strip()}): needs root with CAP_SYS_ADMIN")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_sample_download_figures_are_the_mirror_files(in_tmp):
    """Every byte of the sample mirror is a download or a placed file of exactly one dataset, and
    the plan says so exactly (no '~')."""
    config, entries, plans = _sample()
    ests = plan.estimates(config, entries, plans)
    total = 0
    for e in ests:
        folder = MIRROR / e.id
        downloads = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        assert (e.download.bytes, e.download.exact) == (downloads, True), e.id
        for name, fig, cached in e.sources:
            assert (fig.bytes, fig.how, cached) == ((folder / name).stat().st_size, "file", False)
        if (folder / "manual").is_dir():
            placed = sum(f.stat().st_size for f in (folder / "manual").rglob("*") if f.is_file())
            assert (e.placed.bytes, e.placed.how, e.placed.exact) == (placed, "placed", True), e.id
            total += placed
        total += downloads
    assert total == sum(f.stat().st_size for f in MIRROR.rglob("*") if f.is_file())


@pytest.mark.parametrize("dataset", ["acdc", "mias", "stare", "fetal_head_biometry", "african_fetal_planes"])
def test_listed_unpacked_size_is_what_unpacking_writes(dataset, in_tmp, tmp_path):
    """zip central directories, plain and compressed tars, nested zips (replaced by their members)."""
    from medcurate.unpack import unpack

    config, entries, plans = _sample([dataset])
    est = plan.estimates(config, entries, plans)[0]
    assert est.unpacked.how == "listed from the archives" and est.unpacked.exact
    dest = tmp_path / "unpacked"
    unpack(sorted(p for p in (MIRROR / dataset).iterdir() if p.is_file()), dest)
    marker = (dest / ".medcurate-unpack.json").stat().st_size  # unpack's own record, not the release
    assert est.unpacked.bytes == plan.tree_bytes(dest)[0] - marker


def test_a_listing_opens_only_the_nested_archives(tmp_path, monkeypatch):
    """The space check at every run's start lists the downloads: a plain member's size is in the
    zip's central directory, and opening it (a seek to its local header) cost 0.25 s per run on
    FETAL_PLANES_DB's 12,400 PNGs."""
    import io
    import zipfile

    from medcurate.sizes import listed_bytes

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("a/x.png", b"x" * 300)
    path = tmp_path / "release.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(50):
            zf.writestr(f"images/{i:03d}.png", b"p" * (i + 1))
        zf.writestr("nested/part.zip", inner.getvalue())
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(getattr(name, "filename", name)) or real_open(self, name, *a, **k))
    assert listed_bytes(path, path.name, nested=True) == sum(range(1, 51)) + 300
    assert opened == ["nested/part.zip"]


def test_real_catalogue_figures_are_marked_estimates(in_tmp):
    config = catalogue.load_config({"datasets": ["fetal_planes_db", "chestxray14", "inbreast", "chase_db1"]}, ROOT)
    entries = catalogue.load_catalogue(config)
    plans = {ds: catalogue.plan(entries[ds], config) for ds in config["datasets"]}
    fetal, cxr, inbreast, chase = plan.estimates(config, entries, plans)
    assert (fetal.download.bytes, fetal.download.exact, fetal.download.text()) == (2_100_000_000, False, "~2.1 GB")
    assert fetal.unpacked.bytes == int(2_100_000_000 * 1.05) and "unpacked_ratio" in fetal.unpacked.how
    assert cxr.download.bytes == 42_000_000_000 and "all files" in cxr.download.how  # only a total is stated
    assert inbreast.placed.bytes == 11_100_000_000 and not inbreast.placed.exact
    assert chase.download.bytes is None and chase.download.text() == "?"
    assert plan.still_to_write(cxr, plan.folders(config))["download"] == 42_000_000_000
    # approx_size is the plan's: no step's slice carries it, so adding one re-runs nothing
    for ds, p in plans.items():
        for step in ("fetch", "publish"):
            names = [s["name"] for s in p["sources"]] or [None]
            assert "approx_size" not in json.dumps(catalogue.step_slice(p, step, names[0])), (ds, step)


# The entries that had their ratios recorded with this check; a later entry without a `disk:`
# block gets the default ratios, said in the plan's output ("no disk ratios in the catalogue entry").
WITH_RATIOS = ("acdc", "african_fetal_planes", "bcdr", "cbis_ddsm", "cdd_cesm", "chase_db1", "chestxray14", "csaw_s",
               "drive", "fetal_head_biometry", "fetal_planes_db", "inbreast", "isic2019", "kermany_oct", "kits19",
               "mias", "mura", "odir5k", "promise12", "stare", "ultrasound_nerve")


@pytest.mark.parametrize("dataset", WITH_RATIOS)
def test_entries_record_disk_ratios(dataset):
    entry = catalogue.load_entry(entry_path(dataset), dataset)
    assert {"unpacked_ratio", "work_ratio"} <= set(entry.get("disk", {}))


def test_an_entry_without_ratios_gets_the_defaults_and_says_so(in_tmp):
    config, entries, plans = _sample(["acdc"])
    del entries["acdc"]["disk"]
    est = plan.estimates(config, entries, plans)[0]
    assert est.notes == ["no disk ratios in the catalogue entry: default ratios"]
    assert est.work.how == f"estimated (x{plan.DEFAULT_RATIOS['work_ratio']:g}, work_ratio)"


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server (the standard library's, which answers HEAD) on 127.0.0.1 serving a folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_online_sizes_come_from_the_servers_content_length(http_folder, tmp_path):
    folder, base = http_folder
    (folder / "a.zip").write_bytes(os.urandom(12_345))
    cached = tmp_path / "downloads" / "a.zip"
    src = {"name": "a.zip", "url": f"{base}/a.zip", "approx_size": 10_000}
    assert plan.source_size(src, cached, online=False, timeout=5) == plan.Figure(10_000, "publisher (approx.)", False)
    assert plan.source_size(src, cached, online=True, timeout=5) == plan.Figure(12_345, "Content-Length")
    gone = {**src, "url": f"{base}/missing.zip"}
    assert plan.source_size(gone, cached, online=True, timeout=5).how == "publisher (approx.)"  # 404: not a size
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x" * 7)
    assert plan.source_size(src, cached, online=True, timeout=5) == plan.Figure(7, "downloaded")


def test_online_sizes_of_zenodo_sources_come_from_the_records_api(in_tmp):
    """The catalogue's Zenodo sources, asked of a Zenodo-style records API on 127.0.0.1 (it answers
    no HEAD: the API is what gives the size)."""
    from loopback import Loopback

    config = catalogue.load_config({"datasets": ["fetal_planes_db"]}, ROOT)
    entries = catalogue.load_catalogue(config)
    plans = {"fetal_planes_db": catalogue.plan(entries["fetal_planes_db"], config)}
    srv = Loopback({"FETAL_PLANES_ZENODO.zip": b"z" * 4321}, record=3904280)
    try:
        config["download"]["zenodo_api"] = f"{srv.base}/api"
        est = plan.estimates(config, entries, plans, online=True, timeout=5)[0]
        assert est.download == plan.Figure(4321, "Zenodo API")
        assert ("/api/records/3904280", None) in srv.requests
        offline = plan.estimates(config, entries, plans)[0]
        assert offline.download == plan.Figure(2_100_000_000, "publisher (approx.)", False)
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_workflows_check_counts_only_the_jobs_that_run(in_tmp, small_fs):
    """refusals() with the DAG's jobs: a dataset without jobs is not counted, and of one whose
    downloads alone run, only the downloads."""
    config, entries, plans = _sample(["fetal_planes_db", "acdc"])
    small_fs(in_tmp / "resources", "1m")  # fetal_planes_db: 813 kB download + 811 kB unpacked
    everything = plan.refusals(config, entries, plans)
    assert len(everything) == 1 and everything[0].startswith("fetal_planes_db: does not fit: resources_dir 'resources'")
    fetch = ("fetch_source", {"dataset": "fetal_planes_db", "source": "FETAL_PLANES_ZENODO.zip"})
    assert plan.refusals(config, entries, plans, [fetch]) == []
    unpack = ("unpack_archives", {"dataset": "fetal_planes_db"})
    assert plan.refusals(config, entries, plans, [fetch, unpack]) == everything
    assert plan.refusals(config, entries, plans, [("unpack_archives", {"dataset": "acdc"})]) == []


def test_a_rebuild_that_only_publishes_measures_only_the_results(in_tmp, monkeypatch):
    """A re-build after a split change runs split and publish: the check walks the results folder,
    not also the unpacked and work trees (three walks of every image at every re-build before)."""
    config, entries, plans = _sample(["fetal_planes_db"])
    for folder in ("resources/unpacked/fetal_planes_db", "work/fetal_planes_db", "results/fetal_planes_db"):
        (in_tmp / folder).mkdir(parents=True)
        (in_tmp / folder / "a.png").write_bytes(b"x" * 1000)
    (in_tmp / "resources/ready").mkdir()
    (in_tmp / "resources/ready/fetal_planes_db.json").write_text("{}")
    (in_tmp / "results/fetal_planes_db/SHA256SUMS").write_text("")
    walked = []
    real = plan.tree_bytes
    monkeypatch.setattr(plan, "tree_bytes", lambda path, **kw: walked.append(Path(path)) or real(path, **kw))
    split, publish = ("split_dataset", {"dataset": "fetal_planes_db"}), ("publish_dataset", {"dataset": "fetal_planes_db"})
    assert plan.refusals(config, entries, plans, [split, publish]) == []
    assert walked == [Path("results/fetal_planes_db")]
    walked.clear()
    est = plan.estimate(plans["fetal_planes_db"], entries["fetal_planes_db"], plan.folders(config))
    assert sorted(map(str, walked)) == ["resources/unpacked/fetal_planes_db", "results/fetal_planes_db", "work/fetal_planes_db"]
    assert (est.unpacked.bytes, est.work.bytes, est.results.bytes) == (1000, 1000, 1000)


def test_a_placed_folder_is_measured_through_its_links_and_a_loop_is_not_followed(in_tmp, tmp_path):
    from conftest import within

    release = tmp_path / "elsewhere" / "DRIVE"
    (release / "training" / "images").mkdir(parents=True)
    (release / "training" / "images" / "21_training.tif").write_bytes(b"t" * 5000)
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "training").symlink_to(release / "training")  # placed as a link: measured through it
    config, entries, plans = _sample(["drive"], manual_dirs={"drive": str(manual)})
    with within(10):
        est = plan.estimates(config, entries, plans)[0]
    assert (est.placed.bytes, est.placed.how, est.files) == (5000, "placed", 1)
    (release / "training" / "loop").symlink_to(release)
    with within(10):
        est = plan.estimates(config, entries, plans)[0]
    assert est.placed == plan.Figure(None, "unknown", False)  # drive's entry states no placed size
    assert any("placed folder not measured" in n and "loop" in n for n in est.notes), est.notes


def test_a_partial_download_counts_only_what_is_left(in_tmp):
    config, entries, plans = _sample(["acdc"])
    dirs = plan.folders(config)
    est = plan.estimates(config, entries, plans)[0]
    full = plan.still_to_write(est, dirs)["download"]
    part = dirs["resources_dir"] / "downloads" / "acdc" / "ACDC.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)
    assert plan.still_to_write(est, dirs)["download"] == full - 1000


def test_folders_on_one_file_system_are_counted_together(in_tmp, small_fs):
    """resources_dir and work_dir on one 2 MB tmpfs, output_dir elsewhere: each dataset is admitted
    if it fits beside those before it; a refusal names both folders and the numbers."""
    fs = small_fs(in_tmp / "small", "2m")
    dirs = {"resources_dir": fs / "resources", "work_dir": fs / "work", "output_dir": in_tmp / "results"}
    free = plan.free_bytes(fs)
    assert free == 2 * 2**20
    need = {"download": 600_000, "unpacked": 300_000, "work": 400_000, "results": 5_000_000}
    short = plan.shortfalls([("a", need), ("b", need), ("c", {"download": 100_000})], dirs)
    assert [s.dataset for s in short] == ["b"]  # a fits (1.3 MB of 2.1), b does not beside it, c does
    msg = short[0].message()
    assert f"resources_dir '{fs / 'resources'}' and work_dir '{fs / 'work'}' (one file system)" in msg
    assert "needs 1.3 MB more (download 600.0 kB, unpacked 300.0 kB, work 400.0 kB)" in msg
    assert f"has {plan.human(free - 1_300_000)} free" in msg
    assert "output_dir" not in msg  # results go to another file system with room


def test_results_on_another_file_system_are_copies(in_tmp, small_fs):
    """results/ hard-links the work tiers only on their file system; elsewhere it holds copies."""
    config, entries, plans = _sample(["acdc"])
    same = plan.estimates(config, entries, plans)[0]
    small_fs(in_tmp / "results", "1m")
    other = plan.estimates(config, entries, plans)[0]
    assert "tables beside hard links" in same.results.how and "another file system" in other.results.how
    assert abs(other.results.bytes - same.results.bytes - same.work.bytes) <= 1


def test_cli_plan_names_a_missing_config_file(in_tmp):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    proc = subprocess.run([sys.executable, "-m", "medcurate", "plan", "--configfile", "nope.yaml"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "medcurate plan: error: nope.yaml: cannot read" in proc.stderr


def test_cli_plan_prints_each_dataset_and_the_free_space(in_tmp, small_fs):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    cmd = [sys.executable, "-m", "medcurate", "plan", "--configfile", str(SAMPLE), "--config", "datasets=[acdc,drive]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "acdc: sample mirror (1 download(s))" in out
    assert "drive: sample mirror (placed: training/images/, training/1st_manual/, test/images/)" in out
    acdc_zip = (MIRROR / "acdc" / "ACDC.zip").stat().st_size
    assert f"download {plan.human(acdc_zip):>13}  file" in out
    assert "free" in out and "every dataset fits" in out
    # the same on a 32 kB tmpfs: refused, exit status 2, unless the check is turned off
    small_fs(in_tmp / "resources", "32k")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "REFUSED acdc: does not fit: resources_dir 'resources' needs " in proc.stdout
    assert f"(download {plan.human(acdc_zip)}, unpacked " in proc.stdout and "but has 32.8 kB free" in proc.stdout
    assert "REFUSED drive: does not fit" in proc.stdout
    proc = subprocess.run([*cmd, "space_check=false"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "REFUSED acdc" in proc.stdout


def test_download_progress_is_visible_in_the_fetch_log(http_folder, tmp_path):
    """The fetch job's stderr (its log) shows a tqdm bar with the file name, the size and 100 %."""
    folder, base = http_folder
    data = os.urandom(3 * 2**20)
    (folder / "big.zip").write_bytes(data)
    slice_ = {"step": "fetch", "id": "x", "code": "0",
              "sources": [{"name": "big.zip", "url": f"{base}/big.zip", "sha256": hashlib.sha256(data).hexdigest()}]}
    (tmp_path / "slice.json").write_text(json.dumps(slice_))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    proc = subprocess.run([sys.executable, "-m", "medcurate", "fetch", "--slice", str(tmp_path / "slice.json"),
                           "--source", "big.zip", "--dest", str(tmp_path / "big.zip"), "--record", str(tmp_path / "r.json")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bars = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("big.zip:")]
    assert bars and "100%" in bars[-1] and "3.00M/3.00M" in bars[-1], proc.stderr


# --- End to end: snakemake ------------------------------------------------------------------
def _snakemake(workdir: Path, *args, env=None):
    cmd = [snakemake_exe(), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
           "--configfile", str(SAMPLE), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.e2e
def test_a_disk_too_small_is_refused_before_any_download(tmp_path, small_fs):
    fs = small_fs(tmp_path / "small", "2m")
    dirs = [f"resources_dir={fs}/resources", f"work_dir={fs}/work", f"output_dir={fs}/results"]
    proc = _snakemake(tmp_path, "--config", "datasets=[fetal_planes_db]", *dirs)
    assert proc.returncode != 0
    err = proc.stderr + proc.stdout
    assert "not enough free space; no job was started, nothing was downloaded" in err
    assert (f"fetal_planes_db: does not fit: resources_dir '{fs}/resources' and work_dir '{fs}/work' and "
            f"output_dir '{fs}/results' (one file system) needs") in err
    assert "has 2.1 MB free" in err and "space_check=false" in err
    assert not (fs / "resources" / "downloads").exists() and not (fs / "resources" / "fetched").exists()
    assert not (tmp_path / "logs" / "fetch").exists()
    # Only the jobs a run executes count: the downloads alone fit.
    proc = _snakemake(tmp_path, "--config", "datasets=[fetal_planes_db]", *dirs, "--until", "fetch_source")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (fs / "resources" / "fetched" / "fetal_planes_db" / "FETAL_PLANES_ZENODO.zip.json").is_file()
    # The override: the run starts (and goes as far as the disk allows).
    proc = _snakemake(tmp_path, "--config", "datasets=[fetal_planes_db]", *dirs, env={plan.SPACE_ENV: "0"})
    assert "not enough free space" not in proc.stderr + proc.stdout
    assert (tmp_path / "logs" / "unpack" / "fetal_planes_db.log").is_file()


@pytest.mark.e2e
def test_summary_line_per_dataset(tmp_path):
    proc = _snakemake(tmp_path, "--config", "datasets=[acdc,mias]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    size = (MIRROR / "acdc" / "ACDC.zip").stat().st_size
    lines = [line for line in proc.stderr.splitlines() if line.startswith("medcurate: ")]
    assert lines[0].startswith(f"medcurate: acdc: 8 cases, 8 curated; downloaded {plan.human(size)}; results ")
    assert "published" in lines[0] and lines[1].startswith("medcurate: mias: ") and lines[2].startswith("medcurate: run time")


def test_end_of_run_releases_the_lock_and_leaves_no_timer_to_wait_for(tmp_path, capsys):
    """Snakemake arms a non-daemon one-second timer after each scheduling round; the interpreter
    would wait for the last one before exiting. The hooks cancel it (the scheduler is done)."""
    import threading

    from medcurate.hooks import end_of_run
    from medcurate.lock import LOCK_NAME, RunLock

    fired = threading.Event()
    timer = threading.Timer(30, fired.set)
    timer.start()
    lock = RunLock([tmp_path / "out"])
    lock.acquire()
    assert (tmp_path / "out" / LOCK_NAME).exists()
    config = {"datasets": ["acdc"], **{k: str(tmp_path / k) for k in ("resources_dir", "work_dir", "output_dir")}}
    end_of_run(lock, config, 0.0)
    timer.join(5)
    assert not timer.is_alive() and not fired.is_set()
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    assert "medcurate: acdc: not built" in capsys.readouterr().err


def test_the_snakefile_imports_leave_pandas_and_numpy_to_the_jobs():
    """Every Snakemake start (each run, each dry-run, each cluster job's re-parse) imports what
    the rule files import; pandas and numpy cost ~0.2 s there and only jobs use them."""
    import re

    rules = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    lines = sorted({m.group(1) for f in rules for m in re.finditer(r"^\s*((?:from|import) medcurate\b.*)$", f.read_text(), re.M)})
    assert any("medcurate.exports" in line for line in lines) and any("catalogue" in line for line in lines)
    code = "\n".join(["import sys", *lines, "print(sorted(m for m in ('pandas', 'numpy', 'PIL') if m in sys.modules))"])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
