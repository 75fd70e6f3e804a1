"""The convert step: decode one shard's cases into PNG images and raw label maps, with a table.

Cases are sorted by id and dealt round-robin to shards, so every shard job enumerates the same
list and takes its share; no per-image Snakemake jobs. The shard folder is kept (it is the
converted tier: later steps read its table and masks and never decode a source image again,
and results/ hard-links its images):

    part.csv quarantine.csv files.sha256 (tiers.py)
    images/ raw_masks/ masks_<name>/ (2-D) or volumes/ slices/ (volume datasets)
    overviews/ (whole-slide datasets: one per slide, wsi.py)
    boxes.csv (detection datasets: one row per box, boxes.py)
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from . import boxes, datasets, masks
from .atomic import write_text
from .errors import CaseError, MedcurateError
from .images import pixel_digest, read_image_png, write_png
from .rows import case_row, rel
from .tiers import BOXES, FACTS, PART, QUARANTINE, QUARANTINE_FIELDS, RAW_MASKS, SUMS, write_sums, write_table

log = logging.getLogger("medcurate.convert")



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
    box_rows: list[dict] = []  # detection: the shard's boxes.csv
    if plan["task"] == "volume_segmentation":
        from . import volumes  # nibabel/SimpleITK load only for volume datasets

        convert_case = volumes.convert_case
    elif plan["task"] == "wsi_tiling":
        from . import wsi  # OpenSlide's native library loads only for whole-slide datasets

        convert_case = wsi.convert_case  # one slide -> a row per kept tile
    else:
        convert_case = functools.partial(_convert_case, box_rows=box_rows)
    cases = enumerate_cases(root, plan)[shard::n_shards]
    out.mkdir(parents=True, exist_ok=True)
    rows, quarantined, sums = [], [], {}
    for case in cases:
        try:
            _check_case(case, plan)
            result = convert_case(case, root, plan, module, out, sums)
            rows += result if isinstance(result, list) else [result]
        except CaseError as exc:
            log.warning("quarantined %s: %s", case.case_id, exc)
            quarantined.append({"case_id": case.case_id, "patient_id": case.patient_id,
                                "source": rel(exc.path, root), "reason": exc.reason})
        except MemoryError:
            # one huge or hostile image must not take the dataset down with it
            reason = "out of memory while converting this case (raise the convert rule's mem_mb, or exclude the file)"
            log.warning("quarantined %s: %s", case.case_id, reason)
            quarantined.append({"case_id": case.case_id, "patient_id": case.patient_id,
                                "source": rel(case.image, root), "reason": reason})
    if shard == 0 and (facts := getattr(module, "dataset_facts", None)):
        write_text(out / FACTS, json.dumps(facts(root, plan), indent=1, sort_keys=True) + "\n")
    write_table(out / PART, rows)
    if plan["task"] == "detection":
        boxes.write_boxes(out / BOXES, box_rows)
    write_table(out / QUARANTINE, quarantined, QUARANTINE_FIELDS)
    write_sums(out / SUMS, sums)
    log.info("shard %d/%d of %s: %d converted, %d quarantined", shard + 1, n_shards, plan["id"], len(rows), len(quarantined))
    return {"converted": len(rows), "quarantined": len(quarantined)}


def _check_case(case: datasets.Case, plan: dict) -> None:
    if case.problem is not None:
        raise case.problem
    if case.image is None:
        raise CaseError(case.mask, "mask has no matching image")
    classes = plan["labels"].get("classes", {})
    for name, value in case.labels.items():
        if value not in classes.get(name, [value]):
            raise CaseError(case.image, f"label {name}={value!r} is not one of the catalogue's {classes[name]}")


def _convert_case(case: datasets.Case, root: Path, plan: dict, module, out: Path, sums: dict,
                  box_rows: list[dict] | None = None) -> dict:
    decoded, png = load_image_png(case, plan, module)
    image, facts = decoded.array, dict(decoded.facts)
    columns = {"width": image.shape[1], "height": image.shape[0], "pixel_sha256": pixel_digest(image), "mask_sha256": ""}
    mask_rel = ""
    if plan["task"] == "segmentation":
        drawn = datasets.loaded(module.load_mask(case, plan))
        mask, actions = drawn.array, drawn.actions
        facts.update(drawn.facts)  # roi_types, flags: the manifest columns the curation rules read
        masks.check(mask, image.shape, plan["labels"]["mask"], case.mask)
        mask_rel = f"{RAW_MASKS}/{case.case_id}.png"
        sums[mask_rel] = write_png(mask, out / mask_rel, plan["png_compress_level"])
        # measured here on the raw map, while it is in memory: the clean step only re-measures
        # the masks it changes
        columns.update(masks.mask_measures(mask), mask_source=rel(drawn.source or case.mask, root), cleaning=";".join(actions))
        columns.update(_extra_masks(case, plan, module, image.shape, out, sums))
    elif plan["task"] == "detection":
        # the module parses its release's box files; the conversion to pixels is boxes.py's alone
        rows, box_columns = boxes.convert(module.load_boxes(case, plan), image.shape, plan["labels"]["boxes"], case.case_id)
        columns.update(box_columns, box_source=rel(case.mask, root), **_extra_masks(case, plan, module, image.shape, out, sums))
    # a source PNG already in the output's mode and depth is copied, not re-encoded (pngcopy)
    sums[f"images/{case.case_id}.png"] = write_png(image, out / "images" / f"{case.case_id}.png", plan["png_compress_level"], png)
    if plan["task"] == "detection":
        box_rows += rows  # only once the case is converted: a quarantined case leaves no boxes
    return case_row(case, root, plan["module"], f"images/{case.case_id}.png", mask_rel,
                    source=decoded.source, facts=facts, **columns)


def load_image(case: datasets.Case, plan: dict, module) -> datasets.Loaded:
    """Decode a case's image (the module's reader, else the generic one) and record its shape on
    the case, so load_mask builds the label map at the decoded matrix."""
    return load_image_png(case, plan, module)[0]


def load_image_png(case: datasets.Case, plan: dict, module) -> tuple[datasets.Loaded, object]:
    """load_image, and the source PNG's chunks to copy when the generic reader returned its pixels
    unchanged (images.read_image_png); None for a module's own reader (it may crop, flip, rescale)."""
    reader = getattr(module, "load_image", None)
    if reader:
        decoded, png = datasets.loaded(reader(case, plan)), None
    else:
        array, png = read_image_png(case.image, plan["convert"]["image_mode"])
        decoded = datasets.loaded(array)  # the very array read_image_png decoded: png.fits checks identity
    case.shape = decoded.array.shape
    return decoded, png


def _extra_masks(case, plan: dict, module, shape: tuple, out: Path, sums: dict) -> dict:
    """Masks beside the label map (a field of view, a second observer): checked against the image,
    written to masks_<name>/ as they are (never cleaned); column mask_<name> is empty for a case
    without one."""
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
        masks.check(extra, shape, values, src)
        row[f"mask_{name}"] = f"masks_{name}/{case.case_id}.png"
        sums[row[f"mask_{name}"]] = write_png(extra, out / row[f"mask_{name}"], plan["png_compress_level"])
    return row
