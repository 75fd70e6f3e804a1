"""ACDC@LungHP 2019 (lung cancer segmentation in whole-slide histopathology) quirks. Facts:
../shared/docs/DATASETS.md section 19 (challenge paper, grand-challenge data page as reported).

- 150 training slides with annotations, 50 test slides without (not public): only annotated
  slides are cases. One slide per patient (200 slides from 200 patients, paper), so the patient
  key is the slide's name and the split step keeps a slide's tiles together.
- Slides are pyramidal TIFF read through OpenSlide (wsi.py); the scanner and objective are
  UNCONFIRMED first-hand, so the level is chosen from the slide's own microns per pixel
  (catalogue tiling.mpp), never from an assumed magnification.
- Annotations are ASAP XML (asap.py) with the slide's name: <name>.xml beside or anywhere below
  the dataset root (file names and folders inside the release are UNCONFIRMED: found by stem).
  Every closed outline (Polygon, Rectangle, Spline) marks cancer; Dot/PointSet annotations are
  left out (they bound no area) and counted in the manifest's 'point_annotations'. Whether the
  release has exclusion (hole) groups is UNCONFIRMED: all groups are drawn as cancer.
- A slide without an .xml is a test slide: left out, counted in dataset.json's release_facts.
"""

from __future__ import annotations

from pathlib import Path

from ...formats import asap
from ...errors import CaseError, MedcurateError
from .. import Case, files

SLIDE_SUFFIXES = ("*.tif", "*.tiff")


def _index(root: Path, patterns) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pattern in patterns:
        for path in files(root, pattern):
            if path.stem in found:
                raise MedcurateError(root, f"{path.name} found twice ({found[path.stem]}, {path}); cannot tell which to use")
            found[path.stem] = path
    return found


def cases(root: Path, plan: dict) -> list[Case]:
    slides = _index(root, SLIDE_SUFFIXES)
    xmls = _index(root, ("*.xml",))
    if not slides:
        raise MedcurateError(root, "no slide (.tif) anywhere below it: are the ACDC@LungHP training slides in place?")
    out = [Case(case_id=stem, patient_id=stem, image=slides[stem], mask=xmls[stem], split=None)
           for stem in sorted(slides) if stem in xmls]
    for stem in sorted(set(xmls) - set(slides)):
        out.append(Case(case_id=stem, patient_id=stem, image=None, mask=xmls[stem]))  # quarantined: no slide
    if not any(c.image for c in out):
        raise MedcurateError(root, f"{len(slides)} slide(s) but none has its annotation <name>.xml: test slides only?")
    return out


def dataset_facts(root: Path, plan: dict) -> dict:
    slides, xmls = _index(root, SLIDE_SUFFIXES), _index(root, ("*.xml",))
    return {"slides": len(slides), "slides_without_annotation": len(set(slides) - set(xmls))}


def regions(case: Case, plan: dict) -> list[tuple[str, asap.Region]]:
    found = asap.parse(case.mask)
    areas = [r for r in found if r.kind in asap.AREA_TYPES]
    unknown = sorted({r.kind for r in found} - set(asap.AREA_TYPES) - {"Dot", "PointSet"})
    if unknown:
        raise CaseError(case.mask, f"annotation type(s) {unknown} are neither outlines nor points")
    case.meta["point_annotations"] = len(found) - len(areas)
    case.meta["regions"] = len(areas)
    return [("cancer", r) for r in areas]
