#!/usr/bin/env python3
"""What would move the codec floor: per-image decode/encode cost of the PNG paths, single core.

    python bench/codecs.py DIR_OF_PNGS [--limit 200]

Pillow (what medcurate uses: medcurate.images) at compress levels 0, 1, 6, against imagecodecs
(libpng/zlib-ng, libspng where built in) when it is installed (`pip install imagecodecs`; not a
dependency of medcurate). Prints ms per image and output size relative to Pillow level 1.
"""

from __future__ import annotations

import argparse
import io
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _time(fn, items) -> tuple[float, list]:
    t = time.perf_counter()
    try:
        out = [fn(x) for x in items]
    except (ValueError, RuntimeError, TypeError) as exc:  # e.g. a codec without 16-bit support (SpngError is a RuntimeError)
        print(f"  ({getattr(fn, '__name__', 'codec')}: {exc})")
        return float("nan"), [b""]
    return (time.perf_counter() - t) / len(items) * 1000, out


def pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def pil_encode(level: int):
    def enc(arr: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", compress_level=level, optimize=False)
        return buf.getvalue()
    return enc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("folder", type=Path)
    p.add_argument("--limit", type=int, default=200)
    args = p.parse_args()
    files = sorted(args.folder.rglob("*.png"))[: args.limit]
    blobs = [f.read_bytes() for f in files]
    print(f"{len(blobs)} PNGs, {sum(map(len, blobs)) / len(blobs) / 1024:.0f} KB each on average")
    rows = []
    ms, arrays = _time(pil_decode, blobs)
    rows.append(("decode  Pillow", ms, None))
    base = None
    for level in (1, 0, 6):
        ms, out = _time(pil_encode(level), arrays)
        size = sum(map(len, out))
        base = base or size
        rows.append((f"encode  Pillow level {level}", ms, size / base))
    try:
        import imagecodecs
    except ImportError:
        imagecodecs = None
    if imagecodecs is not None:
        ms, _ = _time(imagecodecs.png_decode, blobs)
        rows.append(("decode  imagecodecs png (libpng)", ms, None))
        if getattr(imagecodecs, "SPNG", None) and imagecodecs.SPNG.available:
            ms, _ = _time(imagecodecs.spng_decode, blobs)
            rows.append(("decode  imagecodecs spng", ms, None))
        for level in (1, 6):
            ms, out = _time(lambda a, level=level: imagecodecs.png_encode(a, level=level), arrays)
            rows.append((f"encode  imagecodecs png level {level}", ms, sum(map(len, out)) / base))
        if getattr(imagecodecs, "SPNG", None) and imagecodecs.SPNG.available:
            ms, out = _time(lambda a: imagecodecs.spng_encode(a, level=1), arrays)
            rows.append(("encode  imagecodecs spng level 1", ms, sum(map(len, out)) / base))
    for name, ms, rel in rows:
        if not math.isnan(ms):
            print(f"  {name:<36} {ms:7.2f} ms/image" + (f"   size x{rel:.2f} of Pillow level 1" if rel else ""))


if __name__ == "__main__":
    main()
