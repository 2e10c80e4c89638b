"""SWAG (Zellers et al., 2018): grounded commonsense inference as 4-way multiple choice.

Reads the official CSV (``,video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0..3,label``;
test files have no ``label``). As in BERT (§4.4) and ``transformers``' ``run_swag.py``, each choice
is the pair (``sent1``, ``sent2 + " " + ending_i``); the model scores the four pairs and a softmax
over them is trained with cross-entropy. Metric: accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...errors import DataError, excerpt
from ...evaluation import metrics as M
from .base import Features, Scored, Task, TaskOptions, pair_encode
from .files import ReadReport, read_table, refuse_json
from .glue import _columns


@dataclass
class ChoiceExample:
    """A multiple-choice question: a context and its candidate continuations (SWAG)."""

    guid: str
    context: str
    endings: list[str]
    label: int | None = None
    line: int = 0


ENDINGS = ("ending0", "ending1", "ending2", "ending3")


def read_swag(path: str | Path, require_labels: bool = True) -> tuple[list[ChoiceExample], ReadReport]:
    report = ReadReport(str(path))
    refuse_json(path, "swag", "the SWAG CSV (header: video-id, fold-ind, startphrase, sent1, sent2, gold-source, "
                "ending0..ending3, label)")
    header, rows = read_table(path, fmt="csv")
    if not header:
        return [], report
    missing = [c for c in ("sent1", "sent2", *ENDINGS) if c not in header]
    if missing:
        raise DataError(f"{path}, line 1: the header has no column {missing[0]!r} (it has {_columns(header)}); a "
                        "SWAG CSV has the columns video-id, fold-ind, startphrase, sent1, sent2, gold-source, "
                        "ending0..ending3, label")
    if "label" not in header and require_labels:
        raise DataError(f"{path}: no 'label' column; training and evaluation need labelled files")
    examples = []
    for n, row in rows:
        label = None
        if "label" in row:
            try:
                label = int(row["label"])
            except ValueError:
                raise DataError(f"{path}, line {n}: label {excerpt(row['label'])} is not a choice number 0-3") from None
            if not 0 <= label < len(ENDINGS):
                raise DataError(f"{path}, line {n}: unknown label {label}; SWAG labels are 0, 1, 2, 3")
        guid = f"{row.get('video-id', '')}-{row.get('fold-ind', n)}"
        endings = [f"{row['sent2']} {row[e]}" for e in ENDINGS]
        examples.append(ChoiceExample(guid, row["sent1"], endings, label, n))
    report.read = len(examples)
    return examples, report


def convert_choices(examples: Sequence[ChoiceExample], tokenizer, max_length: int, with_types: bool = True
                    ) -> Features:
    """One feature per example: ``input_ids`` / ``attention_mask`` of shape (choices, longest choice)."""
    firsts = [e.context for e in examples for _ in e.endings]
    seconds = [s for e in examples for s in e.endings]
    encs = pair_encode(tokenizer, firsts, seconds, max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    inputs, k = [], 0
    for e in examples:
        group = encs[k:k + len(e.endings)]
        k += len(e.endings)
        T = max(len(g.ids) for g in group)
        ids = np.full((len(group), T), pad, dtype=np.int64)
        mask = np.zeros((len(group), T), dtype=np.int64)
        types = np.zeros((len(group), T), dtype=np.int64)
        for c, g in enumerate(group):
            ids[c, :len(g.ids)] = g.ids
            mask[c, :len(g.ids)] = 1
            types[c, :len(g.ids)] = g.type_ids
        feat = {"input_ids": ids, "attention_mask": mask}
        if with_types:
            feat["token_type_ids"] = types
        if e.label is not None:
            feat["labels"] = np.int64(e.label)
        inputs.append(feat)
    return Features(inputs, np.arange(len(examples)), [{} for _ in examples])


class ChoiceTask(Task):
    """Multiple choice: the model scores each (context, ending) pair and a softmax over the choices is
    trained with cross-entropy; the prediction is the best-scoring choice, scored by accuracy."""

    model_task = "multiple-choice"
    main_metric = "accuracy"

    def __init__(self, name: str, description: str,
                 reader: Callable[..., tuple[list[ChoiceExample], ReadReport]] = read_swag):
        self.name = name
        self.description = description
        self.reader = reader

    def read(self, path: str | Path, role: str, options: TaskOptions, require_labels: bool = True
             ) -> tuple[list[ChoiceExample], ReadReport]:
        return self.reader(path, require_labels=require_labels)

    def featurize(self, examples: Sequence[ChoiceExample], tokenizer, labels: Sequence[str] | None,
                  options: TaskOptions, with_types: bool, training: bool, path: str | Path = "") -> Features:
        return convert_choices(examples, tokenizer, self.sequence_length(options), with_types)

    def decode(self, examples: Sequence[ChoiceExample], features: Features, outputs: list[dict[str, np.ndarray]],
               labels: Sequence[str] | None, options: TaskOptions, info: Mapping[str, Any] | None = None) -> Scored:
        return Scored({}, [int(np.argmax(o["logits"])) for o in outputs])

    def score(self, examples: Sequence[ChoiceExample], scored: Scored, labels: Sequence[str] | None,
              info: Mapping[str, Any] | None = None) -> dict[str, float]:
        return {"accuracy": M.accuracy(scored.predictions, [e.label for e in examples])}
