"""argparse ``type=`` helpers for numeric options: a bad value is a usage error before anything runs.

Each helper parses one option value and raises ``argparse.ArgumentTypeError``, so argparse reports
``plmkit CMD: error: argument --X: …`` and exits with status 2 (plmkit's :class:`ArgumentParser`
keeps it to one paragraph). Integers refuse fractions and words (``--max-steps ten`` reads as
"invalid int value"); numbers refuse NaN and infinities; ranges are those of the settings the
options feed (:mod:`plmkit.config`), so a value the library would refuse later is refused at once.
"""

from __future__ import annotations

import argparse
import math

from ..config import MAX_SEED


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}; give a whole number") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give a number such as 0.1 or 3e-5")
    return value


def any_int(text: str) -> int:
    """Any whole number (the option's own check gives the range and its reason)."""
    return _int(text)


def positive_int(text: str) -> int:
    """A whole number >= 1 (sizes, counts, steps)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def nonneg_int(text: str) -> int:
    """A whole number >= 0 (intervals where 0 turns the thing off, step numbers)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def seed(text: str) -> int:
    """A random seed: 0 … 2**32 - 1, what numpy and torch accept."""
    value = _int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, got {text}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (the option's own check gives the range and its reason)."""
    return _float(text)


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, epochs)."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def nonneg_float(text: str) -> float:
    """A finite number >= 0 (warmup, weight decay)."""
    value = _float(text)
    if value < 0 or math.copysign(1.0, value) < 0:  # -0.0 too: a sign the user did not mean
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def warmup_ratio(text: str) -> float:
    """A warmup fraction: from 0 to below 1 (the whole run would be all warmup and no decay)."""
    value = _float(text)
    if not 0 <= value < 1 or math.copysign(1.0, value) < 0:
        raise argparse.ArgumentTypeError(f"must be a fraction of the run from 0 to below 1, got {text}; for a number "
                                         "of steps use --warmup-steps")
    return value


def probability(text: str) -> float:
    """A number from 0 to 1."""
    value = _float(text)
    if not 0 <= value <= 1 or math.copysign(1.0, value) < 0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def dropout(text: str) -> float:
    """A dropout probability: from 0 to below 1 (1 would drop everything)."""
    value = _float(text)
    if not 0 <= value < 1 or math.copysign(1.0, value) < 0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to below 1, got {text}")
    return value


def duration(text: str) -> float:
    """A time budget: '90s', '30m', '1.5h', '2h30m' or seconds (see training.trainer.parse_duration)."""
    from ..errors import ConfigError
    from ..training.trainer import parse_duration

    try:
        return parse_duration(text)  # type: ignore[return-value]
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def fraction(text: str) -> float:
    """A fraction strictly between 0 and 1 (a share of the data set apart)."""
    value = _float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1 (exclusive), got {text}")
    return value
