"""``plmkit prepare``: tokenize raw text into a prepared corpus (token-id shards + indexes), and ``--info``.

Examples::

    plmkit prepare --tokenizer tok/ --out data/brown corpora/brown
    plmkit prepare --tokenizer tok/ --out data/novels --doc-per-file --split-sentences corpora/austen
    plmkit prepare --word-level --min-count 2 --out data/elmo corpora/brown
    plmkit prepare --info data/brown
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import _types as T
from . import common_parent
from ..errors import UsageError


def add_reader_arguments(p: argparse.ArgumentParser) -> None:
    """The reader flags shared by ``prepare`` and ``tokenizer train`` (see ``plmkit.data.readers``)."""
    from ..data.readers import FORMATS

    g = p.add_argument_group("input reading")
    g.add_argument("--format", choices=FORMATS, default="auto",
                   help="input format (default: detect per file: .jsonl/.json by extension, Brown word/tag by "
                        "content, else plain text; .gz/.bz2/.xz are decompressed)")
    g.add_argument("--text-field", default="text", metavar="NAME", help="JSON/JSONL field with the text (default: text)")
    g.add_argument("--doc-per-file", action="store_true",
                   help="each input file is one document (default: a blank line separates documents)")
    g.add_argument("--split-sentences", action="store_true",
                   help="split blank-line separated paragraphs into sentences with sentencex (for text that is not "
                        "one sentence per line, e.g. novels or JSON speeches)")
    g.add_argument("--language", default="en", metavar="CODE",
                   help="language for --split-sentences (default: en; ko for Korean)")


def reader_options(args: argparse.Namespace):
    from ..data.readers import ReadOptions

    return ReadOptions(format=args.format, text_field=args.text_field, doc_per_file=args.doc_per_file,
                       split_sentences=args.split_sentences, language=args.language)


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")


def show_progress(args: argparse.Namespace) -> bool | None:
    """``--progress/--no-progress`` for the library (None: the default): progress is shown unless turned off,
    as a bar on a terminal and as plain status lines in a log (plmkit._progress, the same for every command)."""
    return args.progress


def register(sub) -> None:
    p = sub.add_parser(
        "prepare", parents=[common_parent()],
        help="tokenize raw text into token-id shards for pretraining",
        description="Stream the inputs (files, folders, globs), tokenize them in parallel batches and write "
                    "token-id shards, sentence/document indexes, word-start flags, meta.json and a copy of the "
                    "tokenizer into --out. The output appears only when complete.")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="text files, folders or globs")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer or model folder (from 'plmkit tokenizer train')")
    p.add_argument("--out", metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing prepared corpus at --out (only once the new one is complete)")
    p.add_argument("--workers", type=T.any_int, metavar="N",
                   help="tokenizer processes (default: one per CPU); 1 tokenizes in this process with the "
                        "tokenizers library's own threads")
    p.add_argument("--max-sentence-tokens", type=T.nonneg_int, metavar="N", default=None,
                   help="split sentences longer than N tokens at a sentence or clause end (. ! ? ; : ,) near an even "
                        "split, else at a word start, and count them in the summary (default: 512, the longest row "
                        "of the usual models; 0 keeps every sentence whole)")
    p.add_argument("--shard-tokens", type=T.any_int, metavar="N", default=None,
                   help="start a new shard at the first document boundary after N tokens (default: 64Mi)")
    g = p.add_argument_group("word level (ELMo)")
    g.add_argument("--word-level", action="store_true",
                   help="build a frequency-sorted word vocabulary from the input instead of using --tokenizer")
    g.add_argument("--vocab-size", type=T.any_int, metavar="N",
                   help="with --word-level: N entries, the 4 special tokens and the N-4 most frequent words")
    g.add_argument("--min-count", type=T.any_int, metavar="K", help="with --word-level: keep words seen K times (default 1)")
    add_reader_arguments(p)
    add_progress_argument(p)
    g = p.add_argument_group("inspect")
    g.add_argument("--info", metavar="DIR", help="print the statistics of a prepared corpus and exit")
    g.add_argument("--verify", action="store_true", help="with --info: also check every checksum")
    g.add_argument("--json", action="store_true", help="with --info: print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.info:
        return run_info(args)
    from ..data.shards import MAX_SENTENCE_TOKENS, SHARD_TOKENS, prepare_corpus

    if not args.inputs:
        raise UsageError("plmkit prepare needs at least one INPUT (file, folder or glob), or --info DIR")
    if not args.out:
        raise UsageError("plmkit prepare needs --out DIR")
    if args.vocab_size is not None and args.vocab_size < 5:
        raise UsageError(f"--vocab-size {args.vocab_size} is too small (the word vocabulary has 4 special tokens)")
    if args.shard_tokens is not None and args.shard_tokens < 1:
        raise UsageError(f"--shard-tokens must be at least 1, got {args.shard_tokens}")
    if args.min_count is not None and args.min_count < 1:
        raise UsageError(f"--min-count must be at least 1, got {args.min_count}")
    start = time.perf_counter()
    corpus = prepare_corpus(args.inputs, args.out, args.tokenizer, reader_options(args), word_level=args.word_level,
                            vocab_size=args.vocab_size, min_count=args.min_count, overwrite=args.overwrite,
                            workers=args.workers, shard_tokens=args.shard_tokens or SHARD_TOKENS,
                            progress=show_progress(args),
                            max_sentence_tokens=MAX_SENTENCE_TOKENS if args.max_sentence_tokens is None
                            else args.max_sentence_tokens)
    seconds = time.perf_counter() - start
    meta = corpus.meta
    mb = meta["input"]["bytes"] / 1e6
    print(f"prepared {args.out}: {corpus.num_documents:,} documents, {corpus.num_sentences:,} sentences, "
          f"{corpus.num_tokens:,} tokens in {len(meta['shards'])} shard(s) ({meta['dtype']}, vocabulary "
          f"{corpus.vocab_size:,}) from {len(meta['sources'])} file(s), {mb:,.1f} MB in {seconds:.1f} s "
          f"({mb / max(seconds, 1e-9):.1f} MB/s)" + _split_note(meta))
    bad = meta["input"]["invalid_utf8_replaced"]
    if bad:
        files = [s["path"] for s in meta["sources"] if s["invalid_utf8"]]
        print(f"plmkit: warning: replaced {bad:,} invalid UTF-8 byte sequence(s) with U+FFFD in "
              f"{len(files)} file(s): {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}", file=sys.stderr)
    dropped = meta["counts"]["empty_sentences_dropped"]
    if dropped:
        print(f"plmkit: note: dropped {dropped:,} sentence(s) that tokenized to nothing", file=sys.stderr)
    return 0


def _split_note(meta: dict) -> str:
    """``; split 12 sentences longer than 512 tokens`` when prepare split any (else empty)."""
    n = meta["counts"].get("long_sentences_split") or 0
    return f"; split {n:,} sentence(s) longer than {meta.get('max_sentence_tokens')} tokens" if n else ""


def run_info(args: argparse.Namespace) -> int:
    from ..data.shards import PreparedCorpus

    corpus = PreparedCorpus(args.info, verify=args.verify)
    info = corpus.info()
    if args.verify:
        info["verified"] = True
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    tok = info["tokenizer"]
    tps, spd = info["tokens_per_sentence"], info["sentences_per_document"]
    lines = [
        f"prepared corpus  {info['path']}",
        f"tokenizer        {tok['kind']}, vocabulary {tok['vocab_size']:,}, hash {tok['hash']}"
        + (f" (from {tok['source']})" if tok.get("source") else "") + (", word level" if tok.get("word_level") else ""),
        f"documents        {info['documents']:,}",
        f"sentences        {info['sentences']:,}  ({spd['mean']:.1f} per document, max {spd['max']:,})",
        f"tokens           {info['tokens']:,}  ({tps['mean']:.1f} per sentence, median {tps['p50']:.0f}, "
        f"p99 {tps['p99']:.0f}, max {tps['max']:,})",
        f"shards           {info['shards']} x {info['dtype']}, {info['disk_bytes'] / 1e6:,.1f} MB on disk",
    ]
    if info.get("input"):
        inp = info["input"]
        lines.append(f"input            {info['sources']} file(s), {inp['bytes'] / 1e6:,.1f} MB, "
                     f"{inp['invalid_utf8_replaced']:,} invalid UTF-8 sequence(s) replaced")
    split = _split_note(corpus.meta)
    if split:
        lines.append(f"split            {split.removeprefix('; split ')} (--max-sentence-tokens)")
    if info["empty_sentences_dropped"]:
        lines.append(f"dropped          {info['empty_sentences_dropped']:,} sentence(s) that tokenized to nothing")
    if info.get("reader"):
        r = info["reader"]
        lines.append("reader           " + ", ".join(f"{k}={v}" for k, v in r.items()))
    lines.append(f"created          {info['created']}")
    if args.verify:
        lines.append("checksums        ok")
    print("\n".join(lines))
    return 0
