"""nnU-Net v2 raw: Dataset<NNN>_<id>/ with imagesTr/labelsTr (curated train and val), imagesTs/
labelsTs (test), dataset.json and splits_final.json (five patient-grouped folds). 2-D sets are
PNG (an RGB image is one ``_0000`` file with channels R, G, B, as nnU-Net's natural-image reader
takes it); label values are made consecutive (0..n) where the catalogue's are not."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from .. import outputs, splits
from ..errors import MedcurateError
from ..images import write_png


def number(dataset: str) -> int:
    """A stable 3-digit nnU-Net dataset number (500-999) from the dataset id; --number overrides."""
    return 500 + int(hashlib.sha256(dataset.encode()).hexdigest()[:8], 16) % 500


def build(ctx, dataset_number: int | None = None) -> None:
    meta = ctx.meta
    df = ctx.curated.sort_values("case_id")
    volumes = meta["task"] == "volume_segmentation"
    ending = ".nii.gz" if volumes else ".png"
    folder = f"Dataset{dataset_number or number(meta['id']):03d}_{meta['id']}"
    labels = outputs.mask_labels(meta)
    consecutive = {v: i for i, v in enumerate(labels.values())}
    remap = any(k != v for k, v in consecutive.items())
    if remap and volumes:
        raise MedcurateError(ctx.root, f"mask label values {list(labels.values())} are not consecutive")
    modes = set()
    for row in df.itertuples(index=False):
        row = row._asdict()
        tail = "Ts" if row["split"] == "test" else "Tr"
        ctx.link(row["image"], f"{folder}/images{tail}/{row['case_id']}_0000{ending}")
        dest = f"{folder}/labels{tail}/{row['case_id']}{ending}"
        if remap:
            mask = np.asarray(Image.open(ctx.root / row["mask"]))
            lut = np.zeros(max(int(mask.max()), max(labels.values())) + 1, dtype=np.uint8)
            for v, i in consecutive.items():
                lut[v] = i
            (ctx.stage / dest).parent.mkdir(parents=True, exist_ok=True)
            ctx.known[dest] = write_png(lut[mask], ctx.stage / dest, level=6)
        else:
            ctx.link(row["mask"], dest)
        if not volumes:
            with Image.open(ctx.root / row["image"]) as im:  # the header only
                modes.add("RGB" if im.mode in ("RGB", "RGBA", "P") else "grey")
    if len(modes) > 1:
        raise MedcurateError(ctx.root, "images mix colour and greyscale: nnU-Net needs one channel layout")
    channels = meta["labels"].get("channels") or ({"0": "R", "1": "G", "2": "B"} if modes == {"RGB"} else {"0": meta["modality"]})
    training = int((df["split"] != "test").sum())
    ctx.write_json(f"{folder}/dataset.json", {
        "channel_names": channels, "labels": {k: consecutive[v] for k, v in labels.items()},
        "numTraining": training, "file_ending": ending, "name": meta["name"],
        "licence": meta["license"], "reference": meta["citation"]})
    ctx.write_json(f"{folder}/splits_final.json", splits.nnunet_splits(df, meta["id"]))
