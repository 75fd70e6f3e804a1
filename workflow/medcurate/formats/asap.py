"""ASAP annotation XML (the whole-slide annotation format of ASAP and of grand-challenge WSI
releases: CAMELYON, ACDC@LungHP), parsed with entity expansion and external entities refused.

    <ASAP_Annotations><Annotations>
      <Annotation Name=".." Type="Polygon" PartOfGroup="<group>" Color="#rrggbb">
        <Coordinates><Coordinate Order="0" X="<col>" Y="<row>"/>...</Coordinates>
      </Annotation>...
    </Annotations><AnnotationGroups>...</AnnotationGroups></ASAP_Annotations>

X is the column and Y the row, in pixels of the slide's full-resolution level (level 0), pixel
CENTRES at integers (shapes.py's convention). Coordinates are sorted by their Order attribute
(files do not promise document order); a decimal comma ('10,5', written by some locales) is read
as a decimal point. Every malformed item is a CaseError naming the file and the annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as ET
import numpy as np
from defusedxml import DefusedXmlException

from ..errors import CaseError

AREA_TYPES = ("Polygon", "Rectangle", "Spline")  # closed outlines; Spline drawn through its control points
MAX_BYTES = 256 * 2**20


@dataclass
class Region:
    name: str
    group: str
    kind: str  # the Type attribute
    xs: np.ndarray  # level-0 columns
    ys: np.ndarray  # level-0 rows


def parse(path: Path) -> list[Region]:
    """Every annotation of the file, in document order (point-like types included: the caller
    decides what it draws)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise CaseError(path, f"{path.stat().st_size} bytes: larger than any annotation file ({MAX_BYTES} limit)")
        root = ET.parse(path).getroot()
    except (ParseError, DefusedXmlException) as exc:
        raise CaseError(path, f"not well-formed annotation XML ({exc})") from None
    except OSError as exc:
        raise CaseError(path, f"cannot read ({exc.strerror})") from None
    if root.tag != "ASAP_Annotations":
        raise CaseError(path, f"root element is <{root.tag}>, not <ASAP_Annotations>")
    regions = []
    for i, ann in enumerate(root.iter("Annotation")):
        name = ann.get("Name") or f"#{i}"
        coords = ann.findall("./Coordinates/Coordinate")
        try:
            points = sorted((_number(c.get("Order")), _number(c.get("X")), _number(c.get("Y"))) for c in coords)
        except (TypeError, ValueError):
            raise CaseError(path, f"annotation {name!r}: a Coordinate lacks a numeric Order, X or Y") from None
        orders = [p[0] for p in points]
        if len(set(orders)) != len(orders):
            raise CaseError(path, f"annotation {name!r}: two Coordinates share an Order")
        xs = np.array([p[1] for p in points], float)
        ys = np.array([p[2] for p in points], float)
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise CaseError(path, f"annotation {name!r}: coordinates are not finite numbers")
        regions.append(Region(name, ann.get("PartOfGroup") or "None", ann.get("Type") or "", xs, ys))
    return regions


def _number(text: str | None) -> float:
    if text is None:
        raise TypeError("missing")
    return float(text.strip().replace(",", "."))
