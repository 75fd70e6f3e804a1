"""Rasterise annotation shapes (polygons, ellipses, circles, points) into boolean masks.

One contour convention for every dataset: pixel (row r, column c) is the unit square centred on
(x=c, y=r); a shape includes the pixels whose CENTRE lies inside it (skimage.draw), a centre exactly
on a polygon edge by the half-open top-left rule. So the pixel count is an unbiased estimate of the
shape's geometric area (no half-perimeter rim added or lost) and shapes sharing an edge do not
overlap. Vertices outside the image are clipped (a shape wholly outside gives an empty mask). A
shape too thin to cover any pixel centre -- among them a polygon of fewer than 3 distinct points,
which is not a region at all -- keeps the pixels under its vertices, so a finding is never silently
lost (the caller is told, to record and flag it: see is_region).

Coordinates absurdly far from the image (non-finite, or more than ABSURD image sizes and more
than NEAR pixels beyond it: a corrupt or hostile annotation, never a real one) raise
CoordinateError before anything is allocated; the dataset module re-raises it naming its file
and the ROI, so only that case is quarantined.
"""

from __future__ import annotations

import numpy as np
from skimage import draw

from ..errors import CaseError

EDGE = 1e-6
ROW_BLOCK = 256  # rows of crossings computed at once: memory O(ROW_BLOCK x vertices)
# How many image sizes beyond the image a coordinate or radius may reach. Real contours stray a
# little outside (an INbreast oval reaches 80 px past a 3328-px border) and are clipped; anything
# this far is a corrupt value, and drawing it would only cost time and memory.
ABSURD = 4
# ... but never fewer pixels than this: a small copy (a thumbnail, the sample mirror's shrunken
# images) may carry the coordinates of a full-size original, which are real, only off its image.
NEAR = 8192


class CoordinateError(CaseError):
    """Absurd coordinates. Raised without a file: the caller re-raises naming its annotation."""

    def __init__(self, reason: str):
        super().__init__(None, reason)


def check_points(xs, ys, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) as float arrays, or CoordinateError if any is absurd for an image of ``shape``."""
    h, w = shape[:2]
    xs, ys = _floats(xs, "x"), _floats(ys, "y")
    if xs.shape != ys.shape:
        raise CoordinateError(f"{xs.size} x but {ys.size} y coordinates")
    _within(xs, -_far(w), w + _far(w), "x", f"{w}-px-wide image")
    _within(ys, -_far(h), h + _far(h), "y", f"{h}-px-high image")
    return xs, ys


def check_sizes(values, shape: tuple[int, ...], what: str = "radius") -> np.ndarray:
    """Radii (or widths) as floats, or CoordinateError if absurd for an image of ``shape``."""
    values = _floats(values, what)
    far = _far(max(shape[:2]))
    _within(values, -far, far, what, f"{shape[0]}x{shape[1]} image", "large")
    return values


def _far(size: int) -> int:
    return max(ABSURD * size, NEAR)


def _floats(values, what: str) -> np.ndarray:
    try:
        out = np.atleast_1d(np.asarray(values, float))
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. an integer of 400 digits
        raise CoordinateError(f"{what} coordinates are not numbers a rasteriser can use ({exc})") from None
    if out.ndim != 1:
        raise CoordinateError(f"{what} coordinates must be a flat list, got shape {out.shape}")
    return out


def _within(values: np.ndarray, low: float, high: float, what: str, image: str, absurd: str = "far") -> None:
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        first = float(values[bad][0])
        if not np.isfinite(first):
            raise CoordinateError(f"{what} = {first} is not a finite number")
        raise CoordinateError(f"{what} = {first:g} is absurdly {absurd} for a {image} (allowed {low:g}..{high:g}: "
                              f"{ABSURD} image sizes, at least {NEAR} px, around it); refused rather than drawn")


def is_region(xs, ys) -> bool:
    """Whether a contour can bound a region: at least 3 distinct vertices. Modules flag one that
    cannot (degenerate_roi), so the curated subset can leave its case out."""
    return len(set(zip(np.asarray(xs, float).tolist(), np.asarray(ys, float).tolist()))) >= 3


def polygon(xs, ys, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Closed polygon through (xs, ys) in pixel coordinates. Returns (mask, degenerate)."""
    xs, ys = check_points(xs, ys, shape)
    if not is_region(xs, ys):
        return _vertices(xs, ys, shape), True
    mask = np.zeros(shape[:2], bool)
    # Half-open (top-left) rule: a centre exactly on a left/top edge is in, on a right/bottom edge
    # out, so integer-vertex shapes tile without double counting (a 10x10 square is 100 pixels).
    _fill(mask, ys - EDGE, xs - EDGE)
    if mask.any():
        return mask, False
    return _vertices(xs, ys, shape), True


