"""Curated-subset rules: which converted cases hold masks precise enough to train on.

Nothing is deleted: every case stays in manifest.csv, with curated 0/1 and its exclusion reasons
(';'-joined, each 'reason' or 'reason:detail'). Rules are catalogue curation options, all off
unless set; the facts they read come from the mask itself or from ``case.meta`` (set by the
dataset module: ``roi_types``, flags such as ``mask_resized``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from skimage import draw, measure

from . import masks


def measures(mask: np.ndarray) -> dict:
    """Foreground (any label) area fraction and 8-connected component count."""
    box = masks.foreground_box(mask)
    if box is None:
        return {"mask_area_fraction": 0.0, "mask_components": 0}
    fg = mask[box] > 0  # components never cross the foreground's bounding box
    return {"mask_area_fraction": round(float(fg.sum() / mask.size), 6),
            "mask_components": int(measure.label(fg, connectivity=2).max())}


def exclusions(mask: np.ndarray, meta: dict, facts: dict, options: dict) -> list[str]:
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


def flagged(meta: dict, options: dict) -> list[str]:
    """The ``exclude_flags`` rule, the one that applies to classification datasets too."""
    return [flag for flag in options.get("exclude_flags", []) if str(meta.get(flag, "")) in ("1", "True", "true")]


def crude_components(fg: np.ndarray, options: dict) -> list[str]:
    """'box' for a component that fills its bounding box, 'oval' for one that is (nearly) the
    ellipse of its own second moments: the marks of a drawn box or oval rather than a traced
    outline. Components smaller than ``min_area`` pixels are too coarse to judge."""
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
