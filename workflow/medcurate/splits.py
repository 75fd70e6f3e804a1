"""Duplicates, splits and the patient-leakage check (the split step), on the selected table."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from .atomic import atomic_dir, write_text
from .errors import MedcurateError
from .tiers import read_table, write_frame


def unit_hash(dataset: str, key: str) -> float:
    """A stable number in [0, 1) for a patient key: the same patient always lands in the same split."""
    return int(hashlib.sha256(f"{dataset}:{key}".encode()).hexdigest()[:15], 16) / 16**15


def resolve_duplicates(df: pd.DataFrame, label_columns: list[str]) -> pd.DataFrame:
    """Identical pixels under several names: keep the first case id, exclude the others; if the
    copies disagree on labels (or masks), exclude all of them. Returns one row per duplicate."""
    report = []
    keys = [c for c in label_columns + ["mask_sha256", "boxes_sha256"] if c in df.columns]
    # only the copies, in plain Python: every unique image (seconds at 100k), or a pandas frame per
    # group (~2 ms each, 0.4 s for FETAL's 190 groups) would cost more than the rest of the step
    copies = df[df["pixel_sha256"].duplicated(keep=False)].sort_values(["pixel_sha256", "case_id"])
    rows = copies[["pixel_sha256", "case_id", "patient_id", *keys]].itertuples(index=False, name=None)
    groups: dict[str, list] = {}
    for idx, (digest, *values) in zip(copies.index, rows):
        groups.setdefault(digest, []).append((idx, values))
    for digest, members in groups.items():
        ids = [case_id for _, (case_id, *_) in members]
        conflicting = len({tuple(labels) for _, (_, _, *labels) in members}) > 1
        for idx, (case_id, patient_id, *labels) in members:
            if conflicting:
                reason = "conflicting_duplicate:" + "|".join(i for i in ids if i != case_id)
            elif case_id == ids[0]:
                reason = ""
            else:
                reason = f"duplicate_of:{ids[0]}"
            if reason and not df.at[idx, "exclusion"]:
                df.at[idx, "exclusion"] = reason
            report.append({"group": digest[:16], "case_id": case_id, "patient_id": patient_id,
                           **dict(zip(keys, labels)), "resolution": reason or "kept"})
    return pd.DataFrame(report)


def patient_groups(df: pd.DataFrame) -> dict[str, str]:
    """Patients linked by identical images (the same woman entered twice) share one group key."""
    parent = {p: p for p in df["patient_id"]}

    def find(p):
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    copies = df[df["pixel_sha256"].duplicated(keep=False)]
    for _, group in copies.groupby("pixel_sha256"):
        patients = sorted(set(group["patient_id"]))
        for other in patients[1:]:
            a, b = find(patients[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {p: find(p) for p in parent}


def assign(df: pd.DataFrame, dataset: str, curation: dict) -> list[str]:
    """Fill the 'split' column. Official splits are kept; validation is carved from train by
    patient hash; without an official split, or one whose test labels were withheld (every labelled
    case is official train), test and validation are both drawn by patient hash."""
    warnings = []
    groups = patient_groups(df)
    u = df["patient_id"].map(lambda p: unit_hash(dataset, groups[p]))
    val, test = curation["val_fraction"], curation["test_fraction"]
    official = df["official_split"]
    if (official != "").any():
        if (official == "").any():
            raise MedcurateError(dataset, "some cases have an official split and others none")
        carve = test if not (official == "test").any() else 0.0
        if carve:
            warnings.append(f"the official split holds no labelled test case: test carved from train by patient hash (test_fraction {carve})")
        train = official == "train"
        df["split"] = official.where(~(train & (u < carve + val)), "val").where(~(train & (u < carve)), "test")
        if curation.get("split_conflicts") == "move_to_test":
            # A publisher's split that puts one patient in train and test leaks; keep train clean.
            spread = df.groupby("patient_id")["split"].nunique()
            moved = sorted(spread[spread > 1].index)
            if moved:
                df.loc[df["patient_id"].isin(moved), "split"] = "test"
                warnings.append(f"{len(moved)} patient(s) in several official splits moved wholly to test: {', '.join(moved[:20])}"
                                + (" ..." if len(moved) > 20 else ""))
        # Linked patients (identical images) whose official splits differ are reported.
        linked = df.assign(group=df["patient_id"].map(groups))
        shared = linked.groupby("group")["patient_id"].transform("nunique") > 1
        for _, members in linked[shared].groupby("group"):
            patients, found = sorted(set(members["patient_id"])), sorted(set(members["split"]))
            if len(patients) > 1 and len(found) > 1:
                warnings.append(f"patients {', '.join(patients)} share identical images but sit in splits {'/'.join(found)}")
    else:
        df["split"] = "train"
        df.loc[u < test + val, "split"] = "val"
        df.loc[u < test, "split"] = "test"
    return warnings


def check_disjoint(df: pd.DataFrame, dataset: str) -> None:
    """No patient in two splits; the job fails otherwise."""
    spread = df.groupby("patient_id")["split"].nunique()
    leaking = sorted(spread[spread > 1].index)
    if leaking:
        detail = "; ".join(f"{p}: {'/'.join(sorted(set(df.loc[df.patient_id == p, 'split'])))}" for p in leaking[:10])
        raise MedcurateError(dataset, f"{len(leaking)} patient(s) in more than one split ({detail})")


def normalise_patients(df: pd.DataFrame) -> list[str]:
    """Patient ids that differ only by surrounding whitespace or letter case are one patient
    (a re-typed spreadsheet cell must not split a woman in two): all take one spelling, reported."""
    warnings = []
    stripped = df["patient_id"].str.strip()
    if (changed := int((stripped != df["patient_id"]).sum())):
        warnings.append(f"{changed} patient id(s) had surrounding whitespace, removed")
    df["patient_id"] = stripped
    spellings = df.groupby(df["patient_id"].str.casefold())["patient_id"].unique()
    merged = {s: sorted(v)[0] for v in spellings for s in v if len(v) > 1}
    if merged:
        groups = sorted({tuple(sorted(v)) for v in spellings if len(v) > 1})
        warnings.append("patient ids differing only by letter case taken as one patient: "
                        + "; ".join("/".join(g) for g in groups[:20]) + (" ..." if len(groups) > 20 else ""))
        df["patient_id"] = df["patient_id"].map(lambda p: merged.get(p, p))
    return warnings


SEVERITY = {"train": 0, "val": 1, "test": 2}


def follow_source(df: pd.DataFrame, options: dict, source: pd.DataFrame) -> tuple[dict, list[str]]:
    """Patients shared with another built dataset (rows whose derived_from names it) take that
    dataset's split, with every patient linked to them here; a linked group whose members sit in
    several splits there goes wholly to the strictest (test, then val). Returns (summary, warnings)."""
    shared, warnings = options["shared_patients"], []
    theirs = dict(zip(source["patient_id"], source["split"]))  # the source's split step made it one per patient
    marked = df["derived_from"] == shared["derived_from"] if "derived_from" in df.columns else pd.Series(False, df.index)
    groups = patient_groups(df)
    found: dict[str, set[str]] = {}
    for patient in sorted(set(df.loc[marked, "patient_id"]) & theirs.keys()):
        found.setdefault(groups[patient], set()).add(theirs[patient])
    target = {g: max(s, key=SEVERITY.__getitem__) for g, s in found.items()}
    for g, s in sorted(found.items()):
        if len(s) > 1:
            warnings.append(f"patients linked to {g} sit in splits {'/'.join(sorted(s, key=SEVERITY.__getitem__))} of {shared['dataset']}: all put in {target[g]} here")
    key = df["patient_id"].map(groups)
    follow = key.isin(target.keys())
    changed = follow & (df["split"] != key.map(target))
    df.loc[follow, "split"] = key[follow].map(target)
    patients = df.loc[follow].drop_duplicates("patient_id")
    summary = {"dataset": shared["dataset"], "derived_from": shared["derived_from"], "patients": len(patients),
               "moved_cases": int(changed.sum()),
               "splits": {s: int((patients["split"] == s).sum()) for s in SEVERITY},
               "not_in_source": int(df.loc[marked, "patient_id"].map(lambda p: p not in theirs).sum())}
    return summary, warnings


def empty_splits(df: pd.DataFrame) -> list[str]:
    """The splits without a curated case (a model cannot be trained or tested there)."""
    return [s for s in SEVERITY if not ((df["split"] == s) & (df["curated"] == 1)).any()]


def split_dataset(selected: pd.DataFrame, step: dict, tier_dirs: list[Path], source: pd.DataFrame | None = None
                  ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[str]]:
    """The split step on the selected table: duplicates, near-duplicates, splits, the leakage
    check and the curated flag; ``source``: the split table of the dataset whose split shared
    patients follow (split_source). Returns (table, reports by name, warnings)."""
    df, ds, options = selected.copy(), step["id"], step["split"]
    warnings = normalise_patients(df)
    label_columns = list(step["labels"].get("classes", {}))
    reports = {}
    if options["dedupe"]:
        reports["duplicates"] = resolve_duplicates(df, label_columns)
    if options.get("near_duplicates") is not None:
        from . import neardup  # thumbnails of the converted images: only where asked for

        reports["near_duplicates"] = neardup.flag(df, tier_dirs, options["near_duplicates"])
    warnings += assign(df, ds, options)
    if options.get("split_source"):
        if source is None:
            raise MedcurateError(ds, f"split_source is {options['split_source']}, but its split table was not given")
        summary, more = follow_source(df, options, source)
        warnings += more
        df.attrs["shared_patients"] = summary  # what followed, for report.json
    check_disjoint(df, ds)
    df["curated"] = (df["exclusion"] == "").astype(int)
    if not df["curated"].any():
        raise MedcurateError(ds, "dataset is empty after curation: every case was excluded")
    for s in empty_splits(df):
        warnings.append(f"split '{s}' has no curated case ({int((df['split'] == s).sum())} case(s) in it, all excluded or none)")
    return df, {k: v for k, v in reports.items() if not v.empty}, warnings


def split_step(selected: Path, step: dict, tiers: list[Path], out: Path, source_splits: list[Path] = ()) -> None:
    """The split step's folder: table.csv (with split and curated), the duplicate and
    near-duplicate reports, report.json (the warnings, the splits left without a curated case and
    what shared patients followed). ``source_splits``: the split folder of split_source."""
    source = None
    if source_splits:
        source = read_table(Path(source_splits[0]) / "table.csv")
        if not {"patient_id", "split"} <= set(source.columns):
            raise MedcurateError(Path(source_splits[0]) / "table.csv", "not a split table: needs patient_id and split")
    table, reports, warnings = split_dataset(read_table(selected), step, tiers, source)
    report = {"warnings": warnings, "empty_splits": empty_splits(table)}
    if "shared_patients" in table.attrs:
        report["shared_patients"] = table.attrs["shared_patients"]
    with atomic_dir(out) as stage:
        write_frame(table, stage / "table.csv")
        for name, report_frame in reports.items():
            write_frame(report_frame, stage / f"{name}.csv")
        write_text(stage / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


def cv_folds(df: pd.DataFrame, dataset: str, k: int = 5) -> dict[str, int]:
    """Cross-validation fold (0..k-1) of each train/val case, grouped by patient, so no fold puts
    a patient on both sides (ACDC: both frames of a patient together). Fold 0 is the published
    split (its val patients); the train patients go round-robin over folds 1..k-1 in the order of
    a patient hash, so the folds are balanced and the same on every build. Without val patients
    all k folds are drawn that way. Test cases have no fold."""
    pool = df[df["split"].isin(["train", "val"])]
    val = set(pool.loc[pool["split"] == "val", "patient_id"])
    rest = sorted(set(pool["patient_id"]) - val, key=lambda p: (unit_hash(f"{dataset}:fold", p), p))
    first, spread = (1, k - 1) if val else (0, k)
    fold = {p: 0 for p in val} | {p: first + i % spread for i, p in enumerate(rest)}
    return {c: fold[p] for c, p in zip(pool["case_id"], pool["patient_id"])}


def nnunet_splits(df: pd.DataFrame, dataset: str, k: int = 5) -> list[dict[str, list[str]]]:
    """nnU-Net's splits_final.json: k folds of {'train': [...], 'val': [...]} case ids."""
    fold = cv_folds(df, dataset, k)
    return [{"train": sorted(c for c, f in fold.items() if f != i), "val": sorted(c for c, f in fold.items() if f == i)}
            for i in range(k)]
