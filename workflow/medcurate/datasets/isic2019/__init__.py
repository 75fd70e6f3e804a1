"""ISIC 2019 Challenge (training set) quirks.

- Three downloads: ISIC_2019_Training_Input.zip (JPEGs in ISIC_2019_Training_Input/, folder name
  UNCONFIRMED: every ISIC_*.jpg below the root is taken), ISIC_2019_Training_GroundTruth.csv and
  ISIC_2019_Training_Metadata.csv. The test set has no published ground truth: not converted.
- Ground truth is one-hot: image, MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK with float cells
  (1.0/0.0; formatting UNCONFIRMED, so 1/0 are accepted too). A row without exactly one 1 is
  quarantined, naming the CSV line; the label column is ``diagnosis``.
- The metadata has a lesion identifier, not a patient one: images of the same lesion share a
  split (patient key = lesion_id). Rows without a lesion_id (or without a metadata row) fall back
  to the image id; the manifest's ``lesion_id`` column is then empty. Metadata columns
  (image, age_approx, anatom_site_general, lesion_id, sex) UNCONFIRMED.
- Copies of the metadata table circulate whose header says ``gender`` where the S3 file says
  ``sex`` (met in testing, issue 18; third-party descriptions of the 2019 files also call it
  "gender"). Such documented aliases (ALIASES) are read as the official column, logged at
  WARNING and reported by dataset_facts() for dataset.json; a table with both names, or with
  neither, or missing any other column, fails naming the file and the columns found.
- Some images reportedly carry a '_downsampled' suffix (UNCONFIRMED); a CSV name with or without
  it finds the file with or without it, and metadata joins on the name without it.
- JPEGs without a ground-truth row are quarantined, not dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ...errors import CaseError, MedcurateError
from .. import Case, find_one, images_without_rows, index_files, read_table, slug

log = logging.getLogger("medcurate.datasets.isic2019")

GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
META = ["age_approx", "anatom_site_general", "sex"]
SUFFIX = "_downsampled"
# Metadata header names of re-released copies -> the official column they stand for.
ALIASES = {"gender": "sex"}


def cases(root: Path, plan: dict) -> list[Case]:
    gt_path = find_one(root, GROUND_TRUTH)
    truth = read_table(gt_path, ",", ["image"] + CLASSES)
    meta, aliases = read_metadata(find_one(root, METADATA))
    for alias, official in aliases.items():
        log.warning("%s: column '%s' read as '%s' (a documented alias of re-released copies)", METADATA, alias, official)
    images = image_index(root)
    out = []
    for line, row in enumerate(truth.to_dict("records"), start=2):
        name = row["image"]
        path = _match(images, name)
        info = meta.get(_key(name), {})
        lesion = info.get("lesion_id", "")
        case_id = slug(name) or f"line{line}"  # the id names output files: never a path
        case = Case(case_id=case_id, patient_id=lesion or case_id, image=path,
                    meta={"lesion_id": lesion, **{k: info.get(k, "") for k in META}})
        try:
            if case_id != name:
                raise CaseError(gt_path, f"line {line}: image name {name!r} is not a plain file name")
            case.labels = {"diagnosis": diagnosis(row, gt_path, line)}
        except CaseError as exc:
            case.problem = exc
        out.append(case)
    return out + images_without_rows(images, {case.image.stem for case in out}, GROUND_TRUTH)


def diagnosis(row: dict, path: Path, line: int) -> str:
    """The one class whose cell is 1 (or 1.0); anything else is this row's problem."""
    hot = []
    for cls in CLASSES:
        value = str(row.get(cls, "")).strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if number not in (0.0, 1.0):
            raise CaseError(path, f"line {line}: {cls} must be 1.0 or 0.0, got {value!r}")
        if number == 1.0:
            hot.append(cls)
    if len(hot) != 1:
        found = "+".join(hot) if hot else "none"
        raise CaseError(path, f"line {line}: expected exactly one class marked 1.0, found {found}")
    return hot[0]


def dataset_facts(root: Path, plan: dict) -> dict:
    """Dataset-level facts for dataset.json: the metadata columns read under an alias."""
    _, aliases = read_metadata(find_one(root, METADATA))
    return {"column_aliases": {METADATA: aliases}} if aliases else {}


def read_metadata(path: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """image (without '_downsampled') -> its metadata row (official column names), and the
    aliases that were read as official columns ({alias: official})."""
    df = read_table(path, ",", [])
    found = list(df.columns)
    used = {alias: official for alias, official in ALIASES.items() if alias in found}
    for alias, official in used.items():
        if official in found:
            raise MedcurateError(path, f"has both a '{official}' and a '{alias}' column ('{alias}' is an alias of "
                                       f"'{official}'); cannot tell which to use")
    df = df.rename(columns=used)
    missing = [c for c in ["image", "lesion_id"] + META if c not in df.columns]
    if missing:
        accepted = ", ".join(f"{a} for {o}" for a, o in ALIASES.items())
        raise MedcurateError(path, f"missing column(s) {missing}; found {found} (accepted aliases: {accepted})")
    table: dict[str, dict] = {}
    for line, row in enumerate(df.to_dict("records"), start=2):
        key = _key(row["image"])
        if key in table:
            raise MedcurateError(path, f"line {line}: image {row['image']} has a second metadata row")
        table[key] = row
    return table, used


def image_index(root: Path) -> dict[str, Path]:
    """JPEG stem -> path for every .jpg below root (ISIC_NNNNNNN[_downsampled].jpg)."""
    return index_files(root, "*.jpg", key=lambda path: path.stem)


def _key(name: str) -> str:
    return name.removesuffix(SUFFIX)


def _match(images: dict[str, Path], name: str) -> Path:
    for candidate in (name, _key(name), _key(name) + SUFFIX):
        if candidate in images:
            return images[candidate]
    # No such file: the case is quarantined when its image is read ("file is missing").
    folder = next(iter(images.values())).parent if images else Path("ISIC_2019_Training_Input")
    return folder / f"{name}.jpg"
