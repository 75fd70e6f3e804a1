#!/usr/bin/env python3
"""Inputs at real scale for the benchmark, in the publishers' layouts (synthetic pixels).

    python bench/generate.py fetal    [--out bench/data] [--images 12400] [--jobs 2]
    python bench/generate.py inbreast [--out bench/data] [--images 320]  [--jobs 2]

fetal -> <out>/fetal_planes_db/
  FETAL_PLANES_ZENODO.zip   the Zenodo archive's layout: FETAL_PLANES_DB_data.csv (';', the 'Train '
                            header and '1 '/'0 ' values with their trailing space) + Images/*.png
  src/                      the same files unpacked (the naive pipeline and the codec floor read them)
  catalogue/, config.yaml   a catalogue entry whose source is the archive as a file:// URL (sha256
                            pinned, so fetch verifies it as it would a download) and a config for it
  Counts as in the real set: 12,400 images of 1,792 patients; planes Other 4213, Fetal brain 3092
  (Trans-thalamic 1638, Trans-cerebellum 714, Trans-ventricular 597, Other 143), Fetal thorax 1718,
  Maternal cervix 1626, Fetal femur 1040, Fetal abdomen 711; ~57 % of patients in Train; 192
  byte-identical frame pairs (the real set's audit count). Grayscale 8-bit PNGs (compress level 6)
  at these sizes (width x height, share): 959x661 35 %, 745x559 15 %, 707x531 10 %, 768x519 10 %,
  692x480 10 %, 640x392 5 %, 1024x768 10 %, 1200x800 5 %; mean ~160 KB, ~2 GB in all, like the
  real 2.1 GB archive. Pixels: Rayleigh speckle correlated over ~3 px times a smooth echogenicity
  map inside an ultrasound fan, black outside, so PNG has real work to do (level 6 gives ~1.9
  bits/pixel). Zip members are deflated at level 1 (inflating costs the same as for level 6).

inbreast -> <out>/inbreast/
  INbreast Release 1.0/     AllDICOMs/<8 digits>_<16 hex>_MG_<L|R>_<CC|ML>_ANON.dcm (16-bit
                            MONOCHROME2, BitsStored 14, 4084 rows x 3328 columns, uncompressed,
                            ~27 MB each), AllXML/<8 digits>.xml (OsiriX plists: freehand masses,
                            calcification contours and points, written by the sample builder's own
                            writer), INbreast.csv (';', 'removed' placeholders)
  config.yaml               manual_dirs: {inbreast: <that folder>}
  Pixels: a breast silhouette with smooth density variation plus quantum noise (sigma ~25 of 16383),
  so 16-bit PNG output is ~1/2 of the raw size, as for real mammograms.

cxr14 -> <out>/chestxray14-<n>/ for each of --sizes (default 1000,3000,9000)
  images_001..012.tar.gz    NIH's layout: images/<patient8>_<followup3>.png, 1024x1024 8-bit grey
                            PNGs (~3 bits/pixel, as the real ~375 KB files), no ancillary chunk
  manual/                   Data_Entry_2017_v2020.csv (the split bracket headers, trailing empty
                            column), train_val_list.txt, test_list.txt (~77 % of patients)
  catalogue/, config.yaml   the archives as file:// sources with sha256, manual_dirs for the lists
  cxr14-src/images/         the PNGs, drawn once for the largest size (git-ignored like all data)

Everything is deterministic for given arguments. bench/data/ is git-ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

# ------------------------------------------------------------------------------ FETAL_PLANES_DB

PLANES = {  # plane -> (index in the file name, count in the real set)
    "Other": (1, 4213), "Fetal abdomen": (2, 711), "Fetal brain": (3, 3092),
    "Maternal cervix": (4, 1626), "Fetal femur": (5, 1040), "Fetal thorax": (6, 1718),
}
BRAIN = {"Trans-thalamic": 1638, "Trans-cerebellum": 714, "Trans-ventricular": 597, "Other": 143}
SIZES = [((959, 661), 35), ((745, 559), 15), ((707, 531), 10), ((768, 519), 10), ((692, 480), 10),
         ((640, 392), 5), ((1024, 768), 10), ((1200, 800), 5)]
REAL_IMAGES, REAL_PATIENTS, REAL_DUPLICATES = 12400, 1792, 192
FIELD = 2048  # side of the per-worker speckle field images are cut from


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def fetal_rows(n_images: int) -> list[dict]:
    """CSV rows: the real label counts and patients, scaled to n_images."""
    rng = _rng(f"fetal/{n_images}")
    scale = n_images / REAL_IMAGES
    labels = []
    for plane, (_, count) in PLANES.items():
        if plane == "Fetal brain":
            for sub, c in BRAIN.items():
                labels += [(plane, sub)] * round(c * scale)
        else:
            labels += [(plane, "Not A Brain")] * round(count * scale)
    labels = (labels + labels[: max(0, n_images - len(labels))])[:n_images]
    rng.shuffle(labels)
    n_patients = max(1, round(REAL_PATIENTS * scale))
    # Patients get 1..16 images (mean ~6.9), in order; then each patient's frames are grouped by plane.
    cuts = np.sort(rng.choice(np.arange(1, n_images), size=n_patients - 1, replace=False)) if n_patients > 1 else []
    bounds = [0, *cuts, n_images]
    rows = []
    size_choices = np.array([s for s, _ in SIZES]), np.array([w for _, w in SIZES], float)
    for p in range(n_patients):
        patient = p + 1
        train = "1" if p < 0.575 * n_patients else "0"
        operator = ["Op. 1", "Op. 2", "Op. 3", "Other"][rng.integers(0, 4)]
        machine = ["Voluson E6", "Aloka", "Other"][rng.integers(0, 3)]
        size = tuple(size_choices[0][rng.choice(len(SIZES), p=size_choices[1] / size_choices[1].sum())])
        mine = labels[bounds[p]:bounds[p + 1]]
        by_plane: dict[str, list] = {}
        for lab in mine:
            by_plane.setdefault(lab[0], []).append(lab)
        for plane, labs in by_plane.items():
            for i, (_, sub) in enumerate(labs, start=1):
                rows.append({"Image_name": f"Patient{patient:05d}_Plane{PLANES[plane][0]}_{i}_of_{len(labs)}",
                             "Patient_num": str(patient), "Plane": plane, "Brain_plane": sub,
                             "Operator": operator, "US_Machine": machine, "Train": train,
                             "size": [int(size[0]), int(size[1])]})
    # Byte-identical pairs: consecutive frames of one patient and plane (scaled from the real 192).
    want = round(REAL_DUPLICATES * scale)
    candidates = [i for i in range(1, len(rows)) if rows[i]["Image_name"].rsplit("_", 3)[0] == rows[i - 1]["Image_name"].rsplit("_", 3)[0]]
    for i in sorted(rng.choice(candidates, size=min(want, len(candidates)), replace=False)) if candidates else []:
        rows[i]["duplicate_of"] = rows[i - 1]["Image_name"]
    return rows


_FIELD: np.ndarray | None = None


def _speckle_field(seed: int) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    speckle = ndimage.gaussian_filter(rng.rayleigh(1.0, (FIELD, FIELD)).astype(np.float32), 1.2)
    coarse = rng.random((24, 24)).astype(np.float32)
    tissue = np.asarray(Image.fromarray(coarse).resize((FIELD, FIELD), Image.Resampling.BICUBIC), np.float32).clip(0, 1)
    return speckle / speckle.mean() * (30 + 150 * tissue)


def ultrasound_png(name: str, size: tuple[int, int]) -> bytes:
    """A speckled fan-shaped frame, distinct per name (a window of the worker's speckle field)."""
    global _FIELD
    if _FIELD is None:
        _FIELD = _speckle_field(1)
    w, h = size
    rng = _rng(name)
    y0, x0 = rng.integers(0, FIELD - h), rng.integers(0, FIELD - w)
    px = (_FIELD[y0:y0 + h, x0:x0 + w] * (0.8 + 0.4 * rng.random())).clip(0, 255).astype(np.uint8)
    yy, xx = np.ogrid[0:h, 0:w]
    apex_x, apex_y = w / 2 + (rng.random() - 0.5) * w * 0.05, -h * 0.05
    r = np.hypot(xx - apex_x, yy - apex_y)
    fan = (np.abs(np.arctan2(xx - apex_x, yy - apex_y)) < 0.7 + 0.1 * rng.random()) & (r < h * 1.0) & (r > h * 0.08)
    px[~fan] = 0
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _write_fetal_image(args: tuple[str, tuple[int, int], str]) -> int:
    name, size, dest = args
    data = ultrasound_png(name, size)
    Path(dest).write_bytes(data)
    return len(data)


def generate_fetal(out: Path, n_images: int, jobs: int) -> None:
    base = out / "fetal_planes_db"
    src = base / "src"
    images = src / "Images"
    images.mkdir(parents=True, exist_ok=True)
    rows = fetal_rows(n_images)
    todo = [(r["Image_name"], tuple(r["size"]), str(images / f"{r['Image_name']}.png"))
            for r in rows if "duplicate_of" not in r and not (images / f"{r['Image_name']}.png").is_file()]
    print(f"fetal: {len(rows)} images ({len(todo)} to draw), {len({r['Patient_num'] for r in rows})} patients",
          file=sys.stderr)
    with ProcessPoolExecutor(jobs) as pool:
        for i, _ in enumerate(pool.map(_write_fetal_image, todo, chunksize=32), start=1):
            if i % 1000 == 0:
                print(f"  {i}/{len(todo)}", file=sys.stderr)
    for r in rows:
        if "duplicate_of" in r:
            shutil.copyfile(images / f"{r['duplicate_of']}.png", images / f"{r['Image_name']}.png")
    header = ["Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train "]
    lines = [";".join(header)] + [";".join([r["Image_name"], r["Patient_num"], r["Plane"], r["Brain_plane"],
                                            r["Operator"], r["US_Machine"], r["Train"] + " "]) for r in rows]
    (src / "FETAL_PLANES_DB_data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    archive = base / "FETAL_PLANES_ZENODO.zip"
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        members = ["FETAL_PLANES_DB_data.csv"] + [f"Images/{r['Image_name']}.png" for r in sorted(rows, key=lambda r: r["Image_name"])]
        for m in members:
            info = zipfile.ZipInfo(m, (2020, 6, 22, 12, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (src / m).read_bytes(), compresslevel=1)
    os.replace(tmp, archive)
    digest = _sha256(archive)

    # A catalogue holding only this entry, its source the archive (no Zenodo record: nothing online).
    entry = yaml.safe_load((ROOT / "workflow" / "medcurate" / "datasets" / "fetal_planes_db" / "dataset.yaml").read_text())
    entry["sources"] = [{"name": archive.name, "url": archive.resolve().as_uri(), "sha256": digest}]
    (base / "catalogue").mkdir(exist_ok=True)
    (base / "catalogue" / "fetal_planes_db.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
    config = {"datasets": ["fetal_planes_db"], "catalogue": str((base / "catalogue").resolve())}
    (base / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    manifest = {"dataset": "fetal_planes_db", "images": len(rows), "archive": str(archive), "archive_bytes": archive.stat().st_size,
                "sha256": digest, "inputs": [f"Images/{r['Image_name']}.png" for r in rows], "root": str(src)}
    (base / "inputs.json").write_text(json.dumps(manifest))
    print(f"fetal: {archive} ({archive.stat().st_size / 1e9:.2f} GB), config {base / 'config.yaml'}", file=sys.stderr)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------ INbreast

ROWS, COLS = 4084, 3328  # the larger of the two INbreast detector matrices
TOP = "INbreast Release 1.0"


def mammogram16(name: str, side: str) -> np.ndarray:
    """A 14-bit breast silhouette (chest wall left for L, right for R) with density texture and noise."""
    rng = _rng(name)
    coarse = rng.random((12, 10)).astype(np.float32)
    tex = np.asarray(Image.fromarray(coarse).resize((COLS, ROWS), Image.Resampling.BICUBIC), np.float32)
    yy, xx = np.ogrid[0:ROWS, 0:COLS]
    edge = COLS * (0.55 + 0.2 * rng.random()) * np.sqrt(np.clip(1 - ((yy - ROWS / 2) / (ROWS * 0.47)) ** 2, 0, 1))
    breast = xx < edge
    top = (1 << 14) - 1
    px = np.where(breast, top * 0.35 + tex * 3000 - (xx / COLS) * 2500, 150.0)
    px += rng.normal(0, 25, size=(ROWS, COLS)).astype(np.float32)
    px = px.clip(0, top).astype(np.uint16)
    return px[:, ::-1].copy() if side == "R" else px


def _inbreast_one(args) -> None:
    from medcurate.datasets.inbreast import sample

    sample.SPACING_MM = 0.07  # full-size pixels (the sample builder scales them by 8)
    im, dcm_path, xml_path = args
    px = mammogram16(f"inbreast/{im.file_name}", im.side)
    Path(dcm_path).write_bytes(sample.dicom_bytes(im, px))
    if im.rois:
        Path(xml_path).write_bytes(sample.xml_bytes(im, px))


def inbreast_images(n_images: int) -> list:
    """Four views per patient (L/R x CC/MLO); most have a mass and calcifications, some are normal."""
    from medcurate.datasets.inbreast import sample

    out = []
    for i in range(n_images):
        patient = sample._hash(f"bench-p{i // 4}")
        side, view = [("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")][i % 4]
        rng = _rng(f"inbreast-bench/{i}")
        rois = []
        if rng.random() < 0.7:  # a traced mass and a few calcification points in the breast
            cx = (COLS * 0.3 if side == "L" else COLS * 0.7) + rng.normal(0, 150)
            cy = ROWS / 2 + rng.normal(0, 600)
            rois.append(sample.Roi("Mass", 15, sample.blob(cx, cy, 80 + 100 * rng.random(), 40, f"bench-m{i}")))
            rois += [sample.point(cx + rng.normal(0, 200), cy + rng.normal(0, 200)) for _ in range(rng.integers(1, 12))]
            rois.append(sample.Roi("Calcification", 15, sample.blob(cx + 250, cy, 12, 10, f"bench-c{i}")))
        file_name = f"{20000000 + i * 23:08d}"
        birads = ["1", "2", "3", "4a", "4b", "4c", "5", "6"][int(rng.integers(0, 8))] if rois else "1"
        out.append(sample.Image(file_name, patient, side, view, "ML" if view == "MLO" else view, "201001",
                                str(int(rng.integers(1, 5))), birads, "large", rois))
    return out


def generate_inbreast(out: Path, n_images: int, jobs: int) -> None:
    from medcurate.datasets.inbreast import sample

    base = out / "inbreast" / TOP
    (base / "AllDICOMs").mkdir(parents=True, exist_ok=True)
    (base / "AllXML").mkdir(exist_ok=True)
    ims = inbreast_images(n_images)
    todo = []
    for im in ims:
        dcm = base / "AllDICOMs" / f"{im.file_name}_{im.patient}_MG_{im.side}_{im.token}_ANON.dcm"
        if not dcm.is_file():
            todo.append((im, str(dcm), str(base / "AllXML" / f"{im.file_name}.xml")))
    print(f"inbreast: {len(ims)} images ({len(todo)} to write)", file=sys.stderr)
    with ProcessPoolExecutor(jobs) as pool:
        for i, _ in enumerate(pool.map(_inbreast_one, todo), start=1):
            if i % 50 == 0:
                print(f"  {i}/{len(todo)}", file=sys.stderr)
    rows = [sample.HEADER] + [["removed", "removed", im.side, im.csv_view, im.date, im.file_name, im.acr, im.birads] for im in ims]
    (base / "INbreast.csv").write_text("\n".join(";".join(r) for r in rows) + "\n", encoding="utf-8")
    config = {"datasets": ["inbreast"], "manual_dirs": {"inbreast": str(base.resolve())}}
    (out / "inbreast" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    manifest = {"dataset": "inbreast", "images": len(ims), "root": str(base),
                "inputs": sorted(f"AllDICOMs/{p.name}" for p in (base / "AllDICOMs").glob("*.dcm"))}
    (out / "inbreast" / "inputs.json").write_text(json.dumps(manifest))
    print(f"inbreast: {base}, config {out / 'inbreast' / 'config.yaml'}", file=sys.stderr)


# ------------------------------------------------------------------------------ ChestX-ray14

CXR_FINDINGS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
CXR_REAL_IMAGES, CXR_REAL_PATIENTS, CXR_ARCHIVES, CXR_SIDE = 112_120, 30_805, 12, 1024
_CXR_FIELD: np.ndarray | None = None


def _cxr_field() -> np.ndarray:
    """A 2048^2 radiograph-like texture (smooth anatomy-scale variation plus fine grain) that
    images are windows of: enough entropy that 8-bit PNG takes ~3 bits per pixel, as the real
    ~375 KB per 1024x1024 file (42 GB / 112,120)."""
    from scipy import ndimage

    rng = np.random.default_rng(14)
    coarse = np.asarray(Image.fromarray(rng.random((16, 16)).astype(np.float32)).resize((2 * FIELD // 2, 2 * FIELD // 2), Image.Resampling.BICUBIC), np.float32)
    grain = ndimage.gaussian_filter(rng.normal(0, 1, (FIELD, FIELD)).astype(np.float32), 0.8)
    return (40 + 150 * coarse.clip(0, 1) + 9 * grain).astype(np.float32)


def chest_png(name: str) -> bytes:
    global _CXR_FIELD
    if _CXR_FIELD is None:
        _CXR_FIELD = _cxr_field()
    rng = _rng(name)
    y0, x0 = rng.integers(0, FIELD - CXR_SIDE, 2)
    px = (_CXR_FIELD[y0:y0 + CXR_SIDE, x0:x0 + CXR_SIDE] * (0.8 + 0.4 * rng.random())).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="PNG", compress_level=1)  # IHDR, IDAT, IEND: no ancillary chunk
    return buf.getvalue()


def _write_chest(args: tuple[str, str]) -> int:
    name, dest = args
    data = chest_png(name)
    Path(dest).write_bytes(data)
    return len(data)


def cxr_rows(n_images: int) -> list[dict]:
    """Data_Entry rows: patients with 1..n follow-ups in the real images-per-patient ratio, findings
    drawn with roughly the real frequencies, ~77 % of patients in train_val_list."""
    rng = _rng(f"cxr14/{n_images}")
    n_patients = max(1, round(n_images * CXR_REAL_PATIENTS / CXR_REAL_IMAGES))
    owners = np.sort(rng.integers(0, n_patients, n_images))
    rows, follow = [], {}
    freq = np.array([0.103, 0.025, 0.119, 0.177, 0.052, 0.056, 0.013, 0.047, 0.042, 0.021, 0.022, 0.015, 0.030, 0.002])
    for p in owners:
        patient = int(p) + 1
        f = follow.get(patient, 0)
        follow[patient] = f + 1
        hits = [CXR_FINDINGS[i] for i in np.flatnonzero(rng.random(14) < freq)]
        rows.append({"name": f"{patient:08d}_{f:03d}.png", "labels": "|".join(hits) or "No Finding", "follow": f,
                     "patient": patient, "age": int(rng.integers(1, 95)), "sex": "MF"[int(rng.integers(0, 2))],
                     "view": ["PA", "AP"][int(rng.random() < 0.4)], "test": patient > 0.77 * n_patients})
    return rows


def generate_cxr14(out: Path, sizes: list[int], jobs: int) -> None:
    """One folder per size, chestxray14-<n>/: images_001..012.tar.gz (images/<name>.png, members
    dealt in name order as NIH's are), manual/ with the three metadata files, a catalogue entry
    with the archives as file:// sources (sha256 pinned), config.yaml. The PNGs of the largest size
    are drawn once into cxr14-src/ and the smaller sizes take their first n rows' images."""
    import tarfile

    biggest = max(sizes)
    src = out / "cxr14-src" / "images"
    src.mkdir(parents=True, exist_ok=True)
    rows = cxr_rows(biggest)
    todo = [(r["name"], str(src / r["name"])) for r in rows if not (src / r["name"]).is_file()]
    print(f"cxr14: {len(rows)} images ({len(todo)} to draw)", file=sys.stderr)
    with ProcessPoolExecutor(jobs) as pool:
        for i, _ in enumerate(pool.map(_write_chest, todo, chunksize=32), start=1):
            if i % 1000 == 0:
                print(f"  {i}/{len(todo)}", file=sys.stderr)
    for n in sorted(sizes):
        base = out / f"chestxray14-{n}"
        (base / "manual").mkdir(parents=True, exist_ok=True)
        mine = cxr_rows(n)  # its own patients and lists, images drawn under the same names
        missing = [r["name"] for r in mine if not (src / r["name"]).is_file()]
        for name in missing:
            _write_chest((name, str(src / name)))
        header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                  "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
        lines = [header] + [f"{r['name']},{r['labels']},{r['follow']},{r['patient']},{r['age']},{r['sex']},{r['view']},"
                            f"2500,2048,0.143,0.143," for r in mine]
        (base / "manual" / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (base / "manual" / "train_val_list.txt").write_text("".join(f"{r['name']}\n" for r in mine if not r["test"]))
        (base / "manual" / "test_list.txt").write_text("".join(f"{r['name']}\n" for r in mine if r["test"]))
        sources, total = [], 0
        per = -(-len(mine) // CXR_ARCHIVES)
        for a in range(CXR_ARCHIVES):
            archive = base / f"images_{a + 1:03d}.tar.gz"
            part = mine[a * per:(a + 1) * per]
            if not archive.is_file():
                tmp = archive.with_suffix(".tmp")
                with tarfile.open(tmp, "w:gz", compresslevel=1) as tf:
                    for r in part:
                        info = tf.gettarinfo(str(src / r["name"]), f"images/{r['name']}")
                        info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = 1_500_000_000, 0o644, 0, 0, "", ""
                        with open(src / r["name"], "rb") as fh:
                            tf.addfile(info, fh)
                os.replace(tmp, archive)
            total += archive.stat().st_size
            sources.append({"name": archive.name, "url": archive.resolve().as_uri(), "sha256": _sha256(archive)})
        entry = yaml.safe_load((ROOT / "workflow" / "medcurate" / "datasets" / "chestxray14" / "dataset.yaml").read_text())
        entry["sources"] = sources
        (base / "catalogue").mkdir(exist_ok=True)
        (base / "catalogue" / "chestxray14.yaml").write_text(yaml.safe_dump(entry, sort_keys=False))
        config = {"datasets": ["chestxray14"], "catalogue": str((base / "catalogue").resolve()),
                  "manual_dirs": {"chestxray14": str((base / "manual").resolve())}}
        (base / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (base / "inputs.json").write_text(json.dumps({"dataset": "chestxray14", "images": len(mine), "archive_bytes": total,
                                                      "root": str(src.parent), "inputs": [f"images/{r['name']}" for r in mine]}))
        print(f"cxr14: {base} ({len(mine)} images, {total / 1e9:.2f} GB in {CXR_ARCHIVES} archives)", file=sys.stderr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["fetal", "inbreast", "cxr14"])
    p.add_argument("--sizes", default="1000,3000,9000", help="cxr14: image counts, one folder each")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "data")
    p.add_argument("--images", type=int, help="default: 12400 (fetal), 320 (inbreast)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dataset == "cxr14":
        generate_cxr14(args.out.resolve(), [int(n) for n in args.sizes.split(",")], args.jobs)
    elif args.dataset == "fetal":
        generate_fetal(args.out.resolve(), args.images or REAL_IMAGES, args.jobs)
    else:
        generate_inbreast(args.out.resolve(), args.images or 320, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
