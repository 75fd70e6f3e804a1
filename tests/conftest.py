"""Fixtures of the tests in tests/ that the dataset folders' tests do not need; the shared ones
(realdata, mirror, plans, sample_root) and helpers are in medcurate/testing.py, loaded as a plugin."""

import pytest
from medcurate.testing import (  # noqa: F401 -- re-exported for `from conftest import ...`
    REALDATA,
    ROOT,
    build,
    prepared,
    sample_plan,
    snakemake_exe,
    unpacked,
    with_exclusions,
    within,
)

# demo(id) / exported(id, kind): demo datasets and their exports, built once per session
pytest_plugins = ["exported"]


@pytest.fixture
def server():
    """A loopback HTTP server whose answers each test configures (loopback.Server)."""
    from loopback import Server

    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def snakemake_bin() -> str:
    return snakemake_exe()
