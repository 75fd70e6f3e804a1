"""The files kept beside a download ``dest``: ``.part`` (bytes so far), ``.part.json`` (the first
response's validators, so a resume never splices two versions), ``.verified.json`` (what was
checked: lets a later run skip the download offline) and ``.first-use.json`` (per URL, what its
first download was, so an unpinned file that changes is noticed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medcurate.atomic import write_text


def part(dest: Path) -> Path:
    return Path(f"{dest}.part")


def sidecar(dest: Path) -> Path:
    return Path(f"{dest}.verified.json")


def validators_file(dest: Path) -> Path:
    return Path(f"{dest}.part.json")


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def checked(record: dict) -> list[str]:
    """What a download record says was compared (md5, sha256, size)."""
    if isinstance(record.get("checked"), list):
        return record["checked"]
    # records written before 'checked' existed
    return ["md5", "sha256", "size"] if record.get("checksum_source") in ("pinned", "zenodo-api") else []


def has_checksum(record: dict) -> bool:
    return any(k in ("md5", "sha256") for k in checked(record))


class FirstUse:
    """``<dest>.first-use.json``: per URL, the size and digests of its first download (kept when the
    download is dropped or replaced), so that a source that silently changes is noticed."""

    def __init__(self, dest: Path):
        self.path = Path(f"{dest}.first-use.json")
        self.entries = read_json(self.path) or {}

    def save(self) -> None:
        write_text(self.path, json.dumps(self.entries, sort_keys=True, indent=2) + "\n")

    def note_dropped(self, url: str, sha256: str, reason: str) -> None:
        entry = self.entries.get(url)
        if isinstance(entry, dict):
            entry["dropped"] = [*entry.get("dropped", []), {"sha256": sha256, "reason": reason}][-5:]
            self.save()


@dataclass
class Validators:
    """What the first response said about the file, to check a resume against."""

    url: str
    etag: str | None
    last_modified: str | None
    total: int | None
    encoding: str

    @classmethod
    def load(cls, path: Path) -> Validators | None:
        v = read_json(path)
        try:
            return cls(str(v["url"]), v.get("etag"), v.get("last_modified"), v.get("total"), v.get("encoding", ""))
        except (KeyError, TypeError):
            return None

    def if_range(self) -> str | None:
        """If-Range needs a strong ETag; otherwise the date (RFC 9110 13.1.5)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified
