"""Token classification: CoNLL-2003 NER, Brown POS tagging, KLUE-NER (character level).

BERT (§5.3) tags words by feeding sub-tokens and predicting at the *first sub-token of each word*;
the other sub-tokens get label -100 (no loss, no prediction), and every word's prediction is the
label predicted at its first sub-token. Word boundaries come from the tokenizer's word ids, not
from "##" markers, so the same code serves WordPiece, BPE and unigram vocabularies.

* ``conll-ner``: the original CoNLL-2003 files — ``word POS chunk NER`` per line, blank lines
  between sentences, ``-DOCSTART-`` lines between documents (dropped). Tags are IOB1 (``I-`` inside
  every entity, ``B-`` only where two entities of one type touch) and are learned as given; the
  score is conlleval's entity-level F1.
* ``brown-pos``: the Brown corpus in its tagged format (``word/tag`` tokens, one sentence per line,
  NLTK's ``corpora/brown`` layout), read by the shared :func:`plmkit.data.readers.iter_tagged`. The
  tag set is the one the training data uses (full Brown tags such as ``np-tl``); metric: token
  accuracy.
* ``klue-ner``: KLUE's character-level BIO file (``## guid<TAB>tagged sentence`` then one
  ``char<TAB>tag`` row per character, spaces included). Characters are mapped to sub-tokens
  through the tokenizer's character offsets: a token is trained on the tag of its first character;
  a predicted token tag spreads to the token's characters (``B-X`` continues as ``I-X``), and a
  space takes ``I-X`` when it lies inside a predicted entity. Scored on characters, as KLUE does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import DataError, excerpt
from . import IGNORE_INDEX, Features, ReadReport, TaggingExample, open_text, refuse_json

CONLL_TYPES = ("PER", "ORG", "LOC", "MISC")
CONLL_LABELS = ("O", *(f"{p}-{t}" for t in CONLL_TYPES for p in ("B", "I")))
KLUE_TYPES = ("PS", "LC", "OG", "DT", "TI", "QT")  # person, location, organisation, date, time, quantity
KLUE_LABELS = ("O", *(f"{p}-{t}" for t in KLUE_TYPES for p in ("B", "I")))


# --------------------------------------------------------------------------- readers
def read_conll(path: str | Path, require_labels: bool = True, labels: Sequence[str] | None = CONLL_LABELS
               ) -> tuple[list[TaggingExample], ReadReport]:
    """CoNLL column files: the first column is the word, the last the tag (one column: unlabelled)."""
    report = ReadReport(str(path))
    examples: list[TaggingExample] = []
    words: list[str] = []
    tags: list[str] = []
    ncols = None
    start = 0
    known = set(labels) if labels is not None else None
    refuse_json(path, "conll-ner", "CoNLL-2003 column text (one 'word POS chunk NER' line per token, blank lines "
                "between sentences)")

    def flush() -> None:
        nonlocal words, tags
        if words:
            examples.append(TaggingExample(f"{Path(path).name}-{start}", words,
                                           tags if ncols and ncols > 1 else None, line=start))
        words, tags = [], []

    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                flush()
                continue
            if fields[0] == "-DOCSTART-":
                flush()
                continue
            if ncols is None:
                ncols = len(fields)
                if ncols == 1 and require_labels:
                    raise DataError(f"{path}, line {n}: one column only; training and evaluation need a tag "
                                    "in the last column (CoNLL-2003: word POS chunk NER)")
            elif len(fields) != ncols:
                raise DataError(f"{path}, line {n}: {len(fields)} column(s) where the file's first token line has "
                                f"{ncols}; every token line needs the same columns (CoNLL-2003: word POS chunk NER)")
            if not words:
                start = n
            words.append(fields[0])
            if ncols > 1:
                tag = fields[-1]
                if known is not None and tag not in known:
                    raise DataError(f"{path}, line {n}: unknown label {excerpt(tag)}; CoNLL-2003 NER tags are "
                                    f"{', '.join(labels)}. Is the tag in the last column?")
                tags.append(tag)
        flush()
    report.read = len(examples)
    return examples, report


def read_klue_ner(path: str | Path, require_labels: bool = True) -> tuple[list[TaggingExample], ReadReport]:
    """KLUE-NER's TSV: '## guid<TAB>tagged sentence' header per sentence, then 'char<TAB>tag' rows."""
    report = ReadReport(str(path))
    examples = []
    known = set(KLUE_LABELS)
    guid, chars, tags, start = None, [], [], 0
    refuse_json(path, "klue-ner", "KLUE-NER text ('## guid<TAB>sentence' lines, then one 'character<TAB>tag' row "
                "per character)")

    def flush() -> None:
        nonlocal chars, tags
        if chars:
            text = "".join(chars)
            examples.append(TaggingExample(guid or f"{Path(path).name}-{start}", list(chars),
                                           list(tags) if require_labels else None, text=text, line=start))
        chars, tags = [], []

    with open_text(path) as f:
        for n, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if line.startswith("##"):
                flush()
                head = line[2:].strip()
                guid = head.split("\t", 1)[0] if "\t" in head else None
                start = n + 1
                continue
            if not line:
                flush()
                continue
            if "\t" not in line:
                if require_labels:
                    raise DataError(f"{path}, line {n}: expected 'character<TAB>tag' (KLUE-NER format), got "
                                    f"{excerpt(line)}")
                ch, tag = line, "O"
            else:
                ch, tag = line.rsplit("\t", 1)
            if len(ch) != 1:
                raise DataError(f"{path}, line {n}: {excerpt(ch)} is not a single character; KLUE-NER has one character "
                                "per row (a space is written as ' ')")
            if require_labels and tag not in known:
                raise DataError(f"{path}, line {n}: unknown label {excerpt(tag)}; KLUE-NER tags are "
                                f"{', '.join(KLUE_LABELS)}")
            if not chars:
                start = n
            chars.append(ch)
            tags.append(tag)
        flush()
    report.read = len(examples)
    return examples, report


