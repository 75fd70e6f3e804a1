"""Kaggle competition files through Kaggle's public API, spoken directly over HTTP (no ``kaggle``
package: one GET with HTTP Basic auth needs none of its dependencies, and the download then gets
this package's resume, retry bounds, first-use records and credential masking).

Facts used (DATASETS.md 22c, from Kaggle/kaggle-api's client and docs and its issue threads):
``GET https://www.kaggle.com/api/v1/competitions/data/download-all/<competition>`` answers every
file of a competition as one zip (saved by the client as ``<competition>.zip``); legacy API keys
(``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, or ``kaggle.json``) are sent as HTTP Basic; 401 means bad
credentials; 403 with a JSON ``message`` about accepting the rules means the account has not
accepted the competition's rules, which only a person can do, in a browser.
"""

from __future__ import annotations

import requests

from medcurate import secrets as _secrets
from medcurate.errors import FetchError

from . import auth
from .core import fetch
from .files import settings_kwargs

API = "https://www.kaggle.com/api/v1"


def rules_url(competition: str) -> str:
    return f"https://www.kaggle.com/competitions/{competition}/rules"


def refusal(competition: str):
    """The 401/403 error of a Kaggle download, naming the rules page when that is the reason."""

    def refused(transfer, url: str, resp: requests.Response, cred) -> FetchError:
        try:
            message = str(resp.json().get("message", ""))
        except (ValueError, AttributeError):
            message = ""
        if resp.status_code == 403 and "rule" in message.lower():
            return FetchError(transfer.dest, f"{url} answered HTTP 403: Kaggle has no record that your account "
                                             f"accepted the rules of the competition '{competition}' ({message!r}). "
                                             f"Sign in to Kaggle as the account of your API token, visit "
                                             f"{rules_url(competition)} , accept the rules, then run the workflow "
                                             "again (the download resumes)")
        base = auth.failure(transfer.client.secrets, transfer.dest, url, resp.status_code, resp.reason, cred)
        extra = f" Kaggle says: {message!r}." if message else ""
        return FetchError(transfer.dest, f"{base.reason}.{extra} If the competition's rules are not accepted yet: "
                                         f"{rules_url(competition)}")

    return refused


def download_url(spec: dict) -> str:
    api = spec.get("api", API).rstrip("/")
    if spec.get("file"):
        return f"{api}/competitions/data/download/{spec['competition']}/{spec['file']}"
    return f"{api}/competitions/data/download-all/{spec['competition']}"


def fetch_competition(source: dict, dest, *, settings: dict, secrets: _secrets.Secrets | None = None) -> dict:
    spec = source["kaggle"]
    url = download_url(spec)
    plain = {k: v for k, v in source.items() if k not in ("kaggle", "subset")}
    record = fetch({**plain, "url": url}, dest, secrets=secrets, refused=refusal(spec["competition"]),
                   **settings_kwargs(settings))
    return record
