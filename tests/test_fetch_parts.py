"""The pure parts of fetch (issue 13 item 4): checksum look-ups that return values and change
nothing, and the parsers of each service's listings, on real and malformed inputs."""

from __future__ import annotations

import copy
import subprocess

import pytest
from medcurate.errors import ChecksumError, FetchError
from medcurate.fetch import files, kits19, physionet, tcia, tree, zenodo

RECORD = {"files": [{"key": "a.zip", "size": 10, "checksum": "md5:" + "a" * 32},
                    {"key": "b.zip", "size": 5, "checksum": "sha256:" + "b" * 64}]}


def test_zenodo_record_to_digests_is_pure():
    before = copy.deepcopy(RECORD)
    assert zenodo.digests_from_record(RECORD, "a.zip", 1) == ({"md5": "a" * 32, "size": 10}, None)
    assert zenodo.digests_from_record(RECORD, "b.zip", 1) == (None, "Zenodo record 1 gives no md5 for b.zip")
    assert zenodo.digests_from_record(RECORD, "c.zip", 1) == (None, "c.zip is not listed in Zenodo record 1")
    rdm = {"files": {"entries": {"a.zip": {"key": "a.zip", "checksum": "md5:" + "c" * 32}}}}  # InvenioRDM
    assert zenodo.digests_from_record(rdm, "a.zip", 1) == ({"md5": "c" * 32}, None)
    assert zenodo.digests_from_record([], "a.zip", 1)[1].startswith("unexpected record layout")
    assert RECORD == before


def test_zenodo_merge_returns_a_new_dict_and_refuses_a_contradiction(tmp_path):
    pinned = {"size": 10}
    merged = zenodo.merge(pinned, {"md5": "a" * 32, "size": 10}, name="a.zip", record=1, dest=tmp_path)
    assert merged == {"size": 10, "md5": "a" * 32} and pinned == {"size": 10}
    with pytest.raises(ChecksumError, match="pinned size 9 disagrees with Zenodo record 1 \\(10\\)"):
        zenodo.merge({"size": 9}, {"size": 10}, name="a.zip", record=1, dest=tmp_path)


def test_md5hashes_csv_and_manifest_parsers_name_the_problem():
    assert tcia.parse_hashes(b"Filename,MD5Hash\r\n1-1.dcm," + b"A" * 32 + b"\r\n", "u") == {"1-1.dcm": "a" * 32}
    with pytest.raises(ChecksumError, match="no 'Filename,MD5Hash' header"):
        tcia.parse_hashes(b"name,hash\n", "u")
    with pytest.raises(ChecksumError, match="line 2: expected a file name and an md5"):
        tcia.parse_hashes(b"Filename,MD5Hash\n1-1.dcm,xyz\n", "u")


def test_series_selection_by_subject():
    rows = [{"SeriesInstanceUID": f"1.{i}", "PatientID": pid} for i, pid in enumerate(
        ["Mass-Training_P_00002_LEFT_CC_1", "Calc-Test_P_00009_LEFT_CC", "Mass-Training_P_00002_LEFT_CC",
         "Calc-Test_P_00009_LEFT_CC_1", "Mass-Test_P_00001_RIGHT_MLO"])]
    chosen, n = tcia.select(rows, "P_[0-9]{5}", 1)
    assert n == 3 and {r["PatientID"] for r in chosen} == {"Calc-Test_P_00009_LEFT_CC", "Calc-Test_P_00009_LEFT_CC_1"}
    assert len(tcia.select(rows, None, 2)[0]) == 2 and tcia.select(rows, None, None)[1] == 5


def test_sha256sums_parser():
    h = "0" * 64
    sums = physionet.parse_sums(f"{h}  files/p10/p10000032/s1/a.jpg\n{h} *LICENSE.txt\n\n", "u")
    assert sums == {"files/p10/p10000032/s1/a.jpg": h, "LICENSE.txt": h}
    assert physionet.item_key("files/p10/p10000032/s1/a.jpg") == "files/p10/p10000032"
    assert physionet.item_key("LICENSE.txt") == physionet.ROOT_ITEM
    with pytest.raises(FetchError, match="line 1 is not"):
        physionet.parse_sums("<html>login</html>\n", "u")
    with pytest.raises(FetchError, match="unsafe file path"):
        physionet.parse_sums(f"{h}  ../etc/passwd\n", "u")


def test_git_tree_and_lfs_listing_parsers():
    tree_json = {"tree": [{"path": "data/kits.json", "type": "blob", "sha": "AB" * 20, "size": 3},
                          {"path": "data", "type": "tree", "sha": "0" * 40}], "truncated": False}
    assert kits19.blobs_from_tree(tree_json, "u") == {"data/kits.json": {"sha": "ab" * 20, "size": 3}}
    with pytest.raises(FetchError, match="truncated"):
        kits19.blobs_from_tree({**tree_json, "truncated": True}, "u")
    listing = [{"type": "file", "path": "images/case_00003.nii.gz", "size": 7,
                "lfs": {"oid": "c" * 64, "size": 7, "pointerSize": 134}},
               {"type": "file", "path": "images/case_00004.nii.gz", "size": 8, "xetHash": "d" * 64}]
    assert kits19.lfs_pins(listing, "u") == {"case_00003": {"sha256": "c" * 64, "size": 7}}


def test_git_blob_id_is_gits_own(tmp_path):
    path = tmp_path / "segmentation.nii.gz"
    path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 3)
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert files.git_blob_sha1(path) == git


def test_tree_digest_and_unsafe_paths():
    a = [{"path": "x/1.dcm", "size": 1, "md5": "a"}, {"path": "y/2.dcm", "size": 2, "md5": "b"}]
    assert tree.tree_digest(a) == tree.tree_digest(list(reversed(a))) != tree.tree_digest(a[:1])
    for bad in ("/abs", "a/../b", "", "..", "a\\b"):
        with pytest.raises(FetchError, match="unsafe file path"):
            tree.safe_relpath(bad, "w")
