"""Download one catalogue file: resumable, retried, mirrored, and checked before it appears.

``dest`` only ever appears complete (``.part`` -> ``os.replace``), followed by a
``<dest>.verified.json`` sidecar that lets later runs skip the download without network access.
The sidecar and the record say what was checked (``checksum_source``, ``checked``): a file with no
pinned checksum is recorded as such, never as verified. Beside a ``.part``, ``<dest>.part.json``
keeps the first response's validators (ETag, Last-Modified, total size) so that a resume never
splices two versions of a file; ``<dest>.first-use.json`` keeps the size and sha256 each URL gave
the first time, so that a later download of an unpinned file that differs is reported.

One retry loop (ours; the session has no transport retries) bounds every failure by count and by
time: transient server errors back off exponentially within ``retry_window``, unreachable hosts
give up within ``connect_window``, restarts from byte 0 are counted, a trickling transfer is cut,
and nothing outlives ``deadline``.
"""

from __future__ import annotations

import email.utils
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
import urllib.parse
import urllib.request
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm import tqdm

from medcurate import __version__
from medcurate import secrets as _secrets
from medcurate.atomic import file_digest, os_error_text, write_text
from medcurate.errors import ChecksumError, FetchError, MedcurateError

log = logging.getLogger("medcurate.fetch")

USER_AGENT = f"medcurate/{__version__} (+https://github.com/medcurate/medcurate; dataset curation workflow)"
RETRY_STATUSES = (429, 500, 502, 503, 504)
CHUNK = 1 << 20
BACKOFF_MAX = 120.0  # one backoff sleep at most (Retry-After has its own cap, max_retry_after)
PROGRESS = 1 << 20  # an attempt that added this much was not a failure streak: the retry count restarts
MAX_REDIRECTS = 10
OFFLINE_DEMO = "snakemake --cores 2 --configfile config/sample.yaml"
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")
_IDENTITY = ("", "identity")


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


