"""Download one catalogue file: resumable, retried, mirrored, and verified before it appears.

``dest`` only ever appears complete and verified (``.part`` -> ``os.replace``), followed by a
``<dest>.verified.json`` sidecar that lets later runs skip the download without network access.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from medcurate import __version__
from medcurate import secrets as _secrets
from medcurate.atomic import file_digest, os_error_text, write_text
from medcurate.errors import ChecksumError, FetchError, MedcurateError

log = logging.getLogger("medcurate.fetch")

USER_AGENT = f"medcurate/{__version__} (+https://github.com/medcurate/medcurate; dataset curation workflow)"
RETRY_STATUSES = (429, 500, 502, 503, 504)
CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


class _Retry(Retry):
    """urllib3 Retry that caps Retry-After (not configurable before urllib3 2.5) and logs retries."""

    max_retry_after = 300.0

    def new(self, **kw):
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.max_retry_after)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        retry = super().increment(method, url, response, error, _pool, _stacktrace)  # raises when exhausted
        where = f"{_pool.scheme}://{_pool.host}:{_pool.port}{url}" if _pool is not None else url
        why = f"HTTP {response.status}" if response is not None and response.status else repr(error)
        log.warning("retrying %s after %s (%d retries used)", where, why, len(retry.history))
        return retry


def make_session(retries: int = 8, backoff: float = 2.0, max_retry_after: float = 300.0) -> requests.Session:
    """A session retrying connect errors and 429/5xx with exponential backoff, honouring Retry-After."""
    retry = _Retry(
        total=retries, connect=retries, read=retries, status=retries,
        backoff_factor=backoff, status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}), respect_retry_after_header=True,
        raise_on_status=False,  # the exhausted response comes back; we report its status
    )
    retry.max_retry_after = max_retry_after
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def fetch(source: dict, dest: Path, *, zenodo_api: str = "https://zenodo.org/api",
          timeout: float = 60.0, retries: int = 8, backoff: float = 2.0,
          max_retry_after: float = 300.0, session: requests.Session | None = None,
          secrets: _secrets.Secrets | None = None) -> dict:
    """Make ``dest`` a verified copy of ``source`` (a catalogue entry) and return its record.

    A caller-supplied ``session`` is used as configured (see :func:`make_session` for retries).
    ``secrets`` (default: :func:`medcurate.secrets.load`, i.e. the environment and the secrets
    file) gives the Authorization header of each host; no credential reaches a log line, the
    record or an error message.
    """
    secrets = _secrets.load() if secrets is None else secrets
    redactor = _Redact(secrets)
    log.addFilter(redactor)
    try:
        fetcher = _Fetcher(source, Path(dest), zenodo_api=zenodo_api, timeout=timeout, retries=retries,
                           backoff=backoff, max_retry_after=max_retry_after)
        fetcher.secrets = secrets
        if (record := fetcher.cached()) is not None:
            return record
        own = session is None
        fetcher.session = make_session(retries, backoff, max_retry_after) if own else session
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


def _digests(path: Path) -> dict:
    """md5 and sha256 in one read, side by side (hashlib releases the GIL): a 2 GB download is
    verified in the time of its slower digest, not of both."""
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


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(start, total) of a Content-Range header; None where absent or '*'."""
    m = _CONTENT_RANGE.fullmatch((header or "").strip())
    if not m:
        return None, None
    return (int(m[1]) if m[1] else None), (int(m[2]) if m[2] != "*" else None)


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1024)
    head = head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


