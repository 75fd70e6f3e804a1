"""Publisher spreadsheets (CDD-CESM annotations, ODIR-5K labels): xlsx read safely.

Every XML part passes defusedxml (no entities, no external references) before openpyxl sees the
workbook; openpyxl's many exception types on damaged files become one MedcurateError naming the file.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib

import defusedxml.ElementTree as safe_et
import openpyxl

from ..errors import MedcurateError


def read_rows(data: bytes, source, sheet: str | None = None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(sheet row number, cells)]) of ``sheet`` (default: the first): cells as strings
    (None -> '', whole floats without '.0'), header runs of spaces folded, blank rows skipped, rows
    padded to the header's length."""
    _check_xml(data, source)
    if not openpyxl.DEFUSEDXML:  # openpyxl parses the sheets itself; only defusedxml may do it
        raise MedcurateError(source, "openpyxl is not using defusedxml (OPENPYXL_DEFUSEDXML is off); refusing to parse")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 -- openpyxl raises a zoo of types (KeyError, TypeError, ...) on damaged files
        raise MedcurateError(source, f"cannot read as an xlsx workbook ({type(exc).__name__}: {exc})") from None
    name = f"sheet '{sheet}'" if sheet else "the first sheet"
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise MedcurateError(source, f"no sheet '{sheet}' (sheets: {book.sheetnames})")
        if not book.worksheets:
            raise MedcurateError(source, "the workbook has no sheet")
        rows = list((book[sheet] if sheet else book.worksheets[0]).iter_rows(values_only=True))
    except MedcurateError:
        raise
    except Exception as exc:  # noqa: BLE001 -- as above
        raise MedcurateError(source, f"{name} cannot be read ({type(exc).__name__}: {exc})") from None
    finally:
        book.close()
    if not rows:
        raise MedcurateError(source, f"{name} is empty")
    header = [re.sub(r"\s+", " ", cell(h)).strip() for h in rows[0]]
    body = []
    for number, cells in enumerate(rows[1:], start=2):
        cells = [cell(c) for c in cells]
        if "".join(cells).strip():
            body.append((number, cells + [""] * (len(header) - len(cells))))
    return header, body


def _check_xml(data: bytes, source) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            parts = {n: zf.read(n) for n in zf.namelist() if n.lower().endswith((".xml", ".rels"))}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise MedcurateError(source, f"not an xlsx workbook (damaged zip): {exc}") from None
    if not parts:
        raise MedcurateError(source, "not an xlsx workbook: no XML parts")
    for name, xml in parts.items():
        try:
            safe_et.fromstring(xml)
        except (safe_et.ParseError, ValueError) as exc:  # defusedxml's refusals are ValueErrors
            raise MedcurateError(source, f"{name}: unsafe or malformed XML ({type(exc).__name__}: {exc})") from None


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
