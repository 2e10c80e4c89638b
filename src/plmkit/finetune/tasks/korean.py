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

from pathlib import Path
from typing import Any

from ...errors import DataError, excerpt, type_name
from .files import ReadReport, expect_json, json_id, json_text, label_index, load_json, parse_float
from .glue import ColumnTask
from .sentence import SentenceExample

KLUE_NLI_LABELS = ("entailment", "neutral", "contradiction")  # KLUE's label order

KOREAN_TSV_TASKS: dict[str, ColumnTask] = {
    "kornli": ColumnTask("kornli", ("sentence1", "sentence2"), "gold_label", KLUE_NLI_LABELS, id_column=None,
                         skip_label_values=("-",)),
    "korsts": ColumnTask("korsts", ("sentence1", "sentence2"), "score", None, id_column="id"),
    "nsmc": ColumnTask("nsmc", ("document",), "label", ("0", "1"), id_column="id"),
}


KLUE_FORMAT = "KLUE JSON: one list of example objects"


def _load_json_list(path: str | Path, task: str = "klue-nli / klue-sts") -> list[Any]:
    expect_json(path, task, KLUE_FORMAT, kinds=("a JSON list", "a JSON object"))
    data = load_json(path, "KLUE files are one JSON list of examples")
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        found = type_name(data) if not isinstance(data, dict) else f"an object with the keys {excerpt(list(data))}"
        raise DataError(f"{path}: expected a JSON list of examples (KLUE format), got {found}; is it the file of "
                        "another task?")
    return data


def _record(rec: Any, path: str | Path, i: int, keys: tuple[str, str], task: str) -> tuple[str, str]:
    """The two texts of a KLUE record, type-checked."""
    if not isinstance(rec, dict):
        raise DataError(f"{path}, record {i}: {type_name(rec)} ({excerpt(rec)}), expected an object with "
                        f"{keys[0]!r} and {keys[1]!r}; is this a {task} file?")
    if keys[0] not in rec or keys[1] not in rec:
        raise DataError(f"{path}, record {i}: missing {keys[0]!r} or {keys[1]!r}; is this a {task} file?")
    return (json_text(rec[keys[0]], path, f"record {i}", keys[0]),  # type: ignore[return-value]
            json_text(rec[keys[1]], path, f"record {i}", keys[1]))


def read_klue_nli(path: str | Path, require_labels: bool = True) -> tuple[list[SentenceExample], ReadReport]:
    report = ReadReport(str(path))
    examples = []
    for i, rec in enumerate(_load_json_list(path, "klue-nli"), start=1):
        where = f"record {i}"
        premise, hypothesis = _record(rec, path, i, ("premise", "hypothesis"), "KLUE-NLI")
        label = rec.get("gold_label")
        if label is None and require_labels:
            raise DataError(f"{path}, {where}: no 'gold_label'; training and evaluation need labels")
        if label is not None:
            label_index(label, KLUE_NLI_LABELS, path, f"record {i}")
        guid = json_id(rec["guid"], path, where, "guid") if "guid" in rec else str(i)
        examples.append(SentenceExample(guid, premise, hypothesis, label, i))
    report.read = len(examples)
    return examples, report


def read_klue_sts(path: str | Path, require_labels: bool = True) -> tuple[list[SentenceExample], ReadReport]:
    report = ReadReport(str(path))
    examples = []
    for i, rec in enumerate(_load_json_list(path, "klue-sts"), start=1):
        s1, s2 = _record(rec, path, i, ("sentence1", "sentence2"), "KLUE-STS")
        labels = rec.get("labels")
        score = None
        if labels is not None and not isinstance(labels, dict):
            raise DataError(f"{path}, record {i}: 'labels' is {type_name(labels)} ({excerpt(labels)}), expected an "
                            "object with 'real-label'")
        if isinstance(labels, dict) and "real-label" in labels:
            score = parse_float(labels["real-label"], path, f"record {i}", "labels.real-label")
        elif require_labels:
            raise DataError(f"{path}, record {i}: no 'labels.real-label'; training and evaluation need scores")
        guid = json_id(rec["guid"], path, f"record {i}", "guid") if "guid" in rec else str(i)
        examples.append(SentenceExample(guid, s1, s2, score, i))
    report.read = len(examples)
    return examples, report
