"""Indiana University / Open-i: XML reports paired to PNGs, MeSH-derived labels, the archives
served by URL, and the converter on the sample (DATASETS.md section 16; no real file of the
collection is here)."""

import json

import pandas as pd
import pytest
from medcurate.testing import build, by_id, copy_tree, mirror_of, plan_of, sample_plan, unpacked
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medcurate.datasets import openi
from medcurate.errors import CaseError, MedcurateError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("openi")
    return unpacked(mirror_of(base / "mirror", "openi"), "openi", base / "root")


@pytest.fixture
def editable(root, tmp_path):
    return copy_tree(root, tmp_path / "openi")


def test_sample_archives_hold_flat_pngs_and_ecgen_radiology_reports(root):
    assert (root / "NLMCXR_reports" / "ecgen-radiology" / "1.xml").is_file()
    assert (root / "NLMCXR_png" / "CXR1_1_IM-0001-3001.png").is_file()
    xml = (root / "NLMCXR_reports" / "ecgen-radiology" / "2.xml").read_text()
    assert '<uId id="CXR2"/>' in xml and "<major>Cardiomegaly/mild</major>" in xml and '<parentImage id="CXR2_IM-0652-1001">' in xml
    assert "http://creativecommons.org/licenses/by-nc-nd/4.0/" in xml


def test_cases_pairing_labels_and_quarantine(root):
    cases = by_id(openi.cases(root, sample_plan("openi")))
    assert len(cases) == 13  # 12 images named by reports + 1 PNG named by none; report 6 names no image
    c = cases["CXR2_IM-0652-1001"]
    assert (c.patient_id, c.split, c.problem) == ("CXR2", None, None)
    assert c.meta == {"report": "CXR2", "mesh_major": "Cardiomegaly/mild;Pulmonary Atelectasis/base/left",
                      "mesh_automatic": "atelectases", "view": "", "unlabelled": "0"}
    assert {k for k, v in c.labels.items() if v == "1"} == {"h_cardiomegaly", "h_atelectasis"}
    assert cases["CXR2_IM-0652-2001"].labels == c.labels  # both images of the report
    assert c.labels["h_consolidation"] == "0" and c.labels["h_enlarged_cardiomediastinum"] == "0" and c.labels["h_lung_lesion"] == ""
    assert cases["CXR1_1_IM-0001-4001"].labels["h_no_finding"] == "1"
    three = [k for k, c in cases.items() if c.patient_id == "CXR3"]
    assert len(three) == 3 and cases["CXR3_IM-1384-1001"].labels["h_support_devices"] == "1"
    assert cases["CXR3_IM-1384-1001"].labels["h_lung_opacity"] == "1"
    five = cases["CXR5_IM-2117-1003002"].labels
    assert (five["h_nodule"], five["h_pleural_thickening"], five["h_mass"]) == ("1", "1", "0")  # granuloma maps to nothing
    assert cases["CXR4_IM-2050-1001"].meta["unlabelled"] == "1" and set(cases["CXR4_IM-2050-1001"].labels.values()) == {""}
    assert cases["CXR7_IM-2263-1001"].labels["h_fracture"] == "1"
    orphan = cases["CXR9999_IM-9999-1001"].problem
    assert orphan.reason == "no report (ecgen-radiology/*.xml) names this image"


def test_an_image_named_by_two_reports_or_absent(editable):
    reports = editable / "NLMCXR_reports" / "ecgen-radiology"
    xml = (reports / "4.xml").read_text().replace("CXR4_IM-2050-1001", "CXR2_IM-0652-1001")
    (reports / "4.xml").write_text(xml)
    (editable / "NLMCXR_png" / "CXR7_IM-2263-2001.png").unlink()
    cases = by_id(openi.cases(editable, sample_plan("openi")))
    assert cases["CXR2_IM-0652-1001"].problem.reason == ("image CXR2_IM-0652-1001 is also named by 4.xml; "
                                                         "cannot tell which report it belongs to")
    assert cases["CXR4_IM-2050-1001"].problem.reason == "no report (ecgen-radiology/*.xml) names this image"
    assert not cases["CXR7_IM-2263-2001"].image.exists()  # converted as 'file is missing'


