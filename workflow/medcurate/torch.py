"""PyTorch adapter: ``medcurate.torch.Dataset("results/<ds>", split="train")`` yields dicts with
'image' (channels first, stored integers: uint8, 16-bit widened to int32, never scaled), 'mask'
(int64 label map, segmentation sets), 'label' (int64 class index, -1 when missing; a float32 0/1
vector for multi-label sets) and 'case_id'. Needs torch (``pip install medcurate[torch]``)."""

from __future__ import annotations

from pathlib import Path

try:
    import torch
    from torch.utils.data import Dataset as _TorchDataset
except ImportError as exc:  # an optional dependency: say which extra brings it
    raise ImportError("medcurate.torch needs PyTorch: pip install 'medcurate[torch]'") from exc

from . import arrays, outputs


class Dataset(_TorchDataset):
    """The cases of a results folder (curated only by default). ``label`` picks the label column
    of a set with several (default: the manifest's first); ``transform`` is applied to each
    sample dict."""

    def __init__(self, root: str | Path, split: str | list[str] | None = None, curated: bool | None = True,
                 label: str | None = None, transform=None):
        self.df = outputs.load(root, split=split, curated=curated)
        self.root = Path(root)
        self.meta = self.df.attrs["dataset"]
        self.volume = self.meta["task"] == "volume_segmentation"
        self.segmentation = self.meta["task"] != "classification"
        columns = outputs.label_columns(self.meta, self.df.columns)
        self.multilabel = outputs.is_multilabel(self.meta)
        self.label_columns = columns if self.multilabel else ([label] if label else columns[:1])
        if label and label not in columns:
            raise KeyError(f"{self.root}: no label column {label!r} (it has: {', '.join(columns) or 'none'})")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, i: int) -> dict:
        row = self.df.iloc[i]
        image = arrays.widen(arrays.channels_first(arrays.read(self.root / row["image"]), self.volume))
        sample = {"image": torch.from_numpy(image), "case_id": row["case_id"]}
        if self.segmentation and row["mask"]:
            sample["mask"] = torch.from_numpy(arrays.read(self.root / row["mask"]).astype("int64"))
        if self.multilabel:
            sample["label"] = torch.tensor([float(row[c] == "1") for c in self.label_columns], dtype=torch.float32)
        elif self.label_columns:
            value = row[self.label_columns[0]]
            categories = list(self.df[self.label_columns[0]].cat.categories)
            sample["label"] = torch.tensor(categories.index(value) if value in categories else -1, dtype=torch.int64)
        return self.transform(sample) if self.transform else sample

    @property
    def classes(self) -> list[str]:
        """Class names of the label (the vector's column names for a multi-label set)."""
        if self.multilabel:
            return self.label_columns
        return [str(c) for c in self.meta["labels"]["classes"][self.label_columns[0]]] if self.label_columns else []
