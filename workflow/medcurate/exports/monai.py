"""MONAI: a Decathlon-style datalist.json (``load_decathlon_datalist``) beside the linked
images/ and labels/: 'training' holds the curated train and val cases, each with its 'fold'
(0-4, patient-grouped; fold 0 is the published val), 'test' the test cases."""

from __future__ import annotations

from .. import outputs, splits
from .common import label_values, mask_columns, name, target


def build(ctx) -> None:
    df, meta = ctx.curated.sort_values("case_id"), ctx.meta
    folds = splits.cv_folds(df, meta["id"])
    has_mask = mask_columns(df)
    lists = {"training": [], "test": []}
    for row in df.itertuples(index=False):
        row = row._asdict()
        item = {"image": f"images/{name(row['image'])}", "case_id": row["case_id"], "patient_id": row["patient_id"]}
        ctx.link(row["image"], item["image"])
        if has_mask:
            item["label"] = f"labels/{name(row['mask'])}"
            ctx.link(row["mask"], item["label"])
        elif (value := target(row, meta)) is not None:
            item["label"] = value
        item |= {k: v for k, v in label_values(row, meta).items() if k != "label"}
        if row["split"] == "test":
            lists["test"].append(item)
        else:
            lists["training"].append(item | {"fold": folds[row["case_id"]]})
    ctx.write_json("datalist.json", {
        "name": meta["name"], "description": f"medcurate export of {meta['id']}", "licence": meta["license"],
        "reference": meta["citation"], "tensorImageSize": "3D" if meta["task"] == "volume_segmentation" else "2D",
        "labels": {str(v): k for k, v in outputs.mask_labels(meta).items()}
        or {c: [str(n) for n in meta["labels"]["classes"][c]] for c in outputs.label_columns(meta, df.columns)},
        "numTraining": len(lists["training"]), "numTest": len(lists["test"]), **lists})
