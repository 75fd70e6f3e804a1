"""Gated datasets: say exactly what to get, from where, and where to put it; check what was placed.

The user puts the release in the manual folder exactly as the publisher ships it: extracted
folders, or the archives themselves. ``prepare`` assembles the dataset root from it: archives are
unpacked (with the same safety limits as downloads), folders and other files are linked (never
copied: CBIS-DDSM is 164 GB), and files the workflow downloaded itself (e.g. CBIS-DDSM's CSVs)
are added. Then every expected item must be found below that root, at any depth, because
publishers and mirrors nest top folders inconsistently.
"""

from __future__ import annotations

import fnmatch
import os
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
