"""Pretraining objectives (plmkit.data.objectives): masking statistics, NSP/SOP pairs, packing,
static vs dynamic masking, whole-word and n-gram masking, exact resume and per-rank slices.

Two kinds of corpora, both written with ``plmkit.data.write_prepared`` and read back as
memory-mapped ``PreparedCorpus`` folders: small synthetic ones (random ids, words of 1-3 tokens;
they need no data), and real Brown text prepared with WordPiece / byte-level BPE / unigram
tokenizers trained here with Hugging Face ``tokenizers`` (word-start flags from the tokenizer's word
ids; needs ``PLMKIT_DATA``). :class:`ListCorpus`, an in-memory second implementation of the
``PreparedCorpus`` interface, checks that the stream relies on that interface only. The statistics
use fixed seeds and tolerances that a real bug (a wrong rate, a special token masked, a biased
coin) would break.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer as FastTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from plmkit.config import PRESETS, ModelConfig
from plmkit.data.objectives import (IGNORE_INDEX, DataConfig, MLMMasker, PretrainingStream, _truncate_counts,
                                    data_config_from_preset, row_keys)
from plmkit.errors import ConfigError, DataError, UsageError
from plmkit.tokenization import Tokenizer

# =========================================================================== test double
SPECIALS = {
    "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "gpt": ["<|endoftext|>"],
}


SPECIAL_NAMES = {
    "bert": {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
             "mask_token": "[MASK]"},
    "roberta": {"bos_token": "<s>", "cls_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>",
                "sep_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask>"},
    "gpt": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"},
}


def tiny_tokenizer(style: str, n_words: int = 300) -> Tokenizer:
    specials = SPECIALS[style]
    vocab = {t: i for i, t in enumerate(specials + [f"w{i}" for i in range(n_words)])}
    unk = specials[1] if len(specials) > 1 else specials[0]
    return Tokenizer(FastTokenizer(models.WordLevel(vocab, unk_token=unk)), dict(SPECIAL_NAMES[style]))


class ListCorpus:
    """In-memory stand-in for ``plmkit.data.PreparedCorpus`` (same attributes and methods)."""

    def __init__(self, documents: list[list[tuple[np.ndarray, np.ndarray]]], tokenizer: Tokenizer):
        self.path = Path("<in-memory corpus>")
        self.meta: dict = {}
        self._tok = tokenizer
        self.vocab_size = tokenizer.vocab_size
        self.tokenizer_hash = tokenizer.hash()
        self.word_level = False
        sents = [s for d in documents for s in d]
        self._ids = [np.asarray(i, dtype=np.uint16) for i, _ in sents]
        self._ws = [np.asarray(w, dtype=np.uint8) for _, w in sents]
        self.sentence_lengths = np.array([len(x) for x in self._ids], dtype=np.int64)
        self.doc_sentence_offsets = np.concatenate([[0], np.cumsum([len(d) for d in documents])]).astype(np.int64)
        self.num_documents = len(documents)
        self.num_sentences = len(sents)
        self.num_tokens = int(self.sentence_lengths.sum())

    def sentence(self, i: int) -> np.ndarray:
        return self._ids[i]

    def sentence_word_starts(self, i: int) -> np.ndarray:
        return self._ws[i].astype(bool)

    def document(self, d: int) -> list[np.ndarray]:
        return [self._ids[i] for i in range(self.doc_sentence_offsets[d], self.doc_sentence_offsets[d + 1])]

    def document_tokens(self, d: int) -> np.ndarray:
        parts = self.document(d)
        return np.concatenate(parts) if parts else np.zeros(0, np.uint16)

    def document_word_starts(self, d: int) -> np.ndarray:
        r = range(self.doc_sentence_offsets[d], self.doc_sentence_offsets[d + 1])
        return np.concatenate([self._ws[i] for i in r]).astype(bool)

    def load_tokenizer(self) -> Tokenizer:
        return self._tok

    def split(self, eval_fraction: float = 0.01, seed: int = 0, min_eval_documents: int = 1):
        perm = np.random.default_rng(seed).permutation(self.num_documents)
        n = max(min_eval_documents, int(round(eval_fraction * self.num_documents)))
        return np.sort(perm[n:]), np.sort(perm[:n])


def synthetic_documents(n_docs: int, first_id: int, n_words: int, seed: int = 0,
                        sentences=(2, 40), sentence_len=(3, 45), word_len=(1, 4)):
    """Random documents; words of 1-3 tokens (the first token of each flagged as a word start)."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        doc = []
        for _ in range(int(rng.integers(*sentences))):
            n = int(rng.integers(*sentence_len))
            ids = rng.integers(first_id, first_id + n_words, size=n)
            ws = np.zeros(n, np.uint8)
            p = 0
            while p < n:
                ws[p] = 1
                p += int(rng.integers(*word_len))
            doc.append((ids, ws))
        docs.append(doc)
    return docs


def prepared(tmp_path_factory, style: str, docs):
    """A real prepared corpus (``write_prepared`` → memory-mapped ``PreparedCorpus``) of synthetic documents."""
    from plmkit.data.shards import write_prepared

    folder = tmp_path_factory.mktemp(f"synthetic-{style}")
    tiny_tokenizer(style).save_pretrained(folder / "tok")
    return write_prepared(folder / "prepared", folder / "tok", docs)


@pytest.fixture(scope="module")
def bert_corpus(tmp_path_factory):
    return prepared(tmp_path_factory, "bert", synthetic_documents(150, 5, 300, seed=1))


@pytest.fixture(scope="module")
def roberta_corpus(tmp_path_factory):
    return prepared(tmp_path_factory, "roberta", synthetic_documents(120, 5, 300, seed=2))


@pytest.fixture(scope="module")
def gpt_corpus(tmp_path_factory):
    return prepared(tmp_path_factory, "gpt", synthetic_documents(60, 1, 300, seed=3))


# =========================================================================== real Brown text
BROWN_DOCS = 120  # documents for the statistics (of 500); keeps preparation to a few seconds


def brown_documents(data_dir: Path, limit: int) -> list[list[str]]:
    """Brown's tagged files → documents of sentences (one per line, ``word/tag`` tokens, tags dropped)."""
    root = data_dir / "corpora" / "brown"
    files = sorted(p for p in root.iterdir() if len(p.name) == 4 and p.name[:2].isalpha() and p.name[2:].isdigit())
    docs = []
    for path in files[:limit]:
        sents = [" ".join(t.rsplit("/", 1)[0] for t in line.split())
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        docs.append(sents)
    return docs


def train_tokenizer(kind: str, texts: list[str], vocab_size: int) -> Tokenizer:
    if kind == "wordpiece":
        specials = SPECIALS["bert"]
        fast = FastTokenizer(models.WordPiece(unk_token="[UNK]"))
        fast.normalizer = normalizers.BertNormalizer(lowercase=True)
        fast.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        fast.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
        names = None
    elif kind == "bpe":
        specials = SPECIALS["roberta"]
        fast = FastTokenizer(models.BPE())
        fast.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        fast.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        names = None
    else:  # unigram, ALBERT's special tokens
        specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
        fast = FastTokenizer(models.Unigram())
        fast.normalizer = normalizers.Lowercase()
        fast.pre_tokenizer = pre_tokenizers.Metaspace()
        fast.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>")
        names = {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}
    fast.train_from_iterator(texts, trainer)
    return Tokenizer(fast, names)


def encode_documents(tok: Tokenizer, docs: list[list[str]]):
    """Token ids and word-start flags (from the tokenizer's word ids) per sentence, per document."""
    encs = tok.backend.encode_batch([s for d in docs for s in d], add_special_tokens=False)
    out, k = [], 0
    for d in docs:
        doc = []
        for _ in d:
            e = encs[k]
            k += 1
            if not e.ids:
                continue
            w = np.array([-1 if i is None else i for i in e.word_ids], dtype=np.int64)
            ws = np.ones(len(w), dtype=np.uint8)
            ws[1:] = w[1:] != w[:-1]
            doc.append((np.array(e.ids, dtype=np.int64), ws))
        if doc:
            out.append(doc)
    return out


def prepare_brown(data_dir: Path, out: Path, kind: str, n_docs: int, vocab_size: int, train_sentences: int):
    from plmkit.data.shards import write_prepared

    docs = brown_documents(data_dir, n_docs)
    tok = train_tokenizer(kind, [s for d in docs for s in d][:train_sentences], vocab_size)
    tok_dir = out / "tokenizer-src"
    tok.save_pretrained(tok_dir)
    return write_prepared(out / "prepared", tok_dir, encode_documents(tok, docs))


@pytest.fixture(scope="session")
def brown_wordpiece(data_dir, tmp_path_factory):
    return prepare_brown(data_dir, tmp_path_factory.mktemp("brown-wp"), "wordpiece", BROWN_DOCS, 3000, 6000)


@pytest.fixture(scope="session")
def brown_bpe(data_dir, tmp_path_factory):
    return prepare_brown(data_dir, tmp_path_factory.mktemp("brown-bpe"), "bpe", 25, 1500, 3000)


@pytest.fixture(scope="session")
def brown_unigram(data_dir, tmp_path_factory):
    return prepare_brown(data_dir, tmp_path_factory.mktemp("brown-unigram"), "unigram", 25, 800, 500)


# =========================================================================== helpers
def collect(stream: PretrainingStream, n_batches: int) -> dict[str, np.ndarray]:
    """Served batches stacked, plus the original (unmasked) ids recovered from the labels."""
    it = iter(stream)
    batches = [next(it) for _ in range(n_batches)]
    out = {k: torch.cat([b[k] for b in batches]).numpy() for k in batches[0]}
    if stream.config.objective == "mlm":
        lab = out["labels"]
        out["original"] = np.where(lab != IGNORE_INDEX, lab, out["input_ids"])
    return out


def rows_of(stream: PretrainingStream, epoch: int, rows) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in stream.build_batch(epoch, np.asarray(rows)).items()}


def word_starts_of_rows(stream: PretrainingStream, epoch: int, rows: np.ndarray, L: int) -> np.ndarray:
    """Word-start flags of segment-pair rows, read back from the corpus through the instance plan."""
    plan = stream.pair_plan(epoch)
    ws = np.zeros((len(rows), L), dtype=bool)
    for b, r in enumerate(rows):
        for start, length, col in ((plan["a_start"][r], plan["a_len"][r], 1),
                                   (plan["b_start"][r], plan["b_len"][r], 2 + plan["a_len"][r])):
            ws[b, col:col + length] = corpus_flags(stream.corpus, int(start), int(length))
    return ws


def corpus_flags(corpus, start: int, length: int) -> np.ndarray:
    """Word-start flags of tokens [start, start+length) of the concatenated sentences (independent reader)."""
    offs = np.concatenate([[0], np.cumsum(corpus.sentence_lengths)])
    j = int(np.searchsorted(offs, start, side="right")) - 1
    first = int(start - offs[j])
    flags: list[np.ndarray] = []
    while sum(map(len, flags)) < first + length:
        flags.append(np.asarray(corpus.sentence_word_starts(j), dtype=bool))
        j += 1
    return np.concatenate(flags)[first:first + length]


