"""Help text that shows every option's default, and the deprecation note of renamed options.

:class:`HelpFormatter` is the formatter of every plmkit parser (set by :class:`plmkit.cli.ArgumentParser`).
An option that takes a value and whose help does not already say its default gets ``(default: X)``
appended, as argparse's ``ArgumentDefaultsHelpFormatter`` does; an unset default (``None``) reads
``(default: none)``. Options whose ``None`` means something else say so in their own help — "the
preset's" for the pretraining settings a preset supplies, "the task's" for the task options.
Switches (``--bf16``) are off unless given and need no default; required options have none.
"""

from __future__ import annotations

import argparse
import sys


def says_default(help_text: str | None) -> bool:
    """Whether a help text already states the option's default."""
    text = (help_text or "").lower()
    return "default" in text or "%(default)" in text


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with ``(default: X)`` after every value-taking option that does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.nargs == 0 or action.required
                or action.default is argparse.SUPPRESS or says_default(text)):
            return text
        if action.default is None or action.default == []:
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def deprecated(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works, ``new`` is the spelling to use."""
    print(f"plmkit: note: {old} is deprecated and will be removed; use {new}", file=sys.stderr, flush=True)


def add_warmup_options(group, ratio_default: str, steps_default: str) -> None:
    """``--warmup-ratio R`` / ``--warmup-steps N`` (as ``transformers``' ``warmup_ratio`` / ``warmup_steps``),
    and the deprecated ``--warmup W`` (steps when W >= 1, else a fraction), one of the three."""
    from . import _types as T

    g = group.add_mutually_exclusive_group()
    g.add_argument("--warmup-ratio", type=T.warmup_ratio, default=None, metavar="R",
                   help=f"warm the learning rate up linearly over this fraction of the run, 0 <= R < 1 (default: "
                        f"{ratio_default})")
    g.add_argument("--warmup-steps", type=T.nonneg_int, default=None, metavar="N",
                   help=f"warm the learning rate up linearly over N optimizer steps (default: {steps_default})")
    g.add_argument("--warmup", dest="warmup_legacy", type=T.nonneg_float, default=None, metavar="W",
                   help="deprecated: steps when W >= 1, a fraction of the run when W < 1; use --warmup-ratio or "
                        "--warmup-steps (default: none)")


def warmup_value(args) -> float | None:
    """The warmup the flags ask for, in TrainConfig's one field (a fraction < 1, or steps >= 1), or None.

    ``--warmup-steps 0`` is no warmup (0.0); the deprecated ``--warmup`` prints a note on stderr."""
    if getattr(args, "warmup_ratio", None) is not None:
        return args.warmup_ratio
    if getattr(args, "warmup_steps", None) is not None:
        return float(args.warmup_steps)  # >= 1: steps; 0: none
    if getattr(args, "warmup_legacy", None) is not None:
        w = args.warmup_legacy
        deprecated(f"--warmup {w:g}", f"--warmup-steps {int(w)}" if w >= 1 else f"--warmup-ratio {w:g}")
        return w
    return None
