"""Pretraining objectives: MLM masking, NSP/SOP pairs, packing and causal-LM windows, as a batch stream.

BERT (Devlin et al., 2019) is the reference: a masked LM over ``[CLS] A [SEP] B [SEP]`` segment
pairs with a next-sentence label, built exactly as google-research/bert's
``create_pretraining_data.py`` does (``create_instances_from_document``: a target length of
``max_length - 3``, ``short_seq_prob`` short targets, a random A/B split point, a random next
segment from another document half the time with the unused segments put back, and
``truncate_seq_pair`` trimming the longer side from a random end). 15% of the maskable tokens are
predicted (``min(max_predictions, max(1, round(n_maskable * p)))`` of them), and of those 80% become
``[MASK]``, 10% a random non-special token and 10% stay. Masks and pairs are *static*: fixed when
the data is prepared and duplicated ``dupe_factor`` times with different masks.

One deliberate change to BERT's script: when a chunk holds a single sentence, BERT skips the coin
and always takes a random B, which makes 53-55% of the NSP labels on Brown "random". Here the coin
is always tossed; an "actual next" single-sentence chunk takes the following sentence(s) as B (or,
for a document's last sentence, splits it at a random token), so the labels are 50/50 as the paper
describes. SOP and ``pair="none"`` handle single-sentence chunks the same way (ALBERT's script would
take B from another document there, which is not a sentence-order example).

What the other recipes change, each a :class:`DataConfig` field:

* RoBERTa (Liu et al., 2019): ``masking="dynamic"`` (a new mask every time a sequence is served),
  ``pair="none"``, and ``packing="full-sentences"`` (rows filled to ``max_length`` with contiguous
  text that crosses document boundaries, a separator token between documents) or
  ``"doc-sentences"`` (rows never cross a document; a document's short tail row is padded). Unlike
  fairseq's ``--sample-break-mode complete``, full-sentences rows are cut at exactly ``max_length``
  (as fairseq's ``none`` mode and Hugging Face's ``run_mlm.py`` ``group_texts`` do) so no compute
  goes to padding.
* ALBERT (Lan et al., 2020): ``pair="sop"`` (two consecutive segments, swapped half of the time)
  and ``ngram=3``: n-gram masking of up to 3 *complete words* with P(n) ∝ 1/n, following
  google-research/albert's ``create_masked_lm_predictions``.
* Whole-word masking (``whole_word=True``, BERT's later release): a word's tokens are masked
  together. Words come from the prepared corpus' word-start flags (the tokenizer's word ids), so it
  works for WordPiece, byte-level BPE and unigram alike and never looks at ``##``.
* ELECTRA (Clark et al., 2020): ``objective="rtd"`` (replaced-token detection). The data are MLM
  data: the masked positions are where the model's generator proposes replacements and its
  discriminator then judges every token (models/electra.py); masking stays here, dynamic, with 85%
  ``[MASK]`` and 15% kept (``replace_random=0``: the generator's samples are the replacements).
* GPT-style causal LM (Radford et al., 2019): ``objective="causal"``, ``packing="causal"``: windows of
  ``max_length`` tokens over the documents joined with an end-of-text token; ``labels`` equal
  ``input_ids`` (the model shifts them). ELMo's biLM (``objective="bilm"``) reads the same windows.

Data never becomes token rows on disk: static masking and pairing are a deterministic function of
``(seed, instance, epoch % dupe_factor)``, which is the same as preparing ``dupe_factor`` masked
copies; dynamic masking is a function of ``(seed, instance, epoch)``. Per epoch the stream holds only
integer index arrays (one row per instance), reads tokens from the corpus' memory-mapped shards
when a batch is built, and its position is a few integers (exact resume; per-rank slices under DDP).
Randomness at serving time comes from a counter-based hash (splitmix64) of those keys, vectorised
with numpy.

Static shapes (``max_predictions`` set, as google-research/bert's ``max_predictions_per_seq``): masked
batches also carry ``mlm_positions`` (B, max_predictions), each row's predicted columns in ascending order
padded with -1, so that the MLM head gathers a fixed number of rows and a compiled step (CUDA graphs) sees
the same shapes every time. ``labels`` stay (B, L) as without it, and the counts of the loss contract are
read from them (real predictions, never padding). Masking itself is unchanged: the cap is the one BERT's
count rule already applies, and with :func:`default_max_predictions` no row reaches it.
"""

from __future__ import annotations

import random
from array import array
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import torch

# The data config lives in plmkit.config with every other config; its names stay importable from here.
from ..config import (DATA_RANGES, MASKINGS, OBJECTIVES, PACKINGS, PAIRS, DataConfig,  # noqa: F401
                      data_config_from_preset)
from ..errors import ConfigError, DataError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from .shards import PreparedCorpus

IGNORE_INDEX = -100
_DOC_CACHE = 8192  # document views kept by a stream (views of the memory map: no token memory)


