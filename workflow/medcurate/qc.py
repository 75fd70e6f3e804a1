"""QC montage: image + mask overlays (segmentation), a class-labelled grid (classification), or
for volumes each case's axial slice where its label is largest, with the overlay."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_path
from .curation import exclusion_counts

THUMB = (160, 120)
LABEL_H = 14
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def montage(df: pd.DataFrame, folder: Path, plan: dict, dest: Path, quarantined: int = 0, threads: int = 1) -> None:
    """A caption with the curation counts (per exclusion reason), then sample tiles. Tiles are
    decoded ``threads`` at a time (Pillow releases the GIL while inflating: 24 full-size 16-bit
    mammograms take 5 s on one core); the sheet is the same whatever the count."""
    curated = df[df["curated"] == 1].sort_values("case_id")
    n = plan["qc"]["qc_samples"]
    font = ImageFont.load_default()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        if plan["task"] == "detection":
            rows = _box_rows(curated, folder, plan, n, pool)
        elif plan["task"] in ("segmentation", "volume_segmentation", "wsi_tiling"):
            picks = curated[curated["mask_labels"] != ""].head(n)
            overlay = _volume_overlay if plan["task"] == "volume_segmentation" else _overlay
            tiles = list(zip(pool.map(lambda row: overlay(folder, row, plan), picks.itertuples()), picks["case_id"]))
            rows = [tiles[i:i + 6] for i in range(0, len(tiles), 6)]
        else:
            column = next(iter(plan["labels"]["classes"]))
            classes = plan["labels"]["classes"][column]
            per_class = max(1, math.ceil(n / len(classes)))
            rows = []
            for value in classes:
                picks = curated[curated[column] == value].head(per_class)
                thumbs = pool.map(lambda r: _thumb(Image.fromarray(_rgb(_pixels(folder / r.image)).astype(np.uint8))),
                                  picks.itertuples())
                rows.append([(tile, f"{value}") for tile in thumbs])
    caption = _caption(df, plan, quarantined)
    top = LABEL_H * len(caption) + 4
    cols = max([len(r) for r in rows] + [6])
    sheet = Image.new("RGB", (cols * THUMB[0], top + max(1, len(rows)) * (THUMB[1] + LABEL_H)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(caption):
        draw.text((4, 2 + i * LABEL_H), line, fill="black", font=font)
    for y, row in enumerate(rows):
        for x, (tile, text) in enumerate(row):
            sheet.paste(tile, (x * THUMB[0] + (THUMB[0] - tile.width) // 2, top + y * (THUMB[1] + LABEL_H)))
            draw.text((x * THUMB[0] + 2, top + y * (THUMB[1] + LABEL_H) + THUMB[1]), text[-26:], fill="black", font=font)
    with atomic_path(dest) as tmp:
        sheet.save(tmp, format="PNG")


def _thumb(im: Image.Image) -> Image.Image:
    im = im.copy()
    im.thumbnail(THUMB, Image.Resampling.BILINEAR)
    return im


def _pixels(path: Path) -> np.ndarray:
    """The image subsampled (every k-th pixel) to about twice the tile size: a full-size
    mammogram is 13 Mpx, and blending overlays at that size dominated the publish job."""
    px = np.asarray(Image.open(path))
    step = max(1, min(px.shape[0] // (2 * THUMB[1]), px.shape[1] // (2 * THUMB[0])))
    return px[::step, ::step]


def _rgb(px: np.ndarray) -> np.ndarray:
    """8-bit RGB for display; 16-bit grey (mammograms) is stretched min..max, not clipped at 255."""
    if px.dtype != np.uint8:
        lo, hi = float(px.min()), float(px.max())
        px = ((px.astype(np.float32) - lo) * (255 / max(hi - lo, 1))).astype(np.uint8)
    return np.asarray(Image.fromarray(px).convert("RGB"), dtype=np.float32)


def _overlay(folder: Path, row, plan: dict) -> Image.Image:
    image = _rgb(_pixels(folder / row.image))
    mask = _pixels(folder / row.mask)  # same size as its image, so the same subsampling
    return _blend(image, mask, plan)


def _volume_overlay(folder: Path, row, plan: dict) -> Image.Image:
    """The axial slice holding most label voxels, with its overlay."""
    from . import volumes

    grey, label = volumes.largest_label_slice(folder / row.image, folder / row.mask)
    tile = _blend(_rgb(grey), label, plan)
    scale = min(THUMB[0] // tile.width, THUMB[1] // tile.height)
    # a slice smaller than the tile (a low-resolution MR) is enlarged by whole pixels to stay legible
    return tile.resize((tile.width * scale, tile.height * scale), Image.Resampling.NEAREST) if scale > 1 else tile


def _blend(image: np.ndarray, mask: np.ndarray, plan: dict) -> Image.Image:
    for i, value in enumerate(sorted(v for v in plan["labels"]["mask"].values() if v)):
        hit = mask == value
        image[hit] = 0.55 * image[hit] + 0.45 * np.array(PALETTE[i % len(PALETTE)], np.float32)
    return _thumb(Image.fromarray(image.astype(np.uint8)))


# Box outlines must stand out on any photograph (endoscopy is red, histology pink): saturated hues
# away from red, one per class in the catalogue's order.
BOX_COLOURS = [(0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 0, 255), (255, 255, 255), (0, 90, 255), (255, 140, 0)]


def _box_rows(curated: pd.DataFrame, folder: Path, plan: dict, n: int, pool) -> list[list[tuple]]:
    """Detection: cases with boxes, each box outlined in its class's colour (boxes.csv beside the
    manifest, pixel edges scaled to the thumbnail); the tile's text gives the case and its box count."""
    boxes = pd.read_csv(folder / "boxes.csv", dtype={"case_id": str})
    classes = plan["labels"]["boxes"]
    picks = curated[curated["boxes"].astype(int) > 0].head(n)

    def tile(row) -> Image.Image:
        im = Image.open(folder / row.image).convert("RGB")
        scale = min(THUMB[0] / im.width, THUMB[1] / im.height)  # small frames enlarged, so boxes stay legible
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.NEAREST)
        draw = ImageDraw.Draw(im)
        for b in boxes[boxes["case_id"] == row.case_id].itertuples(index=False):
            colour = BOX_COLOURS[classes.index(b[1]) % len(BOX_COLOURS)]  # b[1]: 'class' (a keyword, so no attribute)
            # edges x0..x1 cover pixels x0..x1-1: the outline is drawn on the box's outermost pixels
            draw.rectangle([b.x0 * scale, b.y0 * scale, max(b.x0 * scale, b.x1 * scale - 1), max(b.y0 * scale, b.y1 * scale - 1)],
                           outline=colour, width=2)
        return im

    tiles = list(pool.map(tile, picks.itertuples()))
    legend = Image.new("RGB", THUMB, (40, 40, 40))  # first tile: which colour is which class
    for i, name in enumerate(classes):
        ImageDraw.Draw(legend).text((6, 4 + i * LABEL_H), name, fill=BOX_COLOURS[i % len(BOX_COLOURS)], font=ImageFont.load_default())
    labelled = [(legend, "box colours")] + [(t, f"{r.case_id}: {r.boxes} boxes") for t, r in zip(tiles, picks.itertuples())]
    return [labelled[i:i + 6] for i in range(0, len(labelled), 6)]


def _caption(df: pd.DataFrame, plan: dict, quarantined: int) -> list[str]:
    excluded = exclusion_counts(df)
    lines = [f"{plan['id']}: {len(df)} cases, {int(df['curated'].sum())} curated, {quarantined} quarantined"]
    if excluded:
        lines.append("excluded from the curated subset: " + ", ".join(f"{k} {v}" for k, v in excluded.items()))
    return lines
