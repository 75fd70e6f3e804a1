"""TCIA collections through the NBIA REST API (anonymous for public collections; a token from the
secrets mechanism is sent when one is configured for the host).

Facts used (DATASETS.md 22a, from tcia_utils, MONAI's tcia utilities and the NBIA servlet code):
``getSeries?Collection=<name>`` answers a JSON list of series objects (SeriesInstanceUID,
StudyInstanceUID, PatientID, ...; an empty body means none; this endpoint is not paged);
``getImageWithMD5Hash?SeriesInstanceUID=<uid>`` answers one zip per series holding its DICOM files
(flat names) plus ``md5hashes.csv`` (header ``Filename,MD5Hash``; one row per file); a zip may hold
a LICENSE file. A publisher's ``.tcia`` manifest (NBIA Data Retriever input) lists one
SeriesInstanceUID per line after ``ListOfSeriesToDownload=``.

Layout, as the NBIA Data Retriever's classic naming and other NBIA clients place a series:
``<dest>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>`` (the dest folder is named
after the source, e.g. CBIS-DDSM, as the retriever's collection folder).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import shutil
import urllib.parse
import zipfile
from pathlib import Path

from medcurate import secrets as _secrets
from medcurate.errors import ChecksumError, FetchError

from . import auth
from . import files as _files
from .transfer import Client
from .tree import Item, Store, fetch_items, safe_relpath, tree_record

log = logging.getLogger("medcurate.fetch")

API = "https://nbia.cancerimagingarchive.net/nbia-api/services/v4"
HASHES = "md5hashes.csv"


def parse_manifest(text: str, where: str) -> list[str]:
    """SeriesInstanceUIDs of a .tcia manifest (the lines after ListOfSeriesToDownload=)."""
    lines = [line.strip() for line in text.splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("ListOfSeriesToDownload="))
    except StopIteration:
        raise FetchError(where, "not a .tcia manifest: no 'ListOfSeriesToDownload=' line") from None
    uids = [line for line in lines[start + 1:] if line and "=" not in line]
    bad = [u for u in uids if not re.fullmatch(r"[0-9.]+", u)]
    if bad:
        raise FetchError(where, f"not a .tcia manifest: {bad[0]!r} is not a SeriesInstanceUID")
    return list(dict.fromkeys(uids))


def parse_hashes(data: bytes, where: str) -> dict[str, str]:
    """md5hashes.csv -> {file name: md5}."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ChecksumError(where, f"{HASHES} is unreadable ({e})") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["filename", "md5hash"]:
        raise ChecksumError(where, f"{HASHES} has no 'Filename,MD5Hash' header")
    out = {}
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) < 2 or not re.fullmatch(r"[0-9a-fA-F]{32}", row[1].strip()):
            raise ChecksumError(where, f"{HASHES} line {n}: expected a file name and an md5")
        out[row[0].strip()] = row[1].strip().lower()
    return out


