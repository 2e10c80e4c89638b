"""``plmkit prepare`` and PreparedCorpus: completeness on Brown + Austen + SOTU against direct
``tokenizers`` encoding, the memmap API, atomic output, and every bad-input case."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer as RawTokenizer

from plmkit import load_tokenizer
from plmkit.cli import main
from plmkit.data import PreparedCorpus, read_documents, write_prepared
from plmkit.data import shards as shards_module
from plmkit.errors import DataError, UsageError
from plmkit.tokenization import train_tokenizer

WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly boxers".split()


def stderr(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def leftovers(parent: Path) -> list[str]:
    """Hidden temporary folders that a failed run would have left behind."""
    return [p.name for p in parent.iterdir() if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)]


@pytest.fixture(scope="module")
def tiny_tok(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=8)) + "." for _ in range(300)]
    folder = tmp_path_factory.mktemp("tok") / "wordpiece"
    train_tokenizer("wordpiece", texts, vocab_size=120).save_pretrained(folder)
    return folder


@pytest.fixture
def text_file(tmp_path) -> Path:
    f = tmp_path / "in" / "a.txt"
    f.parent.mkdir()
    f.write_text("the quick brown fox.\njumps over the dog.\n\na lazy dog.\n", encoding="utf-8")
    return f


# ------------------------------------------------------------------------------------------ README
# Data commands as users write them (the README's walkthrough runs its own copies in tests/test_readme.py);
# the tests below run these with $PLMKIT_DATA filled in and check what they produce.
README_COMMANDS = [
    "plmkit tokenizer train --kind wordpiece --vocab-size 8000 --max-sentences 20000 --split-sentences "
    "--out tok-en $PLMKIT_DATA/corpora/brown $PLMKIT_DATA/corpora/austen $PLMKIT_DATA/corpora/sotu",
    "plmkit prepare --tokenizer tok-en --out prepared-en --doc-per-file --split-sentences "
    "$PLMKIT_DATA/corpora/brown $PLMKIT_DATA/corpora/austen $PLMKIT_DATA/corpora/sotu",
    "plmkit prepare --info prepared-en",
    "plmkit tokenizer train --kind unigram --vocab-size 8000 --cased --out tok-ko $PLMKIT_DATA/corpora/ko",
    "plmkit prepare --tokenizer tok-ko --out prepared-ko $PLMKIT_DATA/corpora/ko",
    "plmkit prepare --tokenizer tok-en --out prepared-news --text-field body news.jsonl.gz",
    'plmkit prepare --word-level --min-count 2 --out prepared-elmo "$PLMKIT_DATA/corpora/brown/ca[0-9]*"',
]


def run_readme(index: int, data_dir: Path) -> int:
    import shlex

    argv = shlex.split(README_COMMANDS[index].replace("$PLMKIT_DATA", str(data_dir)))
    assert argv[0] == "plmkit"
    return main(argv[1:])


# ------------------------------------------------------------------------------------------ completeness
@pytest.fixture(scope="module")
def big(data_dir, tmp_path_factory):
    """Brown + Austen + SOTU (~25 MB) prepared by the README's commands, and a direct reference encoding."""
    corpora = data_dir / "corpora"
    inputs = [corpora / "brown", corpora / "austen", corpora / "sotu"]
    work = tmp_path_factory.mktemp("big")
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mp.setenv("TOKENIZERS_PARALLELISM", "true")  # restored afterwards (the suite runs tokenizers single-threaded)
    try:
        assert run_readme(0, data_dir) == 0
        assert run_readme(1, data_dir) == 0
        docs = list(read_documents(inputs, doc_per_file=True, split_sentences=True))
        raw = RawTokenizer.from_file(str(work / "tok-en" / "tokenizer.json"))
        encodings = raw.encode_batch([s for d in docs for s in d], add_special_tokens=False)
    finally:
        mp.undo()
    return {"corpus": PreparedCorpus(work / "prepared-en"), "docs": docs, "encodings": encodings, "work": work}


