"""Issue 18 (3, 4): an archive never overwrites what it already extracted, and no walk of an
unpacked tree, a placed release or a manual_dirs folder ever loops on a symbolic link.

Every refusal names the archive and the member (never a staging path), or the link, and the reason;
nothing is promoted; a walk that loops fails its test by a timer instead of hanging CI."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import within
from medcurate.datasets import files, find_one, index_files, junk_files
from medcurate.errors import ManualDataError, MedcurateError, UnsafeArchiveError
from medcurate.manual import _listing, placed_entries, placed_fingerprint, prepare
from medcurate.unpack import Limits, unpack
from medcurate.walk import walk


def make_zip(path: Path, members: list[tuple[str, bytes]], modes: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": that is the point
        for name, data in members:
            info = zipfile.ZipInfo(name)  # keeps the name verbatim ('./a', 'a//b', 'a/')
            if modes and name in modes:
                info.create_system = 3
                info.external_attr = modes[name] << 16
            zf.writestr(info, data)
    return path


def member(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if data else None)


def make_tar(path: Path, members: list[tuple], mode: str = "w") -> Path:
    """``members``: (name, data) for files, (name, type, linkname) for the rest."""
    with tarfile.open(path, mode) as tf:
        for m in members:
            if len(m) == 2:
                member(tf, m[0], m[1])
            else:
                member(tf, m[0], type=m[1], linkname=m[2], mode=0o755 if m[1] == tarfile.DIRTYPE else 0o644)
    return path


DIR, SYM, HARD, REG = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.REGTYPE


def refused(arc: Path, dest: Path, *, error=UnsafeArchiveError, **kwargs) -> MedcurateError:
    """Unpacking ``arc`` over an earlier ``dest`` fails, leaves that earlier tree untouched and
    no staging folder behind; the error names the archive, never a staging path."""
    unpack([make_zip(arc.parent / "earlier.zip", [("old.txt", b"old")])], dest)
    marker = (dest / ".medcurate-unpack.json").read_bytes()
    with within(), pytest.raises(error) as err:
        unpack([arc], dest, **kwargs)
    text = str(err.value)
    assert str(arc) in text and ".staging" not in text and ".unpacking" not in text, text
    assert (dest / "earlier" / "old.txt").read_bytes() == b"old" and not (dest / arc.name.split(".")[0]).exists()
    assert (dest / ".medcurate-unpack.json").read_bytes() == marker
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".")] == []
    return err.value


# --- zip: nothing already extracted is overwritten -------------------------------------------

@pytest.mark.parametrize("members, culprit, reason", [
    ([("a.txt", b"1"), ("a.txt", b"2")], "a.txt", "occurs twice: one would overwrite the other"),
    ([("a.txt", b"1"), ("./a.txt", b"2")], "./a.txt", "occurs twice (as 'a.txt')"),
    ([("d/a.txt", b"1"), ("d//a.txt", b"2")], "d//a.txt", "occurs twice (as 'd/a.txt')"),
    ([("d/a.txt", b"1"), ("d/./a.txt", b"2")], "d/./a.txt", "occurs twice (as 'd/a.txt')"),
    ([("a/", b""), ("a", b"x")], "a", "is a file, but an earlier member 'a/' made it a folder"),
    ([("a", b"x"), ("a/", b"")], "a/", "is a folder, but an earlier member 'a' made it a file"),
    ([("a", b"x"), ("a/b.txt", b"y")], "a/b.txt", "would be written below 'a', which is a file"),
    ([("a/b.txt", b"y"), ("a", b"x")], "a", "is a file, but an earlier member 'a/b.txt' made it a folder"),
    ([(".", b"x")], ".", "is not a folder but has no file name"),
])
def test_zip_members_that_would_overwrite_are_refused(tmp_path, members, culprit, reason):
    arc = make_zip(tmp_path / "dup.zip", [("keep.txt", b"k"), *members])
    err = refused(arc, tmp_path / "out" / "dest")
    assert f"member {culprit!r}" in err.reason and reason in err.reason, err.reason


def test_zip_folder_listed_twice_is_harmless(tmp_path):
    arc = make_zip(tmp_path / "dirs.zip", [("a/", b""), ("./a/", b""), ("a/x.txt", b"x"), ("a/", b"")])
    unpack([arc], tmp_path / "out")
    assert (tmp_path / "out" / "dirs" / "a" / "x.txt").read_bytes() == b"x"


def test_names_differing_only_in_case_are_two_members_on_linux(tmp_path):
    """On a case-sensitive file system 'A.txt' and 'a.txt' are two files, both kept; where the
    file system folds case (macOS, Windows shares) the second would land on the first and is
    refused as a collision instead (the lexists check before every write)."""
    probe = tmp_path / "Probe"
    probe.write_text("")
    if (tmp_path / "probe").exists():
        pytest.skip("case-insensitive file system")
    arc = make_zip(tmp_path / "case.zip", [("A.txt", b"upper"), ("a.txt", b"lower")])
    unpack([arc], tmp_path / "out")
    assert (tmp_path / "out/case/A.txt").read_bytes() == b"upper" and (tmp_path / "out/case/a.txt").read_bytes() == b"lower"


@pytest.mark.parametrize("mode, what", [
    (stat.S_IFCHR | 0o644, "device, fifo or socket"), (stat.S_IFBLK | 0o644, "device, fifo or socket"),
    (stat.S_IFSOCK | 0o644, "device, fifo or socket"), (stat.S_IFIFO | 0o644, "device, fifo or socket"),
    (stat.S_IFLNK | 0o777, "symbolic link"),
])
def test_zip_special_members_are_refused(tmp_path, mode, what):
    arc = make_zip(tmp_path / "special.zip", [("ok.txt", b"x"), ("node", b"")], modes={"node": mode})
    err = refused(arc, tmp_path / "out" / "dest")
    assert f"member 'node' is a {what}" in err.reason


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/x", "C:/x", "a\\..\\x"])
def test_zip_escaping_names_stay_refused(tmp_path, name):
    err = refused(make_zip(tmp_path / "esc.zip", [("ok.txt", b"x"), (name, b"evil")]), tmp_path / "out" / "dest")
    assert repr(name) in err.reason and not (tmp_path / "x").exists()


# --- tar: nothing already extracted is overwritten, replaced or written through ----------------

@pytest.mark.parametrize("members, culprit, reason", [
    ([("a.txt", b"1"), ("a.txt", b"2")], "a.txt", "occurs twice: one would overwrite the other"),
    ([("a.txt", b"1"), ("./a.txt", b"2")], "./a.txt", "occurs twice (as 'a.txt')"),
    ([("d/a.txt", b"1"), ("d//a.txt", b"2")], "d//a.txt", "occurs twice (as 'd/a.txt')"),
    ([("a", SYM, "keep.txt"), ("a", b"x")], "a", "is a file, but an earlier member 'a' made it a symbolic link"),
    ([("a", b"x"), ("a", SYM, "keep.txt")], "a", "is a symbolic link, but an earlier member 'a' made it a file"),
    ([("h", HARD, "keep.txt"), ("h", b"x")], "h", "is a file, but an earlier member 'h' made it a hard link"),
    ([("a", b"x"), ("a", HARD, "keep.txt")], "a", "is a hard link, but an earlier member 'a' made it a file"),
    ([("a", SYM, "keep.txt"), ("a", SYM, "other")], "a", "occurs twice"),
    ([("a", DIR, ""), ("a", b"x")], "a", "is a file, but an earlier member 'a' made it a folder"),
    ([("a", b"x"), ("a", DIR, "")], "a", "is a folder, but an earlier member 'a' made it a file"),
    ([("a", b"x"), ("a/b.txt", b"y")], "a/b.txt", "would be written below 'a', which is a file"),
    ([("h", HARD, "keep.txt"), ("h/b.txt", b"y")], "h/b.txt", "would be written below 'h', which is a hard link"),
    ([("d", SYM, "sub"), ("d/x.txt", b"x")], "d/x.txt", "would be written through a link ('d')"),
    ([("a/b.txt", b"y"), ("a", b"x")], "a", "is a file, but an earlier member 'a/b.txt' made it a folder"),
    ([("h", HARD, "later.txt"), ("later.txt", b"x")], "h", "is a hard link to 'later.txt', which is not a file extracted before it"),
    ([("d", DIR, ""), ("h", HARD, "d")], "h", "is a hard link to 'd', which is not a file"),
    ([("s", SYM, "keep.txt"), ("h", HARD, "s")], "h", "is a hard link to 's', which is not a file"),
    ([("h", HARD, "nowhere")], "h", "is a hard link to 'nowhere', which is not a file"),
    ([(".", b"x")], ".", "is not a folder but has no file name"),
    ([("a/", b"x")], "a/", "is not a folder but its name ends with '/'"),
])
def test_tar_members_that_would_overwrite_are_refused(tmp_path, members, culprit, reason):
    arc = make_tar(tmp_path / "dup.tar", [("keep.txt", b"k"), *members])
    err = refused(arc, tmp_path / "out" / "dest")
    assert f"member {culprit!r}" in err.reason and reason in err.reason, err.reason


def test_tar_folder_listed_twice_and_dot_folder_are_harmless(tmp_path):
    arc = make_tar(tmp_path / "dirs.tar", [(".", DIR, ""), ("./a", DIR, ""), ("a/x.txt", b"x"), ("a", DIR, "")])
    unpack([arc], tmp_path / "out")
    assert (tmp_path / "out" / "dirs" / "a" / "x.txt").read_bytes() == b"x"


def test_tar_hard_link_to_an_earlier_file_is_kept(tmp_path):
    arc = make_tar(tmp_path / "hl.tar", [("d/a.txt", b"A"), ("h1", HARD, "d/a.txt"), ("h2", HARD, "./h1")])
    unpack([arc], tmp_path / "out")
    assert (tmp_path / "out/hl/h2").read_bytes() == b"A"


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_devices_and_fifos_stay_refused(tmp_path, kind):
    with tarfile.open(tmp_path / "dev.tar", "w") as tf:
        member(tf, "ok.txt", b"x")
        member(tf, "dev/node", type=kind, devmajor=1, devminor=3)
    err = refused(tmp_path / "dev.tar", tmp_path / "out" / "dest")
    assert "member 'dev/node' is a device or fifo" in err.reason


def test_tar_member_of_an_unknown_type_is_refused(tmp_path):
    with tarfile.open(tmp_path / "odd.tar", "w") as tf:
        member(tf, "volume", type=b"V")
    err = refused(tmp_path / "odd.tar", tmp_path / "out" / "dest")
    assert "member 'volume' is of an unknown tar type b'V'" in err.reason


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/tmp/x", "C:\\x"])
def test_tar_escaping_names_stay_refused(tmp_path, name):
    err = refused(make_tar(tmp_path / "esc.tar", [("ok.txt", b"x"), (name, b"evil")]), tmp_path / "out" / "dest")
    assert repr(name) in err.reason and not (tmp_path / "x").exists()


# --- fuzz: any sequence of members either unpacks without overwriting anything or is refused --

_NAME = st.builds(lambda pre, parts, slash: pre + "/".join(parts) + slash,
                  st.sampled_from(["", "./"]), st.lists(st.sampled_from(["a", "b", ".", "a", "b", ".."]), min_size=1, max_size=3),
                  st.sampled_from(["", "/"]))
_MEMBER = st.tuples(st.sampled_from(["file", "dir", "sym", "hard"]), _NAME,
                    st.sampled_from(["a", "b", "a/b", ".", "..", "b/..", "./a", "a/.", "b/../a", "nowhere"]), st.binary(max_size=3))


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=st.lists(_MEMBER, min_size=1, max_size=6), as_zip=st.booleans())
def test_fuzzed_archives_never_overwrite_escape_or_hang(members, as_zip):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        if as_zip:  # zip has no links (refused anyway): files and folders only
            entries = [(_norm(n) + "/" if k == "dir" else n, d) for k, n, _, d in members if k in ("file", "dir")]
            arc = make_zip(tmp / "in" / "fuzz.zip", entries or [("x", b"")])
            files_written = [(n, d) for n, d in entries if not n.endswith("/")]
        else:
            arc = tmp / "in" / "fuzz.tar"
            with tarfile.open(arc, "w") as tf:
                for kind, name, target, data in members:
                    if kind == "file":
                        member(tf, name, data)
                    else:
                        member(tf, name, type={"dir": DIR, "sym": SYM, "hard": HARD}[kind], linkname=target)
            files_written = [(n, d) for k, n, _, d in members if k == "file"]
        with within(20):
            try:
                unpack([arc], tmp / "out" / "dest")
            except MedcurateError as e:
                assert str(arc) in str(e) and ".staging" not in str(e) and ".unpacking" not in str(e), str(e)
                assert not (tmp / "out" / "dest").exists()
            else:
                root = tmp / "out" / "dest" / "fuzz"
                for name, data in files_written:  # every file holds its own member's bytes: none overwritten
                    assert (root / _norm(name)).read_bytes() == data, (name, members)
                list(walk(root))  # and the tree can be walked, links followed, without a loop
        outside = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if "out/dest" not in p.as_posix())
        assert outside == ["in", f"in/{arc.name}", "out"], outside


# --- tar: link loops and broken links --------------------------------------------------------

@pytest.mark.parametrize("links, culprit, reason", [
    ([("sub", DIR, ""), ("sub/again", SYM, ".")], "sub/again", "is a loop: it leads back to 'sub'"),
    ([("here", SYM, ".")], "here", "is a loop: it leads back to the top folder"),
    ([("sub", DIR, ""), ("sub/up", SYM, "..")], "sub/up", "is a loop: it leads back to the top folder"),
    ([("a/b", DIR, ""), ("a/b/up2", SYM, "../..")], "a/b/up2", "is a loop"),
    ([("me", SYM, "me")], "me", "symbolic link loop (-> me)"),
    ([("p", SYM, "q"), ("q", SYM, "p")], "p", "symbolic link loop (-> q)"),
    ([("x", DIR, ""), ("y", DIR, ""), ("x/toy", SYM, "../y"), ("y/tox", SYM, "../x")], "x/toy", "same folder as 'y'"),
    ([("v1/a.txt", b"a"), ("latest", SYM, "v1")], "latest", "same folder as 'v1'"),
    ([("dangling", SYM, "not-in-the-archive.txt")], "dangling", "broken symbolic link (-> not-in-the-archive.txt)"),
])
def test_tar_link_loops_and_broken_links_are_refused(tmp_path, links, culprit, reason):
    arc = make_tar(tmp_path / "loops.tar", [("keep.txt", b"k"), *links])
    err = refused(arc, tmp_path / "out" / "dest")
    assert f"member {culprit!r}" in err.reason and reason in err.reason, err.reason


def test_tar_link_into_a_nested_archive_is_kept(tmp_path):
    """A link whose target only exists once the nested archive is unpacked is not broken."""
    inner = make_zip(tmp_path / "inner.zip", [("a.txt", b"A")])
    arc = make_tar(tmp_path / "outer.tar", [("inner.zip", inner.read_bytes()), ("alias.txt", SYM, "inner/a.txt")])
    unpack([arc], tmp_path / "out")
    assert (tmp_path / "out/outer/alias.txt").read_bytes() == b"A"


def test_tar_link_to_a_nested_archive_folder_is_refused_after_nesting(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", [("sub/a.txt", b"A")])
    arc = make_tar(tmp_path / "outer.tar", [("inner.zip", inner.read_bytes()), ("alias", SYM, "inner/sub")])
    err = refused(arc, tmp_path / "out" / "dest")
    assert "member 'alias'" in err.reason and "same folder as 'inner/sub'" in err.reason


# --- nested archives: the same refusals, named outer!inner ---------------------------------------

def _inner_tar(tmp_path: Path, members: list[tuple]) -> bytes:
    return make_tar(tmp_path / "inner.tar", members).read_bytes()


@pytest.mark.parametrize("members, culprit, reason", [
    ([("a.txt", b"1"), ("./a.txt", b"2")], "./a.txt", "occurs twice"),
    ([("a", SYM, "b.txt"), ("b.txt", b"b"), ("a", b"x")], "a", "made it a symbolic link"),
    ([("loop", SYM, ".")], "loop", "is a loop"),
    ([("../escape.txt", b"x")], "../escape.txt", "contains a '..' component"),
    ([("/abs.txt", b"x")], "/abs.txt", "is an absolute path"),
])
def test_nested_archives_are_refused_the_same_way(tmp_path, members, culprit, reason):
    outer = make_zip(tmp_path / "outer.zip", [("keep.txt", b"k"), ("x/inner.tar", _inner_tar(tmp_path, members))])
    err = refused(outer, tmp_path / "out" / "dest")
    assert err.path == f"{outer}!x/inner.tar", err
    assert f"member {culprit!r}" in err.reason and reason in err.reason, err.reason
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "escape.txt").exists()


def test_nested_archive_never_replaces_a_file_of_its_name(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", [("a.txt", b"A")])
    outer = make_zip(tmp_path / "outer.zip", [("inner", b"a file"), ("inner.zip", inner.read_bytes())])
    err = refused(outer, tmp_path / "out" / "dest", error=MedcurateError)
    assert "cannot unpack into 'inner': a file of that name exists" in err.reason


def test_nested_archive_never_unpacks_through_a_link_of_its_name(tmp_path):
    inner = make_zip(tmp_path / "inner.zip", [("a.txt", b"A")])
    outer = make_tar(tmp_path / "outer.tar", [("real/keep.txt", b"k"), ("inner", SYM, "real/keep.txt"),
                                              ("inner.zip", inner.read_bytes())])
    err = refused(outer, tmp_path / "out" / "dest", error=MedcurateError)
    assert "cannot unpack into 'inner': a file of that name exists" in err.reason


def test_two_nested_archives_of_one_name_merge_only_identical_files(tmp_path):
    a = make_zip(tmp_path / "a.zip", [("same.txt", b"S"), ("f.txt", b"from zip")])
    b = make_tar(tmp_path / "b.tar", [("same.txt", b"S"), ("f.txt", b"from tar")])
    outer = make_zip(tmp_path / "outer.zip", [("x.zip", a.read_bytes()), ("x.tar", b.read_bytes())])
    err = refused(outer, tmp_path / "out" / "dest", error=MedcurateError)
    assert "'f.txt' differs from the file already at x/f.txt" in err.reason


# --- walks: datasets.files / index_files / find_one / junk_files, manual, fingerprint -----------

LOOPS = ["dot", "dotdot", "self", "two_links", "two_dir_links", "to_the_top", "broken"]


def _tree_with(root: Path, loop: str) -> tuple[set[Path], str]:
    """A small release below ``root`` with one bad link; returns the paths an error may name
    and a word its reason must hold."""
    sub = root / "AllDICOMs" / "sub"
    sub.mkdir(parents=True)
    (sub / "1.dcm").write_bytes(b"x")
    (root / "INbreast.csv").write_text("a;b\n")
    if loop == "dot":
        (sub / "again").symlink_to(".")
        return {sub / "again"}, "loop"
    if loop == "dotdot":
        (sub / "up").symlink_to("..")
        return {sub / "up"}, "loop"
    if loop == "self":
        (sub / "me").symlink_to("me")
        return {sub / "me"}, "loop"
    if loop == "two_links":
        (sub / "a").symlink_to("b")
        (sub / "b").symlink_to("a")
        return {sub / "a", sub / "b"}, "loop"
    if loop == "two_dir_links":
        (root / "x").mkdir()
        (root / "y").mkdir()
        (root / "x" / "toy").symlink_to("../y")
        (root / "y" / "tox").symlink_to("../x")
        return {root / "x" / "toy", root / "y" / "tox"}, "same folder"
    if loop == "to_the_top":
        (sub / "home").symlink_to(root.resolve())
        return {sub / "home"}, "loop"
    (sub / "2.dcm").symlink_to(root / "unmounted" / "2.dcm")
    return {sub / "2.dcm"}, "broken symbolic link"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("walker", ["files", "files_pattern", "index_files", "find_one", "junk_files", "walk"])
def test_dataset_walks_refuse_link_loops_naming_the_link(tmp_path, loop, walker):
    culprits, word = _tree_with(tmp_path / "root", loop)
    root = tmp_path / "root"
    run = {"files": lambda: files(root), "files_pattern": lambda: files(root, "*.dcm"),
           "index_files": lambda: index_files(root, "*.dcm"), "find_one": lambda: find_one(root, "INbreast.csv"),
           "junk_files": lambda: junk_files(root), "walk": lambda: list(walk(root))}[walker]
    with within(), pytest.raises(MedcurateError) as err:
        run()
    assert Path(err.value.path) in culprits, err.value
    assert word in err.value.reason, err.value.reason
    assert "missing" not in err.value.reason and "not found" not in err.value.reason


@pytest.mark.parametrize("loop", LOOPS)
def test_dataset_root_linking_to_a_placed_folder_with_a_loop(tmp_path, loop):
    """The gated route: the dataset root links to the placed folder; the loop is found through it."""
    culprits, word = _tree_with(tmp_path / "placed", loop)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "placed").symlink_to(tmp_path / "placed")
    with within(), pytest.raises(MedcurateError) as err:
        files(tmp_path / "root", "*.dcm")
    via = {tmp_path / "root" / "placed" / p.relative_to(tmp_path / "placed") for p in culprits}
    assert Path(err.value.path) in via and word in err.value.reason


def test_walk_of_a_sound_tree_follows_links_once(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "1.dcm").write_bytes(b"x")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "data").symlink_to(tmp_path / "data")
    (tmp_path / "root" / "one.dcm").symlink_to(tmp_path / "data" / "a" / "1.dcm")  # links to files are fine
    assert files(tmp_path / "root", "*.dcm") == [tmp_path / "root/data/a/1.dcm", tmp_path / "root/one.dcm"]
    assert files(tmp_path / "nowhere") == []  # as before: no root, nothing found


def test_walk_names_an_unreadable_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    (tmp_path / "root" / "locked").mkdir(parents=True)
    (tmp_path / "root" / "locked").chmod(0)
    try:
        with pytest.raises(MedcurateError, match="locked: cannot list the folder: Permission denied"):
            files(tmp_path / "root")
    finally:
        (tmp_path / "root" / "locked").chmod(0o755)


EXPECTED = [{"path": "AllDICOMs", "kind": "dir"}, {"path": "INbreast.csv"}]


def _plan(folder: Path) -> dict:
    return {"id": "gated", "name": "Gated set", "manual_dir": str(folder), "manual_pins": {}, "unpack": {"nested": True},
            "access": {"mode": "manual", "request_url": "https://example.org/ask", "instructions": "Sign.",
                       "expected": EXPECTED}}


@pytest.mark.parametrize("loop", LOOPS)
def test_placed_release_with_a_link_loop_is_refused_naming_the_placed_link(tmp_path, loop):
    culprits, word = _tree_with(tmp_path / "manual", loop)
    with within(), pytest.raises(ManualDataError) as err:
        prepare(_plan(tmp_path / "manual"), [], tmp_path / "root", Limits())
    assert Path(err.value.path) in culprits, err.value  # where the user put it, not the staging tree
    assert word in err.value.reason and "missing or empty" not in err.value.reason
    assert not (tmp_path / "root").exists() and [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("loop", LOOPS)
def test_placed_fingerprint_refuses_loops_but_not_broken_links(tmp_path, loop):
    culprits, word = _tree_with(tmp_path / "manual", loop)
    with within():
        if loop == "broken":  # check_manual reports it; the parse must not stop every other dataset
            assert len(placed_fingerprint(tmp_path / "manual")) == 16
            return
        with pytest.raises(ManualDataError) as err:
            placed_fingerprint(tmp_path / "manual")
    assert Path(err.value.path) in culprits and word in err.value.reason


@pytest.mark.parametrize("loop", LOOPS)
def test_manual_listing_refuses_loops(tmp_path, loop):
    culprits, word = _tree_with(tmp_path / "root", loop)
    with within(), pytest.raises(ManualDataError) as err:
        _listing(tmp_path / "root")
    assert Path(err.value.path) in culprits and word in err.value.reason


@pytest.mark.parametrize("loop", ["dot", "dotdot", "self", "broken"])
def test_manual_dirs_itself_a_bad_link(tmp_path, loop):
    """manual_dirs pointing at a broken link or a loop says so, not 'missing or empty'."""
    folder = tmp_path / "manual"
    if loop == "self":
        folder.symlink_to("manual")
    elif loop == "broken":
        folder.symlink_to(tmp_path / "unmounted-disk")
    else:
        (tmp_path / "release").mkdir()
        (tmp_path / "release" / "INbreast.csv").write_text("x")
        (tmp_path / "release" / "AllDICOMs").mkdir()
        (tmp_path / "release" / "AllDICOMs" / "1.dcm").write_bytes(b"x")
        folder.symlink_to("release")
        (tmp_path / "release" / "loop").symlink_to("." if loop == "dot" else "..")
    with within(), pytest.raises(ManualDataError) as err:
        prepare(_plan(folder), [], tmp_path / "root", Limits())
    if loop in ("self", "broken"):
        assert err.value.path == str(folder)
        assert ("symbolic link loop" if loop == "self" else "broken symbolic link") in err.value.reason
        with pytest.raises(ManualDataError):
            placed_entries(_plan(folder))
    else:
        # '..' leads out of the release to the folder holding the 'manual' link, which closes the loop
        assert err.value.path in (str(folder / "loop"), str(folder / "loop" / "manual"))
        assert "is a loop" in err.value.reason
    assert not (tmp_path / "root").exists()


def test_placed_top_level_link_loop_is_named(tmp_path):
    """A link placed at the top of the manual folder (the user's 'ln -s /data/INbreast .')."""
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "INbreast").symlink_to(manual)
    with within(), pytest.raises(ManualDataError) as err:
        prepare(_plan(manual), [], tmp_path / "root", Limits())
    assert err.value.path == str(manual / "INbreast") and "is a loop" in err.value.reason


@pytest.mark.parametrize("bad", ["broken", "self"])
def test_unpack_refuses_a_bad_placed_link(tmp_path, bad):
    link = tmp_path / "placed"
    link.symlink_to(tmp_path / "gone" if bad == "broken" else "placed")
    with within(), pytest.raises(MedcurateError) as err:
        unpack([], tmp_path / "root", links=[link])
    assert err.value.path == str(link)
    assert ("broken symbolic link" if bad == "broken" else "symbolic link loop") in err.value.reason
    assert not (tmp_path / "root").exists()
