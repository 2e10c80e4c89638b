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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...errors import DataError, excerpt
from ...evaluation import metrics as M
from .base import IGNORE_INDEX, Features, Scored, Task, TaskOptions, classifier_labels, distinct_labels
from .files import ReadReport, open_text, refuse_json


@dataclass
class TaggingExample:
    """A sentence as tokens with one tag each. Character-level tasks also keep the raw text."""

    guid: str
    tokens: list[str]
    tags: list[str] | None = None
    text: str | None = None  # set for character-level tasks (KLUE-NER): tokens are its characters
    line: int = 0

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


def read_conll_input(path: str | Path) -> tuple[list[TaggingExample], ReadReport]:
    """Input to tag (``predict``): a ``.txt`` file is plain sentences, one per line; else CoNLL columns."""
    if Path(path).suffix == ".txt":
        return read_plain_sentences(path)
    return read_conll(path, require_labels=False)


def read_brown(path: str | Path, require_labels: bool = True) -> tuple[list[TaggingExample], ReadReport]:
    """Brown POS through the shared tagged-Brown reader (:func:`plmkit.data.readers.iter_tagged`).

    A file, a folder (NLTK layout; ``cats.txt`` lists the files) or a glob. For prediction, an
    untagged file is read as one whitespace-tokenised sentence per line.
    """
    from ...data.readers import expand_inputs, iter_tagged, looks_tagged

    files = expand_inputs(path)
    for file in files[:1]:
        refuse_json(file, "brown-pos", "tagged Brown text (word/tag tokens, one sentence per line; NLTK's "
                    "corpora/brown layout)")
    if not require_labels:
        with open(files[0], encoding="utf-8", errors="replace") as f:
            head = f.read(1 << 16)
        if not looks_tagged(head):
            return read_plain_sentences(path)
    report = ReadReport(str(path))
    examples = []
    for file, sentences in iter_tagged(path):
        for i, (words, tags) in enumerate(sentences, start=1):
            examples.append(TaggingExample(f"{file.name}-{i}", words, tags, line=i))
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


