"""Exports of a published results folder into the layouts common clients read: one small module
per kind, each a ``build(ctx)`` that writes into ``ctx.stage``. The shared machinery here runs
it in a staging folder that replaces the export whole, links images and masks (hard links, no
second copy) and writes SHA256SUMS, so an export is as deterministic and checkable as results/."""

from __future__ import annotations

import importlib
import json
import os
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import outputs
from ..atomic import atomic_dir, link
from ..errors import MedcurateError
from ..tiers import read_sums, write_checksums

if TYPE_CHECKING:  # the Snakefile imports this package: pandas (0.2 s) only where a job reads a manifest
    import pandas as pd

log = logging.getLogger("medcurate.export")

# kind -> the tasks it applies to
KINDS = {
    "hf": ("classification", "segmentation"),
    "imagefolder": ("classification",),
    "nnunet": ("segmentation", "volume_segmentation"),
    "monai": ("classification", "segmentation", "volume_segmentation"),
    "webdataset": ("classification", "segmentation", "volume_segmentation"),
    "croissant": ("classification", "segmentation", "volume_segmentation"),
}


@dataclass
class Context:
    root: Path  # results/<dataset>
    stage: Path  # the export's staging folder
    meta: dict  # dataset.json
    df: pd.DataFrame  # the typed manifest, every case
    sums: dict[str, str]  # results' SHA256SUMS: path -> digest
    known: dict[str, str] = field(default_factory=dict)  # export path -> digest of the linked file

    @property
    def curated(self) -> pd.DataFrame:
        return self.df[self.df["curated"] == 1]

    def link(self, rel: str, dest: str) -> None:
        """Hard-link results/<ds>/<rel> to <export>/<dest> (its digest is already known)."""
        src = self.root / rel
        if not src.is_file():
            raise MedcurateError(src, "listed in manifest.csv but missing from the results folder")
        link(src, self.stage / dest)
        if rel in self.sums:
            self.known[dest] = self.sums[rel]

    def write_json(self, dest: str, obj) -> None:
        path = self.stage / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def applicable(kind: str, meta: dict) -> bool:
    """Whether a dataset (its dataset.json or catalogue plan) has this export."""
    return meta["task"] in KINDS[kind] and not (kind == "imagefolder" and outputs.is_multilabel(meta))


def default_out(results: Path, kind: str) -> Path:
    """results/<ds> -> exports/<ds>/<kind> beside the results folder (as named: a linked
    results folder is not followed)."""
    results = Path(os.path.abspath(results))
    return results.parent.parent / "exports" / results.name / kind


def export(kind: str, results: str | Path, out: str | Path | None = None, **options) -> Path:
    if kind not in KINDS:
        raise MedcurateError(kind, f"unknown export kind (known: {', '.join(KINDS)})")
    root = Path(results)
    meta = outputs.info(root)
    if meta["task"] not in KINDS[kind]:
        raise MedcurateError(root, f"a {meta['task']} dataset has no {kind} export (it is for {', '.join(KINDS[kind])})")
    df = outputs.load(root)
    sums = read_sums(root / "SHA256SUMS") if (root / "SHA256SUMS").is_file() else {}
    dest = Path(out) if out else default_out(root, kind)
    module = importlib.import_module(f".{kind}", __name__)
    with atomic_dir(dest) as stage:
        ctx = Context(root, stage, meta, df, sums)
        module.build(ctx, **options)
        write_checksums(stage, ctx.known)
    log.info("%s: %s export -> %s", meta["id"], kind, dest)
    return dest
