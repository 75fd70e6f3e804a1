"""CSAW-S (Zenodo 4030660; authors' code github.com/ChrisMats/CSAW-S) quirks.

- Layout: CsawS/anonymized_dataset/<patient>/ (train/val screenings with their annotations) and
  CsawS/test_data/anonymized_dataset/<patient>/ (test screenings only) with the annotations of
  three experts in CsawS/test_data/annotator_{1,2,3}/<patient>/. Both image folders are called
  'anonymized_dataset': the one below test_data/ is the test set. Folders the authors' conversion
  scripts write beside them (original_images/, segmentation_maps/, patches/) are ignored.
- Screenings are <patient>_<k>.png with k of 1 or 2 digits (the authors' code tries _[0-9] and
  only then _[0-9][0-9]; both are taken here). Some screenings are 3-channel PNGs with a grey
  <stem>_8bit.png sibling, which is the intended image (the authors' code switches to it).
- Annotations: one binary PNG per class, <stem>_<class>.png (non-zero = inside), class names
  matched exactly ('non-mammary_tissue' has a hyphen and an underscore). They merge into one label
  map in the authors' priority order (cancer first). A missing class map counts as empty and is
  listed in column missing_maps; a map named after no known class quarantines the screening.
- The test set's expert comes from curation option 'annotator' (column 'annotator'); the train/val
  annotations are expert 1's (README), recorded as annotator_1.
- Splits: test = test_data; val = the patients in the authors' suggested_validation_split.json
  (a JSON list of patient-folder names, from their repository, not the Zenodo data); train = the rest.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import CaseError, MedcurateError
from ...images import read_image
from ...masks import compose
from ...walk import walk
from .. import Case, Loaded, find_one

log = logging.getLogger("medcurate.csaw_s")

SPLIT_FILE = "suggested_validation_split.json"
ANNOTATORS = ("annotator_1", "annotator_2", "annotator_3")
SCREENING = re.compile(r"^(?P<stem>.+_\d{1,2})\.png$")
EIGHT_BIT = "_8bit"


def parse_validation_split(text: str, source) -> list[str]:
    """The authors' suggested validation split: a JSON list of patient ids (strings)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MedcurateError(source, f"not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(p, str) and p for p in data):
        raise MedcurateError(source, "expected a JSON list of patient ids (strings), e.g. [\"000\", \"001\"]")
    if len(set(data)) != len(data):
        raise MedcurateError(source, "a patient id is listed twice")
    return data


def cases(root: Path, plan: dict) -> list[Case]:
    annotator = plan["convert"].get("annotator") or ANNOTATORS[0]
    if annotator not in ANNOTATORS:
        raise MedcurateError(root, f"curation option annotator={annotator!r}: must be one of {list(ANNOTATORS)}")
    split_file = find_one(root, SPLIT_FILE)
    val = set(parse_validation_split(split_file.read_text(encoding="utf-8"), split_file))
    train_dir, test_dir = _image_dirs(root)
    out = []
    for patient, image in _screenings(train_dir):
        split = "val" if patient in val else "train"
        out.append(_case(patient, image, image.parent, "anonymized_dataset", split, "annotator_1"))
    experts = test_dir.parent / annotator
    if not experts.is_dir():
        raise MedcurateError(test_dir.parent, f"no folder '{annotator}' (the curation option 'annotator')")
    for patient, image in _screenings(test_dir):
        out.append(_case(patient, image, experts / patient, "test_data", "test", annotator))
    unknown = sorted(val - {c.patient_id for c in out if c.split == "val"})
    if unknown:
        log.warning("%s: %d validation patient(s) not among the train/val folders: %s", split_file, len(unknown), " ".join(unknown))
    return out


def _case(patient: str, image: Path, maps: Path, subset: str, split: str, annotator: str) -> Case:
    stem = image.name[: -len(".png")]
    prefix = "test" if split == "test" else "trainval"
    return Case(case_id=f"{prefix}_{stem}", patient_id=patient, image=image, split=split, mask=maps,
                subset=subset, meta={"annotator": annotator, "image_variant": "", "missing_maps": "", "mask_resized": 0})