def contains(haystack: np.ndarray, needle: np.ndarray) -> bool:
    if len(needle) > len(haystack):
        return False
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(haystack, np.int64), len(needle))
    return bool((windows == np.asarray(needle, np.int64)).all(axis=1).any())


def split_pair(row_ids: np.ndarray, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """``[CLS] A [SEP] B [SEP] pad...`` → (A, B)."""
    seps = np.flatnonzero(row_ids == sep)
    return row_ids[1:seps[0]], row_ids[seps[0] + 1:seps[1]]


def document_of(corpus, token_start: int) -> int:
    offs = np.concatenate([[0], np.cumsum(corpus.sentence_lengths)])
    sentence = int(np.searchsorted(offs, token_start, side="right")) - 1
    return int(np.searchsorted(corpus.doc_sentence_offsets, sentence, side="right")) - 1


def check_mlm_statistics(stream: PretrainingStream, n_batches: int) -> None:
    tok = stream.tokenizer
    got = collect(stream, n_batches)
    ids, lab, orig = got["input_ids"], got["labels"], got["original"]
    special = np.isin(orig, sorted(tok.special_ids))
    if "attention_mask" in got:
        special |= got["attention_mask"] == 0
    selected = lab != IGNORE_INDEX
    # No special token (or padding) is ever selected, and none is ever changed.
    assert not (selected & special).any()
    assert (ids[special] == orig[special]).all()
    # 15% ± 0.5 pt of the maskable tokens are predicted.
    rate = selected.sum() / (~special).sum()
    assert abs(rate - 0.15) < 0.005, rate
    # 80 / 10 / 10 ± 2 pt.
    n = selected.sum()
    as_mask = (selected & (ids == tok.mask_token_id)).sum() / n
    kept = (selected & (ids == orig)).sum() / n
    random_ = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(random_ - 0.1) < 0.02, (as_mask, kept)
    # Random replacements come from the non-special vocabulary.
    replaced = selected & (ids != orig) & (ids != tok.mask_token_id)
    assert not np.isin(ids[replaced], sorted(tok.special_ids)).any()
    assert ids.max() < tok.vocab_size
    # Unselected positions are untouched.
    assert (ids[~selected] == orig[~selected]).all()
    if not stream.config.word_units:
        # BERT's count rule, exactly, for every row.
        n_maskable = (~special).sum(axis=1)
        expected = np.maximum(1, np.floor(n_maskable * stream.config.mask_prob + 0.5)).astype(int)
        if stream.config.max_predictions:
            expected = np.minimum(expected, stream.config.max_predictions)
        assert (selected.sum(axis=1) == expected).all()


def check_whole_words(stream: PretrainingStream, n_batches: int, epoch: int = 0) -> int:
    """No word (from the corpus flags) is ever partly selected. Returns how many multi-token words were selected."""
    B = stream.batch_size
    whole_multi = 0
    for step in range(n_batches):
        rows = np.arange(step * B, (step + 1) * B)
        got = rows_of(stream, epoch, rows)
        ws = word_starts_of_rows(stream, epoch, rows, stream.config.max_length)
        sel = got["labels"] != IGNORE_INDEX
        valid = np.zeros_like(sel)
        plan = stream.pair_plan(epoch)
        for b, r in enumerate(rows):
            la, lb = plan["a_len"][r], plan["b_len"][r]
            valid[b, 1:1 + la] = True
            valid[b, 2 + la:2 + la + lb] = True
        for b in range(B):
            # Word ids within the row: a new word at each flag, at a segment's first token.
            starts = valid[b] & (ws[b] | ~np.concatenate([[False], valid[b, :-1]]))
            wid = np.cumsum(starts) - 1
            for w in np.unique(wid[valid[b]]):
                members = sel[b][valid[b] & (wid == w)]
                assert members.all() or not members.any(), f"row {rows[b]} word {w} partly masked"
                whole_multi += int(members.all() and len(members) > 1)
    return whole_multi


# =========================================================================== config
def test_presets_give_their_papers_recipes():
    assert data_config_from_preset("bert-base") == DataConfig()  # BERT is the default recipe
    r = data_config_from_preset("roberta-base")
    assert (r.masking, r.pair, r.packing) == ("dynamic", "none", "full-sentences")
    a = data_config_from_preset("albert-base")
    assert (a.pair, a.ngram, a.masking) == ("sop", 3, "static")
    g = data_config_from_preset("gpt2-small")
    assert (g.objective, g.packing, g.masking) == ("causal", "causal", "none")
    for name in PRESETS:  # every preset's data section is a valid DataConfig
        data_config_from_preset(name)
    over = data_config_from_preset("roberta-base", {"data.mask_prob": 0.2, "max_length": 64, "whole_word": True})
    assert (over.mask_prob, over.max_length, over.whole_word, over.masking) == (0.2, 64, True, "dynamic")
    assert DataConfig.from_dict(over.to_dict()) == over


@pytest.mark.parametrize("overrides, fragment", [
    ({"mask_probability": 0.2}, "mask_probability"),
    ({"data.dupe": 3}, "dupe"),
    ({"mask_prob": 1.5}, "mask_prob"),
    ({"pair": "next"}, "pair"),
    ({"replace_mask": 0.9, "replace_random": 0.2}, "replace_random"),
    ({"packing": "full-sentences"}, "pair"),  # NSP needs segment pairs
    ({"objective": "causal"}, "causal"),
    ({"ngram": 0}, "ngram"),
    ({"document_mask": True}, "document_mask=true needs rows that pack several documents"),
])
def test_bad_data_config_names_the_key(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        data_config_from_preset("bert-base", overrides)


def test_none_from_the_command_line_is_the_choice_none():
    # --set data.pair=none parses the value as None; the choice fields read it as "none"
    cfg = data_config_from_preset("bert-base", {"pair": None, "packing": "full-sentences"})
    assert (cfg.pair, cfg.packing) == ("none", "full-sentences")


def test_unknown_preset_is_an_error():
    with pytest.raises(ConfigError, match="unknown preset"):
        data_config_from_preset("bert-huge")


# =========================================================================== masking rules
def test_count_rule_and_truncation_match_bert():
    m = MLMMasker(DataConfig(max_predictions=20), 4, {0, 1, 2, 3, 4}, 100)
    n = np.arange(0, 300)
    expected = [0 if x == 0 else min(20, max(1, int(np.floor(x * 0.15 + 0.5)))) for x in n]
    assert m.num_to_predict(n).tolist() == expected

    def bert_truncate(la, lb, max_tokens):  # google-research/bert truncate_seq_pair, counting removals
        a, b, ra, rb = la, lb, 0, 0
        while a + b > max_tokens:
            if a > b:
                a, ra = a - 1, ra + 1
            else:
                b, rb = b - 1, rb + 1
        return ra, rb

    for la in range(0, 40, 3):
        for lb in range(0, 40, 2):
            for mx in (5, 17, 30, 125):
                assert _truncate_counts(la, lb, mx) == bert_truncate(la, lb, mx)


@pytest.mark.parametrize("preset", ["bert-base", "roberta-base"])
def test_mlm_statistics_synthetic(preset, bert_corpus, roberta_corpus):
    corpus = bert_corpus if preset.startswith("bert") else roberta_corpus
    stream = PretrainingStream(corpus, data_config_from_preset(preset), batch_size=32, seed=0)
    check_mlm_statistics(stream, 60)


@pytest.mark.parametrize("preset", ["bert-base", "roberta-base", "bert-base+max_predictions"])
def test_mlm_statistics_on_brown(preset, brown_wordpiece):
    name, _, extra = preset.partition("+")
    cfg = data_config_from_preset(name, {"max_predictions": 20} if extra else {})
    stream = PretrainingStream(brown_wordpiece, cfg, batch_size=32, seed=0)
    check_mlm_statistics(stream, 100)


def test_pair_labels_are_balanced_on_brown(brown_wordpiece):
    for preset in ("bert-base", "albert-base"):
        stream = PretrainingStream(brown_wordpiece, data_config_from_preset(preset), batch_size=32, seed=0)
        for e in range(3):
            labels = stream.pair_plan(e)["label"]
            assert len(labels) > 2500
            assert abs(labels.mean() - 0.5) < 0.03, (preset, e, labels.mean())
        name = "next_sentence_label" if preset == "bert-base" else "sentence_order_label"
        served = collect(stream, 80)[name]
        assert set(np.unique(served)) == {0, 1} and abs(served.mean() - 0.5) < 0.03


def test_pair_labels_are_balanced(bert_corpus):
    for preset in ("bert-base", "albert-base"):
        stream = PretrainingStream(bert_corpus, data_config_from_preset(preset), batch_size=32, seed=5)
        labels = np.concatenate([stream.pair_plan(e)["label"] for e in range(6)])
        assert len(labels) > 2500 and abs(labels.mean() - 0.5) < 0.03


def test_static_masks_repeat_every_dupe_factor_and_dynamic_masks_do_not(bert_corpus, roberta_corpus):
    # BERT, static: epoch e and e + dupe_factor serve the same instances with the same masks...
    static = PretrainingStream(bert_corpus, DataConfig(dupe_factor=3), batch_size=8, seed=0)
    rows = np.arange(64)
    e0, e3 = rows_of(static, 0, rows), rows_of(static, 3, rows)
    for k in e0:
        assert np.array_equal(e0[k], e3[k]), k
    assert static.epoch_order(0).tolist() != static.epoch_order(3).tolist()  # ...in a new order
    # ...while epoch 1 is another duplicate: other pairs and masks.
    e1 = rows_of(static, 1, rows)
    assert not np.array_equal(e0["labels"], e1["labels"])

    # RoBERTa, dynamic: the same rows get a new mask every epoch (and the same mask when rebuilt).
    dyn = PretrainingStream(roberta_corpus, data_config_from_preset("roberta-base", {"dupe_factor": 3}),
                            batch_size=8, seed=0)
    rows = np.arange(200)
    d0, d0_again = rows_of(dyn, 0, rows), rows_of(dyn, 0, rows)
    assert np.array_equal(d0["input_ids"], d0_again["input_ids"])
    for e in (1, 3):
        de = rows_of(dyn, e, rows)
        orig0 = np.where(d0["labels"] != IGNORE_INDEX, d0["labels"], d0["input_ids"])
        orige = np.where(de["labels"] != IGNORE_INDEX, de["labels"], de["input_ids"])
        assert np.array_equal(orig0, orige)  # the same sequences...
        differs = ((d0["labels"] != IGNORE_INDEX) != (de["labels"] != IGNORE_INDEX)).any(axis=1)
        assert differs.mean() > 0.99  # ...with different masks

    # Static masking on full-sentences rows: the same sequence keeps its mask within the cycle.
    st = PretrainingStream(roberta_corpus, data_config_from_preset("roberta-base", {"masking": "static",
                                                                                      "dupe_factor": 2}),
                           batch_size=8, seed=0)
    assert np.array_equal(rows_of(st, 0, rows)["labels"], rows_of(st, 2, rows)["labels"])
    assert not np.array_equal(rows_of(st, 0, rows)["labels"], rows_of(st, 1, rows)["labels"])


def test_static_masks_on_brown_same_sequence(brown_wordpiece):
    cfg = data_config_from_preset("bert-base", {"dupe_factor": 2})
    stream = PretrainingStream(brown_wordpiece, cfg, batch_size=32, seed=0)
    rows = np.arange(256)
    a, b, c = rows_of(stream, 0, rows), rows_of(stream, 2, rows), rows_of(stream, 1, rows)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["input_ids"], c["input_ids"])
    dyn = PretrainingStream(brown_wordpiece, data_config_from_preset("roberta-base"), batch_size=32, seed=0)
    x, y = rows_of(dyn, 0, rows), rows_of(dyn, 1, rows)
    assert (((x["labels"] != IGNORE_INDEX) != (y["labels"] != IGNORE_INDEX)).any(axis=1)).all()


def test_whole_word_masking_synthetic(bert_corpus):
    for overrides in ({"whole_word": True}, {"ngram": 3}):
        stream = PretrainingStream(bert_corpus, DataConfig(**overrides), batch_size=16, seed=0)
        assert check_whole_words(stream, 12) > 50
        got = collect(stream, 20)
        special = np.isin(got["original"], sorted(stream.tokenizer.special_ids))
        special |= got["attention_mask"] == 0
        selected = got["labels"] != IGNORE_INDEX
        rate = selected.sum() / (~special).sum()
        assert 0.14 < rate < 0.155, rate
        # Whole units never overshoot BERT's count.
        assert (selected.sum(axis=1) <= stream.masker.num_to_predict((~special).sum(axis=1))).all()


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_whole_word_masking_on_brown(kind, request):
    corpus = request.getfixturevalue(f"brown_{kind}")
    tok = corpus.load_tokenizer()
    for overrides in ({"whole_word": True}, {"ngram": 3}):
        stream = PretrainingStream(corpus, DataConfig(**overrides), batch_size=16, seed=0)
        assert check_whole_words(stream, 8) > 20
    if kind == "wordpiece":
        # Independent oracle for WordPiece only: a selected "##" piece means its whole word is selected,
        # so the token before it is selected too.
        stream = PretrainingStream(corpus, DataConfig(whole_word=True), batch_size=32, seed=1)
        got = collect(stream, 10)
        sel = got["labels"] != IGNORE_INDEX
        cont = np.vectorize(lambda i: tok.id_to_token(int(i)).startswith("##"))(got["original"])
        # A "##" piece right after [CLS]/[SEP] begins a segment that truncation cut mid-word.
        inside = cont[:, 1:] & ~np.isin(got["original"][:, :-1], sorted(tok.special_ids))
        assert (sel[:, 1:] & inside <= sel[:, :-1]).all()
        assert (sel[:, :-1] & inside <= sel[:, 1:]).all()
        assert (sel[:, 1:] & inside).sum() > 20


def check_ngram_lengths(corpus) -> None:
    expected = (1 / np.arange(1, 4)) / (1 / np.arange(1, 4)).sum()  # 6/11, 3/11, 2/11
    stream = PretrainingStream(corpus, data_config_from_preset("albert-base"), batch_size=32, seed=0)
    stats: dict = {}
    batches = [(e, first) for e in range(8) for first in range(0, stream.num_instances(e) - 32, 32)][:40]
    for epoch, first in batches:
        rows = np.arange(first, first + 32)
        got = rows_of(stream, epoch, rows)
        orig = np.where(got["labels"] != IGNORE_INDEX, got["labels"], got["input_ids"])
        ws = word_starts_of_rows(stream, epoch, rows, stream.config.max_length)
        stream.masker.select(orig, ws, row_keys(12345 + epoch, rows), stats)
    sampled = np.array(stats["sampled"])
    freq = np.array([(sampled == n).mean() for n in (1, 2, 3)])
    assert len(sampled) > 5000 and np.abs(freq - expected).max() < 0.015, freq
    # Accepted spans (ALBERT shortens spans that would overshoot the count): still falling with n.
    acc = np.array(stats["accepted"])
    afreq = np.array([(acc == n).mean() for n in (1, 2, 3)])
    assert afreq[0] > afreq[1] > afreq[2] > 0.08 and afreq[0] < 0.7, afreq


def test_ngram_lengths_follow_one_over_n(bert_corpus):
    check_ngram_lengths(bert_corpus)


def test_ngram_lengths_on_brown(brown_wordpiece):
    check_ngram_lengths(brown_wordpiece)


# =========================================================================== pairs
def check_nsp_pairs(corpus, stream: PretrainingStream, rows: np.ndarray) -> None:
    plan = stream.pair_plan(0)
    got = rows_of(stream, 0, rows)
    orig = np.where(got["labels"] != IGNORE_INDEX, got["labels"], got["input_ids"])
    max_pair = stream.config.max_length - 3
    checked = {0: 0, 1: 0}
    for b, r in enumerate(rows):
        a, bseg = split_pair(orig[b], stream.sep_id)
        assert len(a) == plan["a_len"][r] and len(bseg) == plan["b_len"][r]
        da, db = document_of(corpus, int(plan["a_start"][r])), document_of(corpus, int(plan["b_start"][r]))
        doc_a = corpus.document_tokens(da)
        assert contains(doc_a, a)
        label = int(got["next_sentence_label"][b])
        assert label == plan["label"][r]
        if label == 0:
            assert db == da and contains(doc_a, bseg)
            if len(a) + len(bseg) < max_pair:  # untruncated: B starts exactly where A ends
                assert contains(doc_a, np.concatenate([a, bseg]))
                checked[0] += 1
        else:
            assert db != da and contains(corpus.document_tokens(db), bseg)
            if len(bseg) >= 12:
                assert not contains(doc_a, bseg)
            checked[1] += 1
    assert checked[0] > 10 and checked[1] > 10


def test_nsp_pairs_are_consecutive_or_from_another_document(bert_corpus):
    stream = PretrainingStream(bert_corpus, DataConfig(), batch_size=32, seed=0)
    check_nsp_pairs(bert_corpus, stream, np.arange(0, 400, 2))


def test_nsp_pairs_on_brown(brown_wordpiece):
    stream = PretrainingStream(brown_wordpiece, DataConfig(), batch_size=32, seed=0)
    check_nsp_pairs(brown_wordpiece, stream, np.arange(0, 600, 3))


def test_sop_pairs_are_consecutive_segments(bert_corpus):
    stream = PretrainingStream(bert_corpus, data_config_from_preset("albert-base"), batch_size=32, seed=0)
    plan = stream.pair_plan(0)
    got = rows_of(stream, 0, np.arange(300))
    orig = np.where(got["labels"] != IGNORE_INDEX, got["labels"], got["input_ids"])
    untruncated = 0
    for b in range(300):
        a, bseg = split_pair(orig[b], stream.sep_id)
        first, second = (a, bseg) if got["sentence_order_label"][b] == 0 else (bseg, a)
        doc = bert_corpus.document_tokens(document_of(bert_corpus, int(plan["a_start"][b])))
        assert document_of(bert_corpus, int(plan["b_start"][b])) == document_of(bert_corpus, int(plan["a_start"][b]))
        if len(a) + len(bseg) < stream.config.max_length - 3:
            assert contains(doc, np.concatenate([first, second]))
            untruncated += 1
        else:
            assert contains(doc, first) and contains(doc, second)
    assert untruncated > 20
    # token_type_ids: 0 for [CLS] A [SEP], 1 for B [SEP], 0 on padding.
    row = got["token_type_ids"][0]
    seps = np.flatnonzero(got["input_ids"][0] == stream.sep_id)
    assert (row[:seps[0] + 1] == 0).all() and (row[seps[0] + 1:seps[1] + 1] == 1).all()
    assert (row[seps[1] + 1:] == 0).all()
    assert (got["attention_mask"][0] == (np.arange(len(row)) <= seps[1])).all()
    # A model without segment embeddings (RoBERTa) gets none.
    plain = PretrainingStream(bert_corpus, data_config_from_preset("albert-base"), batch_size=32, seed=0,
                              segments=False)
    same = rows_of(plain, 0, np.arange(300))
    assert "token_type_ids" not in same and np.array_equal(same["input_ids"], got["input_ids"])


def test_segment_pairs_respect_length_and_short_seq_prob(bert_corpus):
    stream = PretrainingStream(bert_corpus, DataConfig(max_length=64), batch_size=32, seed=0)
    plan = stream.pair_plan(0)
    total = plan["a_len"] + plan["b_len"] + 3
    assert total.max() <= 64 and plan["a_len"].min() >= 1 and plan["b_len"].min() >= 1
    assert (total >= 56).mean() > 0.6  # most rows are (nearly) full
    short = PretrainingStream(bert_corpus, DataConfig(max_length=64, short_seq_prob=1.0), batch_size=32, seed=0)
    short_total = short.pair_plan(0)["a_len"] + short.pair_plan(0)["b_len"] + 3
    assert short_total.mean() < total.mean() - 5 and (short_total < 40).mean() > 2 * (total < 40).mean()


# =========================================================================== packing
def expected_stream(corpus, docs, sep: int) -> np.ndarray:
    return np.concatenate([np.concatenate([corpus.document_tokens(d).astype(np.int64), [sep]]) for d in docs])


def test_full_sentences_rows_are_full_and_cross_documents(roberta_corpus):
    cfg = data_config_from_preset("roberta-base", {"max_length": 64})
    stream = PretrainingStream(roberta_corpus, cfg, batch_size=16, seed=0)
    n = stream.num_instances()
    got = rows_of(stream, 0, np.arange(n))
    ids, orig = got["input_ids"], np.where(got["labels"] != IGNORE_INDEX, got["labels"], got["input_ids"])
    tok = roberta_corpus.load_tokenizer()
    assert "attention_mask" not in got and "token_type_ids" not in got
    assert not (ids == tok.pad_token_id).any()
    assert (ids[:, 0] == tok.cls_token_id).all() and (ids[:, -1] == tok.sep_token_id).all()
    # The rows' insides, in order, are the documents joined by </s>.
    inner = orig[:, 1:-1].reshape(-1)
    assert np.array_equal(inner, expected_stream(roberta_corpus, stream.documents, tok.sep_token_id)[:len(inner)])
    crossing = ((orig[:, 1:-1] == tok.sep_token_id).any(axis=1)).sum()
    assert crossing > 0.5 * roberta_corpus.num_documents * (n * 62 / inner.size) - 5
    # The served order is a shuffle of these rows.
    served = collect(stream, 5)
    order = stream.epoch_order(0)[:80]
    assert np.array_equal(served["original"], orig[order])


def test_doc_sentences_rows_stay_in_one_document(roberta_corpus):
    cfg = data_config_from_preset("roberta-base", {"packing": "doc-sentences", "max_length": 64})
    stream = PretrainingStream(roberta_corpus, cfg, batch_size=16, seed=0)
    got = rows_of(stream, 0, np.arange(stream.num_instances()))
    tok = roberta_corpus.load_tokenizer()
    orig = np.where(got["labels"] != IGNORE_INDEX, got["labels"], got["input_ids"])
    mask = got["attention_mask"].astype(bool)
    assert (orig[~mask] == tok.pad_token_id).all() and (~mask).any()
    assert (got["labels"][~mask] == IGNORE_INDEX).all()
    pieces = [row[m][1:-1] for row, m in zip(orig, mask)]
    assert all(not (p == tok.sep_token_id).any() for p in pieces)  # never crosses a document
    joined = np.concatenate(pieces)
    docs = np.concatenate([roberta_corpus.document_tokens(d) for d in stream.documents]).astype(np.int64)
    assert np.array_equal(joined, docs)
    # Only each document's last row is short.
    lens = mask.sum(axis=1) - 2
    assert (lens < 62).sum() <= len(stream.documents)


def test_causal_windows(gpt_corpus):
    cfg = data_config_from_preset("gpt-tiny", {"max_length": 48})
    stream = PretrainingStream(gpt_corpus, cfg, batch_size=8, seed=0)
    got = rows_of(stream, 0, np.arange(stream.num_instances()))
    assert set(got) == {"input_ids", "labels"}
    assert np.array_equal(got["input_ids"], got["labels"])
    eos = gpt_corpus.load_tokenizer().eos_token_id
    flat = got["input_ids"].reshape(-1)
    assert np.array_equal(flat, expected_stream(gpt_corpus, stream.documents, eos)[:len(flat)])
    assert len(flat) > expected_stream(gpt_corpus, stream.documents, eos).size - 48


@pytest.mark.parametrize("preset", ["roberta-base", "gpt-tiny"])
def test_document_ids_number_the_documents_of_each_row(preset, roberta_corpus, gpt_corpus):
    corpus = gpt_corpus if preset == "gpt-tiny" else roberta_corpus
    tok = corpus.load_tokenizer()
    sep = tok.eos_token_id if preset == "gpt-tiny" else tok.sep_token_id
    plain = PretrainingStream(corpus, data_config_from_preset(preset, {"max_length": 48}), batch_size=8, seed=0)
    cfg = data_config_from_preset(preset, {"max_length": 48, "document_mask": True})
    stream = PretrainingStream(corpus, cfg, batch_size=8, seed=0)
    rows = np.arange(stream.num_instances())
    got, ref = rows_of(stream, 0, rows), rows_of(plain, 0, rows)
    assert set(got) == set(ref) | {"document_ids"}
    for k in ref:  # the same rows and masks: only the document numbers are added
        assert np.array_equal(got[k], ref[k]), k
    orig = np.where(got["labels"] != IGNORE_INDEX, got["labels"], got["input_ids"])
    doc = got["document_ids"]
    first = 1 if preset == "roberta-base" else 0
    inner = slice(first, 48 - first)
    assert (doc[:, 0] == 0).all() and (np.diff(doc, axis=1) >= 0).all()
    # a new document starts exactly after each separator inside the row (not after the row's last token)
    is_sep = orig[:, inner] == sep
    starts = np.diff(doc[:, inner], axis=1) == 1
    assert np.array_equal(starts, is_sep[:, :-1])
    assert (np.diff(doc, axis=1) <= 1).all() and doc.max() >= 1
    batch = next(iter(stream))
    assert batch["document_ids"].shape == batch["input_ids"].shape and batch["document_ids"].dtype == torch.int64


# =========================================================================== determinism, resume, DDP
@pytest.mark.parametrize("preset", ["bert-base", "roberta-base", "albert-base", "gpt-tiny"])
def test_resume_gives_identical_batches(preset, bert_corpus, gpt_corpus):
    corpus = gpt_corpus if preset == "gpt-tiny" else bert_corpus
    cfg = data_config_from_preset(preset, {"max_length": 64, "dupe_factor": 2})
    ref = PretrainingStream(corpus, cfg, batch_size=64, seed=7)
    steps = ref.steps_per_epoch() + 5  # crosses an epoch boundary
    it = iter(ref)
    reference = [next(it) for _ in range(steps)]
    stopped = PretrainingStream(corpus, cfg, batch_size=64, seed=7)
    it = iter(stopped)
    for _ in range(steps - 8):
        next(it)
    state = json.loads(json.dumps(stopped.state_dict()))
    assert all(isinstance(v, int) for v in state.values())
    resumed = PretrainingStream(corpus, cfg, batch_size=64, seed=7)
    resumed.load_state_dict(state)
    it = iter(resumed)
    for want in reference[steps - 8:]:
        got = next(it)
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), k
    assert resumed.state_dict()["epoch"] == 1


