"""QC montage: image + mask overlays (segmentation), a labelled grid (classification), or for
volumes each case's axial slice where its label is largest, with the overlay.

Every tile is captioned with its case id (wrapped at token boundaries, never cut inside one) and
its labels as ``column=value`` (multi-label sets: the positive labels; segmentation: the mask
labels present). Caption heights come from the font's line height and each caption's line count,
so nothing overlaps at any tile size. Masks are max-pooled per label to the tile's size, so a
finding of a few pixels on a full-size mammogram still colours its tile pixel.
"""

from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_path
from .curation import exclusion_counts
from .outputs import is_multilabel, label_columns

THUMB = (160, 120)
PAD = 3
COLUMNS = 6
ALPHA = 0.5  # overlay opacity
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
# A token ends after its separators: an id wraps after '_', '-', '.', '/', ',' or a space, never
# inside a word; label lines wrap at spaces only, so a label name stays whole.
TOKEN = re.compile(r"[^_\-./,\s]+[_\-./,\s]*|[_\-./,\s]+")
WORD = re.compile(r"\S+\s*|\s+")


def montage(df: pd.DataFrame, folder: Path, plan: dict, dest: Path, quarantined: int = 0, threads: int = 1,
            thumb: tuple[int, int] = THUMB) -> None:
    """A caption with the curation counts (per exclusion reason, per split), then sample tiles.
    Tiles are decoded ``threads`` at a time (Pillow and numpy release the GIL while inflating and
    pooling); the sheet is the same whatever the count."""
    sheet = render_sheet(*compose(df, folder, plan, quarantined, threads, thumb), thumb)[0]
    with atomic_path(dest) as tmp:
        sheet.save(tmp, format="PNG")


def compose(df: pd.DataFrame, folder: Path, plan: dict, quarantined: int = 0, threads: int = 1,
            thumb: tuple[int, int] = THUMB) -> tuple[list[str], list[list[tuple[Image.Image, list[str]]]]]:
    """The sheet's header lines and its rows of (tile, caption lines)."""
    curated = df[df["curated"].astype(int) == 1].sort_values("case_id")
    n = plan["qc"]["qc_samples"]
    columns = label_columns(plan)
    header = _caption(df, plan, quarantined)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        if plan["task"] == "detection":
            cells = _box_cells(curated, folder, plan, n, pool, thumb)
            return header, [cells[i:i + COLUMNS] for i in range(0, len(cells), COLUMNS)]
        if plan["task"] in ("segmentation", "volume_segmentation", "wsi_tiling"):
            picks = _records(curated[curated["mask_labels"] != ""].head(n))
            render = _volume_overlay if plan["task"] == "volume_segmentation" else _overlay
            tiles = pool.map(lambda row: render(folder, row, plan, thumb), picks)
            cells = [(tile, [r.case_id, *_class_labels(r, plan, columns), _mask_labels(r, plan)]) for tile, r in zip(tiles, picks)]
            return header, [cells[i:i + COLUMNS] for i in range(0, len(cells), COLUMNS)]
        groups, missing = _class_groups(curated, plan, columns, n)
        header += [f"no curated case: {', '.join(missing)}"] if missing else []
        rows = []
        for group in groups:
            picks = _records(group)
            tiles = pool.map(lambda r: _image_tile(folder / r.image, thumb), picks)
            cells = [(tile, [r.case_id, *_class_labels(r, plan, columns)]) for tile, r in zip(tiles, picks)]
            rows += [cells[i:i + COLUMNS] for i in range(0, len(cells), COLUMNS)]
        return header, rows


# Box outlines must stand out on any photograph (endoscopy is red, histology pink): saturated hues
# away from red, one per class in the catalogue's order.
BOX_COLOURS = [(0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 0, 255), (255, 255, 255), (0, 90, 255), (255, 140, 0)]


