"""The one retry policy of every download (the HTTP session itself never retries): failures are
classified once (``Transient``: worth another attempt; ``Restart``: start the file over), and
``Budget.wait_or_give_up`` either sleeps before the next attempt or raises the error that ends
the streak. Every failure is bounded by count and by time: transient server errors back off
exponentially within ``retry_window``, unreachable hosts give up within ``connect_window``, and
nothing outlives ``deadline``."""

from __future__ import annotations

import email.utils
import errno
import logging
import socket
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
import urllib3

from medcurate.errors import FetchError

log = logging.getLogger("medcurate.fetch")

RETRY_STATUSES = (429, 500, 502, 503, 504)
BACKOFF_MAX = 120.0  # one backoff sleep at most (Retry-After has its own cap, max_retry_after)
PROGRESS = 1 << 20  # an attempt that added this much was not a failure streak: the retry count restarts
OFFLINE_DEMO = "snakemake --cores 2 --configfile config/sample.yaml"


@dataclass(frozen=True)
class Policy:
    """Bounds of the one retry loop; every server behaviour ends within them."""

    retries: int = 8  # retries per failure streak (an attempt adding PROGRESS bytes ends a streak)
    backoff: float = 2.0  # the n-th retry waits backoff * 2**(n-1) s (at most BACKOFF_MAX)
    max_retry_after: float = 300.0  # cap on a server's Retry-After
    retry_window: float = 900.0  # seconds one streak of server-side failures may last
    connect_window: float = 120.0  # seconds of failing to reach hosts (DNS, refused, timeouts)
    deadline: float = 12 * 3600.0  # seconds for the whole fetch of one source, all mirrors
    min_speed: float = 1024.0  # bytes/s averaged over speed_window; slower transfers are cut
    speed_window: float = 60.0
    max_restarts: int = 3  # restarts from byte 0 per URL (resume refused, server changed, ...)


class Transient(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, reason: str, *, connect: bool = False, status: int | None = None,
                 status_text: str = "", retry_after: float | None = None, reach: tuple[str, str, str] = ("", "", "")):
        super().__init__(reason)
        self.reason, self.connect, self.status, self.status_text = reason, connect, status, status_text
        self.retry_after, self.reach = retry_after, reach


class Restart(Exception):
    """The server's answer cannot continue the .part: start over from byte 0."""


@dataclass
class Streak:
    """Consecutive failed attempts (of one URL, or of one API call)."""

    n: int = 0
    since: float | None = None


def host(url: str) -> str:
    """host[:port] of a URL, without any user:password@."""
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None if absent/bad."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def seen_objs(exc: BaseException):
    """Every exception reachable from ``exc`` (causes, contexts, urllib3 reasons, arguments)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
                    if isinstance(x, BaseException))


def _innermost_os_error(exc: BaseException) -> OSError | None:
    found = None
    for e in seen_objs(exc):
        if isinstance(e, OSError) and e.strerror:
            found = e
    return found


def unreached(exc: BaseException) -> tuple[str, str, str] | None:
    """(what failed, detail, likely causes) when a request never reached the server, else None."""
    proxy = (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError)
    for e in seen_objs(exc):
        inner = _innermost_os_error(e)
        detail = (inner.strerror or str(inner)) if inner is not None else str(e)
        if isinstance(e, proxy):
            return ("the proxy failed", detail, "a wrong or unreachable proxy (check HTTPS_PROXY, HTTP_PROXY and NO_PROXY)")
        if isinstance(e, (urllib3.exceptions.NameResolutionError, socket.gaierror)):
            return ("its name cannot be resolved", detail,
                    "no network connection, a proxy needed but not set (HTTPS_PROXY), or a typo in the host name")
        if isinstance(e, ConnectionRefusedError):
            return ("the connection was refused", detail,
                    "the server is down or the port is wrong, or a firewall or proxy is in the way")
        # urllib3's NewConnectionError subclasses ConnectTimeoutError: look at its cause instead
        timeout = (urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout)
        if isinstance(e, timeout) and not isinstance(e, urllib3.exceptions.NewConnectionError):
            return ("the connection timed out", "no answer within the connect timeout",
                    "no network connection, a firewall, or a proxy needed but not set (HTTPS_PROXY)")
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN):
            return ("the network is unreachable", detail, "no network connection")
    new_conn = next((e for e in seen_objs(exc) if isinstance(e, urllib3.exceptions.NewConnectionError)), None)
    if new_conn is not None:  # any other failure to open a connection
        inner = _innermost_os_error(new_conn)
        return ("the connection failed", (inner.strerror if inner is not None else str(new_conn)),
                "no network connection, a firewall, or a proxy needed but not set (HTTPS_PROXY)")
    return None


class Budget:
    """The time and attempts one fetch may spend: its deadline, and how long hosts have been
    unreachable (shared by every URL and API call of the fetch)."""

    def __init__(self, policy: Policy, connect_timeout: float):
        self.policy, self.connect_timeout = policy, connect_timeout
        self.started = time.monotonic()
        self.connect_since: float | None = None  # first of the current unreachable-host failures

    @property
    def deadline(self) -> float:
        return self.started + self.policy.deadline

    def answered(self) -> None:
        """A server answered: the host is reachable."""
        self.connect_since = None

    def wait_or_give_up(self, dest: Path, url: str, streak: Streak, t: Transient, kept: int = 0) -> None:
        """Sleep before the next attempt, or raise the FetchError that ends the streak
        (``kept``: bytes of a .part that stay for a resume)."""
        p, now = self.policy, time.monotonic()
        streak.n += 1
        if streak.since is None:
            streak.since = now
        if t.connect:
            self.connect_since = self.connect_since if self.connect_since is not None else now
            since, window, next_try = self.connect_since, p.connect_window, self.connect_timeout
        else:
            since, window, next_try = streak.since, p.retry_window, 0.0
        if t.retry_after is not None:
            delay = min(t.retry_after, p.max_retry_after)
        else:
            delay = min(p.backoff * 2 ** (streak.n - 1), BACKOFF_MAX)
        retried = streak.n - 1
        if streak.n > p.retries:
            why = ""
        elif now + delay + next_try - since > window:  # the next attempt would end past the window
            what = "time limit for reaching hosts" if t.connect else "retry time limit"
            why = f" in {now - since:.1f} s; the {what} of {window:g} s is reached"
        elif now + delay > self.deadline:
            why = f"; the download time limit of {p.deadline:g} s is reached"
        else:
            log.warning("retrying %s after %s (retry %d of %d, in %.2fs)", url, t.reason, streak.n, p.retries, delay)
            time.sleep(delay)
            return
        if t.connect:
            what, detail, causes = t.reach
            raise FetchError(dest, f"{url}: cannot reach {host(url)}: {what} ({detail}); gave up after {retried} "
                                   f"retries{why or f' in {now - since:.1f} s'}. Likely cause: {causes}. "
                                   f"Without network, the offline demo still works: {OFFLINE_DEMO}")
        if t.status is not None:
            raise FetchError(dest, f"{url} answered HTTP {t.status} {t.status_text} (after {retried} retries{why})")
        keep = f"; the {kept} bytes downloaded so far are kept and resumed from on the next run" if kept else ""
        raise FetchError(dest, f"{url}: {t.reason} (after {retried} retries{why}){keep}")
