"""Generic sentence(-pair) classification and regression for any CSV, TSV or JSONL file.

``classify`` and ``regress`` take the column names from ``--text-column(s)`` (one column, or two
for a pair) and ``--label-column``. The format follows the file extension: ``.csv`` (quoted CSV),
``.jsonl``/``.json`` (one JSON object per line), anything else tab-separated without quoting. The
first line of CSV/TSV files is the header. The classifier's label set is taken from the training
file (sorted); a label in an evaluation file that training never saw is an error naming its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ...errors import DataError, UsageError
from . import ReadReport, SentenceExample, parse_float, read_table


def read_generic(path: str | Path, text_columns: Sequence[str], label_column: str | None, regression: bool,
                 require_labels: bool = True, id_column: str | None = None
                 ) -> tuple[list[SentenceExample], ReadReport]:
    if not text_columns or len(text_columns) > 2:
        raise UsageError("give one or two --text-columns (a sentence, or a sentence pair)")
    report = ReadReport(str(path))
    header, rows = read_table(path)
    if not header:
        return [], report
    missing = [c for c in text_columns if c not in header]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; the file's columns are "
                        f"{', '.join(repr(h) for h in header)} (set --text-columns / --label-column)")
    has_label = label_column is not None and label_column in header
    if require_labels and not has_label:
        raise DataError(f"{path}: no label column {label_column!r}; the file's columns are "
                        f"{', '.join(repr(h) for h in header)} (set --label-column)")
    examples = []
    for n, row in rows:
        texts = []
        for c in text_columns:
            if c not in row:
                raise DataError(f"{path}, line {n}: the record has no field {c!r}")
            texts.append("" if row[c] is None else str(row[c]))
        label = None
        if has_label and row.get(label_column) is not None:
            raw = row[label_column]
            label = parse_float(raw, path, n, "label") if regression else str(raw).strip()
            if not regression and label == "":
                raise DataError(f"{path}, line {n}: empty label in column {label_column!r}")
        elif require_labels:
            raise DataError(f"{path}, line {n}: no value in label column {label_column!r}")
        guid = str(row[id_column]) if id_column and id_column in row else f"{Path(path).name}-{n}"
        examples.append(SentenceExample(guid, texts[0], texts[1] if len(texts) > 1 else None, label, n))
    report.read = len(examples)
    return examples, report
