"""FETAL_PLANES_DB quirks: ';'-separated CSV with a trailing space in the 'Train ' header and its
values; labels come only from the CSV (never from the PlaneK index in file names)."""

from __future__ import annotations

from pathlib import Path

from .. import Case, find_one, integer, official_split, read_table

CSV = "FETAL_PLANES_DB_data.csv"
COLUMNS = ["Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train"]


def cases(root: Path, plan: dict) -> list[Case]:
    csv = find_one(root, CSV)
    df = read_table(csv, ";", COLUMNS)
    images = csv.parent / "Images"
    out = []
    for line, row in enumerate(df.itertuples(index=False), start=2):
        out.append(
            Case(
                case_id=row.Image_name,
                patient_id=f"Patient{integer(csv, line, 'Patient_num', row.Patient_num):05d}",
                image=images / f"{row.Image_name}.png",
                split=official_split(csv, line, row.Train),
                labels={"plane": row.Plane, "brain_plane": row.Brain_plane},
                meta={"operator": row.Operator, "us_machine": row.US_Machine},
            )
        )
    return out
