"""The one contour convention (shapes), label composition and the curated-subset rules."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medcurate import curation, masks
from medcurate.formats import shapes
from medcurate.errors import CaseError
from skimage import draw

LABELS = {"mask": {"background": 0, "mass": 1, "calcification": 2}}
RULES = {"empty_mask": "keep"}


def test_polygon_includes_exactly_the_pixels_whose_centres_are_inside():
    # A square between pixel centres (1.5..5.5) holds the 4x4 centres 2..5.
    mask, degenerate = shapes.polygon([1.5, 5.5, 5.5, 1.5], [1.5, 1.5, 5.5, 5.5], (8, 8))
    assert not degenerate
    assert mask.sum() == 16 and mask[2:6, 2:6].all()


def test_polygon_area_is_unbiased_for_a_large_contour():
    a = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    xs, ys = 500 + 300 * np.cos(a), 400 + 200 * np.sin(a)
    mask, _ = shapes.polygon(xs, ys, (800, 1000))
    shoelace = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
    assert abs(mask.sum() - shoelace) / shoelace < 0.001


def test_polygon_outside_the_image_is_clipped_and_wholly_outside_is_empty():
    mask, _ = shapes.polygon([-10, 5, 5, -10], [-10, -10, 5, 5], (20, 20))
    assert mask.sum() == 25 and mask[:5, :5].all()
    outside, degenerate = shapes.polygon([30, 40, 40], [30, 30, 40], (20, 20))
    assert not outside.any() and degenerate


def test_thin_polygon_keeps_its_vertices_and_says_so():
    mask, degenerate = shapes.polygon([3.2, 3.3, 7.1], [4.0, 4.1, 4.2], (10, 10))
    assert degenerate and mask[4, 3] and mask[4, 7] and mask.sum() == 2


def test_ellipse_rotation_is_clockwise_as_displayed():
    # theta = +45 degrees turns the long x axis towards +y (down): lower-right and upper-left lit.
    mask, _ = shapes.ellipse(20, 20, 15, 2, (41, 41), theta=np.pi / 4)
    assert mask[30, 30] and mask[10, 10] and not mask[10, 30] and not mask[30, 10]
    flat, _ = shapes.ellipse(20, 20, 15, 2, (41, 41))
    assert flat[20, 6] and flat[20, 34] and not flat[10, 20]


def test_circle_and_point():
    disk, _ = shapes.circle(10, 10, 3, (21, 21))
    assert disk.sum() == 25  # centres at distance < 3 (the four at exactly 3 are on the boundary)
    assert shapes.point(10, 10, 0, (21, 21)).sum() == 1
    assert shapes.point(10, 10, 3, (21, 21)).sum() == 25
    assert not shapes.point(25, 5, 3, (21, 21))[:, :18].any()  # partly outside: clipped
    assert not shapes.point(40, 40, 0, (21, 21)).any()  # wholly outside: dropped


def test_compose_overlap_priority_follows_the_catalogue():
    mass = np.zeros((5, 5), bool)
    mass[1:4, 1:4] = True
    calc = np.zeros((5, 5), bool)
    calc[2, 2] = True
    out = masks.compose((5, 5), [("calcification", calc), ("mass", mass)], LABELS)
    assert out[2, 2] == 1 and out[1, 1] == 1  # mask order: mass listed first wins
    out = masks.compose((5, 5), [("mass", mass), ("calcification", calc)], {**LABELS, "overlap": ["calcification", "mass"]})
    assert out[2, 2] == 2 and out[1, 1] == 1 and out.dtype == np.uint8
    with pytest.raises(ValueError, match="tumour"):
        masks.compose((5, 5), [("tumour", mass)], LABELS)


def _blob(shape=(200, 200)):
    a = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    r = 40 * (1 + 0.25 * np.sin(5 * a))
    return shapes.polygon(100 + r * np.cos(a), 100 + r * np.sin(a), shape)[0]


def test_crude_shapes_flag_boxes_and_ovals_but_not_traced_outlines():
    options = {"box_fill": 0.97, "ellipse_iou": 0.97, "min_area": 64}
    box = np.zeros((200, 200), bool)
    box[50:90, 30:120] = True
    oval = shapes.ellipse(100, 80, 50, 20, (200, 200), theta=0.4)[0]
    assert curation.crude_components(box, options) == ["box"]
    assert curation.crude_components(oval, options) == ["oval"]
    assert curation.crude_components(_blob(), options) == []
    tiny = np.zeros((200, 200), bool)
    tiny[5:10, 5:10] = True  # 25 px box: too small to judge
    assert curation.crude_components(tiny, options) == []


def _reasons(mask, meta=None, **rules):
    mask = mask.astype(np.uint8)
    return curation.exclusions(mask, meta or {}, curation.measures(mask), {**RULES, **rules})


def test_exclusion_rules_each_give_their_reason():
    blob = _blob()
    assert _reasons(blob) == []
    assert _reasons(np.zeros((10, 10)), empty_mask="exclude") == ["empty_mask"]
    assert _reasons(blob, {"roi_types": "ellipse freehand point"}, allowed_roi_types=["freehand", "point"]) == ["roi_type:ellipse"]
    assert _reasons(blob, {"roi_types": "freehand"}, allowed_roi_types=["freehand"]) == []
    assert _reasons(blob, {"mask_resized": 1}, exclude_flags=["mask_resized"]) == ["mask_resized"]
    assert _reasons(blob, {"mask_resized": 0}, exclude_flags=["mask_resized"]) == []
    assert _reasons(blob, area_fraction={"min": 0.5, "max": 1}) == ["area_fraction"]
    two = blob.copy()
    two[:5, :5] = True
    assert _reasons(two, max_components=1) == ["components"]
    box = np.zeros((200, 200), bool)
    box[50:90, 30:120] = True
    assert _reasons(box, crude_shapes={"box_fill": 0.97, "ellipse_iou": 0.97, "min_area": 64}) == ["crude_shape:box"]


def test_measures_and_exclusion_counts():
    m = np.zeros((10, 10), np.uint8)
    m[0, 0] = 1
    m[5:7, 5:7] = 2
    assert curation.measures(m) == {"mask_area_fraction": 0.05, "mask_components": 2}
    df = pd.DataFrame({"exclusion": ["", "roi_type:ellipse;crude_shape:oval", "roi_type:ellipse;roi_type:point", "empty_mask"]})
    assert curation.exclusion_counts(df) == {"crude_shape": 1, "empty_mask": 1, "roi_type": 2}


def test_integer_vertex_polygons_follow_the_half_open_rule():
    """VIA vertices are integers: a 10x10 square is 100 pixels, and two squares sharing an edge
    do not both claim it."""
    left, _ = shapes.polygon([0, 10, 10, 0], [0, 0, 10, 10], (20, 30))
    right, _ = shapes.polygon([10, 20, 20, 10], [0, 0, 10, 10], (20, 30))
    assert left.sum() == 100 and right.sum() == 100 and not (left & right).any()
    assert left[0, 0] and not left[10, 5] and not left[5, 10]


@pytest.mark.parametrize("draw_it", [
    lambda: shapes.point(1e300, -1e300, 0, (10, 10)),
    lambda: shapes.polygon([1e300, 1e300, 1e300], [0, 1, 2], (10, 10)),
    lambda: shapes.polygon([0, 5, 10**400], [0, 1, 2], (10, 10)),  # an integer no float holds
    lambda: shapes.polygon([0, 5, 9], [0, float("nan"), 2], (10, 10)),
    lambda: shapes.ellipse(1e300, 5, 1e300, 3, (10, 10)),
    lambda: shapes.ellipse(5, 5, 3, 3, (10, 10), theta=float("inf")),
    lambda: shapes.circle(5, 5, 1e12, (10, 10)),
    lambda: shapes.polygon([0, 5, 9], [0, 1e12, 2], (10, 10)),
    lambda: shapes.point(5, 5, float("inf"), (10, 10)),
], ids=["point", "polygon", "huge_int", "nan", "ellipse", "theta", "radius", "1e12", "point_radius"])
def test_absurd_coordinates_are_refused_not_clipped(draw_it):
    """Corrupt or hostile values: a CoordinateError (a CaseError: the case is quarantined), not a
    shape clipped into the image or an overflow."""
    with pytest.raises(shapes.CoordinateError) as err:
        draw_it()
    assert isinstance(err.value, CaseError) and ("absurdly" in err.value.reason or "finite" in err.value.reason
                                                 or "not numbers" in err.value.reason)


def test_coordinates_a_few_image_sizes_out_are_still_clipped():
    far = 4 * 3000  # ABSURD image sizes beyond a 3000-px-wide image (more than NEAR)
    mask, degenerate = shapes.polygon([-far, 3000 + far, 3000 + far, -far], [-100, -100, 120, 120], (20, 3000))
    assert mask.all() and not degenerate
    with pytest.raises(shapes.CoordinateError, match=r"x = 15000\.5 is absurdly far for a 3000-px-wide image"):
        shapes.polygon([-far, 3000 + far + 0.5, 3000 + far, -far], [0, 0, 10, 10], (20, 3000))
    small, _ = shapes.polygon([-8192, 8202, 8202, -8192], [0, 0, 5, 5], (10, 10))  # a small copy: NEAR px
    assert small[:5].all() and not small[5:].any()
    with pytest.raises(shapes.CoordinateError, match=r"y = -8193 is absurdly far for a 10-px-high image"):
        shapes.polygon([0, 5, 5], [0, -8193, 5], (10, 10))


def _pnpoly(rows, cols, shape):
    """The reference: Franklin's crossing test evaluated for every pixel centre, in the same
    arithmetic (the crossing's x does not depend on the centre's column)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    inside = np.zeros(shape, bool)
    for i in range(len(rows)):
        j = i - 1
        yi, xi, yj, xj = rows[i], cols[i], rows[j], cols[j]
        spans = ((yi <= yy) & (yy < yj)) | ((yj <= yy) & (yy < yi))
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = spans & (xx < (xj - xi) * (yy - yi) / (yj - yi) + xi)
        inside ^= cross
    return inside


