"""Sample archives of the three fetal ultrasound datasets (Zenodo layouts, real quirks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import csv_bytes, png_bytes, seeded, write_tar_xz, write_zip, zip_bytes

DATASETS = ("fetal_planes_db", "african_fetal_planes", "fetal_head_biometry")


def fan(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Smooth banded tissue in an ultrasound fan, black outside it (compresses well)."""
    w, h = size
    coarse = rng.integers(20, 200, size=(12, 16), dtype=np.uint8)
    tex = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = np.arctan2(xx - w / 2, yy + h * 0.05)
    inside = (np.abs(angle) < 0.75) & (yy < h * 0.95)
    return np.where(inside, (tex // 24) * 24 + 8, 0).astype(np.uint8)  # banded: keeps the mirror small


def ultrasound(name: str, size: tuple[int, int]) -> bytes:
    """A fan-shaped ultrasound-like frame with an oval outline (deterministic per name)."""
    w, h = size
    rng = seeded(name)
    im = Image.fromarray(fan(rng, size))
    draw = ImageDraw.Draw(im)
    cx, cy = w * (0.35 + 0.3 * rng.random()), h * (0.4 + 0.2 * rng.random())
    draw.ellipse([cx - w * 0.15, cy - h * 0.12, cx + w * 0.15, cy + h * 0.12], outline=235, width=4)
    return png_bytes(im)


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


# ---------------------------------------------------------------- FETAL_PLANES_DB

PLANE_INDEX = {1: "Other", 2: "Fetal abdomen", 3: "Fetal brain", 4: "Maternal cervix", 5: "Fetal femur", 6: "Fetal thorax"}
FETAL_SIZES = [(692, 480), (640, 392), (768, 519), (707, 531), (745, 559), (959, 661)]
# patient: (train, operator(s), machine, [(plane index, frames, brain sub-planes)])
FETAL_PATIENTS = {
    1: ("1", ["Other"], "Aloka", [(1, 3, None), (3, 2, ["Trans-thalamic", "Trans-cerebellum"])]),
    2: ("1", ["Op. 1"], "Voluson E6", [(4, 3, None), (2, 1, None)]),
    3: ("1", ["Op. 2"], "Aloka", [(5, 2, None), (6, 1, None), (3, 1, ["Trans-ventricular"])]),
    4: ("1", ["Op. 3"], "Voluson E6", [(3, 2, ["Trans-thalamic", "Other"]), (4, 1, None)]),
    5: ("1", ["Op. 1"], "Other", [(2, 2, None), (5, 1, None)]),
    6: ("1", ["Op. 2"], "Aloka", [(1, 1, None), (6, 2, None)]),
    7: ("1", ["Op. 3"], "Voluson E6", [(3, 1, ["Trans-cerebellum"]), (4, 2, None)]),
    8: ("1", ["Op. 1"], "Aloka", [(2, 1, None), (6, 1, None), (5, 1, None)]),
    1272: ("1", ["Op. 1"], "Voluson E6", [(2, 1, None), (3, 2, ["Trans-thalamic", "Trans-thalamic"])]),
    1318: ("1", ["Op. 1", "Op. 2"], "Voluson E6", [(4, 2, None), (1, 1, None)]),
    1769: ("0", ["Op. 3"], "Aloka", [(3, 3, ["Trans-thalamic", "Trans-thalamic", "Trans-cerebellum"]), (4, 2, None), (1, 1, None), (6, 1, None)]),
    1770: ("0", ["Op. 1"], "Voluson E6", [(2, 1, None), (5, 2, None)]),
    1771: ("0", ["Op. 2"], "Other", [(6, 1, None), (4, 1, None), (3, 1, ["Trans-ventricular"])]),
    1792: ("0", ["Op. 3"], "Aloka", [(5, 1, None), (1, 2, None)]),
}
# Byte-identical pairs seen in the real set: consecutive frames of one patient (same class) and
# patient 1272's abdomen/brain pair (cross-class).
FETAL_DUPLICATES = {
    "Patient00002_Plane4_2_of_3": "Patient00002_Plane4_1_of_3",
    "Patient01272_Plane3_1_of_2": "Patient01272_Plane2_1_of_1",
}


def fetal_planes_db(out: Path) -> list[Path]:
    header = ["Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train "]
    rows, images, n = [header], {}, 0
    for patient, (train, operators, machine, planes) in FETAL_PATIENTS.items():
        for plane, frames, brain in planes:
            for i in range(1, frames + 1):
                stem = f"Patient{patient:05d}_Plane{plane}_{i}_of_{frames}"
                sub = brain[i - 1] if brain else "Not A Brain"
                rows.append([stem, str(patient), PLANE_INDEX[plane], sub, operators[n % len(operators)], machine, train + " "])
                images[stem] = images[FETAL_DUPLICATES[stem]] if stem in FETAL_DUPLICATES else ultrasound(stem, FETAL_SIZES[n % 6])
                n += 1
    members = {"FETAL_PLANES_DB_data.csv": csv_bytes(rows, ";")}
    members.update({f"Images/{stem}.png": data for stem, data in sorted(images.items())})
    dest = out / "fetal_planes_db" / "FETAL_PLANES_ZENODO.zip"
    write_zip(dest, members)
    return [dest]


# ---------------------------------------------------------------- African fetal planes

COUNTRIES = {"Algeria": ("DZA", (500, 430)), "Egypt": ("EGY", (400, 450)), "Ghana": ("GHA", (500, 500)),
             "Malawi": ("MWI", (500, 400)), "Uganda": ("UGA", (600, 500))}
AFRICAN_PLANES = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax"]
# Patient numbers restart per country; Ghana/Uganda have no thorax; Malawi 14 is thorax-only and
# Malawi 17/26 are the same woman entered twice (identical images).
AFRICAN_PATIENTS = {
    "Algeria": [(1, "0", [0, 2, 1, 3]), (4, "0", [1, 2, 3, 0]), (7, "1", [2, 0, 1, 3]), (9, "1", [0, 1, 2, 3])],
    "Egypt": [(1, "1", [3, 2, 1, 0]), (2, "1", [0, 1, 2, 3]), (5, "0", [1, 0, 3, 2])],
    "Ghana": [(1, "1", [0, 1, 2]), (3, "1", [2, 1, 0]), (6, "0", [1, 2, 0])],
    "Malawi": [(14, "1", [3]), (17, "1", [0, 1, 2, 3]), (21, "0", [2, 0, 1]), (26, "1", [0, 1, 2, 3])],
    "Uganda": [(1, "0", [1, 0, 2]), (2, "1", [0, 2, 1]), (4, "1", [2, 1, 0])],
}
AFRICAN_SAME_WOMAN = {("Malawi", 26): ("Malawi", 17)}


def african_fetal_planes(out: Path) -> list[Path]:
    rows, members = [["Patient_num", "Plane", "Train", "Center", "Filename"]], {}
    for center, patients in AFRICAN_PATIENTS.items():
        code, size = COUNTRIES[center]
        for num, train, planes in patients:
            for plane in planes:
                stem = f"patient{num:03d}_{code}_plane{plane}"
                rows.append([str(num), AFRICAN_PLANES[plane], train, center, stem])
                twin = AFRICAN_SAME_WOMAN.get((center, num))
                seed = f"patient{twin[1]:03d}_{code}_plane{plane}" if twin else stem
                members[f"Zenodo_dataset/{center}/{stem}.png"] = ultrasound(seed, size)
    members = {"Zenodo_dataset/African_planes_database.csv": csv_bytes(rows, ","), **dict(sorted(members.items()))}
    dest = out / "african_fetal_planes" / "Zenodo_dataset.tar.xz"
    write_tar_xz(dest, members)
    return [dest]


# ---------------------------------------------------------------- fetal head biometry

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
