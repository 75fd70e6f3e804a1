"""Safe, atomic, idempotent unpacking of downloaded archives (zip and tar, nested archives included).

Refused (UnsafeArchiveError): members that would land outside their folder (absolute paths, ``..``,
backslashes, drive letters), links pointing outside, device files and fifos, too many members, too
many uncompressed bytes, compression ratios typical of zip bombs, nesting deeper than ``max_depth``;
and members that would overwrite what the same archive already extracted (a name listed twice,
also as './name' or 'name/'; a file where a folder or link was, or the reverse; a member below a
file or link; a hard link to anything but an earlier file), link loops and broken links.
Names differing only in case are distinct members on Linux; where the file system folds them, the
second is refused as a collision.
Truncated or corrupt archives raise ArchiveError. Every error names the archive (``outer.zip!inner.zip``
for nested ones) and the offending member.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import lzma
import multiprocessing
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from medcurate.atomic import atomic_dir, os_error_text, write_text
from medcurate.errors import ArchiveError, MedcurateError, UnsafeArchiveError
from medcurate.walk import must_resolve, walk

log = logging.getLogger("medcurate.unpack")

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")
MARKER = ".medcurate-unpack.json"

_LONGEST_FIRST = sorted(ARCHIVE_SUFFIXES, key=len, reverse=True)
_CHUNK = 1 << 20
_DRIVE = re.compile(r"[A-Za-z]:")
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, NotImplementedError)


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 2**30  # uncompressed bytes written by one unpack() call, nested archives included
    max_ratio: float = 200.0  # uncompressed / compressed, per zip member and per archive ...
    ratio_min_bytes: int = 16 * 2**20  # ... enforced only above this size, so small text/xlsx files pass
    max_members: int = 2_000_000  # per archive
    max_depth: int = 3  # the archives given to unpack() are level 1


def _suffix(name: str) -> str | None:
    low = name.lower()
    for s in _LONGEST_FIRST:
        # "..zip" would unpack into "." -- not an archive name we can give a folder to
        if low.endswith(s) and name[: -len(s)] not in ("", ".", ".."):
            return s
    return None


def is_archive(name: str) -> bool:
    return _suffix(name) is not None


def archive_stem(name: str) -> str:
    s = _suffix(name)
    return name[: -len(s)] if s else name


_HTML_PREAMBLE = re.compile(rb"\s*(<\?xml[^>]*>|<!--.*?-->)", re.S)  # XHTML's declaration, comments


def looks_like_html(path: Path) -> bool:
    """An HTML page (a login, consent or error page) saved under a data file's name: it starts,
    after a BOM, blanks, an XML declaration or comments, with a doctype, <html>, <head> or <body>."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    head = head.removeprefix(b"\xef\xbb\xbf")
    while m := _HTML_PREAMBLE.match(head):
        head = head[m.end():]
    return head.lstrip().lower().startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _parts(label: str, name: str) -> list[str]:
    """Split a member name into path components, refusing anything that could leave the folder."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    why = None
    if "\x00" in name:
        why = "contains a NUL byte"
    elif "\\" in name:
        why = "contains a backslash (Windows path)"
    elif name.startswith("/") or _DRIVE.match(name):
        why = "is an absolute path"
    elif ".." in parts:
        why = "contains a '..' component"
    if why:
        raise UnsafeArchiveError(label, f"member {name!r} {why}; refusing to extract")
    return parts


class _Claims:
    """The paths one archive has extracted so far (normalised: './a', 'a/' and 'a' are one path).
    A later member may never replace one of them or be written below a file or link: tarfile
    would silently overwrite (or replace a link, or write through it) and zip lists may repeat."""

    def __init__(self, label: str):
        self.label = label
        self.kinds: dict[str, tuple[str, str]] = {}  # path -> (kind, the member that made it)

    def claim(self, name: str, parts: list[str], kind: str) -> None:
        for k in range(1, len(parts)):
            parent = "/".join(parts[:k])
            got, by = self.kinds.setdefault(parent, ("folder", name))
            if got == "symbolic link":
                raise UnsafeArchiveError(self.label, f"member {name!r} would be written through a link "
                                                     f"({by!r}); refusing to extract")
            if got != "folder":
                raise UnsafeArchiveError(self.label, f"member {name!r} would be written below {by!r}, which is a "
                                                     f"{got}, not a folder; refusing to extract")
        rel = "/".join(parts)
        if rel in self.kinds and not (kind == "folder" == self.kinds[rel][0]):  # a folder listed twice is harmless
            got, by = self.kinds[rel]
            as_ = "" if by == name else f" (as {by!r})"
            what = f"occurs twice{as_}" if got == kind else f"is a {kind}, but an earlier member {by!r} made it a {got}"
            raise UnsafeArchiveError(self.label, f"member {name!r} {what}: one would overwrite the other; refusing to extract")
        self.kinds.setdefault(rel, (kind, name))

    def kind(self, rel: str) -> str | None:
        return self.kinds.get(rel, (None,))[0]


def _no_name(label: str, name: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(label, f"member {name!r} is not a folder but has no file name; refusing to extract")


def _collision(label: str, name: str, target: Path) -> UnsafeArchiveError:
    # Only reachable when the file system folds names the archive keeps apart (case, Unicode form).
    return UnsafeArchiveError(label, f"member {name!r} lands on {target.name!r}, already extracted under another "
                                     "name (a case-insensitive file system?): one would overwrite the other; "
                                     "refusing to extract")


# --- several processes (the unpack rule's threads) ------------------------------------------------
# Extraction is Python-bound where it matters (tarfile's headers, gzip's 8 KiB reads, per-file
# calls): threads gave 1.3x on two cores, so each archive, or each run of one zip's members, gets
# a process. Below PARALLEL_MIN_BYTES a pool's start-up costs more than it saves.
PARALLEL_MIN_BYTES = 64 * 2**20
_WORKER: dict = {}  # in a pool's process: the counters it shares with the others (see _pool)


def _adopt(written, failed) -> None:
    _WORKER.update(written=written, failed=failed)


def _pool(n: int, written, failed=None) -> ProcessPoolExecutor:
    """``written``: bytes written by every process of one unpack() call (max_bytes holds for the
    sum); ``failed``: the lowest run of members that failed (see _Unpacker._zip_files)."""
    return ProcessPoolExecutor(n, initializer=_adopt, initargs=(written, failed))


def _raise_first(futures) -> None:
    for f in futures:  # in the order given: the error one process would have met first
        if f.exception() is not None:
            raise f.exception()


class _Count:
    """Bytes written in one process. A shared multiprocessing.Value needs a POSIX semaphore
    (/dev/shm), which some containers lack: it is made only when a pool runs (see share)."""

    def __init__(self):
        self.value = 0

    def get_lock(self):
        return contextlib.nullcontext()


class _Unpacker:
    def __init__(self, limits: Limits, nested: bool, workers: int = 1, written=None):
        self.limits, self.nested, self.workers = limits, nested, max(1, workers)
        self.written = written if written is not None else _Count()

    def share(self, label: str) -> bool:
        """Move the byte count to shared memory for a pool's processes; False (one process, with
        a warning) where the system cannot share it."""
        if isinstance(self.written, _Count):
            try:
                self.written = multiprocessing.Value("q", self.written.value)
            except OSError as e:
                log.warning("%s: unpacking in one process: no shared memory for several (%s)", label, os_error_text(e))
                return False
        return True

    def archive(self, path: Path, folder: Path, label: str, level: int) -> None:
        """Extract ``path`` into the existing empty ``folder``, then its nested archives."""
        log.info("unpacking %s", label)
        try:
            if looks_like_html(path):
                raise ArchiveError(label, "is an HTML page, not an archive (an error or login page saved as the download?)")
            if _suffix(path.name) == ".zip":
                self._zip(path, folder, label)
            else:
                self._tar(path, folder, label)
        except MedcurateError:
            raise
        except tarfile.FilterError as e:
            raise UnsafeArchiveError(label, f"member {e.tarinfo.name!r}: {e}; refusing to extract") from e
        except _CORRUPT as e:
            raise ArchiveError(label, f"truncated or corrupt archive: {e}") from e
        except OSError as e:
            if e.errno is None:  # gzip/bz2 decoders report bad data as OSError without errno
                raise ArchiveError(label, f"truncated or corrupt archive: {e}") from e
            raise MedcurateError(label, f"cannot extract{f' to {e.filename}' if e.filename else ''}: {os_error_text(e)}") from e

        for inner in self._settle(folder, label):
            ilabel = f"{label}!{inner.relative_to(folder).as_posix()}"
            if level >= self.limits.max_depth:
                raise UnsafeArchiveError(
                    ilabel, f"archive nested deeper than max_depth={self.limits.max_depth}; refusing to extract")
            tmp = Path(os.path.join(inner.parent, f".{inner.name}.unpacking"))
            if os.path.lexists(tmp):
                raise ArchiveError(ilabel, f"member {tmp.name!r} is in the way of unpacking this archive")
            tmp.mkdir()
            self.archive(inner, tmp, ilabel, level + 1)
            inner.unlink()
            _merge(ilabel, tmp, inner.with_name(archive_stem(inner.name)))

    def _zip(self, path: Path, folder: Path, label: str) -> None:
        lim = self.limits
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > lim.max_members:
                raise UnsafeArchiveError(label, f"{len(infos)} members, more than max_members={lim.max_members}")
            plan, claims = [], _Claims(label)
            # The central directory lists every member up front: all are checked before any is written.
            for idx, i in enumerate(infos):
                name = i.orig_filename  # .filename is cut at a NUL byte
                parts = _parts(label, name)
                kind = stat.S_IFMT(i.external_attr >> 16)
                if kind == stat.S_IFLNK:
                    raise UnsafeArchiveError(label, f"member {name!r} is a symbolic link; refusing to extract")
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchiveError(label, f"member {name!r} is a device, fifo or socket; refusing to extract")
                if i.flag_bits & 0x1:
                    raise ArchiveError(label, f"member {name!r} is encrypted")
                if not parts:
                    if i.is_dir():
                        continue
                    raise _no_name(label, name)
                claims.claim(name, parts, "folder" if i.is_dir() else "file")
                self._ratio(label, f"member {name!r}", i.file_size, i.compress_size)
                plan.append((idx, i, name, parts))
            declared = sum(i.file_size for i in infos)
            if self.written.value + declared > lim.max_bytes:
                raise UnsafeArchiveError(
                    label, f"declares {declared} uncompressed bytes, over max_bytes={lim.max_bytes}; refusing to extract")
            self._ratio(label, "archive", declared, path.stat().st_size)

            files = []
            for idx, i, name, parts in plan:  # folders first, here: the files are then written in any order
                target = folder.joinpath(*parts)
                with _writing(target):
                    (target if i.is_dir() else target.parent).mkdir(parents=True, exist_ok=True)
                if not i.is_dir():
                    files.append((idx, name, str(target)))
            big = declared >= PARALLEL_MIN_BYTES and len(files) >= 64
            if self.workers == 1 or not big or not self.share(label):
                for idx, name, target in files:
                    self._zip_member(zf, infos[idx], name, Path(target), label)
                return
        self._zip_files(path, files, label)

    def _zip_files(self, path: Path, files: list, label: str) -> None:
        """Write the planned files in ``self.workers`` contiguous runs of members, one process
        each. A failure stops the runs after the failing one; those before it finish, so the error
        reported is always that of the first bad member in archive order, as in one process."""
        n = self.workers
        runs = [files[k * len(files) // n:(k + 1) * len(files) // n] for k in range(n)]
        failed = multiprocessing.Value("i", n)
        with _pool(n, self.written, failed) as pool:
            futures = [pool.submit(_zip_run, path, k, runs[k], label, self.limits) for k in range(n)]
        _raise_first(futures)

    def _zip_member(self, zf: zipfile.ZipFile, i: zipfile.ZipInfo, name: str, target: Path, label: str) -> None:
        if os.path.lexists(target):
            raise _collision(label, name, target)
        done = 0
        # Stream with our own running count: declared sizes can lie.
        try:
            with _writing(target), zf.open(i) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK):
                    done += len(chunk)
                    if done > i.file_size:
                        raise UnsafeArchiveError(
                            label, f"member {name!r} expands beyond its declared {i.file_size} bytes; refusing to extract")
                    self._charge(label, f"member {name!r}", len(chunk))
                    out.write(chunk)
        except _CORRUPT as e:  # zlib's messages do not say which member
            raise ArchiveError(label, f"truncated or corrupt archive: {e}" + ("" if name in str(e) else f" (member {name!r})")) from e

    def _tar(self, path: Path, folder: Path, label: str) -> None:
        lim = self.limits
        size = path.stat().st_size
        claims = _Claims(label)
        count = total = 0
        # Tar headers are read as we go, so the size limits apply to the running total, before each member.
        with tarfile.open(path, "r:*", errorlevel=2) as tf:
            for m in tf:
                count += 1
                if count > lim.max_members:
                    raise UnsafeArchiveError(label, f"more than max_members={lim.max_members} members")
                name = m.name
                parts = _parts(label, name)
                if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
                    what = "a device or fifo" if m.isdev() else f"of an unknown tar type {m.type!r}"
                    raise UnsafeArchiveError(label, f"member {name!r} is {what}; refusing to extract")
                if not parts:
                    if m.isdir():
                        continue  # './', as 'tar -C dir .' writes it
                    raise _no_name(label, name)
                if not m.isdir() and name.endswith("/"):
                    raise UnsafeArchiveError(label, f"member {name!r} is not a folder but its name ends with '/'; "
                                                    "refusing to extract")
                kind = ("folder" if m.isdir() else "symbolic link" if m.issym()
                        else "hard link" if m.islnk() else "file")
                target = ""
                if m.issym() or m.islnk():
                    # symlinks resolve from their own folder, hardlinks from the archive root
                    base = posixpath.dirname("/".join(parts)) if m.issym() else ""
                    target = posixpath.normpath(posixpath.join(base, m.linkname))
                    if (m.linkname.startswith("/") or "\\" in m.linkname or _DRIVE.match(m.linkname)
                            or target.split("/")[0] == ".."):
                        raise UnsafeArchiveError(
                            label, f"member {name!r} links to {m.linkname!r}, outside the archive; refusing to extract")
                    # A hard link shares the inode of what it names: only a file this archive wrote before.
                    if m.islnk() and claims.kind(target) not in ("file", "hard link"):
                        raise UnsafeArchiveError(
                            label, f"member {name!r} is a hard link to {m.linkname!r}, which is not a file extracted "
                                   "before it; refusing to extract")
                claims.claim(name, parts, kind)  # after the hard link check: a link to itself names nothing yet
                if m.isreg():
                    total += m.size
                    self._ratio(label, "archive", total, size)
                    self._charge(label, f"member {name!r}", m.size)
                dest = folder.joinpath(*parts)
                if not m.isdir() and os.path.lexists(dest):
                    raise _collision(label, name, dest)
                # tarfile would write to the name as given ('a/.' for a file): write where we checked
                m = m.replace(name="/".join(parts), linkname=target if m.islnk() else m.linkname, deep=False)
                with _writing(dest):
                    tf.extract(m, str(folder), filter="data")
            # tarfile stops at the end-of-archive block; read on so gzip/xz/bz2 check their trailers
            while tf.fileobj.read(_CHUNK):
                pass

    def _ratio(self, label: str, what: str, size: int, packed: int) -> None:
        lim = self.limits
        if size > lim.ratio_min_bytes and size > lim.max_ratio * packed:
            raise UnsafeArchiveError(
                label, f"{what} expands {packed} bytes to {size} ({size / max(packed, 1):.0f}x, "
                       f"limit {lim.max_ratio:g}x): looks like a zip bomb; refusing to extract")

    def _charge(self, label: str, what: str, n: int) -> None:
        with self.written.get_lock():
            self.written.value += n
            total = self.written.value
        if total > self.limits.max_bytes:
            raise UnsafeArchiveError(
                label, f"{what}: more than max_bytes={self.limits.max_bytes} uncompressed; refusing to extract")

    def _settle(self, folder: Path, label: str) -> list[Path]:
        """Fix permissions, re-check every link as it now resolves on disk, and list nested archives."""
        root = os.path.realpath(folder)
        inner = []

        def check_link(p: str) -> None:
            # catches link chains the per-member checks cannot see (e.g. a link created before its target)
            if os.path.commonpath([os.path.realpath(p), root]) != root:
                raise UnsafeArchiveError(
                    label, f"member {os.path.relpath(p, folder)!r} links to {os.readlink(p)!r}, "
                           "outside the archive; refusing to extract")

        for dirpath, dirnames, filenames in os.walk(folder):
            os.chmod(dirpath, 0o755)
            for name in dirnames:
                if os.path.islink(p := os.path.join(dirpath, name)):
                    check_link(p)
            for name in filenames:
                if os.path.islink(p := os.path.join(dirpath, name)):
                    check_link(p)
                    continue
                os.chmod(p, 0o644)
                if self.nested and is_archive(name):
                    inner.append(Path(p))
        # Links may point anywhere inside, so a link to '.', to '..' or to itself would make every
        # later walk (links followed) loop; links into a nested archive's folder are not there yet.
        _walk_members(folder, label, broken_ok=True)
        return sorted(inner)


def _zip_run(path: Path, k: int, run: list, label: str, limits: Limits) -> None:
    """(in a pool's process) Write run ``k`` of a zip's members: (index, name, target) each."""
    unpacker, failed = _Unpacker(limits, nested=False, written=_WORKER["written"]), _WORKER["failed"]
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for idx, name, target in run:
            if k > failed.value:
                return
            try:
                unpacker._zip_member(zf, infos[idx], name, Path(target), label)
            except BaseException:
                with failed.get_lock():
                    failed.value = min(failed.value, k)
                raise


def _archive_job(path: Path, folder: Path, limits: Limits, nested: bool) -> None:
    """(in a pool's process) One of several archives, nested ones included, into ``folder``."""
    folder.mkdir()
    _Unpacker(limits, nested, written=_WORKER["written"]).archive(path, folder, str(path), 1)
    _walk_members(folder, str(path), broken_ok=False)


def _walk_members(folder: Path, label: str, broken_ok: bool) -> None:
    try:
        for _ in walk(folder, error=UnsafeArchiveError, broken_ok=broken_ok):
            pass
    except UnsafeArchiveError as e:  # name the member, not the staging path it was extracted to
        raise UnsafeArchiveError(label, f"member {os.path.relpath(e.path, folder)!r}: {e.reason}; "
                                        "refusing to extract") from None


@contextlib.contextmanager
def _writing(target: Path):
    """A write error (disk full, quota) names the file being written, not just the archive."""
    try:
        yield
    except OSError as e:
        if e.errno is not None and e.filename is None:
            e.filename = str(target)
        raise


def _merge(label: str, src: Path, dst: Path) -> None:
    """Move the tree ``src`` to ``dst``. Into an existing folder (a zip shipped beside its unzipped
    copy) only missing files are moved; a file already there must have the same content."""
    if not os.path.lexists(dst):
        os.rename(src, dst)
        return
    if dst.is_symlink() or not dst.is_dir():
        raise ArchiveError(label, f"cannot unpack into {dst.name!r}: a file of that name exists")
    for entry in os.scandir(src):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False):
            _merge(label, Path(entry.path), target)
        elif not os.path.lexists(target):
            os.rename(entry.path, target)
        elif not (entry.is_file(follow_symlinks=False) and target.is_file() and not target.is_symlink()
                  and filecmp.cmp(entry.path, target, shallow=False)):
            raise ArchiveError(label, f"member {entry.name!r} differs from the file already at {dst.name}/{entry.name}")
    shutil.rmtree(src)


def _identity(path: Path, fingerprints: dict[str, str] | None) -> dict:
    try:
        st = path.stat()
    except OSError as e:
        raise MedcurateError(path, f"cannot read input: {e.strerror}") from e
    ident = {"name": path.name, "size": st.st_size}
    if fp := (fingerprints or {}).get(path.name):
        ident["sha256"] = fp
    else:
        ident["mtime_ns"] = st.st_mtime_ns
    return ident


def _read_marker(dest: Path) -> dict | None:
    try:
        record = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def unpack(archives: list[Path], dest: Path, *, limits: Limits = Limits(), nested: bool = True,
           fingerprints: dict[str, str] | None = None, links: list[Path] = (),
           verify: Callable[[Path], None] | None = None, threads: int = 1) -> dict:
    """Extract each archive into ``dest/<archive_stem>/`` (plain files are copied to ``dest/<name>``;
    each of ``links`` becomes a symlink ``dest/<name>``: a gated dataset's placed folders, too big
    to copy and not ours to modify). ``verify(folder)`` may refuse the result before it is promoted.
    ``threads``: how many processes extract archives (or runs of one big zip's members) at once.

    ``dest`` is built in a staging folder and replaces any older ``dest`` only on success. If
    ``dest/.medcurate-unpack.json`` records the same inputs (by name and size, plus sha256 from
    ``fingerprints`` or else mtime), nothing is touched and that record is returned.
    Returns ``{"archives": [...], "nested": bool, "files": N, "bytes": N}``.
    """
    archives, dest = [Path(a) for a in archives], Path(dest)
    links = [Path(os.path.abspath(p)) for p in links]
    for p in links:
        must_resolve(p)  # a broken link or loop is named as such, not found "missing" later
    inputs = [_identity(a, fingerprints) for a in archives] + [{"name": p.name, "link": str(p)} for p in links]
    previous = _read_marker(dest)
    if previous and previous.get("archives") == inputs and previous.get("nested") == nested:
        log.info("%s is up to date", dest)
        if verify:
            verify(dest)
        return previous

    names = [archive_stem(a.name) if is_archive(a.name) else a.name for a in archives] + [p.name for p in links]
    for name in names:
        if names.count(name) > 1 or name == MARKER:
            raise MedcurateError(dest, f"several inputs would unpack into {name!r}")

    packed = [(path, name) for path, name in zip(archives, names) if is_archive(path.name)]
    # Several archives (ChestX-ray14's twelve tars) are unpacked side by side, a process each;
    # a single big zip is written by several processes instead.
    side_by_side = threads > 1 and len(packed) > 1 and sum(p.stat().st_size for p, _ in packed) >= PARALLEL_MIN_BYTES
    unpacker = _Unpacker(limits, nested, 1 if side_by_side else threads)
    side_by_side = side_by_side and unpacker.share(str(dest))
    with atomic_dir(dest) as stage:
        os.chmod(stage, 0o755)
        if side_by_side:
            with _pool(min(threads, len(packed)), unpacker.written) as pool:
                futures = [pool.submit(_archive_job, path, stage / name, limits, nested) for path, name in packed]
            _raise_first(futures)
        else:
            for path, name in packed:
                (stage / name).mkdir()
                unpacker.archive(path, stage / name, str(path), 1)
                # again now that nested archives are unpacked: a link may lead into one of them
                _walk_members(stage / name, str(path), broken_ok=False)
        for path, name in zip(archives, names):
            if not is_archive(path.name):
                shutil.copyfile(path, stage / name)
                os.chmod(stage / name, 0o644)
        for path in links:
            os.symlink(path, stage / path.name)
        files = nbytes = 0
        for dirpath, _, filenames in os.walk(stage):
            for name in filenames:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode):
                    files, nbytes = files + 1, nbytes + st.st_size
        record = {"archives": inputs, "nested": nested, "files": files, "bytes": nbytes}
        write_text(stage / MARKER, json.dumps(record, indent=2, sort_keys=True) + "\n")
        if verify:
            verify(stage)  # raising here discards the stage: the earlier tree stays in place
    return record