def polygon_window(xs, ys, shape: tuple[int, int], window: tuple[int, int, int, int]) -> np.ndarray:
    """The part of a polygon's mask (the convention above, on an image of ``shape``) inside
    ``window`` = (row0, col0, rows, cols), which may reach past the image (outside stays empty).
    Memory is the window's, never the image's: a whole-slide level is tiled window by window. A
    polygon of fewer than 3 distinct points draws nothing here (callers check is_region first)."""
    xs, ys = check_points(xs, ys, shape)
    r0, c0, h, w = window
    mask = np.zeros((h, w), bool)
    if is_region(xs, ys):
        _fill(mask, ys - EDGE - r0, xs - EDGE - c0)
        # pixels past the image's own edges are not part of it
        mask[max(0, shape[0] - r0):, :] = False
        mask[:, max(0, shape[1] - c0):] = False
        mask[:max(0, -r0), :] = False
        mask[:, :max(0, -c0)] = False
    return mask


def _fill(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """Set the pixels whose centre is inside the polygon by the even-odd rule, with W. R. Franklin's
    crossing test (pnpoly: an edge counts for a centre when it spans the centre's row half-open,
    y_low <= y < y_high, and crosses that row strictly to the right of the centre). Evaluated a row
    at a time: a row's crossings do not depend on the column, so they are computed once and the
    columns found by a sorted search; O(rows x vertices) where skimage.draw.polygon's per-pixel
    test is O(pixels x vertices) (a traced mass of 4,000 outline points in a mammogram took it 9 s,
    this 0.05 s). The two agree except for centres within rounding of an edge."""
    h, w = mask.shape
    if not np.isfinite(rows).any() or not np.isfinite(cols).any():
        return
    r0, r1 = max(0, int(np.floor(np.nanmin(rows)))), min(h - 1, int(np.ceil(np.nanmax(rows))))
    c0, c1 = max(0, int(np.floor(np.nanmin(cols)))), min(w - 1, int(np.ceil(np.nanmax(cols))))
    if r1 < r0 or c1 < c0:
        return
    yi, xi, yj, xj = rows, cols, np.roll(rows, 1), np.roll(cols, 1)  # edge j -> i, j the previous vertex
    columns = np.arange(c0, c1 + 1, dtype=float)
    for start in range(r0, r1 + 1, ROW_BLOCK):
        ys = np.arange(start, min(start + ROW_BLOCK, r1 + 1), dtype=float)
        row, v = np.nonzero(((yi <= ys[:, None]) & (ys[:, None] < yj)) | ((yj <= ys[:, None]) & (ys[:, None] < yi)))
        y = ys[row]
        x = (xj[v] - xi[v]) * (y - yi[v]) / (yj[v] - yi[v]) + xi[v]
        bounds = np.searchsorted(row, np.arange(len(ys) + 1))
        for k in range(len(ys)):
            crossings = np.sort(x[bounds[k]:bounds[k + 1]])
            if crossings.size:
                # inside where an odd number of crossings lies to the right of the centre
                right = crossings.size - np.searchsorted(crossings, columns, side="right")
                mask[start + k, c0:c1 + 1] = (right & 1).astype(bool)


def ellipse(cx: float, cy: float, rx: float, ry: float, shape: tuple[int, int], theta: float = 0.0) -> tuple[np.ndarray, bool]:
    """Axis radii rx (along x) and ry (along y), rotated by ``theta`` radians with x turning
    towards +y, i.e. clockwise as displayed (the HTML-canvas convention VIA exports)."""
    (cx,), (cy,) = check_points([cx], [cy], shape)
    rx, ry = (float(v) for v in check_sizes([rx, ry], shape))
    (theta,) = _floats(theta, "theta")
    if not np.isfinite(theta):
        raise CoordinateError(f"rotation theta = {float(theta)} is not a finite number")
    mask = np.zeros(shape[:2], bool)
    if rx > 0 and ry > 0:
        rr, cc = draw.ellipse(cy, cx, ry, rx, shape[:2], rotation=-theta)
        mask[rr, cc] = True
    if mask.any():
        return mask, False
    return _vertices([cx], [cy], shape), True


def circle(cx: float, cy: float, r: float, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    return ellipse(cx, cy, r, r, shape)


def point(cx: float, cy: float, radius: float, shape: tuple[int, int]) -> np.ndarray:
    """A point finding as a disk of ``radius`` pixels (radius 0: the one pixel under it)."""
    (cx,), (cy,) = check_points([cx], [cy], shape)
    (radius,) = check_sizes([radius], shape)
    if radius <= 0:
        return _vertices([cx], [cy], shape)
    return ellipse(cx, cy, radius, radius, shape)[0] | _vertices([cx], [cy], shape)


def _vertices(xs, ys, shape) -> np.ndarray:
    """The pixels under the given (checked) points; points outside the image are dropped."""
    mask = np.zeros(shape[:2], bool)
    c, r = np.round(np.asarray(xs, float)), np.round(np.asarray(ys, float))
    inside = (c >= 0) & (c < shape[1]) & (r >= 0) & (r < shape[0])  # before the cast: no overflow
    mask[r[inside].astype(int), c[inside].astype(int)] = True
    return mask
