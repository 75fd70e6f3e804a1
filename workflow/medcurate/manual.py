"""Gated datasets: say exactly what to get, from where, and where to put it; check what was placed.

The user puts the release in the manual folder exactly as the publisher ships it: extracted
folders, or the archives themselves. ``prepare`` assembles the dataset root from it: archives are
unpacked (with the same safety limits as downloads), folders and other files are linked (never
copied: CBIS-DDSM is 164 GB), and files the workflow downloaded itself (e.g. CBIS-DDSM's CSVs)
are added. Then every expected item must be found below that root, at any depth, because
publishers and mirrors nest top folders inconsistently.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
from pathlib import Path

from .atomic import file_digest
from .errors import ManualDataError
from .unpack import Limits, is_archive, looks_like_html, unpack
from .walk import link_target, must_resolve, walk


def placed_entries(plan: dict) -> list[Path]:
    """What the user put in the manual folder; none at all stops with the instructions. Also run
    before a gated dataset's downloads (ChestX-ray14's are 42 GB), so the user learns first."""
    folder = Path(plan["manual_dir"])
    if folder.is_symlink():  # e.g. manual_dirs on a disk not mounted: say so, not "missing or empty"
        must_resolve(folder, ManualDataError)
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    if not entries:
        nothing = [f"missing {'or empty folder' if e.get('kind') == 'dir' else 'file'}: {e['path']}{'/' if e.get('kind') == 'dir' else ''}"
                   for e in plan["access"]["expected"]]
        raise ManualDataError(folder, message(plan, [f"{folder}/ is missing or empty", *nothing]))
    return entries


def placed_fingerprint(folder: Path) -> str:
    """A short sha256 of what was placed in ``folder``: every file below it, links followed, as
    (relative path, size, mtime_ns), plus every folder's relative path; "absent" if there is no
    folder. Computed when the Snakefile is parsed, so it stats and never reads file contents.
    Top-level hidden names are left out, as placed_entries() leaves them out. A symbolic link
    loop is a ManualDataError naming the link, never a hang; a broken link only changes the
    digest (check_manual reports it)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder) and not _is_loop(folder):
        return "absent"
    rows: list[bytes] = []
    for here, dirnames, filenames in walk(folder, error=ManualDataError, broken_ok=True, skip_top_hidden=True):
        rel = os.path.relpath(here, folder)
        rows.append(f"D {rel}".encode("utf-8", "surrogateescape"))
        for name in filenames:
            path = os.path.join(here, name)
            try:
                st = os.stat(path)
                row = f"F {rel}/{name} {st.st_size} {st.st_mtime_ns}"
            except FileNotFoundError:
                row = f"B {rel}/{name} {link_target(path)}"  # fixing the link changes the digest
            rows.append(row.encode("utf-8", "surrogateescape"))
    return hashlib.sha256(b"\0".join(sorted(rows))).hexdigest()[:16]


