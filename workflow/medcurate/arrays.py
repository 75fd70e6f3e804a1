"""Pixel arrays of a results folder's files for the adapters: PNGs through Pillow, volumes
through nibabel, with integer depth kept (16-bit stays 16-bit: nothing is scaled or clipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import MedcurateError


def read(path: Path) -> np.ndarray:
    """(H, W) or (H, W, C) for a PNG, (X, Y, Z) for a NIfTI volume, in the stored dtype."""
    try:
        if path.name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            img = nib.load(path)
            return np.asanyarray(img.dataobj)  # the stored integers, no scaling to float
        with Image.open(path) as im:
            return np.asarray(im)  # mode I;16 -> uint16, L -> uint8, RGB -> (H, W, 3) uint8
    except FileNotFoundError:
        raise MedcurateError(path, "missing: listed in manifest.csv but not in the results folder") from None
    except OSError as exc:
        raise MedcurateError(path, f"cannot decode ({exc})") from None


def channels_first(arr: np.ndarray, volume: bool) -> np.ndarray:
    """Images get a leading channel axis: (1, H, W), (3, H, W) or (1, X, Y, Z)."""
    if volume or arr.ndim == 2:
        return arr[None]
    return np.moveaxis(arr, -1, 0)


def widen(arr: np.ndarray) -> np.ndarray:
    """Types torch cannot hold or compute on widened losslessly: uint16/uint32 -> int32/int64."""
    if arr.dtype == np.uint16:
        return arr.astype(np.int32)
    if arr.dtype == np.uint32:
        return arr.astype(np.int64)
    return np.array(arr)  # a writable copy: torch warns on read-only buffers
