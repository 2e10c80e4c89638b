"""The ``plmkit`` command line: thin subcommands over the library.

Each subcommand lives in its own module with a ``register(subparsers)`` function. User mistakes
raise :class:`~plmkit.errors.PlmkitError`; they are printed as one paragraph with no traceback
(``--debug`` shows it) and exit with status 1, or 2 for usage errors, like argparse.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap

from ..errors import PlmkitError

# Subcommand modules, in the order `plmkit --help` lists them.
COMMANDS = ["models", "data", "pretrain", "demo", "score", "embed", "finetune", "tokenizer", "prepare"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="plmkit",
        description="Pretrain, fine-tune, evaluate and use BERT, RoBERTa, ALBERT, GPT-style LMs and ELMo.",
    )
    parser.add_argument("--version", action="version", version=f"plmkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def common_parent() -> argparse.ArgumentParser:
    """Options every subcommand accepts (``plmkit CMD --debug`` as well as ``plmkit --debug CMD``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks for errors")
    return p


def report(message: str, code: int) -> int:
    text = " ".join(str(message).split())
    print(textwrap.fill(f"plmkit: error: {text}", width=100, break_long_words=False, break_on_hyphens=False),
          file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("PLMKIT_DEBUG") == "1"
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
        return int(result or 0)
    except PlmkitError as e:
        if debug:
            raise
        return report(str(e), e.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        return report("interrupted", 130)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        if debug:
            raise
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        return report(f"{e.strerror or e}:{where}. Check the path and its permissions.", 1)
    except OSError as e:
        if debug:
            raise
        if e.errno == 28:  # ENOSPC
            return report(f"no space left on the device{(' while writing ' + e.filename) if e.filename else ''}; "
                          "free some space and run again (earlier output was left intact)", 1)
        raise


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
