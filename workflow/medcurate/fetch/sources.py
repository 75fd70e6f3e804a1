"""One catalogue source, whatever its type: a URL (core.fetch), or a service that publishes a
folder of many files (tcia, kits19, physionet) or a file behind an account (kaggle)."""

from __future__ import annotations

from pathlib import Path

from medcurate import secrets as _secrets

from .core import fetch
from .files import settings_kwargs

SERVICES = ("tcia", "kits19", "physionet", "kaggle")


def service_of(source: dict) -> str | None:
    return next((s for s in SERVICES if s in source), None)


def fetch_source(source: dict, dest: Path, *, settings: dict, secrets: _secrets.Secrets | None = None) -> dict:
    """Make ``dest`` (a file, or a folder for tcia/kits19/physionet) the checked copy of ``source``."""
    service = service_of(source)
    if service == "tcia":
        from .tcia import fetch_collection
        return fetch_collection(source, Path(dest), settings=settings, secrets=secrets)
    if service == "kits19":
        from .kits19 import fetch_kits19
        return fetch_kits19(source, Path(dest), settings=settings, secrets=secrets)
    if service == "physionet":
        from .physionet import fetch_project
        return fetch_project(source, Path(dest), settings=settings, secrets=secrets)
    if service == "kaggle":
        from .kaggle import fetch_competition
        return fetch_competition(source, Path(dest), settings=settings, secrets=secrets)
    return fetch(source, Path(dest), secrets=secrets, **settings_kwargs(settings))
