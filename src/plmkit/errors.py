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


EXCERPT_CHARS = 60


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable quote of offending input for an error message: ``repr`` of at most
    ``limit`` characters of it, with an ellipsis and the full length when cut.

    Every reader quotes input through this, so a message never carries a megabyte of a wrong file
    (a SQuAD JSON read as a TSV is one 2 MB "line").
    """
    if isinstance(value, (bytes, bytearray)):
        n = limit // 3  # a non-ASCII byte shows as 4 characters (\\xff)
        shown = repr(bytes(value[:n]))
        return shown if len(value) <= n else f"{shown}… ({len(value):,} bytes)"
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value):,} characters)"
    text = _short_repr(value, limit)
    return text if len(text) <= limit else text[:limit] + "…"


def _short_repr(value: object, limit: int) -> str:
    """``repr`` of a (possibly huge, nested) JSON-like value, built only up to about ``limit`` characters."""
    if isinstance(value, (list, tuple)):
        parts, size = [], 0
        for item in value:
            if size > limit:
                break
            part = _short_repr(item, limit)
            parts.append(part)
            size += len(part) + 2
        return "[" + ", ".join(parts) + ("" if len(parts) == len(value) else ", …") + "]"
    if isinstance(value, dict):
        parts, size = [], 0
        for k, v in value.items():
            if size > limit:
                break
            part = f"{_short_repr(k, limit)}: {_short_repr(v, limit)}"
            parts.append(part)
            size += len(part) + 2
        return "{" + ", ".join(parts) + ("" if len(parts) == len(value) else ", …") + "}"
    if isinstance(value, str):
        return repr(value[: limit + 1])
    return repr(value)[: limit + 1]


def type_name(value: object) -> str:
    """The JSON name of a parsed value's type, for messages ("null", "a number", "a list" …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
