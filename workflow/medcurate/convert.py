"""Convert one shard of a dataset: decode, build masks, clean, write PNGs and a part manifest.

Cases are sorted by id and dealt round-robin to shards, so every shard job enumerates the same
list and takes its share; no per-image Snakemake jobs.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

from . import curation, datasets, masks
from .atomic import atomic_open, write_text
from .errors import CaseError, MedcurateError
from .images import pixel_digest, read_image, write_png

log = logging.getLogger("medcurate.convert")

PART = "part.csv"
SUMS = "files.sha256"  # sha256 of each PNG written, so gather's SHA256SUMS need not re-read them
QUARANTINE = "quarantine.csv"
QUARANTINE_FIELDS = ["case_id", "patient_id", "source", "reason"]


def enumerate_cases(root: Path, plan: dict) -> list[datasets.Case]:
    cases = sorted(datasets.load(plan["module"]).cases(root, plan), key=lambda c: c.case_id)
    seen: set[str] = set()
    for case in cases:
        if case.case_id in seen:
            raise MedcurateError(root, f"{plan['id']}: case id '{case.case_id}' occurs twice in the annotations")
        seen.add(case.case_id)
    return cases


def convert_shard(root: Path, plan: dict, shard: int, n_shards: int, out: Path) -> dict:
    module = datasets.load(plan["module"])
    cases = enumerate_cases(root, plan)[shard::n_shards]
    out.mkdir(parents=True, exist_ok=True)
    rows, quarantined, sums = [], [], {}
    for case in cases:
        try:
            rows.append(_convert_case(case, root, plan, module, out, sums))
        except CaseError as exc:
            log.warning("quarantined %s: %s", case.case_id, exc)
            quarantined.append({"case_id": case.case_id, "patient_id": case.patient_id,
                                "source": _rel(exc.path, root), "reason": exc.reason})
    _write_csv(out / PART, rows, _fields(rows))
    _write_csv(out / QUARANTINE, quarantined, QUARANTINE_FIELDS)
    write_text(out / SUMS, "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))
    log.info("shard %d/%d of %s: %d converted, %d quarantined", shard + 1, n_shards, plan["id"], len(rows), len(quarantined))
    return {"converted": len(rows), "quarantined": len(quarantined)}


def _convert_case(case: datasets.Case, root: Path, plan: dict, module, out: Path, sums: dict) -> dict:
    if case.problem is not None:
        raise case.problem
    if case.image is None:
        raise CaseError(case.mask, "mask has no matching image")
    classes = plan["labels"].get("classes", {})
    for name, value in case.labels.items():
        if value not in classes.get(name, [value]):
            raise CaseError(case.image, f"label {name}={value!r} is not one of the catalogue's {classes[name]}")
    if plan["task"] == "volume_segmentation":
        from . import volumes  # nibabel/SimpleITK load only for volume datasets

        return volumes.convert_case(case, root, plan, module, out, sums)
    image = load_image(case, plan, module)
    row = {
        "case_id": case.case_id,
        "patient_id": case.patient_id,
        "official_split": case.split or "",
        "image": f"images/{case.case_id}.png",
        "mask": "",
        **case.labels,
        "width": image.shape[1],
        "height": image.shape[0],
        "source": _rel(case.image, root),
        "subset": case.subset,
        "pixel_sha256": pixel_digest(image),
        "mask_sha256": "",
        "cleaning": "",
        "exclusion": ";".join(curation.flagged(case.meta, plan["curation"])),
    }
    if plan["task"] == "segmentation":
        mask, actions = module.load_mask(case, plan)  # may add facts (roi_types, flags) to case.meta
        mask, cleaned = masks.clean(mask, image.shape, plan["labels"]["mask"], plan["curation"], case.mask)
        actions += cleaned
        present = masks.labels_present(mask)
        facts = curation.measures(mask)
        sums[f"masks/{case.case_id}.png"] = write_png(mask, out / "masks" / f"{case.case_id}.png", plan["png_compress_level"])
        row.update(mask=f"masks/{case.case_id}.png", mask_sha256=pixel_digest(mask),
                   mask_source=_rel(case.mask, root), cleaning=";".join(actions),
                   mask_labels=" ".join(str(v) for v in present), **facts,
                   exclusion=";".join(curation.exclusions(mask, case.meta, facts, plan["curation"])))
        row.update(_extra_masks(case, plan, module, image.shape, out, sums))
    sums[f"images/{case.case_id}.png"] = write_png(image, out / "images" / f"{case.case_id}.png", plan["png_compress_level"])
    return with_meta(row, case, plan)


def with_meta(row: dict, case: datasets.Case, plan: dict) -> dict:
    """Add the module's own manifest columns (case.meta); one that would overwrite a column
    medcurate writes (e.g. 'height') is refused rather than silently replacing it."""
    if clash := sorted(set(case.meta) & set(row)):
        raise MedcurateError(case.image, f"module {plan['module']} sets manifest column(s) {clash} that medcurate writes itself; rename them")
    return {**row, **case.meta}


def load_image(case: datasets.Case, plan: dict, module) -> np.ndarray:
    """Decode a case's image (the module's reader, else the generic one) and record its shape on
    the case, so load_mask builds the label map at the decoded matrix."""
    reader = getattr(module, "load_image", None)
    image = reader(case, plan) if reader else read_image(case.image, plan["curation"]["image_mode"])
    case.shape = image.shape
    return image


def _extra_masks(case, plan: dict, module, shape: tuple, out: Path, sums: dict) -> dict:
    """Masks beside the label map (a field of view, a second observer): checked against the image,
    written to masks_<name>/; column mask_<name> is empty for a case without one."""
    declared = plan["labels"].get("extra_masks", {})
    if unknown := set(case.extra_masks) - set(declared):
        raise MedcurateError(case.image, f"extra mask(s) {sorted(unknown)} not declared in the catalogue's labels.extra_masks")
    row = {}
    for name, values in declared.items():
        row[f"mask_{name}"] = ""
        if name not in case.extra_masks:
            continue
        src = case.extra_masks[name]
        reader = getattr(module, "load_extra_mask", None)
        extra = reader(case, plan, name) if reader else masks.binary(src, values)
        extra, _ = masks.clean(extra, shape, values, {}, src)
        rel = f"masks_{name}/{case.case_id}.png"
        sums[rel] = write_png(extra, out / rel, plan["png_compress_level"])
        row[f"mask_{name}"] = rel
    return row


def _fields(rows: list[dict]) -> list[str]:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    return fields or ["case_id"]


def _rel(path, root: Path) -> str:
    if path is None:
        return ""
    # abspath, not resolve: a gated dataset's root links to the folders its user placed
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return str(path) if rel.startswith("..") else Path(rel).as_posix()


def _write_csv(dest: Path, rows: list[dict], fields: list[str]) -> None:
    with atomic_open(dest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
