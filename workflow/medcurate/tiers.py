"""The files a step leaves in its tier folder (work/<dataset>/<step>/shard-<i>/) for the next one."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_open, file_digest, write_text
from .walk import files_below

PART = "part.csv"  # one row per case: manifest columns and the dataset module's facts
SUMS = "files.sha256"  # digest of every file written, so no later step re-reads one to hash it
QUARANTINE = "quarantine.csv"
QUARANTINE_FIELDS = ["case_id", "patient_id", "source", "reason"]
FACTS = "facts.json"  # facts about the release as a whole (module.dataset_facts), for dataset.json
RAW_MASKS = "raw_masks"  # label maps before the clean step; results/ links the cleaned ones
BOXES = "boxes.csv"  # detection: one row per box (boxes.py); publish gathers the shards' into one
BOOKKEEPING = {PART, SUMS, QUARANTINE, FACTS, BOXES}

if TYPE_CHECKING:  # the Snakefile imports this module (through exports): pandas only where a table is read
    import pandas as pd


def read_table(path: Path) -> pd.DataFrame:
    """A step table as written: every value a string (ids keep their leading zeros)."""
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_table(dest: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    """Rows as CSV, with every row's columns in first-seen order."""
    if fields is None:
        fields = []
        for row in rows:
            fields += [k for k in row if k not in fields]
    with atomic_open(dest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields or ["case_id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_frame(df: pd.DataFrame, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(dest, "w", newline="", encoding="utf-8") as fh:
        df.to_csv(fh, index=False, lineterminator="\n")


def write_sums(dest: Path, sums: dict[str, str]) -> None:
    write_text(dest, "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))


def read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    return sums


def write_checksums(folder: Path, known: dict[str, str]) -> None:
    """SHA256SUMS of every file in ``folder`` (results/ or an export). Digests in ``known`` come
    from the steps that wrote the files (hard links of the same bytes); only the rest are hashed."""
    names = sorted(rel for rel, _ in files_below(folder) if rel != "SHA256SUMS")
    lines = [f"{known.get(name) or file_digest(folder / name)}  {name}\n" for name in names]
    (folder / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")