@pytest.mark.parametrize("preset", ["bert-base", "roberta-base", "gpt-tiny"])
def test_rank_slices_equal_the_global_batch(preset, bert_corpus, gpt_corpus):
    corpus = gpt_corpus if preset == "gpt-tiny" else bert_corpus
    cfg = data_config_from_preset(preset, {"max_length": 64})
    single = iter(PretrainingStream(corpus, cfg, batch_size=96, seed=3))
    ranks = [iter(PretrainingStream(corpus, cfg, batch_size=32, seed=3, rank=r, world_size=3)) for r in range(3)]
    for _ in range(25):  # crosses epoch boundaries
        whole = next(single)
        parts = [next(it) for it in ranks]
        for k in whole:
            assert torch.equal(torch.cat([p[k] for p in parts]), whole[k]), k


def test_seed_changes_everything_and_nothing_else_does(bert_corpus):
    a = collect(PretrainingStream(bert_corpus, DataConfig(), batch_size=16, seed=1), 3)
    b = collect(PretrainingStream(bert_corpus, DataConfig(), batch_size=16, seed=1), 3)
    c = collect(PretrainingStream(bert_corpus, DataConfig(), batch_size=16, seed=2), 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["input_ids"], c["input_ids"])


def test_documents_subset_is_respected(bert_corpus):
    train, held = bert_corpus.split(eval_fraction=0.2, seed=0)
    stream = PretrainingStream(bert_corpus, DataConfig(), batch_size=8, seed=0, documents=held)
    plan = stream.pair_plan(0)
    used = {document_of(bert_corpus, int(s)) for s in np.concatenate([plan["a_start"], plan["b_start"]])}
    assert used <= set(held.tolist())


