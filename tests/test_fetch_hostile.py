"""fetch() against hostile or broken servers on 127.0.0.1 (issue 18, items 1, 2 and 10): nothing
unchecked is called verified, truncation and unrequested encodings are caught, a resume never
splices two versions, and every server behaviour ends in bounded time with a message naming the
file, the URL and the reason."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import lzma
import random
import re
import socket
import time
import zipfile
from pathlib import Path

import pytest
from loopback import DATA, SHA256
from medcurate import fetch as fetch_mod
from medcurate.errors import ChecksumError, FetchError
from medcurate.fetch import fetch, forget

OFFLINE_HINT = "snakemake --cores 2 --configfile config/sample.yaml"


def _zip(seed: int = 1) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("matrix/cases.csv", random.Random(seed).randbytes(40_000))
    return buf.getvalue()


ZIP = _zip()
ZIP2 = _zip(2)  # the same file, as a later release would be: another sha256, the same size
GZ = gzip.compress(random.Random(3).randbytes(50_000), mtime=0)
XZ = lzma.compress(random.Random(4).randbytes(50_000))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """A proxy from the environment would answer for nonexistent.invalid."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def opts(server):
    return {"retries": 2, "backoff": 0.01, "timeout": 2, "zenodo_api": server.url("/api")}


def src(server, path="/f.zip", name="f.zip", **kw):
    server.routes.setdefault(path, {})
    return {"name": name, "url": server.url(path), **kw}


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


def assert_not_promoted(dest: Path) -> None:
    assert not dest.exists() and not Path(f"{dest}.verified.json").exists()


# -- 1. what was checked is what is said ------------------------------------------------------------

