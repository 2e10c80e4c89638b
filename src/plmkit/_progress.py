"""Progress on stderr, the same way for every command (prepare, tokenizer, pretrain, finetune, score, embed, demo).

* On a terminal (or in a Jupyter notebook): a tqdm bar, redrawn in place.
* Anywhere else (``2>&1 | tee log``, a file, a batch system): plain status lines, never a carriage
  return — every ``every_s`` seconds for counters of bytes or rows, or when the caller asks
  (:meth:`Progress.line`: the trainer writes one every ``--log-every`` steps with the loss, tokens/s,
  elapsed time and ETA).
* Nothing when progress is turned off (``--no-progress``), and nothing on ranks other than 0 under
  ``torchrun`` (``RANK`` > 0), so a log holds one copy.

``enabled`` is tri-state where a command has ``--progress/--no-progress``: None (the default) and True
show progress as above, False shows none. A bar is never written into a log.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

# Seconds between two status lines of a counter (bytes read, rows scored) in a log.
LINE_EVERY_S = 30.0


def is_main_process() -> bool:
    """True unless this is rank 1, 2, … of a ``torchrun`` job (``RANK``; rank 0 prints progress and summaries)."""
    try:
        return int(os.environ.get("RANK", "0") or 0) == 0
    except ValueError:
        return True


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def in_notebook() -> bool:
    """A Jupyter kernel: tqdm.auto draws a widget there, though stderr is not a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - any trouble means: not a notebook
        return False
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_mode(enabled: bool | None = True) -> str:
    """``"bar"`` (a terminal or notebook), ``"lines"`` (plain status lines) or ``"off"``."""
    if enabled is False or not is_main_process():
        return "off"
    return "bar" if stderr_is_terminal() or in_notebook() else "lines"


def format_seconds(s: float) -> str:
    """``75`` → ``0:01:15`` (as tqdm writes elapsed times)."""
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _scaled(n: float, unit: str) -> str:
    for prefix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or prefix == "T":
            return f"{n:.0f} {unit}" if not prefix else f"{n:.1f} {prefix}{unit}"
        n /= 1000
    return f"{n:.1f} T{unit}"  # pragma: no cover


class Progress:
    """A progress counter that is a tqdm bar on a terminal and plain status lines elsewhere.

    Use like a tqdm bar: ``update(n)``, ``set_postfix(key=value)``, ``close()`` (or ``with``).
    ``every_s`` (lines mode): also print a line when that many seconds passed since the last one
    (None: only when :meth:`line` is called), and a last one at ``close`` when any was printed.
    """

    def __init__(self, total: float | None = None, desc: str = "", unit: str = "it", *, initial: float = 0,
                 enabled: bool | None = True, every_s: float | None = LINE_EVERY_S, unit_scale: bool = False,
                 leave: bool = True, bar_format: str | None = None, mininterval: float = 0.1):
        self.mode = progress_mode(enabled)
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.n = self.initial = initial
        self.every_s = every_s
        self.postfix: dict[str, Any] = {}
        self.t0 = self._last = time.monotonic()
        self.lines_printed = 0
        self._bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale,
                             dynamic_ncols=True, leave=leave, bar_format=bar_format, mininterval=mininterval,
                             file=sys.stderr)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def update(self, n: float = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "lines" and self.every_s is not None and time.monotonic() - self._last >= self.every_s:
            self.line()

    def set_postfix(self, **fields: Any) -> None:
        self.postfix = fields
        if self._bar is not None:
            self._bar.set_postfix(fields, refresh=False)

    def _count(self) -> str:
        def fmt(x: float) -> str:
            return _scaled(x, self.unit) if self.unit_scale else f"{x:,.0f}"

        if self.total:
            pct = 100.0 * self.n / self.total
            return (f"{fmt(self.n)}/{fmt(self.total)}" + ("" if self.unit_scale else f" {self.unit}")
                    + f" ({pct:.0f}%)")
        return fmt(self.n) + ("" if self.unit_scale else f" {self.unit}")

    def line(self, head: str | None = None, *, elapsed: float | None = None, eta: float | None = None,
             **fields: Any) -> None:
        """Print one plain status line now (lines mode only): ``desc: head | k v | … | elapsed … | ETA …``.

        ``head`` defaults to the count (``n/total unit (pct%)``), ``fields`` to the postfix; ``elapsed`` and
        ``eta`` default to the time since this counter started and the rate so far.
        """
        if self.mode != "lines":
            return
        now = time.monotonic()
        spent = now - self.t0
        if elapsed is None:
            elapsed = spent
        if eta is None and self.total and self.n > self.initial and spent > 0:
            eta = (self.total - self.n) * spent / (self.n - self.initial)
        parts = [head if head is not None else self._count()]
        parts += [f"{k} {v}" for k, v in (fields or self.postfix).items()]
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if eta is not None and math.isfinite(eta):
            parts.append(f"ETA {format_seconds(eta)}")
        print(f"{self.desc}: " + " | ".join(parts) if self.desc else " | ".join(parts), file=sys.stderr, flush=True)
        self._last = now
        self.lines_printed += 1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.every_s is not None and self.lines_printed:
            self.line(eta=0.0)  # the last state of a long job; short ones stay quiet
            self.mode = "off"

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
