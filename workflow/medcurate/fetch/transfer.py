"""The HTTP transfer of one URL into ``<dest>.part``, read top to bottom:

``download`` loops over attempts (``transfer``) under the one retry policy (retry.Budget);
``transfer`` sends one GET (with Range/If-Range when a .part exists), judges the answer (416,
401/403, other errors, 206 vs 200, validators, Content-Encoding), records the validators of a
new .part, then ``stream``s the raw body into it (bounded by the pinned size, the deadline and a
minimum speed); after the body, a length or the file's own format tells a transfer cut short.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm import tqdm

from medcurate import __version__
from medcurate import secrets as _secrets
from medcurate.atomic import os_error_text, write_text
from medcurate.errors import ChecksumError, FetchError, MedcurateError

from . import auth
from .digests import CHUNK, format_problem
from .retry import PROGRESS, RETRY_STATUSES, Budget, Restart, Streak, Transient, host, retry_after, unreached
from .sidecars import Validators, part, validators_file

log = logging.getLogger("medcurate.fetch")

USER_AGENT = f"medcurate/{__version__} (+https://github.com/medcurate/medcurate; dataset curation workflow)"
MAX_REDIRECTS = 10
IDENTITY = ("", "identity")
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def make_session() -> requests.Session:
    """A session with no transport retries (fetch's own loop is the only one) and few redirects."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.max_redirects = MAX_REDIRECTS
    return session


def content_range(header: str | None) -> tuple[int | None, int | None, int | None]:
    """(start, end, total) of a Content-Range header; None where absent or '*'."""
    m = _CONTENT_RANGE.fullmatch((header or "").strip())
    if not m:
        return None, None, None
    return (int(m[1]) if m[1] else None), (int(m[2]) if m[2] else None), (int(m[3]) if m[3] != "*" else None)


@dataclass
class Client:
    """What every request of one fetch shares: the session, credentials, timeouts and budget."""

    session: requests.Session
    secrets: _secrets.Secrets
    timeout: tuple[float, float]  # (connect, read)
    budget: Budget

    def send(self, dest: Path, url: str, headers: dict, stream: bool, method: str = "GET",
             data: dict | None = None) -> requests.Response:
        """One request; failures worth retrying become Transient, the others FetchError."""
        try:
            resp = self.session.request(method, url, headers=headers, stream=stream, timeout=self.timeout, data=data)
        except requests.TooManyRedirects as e:
            raise FetchError(dest, f"{url}: too many redirects (a redirect loop?): {e}") from e
        except requests.exceptions.SSLError as e:
            reach = unreached(e)
            if reach is None:  # not transient: a certificate problem stays one
                raise FetchError(dest, f"{url}: TLS error ({e}); an intercepting proxy, or a wrong system "
                                       "clock?") from e
            raise Transient(f"cannot reach {host(url)}: {reach[0]} ({reach[1]})", connect=True, reach=reach) from e
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as e:
            raise FetchError(dest, f"{url}: not a usable URL ({e})") from e
        except requests.RequestException as e:
            reach = unreached(e)
            if reach is not None:
                raise Transient(f"cannot reach {host(url)}: {reach[0]} ({reach[1]})", connect=True, reach=reach) from e
            raise Transient(f"request failed ({e})") from e
        self.budget.answered()
        if resp.status_code in RETRY_STATUSES:
            with resp:
                raise Transient(f"HTTP {resp.status_code} {resp.reason}", status=resp.status_code,
                                status_text=resp.reason, retry_after=retry_after(resp.headers.get("Retry-After")))
        return resp

    def request(self, dest: Path, url: str, headers: dict | None = None, method: str = "GET",
                data: dict | None = None) -> tuple[requests.Response, _secrets.Credential | None]:
        """A small (API) request under the retry policy, with the host's credentials; the body is read."""
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        cred = auth.add_header(self.secrets, url, headers)
        streak = Streak()
        while True:
            try:
                return self.send(dest, url, headers, stream=False, method=method, data=data), cred
            except Transient as t:
                self.budget.wait_or_give_up(dest, url, streak, t)


@dataclass
class HttpTransfer:
    """Fills ``<dest>.part`` with the body of a URL, resuming only when the server's validators
    (or a checksum that will judge the result) say the bytes belong to the same file."""

    client: Client
    dest: Path
    name: str
    expected: dict  # size / md5 / sha256 to be compared after the transfer
    expect_archive: bool = True
    validators: Validators | None = None
    restarts: int = 0
    truncated_at: int | None = None
    refused_hook: object = None  # a source type's message for 401/403 (see kaggle.py)
    progress: bool = True
    part: Path = field(init=False)
    vfile: Path = field(init=False)

    def __post_init__(self):
        self.part, self.vfile = part(self.dest), validators_file(self.dest)

    @property
    def has_checksum(self) -> bool:
        """A digest will be compared: a bad resume cannot slip through."""
        return "md5" in self.expected or "sha256" in self.expected

    @property
    def policy(self):
        return self.client.budget.policy

    def part_size(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def discard_part(self) -> None:
        self.part.unlink(missing_ok=True)
        self.vfile.unlink(missing_ok=True)
        self.validators = None

    def html_error(self, url: str):
        self.discard_part()
        raise FetchError(self.dest, f"{url} returned an HTML page instead of {self.name} "
                                    "(a login, error or consent page?)")

    # -- the attempts ------------------------------------------------------------------------------
    def download(self, url: str) -> None:
        """Fill ``.part`` with the whole body of ``url``, resuming from what it already holds."""
        if self.part.exists():
            self.validators = Validators.load(self.vfile)
        else:
            self.discard_part()  # validators of a .part that is gone describe nothing
        streak = Streak()
        while True:
            before = self.part_size()
            try:
                self.transfer(url)
                return
            except Restart as r:
                self.restarts += 1
                if self.restarts > self.policy.max_restarts:
                    self.discard_part()
                    raise FetchError(self.dest, f"{url}: {r}; gave up after {self.policy.max_restarts} restarts "
                                                "from byte 0") from None
                log.warning("%s: %s; starting over from byte 0 (restart %d of %d)", url, r, self.restarts,
                            self.policy.max_restarts)
                self.discard_part()
            except Transient as t:
                if self.part_size() - before >= PROGRESS:
                    streak = Streak()  # a working transfer that broke: a new streak, not the same one
                self.client.budget.wait_or_give_up(self.dest, url, streak, t, self.part_size())

    def resume_ok(self, url: str) -> bool:
        """Whether the .part may be continued: its validators are this URL's, or a checksum will
        catch a resume that splices two versions."""
        v = self.validators
        if v is not None and v.url == self.client.secrets.redact(url):
            return True
        if self.has_checksum:
            self.validators = None  # another server's validators say nothing about this one
            return True
        log.warning("%s: the leftover .part (%d bytes) has no record of %s's validators and no checksum is "
                    "pinned to catch a mixed file; starting over from byte 0", self.dest, self.part_size(), url)
        return False

    # -- one attempt -------------------------------------------------------------------------------
    def transfer(self, url: str) -> None:
        """One request: append its body to the .part, or raise Restart / Transient / FetchError."""
        deadline = self.client.budget.deadline
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
        cred = auth.add_header(self.client.secrets, url, headers)
        log.info("GET %s%s%s", url, f" (resuming at byte {offset})" if offset else "",
                 f" with the {cred.service} credentials from {cred.origin}" if cred else "")
        resp = self.client.send(self.dest, url, headers, stream=True)
        with resp:
            status = resp.status_code
            start, _, total = content_range(resp.headers.get("Content-Range"))
            if status == 416:
                want = self.expected.get("size", v.total if v is not None else None)
                if offset and offset == total and want in (None, total):
                    # the body came without a length (a leftover without validators has a checksum to judge it)
                    if v is not None and v.total is None and (why := format_problem(self.part)):
                        raise FetchError(self.dest, f"{url} has no bytes after the {offset} of the .part (HTTP 416), "
                                                    f"and {why} (is the server's copy truncated?)")
                    log.info("%s: .part already complete (%d bytes)", url, offset)
                    return
                if not offset:
                    raise FetchError(self.dest, f"{url} answered HTTP 416 to a full download")
                raise Restart(f"HTTP 416 for a .part of {offset} bytes (the server has {total})")
            if status in (401, 403):
                raise self.refused(url, resp, cred)
            if status not in (200, 206):
                raise FetchError(self.dest, f"{url} answered HTTP {status} {resp.reason}")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if self.expect_archive and content_type == "text/html":
                self.html_error(url)
            encoding = resp.headers.get("Content-Encoding", "").strip().lower()
            length = resp.headers.get("Content-Length", "").strip()
            length = int(length) if length.isdigit() else None
            seen = Validators(self.client.secrets.redact(url), resp.headers.get("ETag"),
                              resp.headers.get("Last-Modified"), total if status == 206 else length,
                              "" if encoding in IDENTITY else encoding)
            if status == 206:
                if start is None:
                    raise Restart(f"answered 206 with an unusable Content-Range {resp.headers.get('Content-Range')!r}")
                problems = self.resume_problems(v, seen, start, offset)
                if problems:
                    raise Restart("cannot resume: " + "; ".join(problems))
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
            raise Transient(f"connection closed at byte {got} of {want}: the body is shorter than announced")
        if want is None and (why := format_problem(self.part)):
            # no length to compare with: the format is the only witness of a body cut short
            if self.truncated_at == got:
                raise FetchError(self.dest, f"{url} sent {got} bytes without a Content-Length and {why}; the "
                                            "server has no more bytes (is its copy truncated?)")
            self.truncated_at = got
            raise Transient(f"sent {got} bytes without a Content-Length and {why}")

    def refused(self, url: str, resp: requests.Response, cred) -> FetchError:
        """The error for a 401/403 (a service's source type may say more, see kaggle.py)."""
        if self.refused_hook is not None:
            return self.refused_hook(self, url, resp, cred)
        return auth.failure(self.client.secrets, self.dest, url, resp.status_code, resp.reason, cred)

    def resume_problems(self, v: Validators | None, seen: Validators, start: int, offset: int) -> list[str]:
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
                unit_divisor=1024, mininterval=5, file=sys.stderr, disable=not self.progress,
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
                        raise Transient(f"connection lost at {where} ({e})") from e
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
                            raise Transient(f"transfer too slow at byte {got}: {got - window_got} bytes in "
                                            f"{now - window_t:.1f} s (below {p.min_speed:g} bytes/s)")
                        window_t, window_got = now, got
        except OSError as e:  # opening the .part
            raise FetchError(self.dest, f"cannot write {self.part} ({os_error_text(e)}); the bytes "
                                        "downloaded so far are kept and resumed from on the next run") from e
