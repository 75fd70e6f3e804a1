#!/usr/bin/env python3
"""The PNG encoder table: every maintained encoder this machine can install, at the configured
level, on 8-bit ultrasound (FETAL_PLANES_DB) and 16-bit mammograms (INbreast), single core.

    python bench/encoders.py [--level 1] [--fetal 200] [--inbreast 12] [--repeat 3]

Inputs come from bench/generate.py's folders (bench/data/{fetal_planes_db,inbreast}/inputs.json).
Needs `pip install imagecodecs zlib-ng isal` (bench extra); an encoder whose package is missing is
left out of the table. Per encoder: ms per image (best of --repeat passes), output size relative to
Pillow at the same level, whether two encodings of the same array give the same bytes and decode to
the array, and a digest of all its outputs: run this on another machine (another CPU, OS or wheel)
and compare the digest column to see which encoders give the same bytes there.

"framed" encoders are medcurate.pngframe (what medcurate writes: "framed up + libdeflate"): rows filtered with numpy (none / up / sub), one zlib
stream from the named deflate library, IHDR + one IDAT + IEND.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, features

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow"))

from medcurate import pngframe  # noqa: E402
from medcurate.images import read_image  # noqa: E402


def pillow_png(arr: np.ndarray, level: int) -> bytes:
    """What medcurate wrote before pngframe (and the codec floor's encoder in bench/run.py)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=level, optimize=False)
    return buf.getvalue()


def encoders(level: int) -> dict:
    """name -> (function array -> PNG bytes, where its deflate comes from)."""
    out = {}
    zlib_from = f"libz {features.version('zlib')} (the system's libz.so.1 here; compiled for zlib-ng {features.version('zlib_ng') if 'zlib_ng' in features.features else '?'})"
    out["Pillow (adaptive filter)"] = (lambda a: pillow_png(a, level), zlib_from)
    try:
        import imagecodecs
    except ImportError:
        imagecodecs = None
    if imagecodecs is not None:
        zver = imagecodecs.version(dict)
        out["imagecodecs png (libpng, default filters)"] = (lambda a: imagecodecs.png_encode(a, level=level), f"libpng {zver['libpng']} + system libz")
        out["imagecodecs png (libpng, sub, RLE)"] = (
            lambda a: imagecodecs.png_encode(a, level=level, strategy=3, filter=16), f"libpng {zver['libpng']} + system libz")
        if getattr(imagecodecs, "SPNG", None) and imagecodecs.SPNG.available:
            out["imagecodecs spng"] = (lambda a: imagecodecs.spng_encode(a, level=level), f"libspng {zver['libspng']} + system libz")
    for filt in ("none", "up", "sub"):
        for lib in pngframe.DEFLATERS:
            try:
                pngframe.deflater(lib)
            except ImportError:
                continue
            out[f"framed {filt} + {lib}"] = (lambda a, f=filt, lib=lib: pngframe.encode(a, level, f, lib), pngframe.deflater_version(lib))
    return out


def load(kind: str, limit: int) -> list[np.ndarray]:
    spec = json.loads((ROOT / "bench" / "data" / ("fetal_planes_db" if kind == "fetal" else "inbreast") / "inputs.json").read_text())
    paths = [Path(spec["root"]) / p for p in spec["inputs"]]
    # an even spread over the set (sizes vary with the plane and patient)
    step = max(1, len(paths) // limit)
    paths = paths[::step][:limit]
    if kind == "fetal":
        return [read_image(p) for p in paths]
    from medcurate.dicom import read_dicom

    return [read_dicom(p) for p in paths]


def measure(fn, arrays: list[np.ndarray], repeat: int) -> dict:
    best = float("inf")
    first = None
    for _ in range(repeat):
        t = time.perf_counter()
        outs = [fn(a) for a in arrays]
        best = min(best, time.perf_counter() - t)
        first = first or outs
        if outs != first:
            return {"ms": best / len(arrays) * 1000, "bytes": sum(map(len, outs)), "same": False, "exact": False, "digest": "-"}
    exact = all(np.array_equal(np.asarray(Image.open(io.BytesIO(b))), a) for b, a in zip(first, arrays))
    digest = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in first)).hexdigest()[:12]
    return {"ms": best / len(arrays) * 1000, "bytes": sum(map(len, first)), "same": True, "exact": exact, "digest": digest}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--level", type=int, default=1, help="the configured png_compress_level (default 1)")
    p.add_argument("--fetal", type=int, default=200, help="ultrasound images to encode")
    p.add_argument("--inbreast", type=int, default=12, help="mammograms to encode")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = p.parse_args()
    table = {}
    print(f"# {platform.machine()} {platform.processor() or ''} python {platform.python_version()}, level {args.level}; "
          f"load {open('/proc/loadavg').read().split()[:3] if Path('/proc/loadavg').exists() else '?'}")
    for kind, n in (("fetal", args.fetal), ("inbreast", args.inbreast)):
        if not n:
            continue
        arrays = load(kind, n)
        raw = sum(a.nbytes for a in arrays)
        print(f"\n## {kind}: {len(arrays)} images, {arrays[0].dtype}, {raw / len(arrays) / 2**20:.2f} MB of pixels each on average")
        print("| encoder | ms / image | size vs Pillow | same bytes twice, lossless | outputs' digest | deflate from |")
        print("|---|---:|---:|---|---|---|")
        rows = {}
        for name, (fn, origin) in encoders(args.level).items():
            try:
                rows[name] = measure(fn, arrays, args.repeat) | {"from": origin}
            except (ValueError, RuntimeError, TypeError) as exc:  # e.g. an encoder without 16-bit support
                print(f"| {name} | n/a: {exc} | | | | {origin} |")
                continue
            base = rows.get("Pillow (adaptive filter)", rows[name])
            r = rows[name]
            print(f"| {name} | {r['ms']:.2f} | {r['bytes'] / base['bytes']:.2f} | "
                  f"{'yes' if r['same'] else 'NO'}, {'yes' if r['exact'] else 'NO'} | {r['digest']} | {origin} |", flush=True)
        table[kind] = rows
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
