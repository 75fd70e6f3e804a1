"""African fetal planes quirks: image path is <Center>/<Filename>.png (the CSV has neither folder
nor extension); Patient_num restarts per country, so the patient key is Center + Patient_num."""

from __future__ import annotations

from pathlib import Path

from .. import Case, find_one, integer, official_split, read_table

CSV = "African_planes_database.csv"
COLUMNS = ["Patient_num", "Plane", "Train", "Center", "Filename"]


def cases(root: Path, plan: dict) -> list[Case]:
    csv = find_one(root, CSV)
    df = read_table(csv, ",", COLUMNS)
    out = []
    for line, row in enumerate(df.itertuples(index=False), start=2):
        out.append(
            Case(
                case_id=row.Filename,
                patient_id=f"{row.Center}-{integer(csv, line, 'Patient_num', row.Patient_num):03d}",
                image=csv.parent / row.Center / f"{row.Filename}.png",
                split=official_split(csv, line, row.Train),
                labels={"plane": row.Plane},
                meta={"center": row.Center},
            )
        )
    return out
