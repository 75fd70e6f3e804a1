"""The chest X-ray family's shared pieces: one harmonised vocabulary, each dataset's mapping to it,
the per-image view, and the gzipped CSV reader MIMIC-CXR-JPG and PadChest need.

Harmonised vocabulary: the 14 ChestX-ray14 findings plus the CheXpert observations it lacks (21
names, ``VOCABULARY``). Every family member writes one manifest column ``h_<name>`` per name beside
its own labels, with one meaning everywhere:

    1   the finding is reported          0   reported absent (or, for positive-only label sets,
                                              not among the image's labels)
    -1  uncertain (CheXpert labeller;     ''  unknown: not mentioned (CheXpert labeller), or the
        resolved by the select step's         dataset cannot provide this finding at all
        uncertain_labels policy)

A dataset that cannot provide a finding has no source term for it in ``MAPPING``; its column is
blank on every row and its catalogue entry declares the column's only value as ''. The mapping is
ours, built from each publisher's label names (docs/chest-xray.md has the table and sources; the
PadChest and Open-i term spellings beyond those torchxrayvision matches are UNCONFIRMED). Terms are
matched exactly (after lower-casing), never as substrings: 'granuloma' must not fire on
'calcified granuloma'.
"""

from __future__ import annotations

import functools
import gzip
import io
import warnings
import zlib
from pathlib import Path

import pandas as pd

from ..errors import MedcurateError

# ChestX-ray14's 14 in its own order, then the CheXpert observations it lacks ('Pleural Effusion'
# is ChestX-ray14's 'Effusion').
VOCABULARY = ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
              "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural_thickening", "hernia",
              "no_finding", "enlarged_cardiomediastinum", "lung_opacity", "lung_lesion", "pleural_other",
              "fracture", "support_devices"]

# CheXpert labeller observations (CheXpert train.csv / valid.csv and MIMIC-CXR-JPG's label tables).
CHEXPERT = {"Atelectasis": "atelectasis", "Cardiomegaly": "cardiomegaly", "Consolidation": "consolidation",
            "Edema": "edema", "Enlarged Cardiomediastinum": "enlarged_cardiomediastinum", "Fracture": "fracture",
            "Lung Lesion": "lung_lesion", "Lung Opacity": "lung_opacity", "No Finding": "no_finding",
            "Pleural Effusion": "effusion", "Pleural Other": "pleural_other", "Pneumonia": "pneumonia",
            "Pneumothorax": "pneumothorax", "Support Devices": "support_devices"}

