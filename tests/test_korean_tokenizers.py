"""No [UNK] on everyday Korean (issue 24): the README's Korean tokenizer, trained on the formal text of
corpora/ko, encodes NSMC movie reviews, KorNLI sentences, emoji, ㅋㅋ/ㅠㅠ, rare syllables and mixed
scripts with no unknown token and decodes them back; byte fallback for unigram, byte-level BPE, and
WordPiece's documented limit (a warning that points to unigram)."""

from __future__ import annotations

import csv
import json
import re
import shlex
import unicodedata
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plmkit import load_tokenizer
from plmkit.cli import main
from plmkit.errors import UsageError
from plmkit.data import read_sentences
from plmkit.tokenization import BYTE_TOKENS, train_tokenizer

README = Path(__file__).resolve().parents[1] / "README.md"
EVERYDAY = [
    "개노잼", "ㅋㅋㅋㅋㅋ", "ㅠㅠ 슬프다", "ㅎㅎ", "ㅡㅡ;;", "봤는데 진짜 재밌었어요", "냥이 귀여워 😻", "괜찮아 뭐 어때",
    "왔다!!!", "최고👍👍 10점", "BTS 진짜 좋아요 ♡♥", "아이폰15 Pro 샀음ㅋㅋ", "日本語と한국어 mixed text", "① ㈜ ㎏ Ⅲ",
    "똠방각하 햏 뷁 쀍", "Café NAÏVE 한글", "<0x41> <0xEB> ▁ 그대로", "🇰🇷 👨‍👩‍👧 emoji 연결",
]


def squeeze(text: str) -> str:
    """NFC, with all whitespace (and SentencePiece's ▁, which reads back as a space) removed."""
    return "".join(unicodedata.normalize("NFC", text).replace("▁", " ").split())


def readme_korean_command() -> list[str]:
    """The README's command that trains the Korean tokenizer, as argv for plmkit.cli.main."""
    lines = [ln for ln in README.read_text(encoding="utf-8").splitlines()
             if ln.startswith("plmkit tokenizer train") and "corpora/ko" in ln and "--out tok-ko " in ln]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]


def train_as_readme(data_dir: Path, out: Path, **replace: str) -> Path:
    argv = readme_korean_command()
    for flag, value in replace.items():
        argv[argv.index(flag) + 1] = value
    argv[argv.index("--out") + 1] = str(out)
    argv = [a.replace("$DATA", str(data_dir)) for a in argv]
    assert main(argv) == 0
    return out


def tsv_column(path: Path, *columns: str) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        texts = [row[c] for row in rows for c in columns if row[c] and row[c].strip()]
    return list(dict.fromkeys(texts))


@pytest.fixture(scope="module")
def everyday(data_dir) -> dict[str, list[str]]:
    """Everyday Korean that corpora/ko (laws, bills, help pages) does not hold."""
    return {"NSMC": tsv_column(data_dir / "korean/nsmc/ratings-part-a.txt", "document"),
            "KorNLI": tsv_column(data_dir / "korean/kornli/xnli.dev.ko.tsv", "sentence1", "sentence2"),
            "hand-picked": EVERYDAY}


@pytest.fixture(scope="module")
def readme_tok(data_dir, tmp_path_factory) -> Path:
    assert readme_korean_command()[:4] == ["tokenizer", "train", "--kind", "unigram"]
    return train_as_readme(data_dir, tmp_path_factory.mktemp("ko") / "tok-ko")


@pytest.fixture(scope="module")
def bpe_tok(data_dir, tmp_path_factory) -> Path:
    return train_as_readme(data_dir, tmp_path_factory.mktemp("ko") / "tok-ko-bpe", **{"--kind": "bpe"})


def unk_rate_and_roundtrip(tok, texts: list[str]) -> tuple[float, float, list[str]]:
    encs = tok.encode_batch(texts, add_special_tokens=False)
    n_tokens = sum(len(e.ids) for e in encs)
    n_unk = sum(e.ids.count(tok.unk_token_id) for e in encs)
    norm = tok.backend.normalizer
    failed = [t for t, e in zip(texts, encs)
              if squeeze(tok.decode(e.ids)) != squeeze(norm.normalize_str(t) if norm else t)]
    return n_unk / n_tokens, 1 - len(failed) / len(texts), failed


