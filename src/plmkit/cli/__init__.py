"""The ``plmkit`` command line: thin subcommands over the library.

Each subcommand lives in its own module with a ``register(subparsers)`` function. User mistakes
raise :class:`~plmkit.errors.PlmkitError`; they are printed as one paragraph with no traceback
(``--debug`` shows it) and exit with status 1, or 2 for usage errors, like argparse.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import textwrap
import warnings

from ..errors import PlmkitError

# Subcommand modules, in the order `plmkit --help` lists them.
COMMANDS = ["models", "data", "pretrain", "demo", "score", "embed", "finetune", "tokenizer", "prepare"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with plmkit's error format: one paragraph naming the option and pointing at ``--help``.

    Subcommand parsers inherit the class, so every bad flag or option value reads the same way and
    exits with status 2.
    """

    def __init__(self, *args, **kwargs):
        from ._help import HelpFormatter  # every option's help shows its default

        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        text = " ".join(f"{self.prog}: error: {message}; see '{self.prog} --help'".split())
        self.exit(2, textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False) + "\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = ArgumentParser(
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


def _plmkit_warnings(original):
    """A ``warnings.formatwarning`` that prints plmkit's own warnings as one ``plmkit: warning:`` paragraph."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def formatwarning(message, category, filename, lineno, line=None):
        if os.path.abspath(str(filename)).startswith(package + os.sep):
            text = " ".join(str(message).split())
            return textwrap.fill(f"plmkit: warning: {text}", width=100, break_long_words=False,
                                 break_on_hyphens=False) + "\n"
        return original(message, category, filename, lineno, line)

    return formatwarning


# Exit status when the reader of our output went away (``plmkit presets | head -2``): 128 + SIGPIPE, what
# ``yes | head`` or ``git log | head`` report, so ``set -o pipefail`` scripts see what any Unix tool gives.
PIPE_CLOSED = 128 + 13


def main(argv: list[str] | None = None, _exiting: bool = False) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("PLMKIT_DEBUG") == "1"
    try:  # SIGINT/SIGTERM from the first moment: every finally runs (temporary outputs removed, locks released)
        previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (library use): leave signals alone
        previous = None
    try:
        code = _main(argv, debug)
        sys.stdout.flush()  # a closed pipe shows here rather than as "Exception ignored" at exit
        return code
    except BrokenPipeError:
        if not _closed_outputs():
            raise
        return _quiet_pipe_exit()
    except Terminated:  # before the command started (parsing the options)
        if debug:
            raise
        return report("terminated (SIGTERM) before the command started; nothing was written", 143)
    except KeyboardInterrupt:
        if debug:
            raise
        return report("interrupted before the command started; nothing was written", 130)
    finally:
        for sig, handler in (previous or {}).items():
            # The process is about to exit (entry()): a signal during interpreter shutdown changes nothing any more,
            # so it is ignored rather than killing a command that has finished (exit -15 after its work was done).
            signal.signal(sig, signal.SIG_IGN if _exiting else handler)


def _main(argv: list[str], debug: bool) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad flag (already reported by argparse)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    original_format = warnings.formatwarning
    if not debug:
        warnings.formatwarning = _plmkit_warnings(original_format)
    try:
        return _run(args, debug)
    finally:
        warnings.formatwarning = original_format


def _closed_outputs() -> list:
    """stdout / stderr when they are pipes whose reader has gone (poll reports POLLERR on such a write end)."""
    import select

    closed = []
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            if any(events & select.POLLERR for _, events in poller.poll(0)):
                closed.append(stream)
        except (AttributeError, ValueError, OSError):  # no file descriptor (captured), or closed
            continue
    return closed


def _quiet_pipe_exit() -> int:
    """End quietly after the reader of stdout/stderr closed the pipe, as the Python docs recommend (signal
    module, "Note on SIGPIPE"): point the closed streams at /dev/null so that the interpreter's final flush
    cannot fail again, and report 128 + SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in _closed_outputs():
            try:
                os.dup2(devnull, stream.fileno())
            except (AttributeError, ValueError, OSError):
                pass
    finally:
        os.close(devnull)
    return PIPE_CLOSED


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` runs: temporary outputs are removed,
    worker processes stopped and locks released, as after Ctrl-C (the trainer saves a checkpoint first)."""


def _terminate(signum, frame):
    """SIGTERM raises :class:`Terminated`, SIGINT ``KeyboardInterrupt`` — but never inside an import.

    An exception raised in the middle of importing numpy or torch can leave the module half-initialised
    in ``sys.modules`` (some libraries catch it there), and the command then fails later with an
    unrelated ``AttributeError``. So a signal that lands inside an import is sent again 50 ms later,
    until it lands in plmkit's own code.
    """
    f = frame
    while f is not None:
        if f.f_code.co_filename.startswith("<frozen importlib"):
            import threading

            def again() -> None:
                # to whoever handles it now (us, or the trainer: save and stop), unless the command has ended
                if signal.getsignal(signum) not in (signal.SIG_IGN, signal.SIG_DFL, None):
                    os.kill(os.getpid(), signum)

            timer = threading.Timer(0.05, again)
            timer.daemon = True
            timer.start()
            return
        f = f.f_back
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _run(args, debug: bool) -> int:
    try:
        result = args.func(args)
        return int(result or 0)
    except PlmkitError as e:
        if debug:
            raise
        return report(str(e), e.exit_code)
    except Terminated:
        if debug:
            raise
        return report("terminated (SIGTERM); partial output was removed, earlier output left as it was", 143)
    except KeyboardInterrupt:
        if debug:
            raise
        return report("interrupted", 130)
    except BrokenPipeError:
        if _closed_outputs():  # our reader went away (| head): main ends quietly, after every finally ran
            raise
        if debug:
            raise
        return report("a pipe to another process closed while plmkit was writing to it (--debug shows where)", 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        if debug:
            raise
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        return report(f"{e.strerror or e}:{where}. Check the path and its permissions.", 1)
    except Exception as e:  # noqa: BLE001 - only disk errors are reported; anything else is re-raised
        if debug:
            raise
        if not isinstance(e, OSError):
            from ..training.checkpoint import disk_full

            if type(e).__name__ == "SafetensorError" and disk_full(e):  # safetensors' Rust I/O error
                return report("no space left on the device while writing a safetensors file; free some space and "
                              "run again (earlier output was left intact)", 1)
            raise
        where = f" while writing {e.filename}" if getattr(e, "filename", None) else ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            what = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                    errno.EFBIG: "a file grew beyond the size limit"}[e.errno]
            return report(f"{what}{where}; free some space (or raise the limit) and run again (earlier output was "
                          "left intact)", 1)
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        return report(f"{e.strerror or e}{where}; check the path, the disk and its permissions (--debug shows "
                      "where it happened)", 1)


def entry() -> None:
    sys.exit(main(_exiting=True))


if __name__ == "__main__":
    entry()