@pytest.mark.slow
def test_prepare_keeps_every_sentence_and_document(big):
    corpus, docs, encodings = big["corpus"], big["docs"], big["encodings"]
    assert corpus.num_documents == len(docs) == 500 + 6 + 233
    brown_sentences = sum(len(d) for d in docs[:500])
    assert brown_sentences == 57_340  # the Brown corpus' published count
    assert len(encodings) == sum(len(d) for d in docs)
    direct_lengths = np.array([len(e.ids) for e in encodings])
    assert corpus.num_tokens == direct_lengths.sum()
    # Sentences longer than 512 tokens (SOTU paragraphs sentencex leaves whole, up to 16,381 tokens) are split
    # into pieces of at most 512 (issue 21); every input sentence boundary stays a boundary.
    long = direct_lengths > 512
    assert long.sum() > 0 and corpus.meta["counts"]["long_sentences_split"] == long.sum()
    assert corpus.sentence_lengths.max() <= 512 and corpus.meta["max_sentence_tokens"] == 512
    assert corpus.num_sentences >= len(encodings) + sum(-(-n // 512) - 1 for n in direct_lengths[long])
    assert set(np.cumsum(direct_lengths).tolist()) <= set(np.cumsum(corpus.sentence_lengths).tolist())
    first = np.searchsorted(np.cumsum(corpus.sentence_lengths) - corpus.sentence_lengths,
                            np.cumsum(direct_lengths) - direct_lengths)
    assert np.array_equal(corpus.doc_sentence_offsets, first[np.cumsum([0] + [len(d) for d in docs])[:-1]].tolist()
                          + [corpus.num_sentences])
    assert corpus.meta["counts"]["empty_sentences_dropped"] == 0
    assert corpus.meta["input"]["sentences_read"] == len(encodings)


@pytest.mark.slow
def test_every_document_reads_back_with_the_direct_ids(big):
    corpus, docs, encodings = big["corpus"], big["docs"], big["encodings"]
    i = 0
    for d, doc in enumerate(docs):
        direct = encodings[i:i + len(doc)]
        i += len(doc)
        tokens = corpus.document_tokens(d)
        assert tokens.dtype == np.uint16
        assert np.array_equal(tokens, np.concatenate([e.ids for e in direct])), d
        if d % 97 == 0:
            sents = corpus.document(d)
            if all(len(e.ids) <= 512 for e in direct):
                assert [s.tolist() for s in sents] == [e.ids for e in direct]
            else:  # a sentence over 512 tokens is split (issue 21): the input's sentence ends stay ends
                assert set(np.cumsum([len(e.ids) for e in direct])) <= set(np.cumsum([len(s) for s in sents]))
            starts = corpus.document_word_starts(d)
            expected = np.concatenate([[k == 0 or e.word_ids[k] != e.word_ids[k - 1] for k in range(len(e.ids))]
                                       for e in direct])
            expected[np.cumsum([0] + [len(s) for s in sents])[:-1]] = True  # a piece starts a word
            assert np.array_equal(starts, expected)
            # WordPiece: a word starts exactly at the tokens without the "##" continuation prefix
            tokens_text = [t for e in direct for t in e.tokens]
            assert np.array_equal(starts, [not t.startswith("##") for t in tokens_text])


@pytest.mark.slow
def test_documents_never_straddle_shards(big, data_dir, tmp_path):
    files = [data_dir / "corpora" / "brown" / f"ca{i:02d}" for i in range(1, 21)]
    out = tmp_path / "sharded"
    assert main(["prepare", "--tokenizer", str(big["work"] / "tok-en"), "--out", str(out), "--shard-tokens", "5000",
                 *map(str, files)]) == 0
    corpus = PreparedCorpus(out)
    shards = corpus.meta["shards"]
    assert len(shards) > 5 and sum(s["num_documents"] for s in shards) == corpus.num_documents == 20
    for s in shards:
        first, n = s["first_document"], s["num_documents"]
        start = corpus.sentence_offsets[corpus.doc_sentence_offsets[first]]
        end = corpus.sentence_offsets[corpus.doc_sentence_offsets[first + n]]
        assert (start, end - start) == (s["token_offset"], s["num_tokens"])
        assert s["num_tokens"] >= 5_000 or s is shards[-1]
    raw = RawTokenizer.from_file(str(big["work"] / "tok-en" / "tokenizer.json"))
    for d, doc in enumerate(read_documents(files)):
        direct = np.concatenate([e.ids for e in raw.encode_batch(doc, add_special_tokens=False)])
        assert np.array_equal(corpus.document_tokens(d), direct)


@pytest.mark.slow
def test_meta_records_tokenizer_and_sources(big):
    corpus, work = big["corpus"], big["work"]
    meta = corpus.meta
    tok = load_tokenizer(work / "tok-en")
    assert corpus.tokenizer_hash == tok.hash() == corpus.load_tokenizer().hash()
    assert corpus.vocab_size == tok.vocab_size > 5000 and not corpus.word_level
    assert len(meta["sources"]) == 739
    ca01 = next(s for s in meta["sources"] if s["path"].endswith("ca01"))
    import hashlib
    assert ca01["sha256"] == hashlib.sha256(Path(ca01["path"]).read_bytes()).hexdigest()
    assert ca01["size"] == Path(ca01["path"]).stat().st_size and ca01["format"] == "brown"
    assert {s["format"] for s in meta["sources"]} == {"brown", "text", "json"}
    PreparedCorpus(work / "prepared-en", verify=True)  # every shard and index checksum


# ------------------------------------------------------------------------------------------ the API
def test_write_prepared_and_random_access(tiny_tok, tmp_path):
    rng = np.random.default_rng(1)
    vocab = load_tokenizer(tiny_tok).vocab_size  # ids the tokenizer can have (the trainer may stop short of 120)
    docs = []
    for d in range(40):
        doc = []
        for s in range(int(rng.integers(1, 6))):
            n = int(rng.integers(1, 30))
            doc.append((rng.integers(5, vocab, size=n), (rng.random(n) < 0.6).astype(np.uint8)))
        docs.append(doc)
    corpus = write_prepared(tmp_path / "c", tiny_tok, docs, shard_tokens=100)
    assert corpus.num_documents == 40 and corpus.num_sentences == sum(map(len, docs))
    assert corpus.num_tokens == sum(len(ids) for doc in docs for ids, _ in doc)
    assert corpus.sentence_lengths.dtype == np.int64 and corpus.doc_sentence_offsets.dtype == np.int64
    assert len(corpus.meta["shards"]) > 3
    i = 0
    for d, doc in enumerate(docs):
        assert [s.tolist() for s in corpus.document(d)] == [ids.tolist() for ids, _ in doc]
        assert corpus.document_tokens(d).tolist() == np.concatenate([ids for ids, _ in doc]).tolist()
        assert corpus.document_word_starts(d).dtype == np.bool_
        assert corpus.document_word_starts(d).tolist() == np.concatenate([ws for _, ws in doc]).astype(bool).tolist()
        for ids, ws in doc:
            assert corpus.sentence(i).tolist() == ids.tolist()
            assert corpus.sentence_word_starts(i).tolist() == ws.astype(bool).tolist()
            i += 1
    assert corpus.sentence(-1).tolist() == docs[-1][-1][0].tolist()
    with pytest.raises(IndexError):
        corpus.document(40)
    train, held = corpus.split(eval_fraction=0.1, seed=5)
    assert len(held) == 4 and len(train) == 36 and not set(train) & set(held)
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(40))
    again = corpus.split(eval_fraction=0.1, seed=5)
    assert np.array_equal(again[1], held) and not np.array_equal(corpus.split(0.1, seed=6)[1], held)
    assert len(corpus.split(0.0)[1]) == 1  # min_eval_documents
    import pickle

    clone = pickle.loads(pickle.dumps(corpus))  # by path (DataLoader workers): small, reopens the maps
    assert len(pickle.dumps(corpus)) < 1000 and clone.document_tokens(39).tolist() == corpus.document_tokens(39).tolist()
    with pytest.raises(UsageError, match="cannot hold out"):
        corpus.split(0.0, min_eval_documents=40)


def test_empty_sentences_are_dropped_and_empty_documents_vanish(tiny_tok, tmp_path):
    e = (np.array([], dtype=np.int64), np.array([], dtype=np.uint8))
    a = (np.array([7, 8]), np.array([1, 0]))
    b = (np.array([9]), np.array([1]))
    corpus = write_prepared(tmp_path / "c", tiny_tok, [[e, a], [e], [b, e, a]])
    assert (corpus.num_documents, corpus.num_sentences) == (2, 3)
    assert [s.tolist() for s in corpus.document(0)] == [[7, 8]]
    assert [s.tolist() for s in corpus.document(1)] == [[9], [7, 8]]
    assert corpus.meta["counts"]["empty_sentences_dropped"] == 3


def test_uint32_shards_for_large_vocabularies(tmp_path):
    from tokenizers import models, pre_tokenizers

    raw = RawTokenizer(models.WordLevel({f"w{i}": i for i in range(70_000)} | {"<unk>": 70_000}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    from plmkit import Tokenizer

    Tokenizer(raw).save_pretrained(tmp_path / "tok")
    corpus = write_prepared(tmp_path / "c", tmp_path / "tok", [[(np.array([69_999, 3]), np.array([1, 1]))]])
    assert corpus.meta["dtype"] == "uint32" and corpus.sentence(0).tolist() == [69_999, 3]
    with pytest.raises(DataError, match="token ids must lie in"):
        write_prepared(tmp_path / "bad", tmp_path / "tok", [[(np.array([80_000]), np.array([1]))]])
    assert not (tmp_path / "bad").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("workers", [1, 2])
def test_pipeline_keeps_order_and_raises_errors(tiny_tok, workers, monkeypatch):
    backend = load_tokenizer(tiny_tok).backend
    batches = [([f"the {w} fox." for w in WORDS[i:i + 3]], [True, False, False]) for i in range(0, 15, 3)]
    got = list(shards_module._tokenized_batches(backend, iter(batches), np.dtype(np.uint16), False, workers))
    assert [st for *_, st in got] == [st for _, st in batches]
    for (ids, word_starts, lengths, _), (texts, _) in zip(got, batches):
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        assert ids.tolist() == [i for e in encodings for i in e.ids]
        assert lengths.tolist() == [len(e.ids) for e in encodings]
        assert word_starts.dtype == np.uint8 and len(word_starts) == len(ids)

    def failing():
        yield batches[0]
        raise DataError("broken input")

    with pytest.raises(DataError, match="broken input"):  # from the reading thread
        list(shards_module._tokenized_batches(backend, failing(), np.dtype(np.uint16), False, workers))
    monkeypatch.setattr(shards_module, "encodings_to_arrays", _broken_conversion)  # forked workers inherit it
    with pytest.raises(DataError, match="conversion failed"):  # from the tokenizing worker
        list(shards_module._tokenized_batches(backend, iter(batches), np.dtype(np.uint16), False, workers))


def _broken_conversion(*args, **kwargs):
    raise DataError("conversion failed")


def test_damaged_corpus_is_detected(tiny_tok, tmp_path):
    write_prepared(tmp_path / "c", tiny_tok, [[(np.arange(5, 50), np.ones(45, dtype=np.uint8))]])
    shard = tmp_path / "c" / "shards" / "00000.tokens.bin"
    data = bytearray(shard.read_bytes())
    data[10] ^= 1
    shard.write_bytes(bytes(data))
    PreparedCorpus(tmp_path / "c")  # sizes still match
    with pytest.raises(DataError, match="checksum mismatch"):
        PreparedCorpus(tmp_path / "c", verify=True)
    shard.write_bytes(bytes(data[:-2]))
    with pytest.raises(DataError, match="incomplete or damaged"):
        PreparedCorpus(tmp_path / "c")
    with pytest.raises(DataError, match="not a prepared corpus"):
        PreparedCorpus(tmp_path)


# ------------------------------------------------------------------------------------------ CLI
def test_prepare_cli_and_info(tiny_tok, text_file, tmp_path, capsys):
    out = tmp_path / "prep"
    assert main(["prepare", "--tokenizer", str(tiny_tok), "--out", str(out), str(text_file)]) == 0
    assert "2 documents, 3 sentences" in capsys.readouterr().out
    corpus = PreparedCorpus(out)
    tok = load_tokenizer(tiny_tok)
    assert corpus.sentence(2).tolist() == tok.encode("a lazy dog.", add_special_tokens=False).ids
    assert sorted(p.name for p in out.iterdir()) == [".plmkit-output.json", "doc_sentence_offsets.npy", "meta.json",
                                                     "sentence_lengths.npy",
                                                     "sentence_offsets.npy", "shards", "tokenizer"]
    assert main(["prepare", "--info", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "documents        2" in printed and "checksums        ok" in printed
    assert main(["prepare", "--info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["documents"], info["sentences"], info["tokens"]) == (2, 3, corpus.num_tokens)
    # --overwrite replaces a prepared corpus
    text_file.write_text("only one.\n")
    assert main(["prepare", "--tokenizer", str(tiny_tok), "--out", str(out), "--overwrite", str(text_file)]) == 0
    assert PreparedCorpus(out).num_sentences == 1 and not leftovers(tmp_path)


@pytest.mark.slow
def test_readme_info_command(big, capsys, monkeypatch):
    monkeypatch.chdir(big["work"])
    assert run_readme(2, Path("unused")) == 0
    printed = capsys.readouterr().out
    corpus = big["corpus"]
    assert f"documents        {corpus.num_documents:,}" in printed
    assert f"tokens           {corpus.num_tokens:,}" in printed


@pytest.mark.slow
def test_readme_korean_commands(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_readme(3, data_dir) == 0
    assert run_readme(4, data_dir) == 0
    corpus = PreparedCorpus("prepared-ko")
    tok = corpus.load_tokenizer()
    assert tok.kind == "unigram"
    docs = list(read_documents(data_dir / "corpora" / "ko"))
    assert corpus.num_documents == len(docs)
    for d in range(0, len(docs), 50):  # documents read back decode to their text (no [UNK] in training text)
        for text, ids in zip(docs[d], corpus.document(d)):
            assert "".join(tok.decode(ids).split()) == "".join(text.split())


@pytest.mark.slow
def test_readme_jsonl_command(big, tmp_path, monkeypatch, data_dir):
    import gzip

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tok-en").symlink_to(big["work"] / "tok-en")
    speeches = sorted((data_dir / "corpora" / "sotu").glob("19*.json"))[:5]
    texts = [json.loads(p.read_text())["text"] for p in speeches]
    with gzip.open("news.jsonl.gz", "wt", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"id": 1, "body": t}) + "\n")
    assert run_readme(5, data_dir) == 0
    corpus = PreparedCorpus("prepared-news")
    tok = load_tokenizer("tok-en")
    assert corpus.num_documents == 5
    assert corpus.document_tokens(4).tolist() == tok.encode(texts[4], add_special_tokens=False).ids
    assert corpus.meta["sources"][0]["compression"] == "gzip" and corpus.meta["sources"][0]["format"] == "jsonl"


def test_readme_word_level_command(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_readme(6, data_dir) == 0
    corpus = PreparedCorpus("prepared-elmo")
    tok = corpus.load_tokenizer()
    assert corpus.word_level and tok.kind == "wordlevel"
    files = sorted((data_dir / "corpora" / "brown").glob("ca[0-9]*"))
    assert len(corpus.meta["sources"]) == len(files) == 44
    words = [w for doc in read_documents(files) for s in doc for w in s.split()]
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<pad>", "<unk>", "<s>", "</s>")] == [0, 1, 2, 3]
    kept = sorted((w for w, c in counts.items() if c >= 2), key=lambda w: vocab[w])
    assert len(vocab) == 4 + len(kept)
    assert all(counts[a] >= counts[b] for a, b in zip(kept, kept[1:]))  # frequency-sorted
    assert corpus.num_tokens == len(words)  # one id per word, rare words as <unk>
    ids = np.concatenate([corpus.document_tokens(d) for d in range(corpus.num_documents)])
    assert ids.tolist() == [vocab.get(w, 1) for w in words]
    assert all(corpus.document_word_starts(d).all() for d in range(corpus.num_documents))
    two = [str(f) for f in files[:2]]
    assert main(["prepare", "--word-level", "--vocab-size", "50", "--out", "small", *two]) == 0
    assert PreparedCorpus("small").vocab_size == 50
    capsys.readouterr()
    assert main(["prepare", "--word-level", "--vocab-size", "50", "--min-count", "2", "--out", "x", *two]) == 2
    assert "either --vocab-size or --min-count" in stderr(capsys)


def test_readme_python_example(tmp_path, monkeypatch, capsys):
    """The README's Python block (the draft's copy; test_readme.py runs the README's own)."""
    monkeypatch.chdir(tmp_path)
    code = """
from pathlib import Path

from plmkit.data import PreparedCorpus, prepare_corpus, read_sentences
from plmkit.tokenization import train_tokenizer

Path("notes.txt").write_text("plmkit reads one sentence per line.\\nA blank line ends a document.\\n\\n"
                             "한국어 문장도 잘 됩니다.\\n", encoding="utf-8")
tok = train_tokenizer("wordpiece", read_sentences("notes.txt"), vocab_size=200)
tok.save_pretrained("tok-notes")
corpus = prepare_corpus("notes.txt", "prepared-notes", tokenizer="tok-notes")
print(corpus)                               # 2 documents, 3 sentences
ids = corpus.document_tokens(1)             # a view into the memory-mapped shard
print(tok.decode(ids))                      # 한국어 문장도 잘 됩니다.
train_docs, eval_docs = PreparedCorpus("prepared-notes").split(eval_fraction=0.5, seed=0)
"""
    namespace: dict = {}
    exec(compile(code, "README python block", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert "2 documents, 3 sentences" in out[0] and out[1] == "한국어 문장도 잘 됩니다."
    assert len(namespace["train_docs"]) == 1 and len(namespace["eval_docs"]) == 1


# ------------------------------------------------------------------------------------------ bad input
def run_bad(args: list[str], capsys) -> tuple[int, str]:
    code = main(["prepare", *args])
    return code, stderr(capsys)


def test_bad_input_empty_file(tiny_tok, text_file, tmp_path, capsys):
    empty = tmp_path / "in" / "empty.txt"
    empty.write_text("")
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(tmp_path / "out"), str(text_file), str(empty)],
                        capsys)
    assert code == 1 and "empty.txt holds no text" in err
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_bad_input_binary_file(tiny_tok, text_file, tmp_path, capsys):
    binary = tmp_path / "in" / "model.bin"
    binary.write_bytes(np.arange(4096, dtype=np.int32).tobytes())
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(tmp_path / "out"), str(text_file), str(binary)],
                        capsys)
    assert code == 1 and "model.bin looks like a binary file" in err
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_bad_input_missing_path(tiny_tok, tmp_path, capsys):
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(tmp_path / "out"), str(tmp_path / "nope.txt")],
                        capsys)
    assert code == 1 and "nope.txt does not exist" in err
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_bad_output_folder_cannot_be_written(tiny_tok, text_file, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(blocker / "out"), str(text_file)], capsys)
    assert code == 2 and "cannot write the output folder" in err
    if os.geteuid() != 0:  # root writes anywhere; the case above covers it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(locked / "out"), str(text_file)], capsys)
        assert code == 2 and "cannot write the output folder" in err
        assert not list(locked.iterdir())


def test_bad_existing_output_without_overwrite(tiny_tok, text_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(out), str(text_file)], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(out), "--overwrite", str(text_file)], capsys)
    assert code == 2 and "refuses to replace" in err  # not a prepared corpus: never deleted
    assert (out / "keep.txt").read_text() == "user data" and not leftovers(tmp_path)


