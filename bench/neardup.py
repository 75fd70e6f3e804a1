"""The near-duplicate check (neardup.flag, run by gather) at the Kaggle nerve set's real scale.

    python bench/neardup.py                      # 5,635 frames of 580x420 in 47 subjects
    python bench/neardup.py --cases 1000 --subjects 10

Writes grey PNG frames and 0/1 masks into two shard folders under bench/data/neardup/ (every
subject's frames are a slowly drifting speckle sequence, so consecutive frames are near-duplicates;
every 10th pair gets contradictory masks), then times flag() in this process and prints wall, CPU,
peak RSS growth (VmHWM) and what it found.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from medcurate import neardup

SIZE = (420, 580)  # rows, columns of the competition's frames


def generate(root: Path, cases: int, subjects: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for shard in (0, 1):
        for sub in ("images", "masks"):
            (root / f"shard-{shard}" / sub).mkdir(parents=True, exist_ok=True)
    per = cases // subjects
    for s in range(subjects):
        base = rng.normal(100, 30, SIZE)
        for i in range(per):
            base = base + rng.normal(0, 3, SIZE)  # drift: neighbours correlate, distant frames less so
            case = f"{s + 1}_{i + 1}"
            mask = np.zeros(SIZE, np.uint8)
            if (i // 2) % 10 != 9 or i % 2 == 0:  # every 10th pair: second frame's mask is empty
                mask[150:230, 200:320] = 1
            shard = root / f"shard-{len(rows) % 2}"
            Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(shard / "images" / f"{case}.png", compress_level=1)
            Image.fromarray(mask).save(shard / "masks" / f"{case}.png", compress_level=1)
            rows.append({"case_id": case, "patient_id": f"subject{s + 1}", "image": f"images/{case}.png",
                         "mask": f"masks/{case}.png", "pixel_sha256": case, "exclusion": ""})
    return pd.DataFrame(rows)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5635)
    parser.add_argument("--subjects", type=int, default=47)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data" / "neardup")
    args = parser.parse_args()
    t = time.perf_counter()
    df = generate(args.out, args.cases, args.subjects)
    print(f"generated {len(df)} frames in {args.subjects} subjects: {time.perf_counter() - t:.0f} s")
    before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    pairs = neardup.flag(df, [args.out / "shard-0", args.out / "shard-1"], {})
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"neardup.flag: {wall:.1f} s wall, {cpu:.1f} s CPU, {wall / len(df) * 1000:.2f} ms per frame; "
          f"peak RSS {peak_rss_mb():.0f} MB (+{peak_rss_mb() - before:.0f} MB over generation)")
    conflicts = int(pairs["conflict"].astype(int).sum()) if len(pairs) else 0
    print(f"near-duplicate pairs {len(pairs)}, conflicting {conflicts}, cases excluded "
          f"{int((df['exclusion'] != '').sum())}")


if __name__ == "__main__":
    main()
