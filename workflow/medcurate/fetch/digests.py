"""What a file's own bytes say: its digests, how they differ from the expected ones, and whether
its format shows it cut short or as an HTML page. Pure functions of a path (no network, no state)."""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 1 << 20


def digests(path: Path, copy_to=None) -> dict:
    """md5 and sha256 in one read, side by side (hashlib releases the GIL): a 2 GB download is
    checked in the time of its slower digest, not of both. With ``copy_to`` (a binary file open for
    writing) each block is also written there: a local copy and its check in one pass, and the
    digests are those of the bytes written."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    size = 0
    with open(path, "rb") as fh, ThreadPoolExecutor(1) as pool:
        pending = None
        while block := fh.read(CHUNK):
            if pending:
                pending.result()  # md5 of the previous block first: updates stay in order
            pending = pool.submit(md5.update, block)
            if copy_to is not None:
                copy_to.write(block)
            sha256.update(block)
            size += len(block)
        if pending:
            pending.result()
    return {"size": size, "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def mismatches(expected: dict, actual: dict) -> list[str]:
    """Each expected value (size, md5, sha256) that ``actual`` does not have, as text."""
    out = []
    for k, v in expected.items():
        if actual[k] != v:
            short = " (truncated)" if k == "size" and actual[k] < v else ""
            out.append(f"{k} expected {v}, got {actual[k]}{short}")
    return out


def looks_like_html(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    head = head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def inflate(path: Path, wbits: int, out=None) -> None:
    """Decompress gzip (wbits 31, every member) or zlib/deflate; ValueError if truncated or corrupt."""
    d = zlib.decompressobj(wbits)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            while block:
                try:
                    data = d.decompress(block)
                except zlib.error as e:
                    raise ValueError(f"corrupt compressed stream ({e})") from e
                if out is not None:
                    out.write(data)
                block = b""
                if d.eof:
                    rest = d.unused_data
                    if wbits == 31 and rest.strip(b"\0"):  # another gzip member follows
                        d, block = zlib.decompressobj(wbits), rest
                    elif rest.strip(b"\0"):
                        raise ValueError(f"{len(rest)} bytes of garbage after the compressed stream")
        if out is not None:
            out.write(d.flush())
    if not d.eof:
        raise ValueError("the compressed stream ends before its end marker" +
                         (" and trailer" if wbits == 31 else "") + ": truncated")


def format_problem(path: Path) -> str | None:
    """Why a file is visibly cut short by its own format (zip, gzip, xz), or None if it is not
    (or its format cannot tell): the only witness of a body sent without a length."""
    with open(path, "rb") as fh:
        head = fh.read(6)
        if head.startswith(b"\xfd7zXZ\x00"):
            fh.seek(max(0, path.stat().st_size - 2))
            return None if fh.read(2) == b"YZ" else "the xz stream has no footer: truncated"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(path):
                return None
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            return f"the zip's end-of-central-directory is missing or unreadable ({e}): truncated"
    if head.startswith(b"\x1f\x8b"):
        try:
            inflate(path, 31)
        except ValueError as e:
            return f"gzip: {e}"
    return None
