"""``plmkit tokenizer train``: train a WordPiece, byte-level BPE, unigram or word-level tokenizer.

Examples::

    plmkit tokenizer train --kind wordpiece --vocab-size 30522 --out tok/ corpora/brown
    plmkit tokenizer train --kind unigram --vocab-size 8000 --cased --out tok-ko/ corpora/ko   # byte fallback: no [UNK]
    plmkit tokenizer train --kind bpe --vocab-size 50265 --max-sentences 2000000 --out tok/ big.txt.gz
"""

from __future__ import annotations

import argparse
import time

from . import _types as T
from . import common_parent
from .prepare import add_progress_argument, add_reader_arguments, reader_options, show_progress
from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("tokenizer", parents=[common_parent()], help="train tokenizers",
                       description="Tokenizer commands. 'plmkit tokenizer train --help' for training.")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: _help(p))
    t = tsub.add_parser(
        "train", parents=[common_parent()], help="train a tokenizer on raw text",
        description="Train a tokenizer with Hugging Face tokenizers and save it as a folder that "
                    "transformers.AutoTokenizer and plmkit load identically: wordpiece (BERT: [PAD] [UNK] [CLS] "
                    "[SEP] [MASK]), bpe (byte-level, RoBERTa/GPT-2: <s> <pad> </s> <unk> <mask>), unigram "
                    "(SentencePiece-style, ALBERT: <pad> <unk> [CLS] [SEP] [MASK]) or wordlevel (ELMo). "
                    "Lowercasing and accent stripping never decompose Hangul.")
    t.add_argument("inputs", nargs="+", metavar="INPUT", help="text files, folders or globs")
    t.add_argument("--kind", required=True, choices=("wordpiece", "bpe", "unigram", "wordlevel"),
                   help="tokenizer model")
    t.add_argument("--vocab-size", type=T.any_int, required=True, metavar="N",
                   help="vocabulary size, special tokens included")
    case = t.add_mutually_exclusive_group()
    case.add_argument("--lowercase", dest="lowercase", action="store_true", default=None,
                      help="lowercase (and strip accents, Hangul-safe) (default for wordpiece and unigram)")
    case.add_argument("--cased", dest="lowercase", action="store_false",
                      help="keep case and accents (default for bpe and wordlevel)")
    t.add_argument("--strip-accents", action=argparse.BooleanOptionalAction, default=None,
                   help="strip accents (default: with --lowercase for wordpiece and unigram)")
    t.add_argument("--byte-fallback", action=argparse.BooleanOptionalAction, default=None,
                   help="unigram: 256 byte tokens <0x00>..<0xFF> in the vocabulary spell any character it lacks, so "
                        "no text gives <unk> (default: on; bpe is byte-level anyway; wordpiece and wordlevel have "
                        "none)")
    t.add_argument("--max-sentences", type=T.any_int, metavar="N",
                   help="train on a uniform random sample of N sentences (reservoir sampling, so huge inputs fit in "
                        "memory)")
    t.add_argument("--min-frequency", type=T.nonneg_int, default=2, metavar="K",
                   help="minimum count of a merge / word (default: 2; unigram ignores it)")
    t.add_argument("--seed", type=T.seed, default=0, help="seed of the --max-sentences sample (default: 0)")
    t.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    t.add_argument("--overwrite", action="store_true", help="replace a tokenizer folder that plmkit wrote at --out (anything else is refused)")
    add_reader_arguments(t)
    add_progress_argument(t)
    t.set_defaults(func=run_train)


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


class _Texts:
    """The sentences of the inputs, readable more than once (a unigram vocabulary smaller than the text's
    alphabet reads them twice: see ``train_tokenizer``)."""

    def __init__(self, reader, progress: bool | None):
        self.reader, self.progress = reader, progress

    def __iter__(self):
        return self.reader.texts(self.progress)


def run_train(args: argparse.Namespace) -> int:
    from ..data.readers import CorpusReader
    from .._files import check_output_dir, output_dir
    from .._progress import progress_mode
    from ..tokenization import train_tokenizer

    if args.max_sentences is not None and args.max_sentences < 1:
        raise UsageError(f"--max-sentences must be at least 1, got {args.max_sentences}")
    check_output_dir(args.out, "tokenizer", "tokenizer folder", args.overwrite, inputs=args.inputs)
    reader = CorpusReader(args.inputs, reader_options(args))
    start = time.perf_counter()
    # The folder is locked (and the inputs checked) for the whole run; it appears only once complete.
    with output_dir(args.out, "tokenizer", "tokenizer folder", args.overwrite, inputs=args.inputs) as tmp:
        tok = train_tokenizer(args.kind, _Texts(reader, show_progress(args)), vocab_size=args.vocab_size,
                              lowercase=args.lowercase, strip_accents=args.strip_accents,
                              max_sentences=args.max_sentences, min_frequency=args.min_frequency, seed=args.seed,
                              show_progress=progress_mode(show_progress(args)) == "bar",  # tokenizers' own bar
                              byte_fallback=args.byte_fallback)
        tok.save_pretrained(tmp)
    info = tok.init_kwargs.get("plmkit", {})
    read = sum(s.sentences for s in reader.sources)
    used = info.get("trained_on_sentences", read)
    sample = f" (a random sample of {used:,})" if used < read else ""
    print(f"trained a {args.kind} tokenizer ({'lowercased' if info.get('lowercase') else 'cased'}): vocabulary "
          f"{tok.vocab_size:,} from {read:,} sentences{sample} in {len(reader.sources)} file(s), "
          f"{time.perf_counter() - start:.1f} s -> {args.out}")
    if tok.vocab_size < args.vocab_size and args.kind != "wordlevel":
        print(f"note: the input supports only {tok.vocab_size:,} tokens (asked for {args.vocab_size:,})")
    return 0
