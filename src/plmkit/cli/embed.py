"""``plmkit embed``: contextual vectors per word, written to .npy, .safetensors or JSONL.

Words are the whitespace-separated pieces of each input line (one sentence per line, blank lines
skipped). See :mod:`plmkit.embed` for pooling, layer choice and long sentences, and
:class:`plmkit.embed.VectorWriter` for the file layouts.
"""

from __future__ import annotations

import sys

from . import _types as T
from . import common_parent
from .score import default_device, progress_bar, read_sentences
from ..errors import UsageError

# Sentences embedded per call of the library (then written); keeps memory flat on large inputs.
CHUNK = 1024


def register(sub) -> None:
    p = sub.add_parser("embed", parents=[common_parent()], help="contextual word vectors (BERT family, causal LM, ELMo)",
                       description="Write one contextual vector per whitespace-separated word of each input line.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="text file(s), one sentence per line; '-' reads stdin")
    p.add_argument("--model", required=True, help="model folder (plmkit or Hugging Face layout, or ELMo)")
    p.add_argument("--out", required=True, help="output file: .npy (+ .offsets.npy), .safetensors or .jsonl")
    p.add_argument("--format", choices=["npy", "safetensors", "jsonl"], default=None,
                   help="output format (default: from the --out extension)")
    p.add_argument("--pool", choices=["first", "mean"], default="first",
                   help="how a word's sub-token vectors become one: first sub-token (default) or their mean")
    p.add_argument("--layers", default="-1",
                   help="hidden state(s): one index (-1 = last, 0 = embeddings), a list like 0,4,8 (concatenated; "
                        "write --layers=-4,-1 when the list starts with a minus), or 'mix' (scalar mix of all "
                        "hidden states)")
    p.add_argument("--mix-weights", default=None,
                   help="with --layers mix: one non-negative weight per hidden state, comma-separated "
                        "(normalised to sum 1; default uniform)")
    p.add_argument("--batch-size", type=T.any_int, default=32, help="rows per forward pass (default 32)")
    p.add_argument("--max-length", type=T.any_int, default=None,
                   help="window length in tokens (default: the model's positions); longer sentences are run in "
                        "overlapping windows")
    p.add_argument("--stride", type=T.positive_int, default=None, help="window step in tokens, below the window size (default: half a window)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it is a vector file plmkit wrote (anything else is refused)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available, else cpu)")
    p.set_defaults(func=run)


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise UsageError(f"--mix-weights {text!r}: give comma-separated numbers, e.g. 0,1,1,1") from None


def run(args) -> int:
    from ..embed import Embedder, VectorWriter, infer_format, split_words

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    fmt = infer_format(args.out, args.format)
    texts = read_sentences(args.inputs)
    embedder = Embedder(args.model, layers=args.layers, pool=args.pool, mix_weights=_weights(args.mix_weights),
                        batch_size=args.batch_size, max_length=args.max_length, stride=args.stride,
                        device=default_device(args.device))
    words = [split_words(t)[1] for t in texts]
    writer = VectorWriter(args.out, fmt, [len(w) for w in words], embedder.describe(), overwrite=args.overwrite,
                          inputs=[*args.inputs, args.model])
    bar = progress_bar(len(texts), "embedding")
    try:
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start:start + CHUNK]
            for ws, vec in zip(words[start:start + CHUNK], embedder.embed(chunk)):
                writer.write(ws, vec)
            bar.update(len(chunk))
        paths = writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    print(f"wrote {sum(len(w) for w in words)} word vectors of dimension {writer.dim} for {len(texts)} sentences "
          f"to {', '.join(map(str, paths))} (layers {embedder.selection.describe()}, pool {args.pool})",
          file=sys.stderr)
    return 0
