"""One error type for everything the user must act on: it always names the file and the reason."""

from __future__ import annotations

from pathlib import Path


class MedcurateError(Exception):
    """A failure the user can act on. ``str()`` reads ``<file>: <reason>``."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self):  # raised in a worker process (unpack), re-raised in the parent
        return type(self), (self.path, self.reason)


class FetchError(MedcurateError):
    """A download could not be completed or verified."""


class ChecksumError(FetchError):
    """A downloaded file does not match its expected checksum."""


class UnsafeArchiveError(MedcurateError):
    """An archive member would escape its folder, is a device/link, or exceeds a size limit."""


class ArchiveError(MedcurateError):
    """An archive is truncated, corrupt, or of an unknown type."""


class CatalogueError(MedcurateError):
    """A catalogue entry or config file is malformed."""


class ManualDataError(MedcurateError):
    """A gated dataset has not been placed (or not completely) where the workflow expects it."""


class CaseError(MedcurateError):
    """One case of a dataset cannot be converted; the dataset goes on without it (quarantined)."""
