"""MONAI adapter: data-dict lists for ``monai.data.Dataset`` / ``CacheDataset`` with
``LoadImaged``: {'image': path, 'label': mask path (segmentation) or class index / 0-1 vector,
'case_id', 'patient_id', 'fold'}; paths are absolute. 'fold' (0-4, train and val cases) groups
patients; fold 0 is the published val split. MONAI itself is needed only by ``dataset()``."""

from __future__ import annotations

from pathlib import Path

from . import outputs, splits


def data_dicts(root: str | Path, split: str | list[str] | None = None, curated: bool | None = True) -> list[dict]:
    root = Path(root).resolve()
    every = outputs.load(root, curated=True)  # folds are drawn over all curated train/val cases
    meta = every.attrs["dataset"]
    folds = splits.cv_folds(every, meta["id"])
    df = outputs.load(root, split=split, curated=curated)
    columns = outputs.label_columns(meta, df.columns)
    multilabel = outputs.is_multilabel(meta)
    out = []
    for row in df.to_dict("records"):
        item = {"image": str(root / row["image"]), "case_id": row["case_id"], "patient_id": row["patient_id"], "split": row["split"]}
        if meta["task"] != "classification":
            item["label"] = str(root / row["mask"]) if row["mask"] else None
        elif multilabel:
            item["label"] = [float(str(row[c]) == "1") for c in columns]
        elif columns:
            categories = list(df[columns[0]].cat.categories)
            item["label"] = categories.index(row[columns[0]]) if row[columns[0]] in categories else -1
        if row["case_id"] in folds:
            item["fold"] = folds[row["case_id"]]
        out.append(item)
    return out


def fold(items: list[dict], k: int) -> tuple[list[dict], list[dict]]:
    """(train, val) of cross-validation fold k from data_dicts(..., split=['train', 'val'])."""
    return [d for d in items if d.get("fold") not in (k, None)], [d for d in items if d.get("fold") == k]


def dataset(root: str | Path, split=None, transform=None, cache: bool = False):
    """A ``monai.data.Dataset`` (``CacheDataset`` with cache=True) over data_dicts()."""
    try:
        from monai.data import CacheDataset, Dataset
    except ImportError as exc:
        raise ImportError("medcurate.monai.dataset needs MONAI: pip install 'medcurate[monai]'") from exc
    items = data_dicts(root, split=split)
    return CacheDataset(items, transform=transform) if cache else Dataset(items, transform=transform)
