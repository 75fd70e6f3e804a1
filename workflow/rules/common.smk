# Config and catalogue validation, per-dataset plans, and input functions.
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(workflow.basedir)
PKG = ROOT / "workflow"
sys.path.insert(0, str(PKG))
# Jobs run `python -m medcurate` from this checkout, installed or not, with the interpreter that
# runs snakemake (a venv need not be activated); a conda env, when used, comes first on PATH.
# (Set, not read from the user, so no envvars: assertion applies.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [str(PKG), os.getenv("PYTHONPATH")])),
    PATH=os.pathsep.join([os.path.dirname(sys.executable), os.getenv("PATH", "")]),
)

from medcurate import catalogue as _catalogue

CONFIG = _catalogue.load_config(config, ROOT)
CATALOGUE = _catalogue.load_catalogue(CONFIG)
DATASETS = CONFIG["datasets"]
PLANS = {ds: _catalogue.plan(CATALOGUE[ds], CONFIG) for ds in DATASETS}
OUT, RES, WORK, LOGS = (CONFIG[k] for k in ("output_dir", "resources_dir", "work_dir", "logs_dir"))
ENV = "../../envs/medcurate.yaml"


def _ids_regex(ids):
    return "|".join(ids) if ids else "(?!x)x"  # an empty list must match nothing


OPEN_DATASETS = _ids_regex([d for d in DATASETS if PLANS[d]["access"]["mode"] == "open"])
MANUAL_DATASETS = _ids_regex([d for d in DATASETS if PLANS[d]["access"]["mode"] == "manual"])


wildcard_constraints:
    dataset=_ids_regex(DATASETS),
    shard=r"\d+",


def _write_plan(plan):
    """Plans go to content-addressed files (written once, never changed), so commands stay short
    and a changed plan is a changed path, which re-runs what depends on it."""
    text = json.dumps(plan, indent=1)  # key order kept: label columns follow the catalogue
    path = Path(WORK) / "plans" / f"{plan['id']}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return str(path)


PLAN_FILES = {ds: _write_plan(PLANS[ds]) for ds in DATASETS}


def plan_file(wildcards):
    return PLAN_FILES[wildcards.dataset]


def fetched_records(wildcards):
    return [f"{RES}/fetched/{wildcards.dataset}/{s['name']}.json" for s in PLANS[wildcards.dataset]["sources"]]


def shard_dirs(wildcards):
    n = _catalogue.shard_count(PLANS[wildcards.dataset])
    return [f"{WORK}/{wildcards.dataset}/shard-{i}" for i in range(n)]


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


onsuccess:
    if _RUN_LOCK is not None:
        _RUN_LOCK.release()


onerror:
    if _RUN_LOCK is not None:
        _RUN_LOCK.release()
