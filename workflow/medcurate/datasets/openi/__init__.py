"""Indiana University chest X-ray collection (NLM Open-i, 'NLMCXR') quirks.

- Two archives: NLMCXR_png.tgz (the PNGs, <image id>.png) and NLMCXR_reports.tgz
  (ecgen-radiology/<n>.xml, one report per examination, 3,955). Images are paired with reports
  only through the XML: each <parentImage id="..."> names a PNG stem. A PNG no report names, or
  one named by two reports, is quarantined; a report naming a PNG that is absent quarantines that
  image ('file is missing'); 104 reports name no image at all (they give no case).
- No patient field: the report's uId ('CXR<n>') is the grouping key, as in torchxrayvision
  (whether one patient has several reports is UNCONFIRMED). No official split: patient-hash split.
- Labels from the manual MeSH terms (<MeSH><major>), e.g. 'Cardiomegaly/mild',
  'Pulmonary Atelectasis/base/left', 'normal', 'No Indexing'. Positive-only: mapped findings not
  listed are 0. A report with no major term or only 'No Indexing' is unlabelled (h_* blank,
  unlabelled = 1). The automatic terms (<MeSH><automatic>, in about half the reports) are kept
  in mesh_automatic but not mapped (torchxrayvision maps those instead).
- Views are not in the XML: view is blank (unknown) for every image; select.views other than 'all'
  therefore excludes every Open-i image.
- XML is parsed with defusedxml (no entity expansion); a report that does not parse becomes one
  quarantined row naming the file.
"""

from __future__ import annotations

from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, parse

from ...errors import CaseError
from ...families import cxr
from .. import Case, index_files, slug

NO_INDEXING = "no indexing"
MAX_XML_BYTES = 4 * 2**20  # real reports are a few kB


def cases(root: Path, plan: dict) -> list[Case]:
    images = index_files(root, "*.png", key=lambda p: p.stem)
    reports = index_files(root, "*.xml")
    named: dict[str, list[tuple[Path, dict]]] = {}
    out = []
    for name, path in sorted(reports.items(), key=lambda kv: (len(kv[0]), kv[0])):
        try:
            report = read_report(path)
        except CaseError as exc:
            out.append(Case(case_id=f"report_{slug(path.stem)}", patient_id=f"report_{slug(path.stem)}", image=None, problem=exc))
            continue
        for image_id in report["images"]:
            named.setdefault(image_id, []).append((path, report))
    for image_id, found in sorted(named.items()):
        path, report = found[0]
        terms = report["major"]
        unlabelled = not terms or all(t.strip().lower() == NO_INDEXING for t in terms)
        case = Case(case_id=slug(image_id), patient_id=report["uid"], image=images.get(image_id, path.parent / f"{image_id}.png"),
                    labels=cxr.from_terms("openi", None if unlabelled else terms),
                    meta={"report": report["uid"], "mesh_major": ";".join(terms), "mesh_automatic": ";".join(report["automatic"]),
                          "view": "", "unlabelled": "1" if unlabelled else "0"})
        if slug(image_id) != image_id:
            case.problem = CaseError(path, f"parentImage id {image_id!r} is not a plain file name stem")
        elif len(found) > 1:
            case.problem = CaseError(path, f"image {image_id} is also named by {', '.join(p.name for p, _ in found[1:])}; "
                                           "cannot tell which report it belongs to")
        out.append(case)
    for image_id, path in sorted(images.items()):
        if image_id not in named:
            out.append(Case(case_id=slug(image_id), patient_id=slug(image_id), image=path,
                            problem=CaseError(path, "no report (ecgen-radiology/*.xml) names this image")))
    return out


def dataset_facts(root: Path, plan: dict) -> dict:
    """Reports, reports without an image, and the MeSH major terms the mapping does not use (by
    the number of reports carrying them)."""
    reports = []
    for path in index_files(root, "*.xml").values():
        try:
            reports.append(read_report(path))
        except CaseError:
            continue  # quarantined by cases()
    return {"reports": len(reports), "reports_without_images": sum(not r["images"] for r in reports),
            "unmapped_mesh_major": cxr.unmapped_counts("openi", [r["major"] for r in reports])}


def read_report(path: Path) -> dict:
    """uId, MeSH major and automatic terms, and the parentImage ids of one report."""
    if path.stat().st_size > MAX_XML_BYTES:
        raise CaseError(path, f"report is larger than {MAX_XML_BYTES} bytes; not a report of this collection")
    try:
        tree = parse(str(path))
    except (ParseError, DefusedXmlException, UnicodeDecodeError, ValueError) as exc:
        raise CaseError(path, f"report XML does not parse ({exc})") from None
    top = tree.getroot()
    if top.tag != "eCitation":
        raise CaseError(path, f"root element is <{top.tag}>, not <eCitation>")
    uid = (top.find("uId").get("id") if top.find("uId") is not None else "") or ""
    if not uid.strip():
        raise CaseError(path, "report has no <uId id=...>")

    def texts(xpath: str) -> list[str]:
        return [" ".join(e.text.split()) for e in top.findall(xpath) if e.text and e.text.strip()]

    ids = [e.get("id", "").strip() for e in top.findall("parentImage")]
    if "" in ids:
        raise CaseError(path, "a <parentImage> has no id")
    if any(";" in t for t in texts("MeSH/major") + texts("MeSH/automatic")):
        raise CaseError(path, "a MeSH term contains ';', the separator of mesh_major/mesh_automatic")
    return {"uid": slug(uid.strip()), "major": texts("MeSH/major"), "automatic": texts("MeSH/automatic"),
            "images": list(dict.fromkeys(ids))}
