"""Every segmentation sample draws its masks on the structures it drew in the image: converted as
the workflow converts them, each label of each non-empty mask differs in mean intensity from a
ring just outside it (a mask drawn independently of its image sits on the same texture inside and
around, and fails)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import sample_plan, unpacked
from medcurate import catalogue, tiers
from medcurate.convert import convert_shard
from PIL import Image
from scipy import ndimage

SEGMENTATION = ["inbreast", "cbis_ddsm", "csaw_s", "bcdr", "cdd_cesm", "mias", "drive", "stare", "chase_db1",
                "ultrasound_nerve", "fetal_head_biometry", "promise12", "acdc", "kits19"]
MIN_SEPARATION = 1.0  # Cohen's d between a label and its surroundings


def pixels(path) -> np.ndarray:
    if path.name.endswith((".nii.gz", ".nii")):
        return np.asanyarray(nib.load(path).dataobj).astype(np.float32)
    px = np.asarray(Image.open(path)).astype(np.float32)
    return px.mean(axis=2) if px.ndim == 3 else px


def separation(image: np.ndarray, mask: np.ndarray, value: int) -> float:
    """How far the label's pixels stand out from what lies just around it: the largest Cohen's d
    (difference of means over the pooled standard deviation) between the label and any one label
    (background included) holding a quarter or more of a thin ring around it. A ring split among
    labels (the myocardium between blood and background) is compared part by part."""
    region = mask == value
    width = max(2, round(0.02 * min(region.shape[:2])))
    outside = ndimage.distance_transform_edt(~region)
    ring = (outside > 0) & (outside <= width)
    inside = image[region]
    best = 0.0
    for other in np.unique(mask[ring]):
        part = image[ring & (mask == other)]
        if len(part) >= 0.25 * ring.sum():
            pooled = np.sqrt((inside.var() + part.var()) / 2) + 1e-6
            best = max(best, abs(float(inside.mean()) - float(part.mean())) / pooled)
    return best


@pytest.mark.parametrize("dataset", SEGMENTATION)
def test_every_sample_mask_sits_on_a_drawn_structure(dataset, sample_root, mirror, tmp_path):
    plan = sample_plan(dataset)
    gated = plan["access"]["mode"] == "manual"
    root = sample_root(dataset) if gated else unpacked(mirror, dataset, tmp_path / "root")
    out = tmp_path / "converted"
    convert_shard(root, catalogue.step_slice(plan, "convert"), 0, 1, out)
    table = tiers.read_table(out / tiers.PART)
    names = {v: k for k, v in plan["labels"]["mask"].items()}
    checked, weak = 0, []
    for row in table[table["mask"] != ""].itertuples():
        image, mask = pixels(out / row.image), np.rint(pixels(out / (row.mask or ""))).astype(int)
        if image.ndim == 4:
            image = image[..., 0]
        for value in sorted(set(np.unique(mask).tolist()) - {0}):
            c = separation(image, mask, value)
            checked += 1
            if c < MIN_SEPARATION:
                weak.append(f"{row.case_id} {names.get(value, value)}: {c:.3f}")
    assert checked, f"{dataset}: no non-empty mask in the sample"
    assert not weak, f"{dataset}: masks off their structures (separation < {MIN_SEPARATION}): " + "; ".join(weak)
