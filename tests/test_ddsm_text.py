"""ddsm.py: the original DDSM's .ics headers and .OVERLAY chain codes (no decoder, so no dataset
entry yet), the per-digitizer optical density calibration, chain codes through the rasteriser,
malformed files naming file and line, fuzzed."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate import ddsm
from medcurate.errors import CaseError

ICS = """ics_version 1.0
filename B-3013-1
DATE_OF_STUDY 22 12 1994
PATIENT_AGE 62
FILM
FILM_TYPE REGULAR
DENSITY 3
DATE_DIGITIZED 7 22 1997
DIGITIZER LUMISYS LASER
SELECTED
LEFT_CC LINES 4616 PIXELS_PER_LINE 2656 BITS_PER_PIXEL 12 RESOLUTION 50 NON_OVERLAY
LEFT_MLO LINES 4696 PIXELS_PER_LINE 2704 BITS_PER_PIXEL 12 RESOLUTION 50 NON_OVERLAY
RIGHT_CC LINES 4592 PIXELS_PER_LINE 2512 BITS_PER_PIXEL 12 RESOLUTION 50 OVERLAY
RIGHT_MLO LINES 4656 PIXELS_PER_LINE 2688 BITS_PER_PIXEL 12 RESOLUTION 50 OVERLAY
"""

OVERLAY = """TOTAL_ABNORMALITIES 1
ABNORMALITY 1
LESION_TYPE MASS SHAPE IRREGULAR MARGINS ILL_DEFINED
ASSESSMENT 4
SUBTLETY 3
PATHOLOGY MALIGNANT
TOTAL_OUTLINES 2
BOUNDARY
10 10 2 2 2 2 4 4 4 4 6 6 6 6 0 0 0 0 #
CORE
11 11 2 4 6 0 #
"""


def test_ics_header_and_views(tmp_path):
    (tmp_path / "B-3013-1.ics").write_text(ICS)
    ics = ddsm.parse_ics(tmp_path / "B-3013-1.ics")
    assert ics.filename == "B-3013-1" and ics.digitizer == "LUMISYS LASER" and ics.fields["DENSITY"] == "3"
    assert ics.views["RIGHT_CC"] == ddsm.View(4592, 2512, 12, 50.0, True)
    assert not ics.views["LEFT_CC"].overlay
    assert ddsm.image_stem(ics, "RIGHT_CC") == "B_3013_1.RIGHT_CC"
    assert ddsm.calibration(ics) == "LUMISYS"


@pytest.mark.parametrize("digitizer, case, scanner", [
    ("DBA 21", "A-1509-1", "DBA"), ("HOWTEK 960", "A-0001-1", "HOWTEK_MGH"),
    ("HOWTEK MULTIRAD850", "D-4100-1", "HOWTEK_ISMD"), ("LUMISYS LASER", "C-0200-1", "LUMISYS"),
])
def test_calibration_by_digitizer_and_site(digitizer, case, scanner):
    ics = ddsm.Ics(case, digitizer, {}, {})
    assert ddsm.calibration(ics) == scanner


def test_unknown_digitizer_is_refused():
    with pytest.raises(CaseError, match="no optical density calibration"):
        ddsm.calibration(ddsm.Ics("B-0001-1", "HOWTEK 960", {}, {}))  # Howtek was used at sites A and D only


def test_optical_density_formulas():
    # each formula at points where the value is known exactly from its coefficients
    assert ddsm.optical_density(np.array([10 ** (4.80662 - 0.5 * 1.07553)]), "DBA")[0] == pytest.approx(0.5, abs=1e-5)
    # OD 0 would need GL 10**4.80662 (about 64065), just past DBA's clamp at 64064
    assert ddsm.optical_density(np.array([65535]), "DBA")[0] == ddsm.optical_density(np.array([64064]), "DBA")[0] > 0
    assert ddsm.optical_density(np.array([10 ** (4.80662 - 1.07553)]), "DBA")[0] == pytest.approx(1, abs=1e-5)
    assert ddsm.optical_density(np.array([0, 1000]), "HOWTEK_MGH").tolist() == pytest.approx([3.789, 3.789 - 0.94568])
    assert ddsm.optical_density(np.array([1000]), "HOWTEK_ISMD")[0] == pytest.approx(3.96604096240593 - 0.99055807612)
    assert ddsm.optical_density(np.array([4096.99 - 1009.01]), "LUMISYS")[0] == pytest.approx(1, abs=1e-5)
    # clamps: grey levels outside the calibrated range take the range's end
    assert ddsm.optical_density(np.array([0, 4]), "DBA")[0] == ddsm.optical_density(np.array([4]), "DBA")[0]
    assert ddsm.optical_density(np.array([5000]), "LUMISYS")[0] == ddsm.optical_density(np.array([4097]), "LUMISYS")[0]
    with pytest.raises(ValueError):
        ddsm.optical_density(np.array([1]), "XRAY")


def test_overlay_chain_codes_and_masks(tmp_path):
    path = tmp_path / "B_3013_1.RIGHT_CC.OVERLAY"
    path.write_text(OVERLAY)
    (ab,) = ddsm.parse_overlay(path)
    assert ab.fields["PATHOLOGY"] == "MALIGNANT" and ab.fields["LESION_TYPE"].startswith("MASS")
    boundary, core = ab.outlines
    assert boundary.kind == "BOUNDARY" and core.kind == "CORE"
    # 2 = right (x+1), 4 = down (y+1), 6 = left, 0 = up: a 4x4 square back to its start
    assert list(zip(boundary.xs[:6], boundary.ys[:6])) == [(10, 10), (11, 10), (12, 10), (13, 10), (14, 10), (14, 11)]
    assert (boundary.xs[-1], boundary.ys[-1]) == (10, 10)
    mask = ddsm.outline_mask(boundary, (30, 30), path)
    assert mask.sum() == 16 and mask[10:14, 10:14].all()  # centres inside the closed outline (shapes.py)
    assert ddsm.outline_mask(core, (30, 30), path).sum() == 1


def test_diagonal_directions(tmp_path):
    xs, ys = ddsm.chain(tmp_path, 1, "5 5 1 3 5 7 #".split())
    assert list(zip(xs, ys)) == [(5, 5), (6, 4), (7, 5), (6, 6), (5, 5)]


@pytest.mark.parametrize("text, reason", [
    ("ABNORMALITY 1\nBOUNDARY\n1 2 2 9 #\n", "chain step '9'"),
    ("ABNORMALITY 1\nBOUNDARY\n1 2 2 2\n", "chain code is"),
    ("ABNORMALITY 1\nBOUNDARY\n", "without its chain code"),
    ("BOUNDARY\n1 1 2 #\n", "before any ABNORMALITY"),
    ("ABNORMALITY 1\nTOTAL_OUTLINES 2\nBOUNDARY\n1 1 2 4 #\n", "TOTAL_OUTLINES 2 but 1"),
    ("ABNORMALITY x\n", "whole number"),
])
def test_malformed_overlays_name_the_file(tmp_path, text, reason):
    path = tmp_path / "x.OVERLAY"
    path.write_text(text)
    with pytest.raises(CaseError) as err:
        ddsm.parse_overlay(path)
    assert err.value.path == str(path) and reason in err.value.reason


@pytest.mark.parametrize("line, reason", [
    ("LEFT_CC LINES 10 PIXELS_PER_LINE 10 BITS_PER_PIXEL 12 RESOLUTION 50", "view line is not"),
    ("LEFT_CC LINES x PIXELS_PER_LINE 10 BITS_PER_PIXEL 12 RESOLUTION 50 OVERLAY", "whole number"),
    ("LEFT_CC LINES 10 PIXELS_PER_LINE 10 BITS_PER_PIXEL 8 RESOLUTION 50 OVERLAY", "8 bits"),
])
def test_malformed_ics_names_file_and_line(tmp_path, line, reason):
    path = tmp_path / "x.ics"
    path.write_text("filename A-0001-1\nDIGITIZER DBA 21\n" + line + "\n")
    with pytest.raises(CaseError) as err:
        ddsm.parse_ics(path)
    assert err.value.path == str(path) and reason in err.value.reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="0123456789 #\nABNORMALITYBOUNDARYCORETOTAL_OUTLINES", max_size=300))
def test_fuzz_overlay_parser_raises_only_case_errors(tmp_path, text):
    path = tmp_path / "f.OVERLAY"
    path.write_text(text)
    try:
        for ab in ddsm.parse_overlay(path):
            for outline in ab.outlines:
                ddsm.outline_mask(outline, (64, 64), path)
    except CaseError as exc:
        assert exc.path == str(path) and exc.reason


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(ICS)), pos=st.integers(0, len(ICS) - 1), char=st.sampled_from(list(" \nx9_")))
def test_fuzz_ics_parser_raises_only_case_errors(tmp_path, cut, pos, char):
    path = tmp_path / "f.ics"
    path.write_text((ICS[:pos] + char + ICS[pos + 1:])[: len(ICS) - cut])
    try:
        ics = ddsm.parse_ics(path)
    except CaseError as exc:
        assert exc.path == str(path) and exc.reason
    else:
        assert all(v.rows > 0 and v.cols > 0 for v in ics.views.values())
