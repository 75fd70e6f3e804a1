"""Whole-slide tiling (task wsi_tiling): one slide in, many tiles out, memory bounded by the tile.

A case of a whole-slide dataset is a slide (the dataset module's ``cases``) with its annotation
regions (the module's ``regions(case, plan) -> [(label, asap.Region)]``, level-0 pixels). The
convert step reads the slide's pyramid through OpenSlide, which decodes only the stored tiles a
read touches (its tile cache is bounded), so no step ever holds a slide level in memory:

1. The level: ``convert.tiling.level``, or the level whose microns per pixel is closest to
   ``convert.tiling.mpp`` (the slide's own openslide.mpp-x/-y; a slide without it is quarantined
   rather than guessed).
2. Tissue: the pyramid's most detailed level of at most OVERVIEW_MAX pixels a side (none: the
   slide is refused) is read whole; a pixel is tissue where it is opaque and coloured or dark (max - min of
   R, G, B above SATURATION, or grey below DARK): glass background is bright and grey. A tile is
   kept when the tissue share of its footprint on that level is at least ``min_tissue``.
3. Each kept tile (``tile_size`` square at the chosen level, the grid anchored at the slide's
   origin; tiles past the slide's edge are padded white) is read, composited on white (OpenSlide
   leaves background transparent), and its label map rasterised with shapes.polygon_window from
   the regions scaled by the level's downsample -- the one rasteriser, at the tile's window only.
4. Tile rows (case_id <slide>_L<level>_<x0>_<y0> with level-0 x0/y0) carry the slide's patient, so
   the split step keeps a patient's tiles together; an overview (that level, regions blended,
   kept tiles outlined) goes to overviews/<slide>.png with its label map overviews/<slide>_mask.png.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import masks
from .formats import shapes
from .errors import CaseError
from .images import pixel_digest, write_png
from .rows import case_row, rel

log = logging.getLogger("medcurate.wsi")

OVERVIEW_MAX = 2048  # pixels a side of the overview level, read whole (16 MB as RGBA at most)
SATURATION = 20
DARK = 200
OVERLAY = (0, 200, 255)


def open_slide(path: Path):
    import openslide  # here: only whole-slide datasets load the native library

    if not Path(path).is_file():
        raise CaseError(path, "slide file is missing")
    try:
        return openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, openslide.OpenSlideUnsupportedFormatError) as exc:
        raise CaseError(path, f"OpenSlide cannot read this slide ({exc or type(exc).__name__})") from None


def pick_level(slide, path: Path, tiling: dict) -> tuple[int, float | None]:
    """(level, its microns per pixel or None)."""
    mpp0 = _mpp(slide)
    if tiling.get("mpp") is not None:
        if mpp0 is None:
            raise CaseError(path, "the slide records no microns per pixel (openslide.mpp-x/-y), so tiling.mpp cannot "
                                  "pick a level; set tiling.level instead")
        target = float(tiling["mpp"])
        level = min(range(slide.level_count), key=lambda k: abs(math.log(mpp0 * slide.level_downsamples[k] / target)))
    else:
        level = int(tiling.get("level") or 0)
        if level >= slide.level_count:
            raise CaseError(path, f"tiling.level {level} but the slide has {slide.level_count} level(s)")
    return level, (mpp0 * slide.level_downsamples[level] if mpp0 else None)


def _mpp(slide) -> float | None:
    try:
        x, y = (float(slide.properties[k]) for k in ("openslide.mpp-x", "openslide.mpp-y"))
    except (KeyError, ValueError):
        return None
    return (x + y) / 2 if x > 0 and y > 0 else None


def rgb(region: Image.Image) -> np.ndarray:
    """OpenSlide's RGBA (premultiplied; transparent outside the scanned area) on white."""
    arr = np.asarray(region, dtype=np.uint16)
    alpha = arr[..., 3:4]
    return (arr[..., :3] + (255 - alpha)).clip(0, 255).astype(np.uint8)


def tissue(px: np.ndarray) -> np.ndarray:
    spread = px.max(axis=-1).astype(np.int16) - px.min(axis=-1)
    return (spread > SATURATION) | (px.mean(axis=-1) < DARK)


def convert_case(case, root: Path, plan: dict, module, out: Path, sums: dict) -> list[dict]:
    tiling = plan["convert"]["tiling"]
    size = int(tiling["tile_size"])
    import openslide

    slide = open_slide(case.image)
    try:
        return _tiles(slide, case, root, plan, module, out, sums, tiling, size)
    except openslide.OpenSlideError as exc:  # a damaged or truncated tile, met mid-read
        raise CaseError(case.image, f"reading the slide failed ({exc})") from None
    finally:
        slide.close()