def read_plain_sentences(path: str | Path) -> tuple[list[TaggingExample], ReadReport]:
    """Unlabelled input for prediction: one whitespace-tokenised sentence per line."""
    report = ReadReport(str(path))
    examples = []
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                examples.append(TaggingExample(f"{Path(path).name}-{n}", line.split(), None, line=n))
    report.read = len(examples)
    return examples, report


# --------------------------------------------------------------------------- features
def convert_words(examples: Sequence[TaggingExample], tokenizer, labels: Sequence[str], max_length: int,
                  with_types: bool = True) -> Features:
    """Word-level tagging: label the first sub-token of each word, -100 elsewhere.

    ``extra[i]["word_ids"]`` maps tokens to words for prediction. Words cut by ``max_length``
    are counted in ``stats["truncated_words"]`` (they are predicted as the first label, "O").
    Gold tags outside ``labels`` are left unlabelled (-100) and counted in ``stats["unknown_tags"]``.
    """
    index = {t: i for i, t in enumerate(labels)}
    backend = tokenizer.backend
    backend.enable_truncation(max_length)
    try:
        encs = tokenizer.encode_batch([e.tokens for e in examples], is_pretokenized=True)
    finally:
        backend.no_truncation()
    inputs, extra = [], []
    truncated = unknown = 0
    for e, enc in zip(examples, encs):
        word_ids = enc.word_ids
        feat = {"input_ids": np.asarray(enc.ids, dtype=np.int64)}
        if with_types:
            feat["token_type_ids"] = np.asarray(enc.type_ids, dtype=np.int64)
        first = np.full(len(word_ids), -1, dtype=np.int64)  # word index at first sub-tokens, else -1
        seen = set()
        for t, w in enumerate(word_ids):
            if w is not None and w not in seen:
                seen.add(w)
                first[t] = w
        truncated += len(e.tokens) - len(seen)
        if e.tags is not None:
            lab = np.full(len(word_ids), IGNORE_INDEX, dtype=np.int64)
            for t in np.flatnonzero(first >= 0).tolist():
                tag = e.tags[first[t]]
                if tag in index:
                    lab[t] = index[tag]
                else:
                    unknown += 1
            feat["labels"] = lab
        inputs.append(feat)
        extra.append({"first": first})
    return Features(inputs, np.arange(len(examples)), extra,
                    {"truncated_words": truncated, "unknown_tags": unknown})


