"""Sample archives of FETAL_PLANES_DB (its Zenodo layout, real quirks).
"""

from __future__ import annotations

from pathlib import Path

from ...samples import csv_bytes, ultrasound, write_zip

PLANE_INDEX = {1: "Other", 2: "Fetal abdomen", 3: "Fetal brain", 4: "Maternal cervix", 5: "Fetal femur", 6: "Fetal thorax"}
FETAL_SIZES = [(692, 480), (640, 392), (768, 519), (707, 531), (745, 559), (959, 661)]
# patient: (train, operator(s), machine, [(plane index, frames, brain sub-planes)])
FETAL_PATIENTS = {
    1: ("1", ["Other"], "Aloka", [(1, 3, None), (3, 2, ["Trans-thalamic", "Trans-cerebellum"])]),
    2: ("1", ["Op. 1"], "Voluson E6", [(4, 3, None), (2, 1, None)]),
    3: ("1", ["Op. 2"], "Aloka", [(5, 2, None), (6, 1, None), (3, 1, ["Trans-ventricular"])]),
    4: ("1", ["Op. 3"], "Voluson E6", [(3, 2, ["Trans-thalamic", "Other"]), (4, 1, None)]),
    5: ("1", ["Op. 1"], "Other", [(2, 2, None), (5, 1, None)]),
    6: ("1", ["Op. 2"], "Aloka", [(1, 1, None), (6, 2, None)]),
    7: ("1", ["Op. 3"], "Voluson E6", [(3, 1, ["Trans-cerebellum"]), (4, 2, None)]),
    8: ("1", ["Op. 1"], "Aloka", [(2, 1, None), (6, 1, None), (5, 1, None)]),
    1272: ("1", ["Op. 1"], "Voluson E6", [(2, 1, None), (3, 2, ["Trans-thalamic", "Trans-thalamic"])]),
    1318: ("1", ["Op. 1", "Op. 2"], "Voluson E6", [(4, 2, None), (1, 1, None)]),
    1769: ("0", ["Op. 3"], "Aloka", [(3, 3, ["Trans-thalamic", "Trans-thalamic", "Trans-cerebellum"]), (4, 2, None), (1, 1, None), (6, 1, None)]),
    1770: ("0", ["Op. 1"], "Voluson E6", [(2, 1, None), (5, 2, None)]),
    1771: ("0", ["Op. 2"], "Other", [(6, 1, None), (4, 1, None), (3, 1, ["Trans-ventricular"])]),
    1792: ("0", ["Op. 3"], "Aloka", [(5, 1, None), (1, 2, None)]),
}
# Byte-identical pairs seen in the real set: consecutive frames of one patient (same class) and
# patient 1272's abdomen/brain pair (cross-class).
FETAL_DUPLICATES = {
    "Patient00002_Plane4_2_of_3": "Patient00002_Plane4_1_of_3",
    "Patient01272_Plane3_1_of_2": "Patient01272_Plane2_1_of_1",
}


def fetal_planes_db(out: Path) -> list[Path]:
    header = ["Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train "]
    rows, images, n = [header], {}, 0
    for patient, (train, operators, machine, planes) in FETAL_PATIENTS.items():
        for plane, frames, brain in planes:
            for i in range(1, frames + 1):
                stem = f"Patient{patient:05d}_Plane{plane}_{i}_of_{frames}"
                sub = brain[i - 1] if brain else "Not A Brain"
                rows.append([stem, str(patient), PLANE_INDEX[plane], sub, operators[n % len(operators)], machine, train + " "])
                images[stem] = images[FETAL_DUPLICATES[stem]] if stem in FETAL_DUPLICATES else ultrasound(stem, FETAL_SIZES[n % 6])
                n += 1
    members = {"FETAL_PLANES_DB_data.csv": csv_bytes(rows, ";")}
    members.update({f"Images/{stem}.png": data for stem, data in sorted(images.items())})
    dest = out / "fetal_planes_db" / "FETAL_PLANES_ZENODO.zip"
    write_zip(dest, members)
    return [dest]
