"""medcurate: public medical-imaging datasets -> curated, ML-ready folders."""

__version__ = "0.1.0"


def load(path, split=None, curated=None):
    """The typed manifest of a results folder (see medcurate.outputs.load); pandas is imported
    only when this is called."""
    from .outputs import load as _load

    return _load(path, split=split, curated=curated)