def convert_chars(examples: Sequence[TaggingExample], tokenizer, labels: Sequence[str], max_length: int,
                  with_types: bool = True) -> Features:
    """Character-level tagging (KLUE-NER): each token is trained on the tag of its first character."""
    index = {t: i for i, t in enumerate(labels)}
    backend = tokenizer.backend
    backend.enable_truncation(max_length)
    try:
        encs = tokenizer.encode_batch([e.text or "".join(e.tokens) for e in examples])
    finally:
        backend.no_truncation()
    inputs, extra = [], []
    truncated = 0
    for e, enc in zip(examples, encs):
        n_chars = len(e.tokens)
        first = np.full(len(enc.ids), -1, dtype=np.int64)  # first character of tokens that start one
        owner = np.full(n_chars, -1, dtype=np.int64)  # token covering each character
        for t, (special, (s, end)) in enumerate(zip(enc.special_tokens_mask, enc.offsets)):
            if special or end <= s:
                continue
            if owner[s] == -1:
                first[t] = s
            owner[s:end] = np.where(owner[s:end] == -1, t, owner[s:end])
        covered = [c for c in range(n_chars) if not e.tokens[c].isspace()]
        truncated += sum(1 for c in covered if owner[c] == -1)
        feat = {"input_ids": np.asarray(enc.ids, dtype=np.int64)}
        if with_types:
            feat["token_type_ids"] = np.asarray(enc.type_ids, dtype=np.int64)
        if e.tags is not None:
            lab = np.full(len(enc.ids), IGNORE_INDEX, dtype=np.int64)
            for t in np.flatnonzero(first >= 0).tolist():
                lab[t] = index.get(e.tags[first[t]], IGNORE_INDEX)
            feat["labels"] = lab
        inputs.append(feat)
        extra.append({"first": first, "owner": owner})
    return Features(inputs, np.arange(len(examples)), extra, {"truncated_chars": truncated})


def decode_words(example: TaggingExample, token_preds: np.ndarray, meta: dict, labels: Sequence[str]) -> list[str]:
    """Word tags from per-token predicted label ids: each word takes its first sub-token's label."""
    out = [labels[0]] * len(example.tokens)
    first = meta["first"]
    for t in np.flatnonzero(first >= 0).tolist():
        out[first[t]] = labels[int(token_preds[t])]
    return out


def decode_chars(example: TaggingExample, token_preds: np.ndarray, meta: dict, labels: Sequence[str]) -> list[str]:
    """Character tags from per-token predictions (KLUE-NER), as the module docstring describes."""
    owner = meta["owner"]
    first = meta["first"]
    n = len(example.tokens)
    out = ["O"] * n
    for c in range(n):
        t = owner[c]
        if t < 0:
            continue
        tag = labels[int(token_preds[t])]
        if first[t] == c or tag == "O":
            out[c] = tag
        else:
            out[c] = "I-" + tag.split("-", 1)[1]
    # Uncovered characters (spaces): inside an entity when the next covered character continues it.
    for c in range(n):
        if owner[c] >= 0 or c == 0:
            continue
        prev = out[c - 1]
        nxt = next((out[k] for k in range(c + 1, n) if owner[k] >= 0), "O")
        if prev != "O" and nxt.startswith("I-") and prev.split("-", 1)[1] == nxt[2:]:
            out[c] = nxt
    return out