def series_list(client: Client, dest: Path, api: str, collection: str) -> list[dict]:
    url = f"{api}/getSeries?{urllib.parse.urlencode({'Collection': collection})}"
    resp, cred = client.request(dest, url, {"Accept": "application/json"})
    with resp:
        if resp.status_code in (401, 403):
            raise auth.failure(client.secrets, dest, url, resp.status_code, resp.reason, cred)
        if resp.status_code != 200:
            raise FetchError(dest, f"{url} answered HTTP {resp.status_code} {resp.reason}")
        if not resp.content.strip():  # NBIA's answer when nothing matches
            raise FetchError(dest, f"{url} lists no series: is {collection!r} the collection's exact name?")
        try:
            rows = resp.json()
        except ValueError:
            raise FetchError(dest, f"{url} did not answer JSON (starts {resp.text[:80]!r})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and r.get("SeriesInstanceUID") for r in rows):
        raise FetchError(dest, f"{url}: expected a JSON list of series with SeriesInstanceUID")
    return rows


def select(rows: list[dict], group: str | None, subset: int | None) -> tuple[list[dict], int]:
    """Series to fetch, in a stable order (PatientID, SeriesInstanceUID), limited to the first
    ``subset`` subjects (the PatientID, or the part of it that ``group`` matches, e.g. P_00001
    for CBIS-DDSM, whose image and ROI series carry different PatientIDs); and the subject count."""
    rows = sorted(rows, key=lambda r: (str(r.get("PatientID", "")), r["SeriesInstanceUID"]))

    def subject(r: dict) -> str:
        pid = str(r.get("PatientID", ""))
        m = re.search(group, pid) if group else None
        return m.group(0) if m else pid

    subjects = list(dict.fromkeys(subject(r) for r in rows))
    if subset is None:
        return rows, len(subjects)
    keep = set(subjects[:subset])
    return [r for r in rows if subject(r) in keep], len(subjects)


def _folder_part(value, what: str, where: str) -> str:
    text = str(value or "").strip()
    if not text or "/" in text or "\\" in text or text in (".", ".."):
        raise FetchError(where, f"the series list gives an unusable {what} {value!r}")
    return text


def fetch_series(row: dict, stage: Path, store: Store, api: str, *, settings: dict, secrets,
                 session) -> tuple[list[dict], dict]:
    """One series: its zip (with md5hashes.csv) downloaded, every file's md5 checked while it is
    extracted into the staging folder."""
    uid = row["SeriesInstanceUID"]
    where = str(store.dest)
    folder = "/".join(_folder_part(row.get(k), k, where) for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID"))
    url = f"{api}/getImageWithMD5Hash?{urllib.parse.urlencode({'SeriesInstanceUID': uid})}"
    archive, _ = _files.get(url, f"{uid}.zip", stage.parent / f"{stage.name}.zip.d", store, settings=settings,
                            secrets=secrets, session=session, name=f"{uid}.zip")
    out = []
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [i for i in zf.infolist() if not i.is_dir()]
            hashes = parse_hashes(zf.read(HASHES), url) if HASHES in zf.namelist() else None
            if hashes is None:
                log.warning("%s: the zip has no %s; its files' sizes are recorded, their md5 cannot be checked",
                            url, HASHES)
            members = [i for i in names if i.filename != HASHES]
            for info in members:
                rel = safe_relpath(info.filename, url)
                md5, sha256 = hashlib.md5(), hashlib.sha256()
                target = stage / folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    while block := src.read(1 << 20):
                        md5.update(block)
                        sha256.update(block)
                        dst.write(block)
                is_license = "license" in rel.name.lower()
                if hashes is not None and not is_license:
                    want = hashes.get(info.filename)
                    if want is None:
                        raise ChecksumError(where, f"{url}: {info.filename} is not listed in {HASHES}")
                    if want != md5.hexdigest():
                        raise ChecksumError(where, f"{url}: {info.filename} does not match: md5 expected {want}, "
                                                   f"got {md5.hexdigest()}")
                out.append({"path": f"{folder}/{rel}", "size": info.file_size, "md5": md5.hexdigest(),
                            "sha256": sha256.hexdigest()})
            if hashes is not None:
                absent = sorted(set(hashes) - {i.filename for i in members})
                if absent:
                    raise ChecksumError(where, f"{url}: {HASHES} lists {len(absent)} file(s) the zip lacks "
                                               f"(e.g. {absent[0]})")
    except zipfile.BadZipFile as e:
        raise FetchError(where, f"{url}: the series zip is unreadable ({e})") from None
    finally:  # the zip goes, checked or not: a bad one is downloaded again by the next run
        shutil.rmtree(archive.parent, ignore_errors=True)
    if not out:
        raise FetchError(where, f"{url}: the series zip holds no files")
    return out, {"series": uid, "patient": row.get("PatientID"), "checked": ["md5"] if hashes is not None else ["size"]}


def fetch_collection(source: dict, dest: Path, *, settings: dict, secrets: _secrets.Secrets | None = None) -> dict:
    spec = source["tcia"]
    secrets = _secrets.load() if secrets is None else secrets
    api = spec.get("api", API).rstrip("/")
    store = Store(dest)
    store.root.mkdir(parents=True, exist_ok=True)

    def collection_list():
        manifest = None
        if spec.get("manifest"):
            path, _ = _files.get(spec["manifest"], "manifest.tcia", store.root / "manifest.d", store,
                                 settings=settings, secrets=secrets, expect="file")
            manifest = parse_manifest(path.read_text(encoding="utf-8", errors="replace"), spec["manifest"])
        with _files.api_client(settings, secrets) as client:
            rows = series_list(client, dest, api, spec["collection"])
        if manifest is None:
            return rows
        by_uid = {r["SeriesInstanceUID"]: r for r in rows}  # only the manifest's series, with the list's facts
        missing = [u for u in manifest if u not in by_uid]
        if missing:
            raise FetchError(dest, f"{len(missing)} series of {spec['manifest']} are not in "
                                   f"{spec['collection']}'s series list (e.g. {missing[0]})")
        return [by_uid[u] for u in manifest]

    key = {"api": api, "collection": spec["collection"], "manifest": spec.get("manifest")}
    cached = _files.cached_listing(store.root / "series.json", key, collection_list)
    rows, subjects = select(cached, spec.get("group"), source.get("subset"))
    items = [Item(r["SeriesInstanceUID"], r) for r in rows]
    local = _files.thread_sessions()

    def one(item: Item, stage: Path):
        return fetch_series(item.info, stage, store, api, settings=settings, secrets=secrets, session=local())

    records = fetch_items(dest, source["name"], items, one, settings.get("parallel", 4), "series")
    checked = sorted({c for r in records for c in r.get("checked", [])})
    return tree_record(source["name"], f"{api}/getSeries?Collection={spec['collection']}", records,
                       checksum_source="tcia-md5hashes" if checked == ["md5"] else "tcia (md5 where given)",
                       checked=checked, unit="series", subset=_files.subset_fact(source, subjects, "patients"))