def _box_cells(curated: pd.DataFrame, folder: Path, plan: dict, n: int, pool, thumb: tuple[int, int]) -> list[tuple]:
    """Detection: a colour legend, then cases with boxes, each box outlined in its class's colour
    (boxes.csv beside the manifest, pixel edges scaled to the thumbnail)."""
    boxes = pd.read_csv(folder / "boxes.csv", dtype={"case_id": str})
    classes = plan["labels"]["boxes"]
    picks = _records(curated[curated["boxes"].astype(int) > 0].head(n))

    def tile(row) -> Image.Image:
        im = Image.open(folder / row.image).convert("RGB")
        scale = min(thumb[0] / im.width, thumb[1] / im.height)  # small frames enlarged, so boxes stay legible
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.NEAREST)
        draw = ImageDraw.Draw(im)
        for b in boxes[boxes["case_id"] == row.case_id].to_dict("records"):
            colour = BOX_COLOURS[classes.index(b["class"]) % len(BOX_COLOURS)]
            # edges x0..x1 cover pixels x0..x1-1: the outline is drawn on the box's outermost pixels
            draw.rectangle([b["x0"] * scale, b["y0"] * scale, max(b["x0"] * scale, b["x1"] * scale - 1),
                            max(b["y0"] * scale, b["y1"] * scale - 1)], outline=colour, width=2)
        return im

    font = ImageFont.load_default()
    legend = Image.new("RGB", thumb, (40, 40, 40))
    for i, name in enumerate(classes):
        ImageDraw.Draw(legend).text((6, 4 + i * line_height(font)), name, fill=BOX_COLOURS[i % len(BOX_COLOURS)], font=font)
    tiles = pool.map(tile, picks)
    return [(legend, ["box colours"])] + [(t, [r.case_id, f"{r.boxes} boxes"]) for t, r in zip(tiles, picks)]


def _records(df: pd.DataFrame) -> list[SimpleNamespace]:
    """Rows with every column as an attribute, whatever its name (itertuples renames some)."""
    return [SimpleNamespace(**r) for r in df.to_dict("records")]


# ---------------------------------------------------------------- labels in captions


def _class_labels(row, plan: dict, columns: list[str]) -> list[str]:
    values = {c: str(getattr(row, c)) for c in columns if hasattr(row, c)}
    if is_multilabel(plan):
        positive = [c for c, v in values.items() if v == "1"]
        return ["positive: " + (", ".join(positive) if positive else "none")]
    return [f"{c}={v}" for c, v in values.items() if v not in ("", "nan")]


def _mask_labels(row, plan: dict) -> str:
    names = {str(v): k for k, v in plan["labels"]["mask"].items()}
    return "mask: " + ", ".join(names.get(v, v) for v in str(row.mask_labels).split())


def _class_groups(curated: pd.DataFrame, plan: dict, columns: list[str], n: int) -> tuple[list[pd.DataFrame], list[str]]:
    """One row of tiles per class of the first label column; a multi-label set gets one group:
    up to n / labels cases positive for each label, each case once, in label order."""
    if is_multilabel(plan):
        per_label = max(1, math.ceil(n / len(columns)))
        picked, missing = [], []
        for column in columns:
            positive = curated[(curated[column].astype(str) == "1") & ~curated["case_id"].isin(picked)]
            picked += list(positive["case_id"].head(per_label))
            if not (curated[column].astype(str) == "1").any():
                missing.append(column)
        return [curated.set_index("case_id", drop=False).loc[picked[:n]]], missing
    column = columns[0]
    per_row = max(1, math.ceil(n / len(plan["labels"]["classes"][column])))
    groups, missing = [], []
    for value in plan["labels"]["classes"][column]:
        picks = curated[curated[column].astype(str) == value].head(min(per_row, COLUMNS))
        (groups.append(picks) if len(picks) else missing.append(f"{column}={value}"))
    return groups, missing


def _caption(df: pd.DataFrame, plan: dict, quarantined: int) -> list[str]:
    excluded = exclusion_counts(df)
    lines = [f"{plan['id']}: {len(df)} cases, {int(df['curated'].astype(int).sum())} curated, {quarantined} quarantined"]
    curated = df["curated"].astype(int) == 1
    per_split = {s: int((curated & (df["split"] == s)).sum()) for s in ("train", "val", "test")}
    lines.append("curated per split: " + ", ".join(f"{s} {k}" for s, k in per_split.items()))
    if empty := [s for s, k in per_split.items() if not k]:
        lines.append(f"WARNING: no curated case in {', '.join(empty)}")
    if excluded:
        lines.append("excluded from the curated subset: " + ", ".join(f"{k} {v}" for k, v in excluded.items()))
    return lines