def test_pinned_download_is_verified_and_says_what_was_checked(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    with caplog.at_level(logging.INFO, logger="medcurate.fetch"):
        record = fetch(src(server, sha256=SHA256), dest, **opts)
    assert record["checksum_source"] == "pinned" and record["checked"] == ["sha256"]
    assert re.search(r"verified .*f\.zip: 300004 bytes.*checked sha256; checksum: pinned", caplog.text)
    assert not Path(f"{dest}.first-use.json").exists()  # the pin is the reference, not the first download
    assert json.loads(Path(f"{dest}.verified.json").read_text())["checked"] == ["sha256"]


def test_unpinned_download_is_never_called_verified(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    with caplog.at_level(logging.INFO, logger="medcurate.fetch"):
        record = fetch(src(server), dest, **opts)
        again = fetch(src(server), dest, **opts)  # from the cache
    assert again == record and server.hits("/f.zip") == 1
    assert record["checksum_source"] == "none (first use: size and sha256 recorded)" and record["checked"] == []
    assert json.loads(Path(f"{dest}.verified.json").read_text())["checksum_source"] == record["checksum_source"]
    assert not re.search(r"(?<!not )verified", caplog.text), caplog.text
    assert "downloaded" in caplog.text and "(not verified: no checksum pinned)" in caplog.text
    first = json.loads(Path(f"{dest}.first-use.json").read_text())
    assert first[server.url("/f.zip")]["sha256"] == SHA256 and first[server.url("/f.zip")]["size"] == len(DATA)


def test_size_only_pin_says_only_the_size_was_checked(server, opts, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="medcurate.fetch"):
        record = fetch(src(server, size=len(DATA)), tmp_path / "f.zip", **opts)
    assert record["checked"] == ["size"] and record["checksum_source"].startswith("none")
    assert "only its size was checked: no checksum pinned" in caplog.text


def test_later_download_that_differs_from_the_first_warns(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    source = src(server, data=ZIP)
    server.routes["/f.zip"]["data"] = ZIP
    fetch(source, dest, **opts)
    assert forget(dest, "cannot open it as a zip (test)")
    server.routes["/f.zip"]["data"] = ZIP2
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        record = fetch(source, dest, **opts)
    assert dest.read_bytes() == ZIP2
    warning = next(r.getMessage() for r in caplog.records if "first download" in r.getMessage())
    for part in (server.url("/f.zip"), sha(ZIP), sha(ZIP2), f"{len(ZIP)} bytes", f"{len(ZIP2)} bytes"):
        assert part in warning, warning
    assert record["checksum_source"] == f"none (differs from the first download: {len(ZIP)} bytes, sha256 {sha(ZIP)})"
    first = json.loads(Path(f"{dest}.first-use.json").read_text())[server.url("/f.zip")]
    assert first["sha256"] == sha(ZIP)  # the first download stays the reference


def test_forget_drops_an_unpinned_download_and_the_next_run_fetches_it_again(server, opts, tmp_path, caplog):
    dest, record_file = tmp_path / "dl" / "f.zip", tmp_path / "fetched" / "f.zip.json"
    fetch(src(server), dest, **opts)
    record_file.parent.mkdir()
    record_file.write_text("{}")
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        assert forget(dest, "truncated or corrupt archive: Bad CRC-32", record=record_file) is True
    assert leftovers(dest) == ["f.zip.first-use.json"] and not record_file.exists()
    assert re.search(r"dropped .*dl/f\.zip \(truncated or corrupt archive: Bad CRC-32\): it was downloaded without "
                     r"a pinned checksum, so the next run downloads it again", caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        record = fetch(src(server), dest, **opts)
    assert server.hits("/f.zip") == 2 and dest.read_bytes() == DATA
    assert record["checksum_source"] == "none (same size and sha256 as the first download)"
    assert "gave the same bytes as the copy dropped earlier (truncated or corrupt archive: Bad CRC-32)" in caplog.text


def test_forget_keeps_a_checked_download(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    fetch(src(server, sha256=SHA256), dest, **opts)
    before = leftovers(dest)
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        assert forget(dest, "cannot open it") is False
    assert leftovers(dest) == before and dest.read_bytes() == DATA
    assert "not dropped (cannot open it)" in caplog.text and "pinned checksum" in caplog.text

    zdest = tmp_path / "z" / "f.zip"
    server.routes["/api/records/9"] = {"json": {"files": [{"key": "f.zip", "size": len(DATA),
                                                          "checksum": "md5:" + hashlib.md5(DATA).hexdigest()}]}}
    assert fetch(src(server, zenodo={"record": 9}), zdest, **opts)["checksum_source"] == "zenodo-api"
    assert forget(zdest, "cannot open it") is False and zdest.exists()

    bare = tmp_path / "bare.zip"  # no download record: nothing says it is unpinned
    bare.write_bytes(DATA)
    assert forget(bare, "cannot open it") is False and bare.exists()


# -- 1. truncation ----------------------------------------------------------------------------------

def test_body_shorter_than_content_length_every_time(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server, sha256=SHA256)
    server.routes["/f.zip"]["drop_every"] = 1000
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **opts)
    msg = str(exc.value)
    assert msg.startswith(f"{dest}: ") and server.url("/f.zip") in msg
    assert re.search(r"connection lost at byte 3000 of 300004 \(the body is shorter than its Content-Length", msg)
    assert "after 2 retries" in msg and "kept and resumed from on the next run" in msg
    assert server.hits("/f.zip") == 3
    assert_not_promoted(dest)
    assert Path(f"{dest}.part").read_bytes() == DATA[:3000]
    server.routes["/f.zip"].pop("drop_every")  # the next run resumes where it stopped
    fetch(source, dest, **opts)
    assert dest.read_bytes() == DATA and server.requests[-1][1]["Range"] == "bytes=3000-"
    assert leftovers(dest) == ["f.zip", "f.zip.verified.json"]


@pytest.mark.parametrize("name,data,why", [
    ("f.zip", ZIP, r"the zip's end-of-central-directory is missing or unreadable .*: truncated"),
    ("f.tar.gz", GZ, r"gzip: the compressed stream ends before its end marker and trailer: truncated"),
    ("f.tar.xz", XZ, r"the xz stream has no footer: truncated"),
])
def test_truncated_body_without_content_length(server, opts, tmp_path, name, data, why):
    dest = tmp_path / name
    source = src(server, name=name)
    server.routes["/f.zip"].update(data=data, no_length=True, drop_every=len(data) // 2, ignore_range=True)
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **opts)
    msg = str(exc.value)
    assert msg.startswith(f"{dest}: ") and server.url("/f.zip") in msg, msg
    assert re.search(f"sent {len(data) // 2} bytes without a Content-Length and {why}", msg), msg
    assert_not_promoted(dest)


def test_truncated_body_without_content_length_is_resumed(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(data=ZIP, no_length=True, drop_every=10_000, then={"drop_every": None})
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        record = fetch(source, dest, **opts)
    assert dest.read_bytes() == ZIP and record["sha256"] == sha(ZIP)
    assert "without a Content-Length and the zip's end-of-central-directory is missing" in caplog.text
    assert server.requests[-1][1]["Range"] == "bytes=10000-"


def test_truncated_copy_on_the_server_fails_after_one_resume(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(data=ZIP[:30_000], no_length=True)
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **{**opts, "retries": 8})
    msg = str(exc.value)
    assert msg.startswith(f"{dest}: {server.url('/f.zip')} has no bytes after the 30000 of the .part (HTTP 416), and "
                          "the zip's end-of-central-directory is missing"), msg
    assert server.hits("/f.zip") == 2 and server.requests[-1][1]["Range"] == "bytes=30000-"
    assert_not_promoted(dest)


def test_complete_body_without_content_length(server, opts, tmp_path):
    for name, data in (("a.zip", ZIP), ("b.tar.gz", GZ), ("c.tar.xz", XZ)):
        server.routes[f"/{name}"] = {"data": data, "no_length": True}
        fetch({"name": name, "url": server.url(f"/{name}")}, tmp_path / name, **opts)
        assert (tmp_path / name).read_bytes() == data


def test_pinned_size_stops_an_endless_body(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server, size=1000)
    server.routes["/f.zip"].update(no_length=True)  # 300 kB where 1000 bytes are pinned
    with pytest.raises(ChecksumError, match=r"size expected 1000, got more than that"):
        fetch(source, dest, **opts)
    assert leftovers(dest) == []


# -- 1. unrequested Content-Encoding ----------------------------------------------------------------

def test_unrequested_content_encoding_is_refused_without_a_checksum(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(data=gzip.compress(ZIP), content_encoding="gzip")
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **opts)
    msg = str(exc.value)
    assert msg.startswith(f"{dest}: ") and server.url("/f.zip") in msg
    assert "sent f.zip with Content-Encoding: gzip although medcurate asked for none" in msg and "refusing" in msg
    assert server.requests[0][1]["Accept-Encoding"] == "identity"
    assert leftovers(dest) == []


def test_unrequested_content_encoding_decoded_when_the_checksum_says_so(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    source = src(server, sha256=sha(ZIP))
    server.routes["/f.zip"].update(data=gzip.compress(ZIP), content_encoding="gzip")
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        record = fetch(source, dest, **opts)
    assert dest.read_bytes() == ZIP and record["sha256"] == sha(ZIP)
    assert "with Content-Encoding: gzip; decoded, it matches the checksum" in caplog.text
    assert leftovers(dest) == ["f.zip", "f.zip.verified.json"]


def test_encoded_body_matching_neither_way_names_both(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server, sha256="0" * 64)
    server.routes["/f.zip"].update(data=gzip.compress(ZIP), content_encoding="gzip")
    with pytest.raises(ChecksumError) as exc:
        fetch(source, dest, **opts)
    msg = str(exc.value)
    assert "(as sent, Content-Encoding: gzip)" in msg and f"got {sha(ZIP)} (decoded)" in msg
    assert leftovers(dest) == []


def test_gz_file_labelled_content_encoding_gzip_is_kept_as_sent(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.tar.gz"  # the classic server misconfiguration: the bytes sent are the file
    source = src(server, name="f.tar.gz")
    server.routes["/f.zip"].update(data=GZ, content_encoding="gzip")
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        fetch(source, dest, **opts)
    assert dest.read_bytes() == GZ and "the bytes as sent are kept (a gzip file)" in caplog.text


# -- 2. resume never splices two versions -----------------------------------------------------------

def test_resume_sends_if_range_and_keeps_validators_beside_the_part(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(etag='"v1"', drop_every=100_000)
    with pytest.raises(FetchError):
        fetch(source, dest, **{**opts, "retries": 0})
    saved = json.loads(Path(f"{dest}.part.json").read_text())
    assert saved == {"url": server.url("/f.zip"), "etag": '"v1"', "last_modified": None, "total": len(DATA),
                     "encoding": ""}
    server.routes["/f.zip"].pop("drop_every")
    fetch(source, dest, **opts)
    assert dest.read_bytes() == DATA
    assert server.requests[-1][1]["Range"] == "bytes=100000-" and server.requests[-1][1]["If-Range"] == '"v1"'
    assert leftovers(dest) == ["f.zip", "f.zip.first-use.json", "f.zip.verified.json"]


def test_file_changed_between_runs_starts_over_instead_of_splicing(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(data=ZIP, etag='"v1"', drop_every=20_000)
    with pytest.raises(FetchError):
        fetch(source, dest, **{**opts, "retries": 0})
    server.routes["/f.zip"].update(data=ZIP2, etag='"v2"', drop_every=None)  # a new release, same size
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        fetch(source, dest, **opts)
    assert dest.read_bytes() == ZIP2  # not ZIP[:20000] + ZIP2[20000:]
    assert server.requests[-1][1]["If-Range"] == '"v1"'
    assert "answered 200 to the request for bytes 20000-" in caplog.text and "starting over from byte 0" in caplog.text


def test_validators_disagreeing_on_a_206_start_over(server, opts, tmp_path, caplog):
    """A server that ignores If-Range: its 206 is still checked (ETag and total)."""
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(data=ZIP, etag='"v1"', drop_after=20_000, ignore_if_range=True,
                                   then={"data": ZIP2 + b"more", "etag": '"v2"'})
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        fetch(source, dest, **opts)
    assert dest.read_bytes() == ZIP2 + b"more"
    assert re.search(rf"cannot resume: total {len(ZIP2) + 4} differs from the {len(ZIP)} bytes first announced; "
                     r"ETag changed from \"v1\" to \"v2\"; starting over from byte 0 \(restart 1 of 3\)", caplog.text)
    assert "Range" not in server.requests[-1][1]


def test_leftover_part_without_validators_is_not_resumed_unpinned(server, opts, tmp_path, caplog):
    dest = tmp_path / "f.zip"
    Path(f"{dest}.part").write_bytes(DATA[:1234])
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        fetch(src(server), dest, **opts)
    assert "Range" not in server.requests[0][1] and dest.read_bytes() == DATA
    assert "has no record of" in caplog.text and "starting over from byte 0" in caplog.text


def test_part_from_another_mirror_is_not_resumed_unpinned(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server, "/a.zip")
    server.routes["/a.zip"].update(drop_every=1000)
    server.routes["/b.zip"] = {"data": DATA}
    source["mirrors"] = [server.url("/b.zip")]
    fetch(source, dest, **{**opts, "retries": 0})
    assert dest.read_bytes() == DATA
    assert "Range" not in server.requests[-1][1] and server.requests[-1][0] == "/b.zip"


def test_206_with_a_wrong_content_range_forever_is_bounded(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server, sha256=SHA256)
    server.routes["/f.zip"]["content_range"] = f"bytes 5-{len(DATA) - 1}/{len(DATA)}"
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **opts)
    msg = str(exc.value)
    assert msg.startswith(f"{dest}: ") and server.url("/f.zip") in msg
    assert "cannot resume: Content-Range 5-... does not start at byte 0" in msg and "gave up after 3 restarts" in msg
    assert server.hits("/f.zip") == 4
    assert leftovers(dest) == []


def test_range_answered_with_200_forever_is_bounded(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server, sha256=SHA256)
    server.routes["/f.zip"].update(ignore_range=True, drop_every=150_000)
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **{**opts, "retries": 20})
    assert "answered 200 to a Range request again; gave up after 3 restarts" in str(exc.value)
    assert server.hits("/f.zip") == 5
    assert_not_promoted(dest)


# -- 2. and 10. every behaviour ends, in bounded time -----------------------------------------------

def test_no_transport_retries_nested_in_fetchs_own(server, opts, tmp_path):
    source = src(server)
    server.routes["/f.zip"]["status"] = 503
    with pytest.raises(FetchError, match=r"answered HTTP 503 .*\(after 0 retries\)"):
        fetch(source, tmp_path / "f.zip", **{**opts, "retries": 0})
    assert server.hits("/f.zip") == 1


def test_transient_errors_keep_their_backoff(server, opts, tmp_path, caplog):
    source = src(server)
    server.routes["/f.zip"]["fail"] = [503, 502]
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        fetch(source, tmp_path / "f.zip", **{**opts, "backoff": 0.2})
    assert time.monotonic() - t0 >= 0.2 + 0.4
    assert "retry 1 of 2, in 0.20s" in caplog.text and "retry 2 of 2, in 0.40s" in caplog.text


def test_huge_retry_after_forever_ends_at_the_retry_window(server, opts, tmp_path):
    source = src(server)
    server.routes["/f.zip"].update(status=429, retry_after="86400")
    t0 = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch(source, tmp_path / "f.zip", **{**opts, "retries": 100, "max_retry_after": 0.3, "retry_window": 1.0})
    assert time.monotonic() - t0 < 3
    assert re.search(r"answered HTTP 429 Too Many Requests \(after 3 retries in 0\.\d s; the retry time limit of 1 s "
                     r"is reached\)", str(exc.value)), str(exc.value)


def test_endless_redirects(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"]["redirect"] = "/f.zip"
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **opts)
    assert str(exc.value).startswith(f"{dest}: {server.url('/f.zip')}: too many redirects (a redirect loop?)")
    assert server.hits("/f.zip") == 11  # followed 10 times, never retried
    assert leftovers(dest) == []


def test_trickling_server_is_cut_off(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(trickle=0.02)
    t0 = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch(source, dest, **{**opts, "retries": 1, "min_speed": 1000, "speed_window": 0.3})
    assert time.monotonic() - t0 < 3
    msg = str(exc.value)
    assert msg.startswith(f"{dest}: {server.url('/f.zip')}: transfer too slow at byte ") and "bytes/s" in msg
    assert "(after 1 retries)" in msg
    assert_not_promoted(dest)


def test_deadline_bounds_everything(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    source = src(server)
    server.routes["/f.zip"].update(trickle=0.01)
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"the download time limit of 0\.5 s is reached at byte \d+"):
        fetch(source, dest, **{**opts, "min_speed": 0, "deadline": 0.5})
    assert time.monotonic() - t0 < 2
    assert_not_promoted(dest)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unresolvable_host_fails_fast_naming_it_and_the_likely_cause(opts, tmp_path):
    dest = tmp_path / "f.zip"
    url = "http://nonexistent.invalid/f.zip"
    t0 = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch({"name": "f.zip", "url": url, "sha256": SHA256}, dest,
              **{**opts, "retries": 8, "backoff": 0.05, "connect_window": 1.0})
    assert time.monotonic() - t0 < 4
    msg = str(exc.value)
    assert msg.startswith(f"{dest}: {url}: cannot reach nonexistent.invalid: its name cannot be resolved"), msg
    for words in ("no network connection", "proxy", "typo in the host name", OFFLINE_HINT):
        assert words in msg, msg
    assert_not_promoted(dest)


def test_refused_connection_fails_naming_the_host_and_port(opts, tmp_path):
    port = _closed_port()
    url = f"http://127.0.0.1:{port}/f.zip"
    with pytest.raises(FetchError) as exc:
        fetch({"name": "f.zip", "url": url}, tmp_path / "f.zip", **opts)
    msg = str(exc.value)
    assert f"{url}: cannot reach 127.0.0.1:{port}: the connection was refused" in msg and "after 2 retries" in msg
    assert OFFLINE_HINT in msg


class _Clock:
    """Simulated time for the default bounds (minutes) in a test of a second."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def _use_clock(monkeypatch, clock):
    """The retry policy and the transfer read the time (fetch/retry.py, fetch/transfer.py)."""
    for module in (fetch_mod.retry, fetch_mod.transfer):
        monkeypatch.setattr(module, "time", clock)


def test_unreachable_host_with_default_settings_gives_up_within_two_minutes(tmp_path, monkeypatch):
    clock = _Clock()
    _use_clock(monkeypatch, clock)
    url = "http://nonexistent.invalid/f.zip"
    with pytest.raises(FetchError, match="cannot reach nonexistent.invalid") as exc:
        fetch({"name": "f.zip", "url": url, "mirrors": ["http://also-nonexistent.invalid/f.zip"]},
              tmp_path / "f.zip", secrets=fetch_mod._secrets.Secrets())
    # the usual backoff, the first host and its mirror sharing one 2-minute bound (no 30 s connect
    # timeout here, as DNS fails at once; the bound keeps room for one)
    assert clock.sleeps == [2, 4, 8, 16, 32, 2, 4, 8]
    assert clock.now - 1000 <= 120
    msg = str(exc.value)
    assert "could not fetch f.zip from any of 2 sources" in msg and msg.count(OFFLINE_HINT) == 2
    assert "also-nonexistent.invalid: its name cannot be resolved" in msg
    assert "the time limit for reaching hosts of 120 s is reached" in msg


def test_unreachable_zenodo_api_does_not_double_the_wait(tmp_path, monkeypatch):
    clock = _Clock()
    _use_clock(monkeypatch, clock)
    with pytest.raises(FetchError) as exc:
        fetch({"name": "f.zip", "url": "http://nonexistent.invalid/f.zip", "zenodo": {"record": 1}, "md5": "0" * 32},
              tmp_path / "f.zip", zenodo_api="http://nonexistent.invalid/api", secrets=fetch_mod._secrets.Secrets())
    assert clock.now - 1000 <= 120 and "cannot reach nonexistent.invalid" in str(exc.value)
