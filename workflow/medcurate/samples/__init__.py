"""The sample mirror: small deterministic archives in each publisher's real layout.

Names, folders, delimiters, header quirks (the 'Train ' trailing space, BOMs, two-space headers),
mask colours and nested zips follow ../shared/docs/DATASETS.md and the real excerpts in
../shared/realdata; pixel content is synthetic. ``medcurate samples --out DIR`` writes them and
prints the sha256 pins that config/sample.yaml carries. One module per dataset family; each
builder writes ``<out>/<dataset>/...`` and returns the files it wrote.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import lzma
import pkgutil
import re
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_path, file_digest

ZIP_TIME = (2020, 6, 22, 12, 0, 0)
TAR_MTIME = 1673827200  # 2023-01-16, the African record's publication date

# ---------------------------------------------------------------- synthetic pixels


def seeded(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()



def mammogram(name: str, size: tuple[int, int], bits: int = 14) -> np.ndarray:
    """A breast-shaped 16-bit frame (``bits`` stored bits) on a dark background, deterministic per
    name; smooth so the sample archives stay small. Breast on the left, chest wall at x=0."""
    w, h = size
    rng = seeded(name)
    coarse = rng.integers(0, 1 << 10, size=(8, 6)).astype(np.float32)
    tex = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    edge = w * (0.55 + 0.15 * rng.random()) * np.sqrt(np.clip(1 - ((yy - h / 2) / (h * 0.48)) ** 2, 0, 1))
    top = (1 << bits) - 1
    px = np.where(xx < edge, top * 0.45 + tex - (xx / w) * top * 0.2, top * 0.02)
    return (np.round(px / 64) * 64).clip(0, top).astype(np.uint16)  # banded: compresses well


# ---------------------------------------------------------------- deterministic archives


def zip_bytes(members: dict[str, bytes], store: tuple[str, ...] = ()) -> bytes:
    """A zip with fixed timestamps and modes, members in the given order; members whose names end
    in one of ``store`` are stored, not deflated (already compressed, e.g. .nii.gz)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED if store and name.endswith(store) else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=6)
    return buf.getvalue()


def write_zip(dest: Path, members: dict[str, bytes], store: tuple[str, ...] = ()) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(zip_bytes(members, store))


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """An uncompressed tar with fixed mtimes and modes; folder entries for nested members."""
    dirs = sorted({str(Path(n).parents[i]) for n in members for i in range(len(Path(n).parents) - 1)})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, TAR_MTIME
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, TAR_MTIME
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_tar(dest: Path, members: dict[str, bytes]) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(tar_bytes(members))


def write_tar_xz(dest: Path, members: dict[str, bytes]) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(lzma.compress(tar_bytes(members), preset=6))


def write_tar_gz(dest: Path, members: dict[str, bytes]) -> None:
    """gzip header without file name or time, so equal members give equal bytes."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(gzip.compress(tar_bytes(members), compresslevel=6, mtime=0))


def xlsx_bytes(book, when) -> bytes:
    """An openpyxl workbook saved with fixed creation/modification times (openpyxl stamps 'now'
    into docProps/core.xml) and fixed zip timestamps: same bytes on every run."""
    book.properties.creator = "medcurate sample"
    book.properties.created = when
    buf = io.BytesIO()
    book.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    members["docProps/core.xml"] = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                          rb"\g<1>" + stamp + rb"\g<2>", members["docProps/core.xml"])
    return zip_bytes(members)


def csv_bytes(rows: list[list[str]], delimiter: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


# ---------------------------------------------------------------- registry


def builders() -> dict:
    """dataset id -> builder(out) -> [paths], from every module here that lists ``DATASETS``."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.update({ds: getattr(module, ds) for ds in getattr(module, "DATASETS", ())})
    return found


def build(out: Path, datasets: list[str] | None = None) -> dict[str, str]:
    """Write the mirror; return '<dataset>/<path below it>' -> sha256 pins."""
    known = builders()
    pins = {}
    for ds in datasets or list(known):
        for path in known[ds](out):
            pins[path.relative_to(out).as_posix()] = file_digest(path)
    return pins
