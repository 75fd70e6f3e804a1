"""Rasterise annotation shapes (polygons, ellipses, circles, points) into boolean masks.

One contour convention for every dataset: pixel (row r, column c) is the unit square centred on
(x=c, y=r); a shape includes the pixels whose CENTRE lies inside it (skimage.draw), a centre exactly
on a polygon edge by the half-open top-left rule. So the pixel count is an unbiased estimate of the
shape's geometric area (no half-perimeter rim added or lost) and shapes sharing an edge do not
overlap. Vertices outside the image are clipped (a shape wholly outside gives an empty mask). A
shape too thin to cover any pixel centre keeps the pixels under its vertices, so a finding is never
silently lost (the caller is told, to record it).
"""

from __future__ import annotations

import numpy as np
from skimage import draw

EDGE = 1e-6
FAR = 1e7


def polygon(xs, ys, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Closed polygon through (xs, ys) in pixel coordinates. Returns (mask, degenerate)."""
    # Absurd coordinates (hostile or corrupt files) are clipped far outside any image so the
    # rasteriser's integer arithmetic cannot overflow; real contours are never affected.
    xs, ys = np.clip(np.asarray(xs, float), -FAR, FAR), np.clip(np.asarray(ys, float), -FAR, FAR)
    mask = np.zeros(shape[:2], bool)
    # Half-open (top-left) rule: a centre exactly on a left/top edge is in, on a right/bottom edge
    # out, so integer-vertex shapes tile without double counting (a 10x10 square is 100 pixels).
    rr, cc = draw.polygon(ys - EDGE, xs - EDGE, shape[:2])
    mask[rr, cc] = True
    if mask.any() or not len(xs):
        return mask, False
    return _vertices(xs, ys, shape), True


def ellipse(cx: float, cy: float, rx: float, ry: float, shape: tuple[int, int], theta: float = 0.0) -> tuple[np.ndarray, bool]:
    """Axis radii rx (along x) and ry (along y), rotated by ``theta`` radians with x turning
    towards +y, i.e. clockwise as displayed (the HTML-canvas convention VIA exports)."""
    mask = np.zeros(shape[:2], bool)
    cx, cy, rx, ry = (float(np.clip(v, -FAR, FAR)) for v in (cx, cy, rx, ry))
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
    if radius <= 0:
        return _vertices([cx], [cy], shape)
    return ellipse(cx, cy, radius, radius, shape)[0] | _vertices([cx], [cy], shape)


def _vertices(xs, ys, shape) -> np.ndarray:
    """The pixels under the given points; points outside the image are dropped."""
    mask = np.zeros(shape[:2], bool)
    c, r = np.round(np.asarray(xs, float)), np.round(np.asarray(ys, float))
    inside = (c >= 0) & (c < shape[1]) & (r >= 0) & (r < shape[0])  # before the cast: no overflow
    mask[r[inside].astype(int), c[inside].astype(int)] = True
    return mask
