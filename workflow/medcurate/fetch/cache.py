"""The download cache beside ``dest``: a ``.verified.json`` record that lets a later run use the
file without the network (``cached``), written only when a download is complete (``promote``);
``first_use`` compares an unpinned download with its URL's first one; ``forget`` drops an
unpinned download that turned out damaged."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from medcurate.atomic import file_digest, write_text

from .digests import digests
from .sidecars import FirstUse, checked, has_checksum, part, read_json, sidecar, validators_file

log = logging.getLogger("medcurate.fetch")


def agrees(expected: dict, values: dict) -> bool:
    return all(values.get(k) == v for k, v in expected.items())


def cached(dest: Path, expected: dict, pinned: bool) -> tuple[dict | None, dict | None]:
    """(record, None) if ``dest`` is a usable download; (None, digests) if it matches pinned
    checksums without a record (the caller records it); (None, None) if it must be downloaded."""
    if not dest.is_file():
        return None, None
    record = read_json(sidecar(dest))
    # a record of an unchecked download is re-made once a checksum is pinned (below)
    usable = record is not None and (has_checksum(record) or not pinned)
    if usable and agrees(expected, record) and record.get("sha256") == file_digest(dest):
        if has_checksum(record):
            log.info("%s already downloaded and verified (checksum: %s)", dest, record.get("checksum_source"))
        else:
            log.info("%s already downloaded (not verified: no checksum pinned; unchanged since its download)", dest)
        return record, None
    if pinned:
        actual = digests(dest)
        if agrees(expected, actual):
            log.info("%s matches its pinned checksums; recording it", dest)
            return None, actual
        log.warning("%s does not match its pinned checksums; downloading it again", dest)
    return None, None


def promote(dest: Path, name: str, url: str, actual: dict, checksum_source: str, expected: dict,
            move: bool = True) -> dict:
    """Make the .part ``dest`` (unless ``move`` is False: it already is) and write its record;
    ``url`` must already be free of credentials."""
    checked_keys = sorted(expected)
    with_checksum = "md5" in expected or "sha256" in expected
    if checksum_source == "none":
        checksum_source = first_use(dest, url, actual)
    record = {"name": name, "url": url, "checksum_source": checksum_source, "checked": checked_keys, **actual}
    sidecar(dest).unlink(missing_ok=True)  # never let an old sidecar sit beside a new file
    if move:
        part(dest).replace(dest)
    validators_file(dest).unlink(missing_ok=True)
    write_text(sidecar(dest), json.dumps(record, sort_keys=True, indent=2) + "\n")
    if with_checksum:
        log.info("verified %s: %d bytes, sha256 %s, md5 %s (checked %s; checksum: %s)", dest,
                 actual["size"], actual["sha256"], actual["md5"], ", ".join(checked_keys), checksum_source)
    else:
        what = "only its size was checked" if checked_keys else "not verified"
        log.info("downloaded %s (%s: no checksum pinned): %d bytes, sha256 %s, md5 %s; checksum: %s", dest, what,
                 actual["size"], actual["sha256"], actual["md5"], checksum_source)
    return record


def first_use(dest: Path, url: str, actual: dict) -> str:
    """Compare an unpinned download with the first one of its URL (recording it if it is the first);
    returns the record's checksum_source text."""
    registry = FirstUse(dest)
    first = registry.entries.get(url)
    if not isinstance(first, dict) or "sha256" not in first:
        registry.entries[url] = {"size": actual["size"], "sha256": actual["sha256"], "md5": actual["md5"],
                                 "first_seen": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        registry.save()
        return "none (first use: size and sha256 recorded)"
    if first["sha256"] == actual["sha256"]:
        dropped = [d for d in first.get("dropped", []) if d.get("sha256") == actual["sha256"]]
        if dropped:
            log.warning("%s: %s gave the same bytes as the copy dropped earlier (%s): the file at the source "
                        "itself is probably damaged", dest, url, dropped[-1].get("reason"))
        return "none (same size and sha256 as the first download)"
    log.warning("%s: %s now gives %d bytes, sha256 %s, but its first download (%s) was %s bytes, sha256 %s: "
                "the file at the source changed (a new version, or a damaged copy); no checksum is pinned "
                "to tell which", dest, url, actual["size"], actual["sha256"], first.get("first_seen", "?"),
                first.get("size"), first["sha256"])
    return f"none (differs from the first download: {first.get('size')} bytes, sha256 {first['sha256']})"


def forget(dest: Path, reason: str, *, record: Path | None = None) -> bool:
    """Drop an unpinned cached download (``dest``, its sidecar, any ``.part``) so that the next run
    downloads it again; ``reason`` (why it is dropped, e.g. the unpack error) is logged and kept in
    the first-use record. ``record``: the workflow's fetch record to remove too, so that Snakemake
    re-runs the download. Returns False, removing nothing, for a download whose bytes were checked
    against a checksum (pinned or Zenodo's): fetching it again would give the same bytes."""
    dest = Path(dest)
    info = read_json(sidecar(dest))
    if info is None:
        log.warning("%s: not dropped (%s): it has no download record, so nothing says it is unpinned", dest, reason)
        return False
    if has_checksum(info):
        log.warning("%s: not dropped (%s): its %s was checked against a %s checksum, so downloading it again would "
                    "give the same bytes", dest, reason, "/".join(checked(info)), info.get("checksum_source"))
        return False
    url, sha256 = info.get("url"), info.get("sha256")
    if url and sha256:  # the next download of the same bytes can then say the source itself is damaged
        FirstUse(dest).note_dropped(url, sha256, reason)
    for path in (dest, sidecar(dest), part(dest), validators_file(dest), *([Path(record)] if record else [])):
        path.unlink(missing_ok=True)
    log.warning("dropped %s (%s): it was downloaded without a pinned checksum, so the next run downloads it again",
                dest, reason)
    return True
