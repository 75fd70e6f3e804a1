"""Zenodo's record API as a checksum source: ``lookup`` asks it once, ``digests_from_record`` reads
a file's md5 and size from the answer, ``merge`` combines them with pinned values. The look-up
returns values; it changes nothing (the caller decides what the expected digests become)."""

from __future__ import annotations

from pathlib import Path

import requests

from medcurate.errors import ChecksumError, FetchError

from . import auth
from .transfer import Client


def record_url(api: str, record: int) -> str:
    return f"{api.rstrip('/')}/records/{record}"


def digests_from_record(payload, name: str, record: int) -> tuple[dict | None, str | None]:
    """({'md5', 'size'?}, None) for file ``name`` of a record's JSON, or (None, why not)."""
    try:
        files = payload.get("files") or []
        if isinstance(files, dict):  # InvenioRDM-style {"entries": {key: {...}}}
            files = list((files.get("entries") or {}).values())
        entry = next((f for f in files if (f.get("key") or f.get("filename")) == name), None)
    except AttributeError as e:
        return None, f"unexpected record layout ({e})"
    if entry is None:
        return None, f"{name} is not listed in Zenodo record {record}"
    algo, _, md5 = str(entry.get("checksum") or "").lower().rpartition(":")
    if not md5 or algo not in ("", "md5"):
        return None, f"Zenodo record {record} gives no md5 for {name}"
    out = {"md5": md5}
    if (size := entry.get("size", entry.get("filesize"))) is not None:
        out["size"] = int(size)
    return out, None


def lookup(client: Client, dest: Path, api: str, record: int, name: str) -> tuple[dict | None, str | None]:
    """Ask the records API; (digests, None) or (None, why the API could not say). A credential
    that is refused is an error, not a missing checksum."""
    url = record_url(api, record)
    try:
        resp, cred = client.request(dest, url, {"Accept": "application/json"})
        with resp:
            if resp.status_code in (401, 403) and cred is not None:
                raise auth.failure(client.secrets, dest, url, resp.status_code, resp.reason, cred)
            resp.raise_for_status()
            payload = resp.json()
    except FetchError as e:
        if "token rejected" in e.reason:
            raise
        return None, f"Zenodo API {url} unusable ({e.reason})"
    except (requests.RequestException, ValueError) as e:
        return None, f"Zenodo API {url} unusable ({e})"
    found, problem = digests_from_record(payload, name, record)
    return found, (f"Zenodo API {url} unusable ({problem})" if problem and problem.startswith("unexpected") else problem)


def merge(expected: dict, api: dict, *, name: str, record: int, dest: Path) -> dict:
    """Expected digests with the API's added; a pinned value the API contradicts is an error."""
    for key, value in api.items():
        if key in expected and expected[key] != value:
            raise ChecksumError(dest, f"{name}: pinned {key} {expected[key]} disagrees with Zenodo record "
                                      f"{record} ({value})")
    return {**expected, **api}
