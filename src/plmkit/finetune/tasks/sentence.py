"""Sentence and sentence-pair classification and regression: GLUE, the Korean sentence tasks, any table.

BERT (§4.1) classifies the pooled ``[CLS]`` of ``[CLS] a [SEP] (b [SEP])``; a regression task (STS-B,
KorSTS, KLUE-STS) has one output trained with mean squared error. The inputs are built by the model
folder's own tokenizer, whose post-processor adds its special tokens (``<s> a </s></s> b </s>`` for
RoBERTa), so the same code serves every model kind. One :class:`SentenceTask` object per task: its
reader (the file format, in :mod:`.glue`, :mod:`.korean` or :mod:`.generic`), its labels and its
metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...errors import CheckpointError, DataError, UsageError, excerpt
from ...evaluation import metrics as M
from .base import Features, Scored, Task, TaskOptions, classifier_labels, encoding_arrays, pair_encode
from .files import ReadReport, label_index, show_labels, where


@dataclass
class SentenceExample:
    """One sentence or sentence pair with a class label (str), a score (float) or no label."""

    guid: str
    text_a: str
    text_b: str | None = None
    label: Any = None
    line: int = 0  # 1-based line (or record) number in the source file, for messages


def convert_sentences(examples: Sequence[SentenceExample], tokenizer, labels: Sequence[str] | None,
                      max_length: int, with_types: bool = True, path: str | Path = "") -> Features:
    """Sentence(-pair) features: ``[CLS] a [SEP] (b [SEP])`` truncated longest-first, as BERT and
    ``transformers`` do; ``labels`` is a class id (``labels`` given) or a float score (``None``)."""
    pairs = any(e.text_b is not None for e in examples)
    encs = pair_encode(tokenizer, [e.text_a for e in examples],
                       [e.text_b or "" for e in examples] if pairs else None, max_length)
    inputs = []
    for e, enc in zip(examples, encs):
        feat = encoding_arrays(enc, with_types)
        if e.label is not None:
            if labels is None:
                feat["labels"] = np.float32(e.label)
            else:
                feat["labels"] = np.int64(label_index(e.label, labels, path or "input", e.line))
        inputs.append(feat)
    return Features(inputs, np.arange(len(examples)), [{} for _ in examples])


def accuracy_metrics(predictions: np.ndarray, golds: np.ndarray) -> dict[str, float]:
    return {"accuracy": M.accuracy(predictions, golds)}


Reader = Callable[..., "tuple[list[SentenceExample], ReadReport]"]  # (path, require_labels=...)
Metrics = Callable[[np.ndarray, np.ndarray], "dict[str, float]"]  # (predictions, golds): label ids or scores


class SentenceTask(Task):
    """A sentence(-pair) classification or regression task: a reader, labels and a metric.

    ``reader(path, require_labels=...)`` reads the task's file (a subclass that overrides :meth:`read`
    needs none); ``metrics(predictions, golds)`` scores
    label ids (classification) or scores (regression): accuracy, or Pearson/Spearman for a regression,
    unless the task names its own (GLUE's, KLUE-STS's).
    """

    model_task = "sequence-classification"

    def __init__(self, name: str, description: str, reader: Reader | None, labels: Sequence[str] | None = None,
                 main_metric: str | None = None, metrics: Metrics | None = None, regression: bool = False,
                 labels_from_data: bool = False, max_length: int = 128):
        self.name = name
        self.description = description
        self.reader = reader
        self.labels = tuple(labels) if labels is not None else None
        self.regression = regression
        self.main_metric = main_metric or ("pearson" if regression else "accuracy")
        self.metrics = metrics or (M.pearson_spearman if regression else accuracy_metrics)
        self.labels_from_data = labels_from_data
        self.max_length = max_length
        self.bilstm_model = None if regression else "bilstm-classifier"

    def read(self, path: str | Path, role: str, options: TaskOptions, require_labels: bool = True
             ) -> tuple[list[SentenceExample], ReadReport]:
        return self.reader(path, require_labels=require_labels)

    def check_eval_labels(self, examples: Sequence[SentenceExample], labels: Sequence[str] | None,
                          path: str | Path) -> None:
        if not self.labels_from_data or labels is None:
            return
        for e in examples:  # a label the training data never showed cannot be scored
            if str(e.label) not in labels:
                raise DataError(f"{path}, line {e.line}: unknown label {excerpt(str(e.label))}; the training "
                                f"data has labels {show_labels(labels)}")

    def featurize(self, examples: Sequence[SentenceExample], tokenizer, labels: Sequence[str] | None,
                  options: TaskOptions, with_types: bool, training: bool, path: str | Path = "") -> Features:
        return convert_sentences(examples, tokenizer, None if self.regression else labels,
                                 self.sequence_length(options), with_types, path)

    def head_config(self, labels: Sequence[str] | None) -> dict[str, Any]:
        if self.regression:
            return {"num_labels": 1, "problem_type": "regression"}
        return {"id2label": dict(enumerate(labels or ()))}

    def model_labels(self, model, folder: str | Path) -> tuple[str, ...] | None:
        if not self.regression:
            return classifier_labels(self, model, folder)
        if model.config.num_labels != 1:
            raise CheckpointError(f"{folder} has {model.config.num_labels} outputs; {self.name} is a regression task "
                                  "and needs a model fine-tuned with one output")
        return None

    def decode(self, examples: Sequence[SentenceExample], features: Features, outputs: list[dict[str, np.ndarray]],
               labels: Sequence[str] | None, options: TaskOptions, info: Mapping[str, Any] | None = None) -> Scored:
        logits = np.stack([o["logits"] for o in outputs]) if outputs else np.zeros((0, 1))
        if self.regression:
            return Scored({}, logits[:, 0].astype(float).tolist())
        ids = logits.argmax(-1)
        return Scored({}, [labels[int(i)] for i in ids], {"ids": ids})

    def score(self, examples: Sequence[SentenceExample], scored: Scored, labels: Sequence[str] | None,
              info: Mapping[str, Any] | None = None) -> dict[str, float]:
        if self.regression:
            golds = np.array([float(e.label) for e in examples])
            return self.metrics(np.asarray(scored.predictions, dtype=float), golds)
        golds = np.array([list(labels).index(str(e.label)) for e in examples])
        return self.metrics(np.asarray(scored.extra["ids"]), golds)

    # ------------------------------------------------------------------ the BiLSTM classifier
    def words(self, example: SentenceExample, path: str | Path = "") -> list[str]:
        """The sentence split on whitespace (as ``plmkit prepare --word-level`` splits ELMo's text)."""
        if example.text_b is not None:
            raise UsageError(f"{f'{path}, ' if path else ''}{where(example.line)}: a sentence pair, but the BiLSTM "
                             "classifier reads one text; give a single --text-column, or fine-tune a Transformer "
                             "(--model) for sentence pairs")
        return example.text_a.split() or [""]  # an empty text is one unknown word

    def word_features(self, examples: Sequence[SentenceExample], input_ids: Sequence[np.ndarray],
                      labels: Sequence[str], path: str | Path = "") -> Features:
        inputs = []
        for e, ids in zip(examples, input_ids):
            feat = {"input_ids": ids}
            if e.label is not None:
                feat["labels"] = np.int64(label_index(e.label, labels, path or "input", e.line))
            inputs.append(feat)
        return Features(inputs, np.arange(len(examples)), [{} for _ in examples], {})


__all__ = ["SentenceExample", "convert_sentences", "SentenceTask", "accuracy_metrics"]