class _Fetcher:
    def __init__(self, source: dict, dest: Path, *, zenodo_api, timeout, retries, backoff, max_retry_after):
        self.source, self.dest, self.name = source, dest, source["name"]
        self.part = Path(f"{dest}.part")
        self.sidecar = Path(f"{dest}.verified.json")
        self.zenodo_api, self.retries, self.backoff = zenodo_api.rstrip("/"), retries, backoff
        self.max_retry_after = max_retry_after
        self.timeout = (min(timeout, 30.0), timeout)  # (connect, read)
        self.expect_archive = source.get("expect", "archive") == "archive"
        self.expected: dict = {k: source[k].lower() for k in ("md5", "sha256") if source.get(k)}
        self.pinned = bool(self.expected)
        if source.get("size") is not None:
            self.expected["size"] = int(source["size"])
        self.session: requests.Session | None = None
        self.secrets = _secrets.Secrets()

    # -- cache -------------------------------------------------------------------------------
    def agrees(self, values: dict) -> bool:
        return all(values.get(k) == v for k, v in self.expected.items())

    def cached(self) -> dict | None:
        if not self.dest.is_file():
            return None
        try:
            record = json.loads(self.sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) and self.agrees(record) and record.get("sha256") == file_digest(self.dest):
            log.info("%s already downloaded and verified", self.dest)
            return record
        if self.pinned:
            actual = _digests(self.dest)
            if self.agrees(actual):
                log.info("%s matches its pinned checksums; recording it", self.dest)
                return self.promote(self.source["url"], actual, "pinned", move=False)
            log.warning("%s does not match its pinned checksums; downloading it again", self.dest)
        return None

    def promote(self, url: str, actual: dict, checksum_source: str, move: bool = True) -> dict:
        record = {"name": self.name, "url": self.secrets.redact(url), "checksum_source": checksum_source, **actual}
        self.sidecar.unlink(missing_ok=True)  # never let an old sidecar sit beside a new file
        if move:
            self.part.replace(self.dest)
        write_text(self.sidecar, json.dumps(record, sort_keys=True, indent=2) + "\n")
        log.info("verified %s: %d bytes, sha256 %s, md5 %s (checksum: %s)", self.dest, actual["size"],
                 actual["sha256"], actual["md5"], checksum_source)
        return record

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
                if "md5" not in self.expected and "sha256" not in self.expected:
                    # nothing would catch a .part resumed from a different (maybe stale) mirror
                    self.part.unlink(missing_ok=True)
                continue
            return self.promote(url, actual, checksum_source)
        if len(failures) == 1:
            raise failures[0][1]
        cls = ChecksumError if any(isinstance(e, ChecksumError) for _, e in failures) else FetchError
        raise cls(self.dest, f"could not fetch {self.name} from any of {len(urls)} sources:\n"
                  + "\n".join(f"  - {e.reason}" for _, e in failures))

    def attempt(self, url: str) -> dict:
        resumed = self.part.exists()
        try:
            return self.download_and_verify(url)
        except ChecksumError:
            if not resumed:
                raise
            # the leftover .part may have come from another mirror or an older file version
            log.warning("%s: mismatch after resuming a leftover .part; downloading from byte 0", url)
            return self.download_and_verify(url)

    def download_and_verify(self, url: str) -> dict:
        if urllib.parse.urlsplit(url).scheme == "file":
            self.copy_file(url)
        else:
            self.download(url)
        if self.expect_archive and _looks_like_html(self.part):
            self.html_error(url)
        actual = _digests(self.part)
        problems = [f"{k} expected {v}, got {actual[k]}" for k, v in self.expected.items() if actual[k] != v]
        if problems:
            self.part.unlink(missing_ok=True)
            raise ChecksumError(self.dest, f"{self.name} from {url} does not match: " + "; ".join(problems))
        return actual

    def html_error(self, url: str):
        self.part.unlink(missing_ok=True)
        raise FetchError(self.dest, f"{url} returned an HTML page instead of {self.name} "
                                    "(a login, error or consent page?)")

    # -- sources -----------------------------------------------------------------------------
    def copy_file(self, url: str) -> None:
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        log.info("copying %s", path)
        try:
            with open(path, "rb") as src:
                try:
                    with open(self.part, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                except OSError as e:  # our side: disk full, quota, ...
                    raise FetchError(self.dest, f"{url}: cannot copy to {self.part} ({os_error_text(e)})") from e
        except OSError as e:
            raise FetchError(self.dest, f"{url}: cannot read ({e.strerror or e})") from e

    def download(self, url: str) -> None:
        """Fill ``.part`` with the whole body of ``url``, resuming from what it already holds."""
        stalls, restarted = 0, False
        while True:
            offset = self.part.stat().st_size if self.part.exists() else 0
            headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            cred = _auth_headers(self, url, headers)
            log.info("GET %s%s%s", url, f" (resuming at byte {offset})" if offset else "",
                     f" with the {cred.service} credentials from {cred.origin}" if cred else "")
            try:
                resp = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
            except requests.RequestException as e:  # urllib3 has already retried
                raise FetchError(self.dest, f"{url}: {e}") from e
            with resp:
                status = resp.status_code
                if status == 416:
                    want = self.expected.get("size")
                    if want is None:
                        want = _content_range(resp.headers.get("Content-Range"))[1]
                    if offset and offset == want:
                        log.info("%s: .part already complete (%d bytes)", url, offset)
                        return
                    if restarted:
                        raise FetchError(self.dest, f"{url} answered HTTP 416 to a full download")
                    log.warning("%s: HTTP 416 for a .part of %d bytes; restarting from byte 0", url, offset)
                    restarted = True
                    self.part.unlink(missing_ok=True)
                    continue
                if status in (401, 403):
                    raise _auth_failure(self, url, status, resp.reason, cred)
                if status not in (200, 206):
                    gave_up = f" (after {self.retries} retries)" if status in RETRY_STATUSES else ""
                    raise FetchError(self.dest, f"{url} answered HTTP {status} {resp.reason}{gave_up}")
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if self.expect_archive and content_type == "text/html":
                    self.html_error(url)
                if status == 206 and _content_range(resp.headers.get("Content-Range"))[0] != offset:
                    stalls += 1
                    if stalls > self.retries:
                        raise FetchError(self.dest, f"{url}: server keeps answering with the wrong byte range")
                    log.warning("%s: Content-Range %r does not start at %d; restarting from byte 0",
                                url, resp.headers.get("Content-Range"), offset)
                    self.part.unlink(missing_ok=True)
                    continue
                mode = "ab"
                if status == 200 and offset:
                    log.warning("%s ignored the Range request; restarting from byte 0", url)
                    mode, offset = "wb", 0
                length = resp.headers.get("Content-Length", "")
                total = offset + int(length) if length.isdigit() else self.expected.get("size")
                try:
                    with open(self.part, mode) as fh, tqdm(
                        total=total, initial=offset, desc=self.name, unit="B", unit_scale=True,
                        unit_divisor=1024, mininterval=5, file=sys.stderr,
                    ) as bar:
                        # raw stream: bytes as sent (no gzip decoding), so checksums and offsets hold
                        for chunk in resp.raw.stream(CHUNK, decode_content=False):
                            fh.write(chunk)
                            bar.update(len(chunk))
                    return
                except OSError as e:  # our side: disk full, quota, ... (the .part is kept for a resume)
                    if isinstance(e, requests.RequestException):
                        raise
                    raise FetchError(self.dest, f"cannot write {self.part} ({os_error_text(e)}); the bytes "
                                                "downloaded so far are kept and resumed from on the next run") from e
                except urllib3.exceptions.HTTPError as e:  # connection dropped or stalled mid-body
                    now = self.part.stat().st_size if self.part.exists() else 0
                    stalls = 0 if now > offset else stalls + 1
                    if stalls > self.retries:
                        raise FetchError(self.dest, f"{url}: transfer kept failing at byte {now}: {e}") from e
                    delay = min(self.backoff * 2 ** stalls, self.max_retry_after)
                    log.warning("%s: connection lost at byte %d (%s); resuming in %.2fs", url, now, e, delay)
                    time.sleep(delay)

    def zenodo(self) -> bool:
        """Adopt (or check pinned values against) the Zenodo API's md5/size; True if md5 came from it."""
        record = self.source["zenodo"]["record"]
        api_url = f"{self.zenodo_api}/records/{record}"
        entry = None
        try:
            headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
            cred = _auth_headers(self, api_url, headers)
            resp = self.session.get(api_url, headers=headers, timeout=self.timeout)
            if resp.status_code in (401, 403) and cred is not None:
                raise _auth_failure(self, api_url, resp.status_code, resp.reason, cred)
            resp.raise_for_status()
            files = resp.json().get("files") or []
            if isinstance(files, dict):  # InvenioRDM-style {"entries": {key: {...}}}
                files = list((files.get("entries") or {}).values())
            entry = next((f for f in files if (f.get("key") or f.get("filename")) == self.name), None)
            problem = None if entry else f"{self.name} is not listed in Zenodo record {record}"
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
