"""The package version (one place; read by the run metadata and ``ratt.__version__``)."""

__version__ = "0.1.0"
