"""Sample archives of the African fetal planes dataset (its Zenodo layout, real quirks).
"""

from __future__ import annotations

from pathlib import Path

from ...samples import csv_bytes, ultrasound, write_tar_xz

COUNTRIES = {"Algeria": ("DZA", (500, 430)), "Egypt": ("EGY", (400, 450)), "Ghana": ("GHA", (500, 500)),
             "Malawi": ("MWI", (500, 400)), "Uganda": ("UGA", (600, 500))}
AFRICAN_PLANES = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax"]
# Patient numbers restart per country; Ghana/Uganda have no thorax; Malawi 14 is thorax-only and
# Malawi 17/26 are the same woman entered twice (identical images).
AFRICAN_PATIENTS = {
    "Algeria": [(1, "0", [0, 2, 1, 3]), (4, "0", [1, 2, 3, 0]), (7, "1", [2, 0, 1, 3]), (9, "1", [0, 1, 2, 3])],
    "Egypt": [(1, "1", [3, 2, 1, 0]), (2, "1", [0, 1, 2, 3]), (5, "0", [1, 0, 3, 2])],
    "Ghana": [(1, "1", [0, 1, 2]), (3, "1", [2, 1, 0]), (6, "0", [1, 2, 0])],
    "Malawi": [(14, "1", [3]), (17, "1", [0, 1, 2, 3]), (21, "0", [2, 0, 1]), (26, "1", [0, 1, 2, 3])],
    "Uganda": [(1, "0", [1, 0, 2]), (2, "1", [0, 2, 1]), (4, "1", [2, 1, 0])],
}
AFRICAN_SAME_WOMAN = {("Malawi", 26): ("Malawi", 17)}


def african_fetal_planes(out: Path) -> list[Path]:
    rows, members = [["Patient_num", "Plane", "Train", "Center", "Filename"]], {}
    for center, patients in AFRICAN_PATIENTS.items():
        code, size = COUNTRIES[center]
        for num, train, planes in patients:
            for plane in planes:
                stem = f"patient{num:03d}_{code}_plane{plane}"
                rows.append([str(num), AFRICAN_PLANES[plane], train, center, stem])
                twin = AFRICAN_SAME_WOMAN.get((center, num))
                seed = f"patient{twin[1]:03d}_{code}_plane{plane}" if twin else stem
                members[f"Zenodo_dataset/{center}/{stem}.png"] = ultrasound(seed, size)
    members = {"Zenodo_dataset/African_planes_database.csv": csv_bytes(rows, ","), **dict(sorted(members.items()))}
    dest = out / "african_fetal_planes" / "Zenodo_dataset.tar.xz"
    write_tar_xz(dest, members)
    return [dest]