@pytest.mark.parametrize("which", ["unigram", "bpe"])
def test_readme_korean_tokenizer_has_no_unk_on_everyday_korean(which, readme_tok, bpe_tok, everyday):
    tok = load_tokenizer(readme_tok if which == "unigram" else bpe_tok)
    for name, texts in everyday.items():
        unk, roundtrip, failed = unk_rate_and_roundtrip(tok, texts)
        assert unk <= 0.001, f"{name}: [UNK] rate {unk:.3%}"
        assert roundtrip >= 0.99, f"{name}: round-trip {roundtrip:.2%}, e.g. {failed[:3]}"
    # the hand-picked cases exactly, not just 99% of them
    for text in EVERYDAY:
        enc = tok.encode(text, add_special_tokens=False)
        assert tok.unk_token_id not in enc.ids, (text, enc.tokens)
        assert squeeze(tok.decode(enc.ids)) == squeeze(text), (text, enc.tokens)


def test_byte_fallback_folder_loads_in_transformers_with_the_same_ids(readme_tok, everyday):
    transformers = pytest.importorskip("transformers")
    ours = load_tokenizer(readme_tok)
    hf = transformers.AutoTokenizer.from_pretrained(readme_tok)
    assert len(hf) == ours.vocab_size == 8000
    assert [ours.token_to_id(t) for t in BYTE_TOKENS] == list(range(5, 261))  # after the 5 specials
    assert json.loads((readme_tok / "tokenizer_config.json").read_text())["plmkit"]["byte_fallback"] is True
    texts = EVERYDAY + everyday["NSMC"][:300] + everyday["KorNLI"][:100]
    batch = hf(texts)["input_ids"]
    for text, hf_ids in zip(texts, batch):
        enc = ours.encode(text)
        assert enc.ids == hf_ids, text
        assert hf.decode(hf_ids, skip_special_tokens=True) == ours.decode(enc.ids), text
    # a rare syllable really goes through the byte tokens, and comes back
    enc = ours.encode("똠", add_special_tokens=False)
    assert [t for t in enc.tokens if t != "▁"] == ["<0xEB>", "<0x98>", "<0xA0>"]
    assert ours.decode(enc.ids) == "똠"


