"""Property-based tests (hypothesis): masking, packing and SQuAD answer post-processing invariants.

Each property is checked on many generated inputs against a definition written out here, not
against the implementation's own helpers:

* MLM masking (:class:`plmkit.data.objectives.MLMMasker`): special tokens and padding are never
  predicted; token-level masking predicts exactly BERT's count ``min(max_predictions, max(1,
  round(n * p)))``; word-level masking never overshoots it, and BERT's greedy whole-word rule leaves
  no unpicked word that would still fit; labels sit exactly at the predicted positions and hold the
  original ids; a predicted position becomes [MASK], a non-special random token or stays; nothing
  else changes; a word is masked entirely or not at all.
* Packing (:class:`plmkit.data.objectives.PretrainingStream`): FULL-SENTENCES rows are exactly
  ``max_length`` long, ``[CLS] … [SEP]``, and their insides laid end to end are the documents joined
  by [SEP]; DOC-SENTENCES rows never cross a document and give back every document; segment pairs
  are ``[CLS] A [SEP] B [SEP]`` + padding with token types 0…0 1…1 0…; causal windows laid end to end
  are the documents joined by the end-of-text token.
* SQuAD post-processing (:func:`plmkit.finetune.tasks.squad.postprocess`): the answer is the best-scoring
  valid span by brute force over every start/end pair among the top-n logits (start ≤ end, length
  ≤ ``max_answer_length``, inside the context), its text is exactly the context slice of its
  tokens, and the n-best list is sorted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plmkit.data import write_prepared
from plmkit.data.objectives import IGNORE_INDEX, DataConfig, MLMMasker, PretrainingStream
from plmkit.finetune.tasks import SquadExample
from plmkit.finetune.tasks.squad import convert_squad, postprocess
from plmkit.tokenization import load_tokenizer, train_tokenizer

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORDS = ("the jury said further that the city executive committee which had overall charge of the election "
         "deserves praise and thanks for the manner in which it was conducted").split()


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=10)) + " ." for _ in range(400)]
    d = tmp_path_factory.mktemp("prop-tok") / "wordpiece"
    train_tokenizer("wordpiece", texts, vocab_size=90).save_pretrained(d)
    return d


# ------------------------------------------------------------------------------------------------ masking
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = {PAD, UNK, CLS, SEP, MASK}


@st.composite
def masking_case(draw):
    B = draw(st.integers(1, 4))
    L = draw(st.integers(4, 48))
    V = draw(st.integers(8, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = rng.integers(5, V, size=(B, L))
    # sprinkle specials (row structure does not matter to the masker) and pad some row tails
    specials = rng.random((B, L)) < draw(st.floats(0.0, 0.5))
    ids[specials] = rng.choice(sorted(SPECIALS - {MASK}), size=int(specials.sum()))
    for b in range(B):
        if draw(st.booleans()):
            ids[b, rng.integers(0, L):] = PAD
    word_starts = rng.random((B, L)) < draw(st.floats(0.2, 1.0))
    replace_mask = draw(st.sampled_from([0.0, 0.8, 1.0, draw(st.floats(0.0, 1.0))]))
    replace_random = draw(st.floats(0.0, 1.0 - replace_mask)) if replace_mask < 1 else 0.0
    unit = draw(st.sampled_from(["token", "whole-word", "ngram"]))  # BERT, BERT-wwm, ALBERT
    cfg = DataConfig(pair="none", masking="dynamic", packing="full-sentences", mask_prob=draw(st.floats(0.0, 1.0)),
                     replace_mask=replace_mask, replace_random=replace_random,
                     whole_word=unit == "whole-word" or (unit == "ngram" and draw(st.booleans())),
                     ngram=draw(st.integers(2, 3)) if unit == "ngram" else 1,
                     max_predictions=draw(st.one_of(st.none(), st.integers(1, 20))))
    keys = rng.integers(0, 2**63, size=B, dtype=np.int64).astype(np.uint64)
    return cfg, V, ids, word_starts, keys


def expected_count(n: int, cfg: DataConfig) -> int:
    """BERT's create_masked_lm_predictions: min(max_predictions, max(1, int(round(n * p)))) (round half up)."""
    if n == 0:
        return 0
    k = max(1, int(np.floor(n * cfg.mask_prob + 0.5)))
    if cfg.max_predictions is not None:
        k = min(k, cfg.max_predictions)
    return min(k, n)


