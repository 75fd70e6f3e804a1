"""Hugging Face: one folder per split (train/, validation/, test/) with the curated cases'
images (and masks) linked in and a metadata.jsonl naming them in ``file_name`` and
``mask_file_name``; README.md's YAML header declares the splits and the features, label columns
as ClassLabel with dataset.json's class names, so ``load_dataset(folder)`` types them."""

from __future__ import annotations

import json

import yaml

from .. import outputs
from .common import HF_SPLITS, label_values, mask_columns, name


def build(ctx) -> None:
    df, meta = ctx.curated, ctx.meta
    has_mask = mask_columns(df)
    labels = outputs.label_columns(meta, df.columns)
    configs = []
    for split, folder in HF_SPLITS.items():
        part = df[df["split"] == split].sort_values("case_id")
        if part.empty:
            continue
        configs.append({"split": folder, "path": f"{folder}/**"})
        lines = []
        for row in part.itertuples(index=False):
            row = row._asdict()
            item = {"file_name": f"images/{name(row['image'])}"}
            ctx.link(row["image"], f"{folder}/images/{name(row['image'])}")
            if has_mask:
                item["mask_file_name"] = f"masks/{name(row['mask'])}"
                ctx.link(row["mask"], f"{folder}/masks/{name(row['mask'])}")
            item |= {"case_id": row["case_id"], "patient_id": row["patient_id"]}
            item |= label_values(row, meta)
            lines.append(json.dumps(item, sort_keys=True, ensure_ascii=False))
        (ctx.stage / folder / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    features = [{"name": "image", "dtype": "image"}]
    if has_mask:
        features.append({"name": "mask", "dtype": "image"})
    features += [{"name": "case_id", "dtype": "string"}, {"name": "patient_id", "dtype": "string"}]
    for col in labels:
        names = {str(i): str(c) for i, c in enumerate(meta["labels"]["classes"][col])}
        features.append({"name": col, "dtype": {"class_label": {"names": names}}})
    header = {"license": "other", "pretty_name": meta["name"],
              # features inside the config: the folder builder applies only these (not dataset_info's)
              "configs": [{"config_name": "default", "data_files": configs, "features": features}],
              "dataset_info": {"features": features}}
    text = ("---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n"
            f"# {meta['name']} (medcurate export)\n\nCurated cases of `{meta['id']}`, split by patient.\n\n"
            f"- License: {meta['license']}\n- Citation: {meta['citation']}\n- Homepage: {meta['homepage']}\n")
    (ctx.stage / "README.md").write_text(text, encoding="utf-8")