# =========================================================================== errors and the model
def test_user_errors_are_clear(bert_corpus, gpt_corpus):
    with pytest.raises(DataError, match="mask"):
        PretrainingStream(gpt_corpus, DataConfig(), batch_size=4)  # GPT-2 vocabulary has no [MASK]
    tiny = ListCorpus(synthetic_documents(3, 5, 50, sentences=(2, 3), sentence_len=(3, 5)), tiny_tokenizer("bert"))
    with pytest.raises(DataError, match="fewer than one global batch"):
        next(iter(PretrainingStream(tiny, DataConfig(), batch_size=64)))
    stream = PretrainingStream(bert_corpus, DataConfig(), batch_size=4, seed=0)
    with pytest.raises(ConfigError, match="seed"):
        stream.load_state_dict({"epoch": 0, "offset": 8, "seed": 1})
    with pytest.raises(ConfigError, match="offset"):
        stream.load_state_dict({"epoch": 0})
    with pytest.raises(UsageError, match="rank"):
        PretrainingStream(bert_corpus, DataConfig(), batch_size=4, rank=2, world_size=2)


@pytest.mark.parametrize("preset", ["bert-tiny", "albert-tiny", "roberta-tiny", "gpt-tiny"])
def test_batches_feed_the_model(preset, bert_corpus, roberta_corpus, gpt_corpus):
    from plmkit.models import PlmModel

    family = preset.split("-")[0]
    corpus = {"bert": bert_corpus, "albert": bert_corpus, "roberta": roberta_corpus, "gpt": gpt_corpus}[family]
    tok = corpus.load_tokenizer()
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                 vocab_size=tok.vocab_size, max_position_embeddings=80)
    base = {k: v for k, v in PRESETS[preset]["model"].items() if k not in small}
    if preset.startswith("roberta"):
        base.update(pad_token_id=tok.pad_token_id, position_offset=tok.pad_token_id + 1)
    if preset.startswith("albert"):
        base.update(embedding_size=16)
    model = PlmModel(ModelConfig.from_dict({**base, **small}), task="pretraining")
    batch = next(iter(PretrainingStream(corpus, data_config_from_preset(preset, {"max_length": 64}), 4, seed=0)))
    out = model(**batch)
    assert torch.isfinite(out.loss)
    if preset.startswith(("bert", "albert")):
        assert out.pair_loss is not None and out.mlm_loss is not None


