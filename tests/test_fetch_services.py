"""Source types beyond a URL (medcurate/fetch/{tcia,kits19,kaggle,physionet}.py) against real
HTTP services on 127.0.0.1 built from the sample mirror (loopback.Services): what is downloaded,
verified, laid out, resumed and refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from loopback import Services, git_blob
from medcurate import secrets as _secrets
from medcurate.errors import ChecksumError, FetchError
from medcurate.fetch import fetch_source
from medcurate.fetch.tcia import parse_manifest

MIRROR = ROOT / "workflow" / "sample-mirror"
CBIS = MIRROR / "cbis_ddsm" / "manual" / "CBIS-DDSM.zip"
KITS = MIRROR / "kits19" / "manual" / "kits19.zip"
COMMIT = "456b293435b25303bbc7995f094f83a0afdff0eb"
SETTINGS = {"timeout": 5, "retries": 2, "backoff": 0.01, "parallel": 3}
NONE = _secrets.Secrets()


@pytest.fixture
def services():
    s = Services()
    yield s
    s.shutdown()
    s.server_close()


@pytest.fixture
def tcia(services):
    services.load_tcia(CBIS, "CBIS-DDSM")
    return services


def tcia_source(services, **kw):
    return {"name": "CBIS-DDSM", "tcia": {"collection": "CBIS-DDSM", "api": services.url("/nbia/v4"), **kw}}


def image_requests(services):
    return services.paths("/nbia/v4/getImageWithMD5Hash")


def placed_files() -> dict[str, bytes]:
    """The sample mirror's placed NBIA folder: file name in series folder -> bytes, by SeriesInstanceUID."""
    import pydicom

    out = {}
    with zipfile.ZipFile(CBIS) as zf:
        for name in zf.namelist():
            if name.endswith(".dcm"):
                data = zf.read(name)
                ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
                out[f"{ds.PatientID}/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{name.rsplit('/', 1)[1]}"] = data
    return out


def tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- TCIA -----------------------------------------------------------------------------------------
def test_tcia_collection_is_fetched_series_by_series_checked_and_laid_out_like_nbia(tcia, tmp_path):
    dest = tmp_path / "CBIS-DDSM"
    record = fetch_source(tcia_source(tcia), dest, settings=SETTINGS, secrets=NONE)
    want = placed_files()
    assert tree_files(dest) == want  # <PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>, same bytes
    assert record["kind"] == "folder" and record["files"] == len(want) and record["items"] == len(tcia.series)
    assert record["checked"] == ["md5"] and record["checksum_source"] == "tcia-md5hashes"
    assert record["size"] == sum(map(len, want.values())) and "subset" not in record
    assert len(image_requests(tcia)) == len(tcia.series)
    # every series zip came chunked, without a Content-Length, and was judged by its own format
    assert not list((tmp_path / "CBIS-DDSM.store").glob("*.tmp"))


def test_tcia_rerun_fetches_only_missing_or_bad_series(tcia, tmp_path):
    dest = tmp_path / "CBIS-DDSM"
    first = fetch_source(tcia_source(tcia), dest, settings=SETTINGS, secrets=NONE)
    n, asked = len(image_requests(tcia)), len(tcia.requests)
    assert fetch_source(tcia_source(tcia), dest, settings=SETTINGS, secrets=NONE) == first
    assert len(tcia.requests) == asked  # nothing fetched again, not even the series list (it is kept)
    # one file of one series lost from the store: that series only is fetched again
    victim = next(iter(sorted(tcia.series)))
    stored = next((tmp_path / "CBIS-DDSM.store" / victim).rglob("*.dcm"))
    stored.write_bytes(b"short")
    assert fetch_source(tcia_source(tcia), dest, settings=SETTINGS, secrets=NONE) == first
    again = image_requests(tcia)[n:]
    assert len(again) == 1 and victim in again[0]


def test_tcia_md5_mismatch_names_the_series_and_file_and_keeps_the_others(tcia, tmp_path):
    dest = tmp_path / "CBIS-DDSM"
    bad = sorted(tcia.series)[1]
    tcia.corrupt.add(f"/nbia/v4/getImageWithMD5Hash?SeriesInstanceUID={bad}")
    with pytest.raises(ChecksumError) as exc:
        fetch_source(tcia_source(tcia), dest, settings=SETTINGS, secrets=NONE)
    msg = str(exc.value)
    assert f"1 of {len(tcia.series)} series of CBIS-DDSM could not be fetched" in msg
    assert bad in msg and "does not match: md5 expected" in msg and ".dcm" in msg
    assert not dest.exists()  # the folder appears only complete
    n = len(image_requests(tcia))
    fetch_source(tcia_source(tcia), dest, settings=SETTINGS, secrets=NONE)
    assert image_requests(tcia)[n:] == [f"/nbia/v4/getImageWithMD5Hash?SeriesInstanceUID={bad}"]
    assert tree_files(dest) == placed_files()


