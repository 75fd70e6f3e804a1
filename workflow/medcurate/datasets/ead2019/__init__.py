"""EAD2019 (Endoscopy Artefact Detection challenge 2019) quirks. Facts: ../shared/docs/DATASETS.md
section 18, from the organisers' repository sharib-vision/EAD2019 (class_list.txt, the example
annotations, the semantic evaluation and VIA-to-mask scripts).

- Detection training data: trainingData_detection/<stem>.jpg with <stem>.txt beside it (flat). One
  line per box, 'class_id x_centre y_centre width height', whitespace-separated, the four numbers
  fractions of the image's width and height (darknet/YOLO), class_id the 0-based line of
  class_list.txt: specularity, saturation, artifact, blur, contrast, bubbles, instrument. The
  conversion to pixels is boxes.py's (form cxcywh_normalised); the organisers' own ground truth
  for frame 00003 (512x512) gives 'bubbles 40 70 74 99' for '5 0.111328125 0.1650390625
  0.06640625 0.056640625', exactly what it yields. A blank line is skipped; an empty .txt is a
  frame without boxes (whether the release has any: UNCONFIRMED).
- Semantic masks (a subset of frames; semanticSegmentation_EAD2019.zip): <stem>_mask.tif, a
  5-channel TIFF read as (5, H, W), channels Instrument, Specularity, Artefact, Bubbles,
  Saturation (an order unlike the box classes; no blur or contrast), value > 0 = the class; the
  channels overlap, so each is its own extra mask (masks_<class>/), never one label map. The
  folder names inside that archive are UNCONFIRMED: masks are found by name at any depth and
  attach to the detection frame of the same stem. A semantic image without a detection frame of
  its stem is not a case (counted in dataset.json's release_facts).
- Frames come in several sizes (512x512, ~1350x1080...): boxes are denormalised per image.
- No patient or video id is published. Stems like 1772_A_M62_00309 or DB58_colitis_full_01908
  end in a frame number after a sequence name: the sequence name is the patient key, so frames of
  one sequence share a split; purely numeric stems (00186, 0000606) carry no such name and are
  their own key, so neighbouring frames of their videos may still land in different splits.
- The test sets' labels were never released: every frame here is a training frame; validation
  and test are drawn by that key's hash.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...boxes import Annotation
from ...errors import CaseError, MedcurateError
from .. import Case, files, read_text

CLASSES = ("specularity", "saturation", "artifact", "blur", "contrast", "bubbles", "instrument")
MASK_CHANNELS = ("instrument", "specularity", "artefact", "bubbles", "saturation")
SEQUENCE = re.compile(r"^(.*[A-Za-z].*?)[_-](\d+)$")


def cases(root: Path, plan: dict) -> list[Case]:
    frames = {p.stem: p for p in files(root, "*.txt") if p.with_suffix(".jpg").is_file()}
    if not frames:
        raise MedcurateError(root, "no EAD2019 detection frame (<stem>.jpg with <stem>.txt beside it) anywhere "
                                   "below it: is trainingData_detection.zip in place?")
    masks = {}
    for path in files(root, "*_mask.tif"):
        stem = path.name[: -len("_mask.tif")]
        if stem in masks:
            raise MedcurateError(root, f"{path.name} found twice ({masks[stem]}, {path}); cannot tell which to use")
        masks[stem] = path
    out = []
    for stem, txt in sorted(frames.items()):
        extra = {name: masks[stem] for name in MASK_CHANNELS} if stem in masks else {}
        out.append(Case(case_id=stem, patient_id=sequence(stem), image=txt.with_suffix(".jpg"), mask=txt,
                        extra_masks=extra, meta={"semantic_mask": int(stem in masks)}))
    return out


def sequence(stem: str) -> str:
    """The video/sequence name a frame's stem starts with, else the stem itself."""
    m = SEQUENCE.match(stem)
    return m.group(1) if m else stem


def dataset_facts(root: Path, plan: dict) -> dict:
    frames = {p.stem for p in files(root, "*.txt") if p.with_suffix(".jpg").is_file()}
    masks = {p.name[: -len("_mask.tif")] for p in files(root, "*_mask.tif")}
    return {"semantic_masks": len(masks), "semantic_masks_without_detection_frame": len(masks - frames)}


def load_boxes(case: Case, plan: dict) -> list[Annotation]:
    return parse_boxes(case.mask)


def parse_boxes(path: Path) -> list[Annotation]:
    """The box file's lines as normalised annotations; a malformed line is a CaseError naming
    the file and the line."""
    try:
        text = read_text(path)
    except MedcurateError as exc:  # one frame's file: that frame is quarantined, not the release
        raise CaseError(path, exc.reason) from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise CaseError(path, f"line {n}: expected 'class_id x_centre y_centre width height', got {line.strip()[:80]!r}")
        if not fields[0].isdigit() or int(fields[0]) >= len(CLASSES):
            raise CaseError(path, f"line {n}: class id {fields[0][:20]!r} is not one of 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
        try:
            coords = tuple(float(v) for v in fields[1:])
        except ValueError:
            raise CaseError(path, f"line {n}: box values {fields[1:]} are not numbers") from None
        if not all(-0.5 <= v <= 1.5 for v in coords):  # NaN fails too
            raise CaseError(path, f"line {n}: box values {fields[1:]} are not fractions of the image size (normalised)")
        out.append(Annotation(CLASSES[int(fields[0])], coords, "cxcywh_normalised", path, n))
    return out


def load_extra_mask(case: Case, plan: dict, name: str) -> np.ndarray:
    """One channel of the 5-channel semantic mask TIFF, as 0/1."""
    import tifffile

    path = case.extra_masks[name]
    try:
        stack = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types (TiffFileError, ValueError, struct.error...)
        raise CaseError(path, f"cannot read the semantic mask TIFF ({type(exc).__name__}: {str(exc)[:200]})") from None
    if stack.ndim != 3 or stack.shape[0] != len(MASK_CHANNELS):
        raise CaseError(path, f"semantic mask has shape {stack.shape}; expected ({len(MASK_CHANNELS)}, height, width), "
                              f"channels {', '.join(MASK_CHANNELS)}")
    return (stack[MASK_CHANNELS.index(name)] > 0).astype(np.uint8)
