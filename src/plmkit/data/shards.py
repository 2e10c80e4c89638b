"""Prepared corpora: token-id shards on disk, read back through ``np.memmap``.

``plmkit prepare`` (:func:`prepare_corpus`) tokenizes raw text once into a folder that the
pretraining objectives read with flat memory however large the corpus (DESIGN §4), so that a data
position is a few integers (exact resume, per-rank sharding under DDP). This is the role of BERT's
``create_pretraining_data.py`` TFRecords and of Megatron's / fairseq's indexed datasets, but the
folder keeps *sentences and documents* rather than finished training examples: masking, pairs and
packing are decided later (static or dynamic masking, NSP/SOP, FULL-/DOC-SENTENCES), so one prepared
corpus serves BERT, RoBERTa, ALBERT, the causal LM and (with ``--word-level``) ELMo.

Layout of a prepared folder::

    .plmkit-output.json        ownership marker (plmkit._files): --overwrite replaces only such a folder
    meta.json                  counts, tokenizer hash and vocabulary size, sources (size, sha256),
                               shards (token ranges, sha256), reader options
    tokenizer/                 the tokenizer used (tokenizer.json + side files)
    shards/00000.tokens.bin    token ids, raw little-endian uint16 (vocabulary <= 65536) or uint32
    shards/00000.word_starts.bin  uint8 per token: 1 where the token starts a word (tokenizer word ids)
    sentence_lengths.npy       int64 (S,)    tokens per sentence
    sentence_offsets.npy       int64 (S+1,)  first token of each sentence in the corpus-wide token stream
    doc_sentence_offsets.npy   int64 (D+1,)  document d = sentences [off[d], off[d+1])

Documents never straddle shards (a shard is closed at the first document boundary past
``shard_tokens``), so a document is one contiguous slice of one memory-mapped file. Sentences that
tokenize to nothing are dropped (and counted); documents left empty disappear with them.

The pipeline streams: a thread reads and batches sentences, worker processes tokenize batches and
turn them into arrays (so the Python side scales with the cores too, not only the Rust tokenizer),
and the writer appends ids, word starts and lengths to open files, updating sha256s as it goes;
memory does not grow with the corpus. Output is written into a hidden temporary
folder next to ``out`` and renamed into place only when complete; with ``overwrite`` the old folder
is replaced only after the new one is finished, and only if it is a plmkit output.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import itertools
import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .._files import check_output_dir, output_dir
from .._progress import Progress
from ..errors import CheckpointError, DataError, UsageError, excerpt, type_name
from tokenizers import Tokenizer as FastTokenizer

from ..tokenization import Tokenizer, load_tokenizer, train_tokenizer
from .readers import CorpusReader, ReadOptions

FORMAT_NAME = "plmkit-prepared"
FORMAT_VERSION = 1
# 64M tokens = 128 MB of uint16 per shard: few files for big corpora, small enough to copy around.
SHARD_TOKENS = 64 * 2**20
# Characters of text per batch (one encode_batch call): ~2,500 sentences, enough to keep a worker's
# overhead per batch negligible; 2 x workers batches in flight stay a few MB each.
BATCH_CHARS = 1 << 18
META = "meta.json"
# Sentences longer than this many tokens are split (prepare --max-sentence-tokens; 0 keeps them whole). A
# "sentence" that long is a splitter's miss (one State of the Union paragraph gave 16,381 tokens), and no row of
# a 512-position model holds it: segment-pair rows would cut it off, losing the rest. Pieces are cut at a
# sentence or clause end (. ! ? ; : , and dashes) near an even split, else at a word start.
MAX_SENTENCE_TOKENS = 512
_STRONG_ENDS = set(".!?;:…")
_CLAUSE_ENDS = _STRONG_ENDS | set(",—–")


def boundary_classes(tok: Tokenizer) -> np.ndarray:
    """Per token id: 2 when the token ends a sentence or strong clause (``. ! ? ; : …``), 1 a clause (``, — –``),
    else 0 — read from the token strings (WordPiece ``##``, byte-level ``Ġ`` and SentencePiece ``▁`` removed)."""
    classes = np.zeros(tok.vocab_size, dtype=np.int8)
    for i in range(tok.vocab_size):
        text = tok.id_to_token(i) or ""
        core = text.removeprefix("##").replace("\u0120", "").replace("\u2581", "").strip()
        core = core.rstrip("\"')]}\u201d\u2019")  # a closing quote or bracket after the mark
        if core and all(not ch.isalnum() for ch in core):
            classes[i] = 2 if core[-1] in _STRONG_ENDS else (1 if core[-1] in _CLAUSE_ENDS else 0)
    return classes


def _cut_points(ids: np.ndarray, word_starts: np.ndarray, max_tokens: int, classes: np.ndarray | None) -> list[int]:
    """Piece lengths of one sentence of ``len(ids)`` > ``max_tokens`` tokens, each at most ``max_tokens``.

    Each cut aims at an even split (``ceil(rest / pieces)`` tokens) and takes, within [half that, max_tokens],
    the nearest sentence end, else the nearest clause end, else the nearest word start, else the even point.
    """
    n = len(ids)
    pieces: list[int] = []
    pos = 0
    while n - pos > max_tokens:
        rest = n - pos
        target = -(-rest // -(-rest // max_tokens))
        cand = np.arange(pos + max(1, target // 2), min(pos + max_tokens, n - 1) + 1)
        word = word_starts[cand] == 1
        tiers = [word]
        if classes is not None:
            ends = classes[ids[cand - 1].astype(np.int64)]
            tiers = [word & (ends == 2), word & (ends >= 1), word]
        cut = pos + target
        for mask in tiers:
            if mask.any():
                choices = cand[mask]
                cut = int(choices[np.argmin(np.abs(choices - (pos + target)))])
                break
        pieces.append(cut - pos)
        pos = cut
    pieces.append(n - pos)
    return pieces


def split_long_sentences(ids: np.ndarray, word_starts: np.ndarray, lengths: np.ndarray, max_tokens: int,
                         classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Split sentences longer than ``max_tokens``: ``(new_lengths, source, n_split)``.

    The token stream does not change, only where sentences end: ``new_lengths`` are the pieces' lengths,
    ``source`` the input sentence of each piece (to repeat per-sentence flags), and ``word_starts`` is set at
    each new sentence start (in place), which always starts a word.
    """
    long = np.flatnonzero(lengths > max_tokens) if max_tokens else np.zeros(0, dtype=np.int64)
    if not len(long):
        return lengths, np.arange(len(lengths)), 0
    offsets = np.cumsum(lengths) - lengths
    counts = np.ones(len(lengths), dtype=np.int64)
    pieces: dict[int, list[int]] = {}
    for i in long.tolist():
        a, n = int(offsets[i]), int(lengths[i])
        pieces[i] = _cut_points(ids[a:a + n], word_starts[a:a + n], max_tokens, classes)
        counts[i] = len(pieces[i])
        word_starts[a + np.cumsum(pieces[i][:-1])] = 1
    source = np.repeat(np.arange(len(lengths)), counts)
    new = lengths[source].copy()
    first = np.cumsum(counts) - counts
    for i, p in pieces.items():
        new[first[i]:first[i] + len(p)] = p
    return new, source, len(long)




def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocabulary <= 65536), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


# ------------------------------------------------------------------------------------ atomic output
def is_prepared_corpus(path: Path) -> bool:
    try:
        return json.loads((path / META).read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


KIND = "prepared-corpus"


def atomic_output_dir(out: str | os.PathLike, overwrite: bool = False, inputs: Iterable[Any] = ()):
    """The prepared corpus' output folder, built beside ``out`` and swapped in when complete (see :mod:`plmkit._files`)."""
    return output_dir(out, KIND, "prepared corpus", overwrite=overwrite, inputs=inputs)


# ------------------------------------------------------------------------------------ writing
class _HashedFile:
    """A binary file opened for appending whose sha256 is computed as it is written."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "wb")
        self.sha = hashlib.sha256()
        self.nbytes = 0

    def write(self, arr: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(arr)).cast("B")
        self.f.write(data)
        self.sha.update(data)
        self.nbytes += data.nbytes

    def close(self) -> str:
        self.f.close()
        return self.sha.hexdigest()


class ShardWriter:
    """Append batches of tokenized sentences to shards and boundary indexes in ``folder``.

    ``add(ids, word_starts, lengths, doc_starts)`` takes one batch: the concatenated token ids and
    word-start flags (N,), the tokens per sentence (S,) and whether each sentence starts a document
    (S,). ``finish()`` writes the index ``.npy`` files and returns the counts and shard table for
    ``meta.json``.
    """

    def __init__(self, folder: Path, vocab_size: int, shard_tokens: int = SHARD_TOKENS,
                 max_sentence_tokens: int | None = None, boundaries: np.ndarray | None = None):
        if shard_tokens < 1:
            raise UsageError(f"shard size must be positive, got {shard_tokens}")
        self.folder = Path(folder)
        self.vocab_size = int(vocab_size)
        self.dtype = token_dtype(vocab_size)
        self.shard_tokens = int(shard_tokens)
        (self.folder / "shards").mkdir(parents=True, exist_ok=True)
        self._lengths = _HashedFile(self.folder / "sentence_lengths.tmp")
        self._doc_offsets = _HashedFile(self.folder / "doc_offsets.tmp")
        self.num_tokens = self.num_sentences = self.num_documents = 0
        self.empty_sentences = 0
        # Sentences longer than max_sentence_tokens are split (split_long_sentences; None/0: kept whole).
        self.max_sentence_tokens = max_sentence_tokens or 0
        self.boundaries = boundaries
        self.long_sentences_split = 0
        self.shards: list[dict[str, Any]] = []
        self._input_doc = -1     # input document id of the last sentence seen (kept or not)
        self._kept_doc = -1      # input document id of the last sentence kept
        self._tokens: _HashedFile | None = None
        self._starts: _HashedFile | None = None

    # -- shards
    def _open_shard(self) -> None:
        i = len(self.shards)
        self._tokens = _HashedFile(self.folder / "shards" / f"{i:05d}.tokens.bin")
        self._starts = _HashedFile(self.folder / "shards" / f"{i:05d}.word_starts.bin")
        self.shards.append({"tokens_file": f"shards/{i:05d}.tokens.bin",
                            "word_starts_file": f"shards/{i:05d}.word_starts.bin",
                            "token_offset": self.num_tokens, "num_tokens": 0,
                            "first_sentence": self.num_sentences, "num_sentences": 0,
                            "first_document": self.num_documents, "num_documents": 0})

    def _close_shard(self) -> None:
        assert self._tokens is not None and self._starts is not None
        shard = self.shards[-1]
        shard["sha256_tokens"] = self._tokens.close()
        shard["sha256_word_starts"] = self._starts.close()
        self._tokens = self._starts = None

    # -- batches
    def add(self, ids: np.ndarray, word_starts: np.ndarray, lengths: np.ndarray, doc_starts: np.ndarray) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        doc_starts = np.asarray(doc_starts, dtype=bool)
        ids = np.asarray(ids)
        word_starts = np.asarray(word_starts)
        if lengths.ndim != 1 or doc_starts.shape != lengths.shape:
            raise UsageError(f"lengths {lengths.shape} and doc_starts {doc_starts.shape} must be matching 1-D arrays")
        total = int(lengths.sum())
        if ids.shape != (total,) or word_starts.shape != (total,):
            raise UsageError(f"ids {ids.shape} and word_starts {word_starts.shape} must hold the {total} tokens of "
                             "the batch's sentences")
        if len(lengths) == 0:
            return
        if (lengths < 0).any():
            raise UsageError("sentence lengths must be non-negative")
        if total and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise DataError(f"token ids must lie in [0, {self.vocab_size}) (the tokenizer's vocabulary), got "
                            f"{int(ids.min())}..{int(ids.max())}")
        # Input document of each sentence; a kept sentence starts a document when its input document
        # differs from the last kept sentence's (this drops empty sentences and emptied documents).
        doc_ids = self._input_doc + np.cumsum(doc_starts, dtype=np.int64)
        if self._input_doc < 0 and not doc_starts[0]:
            doc_ids += 1  # the very first sentence always starts a document
        self._input_doc = int(doc_ids[-1])
        keep = lengths > 0
        if not keep.all():
            self.empty_sentences += int((~keep).sum())
            lengths, doc_ids = lengths[keep], doc_ids[keep]
            if len(lengths) == 0:
                return
        if self.max_sentence_tokens and int(lengths.max()) > self.max_sentence_tokens:
            word_starts = word_starts.copy()
            lengths, source, n_split = split_long_sentences(ids, word_starts, lengths, self.max_sentence_tokens,
                                                            self.boundaries)
            doc_ids = doc_ids[source]  # the pieces continue their sentence's document
            self.long_sentences_split += n_split
        prev = np.empty_like(doc_ids)
        prev[0] = self._kept_doc
        prev[1:] = doc_ids[:-1]
        starts = doc_ids != prev
        self._kept_doc = int(doc_ids[-1])
        ids = ids.astype(self.dtype, copy=False)
        word_starts = word_starts.astype(np.uint8, copy=False)
        self._write(ids, word_starts, lengths, starts)

    def _write(self, ids: np.ndarray, ws: np.ndarray, lengths: np.ndarray, starts: np.ndarray) -> None:
        tok_pos = 0
        while len(lengths):
            if self._tokens is None:
                self._open_shard()
            shard = self.shards[-1]
            before = shard["num_tokens"] + np.cumsum(lengths) - lengths  # shard tokens before each sentence
            # Roll over at the first document start that finds the (non-empty) shard full.
            full = np.flatnonzero(starts & (before >= self.shard_tokens) & (before > 0))
            k = int(full[0]) if len(full) else len(lengths)
            n_tok = int(lengths[:k].sum())
            n_docs = int(starts[:k].sum())
            if k:
                self._tokens.write(ids[tok_pos:tok_pos + n_tok])
                self._starts.write(ws[tok_pos:tok_pos + n_tok])  # type: ignore[union-attr]
                self._lengths.write(lengths[:k])
                doc_sent = self.num_sentences + np.flatnonzero(starts[:k]).astype(np.int64)
                self._doc_offsets.write(doc_sent)
                shard["num_tokens"] += n_tok
                shard["num_sentences"] += k
                shard["num_documents"] += n_docs
                self.num_tokens += n_tok
                self.num_sentences += k
                self.num_documents += n_docs
            tok_pos += n_tok
            lengths, starts = lengths[k:], starts[k:]
            if len(lengths):
                self._close_shard()

    def finish(self) -> dict[str, Any]:
        """Close the shards and write the index files; returns the ``meta.json`` counts and shard table."""
        if self.num_sentences == 0:
            raise DataError("the input produced no tokens (every sentence tokenized to nothing), so there is "
                            "nothing to write")
        self._close_shard()
        self._lengths.close()
        self._doc_offsets.close()
        lengths_tmp, docs_tmp = self.folder / "sentence_lengths.tmp", self.folder / "doc_offsets.tmp"
        files: dict[str, str] = {}
        lengths = np.memmap(lengths_tmp, dtype=np.int64, mode="r")
        files["sentence_lengths.npy"] = _save_npy_chunked(self.folder / "sentence_lengths.npy", [lengths],
                                                          len(lengths))
        offsets = _cumsum_chunks(lengths)
        files["sentence_offsets.npy"] = _save_npy_chunked(self.folder / "sentence_offsets.npy", offsets,
                                                          len(lengths) + 1)
        doc_starts = np.memmap(docs_tmp, dtype=np.int64, mode="r")
        files["doc_sentence_offsets.npy"] = _save_npy_chunked(
            self.folder / "doc_sentence_offsets.npy", [doc_starts, np.array([self.num_sentences], np.int64)],
            len(doc_starts) + 1)
        del lengths, doc_starts
        lengths_tmp.unlink()
        docs_tmp.unlink()
        return {
            "dtype": self.dtype.name,
            "counts": {"documents": self.num_documents, "sentences": self.num_sentences, "tokens": self.num_tokens,
                       "empty_sentences_dropped": self.empty_sentences,
                       "long_sentences_split": self.long_sentences_split},
            "max_sentence_tokens": self.max_sentence_tokens or None,
            "shard_tokens": self.shard_tokens,
            "shards": self.shards,
            "index_sha256": files,
        }

    def close(self) -> None:
        for f in (self._tokens, self._starts, self._lengths, self._doc_offsets):
            if f is not None and not f.f.closed:
                f.f.close()


def _cumsum_chunks(lengths: np.ndarray, chunk: int = 1 << 22) -> Iterator[np.ndarray]:
    """0, then the running sum of ``lengths``, one chunk at a time (flat memory)."""
    yield np.zeros(1, dtype=np.int64)
    total = 0
    for i in range(0, len(lengths), chunk):
        c = np.cumsum(lengths[i:i + chunk], dtype=np.int64) + total
        total = int(c[-1])
        yield c


def _save_npy_chunked(path: Path, chunks: Iterable[np.ndarray], n: int, chunk: int = 1 << 22) -> str:
    """Write an int64 ``.npy`` of length ``n`` from array pieces without holding it in memory; returns its sha256."""
    header = io_npy_header(np.dtype(np.int64), (n,))
    sha = hashlib.sha256(header)
    written = 0
    with open(path, "wb") as f:
        f.write(header)
        for arr in chunks:
            for i in range(0, len(arr), chunk):
                data = memoryview(np.ascontiguousarray(arr[i:i + chunk], dtype=np.int64)).cast("B")
                f.write(data)
                sha.update(data)
                written += data.nbytes // 8
    assert written == n, (path, written, n)
    return sha.hexdigest()


def io_npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The bytes of a version-1.0 ``.npy`` header (what ``np.save`` writes before the data)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def _tokenizer_meta(tok: Tokenizer, source: str | None) -> dict[str, Any]:
    return {"hash": tok.hash(), "kind": tok.kind, "vocab_size": tok.vocab_size, "source": source,
            "word_level": tok.kind == "wordlevel"}


def _write_meta(folder: Path, tok: Tokenizer, written: dict[str, Any], tokenizer_source: str | None,
                extra: dict[str, Any]) -> dict[str, Any]:
    from .._version import __version__

    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "plmkit_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tokenizer": _tokenizer_meta(tok, tokenizer_source),
        **written,
        **extra,
    }
    (folder / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def write_prepared(out_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike,
                   documents: Iterable[list[tuple[np.ndarray, np.ndarray]]], overwrite: bool = False,
                   shard_tokens: int = SHARD_TOKENS) -> "PreparedCorpus":
    """Write a prepared corpus from already tokenized documents.

    ``documents`` yields documents, each a list of sentences ``(ids, word_starts)`` (1-D arrays of
    equal length). Tests use it to build tiny corpora without a tokenizer run; it is the same
    writer ``prepare_corpus`` uses.
    """
    tok = load_tokenizer(tokenizer_dir)
    with atomic_output_dir(out_dir, overwrite, [tokenizer_dir]) as tmp:
        tok.save_pretrained(tmp / "tokenizer")
        writer = ShardWriter(tmp, tok.vocab_size, shard_tokens)
        try:
            ids_buf: list[np.ndarray] = []
            ws_buf: list[np.ndarray] = []
            lens: list[int] = []
            starts: list[bool] = []
            pending = 0
            for d, doc in enumerate(documents):
                for s, (ids, ws) in enumerate(doc):
                    ids, ws = np.asarray(ids).ravel(), np.asarray(ws).ravel()
                    if ids.shape != ws.shape:
                        raise UsageError(f"document {d}, sentence {s}: {len(ids)} ids but {len(ws)} word-start flags")
                    ids_buf.append(ids)
                    ws_buf.append(ws)
                    lens.append(len(ids))
                    starts.append(s == 0)
                    pending += len(ids)
                if pending >= 1 << 20:
                    writer.add(np.concatenate(ids_buf), np.concatenate(ws_buf), np.array(lens), np.array(starts))
                    ids_buf, ws_buf, lens, starts, pending = [], [], [], [], 0
            if lens:
                writer.add(np.concatenate(ids_buf), np.concatenate(ws_buf), np.array(lens), np.array(starts))
            written = writer.finish()
        finally:
            writer.close()
        _write_meta(tmp, tok, written, str(tokenizer_dir), {"sources": [], "reader": None})
    return PreparedCorpus(out_dir)


# ------------------------------------------------------------------------------------ the pipeline
def encodings_to_arrays(encodings: Sequence[Any], dtype: np.dtype, word_level: bool = False
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated ids (N,), word-start flags (N,) uint8 and lengths (S,) of a batch of encodings.

    A token starts a word when its word id differs from the previous token's (tokenizers' word ids
    come from pre-tokenization, so this holds for WordPiece, byte-level BPE and unigram alike) and
    at every sentence start; tokens without a word id (added tokens) start a word.
    """
    lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=len(encodings))
    total = int(lengths.sum())
    ids = np.fromiter(itertools.chain.from_iterable([e.ids for e in encodings]), dtype=dtype, count=total)
    if word_level:
        return ids, np.ones(total, dtype=np.uint8), lengths
    words = np.array(list(itertools.chain.from_iterable([e.word_ids for e in encodings])), dtype=np.float64)
    starts = np.ones(total, dtype=np.uint8)
    if total > 1:
        np.not_equal(words[1:], words[:-1], out=starts[1:].view(bool))  # NaN (no word id) != anything
    offsets = np.cumsum(lengths) - lengths
    starts[offsets[lengths > 0]] = 1
    return ids, starts, lengths


def _batches(sentences: Iterable[tuple[str, bool]], max_chars: int) -> Iterator[tuple[list[str], list[bool]]]:
    texts: list[str] = []
    starts: list[bool] = []
    size = 0
    for text, start in sentences:
        texts.append(text)
        starts.append(start)
        size += len(text)
        if size >= max_chars:
            yield texts, starts
            texts, starts, size = [], [], 0
    if texts:
        yield texts, starts


def _tokenized_batches(backend: Any, batches: Iterable[tuple[list[str], list[bool]]], dtype: np.dtype,
                       word_level: bool, workers: int
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, list[bool]]]:
    """``(ids, word_starts, lengths, doc_starts)`` per batch, in input order.

    A thread reads and batches the text ahead (decoding, sentence splitting). With ``workers`` > 1,
    batches are tokenized *and turned into arrays* in that many worker processes (forked where the
    platform can), one tokenizer thread each, at most ``2 * workers`` batches in flight: the Python
    work on the encodings (``Encoding.ids`` / ``.word_ids`` → numpy, ~10% of the tokenizer's time)
    then runs in parallel too, where with one process it would hold the GIL while the tokenizer's
    threads wait. With ``workers`` == 1 batches are encoded in this process by ``encode_batch``
    (whose Rust thread pool follows ``RAYON_NUM_THREADS`` / ``TOKENIZERS_PARALLELISM``).
    """
    if workers <= 1:
        encode = backend.encode_batch_fast if word_level else backend.encode_batch
        for texts, starts in _prefetch(batches, depth=2):
            yield (*encodings_to_arrays(encode(texts, add_special_tokens=False), dtype, word_level), starts)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    # Set while forking: the children then run single-threaded without tokenizers' fork warning.
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                   initargs=(backend.to_str(),))
        pool.submit(int).result()  # start the workers now, under the setting above
    finally:
        if saved is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved
    pending: collections.deque = collections.deque()
    try:
        for texts, starts in _prefetch(batches, depth=2):
            pending.append((pool.submit(_encode_job, texts, dtype.name, word_level), starts))
            if len(pending) >= 2 * workers:
                fut, st = pending.popleft()
                yield (*_result(fut), st)
        while pending:
            fut, st = pending.popleft()
            yield (*_result(fut), st)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _result(fut: Any) -> Any:
    try:
        return fut.result()
    except BrokenProcessPool:
        raise DataError("a tokenizer worker process died (out of memory?); run again with fewer --workers") from None


_worker_tokenizer: Any = None


def _init_worker(tokenizer_json: str) -> None:
    """Worker process set-up: one tokenizer thread; the parent handles Ctrl-C and SIGTERM (it stops the pool and
    removes the partial output), and a worker whose parent was killed (``kill -9``) is killed too."""
    global _worker_tokenizer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_tokenizer = FastTokenizer.from_str(tokenizer_json)


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGKILL to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the call
        os._exit(1)


def _encode_job(texts: list[str], dtype: str, word_level: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    encode = _worker_tokenizer.encode_batch_fast if word_level else _worker_tokenizer.encode_batch
    return encodings_to_arrays(encode(texts, add_special_tokens=False), np.dtype(dtype), word_level)


def default_workers() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _prefetch(iterable: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead; its errors re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterable:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer, which raises it
            put(_Raised(e))

    thread = threading.Thread(target=work, name="plmkit-read", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def prepare_corpus(inputs: str | os.PathLike | Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                   tokenizer: str | os.PathLike | None = None, options: ReadOptions | None = None, *,
                   word_level: bool = False, vocab_size: int | None = None, min_count: int | None = None,
                   overwrite: bool = False, workers: int | None = None, shard_tokens: int = SHARD_TOKENS,
                   batch_chars: int = BATCH_CHARS, progress: bool | None = False,
                   max_sentence_tokens: int | None = MAX_SENTENCE_TOKENS, **reader_kwargs: Any) -> "PreparedCorpus":
    """Tokenize ``inputs`` into a prepared corpus at ``out_dir`` (what ``plmkit prepare`` runs).

    ``tokenizer`` is a tokenizer or model folder. With ``word_level=True`` a word-level vocabulary is
    built from the input instead (ELMo): words sorted by frequency after ``<pad> <unk> <s> </s>``,
    capped at ``vocab_size`` or keeping words seen ``min_count`` times (default 1). Reader options
    come from ``options`` and/or keyword arguments (:class:`ReadOptions` fields). ``workers``
    tokenizer processes (default: one per CPU; 1 = in this process, see :func:`_tokenized_batches`).
    ``progress`` None or True shows progress on stderr (a bar on a terminal, status lines in a log).
    Sentences longer than ``max_sentence_tokens`` are split at sentence, clause or word boundaries
    (:func:`split_long_sentences`; None or 0 keeps them whole); ``meta.json`` counts them.
    """
    options = ReadOptions.from_kwargs(options, **reader_kwargs)
    if word_level and tokenizer is not None:
        raise UsageError("--word-level builds its own vocabulary; do not pass --tokenizer with it")
    if not word_level and tokenizer is None:
        raise UsageError("pass --tokenizer DIR (a folder from 'plmkit tokenizer train' or a model folder), or "
                         "--word-level for a word vocabulary")
    if not word_level and (vocab_size is not None or min_count is not None):
        raise UsageError("--vocab-size and --min-count apply only with --word-level")
    if vocab_size is not None and min_count is not None:
        raise UsageError("pass either --vocab-size or --min-count, not both")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    named_inputs = [*inputs, tokenizer]
    check_output_dir(out_dir, KIND, "prepared corpus", overwrite, named_inputs)  # fail before reading
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if max_sentence_tokens is not None and (isinstance(max_sentence_tokens, bool) or max_sentence_tokens < 0):
        raise UsageError(f"--max-sentence-tokens must be 0 (keep long sentences whole) or more, got "
                         f"{max_sentence_tokens!r}")
    workers = workers or default_workers()
    tok = load_tokenizer(tokenizer) if tokenizer is not None else None
    reader = CorpusReader(inputs, options)

    if word_level:
        tok = train_tokenizer("wordlevel", reader.texts(progress, desc="counting words"), vocab_size=vocab_size or 0,
                              min_frequency=min_count or 1)
    assert tok is not None
    backend = tok.backend
    dtype = token_dtype(tok.vocab_size)
    is_word_level = tok.kind == "wordlevel"

    with atomic_output_dir(out_dir, overwrite, named_inputs) as tmp:
        tok.save_pretrained(tmp / "tokenizer")
        writer = ShardWriter(tmp, tok.vocab_size, shard_tokens, max_sentence_tokens=max_sentence_tokens,
                             boundaries=boundary_classes(tok) if max_sentence_tokens else None)
        try:
            with Progress(total=reader.total_bytes, unit="B", unit_scale=True, desc="prepare", enabled=progress,
                          mininterval=0.5) as bar:
                last = 0
                batches = _batches(reader.sentences(), batch_chars)
                for ids, word_starts, lengths, starts in _tokenized_batches(backend, batches, dtype, is_word_level,
                                                                            workers):
                    writer.add(ids, word_starts, lengths, np.array(starts, dtype=bool))
                    now = reader.bytes_read
                    bar.update(now - last)
                    last = now
                    bar.set_postfix(tokens=f"{writer.num_tokens:,}", refresh=False)
            written = writer.finish()
        finally:
            writer.close()
        sources = [s.to_json() for s in reader.sources]
        extra = {
            "sources": sources,
            "input": {"bytes": sum(s["size"] for s in sources), "invalid_utf8_replaced": reader.invalid_utf8,
                      "sentences_read": sum(s["sentences"] for s in sources),
                      "documents_read": sum(s["documents"] for s in sources)},
            "reader": asdict(options),
        }
        if word_level:
            extra["word_vocabulary"] = {"vocab_size": vocab_size, "min_count": min_count or (None if vocab_size else 1)}
        _write_meta(tmp, tok, written, None if word_level else str(tokenizer), extra)
    return PreparedCorpus(out_dir)


# ------------------------------------------------------------------------------------ reading
class PreparedCorpus:
    """Random access to a prepared folder's documents and sentences as token-id arrays (``np.memmap``).

    Nothing but the small index arrays is touched until asked for: ``corpus.document_tokens(d)``
    is a view into a memory-mapped shard. ``verify=True`` checks every checksum in ``meta.json``.
    """

    def __init__(self, path: str | os.PathLike, verify: bool = False, _checked: bool = False):
        self.path = Path(path)
        meta_path = self.path / META
        if not self.path.is_dir():
            raise DataError(f"prepared corpus {self.path} does not exist; create it with 'plmkit prepare'")
        try:
            raw = meta_path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{self.path} is not a prepared corpus (no {META}); create it with 'plmkit prepare'") \
                from None
        except OSError as e:
            raise DataError(f"{meta_path}: cannot be read ({e.strerror}); prepare the corpus again") from None
        try:
            self.meta: dict[str, Any] = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit number
            raise DataError(f"{meta_path}: not valid JSON ({excerpt(str(e))}); prepare the corpus again") from None
        if not isinstance(self.meta, dict):
            raise DataError(f"{meta_path}: expected a JSON object, got {type_name(self.meta)} ({excerpt(self.meta)}); "
                            "prepare the corpus again")
        if self.meta.get("format") != FORMAT_NAME:
            raise DataError(f"{meta_path} does not describe a plmkit prepared corpus (format "
                            f"{excerpt(self.meta.get('format'))}); create one with 'plmkit prepare'")
        version = self.meta.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise DataError(f"{meta_path}: 'version' is {type_name(version)} ({excerpt(version)}), expected an integer; "
                            "prepare the corpus again")
        if version > FORMAT_VERSION:
            raise DataError(f"{self.path} was prepared by a newer plmkit (format version {version}); upgrade plmkit")
        m = _MetaReader(meta_path, self.meta)
        tok = m.get(self.meta, "tokenizer", dict)
        self.vocab_size: int = m.count(tok, "tokenizer.vocab_size", minimum=1)
        self.tokenizer_hash: str = m.get(tok, "tokenizer.hash", str)
        self.word_level: bool = bool(m.get(tok, "tokenizer.word_level", bool, default=False))
        counts = m.get(self.meta, "counts", dict)
        self.num_documents: int = m.count(counts, "counts.documents")
        self.num_sentences: int = m.count(counts, "counts.sentences")
        self.num_tokens: int = m.count(counts, "counts.tokens")
        dtype = m.get(self.meta, "dtype", str)
        if dtype not in ("uint16", "uint32"):
            raise DataError(f"{meta_path}: 'dtype' is {excerpt(dtype)}, expected uint16 or uint32; prepare the corpus "
                            "again")
        self.dtype = np.dtype(dtype)
        if self.vocab_size > np.iinfo(self.dtype).max + 1:
            raise DataError(f"{meta_path}: tokenizer.vocab_size {self.vocab_size} does not fit dtype {dtype}; "
                            "prepare the corpus again")
        self.sentence_lengths: np.ndarray = self._index("sentence_lengths.npy", self.num_sentences)
        self.sentence_offsets: np.ndarray = self._index("sentence_offsets.npy", self.num_sentences + 1)
        self.doc_sentence_offsets: np.ndarray = self._index("doc_sentence_offsets.npy", self.num_documents + 1)
        shards = m.get(self.meta, "shards", list)
        if not shards:
            raise DataError(f"{meta_path}: 'shards' is empty; the corpus has no token files — prepare it again")
        expected_offset = 0
        for i, s in enumerate(shards):
            key = f"shards[{i}]"
            if not isinstance(s, dict):
                raise DataError(f"{meta_path}: {key} is {type_name(s)} ({excerpt(s)}), expected an object; prepare the "
                                "corpus again")
            offset = m.count(s, f"{key}.token_offset")
            n = m.count(s, f"{key}.num_tokens")
            if offset != expected_offset:
                raise DataError(f"{meta_path}: {key}.token_offset is {offset}, expected {expected_offset} (the shards "
                                "must cover the token stream in order, without gaps); prepare the corpus again")
            expected_offset += n
            for name in ("tokens_file", "word_starts_file"):
                rel = m.get(s, f"{key}.{name}", str)
                if Path(rel).is_absolute() or ".." in Path(rel).parts or not rel.strip() or "\x00" in rel \
                        or len(rel) > 1024 or any(len(part) > 255 for part in Path(rel).parts):
                    raise DataError(f"{meta_path}: {key}.{name} is {excerpt(rel)}; shard files must lie inside the "
                                    "corpus folder (no absolute paths, no '..') — prepare the corpus again")
        if expected_offset != self.num_tokens:
            raise DataError(f"{meta_path}: the shards hold {expected_offset} tokens but counts.tokens is "
                            f"{self.num_tokens}; prepare the corpus again")
        self._shard_starts = np.array([s["token_offset"] for s in shards] + [self.num_tokens], dtype=np.int64)
        self._tokens: list[np.ndarray | None] = [None] * len(shards)
        self._starts: list[np.ndarray | None] = [None] * len(shards)
        for s in shards:
            for key, itemsize in (("tokens_file", self.dtype.itemsize), ("word_starts_file", 1)):
                f = self.path / s[key]
                try:
                    size = f.stat().st_size if f.is_file() else -1
                except OSError:  # a name the file system refuses: as good as missing
                    size = -1
                if size != s["num_tokens"] * itemsize:
                    raise DataError(f"{f} is {'missing' if size < 0 else f'{size} bytes'}, expected "
                                    f"{s['num_tokens'] * itemsize}; the corpus is incomplete or damaged, prepare "
                                    "it again")
        if verify:  # checksums first: they name the damaged file
            self.verify()
        if not _checked:  # a copy made for a DataLoader worker (__setstate__) was checked in the parent
            self._check_indexes()

    def _index(self, name: str, n: int) -> np.ndarray:
        f = self.path / name
        try:
            arr = np.load(f, mmap_mode="r", allow_pickle=False)  # never unpickle (object arrays are refused)
        except Exception as e:  # OSError, ValueError, EOFError; SyntaxError / TokenError from a damaged header
            raise DataError(f"{f} cannot be read ({type(e).__name__}: {excerpt(str(e))}); the corpus is incomplete or damaged, prepare "
                            "it again") from None
        if arr.shape != (n,) or arr.dtype != np.int64:
            raise DataError(f"{f} holds {arr.dtype}{arr.shape}, expected int64({n},) as meta.json says; prepare the "
                            "corpus again")
        return arr

    def _check_indexes(self, chunk: int = 1 << 22) -> None:
        """The index arrays agree with each other and with the shards (read in chunks: flat memory):
        sentence offsets start at 0, step by the sentence lengths (never negative) and end at the token
        count; document offsets rise from 0 to the sentence count; no document crosses a shard."""
        off, lengths, docs = self.sentence_offsets, self.sentence_lengths, self.doc_sentence_offsets
        meta = self.path / META

        def bad(name: str, what: str) -> DataError:
            return DataError(f"{self.path / name}: {what}; the index does not match {meta} — the corpus is damaged: "
                             "run 'plmkit prepare' for this corpus again (with --overwrite), or restore the folder "
                             "from a copy")

        if int(off[0]) != 0 or int(off[-1]) != self.num_tokens:
            raise bad("sentence_offsets.npy", f"runs from {int(off[0])} to {int(off[-1])}, expected 0 to "
                      f"{self.num_tokens} (counts.tokens)")
        for a in range(0, self.num_sentences, chunk):
            b = min(a + chunk, self.num_sentences)
            piece = np.asarray(lengths[a:b])
            if (piece < 0).any():
                raise bad("sentence_lengths.npy", f"sentence {a + int(np.argmax(piece < 0))} has a negative length")
            step = np.diff(np.asarray(off[a:b + 1]))
            if not np.array_equal(step, piece):
                i = a + int(np.argmax(step != piece))
                raise bad("sentence_lengths.npy", f"sentence {i} has length {int(piece[i - a])} but spans "
                          f"{int(step[i - a])} tokens in sentence_offsets.npy")
        if int(docs[0]) != 0 or int(docs[-1]) != self.num_sentences:
            raise bad("doc_sentence_offsets.npy", f"runs from {int(docs[0])} to {int(docs[-1])}, expected 0 to "
                      f"{self.num_sentences} (counts.sentences)")
        for a in range(0, self.num_documents, chunk):
            step = np.diff(np.asarray(docs[a:min(a + chunk, self.num_documents) + 1]))
            if (step < 0).any():
                raise bad("doc_sentence_offsets.npy", f"document {a + int(np.argmax(step < 0))} ends before it "
                          "starts (offsets must not decrease)")
        # Documents never straddle shards: every shard starts where a document starts.
        doc_token_starts = off[np.asarray(docs[:-1])] if self.num_documents else np.zeros(0, np.int64)
        for s, start in enumerate(self._shard_starts[:-1].tolist()):
            j = int(np.searchsorted(doc_token_starts, start))
            if start != 0 and (j >= len(doc_token_starts) or int(doc_token_starts[j]) != start):
                raise bad("doc_sentence_offsets.npy", f"a document crosses the start of shard {s} (token {start})")

    # -- integrity
    def verify(self) -> None:
        """Recompute the sha256 of every shard and index file and compare with ``meta.json``."""
        m = _MetaReader(self.path / META, self.meta)
        checks = []
        for i, s in enumerate(self.meta["shards"]):
            checks += [(s["tokens_file"], m.get(s, f"shards[{i}].sha256_tokens", str)),
                       (s["word_starts_file"], m.get(s, f"shards[{i}].sha256_word_starts", str))]
        index_sums = m.get(self.meta, "index_sha256", dict, default={})
        for name, digest in index_sums.items():
            if name not in ("sentence_lengths.npy", "sentence_offsets.npy", "doc_sentence_offsets.npy") or \
                    not isinstance(digest, str):
                raise DataError(f"{self.path / META}: index_sha256[{excerpt(name)}] is {excerpt(digest)}; expected "
                                "the SHA-256 of one of the corpus's index files — prepare the corpus again")
        checks += list(index_sums.items())
        for rel, expected in checks:
            f = self.path / rel
            if not f.is_file():
                raise DataError(f"{f} is missing; the prepared corpus is incomplete — run 'plmkit prepare' for it "
                                "again (with --overwrite), or restore the folder from a copy")
            if _sha256_file(f) != expected:
                raise DataError(f"{f}: checksum mismatch — its SHA-256 does not match the one recorded in {self.path / META}, so the file "
                                "is damaged or was changed after 'plmkit prepare'; run 'plmkit prepare' for this "
                                "corpus again (with --overwrite), or restore the folder from a copy")

    # -- access
    def _shard(self, offset: int) -> int:
        return int(np.searchsorted(self._shard_starts, offset, side="right")) - 1

    def _arrays(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        if self._tokens[s] is None:
            shard = self.meta["shards"][s]
            self._tokens[s] = np.memmap(self.path / shard["tokens_file"], dtype=self.dtype, mode="r")
            self._starts[s] = np.memmap(self.path / shard["word_starts_file"], dtype=np.uint8, mode="r").view(np.bool_)
        return self._tokens[s], self._starts[s]  # type: ignore[return-value]

    def _span(self, start: int, end: int, which: int) -> np.ndarray:
        """Corpus-wide tokens [start, end) (within one shard)."""
        if end <= start:
            return self._arrays(0)[which][:0]
        s = self._shard(start)
        base = int(self._shard_starts[s])
        return self._arrays(s)[which][start - base:end - base]

    def _check(self, i: int, n: int, what: str) -> int:
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{what} {i} out of range (the corpus has {n})")
        return i

    def sentence(self, i: int) -> np.ndarray:
        i = self._check(i, self.num_sentences, "sentence")
        return self._span(int(self.sentence_offsets[i]), int(self.sentence_offsets[i + 1]), 0)

    def sentence_word_starts(self, i: int) -> np.ndarray:
        i = self._check(i, self.num_sentences, "sentence")
        return self._span(int(self.sentence_offsets[i]), int(self.sentence_offsets[i + 1]), 1)

    def document(self, d: int) -> list[np.ndarray]:
        d = self._check(d, self.num_documents, "document")
        a, b = int(self.doc_sentence_offsets[d]), int(self.doc_sentence_offsets[d + 1])
        return [self.sentence(i) for i in range(a, b)]

    def _doc_span(self, d: int, which: int) -> np.ndarray:
        d = self._check(d, self.num_documents, "document")
        a, b = int(self.doc_sentence_offsets[d]), int(self.doc_sentence_offsets[d + 1])
        return self._span(int(self.sentence_offsets[a]), int(self.sentence_offsets[b]), which)

    def document_tokens(self, d: int) -> np.ndarray:
        return self._doc_span(d, 0)

    def document_word_starts(self, d: int) -> np.ndarray:
        return self._doc_span(d, 1)

    def __len__(self) -> int:
        return self.num_documents

    def __getstate__(self) -> dict[str, Any]:
        # Pickle (DataLoader workers, spawn) by path: the memory maps are reopened, never copied.
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], _checked=True)  # type: ignore[misc]

    def load_tokenizer(self) -> Tokenizer:
        tok = load_tokenizer(self.path / "tokenizer")
        if tok.hash() != self.tokenizer_hash:
            raise CheckpointError(f"{self.path / 'tokenizer'} does not match the tokenizer the corpus was prepared "
                                  f"with (hash {tok.hash()} != {self.tokenizer_hash}); prepare the corpus again")
        return tok

    def split(self, eval_fraction: float = 0.01, seed: int = 0, min_eval_documents: int = 1
              ) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic ``(train_doc_ids, eval_doc_ids)``: a seeded random held-out set of documents.

        ``round(eval_fraction * D)`` documents, at least ``min_eval_documents``, go to evaluation;
        both arrays are sorted int64.
        """
        if not 0.0 <= eval_fraction < 1.0:
            raise UsageError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
        n = self.num_documents
        n_eval = max(int(min_eval_documents), int(round(eval_fraction * n)))
        if n_eval >= n:
            raise UsageError(f"cannot hold out {n_eval} of the corpus's {n} documents for evaluation and still train; "
                             "prepare more documents (e.g. without --doc-per-file) or lower the eval fraction")
        perm = np.random.default_rng(seed).permutation(n)
        return np.sort(perm[n_eval:]).astype(np.int64), np.sort(perm[:n_eval]).astype(np.int64)

    def info(self) -> dict[str, Any]:
        """The statistics ``plmkit prepare --info`` prints."""
        m = self.meta
        lengths = self.sentence_lengths
        per_doc = np.diff(self.doc_sentence_offsets)
        out = {
            "path": str(self.path),
            "tokenizer": m["tokenizer"],
            "dtype": m["dtype"],
            "documents": self.num_documents,
            "sentences": self.num_sentences,
            "tokens": self.num_tokens,
            "empty_sentences_dropped": m["counts"].get("empty_sentences_dropped", 0)
            if isinstance(m["counts"].get("empty_sentences_dropped", 0), int) else 0,
            "tokens_per_sentence": {"mean": float(lengths.mean()), "max": int(lengths.max()),
                                    "p50": float(np.percentile(lengths, 50)),
                                    "p99": float(np.percentile(lengths, 99))},
            "sentences_per_document": {"mean": float(per_doc.mean()), "max": int(per_doc.max())},
            "shards": len(m["shards"]),
            "disk_bytes": sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()),
            "input": m.get("input"),
            "sources": len(m["sources"]) if isinstance(m.get("sources"), list) else 0,
            "reader": m.get("reader"),
            "created": m.get("created"),
        }
        return out

    def __repr__(self) -> str:
        return (f"PreparedCorpus({str(self.path)!r}: {self.num_documents:,} documents, {self.num_sentences:,} "
                f"sentences, {self.num_tokens:,} tokens, vocab {self.vocab_size})")


class _MetaReader:
    """Typed access to ``meta.json`` values: a missing key or a value of the wrong type is a DataError that
    names the file and the key (``counts.tokens``, ``shards[2].num_tokens``)."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path

    def get(self, obj: dict[str, Any], key: str, kind: type, default: Any = ...) -> Any:
        name = key.rsplit(".", 1)[-1]
        if name not in obj:
            if default is not ...:
                return default
            raise DataError(f"{self.path}: no key {key!r}; the file is incomplete or from another program — prepare "
                            "the corpus again")
        value = obj[name]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            expected = {dict: "an object", list: "a list", str: "text", bool: "true or false",
                        int: "an integer"}.get(kind, kind.__name__)
            raise DataError(f"{self.path}: {key!r} is {type_name(value)} ({excerpt(value)}), expected {expected}; "
                            "prepare the corpus again")
        return value

    def count(self, obj: dict[str, Any], key: str, minimum: int = 0) -> int:
        value = self.get(obj, key, int)
        if not minimum <= value < 2**62:
            raise DataError(f"{self.path}: {key!r} is {value}, expected an integer of at least {minimum}; prepare the "
                            "corpus again")
        return value


def _sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


__all__ = ["PreparedCorpus", "ShardWriter", "write_prepared", "prepare_corpus", "encodings_to_arrays", "token_dtype",
           "atomic_output_dir", "is_prepared_corpus", "default_workers", "SHARD_TOKENS"]
