"""medcurate.unpack: layout, nesting, safety refusals, bomb limits, corrupt archives, atomicity, idempotence."""

from __future__ import annotations

import io
import json
import os
import random
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medcurate.errors import ArchiveError, MedcurateError, UnsafeArchiveError
from medcurate.unpack import MARKER, Limits, _parts, archive_stem, is_archive, unpack

MiB = 2**20


def make_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)  # ZipInfo keeps the name verbatim
    return path


def tar_member(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if data else None)


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            tar_member(tf, name, data)
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


def leftovers(parent: Path) -> list[str]:
    """Staging folders left beside dest."""
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# --- names --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, stem", [
    ("Zenodo_dataset.tar.xz", "Zenodo_dataset"),
    ("Diverse Fetal Head Images.zip", "Diverse Fetal Head Images"),
    ("Test-Dataset-CitySpaces.ZIP", "Test-Dataset-CitySpaces"),
    ("a.TGZ", "a"), ("a.txz", "a"), ("a.tar.bz2", "a"), ("a.tar", "a"), ("a.b.tar.gz", "a.b"),
])
def test_archive_stem(name, stem):
    assert is_archive(name) and archive_stem(name) == stem


@pytest.mark.parametrize("name", ["image.png", "notes.gz", "x.xlsx", ".zip", "..zip", "...tar"])
def test_not_archive(name):
    assert not is_archive(name) and archive_stem(name) == name


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab./\\:C\x00", max_size=12))
def test_member_names_never_escape(name):
    try:
        parts = _parts("x.zip", name)
    except UnsafeArchiveError:
        return
    assert all(p not in ("", ".", "..") and "/" not in p and "\\" not in p for p in parts)
    assert not name.startswith("/")


# --- layouts --------------------------------------------------------------------------------------

PAYLOAD = {"imgs/a.png": b"\x89PNG" + bytes(range(200)), "labels.csv": b"id;label\n1;2\n", "empty/": b""}


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2"])
def test_every_format(tmp_path, suffix):
    arc = tmp_path / f"Zenodo_dataset{suffix}"
    if suffix == ".zip":
        make_zip(arc, PAYLOAD)
    else:
        mode = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz", ".txz": "w:xz", ".tar.bz2": "w:bz2"}
        with tarfile.open(arc, mode[suffix]) as tf:
            tar_member(tf, "./", type=tarfile.DIRTYPE, mode=0o700)  # `tar -C dir .` style
            for name, data in PAYLOAD.items():
                if name.endswith("/"):
                    tar_member(tf, "./" + name, type=tarfile.DIRTYPE, mode=0o700)
                else:
                    tar_member(tf, "./" + name, data, mode=0o4755)  # setuid + exec must not survive
    record = unpack([arc], tmp_path / "out")
    out = tmp_path / "out" / "Zenodo_dataset"
    assert tree(out) == {k: v for k, v in PAYLOAD.items() if not k.endswith("/")}
    assert (out / "empty").is_dir()
    assert record["files"] == 2 and record["bytes"] == sum(map(len, PAYLOAD.values()))
    assert record["archives"][0]["name"] == arc.name
    for p in [tmp_path / "out", *(tmp_path / "out").rglob("*")]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p
    assert leftovers(tmp_path) == []