# =========================================================================== README example
README_EXAMPLE = '''
from plmkit.data import PreparedCorpus
from plmkit.data.objectives import PretrainingStream, data_config_from_preset

corpus = PreparedCorpus("brown-prepared")                      # written by 'plmkit prepare'
train_docs, eval_docs = corpus.split(eval_fraction=0.1, seed=0)
config = data_config_from_preset("bert-base", {"max_length": 64, "whole_word": True})
stream = PretrainingStream(corpus, config, batch_size=8, seed=0, documents=train_docs)

batches = iter(stream)
batch = next(batches)               # input_ids, attention_mask, token_type_ids, labels, next_sentence_label
print({k: tuple(v.shape) for k, v in batch.items()})
state = stream.state_dict()         # {"epoch": 0, "offset": 8, "seed": 0}: save it with the checkpoint

resumed = PretrainingStream(corpus, config, batch_size=8, seed=0, documents=train_docs)
resumed.load_state_dict(state)
assert (next(iter(resumed))["input_ids"] == next(batches)["input_ids"]).all()
'''


def test_readme_example_on_a_real_prepared_corpus(tmp_path, monkeypatch):
    """The README's Python example (kept identical to it), on a corpus written by write_prepared."""
    from plmkit.data.shards import PreparedCorpus, write_prepared

    tiny_tokenizer("bert").save_pretrained(tmp_path / "tok")
    docs = synthetic_documents(40, 5, 300, seed=9)
    write_prepared(tmp_path / "brown-prepared", tmp_path / "tok", docs)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(README_EXAMPLE, "README example", "exec"), namespace)
    assert namespace["state"] == {"epoch": 0, "offset": 8, "seed": 0}
    # The memory-mapped corpus serves exactly what the in-memory double serves for the same documents.
    real = PreparedCorpus(tmp_path / "brown-prepared")
    double = ListCorpus(docs, tiny_tokenizer("bert"))
    for preset in ("bert-base", "albert-base", "roberta-base"):
        cfg = data_config_from_preset(preset, {"max_length": 64, "whole_word": True})
        a = collect(PretrainingStream(real, cfg, batch_size=8, seed=4), 6)
        b = collect(PretrainingStream(double, cfg, batch_size=8, seed=4), 6)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
