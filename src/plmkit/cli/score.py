"""``plmkit score``: each sentence's log-likelihood and the corpus perplexity.

Causal LMs get the exact chain-rule likelihood, masked LMs the pseudo-log-likelihood (Salazar et
al., 2020), ELMo both of its LMs; see :mod:`plmkit.score`. Inputs are text files with one sentence
per line (blank lines are skipped; anything :mod:`plmkit.data.readers` reads), or ``-`` for stdin.
"""

from __future__ import annotations

import json
import math
import sys

from . import _types as T
from . import common_parent
from ..errors import DataError, UsageError


def register(sub) -> None:
    p = sub.add_parser("score", parents=[common_parent()],
                       help="log-likelihood of each sentence and corpus perplexity (causal LM, masked LM PLL, ELMo)",
                       description="Print each sentence's log-likelihood (natural log) and scored-token count, then "
                                   "the corpus perplexity. Causal LMs: exact chain rule; masked LMs: "
                                   "pseudo-log-likelihood (each token masked in turn); ELMo: forward and backward LM.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="text file(s), one sentence per line; '-' reads stdin")
    p.add_argument("--model", required=True, help="model folder (plmkit or Hugging Face layout) with an LM head, or ELMo")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per sentence, then a {\"summary\": ...} line")
    p.add_argument("--per-token", action="store_true", help="with --jsonl: add the scored tokens and their log-probs")
    p.add_argument("--batch-size", type=T.any_int, default=32,
                   help="rows per forward pass: windows (causal LM) or masked copies (PLL) (default 32)")
    p.add_argument("--max-length", type=T.any_int, default=None,
                   help="window length in tokens (default: the model's positions); longer texts are scored in "
                        "overlapping windows")
    p.add_argument("--stride", type=T.positive_int, default=None, help="window step in tokens, below the window size (default: half a window)")
    p.add_argument("--method", choices=["auto", "causal", "pll", "elmo"], default="auto",
                   help="auto picks from the model: causal LM, masked LM (pll) or ELMo")
    p.add_argument("--no-start-token", action="store_true",
                   help="causal LM: do not prepend the BOS/EOS token (the first token is then not scored)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def read_sentences(inputs: list[str]) -> list[str]:
    """The sentences of the inputs, in order: one per non-blank line (``-`` = stdin).

    Files go through :mod:`plmkit.data.readers`, so folders, globs, ``.gz``/``.bz2``/``.xz``, JSON
    Lines (``text`` field) and tagged Brown files (their words, without tags) work too.
    """
    from ..data.readers import CorpusReader

    out: list[str] = []
    for name in inputs:
        if name == "-":
            out.extend(line.strip() for line in read_stdin_text().splitlines() if line.strip())
            continue
        reader = CorpusReader([name])
        out.extend(reader.texts())
        if reader.invalid_utf8:
            print(f"plmkit: warning: replaced {reader.invalid_utf8:,} invalid UTF-8 byte sequence(s) with U+FFFD in "
                  f"{name}", file=sys.stderr)
    if not out:
        raise DataError(f"no sentences in {', '.join(inputs)}: the input is empty (or only blank lines); give text "
                        "with one sentence per line")
    return out


def read_stdin_text() -> str:
    """All of stdin as text, read as bytes and decoded as the file readers decode: UTF-8 (a byte-order
    mark dropped), each invalid byte sequence replaced by U+FFFD and counted in a warning; NUL bytes
    (binary input) are an error."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream without bytes underneath (tests, embedding): already decoded
        try:
            return sys.stdin.read()
        except UnicodeDecodeError as e:
            raise DataError(f"stdin: not UTF-8 text ({e.reason} at byte {e.start}); pipe UTF-8 text "
                            "(e.g. iconv -f latin1 -t utf-8)") from None
    data = stream.read()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"stdin looks like binary data (a NUL byte at offset {nul}), not text; pipe "
                        "UTF-8 text, one sentence per line")
    text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd") - data.decode("utf-8-sig", errors="ignore").count("\ufffd")
    if bad:
        print(f"plmkit: warning: replaced {bad:,} invalid UTF-8 byte sequence(s) with U+FFFD in stdin",
              file=sys.stderr)
    return text


def default_device(name: str | None) -> str:
    from ..training.distributed import choose_device

    return str(choose_device(name or "auto"))


def progress_bar(total: int | None, desc: str):
    """Progress in rows on stderr: a bar on a terminal, a status line every 30 s in a log (plmkit._progress)."""
    from .._progress import Progress

    return Progress(total=total, desc=desc, unit="row", leave=False)


def _num(x: float | None) -> str:
    return "nan" if x is None or math.isnan(x) else f"{x:.4f}"


def run(args) -> int:
    from ..score import score

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.per_token and not args.jsonl:
        raise UsageError("--per-token needs --jsonl")
    texts = read_sentences(args.inputs)
    device = default_device(args.device)
    bar = progress_bar(None, "scoring")

    def tick(n: int) -> None:
        bar.update(n)

    try:
        result = score(args.model, texts, batch_size=args.batch_size, method=args.method,
                       max_length=args.max_length, stride=args.stride, add_start_token=not args.no_start_token,
                       device=device, progress=tick)
    finally:
        bar.close()
    out = sys.stdout
    summary = result.summary()
    if args.jsonl:
        for s in result.sentences:
            out.write(json.dumps(s.to_dict(per_token=args.per_token), ensure_ascii=False) + "\n")
        out.write(json.dumps({"summary": summary}, ensure_ascii=False) + "\n")
        return 0
    backward = result.backward_log_likelihood is not None
    out.write(f"# model: {result.model}\n# method: {result.method}: {result.description}\n")
    out.write("# log_likelihood\t" + ("backward_log_likelihood\t" if backward else "") + "num_tokens\ttext\n")
    for s in result.sentences:
        cols = [_num(s.log_likelihood)] + ([_num(s.backward_log_likelihood)] if backward else [])
        out.write("\t".join(cols + [str(s.num_tokens), s.text]) + "\n")
    name = "pseudo-perplexity" if result.method == "pll" else "perplexity"
    line = (f"# sentences: {len(result)}  tokens: {result.num_tokens}  log-likelihood: {_num(result.log_likelihood)}  "
            f"{name}: {_num(result.perplexity)}")
    if backward:
        line += f"  backward log-likelihood: {_num(result.backward_log_likelihood)}  " \
                f"backward perplexity: {_num(result.backward_perplexity)}"
    out.write(line + "\n")
    return 0