def make_session() -> requests.Session:
    """A session with no transport retries (fetch's own loop is the only one) and few redirects."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.max_redirects = MAX_REDIRECTS
    return session


def fetch(source: dict, dest: Path, *, zenodo_api: str = "https://zenodo.org/api",
          timeout: float = 60.0, retries: int = 8, backoff: float = 2.0,
          max_retry_after: float = 300.0, session: requests.Session | None = None,
          secrets: _secrets.Secrets | None = None, retry_window: float = Policy.retry_window,
          connect_window: float = Policy.connect_window, deadline: float = Policy.deadline,
          min_speed: float = Policy.min_speed, speed_window: float = Policy.speed_window,
          max_restarts: int = Policy.max_restarts) -> dict:
    """Make ``dest`` a checked copy of ``source`` (a catalogue entry) and return its record.

    A caller-supplied ``session`` should not retry by itself (see :func:`make_session`): retries
    nested in fetch's own would multiply their bounds. ``secrets`` (default:
    :func:`medcurate.secrets.load`, i.e. the environment and the secrets file) gives the
    Authorization header of each host; no credential reaches a log line, the record or an error.
    """
    secrets = _secrets.load() if secrets is None else secrets
    redactor = _Redact(secrets)
    log.addFilter(redactor)
    policy = Policy(retries=retries, backoff=backoff, max_retry_after=max_retry_after, retry_window=retry_window,
                    connect_window=connect_window, deadline=deadline, min_speed=min_speed,
                    speed_window=speed_window, max_restarts=max_restarts)
    try:
        fetcher = _Fetcher(source, Path(dest), zenodo_api=zenodo_api, timeout=timeout, policy=policy)
        fetcher.secrets = secrets
        if (record := fetcher.cached()) is not None:
            return record
        own = session is None
        fetcher.session = make_session() if own else session
        try:
            return fetcher.run()
        finally:
            if own:
                fetcher.session.close()
    except MedcurateError as exc:  # the same error, with any credential (or signed URL part) masked
        clean = type(exc)(secrets.redact(exc.path) if exc.path else None, secrets.redact(exc.reason))
        raise clean.with_traceback(exc.__traceback__) from None
    finally:
        log.removeFilter(redactor)


def forget(dest: Path, reason: str, *, record: Path | None = None) -> bool:
    """Drop an unpinned cached download (``dest``, its sidecar, any ``.part``) so that the next run
    downloads it again; ``reason`` (why it is dropped, e.g. the unpack error) is logged and kept in
    the first-use record. ``record``: the workflow's fetch record to remove too, so that Snakemake
    re-runs the download. Returns False, removing nothing, for a download whose bytes were checked
    against a checksum (pinned or Zenodo's): fetching it again would give the same bytes."""
    dest = Path(dest)
    sidecar = _sidecar(dest)
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        log.warning("%s: not dropped (%s): it has no download record, so nothing says it is unpinned", dest, reason)
        return False
    if _has_checksum(info):
        log.warning("%s: not dropped (%s): its %s was checked against a %s checksum, so downloading it again would "
                    "give the same bytes", dest, reason, "/".join(_checked(info)), info.get("checksum_source"))
        return False
    url, sha256 = info.get("url"), info.get("sha256")
    if url and sha256:  # the next download of the same bytes can then say the source itself is damaged
        first_use = _FirstUse(dest)
        first_use.note_dropped(url, sha256, reason)
    for path in (dest, sidecar, _part(dest), _validators_file(dest), *([Path(record)] if record else [])):
        path.unlink(missing_ok=True)
    log.warning("dropped %s (%s): it was downloaded without a pinned checksum, so the next run downloads it again",
                dest, reason)
    return True


# -- credentials (medcurate/secrets.py): headers for matching hosts, masked in every text ----------
class _Redact(logging.Filter):
    """Masks credentials in the log records of this module (messages are formatted first)."""

    def __init__(self, secrets: _secrets.Secrets):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.secrets.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _auth_headers(fetcher: _Fetcher, url: str, headers: dict) -> _secrets.Credential | None:
    """Add the Authorization header for ``url``'s host, if a credential is configured for it."""
    cred = fetcher.secrets.for_url(url)
    if cred is not None:
        headers["Authorization"] = cred.header()
    return cred


def _auth_failure(fetcher: _Fetcher, url: str, status: int, reason: str, cred) -> FetchError:
    """401/403: say whether our credential was refused or one is needed, never showing it."""
    if cred is not None:
        return FetchError(fetcher.dest, f"{url}: token rejected (HTTP {status} {reason}): the {cred.service} "
                                        f"credentials from {cred.origin} were refused; check that they are "
                                        "valid, not expired, and grant access to this file")
    service = fetcher.secrets.service_for(url)
    needs = f"; if it needs a login, {_secrets.hint(service)}" if service else ""
    return FetchError(fetcher.dest, f"{url} answered HTTP {status} {reason} (access denied){needs}")
# -------------------------------------------------------------------------------------------------


# -- files beside a download -----------------------------------------------------------------------
def _part(dest: Path) -> Path:
    return Path(f"{dest}.part")


def _sidecar(dest: Path) -> Path:
    return Path(f"{dest}.verified.json")


def _validators_file(dest: Path) -> Path:
    return Path(f"{dest}.part.json")


def _checked(record: dict) -> list[str]:
    if isinstance(record.get("checked"), list):
        return record["checked"]
    # records written before 'checked' existed
    return ["md5", "sha256", "size"] if record.get("checksum_source") in ("pinned", "zenodo-api") else []


def _has_checksum(record: dict) -> bool:
    return any(k in ("md5", "sha256") for k in _checked(record))


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class _FirstUse:
    """``<dest>.first-use.json``: per URL, the size and digests of its first download (kept when the
    download is dropped or replaced), so that a source that silently changes is noticed."""

    def __init__(self, dest: Path):
        self.path = Path(f"{dest}.first-use.json")
        self.entries = _read_json(self.path) or {}

    def save(self) -> None:
        write_text(self.path, json.dumps(self.entries, sort_keys=True, indent=2) + "\n")

    def note_dropped(self, url: str, sha256: str, reason: str) -> None:
        entry = self.entries.get(url)
        if isinstance(entry, dict):
            entry["dropped"] = [*entry.get("dropped", []), {"sha256": sha256, "reason": reason}][-5:]
            self.save()


def _digests(path: Path) -> dict:
    """md5 and sha256 in one read, side by side (hashlib releases the GIL): a 2 GB download is
    checked in the time of its slower digest, not of both."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh, ThreadPoolExecutor(1) as pool:
        pending = None
        while block := fh.read(CHUNK):
            if pending:
                pending.result()  # md5 of the previous block first: updates stay in order
            pending = pool.submit(md5.update, block)
            sha256.update(block)
        if pending:
            pending.result()
    return {"size": path.stat().st_size, "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def _content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """(start, end, total) of a Content-Range header; None where absent or '*'."""
    m = _CONTENT_RANGE.fullmatch((header or "").strip())
    if not m:
        return None, None, None
    return (int(m[1]) if m[1] else None), (int(m[2]) if m[2] else None), (int(m[3]) if m[3] != "*" else None)


def _retry_after(value: str | None) -> float | None:
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


def _host(url: str) -> str:
    """host[:port] of a URL, without any user:password@."""
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    head = head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


# -- truncation a format can reveal (bodies sent without a length) ---------------------------------
def _inflate(path: Path, wbits: int, out=None) -> None:
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


def _format_problem(path: Path) -> str | None:
    """Why a file is visibly cut short by its own format (zip, gzip, xz), or None if it is not
    (or its format cannot tell)."""
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
            _inflate(path, 31)
        except ValueError as e:
            return f"gzip: {e}"
    return None


# -- failures --------------------------------------------------------------------------------------
class _Transient(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, reason: str, *, connect: bool = False, status: int | None = None,
                 status_text: str = "", retry_after: float | None = None, reach: tuple[str, str, str] = ("", "", "")):
        super().__init__(reason)
        self.reason, self.connect, self.status, self.status_text = reason, connect, status, status_text
        self.retry_after, self.reach = retry_after, reach


class _Restart(Exception):
    """The server's answer cannot continue the .part: start over from byte 0."""


def _unreached(exc: BaseException) -> tuple[str, str, str] | None:
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


@dataclass
class _Streak:
    """Consecutive failed attempts (of one URL, or of the Zenodo API call)."""

    n: int = 0
    since: float | None = None


@dataclass
class _Validators:
    """What the first response said about the file, to check a resume against."""

    url: str
    etag: str | None
    last_modified: str | None
    total: int | None
    encoding: str

    @classmethod
    def load(cls, path: Path) -> _Validators | None:
        v = _read_json(path)
        try:
            return cls(str(v["url"]), v.get("etag"), v.get("last_modified"), v.get("total"), v.get("encoding", ""))
        except (KeyError, TypeError):
            return None

    def if_range(self) -> str | None:
        """If-Range needs a strong ETag; otherwise the date (RFC 9110 13.1.5)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


class _Fetcher:
    def __init__(self, source: dict, dest: Path, *, zenodo_api, timeout, policy: Policy):
        self.source, self.dest, self.name = source, dest, source["name"]
        self.part, self.sidecar, self.vfile = _part(dest), _sidecar(dest), _validators_file(dest)
        self.zenodo_api, self.policy = zenodo_api.rstrip("/"), policy
        self.timeout = (min(timeout, 30.0), timeout)  # (connect, read)
        self.expect_archive = source.get("expect", "archive") == "archive"
        self.expected: dict = {k: source[k].lower() for k in ("md5", "sha256") if source.get(k)}
        self.pinned = bool(self.expected)
        if source.get("size") is not None:
            self.expected["size"] = int(source["size"])
        self.session: requests.Session | None = None
        self.secrets = _secrets.Secrets()
        self.started = time.monotonic()
        self.connect_since: float | None = None  # first of the current unreachable-host failures
        self.validators: _Validators | None = None
        self.restarts = 0
        self.truncated_at: int | None = None

    @property
    def has_checksum(self) -> bool:
        """A digest will be compared (pinned, or from Zenodo): a bad resume cannot slip through."""
        return "md5" in self.expected or "sha256" in self.expected

    def part_size(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def discard_part(self) -> None:
        self.part.unlink(missing_ok=True)
        self.vfile.unlink(missing_ok=True)
        self.validators = None

    # -- cache -------------------------------------------------------------------------------
    def agrees(self, values: dict) -> bool:
        return all(values.get(k) == v for k, v in self.expected.items())

    def cached(self) -> dict | None:
        if not self.dest.is_file():
            return None
        record = _read_json(self.sidecar)
        # a record of an unchecked download is re-made once a checksum is pinned (below)
        usable = record is not None and (_has_checksum(record) or not self.pinned)
        if usable and self.agrees(record) and record.get("sha256") == file_digest(self.dest):
            if _has_checksum(record):
                log.info("%s already downloaded and verified (checksum: %s)", self.dest, record.get("checksum_source"))
            else:
                log.info("%s already downloaded (not verified: no checksum pinned; unchanged since its download)",
                         self.dest)
            return record
        if self.pinned:
            actual = _digests(self.dest)
            if self.agrees(actual):
                log.info("%s matches its pinned checksums; recording it", self.dest)
                return self.promote(self.source["url"], actual, "pinned", move=False)
            log.warning("%s does not match its pinned checksums; downloading it again", self.dest)
        return None

    def promote(self, url: str, actual: dict, checksum_source: str, move: bool = True) -> dict:
        checked = sorted(self.expected)
        clean_url = self.secrets.redact(url)
        if checksum_source == "none":
            checksum_source = self.first_use(clean_url, actual)
        record = {"name": self.name, "url": clean_url, "checksum_source": checksum_source, "checked": checked,
                  **actual}
        self.sidecar.unlink(missing_ok=True)  # never let an old sidecar sit beside a new file
        if move:
            self.part.replace(self.dest)
        self.vfile.unlink(missing_ok=True)
        write_text(self.sidecar, json.dumps(record, sort_keys=True, indent=2) + "\n")
        if self.has_checksum:
            log.info("verified %s: %d bytes, sha256 %s, md5 %s (checked %s; checksum: %s)", self.dest,
                     actual["size"], actual["sha256"], actual["md5"], ", ".join(checked), checksum_source)
        else:
            what = "only its size was checked" if checked else "not verified"
            log.info("downloaded %s (%s: no checksum pinned): %d bytes, sha256 %s, md5 %s; checksum: %s", self.dest, what,
                     actual["size"], actual["sha256"], actual["md5"], checksum_source)
        return record

    def first_use(self, url: str, actual: dict) -> str:
        """Compare an unpinned download with the first one of its URL (recording it if it is the first)."""
        registry = _FirstUse(self.dest)
        first = registry.entries.get(url)
        if not isinstance(first, dict) or "sha256" not in first:
            registry.entries[url] = {"size": actual["size"], "sha256": actual["sha256"], "md5": actual["md5"],
                                     "first_seen": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            registry.save()
            return "none (first use: size and sha256 recorded)"
        if first["sha256"] == actual["sha256"]:
            dropped = [d for d in first.get("dropped", []) if d.get("sha256") == actual["sha256"]]
            if dropped:
                log.warning("%s: %s gave the same bytes as the copy dropped earlier (%s): the file at the source "
                            "itself is probably damaged", self.dest, url, dropped[-1].get("reason"))
            return "none (same size and sha256 as the first download)"
        log.warning("%s: %s now gives %d bytes, sha256 %s, but its first download (%s) was %s bytes, sha256 %s: "
                    "the file at the source changed (a new version, or a damaged copy); no checksum is pinned "
                    "to tell which", self.dest, url, actual["size"], actual["sha256"], first.get("first_seen", "?"),
                    first.get("size"), first["sha256"])
        return f"none (differs from the first download: {first.get('size')} bytes, sha256 {first['sha256']})"

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        checksum_source = "pinned" if self.pinned else "none"
        if self.source.get("zenodo") and self.zenodo() and not self.pinned:
            checksum_source = "zenodo-api"
        urls = [self.source["url"], *self.source.get("mirrors", [])]
        failures: list[tuple[str, FetchError]] = []
        for url in urls:
            try:
                actual = self.attempt(url)
            except FetchError as e:
                log.warning("source failed: %s", e.reason)
                failures.append((url, e))
                continue
            return self.promote(url, actual, checksum_source)
        if len(failures) == 1:
            raise failures[0][1]
        cls = ChecksumError if any(isinstance(e, ChecksumError) for _, e in failures) else FetchError
        raise cls(self.dest, f"could not fetch {self.name} from any of {len(urls)} sources:\n"
                  + "\n".join(f"  - {e.reason}" for _, e in failures))

    def attempt(self, url: str) -> dict:
        self.restarts, self.truncated_at = 0, None
        resumed = self.part.exists()
        try:
            return self.download_and_verify(url)
        except ChecksumError:
            if not resumed:
                raise
            # the leftover .part may have come from another mirror or an older file version
            log.warning("%s: mismatch after resuming a leftover .part; downloading from byte 0", url)
            self.discard_part()
            return self.download_and_verify(url)

    def download_and_verify(self, url: str) -> dict:
        if urllib.parse.urlsplit(url).scheme == "file":
            self.copy_file(url)
        else:
            self.download(url)
        if self.expect_archive and _looks_like_html(self.part):
            self.html_error(url)
        encoding = self.validators.encoding if self.validators else ""
        actual = _digests(self.part)
        problems = self.mismatches(actual)
        if problems and encoding not in _IDENTITY and self.has_checksum:
            decoded = self.decode(url, encoding)
            if decoded is None:
                problems = [f"{p} (as sent, Content-Encoding: {encoding}, which cannot be decoded here)"
                            for p in problems]
            else:
                problems2 = self.mismatches(decoded)
                if not problems2:
                    log.warning("%s sent %s with Content-Encoding: %s; decoded, it matches the checksum", url,
                                self.name, encoding)
                    os.replace(f"{self.part}.decoded.tmp", self.part)
                    return decoded
                problems = [f"{p} (as sent, Content-Encoding: {encoding})" for p in problems] + \
                           [f"{p} (decoded)" for p in problems2]
                Path(f"{self.part}.decoded.tmp").unlink(missing_ok=True)
        elif not problems and encoding not in _IDENTITY:
            log.warning("%s labelled %s Content-Encoding: %s; the bytes as sent are kept (%s)", url, self.name,
                        encoding, "they match the checksum" if self.has_checksum else f"a {encoding} file")
        if problems:
            self.discard_part()
            raise ChecksumError(self.dest, f"{self.name} from {url} does not match: " + "; ".join(problems))
        return actual

    def mismatches(self, actual: dict) -> list[str]:
        out = []
        for k, v in self.expected.items():
            if actual[k] != v:
                short = " (truncated)" if k == "size" and actual[k] < v else ""
                out.append(f"{k} expected {v}, got {actual[k]}{short}")
        return out

    def decode(self, url: str, encoding: str) -> dict | None:
        """Digests of the .part decoded from ``encoding`` (into <part>.decoded.tmp), None if it cannot be."""
        wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15}.get(encoding)
        tmp = Path(f"{self.part}.decoded.tmp")
        if wbits is None:
            return None
        try:
            with open(tmp, "wb") as out:
                try:
                    _inflate(self.part, wbits, out)
                except ValueError:
                    if encoding != "deflate":
                        raise
                    out.seek(0)
                    out.truncate()
                    _inflate(self.part, -15, out)  # some servers send raw deflate
        except (ValueError, OSError) as e:
            log.warning("%s: cannot decode Content-Encoding: %s (%s)", url, encoding, e)
            tmp.unlink(missing_ok=True)
            return None
        return _digests(tmp)

    def html_error(self, url: str):
        self.discard_part()
        raise FetchError(self.dest, f"{url} returned an HTML page instead of {self.name} "
                                    "(a login, error or consent page?)")

    # -- sources -----------------------------------------------------------------------------
    def copy_file(self, url: str) -> None:
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        log.info("copying %s", path)
        self.discard_part()
        try:
            with open(path, "rb") as src:
                try:
                    with open(self.part, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                except OSError as e:  # our side: disk full, quota, ...
                    raise FetchError(self.dest, f"{url}: cannot copy to {self.part} ({os_error_text(e)})") from e
        except OSError as e:
            raise FetchError(self.dest, f"{url}: cannot read ({e.strerror or e})") from e

    # -- the retry loop ------------------------------------------------------------------------
    def retry_or_give_up(self, url: str, streak: _Streak, t: _Transient) -> None:
        """Sleep before the next attempt, or raise the FetchError that ends the streak."""
        p, now = self.policy, time.monotonic()
        streak.n += 1
        if streak.since is None:
            streak.since = now
        if t.connect:
            self.connect_since = self.connect_since if self.connect_since is not None else now
            since, window, next_try = self.connect_since, p.connect_window, self.timeout[0]
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
        elif now + delay > self.started + p.deadline:
            why = f"; the download time limit of {p.deadline:g} s is reached"
        else:
            log.warning("retrying %s after %s (retry %d of %d, in %.2fs)", url, t.reason, streak.n, p.retries, delay)
            time.sleep(delay)
            return
        if t.connect:
            what, detail, causes = t.reach
            raise FetchError(self.dest, f"{url}: cannot reach {_host(url)}: {what} ({detail}); gave up after {retried} "
                                        f"retries{why or f' in {now - since:.1f} s'}. Likely cause: {causes}. "
                                        f"Without network, the offline demo still works: {OFFLINE_DEMO}")
        if t.status is not None:
            raise FetchError(self.dest, f"{url} answered HTTP {t.status} {t.status_text} (after {retried} retries{why})")
        kept = self.part_size()
        keep = f"; the {kept} bytes downloaded so far are kept and resumed from on the next run" if kept else ""
        raise FetchError(self.dest, f"{url}: {t.reason} (after {retried} retries{why}){keep}")

    def send(self, url: str, headers: dict, stream: bool) -> requests.Response:
        """One request; failures worth retrying become _Transient, the others FetchError."""
        try:
            resp = self.session.get(url, headers=headers, stream=stream, timeout=self.timeout)
        except requests.TooManyRedirects as e:
            raise FetchError(self.dest, f"{url}: too many redirects (a redirect loop?): {e}") from e
        except requests.exceptions.SSLError as e:
            reach = _unreached(e)
            if reach is None:  # not transient: a certificate problem stays one
                raise FetchError(self.dest, f"{url}: TLS error ({e}); an intercepting proxy, or a wrong system "
                                            "clock?") from e
            raise _Transient(f"cannot reach {_host(url)}: {reach[0]} ({reach[1]})", connect=True, reach=reach) from e
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as e:
            raise FetchError(self.dest, f"{url}: not a usable URL ({e})") from e
        except requests.RequestException as e:
            reach = _unreached(e)
            if reach is not None:
                raise _Transient(f"cannot reach {_host(url)}: {reach[0]} ({reach[1]})", connect=True,
                                 reach=reach) from e
            raise _Transient(f"request failed ({e})") from e
        self.connect_since = None  # a server answered: the host is reachable
        if resp.status_code in RETRY_STATUSES:
            with resp:
                raise _Transient(f"HTTP {resp.status_code} {resp.reason}", status=resp.status_code,
                                 status_text=resp.reason, retry_after=_retry_after(resp.headers.get("Retry-After")))
        return resp

    # -- HTTP download -------------------------------------------------------------------------
    def download(self, url: str) -> None:
        """Fill ``.part`` with the whole body of ``url``, resuming from what it already holds."""
        if self.part.exists():
            self.validators = _Validators.load(self.vfile)
        else:
            self.discard_part()  # validators of a .part that is gone describe nothing
        streak = _Streak()
        while True:
            before = self.part_size()
            try:
                self.transfer(url)
                return
            except _Restart as r:
                self.restarts += 1
                if self.restarts > self.policy.max_restarts:
                    self.discard_part()
                    raise FetchError(self.dest, f"{url}: {r}; gave up after {self.policy.max_restarts} restarts "
                                                "from byte 0") from None
                log.warning("%s: %s; starting over from byte 0 (restart %d of %d)", url, r, self.restarts,
                            self.policy.max_restarts)
                self.discard_part()
            except _Transient as t:
                if self.part_size() - before >= PROGRESS:
                    streak = _Streak()  # a working transfer that broke: a new streak, not the same one
                self.retry_or_give_up(url, streak, t)

    def resume_ok(self, url: str) -> bool:
        """Whether the .part may be continued: its validators are this URL's, or a checksum will
        catch a resume that splices two versions."""
        v = self.validators
        if v is not None and v.url == self.secrets.redact(url):
            return True
        if self.has_checksum:
            self.validators = None  # another server's validators say nothing about this one
            return True
        log.warning("%s: the leftover .part (%d bytes) has no record of %s's validators and no checksum is "
                    "pinned to catch a mixed file; starting over from byte 0", self.dest, self.part_size(), url)
        return False

    def transfer(self, url: str) -> None:
        """One request: append its body to the .part, or raise _Restart / _Transient / FetchError."""
        deadline = self.started + self.policy.deadline
        if time.monotonic() > deadline:
            raise FetchError(self.dest, f"{url}: the download time limit of {self.policy.deadline:g} s is reached"
                                        f"; the {self.part_size()} bytes downloaded so far are kept")
        offset = self.part_size()
        if offset and not self.resume_ok(url):
            self.discard_part()
            offset = 0
        v = self.validators
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if v is not None and (if_range := v.if_range()):
                headers["If-Range"] = if_range
        cred = _auth_headers(self, url, headers)
        log.info("GET %s%s%s", url, f" (resuming at byte {offset})" if offset else "",
                 f" with the {cred.service} credentials from {cred.origin}" if cred else "")
        resp = self.send(url, headers, stream=True)
        with resp:
            status = resp.status_code
            start, _, total = _content_range(resp.headers.get("Content-Range"))
            if status == 416:
                want = self.expected.get("size", v.total if v is not None else None)
                if offset and offset == total and want in (None, total):
                    # the body came without a length (a leftover without validators has a checksum to judge it)
                    if v is not None and v.total is None and (why := _format_problem(self.part)):
                        raise FetchError(self.dest, f"{url} has no bytes after the {offset} of the .part (HTTP 416), "
                                                    f"and {why} (is the server's copy truncated?)")
                    log.info("%s: .part already complete (%d bytes)", url, offset)
                    return
                if not offset:
                    raise FetchError(self.dest, f"{url} answered HTTP 416 to a full download")
                raise _Restart(f"HTTP 416 for a .part of {offset} bytes (the server has {total})")
            if status in (401, 403):
                raise _auth_failure(self, url, status, resp.reason, cred)
            if status not in (200, 206):
                raise FetchError(self.dest, f"{url} answered HTTP {status} {resp.reason}")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if self.expect_archive and content_type == "text/html":
                self.html_error(url)
            encoding = resp.headers.get("Content-Encoding", "").strip().lower()
            length = resp.headers.get("Content-Length", "").strip()
            length = int(length) if length.isdigit() else None
            seen = _Validators(self.secrets.redact(url), resp.headers.get("ETag"), resp.headers.get("Last-Modified"),
                               total if status == 206 else length, "" if encoding in _IDENTITY else encoding)
            if status == 206:
                if start is None:
                    raise _Restart(f"answered 206 with an unusable Content-Range {resp.headers.get('Content-Range')!r}")
                problems = self.resume_problems(v, seen, start, offset)
                if problems:
                    raise _Restart("cannot resume: " + "; ".join(problems))
            elif offset:  # 200 to a Range request: the server ignores ranges, or If-Range said the file changed
                self.restarts += 1
                if self.restarts > self.policy.max_restarts:
                    raise FetchError(self.dest, f"{url}: answered 200 to a Range request again; gave up after "
                                                f"{self.policy.max_restarts} restarts from byte 0")
                log.warning("%s answered 200 to the request for bytes %d- (it ignores ranges, or the file changed "
                            "since the .part was started); starting over from byte 0 (restart %d of %d)", url,
                            offset, self.restarts, self.policy.max_restarts)
                self.discard_part()
                offset = 0
            if seen.encoding and not self.has_checksum and not (
                    seen.encoding in ("gzip", "x-gzip") and self.name.lower().endswith((".gz", ".tgz"))):
                self.discard_part()
                raise FetchError(self.dest, f"{url} sent {self.name} with Content-Encoding: {seen.encoding} although "
                                            "medcurate asked for none (Accept-Encoding: identity): the bytes as sent "
                                            "are not the file as published, and with no checksum pinned nothing can "
                                            "tell whether decoding them would give it; refusing. Pin its sha256 in "
                                            "the catalogue, or use another mirror")
            if offset == 0:  # a new .part: its validators first, so a later resume can be checked
                self.validators = seen
                try:
                    write_text(self.vfile, json.dumps(seen.__dict__, sort_keys=True, indent=2) + "\n")
                except (OSError, MedcurateError) as e:
                    raise FetchError(self.dest, f"cannot write {self.vfile} ({e})") from e
            # the whole file: a 206 may carry less than the rest (then the next attempt resumes)
            want = total if status == 206 and total is not None else (offset + length if length is not None else None)
            self.stream(url, resp, offset, want, deadline)
        got = self.part_size()
        if want is not None and got < want:  # the server ended the body early and said it was complete
            raise _Transient(f"connection closed at byte {got} of {want}: the body is shorter than announced")
        if want is None and (why := _format_problem(self.part)):
            # no length to compare with: the format is the only witness of a body cut short
            if self.truncated_at == got:
                raise FetchError(self.dest, f"{url} sent {got} bytes without a Content-Length and {why}; the "
                                            "server has no more bytes (is its copy truncated?)")
            self.truncated_at = got
            raise _Transient(f"sent {got} bytes without a Content-Length and {why}")

    def resume_problems(self, v: _Validators | None, seen: _Validators, start: int, offset: int) -> list[str]:
        problems = []
        if start != offset:
            problems.append(f"Content-Range {start}-... does not start at byte {offset}")
        if v is None:  # resuming a .part nothing is recorded about: a checksum will judge it
            want = self.expected.get("size")
            if offset and want is not None and seen.total != want:
                problems.append(f"total {seen.total} is not the pinned size {want}")
            return problems
        if v.total is not None and seen.total != v.total:
            problems.append(f"total {seen.total} differs from the {v.total} bytes first announced")
        for label, old, new in (("ETag", v.etag, seen.etag), ("Last-Modified", v.last_modified, seen.last_modified)):
            if old and new and old != new:
                problems.append(f"{label} changed from {old} to {new}")
        if seen.encoding != v.encoding:
            problems.append(f"Content-Encoding changed from {v.encoding or 'none'} to {seen.encoding or 'none'}")
        return problems

    def stream(self, url: str, resp: requests.Response, offset: int, want: int | None, deadline: float) -> None:
        p = self.policy
        raw = resp.raw
        read = getattr(raw, "read1", None)  # urllib3 >= 2.3: returns as soon as bytes arrive
        if read is None:
            def read(amt, decode_content=False):
                return raw.read(min(amt, 1 << 16), decode_content=decode_content)
        got = offset
        # the pinned size is the file's: an encoded body may legitimately be larger
        limit = None if self.validators is not None and self.validators.encoding else self.expected.get("size")
        try:
            with open(self.part, "ab" if offset else "wb") as fh, tqdm(
                total=want, initial=offset, desc=self.name, unit="B", unit_scale=True,
                unit_divisor=1024, mininterval=5, file=sys.stderr,
            ) as bar:
                window_t, window_got = time.monotonic(), got
                while True:
                    try:
                        # raw bytes as sent (never decoded), so checksums and offsets hold
                        chunk = read(CHUNK, decode_content=False)
                    except (urllib3.exceptions.HTTPError, OSError) as e:  # dropped, reset, stalled
                        if want is not None:
                            where = f"byte {got} of {want} (the body is shorter than its Content-Length)"
                        else:
                            where = f"byte {got}"
                        raise _Transient(f"connection lost at {where} ({e})") from e
                    if not chunk:
                        return
                    try:
                        fh.write(chunk)
                    except OSError as e:  # our side: disk full, quota, ... (the .part is kept for a resume)
                        raise FetchError(self.dest, f"cannot write {self.part} ({os_error_text(e)}); the bytes "
                                                    "downloaded so far are kept and resumed from on the next run") from e
                    got += len(chunk)
                    bar.update(len(chunk))
                    if limit is not None and got > limit:  # an endless or wrong body: stop before the disk fills
                        self.discard_part()
                        raise ChecksumError(self.dest, f"{self.name} from {url} does not match: size expected "
                                                       f"{limit}, got more than that ({got} bytes so far)")
                    now = time.monotonic()
                    if now > deadline:
                        fh.flush()
                        raise FetchError(self.dest, f"{url}: the download time limit of {p.deadline:g} s is reached "
                                                    f"at byte {got}; the bytes downloaded so far are kept and resumed "
                                                    "from on the next run")
                    if now - window_t >= p.speed_window:
                        if got - window_got < p.min_speed * (now - window_t):
                            raise _Transient(f"transfer too slow at byte {got}: {got - window_got} bytes in "
                                             f"{now - window_t:.1f} s (below {p.min_speed:g} bytes/s)")
                        window_t, window_got = now, got
        except OSError as e:  # opening the .part
            raise FetchError(self.dest, f"cannot write {self.part} ({os_error_text(e)}); the bytes "
                                        "downloaded so far are kept and resumed from on the next run") from e

    # -- Zenodo --------------------------------------------------------------------------------
    def zenodo(self) -> bool:
        """Adopt (or check pinned values against) the Zenodo API's md5/size; True if md5 came from it."""
        record = self.source["zenodo"]["record"]
        api_url = f"{self.zenodo_api}/records/{record}"
        entry = None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        cred = _auth_headers(self, api_url, headers)
        streak = _Streak()
        try:
            while True:
                try:
                    resp = self.send(api_url, headers, stream=False)
                    break
                except _Transient as t:
                    self.retry_or_give_up(api_url, streak, t)
            if resp.status_code in (401, 403) and cred is not None:
                raise _auth_failure(self, api_url, resp.status_code, resp.reason, cred)
            resp.raise_for_status()
            files = resp.json().get("files") or []
            if isinstance(files, dict):  # InvenioRDM-style {"entries": {key: {...}}}
                files = list((files.get("entries") or {}).values())
            entry = next((f for f in files if (f.get("key") or f.get("filename")) == self.name), None)
            problem = None if entry else f"{self.name} is not listed in Zenodo record {record}"
        except ChecksumError:
            raise
        except FetchError as e:
            if "token rejected" in e.reason:
                raise
            problem = f"Zenodo API {api_url} unusable ({e.reason})"
        except (requests.RequestException, ValueError, AttributeError) as e:
            problem = f"Zenodo API {api_url} unusable ({e})"
        checksum = str((entry or {}).get("checksum") or "").lower()
        algo, _, api_md5 = checksum.rpartition(":")
        if entry and (not api_md5 or algo not in ("", "md5")):
            problem, api_md5 = f"Zenodo record {record} gives no md5 for {self.name}", None
        if problem:
            if self.pinned:
                log.warning("%s; going on with the pinned checksums", problem)
                return False
            raise FetchError(self.dest, f"{problem}, and no checksum is pinned for {self.name}: "
                                        "refusing to download it unverified")
        api = {"md5": api_md5}
        if (api_size := entry.get("size", entry.get("filesize"))) is not None:
            api["size"] = int(api_size)
        for key, value in api.items():
            if key in self.expected and self.expected[key] != value:
                raise ChecksumError(self.dest, f"{self.name}: pinned {key} {self.expected[key]} disagrees "
                                               f"with Zenodo record {record} ({value})")
            self.expected[key] = value
        return True