def _tiles(slide, case, root, plan, module, out, sums, tiling, size) -> list[dict]:
    level, mpp = pick_level(slide, case.image, tiling)
    down = float(slide.level_downsamples[level])
    width0, height0 = slide.level_dimensions[0]
    fits = [k for k in range(slide.level_count) if max(slide.level_dimensions[k]) <= OVERVIEW_MAX]
    if not fits:
        sw, sh = slide.level_dimensions[-1]
        raise CaseError(case.image, f"smallest pyramid level is {sw}x{sh}, over {OVERVIEW_MAX} px a side: "
                                    "not a pyramidal slide, or one without a thumbnail level")
    small = fits[0]  # the most detailed level that is still small enough to read whole
    sw, sh = slide.level_dimensions[small]
    overview = rgb(slide.read_region((0, 0), small, (sw, sh)))
    found = tissue(overview)
    sdown = float(slide.level_downsamples[small])
    regions = list(module.regions(case, plan))
    for label, region in regions:  # absurd coordinates: refused once, against the whole slide
        try:
            shapes.check_points(region.xs, region.ys, (height0, width0))
        except shapes.CoordinateError as exc:
            raise CaseError(case.mask, f"annotation {region.name!r}: {exc.reason}") from None
    lw, lh = slide.level_dimensions[level]
    rows, kept = [], []
    level_shape = (lh, lw)
    for ty in range(0, lh, size):
        for tx in range(0, lw, size):
            share = _share(found, tx * down / sdown, ty * down / sdown, size * down / sdown)
            if share < float(tiling["min_tissue"]):
                continue
            x0, y0 = round(tx * down), round(ty * down)
            px = rgb(slide.read_region((x0, y0), level, (size, size)))
            if tx + size > lw or ty + size > lh:  # past the slide's edge: white, not whatever the reader pads
                px = px.copy()
                px[max(0, lh - ty):, :] = 255
                px[:, max(0, lw - tx):] = 255
            layers = [(label, shapes.polygon_window(r.xs / down, r.ys / down, level_shape, (ty, tx, size, size)))
                      for label, r in regions if shapes.is_region(r.xs, r.ys)]
            mask = masks.compose((size, size), layers, plan["labels"])
            tile_id = f"{case.case_id}_L{level}_{x0}_{y0}"
            image_rel, mask_rel = f"images/{tile_id}.png", f"raw_masks/{tile_id}.png"
            sums[image_rel] = write_png(px, out / image_rel, plan["png_compress_level"])
            sums[mask_rel] = write_png(mask, out / mask_rel, plan["png_compress_level"])
            tile_case = type(case)(case_id=tile_id, patient_id=case.patient_id, image=case.image, split=case.split,
                                   labels=dict(case.labels), subset=case.subset, meta=dict(case.meta))
            rows.append(case_row(tile_case, root, plan["module"], image_rel, mask_rel, width=size, height=size,
                                 pixel_sha256=pixel_digest(px), mask_source=rel(case.mask, root), cleaning="",
                                 slide=case.case_id, level=level, downsample=f"{down:.6g}",
                                 mpp="" if mpp is None else f"{mpp:.6g}", x0=x0, y0=y0,
                                 tissue_fraction=round(share, 4), **masks.mask_measures(mask)))
            kept.append((tx, ty))
    _overview(overview, regions, (sh, sw), sdown, [(tx * down / sdown, ty * down / sdown) for tx, ty in kept],
              size * down / sdown, case.case_id, plan, out, sums)
    if not rows:
        log.warning("%s: no tile reaches min_tissue %s", case.case_id, tiling["min_tissue"])
    return rows


def _share(found: np.ndarray, x: float, y: float, side: float) -> float:
    """Tissue share of a tile's footprint on the overview (footprint past the slide counts as glass)."""
    c0, r0 = int(math.floor(x)), int(math.floor(y))
    c1, r1 = max(c0 + 1, int(math.ceil(x + side))), max(r0 + 1, int(math.ceil(y + side)))
    window = found[r0:r1, c0:c1]
    return float(window.sum()) / ((r1 - r0) * (c1 - c0))


def _overview(px, regions, shape, sdown, kept, side, slide_id, plan, out, sums) -> None:
    layers = [(label, shapes.polygon(r.xs / sdown, r.ys / sdown, shape)[0]) for label, r in regions if shapes.is_region(r.xs, r.ys)]
    mask = masks.compose(shape, layers, plan["labels"])
    shown = px.astype(np.float32)
    shown[mask > 0] = 0.55 * shown[mask > 0] + 0.45 * np.array(OVERLAY, np.float32)
    im = Image.fromarray(shown.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for x, y in kept:
        draw.rectangle([x, y, x + side - 1, y + side - 1], outline=(40, 40, 40))
    for name, arr in ((f"overviews/{slide_id}.png", np.asarray(im)), (f"overviews/{slide_id}_mask.png", mask)):
        sums[name] = write_png(arr, out / name, plan["png_compress_level"])
