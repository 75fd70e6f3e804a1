"""The manifest row of one converted case, built here for 2-D images and volumes alike."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MedcurateError


def case_row(case, root: Path, module: str, image: str, mask: str, *, source: Path | None = None,
             facts: dict | None = None, **columns) -> dict:
    """Fixed leading columns, then the step's own, then the dataset module's: case.meta (from the
    annotations) updated by the facts its loaders returned. ``source``: the image file actually
    read, where the loader read another than case.image."""
    row = {
        "case_id": case.case_id,
        "patient_id": case.patient_id,
        "official_split": case.split or "",
        "image": image,
        "mask": mask,
        **case.labels,
        **columns,
        "source": rel(source or case.image, root),
        "subset": case.subset,
    }
    return with_meta(row, case, module, facts or {})


def with_meta(row: dict, case, module: str, facts: dict | None = None) -> dict:
    """Add the module's own manifest columns (case.meta, then the loaders' facts); one that would
    overwrite a column medcurate writes (e.g. 'height') is refused rather than silently replacing it."""
    meta = {**case.meta, **(facts or {})}
    if clash := sorted(set(meta) & set(row)):
        raise MedcurateError(case.image, f"module {module} sets manifest column(s) {clash} that medcurate writes itself; rename them")
    return {**row, **meta}


def rel(path, root: Path) -> str:
    """A source path relative to the dataset root (abspath, not resolve: a gated dataset's root
    links to the folders its user placed); outside it, the path as given."""
    if path is None:
        return ""
    out = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return str(path) if out.startswith("..") else Path(out).as_posix()
