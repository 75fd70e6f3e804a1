"""CheXpert v1.0 quirks (Stanford AIMI; agreement, then a download link; placed release).

- train.csv and valid.csv (19 columns: Path, Sex, Age, Frontal/Lateral, AP/PA and 14
  observations). Path starts with the release folder: 'CheXpert-v1.0-small/' (the downsampled
  copy) or 'CheXpert-v1.0/' (full resolution), then <train|valid>/patientNNNNN/studyN/
  viewN_<frontal|lateral>.jpg. Images are found by those last four parts wherever the release was
  extracted (the full release's train images come in three batch zips). The folder in Path must
  match the table (train.csv lists train/): otherwise the row is quarantined, naming the line.
- Patient and study come from the path (there is no id column); case id
  <patient>_<study>_<view>. Patients are disjoint between train and valid.
- Labels per image, CheXpert labeller convention: 1.0 / 0.0 / -1.0 / blank (train.csv); valid.csv
  holds radiologist consensus (expected 0/1 only, UNCONFIRMED: parsed the same way). No Finding is
  1.0 or blank in train.csv.
- Official split: train.csv -> train, valid.csv -> val (kept as given; the test set is not in the
  download, so test is carved from train by patient hash).
- view from Frontal/Lateral; the raw AP/PA value (AP, PA, LL, RL, blank for laterals) is kept as
  view_position. A JPG listed in neither table is quarantined.
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import CaseError
from ...families import cxr
from .. import Case, find_one, index_files, read_table, slug

TABLES = {"train.csv": "train", "valid.csv": "val"}
RELEASES = ("CheXpert-v1.0-small", "CheXpert-v1.0")
PATH = re.compile(r"(?P<release>[^/]+)/(?P<folder>train|valid)/(?P<patient>patient\d{5})/(?P<study>study\d+)/"
                  r"(?P<view>view\d+_(?:frontal|lateral))\.jpg")
META = {"Sex": "sex", "Age": "age", "AP/PA": "view_position"}
OWN = {name: name.lower().replace(" ", "_") for name in cxr.CHEXPERT}
VIEWS = {"Frontal": "frontal", "Lateral": "lateral"}


def key(path: Path) -> str:
    """'train/patient00001/study1/view1_frontal.jpg': where an image sits below its release folder."""
    return "/".join(path.parts[-4:])


def cases(root: Path, plan: dict) -> list[Case]:
    images = index_files(root, "*.jpg", key=key)
    out, listed = [], set()
    for table, split in TABLES.items():
        csv = find_one(root, table)
        df = read_table(csv, ",", ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *cxr.CHEXPERT])
        for line, row in enumerate(df.to_dict("records"), start=2):
            case = case_for(row, csv, line, split, images)
            key_ = case.meta.pop("_key", None)
            if key_ is not None and key_ in listed:  # a row repeated: the first stands, the repeat is quarantined
                case.case_id, case.problem = f"{case.case_id}_line{line}", CaseError(csv, f"line {line}: {key_} is listed again")
            listed.add(key_)
            out.append(case)
    for k, path in sorted(images.items()):
        if k not in listed:
            out.append(Case(case_id=slug("_".join(k.removesuffix(".jpg").split("/")[1:])), patient_id=path.parent.parent.name,
                            image=path, problem=CaseError(path, f"image is listed in neither {' nor '.join(TABLES)}")))
    return out


def case_for(row: dict, csv: Path, line: int, split: str, images: dict[str, Path]) -> Case:
    m = PATH.fullmatch(row["Path"])
    if not m:
        return Case(case_id=f"{csv.stem}_line{line}", patient_id=f"{csv.stem}_line{line}", image=None,
                    problem=CaseError(csv, f"line {line}: Path {row['Path']!r} is not <release>/<train|valid>/"
                                           "patientNNNNN/studyN/viewN_<frontal|lateral>.jpg"))
    k = f"{m['folder']}/{m['patient']}/{m['study']}/{m['view']}.jpg"
    case = Case(case_id=f"{m['patient']}_{m['study']}_{m['view']}", patient_id=m["patient"],
                image=images.get(k, csv.parent / k), split=split,
                meta={"study": m["study"], **{ours: row[theirs] for theirs, ours in META.items()},
                      "view": VIEWS.get(row["Frontal/Lateral"], ""), "_key": k})
    try:
        if m["release"] not in RELEASES:
            raise CaseError(csv, f"line {line}: Path starts with {m['release']!r}, not {' or '.join(RELEASES)}")
        if (m["folder"] == "train") != (split == "train"):
            raise CaseError(csv, f"line {line}: Path is in {m['folder']}/ but the row is in {csv.name}")
        if row["Frontal/Lateral"] not in VIEWS or VIEWS[row["Frontal/Lateral"]] != m["view"].split("_")[1]:
            raise CaseError(csv, f"line {line}: Frontal/Lateral {row['Frontal/Lateral']!r} disagrees with the file name {m['view']}.jpg")
        case.labels = labels(row, csv, line)
    except CaseError as exc:
        case.problem = exc
    return case


def labels(row: dict, csv: Path, line: int) -> dict[str, str]:
    values, bad = {}, []
    for name in cxr.CHEXPERT:
        value = cxr.chexpert_value(row[name])
        if value is None:
            bad.append(f"{name}={row[name]!r}")
        values[name] = value
    if bad:
        raise CaseError(csv, f"line {line}: label(s) not 1.0/0.0/-1.0/blank: {', '.join(bad)}")
    own = {OWN[name]: v for name, v in values.items()}
    return {**own, **cxr.from_values("chexpert", {name.lower(): v for name, v in values.items()})}
