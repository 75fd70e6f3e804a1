"""One remote file of a folder source, fetched with the same machinery as a catalogue source
(resume, the one retry policy, checksums, first-use records) and moved into an item's staging
folder once verified."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import requests

from medcurate import secrets as _secrets
from medcurate.atomic import write_text

from .core import client_for, fetch, redacted
from .retry import Policy
from .transfer import make_session
from .sidecars import read_json, sidecar
from .tree import Store, safe_relpath


@contextlib.contextmanager
def api_client(settings: dict, secrets: _secrets.Secrets):
    """A client for a service's small API calls (series lists, file lists), under the same retry
    policy and timeouts as the downloads, with credentials masked in its errors and log lines."""
    policy = Policy(retries=settings.get("retries", 8), backoff=settings.get("backoff", 2.0))
    with redacted(secrets), client_for(secrets, float(settings.get("timeout", 60.0)), policy, None) as client:
        yield client


def thread_sessions():
    """A getter of one HTTP session per worker thread (a session is not shared across threads)."""
    local = threading.local()

    def get() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = make_session()
        return local.session

    return get


def settings_kwargs(settings: dict) -> dict:
    """fetch()'s keyword arguments from the workflow's download settings."""
    return {k: settings[k] for k in ("timeout", "retries", "backoff", "zenodo_api") if k in settings}


def get(url: str, rel: str, stage: Path, store: Store, *, settings: dict, secrets: _secrets.Secrets,
        session: requests.Session | None = None, expected: dict | None = None, expect: str = "archive",
        name: str | None = None) -> tuple[Path, dict]:
    """Download ``url`` (checked against ``expected``: md5/sha256/size) and place it at
    ``stage/rel``; returns (its path, its fetch record)."""
    target = stage / safe_relpath(rel, str(store.dest))
    # the download's own state (.part, validators, first-use) stays in the store between runs
    slot = store.downloads / hashlib.sha256(url.encode()).hexdigest()[:24] / Path(rel).name
    source = {"name": name or Path(rel).name, "url": url, "expect": expect, **(expected or {})}
    record = fetch(source, slot, secrets=secrets, session=session, progress=False, **settings_kwargs(settings))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(slot, target)
    sidecar(slot).unlink(missing_ok=True)  # it describes a file that moved: the item's record takes over
    return target, record


def file_entry(rel: str, record: dict, **extra) -> dict:
    return {"path": rel, "size": record["size"], "md5": record["md5"], "sha256": record["sha256"], **extra}


def git_blob_sha1(path: Path) -> str:
    """The id git gives a file's content (sha1 of 'blob <size>\\0' + bytes): a commit's tree names it."""
    h = hashlib.sha1()
    h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def cached_listing(path: Path, key: dict, make: Callable[[], list | None]) -> list | None:
    """A source's file/series list: the one an earlier run saved for the same ``key`` (so a re-run
    whose items are all there needs no network), else ``make()``'s, saved unless it is None."""
    saved = read_json(path)
    if saved is not None and saved.get("key") == key and isinstance(saved.get("series"), list):
        return saved["series"]
    made = make()
    if made is not None:
        write_text(path, json.dumps({"key": key, "series": made}, indent=1, sort_keys=True) + "\n")
    return made


def subset_fact(source: dict, total: int, unit: str) -> dict | None:
    """What the published dataset says about a subset: the first N of how many, counted in what."""
    n = source.get("subset")
    return None if n is None else {"first": n, "of": total, "unit": unit}
