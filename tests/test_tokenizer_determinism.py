"""WordPiece training gives the same tokenizer every run (plmkit.tokenization._train_wordpiece).

Hugging Face's WordPiece trainer numbers its "##" pieces in the order of a hash map seeded per process
and breaks ties between equal merges by those numbers, so two trainings on the same text gave different
ids (and now and then a different piece). The demo must print the same table on every run, so plmkit trains
on words whose continuation characters are stand-ins, which the trainer numbers by code point.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import pre_tokenizers

from plmkit.tokenization import (_BertWords, _new_backend, _train_wordpiece, _trainer, load_tokenizer,
                                 train_tokenizer)

# Many words of equal frequency over a small alphabet: merges of equal count everywhere.
TEXT = [" ".join(f"{a}{b}{c}{d}" for a in "kst" for b in "aeiou" for c in "nrl" for d in "aeo")] * 3 + [
    "Les élèves d'aujourd'hui — naïfs, « curieux » — lisent 12,5 % de plus. 한국어 문장도 있습니다."] * 2

TRAIN = """
import sys
from plmkit.tokenization import train_tokenizer
text = {text!r}
train_tokenizer("wordpiece", text, vocab_size=120, lowercase=False).save_pretrained(sys.argv[1])
"""


def test_two_processes_train_the_same_wordpiece(tmp_path):
    digests = []
    for run in range(3):  # each process seeds Hugging Face's hash maps afresh
        out = tmp_path / f"run{run}"
        subprocess.run([sys.executable, "-c", TRAIN.format(text=TEXT), str(out)], check=True)
        digests.append(hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest())
    assert len(set(digests)) == 1
    tok = load_tokenizer(tmp_path / "run0")
    vocab = tok.get_vocab()
    assert len(vocab) == 120
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    # the alphabet in code-point order, its "##" forms, then merges; words still tokenize as before
    assert vocab["a"] < vocab["k"] < vocab["é"] and "##a" in vocab and "##è" in vocab
    ids = tok.encode("kanaserla aujourd'hui").ids
    assert tok.decode(ids) == "kanaserla aujourd ' hui"
    assert 1 not in ids  # no [UNK]


def test_the_same_pieces_as_hugging_faces_trainer_where_no_tie_decides():
    # Training runs until no pair is left (the vocabulary is large enough), so the order ties are taken in
    # decides nothing: the set of pieces is Hugging Face's. Digits never start a word here, yet each is a
    # piece of its own as well as a "##" piece, as in Hugging Face's alphabet.
    rng = random.Random(0)
    words = [f"w{i}" for i in range(32)]
    text = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(200)]
    reference = _new_backend("wordpiece", lowercase=True, strip_accents=None)
    reference.train_from_iterator(text, trainer=_trainer("wordpiece", 100, 2, None, False))
    ours = train_tokenizer("wordpiece", text, vocab_size=100, lowercase=True).get_vocab()
    assert set(ours) == set(reference.get_vocab()) and "7" in ours and "##7" in ours


def test_limit_alphabet_keeps_the_most_frequent_characters():
    text = ["aaaa bbbb cccc", "aaa bb c", "zq"]
    tok = train_tokenizer("wordpiece", text, vocab_size=40, lowercase=False, limit_alphabet=3)
    vocab = tok.get_vocab()
    assert {"a", "b", "c"} <= set(vocab) and "z" not in vocab and "q" not in vocab and "##q" not in vocab
    assert 1 not in tok.encode("abc").ids


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet=" \t\n\u3000\u2028.,!?'\"()-—«»¿¡·…abcé한", max_size=60))
def test_python_split_equals_berts_pre_tokenizer(text):
    ours = _BertWords()(text)
    assert ours == [w for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(text)]


def test_characters_in_the_stand_in_plane_come_back_as_they_were():
    # BERT's normalizer drops private-use characters, so only a backend without it meets them: they get
    # stand-ins of their own and come back as they were.
    backend = _new_backend("wordpiece", lowercase=False, strip_accents=None)
    backend.normalizer = None
    _train_wordpiece(backend, ["a\U000F0001b \U000F0002c d\U000F0002", "a\U000F0001b"] * 3, 30, 2, None, False)
    pieces = set(backend.get_vocab())
    assert {"\U000F0002", "##\U000F0002", "##\U000F0001", "a", "##b"} <= pieces
    assert backend.encode("a\U000F0001b").tokens == ["a\U000F0001b"]