def test_plain_files_are_copied(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text("a;b\n")
    arc = make_zip(tmp_path / "imgs.zip", {"x.png": b"png"})
    unpack([arc, csv], tmp_path / "out")
    assert tree(tmp_path / "out") == {"imgs/x.png": b"png", "meta.csv": b"a;b\n"}


def test_inputs_that_collide_are_refused(tmp_path):
    a = make_zip(tmp_path / "a.zip", {"x": b"1"})
    b = make_tar(tmp_path / "a.tar.gz", {"y": b"2"})
    with pytest.raises(MedcurateError, match="'a'"):
        unpack([a, b], tmp_path / "out")


def nest(tmp_path: Path, names: list[str], leaf: dict[str, bytes]) -> Path:
    """names[0] contains names[1] ... contains leaf; each inner archive sits in a folder with a space."""
    data = leaf
    for name in reversed(names[1:]):
        path = make_zip(tmp_path / "tmp.zip", data)
        data = {f"sub dir/{name}": path.read_bytes(), f"sub dir/{name}.txt": b"sibling"}
    return make_zip(tmp_path / names[0], data)


def test_nested_three_levels(tmp_path, caplog):
    caplog.set_level("INFO", logger="medcurate.unpack")
    outer = nest(tmp_path, ["Diverse Fetal Head Images.zip", "Test-Dataset-CitySpaces.zip",
                            "Trans-ventricular-CityScapes.ZIP"], {"gtFine/default/1_HC.png": b"mask"})
    unpack([outer], tmp_path / "out")
    assert tree(tmp_path / "out") == {
        "Diverse Fetal Head Images/sub dir/Test-Dataset-CitySpaces.zip.txt": b"sibling",
        "Diverse Fetal Head Images/sub dir/Test-Dataset-CitySpaces/sub dir/Trans-ventricular-CityScapes.ZIP.txt": b"sibling",
        "Diverse Fetal Head Images/sub dir/Test-Dataset-CitySpaces/sub dir/Trans-ventricular-CityScapes/"
        "gtFine/default/1_HC.png": b"mask",
    }
    assert "Test-Dataset-CitySpaces.zip!sub dir/Trans-ventricular-CityScapes.ZIP" in caplog.text
    assert leftovers(tmp_path) == []


def test_nested_off_keeps_inner_archives(tmp_path):
    outer = nest(tmp_path, ["o.zip", "i.zip"], {"x": b"1"})
    unpack([outer], tmp_path / "out", nested=False)
    assert set(tree(tmp_path / "out")) == {"o/sub dir/i.zip", "o/sub dir/i.zip.txt"}


def test_nested_too_deep(tmp_path):
    outer = nest(tmp_path, ["a.zip", "b.zip", "c.zip", "d.zip"], {"x": b"1"})
    with pytest.raises(UnsafeArchiveError, match=r"a\.zip!sub dir/b\.zip!sub dir/c\.zip!sub dir/d\.zip.*max_depth=3"):
        unpack([outer], tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    with pytest.raises(UnsafeArchiveError, match="max_depth=1"):
        unpack([nest(tmp_path, ["e.zip", "f.zip"], {"x": b"1"})], tmp_path / "out", limits=Limits(max_depth=1))


def test_nested_zip_beside_its_unzipped_copy_merges(tmp_path):
    inner = make_zip(tmp_path / "tmp.zip", {"SegmentationClass/1.png": b"one", "SegmentationClass/2.png": b"two"})
    outer = make_zip(tmp_path / "plane.zip", {"Seg/SegmentationClass/1.png": b"one", "Seg.zip": inner.read_bytes()})
    unpack([outer], tmp_path / "out")
    assert tree(tmp_path / "out") == {"plane/Seg/SegmentationClass/1.png": b"one", "plane/Seg/SegmentationClass/2.png": b"two"}

    clash = make_zip(tmp_path / "clash.zip", {"Seg/SegmentationClass/1.png": b"ONE", "Seg.zip": inner.read_bytes()})
    with pytest.raises(ArchiveError, match=r"clash\.zip!Seg\.zip.*'1\.png' differs"):
        unpack([clash], tmp_path / "out2")


# --- unsafe members ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/etc/evil.txt", "C:/evil.txt",
                                  "..\\evil.txt", "ok/..\\..\\evil.txt", "evil.txt\x00.png"])
