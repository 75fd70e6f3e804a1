"""Sizes without side effects: of files and trees on disk (each inode once), of an archive's
release without extracting it (zip central directories, tar headers, nested archives), and of a
download as the cache, a local file, the catalogue or the server (HEAD, Zenodo API) tells it.
Every figure says how it is known (:class:`Figure`); medcurate/plan.py adds them up."""

from __future__ import annotations

import functools
import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Compressed tars are listed by decompressing them: only below this size (zip lists are free).
LIST_LIMIT = 64 * 2**20


@dataclass
class Figure:
    """A number of bytes and how it is known; ``exact`` False prints it with '~'."""

    bytes: int | None
    how: str
    exact: bool = True

    @staticmethod
    def total(figs: Iterable[Figure]) -> Figure:
        """The sum; unknown if every part is, else the known parts, marked partly unknown."""
        figs = list(figs)
        known = [f for f in figs if f.bytes is not None]
        if not figs:
            return Figure(0, "nothing")
        if not known:
            return Figure(None, "unknown", False)
        hows = {f.how for f in known}
        how = "partly unknown" if len(known) < len(figs) else hows.pop() if len(hows) == 1 else "mixed"
        return Figure(sum(f.bytes for f in known), how, all(f.exact for f in figs))

    def text(self) -> str:
        if self.bytes is None:
            return "?"
        return ("" if self.exact else "~") + human(self.bytes)


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


# --- Sizes of what is on disk -------------------------------------------------------------------
def tree_bytes(path: Path, *, follow: bool = False, shared: bool = True) -> tuple[int, int]:
    """(bytes, files) of the regular files below ``path``, each inode once. ``follow`` enters
    linked folders (a placed release); ``shared`` False leaves out files with other hard links
    (results/ linking the work tiers costs nothing more)."""
    from .walk import walk

    seen, total, files = set(), 0, 0
    if path.is_file():
        return path.stat().st_size, 1
    # following links: walk.walk enters each folder once (a loop is an error naming the link)
    for dirpath, _, names in walk(path, broken_ok=True) if follow else os.walk(path):
        for name in names:
            try:
                st = os.stat(os.path.join(dirpath, name)) if follow else os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            files += 1
            if shared or st.st_nlink == 1:
                total += st.st_size
    return total, files


def local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(url).path))
    return None


def head_size(url: str, timeout: float = 10.0) -> int | None:
    """The server's Content-Length for ``url`` (HEAD, redirects followed), or None."""
    import requests

    try:
        resp = requests.head(url, allow_redirects=True, timeout=timeout)
    except requests.RequestException:
        return None
    length = resp.headers.get("Content-Length")
    return int(length) if resp.ok and length and length.isdigit() else None


@functools.cache
def zenodo_files(api: str, record: int, timeout: float) -> dict[str, int]:
    """{file name: size} of a Zenodo record from its public API (empty when it cannot be had)."""
    import requests

    try:
        resp = requests.get(f"{api.rstrip('/')}/records/{record}", timeout=timeout)
        resp.raise_for_status()
        return {f["key"]: int(f["size"]) for f in resp.json().get("files", [])}
    except (requests.RequestException, ValueError, KeyError, TypeError, AttributeError):
        return {}


def source_size(src: dict, cached: Path, online: bool, timeout: float, zenodo_api: str = "https://zenodo.org/api") -> Figure:
    """One download: cached copy > local file > pinned size > (online: Zenodo API, HEAD) > the
    publisher's approximate size."""
    if cached.is_file():
        return Figure(cached.stat().st_size, "downloaded")
    url = src.get("url") or ""  # source types without one (an API's) are sized by the catalogue
    if (local := local_path(url)) is not None and local.is_file():
        return Figure(local.stat().st_size, "file")
    if src.get("size") is not None:
        return Figure(int(src["size"]), "catalogue")
    if online and src.get("zenodo"):
        if (n := zenodo_files(zenodo_api, int(src["zenodo"]["record"]), timeout).get(src["name"])) is not None:
            return Figure(n, "Zenodo API")
    if online and url.startswith(("http://", "https://")):
        if (n := head_size(url, timeout)) is not None:
            return Figure(n, "Content-Length")
    if src.get("approx_size") is not None:
        return Figure(int(src["approx_size"]), "publisher (approx.)", False)
    return Figure(None, "unknown", False)


# --- What an archive holds, without extracting it ---------------------------------------------
def listed_bytes(path: Path | io.BytesIO, name: str, nested: bool, depth: int = 0) -> int | None:
    """Bytes ``unpack`` writes for one download (nested archives replaced by their members), from
    the archive's own listing; None where only decompressing a large archive would tell."""
    from .unpack import is_archive

    size = path.getbuffer().nbytes if isinstance(path, io.BytesIO) else path.stat().st_size
    if not is_archive(name):
        return size
    try:
        if name.lower().endswith(".zip"):
            total = 0
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    inner = _inner(lambda info=info: zf.open(info), info.filename, info.file_size, nested, depth)
                    if inner is None:
                        return None
                    total += inner
            return total
        if size > LIST_LIMIT and not name.lower().endswith(".tar"):
            return None
        total = 0
        with (tarfile.open(fileobj=path) if isinstance(path, io.BytesIO) else tarfile.open(path)) as tf:
            for m in tf:
                if m.isfile():
                    inner = _inner(lambda m=m: tf.extractfile(m), m.name, m.size, nested, depth)
                    if inner is None:
                        return None
                    total += inner
        return total
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError):
        return None


def _inner(opener, name: str, size: int, nested: bool, depth: int) -> int | None:
    """``opener`` is called only for a nested archive: opening a zip member reads its local header,
    a seek per member (12,400 of them in FETAL_PLANES_DB's zip, at every run's space check)."""
    from .unpack import is_archive

    if not (nested and is_archive(name)) or depth >= 3:
        return size
    if size > LIST_LIMIT:
        return None
    with opener() as fh:
        return listed_bytes(io.BytesIO(fh.read()), name, nested, depth + 1)