def test_tcia_transient_failures_are_retried_and_bounded(tcia, tmp_path):
    uid = sorted(tcia.series)[0]
    path = f"/nbia/v4/getImageWithMD5Hash?SeriesInstanceUID={uid}"
    tcia.fail[path] = [503, 502]
    fetch_source(tcia_source(tcia), tmp_path / "CBIS-DDSM", settings=SETTINGS, secrets=NONE)
    assert tcia.paths(path) == [path] * 3
    tcia.fail["/nbia/v4/getSeries?Collection=CBIS-DDSM"] = [503] * 9
    with pytest.raises(FetchError, match=r"getSeries\?Collection=CBIS-DDSM answered HTTP 503"):
        fetch_source(tcia_source(tcia), tmp_path / "other", settings=SETTINGS, secrets=NONE)


def test_tcia_unknown_collection_says_so(tcia, tmp_path):
    source = {"name": "X", "tcia": {"collection": "NO-SUCH", "api": tcia.url("/nbia/v4")}}
    with pytest.raises(FetchError, match="lists no series: is 'NO-SUCH' the collection's exact name"):
        fetch_source(source, tmp_path / "X", settings=SETTINGS, secrets=NONE)


def test_tcia_subset_counts_women_and_switches_without_downloading_twice(tcia, tmp_path):
    dest = tmp_path / "CBIS-DDSM"
    source = tcia_source(tcia, group="P_[0-9]{5}")
    pids = sorted(r["row"]["PatientID"] for r in tcia.series.values())
    women = list(dict.fromkeys(pid.split("_P_")[1][:5] for pid in pids))  # in PatientID order
    record = fetch_source({**source, "subset": 2}, dest, settings=SETTINGS, secrets=NONE)
    assert record["subset"] == {"first": 2, "of": len(women), "unit": "patients"}
    got = {p.split("/")[0] for p in tree_files(dest)}
    # every series of the first two women (their full images and ROI series), and nothing else
    assert got == {pid for pid in pids if pid.split("_P_")[1][:5] in women[:2]}
    assert any(pid.endswith("_1") for pid in got) and any(not pid.endswith("_1") for pid in got)
    n = len(image_requests(tcia))
    full = fetch_source(source, dest, settings=SETTINGS, secrets=NONE)
    assert "subset" not in full and tree_files(dest) == placed_files()
    assert len(image_requests(tcia)) == len(tcia.series)  # the subset's series were not fetched again
    assert record["sha256"] != full["sha256"]
    back = fetch_source({**source, "subset": 2}, dest, settings=SETTINGS, secrets=NONE)
    assert back == record and {p.split("/")[0] for p in tree_files(dest)} == got  # the view shrinks back
    assert len(image_requests(tcia)) == len(tcia.series) and n < len(tcia.series)


def test_tcia_token_from_the_secrets_is_sent_and_never_written(tcia, tmp_path, caplog):
    tcia.tcia_token = "tcia-secret-123"
    with pytest.raises(FetchError, match="answered HTTP 401"):
        fetch_source(tcia_source(tcia), tmp_path / "a", settings=SETTINGS, secrets=NONE)
    cred = _secrets.Credential("tcia", ("127.0.0.1",), "environment variable MEDCURATE_TCIA_TOKEN",
                               token="tcia-secret-123")
    with caplog.at_level(logging.INFO, logger="medcurate.fetch"):
        record = fetch_source(tcia_source(tcia), tmp_path / "b", settings=SETTINGS, secrets=_secrets.Secrets([cred]))
    assert record["files"] > 0
    assert all(h.get("Authorization") == "Bearer tcia-secret-123" for p, h in tcia.requests if "getImage" in p)
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.json"))
    assert "tcia-secret-123" not in written + caplog.text + json.dumps(record)


