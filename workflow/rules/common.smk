# Config and catalogue validation, per-step slices of the configuration, and input functions.
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

# The workflow imports the installed package (pip install -e . in the checkout, or a wheel) and
# its jobs run the installed `medcurate` entry point: found on PATH (an activated venv), or, with
# --sdm conda, installed into the rules' environment by envs/medcurate.yaml.
from medcurate import catalogue as _catalogue
from medcurate import cli as _cli
from medcurate import manual as _manual
from medcurate.errors import MedcurateError as _MedcurateError

ROOT = Path(workflow.basedir)
_conda = any("conda" in str(m).lower() for m in workflow.deployment_settings.deployment_method)
if not _conda and shutil.which("medcurate") is None:
    raise _MedcurateError(
        "PATH",
        "the 'medcurate' command the jobs run is not on PATH: activate the "
        f"environment medcurate is installed in (this snakemake runs {sys.executable})",
    )
CONFIG = _catalogue.load_config(config, ROOT)
CATALOGUE = _catalogue.load_catalogue(CONFIG)
DATASETS = CONFIG["datasets"]
PLANS = {ds: _catalogue.plan(CATALOGUE[ds], CONFIG) for ds in DATASETS}
OUT, RES, WORK, LOGS = (CONFIG[k] for k in ("output_dir", "resources_dir", "work_dir", "logs_dir"))
ENV = "../../envs/medcurate.yaml"
# Download settings cannot change an output: they reach the fetch jobs through the environment,
# not a slice, so changing them re-runs nothing.
os.environ[_cli.DOWNLOAD_ENV] = json.dumps(CONFIG["download"], sort_keys=True)


def _ids_regex(ids):
    return "|".join(ids) if ids else "(?!x)x"  # an empty list must match nothing


def _with(pred):
    return _ids_regex([d for d in DATASETS if pred(PLANS[d])])


OPEN_DATASETS = _with(lambda p: p["access"]["mode"] == "open")
MANUAL_DATASETS = _with(lambda p: p["access"]["mode"] == "manual")
MASK_DATASETS = _with(lambda p: p["task"] in _catalogue.MASK_TASKS)  # 2-D label maps: the clean step


wildcard_constraints:
    dataset=_ids_regex(DATASETS),
    shard=r"\d+",


# --- Gated datasets: what was placed is an input; nothing placed is said before any job runs ----
PLACED = {}
for _ds in DATASETS:
    if PLANS[_ds]["access"]["mode"] == "manual":
        try:
            PLACED[_ds] = _manual.placed_fingerprint(Path(PLANS[_ds]["manual_dir"]))
            _manual.placed_entries(PLANS[_ds])
        except _MedcurateError as _exc:
            PLACED[_ds] = None  # check_manual runs first, fails with the same words, downloads nothing
            if workflow.is_main_process:
                print(f"\n{_exc}\n", file=sys.stderr)


# --- Each step's slice of the configuration, content-addressed -------------------------------
def _write_slice(data, name):
    """Slices go to content-addressed files (written once, never changed): the path is the
    step's parameter, so a changed slice -- its settings or its code -- re-runs the step."""
    text = json.dumps(data, indent=1)  # key order kept: label columns follow the catalogue
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = Path(WORK) / "slices" / data["id"] / f"{name}-{digest}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return str(path)


def _slices(ds):
    plan = PLANS[ds]
    out = {
        step: _catalogue.step_slice(plan, step) for step in ("unpack", "convert", "clean", "select", "split", "publish")
    }
    if ds in PLACED:
        out["check_manual"] = {**_catalogue.step_slice(plan, "check_manual"), "placed": PLACED[ds]}
    out.update({f"fetch-{s['name']}": _catalogue.step_slice(plan, "fetch", s["name"]) for s in plan["sources"]})
    return {name: _write_slice(data, name) for name, data in out.items()}


SLICES = {ds: _slices(ds) for ds in DATASETS}


def slice_of(step):
    return lambda wc: SLICES[wc.dataset][step if step != "fetch" else f"fetch-{wc.source}"]


# --- Input functions ----------------------------------------------------------------------------
def fetched_records(wildcards):
    if PLACED.get(wildcards.dataset, "") is None:
        return []  # a gated dataset with nothing placed: say so before any download
    return [f"{RES}/fetched/{wildcards.dataset}/{s['name']}.json" for s in PLANS[wildcards.dataset]["sources"]]


