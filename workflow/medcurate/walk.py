"""Walking a tree with symbolic links followed, without ever looping.

Gated datasets are linked, not copied, so every walk of a dataset root must follow links; a link
to '.', to '..', to itself, or two links pointing at each other would then make os.walk run
forever (or until paths grow too long, after an exponential number of repeats). Here every folder
is entered once: arriving at one a second time (by its (st_dev, st_ino)) is an error naming the
link, as are broken links and folders that cannot be listed, so none of them reads as "missing".
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import MedcurateError


def walk(root: str | Path, *, error: type[MedcurateError] = MedcurateError, broken_ok: bool = False,
         skip_top_hidden: bool = False) -> Iterator[tuple[str, list[str], list[str]]]:
    """Like ``os.walk(root, followlinks=True)``, top-down, names sorted; ``dirnames`` may be
    pruned in place. Raises ``error(<path>, <reason>)`` for a link loop, a folder reached twice,
    a broken link (unless ``broken_ok``: then it is listed among the files) or an unreadable folder.
    ``skip_top_hidden`` leaves out names starting with '.' directly in ``root`` (as the manual
    folder's placed entries do). A root that does not exist or is not a folder yields nothing."""
    root = os.fspath(root)
    try:
        st = os.stat(root)
    except OSError as e:
        if e.errno == errno.ENOENT and not os.path.islink(root):
            return
        raise error(root, _unresolved(root, e)) from None
    if not stat.S_ISDIR(st.st_mode):
        return
    seen = {(st.st_dev, st.st_ino): root}
    stack = [root]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise error(here, f"cannot list the folder: {e.strerror}") from None
        if skip_top_hidden and here is root:
            entries = [e for e in entries if not e.name.startswith(".")]
        dirnames, filenames = [], []
        for entry in entries:
            try:
                if entry.is_symlink():
                    st = os.stat(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                else:
                    filenames.append(entry.name)
                    continue
            except OSError as e:
                if broken_ok and e.errno == errno.ENOENT:
                    filenames.append(entry.name)
                    continue
                raise error(entry.path, _unresolved(entry.path, e)) from None
            if not stat.S_ISDIR(st.st_mode):
                filenames.append(entry.name)
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                first = seen[key]
                if not os.path.islink(entry.path) and os.path.islink(first):
                    raise error(first, _revisit(root, first, entry.path))  # name the link, walked first
                raise error(entry.path, _revisit(root, entry.path, first))
            seen[key] = entry.path
            dirnames.append(entry.name)
        yield here, dirnames, filenames
        # reversed: the stack pops the first name first, so the walk is in name order
        stack += [os.path.join(here, d) for d in reversed(dirnames)]


def files_below(root: str | Path) -> Iterator[tuple[str, str]]:
    """(path relative to ``root``, with '/'; full path) of every file below ``root``, links not
    followed into folders (as Path.rglob): one scandir per folder and no stat per regular file,
    where rglob + is_file took ~0.4 s over a 12,400-image results folder."""
    root = os.fspath(root)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                elif entry.is_file():
                    yield rel, entry.path


def must_resolve(path: str | Path, error: type[MedcurateError] = MedcurateError) -> None:
    """Raise ``error`` naming ``path`` if it is a broken link, a link loop, or missing."""
    try:
        os.stat(path)
    except OSError as e:
        raise error(os.fspath(path), _unresolved(os.fspath(path), e)) from None


def link_target(path: str | Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _unresolved(path: str, e: OSError) -> str:
    if e.errno == errno.ELOOP:  # a -> a, or a -> b -> a: the kernel gives up resolving it
        return f"symbolic link loop (-> {link_target(path)}): it never resolves to a file or folder"
    if e.errno == errno.ENOENT and os.path.islink(path):
        return f"broken symbolic link (-> {link_target(path)}): what it points to does not exist"
    if e.errno == errno.ENOENT:
        return "does not exist"
    return f"cannot read: {e.strerror}"


def _revisit(root: str, path: str, other: str) -> str:
    shown = "the top folder" if other == root else repr(os.path.relpath(other, root))
    what = f"symbolic link (-> {link_target(path)})" if os.path.islink(path) else "folder (a bind mount?)"
    if other == root or Path(other) in Path(path).parents:
        return f"{what} is a loop: it leads back to {shown}, a folder it is inside"
    return f"{what} leads to the same folder as {shown} (every file in it would be found twice)"
