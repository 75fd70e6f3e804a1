"""EAD2019 sample: trainingData_detection.zip (flat <stem>.jpg + <stem>.txt, darknet-normalised
boxes, class ids of class_list.txt) and semanticSegmentation_EAD2019.zip (<stem>.jpg with a
5-channel <stem>_mask.tif, channels Instrument, Specularity, Artefact, Bubbles, Saturation), as
DATASETS.md section 18 describes them. Stems follow the release's prefixes (numeric, a video
name with a frame number); frames in two sizes (the release mixes 512x512 and ~1350x1080, here
shrunk to 64x64 and 84x68). One box pokes past the right border (clipped on conversion); one
frame's box file is empty. Pixels are synthetic: a reddish mucosa with the artefacts drawn where
the boxes say (white specular spots, grey bubbles, a dark instrument)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...samples import seeded, write_zip

DATASETS = ("ead2019",)
CLASSES = ("specularity", "saturation", "artifact", "blur", "contrast", "bubbles", "instrument")
# stem -> (width, height), [(class, cx, cy, w, h) in pixels]: normalised when written
FRAMES = {
    "00186": ((64, 64), [("specularity", 20, 16, 8, 6), ("bubbles", 44, 40, 12, 10)]),
    "0000606": ((64, 64), [("specularity", 12, 48, 6, 6), ("instrument", 40, 20, 20, 16), ("saturation", 52, 52, 10, 8)]),
    "010412": ((64, 64), []),
    "1772_A_M62_00309": ((84, 68), [("artifact", 30, 30, 14, 10), ("blur", 42, 34, 84, 68)]),
    "1772_A_M62_00310": ((84, 68), [("artifact", 31, 30, 14, 10), ("specularity", 80, 20, 10, 8)]),  # past the right edge
    "DB58_colitis_full_01908": ((84, 68), [("contrast", 42, 34, 60, 40), ("bubbles", 20, 50, 10, 10)]),
    "WL_00012": ((64, 64), [("instrument", 16, 32, 14, 30), ("specularity", 46, 12, 6, 6)]),
    "Lap_00077": ((84, 68), [("saturation", 60, 30, 16, 12)]),
}
SEMANTIC = ("0000606", "WL_00012")
MASK_CHANNELS = ("instrument", "specularity", "artifact", "bubbles", "saturation")


def ead2019(out: Path) -> list[Path]:
    detection, semantic = {}, {}
    for stem, (size, boxes) in FRAMES.items():
        rgb = frame(stem, size, boxes)
        detection[f"trainingData_detection/{stem}.jpg"] = jpeg(rgb)
        detection[f"trainingData_detection/{stem}.txt"] = box_file(size, boxes)
        if stem in SEMANTIC:
            semantic[f"semanticSegmentation_EAD2019/images/{stem}.jpg"] = jpeg(rgb)
            semantic[f"semanticSegmentation_EAD2019/masks/{stem}_mask.tif"] = mask_tif(size, boxes)
    written = []
    for name, members in (("trainingData_detection.zip", detection), ("semanticSegmentation_EAD2019.zip", semantic)):
        dest = out / "ead2019" / "manual" / name
        write_zip(dest, members, store=(".jpg",))
        written.append(dest)
    return written


def box_file(size: tuple[int, int], boxes: list) -> bytes:
    w, h = size
    lines = [f"{CLASSES.index(c)} {cx / w:.10g} {cy / h:.10g} {bw / w:.10g} {bh / h:.10g}\n" for c, cx, cy, bw, bh in boxes]
    return "".join(lines).encode()


def frame(stem: str, size: tuple[int, int], boxes: list) -> np.ndarray:
    w, h = size
    rng = seeded(f"ead2019/{stem}")
    yy, xx = np.mgrid[0:h, 0:w]
    r = 150 + 60 * np.exp(-(((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 3) + rng.normal(0, 4, (h, w))
    rgb = np.stack([r, r * 0.45, r * 0.35], axis=-1).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    for cls, cx, cy, bw, bh in boxes:
        x0, y0, x1, y1 = cx - bw / 2, cy - bh / 2, cx + bw / 2 - 1, cy + bh / 2 - 1
        if cls in ("specularity", "saturation"):
            draw.ellipse([x0, y0, x1, y1], fill=(255, 255, 250))
        elif cls == "bubbles":
            draw.ellipse([x0, y0, x1, y1], outline=(230, 230, 230), width=2)
        elif cls == "instrument":
            draw.rectangle([x0, y0, x1, y1], fill=(60, 60, 70))
        elif cls == "artifact":
            draw.line([x0, y0, x1, y1], fill=(250, 240, 120), width=2)
    return np.asarray(im)


def mask_tif(size: tuple[int, int], boxes: list) -> bytes:
    """(5, H, W) uint8 0/255, the organisers' channel order, drawn inside the frame's boxes."""
    import tifffile

    w, h = size
    stack = np.zeros((len(MASK_CHANNELS), h, w), np.uint8)
    for cls, cx, cy, bw, bh in boxes:
        if cls in MASK_CHANNELS:
            im = Image.new("L", (w, h))
            ImageDraw.Draw(im).ellipse([cx - bw / 2, cy - bh / 2, cx + bw / 2 - 1, cy + bh / 2 - 1], fill=255)
            stack[MASK_CHANNELS.index(cls)] |= np.asarray(im)
    buf = io.BytesIO()
    tifffile.imwrite(buf, stack, photometric="minisblack", planarconfig="separate", metadata=None)
    return buf.getvalue()


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90, optimize=False, progressive=False)
    return buf.getvalue()