# --------------------------------------------------------------------------- the tasks
class TaggingTask(Task):
    """Word tagging with a label per token: BERT's first-sub-token labels, scored by conlleval's
    entity-level F1 (CoNLL-2003 NER). The BiLSTM tagger (``--arch bilstm``, ELMo's use) learns it too."""

    model_task = "token-classification"
    bilstm_model = "bilstm-tagger"
    # Tokens ↔ the units tagged: the first sub-token of each word (CharTaggingTask: characters by offsets).
    convert = staticmethod(convert_words)
    decode_tags = staticmethod(decode_words)

    def __init__(self, name: str, description: str, reader: Callable[..., tuple[list[TaggingExample], ReadReport]],
                 labels: Sequence[str] | None = None, main_metric: str = "f1",
                 input_reader: Callable[[str | Path], tuple[list[TaggingExample], ReadReport]] | None = None):
        self.name = name
        self.description = description
        self.reader = reader
        self.input_reader = input_reader  # predict's input, when it may differ from the task's format
        self.labels = tuple(labels) if labels is not None else None
        self.main_metric = main_metric

    def read(self, path: str | Path, role: str, options: TaskOptions, require_labels: bool = True
             ) -> tuple[list[TaggingExample], ReadReport]:
        return self.reader(path, require_labels=require_labels)

    def read_input(self, path: str | Path, options: TaskOptions) -> tuple[list[TaggingExample], ReadReport]:
        if self.input_reader is not None:
            return self.input_reader(path)
        return super().read_input(path, options)

    def labels_from(self, examples: Sequence[TaggingExample]) -> tuple[str, ...]:
        return distinct_labels({t for e in examples for t in (e.tags or ())})

    def featurize(self, examples: Sequence[TaggingExample], tokenizer, labels: Sequence[str] | None,
                  options: TaskOptions, with_types: bool, training: bool, path: str | Path = "") -> Features:
        return self.convert(examples, tokenizer, labels or (), self.sequence_length(options), with_types)

    def head_config(self, labels: Sequence[str] | None) -> dict[str, Any]:
        return {"id2label": dict(enumerate(labels or ()))}

    def model_labels(self, model, folder: str | Path) -> tuple[str, ...] | None:
        return classifier_labels(self, model, folder)

    def batch_outputs(self, output, lengths: Sequence[int]) -> list[dict[str, np.ndarray]]:
        tags = output.logits.float().argmax(-1).cpu().numpy()  # the predicted label id of every token
        return [{"tags": tags[j, :n]} for j, n in enumerate(lengths)]

    def decode(self, examples: Sequence[TaggingExample], features: Features, outputs: list[dict[str, np.ndarray]],
               labels: Sequence[str] | None, options: TaskOptions, info: Mapping[str, Any] | None = None) -> Scored:
        return Scored({}, [self.decode_tags(e, o["tags"], features.extra[i], labels)
                           for i, (e, o) in enumerate(zip(examples, outputs))])

    def score(self, examples: Sequence[TaggingExample], scored: Scored, labels: Sequence[str] | None,
              info: Mapping[str, Any] | None = None) -> dict[str, float]:
        return M.conlleval(scored.predictions, [e.tags for e in examples])

    def write_predictions(self, examples: Sequence[TaggingExample], scored: Scored, out: Path, files: Sequence[Path],
                          info: Mapping[str, Any] | None = None) -> None:
        """JSON lines ``{"id", "tokens", "tags"}`` for a ``.jsonl``/``.json`` ``out``, else CoNLL style:
        ``token<TAB>tag`` lines, a blank line between sentences."""
        with open(files[0], "w", encoding="utf-8") as f:
            if out.suffix in (".jsonl", ".json"):
                for e, tags in zip(examples, scored.predictions):
                    f.write(json.dumps({"id": e.guid, "tokens": e.tokens, "tags": tags}, ensure_ascii=False) + "\n")
            else:
                for e, tags in zip(examples, scored.predictions):
                    f.write("".join(f"{w}\t{t}\n" for w, t in zip(e.tokens, tags)) + "\n")

    # ------------------------------------------------------------------ the BiLSTM tagger
    def words(self, example: TaggingExample, path: str | Path = "") -> list[str]:
        return list(example.tokens)

    def word_features(self, examples: Sequence[TaggingExample], input_ids: Sequence[np.ndarray],
                      labels: Sequence[str], path: str | Path = "") -> Features:
        """A tag id per word (-100 for a tag outside the label set, counted); ``extra["first"]`` maps every
        word to itself, so :func:`decode_words` reads the per-word predictions unchanged."""
        index = {t: i for i, t in enumerate(labels)}
        inputs, extra = [], []
        unknown = 0
        for e, ids in zip(examples, input_ids):
            feat = {"input_ids": ids}
            if e.tags is not None:
                feat["labels"] = np.asarray([index.get(t, IGNORE_INDEX) for t in e.tags], dtype=np.int64)
                unknown += int((feat["labels"] == IGNORE_INDEX).sum())
            inputs.append(feat)
            extra.append({"first": np.arange(len(ids), dtype=np.int64)})
        return Features(inputs, np.arange(len(examples)), extra, {"unknown_tags": unknown})


class PosTask(TaggingTask):
    """Part-of-speech tagging: the tag set is the training data's, the metric token accuracy."""

    labels_from_data = True

    def __init__(self, name: str, description: str, reader: Callable[..., tuple[list[TaggingExample], ReadReport]]):
        super().__init__(name, description, reader, labels=None, main_metric="accuracy")

    def score(self, examples: Sequence[TaggingExample], scored: Scored, labels: Sequence[str] | None,
              info: Mapping[str, Any] | None = None) -> dict[str, float]:
        flat_p = [t for s in scored.predictions for t in s]
        flat_g = [t for e in examples for t in e.tags]
        return {"accuracy": M.accuracy(flat_p, flat_g)}


class CharTaggingTask(TaggingTask):
    """Character-level tagging (KLUE-NER): characters map to sub-tokens through the tokenizer's offsets;
    scored on characters as KLUE does (entity F1 plus KLUE's entity and character macro F1)."""

    bilstm_model = None  # the BiLSTM tags words
    convert = staticmethod(convert_chars)
    decode_tags = staticmethod(decode_chars)

    def score(self, examples: Sequence[TaggingExample], scored: Scored, labels: Sequence[str] | None,
              info: Mapping[str, Any] | None = None) -> dict[str, float]:
        golds = [e.tags for e in examples]
        out = M.conlleval(scored.predictions, golds)
        out["entity_macro_f1"] = M.entity_macro_f1(scored.predictions, golds)
        out["char_macro_f1"] = M.char_macro_f1(scored.predictions, golds, labels or ())
        return out
