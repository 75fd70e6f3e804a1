"""ACDC@LungHP sample: slides as single-file pyramidal tiled TIFF (OpenSlide's 'generic tiled
TIFF': level 0 first, then each reduced level as a further tiled page; deflate; resolution tags
giving microns per pixel) with their ASAP XML annotations <name>.xml, loose in the manual folder
(the release's file and folder names are UNCONFIRMED; the module finds them by stem). Three
annotated slides (one patient each) and one test slide without annotation. Level 0 is 1024x768
at 0.25 micron per pixel (a 20x-like scan, UNCONFIRMED for the real scanner), levels at
downsamples 4 and 16. The ASAP files carry the format's quirks: Coordinate elements out of Order,
a decimal comma, a Dot annotation beside the polygons. Pixels: pink tissue blobs on white glass,
darker where the polygons mark cancer."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ...atomic import atomic_path
from ...samples import seeded

DATASETS = ("acdc_lunghp",)
SIZE = (1024, 768)  # level 0 (width, height)
MPP = 0.25
DOWNSAMPLES = (1, 4, 16)
TILE = 128
# slide -> [(x, y) level-0 polygon vertices]; tissue blob centre and radii
SLIDES = {
    "1": {"tissue": ((420, 380), (330, 260)), "cancer": [[(300, 250), (560, 230), (600, 450), (380, 520), (260, 400)]]},
    "2": {"tissue": ((600, 400), (300, 300)), "cancer": [[(620, 300), (800, 320), (760, 560), (580, 520)],
                                                        [(400, 200), (470, 200), (470, 260), (400, 260)]]},
    "3": {"tissue": ((512, 384), (380, 240)), "cancer": []},
    "4": {"tissue": ((500, 300), (250, 200)), "cancer": None},  # a test slide: no annotation released
}


def acdc_lunghp(out: Path) -> list[Path]:
    folder = out / "acdc_lunghp" / "manual"
    written = []
    for name, spec in SLIDES.items():
        dest = folder / f"{name}.tif"
        write_pyramid(dest, slide_pixels(name, spec), MPP, DOWNSAMPLES, TILE)
        written.append(dest)
        if spec["cancer"] is not None:
            xml = folder / f"{name}.xml"
            with atomic_path(xml) as tmp:
                tmp.write_bytes(asap_xml(spec["cancer"], dot=(spec["tissue"][0] if name == "1" else None)))
            written.append(xml)
    return written


def slide_pixels(name: str, spec: dict) -> np.ndarray:
    w, h = SIZE
    (cx, cy), (rx, ry) = spec["tissue"]
    rng = seeded(f"acdc_lunghp/{name}")
    coarse = rng.integers(0, 40, size=(12, 16)).astype(np.float32)
    tex = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    cancer = Image.new("L", (w, h))
    for poly in spec["cancer"] or []:
        ImageDraw.Draw(cancer).polygon(poly, fill=1)
    dark = np.asarray(cancer, bool) & inside
    px = np.full((h, w, 3), 242, np.float32)
    px[inside] = np.array([225, 150, 200], np.float32) - tex[inside, None]
    px[dark] = np.array([170, 80, 150], np.float32) - tex[dark, None]
    return (np.round(px / 4) * 4).clip(0, 255).astype(np.uint8)  # banded: compresses well


def write_pyramid(dest: Path, level0: np.ndarray, mpp: float, downsamples, tile: int) -> None:
    """A single-file pyramidal tiled TIFF as OpenSlide's generic-tiff reader expects it."""
    import tifffile

    buf = io.BytesIO()
    res = (1e4 / mpp, 1e4 / mpp)  # pixels per centimetre
    with tifffile.TiffWriter(buf) as tw:
        for k, down in enumerate(downsamples):
            img = level0 if down == 1 else np.asarray(Image.fromarray(level0).reduce(down))
            # tiles deflated here with the stdlib, not by tifffile (which uses imagecodecs' zlib when
            # installed): the same bytes with or without imagecodecs
            tw.write(_deflated_tiles(img, tile), shape=img.shape, dtype=img.dtype, tile=(tile, tile),
                     compression="zlib", photometric="rgb", metadata=None,
                     subfiletype=1 if k else 0, resolution=(res[0] / down, res[1] / down), resolutionunit="CENTIMETER")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(buf.getvalue())


def _deflated_tiles(img: np.ndarray, tile: int):
    """Row-major tiles, edge tiles zero-padded to the full tile size as TIFF stores them."""
    h, w = img.shape[:2]
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            block = np.zeros((tile, tile, img.shape[2]), img.dtype)
            part = img[y:y + tile, x:x + tile]
            block[:part.shape[0], :part.shape[1]] = part
            yield zlib.compress(block.tobytes(), 6)


def asap_xml(polygons: list, dot=None) -> bytes:
    """ASAP XML: Coordinates written in reverse Order, the second coordinate's X with a decimal comma."""
    parts = ['<?xml version="1.0"?>\n<ASAP_Annotations>\n\t<Annotations>\n']
    for i, poly in enumerate(polygons):
        parts.append(f'\t\t<Annotation Name="Annotation {i}" Type="Polygon" PartOfGroup="_0" Color="#F4FA58">\n\t\t\t<Coordinates>\n')
        for order in reversed(range(len(poly))):
            x, y = poly[order]
            xs = f"{x},5" if order == 1 else f"{x}"
            parts.append(f'\t\t\t\t<Coordinate Order="{order}" X="{xs}" Y="{y}" />\n')
        parts.append("\t\t\t</Coordinates>\n\t\t</Annotation>\n")
    if dot is not None:
        parts.append(f'\t\t<Annotation Name="Dot" Type="Dot" PartOfGroup="None" Color="#F4FA58">\n\t\t\t<Coordinates>\n'
                     f'\t\t\t\t<Coordinate Order="0" X="{dot[0]}" Y="{dot[1]}" />\n\t\t\t</Coordinates>\n\t\t</Annotation>\n')
    parts.append('\t</Annotations>\n\t<AnnotationGroups>\n\t\t<Group Name="_0" PartOfGroup="None" Color="#64FE2E">\n'
                 '\t\t\t<Attributes />\n\t\t</Group>\n\t</AnnotationGroups>\n</ASAP_Annotations>\n')
    return "".join(parts).encode()
