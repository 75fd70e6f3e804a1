"""Gated datasets: say exactly what to get, from where, and where to put it; check what was placed."""

from __future__ import annotations

from pathlib import Path

from .atomic import file_digest
from .errors import ManualDataError


def check(plan: dict) -> dict:
    folder = Path(plan["manual_dir"])
    access = plan["access"]
    problems = []
    checked = []
    for item in access["expected"]:
        path = folder / item["path"]
        kind = item.get("kind", "file")
        if kind == "dir":
            if not path.is_dir() or not any(path.iterdir()):
                problems.append(f"missing or empty folder: {item['path']}/")
            continue
        if not path.is_file():
            problems.append(f"missing file: {item['path']}")
            continue
        for algo in ("sha256", "md5"):
            if item.get(algo) and (actual := file_digest(path, algo)) != item[algo]:
                problems.append(f"{item['path']}: {algo} expected {item[algo]}, actual {actual} (wrong version or damaged copy?)")
        checked.append({"name": item["path"], "size": path.stat().st_size, "sha256": item.get("sha256"),
                        "md5": item.get("md5"), "checksum_source": "pinned" if item.get("sha256") or item.get("md5") else "none"})
    if problems:
        raise ManualDataError(folder, message(plan, problems))
    return {"root": str(folder.resolve()), "sources": checked}


def message(plan: dict, problems: list[str]) -> str:
    access = plan["access"]
    listing = "\n".join(f"    - {p}" for p in problems)
    expected = "\n".join(f"    {e['path']}{'/' if e.get('kind') == 'dir' else ''}" for e in access["expected"])
    return (
        f"{plan['name']} ({plan['id']}) is a gated dataset and is not (completely) in place.\n"
        f"  1. Request access: {access['request_url']}\n"
        f"  2. {access['instructions'].strip()}\n"
        f"  3. Put the files, exactly as the publisher ships them, in {plan['manual_dir']}/ so that it holds:\n{expected}\n"
        f"     (or point 'manual_dirs: {{{plan['id']}: /your/path}}' in your config at where they already are)\n"
        f"  Problems found:\n{listing}"
    )
