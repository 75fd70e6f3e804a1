"""The publish step: the results folder of the output contract -- images/, masks/, manifest.csv,
quarantine.csv, dataset.json, qc/, SHA256SUMS -- built in a staging folder that replaces the old
one whole. Images and masks are hard links into the converted and cleaned tiers (work/), so the
results cost no second copy; nothing is decoded here but the QC montage's samples."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from . import __version__, boxes, columns, curation, qc
from .atomic import atomic_dir, link
from .tiers import BOOKKEEPING, FACTS, QUARANTINE, QUARANTINE_FIELDS, RAW_MASKS, SUMS, read_sums, read_table, write_checksums
from .walk import files_below

log = logging.getLogger("medcurate.publish")

LEAD = ["case_id", "patient_id", "split", "official_split", "image", "mask"]
TAIL = ["width", "height", "source", "subset"]
SEG = ["mask_source", "mask_labels", "mask_area_fraction", "mask_components", "mask_sha256", "cleaning"]
END = ["pixel_sha256", "curated", "exclusion"]


def publish(step: dict, tiers: list[Path], split_dir: Path, out: Path, fetch_records: list[dict], threads: int = 1) -> dict:
    """``tiers``: the converted shard folders, then the cleaned ones (whose masks/ win)."""
    ds = step["id"]
    df = read_table(split_dir / "table.csv")
    df["curated"] = df["curated"].astype(int)
    # a cleaned shard carries its converted shard's list: one row per case
    quarantine = _concat([d / QUARANTINE for d in tiers if (d / QUARANTINE).is_file()], QUARANTINE_FIELDS).drop_duplicates()
    reports = {name: read_table(split_dir / f"{name}.csv") for name in ("duplicates", "near_duplicates")
               if (split_dir / f"{name}.csv").is_file()}
    split_report = json.loads((split_dir / "report.json").read_text(encoding="utf-8"))
    warnings = split_report["warnings"]
    label_columns = list(step["labels"].get("classes", {}))
    df = df[_columns(df, step, label_columns)]

    sums = {}
    for tier in tiers:
        sums.update(read_sums(tier / SUMS))
    with atomic_dir(out) as stage:
        for tier in tiers:
            _link_tier(tier, stage)
        if step["task"] == "volume_segmentation":
            from . import volumes

            df = volumes.nnunet_layout(df, stage, step, sums)
        box_counts = boxes.publish(df, tiers, stage, step) if step["task"] == "detection" else None
        _csv(df, stage / "manifest.csv")
        _csv(quarantine.sort_values("case_id"), stage / "quarantine.csv")
        for name, report in reports.items():
            _csv(report, stage / "qc" / f"{name}.csv")
        (stage / "qc").mkdir(exist_ok=True)
        qc.montage(df, stage, step, stage / "qc" / "montage.png", len(quarantine), threads)
        info = _dataset_json(step, df, quarantine, reports.get("duplicates", pd.DataFrame()), warnings, fetch_records)
        if box_counts is not None:
            info["counts"]["boxes_per_class"] = box_counts
        if "near_duplicates" in reports:
            near = reports["near_duplicates"]
            info["counts"]["near_duplicate_pairs"] = len(near)
            info["counts"]["near_duplicate_conflicts"] = int(near["conflict"].astype(int).sum())
        # splits without a curated case (also among the warnings); what shared patients followed
        info["empty_splits"] = split_report.get("empty_splits", [])
        if "shared_patients" in split_report:
            info["shared_patients"] = split_report["shared_patients"]
        if facts := [json.loads((d / FACTS).read_text(encoding="utf-8")) for d in tiers if (d / FACTS).is_file()]:
            info["release_facts"] = facts[0]  # e.g. columns read under a documented alias
        _json(info["counts"], stage / "qc" / "stats.json")
        info["columns"] = columns.column_types(df, step["labels"])  # medcurate.load applies them
        _json(info, stage / "dataset.json")
        write_checksums(stage, sums)
    for w in warnings:
        log.warning("%s: %s", ds, w)
    log.info("%s: %d cases (%d curated), %d quarantined -> %s", ds, len(df), int(df.curated.sum()), len(quarantine), out)
    return info["counts"]


def _concat(paths: list[Path], fields: list[str] | None = None) -> pd.DataFrame:
    frames = [read_table(p) for p in paths]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=fields or [])


def _columns(df: pd.DataFrame, plan: dict, label_columns: list[str]) -> list[str]:
    """Fixed columns first, then the dataset's own (sorted), then curation; segmentation-only
    columns are dropped for classification datasets."""
    seg = SEG if plan["task"] not in ("classification", "detection") else []
    known = set(LEAD + label_columns + TAIL + SEG + END)
    own = sorted(c for c in df.columns if c not in known)
    return LEAD + label_columns + TAIL + seg + own + END


def _dataset_json(plan, df, quarantine, duplicates, warnings, fetch_records) -> dict:
    by_reason = curation.exclusion_counts(df)
    counts = {
        "cases": len(df),
        "curated": int(df.curated.sum()),
        "patients": int(df.patient_id.nunique()),
        "quarantined": len(quarantine),
        "splits": {s: {"cases": int((df.split == s).sum()), "curated": int(((df.split == s) & (df.curated == 1)).sum()),
                       "patients": int(df.loc[df.split == s, "patient_id"].nunique())}
                   for s in ("train", "val", "test")},
        "exclusions": by_reason,
        "labels": {c: {k: int(v) for k, v in sorted(df.loc[df.curated == 1, c].value_counts().items())}
                   for c in plan["labels"].get("classes", {})},
        "duplicate_groups": int(duplicates["group"].nunique()) if not duplicates.empty else 0,
    }
    if plan["task"] not in ("classification", "detection"):
        present = df.loc[df.curated == 1, "mask_labels"].str.split().explode().dropna()
        names = {str(v): k for k, v in plan["labels"]["mask"].items()}
        counts["masks_with_label"] = {names[v]: int(n) for v, n in sorted(present.value_counts().items())}
    return {
        "id": plan["id"],
        "name": plan["name"],
        "task": plan["task"],
        "modality": plan["modality"],
        "license": plan["license"],
        "citation": plan["citation"],
        "homepage": plan["homepage"],
        "labels": plan["labels"],
        "sources": [_source(plan, r) for r in fetch_records],
        "options": {s: plan[s] for s in ("convert", "clean", "select", "split", "qc")},
        "counts": counts,
        "warnings": warnings,
        "medcurate_version": __version__,
        "config_digest": plan["config_digest"],
    } | _subset(fetch_records)


def _subset(records: list[dict]) -> dict:
    """A build from the first N subjects of a source says so (options.<id>.fetch.subset)."""
    parts = {r["name"]: r["subset"] for r in records if r.get("subset")}
    return {"subset": parts} if parts else {}


def _source(plan: dict, record: dict) -> dict:
    src = next((s for s in plan["sources"] if s["name"] == record.get("name")), None)
    if src is None:  # placed by the user (gated dataset): an archive with its sha256, or a folder
        return {"origin": "manual", **{k: record[k] for k in ("name", "kind", "size", "sha256", "checksum_source") if k in record}}
    keep = {k: record.get(k) for k in ("name", "size", "md5", "sha256", "checksum_source")}
    keep |= {k: record[k] for k in ("kind", "files", "subset") if k in record}  # a folder source
    keep["url"] = src.get("catalogue_url", record.get("url"))
    if src.get("served_from"):
        keep["served_from"] = src["served_from"]
    return keep


def _csv(df: pd.DataFrame, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(dest, index=False, lineterminator="\n")


def _json(obj: dict, dest: Path) -> None:
    dest.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _link_tier(tier: Path, stage: Path) -> None:
    """Hard-link a tier's images and masks into the stage."""
    for rel, src in files_below(tier):
        # dot files are temporaries of a killed write; raw masks give way to cleaned ones
        if rel in BOOKKEEPING or rel.split("/", 1)[0] == RAW_MASKS or rel.rpartition("/")[2].startswith("."):
            continue
        link(src, stage / rel)
