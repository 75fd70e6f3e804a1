"""Bounding boxes (task detection): one pixel convention, the one conversion from normalised
coordinates, boxes.csv beside the manifest and its COCO export.

Pixel convention (the same continuous grid as shapes.py): pixel (row r, column c) is the unit
square [c, c+1) x [r, r+1); a box is given by its EDGES x0 < x1, y0 < y1 in that grid, so it covers
columns x0..x1-1 and rows y0..y1-1, 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height. A COCO bbox
is then [x0, y0, x1 - x0, y1 - y0] exactly; a VOC box (1-based, inclusive) would be x0+1..x1.

Annotations come in one of two forms (``Annotation.form``), turned into pixels exactly once, here:

- ``cxcywh_normalised`` (darknet/YOLO): centre and size as fractions of the image's width and
  height: x0 = (cx - w/2) * width, x1 = (cx + w/2) * width, likewise in y;
- ``xyxy_pixels``: edges in pixels, already in the convention above.

The float box is widened to the smallest integer box enclosing it (floor of x0, ceil of x1; a
rounding residue of 1e-6 px is not a pixel), then clipped to the image (the case row counts the
boxes clipped). A box that is not finite, inverted, absurdly far outside the image (shapes.py's
bound) or empty after clipping is a CaseError naming the annotation file and its line.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .formats import shapes
from .atomic import atomic_open, write_text
from .errors import CaseError
from .tiers import BOXES, read_table, write_table

FORMS = ("cxcywh_normalised", "xyxy_pixels")
FIELDS = ["case_id", "class", "x0", "y0", "x1", "y1"]
RESIDUE = 1e-6


@dataclass(frozen=True)
class Annotation:
    """One box as the release writes it, before conversion."""

    label: str
    coords: tuple[float, float, float, float]
    form: str
    source: Path
    line: int


@dataclass(frozen=True)
class Box:
    label: str
    x0: int
    y0: int
    x1: int
    y1: int


def edges(ann: Annotation, width: int, height: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in pixel edges, floats: THE conversion from the annotation's form."""
    a, b, c, d = ann.coords
    if ann.form == "cxcywh_normalised":
        return (a - c / 2) * width, (b - d / 2) * height, (a + c / 2) * width, (b + d / 2) * height
    if ann.form == "xyxy_pixels":
        return a, b, c, d
    raise ValueError(f"unknown box form {ann.form!r} (known: {FORMS})")


def to_pixels(ann: Annotation, shape: tuple[int, ...]) -> tuple[Box, bool]:
    """The integer box enclosing the annotation, clipped to an image of ``shape``; and whether it
    was clipped. CaseError (naming the file and line) for a box that cannot be one."""
    height, width = shape[:2]
    where = f"line {ann.line}"
    if not all(math.isfinite(v) for v in ann.coords):
        raise CaseError(ann.source, f"{where}: box coordinates {ann.coords} are not finite numbers")
    x0, y0, x1, y1 = edges(ann, width, height)
    if not (x1 > x0 and y1 > y0):
        raise CaseError(ann.source, f"{where}: box {ann.label} has no area (x {x0:g}..{x1:g}, y {y0:g}..{y1:g} px)")
    try:
        shapes.check_points([x0, x1], [y0, y1], (height, width))
    except shapes.CoordinateError as exc:
        raise CaseError(ann.source, f"{where}: {exc.reason}") from None
    ix0, iy0 = math.floor(x0 + RESIDUE), math.floor(y0 + RESIDUE)
    ix1, iy1 = max(math.ceil(x1 - RESIDUE), ix0 + 1), max(math.ceil(y1 - RESIDUE), iy0 + 1)
    box = Box(ann.label, max(ix0, 0), max(iy0, 0), min(ix1, width), min(iy1, height))
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise CaseError(ann.source, f"{where}: box {ann.label} (x {x0:g}..{x1:g}, y {y0:g}..{y1:g} px) lies outside "
                                    f"the {width}x{height} image")
    clipped = (box.x0, box.y0, box.x1, box.y1) != (ix0, iy0, ix1, iy1)
    return box, clipped


