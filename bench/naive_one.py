#!/usr/bin/env python3
"""One image, as a one-job-per-image pipeline does it: decode, pixel digest, PNG encode (and for
INbreast the XML contours -> label mask), one manifest row. The same code and settings as
medcurate's convert step (medcurate.images, medcurate.dicom, medcurate.datasets.inbreast).

    naive_one.py fetal|inbreast INPUT OUT_PNG OUT_ROW LEVEL
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from medcurate.images import pixel_digest, read_image, write_png


def main(kind: str, src: str, out_png: str, out_row: str, level: str) -> None:
    src_path, png = Path(src), Path(out_png)
    row = {"case_id": png.stem, "image": f"images/{png.name}"}
    if kind == "fetal":
        image = read_image(src_path)
    else:
        import numpy as np
        from medcurate.datasets import inbreast
        from medcurate.dicom import read_dicom

        image = read_dicom(src_path)
        mask = np.zeros(image.shape, np.uint8)
        xml = src_path.parent.parent / "AllXML" / f"{src_path.name.split('_', 1)[0]}.xml"
        if xml.is_file():
            values = {"mass": 1, "calcification": 2}
            for roi in inbreast.parse_rois(xml.read_bytes(), xml):
                region, _ = inbreast.rasterise(roi, image.shape, 3)
                label, _ = inbreast.roi_label(roi, xml)
                if region is not None and label in values:
                    mask[region] = values[label]
        write_png(mask, png.with_suffix(".mask.png"), int(level))
        row["mask_sha256"] = pixel_digest(mask)
    row.update(width=image.shape[1], height=image.shape[0], pixel_sha256=pixel_digest(image))
    write_png(image, png, int(level))
    Path(out_row).write_text(json.dumps(row))


if __name__ == "__main__":
    main(*sys.argv[1:6])
