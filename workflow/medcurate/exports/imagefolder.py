"""torchvision ImageFolder: <split>/<class>/<image>, hard links to the curated images of a
classification set, one label column (the manifest's first by default); classes.json lists the classes in
dataset.json's order (ImageFolder itself numbers the folders alphabetically)."""

from __future__ import annotations

import pandas as pd

from .. import outputs
from ..errors import MedcurateError
from .common import name


def build(ctx, label: str | None = None) -> None:
    meta = ctx.meta
    columns = outputs.label_columns(meta, ctx.df.columns)
    if outputs.is_multilabel(meta):
        raise MedcurateError(ctx.root, "a multi-label set has no ImageFolder layout (one class per image): use the hf, monai or webdataset export")
    label = label or (columns[0] if columns else None)
    if label not in columns:
        raise MedcurateError(ctx.root, f"no label column {label!r} (it has: {', '.join(columns) or 'none'})")
    df = ctx.curated
    for row in df.sort_values("case_id").itertuples(index=False):
        row = row._asdict()
        if pd.isna(row[label]):
            continue
        folder = str(row[label]).replace("/", "_")  # a class name is one folder
        ctx.link(row["image"], f"{row['split']}/{folder}/{name(row['image'])}")
    ctx.write_json("classes.json", {"label": label, "classes": [str(c) for c in meta["labels"]["classes"][label]]})
