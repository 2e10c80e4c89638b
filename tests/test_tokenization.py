"""Tokenizer training: the three kinds load in transformers.AutoTokenizer with the same ids as plmkit
(Brown, Austen and Korean samples), Korean-safe normalization, Korean round-trip and [UNK] rate."""

from __future__ import annotations

import collections
import json
import unicodedata
from pathlib import Path

import pytest
from tokenizers import normalizers

from plmkit import load_tokenizer
from plmkit.cli import main
from plmkit.data import read_documents, read_sentences
from plmkit.errors import DataError, UsageError
from plmkit.tokenization import reservoir_sample, text_normalizer, train_tokenizer

KINDS = ("wordpiece", "bpe", "unigram")
SPECIALS = {"wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            "bpe": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            "unigram": ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]}
SIDE_FILES = {"wordpiece": ["vocab.txt"], "bpe": ["vocab.json", "merges.txt"], "unigram": []}
KOREAN = "대한민국은 민주공화국이다. ㅋㅋ 3·1운동, 한글 Café NAÏVE ①"
JAMO = [(0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF)]  # conjoining jamo blocks


def stderr(capsys) -> str:
    """What the command printed to stderr, with the line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def has_conjoining_jamo(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in JAMO)


@pytest.fixture(scope="module")
def corpora(data_dir) -> Path:
    return data_dir / "corpora"


@pytest.fixture(scope="module")
def trained(corpora, tmp_path_factory) -> dict[str, Path]:
    """One small tokenizer per kind, trained through the CLI on Brown + Austen + Korean text."""
    out = tmp_path_factory.mktemp("tokenizers")
    inputs = [str(corpora / "brown" / "ca01"), str(corpora / "brown" / "cj01"), str(corpora / "austen" / "persuasion.txt"),
              str(corpora / "ko" / "kolaw"), str(corpora / "ko" / "kobill")]
    folders = {}
    for kind in KINDS:
        folders[kind] = out / kind
        assert main(["tokenizer", "train", "--kind", kind, "--vocab-size", "3000", "--max-sentences", "6000",
                     "--split-sentences", "--out", str(folders[kind]), *inputs]) == 0
    return folders


@pytest.fixture(scope="module")
def samples(corpora) -> list[str]:
    """Held-out text: Brown (tagged format, other genres), Austen (another novel), Korean help pages."""
    brown = list(read_sentences([corpora / "brown" / "cn01", corpora / "brown" / "cr09"]))[:60]
    austen = list(read_sentences(corpora / "austen" / "emma.txt", split_sentences=True))[200:260]
    korean = list(read_sentences(corpora / "ko" / "libreoffice_help_ko.txt"))[:60]
    return brown + austen + korean + [KOREAN, "Hello [MASK] world <mask> x", "  two  spaces\tand tab ", ""]


@pytest.mark.parametrize("kind", KINDS)
def test_trained_folder_loads_in_transformers_with_the_same_ids(kind, trained, samples):
    transformers = pytest.importorskip("transformers")
    folder = trained[kind]
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", *SIDE_FILES[kind]]:
        assert (folder / name).is_file(), name
    ours = load_tokenizer(folder)
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    assert ours.kind == kind and len(hf) == ours.vocab_size
    assert [ours.token_to_id(t) for t in SPECIALS[kind]] == [0, 1, 2, 3, 4]
    for key in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id", "unk_token_id"):
        assert getattr(hf, key) == getattr(ours, key) is not None, key
    batch = hf(samples)["input_ids"]
    for text, hf_ids in zip(samples, batch):
        assert ours.encode(text).ids == hf_ids, text
    pairs = hf(samples[:20], samples[20:40])
    for i in range(20):
        enc = ours.encode(samples[i], samples[20 + i])
        assert enc.ids == pairs["input_ids"][i]
        if kind == "bpe":  # RoBERTa has no segment ids
            assert "token_type_ids" not in pairs
        else:  # BERT and ALBERT pairs: the second segment's type id, as plmkit gives it to the model
            assert enc.type_ids == pairs["token_type_ids"][i]
    # the byte-level BPE has no unknown token in practice, like RoBERTa
    if kind == "bpe":
        assert all(ours.unk_token_id not in ids for ids in batch)


@pytest.mark.parametrize("kind", KINDS)
def test_plmkit_tokenizer_roundtrips_through_save(kind, trained, tmp_path):
    tok = load_tokenizer(trained[kind])
    tok.save_pretrained(tmp_path / "again")
    again = load_tokenizer(tmp_path / "again")
    assert again.hash() == tok.hash()
    cfg = json.loads((tmp_path / "again" / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast"


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_lowercasing_never_decomposes_hangul(kind):
    norm = text_normalizer(kind, lowercase=True)
    out = norm.normalize_str(KOREAN)
    assert not has_conjoining_jamo(out)
    assert "대한민국은" in out and "ㅋㅋ" in out and "3·1운동" in out
    assert "cafe naive" in out  # accents are still stripped, outside Hangul
    # BERT's own uncased normalizer is what this guards against: it leaves jamo
    assert has_conjoining_jamo(normalizers.BertNormalizer(lowercase=True).normalize_str(KOREAN))
    # and Hangul in decomposed (NFD) input is recomposed
    assert norm.normalize_str(unicodedata.normalize("NFD", "한국어")) == "한국어"


def test_cased_and_lowercase_flags(corpora, tmp_path):
    src = str(corpora / "brown" / "ca01")
    assert main(["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "500", "--cased", "--out",
                 str(tmp_path / "cased"), src]) == 0
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "400", "--lowercase", "--out",
                 str(tmp_path / "lower"), src]) == 0
    cased, lower = load_tokenizer(tmp_path / "cased"), load_tokenizer(tmp_path / "lower")
    assert cased.backend.normalizer.normalize_str("Fulton Café") == "Fulton Café"
    assert lower.backend.normalizer.normalize_str("Fulton Café") == "fulton café"  # bpe: no accent stripping
    assert cased.decode(cased.encode("The jury said").ids) == "The jury said"


@pytest.fixture(scope="module")
def korean_split(corpora) -> tuple[list[str], list[str]]:
    """corpora/ko by document: every tenth document held out."""
    docs = list(read_documents(corpora / "ko"))
    train = [s for i, d in enumerate(docs) if i % 10 for s in d]
    held = [s for i, d in enumerate(docs) if i % 10 == 0 for s in d]
    assert len(held) > 1000
    return train, held


@pytest.mark.parametrize("kind,lowercase", [("wordpiece", "--cased"), ("unigram", "--cased"),
                                            ("wordpiece", "--lowercase")])
def test_korean_roundtrip_and_unknown_rate(kind, lowercase, korean_split, tmp_path):
    train, held = korean_split
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    assert main(["tokenizer", "train", "--kind", kind, "--vocab-size", "8000", lowercase, "--out",
                 str(tmp_path / "tok"), str(tmp_path / "train.txt")]) == 0
    tok = load_tokenizer(tmp_path / "tok")
    encs = tok.encode_batch(held, add_special_tokens=False)
    n_tokens = sum(len(e.ids) for e in encs)
    n_unk = sum(e.ids.count(tok.unk_token_id) for e in encs)
    assert n_unk / n_tokens < 0.005, f"[UNK] rate {n_unk / n_tokens:.3%}"
    failures = []
    for text, enc in zip(held, encs):
        if tok.unk_token_id in enc.ids:
            continue
        expected = text.lower() if lowercase == "--lowercase" else text
        if "".join(tok.decode(enc.ids).split()) != "".join(expected.split()):
            failures.append(text)
    assert not failures, failures[:5]
    assert sum(tok.unk_token_id in e.ids for e in encs) < 0.03 * len(held)


def test_max_sentences_samples_and_reports(corpora, tmp_path, capsys):
    assert main(["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "300", "--max-sentences", "50", "--out",
                 str(tmp_path / "t"), str(corpora / "brown" / "ca01")]) == 0
    assert "98 sentences (a random sample of 50)" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "t" / "tokenizer_config.json").read_text())
    assert cfg["plmkit"]["trained_on_sentences"] == 50


def test_reservoir_sample_is_uniform_and_deterministic():
    assert reservoir_sample(range(10**5), 7, seed=3) == reservoir_sample(range(10**5), 7, seed=3)
    assert reservoir_sample(range(10**5), 7, seed=3) != reservoir_sample(range(10**5), 7, seed=4)
    assert sorted(reservoir_sample(range(5), 10)) == [0, 1, 2, 3, 4]
    counts = collections.Counter(x for seed in range(3000) for x in reservoir_sample(range(30), 5, seed))
    # each item is kept with probability 1/6: 500 expected per item, sd ~20
    assert len(counts) == 30 and all(420 < c < 580 for c in counts.values()), sorted(counts.values())
    # the sample is spread over the whole stream, not its head
    big = reservoir_sample(range(10**6), 1000, seed=0)
    assert 400_000 < sum(big) / len(big) < 600_000


def test_word_level_vocabulary_is_frequency_sorted():
    text = ["the cat sat", "the dog sat", "the end"]
    tok = train_tokenizer("wordlevel", text, vocab_size=0, min_frequency=1)
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<pad>", "<unk>", "<s>", "</s>", "the", "sat")] == [0, 1, 2, 3, 4, 5]
    assert tok.encode("the cat flew").ids == [4, vocab["cat"], 1]
    assert train_tokenizer("wordlevel", text, vocab_size=0, min_frequency=2).vocab_size == 6


def test_training_errors(tmp_path, capsys):
    with pytest.raises(UsageError, match="too small"):
        train_tokenizer("bpe", ["a b c"], vocab_size=100)
    with pytest.raises(UsageError, match="unknown tokenizer kind"):
        train_tokenizer("sentencepiece", ["a"], vocab_size=100)
    with pytest.raises(UsageError, match="iterable of sentences"):
        train_tokenizer("wordpiece", "some/path.txt", vocab_size=100)
    with pytest.raises(DataError, match="no text"):
        train_tokenizer("wordpiece", [], vocab_size=100)
    (tmp_path / "in.txt").write_text("some text here\n")
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "10", "--out", str(tmp_path / "x"),
                 str(tmp_path / "in.txt")]) == 2
    assert "--vocab-size 10 is too small" in stderr(capsys)
    assert not (tmp_path / "x").exists()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.md").write_text("mine")
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--out", str(tmp_path / "x"),
                 str(tmp_path / "in.txt")]) == 2
    assert "already exists; pass --overwrite" in stderr(capsys)
    assert main(["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--overwrite", "--out",
                 str(tmp_path / "x"), str(tmp_path / "in.txt")]) == 2
    assert "refuses to replace" in stderr(capsys)
    assert (tmp_path / "x" / "notes.md").read_text() == "mine"