def _near_an_edge(rows, cols, shape, tol=1e-9):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    near = np.zeros(shape, bool)
    for i in range(len(rows)):
        (y0, x0), (y1, x1) = (rows[i - 1], cols[i - 1]), (rows[i], cols[i])
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-300), 0, 1)
        near |= np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx)) < tol
    return near


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-8, 40, allow_nan=False), st.floats(-8, 30, allow_nan=False)), min_size=1, max_size=12),
       st.booleans())
def test_row_fill_is_the_crossing_test_and_agrees_with_skimage(points, integral):
    """Any polygon (self-intersecting, repeated or off-image vertices, centres exactly on edges):
    the row fill sets exactly the pixels of the per-pixel crossing test, and skimage.draw.polygon's
    pixels except where a centre lies on an edge (skimage counts those in)."""
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    if integral:  # vertices on pixel centres put centres exactly on edges and vertices
        xs, ys = np.round(xs), np.round(ys)
    rows, cols, shape = ys - shapes.EDGE, xs - shapes.EDGE, (24, 33)
    got = np.zeros(shape, bool)
    shapes._fill(got, rows, cols)
    assert np.array_equal(got, _pnpoly(rows, cols, shape))
    expected = np.zeros(shape, bool)
    rr, cc = draw.polygon(rows, cols, shape)
    expected[rr, cc] = True
    assert not ((got != expected) & ~_near_an_edge(rows, cols, shape)).any()


def test_row_fill_of_a_dense_outline_is_fast_and_exact():
    """A mass outline of 4,000 points over a 1,200-pixel-wide box (INbreast spline contours):
    the row fill agrees with the disk's area and, on 400 of the points, with skimage."""
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    xs, ys = 1500 + 600 * np.cos(t), 2000 + 600 * np.sin(t)
    mask, degenerate = shapes.polygon(xs, ys, (4084, 3328))
    assert not degenerate and abs(int(mask.sum()) - np.pi * 600**2) / (np.pi * 600**2) < 1e-4
    expected = np.zeros((4084, 3328), bool)
    rr, cc = draw.polygon(ys[::10] - shapes.EDGE, xs[::10] - shapes.EDGE, expected.shape)  # skimage is slow: 400 points
    expected[rr, cc] = True
    coarse, _ = shapes.polygon(xs[::10], ys[::10], (4084, 3328))
    assert np.array_equal(coarse, expected)