def _is_loop(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def prepare(plan: dict, downloads: list[dict], dest: Path, limits: Limits, threads: int = 1) -> dict:
    folder = Path(plan["manual_dir"])
    entries = placed_entries(plan)
    # Walked here, before anything is linked, so a link loop, a broken link or an unreadable
    # folder is named where the user put it (and not reported later as "missing").
    for _ in walk(folder, error=ManualDataError, skip_top_hidden=True):
        pass
    for path in entries:
        if path.is_file() and path.suffix.lower() not in _HTML_SUFFIXES and looks_like_html(path):
            raise ManualDataError(path, _html_reason(path.name))
    archives = [p for p in entries if p.is_file() and is_archive(p.name)]
    placed = []
    for path in archives:
        digest = file_digest(path)
        pinned = plan.get("manual_pins", {}).get(path.name)
        if pinned and pinned != digest:
            raise ManualDataError(path, f"sha256 expected {pinned}, actual {digest} (damaged or different copy?)")
        placed.append({"name": path.name, "size": path.stat().st_size, "sha256": digest,
                       "checksum_source": "pinned" if pinned else "computed"})
    placed += [{"name": p.name, "kind": "folder" if p.is_dir() else "file"} for p in entries if p not in archives]
    fingerprints = {r["name"]: r["sha256"] for r in downloads} | {r["name"]: r["sha256"] for r in placed if "sha256" in r}
    def verify(root: Path) -> None:  # on the staging tree: a failed check leaves the earlier one intact
        if problems := _check_expected(plan, root):
            raise ManualDataError(folder, message(plan, problems))

    folders = [Path(r["path"]) for r in downloads if r.get("kind") == "folder"]  # a service's folder source
    unpack([Path(r["path"]) for r in downloads if r.get("kind") != "folder"] + archives, dest, limits=limits,
           nested=plan["unpack"]["nested"], fingerprints=fingerprints,
           links=[p for p in entries if p not in archives] + folders, verify=verify, threads=threads)
    sources = [{k: v for k, v in r.items() if k != "path"} for r in downloads]
    return {"root": str(dest.resolve()), "sources": sources + placed}


def _check_expected(plan: dict, root: Path) -> list[str]:
    """Each expected path (its parts may be fnmatch patterns, e.g. bcdr_*_outlines.csv for "any
    subset") must end some path below root."""
    found_files, found_dirs = _listing(root)
    problems = []
    for item in plan["access"]["expected"]:
        want = Path(item["path"]).parts
        if item.get("kind") == "dir":
            if not any(_ends_with(p, want) for p in found_dirs):
                problems.append(f"missing or empty folder: {item['path']}/")
            continue
        hits = [p for p in found_files if _ends_with(p, want)]
        if not hits:
            problems.append(f"missing file: {item['path']}")
            continue
        pages = [hit for hit in hits
                 if not hit[-1].lower().endswith(_HTML_SUFFIXES) and looks_like_html(root.joinpath(*hit))]
        for hit in pages:
            shown = os.path.realpath(root.joinpath(*hit))  # the placed file, not its link in the staging folder
            if Path(shown).is_relative_to(os.path.realpath(root)):
                shown = f"{'/'.join(hit)} (unpacked or downloaded, in the dataset root)"
            problems.append(f"{shown}: {_html_reason(hit[-1])}")
        if pages:
            continue
        path = root.joinpath(*hits[0])
        for algo in ("sha256", "md5"):
            if item.get(algo) and (actual := file_digest(path, algo)) != item[algo]:
                problems.append(f"{item['path']}: {algo} expected {item[algo]}, actual {actual} (wrong version or damaged copy?)")
    return problems


_HTML_SUFFIXES = (".html", ".htm", ".xhtml")


def _html_reason(name: str) -> str:
    return (f"is an HTML page, not {'the archive' if is_archive(name) else 'the data file'} {name} "
            "(a login, consent or error page saved under its name?); download it again")


def _ends_with(parts: tuple[str, ...], want: tuple[str, ...]) -> bool:
    return len(parts) >= len(want) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts[-len(want):], want))


def _listing(root: Path) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Relative paths (as parts) of the files and non-empty folders below root, links followed."""
    files, dirs = [], []
    for dirpath, dirnames, filenames in walk(root, error=ManualDataError):
        rel = Path(dirpath).relative_to(root).parts
        if rel and (dirnames or filenames):
            dirs.append(rel)
        files += [(*rel, name) for name in filenames]
    return files, dirs


def message(plan: dict, problems: list[str]) -> str:
    access = plan["access"]
    listing = "\n".join(f"    - {p}" for p in problems)
    expected = "\n".join(f"    {e['path']}{'/' if e.get('kind') == 'dir' else ''}" for e in access["expected"])
    return (
        f"{plan['name']} ({plan['id']}) is a gated dataset and is not (completely) in place.\n"
        f"  1. Request access: {access['request_url']}\n"
        f"  2. {access['instructions'].strip()}\n"
        f"  3. Put the release, exactly as the publisher ships it (extracted, or the archives themselves),\n"
        f"     in {plan['manual_dir']}/ so that it holds, at any depth:\n{expected}\n"
        f"     (or point 'manual_dirs: {{{plan['id']}: /your/path}}' in your config at where it already is)\n"
        f"  Problems found:\n{listing}"
    )
