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
import stat
from pathlib import Path

from .atomic import file_digest
from .errors import ManualDataError
from .unpack import Limits, is_archive, unpack


def placed_entries(plan: dict) -> list[Path]:
    """What the user put in the manual folder; none at all stops with the instructions. Also run
    before a gated dataset's downloads (ChestX-ray14's are 42 GB), so the user learns first."""
    folder = Path(plan["manual_dir"])
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
    loop is a ManualDataError naming the link, never a hang."""
    folder = Path(folder)
    try:
        top = os.stat(folder)
    except FileNotFoundError:
        return "absent"
    except OSError as e:
        raise ManualDataError(folder, f"cannot read the folder: {e.strerror}") from None
    if not stat.S_ISDIR(top.st_mode):
        return "absent"
    rows: list[bytes] = []
    # Every folder is walked once: a second arrival at one (a link to '.', '..' or to a folder
    # already walked) is a loop or a duplicate, and walking it again could never end.
    seen = {(top.st_dev, top.st_ino): folder}
    stack = [(folder, "")]
    while stack:
        here, rel = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError as e:
            raise ManualDataError(here, f"cannot list the folder: {e.strerror}") from None
        for entry in entries:
            if not rel and entry.name.startswith("."):
                continue
            name = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat()  # follows links
            except FileNotFoundError:
                rows.append(f"B {name} {_target(entry.path)}".encode("utf-8", "surrogateescape"))
                continue  # a broken link is reported by check_manual; fixing it changes the digest
            except OSError as e:
                raise ManualDataError(entry.path, _link_problem(entry.path, e)) from None
            if stat.S_ISDIR(st.st_mode):
                if (key := (st.st_dev, st.st_ino)) in seen:
                    raise ManualDataError(entry.path, _revisit(entry.path, seen[key]))
                seen[key] = Path(entry.path)
                rows.append(f"D {name}".encode("utf-8", "surrogateescape"))
                stack.append((Path(entry.path), name))
            else:
                rows.append(f"F {name} {st.st_size} {st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
    return hashlib.sha256(b"\0".join(sorted(rows))).hexdigest()[:16]


def _link_problem(path: str, e: OSError) -> str:
    if e.errno == errno.ELOOP:  # the link resolves through itself (a -> a, or a -> b -> a)
        return f"symbolic link loop (-> {_target(path)}): it never resolves to a file or folder"
    return f"cannot read: {e.strerror}"


def _revisit(path: str, first: Path) -> str:
    what = f"symbolic link (-> {_target(path)})" if os.path.islink(path) else "folder (a bind mount?)"
    if first in Path(path).parents:
        return f"{what} is a loop: it leads back to {first}, a folder it is inside"
    return f"{what} leads to {first} again (the same folder reached twice); cannot tell which to use"


def _target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def prepare(plan: dict, downloads: list[dict], dest: Path, limits: Limits) -> dict:
    folder = Path(plan["manual_dir"])
    entries = placed_entries(plan)
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

    unpack([Path(r["path"]) for r in downloads] + archives, dest, limits=limits, nested=plan["unpack"]["nested"],
           fingerprints=fingerprints, links=[p for p in entries if p not in archives], verify=verify)
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
        path = root.joinpath(*hits[0])
        for algo in ("sha256", "md5"):
            if item.get(algo) and (actual := file_digest(path, algo)) != item[algo]:
                problems.append(f"{item['path']}: {algo} expected {item[algo]}, actual {actual} (wrong version or damaged copy?)")
    return problems


def _ends_with(parts: tuple[str, ...], want: tuple[str, ...]) -> bool:
    return len(parts) >= len(want) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts[-len(want):], want))


def _listing(root: Path) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Relative paths (as parts) of the files and non-empty folders below root, links followed."""
    files, dirs = [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
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