def test_tcia_manifest_limits_the_series(tcia, tmp_path, services):
    uids = sorted(tcia.series)[:2]
    manifest = ("downloadServerUrl=https://nbia.cancerimagingarchive.net/nbia-download/servlet/DownloadServlet\n"
                "includeAnnotation=true\nnoOfrRetry=4\ndatabasketId=manifest-1.tcia\nmanifestVersion=3.0\n"
                "ListOfSeriesToDownload=\n" + "\n".join(uids) + "\n")
    assert parse_manifest(manifest, "m") == uids
    (tmp_path / "m.tcia").write_text(manifest)
    record = fetch_source(tcia_source(tcia, manifest=(tmp_path / "m.tcia").as_uri()), tmp_path / "CBIS-DDSM",
                          settings=SETTINGS, secrets=NONE)
    assert record["items"] == 2 and {p.split("/")[2] for p in tree_files(tmp_path / "CBIS-DDSM")} == set(uids)
    with pytest.raises(FetchError, match="not a .tcia manifest"):
        parse_manifest("<html>login</html>", "m")


# -- KiTS19 ---------------------------------------------------------------------------------------
@pytest.fixture
def kits(services):
    services.load_kits(KITS, "neheller/kits19", COMMIT)
    return services


def kits_source(s):
    return {"name": "kits19", "kits19": {"repository": "neheller/kits19", "commit": COMMIT,
                                         "github_api": s.url("/github"), "raw": s.url("/raw"),
                                         "imaging": s.url("/hf/images/{case}.nii.gz"),
                                         "imaging_listing": s.url("/hf-api/images")}}


