"""Mask cleaning shared by every segmentation dataset; each action is recorded per case."""

from __future__ import annotations

import numpy as np

from .errors import CaseError
from .images import pixel_digest, read_image


def check(mask: np.ndarray, image_shape: tuple[int, ...], values: dict[str, int], source) -> None:
    """A label map must match its image and hold only the catalogue's values (else CaseError)."""
    if mask.shape != tuple(image_shape[:2]):
        raise CaseError(source, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {image_shape[1]}x{image_shape[0]}")
    box = foreground_box(mask)
    if box is not None:
        present = set(np.unique(mask[box]).tolist())
        if unknown := present - set(values.values()):
            raise CaseError(source, f"label values {sorted(unknown)} not in the catalogue's {sorted(set(values.values()))}")


def active(options: dict) -> bool:
    """Whether the cleaning options can change any mask."""
    return options.get("min_component_area", 0) > 0 or bool(options.get("fill_holes", False))


def clean(mask: np.ndarray, image_shape: tuple[int, ...], values: dict[str, int], options: dict, source) -> tuple[np.ndarray, list[str]]:
    """Validate (check) and clean a label map. Returns (mask, actions)."""
    check(mask, image_shape, values, source)
    actions: list[str] = []
    box = foreground_box(mask)
    if box is None or not active(options):
        return mask, actions
    # Everything below works on the foreground's bounding box (a view into mask): a lesion is a
    # tiny part of a 13-Mpx mammogram. Equivalent on the box: all outside it is background.
    from scipy import ndimage  # only when cleaning is on (0.3 s of imports per job otherwise)
    from skimage import morphology

    sub = mask[box]
    present = set(np.unique(sub).tolist())
    min_area = options.get("min_component_area", 0)
    fill = options.get("fill_holes", False)
    for name, value in sorted(values.items(), key=lambda kv: kv[1]):
        if value == 0 or value not in present:
            continue
        region = sub == value
        cleaned = region
        if min_area > 0:
            cleaned = morphology.remove_small_objects(cleaned, max_size=min_area - 1)
        if fill:
            # A hole is background enclosed by the label (not connected to the border); it is
            # filled only over background, never over another label.
            cleaned = ndimage.binary_fill_holes(cleaned) & ((sub == 0) | (sub == value))
        removed = int(region.sum() - (region & cleaned).sum())
        added = int((cleaned & ~region).sum())
        if removed:
            sub[region & ~cleaned] = 0
            actions.append(f"{name}:removed_small:{removed}px")
        if added:
            sub[cleaned & ~region] = value
            actions.append(f"{name}:filled_holes:{added}px")
    return mask, actions



def binary(path, values: dict[str, int]) -> np.ndarray:
    """A two-valued mask file (0/255, 0/1, palette GIF, 1-bit PNG): every non-zero pixel becomes
    the table's one non-background label."""
    (label,) = [v for k, v in values.items() if k != "background"]
    return ((read_image(path, "L") > 0) * label).astype(np.uint8)


def foreground_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of the non-zero pixels (None for an empty mask)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def labels_present(mask: np.ndarray) -> list[int]:
    box = foreground_box(mask)
    return [] if box is None else sorted(set(np.unique(mask[box]).tolist()) - {0})


def compose(shape: tuple[int, ...], layers: list[tuple[str, np.ndarray]], labels: dict) -> np.ndarray:
    """One uint8 label map from (label name, boolean region) layers. Where regions of different
    labels overlap, the label first in ``labels['overlap']`` (default: the mask table's order) wins."""
    order = labels.get("overlap") or [k for k in labels["mask"] if k != "background"]
    rank = {name: i for i, name in enumerate(order)}
    out = np.zeros(shape[:2], np.uint8)
    for name, region in sorted(layers, key=lambda layer: -rank.get(layer[0], -1)):
        if name not in labels["mask"]:
            raise ValueError(f"label {name!r} is not in the catalogue's mask table {sorted(labels['mask'])}")
        out[region] = labels["mask"][name]
    return out


def measures(mask: np.ndarray) -> dict:
    """Foreground (any label) area fraction and 8-connected component count."""
    from skimage import measure  # here, not at import: the select step seldom needs it (0.3 s a job)

    box = foreground_box(mask)
    if box is None:
        return {"mask_area_fraction": 0.0, "mask_components": 0}
    fg = mask[box] > 0  # components never cross the foreground's bounding box
    return {"mask_area_fraction": round(float(fg.sum() / mask.size), 6),
            "mask_components": int(measure.label(fg, connectivity=2).max())}


def mask_measures(mask: np.ndarray) -> dict:
    """The manifest's mask columns: digest, labels present, area fraction, components."""
    return {"mask_sha256": pixel_digest(mask), "mask_labels": " ".join(str(v) for v in labels_present(mask)),
            **measures(mask)}
