"""fetch() against a real loopback HTTP server (no mocks)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import time
from pathlib import Path

import pytest
from loopback import DATA, HTML, MD5, SHA256
from medcurate.errors import ChecksumError, FetchError
from medcurate.fetch import fetch


@pytest.fixture
def opts(server):
    return {"retries": 2, "backoff": 0.01, "timeout": 5, "zenodo_api": server.url("/api")}


def src(server, path="/f.zip", **kw):
    server.routes.setdefault(path, {})
    return {"name": "f.zip", "url": server.url(path), **kw}


def test_download_record_sidecar_and_cache(server, opts, tmp_path):
    dest = tmp_path / "d" / "f.zip"
    record = fetch(src(server, sha256=SHA256), dest, **opts)
    assert dest.read_bytes() == DATA
    assert record == {"name": "f.zip", "url": server.url("/f.zip"), "size": len(DATA), "md5": MD5,
                      "sha256": SHA256, "checksum_source": "pinned", "checked": ["sha256"]}
    sidecar = Path(f"{dest}.verified.json")
    assert json.loads(sidecar.read_text()) == record
    assert list(json.loads(sidecar.read_text())) == sorted(record)
    assert not Path(f"{dest}.part").exists()
    n = len(server.requests)
    assert fetch(src(server, sha256=SHA256), dest, **opts) == record
    assert len(server.requests) == n


def test_unpinned_download_records_none(server, opts, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="medcurate.fetch"):
        record = fetch(src(server), tmp_path / "f.zip", **opts)
    assert record["checksum_source"] == "none (first use: size and sha256 recorded)" and record["sha256"] == SHA256
    assert record["checked"] == [] and not re.search(r"(?<!not )verified", caplog.text)
    assert "not verified: no checksum pinned" in caplog.text


def test_user_agent(server, opts, tmp_path):
    fetch(src(server), tmp_path / "f.zip", **opts)
    ua = server.requests[0][1]["User-Agent"]
    assert ua.startswith("medcurate/") and "medcurate/medcurate" in ua


def test_dropped_connection_resumes_with_range(server, opts, tmp_path):
    k = 100_000
    source = src(server, sha256=SHA256)
    server.routes["/f.zip"]["drop_after"] = k
    fetch(source, tmp_path / "f.zip", **opts)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert len(server.requests) == 2
    assert "Range" not in server.requests[0][1]
    assert server.requests[1][1]["Range"] == f"bytes={k}-"
    assert server.sent == len(DATA)  # only the remainder was sent again


def test_leftover_part_is_resumed(server, opts, tmp_path):
    Path(f"{tmp_path / 'f.zip'}.part").write_bytes(DATA[:1234])
    fetch(src(server, sha256=SHA256), tmp_path / "f.zip", **opts)
    assert server.requests[0][1]["Range"] == "bytes=1234-"
    assert server.sent == len(DATA) - 1234
    assert (tmp_path / "f.zip").read_bytes() == DATA


def test_server_ignoring_range_restarts(server, opts, tmp_path):
    Path(f"{tmp_path / 'f.zip'}.part").write_bytes(DATA[:1234])
    source = src(server, sha256=SHA256)
    server.routes["/f.zip"]["ignore_range"] = True
    fetch(source, tmp_path / "f.zip", **opts)
    assert (tmp_path / "f.zip").read_bytes() == DATA


def test_stale_leftover_part_from_other_file_is_redownloaded(server, opts, tmp_path):
    Path(f"{tmp_path / 'f.zip'}.part").write_bytes(b"X" * 1234)
    fetch(src(server, sha256=SHA256), tmp_path / "f.zip", **opts)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert "Range" not in server.requests[-1][1]


def test_429_retry_after_is_honoured(server, opts, tmp_path):
    source = src(server, md5=MD5)
    server.routes["/f.zip"].update(fail=[429], retry_after="1")
    t0 = time.monotonic()
    fetch(source, tmp_path / "f.zip", **opts)
    assert time.monotonic() - t0 >= 0.95
    assert server.hits("/f.zip") == 2


def test_retry_after_is_capped(server, opts, tmp_path):
    source = src(server, md5=MD5)
    server.routes["/f.zip"].update(fail=[503], retry_after="3600")
    t0 = time.monotonic()
    fetch(source, tmp_path / "f.zip", **{**opts, "max_retry_after": 0.1})
    assert time.monotonic() - t0 < 5


def test_503_then_success(server, opts, tmp_path, caplog):
    source = src(server, md5=MD5)
    server.routes["/f.zip"]["fail"] = [503]
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        fetch(source, tmp_path / "f.zip", **opts)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert "HTTP 503" in caplog.text


def test_500_forever_gives_up(server, opts, tmp_path):
    source = src(server, md5=MD5)
    server.routes["/f.zip"]["status"] = 500
    with pytest.raises(FetchError, match="500") as exc:
        fetch(source, tmp_path / "f.zip", **opts)
    assert server.url("/f.zip") in str(exc.value)
    assert server.hits("/f.zip") == 3  # first try + 2 retries
    assert not (tmp_path / "f.zip").exists()
    assert not Path(f"{tmp_path / 'f.zip'}.verified.json").exists()


def test_checksum_mismatch_keeps_older_dest(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    dest.write_bytes(b"older version")
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as exc:
        fetch(src(server, sha256=wrong), dest, **opts)
    assert wrong in str(exc.value) and SHA256 in str(exc.value) and "f.zip" in str(exc.value)
    assert dest.read_bytes() == b"older version"
    assert not Path(f"{dest}.part").exists()
    assert not Path(f"{dest}.verified.json").exists()


def test_checksum_mismatch_without_older_dest(server, opts, tmp_path):
    with pytest.raises(ChecksumError):
        fetch(src(server, md5="f" * 32), tmp_path / "f.zip", **opts)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_is_rejected(server, opts, tmp_path, content_type):
    source = src(server)
    server.routes["/f.zip"].update(data=HTML, content_type=content_type)
    with pytest.raises(FetchError, match="HTML page instead of f.zip"):
        fetch(source, tmp_path / "f.zip", **opts)
    assert list(tmp_path.iterdir()) == []


def test_expect_any_accepts_html(server, opts, tmp_path):
    source = src(server, expect="any")
    server.routes["/f.zip"].update(data=HTML, content_type="text/html")
    fetch(source, tmp_path / "f.zip", **opts)
    assert (tmp_path / "f.zip").read_bytes() == HTML


def test_mirror_used_after_404(server, opts, tmp_path):
    source = src(server, "/good.zip", md5=MD5)
    source["url"], source["mirrors"] = server.url("/missing.zip"), [server.url("/good.zip")]
    record = fetch(source, tmp_path / "f.zip", **opts)
    assert record["url"] == server.url("/good.zip")
    assert server.hits("/missing.zip") == 1  # 404 is not retried


def test_stale_mirror_moves_on(server, opts, tmp_path):
    server.routes["/stale.zip"] = {"data": DATA[:-1] + bytes([DATA[-1] ^ 1])}
    source = src(server, "/good.zip", sha256=SHA256)
    source["url"], source["mirrors"] = server.url("/stale.zip"), [server.url("/good.zip")]
    assert fetch(source, tmp_path / "f.zip", **opts)["url"] == server.url("/good.zip")


def test_all_sources_fail_lists_each(server, opts, tmp_path):
    server.routes["/stale.zip"] = {"data": b"PK stale"}
    source = src(server, "/stale.zip", sha256=SHA256)
    source["mirrors"] = [server.url("/missing.zip")]
    with pytest.raises(ChecksumError) as exc:
        fetch(source, tmp_path / "f.zip", **opts)
    msg = str(exc.value)
    assert server.url("/stale.zip") in msg and server.url("/missing.zip") in msg and "404" in msg
    assert SHA256 in msg and hashlib.sha256(b"PK stale").hexdigest() in msg


def zenodo(server, files, record=42):
    server.routes[f"/api/records/{record}"] = {"json": {"files": files}}
    return {"record": record}


def test_zenodo_md5_used_when_nothing_pinned(server, opts, tmp_path):
    z = zenodo(server, [{"key": "other.zip", "size": 1, "checksum": "md5:" + "0" * 32},
                        {"key": "f.zip", "size": len(DATA), "checksum": "md5:" + MD5}])
    record = fetch(src(server, zenodo=z), tmp_path / "f.zip", **opts)
    assert record["checksum_source"] == "zenodo-api" and record["md5"] == MD5


def test_zenodo_legacy_field_names(server, opts, tmp_path):
    z = zenodo(server, [{"filename": "f.zip", "filesize": len(DATA), "checksum": MD5}])
    assert fetch(src(server, zenodo=z), tmp_path / "f.zip", **opts)["checksum_source"] == "zenodo-api"


def test_zenodo_md5_disagrees_with_pinned(server, opts, tmp_path):
    z = zenodo(server, [{"key": "f.zip", "size": len(DATA), "checksum": "md5:" + "a" * 32}])
    with pytest.raises(ChecksumError) as exc:
        fetch(src(server, zenodo=z, md5=MD5), tmp_path / "f.zip", **opts)
    assert MD5 in str(exc.value) and "a" * 32 in str(exc.value) and "f.zip" in str(exc.value)
    assert server.hits("/f.zip") == 0


def test_zenodo_size_mismatch(server, opts, tmp_path):
    z = zenodo(server, [{"key": "f.zip", "size": len(DATA) + 1, "checksum": "md5:" + MD5}])
    with pytest.raises(ChecksumError, match=f"size expected {len(DATA) + 1}, got {len(DATA)}"):
        fetch(src(server, zenodo=z), tmp_path / "f.zip", **opts)
    assert not (tmp_path / "f.zip").exists()
    with pytest.raises(ChecksumError, match="pinned size"):
        fetch(src(server, zenodo=z, size=len(DATA)), tmp_path / "f.zip", **opts)


def test_zenodo_unreachable(server, opts, tmp_path, caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/api"
    opts = {**opts, "zenodo_api": dead}
    with pytest.raises(FetchError, match="unverified"):
        fetch(src(server, zenodo={"record": 7}), tmp_path / "f.zip", **opts)
    assert server.hits("/f.zip") == 0
    with caplog.at_level(logging.WARNING, logger="medcurate.fetch"):
        record = fetch(src(server, zenodo={"record": 7}, md5=MD5), tmp_path / "f.zip", **opts)
    assert record["checksum_source"] == "pinned" and "Zenodo API" in caplog.text


def test_file_url(tmp_path, opts):
    original = tmp_path / "in dir" / "f.zip"
    original.parent.mkdir()
    original.write_bytes(DATA)
    source = {"name": "f.zip", "url": original.as_uri(), "sha256": SHA256}
    record = fetch(source, tmp_path / "out" / "f.zip", **opts)
    assert (tmp_path / "out" / "f.zip").read_bytes() == DATA and record["url"] == original.as_uri()
    with pytest.raises(ChecksumError):
        fetch({**source, "sha256": "1" * 64}, tmp_path / "out2" / "f.zip", **opts)
    with pytest.raises(FetchError, match="cannot read"):
        fetch({**source, "url": (tmp_path / "nope.zip").as_uri()}, tmp_path / "out3" / "f.zip", **opts)


def test_416_with_complete_part(server, opts, tmp_path):
    Path(f"{tmp_path / 'f.zip'}.part").write_bytes(DATA)
    source = src(server, sha256=SHA256)
    server.routes["/f.zip"]["status"] = 416
    fetch(source, tmp_path / "f.zip", **opts)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert server.sent == 0 and server.hits("/f.zip") == 1


def test_416_with_oversized_part_restarts_once(server, opts, tmp_path):
    Path(f"{tmp_path / 'f.zip'}.part").write_bytes(DATA + b"junk")
    fetch(src(server, sha256=SHA256), tmp_path / "f.zip", **opts)
    assert (tmp_path / "f.zip").read_bytes() == DATA
    assert server.hits("/f.zip") == 2 and "Range" not in server.requests[1][1]


def test_dest_without_sidecar(server, opts, tmp_path):
    dest = tmp_path / "f.zip"
    dest.write_bytes(DATA)
    record = fetch(src(server, md5=MD5), dest, **opts)  # pinned: verified locally, no request
    assert record["sha256"] == SHA256 and server.requests == []
    assert Path(f"{dest}.verified.json").exists()
    dest.write_bytes(b"tampered")  # sidecar no longer matches, nothing pinned -> download again
    fetch(src(server), dest, **opts)
    assert dest.read_bytes() == DATA and server.hits("/f.zip") == 1
