"""GLUE (Wang et al., 2019): readers for the original ``glue_data`` TSV files.

Each task names its text and label columns by header (so train, dev and test files, whose columns
differ, all read), with the quirks of the original files handled here:

* CoLA's train/dev files have no header (source, label, original label, sentence); its test file
  has one (``index sentence``).
* MRPC's files may begin with a UTF-8 byte-order mark.
* QQP has malformed rows (too few columns): they are skipped and counted, as the ``transformers``
  processor skips them; in every other task a row with the wrong column count is an error that
  names the line.
* STS-B is a regression task (a 0–5 score); MNLI has matched and mismatched dev files (pass both
  to ``--eval``).
* An example's id is the file's ``index`` (QQP: ``id``) column, or, in a file without one, its 0-based
  position among the examples read — the ids of a GLUE submission file (``index<TAB>prediction``).

Lines are split on tabs with no quote handling, as the GLUE and ``transformers`` processors read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError, excerpt
from .files import ReadReport, label_index, parse_float, read_tsv_rows, refuse_json
from .sentence import SentenceExample


@dataclass(frozen=True)
class ColumnTask:
    """A sentence(-pair) task stored as a TSV with named columns."""

    name: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None  # None: regression
    id_column: str | None = "index"
    # CoLA train/dev: no header; (text positions, label position) used when the first line is data.
    headerless: tuple[tuple[int, ...], int] | None = None
    skip_malformed: bool = False  # QQP
    # NLI files mark items without annotator consensus with "-": not an example (SNLI convention).
    skip_label_values: tuple[str, ...] = field(default=())

    @property
    def regression(self) -> bool:
        return self.labels is None


NLI3 = ("contradiction", "entailment", "neutral")  # transformers' MNLI label order

GLUE_TASKS: dict[str, ColumnTask] = {
    "cola": ColumnTask("cola", ("sentence",), "label", ("0", "1"), headerless=((3,), 1)),
    "sst2": ColumnTask("sst2", ("sentence",), "label", ("0", "1")),
    "mrpc": ColumnTask("mrpc", ("#1 String", "#2 String"), "Quality", ("0", "1")),
    "stsb": ColumnTask("stsb", ("sentence1", "sentence2"), "score", None),
    "qqp": ColumnTask("qqp", ("question1", "question2"), "is_duplicate", ("0", "1"), id_column="id",
                      skip_malformed=True),
    "mnli": ColumnTask("mnli", ("sentence1", "sentence2"), "gold_label", NLI3, skip_label_values=("-",)),
    "qnli": ColumnTask("qnli", ("question", "sentence"), "label", ("entailment", "not_entailment")),
    "rte": ColumnTask("rte", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment")),
    "wnli": ColumnTask("wnli", ("sentence1", "sentence2"), "label", ("0", "1")),
}


def read_column_tsv(path: str | Path, task: ColumnTask, require_labels: bool = True
                    ) -> tuple[list[SentenceExample], ReadReport]:
    """Read a task TSV into examples; unlabelled files (GLUE test sets) read when ``require_labels`` is off."""
    report = ReadReport(str(path))
    refuse_json(path, task.name, _expected(task))
    rows = read_tsv_rows(path)
    first = next(rows, None)
    if first is None:
        return [], report
    line, head = first
    examples: list[SentenceExample] = []
    if task.headerless is not None and not set(task.text_columns) & set(head):
        # No header (CoLA train/dev): fixed positions; the first line is data.
        text_pos, label_pos = task.headerless
        ncols = len(head)

        def pending():
            yield line, head
            yield from rows
        for n, row in pending():
            if len(row) != ncols:
                raise DataError(f"{path}, line {n}: {len(row)} tab-separated column(s) where the file's first "
                                f"line has {ncols}; fix or remove the line")
            if max(*text_pos, label_pos) >= len(row):
                raise DataError(f"{path}, line {n}: {len(row)} column(s), but {task.name} files without a header "
                                f"need at least {max(*text_pos, label_pos) + 1}")
            label = row[label_pos].strip()
            texts = [row[i] for i in text_pos]
            examples.append(_example(task, str(len(examples)), texts, label, path, n))  # GLUE ids: 0, 1, ...
        report.read = len(examples)
        return examples, report

    header = [h.strip() for h in head]
    missing = [c for c in task.text_columns if c not in header]
    if missing:
        raise DataError(f"{path}, line {line}: the header has no column {missing[0]!r} (it has "
                        f"{_columns(header)}); is this a {task.name} file? {task.name} reads {_expected(task)}")
    text_idx = [header.index(c) for c in task.text_columns]
    label_idx = header.index(task.label_column) if task.label_column in header else None
    if label_idx is None and require_labels:
        raise DataError(f"{path}: the header has no label column {task.label_column!r}; training and evaluation "
                        "need labelled files (unlabelled test files work with 'plmkit predict')")
    id_idx = header.index(task.id_column) if task.id_column and task.id_column in header else None
    for n, row in rows:
        if len(row) != len(header):
            if task.skip_malformed:
                report.skip("malformed row: wrong number of columns", n)
                continue
            raise DataError(f"{path}, line {n}: {len(row)} tab-separated column(s) but the header has "
                            f"{len(header)}; fix or remove the line")
        label = row[label_idx].strip() if label_idx is not None else None
        if label is not None and label in task.skip_label_values:
            report.skip(f"label {label!r} (no gold label)", n)
            continue
        # The file's index column, else the GLUE submission id: the example's 0-based position in the file.
        guid = row[id_idx] if id_idx is not None else str(len(examples))
        examples.append(_example(task, guid, [row[i] for i in text_idx], label, path, n))
    report.read = len(examples)
    return examples, report


def _expected(task: ColumnTask) -> str:
    """The format a task's TSV has, for messages."""
    cols = ", ".join(dict.fromkeys((*task.text_columns, task.label_column)))
    return f"a tab-separated file with a header line naming the columns {cols}"


def _columns(header: list[str], limit: int = 8) -> str:
    """A header's first columns, each quoted short (a JSON file read as TSV is one 2 MB 'column')."""
    shown = ", ".join(excerpt(h, 40) for h in header[:limit])
    return shown + (f" … ({len(header)} columns)" if len(header) > limit else "")


def _example(task: ColumnTask, guid: str, texts: list[str], label: str | None, path, line: int) -> SentenceExample:
    value: object = None
    if label is not None:
        if task.regression:
            value = parse_float(label, path, line)
        else:
            label_index(label, task.labels or (), path, line)  # validates; raises naming the line
            value = label
    return SentenceExample(guid, texts[0], texts[1] if len(texts) > 1 else None, value, line)
