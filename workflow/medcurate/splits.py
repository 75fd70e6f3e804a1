"""Duplicates, splits and the patient-leakage check, on the gathered manifest (a DataFrame)."""

from __future__ import annotations

import hashlib

import pandas as pd

from .errors import MedcurateError


def unit_hash(dataset: str, key: str) -> float:
    """A stable number in [0, 1) for a patient key: the same patient always lands in the same split."""
    return int(hashlib.sha256(f"{dataset}:{key}".encode()).hexdigest()[:15], 16) / 16**15


def resolve_duplicates(df: pd.DataFrame, label_columns: list[str]) -> pd.DataFrame:
    """Identical pixels under several names: keep the first case id, exclude the others; if the
    copies disagree on labels (or masks), exclude all of them. Returns one row per duplicate."""
    report = []
    keys = [c for c in label_columns + ["mask_sha256"] if c in df.columns]
    for digest, group in df.groupby("pixel_sha256", sort=True):
        if len(group) < 2:
            continue
        ids = sorted(group["case_id"])
        conflicting = group[keys].drop_duplicates().shape[0] > 1
        for idx, row in group.sort_values("case_id").iterrows():
            if conflicting:
                reason = "conflicting_duplicate:" + "|".join(i for i in ids if i != row.case_id)
            elif row.case_id == ids[0]:
                reason = ""
            else:
                reason = f"duplicate_of:{ids[0]}"
            if reason and not df.at[idx, "exclusion"]:
                df.at[idx, "exclusion"] = reason
            report.append({"group": digest[:16], "case_id": row.case_id, "patient_id": row.patient_id,
                           **{k: row[k] for k in keys}, "resolution": reason or "kept"})
    return pd.DataFrame(report)


def patient_groups(df: pd.DataFrame) -> dict[str, str]:
    """Patients linked by identical images (the same woman entered twice) share one group key."""
    parent = {p: p for p in df["patient_id"]}

    def find(p):
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for _, group in df.groupby("pixel_sha256"):
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
        linked = df.assign(group=df["patient_id"].map(groups)).groupby("group")
        for _, members in linked:
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