def test_zip_bad_names(tmp_path, name):
    # ZipInfo cuts names at NUL, so write a placeholder and patch the raw bytes
    arc = make_zip(tmp_path / "bad.zip", {"fine.txt": b"fine", name.replace("\x00", "#"): b"evil"})
    arc.write_bytes(arc.read_bytes().replace(name.replace("\x00", "#").encode(), name.encode()))
    with pytest.raises(UnsafeArchiveError) as err:
        unpack([arc], tmp_path / "d" / "out")
    assert "bad.zip" in str(err.value) and repr(name) in str(err.value)
    assert not (tmp_path / "d" / "out").exists() and leftovers(tmp_path / "d") == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "C:\\evil.txt"])
def test_tar_bad_names(tmp_path, name):
    arc = make_tar(tmp_path / "bad.tar.gz", {"fine.txt": b"fine", name: b"evil"})
    with pytest.raises(UnsafeArchiveError) as err:
        unpack([arc], tmp_path / "d" / "out")
    assert "bad.tar.gz" in str(err.value) and repr(name) in str(err.value)
    assert not (tmp_path / "d" / "out").exists() and leftovers(tmp_path / "d") == []


@pytest.mark.parametrize("kind, target", [
    (tarfile.SYMTYPE, "../../etc"), (tarfile.SYMTYPE, "/etc/passwd"), (tarfile.SYMTYPE, "x/../../../y"),
    (tarfile.LNKTYPE, "../../etc/passwd"), (tarfile.LNKTYPE, "/etc/passwd"),
])
def test_tar_links_escaping(tmp_path, kind, target):
    arc = tmp_path / "links.tar"
    with tarfile.open(arc, "w") as tf:
        tar_member(tf, "sub/link", type=kind, linkname=target)
    with pytest.raises(UnsafeArchiveError, match=r"links\.tar.*'sub/link' links to"):
        unpack([arc], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_links_inside_are_kept(tmp_path):
    arc = tmp_path / "links.tar"
    with tarfile.open(arc, "w") as tf:
        tar_member(tf, "data/a.txt", b"A")
        tar_member(tf, "alias/b.txt", type=tarfile.SYMTYPE, linkname="../data/a.txt")
        tar_member(tf, "hard.txt", type=tarfile.LNKTYPE, linkname="data/a.txt")
    unpack([arc], tmp_path / "out")
    root = tmp_path / "out" / "links"
    assert (root / "alias/b.txt").is_symlink() and (root / "alias/b.txt").read_bytes() == b"A"
    assert (root / "hard.txt").read_bytes() == b"A"


@pytest.mark.parametrize("link_first", [False, True])
def test_tar_symlink_chain_escaping(tmp_path, link_first):
    """Each link looks inside on its own; together `l1` -> p/q/r/l2/.. -> outside. Caught by tarfile's
    data filter when l2 exists first, by the on-disk re-check of every link otherwise."""
    arc = tmp_path / "chain.tar"
    with tarfile.open(arc, "w") as tf:
        members = [("p/q/r/l2", "../../.."), ("l1", "p/q/r/l2/..")]
        for name, target in (members[::-1] if link_first else members):
            tar_member(tf, name, type=tarfile.SYMTYPE, linkname=target)
    with pytest.raises(UnsafeArchiveError, match=r"chain\.tar.*'l1'"):
        unpack([arc], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_write_through_symlink(tmp_path):
    arc = tmp_path / "through.tar"
    with tarfile.open(arc, "w") as tf:
        tar_member(tf, "d", type=tarfile.SYMTYPE, linkname=".")
        tar_member(tf, "d/x.txt", b"x")
    with pytest.raises(UnsafeArchiveError, match="'d/x.txt' would be written through a link"):
        unpack([arc], tmp_path / "out")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_devices_and_fifos(tmp_path, kind):
    arc = tmp_path / "dev.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tar_member(tf, "dev/null", type=kind, devmajor=1, devminor=3)
    with pytest.raises(UnsafeArchiveError, match=r"dev\.tar\.gz.*'dev/null' is a device or fifo"):
        unpack([arc], tmp_path / "out")


@pytest.mark.parametrize("mode, what", [(stat.S_IFLNK | 0o777, "symbolic link"), (stat.S_IFIFO | 0o644, "fifo")])
def test_zip_special_entries(tmp_path, mode, what):
    arc = tmp_path / "special.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = mode << 16
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=rf"special\.zip.*'link'.*{what}"):
        unpack([arc], tmp_path / "out")


def test_too_many_members(tmp_path):
    members = {f"f{i}.txt": b"x" for i in range(11)}
    for arc in (make_zip(tmp_path / "many.zip", members), make_tar(tmp_path / "many.tar.gz", members)):
        with pytest.raises(UnsafeArchiveError, match="max_members=10"):
            unpack([arc], tmp_path / "out", limits=Limits(max_members=10))


# --- size limits -----------------------------------------------------------------------------------

def zeros_zip(path: Path, mib: int) -> Path:
    """A zip bomb built by streaming, never holding the payload in memory."""
    block = bytes(MiB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, zf.open("zeros.bin", "w") as fh:
        for _ in range(mib):
            fh.write(block)
    return path


def test_zip_bomb_default_limits(tmp_path):
    bomb = zeros_zip(tmp_path / "bomb.zip", 256)
    assert bomb.stat().st_size < 2 * MiB
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip: member 'zeros\.bin' expands .*zip bomb"):
        unpack([bomb], tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_bomb_by_absolute_size(tmp_path):
    small = Limits(max_bytes=4 * MiB)  # ratio stays below ratio_min_bytes: only the byte cap can stop these
    with pytest.raises(UnsafeArchiveError, match="declares 8388608 uncompressed bytes, over max_bytes"):
        unpack([zeros_zip(tmp_path / "big.zip", 8)], tmp_path / "out", limits=small)
    tgz = tmp_path / "big.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        for i in range(3):
            tar_member(tf, f"part{i}.bin", bytes(3 * MiB))
    with pytest.raises(UnsafeArchiveError, match=r"big\.tar\.gz: member 'part1\.bin': more than max_bytes"):
        unpack([tgz], tmp_path / "out", limits=small)
    # the cap counts every archive of one call
    two = [make_zip(tmp_path / f"z{i}.zip", {"x": os.urandom(3 * MiB)}, zipfile.ZIP_STORED) for i in range(2)]
    with pytest.raises(UnsafeArchiveError, match=r"z1\.zip"):
        unpack(two, tmp_path / "out", limits=small)
    assert not (tmp_path / "out").exists()


def test_tar_bomb_by_ratio(tmp_path):
    tgz = make_tar(tmp_path / "bomb.tar.gz", {"zeros.bin": bytes(4 * MiB)})
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.tar\.gz: archive expands .*zip bomb"):
        unpack([tgz], tmp_path / "out", limits=Limits(ratio_min_bytes=MiB))


def test_zip_header_lying_about_size(tmp_path):
    """file_size patched down to 1000 in the local header and central directory: zipfile stops at
    the declared size and the CRC no longer matches."""
    arc = zeros_zip(tmp_path / "liar.zip", 4)
    raw = bytearray(arc.read_bytes())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, 1000)
    struct.pack_into("<I", raw, central + 24, 1000)
    arc.write_bytes(raw)
    with zipfile.ZipFile(arc) as zf:
        assert zf.getinfo("zeros.bin").file_size == 1000
    with pytest.raises(ArchiveError, match=r"liar\.zip: truncated or corrupt archive: Bad CRC"):
        unpack([arc], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_member_writing_more_than_declared(tmp_path, monkeypatch):
    """Our own running count, should a decoder ever hand out more than the header declared."""
    arc = make_zip(tmp_path / "liar.zip", {"a.bin": b"x" * 1000})
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info, *a, **k: io.BytesIO(bytes(5000)))
    with pytest.raises(UnsafeArchiveError, match="'a.bin' expands beyond its declared 1000 bytes"):
        unpack([arc], tmp_path / "out")


def test_realistic_payload_passes_default_limits(tmp_path):
    rng = random.Random(0)
    pngs = {f"images/{i:03d}.png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(600_000) for i in range(20)}
    # ~220 KB of distinct rows repeated past deflate's 32 KiB window: ~19 MB that deflates only ~4x
    rows = "".join(f"case_{i},{rng.random():.6f},{rng.choice(['benign', 'malignant'])}\n" for i in range(8000))
    csv = ("id,score,label\n" + rows * 90).encode()
    xml = b"<row><c>0</c></row>" * 200_000  # ~4 MB of highly compressible xlsx-like XML: small, so allowed
    arc = make_zip(tmp_path / "real.zip", {**pngs, "labels.csv": csv, "sheet.xml": xml})
    with zipfile.ZipFile(arc) as zf:
        info = zf.getinfo("labels.csv")
        assert info.file_size > 16 * MiB and info.file_size / info.compress_size > 2
        assert zf.getinfo("sheet.xml").file_size / zf.getinfo("sheet.xml").compress_size > 200
    tgz = make_tar(tmp_path / "real2.tar.gz", {"labels.csv": csv, **pngs})
    record = unpack([arc, tgz], tmp_path / "out")
    assert record["files"] == 2 * 20 + 3
    assert (tmp_path / "out/real/labels.csv").read_bytes() == csv


# --- corrupt archives --------------------------------------------------------------------------

def truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("build", [
    lambda p: truncated(make_zip(p / "cut.zip", {"a.bin": os.urandom(50_000)})),
    lambda p: truncated(make_tar(p / "cut.tar.xz", {"a.bin": os.urandom(50_000)}, "w:xz")),
    lambda p: truncated(make_tar(p / "cut.tar.gz", {"a.bin": os.urandom(50_000)}, "w:gz")),
    lambda p: truncated(make_tar(p / "cut.tar.bz2", {"a.bin": os.urandom(50_000)}, "w:bz2")),
    lambda p: truncated(make_tar(p / "cut.tar", {"a.bin": os.urandom(50_000)}, "w")),
    # cut inside the gzip trailer only: tarfile would not notice on its own
    lambda p: (lambda a: (a.write_bytes(a.read_bytes()[:-4]), a)[1])(make_tar(p / "cut.tgz", {"a": b"1"}, "w:gz")),
    lambda p: (p / "cut.zip").write_bytes(b"not an archive at all") and p / "cut.zip",
    lambda p: (p / "cut.tar.gz").write_bytes(os.urandom(4000)) and p / "cut.tar.gz",
])
def test_corrupt_archives(tmp_path, build):
    arc = build(tmp_path)
    with pytest.raises(ArchiveError, match=rf"{arc.name}: truncated or corrupt archive"):
        unpack([arc], tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["Trans-thalamic.zip", "data.tar.gz"])
def test_html_saved_as_archive(tmp_path, name):
    arc = tmp_path / name
    arc.write_text("\n<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    with pytest.raises(ArchiveError, match=rf"{name}: is an HTML page"):
        unpack([arc], tmp_path / "out")


def test_corrupt_nested_archive_is_named(tmp_path):
    outer = make_zip(tmp_path / "outer.zip", {"x/inner.zip": b"<html>503</html>"})
    with pytest.raises(ArchiveError, match=r"outer\.zip!x/inner\.zip: is an HTML page"):
        unpack([outer], tmp_path / "out")


# --- atomicity and idempotence -----------------------------------------------------------------

def test_failure_keeps_older_dest(tmp_path):
    good = make_zip(tmp_path / "good.zip", {"a.txt": b"a"})
    first = unpack([good], tmp_path / "out")
    bad = make_zip(tmp_path / "bad.zip", {"b.txt": b"b", "../evil": b"x"})
    with pytest.raises(UnsafeArchiveError):
        unpack([good, bad], tmp_path / "out")
    assert tree(tmp_path / "out") == {"good/a.txt": b"a"}
    assert json.loads((tmp_path / "out" / MARKER).read_text()) == first
    assert leftovers(tmp_path) == []


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in [root, *root.rglob("*")]}


def test_rerun_is_a_no_op(tmp_path):
    arc = nest(tmp_path, ["o.zip", "i.zip"], {"x.txt": b"x"})
    first = unpack([arc], tmp_path / "out", fingerprints={"o.zip": "ab" * 32})
    assert first["archives"] == [{"name": "o.zip", "size": arc.stat().st_size, "sha256": "ab" * 32}]
    before = snapshot(tmp_path / "out")
    assert unpack([arc], tmp_path / "out", fingerprints={"o.zip": "ab" * 32}) == first
    assert snapshot(tmp_path / "out") == before
    # a different fingerprint (or nested flag) means different inputs: rebuilt
    second = unpack([arc], tmp_path / "out", fingerprints={"o.zip": "cd" * 32})
    assert second["archives"][0]["sha256"] == "cd" * 32
    assert snapshot(tmp_path / "out") != before


def test_rerun_without_fingerprints_uses_mtime(tmp_path):
    arc = make_zip(tmp_path / "a.zip", {"x.txt": b"x"})
    first = unpack([arc], tmp_path / "out")
    assert first["archives"][0]["mtime_ns"] == arc.stat().st_mtime_ns
    before = snapshot(tmp_path / "out")
    assert unpack([arc], tmp_path / "out") == first and snapshot(tmp_path / "out") == before
    make_zip(arc, {"y.txt": b"y"})
    os.utime(arc, ns=(1, 1))
    unpack([arc], tmp_path / "out")
    assert tree(tmp_path / "out") == {"a/y.txt": b"y"}


# --- several processes (the unpack rule's `threads`) ----------------------------------------------

@pytest.fixture
def parallel(monkeypatch):
    """Pools for any size: these archives are far below the size that pays for them. Returns the
    process count of each pool started, so a test sees that its work did leave the process."""
    import medcurate.unpack

    monkeypatch.setattr(medcurate.unpack, "PARALLEL_MIN_BYTES", 0)
    started, real = [], medcurate.unpack._pool
    monkeypatch.setattr(medcurate.unpack, "_pool", lambda n, *a: started.append(n) or real(n, *a))
    return started


def corrupt_member(arc: Path, name: str) -> None:
    """Flip a byte inside ``name``'s compressed data: inflate or the CRC check fails on it."""
    with zipfile.ZipFile(arc) as zf:
        info = zf.getinfo(name)
    raw = bytearray(arc.read_bytes())
    start = info.header_offset + 30 + len(info.orig_filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    arc.write_bytes(raw)


def many_zip(path: Path, n: int = 200) -> tuple[Path, dict[str, bytes]]:
    rng = random.Random(n)
    members = {f"Images/case{i:04d}.png": rng.randbytes(rng.randrange(100, 5000)) for i in range(n)}
    members["table.csv"] = b"id,label\n" + b"".join(b"%d,x\n" % i for i in range(n))
    return make_zip(path, members), members


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_threads_write_the_same_tree(tmp_path, threads, parallel):
    arc, members = many_zip(tmp_path / "big.zip")
    one = unpack([arc], tmp_path / "one")
    many = unpack([arc], tmp_path / "many", threads=threads)
    assert tree(tmp_path / "many" / "big") == tree(tmp_path / "one" / "big") == members
    assert many == one and parallel == [threads]


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_threads_report_the_first_bad_member_in_archive_order(tmp_path, threads, parallel):
    """A bad member at the end of one run of members and another at the start of the next: the
    later run meets its bad member first, yet the error names the earlier one, as one process
    would, and nothing is promoted."""
    arc, _ = many_zip(tmp_path / "bad.zip")
    corrupt_member(arc, "Images/case0095.png")
    corrupt_member(arc, "Images/case0105.png")
    for _ in range(3):
        with pytest.raises(ArchiveError, match=r"bad\.zip: truncated or corrupt archive: .*'Images/case0095\.png'"):
            unpack([arc], tmp_path / "out", threads=threads)
        assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert parallel == ([threads] * 3 if threads > 1 else [])


def test_threads_unpack_several_archives_side_by_side(tmp_path, parallel):
    """ChestX-ray14's layout (twelve tar.gz): each archive in its own process, the same result;
    a bad one among them fails the whole step and keeps the earlier tree."""
    rng = random.Random(1)
    tars = [make_tar(tmp_path / f"images_{k:03d}.tar.gz",
                     {f"images/{k:03d}_{i:03d}.png": rng.randbytes(3000) for i in range(30)}) for k in range(1, 6)]
    one = unpack(tars, tmp_path / "one")
    assert unpack(tars, tmp_path / "many", threads=3) == one
    assert tree(tmp_path / "many") == tree(tmp_path / "one")
    assert len(tree(tmp_path / "many")) == 150
    raw = bytearray(tars[3].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    tars[3].write_bytes(raw)
    before = tree(tmp_path / "many")
    with pytest.raises(ArchiveError, match=r"images_004\.tar\.gz: truncated or corrupt archive"):
        unpack(tars, tmp_path / "many", threads=3)
    assert tree(tmp_path / "many") == before and not [p for p in leftovers(tmp_path) if "many" in p]
    assert parallel == [3, 3]


def test_threads_keep_the_byte_limit(tmp_path, parallel):
    """max_bytes is charged from every process: the sum over the archives still trips it."""
    tars = [make_tar(tmp_path / f"p{k}.tar.gz", {"data.bin": random.Random(k).randbytes(MiB)}) for k in range(4)]
    with pytest.raises(UnsafeArchiveError, match=r"more than max_bytes"):
        unpack(tars, tmp_path / "out", limits=Limits(max_bytes=3 * MiB), threads=4)
    assert not (tmp_path / "out").exists() and parallel == [4]


def test_threads_refuse_a_hostile_member_from_a_worker(tmp_path, parallel):
    """A refusal raised in a pool's process reaches the caller as the same error, naming the
    archive and the member (the error type survives the trip between processes)."""
    rng = random.Random(3)
    good = make_tar(tmp_path / "a.tar.gz", {f"x/{i}.png": rng.randbytes(2000) for i in range(20)})
    bad = tmp_path / "b.tar.gz"
    with tarfile.open(bad, "w:gz") as tf:
        tar_member(tf, "ok.txt", b"fine")
        tar_member(tf, "../../escape.txt", b"out")
    with pytest.raises(UnsafeArchiveError, match=r"b\.tar\.gz: member '\.\./\.\./escape\.txt' contains a '\.\.' component"):
        unpack([good, bad], tmp_path / "out", threads=2)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escape.txt").exists() and parallel == [2]


@pytest.fixture
def no_shared_memory(monkeypatch):
    """A container without /dev/shm: multiprocessing cannot make a semaphore."""
    import errno
    import multiprocessing

    def refuse(*a, **k):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(multiprocessing, "Value", refuse)


def test_without_shared_memory_a_small_archive_needs_none(tmp_path, no_shared_memory, caplog):
    arc, members = many_zip(tmp_path / "small.zip")
    unpack([arc], tmp_path / "out", threads=4)
    assert tree(tmp_path / "out" / "small") == members and "one process" not in caplog.text


def test_without_shared_memory_a_big_release_is_unpacked_in_one_process(tmp_path, parallel, no_shared_memory, caplog):
    arc, members = many_zip(tmp_path / "big.zip")
    unpack([arc], tmp_path / "zip", threads=2)
    assert tree(tmp_path / "zip" / "big") == members
    tars = [make_tar(tmp_path / f"images_{k:03d}.tar.gz", {f"images/{k}_{i}.png": bytes([k, i]) * 500 for i in range(20)})
            for k in range(1, 4)]
    unpack(tars, tmp_path / "tars", threads=3)
    assert len(tree(tmp_path / "tars")) == 60
    assert caplog.text.count("unpacking in one process: no shared memory") == 2 and "Function not implemented" in caplog.text
    assert parallel == []