@pytest.fixture(scope="module")
def small_korean(data_dir) -> list[str]:
    return list(read_sentences(data_dir / "corpora/ko/kolaw"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_text_roundtrips_through_byte_fallback(text, readme_tok, bpe_tok):
    """Any Unicode string: no [UNK], and decode(encode(x)) == x up to NFC and whitespace (byte-level BPE: exactly)."""
    uni, bpe = load_tokenizer_cached(readme_tok), load_tokenizer_cached(bpe_tok)
    enc = uni.encode(text, add_special_tokens=False)
    assert uni.unk_token_id not in enc.ids
    if not any(t in text for t in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")):
        assert squeeze(uni.decode(enc.ids)) == squeeze(text)
    enc = bpe.encode(text, add_special_tokens=False)
    assert bpe.unk_token_id not in enc.ids
    if not any(t in text for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")):
        assert bpe.decode(enc.ids) == text


_HF: dict[Path, object] = {}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.text(max_size=40), second=st.text(min_size=1, max_size=40))  # transformers reads "" as no pair
def test_any_pair_encodes_the_same_in_transformers(first, second, readme_tok):
    """A sentence pair (NLI, STS) through AutoTokenizer: the ids, the second segment's type ids and the mask are
    plmkit's own, so a model fine-tuned on pairs sees in transformers what it saw in plmkit."""
    transformers = pytest.importorskip("transformers")
    if readme_tok not in _HF:
        _HF[readme_tok] = transformers.AutoTokenizer.from_pretrained(readme_tok)
    ours = load_tokenizer_cached(readme_tok)(first, second, return_tensors=None)
    theirs = _HF[readme_tok](first, second)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert list(theirs[key]) == list(ours[key][0]), key


_LOADED: dict[Path, object] = {}


def load_tokenizer_cached(path: Path):
    if path not in _LOADED:
        _LOADED[path] = load_tokenizer(path)
    return _LOADED[path]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
def test_lowercased_unigram_roundtrips_modulo_its_normalizer(text, small_korean):
    tok = lowercased_unigram(small_korean)
    enc = tok.encode(text, add_special_tokens=False)
    assert tok.unk_token_id not in enc.ids
    if not any(t in text.lower() for t in ("<pad>", "<unk>", "[cls]", "[sep]", "[mask]")):
        assert squeeze(tok.decode(enc.ids)) == squeeze(tok.backend.normalizer.normalize_str(text))


_SMALL: list = []


def lowercased_unigram(texts: list[str]):
    if not _SMALL:
        _SMALL.append(train_tokenizer("unigram", texts, vocab_size=1000))  # lowercased, accents stripped
    return _SMALL[0]


def test_vocabulary_smaller_than_the_alphabet(data_dir, tmp_path, capsys):
    ko = [str(data_dir / "corpora/ko/kolaw"), str(data_dir / "corpora/ko/kobill")]  # ~150 KB: fast
    # below the byte alphabet: the message says the size needed
    assert main(["tokenizer", "train", "--kind", "unigram", "--vocab-size", "200", "--cased", "--out",
                 str(tmp_path / "a"), *ko]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--vocab-size 200 is too small for a unigram tokenizer with byte fallback: it needs at least 289" in err
    assert "Traceback" not in err and not (tmp_path / "a").exists()
    # above it but below the alphabet of the text: the rarest characters are left to byte fallback
    assert main(["tokenizer", "train", "--kind", "unigram", "--vocab-size", "400", "--cased", "--out",
                 str(tmp_path / "b"), *ko]) == 0
    tok = load_tokenizer(tmp_path / "b")
    assert tok.vocab_size == 400
    for text in EVERYDAY:
        enc = tok.encode(text, add_special_tokens=False)
        assert tok.unk_token_id not in enc.ids and squeeze(tok.decode(enc.ids)) == squeeze(text), text
    # without byte fallback the message names a size that works
    capsys.readouterr()
    assert main(["tokenizer", "train", "--kind", "unigram", "--vocab-size", "400", "--cased", "--no-byte-fallback",
                 "--out", str(tmp_path / "c"), *ko]) == 2
    err = " ".join(capsys.readouterr().err.split())
    need = re.search(r"pass --vocab-size (\d+) or more", err)
    assert need and "distinct characters" in err, err
    assert main(["tokenizer", "train", "--kind", "unigram", "--vocab-size", need.group(1), "--cased",
                 "--no-byte-fallback", "--out", str(tmp_path / "c"), *ko]) == 0
    assert load_tokenizer(tmp_path / "c").vocab_size == int(need.group(1))


def test_small_vocabulary_from_a_one_shot_iterator_says_the_size(small_korean):
    with pytest.raises(UsageError, match=r"pass --vocab-size \d+ or more, or pass a list"):
        train_tokenizer("unigram", iter(small_korean), vocab_size=400, lowercase=False)
    tok = train_tokenizer("unigram", small_korean, vocab_size=400, lowercase=False)  # a list: read twice
    assert tok.vocab_size == 400


def test_wordpiece_on_korean_warns_and_has_no_byte_fallback(small_korean, tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"mostly Hangul .* --kind unigram"):
        tok = train_tokenizer("wordpiece", small_korean, vocab_size=2000, lowercase=False)
    # the documented limit: a word with an unseen character is one [UNK]
    assert tok.encode("개노잼", add_special_tokens=False).tokens == ["[UNK]"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # English text: no warning
        train_tokenizer("wordpiece", ["the cat sat on the mat"] * 5, vocab_size=100)
    (tmp_path / "ko.txt").write_text("\n".join(small_korean), encoding="utf-8")
    for kind, flag in (("wordpiece", "--byte-fallback"), ("bpe", "--no-byte-fallback")):
        assert main(["tokenizer", "train", "--kind", kind, "--vocab-size", "2000", flag, "--out",
                     str(tmp_path / kind), str(tmp_path / "ko.txt")]) == 2
        assert flag in capsys.readouterr().err
        assert not (tmp_path / kind).exists()
