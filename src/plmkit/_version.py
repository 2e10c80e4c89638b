"""The package version (one place: the package root, the CLI, prepared corpora and run folders read it)."""

__version__ = "0.1.0"
