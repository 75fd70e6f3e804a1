"""Sample of the Indiana University chest X-ray collection as NLM Open-i serves it (DATASETS.md 16).

NLMCXR_png.tgz holds <image id>.png flat; NLMCXR_reports.tgz holds ecgen-radiology/<n>.xml with the
report structure of the real files (eCitation root, uId, pmcId, IUXRId, licence, the four
AbstractText sections with 'XXXX' de-identification, MeSH major and automatic terms, one
parentImage per image). Pixels are synthetic and tiny.

- report 1 with the 'CXR1_1_IM-...' ids of the real first report, 'normal';
- two images per report as usual, one report with one image, one with three;
- MeSH majors with '/' qualifiers ('Cardiomegaly/mild'), 'No Indexing' (unlabelled);
- a report naming no image; a PNG named by no report (quarantined).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ...samples import write_tar_gz, xray

DATASETS = ("openi",)

# report number -> (MeSH major terms, automatic terms, image ids, impression)
REPORTS = {
    1: (["normal"], [], ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"], "Normal chest x-XXXX."),
    2: (["Cardiomegaly/mild", "Pulmonary Atelectasis/base/left"], ["atelectases"],
        ["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"], "Mild cardiomegaly. Left basilar atelectasis."),
    3: (["Pleural Effusion/right/small", "Opacity/lung/base/right", "Catheters, Indwelling"], ["opacity"],
        ["CXR3_IM-1384-1001", "CXR3_IM-1384-2001", "CXR3_IM-1384-1001-0001"], "Small right effusion. XXXX catheter."),
    4: (["No Indexing"], [], ["CXR4_IM-2050-1001"], "XXXX."),
    5: (["Calcified Granuloma/lung/upper lobe/right", "Nodule/lung/hilum", "Thickening/pleura/apex"], ["calcified granuloma"],
        ["CXR5_IM-2117-1003002", "CXR5_IM-2117-1004003"], "Calcified granuloma. Apical pleural thickening."),
    6: (["normal"], [], [], "No acute disease."),  # no image (as 104 real reports)
    7: (["Pneumothorax/left", "Fractures, Bone/ribs/left"], [], ["CXR7_IM-2263-1001", "CXR7_IM-2263-2001"],
        "Left pneumothorax. Left rib fractures."),
}
ORPHAN = "CXR9999_IM-9999-1001"


def report_xml(n: int, major: list[str], automatic: list[str], images: list[str], impression: str) -> bytes:
    mesh = "".join(f"\n      <major>{escape(t)}</major>" for t in major) + "".join(
        f"\n      <automatic>{escape(t)}</automatic>" for t in automatic)
    parents = "".join(f"""
   <parentImage id={quoteattr(i)}>
      <figureId>F{k + 1}</figureId>
      <caption>Xray Chest PA and Lateral</caption>
      <panel type="single">
         <url>/hadoop/storage/radiology/extract/{escape(i)}.jpg</url>
         <imgModality>7</imgModality>
      </panel>
   </parentImage>""" for k, i in enumerate(images))
    return f"""<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="CXR{n}"/>
   <pmcId id="{n}"/>
   <docSource>CXR</docSource>
   <IUXRId id="{n}"/>
   <licenseType>open-access</licenseType>
   <licenseURL>http://creativecommons.org/licenses/by-nc-nd/4.0/</licenseURL>
   <ccLicense>byncnd</ccLicense>
   <publisher>Indiana University</publisher>
   <title>Indiana University Chest X-ray Collection</title>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">XXXX-year-old with chest pain.</AbstractText>
            <AbstractText Label="FINDINGS"/>
            <AbstractText Label="IMPRESSION">{escape(impression)}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH>{mesh}
   </MeSH>{parents}
</eCitation>
""".encode()


def openi(out: Path) -> list[Path]:
    folder = out / "openi"
    reports = {f"ecgen-radiology/{n}.xml": report_xml(n, *r) for n, r in REPORTS.items()}
    ids = sorted({i for r in REPORTS.values() for i in r[2]} | {ORPHAN})
    pngs = {f"{i}.png": xray(i, (48, 56) if i.endswith(("2001", "4001", "1004003")) else (56, 56)) for i in ids}
    paths = [folder / "NLMCXR_png.tgz", folder / "NLMCXR_reports.tgz"]
    write_tar_gz(paths[0], pngs)
    write_tar_gz(paths[1], reports)
    return paths