def units(valid: np.ndarray, word_starts: np.ndarray) -> list[list[int]]:
    """The maskable words of a row: runs of maskable positions, split at word starts."""
    out: list[list[int]] = []
    for i in range(len(valid)):
        if not valid[i]:
            continue
        if word_starts[i] or i == 0 or not valid[i - 1]:
            out.append([i])
        else:
            out[-1].append(i)
    return out


@SETTINGS
@given(masking_case())
def test_masking_invariants(case):
    cfg, V, ids, word_starts, keys = case
    masker = MLMMasker(cfg, MASK, SPECIALS, V)
    out, labels = masker(ids, word_starts, keys)
    valid = ~np.isin(ids, list(SPECIALS))
    selected = labels != IGNORE_INDEX
    # never a special token or padding; labels are the original ids exactly where predicted
    assert not (selected & ~valid).any()
    assert (labels[selected] == ids[selected]).all()
    # nothing else changes; a predicted token is [MASK], a random non-special token, or itself
    assert (out[~selected] == ids[~selected]).all()
    changed = selected & (out != ids)
    assert ((out[changed] == MASK) | ~np.isin(out[changed], list(SPECIALS))).all()
    assert ((out[changed] >= 0) & (out[changed] < V)).all()
    if cfg.replace_mask == 1.0:
        assert (out[selected] == MASK).all()
    if cfg.replace_mask == 0.0 and cfg.replace_random == 0.0:
        assert (out == ids).all()
    if cfg.replace_mask == 0.0:
        assert not (out[selected] == MASK).any()
    for b in range(ids.shape[0]):
        k = expected_count(int(valid[b].sum()), cfg)
        count = int(selected[b].sum())
        if not cfg.word_units:
            assert count == k
            continue
        assert count <= k
        words = units(valid[b], word_starts[b])
        picked = [w for w in words if selected[b, w].any()]
        # whole words only: a word is predicted entirely or not at all
        assert all(selected[b, w].all() for w in picked)
        if cfg.ngram == 1:
            # BERT's greedy rule: every word left out would overshoot the count
            assert all(len(w) > k - count for w in words if not selected[b, w].any())
        elif k and any(len(w) <= k for w in words):
            assert count >= 1
    # the same keys give the same masks
    again = masker(ids, word_starts, keys)
    assert (again[0] == out).all() and (again[1] == labels).all()