@pytest.mark.parametrize("xml, reason", [
    ("<eCitation><uId id='CXR8'/>", "report XML does not parse (no element found: line 1, column 27)"),
    ("<report/>", "root element is <report>, not <eCitation>"),
    ("<eCitation><parentImage id='x'/></eCitation>", "report has no <uId id=...>"),
    ("<eCitation><uId id='CXR8'/><parentImage/></eCitation>", "a <parentImage> has no id"),
    ("<eCitation><uId id='CXR8'/><MeSH><major>a;b</major></MeSH></eCitation>",
     "a MeSH term contains ';', the separator of mesh_major/mesh_automatic"),
    ('<!DOCTYPE x [<!ENTITY a "aaaa">]><eCitation><uId id="&a;"/></eCitation>', "report XML does not parse"),
])
def test_bad_reports_are_one_quarantined_row(editable, xml, reason):
    (editable / "NLMCXR_reports" / "ecgen-radiology" / "8.xml").write_text(xml)
    cases = by_id(openi.cases(editable, sample_plan("openi")))
    assert cases["report_8"].problem.reason.startswith(reason) and cases["report_8"].problem.path.endswith("8.xml")
    assert len(cases) == 14


def test_converts_with_report_grouped_splits(root, tmp_path):
    counts = build(root, plan_of("openi"), tmp_path / "work", tmp_path / "out")
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False).set_index("case_id")
    assert counts["cases"] == 12 and counts["quarantined"] == 1 and counts["exclusions"] == {"unlabelled": 1}
    assert m.groupby("patient_id").split.nunique().max() == 1 and set(m.split) == {"train", "val", "test"}
    assert set(m.view) == {""} and m.loc["CXR2_IM-0652-1001", "mesh_major"] == "Cardiomegaly/mild;Pulmonary Atelectasis/base/left"
    facts = json.loads((tmp_path / "out" / "dataset.json").read_text())["release_facts"]
    assert facts == {"reports": 7, "reports_without_images": 1,
                     "unmapped_mesh_major": {"calcified granuloma/lung/upper lobe/right": 1, "no indexing": 1}}


def test_frontal_only_is_refused_as_empty(root, tmp_path):
    """Open-i records no view: selecting frontal views leaves nothing, and says so."""
    plan = plan_of("openi")
    plan["select"]["views"] = "frontal"
    with pytest.raises(MedcurateError, match="dataset is empty after curation"):
        build(root, plan, tmp_path / "work", tmp_path / "out")


# ------------------------------------------------------------------ fuzzing (bounded)

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
ELEMENT = st.builds(lambda tag, attr, text: f"<{tag} id={attr!r}>{text}</{tag}>" if attr is not None else f"<{tag}>{text}</{tag}>",
                    st.sampled_from(["uId", "parentImage", "MeSH", "major", "automatic", "x"]),
                    st.one_of(st.none(), st.sampled_from(["CXR1", "", "CXR1_1_IM-0001-3001", "a/b", "../x"])),
                    st.one_of(TEXT, st.just("<major>normal</major>")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.builds(lambda parts: "<eCitation>" + "".join(parts) + "</eCitation>", st.lists(ELEMENT, max_size=6)),
                 TEXT, st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
def test_fuzz_reports_raise_only_case_errors(root, tmp_path_factory, xml):
    dest = tmp_path_factory.mktemp("fuzz-openi")
    (dest / "1.xml").write_text(xml, encoding="utf-8", errors="surrogateescape")
    (dest / "png").symlink_to(root / "NLMCXR_png")
    try:
        for case in openi.cases(dest, sample_plan("openi")):
            assert case.problem is None or isinstance(case.problem, CaseError)
            assert "/" not in case.case_id and case.case_id not in ("", ".", "..")
    except MedcurateError as exc:
        pytest.fail(f"a bad report must quarantine, not stop the dataset: {exc}")


# ------------------------------------------------------------------ the real reports (when present)


def test_real_reports_pair_the_published_image_count(realdata, tmp_path):
    """torchxrayvision ships the real NLMCXR_reports.tgz (data/NLMCXR_reports.tgz at f4087a0); put
    it anywhere below ../shared/realdata to run this. Without the PNGs every image is 'missing',
    but the pairing and labels are the reports' own."""
    from medcurate.unpack import unpack

    found = sorted(realdata.rglob("NLMCXR_reports.tgz"))
    if not found:
        pytest.skip("NLMCXR_reports.tgz is not in ../shared/realdata")
    unpack([found[0]], tmp_path / "root")
    cases = openi.cases(tmp_path / "root", {})
    assert len(cases) == 7_470 and not any(c.problem for c in cases)
    assert len({c.patient_id for c in cases}) == 3_851  # 3,955 reports, 104 without an image
    assert sum(c.meta["unlabelled"] == "1" for c in cases) == 172  # 'No Indexing'
    assert sum(c.labels["h_cardiomegaly"] == "1" for c in cases) == 693
    facts = openi.dataset_facts(tmp_path / "root", {})
    assert (facts["reports"], facts["reports_without_images"]) == (3_955, 104)
