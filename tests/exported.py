"""Results folders of the demo's sample data, built in-process once per session (only the
datasets a test asks for), and their exports: shared by test_exports.py and test_clients.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import build, sample_plan, unpacked


@pytest.fixture(scope="session")
def demo(sample_root, mirror, tmp_path_factory):
    """demo(id) -> <tmp>/results/<id>, published from the sample mirror like the demo does."""
    base = tmp_path_factory.mktemp("demo")
    done: dict[str, Path] = {}

    def results(dataset: str) -> Path:
        if dataset not in done:
            out = base / "results" / dataset
            plan = sample_plan(dataset)
            gated = plan["access"]["mode"] == "manual"
            root = sample_root(dataset) if gated else unpacked(mirror, dataset, base / "unpacked" / dataset)
            build(root, plan, base / "work" / dataset, out)
            done[dataset] = out
        return done[dataset]

    return results


@pytest.fixture(scope="session")
def exported(demo):
    """exported(id, kind) -> <tmp>/exports/<id>/<kind>, written once per session."""
    from medcurate.exports import export

    done: dict[tuple[str, str], Path] = {}

    def folder(dataset: str, kind: str) -> Path:
        if (dataset, kind) not in done:
            done[dataset, kind] = export(kind, demo(dataset))
        return done[dataset, kind]

    return folder
