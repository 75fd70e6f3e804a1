"""Fingerprints of the code a step runs, so a fixed bug re-runs what it touches and nothing else.

A step's code is its entry modules and every package module they import (at any depth, inside
functions too), read as bytes: an edit anywhere in that closure changes the digest, and the
digest is part of the step's slice of the configuration (catalogue.step_slice), so Snakemake's
params trigger re-runs the step. Third-party packages are pinned by the environment, not here.

The modules in TASK_MODULES are imported inside functions only for some datasets (volumes,
the near-duplicate check); they are not followed, and catalogue.step_code names them for the
datasets that run them, so a fix there re-runs only those datasets.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TASK_MODULES = frozenset({"volumes", "neardup"})


def _path(module: str) -> Path | None:
    """medcurate.<module> (dotted, relative to the package) -> its file, or None."""
    base = PACKAGE.joinpath(*module.split(".")) if module else PACKAGE
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    """The package modules one import statement names (absolute 'medcurate.x' or relative)."""
    if isinstance(node, ast.Import):
        return {a.name.removeprefix("medcurate").lstrip(".") for a in node.names if a.name.split(".")[0] == "medcurate"}
    if node.level:
        base = package.split(".") if package else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join(base + ([node.module] if node.module else []))
    elif (node.module or "").split(".")[0] == "medcurate":
        target = node.module.removeprefix("medcurate").lstrip(".")
    else:
        return set()
    # `from . import x` names modules as often as attributes
    return {target} | {m for a in node.names if _path(m := f"{target}.{a.name}".lstrip("."))}


def _statements(body: list):
    """Every statement, at any depth: an import is a statement, so expressions (nine nodes in ten,
    which ast.walk would visit on every Snakemake start) need not be walked."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _statements(inner)


@functools.cache
def _imports(module: str) -> frozenset[str]:
    path = _path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_bytes())
    found = set()
    for node in _statements(tree.body):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= _targets(node, package)
    # task modules count only where imported at module level (not inside a function)
    top = set().union(*[_targets(n, package) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))])
    found -= TASK_MODULES - top
    parts = module.split(".")  # a submodule runs its package's __init__ first
    found.update(".".join(parts[:i]) for i in range(len(parts)))
    return frozenset(m for m in found if _path(m) is not None and m != module)


def closure(modules: tuple[str, ...]) -> list[Path]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if _path(module) is not None:  # a module registered at run time (tests) has no file to read
            todo.extend(_imports(module))
    return sorted(_path(m) for m in seen if _path(m) is not None)


@functools.cache
def code_digest(*modules: str) -> str:
    """sha256 over the files (name and bytes) of the modules and everything they import."""
    digest = hashlib.sha256()
    for path in closure(tuple(sorted(set(modules)))):
        digest.update(_name(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
