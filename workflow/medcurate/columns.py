"""Column types of manifest.csv, written by publish into dataset.json ("columns") and applied by
``medcurate.load``: ids stay strings (``00000001`` is not 1), lists are lists split on one
separator (a space) in every dataset, label columns are categories in the catalogue's order."""

from __future__ import annotations

import re

import pandas as pd

from .label_policy import HARMONISED_PREFIX

LIST_SEPARATOR = " "
STRING = {"case_id", "patient_id", "split", "official_split", "source", "subset", "mask_source", "cleaning",
          "mask_sha256", "pixel_sha256", "exclusion"}
PATH = {"image", "mask"}
INT = {"width", "height", "depth", "mask_components", "curated"}
FLOAT = {"mask_area_fraction"}
# medcurate's own space-separated lists (the ';'-joined records of some publishers stay text)
LISTS = {"mask_labels": "list[int]", "spacing": "list[float]", "segmentation_ids": "list[int]", "roi_types": "list[str]"}
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|nan|-?inf")  # '007' is an id
_FILE = re.compile(r"[^ ]+/[^ ]+\.(png|nii\.gz)")


def column_types(df: pd.DataFrame, labels: dict) -> dict[str, str]:
    """The type of each column of a manifest read as strings: fixed for medcurate's columns,
    'category' for label columns, and for a dataset's own columns the narrowest of int, float,
    path and string that all its non-empty values fit (an id with a leading zero is a string)."""
    classes = labels.get("classes", {})
    types = {}
    for col in df.columns:
        values = [v for v in df[col].astype(str) if v != ""]
        if col.startswith(HARMONISED_PREFIX):  # 1 / 0 / blank in every chest X-ray set alike
            types[col] = "int"
        elif col in classes:
            types[col] = "category"
        elif col in STRING or col.endswith("_id"):
            types[col] = "string"
        elif col in PATH or _all(_FILE, values):
            types[col] = "path"
        elif col in INT:
            types[col] = "int"
        elif col in FLOAT:
            types[col] = "float"
        elif col in LISTS:
            types[col] = LISTS[col]
        elif _all(_INT, values):
            types[col] = "int"
        elif _all(_FLOAT, values):
            types[col] = "float"
        else:
            types[col] = "string"
    return types


def _all(pattern: re.Pattern, values: list[str]) -> bool:
    return bool(values) and all(pattern.fullmatch(v) for v in values)


def apply(df: pd.DataFrame, types: dict[str, str], labels: dict) -> pd.DataFrame:
    """A manifest read as strings, typed: ints as nullable Int64, floats (empty -> NaN), lists
    as Python lists (empty -> []), categories with the catalogue's class names in order."""
    out = df.copy()
    classes = labels.get("classes", {})
    for col, kind in types.items():
        if col not in out.columns:
            continue
        s = out[col].astype(str)
        if kind == "int":
            out[col] = pd.array([int(v) if v != "" else None for v in s], dtype="Int64")
        elif kind == "float":
            out[col] = pd.array([float(v) if v != "" else float("nan") for v in s], dtype="float64")
        elif kind.startswith("list["):
            item = {"list[int]": int, "list[float]": float, "list[str]": str}[kind]
            out[col] = [[item(t) for t in v.split(LIST_SEPARATOR) if t] for v in s]
        elif kind == "category":
            names = [str(c) for c in classes[col]]
            if unknown := sorted(set(s) - set(names) - {""}):
                raise ValueError(f"column {col!r} holds {unknown[:5]}, not among dataset.json's classes {names}")
            out[col] = pd.Categorical(s.replace("", None), categories=names)
        else:
            out[col] = s.astype("string")
    return out
