"""KiTS19 without git: each labelled case's imaging from its per-case URL (Hugging Face, as the
repository's starter_code/get_imaging.py downloads it) and its segmentation, with data/kits.json,
from the repository's files at the pinned commit.

Facts used (DATASETS.md 11c and 22b): imaging at
``https://huggingface.co/datasets/neheller/KiTS-Challenge-Imaging/resolve/main/images/case_XXXXX.nii.gz``
(get_imaging.py at neheller/kits19@456b2934 saves it as data/case_XXXXX/imaging.nii.gz). The
repository publishes no checksum file, but the Hugging Face file listing
(``/api/datasets/<repo>/tree/<revision>/<folder>``, paged by a ``Link: <...>; rel="next"`` header)
gives, for a file stored with git LFS, ``lfs: {oid, size}`` where the oid is the content's sha256
(huggingface.js ListFileEntry); those are pinned when present. A file without it (stored with
Xet, or the listing unusable) is recorded on first use (size, sha256), and a later download that
differs is reported. Segmentations and kits.json are plain git blobs: the commit's
tree (GitHub's ``GET /repos/<owner>/<repo>/git/trees/<commit>?recursive=1``: path, type, sha,
size per entry; 'truncated' when incomplete) names each file's blob id, which the downloaded
bytes must give (sha1 of 'blob <size>\\0' + content) -- the publisher's own checksum, pinned by
the commit. Raw files at a commit: ``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``.
Cases without a segmentation (the 90 test cases) are not downloaded: nothing converts them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from medcurate import secrets as _secrets
from medcurate.errors import ChecksumError, FetchError

from . import files as _files
from .tree import Item, Store, fetch_items, tree_record

log = logging.getLogger("medcurate.fetch")

GITHUB_API = "https://api.github.com"
RAW = "https://raw.githubusercontent.com"
IMAGING = "https://huggingface.co/datasets/neheller/KiTS-Challenge-Imaging/resolve/main/images/{case}.nii.gz"
IMAGING_LISTING = "https://huggingface.co/api/datasets/neheller/KiTS-Challenge-Imaging/tree/main/images"
_CASE_FILE = re.compile(r"(?:.*/)?(case_\d{5})\.nii\.gz")
_SEGMENTATION = re.compile(r"data/(case_\d{5})/segmentation\.nii\.gz")


def blobs_from_tree(payload, where: str) -> dict[str, dict]:
    """path -> {sha, size} of a commit's tree answer (every blob)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("tree"), list):
        raise FetchError(where, "not a git tree listing (no 'tree' list)")
    if payload.get("truncated"):
        raise FetchError(where, "the tree listing is truncated: not every file is named")
    out = {}
    for e in payload["tree"]:
        if isinstance(e, dict) and e.get("type") == "blob" and isinstance(e.get("path"), str):
            out[e["path"]] = {"sha": str(e.get("sha", "")).lower(), "size": e.get("size")}
    return out


def lfs_pins(entries, where: str) -> dict[str, dict]:
    """case -> {sha256, size} from one page of a Hugging Face file listing (files stored with LFS)."""
    if not isinstance(entries, list):
        raise FetchError(where, "not a Hugging Face file listing (expected a JSON list)")
    out = {}
    for e in entries:
        lfs = e.get("lfs") if isinstance(e, dict) else None
        m = _CASE_FILE.fullmatch(str(e.get("path", ""))) if isinstance(e, dict) else None
        if m and isinstance(lfs, dict) and re.fullmatch(r"[0-9a-f]{64}", str(lfs.get("oid", ""))):
            out[m[1]] = {"sha256": lfs["oid"], "size": int(lfs.get("size", e.get("size")))}
    return out


def imaging_pins(client, dest: Path, url: str) -> dict[str, dict] | None:
    """Every page of the listing; None (and a warning) when the listing cannot be used."""
    pins, page, pages = {}, url, 0
    try:
        while page and pages < 1000:
            resp, _ = client.request(dest, page, {"Accept": "application/json"})
            with resp:
                if resp.status_code != 200:
                    raise FetchError(dest, f"{page} answered HTTP {resp.status_code} {resp.reason}")
                try:
                    pins.update(lfs_pins(resp.json(), page))
                except ValueError:
                    raise FetchError(dest, f"{page} did not answer JSON") from None
                page, pages = resp.links.get("next", {}).get("url"), pages + 1
    except FetchError as e:
        log.warning("%s; the imaging is recorded on first use instead", e.reason)
        return None
    return pins


