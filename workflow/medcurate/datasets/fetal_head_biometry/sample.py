"""Sample archives of the fetal head biometry dataset (its Zenodo layout, real quirks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...samples import csv_bytes, fan, png_bytes, seeded, write_zip, zip_bytes


def head_geometry(name: str, size: tuple[int, int], with_lv: bool) -> dict:
    """Where one image's head structures lie: the brain ellipse's box, CSP and LV polygons (the
    LV left out when ``with_lv`` is false). Image and mask are both drawn from it."""
    w, h = size
    rng = seeded(name + "/mask")
    cx, cy = w * (0.45 + 0.1 * rng.random()), h * (0.45 + 0.1 * rng.random())
    out = {"brain": [cx - w * 0.22, cy - h * 0.25, cx + w * 0.22, cy + h * 0.25],
           "csp": _rect(cx - w * 0.08, cy, w * 0.05, h * 0.04, rng.random())}
    if with_lv:
        out["lv"] = _rect(cx + w * 0.1, cy - h * 0.05, w * 0.06, h * 0.03, rng.random())
    return out


def head_image(name: str, size: tuple[int, int], head: dict) -> bytes:
    """The ultrasound fan with the head drawn where its mask lies: a bright skull just outside the
    brain ellipse, the brain darker and smoother than the tissue around, CSP and LV as dark
    (fluid-filled) shapes. RGB, as the real exports are."""
    px = fan(seeded(name), size)
    brain = Image.new("L", size, 0)
    ImageDraw.Draw(brain).ellipse(head["brain"], fill=1)
    inside = np.asarray(brain, bool)
    px[inside] = (px[inside] // 4 + 60) // 8 * 8  # banded, like the fan: keeps the mirror small
    im = Image.fromarray(px)
    draw = ImageDraw.Draw(im)
    x0, y0, x1, y1 = head["brain"]
    draw.ellipse([x0 - 7, y0 - 7, x1 + 7, y1 + 7], outline=235, width=7)  # the skull, outside the brain mask
    draw.polygon(head["csp"], fill=18)
    if "lv" in head:
        draw.polygon(head["lv"], fill=34)
    return png_bytes(im.convert("RGB"))


def head_mask(head: dict, size: tuple[int, int], colours: dict[str, tuple[int, int, int]]) -> bytes:
    """Colour-coded head mask: brain ellipse, CSP and LV as rotated rectangles (no anti-aliasing)."""
    im = Image.new("RGB", size, colours["background"])
    draw = ImageDraw.Draw(im)
    draw.ellipse(head["brain"], fill=colours["brain"])
    draw.polygon(head["csp"], fill=colours["csp"])
    if "lv" in head:
        draw.polygon(head["lv"], fill=colours["lv"])
    return png_bytes(im)


def _rect(cx: float, cy: float, hw: float, hh: float, turn: float) -> list[tuple[float, float]]:
    a = (turn - 0.5) * 0.8
    c, s = np.cos(a), np.sin(a)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]


HEAD_SIZE = (959, 661)
GREEN = {"background": (0, 0, 0), "brain": (255, 0, 0), "csp": (0, 255, 0), "lv": (0, 0, 255)}
YELLOW = {**GREEN, "csp": (255, 255, 0)}


def _labelmap(colours: dict) -> bytes:
    lines = ["# label:color_rgb:parts:actions"]
    for name, key in (("background", "background"), ("Brain", "brain"), ("CSP", "csp"), ("LV", "lv")):
        lines.append(f"{name}:{','.join(map(str, colours[key]))}::")
    return ("\n".join(lines) + "\n").encode()


def _voc_export(stems: list[str], masks: dict[str, bytes], colours: dict) -> dict[str, bytes]:
    files = {"labelmap.txt": _labelmap(colours),
             "ImageSets/Segmentation/default.txt": "".join(f"{s}\n" for s in stems).encode()}
    files.update({f"SegmentationClass/{s}.png": masks[s] for s in stems})
    return files


def _cityscapes(stems: list[str], masks: dict[str, bytes]) -> bytes:
    return zip_bytes({f"gtFine/default/{s}_gtFine_color.png": masks[s] for s in stems})


def fetal_head_biometry(out: Path) -> list[Path]:
    subsets = {
        # subset: (stems, csv name, csv header, export style, cityscapes zip name)
        "Trans-thalamic": (["Patient00168_Plane3_1_of_3", "Patient00168_Plane3_2_of_3", "Patient01769_Plane3_2_of_3"],
                           "Trans-Thalamic-Pixel-Size.csv", "Pixel in mm", "zip", "Trans-thalamic-Cityscapes.zip"),
        "Trans-cerebellum": (["Patient00001_Plane3_2_of_2", "Patient01769_Plane3_3_of_3", "Patient01110_Plane3_1_of_1"],
                             "Trans-cerebellum-Pixel-Size.csv", "Pixel  in mm", "folder", "Trans-cerebellum-Cityscapes.zip"),
        "Trans-ventricular": (["Patient00003_Plane3_1_of_1", "Patient01771_Plane3_1_of_1", "Patient00912_Plane3_1_of_2"],
                              "Trans-ventricular-Pixel-Size.csv", "Pixel in mm", "zip", "Trans-ventricular-CityScapes.zip"),
    }
    dests = []
    for subset, (stems, csv_name, px_header, style, city) in subsets.items():
        heads = {s: head_geometry(s, HEAD_SIZE, with_lv=(i % 2 == 0)) for i, s in enumerate(stems)}
        masks = {s: head_mask(heads[s], HEAD_SIZE, GREEN) for s in stems}
        annotated = stems[:-1] if subset == "Trans-ventricular" else stems  # one image without a mask
        members = {f"{subset}/{s}.png": head_image(s, HEAD_SIZE, heads[s]) for s in stems}
        rows = [["Label", px_header]] + [[f"{s}.png", f"{0.1 + 0.01 * i:.4f}"] for i, s in enumerate(stems)]
        members[csv_name] = b"\xef\xbb\xbf" + csv_bytes(rows, ",")
        members[city] = _cityscapes(annotated, masks)
        voc = _voc_export(annotated, masks, GREEN)
        if style == "zip":
            members[f"{subset}-segmentation-mask.zip"] = zip_bytes(voc)
        else:
            members.update({f"{subset}-Segmentation/{k}": v for k, v in voc.items()})
        dest = out / "fetal_head_biometry" / f"{subset}.zip"
        write_zip(dest, members)
        dests.append(dest)
    # HC18-derived subset: CSP is yellow here, no pixel-size CSV, "Orginal" (sic) image folder.
    stems = ["000_HC", "010_2HC", "012_HC"]
    heads = {s: head_geometry(s, HEAD_SIZE, with_lv=(i != 1)) for i, s in enumerate(stems)}
    masks = {s: head_mask(heads[s], HEAD_SIZE, YELLOW) for s in stems}
    members = {f"Orginal_train_images_to_959_661/{s}.png": head_image(s, HEAD_SIZE, heads[s]) for s in stems}
    members["Test-Dataset-CitySpaces.zip"] = _cityscapes(stems, masks)
    members.update({f"Test-Dataset-Segmentation/{k}": v for k, v in _voc_export(stems, masks, YELLOW).items()})
    dest = out / "fetal_head_biometry" / "Diverse Fetal Head Images.zip"
    write_zip(dest, members)
    return dests + [dest]
