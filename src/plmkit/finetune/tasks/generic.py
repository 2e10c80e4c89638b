"""Generic sentence(-pair) classification and regression for any CSV, TSV or JSONL file.

``classify`` and ``regress`` take the column names from ``--text-column(s)`` (one column, or two
for a pair) and ``--label-column``. The format follows the file extension: ``.csv`` (quoted CSV),
``.jsonl``/``.json`` (one JSON object per line), anything else tab-separated without quoting. The
first line of CSV/TSV files is the header. The classifier's label set is taken from the training
file (sorted); a label in an evaluation file that training never saw is an error naming its line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ...errors import DataError, UsageError, excerpt, type_name
from .base import TaskOptions
from .files import ReadReport, parse_float, read_table, refuse_json, table_format
from .glue import _columns
from .sentence import SentenceExample, SentenceTask


def read_generic(path: str | Path, text_columns: Sequence[str], label_column: str | None, regression: bool,
                 require_labels: bool = True, id_column: str | None = None
                 ) -> tuple[list[SentenceExample], ReadReport]:
    if not text_columns or len(text_columns) > 2:
        raise UsageError("give one or two --text-columns (a sentence, or a sentence pair)")
    report = ReadReport(str(path))
    fmt = table_format(Path(path))
    if fmt != "jsonl":
        refuse_json(path, "classify / regress", f"a {fmt.upper()} file (its format follows the file extension: "
                    ".csv, .tsv, or .jsonl for one JSON object per line)")
    header, rows = read_table(path, fmt)
    if not header:
        return [], report
    missing = [c for c in text_columns if c not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; the file's columns are "
                        f"{_columns(header)} (set --text-columns / --label-column)")
    has_label = label_column is not None and label_column in header
    if require_labels and not has_label:
        raise DataError(f"{path}: no label column {label_column!r}; the file's columns are "
                        f"{_columns(header)} (set --label-column)")
    examples = []
    for n, row in rows:
        texts = []
        for c in text_columns:
            if c not in row:
                raise DataError(f"{path}, line {n}: the record has no field {c!r}")
            value = row[c]
            if value is not None and not isinstance(value, str):  # JSON Lines: a number, list or object
                raise DataError(f"{path}, line {n}: field {c!r} is {type_name(value)} ({excerpt(value)}), "
                                "expected text")
            texts.append(value or "")
        label = None
        if has_label and row.get(label_column) is not None:
            raw = row[label_column]
            if regression:
                label = parse_float(raw, path, n, "label")
            else:
                label = _class_label(raw, path, n, label_column)
            if not regression and label == "":
                raise DataError(f"{path}, line {n}: empty label in column {label_column!r}")
        elif require_labels:
            raise DataError(f"{path}, line {n}: no value in label column {label_column!r}")
        guid = str(row[id_column]) if id_column and id_column in row else f"{Path(path).name}-{n}"
        examples.append(SentenceExample(guid, texts[0], texts[1] if len(texts) > 1 else None, label, n))
    report.read = len(examples)
    return examples, report


def _class_label(raw: object, path: str | Path, n: int, column: str) -> str:
    """A class label as text: JSON strings, integers and finite numbers are accepted; null is handled by
    the caller; lists, objects, booleans and NaN / infinity are errors naming the line."""
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise DataError(f"{path}, line {n}: label in column {column!r} is {type_name(raw)} ({excerpt(raw)}), "
                        "expected a class name or number")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise DataError(f"{path}, line {n}: label {raw} in column {column!r} is not a finite number")
    return str(raw)


class TableTask(SentenceTask):
    """``classify`` / ``regress``: a sentence(-pair) task in any CSV, TSV or JSONL file, its columns named
    by the task options (``--text-column(s)``, ``--label-column``, ``--id-column``)."""

    def __init__(self, name: str, description: str, regression: bool = False):
        super().__init__(name, description, reader=None, regression=regression, labels_from_data=not regression)

    def read(self, path: str | Path, role: str, options: TaskOptions, require_labels: bool = True
             ) -> tuple[list[SentenceExample], ReadReport]:
        if not options.text_columns:
            raise UsageError(f"task {self.name} needs --text-column NAME (or --text-columns A,B for a pair) and "
                             "--label-column NAME")
        if options.label_column is None and require_labels:
            raise UsageError(f"task {self.name} needs --label-column NAME")
        return read_generic(path, options.text_columns, options.label_column, self.regression,
                            require_labels=require_labels, id_column=options.id_column)
