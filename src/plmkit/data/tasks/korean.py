"""Korean tasks: KLUE-NLI and KLUE-STS (Park et al., 2021), KorNLI and KorSTS (Ham et al., 2020),
NSMC (Naver sentiment movie corpus) and KorQuAD 1.0 (Lim et al., 2019).

* ``klue-nli`` / ``klue-sts`` read KLUE's JSON lists (``premise``/``hypothesis``/``gold_label``;
  ``sentence1``/``sentence2``/``labels.real-label``). KLUE-STS is scored as KLUE does: Pearson's r
  plus F1 of the score binarised at 3.0.
* ``kornli`` (``sentence1 sentence2 gold_label``), ``korsts`` (``... score sentence1 sentence2``) and
  ``nsmc`` (``id document label``) are TSVs read like GLUE's (tabs, no quoting).
* ``korquad`` is SQuAD 1.1-format JSON (read by :mod:`.squad`), scored with KorQuAD's own script
  (character-level F1).
* KLUE-NER is a tagging task and lives in :mod:`.tagging`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import DataError
from . import ReadReport, SentenceExample, label_index, open_text, parse_float
from .glue import ColumnTask

KLUE_NLI_LABELS = ("entailment", "neutral", "contradiction")  # KLUE's label order

KOREAN_TSV_TASKS: dict[str, ColumnTask] = {
    "kornli": ColumnTask("kornli", ("sentence1", "sentence2"), "gold_label", KLUE_NLI_LABELS, id_column=None,
                         skip_label_values=("-",)),
    "korsts": ColumnTask("korsts", ("sentence1", "sentence2"), "score", None, id_column="id"),
    "nsmc": ColumnTask("nsmc", ("document",), "label", ("0", "1"), id_column="id"),
}


def _load_json_list(path: str | Path) -> list[Any]:
    with open_text(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix the file — "
                            "KLUE files are one JSON list of examples") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of examples (KLUE format), got {type(data).__name__}")
    return data


def read_klue_nli(path: str | Path, require_labels: bool = True) -> tuple[list[SentenceExample], ReadReport]:
    report = ReadReport(str(path))
    examples = []
    for i, rec in enumerate(_load_json_list(path), start=1):
        where = f"record {i}"
        try:
            premise, hypothesis = rec["premise"], rec["hypothesis"]
        except (KeyError, TypeError):
            raise DataError(f"{path}, {where}: missing 'premise' or 'hypothesis'; is this a KLUE-NLI file?") from None
        label = rec.get("gold_label")
        if label is None and require_labels:
            raise DataError(f"{path}, {where}: no 'gold_label'; training and evaluation need labels")
        if label is not None:
            label_index(label, KLUE_NLI_LABELS, path, f"record {i}")
        examples.append(SentenceExample(str(rec.get("guid", i)), premise, hypothesis, label, i))
    report.read = len(examples)
    return examples, report


def read_klue_sts(path: str | Path, require_labels: bool = True) -> tuple[list[SentenceExample], ReadReport]:
    report = ReadReport(str(path))
    examples = []
    for i, rec in enumerate(_load_json_list(path), start=1):
        try:
            s1, s2 = rec["sentence1"], rec["sentence2"]
        except (KeyError, TypeError):
            raise DataError(f"{path}, record {i}: missing 'sentence1' or 'sentence2'; is this a KLUE-STS file?") from None
        labels = rec.get("labels")
        score = None
        if isinstance(labels, dict) and "real-label" in labels:
            score = parse_float(labels["real-label"], path, f"record {i}", "labels.real-label")
        elif require_labels:
            raise DataError(f"{path}, record {i}: no 'labels.real-label'; training and evaluation need scores")
        examples.append(SentenceExample(str(rec.get("guid", i)), s1, s2, score, i))
    report.read = len(examples)
    return examples, report
