"""What several exports share: split names, per-case label values, file names in an export."""

from __future__ import annotations

from pathlib import PurePosixPath

import pandas as pd

from .. import outputs

HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # Hugging Face's split names


def label_values(row, meta: dict) -> dict[str, int | None]:
    """Each label column of a case as its class index in dataset.json's order (None if empty)."""
    out = {}
    for col in outputs.label_columns(meta, row):  # row: the manifest's column order
        value = row[col]
        out[col] = None if pd.isna(value) else [str(c) for c in meta["labels"]["classes"][col]].index(str(value))
    return out


def target(row, meta: dict):
    """The classification target: a float vector for multi-label sets, the class index of the
    first label column otherwise (None without labels)."""
    values = label_values(row, meta)
    if outputs.is_multilabel(meta):
        return [float(v or 0) for v in values.values()]
    return next(iter(values.values()), None)


def name(rel: str) -> str:
    return PurePosixPath(rel).name


def mask_columns(df: pd.DataFrame) -> bool:
    return "mask" in df.columns and (df["mask"].fillna("") != "").any()
