"""`python -m medcurate <step>` used by hand: user errors are one line naming the file and the
reason, never a traceback; an unpinned download that turns out damaged is dropped for the next run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, sample_plan
from medcurate import catalogue, cli


def medcurate(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "medcurate", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def slice_file(tmp_path: Path, step: str, dataset: str = "african_fetal_planes") -> Path:
    path = tmp_path / f"{step}.json"
    path.write_text(json.dumps(catalogue.step_slice(sample_plan(dataset), step)))
    return path


def one_error_line(proc: subprocess.CompletedProcess, step: str, *words: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"medcurate {step}: error: ")]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_missing_slice(tmp_path):
    proc = medcurate("convert", "--slice", tmp_path / "nope.json", "--ready", tmp_path / "r.json",
                     "--shard", 0, "--shards", 1, "--out", tmp_path / "out")
    one_error_line(proc, "convert", str(tmp_path / "nope.json"), "no such step slice file")


@pytest.mark.parametrize("text, words", [("{not json", "malformed JSON"), ("[1, 2]", "expected a JSON object"),
                                         ("\xff\xfe", "malformed JSON")])
def test_malformed_slice(tmp_path, text, words):
    bad = tmp_path / "bad.json"
    bad.write_text(text, encoding="latin-1")
    proc = medcurate("select", "--slice", bad, "--tiers", tmp_path, "--out", tmp_path / "s.csv")
    one_error_line(proc, "select", str(bad), words)


def test_slice_of_another_step(tmp_path):
    proc = medcurate("split", "--slice", slice_file(tmp_path, "select"), "--selected", tmp_path / "s.csv",
                     "--out", tmp_path / "split")
    one_error_line(proc, "split", "is a slice of step 'select', not of 'split'")


@pytest.mark.parametrize("content, words", [(None, "no such ready record file"), ("{}", "needs 'root' and 'sources'"),
                                            ("{oops", "malformed JSON")])
def test_missing_or_malformed_ready_record(tmp_path, content, words):
    ready = tmp_path / "ready.json"
    if content is not None:
        ready.write_text(content)
    proc = medcurate("convert", "--slice", slice_file(tmp_path, "convert"), "--ready", ready,
                     "--shard", 0, "--shards", 1, "--out", tmp_path / "out")
    one_error_line(proc, "convert", str(ready), words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shard, shards", [(2, 2), (-1, 2), (0, 0)])
def test_shard_outside_its_range(tmp_path, shard, shards):
    proc = medcurate("convert", "--slice", slice_file(tmp_path, "convert"), "--ready", tmp_path / "r.json",
                     "--shard", shard, "--shards", shards, "--out", tmp_path / "out")
    one_error_line(proc, "convert", f"--shard {shard} is outside")


def test_unknown_source_name(tmp_path):
    plan = sample_plan("african_fetal_planes")
    path = tmp_path / "fetch.json"
    path.write_text(json.dumps(catalogue.step_slice(plan, "fetch", plan["sources"][0]["name"])))
    proc = medcurate("fetch", "--slice", path, "--source", "nope.zip", "--dest", tmp_path / "d", "--record", tmp_path / "r.json")
    one_error_line(proc, "fetch", "no source named 'nope.zip'", plan["sources"][0]["name"])


def test_malformed_fetch_record(tmp_path):
    record = tmp_path / "rec.json"
    record.write_text(json.dumps({"name": "x.zip"}))
    proc = medcurate("unpack", "--slice", slice_file(tmp_path, "unpack"), "--records", record,
                     "--dest", tmp_path / "unpacked", "--out", tmp_path / "ready.json")
    one_error_line(proc, "unpack", str(record), "needs 'name' and 'path'")


def test_bad_download_settings_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(cli.DOWNLOAD_ENV, "{timeout")
    with pytest.raises(Exception, match="MEDCURATE_DOWNLOAD: not valid JSON"):
        cli.download_settings()


# -- a damaged download is not cached for good ---------------------------------------------------


def _fetch(tmp_path: Path, server, pinned: bool):
    from medcurate.fetch import fetch

    data = (ROOT / "workflow" / "sample-mirror" / "african_fetal_planes" / "Zenodo_dataset.tar.xz").read_bytes()
    damaged = data[: len(data) // 2] + b"\0" * (len(data) - len(data) // 2)  # right size, broken stream
    server.routes["/Zenodo_dataset.tar.xz"] = {"data": damaged}
    source = {"name": "Zenodo_dataset.tar.xz", "url": server.url("/Zenodo_dataset.tar.xz")}
    if pinned:
        source["sha256"] = hashlib.sha256(damaged).hexdigest()  # the publisher's file itself is damaged
    dest = tmp_path / "downloads" / source["name"]
    record = fetch(source, dest, zenodo_api=server.url("/api"), timeout=5, retries=0, backoff=0)
    rec_path = tmp_path / "fetched" / f"{source['name']}.json"
    rec_path.parent.mkdir(parents=True)
    rec_path.write_text(json.dumps({**record, "path": str(dest)}))
    return dest, rec_path


@pytest.mark.parametrize("pinned", [False, True], ids=["unpinned", "pinned"])
def test_a_download_that_fails_to_open_is_dropped_unless_pinned(tmp_path, server, pinned):
    dest, rec_path = _fetch(tmp_path, server, pinned)
    proc = medcurate("unpack", "--slice", slice_file(tmp_path, "unpack"), "--records", rec_path,
                     "--dest", tmp_path / "unpacked", "--out", tmp_path / "ready.json")
    if pinned:
        one_error_line(proc, "unpack", "Zenodo_dataset.tar.xz", "the published file itself is damaged")
        assert dest.exists() and rec_path.exists()
    else:
        one_error_line(proc, "unpack", "Zenodo_dataset.tar.xz", "the download was dropped, the next run downloads it again")
        assert not dest.exists() and not rec_path.exists()  # Snakemake re-runs fetch_source
    assert not (tmp_path / "unpacked").exists() and not (tmp_path / "ready.json").exists()
