"""Download one catalogue source: resumable, retried, mirrored, and checked before it appears.

``dest`` only ever appears complete (``.part`` -> ``os.replace``), followed by a
``<dest>.verified.json`` sidecar that lets later runs skip the download without network access.
The sidecar and the record say what was checked (``checksum_source``, ``checked``): a file with no
pinned checksum is recorded as such, never as verified. Beside a ``.part``, ``<dest>.part.json``
keeps the first response's validators (ETag, Last-Modified, total size) so that a resume never
splices two versions of a file; ``<dest>.first-use.json`` keeps the size and sha256 each URL gave
the first time, so that a later download of an unpinned file that differs is reported.

The parts: ``core`` (fetch: cache, transfer, verdict, mirrors), ``transfer`` (the HTTP state
machine), ``retry`` (the one retry policy: no transport retries), ``digests`` and ``sidecars``
(files and what their bytes say), ``cache`` (records, first use, forget), ``zenodo`` (checksums
from a record, as values), ``auth`` (credentials on the wire, masked in text); source types beyond
a URL (``sources``): ``tcia``, ``kits19``, ``physionet`` (folders fetched item by item: ``tree``,
``files``) and ``kaggle``.
"""

from medcurate import secrets as _secrets  # noqa: F401 - the secrets module, as fetch.py offered it

from .cache import forget
from .core import fetch
from .sources import SERVICES, fetch_source, service_of
from .retry import Policy
from .transfer import USER_AGENT, make_session

__all__ = ["Policy", "SERVICES", "USER_AGENT", "fetch", "fetch_source", "forget", "make_session", "service_of"]
