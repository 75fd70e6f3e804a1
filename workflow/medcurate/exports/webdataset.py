"""WebDataset: per-split tar shards (<split>-000000.tar, ...) of the curated cases, byte for byte
the same on every build: members in sorted key order, mtime 0, uid/gid 0, no owner names, mode
0644. A sample is <key>.<image ext>, <key>.mask.<ext> (segmentation), <key>.json (ids, labels)
and <key>.cls (classification: the class index; a multi-label set's 0/1 vector is
<key>.labels.json)."""

from __future__ import annotations

import io
import json
import re
import tarfile

from ..errors import MedcurateError
from .common import label_values, mask_columns, target

SHARD_SAMPLES = 1000


def _ext(rel: str) -> str:
    return "nii.gz" if rel.endswith(".nii.gz") else rel.rsplit(".", 1)[-1]


def key(case_id: str) -> str:
    """WebDataset splits a member name at its first dot: keys carry none (nor slashes)."""
    return re.sub(r"[./\\]", "_", case_id)


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def build(ctx) -> None:
    df, meta = ctx.curated, ctx.meta
    has_mask = mask_columns(df)
    for split in ("train", "val", "test"):
        part = df[df["split"] == split].assign(wds_key=lambda d: d["case_id"].map(key)).sort_values("wds_key")
        if part.empty:
            continue
        if part["wds_key"].duplicated().any():
            raise MedcurateError(ctx.root, f"case ids collide as WebDataset keys in {split}: {sorted(part.loc[part['wds_key'].duplicated(), 'case_id'])[:5]}")
        rows = [r._asdict() for r in part.itertuples(index=False)]
        for n in range(0, len(rows), SHARD_SAMPLES):
            dest = ctx.stage / f"{split}-{n // SHARD_SAMPLES:06d}.tar"
            with open(dest, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for row in rows[n:n + SHARD_SAMPLES]:
                    k = row["wds_key"]
                    _member(tar, f"{k}.{_ext(row['image'])}", (ctx.root / row["image"]).read_bytes())
                    if has_mask:
                        _member(tar, f"{k}.mask.{_ext(row['mask'])}", (ctx.root / row["mask"]).read_bytes())
                    info = {"case_id": row["case_id"], "patient_id": row["patient_id"], "split": split, **label_values(row, meta)}
                    _member(tar, f"{k}.json", json.dumps(info, sort_keys=True, ensure_ascii=False).encode())
                    if not has_mask and (value := target(row, meta)) is not None:
                        if isinstance(value, list):  # multi-label: .cls decodes as one int
                            _member(tar, f"{k}.labels.json", json.dumps(value).encode())
                        else:
                            _member(tar, f"{k}.cls", str(value).encode())
