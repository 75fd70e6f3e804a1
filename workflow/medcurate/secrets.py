"""Credentials for gated sources: read from the environment or from a secrets file outside the
repository, sent only to the hosts they belong to, and never written to a log, record or output.

Where they come from (the first found wins, per service):

1. Environment variables: ``MEDCURATE_ZENODO_TOKEN``, ``KAGGLE_USERNAME`` + ``KAGGLE_KEY`` (the
   Kaggle CLI's own names), ``MEDCURATE_TCIA_TOKEN``, ``MEDCURATE_PHYSIONET_USERNAME`` +
   ``MEDCURATE_PHYSIONET_PASSWORD``.
2. A YAML secrets file: config key ``secrets_file``, else ``$MEDCURATE_SECRETS_FILE``, else
   ``~/.config/medcurate/secrets.yaml`` if it exists::

       zenodo: {token: "..."}
       kaggle: {username: alice, key: "..."}
       tcia: {token: "..."}
       physionet: {username: alice, password: "..."}
       other:                              # any other source: say which hosts get it
         hosts: [data.example.org]
         token: "..."                      # Authorization: Bearer <token>
                                           # (or username + password/key: HTTP Basic)

   Every service may override ``hosts``. The file must not be inside the repository (it could be
   committed) and must not be readable by group or others (``chmod 600``): otherwise it is refused.
3. Kaggle only: ``~/.kaggle/kaggle.json`` (or ``$KAGGLE_CONFIG_DIR/kaggle.json``).

A credential is sent as an ``Authorization`` header, only to a URL whose host is one of its
``hosts`` and only over https (plain http only to loopback addresses, for tests); requests drops
the header when a redirect leaves that host. Error and log text goes through :meth:`Secrets.redact`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import MedcurateError

log = logging.getLogger("medcurate.secrets")

FILE_ENV = "MEDCURATE_SECRETS_FILE"
DEFAULT_FILE = Path("~/.config/medcurate/secrets.yaml")
REPO = Path(__file__).resolve().parents[2]

# service -> default hosts and the environment variables of each field
SERVICES: dict[str, dict] = {
    "zenodo": {"hosts": ["zenodo.org", "sandbox.zenodo.org"], "env": {"token": "MEDCURATE_ZENODO_TOKEN"}},
    "kaggle": {"hosts": ["www.kaggle.com", "kaggle.com", "api.kaggle.com"],
               "env": {"username": "KAGGLE_USERNAME", "key": "KAGGLE_KEY"}},
    "tcia": {"hosts": ["services.cancerimagingarchive.net", "nbia.cancerimagingarchive.net"],
             "env": {"token": "MEDCURATE_TCIA_TOKEN"}},
    # PhysioNet's credentialed projects: the account's user name and password, HTTP Basic
    "physionet": {"hosts": ["physionet.org"],
                  "env": {"username": "MEDCURATE_PHYSIONET_USERNAME", "key": "MEDCURATE_PHYSIONET_PASSWORD"}},
}
_FIELDS = {"hosts", "token", "username", "password", "key"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# query parameters that carry credentials in signed or token URLs
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:access_token|token|api_?key|key|signature|sig|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|x-goog-signature|x-goog-credential)=)[^&#\s'\"]+")
_URL_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s'\"]+@")


class SecretsError(MedcurateError):
    """The secrets file is misplaced, too readable, or malformed (its values are never shown)."""


@dataclass(frozen=True)
class Credential:
    service: str
    hosts: tuple[str, ...]
    origin: str  # where it came from, for messages: "environment variable X" or "secrets file P"
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def header(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def values(self) -> list[str]:
        """Every string that must never appear in text we write."""
        out = [v for v in (self.token, self.password) if v]
        if self.password:
            out.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        return out


class Secrets:
    def __init__(self, credentials: list[Credential] = ()):
        self.credentials = list(credentials)

    def __repr__(self) -> str:
        return f"Secrets({[c.service for c in self.credentials]})"

    def for_url(self, url: str) -> Credential | None:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        for cred in self.credentials:
            if host in cred.hosts:
                if parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK):
                    return cred
                log.warning("not sending the %s credentials to %s over %s", cred.service, host, parts.scheme)
                return None
        return None

    def of(self, service: str) -> Credential | None:
        """The credential of a known service, if one is configured."""
        return next((c for c in self.credentials if c.service == service), None)

    def service_for(self, url: str) -> str | None:
        """The known service a URL belongs to (with or without credentials), for hints."""
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
        for cred in self.credentials:
            if host in cred.hosts:
                return cred.service
        return next((name for name, s in SERVICES.items() if host in s["hosts"]), None)

    def redact(self, text: str) -> str:
        text = str(text)
        for value in sorted({v for c in self.credentials for v in c.values()}, key=len, reverse=True):
            text = text.replace(value, "***")
        text = _SECRET_QUERY.sub(r"\1***", text)
        return _URL_USERINFO.sub(r"\1***@", text)


def hint(service: str) -> str:
    """How to give credentials for a service (names, never values)."""
    env = " + ".join(SERVICES.get(service, {}).get("env", {}).values())
    where = f"set {env} or " if env else ""
    return f"{where}add '{service}:' to the secrets file (config secrets_file, ${FILE_ENV} or {DEFAULT_FILE})"


def secrets_file(configured: str | Path | None = None) -> Path | None:
    """The secrets file in use: configured > $MEDCURATE_SECRETS_FILE > the default if it exists."""
    if configured:
        return Path(os.path.expanduser(str(configured))).absolute()
    if os.environ.get(FILE_ENV):
        return Path(os.path.expanduser(os.environ[FILE_ENV])).absolute()
    default = DEFAULT_FILE.expanduser()
    return default if default.is_file() else None


def check_file(path: Path, repo: Path = REPO) -> None:
    """Refuse a secrets file that is missing, inside the repository, or readable by others."""
    try:
        st = path.stat()
    except OSError as exc:
        raise SecretsError(path, f"secrets file cannot be read ({exc.strerror})") from None
    real, root = os.path.realpath(path), os.path.realpath(repo)
    if os.path.commonpath([real, root]) == root:
        raise SecretsError(path, f"secrets file is inside the repository {root}, where it could be committed; "
                                 f"move it out, e.g. to {DEFAULT_FILE}")
    if not stat.S_ISREG(st.st_mode):
        raise SecretsError(path, "secrets file is not a regular file")
    if st.st_mode & 0o077:
        raise SecretsError(path, f"secrets file is readable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                                 f"run: chmod 600 {path}")


def _from_file(path: Path, repo: Path) -> dict[str, Credential]:
    check_file(path, repo)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:  # the message would quote the offending line: only its position
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SecretsError(path, f"secrets file is not valid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretsError(path, f"secrets file cannot be read ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SecretsError(path, "secrets file must map service names to {token: ...} or {username: ..., key: ...}")
    out = {}
    for service, entry in data.items():
        name = str(service)
        if not isinstance(entry, dict):
            raise SecretsError(path, f"'{name}': expected a mapping with token or username + key")
        unknown = sorted(str(k) for k in entry if k not in _FIELDS)
        if unknown:
            raise SecretsError(path, f"'{name}': unknown field(s) {unknown} (allowed: {sorted(_FIELDS)})")
        hosts = entry.get("hosts", SERVICES.get(name, {}).get("hosts"))
        if not hosts or not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise SecretsError(path, f"'{name}': 'hosts' must list the host names this credential is for")
        token = entry.get("token")
        username, password = entry.get("username"), entry.get("password", entry.get("key"))
        if not (isinstance(token, str) and token) and not (isinstance(username, str) and isinstance(password, str)
                                                             and username and password):
            raise SecretsError(path, f"'{name}': needs a non-empty string 'token', or 'username' and 'key'/'password'")
        out[name] = Credential(name, tuple(h.lower() for h in hosts), f"secrets file {path}",
                               token=token if isinstance(token, str) and token else None,
                               username=username if not token else None, password=password if not token else None)
    return out


def _kaggle_json() -> Credential | None:
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path("~/.kaggle").expanduser())
    path = folder / "kaggle.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        username, key = data["username"], data["key"]
    except (OSError, ValueError, KeyError, TypeError):  # not ours to refuse: only Kaggle sources need it
        log.warning("%s is not a Kaggle API token file ({\"username\": ..., \"key\": ...}); ignoring it", path)
        return None
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by group or others: run chmod 600 %s", path, path)
    return Credential("kaggle", tuple(SERVICES["kaggle"]["hosts"]), f"Kaggle token file {path}",
                      username=str(username), password=str(key))


def load(configured: str | Path | None = None, *, repo: Path = REPO, env=None) -> Secrets:
    """Every credential available to this process (see the module docstring)."""
    env = os.environ if env is None else env
    creds: dict[str, Credential] = {}
    kaggle = _kaggle_json()
    if kaggle:
        creds["kaggle"] = kaggle
    path = secrets_file(configured)
    if path is not None:
        creds.update(_from_file(path, repo))
    for name, spec in SERVICES.items():
        names = spec["env"]
        values = {k: env.get(v) for k, v in names.items()}
        if not all(values.values()):
            continue
        hosts = creds[name].hosts if name in creds else tuple(spec["hosts"])
        origin = "environment variable" + ("s " if len(names) > 1 else " ") + " + ".join(names.values())
        creds[name] = Credential(name, hosts, origin, token=values.get("token"),
                                 username=values.get("username"), password=values.get("key"))
    return Secrets(list(creds.values()))
