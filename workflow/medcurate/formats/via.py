"""The VGG Image Annotator (VIA 1.x/2.x) CSV export: one row per region, its shape as JSON.

Header ``#filename`` (VIA 1.x) or ``filename`` (VIA 2), then ``file_size``, ``file_attributes``,
``region_count``, ``region_id``, ``region_shape_attributes`` and ``region_attributes``. Shapes:
polygon and polyline (``all_points_x``/``all_points_y``), ellipse (``cx``, ``cy``, ``rx``, ``ry``,
optional ``theta``), circle (``cx``, ``cy``, ``r``), point (``cx``, ``cy``) and rect (``x``, ``y``,
``width``, ``height``). An image opened but never annotated has one row with ``region_count`` 0 and
``{}`` as shape. Parsed here without any dataset's conventions; rasterised with formats/shapes.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CaseError, MedcurateError
from . import shapes

VIA_COLUMNS = ["region_count", "region_id", "region_shape_attributes"]


# shape name -> (required numeric keys, roi type recorded in the manifest)
SHAPES = {
    "polygon": (("all_points_x", "all_points_y"), "polygon"),
    "polyline": (("all_points_x", "all_points_y"), "polygon"),
    "ellipse": (("cx", "cy", "rx", "ry"), "ellipse"),
    "circle": (("cx", "cy", "r"), "circle"),
    "point": (("cx", "cy"), "point"),
    "rect": (("x", "y", "width", "height"), "rect"),
}


@dataclass
class Region:
    line: int
    region_id: int
    shape: str  # VIA shape name
    params: dict  # the shape's numeric parameters
    attributes: dict = field(default_factory=dict)


@dataclass
class ViaImage:
    filename: str
    line: int  # first CSV line of this image
    region_count: int = 0
    regions: list[Region] = field(default_factory=list)
    error: CaseError | None = None  # first malformed row (lenient parsing only)


def parse_via(text: str, source: str | Path, strict: bool = True) -> dict[str, ViaImage]:
    """A VIA CSV export -> {#filename value: ViaImage}, in file order. A malformed row raises
    CaseError naming the line (``strict``) or is recorded on its image (``strict=False``, so one
    bad row quarantines one image, not the dataset). A missing header column raises MedcurateError."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise MedcurateError(source, f"line 1: not a CSV header ({exc})") from None
    if header and header[0].lstrip("#").strip() == "filename":
        header[0] = "filename"  # VIA 1.x writes '#filename', VIA 2 'filename'
    missing = [c for c in ["filename", *VIA_COLUMNS] if c not in header]
    if missing:
        raise MedcurateError(source, f"not a VIA export: missing column(s) {missing}; found {header}")
    col = {name: i for i, name in enumerate(header)}
    out: dict[str, ViaImage] = {}
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise MedcurateError(source, f"line {reader.line_num}: broken CSV quoting ({exc})") from None
        if cells is None:
            return out
        if not cells or not "".join(cells).strip():
            continue
        line = reader.line_num
        name = cells[0]
        if not name.strip():
            raise MedcurateError(source, f"line {line}: empty filename")
        image = out.setdefault(name, ViaImage(name, line))
        try:
            _add_row(image, cells, col, line, source)
        except CaseError as exc:
            if strict:
                raise
            image.error = image.error or exc


def _add_row(image: ViaImage, cells: list[str], col: dict[str, int], line: int, source) -> None:
    if len(cells) != len(col):
        raise CaseError(source, f"line {line}: {len(cells)} fields, the header has {len(col)}")
    count = _int(cells[col["region_count"]], "region_count", line, source)
    if line == image.line:
        image.region_count = count
    elif count != image.region_count:
        raise CaseError(source, f"line {line}: region_count {count} differs from {image.region_count} on line {image.line}")
    shape = _json(cells[col["region_shape_attributes"]], "region_shape_attributes", line, source)
    attributes = _json(cells[col["region_attributes"]], "region_attributes", line, source) if "region_attributes" in col else {}
    if not shape:
        if count:
            raise CaseError(source, f"line {line}: empty region_shape_attributes but region_count {count}")
        return  # an image opened in VIA and left without regions
    if count == 0:
        raise CaseError(source, f"line {line}: a region on an image whose region_count is 0")
    region_id = _int(cells[col["region_id"]], "region_id", line, source)
    kind = shape.get("name")
    if kind not in SHAPES:
        raise CaseError(source, f"line {line}: unsupported region shape {kind!r} (known: {', '.join(SHAPES)})")
    params = {k: _number(shape, k, line, source) for k in SHAPES[kind][0] if k not in ("all_points_x", "all_points_y")}
    if kind in ("polygon", "polyline"):
        xs, ys = (_numbers(shape, k, line, source) for k in ("all_points_x", "all_points_y"))
        if len(xs) != len(ys) or not xs:
            raise CaseError(source, f"line {line}: {kind} has {len(xs)} x but {len(ys)} y coordinates")
        params = {"xs": xs, "ys": ys}
    if kind == "ellipse" and "theta" in shape:
        params["theta"] = _number(shape, "theta", line, source)
    if any(params.get(k, 0) < 0 for k in ("rx", "ry", "r", "width", "height")):
        raise CaseError(source, f"line {line}: negative size in {kind} {params}")
    image.regions.append(Region(line, region_id, kind, params, attributes))


def _int(value: str, column: str, line: int, source) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise CaseError(source, f"line {line}: {column} must be an integer, got {value!r}") from None
    if number < 0:
        raise CaseError(source, f"line {line}: {column} must not be negative, got {number}")
    return number


def _json(value: str, column: str, line: int, source) -> dict:
    try:
        data = json.loads(value) if value.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise CaseError(source, f"line {line}: {column} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CaseError(source, f"line {line}: {column} must be a JSON object, got {type(data).__name__}")
    return data


def _number(shape: dict, key: str, line: int, source) -> float:
    if key not in shape:
        raise CaseError(source, f"line {line}: {shape.get('name')} lacks '{key}'")
    value = shape[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CaseError(source, f"line {line}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _numbers(shape: dict, key: str, line: int, source) -> list[float]:
    values = shape.get(key)
    if not isinstance(values, list):
        raise CaseError(source, f"line {line}: {shape.get('name')} lacks the list '{key}'")
    return [_number({key: v, "name": shape.get("name")}, key, line, source) for v in values]


def rasterise(region: Region, shape: tuple[int, int], point_radius: float) -> tuple[np.ndarray, bool]:
    """One region as a boolean mask (shapes.* convention). Returns (mask, degenerate)."""
    p = region.params
    if region.shape in ("polygon", "polyline"):
        return shapes.polygon(p["xs"], p["ys"], shape)
    if region.shape == "ellipse":
        return shapes.ellipse(p["cx"], p["cy"], p["rx"], p["ry"], shape, p.get("theta", 0.0))
    if region.shape == "circle":
        return shapes.circle(p["cx"], p["cy"], p["r"], shape)
    if region.shape == "point":
        return shapes.point(p["cx"], p["cy"], point_radius, shape), False
    return shapes.polygon(*_corners(p), shape)  # rect


def _corners(p: dict) -> tuple[list[float], list[float]]:
    x, y, w, h = p["x"], p["y"], p["width"], p["height"]
    return [x, x + w, x + w, x], [y, y, y + h, y + h]


def bounds_no_region(region: Region) -> bool:
    """A polygon, polyline or rect of fewer than 3 distinct points: not a region at all."""
    if region.shape in ("polygon", "polyline"):
        return not shapes.is_region(region.params["xs"], region.params["ys"])
    return region.shape == "rect" and not shapes.is_region(*_corners(region.params))