# dataset -> harmonised name -> the dataset's own terms for it (lower case). Own terms are: a
# ChestX-ray14 'Finding Labels' name, a CheXpert observation, a PadChest 'Labels' entry, an Open-i
# MeSH major term (matched whole, or as the head before '/' qualifiers, e.g. 'cardiomegaly/mild').
MAPPING: dict[str, dict[str, list[str]]] = {
    "chestxray14": {
        "atelectasis": ["atelectasis"], "cardiomegaly": ["cardiomegaly"], "effusion": ["effusion"],
        "infiltration": ["infiltration"], "mass": ["mass"], "nodule": ["nodule"], "pneumonia": ["pneumonia"],
        "pneumothorax": ["pneumothorax"], "consolidation": ["consolidation"], "edema": ["edema"],
        "emphysema": ["emphysema"], "fibrosis": ["fibrosis"], "pleural_thickening": ["pleural_thickening"],
        "hernia": ["hernia"], "no_finding": ["no finding"],
    },
    # Lung Lesion covers masses and nodules without telling them apart: mass/nodule stay unknown.
    "chexpert": {h: [own.lower()] for own, h in CHEXPERT.items()},
    "mimic_cxr_jpg": {h: [own.lower()] for own, h in CHEXPERT.items()},
    # PadChest label names from the paper's label hierarchy; synonyms as torchxrayvision groups them
    # (DATASETS.md section 17) but matched whole.
    "padchest": {
        "atelectasis": ["atelectasis", "laminar atelectasis", "lobar atelectasis", "segmental atelectasis",
                        "round atelectasis", "total atelectasis"],
        "cardiomegaly": ["cardiomegaly"],
        "effusion": ["pleural effusion", "loculated pleural effusion"],
        "infiltration": ["infiltrates", "interstitial pattern", "ground glass pattern", "reticular interstitial pattern",
                         "reticulonodular interstitial pattern", "alveolar pattern", "consolidation", "air bronchogram"],
        "mass": ["mass", "pulmonary mass"],
        "nodule": ["nodule", "multiple nodules"],
        "pneumonia": ["pneumonia"],
        "pneumothorax": ["pneumothorax"],
        "consolidation": ["consolidation", "air bronchogram"],
        "edema": ["pulmonary edema"],
        "emphysema": ["emphysema"],
        "fibrosis": ["pulmonary fibrosis"],
        "pleural_thickening": ["pleural thickening", "apical pleural thickening"],
        "hernia": ["hiatal hernia"],
        "no_finding": ["normal"],
        "fracture": ["fracture", "rib fracture", "clavicle fracture", "humeral fracture", "vertebral fracture",
                     "callus rib fracture"],
        "support_devices": ["pacemaker", "dual chamber device", "single chamber device", "electrical device",
                            "nsg tube", "endotracheal tube", "chest drain tube", "tracheostomy tube",
                            "central venous catheter", "central venous catheter via jugular vein",
                            "central venous catheter via subclavian vein", "catheter"],
    },
    # Open-i MeSH major terms, checked against the 3,955 real reports (torchxrayvision's copy of
    # NLMCXR_reports.tgz): 118 head terms, e.g. 'Opacity/lung/...', 'Cardiac Shadow/enlarged',
    # 'Thickening/pleura'; 'Lesion' does not occur, so lung_lesion is not providable.
    "openi": {
        "atelectasis": ["pulmonary atelectasis", "atelectasis"],
        "cardiomegaly": ["cardiomegaly", "cardiac shadow/enlarged"],
        "effusion": ["pleural effusion"],
        "infiltration": ["infiltrate"],
        "mass": ["mass"],
        "nodule": ["nodule"],
        "pneumonia": ["pneumonia"],
        "pneumothorax": ["pneumothorax"],
        "consolidation": ["consolidation"],
        "edema": ["pulmonary edema", "edema"],
        "emphysema": ["pulmonary emphysema", "emphysema"],
        "fibrosis": ["pulmonary fibrosis", "fibrosis"],
        "pleural_thickening": ["thickening/pleura"],
        "hernia": ["hernia, hiatal", "hernia"],
        "no_finding": ["normal"],
        "enlarged_cardiomediastinum": ["mediastinum/prominent"],
        "lung_opacity": ["opacity/lung", "opacity/retrocardiac", "density/lung", "airspace disease"],
        "fracture": ["fractures, bone"],
        "support_devices": ["medical device", "implanted medical device", "catheters, indwelling", "tube, inserted",
                            "pacemaker, artificial", "stents"],
    },
}


@functools.cache  # one string per column, shared by every case's labels (not one per case)
def column(name: str) -> str:
    return f"h_{name}"


def columns() -> list[str]:
    return [column(n) for n in VOCABULARY]


def unavailable(dataset: str) -> list[str]:
    """The harmonised findings ``dataset`` cannot provide (always blank)."""
    return [n for n in VOCABULARY if n not in MAPPING[dataset]]


def _matches(term: str, key: str) -> bool:
    return term == key or term.startswith(key + "/")


def from_terms(dataset: str, terms: list[str] | None) -> dict[str, str]:
    """A positive-only label set (ChestX-ray14, PadChest, Open-i) -> h_ columns: 1 where a term
    maps to the finding, 0 where none does, '' where the dataset cannot provide it; ``terms``
    None (the image has no labels at all) leaves every column blank."""
    mapping = MAPPING[dataset]
    low = [t.strip().lower() for t in terms or []]
    out = {}
    for name in VOCABULARY:
        if name not in mapping or terms is None:
            out[column(name)] = ""
        else:
            out[column(name)] = "1" if any(_matches(t, k) for t in low for k in mapping[name]) else "0"
    return out


