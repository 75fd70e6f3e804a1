"""mini-MIAS (Mammographic Image Analysis Society MiniMammographic Database) quirks.

- all-mias.tar.gz holds mdbNNN.pgm (1024x1024, 8-bit P5, 200 micron) beside Info.txt, README and
  Licence.txt; whether they sit at the archive's top level or in a folder is UNCONFIRMED (a
  third-party loader extracts it into all-mias/ and reads all-mias/Info.txt), so Info.txt and the
  PGMs are found at any depth.
- Info.txt is whitespace-separated ``REFNUM BG CLASS SEVERITY X Y RADIUS`` under a header line of
  those names, with a VARIABLE number of fields: NORM rows stop after CLASS (3 fields, trailing
  space); an abnormality whose calcifications are widely distributed has no X Y RADIUS (4 fields,
  e.g. CALC rows; a third-party parser also meets a CIRC row so, 'mdb059 F CIRC B'); a third-party
  regex accepts ``*NOTE 3*`` in place of the coordinates (UNCONFIRMED in the file itself): read as
  "no coordinates" and kept in the ``abnormalities`` column.
- A REFNUM on several rows = several abnormalities of one image (mdb005: two CIRC rows). One case
  per image; the mask draws every abnormality; image labels: ``tissue`` (BG; rows of one image
  must agree), ``abnormality`` = the FIRST row's class (the file's own order; every row is kept in
  ``abnormalities`` as CLASS:SEVERITY:X,Y,R), ``severity`` = M if any row is malignant, else B;
  N for a normal (NORM) image.
- Coordinates have their origin at the BOTTOM-left corner: the circle's centre is
  (X, height - Y), with the image's own height (1024 in the release; the sample is smaller).
  Circles (shapes.circle, the one contour convention) are drawn benign 1 / malignant 2, malignant
  winning an overlap; roi_types 'circle'. The radius is that of a circle ENCLOSING the
  abnormality (for calcifications: the cluster), so masks are coarse by construction. A circle
  absurdly far from its image (see formats/shapes.py) quarantines the image, naming the line.
- An abnormality without coordinates cannot be drawn: the image is flagged ``no_roi`` (its mask
  misses a finding) and excluded from the curated subset by the catalogue's exclude_flags.
- Patients: the list is arranged in pairs of films, left (even number) and right (odd number) of
  one woman, so mdb001/mdb002 are woman 1: patient = (n + 1) // 2 (third-party copies of the
  README; DATASETS.md agrees). No official split: all three drawn by patient hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


from ...formats import shapes
from ...errors import CaseError, MedcurateError
from ...masks import compose
from .. import Case, Loaded, find_one, index_files, read_text

INFO = "Info.txt"
REF = re.compile(r"^mdb(\d{3})$")
TISSUES = ("F", "G", "D")
CLASSES = ("CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM")
SEVERITIES = {"B": "benign", "M": "malignant"}
NOTE = "*NOTE"


@dataclass
class Finding:
    line: int
    refnum: str
    tissue: str
    kind: str  # CLASS column
    severity: str = ""  # B | M; '' for NORM
    x: int | None = None
    y: int | None = None
    radius: int | None = None
    note: str = ""  # '*NOTE 3*' where coordinates would be

    @property
    def located(self) -> bool:
        return self.radius is not None

    def describe(self) -> str:
        where = f"{self.x},{self.y},{self.radius}" if self.located else (self.note or "no_coordinates")
        return self.kind if self.kind == "NORM" else f"{self.kind}:{self.severity}:{where}"


@dataclass
class MiasCase(Case):
    findings: list[Finding] = field(default_factory=list)


# ------------------------------------------------------------------ Info.txt (pure)


def parse_info(text: str, source) -> tuple[dict[str, list[Finding]], dict[str, CaseError]]:
    """Rows of Info.txt grouped by REFNUM, and per REFNUM the first malformed row's CaseError
    (that image is quarantined). A line not starting with a REFNUM (other than the header) is a
    MedcurateError: it cannot be set aside per image."""
    rows: dict[str, list[Finding]] = {}
    problems: dict[str, CaseError] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens or tokens[0].upper() == "REFNUM":
            continue
        if not REF.match(tokens[0]):
            raise MedcurateError(source, f"line {number}: {tokens[0][:40]!r} is not a REFNUM (mdbNNN)")
        try:
            finding = _finding(tokens, number, source)
        except CaseError as exc:
            problems.setdefault(tokens[0], exc)
            continue
        rows.setdefault(tokens[0], []).append(finding)
    return rows, problems


def _finding(tokens: list[str], line: int, source) -> Finding:
    def fail(reason: str) -> CaseError:
        return CaseError(source, f"line {line} ({tokens[0]}): {reason}")

    if len(tokens) < 3:
        raise fail(f"{len(tokens)} fields; at least REFNUM BG CLASS are needed")
    ref, tissue, kind, rest = tokens[0], tokens[1], tokens[2], tokens[3:]
    if tissue not in TISSUES:
        raise fail(f"background tissue must be one of {list(TISSUES)}, got {tissue!r}")
    if kind not in CLASSES:
        raise fail(f"class must be one of {list(CLASSES)}, got {kind!r}")
    if kind == "NORM":
        if rest:
            raise fail(f"a NORM row has no severity or coordinates, got {' '.join(rest)!r}")
        return Finding(line, ref, tissue, kind)
    if not rest or rest[0] not in SEVERITIES:
        raise fail(f"severity must be B or M, got {rest[0] if rest else 'nothing'!r}")
    finding = Finding(line, ref, tissue, kind, rest[0])
    coords = rest[1:]
    if not coords:
        return finding  # diffuse calcifications: centre and radius omitted on purpose
    if coords[0].startswith(NOTE):
        finding.note = " ".join(coords)
        return finding
    if len(coords) != 3:
        raise fail(f"expected X Y RADIUS after the severity, got {' '.join(coords)!r}")
    try:
        finding.x, finding.y, finding.radius = (int(v) for v in coords)
    except ValueError:
        raise fail(f"X Y RADIUS must be integers, got {' '.join(coords)!r}") from None
    if min(finding.x, finding.y) < 0 or finding.radius <= 0:
        raise fail(f"X Y must be >= 0 and RADIUS > 0, got {' '.join(coords)!r}")
    return finding


# ------------------------------------------------------------------ cases


def patient_of(refnum: str) -> str:
    """mdb001 (right) and mdb002 (left) are one woman."""
    return f"woman{(int(refnum[3:]) + 1) // 2:03d}"


def cases(root: Path, plan: dict) -> list[Case]:
    info = find_one(root, INFO)
    text = read_text(info, "ascii")
    rows, problems = parse_info(text, info)
    images = index_files(root, "mdb*.pgm", key=lambda path: path.stem)
    return [_case(ref, rows.get(ref, []), problems.get(ref), images.get(ref), info)
            for ref in sorted(rows.keys() | problems.keys() | images.keys())]


def _case(ref: str, findings: list[Finding], problem: CaseError | None, image: Path | None, info: Path) -> MiasCase:
    case = MiasCase(case_id=ref, patient_id=patient_of(ref) if REF.match(ref) else ref, image=image, mask=info,
                    findings=findings, problem=problem)
    lines = ", ".join(str(f.line) for f in findings)
    if problem is None and image is None:
        case.problem = CaseError(info, f"{ref} is described on line(s) {lines} but {ref}.pgm is missing")
    elif problem is None and not findings:
        case.problem = CaseError(image, f"image has no row in {INFO}: no labels")
    elif problem is None and len({f.tissue for f in findings}) > 1:
        case.problem = CaseError(info, f"lines {lines} give {ref} different background tissues")
    elif problem is None and len(findings) > 1 and any(f.kind == "NORM" for f in findings):
        case.problem = CaseError(info, f"lines {lines} call {ref} both NORM and abnormal")
    if case.problem is not None:
        return case
    abnormal = [f for f in findings if f.kind != "NORM"]
    severity = "N" if not abnormal else ("M" if any(f.severity == "M" for f in abnormal) else "B")
    case.labels = {"tissue": findings[0].tissue, "abnormality": findings[0].kind, "severity": severity}
    case.meta = {
        "side": "L" if int(ref[3:]) % 2 == 0 else "R",
        "abnormalities": ";".join(f.describe() for f in findings),
        "n_abnormalities": len(abnormal),
        "no_roi": int(any(not f.located for f in abnormal)),
        "roi_outside_image": 0,
        "roi_types": "",
    }
    return case


def load_mask(case: MiasCase, plan: dict) -> Loaded:
    shape = tuple(case.shape[:2])  # the decoded image's (convert sets it): the flip needs its height
    height, width = shape
    layers, actions, facts = [], [], {}
    for i, f in enumerate(case.findings, start=1):
        if not f.located:
            continue
        cx, cy = f.x, height - f.y  # origin bottom-left -> row index from the top
        try:
            region, degenerate = shapes.circle(cx, cy, f.radius, shape)
        except shapes.CoordinateError as exc:
            raise CaseError(case.mask, f"line {f.line} ({f.refnum}): abnormality {i}: {exc.reason}") from None
        if not region.any():
            facts["roi_outside_image"] = 1
            actions.append(f"abnormality_{i}:circle_outside_image")
            continue
        if degenerate:
            actions.append(f"abnormality_{i}:circle_too_small_kept_as_centre")
        elif cx - f.radius < 0 or cy - f.radius < 0 or cx + f.radius > width or cy + f.radius > height:
            actions.append(f"abnormality_{i}:circle_clipped_to_image")
        layers.append((SEVERITIES[f.severity], region))
        facts["roi_types"] = "circle"
    return Loaded(compose(shape, layers, plan["labels"]), facts, actions)

