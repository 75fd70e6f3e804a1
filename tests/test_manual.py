"""The manual route of gated datasets: placed archives unpacked, placed folders linked (never
copied or modified), downloads added, expected items found at any depth, clear instructions."""

import json
import os
import time
import zipfile

import pytest
from conftest import within
from medcurate.atomic import file_digest
from medcurate.datasets import files, find_one
from medcurate.errors import ManualDataError, UnsafeArchiveError
from medcurate.manual import placed_fingerprint, prepare
from medcurate.unpack import Limits

EXPECTED = [{"path": "AllDICOMs", "kind": "dir"}, {"path": "AllXML", "kind": "dir"}, {"path": "INbreast.csv"}]


def _plan(folder, expected=EXPECTED, pins=None):
    return {"id": "gated", "name": "Gated set", "manual_dir": str(folder), "manual_pins": pins or {},
            "unpack": {"nested": True},
            "access": {"mode": "manual", "request_url": "https://example.org/ask", "instructions": "Sign the form.",
                       "expected": expected}}


def _release_zip(path, top="INbreast Release 1.0/"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}AllDICOMs/1_a_MG_L_CC_ANON.dcm", b"x")
        zf.writestr(f"{top}AllXML/1.xml", b"<plist/>")
        zf.writestr(f"{top}INbreast.csv", b"a;b\n")
    return path