def convert(annotations: list[Annotation], shape: tuple[int, ...], classes: list[str], case_id: str) -> tuple[list[dict], dict]:
    """boxes.csv rows of one case (in the file's order) and its manifest columns."""
    rows, clipped = [], 0
    for ann in annotations:
        if ann.label not in classes:
            raise CaseError(ann.source, f"line {ann.line}: box class {ann.label!r} is not one of the catalogue's {classes}")
        box, was_clipped = to_pixels(ann, shape)
        clipped += was_clipped
        rows.append({"case_id": case_id, "class": box.label, "x0": box.x0, "y0": box.y0, "x1": box.x1, "y1": box.y1})
    present = sorted({r["class"] for r in rows}, key=classes.index)
    # what the split step compares between identical images (as mask_sha256 for masks): copies
    # whose boxes differ are a conflicting duplicate
    listed = "\n".join(f"{r['class']} {r['x0']} {r['y0']} {r['x1']} {r['y1']}" for r in rows)
    return rows, {"boxes": len(rows), "box_classes": " ".join(present), "boxes_clipped": clipped,
                  "boxes_sha256": hashlib.sha256(listed.encode()).hexdigest()}


# ---------------------------------------------------------------- publishing


def gather(tiers: list[Path]) -> pd.DataFrame:
    """Every shard's boxes.csv as one table, cases sorted by id, each case's boxes in file order."""
    frames = [read_table(t / BOXES) for t in tiers if (t / BOXES).is_file()]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=FIELDS)
    df = pd.concat(frames, ignore_index=True).drop_duplicates()
    return df.sort_values("case_id", kind="stable", ignore_index=True)[FIELDS]


def coco(manifest: pd.DataFrame, boxes: pd.DataFrame, plan: dict) -> dict:
    """A COCO detection file for the given manifest rows: categories in the catalogue's class order
    (ids from 1), images in case-id order (ids from 1), bbox = [x0, y0, x1 - x0, y1 - y0]."""
    classes = plan["labels"]["boxes"]
    by_case: dict[str, list[dict]] = {}
    for b in boxes.to_dict("records"):
        by_case.setdefault(b["case_id"], []).append(b)
    images, annotations = [], []
    for image_id, row in enumerate(manifest.sort_values("case_id").to_dict("records"), 1):
        images.append({"id": image_id, "file_name": row["image"], "width": int(row["width"]),
                       "height": int(row["height"]), "case_id": row["case_id"], "patient_id": row["patient_id"]})
        for b in by_case.get(row["case_id"], []):
            x0, y0, x1, y1 = (int(b[k]) for k in ("x0", "y0", "x1", "y1"))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": classes.index(b["class"]) + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    return {"info": {"description": plan["name"]}, "licenses": [{"id": 1, "name": plan["license"]}],
            "categories": [{"id": i, "name": name} for i, name in enumerate(classes, 1)],
            "images": images, "annotations": annotations}


def publish(df: pd.DataFrame, tiers: list[Path], stage: Path, plan: dict) -> dict:
    """boxes.csv beside the manifest (every case's boxes, curated or not) and one COCO file per
    split of the curated cases (coco/train.json, val.json, test.json); returns the curated boxes
    per class for dataset.json."""
    boxes = gather(tiers)
    boxes = boxes[boxes["case_id"].isin(set(df["case_id"]))]
    write_csv(boxes, stage / "boxes.csv")
    curated = df[df["curated"].astype(int) == 1]
    for split in ("train", "val", "test"):
        rows = curated[curated["split"] == split]
        write_text(stage / "coco" / f"{split}.json", json.dumps(coco(rows, boxes, plan), indent=1) + "\n")
    kept = boxes[boxes["case_id"].isin(set(curated["case_id"]))]
    counts = kept["class"].value_counts()
    return {name: int(counts.get(name, 0)) for name in plan["labels"]["boxes"]}


def write_boxes(dest: Path, rows: list[dict]) -> None:
    write_table(dest, rows, FIELDS)


def write_csv(df: pd.DataFrame, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(dest, "w", newline="", encoding="utf-8") as fh:
        df.to_csv(fh, index=False, lineterminator="\n")
