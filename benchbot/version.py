"""benchbot's version: its one home, read by the package, the store's manifests, the reports and pyproject.toml."""

__version__ = "0.1.0"
