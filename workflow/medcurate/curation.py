"""The select step: which converted cases hold masks precise enough to train on.

Nothing is deleted: every case stays in manifest.csv, with curated 0/1 and its exclusion reasons
(';'-joined, each 'reason' or 'reason:detail'). Rules are the catalogue's ``select`` options, all
off unless set; the facts they read are columns of the step tables (measured by the convert and
clean steps, or set by the dataset module: ``roi_types``, flags such as ``mask_resized``). Only
``crude_shapes`` looks at pixels, and then at the cleaned masks, never at a source image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import label_policy, masks
from .masks import measures  # noqa: F401  (the facts the rules read; tests use it here)
from .errors import MedcurateError
from .images import read_image
from .tiers import PART, QUARANTINE, read_table, write_frame


def select_step(tiers: list[Path], step: dict, out: Path) -> None:
    """The select step: the shard tables of the last tier (cleaned, else converted) -> one table
    with exclusion reasons, sorted by case id."""
    frames = [f for f in (read_table(t / PART) for t in tiers) if not f.empty]
    if not frames:
        quarantined = sum(len(read_table(t / QUARANTINE)) for t in tiers if (t / QUARANTINE).is_file())
        raise MedcurateError(step["id"], f"no case could be converted ({quarantined} quarantined; see the convert logs)")
    table = pd.concat(frames, ignore_index=True).sort_values("case_id", ignore_index=True)

    def mask_file(rel: str) -> Path:
        return next((t / rel for t in tiers if (t / rel).is_file()), tiers[0] / rel)

    write_frame(select(table, step, mask_file), out)


def select(table: pd.DataFrame, step: dict, mask_file) -> pd.DataFrame:
    """The table with its 'exclusion' column; ``mask_file(rel)`` finds a cleaned mask."""
    options, task = step["select"], step["task"]
    table = label_policy.apply(table, step.get("labels", {}).get("classes", {}), options)
    wanted = options.get("views", "all")
    if wanted != "all" and "view" not in table.columns:
        raise MedcurateError(step["id"], f"select option views: {wanted} needs a per-image 'view' column, which this dataset has not")
    reasons = []
    for row in table.to_dict("records"):
        if task == "classification":
            reasons.append(wrong_view(row, wanted) + flagged(row, options))
            continue
        if task == "detection":  # empty_mask reads 'no box' here
            empty = int(row["boxes"]) == 0 and options["empty_mask"] == "exclude"
            reasons.append(["no_boxes"] * empty + flagged(row, options))
            continue
        facts = {"mask_area_fraction": float(row["mask_area_fraction"]), "mask_components": int(row["mask_components"])}
        mask = read_image(mask_file(row["mask"]), "keep") if options.get("crude_shapes") else None
        reasons.append(exclusions(mask, row, facts, options))
    return table.assign(exclusion=[";".join(r) for r in reasons])


def exclusions(mask: np.ndarray | None, meta: dict, facts: dict, options: dict) -> list[str]:
    """A case's exclusion reasons, in a fixed order; ``mask`` is needed only for crude_shapes."""
    reasons = []
    if not facts["mask_components"] and options["empty_mask"] == "exclude":
        reasons.append("empty_mask")
    allowed = options.get("allowed_roi_types")
    if allowed is not None:
        found = str(meta.get("roi_types", "")).split()
        reasons += [f"roi_type:{t}" for t in sorted(set(found) - set(allowed))]
    reasons += flagged(meta, options)
    bounds = options.get("area_fraction") or {}
    if not bounds.get("min", 0) <= facts["mask_area_fraction"] <= bounds.get("max", 1):
        reasons.append("area_fraction")
    if (limit := options.get("max_components")) is not None and facts["mask_components"] > limit:
        reasons.append("components")
    if (crude := options.get("crude_shapes")) and (box := masks.foreground_box(mask)) is not None:
        reasons += [f"crude_shape:{kind}" for kind in sorted(set(crude_components(mask[box] > 0, crude)))]
    return reasons


def wrong_view(row: dict, wanted: str) -> list[str]:
    """The ``views`` rule (frontal / lateral / all) on the per-image 'view' column (chest X-rays:
    frontal, lateral, other, or blank when the release does not say)."""
    if wanted == "all" or row.get("view") == wanted:
        return []
    return [f"view:{row.get('view') or 'unknown'}"]


def flagged(meta: dict, options: dict) -> list[str]:
    """The ``exclude_flags`` rule, the one that applies to classification datasets too."""
    return [flag for flag in options.get("exclude_flags", []) if str(meta.get(flag, "")) in ("1", "True", "true")]


def crude_components(fg: np.ndarray, options: dict) -> list[str]:
    """'box' for a component that fills its bounding box, 'oval' for one that is (nearly) the
    ellipse of its own second moments: the marks of a drawn box or oval rather than a traced
    outline. Components smaller than ``min_area`` pixels are too coarse to judge."""
    from skimage import measure

    kinds = []
    for region in measure.regionprops(measure.label(fg, connectivity=2)):
        if region.area < options.get("min_area", 64):
            continue
        if region.extent >= options.get("box_fill", 0.97):
            kinds.append("box")
        elif _ellipse_iou(region) >= options.get("ellipse_iou", 0.97):
            kinds.append("oval")
    return kinds


def _ellipse_iou(region) -> float:
    from skimage import draw

    h, w = region.image.shape
    pad = max(h, w)  # room for the ellipse where it pokes out of the component's box
    ellipse = np.zeros((h + 2 * pad, w + 2 * pad), bool)
    r0, c0 = region.centroid_local
    rr, cc = draw.ellipse(r0 + pad, c0 + pad, region.axis_major_length / 2, region.axis_minor_length / 2,
                          ellipse.shape, rotation=region.orientation)
    ellipse[rr, cc] = True
    comp = np.zeros_like(ellipse)
    comp[pad:pad + h, pad:pad + w] = region.image
    union = (comp | ellipse).sum()
    return float((comp & ellipse).sum() / union) if union else 0.0


def exclusion_counts(df: pd.DataFrame) -> dict[str, int]:
    """Cases per exclusion reason (a case can have several), by the reason before any ':'."""
    reasons = df.loc[df.exclusion != "", "exclusion"].str.split(";").explode().str.split(":").str[0]
    per_case = reasons.reset_index().drop_duplicates()  # roi_type:ellipse;roi_type:point is one case
    return {k: int(v) for k, v in sorted(per_case["exclusion"].value_counts().items())}
