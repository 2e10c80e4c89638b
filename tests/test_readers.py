"""Raw-text readers: formats, conventions, compression, robustness; Brown / SOTU / Austen counts on real data."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import re
from pathlib import Path

import pytest

from plmkit.data import (CorpusReader, brown_categories, expand_inputs, iter_tagged, read_documents,
                         read_sentences, read_tagged)
from plmkit.data.readers import looks_tagged, sentence_splitter
from plmkit.errors import DataError, UsageError

TEXT = "First sentence of doc one.\nSecond sentence of doc one.\n\n\nOnly sentence of doc two.\n  \nDoc three.\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_lines_are_sentences_and_blank_lines_separate_documents(tmp_path):
    f = write(tmp_path / "a.txt", TEXT)
    assert list(read_documents(f)) == [["First sentence of doc one.", "Second sentence of doc one."],
                                       ["Only sentence of doc two."], ["Doc three."]]
    assert list(read_documents(f, doc_per_file=True)) == [["First sentence of doc one.", "Second sentence of doc one.",
                                                           "Only sentence of doc two.", "Doc three."]]


def test_every_file_starts_a_document_and_stats_are_recorded(tmp_path):
    a = write(tmp_path / "a.txt", "a1\na2\n")
    b = write(tmp_path / "b.txt", "b1\n\nb2\n")
    reader = CorpusReader([a, b])
    assert list(reader.sentences()) == [("a1", True), ("a2", False), ("b1", True), ("b2", True)]
    assert [(s.documents, s.sentences) for s in reader.sources] == [(1, 2), (2, 2)]
    assert reader.sources[1].sha256 == hashlib.sha256(b.read_bytes()).hexdigest()
    assert reader.sources[1].size == b.stat().st_size
    assert reader.bytes_read == reader.total_bytes == a.stat().st_size + b.stat().st_size


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)])
def test_compressed_text_reads_like_plain(tmp_path, suffix, compress):
    big = TEXT * 3000  # more than the 64 KiB sniffing head, so the stream is stitched back together
    plain = write(tmp_path / "plain.txt", big)
    packed = write(tmp_path / f"packed.txt{suffix}", compress(big.encode()))
    reader = CorpusReader(packed)
    assert list(reader.documents()) == list(read_documents(plain))
    assert reader.sources[0].compression == {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}[suffix]
    assert reader.sources[0].sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()


def test_corrupt_archive_is_a_data_error(tmp_path):
    data = gzip.compress((TEXT * 5000).encode())
    bad = write(tmp_path / "cut.txt.gz", data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.txt.gz.*corrupt or truncated"):
        list(read_sentences(bad))


def test_folders_are_recursive_sorted_and_skip_hidden_files(tmp_path):
    write(tmp_path / "d" / "b.txt", "b\n")
    write(tmp_path / "d" / "a.txt", "a\n")
    write(tmp_path / "d" / "sub" / "c.txt", "c\n")
    write(tmp_path / "d" / ".hidden", "h\n")
    write(tmp_path / "d" / ".git" / "x", "x\n")
    assert [p.name for p in expand_inputs(tmp_path / "d")] == ["a.txt", "b.txt", "c.txt"]
    assert list(read_sentences(tmp_path / "d")) == ["a", "b", "c"]
    assert [p.name for p in expand_inputs(str(tmp_path / "d" / "*.txt"))] == ["a.txt", "b.txt"]
    # a file named twice (directly and through its folder) is read once
    assert len(expand_inputs([tmp_path / "d" / "a.txt", tmp_path / "d"])) == 3


def test_missing_inputs_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="nope.txt does not exist"):
        expand_inputs(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="no file matches"):
        expand_inputs(str(tmp_path / "*.missing"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        expand_inputs(tmp_path / "empty_dir")


@pytest.mark.parametrize("content", ["", "\n\n   \n\t\n"])
def test_file_without_text_is_a_data_error_naming_it(tmp_path, content):
    good = write(tmp_path / "good.txt", "fine\n")
    empty = write(tmp_path / "empty.txt", content)
    with pytest.raises(DataError, match=r"empty\.txt holds no text"):
        list(read_sentences([good, empty]))


def test_binary_file_is_a_data_error(tmp_path):
    png = write(tmp_path / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"image\.png looks like a binary file"):
        list(read_sentences(png))
    noise = write(tmp_path / "noise.bin", bytes((i * 7919 + 13) % 127 + 129 for i in range(5000)))
    with pytest.raises(DataError, match=r"noise\.bin is not UTF-8 text"):
        list(read_sentences(noise))


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    f = write(tmp_path / "latin1.txt", "ok line\n".encode() + b"caf\xe9 and na\xefve\n" + "한국어 문장\n".encode())
    reader = CorpusReader(f)
    assert list(reader.texts()) == ["ok line", "caf\ufffd and na\ufffdve", "한국어 문장"]
    assert reader.sources[0].invalid_utf8 == 2
    assert reader.invalid_utf8 == 2


def test_bom_and_crlf(tmp_path):
    f = write(tmp_path / "win.txt", b"\xef\xbb\xbfline one\r\nline two\r\n\r\nnext doc\r\n")
    assert list(read_documents(f)) == [["line one", "line two"], ["next doc"]]


def test_split_sentences_joins_wrapped_lines_into_paragraphs(tmp_path):
    text = ("It is a truth universally acknowledged, that a single man in possession\nof a good fortune, must be "
            "in want of a wife. However little known the\nfeelings may be.\n\nMr. Bennet replied that he had not. "
            "But it is, returned she.\n")
    f = write(tmp_path / "novel.txt", text)
    docs = list(read_documents(f, split_sentences=True))
    split = sentence_splitter("en")
    paragraphs = [" ".join(p.split("\n")).strip() for p in text.split("\n\n")]
    assert docs == [split(paragraphs[0]), split(paragraphs[1])]
    assert docs[0] == ["It is a truth universally acknowledged, that a single man in possession of a good fortune, "
                       "must be in want of a wife.", "However little known the feelings may be."]
    assert docs[1][0] == "Mr. Bennet replied that he had not."  # "Mr." is not a sentence end
    assert list(read_documents(f, split_sentences=True, doc_per_file=True)) == [docs[0] + docs[1]]


def test_jsonl_records_are_documents(tmp_path):
    f = write(tmp_path / "c.jsonl", json.dumps({"body": "One.\nTwo."}) + "\n\n" + json.dumps({"body": "Three."}) + "\n")
    assert list(read_documents(f, text_field="body")) == [["One.", "Two."], ["Three."]]
    with pytest.raises(DataError, match=r"c\.jsonl:1: the record has no 'text' field.*--text-field"):
        list(read_documents(f))
    bad = write(tmp_path / "bad.jsonl", '{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not a valid JSON Lines record"):
        list(read_documents(bad))


def test_json_documents_sotu_layout_and_lists(tmp_path):
    speech = write(tmp_path / "1790_x.json", json.dumps({"year": 1790, "text": "Fellow citizens. We meet again."}))
    assert list(read_documents(speech)) == [["Fellow citizens. We meet again."]]
    assert list(read_documents(speech, split_sentences=True)) == [["Fellow citizens.", "We meet again."]]
    many = write(tmp_path / "many.json", json.dumps([{"text": "a"}, {"text": "b\nc"}]))
    assert list(read_documents(many)) == [["a"], ["b", "c"]]
    assert list(read_documents(many, doc_per_file=True)) == [["a", "b", "c"]]
    number = write(tmp_path / "number.json", json.dumps({"text": 3}))
    with pytest.raises(DataError, match="holds int, not text"):
        list(read_documents(number))


BROWN_SAMPLE = ("\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at "
                "investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at "
                "evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n\n\n"
                "\tThe/at jury/nn said/vbd 1/2/cd ./.\nIt/pps did/dod ./.\n")


def test_brown_tagged_format_is_detected_and_keeps_tags(tmp_path):
    f = write(tmp_path / "ca01", BROWN_SAMPLE)
    assert looks_tagged(BROWN_SAMPLE) and not looks_tagged(TEXT * 10)
    sents = read_tagged(f)
    assert len(sents) == 3
    assert sents[0][0][:3] == ["The", "Fulton", "County"] and sents[0][1][:3] == ["at", "np-tl", "nn-tl"]
    assert sents[1] == (["The", "jury", "said", "1/2", "."], ["at", "nn", "vbd", "cd", "."])
    docs = list(read_documents(f))  # one document per file, plain sentences
    assert docs == [[" ".join(w) for w, _ in sents]]
    with pytest.raises(DataError, match=r"a\.txt:1: token 'First' is not word/tag"):
        list(read_documents(write(tmp_path / "a.txt", TEXT), format="brown"))


def test_reader_options_are_validated():
    with pytest.raises(UsageError, match="unknown input format"):
        CorpusReader([], format="csv")
    with pytest.raises(UsageError, match="unknown reader option"):
        read_documents([], splitting=True)


# ------------------------------------------------------------------------------------------ real data
def test_brown_corpus_counts(data_dir):
    brown = data_dir / "corpora" / "brown"
    cats = brown_categories(brown)
    assert len(cats) == 500 and len({c for v in cats.values() for c in v}) == 15
    reader = CorpusReader(brown)  # the folder's cats.txt names the corpus files (README, CONTENTS are skipped)
    assert [p.name for p in reader.files] == list(cats)
    n_docs = n_sents = n_words = 0
    for doc in reader.documents():
        n_docs += 1
        n_sents += len(doc)
        n_words += sum(len(s.split()) for s in doc)
    assert (n_docs, n_sents, n_words) == (500, 57_340, 1_161_192)  # the corpus' published figures
    assert all(s.format == "brown" for s in reader.sources)


def test_brown_tagged_api_matches_a_direct_parse(data_dir):
    path = data_dir / "corpora" / "brown" / "cr09"
    direct = [[tok.rsplit("/", 1) for tok in line.split()] for line in path.read_text().splitlines() if line.strip()]
    (name, sents), = list(iter_tagged(path))
    assert name == path
    assert sents == [([w for w, _ in s], [t for _, t in s]) for s in direct]


def test_sotu_and_austen_counts(data_dir):
    corpora = data_dir / "corpora"
    sotu = list(read_documents(corpora / "sotu", split_sentences=True))
    assert len(sotu) == 233
    speech = json.loads((corpora / "sotu" / "1790_george_washington_n.json").read_text())["text"]
    assert sotu[0] == sentence_splitter("en")(speech)
    austen = CorpusReader(corpora / "austen", doc_per_file=True, split_sentences=True)
    docs = list(austen.documents())
    assert len(docs) == 6
    # independent re-reading: paragraphs are blank-line separated blocks of wrapped lines
    split = sentence_splitter("en")
    text = (corpora / "austen" / "emma.txt").read_text(encoding="utf-8")
    paragraphs = [" ".join(line.strip() for line in block.splitlines() if line.strip())
                  for block in re.split(r"\n\s*\n", text)]
    assert docs[0] == [s for p in paragraphs if p for s in split(p)]
