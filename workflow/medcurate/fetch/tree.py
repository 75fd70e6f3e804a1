"""A source that is a folder of many files (a TCIA collection, KiTS19's cases, a PhysioNet
project), fetched item by item (a series, a case, a subject folder): the unit of resume.

``<dest>.store/`` keeps each finished item in ``<key>/`` beside its record ``<key>.json`` (its
files' paths, sizes and digests); an item is finished only when every file of it was verified,
and it appears in the store by one rename. ``<dest>/`` itself is a view of the items selected
now (hard links into the store, built aside and swapped in), so a subset that grows, shrinks or
comes back never downloads an item twice, and the folder never holds items that were not asked
for. A re-run fetches only items without a record, or whose files are missing or of another size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from medcurate.atomic import write_text
from medcurate.errors import ChecksumError, FetchError, MedcurateError

from .sidecars import read_json

log = logging.getLogger("medcurate.fetch")

MAX_PARALLEL = 8  # a public service shared by many: never more requests in flight than this


@dataclass
class Item:
    """One unit of resume: ``key`` names it (a SeriesInstanceUID, case_00042, files/p10/p10000032)."""

    key: str
    info: dict = field(default_factory=dict)  # what the source type needs to fetch it


def safe_relpath(path: str, where: str) -> PurePosixPath:
    """A relative path that stays below the tree (no absolute path, no '..', no empty part)."""
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts) or "\\" in path:
        raise FetchError(where, f"refusing the unsafe file path {path!r}")
    return p


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else f"{unit}s"


def tree_digest(files: list[dict]) -> str:
    """sha256 of the sorted (path, size, digest) listing: the identity of the folder's content."""
    rows = sorted((f["path"], f["size"], f.get("sha256") or f.get("md5") or f.get("git_blob") or "") for f in files)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


class Store:
    def __init__(self, dest: Path):
        self.dest = Path(dest)
        self.root = Path(f"{dest}.store")
        self.downloads = self.root / "_downloads"  # per-file fetch state (.part, first-use records)

    def _name(self, key: str) -> str:
        return key.replace("/", "__")

    def item_dir(self, key: str) -> Path:
        return self.root / self._name(key)

    def record_path(self, key: str) -> Path:
        return self.root / f"{self._name(key)}.json"

    def finished(self, key: str) -> dict | None:
        """The record of a finished item whose files are all still there at their recorded size."""
        record = read_json(self.record_path(key))
        if record is None or not isinstance(record.get("files"), list):
            return None
        folder = self.item_dir(key)
        for f in record["files"]:
            try:
                if (folder / f["path"]).stat().st_size != f["size"]:
                    log.warning("%s: %s has changed size since it was verified; fetching %s again", self.dest,
                                f["path"], key)
                    return None
            except (OSError, KeyError, TypeError):
                return None
        return record

    def staging(self, key: str) -> Path:
        stage = self.root / f"{self._name(key)}.tmp"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        return stage

    def finish(self, key: str, stage: Path, files: list[dict], facts: dict) -> dict:
        """Promote a fully verified staging folder to the item, then write its record."""
        folder = self.item_dir(key)
        self.record_path(key).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(stage, folder)
        record = {"key": key, "files": sorted(files, key=lambda f: f["path"]), **facts}
        write_text(self.record_path(key), json.dumps(record, indent=1, sort_keys=True) + "\n")
        return record

    def publish_view(self, records: list[dict]) -> None:
        """``dest`` := hard links to the files of exactly these items (built aside, then swapped)."""
        view = Path(f"{self.dest}.view.tmp")
        shutil.rmtree(view, ignore_errors=True)
        view.mkdir(parents=True)
        for record in records:
            folder = self.item_dir(record["key"])
            for f in record["files"]:
                target = view / f["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(folder / f["path"], target)
                except FileExistsError:
                    raise FetchError(self.dest, f"two items both hold {f['path']}") from None
                except OSError:  # a file system without hard links: a copy
                    shutil.copyfile(folder / f["path"], target)
        old = Path(f"{self.dest}.old.tmp")
        shutil.rmtree(old, ignore_errors=True)
        if self.dest.exists():
            os.replace(self.dest, old)
        os.replace(view, self.dest)
        shutil.rmtree(old, ignore_errors=True)


def fetch_items(dest: Path, name: str, items: list[Item], fetch_one: Callable[[Item, Path], tuple[list[dict], dict]],
                parallel: int, unit: str) -> list[dict]:
    """Fetch every item not finished yet (at most ``parallel`` at once, capped at MAX_PARALLEL);
    ``fetch_one(item, stage)`` fills the staging folder and returns (files, facts). Items that
    fail are named together after the others finished (which stay for the next run)."""
    store = Store(dest)
    store.root.mkdir(parents=True, exist_ok=True)
    done = {i.key: r for i in items if (r := store.finished(i.key)) is not None}
    todo = [i for i in items if i.key not in done]
    log.info("%s: %d %s selected, %d already verified, %d to fetch", name, len(items), _plural(unit), len(done), len(todo))
    failures: list[str] = []
    lock = threading.Lock()
    workers = max(1, min(int(parallel), MAX_PARALLEL))

    def one(item: Item) -> dict:
        stage = store.staging(item.key)
        try:
            files, facts = fetch_one(item, stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return store.finish(item.key, stage, files, facts)

    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(items), initial=len(done), desc=name, unit=unit,
                                                   mininterval=5, file=sys.stderr) as bar:
        futures = {pool.submit(one, item): item for item in todo}
        for future in as_completed(futures):
            item = futures[future]
            try:
                record = future.result()
            except MedcurateError as e:
                failures.append(f"{item.key}: {e.reason}")
                log.warning("%s %s failed: %s", unit, item.key, e.reason)
                continue
            with lock:
                done[item.key] = record
                bar.update(1)
    if failures:
        cls = ChecksumError if any("does not match" in f for f in failures) else FetchError
        shown = "\n".join(f"  - {f}" for f in failures[:20]) + (f"\n  ... and {len(failures) - 20} more"
                                                                  if len(failures) > 20 else "")
        raise cls(dest, f"{len(failures)} of {len(items)} {_plural(unit)} of {name} could not be fetched (the "
                        f"{len(done)} verified ones are kept; re-run to fetch the rest):\n{shown}")
    records = [done[i.key] for i in items]
    store.publish_view(records)
    return records


def tree_record(name: str, url: str, records: list[dict], *, checksum_source: str, checked: list[str],
                unit: str, subset: dict | None) -> dict:
    """The fetch record of a folder source (the workflow's record; 'sha256' is the tree digest)."""
    files = [f for r in records for f in r["files"]]
    out = {"name": name, "url": url, "kind": "folder", "items": len(records), "item_unit": unit,
           "files": len(files), "size": sum(f["size"] for f in files), "sha256": tree_digest(files),
           "checksum_source": checksum_source, "checked": checked}
    if subset is not None:  # a part of the source only: the published dataset says so
        out["subset"] = subset
    return out