def from_values(dataset: str, values: dict[str, str]) -> dict[str, str]:
    """Own label values (1/0/-1/'' by own lower-case name, CheXpert convention) -> h_ columns.
    Several own names for one finding combine as: any 1, else any -1, else any 0, else ''."""
    out = {}
    for name in VOCABULARY:
        found = [values.get(k, "") for k in MAPPING[dataset].get(name, [])]
        out[column(name)] = next((v for v in ("1", "-1", "0") if v in found), "")
    return out


def unmapped(dataset: str, terms: list[str]) -> list[str]:
    """Terms that map to no harmonised finding (reported, so a gap in the mapping shows)."""
    keys = [k for ks in MAPPING[dataset].values() for k in ks]
    return sorted({t for t in (x.strip().lower() for x in terms) if t and not any(_matches(t, k) for k in keys)})


def unmapped_counts(dataset: str, term_lists, limit: int = 100) -> dict[str, int]:
    """The most frequent terms (images using them) that map to nothing: for dataset.json's
    release_facts, so what the mapping leaves out is visible in every build."""
    counts: dict[str, int] = {}
    for terms in term_lists:
        for t in unmapped(dataset, terms or []):
            counts[t] = counts.get(t, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


# ---------------------------------------------------------------- views

FRONTAL = {"PA", "AP", "AP_HORIZONTAL", "AP SUPINE", "POSTEROANTERIOR", "ANTEROPOSTERIOR", "FRONTAL"}
LATERAL = {"LATERAL", "LL", "RL", "L", "LARGE LATERAL", "XTABLE LATERAL", "LATERAL DECUBITUS"}
UNKNOWN = {"", "UNK", "UNKNOWN", "NAN"}


def view(position: str) -> str:
    """'frontal' (PA/AP), 'lateral', 'other' (oblique, decubitus, swimmer's, excluded...) or ''
    (not recorded) for a publisher's view/projection value."""
    key = " ".join(str(position).replace("-", " ").split()).upper()
    if key in UNKNOWN:
        return ""
    if key in FRONTAL:
        return "frontal"
    if key in LATERAL:
        return "lateral"
    return "other"


# ---------------------------------------------------------------- gzipped CSVs

MAX_CSV_BYTES = 2 * 2**30  # the largest real table (MIMIC metadata) inflates to ~100 MB


def read_csv_gz(path: Path, required: list[str]) -> pd.DataFrame:
    """A gzipped (or, if not gzipped, plain) comma-separated table as stripped strings, blanks as
    ''. Damaged gzip, undecodable text, rows wider than the header and missing columns are a
    MedcurateError naming the file."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
                raw = fh.read(MAX_CSV_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise MedcurateError(path, f"not a valid gzip file ({exc or type(exc).__name__})") from None
        if len(raw) > MAX_CSV_BYTES:
            raise MedcurateError(path, f"inflates to more than {MAX_CSV_BYTES} bytes; refused as a gzip bomb")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MedcurateError(path, f"not UTF-8 text ({exc})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.ParserWarning as exc:
        raise MedcurateError(path, f"a row has more fields than the header: {exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise MedcurateError(path, f"cannot parse as a comma-separated table: {exc}") from None
    df.columns = [" ".join(str(c).split()) for c in df.columns]
    df = df.apply(lambda col: col.str.strip())
    if missing := [c for c in required if c not in df.columns]:
        raise MedcurateError(path, f"missing column(s) {missing}; found {list(df.columns)[:30]}")
    return df


def chexpert_value(value: str) -> str | None:
    """A CheXpert-labeller cell ('1.0', '0.0', '-1.0', '' and their integer spellings) -> '1',
    '0', '-1' or ''; anything else None."""
    return {"1.0": "1", "1": "1", "0.0": "0", "0": "0", "-1.0": "-1", "-1": "-1", "": ""}.get(str(value).strip())
