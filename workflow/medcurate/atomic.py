"""Atomic writes: outputs appear complete or not at all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import MedcurateError

# A full disk (or quota) is reported as an error naming the output and errno, not as a traceback.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def os_error_text(exc: OSError) -> str:
    """'No space left on device (ENOSPC)': the message and the errno name, to search for."""
    name = errno.errorcode.get(exc.errno or 0)
    return f"{exc.strerror or exc}{f' ({name})' if name else ''}"


def _no_space(exc: OSError, dest: Path) -> MedcurateError:
    target = exc.filename2 or exc.filename  # copyfile names (source, destination)
    where = f" while writing {target}" if target else ""
    return MedcurateError(dest, f"{os_error_text(exc)}{where}: nothing was promoted and any earlier version "
                                "is untouched; free some space and re-run")


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, dest)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise _no_space(exc, dest) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(dest: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``dest`` for writing; it replaces ``dest`` on success."""
    with atomic_path(dest) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(dest: str | Path, text: str) -> None:
    with atomic_open(dest, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield a fresh staging folder beside ``dest``; on success it replaces ``dest`` whole."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(dest)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".staging", dir=dest.parent))
    os.chmod(stage, 0o755)  # mkdtemp's 0700 would make a promoted results folder private to its writer
    try:
        yield stage
        if dest.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.replace(dest, trash / "old")
            os.replace(stage, dest)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(stage, dest)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise _no_space(exc, dest) from exc
        raise
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _clear_leftovers(dest: Path) -> None:
    """Remove the staging and trash folders of an earlier attempt at ``dest`` that was killed
    (SIGKILL, power loss) before its ``finally`` ran. Safe: one job at a time writes a given
    ``dest`` (Snakemake's DAG, and medcurate.lock across runs)."""
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.[a-z0-9_]{{8}}\.(staging|old)")
    for entry in os.scandir(dest.parent):
        if pattern.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def link(src: Path, dest: Path) -> None:
    """A hard link (a tier shared with results/ costs no second copy); else (another file system,
    or ``dest`` taken) a copy written beside ``dest`` and renamed onto it: a ``dest`` that is
    another tier's file under a second name is replaced, never written through. The folder is
    made only when the link finds it missing (publish links 12,400 files into a few folders)."""
    try:
        os.link(src, dest)
        return
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dest)
            return
    except OSError:
        pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:  # an OSError (ENOSPC) goes up as it is: the caller's atomic_dir names the folder
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