def test_kits19_without_git_checks_git_blob_ids_and_records_imaging_on_first_use(kits, tmp_path):
    kits.hf_lfs = False  # a listing without LFS sha256 (as for Xet-stored files)
    dest = tmp_path / "kits19"
    record = fetch_source(kits_source(kits), dest, settings=SETTINGS, secrets=NONE)
    with zipfile.ZipFile(KITS) as zf:
        want = {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    labelled = {p.split("/")[1] for p in want if p.endswith("segmentation.nii.gz")}
    assert labelled < set(kits.hf)  # the mirror has an unlabelled test case: nothing converts it
    want = {p: b for p, b in want.items() if p == "data/kits.json" or p.split("/")[1] in labelled}
    assert tree_files(dest) == want  # data/kits.json, data/case_XXXXX/{imaging,segmentation}.nii.gz
    assert record["items"] == 1 + len(labelled) and "git blob ids" in record["checksum_source"]
    assert not any(c not in labelled and c in p for p in kits.paths("/hf/") for c in kits.hf)
    stored = json.loads(next((tmp_path / "kits19.store").glob("case_00000.json")).read_text())
    seg = next(f for f in stored["files"] if f["path"].endswith("segmentation.nii.gz"))
    assert seg["git_blob"] == git_blob(want["data/case_00000/segmentation.nii.gz"])
    img = next(f for f in stored["files"] if f["path"].endswith("imaging.nii.gz"))
    assert img["checksum_source"] == "none (first use: size and sha256 recorded)"
    n = len(kits.requests)
    assert fetch_source(kits_source(kits), dest, settings=SETTINGS, secrets=NONE) == record
    assert len(kits.requests) == n  # a re-run needs no network at all (the tree listing is kept)


def test_kits19_imaging_is_pinned_by_the_hugging_face_listing_across_its_pages(kits, tmp_path):
    record = fetch_source(kits_source(kits), tmp_path / "kits19", settings=SETTINGS, secrets=NONE)
    assert "Hugging Face LFS sha256" in record["checksum_source"] and "sha256" in record["checked"]
    assert len(kits.paths("/hf-api/images")) == (len(kits.hf) + 1) // 2  # every page followed
    stored = json.loads(next((tmp_path / "kits19.store").glob("case_00000.json")).read_text())
    assert next(f for f in stored["files"] if "imaging" in f["path"])["checksum_source"] == "huggingface-lfs"
    # a served file that differs from the listing's sha256 (kept from the first run) is refused, naming it
    kits.hf["case_00001"] = gzip.compress(b"another volume", mtime=0)
    shutil.rmtree(tmp_path / "kits19.store" / "case_00001")
    with pytest.raises(ChecksumError, match="case_00001.*does not match: (sha256|md5|size)"):
        fetch_source(kits_source(kits), tmp_path / "kits19", settings=SETTINGS, secrets=NONE)


def test_kits19_listing_that_does_not_answer_is_asked_again_next_run(kits, tmp_path):
    """A listing that failed is not kept as an empty one: the next run asks again and pins."""
    listing = "/hf-api/images"
    kits.fail[listing] = [404]
    first = fetch_source(kits_source(kits), tmp_path / "kits19", settings=SETTINGS, secrets=NONE)
    assert "recorded on first use" in first["checksum_source"] and not (tmp_path / "kits19.store" / "imaging.json").exists()
    shutil.rmtree(tmp_path / "kits19.store" / "case_00000")  # so the next run fetches a case again
    asked = len(kits.paths(listing))
    second = fetch_source(kits_source(kits), tmp_path / "kits19", settings=SETTINGS, secrets=NONE)
    assert len(kits.paths(listing)) > asked and "Hugging Face LFS sha256" in second["checksum_source"]
    assert (tmp_path / "kits19.store" / "imaging.json").is_file()


def test_kits19_label_that_does_not_match_the_commit_is_refused(kits, tmp_path):
    kits.corrupt.add(f"/raw/neheller/kits19/{COMMIT}/data/case_00001/segmentation.nii.gz")
    with pytest.raises(ChecksumError) as exc:
        fetch_source(kits_source(kits), tmp_path / "kits19", settings=SETTINGS, secrets=NONE)
    assert "case_00001" in str(exc.value) and "git blob id expected" in str(exc.value)
    record = fetch_source(kits_source(kits), tmp_path / "kits19", settings=SETTINGS, secrets=NONE)
    assert record["files"] == 1 + 2 * sum(p.endswith("segmentation.nii.gz") for p in kits.tree)


def test_kits19_subset_takes_the_first_cases(kits, tmp_path):
    record = fetch_source({**kits_source(kits), "subset": 2}, tmp_path / "kits19", settings=SETTINGS, secrets=NONE)
    cases = {p.split("/")[1] for p in tree_files(tmp_path / "kits19") if p.count("/") == 2}
    assert cases == {"case_00000", "case_00001"} and record["subset"]["first"] == 2
    assert not any("case_00002" in p for p in kits.paths("/hf/"))


def test_kits19_wrong_commit_says_so(kits, tmp_path):
    source = kits_source(kits)
    source["kits19"]["commit"] = "0" * 40
    with pytest.raises(FetchError, match="answered HTTP 404"):
        fetch_source(source, tmp_path / "kits19", settings=SETTINGS, secrets=NONE)


# -- Kaggle ---------------------------------------------------------------------------------------
@pytest.fixture
def kaggle(services):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in ("train.zip", "train_masks.csv"):
            zf.write(MIRROR / "ultrasound_nerve" / "manual" / name, name)
    services.kaggle["ultrasound-nerve-segmentation"] = buf.getvalue()
    services.kaggle_user = ("alice", "kaggle-key-456")
    return services


def kaggle_source(s):
    return {"name": "ultrasound-nerve-segmentation.zip",
            "kaggle": {"competition": "ultrasound-nerve-segmentation", "api": s.url("/kaggle/api/v1")}}


KAGGLE_CRED = _secrets.Credential("kaggle", ("127.0.0.1",), "environment variables KAGGLE_USERNAME + KAGGLE_KEY",
                                  username="alice", password="kaggle-key-456")


def test_kaggle_download_with_the_token_follows_the_storage_redirect(kaggle, tmp_path, caplog):
    dest = tmp_path / "ultrasound-nerve-segmentation.zip"
    with caplog.at_level(logging.INFO, logger="medcurate.fetch"):
        record = fetch_source(kaggle_source(kaggle), dest, settings=SETTINGS, secrets=_secrets.Secrets([KAGGLE_CRED]))
    assert dest.read_bytes() == kaggle.kaggle["ultrasound-nerve-segmentation"]
    assert record["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert "kaggle-key-456" not in caplog.text + dest.with_name(dest.name + ".verified.json").read_text()


def test_kaggle_rules_not_accepted_names_the_rules_page(kaggle, tmp_path):
    kaggle.rules_accepted = False
    with pytest.raises(FetchError) as exc:
        fetch_source(kaggle_source(kaggle), tmp_path / "u.zip", settings=SETTINGS, secrets=_secrets.Secrets([KAGGLE_CRED]))
    msg = str(exc.value)
    assert "https://www.kaggle.com/competitions/ultrasound-nerve-segmentation/rules" in msg
    assert "accept" in msg and "kaggle-key-456" not in msg


def test_kaggle_wrong_key_says_the_token_was_rejected(kaggle, tmp_path):
    wrong = _secrets.Credential("kaggle", ("127.0.0.1",), "secrets file s.yaml", username="alice", password="nope")
    with pytest.raises(FetchError, match="token rejected .*HTTP 401.* the kaggle credentials from secrets file"):
        fetch_source(kaggle_source(kaggle), tmp_path / "u.zip", settings=SETTINGS, secrets=_secrets.Secrets([wrong]))


# -- PhysioNet ------------------------------------------------------------------------------------
def jpg(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), seed).save(buf, "JPEG")
    return buf.getvalue()


PROJECT = {
    "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg": jpg(1),
    "files/p10/p10000032/s53189527/2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab.jpg": jpg(2),
    "files/p10/p10000764/s57375967/096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4.jpg": jpg(3),
    "files/p11/p11000011/s51029426/b0d1a2ae-6e8a1f3c-c2b10aa1-a4f3ad59-dd5d0a3f.jpg": jpg(4),
    "mimic-cxr-2.0.0-metadata.csv.gz": gzip.compress(b"dicom_id,subject_id\n", mtime=0),
    "LICENSE.txt": b"PhysioNet Credentialed Health Data License 1.5.0\n",
}


@pytest.fixture
def physionet(services):
    services.add_physionet("mimic-cxr-jpg", "2.1.0", PROJECT)
    services.physionet_user = ("alice", "physio-pass-789")
    return services


PHYSIO_CRED = _secrets.Credential("physionet", ("127.0.0.1",), "secrets file s.yaml", username="alice",
                                  password="physio-pass-789")


def physio_source(s, **kw):
    return {"name": "2.1.0", "physionet": {"project": "mimic-cxr-jpg", "version": "2.1.0",
                                           "base": s.url("/physionet/files")}, **kw}


def test_physionet_project_is_checked_against_sha256sums_and_laid_out_as_released(physionet, tmp_path, caplog):
    dest = tmp_path / "2.1.0"
    with caplog.at_level(logging.INFO, logger="medcurate.fetch"):
        record = fetch_source(physio_source(physionet), dest, settings=SETTINGS, secrets=_secrets.Secrets([PHYSIO_CRED]))
    assert tree_files(dest) == PROJECT and record["checked"] == ["sha256"] and record["items"] == 4  # root + 3 subjects
    assert "physio-pass-789" not in caplog.text and "cGh5c2lv" not in caplog.text
    n = len(physionet.requests)
    fetch_source(physio_source(physionet), dest, settings=SETTINGS, secrets=_secrets.Secrets([PHYSIO_CRED]))
    assert len(physionet.requests) == n


def test_physionet_without_credentials_says_how_to_give_them(physionet, tmp_path):
    with pytest.raises(FetchError) as exc:
        fetch_source(physio_source(physionet), tmp_path / "2.1.0", settings=SETTINGS, secrets=NONE)
    assert "SHA256SUMS.txt answered HTTP 401" in str(exc.value)


def test_physionet_damaged_file_is_refused_then_fetched_again(physionet, tmp_path):
    bad = "files/p10/p10000764/s57375967/096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4.jpg"
    physionet.corrupt.add(f"/physionet/files/mimic-cxr-jpg/2.1.0/{bad}")
    secrets = _secrets.Secrets([PHYSIO_CRED])
    with pytest.raises(ChecksumError, match="files/p10/p10000764: .*does not match: sha256 expected"):
        fetch_source(physio_source(physionet), tmp_path / "2.1.0", settings=SETTINGS, secrets=secrets)
    fetch_source(physio_source(physionet), tmp_path / "2.1.0", settings=SETTINGS, secrets=secrets)
    assert tree_files(tmp_path / "2.1.0") == PROJECT


def test_physionet_subset_takes_the_first_subject_folders(physionet, tmp_path):
    record = fetch_source(physio_source(physionet, subset=1), tmp_path / "2.1.0", settings=SETTINGS,
                          secrets=_secrets.Secrets([PHYSIO_CRED]))
    got = tree_files(tmp_path / "2.1.0")
    assert {p for p in got if p.startswith("files/")} == {p for p in PROJECT if p.startswith("files/p10/p10000032/")}
    assert "mimic-cxr-2.0.0-metadata.csv.gz" in got
    assert record["subset"] == {"first": 1, "of": 3, "unit": "subjects"}


def test_tcia_series_in_flight_are_capped(tcia, tmp_path):
    tcia.delay = 0.2
    fetch_source(tcia_source(tcia), tmp_path / "a", settings={**SETTINGS, "parallel": 2}, secrets=NONE)
    assert tcia.max_active == 2  # parallel, and never more than asked
    tcia.max_active = 0
    fetch_source(tcia_source(tcia), tmp_path / "b", settings={**SETTINGS, "parallel": 50}, secrets=NONE)
    assert 2 < tcia.max_active <= 8  # MAX_PARALLEL, whatever the setting