def test_placed_archive_is_unpacked_and_expected_items_found_at_any_depth(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    _release_zip(manual / "INbreast.zip")
    ready = prepare(_plan(manual), [], tmp_path / "root", Limits())
    root = tmp_path / "root"
    assert ready["root"] == str(root.resolve())
    assert find_one(root, "INbreast.csv") == root / "INbreast" / "INbreast Release 1.0" / "INbreast.csv"
    [placed] = ready["sources"]
    assert placed["name"] == "INbreast.zip" and placed["sha256"] == file_digest(manual / "INbreast.zip")
    assert placed["checksum_source"] == "computed"


def test_placed_folders_are_linked_not_copied_and_downloads_added(tmp_path):
    manual = tmp_path / "manual"
    (manual / "AllDICOMs").mkdir(parents=True)
    (manual / "AllDICOMs" / "1_a_MG_L_CC_ANON.dcm").write_bytes(b"x")
    (manual / "AllXML").mkdir()
    (manual / "AllXML" / "1.xml").write_bytes(b"<plist/>")
    csv = tmp_path / "downloads" / "INbreast.csv"
    csv.parent.mkdir()
    csv.write_text("a;b\n")
    downloads = [{"name": "INbreast.csv", "path": str(csv), "sha256": file_digest(csv), "url": "https://x/INbreast.csv"}]
    ready = prepare(_plan(manual), downloads, tmp_path / "root", Limits())
    root = tmp_path / "root"
    assert (root / "AllDICOMs").is_symlink() and os.readlink(root / "AllDICOMs") == str(manual / "AllDICOMs")
    assert files(root, "*.dcm") == [root / "AllDICOMs" / "1_a_MG_L_CC_ANON.dcm"]  # links are followed
    assert (root / "INbreast.csv").read_text() == "a;b\n" and not (root / "INbreast.csv").is_symlink()
    assert {s["name"] for s in ready["sources"]} == {"INbreast.csv", "AllDICOMs", "AllXML"}
    assert all("path" not in s for s in ready["sources"])
    # Running again with nothing changed is a no-op; the placed folder was never written to.
    before = sorted(p.name for p in manual.rglob("*"))
    prepare(_plan(manual), downloads, root, Limits())
    assert sorted(p.name for p in manual.rglob("*")) == before


@pytest.mark.parametrize("setup, problems", [
    ("nothing", ["is missing or empty", "missing or empty folder: AllDICOMs/", "missing file: INbreast.csv"]),
    ("partial", ["missing or empty folder: AllXML/"]),
])
def test_missing_items_fail_with_instructions(tmp_path, setup, problems):
    manual = tmp_path / "manual"
    if setup == "partial":
        (manual / "AllDICOMs").mkdir(parents=True)
        (manual / "AllDICOMs" / "a.dcm").write_bytes(b"x")
        (manual / "INbreast.csv").write_text("x")
    with pytest.raises(ManualDataError) as err:
        prepare(_plan(manual), [], tmp_path / "root", Limits())
    text = str(err.value)
    assert err.value.path == str(manual)
    assert "https://example.org/ask" in text and "Sign the form." in text and str(manual) in text
    assert all(p in text for p in problems)


def test_wrong_checksum_of_an_expected_file_is_named(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "INbreast.csv").write_text("changed")
    expected = [{"path": "INbreast.csv", "sha256": "0" * 64}]
    with pytest.raises(ManualDataError, match="INbreast.csv: sha256 expected 0{64}, actual"):
        prepare(_plan(manual, expected), [], tmp_path / "root", Limits())


def test_pinned_archive_in_sample_mode_must_match(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    _release_zip(manual / "INbreast.zip")
    with pytest.raises(ManualDataError) as err:
        prepare(_plan(manual, pins={"INbreast.zip": "f" * 64}), [], tmp_path / "root", Limits())
    assert err.value.path == str(manual / "INbreast.zip") and "sha256 expected" in err.value.reason
    ready = prepare(_plan(manual, pins={"INbreast.zip": file_digest(manual / "INbreast.zip")}), [], tmp_path / "root", Limits())
    assert ready["sources"][0]["checksum_source"] == "pinned"


def test_hostile_placed_archive_is_refused_and_nothing_promoted(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    with zipfile.ZipFile(manual / "evil.zip", "w") as zf:
        zf.writestr("../../escaped.txt", b"x")
    with pytest.raises(UnsafeArchiveError, match="evil.zip"):
        prepare(_plan(manual), [], tmp_path / "root", Limits())
    assert not (tmp_path / "root").exists() and not (tmp_path / "escaped.txt").exists()


def test_ready_record_is_json_serialisable(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    _release_zip(manual / "INbreast.zip")
    json.dumps(prepare(_plan(manual), [], tmp_path / "root", Limits()))


def test_expected_items_may_be_patterns(tmp_path):
    """BCDR users may hold any subset: bcdr_*_outlines.csv accepts whichever is there."""
    manual = tmp_path / "manual"
    (manual / "BCDR-D02_dataset").mkdir(parents=True)
    (manual / "BCDR-D02_dataset" / "bcdr_d02_outlines.csv").write_text("x")
    prepare(_plan(manual, [{"path": "bcdr_*_outlines.csv"}]), [], tmp_path / "root", Limits())
    with pytest.raises(ManualDataError, match=r"missing file: bcdr_\*_img.csv"):
        prepare(_plan(manual, [{"path": "bcdr_*_img.csv"}]), [], tmp_path / "root2", Limits())


def _placed(tmp_path):
    manual = tmp_path / "manual"
    (manual / "AllDICOMs" / "sub").mkdir(parents=True)
    (manual / "AllDICOMs" / "sub" / "1.dcm").write_bytes(b"x")
    (manual / "INbreast.csv").write_text("a;b\n")
    return manual


def test_placed_fingerprint_changes_with_every_edit(tmp_path):
    manual = _placed(tmp_path)
    digests = [placed_fingerprint(manual)]
    assert digests[0] == placed_fingerprint(manual) and len(digests[0]) == 16
    (manual / "INbreast.csv").write_text("a;b\n1;2\n")                # edited
    digests.append(placed_fingerprint(manual))
    (manual / "AllDICOMs" / "sub" / "2.dcm").write_bytes(b"y")          # added
    digests.append(placed_fingerprint(manual))
    (manual / "AllDICOMs" / "sub" / "1.dcm").unlink()                   # removed
    digests.append(placed_fingerprint(manual))
    st = (manual / "INbreast.csv").stat()                               # touched, same size and content
    os.utime(manual / "INbreast.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    digests.append(placed_fingerprint(manual))
    (manual / "AllXML").mkdir()                                         # an empty folder added
    digests.append(placed_fingerprint(manual))
    (manual / "AllDICOMs" / "sub" / "2.dcm").rename(manual / "AllDICOMs" / "2.dcm")  # moved
    digests.append(placed_fingerprint(manual))
    assert len(set(digests)) == len(digests)
    (manual / ".DS_Store").write_bytes(b"finder")  # hidden at the top: not placed data, as for placed_entries
    assert placed_fingerprint(manual) == digests[-1]


def test_placed_fingerprint_follows_links_and_sees_changes_behind_them(tmp_path):
    elsewhere = _placed(tmp_path)
    manual = tmp_path / "linked"
    manual.mkdir()
    (manual / "release").symlink_to(elsewhere)
    before = placed_fingerprint(manual)
    (elsewhere / "AllDICOMs" / "sub" / "3.dcm").write_bytes(b"z")
    assert placed_fingerprint(manual) != before
    # a manual_dirs entry that is itself a link is followed too
    (tmp_path / "via").symlink_to(elsewhere)
    assert placed_fingerprint(tmp_path / "via") == placed_fingerprint(elsewhere)


def test_placed_fingerprint_of_a_missing_folder_is_absent(tmp_path):
    assert placed_fingerprint(tmp_path / "nowhere") == "absent"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert placed_fingerprint(tmp_path / "dangling") == "absent"


def test_placed_fingerprint_sees_a_broken_link_without_failing(tmp_path):
    manual = _placed(tmp_path)
    before = placed_fingerprint(manual)
    (manual / "AllXML").symlink_to(tmp_path / "unmounted")
    broken = placed_fingerprint(manual)
    assert broken != before
    (tmp_path / "unmounted").mkdir()
    assert placed_fingerprint(manual) != broken


@pytest.mark.parametrize("loop", ["dot", "dotdot", "self", "two_links", "to_the_top"])
def test_placed_fingerprint_refuses_link_loops_naming_the_link(tmp_path, loop):
    manual = _placed(tmp_path)
    sub = manual / "AllDICOMs" / "sub"
    if loop == "dot":
        link = sub / "again"
        link.symlink_to(".")
    elif loop == "dotdot":
        link = sub / "up"
        link.symlink_to("..")
    elif loop == "self":
        link = sub / "me"
        link.symlink_to("me")
    elif loop == "two_links":
        link = sub / "a"
        link.symlink_to("b")
        (sub / "b").symlink_to("a")
    else:
        link = sub / "home"
        link.symlink_to(manual)
    with within(10), pytest.raises(ManualDataError) as err:
        placed_fingerprint(manual)
    assert err.value.path in {str(link), str(link.with_name("b"))}
    assert "symbolic link" in err.value.reason and "loop" in err.value.reason


def test_placed_fingerprint_is_fast(tmp_path):
    manual = tmp_path / "manual"
    for d in range(100):
        folder = manual / f"d{d:03}"
        folder.mkdir(parents=True)
        for f in range(200):
            (folder / f"{f}.dcm").touch()
    started = time.perf_counter()
    placed_fingerprint(manual)
    assert time.perf_counter() - started < 2.0  # 20,000 files; generous for a loaded 2-core CI machine


LOGIN = b"\xef\xbb\xbf  \n<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>login</body></html>\n"
XHTML = b'<?xml version="1.0" encoding="utf-8"?>\n<!-- saved by a browser -->\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN">\n<html/>'


@pytest.mark.parametrize("name, page, what", [
    ("INbreast.csv", LOGIN, "the data file INbreast.csv"),
    ("MURA-v1.1.zip", LOGIN, "the archive MURA-v1.1.zip"),
    ("1_a_MG_L_CC_ANON.dcm", XHTML, "the data file 1_a_MG_L_CC_ANON.dcm"),
    ("images_001.tar.gz", b"<head><meta http-equiv='refresh'></head>", "the archive images_001.tar.gz"),
])
def test_html_page_placed_under_a_data_files_name_is_refused(tmp_path, name, page, what):
    manual = tmp_path / "manual"
    (manual / "AllDICOMs").mkdir(parents=True)
    (manual / "AllDICOMs" / "1.dcm").write_bytes(b"x")
    (manual / name).write_bytes(page)
    pins = {name: "0" * 64}  # the page is named before any checksum is compared
    with pytest.raises(ManualDataError) as err:
        prepare(_plan(manual, pins=pins), [], tmp_path / "root", Limits())
    assert err.value.path == str(manual / name)
    assert f"is an HTML page, not {what}" in err.value.reason and "login" in err.value.reason
    assert not (tmp_path / "root").exists()


def test_html_page_as_an_expected_file_inside_a_placed_folder_names_the_placed_path(tmp_path):
    manual = tmp_path / "manual"
    release = manual / "INbreast Release 1.0"
    (release / "AllDICOMs").mkdir(parents=True)
    (release / "AllDICOMs" / "1.dcm").write_bytes(b"x")
    (release / "AllXML").mkdir()
    (release / "AllXML" / "1.xml").write_bytes(b'<?xml version="1.0"?>\n<plist/>')  # XML is not HTML
    (release / "INbreast.csv").write_bytes(LOGIN)
    with pytest.raises(ManualDataError) as err:
        prepare(_plan(manual), [], tmp_path / "root", Limits())
    assert f"{release / 'INbreast.csv'}: is an HTML page, not the data file INbreast.csv" in err.value.reason
    assert ".staging" not in str(err.value) and not (tmp_path / "root").exists()


def test_html_page_inside_a_placed_archive_is_refused(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    with zipfile.ZipFile(manual / "INbreast.zip", "w") as zf:
        zf.writestr("INbreast Release 1.0/AllDICOMs/1.dcm", b"x")
        zf.writestr("INbreast Release 1.0/AllXML/1.xml", b"<plist/>")
        zf.writestr("INbreast Release 1.0/INbreast.csv", LOGIN)
    with pytest.raises(ManualDataError) as err:
        prepare(_plan(manual), [], tmp_path / "root", Limits())
    assert "INbreast/INbreast Release 1.0/INbreast.csv (unpacked or downloaded" in err.value.reason
    assert "is an HTML page" in err.value.reason and ".staging" not in str(err.value)
    assert not (tmp_path / "root").exists()


def test_placed_html_files_that_are_html_are_kept(tmp_path):
    manual = tmp_path / "manual"
    (manual / "AllDICOMs").mkdir(parents=True)
    (manual / "AllDICOMs" / "1.dcm").write_bytes(b"x")
    (manual / "AllXML").mkdir()
    (manual / "AllXML" / "1.xml").write_bytes(b"<plist/>")
    (manual / "INbreast.csv").write_text("a;b\n")
    (manual / "README.html").write_bytes(LOGIN)  # a publisher's own HTML page is not a login page
    prepare(_plan(manual), [], tmp_path / "root", Limits())
