"""medcurate: public medical-imaging datasets -> curated, ML-ready folders."""

__version__ = "0.1.0"