def default_max_predictions(max_length: int, mask_prob: float) -> int:
    """The fixed number of predicted slots per row when static shapes are asked for without one.

    The most predictions BERT's count rule (:meth:`MLMMasker.num_to_predict`) gives a row of ``max_length``
    tokens, at least two of them special ([CLS] and [SEP]): round(mask_prob · (max_length − 2)), rounded up
    to a multiple of 4. So no row is ever capped (the masks are exactly those of ``max_predictions=None``),
    and at 15% it is google-research/bert's max_predictions_per_seq: 20 at length 128, 80 at 512.
    """
    most = max(1, int(np.floor((max_length - 2) * mask_prob + 0.5)))
    return -(-most // 4) * 4


def predicted_positions(labels: np.ndarray, width: int) -> np.ndarray:
    """The predicted columns of each row (``labels != -100``), ascending, padded with -1 to ``width``. (B, width).

    Read row by row, the real entries are the positions in the order ``labels != -100`` picks them, so a
    head that gathers here computes the same rows as one that indexes with the boolean mask."""
    chosen = np.asarray(labels) != IGNORE_INDEX  # (B, L)
    B, L = chosen.shape
    counts = chosen.sum(axis=1)
    if B and int(counts.max()) > width:
        raise ValueError(f"a row has {int(counts.max())} predicted positions, more than the {width} slots")
    cols = min(width, L)
    order = np.argsort(~chosen, axis=1, kind="stable")[:, :cols]  # (B, cols): chosen columns first, ascending
    out = np.full((B, width), -1, dtype=np.int64)
    out[:, :cols] = np.where(np.arange(cols)[None, :] < counts[:, None], order, -1)
    return out


# --------------------------------------------------------------------------- counter-based randomness
_U64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_NP_GOLDEN, _NP_C1, _NP_C2 = np.uint64(_GOLDEN), np.uint64(_C1), np.uint64(_C2)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)

# Independent random streams per instance.
_TAG_MASK, _TAG_SHUFFLE, _TAG_PAIRS = 1, 2, 3
_STREAM_ORDER, _STREAM_NGRAM, _STREAM_REPLACE, _STREAM_TOKEN = 11, 12, 13, 14


def _mix_int(x: int) -> int:
    """splitmix64 on a Python int."""
    x = (x + _GOLDEN) & _U64
    x = ((x ^ (x >> 30)) * _C1) & _U64
    x = ((x ^ (x >> 27)) * _C2) & _U64
    return x ^ (x >> 31)


def _key(*parts: int) -> int:
    h = 0x243F6A8885A308D3
    for p in parts:
        h = _mix_int(h ^ (int(p) & _U64))
    return h


