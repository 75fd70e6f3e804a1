"""Reading a published results folder: the typed manifest (``medcurate.load``) and the facts
the adapters and exports share (label columns, multi-label sets, mask label names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MedcurateError
from .label_policy import target_columns

if TYPE_CHECKING:  # the Snakefile imports this module (through exports): pandas only where load() runs
    import pandas as pd

SPLITS = ("train", "val", "test")


def info(root: str | Path) -> dict:
    """dataset.json of a results folder, or an error naming what is missing."""
    path = Path(root) / "dataset.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MedcurateError(path, "no dataset.json: not a medcurate results folder (results/<dataset>)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedcurateError(path, f"cannot read dataset.json ({exc})") from None


def load(path: str | Path, split: str | list[str] | None = None, curated: bool | None = None) -> pd.DataFrame:
    """The manifest of ``results/<dataset>`` as a typed table (types from dataset.json's
    'columns'): ``split`` keeps one split or a list of them, ``curated=True`` only the curated
    cases (False only the excluded ones). ``df.attrs`` holds 'root' and 'dataset' (dataset.json)."""
    root = Path(path)
    meta = info(root)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise MedcurateError(manifest, "missing: the results folder is incomplete")
    import pandas as pd

    from . import columns

    raw = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    types = meta.get("columns") or columns.column_types(raw, meta["labels"])  # folders published before 'columns'
    try:
        df = columns.apply(raw, types, meta["labels"])
    except ValueError as exc:  # a value that does not fit its declared type
        raise MedcurateError(manifest, str(exc)) from None
    if split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        if unknown := sorted(set(wanted) - set(SPLITS)):
            raise MedcurateError(root, f"unknown split(s) {unknown}: use {', '.join(SPLITS)}")
        df = df[df["split"].isin(wanted)]
    if curated is not None:
        df = df[df["curated"] == int(bool(curated))]
    df = df.reset_index(drop=True)
    df.attrs = {"root": str(root), "dataset": meta}
    return df


def label_columns(meta: dict, columns=None) -> list[str]:
    """The label columns, in the manifest's order when its ``columns`` are given (dataset.json's
    keys are sorted)."""
    # the chest X-ray family's harmonised h_* columns repeat the own labels in a shared vocabulary:
    # beside the target, not part of it
    classes = target_columns(meta["labels"].get("classes", {}))
    return [c for c in columns if c in classes] if columns is not None else classes


def is_multilabel(meta: dict) -> bool:
    """Several 0/1 label columns (ChestX-ray14): one float vector per case."""
    cols = label_columns(meta)
    return len(cols) > 1 and all(binary(meta["labels"]["classes"][k]) for k in cols)


def binary(values) -> bool:
    """0/1, with blank allowed (a chest X-ray report without findings indexed: such cases leave
    the curated subset as 'unlabelled', so the vector's 0 for blank never reaches training)."""
    return {"0", "1"} <= {str(v) for v in values} <= {"0", "1", ""}


def mask_labels(meta: dict) -> dict[str, int]:
    """Mask label names by value, in value order (background first)."""
    return dict(sorted(meta["labels"].get("mask", {}).items(), key=lambda kv: kv[1]))
