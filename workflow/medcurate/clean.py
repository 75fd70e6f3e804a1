"""The clean step: mask cleaning of one converted shard (2-D segmentation datasets).

Reads the converted shard's table and raw label maps; writes masks/ and its own table. A mask the
options leave unchanged is hard-linked, not re-encoded, so with cleaning off (the default) the
step costs a link per case and no disk.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import masks
from .images import read_image, write_png
from .tiers import PART, QUARANTINE, SUMS, read_sums, read_table, write_sums, write_table
from .atomic import link

log = logging.getLogger("medcurate.clean")


def clean_shard(converted: Path, step: dict, out: Path) -> dict:
    table = read_table(converted / PART)
    raw_sums = read_sums(converted / SUMS)
    options, values = step["clean"], step["labels"]["mask"]
    out.mkdir(parents=True, exist_ok=True)
    rows, sums, changed = [], {}, 0
    for row in table.to_dict("records"):
        raw = row["mask"]
        row["mask"] = f"masks/{Path(raw).name}"
        mask, actions = None, []
        if masks.active(options):
            mask = read_image(converted / raw, "keep").copy()  # writable: masks.clean edits it in place
            mask, actions = masks.clean(mask, mask.shape, values, options, converted / raw)
        if actions:
            sums[row["mask"]] = write_png(mask, out / row["mask"], step["png_compress_level"])
            row.update({k: str(v) for k, v in masks.mask_measures(mask).items()})
            row["cleaning"] = ";".join(filter(None, [row["cleaning"], *actions]))
            changed += 1
        else:
            link(converted / raw, out / row["mask"])
            sums[row["mask"]] = raw_sums[raw]
        rows.append(row)
    write_table(out / PART, rows, list(table.columns))
    link(converted / QUARANTINE, out / QUARANTINE)  # the tier's lineage: select counts it
    write_sums(out / SUMS, sums)
    log.info("%s: %d masks, %d changed by cleaning %s", converted.name, len(rows), changed, options)
    return {"masks": len(rows), "changed": changed}
