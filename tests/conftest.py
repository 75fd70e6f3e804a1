import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture
def realdata() -> Path:
    """Publisher files beside the project (../shared/realdata); tests skip where it is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """A freshly generated sample mirror (the same bytes as workflow/sample-mirror)."""
    from medcurate import samples

    out = tmp_path_factory.mktemp("mirror")
    samples.build(out)
    return out


@pytest.fixture
def plans():
    """Plans of the catalogue's entries, resolved against the default config."""
    from medcurate import catalogue

    config = catalogue.load_config({"datasets": ["fetal_planes_db"]}, ROOT)
    entries = catalogue.load_catalogue(config)
    return {ds: catalogue.plan(entry, config) for ds, entry in entries.items()}


def unpacked(mirror: Path, dataset: str, dest: Path) -> Path:
    """Unpack a dataset's sample archives the way the workflow does."""
    from medcurate.unpack import unpack

    unpack(sorted((mirror / dataset).iterdir()), dest)
    return dest


def snakemake_exe() -> str:
    """The snakemake beside this interpreter (works without an activated venv)."""
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which("snakemake")
    if exe is None:
        pytest.fail("snakemake is not installed (pip install -e .[test])")
    return exe


@pytest.fixture
def snakemake_bin() -> str:
    return snakemake_exe()