def _get_blob(url: str, rel: str, blob: dict, stage: Path, store: Store, **kw) -> dict:
    path, record = _files.get(url, rel, stage, store, expected={"size": int(blob["size"])}, **kw)
    actual = _files.git_blob_sha1(path)
    if actual != blob["sha"]:
        path.unlink(missing_ok=True)
        raise ChecksumError(str(store.dest), f"{url} does not match: git blob id expected {blob['sha']} (the "
                                             f"pinned commit's tree), got {actual}")
    return _files.file_entry(rel, record, git_blob=actual)


def fetch_kits19(source: dict, dest: Path, *, settings: dict, secrets: _secrets.Secrets | None = None) -> dict:
    spec = source["kits19"]
    secrets = _secrets.load() if secrets is None else secrets
    repo, commit = spec["repository"], spec["commit"]
    raw = spec.get("raw", RAW).rstrip("/")
    imaging = spec.get("imaging", IMAGING)
    tree_url = f"{spec.get('github_api', GITHUB_API).rstrip('/')}/repos/{repo}/git/trees/{commit}?recursive=1"
    store = Store(dest)
    store.root.mkdir(parents=True, exist_ok=True)

    def tree():
        with _files.api_client(settings, secrets) as client:
            resp, _ = client.request(dest, tree_url, {"Accept": "application/vnd.github+json"})
            with resp:
                if resp.status_code != 200:
                    raise FetchError(dest, f"{tree_url} answered HTTP {resp.status_code} {resp.reason}")
                try:
                    payload = resp.json()
                except ValueError:
                    raise FetchError(dest, f"{tree_url} did not answer JSON") from None
        found = blobs_from_tree(payload, tree_url)
        return [{"path": p, **v} for p, v in sorted(found.items()) if p == "data/kits.json" or _SEGMENTATION.fullmatch(p)]

    blobs = _files.cached_listing(store.root / "series.json", {"tree": tree_url}, tree)
    by_path = {b["path"]: b for b in blobs}
    if "data/kits.json" not in by_path:
        raise FetchError(dest, f"{tree_url} has no data/kits.json: is {commit} a commit of {repo}?")
    cases = sorted(m[1] for p in by_path if (m := _SEGMENTATION.fullmatch(p)))
    if not cases:
        raise FetchError(dest, f"{tree_url} lists no data/case_XXXXX/segmentation.nii.gz")
    # the imaging's sha256 and size where the Hugging Face listing states them
    listing_url = spec.get("imaging_listing", IMAGING_LISTING)

    def imaging_listing():  # None (asked again next run) when the listing does not answer
        with _files.api_client(settings, secrets) as client:
            found = imaging_pins(client, dest, listing_url)
        return None if found is None else [{"case": c, **v} for c, v in sorted(found.items())]

    saved = _files.cached_listing(store.root / "imaging.json", {"listing": listing_url}, imaging_listing)
    pins = {p["case"]: {"sha256": p["sha256"], "size": p["size"]} for p in saved or []}
    subset = source.get("subset")
    chosen = cases[:subset] if subset is not None else cases
    items = [Item("kits.json", {"meta": True})] + [Item(c) for c in chosen]
    local = _files.thread_sessions()

    def one(item: Item, stage: Path):
        kw = {"settings": settings, "secrets": secrets, "session": local()}
        if item.info.get("meta"):
            rel = "data/kits.json"
            return [_get_blob(f"{raw}/{repo}/{commit}/{rel}", rel, by_path[rel], stage, store, expect="file",
                              **kw)], {"checked": ["git-blob"]}
        seg = f"data/{item.key}/segmentation.nii.gz"
        out = [_get_blob(f"{raw}/{repo}/{commit}/{seg}", seg, by_path[seg], stage, store, **kw)]
        img = f"data/{item.key}/imaging.nii.gz"
        url = imaging.format(case=item.key)
        pin = pins.get(item.key)
        _, record = _files.get(url, img, stage, store, expected=pin, **kw)
        origin = "huggingface-lfs" if pin else record["checksum_source"]
        out.append(_files.file_entry(img, record, checksum_source=origin))
        return out, {"checked": ["git-blob", "sha256" if pin else "first-use"]}

    records = fetch_items(dest, source["name"], items, one, settings.get("parallel", 4), "case")
    return tree_record(source["name"], f"https://github.com/{repo}/tree/{commit}", records,
                       checksum_source="git blob ids of the pinned commit (segmentations, kits.json); imaging: "
                                       + ("Hugging Face LFS sha256" if pins else "recorded on first use"),
                       checked=["git-blob", "size"] + (["sha256"] if pins else []), unit="case",
                       subset=_files.subset_fact(source, len(cases), "cases"))
