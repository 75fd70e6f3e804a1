"""``fetch``: make ``dest`` a checked copy of one catalogue source, trying its URL then its mirrors.

Per URL: the cache (cache.py) first, then the transfer (transfer.py, or a file:// copy), then the
verdict: the file's digests against the expected ones (pinned, or Zenodo's: zenodo.py), an HTML
page refused, a Content-Encoding decoded only when a checksum decides; the .part becomes ``dest``
only when all of that passed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
import urllib.request
from pathlib import Path

import requests

from medcurate import secrets as _secrets
from medcurate.atomic import os_error_text
from medcurate.errors import ChecksumError, FetchError, MedcurateError

from . import auth, cache, zenodo
from .digests import digests, inflate, looks_like_html, mismatches
from .retry import Budget, Policy
from .transfer import IDENTITY, Client, HttpTransfer, make_session

log = logging.getLogger("medcurate.fetch")


def is_pinned(expected: dict) -> bool:
    """A digest (not only a size) is pinned in the catalogue."""
    return "md5" in expected or "sha256" in expected


def expected_digests(source: dict) -> dict:
    """The pinned md5/sha256/size of a catalogue source (lower-case hex)."""
    out = {k: source[k].lower() for k in ("md5", "sha256") if source.get(k)}
    if source.get("size") is not None:
        out["size"] = int(source["size"])
    return out


def fetch(source: dict, dest: Path, *, zenodo_api: str = "https://zenodo.org/api",
          timeout: float = 60.0, retries: int = 8, backoff: float = 2.0,
          max_retry_after: float = 300.0, session: requests.Session | None = None,
          secrets: _secrets.Secrets | None = None, retry_window: float = Policy.retry_window,
          connect_window: float = Policy.connect_window, deadline: float = Policy.deadline,
          min_speed: float = Policy.min_speed, speed_window: float = Policy.speed_window,
          max_restarts: int = Policy.max_restarts, refused=None, progress: bool = True) -> dict:
    """Make ``dest`` a checked copy of ``source`` (a catalogue entry) and return its record.

    ``refused(transfer, url, response, credential) -> FetchError``: a source type's own message
    for a 401/403 (kaggle.py names the competition's rules page). ``progress``: a tqdm bar per file
    (a folder source shows one bar for its items instead).

    A caller-supplied ``session`` should not retry by itself (see :func:`make_session`): retries
    nested in fetch's own would multiply their bounds. ``secrets`` (default:
    :func:`medcurate.secrets.load`, i.e. the environment and the secrets file) gives the
    Authorization header of each host; no credential reaches a log line, the record or an error.
    """
    secrets = _secrets.load() if secrets is None else secrets
    policy = Policy(retries=retries, backoff=backoff, max_retry_after=max_retry_after, retry_window=retry_window,
                    connect_window=connect_window, deadline=deadline, min_speed=min_speed,
                    speed_window=speed_window, max_restarts=max_restarts)
    with redacted(secrets), client_for(secrets, timeout, policy, session) as client:
        dest = Path(dest)
        expected = expected_digests(source)
        record, actual = cache.cached(dest, expected, pinned=is_pinned(expected))
        if record is not None:
            return record
        if actual is not None:  # the file is there and matches its pins: only its record was missing
            return cache.promote(dest, source["name"], secrets.redact(source["url"]), actual, "pinned", expected,
                                 move=False)
        fetcher = Fetcher(source, dest, client, zenodo_api, expected)
        fetcher.transfer.progress = progress
        if refused is not None:
            fetcher.transfer.refused_hook = refused
        return fetcher.run()


@contextlib.contextmanager
def redacted(secrets: _secrets.Secrets):
    """Within it, the fetch logger masks credentials, and a MedcurateError leaving it is the
    same error with any credential (or signed URL part) masked."""
    mask = auth.Redact(secrets)
    log.addFilter(mask)
    try:
        yield
    except MedcurateError as exc:
        clean = type(exc)(secrets.redact(exc.path) if exc.path else None, secrets.redact(exc.reason))
        raise clean.with_traceback(exc.__traceback__) from None
    finally:
        log.removeFilter(mask)


@contextlib.contextmanager
def client_for(secrets: _secrets.Secrets, timeout: float, policy: Policy, session: requests.Session | None):
    """A Client for one fetch; the session is closed afterwards unless the caller gave it."""
    connect = min(timeout, 30.0)
    own = session is None
    client = Client(make_session() if own else session, secrets, (connect, timeout), Budget(policy, connect))
    try:
        yield client
    finally:
        if own:
            client.session.close()


class Fetcher:
    def __init__(self, source: dict, dest: Path, client: Client, zenodo_api: str, expected: dict):
        self.source, self.dest, self.name, self.client = source, dest, source["name"], client
        self.zenodo_api = zenodo_api.rstrip("/")
        self.pinned = is_pinned(expected)
        self.transfer = HttpTransfer(client, dest, self.name, expected,
                                     expect_archive=source.get("expect", "archive") == "archive")

    @property
    def expected(self) -> dict:
        return self.transfer.expected

    def run(self) -> dict:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        checksum_source = "pinned" if self.pinned else "none"
        if self.source.get("zenodo") and self.adopt_zenodo() and not self.pinned:
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
            return cache.promote(self.dest, self.name, self.client.secrets.redact(url), actual, checksum_source,
                                 self.expected)
        if len(failures) == 1:
            raise failures[0][1]
        cls = ChecksumError if any(isinstance(e, ChecksumError) for _, e in failures) else FetchError
        raise cls(self.dest, f"could not fetch {self.name} from any of {len(urls)} sources:\n"
                  + "\n".join(f"  - {e.reason}" for _, e in failures))

    def adopt_zenodo(self) -> bool:
        """Take (or check pinned values against) the Zenodo API's md5/size; True if md5 came from it."""
        record = self.source["zenodo"]["record"]
        api, problem = zenodo.lookup(self.client, self.dest, self.zenodo_api, record, self.name)
        if problem:
            if self.pinned:
                log.warning("%s; going on with the pinned checksums", problem)
                return False
            raise FetchError(self.dest, f"{problem}, and no checksum is pinned for {self.name}: "
                                        "refusing to download it unverified")
        self.transfer.expected = zenodo.merge(self.expected, api, name=self.name, record=record, dest=self.dest)
        return True

    def attempt(self, url: str) -> dict:
        t = self.transfer
        t.restarts, t.truncated_at = 0, None
        resumed = t.part.exists()
        try:
            return self.download_and_verify(url)
        except ChecksumError:
            if not resumed:
                raise
            # the leftover .part may have come from another mirror or an older file version
            log.warning("%s: mismatch after resuming a leftover .part; downloading from byte 0", url)
            t.discard_part()
            return self.download_and_verify(url)

    def download_and_verify(self, url: str) -> dict:
        t = self.transfer
        actual = None  # a file:// copy is digested as it is written
        if urllib.parse.urlsplit(url).scheme == "file":
            actual = self.copy_file(url)
        else:
            t.download(url)
        if t.expect_archive and looks_like_html(t.part):
            t.html_error(url)
        encoding = t.validators.encoding if t.validators else ""
        actual = actual or digests(t.part)
        problems = mismatches(self.expected, actual)
        if problems and encoding not in IDENTITY and t.has_checksum:
            decoded = self.decode(url, encoding)
            if decoded is None:
                problems = [f"{p} (as sent, Content-Encoding: {encoding}, which cannot be decoded here)"
                            for p in problems]
            else:
                problems2 = mismatches(self.expected, decoded)
                if not problems2:
                    log.warning("%s sent %s with Content-Encoding: %s; decoded, it matches the checksum", url,
                                self.name, encoding)
                    os.replace(f"{t.part}.decoded.tmp", t.part)
                    return decoded
                problems = [f"{p} (as sent, Content-Encoding: {encoding})" for p in problems] + \
                           [f"{p} (decoded)" for p in problems2]
                Path(f"{t.part}.decoded.tmp").unlink(missing_ok=True)
        elif not problems and encoding not in IDENTITY:
            log.warning("%s labelled %s Content-Encoding: %s; the bytes as sent are kept (%s)", url, self.name,
                        encoding, "they match the checksum" if t.has_checksum else f"a {encoding} file")
        if problems:
            t.discard_part()
            raise ChecksumError(self.dest, f"{self.name} from {url} does not match: " + "; ".join(problems))
        return actual

    def decode(self, url: str, encoding: str) -> dict | None:
        """Digests of the .part decoded from ``encoding`` (into <part>.decoded.tmp), None if it cannot be."""
        part = self.transfer.part
        wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15}.get(encoding)
        tmp = Path(f"{part}.decoded.tmp")
        if wbits is None:
            return None
        try:
            with open(tmp, "wb") as out:
                try:
                    inflate(part, wbits, out)
                except ValueError:
                    if encoding != "deflate":
                        raise
                    out.seek(0)
                    out.truncate()
                    inflate(part, -15, out)  # some servers send raw deflate
        except (ValueError, OSError) as e:
            log.warning("%s: cannot decode Content-Encoding: %s (%s)", url, encoding, e)
            tmp.unlink(missing_ok=True)
            return None
        return digests(tmp)

    def copy_file(self, url: str) -> dict:
        """Copy a file:// source to the .part, digesting it on the way; the digests of what was written."""
        part = self.transfer.part
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        log.info("copying %s", path)
        self.transfer.discard_part()
        try:
            open(path, "rb").close()
        except OSError as e:
            raise FetchError(self.dest, f"{url}: cannot read ({e.strerror or e})") from e
        try:
            with open(part, "wb") as out:
                return digests(path, copy_to=out)
        except OSError as e:  # our side: disk full, quota, ...
            raise FetchError(self.dest, f"{url}: cannot copy to {part} ({os_error_text(e)})") from e
