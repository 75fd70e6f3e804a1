"""The manifest row of one converted case, built here for 2-D images and volumes alike."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MedcurateError


def case_row(case, root: Path, module: str, image: str, mask: str, **columns) -> dict:
    """Fixed leading columns, then the step's own, then the dataset module's (case.meta)."""
    row = {
        "case_id": case.case_id,
        "patient_id": case.patient_id,
        "official_split": case.split or "",
        "image": image,
        "mask": mask,
        **case.labels,
        **columns,
        "source": rel(case.image, root),
        "subset": case.subset,
    }
    return with_meta(row, case, module)


def with_meta(row: dict, case, module: str) -> dict:
    """Add the module's own manifest columns (case.meta); one that would overwrite a column
    medcurate writes (e.g. 'height') is refused rather than silently replacing it."""
    if clash := sorted(set(case.meta) & set(row)):
        raise MedcurateError(case.image, f"module {module} sets manifest column(s) {clash} that medcurate writes itself; rename them")
    return {**row, **case.meta}


def rel(path, root: Path) -> str:
    """A source path relative to the dataset root (abspath, not resolve: a gated dataset's root
    links to the folders its user placed); outside it, the path as given."""
    if path is None:
        return ""
    out = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return str(path) if out.startswith("..") else Path(out).as_posix()
