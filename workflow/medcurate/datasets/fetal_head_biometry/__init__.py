"""Fetal head biometry (Zenodo 8265464) quirks.

- Four per-subset zips with nested annotation-export zips whose names vary in spelling and case
  (Cityscapes/CityScapes/CitySpaces); the PASCAL-VOC ``SegmentationClass/`` export is the one used.
- Colour-coded masks; CSP is green in the plane subsets and yellow in "Diverse Fetal Head Images"
  (colour tables live in the catalogue). A labelmap.txt shipped beside an export is cross-checked.
- Image folders: <Plane>/<Plane>/ and "Diverse Fetal Head Images/Orginal_train_images_to_959_661" (sic).
- Images are resized copies of FETAL_PLANES_DB (PatientNNNNN_... names) and HC18 (NNN_HC names):
  flagged in ``derived_from`` because mixing either source set with this one leaks patients.
- Pixel-size CSVs: header "Pixel in mm" or "Pixel  in mm", possibly with a BOM and decimal commas.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import CaseError, MedcurateError
from ...images import colours_to_labels, read_image
from .. import Case, read_table, slug

IMAGE_DIRS = {
    "Trans-thalamic": "Trans-thalamic",
    "Trans-cerebellum": "Trans-cerebellum",
    "Trans-ventricular": "Trans-ventricular",
    "Diverse Fetal Head Images": "Orginal_train_images_to_959_661",
}
FETAL_PLANES = re.compile(r"(Patient\d{5})_")
HC18 = re.compile(r"^(\d{3})_\d*HC$")


def cases(root: Path, plan: dict) -> list[Case]:
    out = []
    for subset, image_dir_name in IMAGE_DIRS.items():
        sub = root / subset
        if not sub.is_dir():
            raise MedcurateError(root, f"subset folder '{subset}' missing: is '{subset}.zip' among the downloads?")
        images = {p.stem: p for p in sorted(_image_dir(sub, image_dir_name).glob("*.png"))}
        masks = _masks(sub)
        _check_labelmaps(sub, colour_table(plan, subset))
        pixel_mm = _pixel_sizes(sub)
        for stem in sorted(images.keys() | masks.keys()):
            patient, derived = _patient(stem)
            out.append(
                Case(
                    case_id=f"{slug(subset)}__{slug(stem)}",
                    patient_id=patient,
                    image=images.get(stem),
                    mask=masks.get(stem),
                    subset=subset,
                    meta={"derived_from": derived, "pixel_mm": pixel_mm.get(stem, "")},
                )
            )
    return out


def load_mask(case: Case, plan: dict) -> tuple[np.ndarray, list[str]]:
    if case.mask is None:
        raise CaseError(case.image, "image has no mask in any SegmentationClass export")
    labels, unknown = colours_to_labels(read_image(case.mask, "RGB"), colour_table(plan, case.subset), plan["labels"]["mask"])
    if not unknown:
        return labels, []
    if plan["convert"]["unknown_colour"] == "quarantine":
        raise CaseError(case.mask, f"colours not in the catalogue's table for '{case.subset}': {unknown}")
    return labels, [f"unknown_colours_to_background:{sum(unknown.values())}px"]


def colour_table(plan: dict, subset: str) -> dict[str, list[int]]:
    colours = plan["mask_colours"]
    return {**colours["default"], **colours.get(subset, {})}


def _image_dir(sub: Path, name: str) -> Path:
    hits = [d for d in [sub, *sorted(sub.rglob(name))] if d.is_dir() and d.name == name and any(d.glob("*.png"))]
    hits = [d for d in hits if "SegmentationClass" not in d.parts]
    if len(hits) != 1:
        raise MedcurateError(sub, f"expected one image folder '{name}' holding PNGs, found {len(hits)}")
    return hits[0]


def _masks(sub: Path) -> dict[str, Path]:
    exports = sorted(d for d in sub.rglob("SegmentationClass") if d.is_dir())
    masks: dict[str, Path] = {}
    for export in exports:  # first export wins; later duplicates (other export formats) are ignored
        for p in sorted(export.glob("*.png")):
            masks.setdefault(p.stem, p)
    return masks


def _check_labelmaps(sub: Path, table: dict[str, list[int]]) -> None:
    """labelmap.txt lines read 'name:r,g,b:parts:actions' (CVAT export)."""
    by_name = {k.lower(): v for k, v in table.items()}
    for path in sorted(sub.rglob("labelmap.txt")):
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            try:
                rgb = [int(v) for v in rest.split(":")[0].split(",") if v.strip()]
            except ValueError:
                raise MedcurateError(path, f"line {number}: colour of '{name}' is not r,g,b integers: {line!r}") from None
            expected = by_name.get(name.strip().lower())
            if expected is not None and rgb != list(expected):
                raise MedcurateError(path, f"'{name}' is coloured {rgb} here but {expected} in the catalogue")


def _pixel_sizes(sub: Path) -> dict[str, str]:
    sizes: dict[str, str] = {}
    for path in sorted(p for p in sub.rglob("*") if p.name.lower().endswith("-pixel-size.csv")):
        df = read_table(path, None, ["Label", "Pixel in mm"])
        for label, value in zip(df["Label"], df["Pixel in mm"]):
            try:
                sizes[Path(label).stem] = f"{float(value.replace(',', '.')):.6g}"
            except ValueError:
                raise MedcurateError(path, f"pixel size {value!r} for {label!r} is not a number") from None
    return sizes


def _patient(stem: str) -> tuple[str, str]:
    if m := FETAL_PLANES.match(stem):
        return m.group(1), "FETAL_PLANES_DB"
    if m := HC18.match(stem):
        return f"HC18-{m.group(1)}", "HC18"
    return stem, ""
