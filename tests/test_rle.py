"""formats/rle.py: the Kaggle run-length convention (1-indexed, column-major), canonical round trips and
errors that name the source and the reason."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from medcurate.formats import rle
from medcurate.errors import CaseError, MedcurateError

# 3 rows x 2 columns; pixel numbers run down the columns first:
#   1 4
#   2 5
#   3 6
HAND = np.array([[0, 0],
                 [1, 0],
                 [1, 1]], np.uint8)


def test_hand_worked_example_is_column_major():
    assert rle.encode(HAND) == "2 2 6 1"  # pixels 2, 3 (column 0, rows 1-2) and 6 (column 1, row 2)
    decoded = rle.decode("2 2 6 1", (3, 2), "x.csv")
    assert decoded.dtype == np.uint8 and decoded.shape == (3, 2) and (decoded == HAND).all()
    # Row-major numbering would have read the same mask as "3 1 5 2".
    assert rle.encode(HAND) != "3 1 5 2"
    assert (rle.decode("3 1 5 2", (3, 2), "x.csv") != HAND).any()


def test_a_run_continues_at_the_top_of_the_next_column():
    mask = rle.decode("3 2", (3, 2), "x.csv")
    assert mask.tolist() == [[0, 1], [0, 0], [1, 0]]
    assert rle.decode("1 6", (3, 2), "x.csv").all()


def test_empty_string_is_the_empty_mask():
    assert rle.encode(np.zeros((4, 5), np.uint8)) == ""
    assert not rle.decode("", (4, 5), "x.csv").any()
    assert not rle.decode("   ", (4, 5), "x.csv").any()


def test_encode_writes_maximal_runs_and_takes_any_nonzero_as_foreground():
    assert rle.decode("1 2 3 1", (3, 2), "x.csv").tolist() == rle.decode("1 3", (3, 2), "x.csv").tolist()
    assert rle.encode(rle.decode("1 2 3 1", (3, 2), "x.csv")) == "1 3"
    assert rle.encode(np.array([[0, 255], [7, 0]])) == "2 2"
    assert rle.encode(np.ones((2, 2), bool)) == "1 4"


@pytest.mark.parametrize("text, reason", [
    ("1", r"odd number of values \(1\)"),
    ("1 2 3", r"odd number of values \(3\)"),
    ("1 x", "non-integer value 'x'"),
    ("1.5 2", "non-integer value '1.5'"),
    ("1_0 2", "non-integer value '1_0'"),  # int() would read 10
    ("\u0663 1", "non-integer value"),  # an Arabic-Indic digit: int() would read 3
    ("0 1", r"run 1: start 0 < 1 \(pixels are numbered from 1\)"),
    ("-2 1", "run 1: start -2 < 1"),
    ("2 0", "run 1: length 0 < 1"),
    ("5 3", r"run 1: pixels 5..7 lie beyond the 2x3 image \(6 pixels\)"),
    ("1 3 2 1", r"run 2 \(start 2\) overlaps run 1 \(pixels 1..3\)"),
    ("4 1 1 1", r"run 2 \(start 1\) comes before run 1"),
    ("1 99999999999999999999", "too large"),
])
def test_malformed_text_names_the_source_and_the_reason(text, reason):
    with pytest.raises(CaseError, match=reason) as err:
        rle.decode(text, (3, 2), "train_masks.csv")
    assert err.value.path == "train_masks.csv"
    assert str(err.value).startswith("train_masks.csv: ")


def test_the_error_type_is_the_callers_choice():
    with pytest.raises(MedcurateError) as err:
        rle.decode("0 1", (3, 2), "a.csv", error=MedcurateError)
    assert type(err.value) is MedcurateError


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12), elements=st.integers(0, 1)))
def test_decode_of_encode_is_the_mask(mask):
    assert (rle.decode(rle.encode(mask), mask.shape, "m") == mask).all()


@st.composite
def canonical(draw):
    """A canonical string (sorted, gaps of at least one pixel, positive lengths) and its shape."""
    rows, cols = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    pos, pairs = 1, []
    for gap, length in draw(st.lists(st.tuples(st.integers(0, 6), st.integers(1, 8)), max_size=10)):
        start = pos + (gap if not pairs else gap + 1)
        if start + length - 1 > rows * cols:
            break
        pairs.append(f"{start} {length}")
        pos = start + length
    return " ".join(pairs), (rows, cols)


@settings(max_examples=100, deadline=None)
@given(canonical())
def test_encode_of_decode_is_the_canonical_string(case):
    text, shape = case
    assert rle.encode(rle.decode(text, shape, "s")) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="0123456789 -+x.\n\t_\u0663", max_size=40), st.integers(1, 6), st.integers(1, 6))
def test_garbage_raises_only_case_errors(text, rows, cols):
    try:
        mask = rle.decode(text, (rows, cols), "fuzz.csv")
    except CaseError as exc:
        assert exc.path == "fuzz.csv" and exc.reason
        return
    assert mask.shape == (rows, cols) and set(np.unique(mask)) <= {0, 1}