def _shards(kind, ds):
    return [f"{WORK}/{ds}/{kind}/shard-{i}" for i in range(_catalogue.shard_count(PLANS[ds]))]


def converted(wildcards):
    return _shards("converted", wildcards.dataset)


def cleaned(wildcards):
    return _shards("cleaned", wildcards.dataset) if PLANS[wildcards.dataset]["task"] in _catalogue.MASK_TASKS else []


def tables(wildcards):
    """The tier whose tables the select step reads: cleaned masks where there are any."""
    return cleaned(wildcards) or converted(wildcards)


def near_duplicate_tiers(wildcards):
    """The split step reads pixels (thumbnails) only for the near-duplicate check."""
    if PLANS[wildcards.dataset]["split"].get("near_duplicates") is None:
        return []
    return converted(wildcards) + cleaned(wildcards)


def source_split(wildcards):
    """Shared patients follow another built dataset's split: its split folder is an input (so a
    change there re-runs this split), only when the split slice names it (split_source)."""
    src = PLANS[wildcards.dataset]["split"].get("split_source")
    return [f"{WORK}/{src}/split"] if src else []


# --- Credentials for gated sources (medcurate/secrets.py) ---------------------------------------
# Only the path of the secrets file travels, as MEDCURATE_SECRETS_FILE inherited by the fetch jobs
# (never the tokens, which stay out of plans, params and logs). A file inside the repository,
# readable by others or malformed is refused here, before any job runs.
from medcurate import secrets as _secrets

_SECRETS_FILE = _secrets.secrets_file(CONFIG.get("secrets_file"))
if _SECRETS_FILE is not None:
    os.environ[_secrets.FILE_ENV] = str(_SECRETS_FILE)
    _secrets.load(_SECRETS_FILE, repo=ROOT)


# --- One run at a time per output folder (medcurate/lock.py) ------------------------------------
# Snakemake locks the working directory; runs from different working directories may still share
# output_dir/resources_dir/work_dir. The main process locks those folders when it starts running
# jobs: onstart is skipped by dry-runs, --lint, --report, "nothing to be done", and by the
# job-level snakemake of cluster executors (--mode remote --no-hooks). The lock dies with the
# process (flock), so a killed run leaves no stale lock.
from medcurate.lock import RunLock as _RunLock

_RUN_LOCK = None

# --- Free space before the first job, a line per dataset after the last (medcurate/plan.py) ------
# Checked in onstart (main process, DAG built, nothing run yet): only the jobs this run will
# execute count, and nothing is written, so free space never re-runs a step. Off with
# --config space_check=false or MEDCURATE_SPACE_CHECK=0.
import time as _time

from medcurate import hooks as _hooks
from medcurate import plan as _plan

_RUN_START = _time.time()


def _check_space():
    from snakemake.exceptions import WorkflowError

    if not _plan.check_enabled(CONFIG):
        return
    jobs = [(j.rule.name, dict(j.wildcards.items())) for j in workflow.dag.needrun_jobs()]
    jobs = [(r, wc) for r, wc in jobs if PLACED.get(wc.get("dataset"), "") is not None]  # unplaced: said above
    refused = _plan.refusals(CONFIG, CATALOGUE, PLANS, jobs)
    if refused:
        raise WorkflowError(
            "not enough free space; no job was started, nothing was downloaded:\n  "
            + "\n  ".join(refused)
            + "\nFree space or point the folder elsewhere (medcurate plan shows the figures); "
            "to run anyway: --config space_check=false or MEDCURATE_SPACE_CHECK=0"
        )


onstart:
    global _RUN_LOCK
    if workflow.is_main_process:
        from medcurate.errors import MedcurateError
        from snakemake.exceptions import WorkflowError

        _RUN_LOCK = _RunLock([OUT, RES, WORK])
        try:
            _RUN_LOCK.acquire()
        except MedcurateError as exc:
            raise WorkflowError(str(exc)) from None
        _check_space()


onsuccess:
    _hooks.end_of_run(_RUN_LOCK, CONFIG, _RUN_START)


onerror:
    _hooks.end_of_run(_RUN_LOCK, CONFIG, _RUN_START)
