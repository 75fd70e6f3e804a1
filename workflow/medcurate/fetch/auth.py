"""Credentials (medcurate/secrets.py) on the wire and out of every text: the Authorization header
for a URL's host, the error a 401/403 deserves, and a log filter that masks them."""

from __future__ import annotations

import logging
from pathlib import Path

from medcurate import secrets as _secrets
from medcurate.errors import FetchError


class Redact(logging.Filter):
    """Masks credentials in the log records of a logger (messages are formatted first)."""

    def __init__(self, secrets: _secrets.Secrets):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.secrets.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def add_header(secrets: _secrets.Secrets, url: str, headers: dict) -> _secrets.Credential | None:
    """Add the Authorization header for ``url``'s host, if a credential is configured for it."""
    cred = secrets.for_url(url)
    if cred is not None:
        headers["Authorization"] = cred.header()
    return cred


def failure(secrets: _secrets.Secrets, dest: Path, url: str, status: int, reason: str, cred) -> FetchError:
    """401/403: say whether our credential was refused or one is needed, never showing it."""
    if cred is not None:
        return FetchError(dest, f"{url}: token rejected (HTTP {status} {reason}): the {cred.service} "
                                f"credentials from {cred.origin} were refused; check that they are "
                                "valid, not expired, and grant access to this file")
    service = secrets.service_for(url)
    needs = f"; if it needs a login, {_secrets.hint(service)}" if service else ""
    return FetchError(dest, f"{url} answered HTTP {status} {reason} (access denied){needs}")