def _image_dirs(root: Path) -> tuple[Path, Path]:
    """The two folders called anonymized_dataset: the test one sits below test_data/."""
    found = sorted(Path(d) for d, _, _ in walk(root) if Path(d).name == "anonymized_dataset")  # loops refused
    test = [d for d in found if d.parent.name == "test_data"]
    train = [d for d in found if d.parent.name != "test_data"]
    if len(train) != 1 or len(test) != 1:
        raise MedcurateError(root, f"expected one anonymized_dataset/ and one test_data/anonymized_dataset/, "
                                   f"found {len(train)} and {len(test)}: is the CsawS release complete and placed once?")
    return train[0], test[0]


def _screenings(folder: Path) -> list[tuple[str, Path]]:
    """(patient folder name, screening PNG) for every <patient>/<x>_<k>.png, k of 1 or 2 digits."""
    out = []
    for patient in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out += [(patient.name, patient / n) for n in sorted(os.listdir(patient)) if SCREENING.match(n)]
    return out


def load_image(case: Case, plan: dict) -> Loaded:
    image = read_image(case.image)
    if image.ndim == 2:
        return Loaded(image)
    source = None
    sibling = case.image.with_name(case.image.stem + EIGHT_BIT + ".png")
    if sibling.is_file():  # the authors' convention: the 8-bit sibling is the screening to use
        source, image = sibling, read_image(sibling)
        if image.ndim == 2:
            return Loaded(image, {"image_variant": "8bit_sibling"}, source=sibling)
    grey = _grey(image)
    if grey is None:
        raise CaseError(source or case.image, f"{image.shape[-1]}-channel screening with unequal channels and no grey {EIGHT_BIT}.png sibling")
    # equal channels: one of them is the grey image, losslessly
    return Loaded(grey, {"image_variant": "channel_0"}, source=source)


def _grey(image: np.ndarray) -> np.ndarray | None:
    """The one channel of an RGB(A) image whose colour channels are equal (lossless), else None."""
    rgb = image[..., :3]
    if (rgb == rgb[..., :1]).all():
        return np.ascontiguousarray(rgb[..., 0])
    return None


def class_maps(folder: Path, stem: str, classes: list[str]) -> tuple[dict[str, Path], list[str]]:
    """{class: map file} for the screening ``stem`` in ``folder``, and unrecognised <stem>_*.png names."""
    names = sorted(n for n in os.listdir(folder) if n.startswith(stem + "_") and n.endswith(".png")) if folder.is_dir() else []
    found, unknown = {}, []
    for name in names:
        suffix = name[len(stem) + 1 : -len(".png")]
        if suffix in classes:
            found[suffix] = folder / name
        elif suffix != EIGHT_BIT[1:]:
            unknown.append(name)
    return found, unknown


def load_mask(case: Case, plan: dict) -> Loaded:
    classes = plan["labels"]["overlap"]
    stem = case.image.name[: -len(".png")].removesuffix(EIGHT_BIT)
    if not case.mask.is_dir():
        raise CaseError(case.mask, f"no annotation folder for this screening ({case.meta['annotator']})")
    found, unknown = class_maps(case.mask, stem, classes)
    if unknown:
        raise CaseError(case.mask / unknown[0], f"map named after no known class ({', '.join(unknown)}); known: {', '.join(classes)}")
    if not found:
        raise CaseError(case.mask, f"no class maps {stem}_<class>.png for this screening")
    facts = {"missing_maps": " ".join(c for c in classes if c not in found), "roi_types": "mask"}
    shape = case.shape[:2]
    layers, actions = [], []
    for name, path in found.items():
        region = _binary(path)
        if region.shape != shape:
            if plan["convert"].get("mask_size_mismatch", "resize") == "quarantine":
                raise CaseError(path, f"map is {region.shape[1]}x{region.shape[0]} but the screening is {shape[1]}x{shape[0]}")
            region = np.asarray(Image.fromarray(region).resize((shape[1], shape[0]), Image.Resampling.NEAREST))
            facts["mask_resized"] = 1
            actions.append(f"{name}:resized")
        layers.append((name, region))
    return Loaded(compose(shape, layers, plan["labels"]), facts, actions)


def _binary(path: Path) -> np.ndarray:
    """A class map as booleans: any non-zero value (in any colour channel) is inside."""
    arr = read_image(path)
    if arr.ndim == 3:
        arr = arr[..., : min(arr.shape[-1], 3)].max(axis=-1)
    return arr > 0