def _fmix(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function, elementwise on a uint64 array (wraps modulo 2**64)."""
    z = (z ^ (z >> _S30)) * _NP_C1
    z = (z ^ (z >> _S27)) * _NP_C2
    return z ^ (z >> _S31)


def row_keys(base: int, rows: np.ndarray) -> np.ndarray:
    """One 64-bit key per instance: a bijective mix of (base, instance index). (B,) uint64."""
    return _fmix(np.asarray(rows, dtype=np.int64).astype(np.uint64) ^ np.uint64((base + _GOLDEN) & _U64))


def uniform(keys: np.ndarray, length: int, stream: int) -> np.ndarray:
    """``length`` uniforms in [0, 1) per key, from the splitmix64 sequence of (key, stream). (B, length)."""
    seed = _fmix(keys ^ np.uint64(_mix_int(stream)))  # (B,)
    counter = np.arange(1, length + 1, dtype=np.uint64) * _NP_GOLDEN  # (length,)
    z = _fmix(seed[:, None] + counter[None, :])  # (B, length)
    return (z >> _S11).astype(np.float64) * (1.0 / (1 << 53))


# --------------------------------------------------------------------------- masking
class MLMMasker:
    """Chooses the tokens an MLM predicts and replaces them (80/10/10), vectorised over a batch.

    ``select`` follows google-research/bert's ``create_masked_lm_predictions`` (token or whole-word
    units, visited in random order, a unit skipped when it would overshoot the count) and, for
    ``ngram > 1``, google-research/albert's n-gram version (spans of 1..n whole words, P(n) ∝ 1/n,
    shortened when they would overshoot, skipped when they overlap a chosen span).
    """

    def __init__(self, config: DataConfig, mask_token_id: int, special_ids: set[int] | np.ndarray, vocab_size: int):
        self.config = config
        self.mask_token_id = int(mask_token_id)
        size = max(int(vocab_size), max((int(i) for i in special_ids), default=-1) + 1, self.mask_token_id + 1)
        self.is_special = np.zeros(size, dtype=bool)
        self.is_special[np.fromiter((int(i) for i in special_ids), dtype=np.int64)] = True
        self.is_special[self.mask_token_id] = True
        # Random replacements come from the non-special vocabulary.
        self.random_ids = np.flatnonzero(~self.is_special[:vocab_size]).astype(np.int64)
        if not len(self.random_ids):
            raise DataError("the tokenizer has no non-special tokens to use as random MLM replacements")
        pv = 1.0 / np.arange(1, config.ngram + 1)
        # Cumulative P(n) for each number of available words m = 1..ngram: _ngram_cdf[m - 1][n - 1].
        self._ngram_cdf = [np.cumsum(pv[:m] / pv[:m].sum()).tolist() for m in range(1, config.ngram + 1)]

    def maskable(self, input_ids: np.ndarray) -> np.ndarray:
        """Tokens that may be masked: everything but special tokens (and padding). (B, L) bool."""
        ids = np.asarray(input_ids)
        out = np.zeros(ids.shape, dtype=bool)
        inside = ids < len(self.is_special)
        out[inside] = ~self.is_special[ids[inside]]
        out[~inside] = True
        return out

    def num_to_predict(self, n_maskable: np.ndarray) -> np.ndarray:
        """BERT's count: min(max_predictions, max(1, round(n * p))), and 0 for rows with nothing to mask.

        Rounds half up (``int(round(x))`` under the Python 2 that BERT's script was written for).
        """
        n = np.asarray(n_maskable, dtype=np.int64)
        k = np.maximum(1, np.floor(n * self.config.mask_prob + 0.5).astype(np.int64))
        if self.config.max_predictions is not None:
            k = np.minimum(k, self.config.max_predictions)
        return np.where(n > 0, np.minimum(k, n), 0)

    def select(self, input_ids: np.ndarray, word_starts: np.ndarray, keys: np.ndarray,
               stats: dict[str, list[int]] | None = None) -> np.ndarray:
        """Which positions to predict. input_ids / word_starts (B, L); keys (B,) uint64. Returns (B, L) bool.

        ``stats`` (n-gram masking only) collects the sampled n of every candidate span that had all
        ``ngram`` lengths available (not at the row's end) in ``stats["sampled"]``, and the length in
        words of every accepted span (after shortening) in ``stats["accepted"]``.
        """
        valid = self.maskable(input_ids)  # (B, L)
        B, L = valid.shape
        k = self.num_to_predict(valid.sum(axis=1))  # (B,)
        order_u = uniform(keys, L, _STREAM_ORDER)  # (B, L)
        if not self.config.word_units:
            # Token units: the k maskable positions with the smallest random keys.
            order_u = np.where(valid, order_u, 2.0)
            kth = np.take_along_axis(np.sort(order_u, axis=1), np.maximum(k - 1, 0)[:, None], axis=1)  # (B, 1)
            return valid & (order_u <= kth) & (k[:, None] > 0)
        prev_valid = np.zeros_like(valid)
        prev_valid[:, 1:] = valid[:, :-1]
        # A word unit starts at a flagged word start, or after a special token / row start (a word cut
        # by truncation or by a row boundary is a unit of its own within the row).
        starts = valid & (np.asarray(word_starts, dtype=bool) | ~prev_valid)  # (B, L)
        unit_id = np.cumsum(starts, axis=1) - 1  # (B, L): the unit each position belongs to
        n_units = starts.sum(axis=1)  # (B,)
        rows_idx = np.broadcast_to(np.arange(B)[:, None], (B, L))
        # Per unit (indexed 0..n_units-1 along axis 1): its length and its first position.
        unit_len = np.bincount((rows_idx * L + unit_id)[valid], minlength=B * L).reshape(B, L)  # (B, L)
        unit_pos = np.zeros((B, L), dtype=np.int64)
        unit_pos[rows_idx[starts], unit_id[starts]] = np.nonzero(starts)[1]
        is_unit = np.arange(L)[None, :] < n_units[:, None]  # (B, L)
        unit_key = np.where(is_unit, np.take_along_axis(order_u, unit_pos, axis=1), 2.0)
        order = np.argsort(unit_key, axis=1, kind="stable")  # (B, L): units in random visiting order
        if self.config.ngram == 1:
            chosen = self._greedy_words(order, unit_len, n_units, k)
        else:
            ngram_u = np.take_along_axis(uniform(keys, L, _STREAM_NGRAM), unit_pos, axis=1)  # (B, L)
            chosen = np.zeros((B, L), dtype=bool)
            for b in range(B):
                if k[b]:
                    nu = int(n_units[b])
                    chosen[b, :nu] = self._ngram_words(order[b, :nu].tolist(), unit_len[b, :nu].tolist(), int(k[b]),
                                                       ngram_u[b, :nu].tolist(), stats)
        return valid & np.take_along_axis(chosen, np.maximum(unit_id, 0), axis=1)

    @staticmethod
    def _greedy_words(order: np.ndarray, unit_len: np.ndarray, n_units: np.ndarray, k: np.ndarray) -> np.ndarray:
        """BERT: visit units in random order; take one unless it would overshoot k. (B, L) bool per unit.

        The prefix of the visiting order that fits is taken in one vectorised step; only rows with
        budget left after the first unit that did not fit continue unit by unit.
        """
        B, L = order.shape
        sorted_len = np.take_along_axis(unit_len, order, axis=1)  # (B, L)
        csum = np.cumsum(sorted_len, axis=1)
        in_range = np.arange(L)[None, :] < n_units[:, None]
        take = (csum <= k[:, None]) & in_range  # a prefix of each row's visiting order
        n_pref = take.sum(axis=1)
        count = np.where(n_pref > 0, np.take_along_axis(csum, np.maximum(n_pref - 1, 0)[:, None], axis=1)[:, 0], 0)
        for b in np.flatnonzero((count < k) & (n_pref < n_units)).tolist():
            c, kb = int(count[b]), int(k[b])
            lens = sorted_len[b].tolist()
            for j in range(int(n_pref[b]) + 1, int(n_units[b])):
                if c >= kb:
                    break
                if c + lens[j] <= kb:
                    take[b, j] = True
                    c += lens[j]
        chosen = np.zeros((B, L), dtype=bool)
        np.put_along_axis(chosen, order, take, axis=1)
        return chosen

    def _ngram_words(self, order: list[int], lens: list[int], k: int, ngram_u: list[float],
                     stats: dict[str, list[int]] | None) -> list[bool]:
        """ALBERT: from each start word in random order, a span of n words (P(n) ∝ 1/n)."""
        nunits = len(lens)
        chosen = [False] * nunits
        count = 0
        max_n = self.config.ngram
        cdfs = self._ngram_cdf
        for j in order:
            if count >= k:
                break
            avail = nunits - j if nunits - j < max_n else max_n
            cdf = cdfs[avail - 1]
            u = ngram_u[j]
            n = 1
            while n < avail and u >= cdf[n - 1]:
                n += 1
            if stats is not None and avail == max_n:
                stats.setdefault("sampled", []).append(n)
            size = sum(lens[j:j + n])
            while count + size > k and n > 1:  # shorten a span that would overshoot
                n -= 1
                size -= lens[j + n]
            if count + size > k or True in chosen[j:j + n]:
                continue
            chosen[j:j + n] = [True] * n
            count += size
            if stats is not None:
                stats.setdefault("accepted", []).append(n)
        return chosen

    def __call__(self, input_ids: np.ndarray, word_starts: np.ndarray, keys: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Mask a batch. Returns (masked input_ids, labels) as (B, L) int64; labels -100 where not predicted."""
        ids = np.asarray(input_ids, dtype=np.int64)
        sel = self.select(ids, word_starts, keys)  # (B, L)
        B, L = ids.shape
        u = uniform(keys, L, _STREAM_REPLACE)  # (B, L)
        pm, pr = self.config.replace_mask, self.config.replace_random
        to_mask = sel & (u < pm)
        to_random = sel & (u >= pm) & (u < pm + pr)
        random_tok = self.random_ids[(uniform(keys, L, _STREAM_TOKEN) * len(self.random_ids)).astype(np.int64)]
        out = np.where(to_mask, self.mask_token_id, ids)
        out = np.where(to_random, random_tok, out)
        labels = np.where(sel, ids, IGNORE_INDEX)
        return out, labels


# --------------------------------------------------------------------------- segment pairs
def _truncate_counts(la: int, lb: int, max_tokens: int) -> tuple[int, int]:
    """How many tokens BERT's ``truncate_seq_pair`` removes from A and B (it always trims the longer, B on ties)."""
    excess = la + lb - max_tokens
    if excess <= 0:
        return 0, 0
    ra = rb = 0
    if la > lb:
        d = min(excess, la - lb)
        ra, excess = d, excess - d
    elif lb > la:
        d = min(excess, lb - la)
        rb, excess = d, excess - d
    # Now equal: B, A, B, A, ...
    return ra + excess // 2, rb + (excess + 1) // 2


def build_pair_plan(corpus: "PreparedCorpus", documents: np.ndarray, sent_start: np.ndarray, config: DataConfig,
                    seed: int, key: int) -> dict[str, np.ndarray]:
    """BERT's ``create_instances_from_document`` over ``documents`` (NSP), or its SOP / no-label variant.

    Each instance is two token ranges of the virtual concatenation of all sentences (``a_start``,
    ``a_len``, ``b_start``, ``b_len``) and a label (NSP: 1 = B is a random segment from another
    document; SOP: 1 = A and B swapped; labels follow Hugging Face's ``next_sentence_label`` and
    ``sentence_order_label``). Randomness: a ``random.Random`` per (seed, key, document), so a
    document's instances do not depend on the order documents are visited in. See the module
    docstring for the one change to BERT's algorithm (single-sentence chunks).
    """
    max_num = config.max_length - 3  # [CLS] A [SEP] B [SEP]
    offsets = np.asarray(corpus.doc_sentence_offsets)
    lengths = np.asarray(corpus.sentence_lengths)
    docs = np.asarray(documents, dtype=np.int64)
    doc_list = docs.tolist()
    nd = len(doc_list)
    # Typed arrays (8 bytes an entry while the plan is built, not a Python int object each).
    a_start, a_len, b_start, b_len, label = (array("q"), array("q"), array("q"), array("q"), array("b"))
    pair = config.pair
    for d in doc_list:
        rng = random.Random(_key(seed, _TAG_PAIRS, key, d))
        s0, s1 = int(offsets[d]), int(offsets[d + 1])
        L = lengths[s0:s1].tolist()
        S = sent_start[s0:s1].tolist()
        n = len(L)
        target = max_num
        if rng.random() < config.short_seq_prob:
            target = rng.randint(2, max_num)
        i = 0
        lo = 0  # first sentence (local index) of the current chunk
        cur = 0
        while i < n:
            cur += L[i]
            if i == n - 1 or cur >= target:
                # NSP: the coin is always tossed (BERT skips it and forces a random B when the chunk
                # holds one sentence, which tilts Brown's labels to ~53-55% random).
                random_next = pair == "nsp" and rng.random() < 0.5
                a_end = -1
                if i == lo and not random_next and i + 1 < n:
                    # One sentence reached the target: B is the following sentence(s).
                    while i + 1 < n:
                        i += 1
                        cur += L[i]
                        if cur >= target:
                            break
                    a_end = lo + 1
                m = i - lo + 1
                if a_end < 0:
                    a_end = lo + 1 if m == 1 else rng.randint(lo + 1, i)  # exclusive, local
                as_, al = S[lo], sum(L[lo:a_end])
                lab = 0
                if random_next:
                    lab = 1
                    target_b = target - al
                    rd = d
                    for _ in range(10):
                        rd = doc_list[rng.randint(0, nd - 1)]
                        if rd != d:
                            break
                    r0, r1 = int(offsets[rd]), int(offsets[rd + 1])
                    j = rng.randint(r0, r1 - 1)
                    bs, bl = int(sent_start[j]), 0
                    while j < r1:
                        bl += int(lengths[j])
                        j += 1
                        if bl >= target_b:
                            break
                    i -= m - (a_end - lo)  # put the unused segments back
                elif m == 1:
                    # The document's last sentence on its own: its two halves are consecutive text.
                    if L[lo] < 2:
                        lo, cur, i = i + 1, 0, i + 1
                        continue
                    cut = rng.randint(1, L[lo] - 1)
                    al, bs, bl = cut, as_ + cut, L[lo] - cut
                else:
                    bs, bl = S[a_end], cur - al
                if pair == "sop" and rng.random() < 0.5:
                    as_, al, bs, bl = bs, bl, as_, al
                    lab = 1
                ra, rb = _truncate_counts(al, bl, max_num)
                # Each removed token comes off the front or the back with probability 1/2.
                fa = rng.getrandbits(ra).bit_count() if ra else 0
                fb = rng.getrandbits(rb).bit_count() if rb else 0
                as_, al, bs, bl = as_ + fa, al - ra, bs + fb, bl - rb
                if al >= 1 and bl >= 1:
                    a_start.append(as_)
                    a_len.append(al)
                    b_start.append(bs)
                    b_len.append(bl)
                    label.append(lab)
                lo, cur = i + 1, 0
            i += 1
    return {"a_start": np.frombuffer(a_start, dtype=np.int64).copy(),
            "a_len": np.frombuffer(a_len, dtype=np.int64).astype(np.int32),
            "b_start": np.frombuffer(b_start, dtype=np.int64).copy(),
            "b_len": np.frombuffer(b_len, dtype=np.int64).astype(np.int32),
            "label": np.frombuffer(label, dtype=np.int8).copy()}


# --------------------------------------------------------------------------- the stream
class PretrainingStream:
    """An endless, deterministic, resumable stream of pretraining batches from a prepared corpus.

    ``batch_size`` is the per-rank batch. The stream serves the instances of epoch ``e`` in an order
    shuffled with ``(seed, e)``; the global batch at a position is ``batch_size * world_size``
    consecutive instances of that order, and rank ``r`` builds rows ``[r*B, (r+1)*B)`` of it. An
    epoch ends when fewer than a global batch of instances is left (the rest is dropped so that every
    rank takes the same number of steps). ``state_dict()`` is the epoch and the number of instances
    of it already served; it does not depend on the batch size or world size.

    Segment-pair batches carry ``token_type_ids`` (0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``); pass
    ``segments=False`` for a model without segment embeddings (RoBERTa's ``type_vocab_size=1``).
    """

    def __init__(self, corpus: "PreparedCorpus", config: DataConfig, batch_size: int, seed: int = 0,
                 documents: np.ndarray | None = None, rank: int = 0, world_size: int = 1, segments: bool = True):
        config.validate()
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
        if int(world_size) < 1 or not 0 <= int(rank) < int(world_size):
            raise UsageError(f"rank {rank} is not in [0, world_size={world_size})")
        self.corpus = corpus
        self.config = config
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.segments = bool(segments)
        self.epoch = 0
        self.offset = 0  # instances of the current epoch already served (all ranks together)

        tok = corpus.load_tokenizer()
        self.tokenizer = tok
        self.special_ids = set(int(i) for i in tok.special_ids)
        where = f"the tokenizer of {getattr(corpus, 'path', 'the corpus')}"
        self.cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        self.sep_id = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        self.pad_id = tok.pad_token_id
        self.eos_id = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if not config.masked:
            if self.eos_id is None:
                raise DataError(f"{where} has no end-of-text (eos) or [SEP] token to separate documents in "
                                "causal-LM windows; add one when training the tokenizer")
            self.masker = None
        else:
            missing = [name for name, v in (("mask", tok.mask_token_id), ("cls/bos", self.cls_id),
                                            ("sep/eos", self.sep_id)) if v is None]
            if config.packing in ("segment-pair", "doc-sentences") and self.pad_id is None:
                missing.append("pad")
            if missing:
                raise DataError(f"{where} has no {', '.join(missing)} token, which {config.packing} MLM data "
                                "needs; use a tokenizer trained with BERT- or RoBERTa-style special tokens")
            self.masker = MLMMasker(config, tok.mask_token_id, self.special_ids, tok.vocab_size)

        lengths = np.asarray(corpus.sentence_lengths, dtype=np.int64)
        offsets = np.asarray(corpus.doc_sentence_offsets, dtype=np.int64)
        # Token offset of every sentence in the virtual concatenation of all sentences.
        self._sent_start = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._sent_start[1:])
        self._doc_start = self._sent_start[offsets]  # (num_documents + 1,)
        docs = (np.arange(corpus.num_documents, dtype=np.int64) if documents is None
                else np.asarray(documents, dtype=np.int64).ravel())
        if len(docs) and (docs.min() < 0 or docs.max() >= corpus.num_documents):
            raise UsageError(f"document ids must lie in [0, {corpus.num_documents}); got {docs.min()}..{docs.max()}")
        doc_len = self._doc_start[docs + 1] - self._doc_start[docs]
        self.documents = docs[doc_len > 0]
        self._doc_len = doc_len[doc_len > 0]
        if not len(self.documents):
            raise DataError(f"{getattr(corpus, 'path', 'the corpus')}: no non-empty documents to pretrain on")
        if config.pair == "nsp" and len(self.documents) < 2:
            raise DataError("NSP needs at least two documents (the random next segment comes from another one)")
        # Fixed row layouts (every packing but segment-pair): computed once.
        if config.packing in ("full-sentences", "causal"):
            self._width = config.max_length - 2 if config.packing == "full-sentences" else config.max_length
            # The stream: each document followed by a separator.
            self._stream_start = np.zeros(len(self.documents) + 1, dtype=np.int64)
            np.cumsum(self._doc_len + 1, out=self._stream_start[1:])
            self._fixed_rows = int(self._stream_start[-1] // self._width)
        elif config.packing == "doc-sentences":
            w = config.max_length - 2
            per_doc = -(-self._doc_len // w)  # ceil
            doc_of_row = np.repeat(np.arange(len(self.documents)), per_doc)
            first_row = np.zeros(len(per_doc), dtype=np.int64)
            np.cumsum(per_doc[:-1], out=first_row[1:])
            k = np.arange(len(doc_of_row)) - first_row[doc_of_row]
            self._row_start = self._doc_start[self.documents[doc_of_row]] + k * w
            self._row_len = np.minimum(w, self._doc_len[doc_of_row] - k * w).astype(np.int32)
            self._fixed_rows = len(self._row_start)
        # Word-start flags are read only when masking works on words.
        self._want_ws = config.masked and config.word_units
        self._plans: dict[int, dict[str, np.ndarray]] = {}
        self._orders: dict[int, np.ndarray] = {}
        self._doc_cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    # ------------------------------------------------------------------ epochs and plans
    def _mask_epoch(self, epoch: int) -> int:
        """The key masks (and static pairs) depend on: epoch % dupe_factor for static masking."""
        return epoch % self.config.dupe_factor if self.config.masking == "static" else epoch

    def pair_plan(self, epoch: int) -> dict[str, np.ndarray]:
        """The segment-pair instances of an epoch (unshuffled). See :func:`build_pair_plan`."""
        key = self._mask_epoch(epoch)
        if key not in self._plans:
            if len(self._plans) >= 2:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = build_pair_plan(self.corpus, self.documents, self._sent_start, self.config,
                                               self.seed, key)
        return self._plans[key]

    def num_instances(self, epoch: int | None = None) -> int:
        """Instances (rows) in an epoch, all ranks together."""
        if self.config.packing == "segment-pair":
            return len(self.pair_plan(self.epoch if epoch is None else epoch)["label"])
        return self._fixed_rows

    def steps_per_epoch(self) -> int:
        """Global batches in the current epoch."""
        return self.num_instances() // (self.batch_size * self.world_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The order instances are served in during ``epoch`` (a permutation seeded by (seed, epoch))."""
        if epoch not in self._orders:
            if len(self._orders) >= 2:
                self._orders.pop(next(iter(self._orders)))
            rng = np.random.default_rng([_TAG_SHUFFLE, self.seed & _U64, epoch])
            self._orders[epoch] = rng.permutation(self.num_instances(epoch))
        return self._orders[epoch]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.epoch), "offset": int(self.offset), "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k in ("epoch", "offset") if k not in state]
        if missing:
            raise ConfigError(f"data state {dict(state)!r} lacks {', '.join(missing)}; it was not written by "
                              "PretrainingStream.state_dict()")
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ConfigError(f"the saved data position was made with seed {state['seed']} but this stream uses "
                              f"seed {self.seed}; resume with the same --seed")
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        G = self.batch_size * self.world_size
        while True:
            n = self.num_instances(self.epoch)
            if n < G:
                raise DataError(
                    f"{getattr(self.corpus, 'path', 'the corpus')}: an epoch has only {n} sequences of "
                    f"max_length {self.config.max_length}, fewer than one global batch of {G}; "
                    "use more data or a smaller batch size")
            if self.offset + G > n:
                self.epoch, self.offset = self.epoch + 1, 0
                continue
            lo = self.offset + self.rank * self.batch_size
            rows = self.epoch_order(self.epoch)[lo:lo + self.batch_size]
            batch = self.build_batch(self.epoch, rows)
            self.offset += G
            yield batch

    # ------------------------------------------------------------------ reading
    def _read_many(self, starts: np.ndarray, lengths: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Token ranges [start, start+length) of the concatenation of all sentences (each range inside
        one document), with word-start flags when word-level masking needs them (else None).

        Each range is one slice of ``corpus.document_tokens(d)``, a view into a memory-mapped shard."""
        starts = np.asarray(starts, dtype=np.int64)
        docs = self._doc_start.searchsorted(starts, side="right") - 1
        return self._read_docs(docs, starts - self._doc_start[docs], lengths)

    def _document(self, d: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Document d's token ids (and word-start flags) as plain ndarray views of the shards.

        Views are kept in a small FIFO cache: a view costs no memory, while each call into the
        corpus index (memory-mapped offsets) costs microseconds."""
        hit = self._doc_cache.get(d)
        if hit is None:
            c = self.corpus
            ids = np.asarray(c.document_tokens(d)).view(np.ndarray)
            ws = np.asarray(c.document_word_starts(d)).view(np.ndarray) if self._want_ws else None
            if len(self._doc_cache) >= _DOC_CACHE:
                self._doc_cache.pop(next(iter(self._doc_cache)))
            hit = self._doc_cache[d] = (ids, ws)
        return hit

    def _read_docs(self, docs: np.ndarray, local: np.ndarray, lengths: np.ndarray
                   ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Tokens [lo, lo+n) of document d, for each (d, lo, n)."""
        out: list[tuple[np.ndarray, np.ndarray | None]] = []
        for d, lo, n in zip(np.asarray(docs).tolist(), np.asarray(local).tolist(), np.asarray(lengths).tolist()):
            ids, ws = self._document(d)
            out.append((ids[lo:lo + n], None if ws is None else ws[lo:lo + n]))
        return out

    def _stream_rows(self, rows: np.ndarray, ids: np.ndarray, word_starts: np.ndarray, first: int,
                     doc_ids: np.ndarray | None = None) -> None:
        """Fill ids[:, first:first+W] (and word_starts) with rows of the document stream: the documents
        joined by a separator, cut into rows of W = ``self._width`` tokens. ``doc_ids`` (if given) gets
        the number of the document each token belongs to within its row (0, 1, …; a separator belongs
        to the document it ends; the columns before ``first`` and after the row to the first and last;
        ``doc_ids`` must come zero-filled)."""
        w = self._width
        sep = self.sep_id if self.config.packing == "full-sentences" else self.eos_id
        begin = np.asarray(rows, dtype=np.int64) * w
        first_doc = self._stream_start.searchsorted(begin, side="right") - 1
        pieces: list[tuple[int, int, int, int, int]] = []  # (batch row, column, document, start in it, length)
        stream_start, doc_len, docs = self._stream_start, self._doc_len, self.documents
        for b, (s, i) in enumerate(zip(begin.tolist(), first_doc.tolist())):
            e = s + w
            col = first
            n_doc = 0
            while s < e:
                ds, dl = int(stream_start[i]), int(doc_len[i])
                if s < ds + dl:
                    hi = min(e, ds + dl)
                    pieces.append((b, col, int(docs[i]), s - ds, hi - s))
                    if doc_ids is not None:
                        doc_ids[b, col:col + hi - s] = n_doc
                    col += hi - s
                    s = hi
                else:  # the separator after document i
                    ids[b, col] = sep
                    if doc_ids is not None:
                        doc_ids[b, col] = n_doc
                        n_doc += 1 if s + 1 < e else 0  # a new document starts after it, in this row
                    col += 1
                    s += 1
                    i += 1
            if doc_ids is not None:  # (the columns before `first` are already 0)
                doc_ids[b, col:] = doc_ids[b, col - 1]
        if pieces:
            arr = np.asarray(pieces, dtype=np.int64)
            for (b, col, _, _, n), (t, f) in zip(pieces, self._read_docs(arr[:, 2], arr[:, 3], arr[:, 4])):
                ids[b, col:col + n] = t
                if f is not None:
                    word_starts[b, col:col + n] = f

    # ------------------------------------------------------------------ batches
    def build_batch(self, epoch: int, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch of the given instances (indices into the unshuffled instances of ``epoch``)."""
        rows = np.asarray(rows, dtype=np.int64)
        cfg = self.config
        B, L = len(rows), cfg.max_length
        word_starts = np.zeros((B, L), dtype=bool)
        out: dict[str, np.ndarray] = {}
        if cfg.packing == "segment-pair":
            plan = self.pair_plan(epoch)
            ids = np.full((B, L), self.pad_id, dtype=np.int64)
            types = np.zeros((B, L), dtype=np.int64)
            attn = np.zeros((B, L), dtype=np.int64)
            segs = self._read_many(np.concatenate([plan["a_start"][rows], plan["b_start"][rows]]),
                                   np.concatenate([plan["a_len"][rows], plan["b_len"][rows]]))
            for b in range(B):
                (a, aw), (c, cw) = segs[b], segs[B + b]
                la, lb = len(a), len(c)
                n = la + lb + 3
                ids[b, 0] = self.cls_id
                ids[b, 1:1 + la] = a
                ids[b, 1 + la] = self.sep_id
                ids[b, 2 + la:2 + la + lb] = c
                ids[b, n - 1] = self.sep_id
                if aw is not None:
                    word_starts[b, 1:1 + la] = aw
                    word_starts[b, 2 + la:2 + la + lb] = cw
                types[b, 2 + la:n] = 1
                attn[b, :n] = 1
            out["attention_mask"] = attn
            if self.segments:
                out["token_type_ids"] = types
            if cfg.pair != "none":
                name = "next_sentence_label" if cfg.pair == "nsp" else "sentence_order_label"
                out[name] = plan["label"][rows].astype(np.int64)
        elif cfg.packing == "doc-sentences":
            ids = np.full((B, L), self.pad_id, dtype=np.int64)
            attn = np.zeros((B, L), dtype=np.int64)
            for b, (t, f) in enumerate(self._read_many(self._row_start[rows], self._row_len[rows])):
                n = len(t) + 2
                ids[b, 0] = self.cls_id
                ids[b, 1:n - 1] = t
                ids[b, n - 1] = self.sep_id
                if f is not None:
                    word_starts[b, 1:n - 1] = f
                attn[b, :n] = 1
            out["attention_mask"] = attn
        else:  # full-sentences / causal: full rows, no padding
            ids = np.empty((B, L), dtype=np.int64)
            docs = np.zeros((B, L), dtype=np.int64) if cfg.document_mask else None
            self._stream_rows(rows, ids, word_starts, 1 if cfg.packing == "full-sentences" else 0, docs)
            if docs is not None:
                out["document_ids"] = docs
            if cfg.packing == "full-sentences":
                ids[:, 0] = self.cls_id
                ids[:, L - 1] = self.sep_id
        if self.masker is not None:
            keys = row_keys(_key(self.seed, _TAG_MASK, self._mask_epoch(epoch)), rows)
            ids, labels = self.masker(ids, word_starts, keys)
            if cfg.static_predictions:  # the masker never predicts more than max_predictions in a row
                out["mlm_positions"] = predicted_positions(labels, cfg.max_predictions)
        else:
            labels = ids.copy()
        batch = {"input_ids": ids, **out, "labels": labels}
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


__all__ = [
    "DataConfig", "PretrainingStream", "MLMMasker", "data_config_from_preset", "build_pair_plan",
    "default_max_predictions", "predicted_positions",
    "IGNORE_INDEX", "OBJECTIVES", "PAIRS", "MASKINGS", "PACKINGS",
]
