"""User-facing errors.

Every mistake a user can make (a bad file, flag, key or shape) raises a :class:`PlmkitError` whose
message names the file, line, option or key and says what to do. The CLI prints the message as one
paragraph and exits non-zero without a traceback (unless ``--debug``); library callers catch it
like any exception. Usage errors (bad flags or option values) exit with code 2.
"""

from __future__ import annotations


class PlmkitError(Exception):
    """A problem with the user's input, files or configuration. Exit status 1."""

    exit_code = 1


class UsageError(PlmkitError, ValueError):
    """A bad command-line option or option value. Exit status 2, like argparse."""

    exit_code = 2


class ConfigError(UsageError, KeyError):
    """An unknown or inconsistent configuration key (``--set``, presets, config.json)."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(PlmkitError):
    """A model folder or checkpoint that is missing, incomplete, corrupt or inconsistent."""


class DataError(PlmkitError):
    """An input data file that cannot be read as the format it claims to be."""