# ---------------------------------------------------------------- layout


def line_height(font) -> int:
    top, bottom = font.getbbox("Ag|jy")[1::2]
    return bottom - min(0, top) + 2


def wrap(text: str, width: float, font, tokens: re.Pattern = TOKEN) -> list[str]:
    """Lines no wider than ``width``, broken between tokens only; a token wider than ``width``
    stands alone on its line (the layout widens its columns to the widest token)."""
    lines, line = [], ""
    for token in tokens.findall(text):
        if line and font.getlength((line + token).rstrip()) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    return [*lines, line.rstrip()] if line.strip() else lines or [""]


def render_sheet(header: list[str], rows: list[list[tuple[Image.Image, list[str]]]], thumb: tuple[int, int] = THUMB
                 ) -> tuple[Image.Image, list[dict]]:
    """The sheet, and each drawn element's box (tile slot, caption slot, text) for the checks:
    column width fits the widest caption token, row height the row's longest caption."""
    font = ImageFont.load_default()
    lh = line_height(font)
    def split(caption: list[str]) -> list[tuple[str, re.Pattern]]:  # the id, then label lines
        return [(text, TOKEN if i == 0 else WORD) for i, text in enumerate(caption)]

    tokens = [t.strip() for _, caption in (c for row in rows for c in row) for text, kind in split(caption) for t in kind.findall(text)]
    col_w = max([thumb[0]] + [math.ceil(font.getlength(t)) + 2 * PAD for t in tokens if t])
    cols = max([len(r) for r in rows] + [COLUMNS])
    width = cols * col_w
    head = [line for text in header for line in wrap(text, width - 2 * PAD, font, WORD)]
    wrapped = [[[line for text, kind in split(caption) for line in wrap(text, col_w - 2 * PAD, font, kind)] for _, caption in row]
               for row in rows]
    heights = [thumb[1] + 2 * PAD + lh * max([len(c) for c in row] + [1]) for row in wrapped]
    top = 2 * PAD + lh * len(head)
    sheet = Image.new("RGB", (width, top + sum(heights)), "white")
    draw = ImageDraw.Draw(sheet)
    boxes = []
    for i, line in enumerate(head):
        draw.text((PAD, PAD + i * lh), line, fill="black", font=font)
        boxes.append({"kind": "text", "slot": (0, 0, width, top), "box": draw.textbbox((PAD, PAD + i * lh), line, font=font)})
    y = top
    for row, captions, h in zip(rows, wrapped, heights):
        for x, ((tile, _), lines) in enumerate(zip(row, captions)):
            x0 = x * col_w
            slot = (x0, y, x0 + col_w, y + thumb[1])
            at = (x0 + (col_w - tile.width) // 2, y + (thumb[1] - tile.height) // 2)
            sheet.paste(tile, at)
            boxes.append({"kind": "tile", "slot": slot, "box": (*at, at[0] + tile.width, at[1] + tile.height)})
            under = (x0, y + thumb[1], x0 + col_w, y + h)
            boxes.append({"kind": "caption", "slot": under, "box": under})
            for k, line in enumerate(lines):
                pos = (x0 + PAD, y + thumb[1] + PAD + k * lh)
                draw.text(pos, line, fill="black", font=font)
                boxes.append({"kind": "text", "slot": under, "box": draw.textbbox(pos, line, font=font), "text": line})
        y += h
    return sheet, boxes


# ---------------------------------------------------------------- tiles


def fit(size: tuple[int, int], thumb: tuple[int, int]) -> tuple[int, int]:
    """The tile size of an image: within ``thumb``, aspect kept, never enlarged."""
    w, h = size
    scale = min(1.0, thumb[0] / w, thumb[1] / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _image_tile(path: Path, thumb: tuple[int, int]) -> Image.Image:
    px = np.asarray(Image.open(path))
    size = fit((px.shape[1], px.shape[0]), thumb)
    return Image.fromarray(_shrink(_rgb(_subsample(px, size)), size))


def _subsample(px: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Every k-th pixel, to about twice the tile size: a full-size mammogram is 13 Mpx, and
    converting it whole dominated the publish job (the image only; masks are pooled)."""
    step = max(1, min(px.shape[0] // (2 * size[1]), px.shape[1] // (2 * size[0])))
    return px[::step, ::step]


def _shrink(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    im = Image.fromarray(rgb)
    return np.asarray(im if im.size == size else im.resize(size, Image.Resampling.BOX))


def _rgb(px: np.ndarray) -> np.ndarray:
    """8-bit RGB for display; 16-bit grey (mammograms) is stretched min..max, not clipped at 255."""
    if px.dtype != np.uint8:
        lo, hi = float(px.min()), float(px.max())
        px = ((px.astype(np.float32) - lo) * (255 / max(hi - lo, 1))).astype(np.uint8)
    return np.asarray(Image.fromarray(px).convert("RGB"))


def pool_labels(mask: np.ndarray, size: tuple[int, int], values: list[int]) -> dict[int, np.ndarray]:
    """Per label value, whether any pixel of the label falls in each tile pixel's block (max-pooling
    over uneven blocks with reduceat): a 3-pixel speck of a 13 Mpx mammogram keeps its tile pixel,
    where every-k-th-pixel subsampling kept 8 of 1,000 calcification pixels. Only the bounding box
    of the labelled pixels is pooled (findings are small next to a mammogram)."""
    w, h = size
    rows = (np.arange(h) * mask.shape[0]) // h  # first mask row of each tile row
    cols = (np.arange(w) * mask.shape[1]) // w
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(ys):
        return {}
    (i0, i1), (j0, j1) = (np.searchsorted(rows, [ys[0], ys[-1]], "right") - 1), (np.searchsorted(cols, [xs[0], xs[-1]], "right") - 1)
    box = mask[rows[i0]:ys[-1] + 1, cols[j0]:xs[-1] + 1]  # from the first block touched
    out = {}
    for v in values:
        full = box == v
        if full.any():
            pooled = np.zeros((h, w), bool)
            part = np.logical_or.reduceat(full, rows[i0:i1 + 1] - rows[i0], axis=0)
            pooled[i0:i1 + 1, j0:j1 + 1] = np.logical_or.reduceat(part, cols[j0:j1 + 1] - cols[j0], axis=1)
            out[v] = pooled
    return out


def _blend(rgb: np.ndarray, pooled: dict[int, np.ndarray], plan: dict) -> np.ndarray:
    """Labels in value order, each over the ones before; the palette follows the label's rank."""
    image = rgb.astype(np.float32)
    for i, value in enumerate(sorted(v for v in plan["labels"]["mask"].values() if v)):
        if value in pooled:
            hit = pooled[value]
            image[hit] = (1 - ALPHA) * image[hit] + ALPHA * np.array(PALETTE[i % len(PALETTE)], np.float32)
    return image.round().astype(np.uint8)


def _overlay(folder: Path, row, plan: dict, thumb: tuple[int, int] = THUMB) -> Image.Image:
    px = np.asarray(Image.open(folder / row.image))
    mask = np.asarray(Image.open(folder / row.mask))  # same size as its image
    size = fit((px.shape[1], px.shape[0]), thumb)
    values = sorted(v for v in plan["labels"]["mask"].values() if v)
    return Image.fromarray(_blend(_shrink(_rgb(_subsample(px, size)), size), pool_labels(mask, size, values), plan))


def _volume_overlay(folder: Path, row, plan: dict, thumb: tuple[int, int] = THUMB) -> Image.Image:
    """The axial slice holding most label voxels, with its overlay; a slice smaller than the tile
    (a low-resolution MR) is enlarged by whole pixels to stay legible."""
    from . import volumes

    grey, label = volumes.largest_label_slice(folder / row.image, folder / row.mask)
    size = fit((grey.shape[1], grey.shape[0]), thumb)
    values = sorted(v for v in plan["labels"]["mask"].values() if v)
    tile = Image.fromarray(_blend(_shrink(_rgb(_subsample(grey, size)), size), pool_labels(label, size, values), plan))
    scale = min(thumb[0] // tile.width, thumb[1] // tile.height)
    return tile.resize((tile.width * scale, tile.height * scale), Image.Resampling.NEAREST) if scale > 1 else tile