def test_bad_missing_tokenizer_folder(text_file, tmp_path, capsys):
    code, err = run_bad(["--tokenizer", str(tmp_path / "no-tok"), "--out", str(tmp_path / "out"), str(text_file)],
                        capsys)
    assert code == 1 and "no-tok does not exist" in err
    assert not (tmp_path / "out").exists()


def test_failed_overwrite_keeps_the_old_corpus(tiny_tok, text_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prepare", "--tokenizer", str(tiny_tok), "--out", str(out), str(text_file)]) == 0
    before = (out / "meta.json").read_text()
    empty = tmp_path / "in" / "empty.txt"
    empty.write_text("\n")
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(out), "--overwrite", str(text_file), str(empty)],
                        capsys)
    assert code == 1 and (out / "meta.json").read_text() == before and not leftovers(tmp_path)


def test_interrupted_run_leaves_nothing(tiny_tok, text_file, tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shards_module, "encodings_to_arrays", interrupt)
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(tmp_path / "out"), str(text_file)], capsys)
    assert code == 130 and "interrupted" in err
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_bad_flags(tiny_tok, text_file, tmp_path, capsys):
    code, err = run_bad(["--out", str(tmp_path / "o"), str(text_file)], capsys)
    assert code == 2 and "pass --tokenizer DIR" in err
    code, err = run_bad(["--tokenizer", str(tiny_tok), "--out", str(tmp_path / "o"), "--workers", "0",
                         str(text_file)], capsys)
    assert code == 2 and "--workers must be at least 1" in err
    code, err = run_bad(["--tokenizer", str(tiny_tok), str(text_file)], capsys)
    assert code == 2 and "needs --out" in err
    code, err = run_bad(["--info", str(tmp_path)], capsys)
    assert code == 1 and "not a prepared corpus" in err