# ------------------------------------------------------------------------------------------------ packing
@st.composite
def corpus_docs(draw, min_docs: int = 1):
    """Documents of sentences of non-special token ids (vocab of the module tokenizer: ids 5..89)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_docs = draw(st.integers(min_docs, 6))
    docs = []
    for _ in range(n_docs):
        n_sent = draw(st.integers(1, 6))
        docs.append([rng.integers(5, 90, size=draw(st.integers(1, 30))) for _ in range(n_sent)])
    return docs


def make_stream(tok_dir: Path, docs, config: DataConfig, tmp: str, batch: int = 1) -> PretrainingStream:
    corpus = write_prepared(Path(tmp) / "c", tok_dir,
                            [[(s, np.ones(len(s), dtype=np.uint8)) for s in d] for d in docs])
    return PretrainingStream(corpus, config, batch_size=batch, seed=3)


def unmasked(batch) -> np.ndarray:
    ids, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
    return np.where(labels != IGNORE_INDEX, labels, ids)


def joined(docs, sep: int) -> np.ndarray:
    return np.concatenate([np.concatenate([*d, [sep]]) for d in docs])


@SLOW
@given(corpus_docs(), st.integers(8, 40))
def test_full_sentences_rows_are_full_and_lay_end_to_end(tok_dir, docs, max_length):
    tok = load_tokenizer(tok_dir)
    cfg = DataConfig(pair="none", masking="dynamic", packing="full-sentences", max_length=max_length)
    with tempfile.TemporaryDirectory() as tmp:
        stream = make_stream(tok_dir, docs, cfg, tmp)
        n = stream.num_instances(0)
        stream_text = joined(docs, tok.sep_token_id)
        assert n == len(stream_text) // (max_length - 2)
        assume(n > 0)
        batch = stream.build_batch(0, np.arange(n))
    rows = unmasked(batch)
    assert rows.shape == (n, max_length) and "attention_mask" not in batch
    assert (rows[:, 0] == tok.cls_token_id).all() and (rows[:, -1] == tok.sep_token_id).all()
    # the insides, in row order, are the documents joined by [SEP]
    assert (rows[:, 1:-1].ravel() == stream_text[: n * (max_length - 2)]).all()


@SLOW
@given(corpus_docs(), st.integers(8, 40))
def test_doc_sentences_rows_never_cross_a_document(tok_dir, docs, max_length):
    tok = load_tokenizer(tok_dir)
    cfg = DataConfig(pair="none", masking="dynamic", packing="doc-sentences", max_length=max_length)
    with tempfile.TemporaryDirectory() as tmp:
        stream = make_stream(tok_dir, docs, cfg, tmp)
        n = stream.num_instances(0)
        batch = stream.build_batch(0, np.arange(n))
    rows, attn = unmasked(batch), batch["attention_mask"].numpy()
    assert rows.shape == (n, max_length)
    pieces = []
    for row, mask in zip(rows, attn):
        length = int(mask.sum())
        assert (mask[:length] == 1).all() and (mask[length:] == 0).all()
        assert row[0] == tok.cls_token_id and row[length - 1] == tok.sep_token_id
        assert (row[length:] == tok.pad_token_id).all()
        pieces.append(row[1:length - 1])
    # rows, in order, give back every document; a row holds text of one document only
    documents = [np.concatenate(d) for d in docs]
    i = 0
    for doc in documents:
        got = []
        while sum(len(p) for p in got) < len(doc):
            got.append(pieces[i])
            i += 1
        assert (np.concatenate(got) == doc).all()
    assert i == len(pieces)


def contains(haystack: np.ndarray, needle: np.ndarray) -> bool:
    n = len(needle)
    return any((haystack[i:i + n] == needle).all() for i in range(len(haystack) - n + 1))


@SLOW
@given(corpus_docs(min_docs=2), st.integers(8, 40), st.sampled_from(["nsp", "sop", "none"]))
def test_segment_pairs_have_bert_structure(tok_dir, docs, max_length, pair):
    tok = load_tokenizer(tok_dir)
    cfg = DataConfig(pair=pair, masking="static", packing="segment-pair", max_length=max_length, dupe_factor=2)
    with tempfile.TemporaryDirectory() as tmp:
        stream = make_stream(tok_dir, docs, cfg, tmp)
        n = stream.num_instances(0)
        assume(n > 0)
        batch = stream.build_batch(0, np.arange(n))
    rows, types, attn = unmasked(batch), batch["token_type_ids"].numpy(), batch["attention_mask"].numpy()
    documents = [np.concatenate(d) for d in docs]
    label = {"nsp": "next_sentence_label", "sop": "sentence_order_label"}.get(pair)
    if label:
        assert set(batch[label].numpy().tolist()) <= {0, 1}
    else:
        assert "next_sentence_label" not in batch and "sentence_order_label" not in batch
    for row, ty, mask in zip(rows, types, attn):
        length = int(mask.sum())
        assert length <= max_length and (mask[:length] == 1).all() and (mask[length:] == 0).all()
        seps = np.flatnonzero(row[:length] == tok.sep_token_id)
        assert row[0] == tok.cls_token_id and len(seps) == 2 and seps[1] == length - 1
        a, b = row[1:seps[0]], row[seps[0] + 1:length - 1]
        assert len(a) >= 1 and len(b) >= 1
        assert not np.isin(np.concatenate([a, b]), list(tok.special_ids)).any()
        assert (ty[:seps[0] + 1] == 0).all() and (ty[seps[0] + 1:length] == 1).all() and (ty[length:] == 0).all()
        assert (row[length:] == tok.pad_token_id).all()
        # each segment is contiguous text of one document
        assert any(contains(d, a) for d in documents) and any(contains(d, b) for d in documents)


@SLOW
@given(corpus_docs(), st.integers(8, 40))
def test_causal_windows_lay_end_to_end(tok_dir, docs, max_length):
    tok = load_tokenizer(tok_dir)
    eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    cfg = DataConfig(objective="causal", pair="none", masking="none", packing="causal", max_length=max_length)
    with tempfile.TemporaryDirectory() as tmp:
        stream = make_stream(tok_dir, docs, cfg, tmp)
        n = stream.num_instances(0)
        text = joined(docs, eos)
        assert n == len(text) // max_length
        assume(n > 0)
        batch = stream.build_batch(0, np.arange(n))
    ids = batch["input_ids"].numpy()
    assert ids.shape == (n, max_length) and (batch["labels"].numpy() == ids).all()
    assert (ids.ravel() == text[: n * max_length]).all()


# ------------------------------------------------------------------------------------------------ SQuAD
@st.composite
def squad_case(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_examples = draw(st.integers(1, 3))
    examples = []
    for i in range(n_examples):
        context = " ".join(rng.choice(WORDS, size=draw(st.integers(1, 80))))
        question = " ".join(rng.choice(WORDS, size=draw(st.integers(1, 12)))) + " ?"
        examples.append(SquadExample(qid=f"q{i}", question=question, context=context))
    max_length = draw(st.integers(24, 64))
    doc_stride = draw(st.integers(1, max_length // 2 - 1))
    return (examples, max_length, doc_stride, draw(st.integers(1, 20)), draw(st.integers(1, 30)),
            draw(st.booleans()), draw(st.floats(-5, 5)), rng)


def brute_force(example, feats, windows, starts, ends, n_best, max_answer_length):
    """Every valid (score, text) over the example's windows: top-n starts × top-n ends, in the context,
    start <= end, at most max_answer_length tokens."""
    out = []
    for f in windows:
        s_log, e_log = starts[f], ends[f]
        meta = feats.extra[f]
        ctx, offsets = meta["context"], meta["offsets"]
        top_s = set(np.argsort(-s_log)[:n_best].tolist())
        top_e = set(np.argsort(-e_log)[:n_best].tolist())
        for s in top_s:
            for t in top_e:
                if ctx[s] and ctx[t] and s <= t and t - s + 1 <= max_answer_length:
                    text = example.context[offsets[s, 0]:offsets[t, 1]]
                    out.append((float(s_log[s] + e_log[t]), text, s, t))
    return out


@SLOW
@given(squad_case())
def test_squad_answer_is_the_best_valid_span(tok_dir, case):
    examples, max_length, doc_stride, n_best, max_answer_length, v2, threshold, rng = case
    tok = load_tokenizer(tok_dir)
    feats = convert_squad(examples, tok, max_length=max_length, doc_stride=doc_stride, max_query_length=16)
    starts = [rng.normal(size=len(f["input_ids"])) for f in feats.inputs]
    ends = [rng.normal(size=len(f["input_ids"])) for f in feats.inputs]
    res = postprocess(examples, feats, starts, ends, n_best=n_best, max_answer_length=max_answer_length,
                      version_2=v2, null_threshold=threshold)
    for e, ex in enumerate(examples):
        windows = [f for f, i in enumerate(feats.example_index.tolist()) if i == e]
        assert windows
        # every window's context tokens map back into the context text
        for f in windows:
            meta = feats.extra[f]
            offs = meta["offsets"][meta["context"]]
            assert ((offs[:, 0] <= offs[:, 1]) & (offs[:, 1] <= len(ex.context))).all()
        cands = brute_force(ex, feats, windows, starts, ends, n_best, max_answer_length)
        nonempty = [c for c in cands if c[1] != ""]
        best_text = res["best_non_null"][ex.qid]
        if not nonempty:
            assert best_text == ""
        else:
            top = max(c[0] for c in nonempty)
            winners = {c[1] for c in nonempty if c[0] == top}
            assert best_text in winners
            # the chosen text is exactly a context slice, start <= end, short enough
            s, t = next((c[2], c[3]) for c in nonempty if c[1] == best_text and c[0] == top)
            assert s <= t and t - s + 1 <= max_answer_length and best_text in ex.context
        nbest = res["nbest"][ex.qid]
        scores = [c["score"] for c in nbest]
        assert scores == sorted(scores, reverse=True) and len(nbest) <= n_best
        assert all(c["text"] in ex.context for c in nbest)
        if v2:
            null = min(float(starts[f][feats.extra[f]["cls"]] + ends[f][feats.extra[f]["cls"]]) for f in windows)
            best = max((c[0] for c in nonempty), default=None)
            diff = null - (best if best is not None else -1e9)
            assert res["null_odds"][ex.qid] == pytest.approx(diff)
            assert res["predictions"][ex.qid] == ("" if best is None or diff > threshold else best_text)
        else:
            assert res["predictions"][ex.qid] == best_text
