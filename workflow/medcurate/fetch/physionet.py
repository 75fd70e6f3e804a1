"""PhysioNet projects (``physionet: {project, version}``): every file of a version checked
against the project's own ``SHA256SUMS.txt``, fetched with the user's PhysioNet credentials
(HTTP Basic, from the secrets mechanism; never logged), resumable per subject folder, and laid
out exactly as the version's folder (e.g. ``files/p10/p10000032/s50414267/<dicom_id>.jpg`` and
the root's CSVs), as a placed release is.

Facts used (DATASETS.md 22d): files live under ``https://physionet.org/files/<project>/<version>/``;
credentialed projects need an account that signed the project's agreement, and HTTP Basic auth;
``SHA256SUMS.txt`` at the version's root lists ``<sha256>  <relative path>`` (sha256sum format).
"""

from __future__ import annotations

import re
from pathlib import Path

from medcurate import secrets as _secrets
from medcurate.errors import FetchError

from . import auth
from . import files as _files
from .tree import Item, Store, fetch_items, safe_relpath, tree_record

BASE = "https://physionet.org/files"
SUMS = "SHA256SUMS.txt"
ROOT_ITEM = "_root"
_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *]?(.+)")


def parse_sums(text: str, where: str) -> dict[str, str]:
    """SHA256SUMS.txt -> {relative path: sha256}."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.fullmatch(line.rstrip("\r"))
        if not m:
            raise FetchError(where, f"line {n} is not '<sha256>  <path>'")
        path = m[2].strip().removeprefix("./")
        safe_relpath(path, where)
        out[path] = m[1].lower()
    if not out:
        raise FetchError(where, "lists no files")
    return out


def item_key(path: str) -> str:
    """The subject folder a file belongs to (files/pXX/pNNNNNNNN), or the root item."""
    parts = path.split("/")
    return "/".join(parts[:3]) if len(parts) >= 4 and parts[0] == "files" else ROOT_ITEM


def fetch_project(source: dict, dest: Path, *, settings: dict, secrets: _secrets.Secrets | None = None) -> dict:
    spec = source["physionet"]
    secrets = _secrets.load() if secrets is None else secrets
    base = f"{spec.get('base', BASE).rstrip('/')}/{spec['project']}/{spec['version']}"
    sums_url = f"{base}/{SUMS}"
    store = Store(dest)
    store.root.mkdir(parents=True, exist_ok=True)

    def sums_list():
        with _files.api_client(settings, secrets) as client:
            resp, cred = client.request(dest, sums_url)
            with resp:
                if resp.status_code in (401, 403):
                    raise auth.failure(secrets, dest, sums_url, resp.status_code, resp.reason, cred)
                if resp.status_code != 200:
                    raise FetchError(dest, f"{sums_url} answered HTTP {resp.status_code} {resp.reason}")
                if resp.text.lstrip().lower().startswith(("<!doctype html", "<html")):
                    raise FetchError(dest, f"{sums_url} returned an HTML page (a login page?): "
                                           f"{_secrets.hint('physionet')}")
                sums = parse_sums(resp.text, sums_url)
        return [{"path": p, "sha256": h} for p, h in sorted(sums.items()) if p != SUMS]

    saved = _files.cached_listing(store.root / "series.json", {"sums": sums_url}, sums_list)
    by_item: dict[str, list[dict]] = {}
    for f in saved:
        by_item.setdefault(item_key(f["path"]), []).append(f)
    subjects = sorted(k for k in by_item if k != ROOT_ITEM)
    subset = source.get("subset")
    chosen = subjects[:subset] if subset is not None else subjects
    items = ([Item(ROOT_ITEM)] if ROOT_ITEM in by_item else []) + [Item(k) for k in chosen]
    local = _files.thread_sessions()

    def one(item: Item, stage: Path):
        out = []
        for f in by_item[item.key]:
            _, record = _files.get(f"{base}/{f['path']}", f["path"], stage, store, settings=settings, secrets=secrets,
                                   session=local(), expected={"sha256": f["sha256"]}, expect="file")
            out.append(_files.file_entry(f["path"], record))
        return out, {"checked": ["sha256"]}

    records = fetch_items(dest, source["name"], items, one, settings.get("parallel", 4), "folder")
    return tree_record(source["name"], base + "/", records, checksum_source=f"{SUMS} of the project",
                       checked=["sha256"], unit="folder", subset=_files.subset_fact(source, len(subjects), "subjects"))
