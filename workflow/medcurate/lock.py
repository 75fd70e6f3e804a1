"""One run at a time per folder: the folders a run writes (outputs, downloads, scratch) are locked.

Snakemake locks its working directory, but two runs started from different working directories can
still point ``output_dir`` (or ``resources_dir``) at the same absolute folder, and two writers
would corrupt it (a download appended to twice, a dataset swapped while it is read). So the main
Snakemake process takes ``<folder>/.medcurate.lock`` for each folder in its ``onstart`` handler.

- The lock is ``flock(2)`` on that file, so it ends with the process that holds it, however that
  ends (SIGKILL, power loss of a client on NFS v4): a lock is never stale. The file records the
  holder (pid, host, user, start time, working directory, command) for the refusal message, and is
  removed on release. Refusal is immediate, never a wait.
- On a file system without flock (ENOLCK/ENOSYS/EOPNOTSUPP: some NFS v3 and Lustre mounts) the
  file is created with O_EXCL instead; a lock left by a dead process on this host is taken over;
  one from another host is reported with the command to remove it.
- Only the main Snakemake process locks: ``onstart`` is not run for dry-runs, ``--lint``,
  ``--report`` or when there is nothing to do, nor by the job-level Snakemake processes of cluster
  executors (they run with ``--mode remote --no-hooks``). The holder also exports
  ``MEDCURATE_LOCKED`` (the locked folders): a process that inherits it is inside that run and
  does not lock those folders again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import getpass
import json
import logging
import os
import shlex
import socket
import sys
from pathlib import Path

from .errors import MedcurateError

log = logging.getLogger("medcurate.lock")

LOCK_NAME = ".medcurate.lock"
ENV = "MEDCURATE_LOCKED"
_NO_FLOCK = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP}


class LockedError(MedcurateError):
    """Another run holds the lock of a folder this run would write."""


def _holder() -> dict:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": user,
        "started": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cwd": os.getcwd(),
        "command": shlex.join(sys.argv)[:500],
    }


def describe(holder: dict | None) -> str:
    if not holder:
        return "a run that has not yet recorded itself (it is starting or ending)"
    return (f"pid {holder.get('pid')} on host {holder.get('host')} (user {holder.get('user')}), "
            f"started {holder.get('started')} in {holder.get('cwd')}: {holder.get('command')}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """The lock of one folder. ``acquire()`` raises LockedError naming the folder and the holder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self.exclusive_file = False  # fallback mode: the file itself is the lock
        self.created_folder = False  # removed again on release if still empty: a lock leaves no trace

    @property
    def held(self) -> bool:
        return self.fd is not None or self.exclusive_file

    def acquire(self) -> None:
        if self.held:
            return
        self.created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # only loops when a holder removed the file between our open and flock
            try:
                fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), True
            except FileExistsError:
                try:
                    fd, created = os.open(self.path, os.O_RDWR | os.O_CLOEXEC), False
                except FileNotFoundError:  # its holder just removed it
                    continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise self._refusal(holder) from None
            except OSError as exc:
                os.close(fd)
                if created:  # the fallback below creates it exclusively
                    self.path.unlink(missing_ok=True)
                if exc.errno not in _NO_FLOCK:
                    raise MedcurateError(self.path, f"cannot lock: {exc.strerror}") from None
                log.warning("%s: the file system does not support flock (%s); using an exclusive lock file",
                            self.folder, exc.strerror)
                self._acquire_exclusive()
                return
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # we locked a file its last holder had already removed
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(_holder(), indent=1) + "\n").encode(), 0)
            self.fd = fd
            return
        raise MedcurateError(self.path, "cannot lock: the lock file keeps being replaced")

    def _acquire_exclusive(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                holder = _read_path(self.path)
                if holder and holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", 0))):
                    log.warning("%s: taking over the lock of pid %s, which is no longer running", self.folder, holder["pid"])
                    self.path.unlink(missing_ok=True)
                    continue
                raise self._refusal(holder, stale_hint=True) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(_holder(), indent=1) + "\n")
            self.exclusive_file = True
            return
        raise MedcurateError(self.path, "cannot lock: the lock file keeps reappearing")

    def _refusal(self, holder: dict | None, stale_hint: bool = False) -> LockedError:
        hint = ""
        if stale_hint and holder and holder.get("host") != socket.gethostname():
            hint = (f"\n  This file system has no flock, so a run killed on {holder.get('host')} leaves its lock"
                    f" behind: if no run is active there, remove it with: rm {shlex.quote(str(self.path))}")
        return LockedError(
            self.folder.resolve(),
            f"is in use by another medcurate run: {describe(holder)}.\n"
            f"  Two runs writing the same folder would corrupt it: wait for that run to end or stop it,"
            f" or give this run its own output_dir/resources_dir/work_dir.{hint}")

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # while still holding it, see acquire()
            finally:
                os.close(self.fd)
                self.fd = None
        elif self.exclusive_file:
            self.path.unlink(missing_ok=True)
            self.exclusive_file = False
        else:
            return
        if self.created_folder:
            with contextlib.suppress(OSError):  # not empty (the run wrote into it) or already gone
                self.folder.rmdir()


def _read(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 65536, 0)
        holder = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _read_path(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _inherited() -> set[str]:
    return {p for p in os.environ.get(ENV, "").split(os.pathsep) if p}


class RunLock:
    """The locks of every folder a run writes, taken together (all or none)."""

    def __init__(self, folders):
        seen, self.locks = set(), []
        for folder in folders:
            real = os.path.realpath(folder)
            if real not in seen:
                seen.add(real)
                self.locks.append(FolderLock(folder))

    def acquire(self) -> None:
        inherited = _inherited()
        taken = []
        try:
            for lock in self.locks:
                if os.path.realpath(lock.folder) in inherited:
                    log.debug("%s is locked by the run this process belongs to", lock.folder)
                    continue
                lock.acquire()
                taken.append(lock)
        except BaseException:
            for lock in taken:
                lock.release()
            raise
        held = inherited | {os.path.realpath(lock.folder) for lock in taken}
        os.environ[ENV] = os.pathsep.join(sorted(held))

    def release(self) -> None:
        released = {os.path.realpath(lock.folder) for lock in self.locks if lock.held}
        for lock in self.locks:
            lock.release()
        left = _inherited() - released
        if left:
            os.environ[ENV] = os.pathsep.join(sorted(left))
        else:
            os.environ.pop(ENV, None)
