"""Reading task files: UTF-8 text, TSV/CSV/JSON Lines tables, whole JSON files, and the checks and
messages every task reader shares.

A reader turns a file into a list of examples and a :class:`ReadReport` (what it read, what it
skipped and why, and facts about the format such as the SQuAD version). Errors are
DataErrors that name the file, the line or record and the key, say what was
expected, and, for a file given to the wrong task, which format the file looks like
(:func:`sniff_format`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ...errors import DataError, excerpt, type_name


@dataclass
class ReadReport:
    """What a reader did: how many records it read and what it skipped, by reason."""

    path: str
    read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_skipped: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # format facts (e.g. SQuAD version)

    def skip(self, reason: str, where: int | str) -> None:
        """Count one skipped record; ``where`` is a line number or a record name (a question id)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.first_skipped.setdefault(reason, f"line {where}" if isinstance(where, int) else str(where))

    def summary(self) -> str:
        parts = [f"{self.path}: read {self.read} example(s)"]
        for reason, n in sorted(self.skipped.items()):
            parts.append(f"skipped {n} {reason} (first at {self.first_skipped[reason]})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "read": self.read, "skipped": dict(self.skipped)}



# --------------------------------------------------------------------------- file helpers
class _Utf8File(io.TextIOWrapper):
    """A UTF-8 text file whose decoding errors are :class:`DataError` naming the file (not a bare
    ``UnicodeDecodeError`` with no file name)."""

    def _bad(self, e: UnicodeDecodeError) -> DataError:
        byte = e.object[e.start:e.start + 1] if isinstance(e.object, (bytes, bytearray)) else b""
        return DataError(f"{self.name}: not UTF-8 text (byte {byte!r}: {e.reason}); it may be binary or in another "
                         "encoding — save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE > NEW)")

    def read(self, *args: Any) -> str:
        try:
            return super().read(*args)
        except UnicodeDecodeError as e:
            raise self._bad(e) from None

    def readline(self, *args: Any) -> str:
        try:
            return super().readline(*args)
        except UnicodeDecodeError as e:
            raise self._bad(e) from None

    def __next__(self) -> str:
        try:
            return super().__next__()
        except UnicodeDecodeError as e:
            raise self._bad(e) from None


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a UTF-8 text file, dropping a byte-order mark (MRPC's TSVs start with one)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise DataError(f"{p} is a folder; this task reads a single file")
    return _Utf8File(open(p, "rb"), encoding="utf-8-sig", newline="")


def read_tsv_rows(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for every non-empty line of a tab-separated file, with no quoting.

    GLUE's TSVs are not CSV-quoted (sentences contain bare quotes), so lines are split on tabs
    exactly as the GLUE and ``transformers`` processors do (``quotechar=None``).
    """
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            yield n, line.split("\t")


def read_table(path: str | Path, fmt: str | None = None) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header names and (line, row dict) records of a CSV (quoted), TSV (unquoted) or JSONL file."""
    p = Path(path)
    fmt = fmt or table_format(p)
    if fmt == "jsonl":
        def records() -> Iterator[tuple[int, dict[str, Any]]]:
            with open_text(p) as f:
                for n, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{p}, line {n}: not valid JSON ({e.msg}); a .jsonl file needs one "
                                        f"JSON object per line, and this file looks like {sniff_format(p)}") from None
                    except (ValueError, RecursionError) as e:  # 5000-digit numbers, nesting beyond the stack
                        raise DataError(f"{p}, line {n}: cannot be read as JSON ({excerpt(str(e))}); a .jsonl file "
                                        "needs one JSON object per line") from None
                    if not isinstance(rec, dict):
                        raise DataError(f"{p}, line {n}: expected a JSON object, got {type_name(rec)} "
                                        f"({excerpt(rec)}); a .jsonl file needs one JSON object per line")
                    yield n, rec
        it = records()
        first = next(it, None)
        if first is None:
            return [], iter(())
        header = list(first[1])

        def chain() -> Iterator[tuple[int, dict[str, Any]]]:
            yield first
            yield from it
        return header, chain()
    if fmt == "csv":
        f = open_text(p)
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            f.close()
            return [], iter(())
        except csv.Error as e:
            f.close()
            raise DataError(f"{p}, line 1: not a CSV header ({excerpt(str(e))}); this file looks like "
                            f"{sniff_format(p)}") from None

        def csv_rows() -> Iterator[tuple[int, dict[str, str]]]:
            with f:
                while True:
                    try:
                        row = next(reader)
                    except StopIteration:
                        return
                    except csv.Error as e:  # a NUL byte, a field over csv's size limit, a stray quote
                        raise DataError(f"{p}, line {reader.line_num}: not a valid CSV row ({excerpt(str(e))}); "
                                        "fix the row (quote fields that contain commas or line breaks)") from None
                    if not any(c.strip() for c in row):
                        continue
                    n = reader.line_num
                    if len(row) != len(header):
                        raise DataError(f"{p}, line {n}: {len(row)} column(s) but the header has {len(header)}; "
                                        "fix the row (quote fields that contain commas)")
                    yield n, dict(zip(header, row))
        return header, csv_rows()
    rows = read_tsv_rows(p)
    first = next(rows, None)
    if first is None:
        return [], iter(())
    header = first[1]

    def tsv_rows() -> Iterator[tuple[int, dict[str, str]]]:
        for n, row in rows:
            if len(row) != len(header):
                raise DataError(f"{p}, line {n}: {len(row)} tab-separated column(s) but the header has "
                                f"{len(header)}; fix or remove the line")
            yield n, dict(zip(header, row))
    return header, tsv_rows()


def table_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if ".jsonl" in suffixes or ".json" in suffixes or ".ndjson" in suffixes:
        return "jsonl"
    if ".csv" in suffixes:
        return "csv"
    return "tsv"


def check_not_empty(examples: Sequence, path: str | Path, role: str = "file") -> None:
    if not examples:
        raise DataError(f"{path}: the {role} has no examples; check that it is the right file and not empty")


def where(line: int | str) -> str:
    """'line 12' for a line number, else the record name as given ('record 3', 'question 5733be28')."""
    return f"line {line}" if isinstance(line, int) else str(line)


def label_index(label: Any, labels: Sequence[str], path: str | Path, line: int | str) -> int:
    """The id of a class label, or a DataError that names the file, line and the known labels."""
    if not isinstance(label, (str, int)) or isinstance(label, bool):
        raise DataError(f"{path}, {where(line)}: the label is {type_name(label)} ({excerpt(label)}), expected a "
                        f"class name; this task's labels are {show_labels(labels)}")
    key = str(label).strip()
    try:
        return list(labels).index(key)
    except ValueError:
        raise DataError(f"{path}, {where(line)}: unknown label {excerpt(key)}; this task's labels are "
                        f"{show_labels(labels)}. Fix the label or use a file of the right task") from None


def show_labels(labels: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` labels, quoted (short), for a message."""
    labels = list(labels)
    return ", ".join(excerpt(x, 30) for x in labels[:limit]) + (f" … ({len(labels)} in all)" if len(labels) > limit
                                                                else "")


def parse_float(value: Any, path: str | Path, line: int | str, what: str = "score") -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{path}, {where(line)}: {what} is {type_name(value)} ({excerpt(value)}), expected a number")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{path}, {where(line)}: {what} {excerpt(value)} is not a number") from None
    if not math.isfinite(x):
        raise DataError(f"{path}, {where(line)}: {what} {excerpt(value)} is not a finite number")
    return x


def json_text(value: Any, path: str | Path, line: int | str, key: str, optional: bool = False) -> str | None:
    """``value`` as read from a JSON field that must hold text: a DataError naming the file, record and
    key when it is null (unless ``optional``), a number, a list or an object."""
    if isinstance(value, str) or (optional and value is None):
        return value
    raise DataError(f"{path}, {where(line)}: {key!r} is {type_name(value)} ({excerpt(value)}), expected text; "
                    "fix the record or use a file of the right task")


def json_id(value: Any, path: str | Path, line: int | str, key: str = "id") -> str:
    """A record id: text or an integer (kept as text)."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise DataError(f"{path}, {where(line)}: {key!r} is {type_name(value)} ({excerpt(value)}), expected text or an "
                    "integer")


def load_json(path: str | Path, expected: str) -> Any:
    """Parse a whole JSON file; errors name the file and the position, and say what format was expected
    (``expected``) and which one the file looks like."""
    p = Path(path)
    with open_text(p) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            found = sniff_format(p)
            hint = "" if found.startswith(("a JSON", "a SQuAD")) else f"; this file looks like {found}"
            raise DataError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix the file — "
                            f"{expected}{hint}") from None
        except (ValueError, RecursionError) as e:  # 5000-digit numbers, nesting beyond the stack
            raise DataError(f"{p}: cannot be read as JSON ({excerpt(str(e))}); fix the file — {expected}") from None


# --------------------------------------------------------------------------- format sniffing
_JSON_KINDS = ("a JSON object", "a JSON list", "JSON Lines", "a SQuAD-format JSON")


def sniff_format(path: str | Path) -> str:
    """What a file looks like from its first 64 KiB, in words ("a JSON list", "tab-separated text
    (4 columns on line 1)", ...), for messages about a file given to the wrong task."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return "an unreadable file"
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.strip():
        return "an empty file"
    if b"\x00" in head:
        return "a binary file"
    text = head.decode("utf-8", errors="replace").lstrip()
    first = text.split("\n", 1)[0].rstrip("\r")
    if text[0] == "{":
        try:
            json.loads(first)
            if "\n" in text.strip():
                return "JSON Lines (one JSON object per line)"
        except (ValueError, RecursionError):
            pass
        if '"paragraphs"' in text and '"qas"' in text:
            return "a SQuAD-format JSON file"
        return "a JSON object"
    if text[0] == "[":
        return "a JSON list"
    if first.startswith("##"):
        return "KLUE-NER text ('## guid' lines, then 'character<TAB>tag' rows)"
    if "\t" in first:
        return f"tab-separated text ({first.count(chr(9)) + 1} columns on line 1)"
    if "," in first:
        return f"comma-separated text ({first.count(',') + 1} fields on line 1)"
    words = first.split()
    if words and all("/" in w[1:] for w in words):
        return "tagged text (word/tag tokens)"
    return f"plain text ({len(words)} word(s) on line 1)"


def refuse_json(path: str | Path, task: str, expected: str) -> None:
    """A DataError when a line-oriented task file (TSV, CSV, CoNLL) holds JSON (or binary data) instead:
    says which format was found and which one the task reads. Other problems are left to the reader."""
    p = Path(path)
    if not p.is_file():
        return
    found = sniff_format(p)
    if found.startswith(_JSON_KINDS) or found == "a binary file":
        raise DataError(f"{p}: this file looks like {found}, but {task} reads {expected}; is it the file of "
                        "another task? Give the task's own file (see 'plmkit finetune --help' for the formats)")


def expect_json(path: str | Path, task: str, expected: str, kinds: tuple[str, ...] = _JSON_KINDS) -> None:
    """A DataError when a JSON task file does not start like one of ``kinds`` (names from
    :func:`sniff_format`), saying which format was found and which one the task reads."""
    p = Path(path)
    if not p.is_file():
        return
    found = sniff_format(p)
    if not found.startswith(kinds):
        raise DataError(f"{p}: this file looks like {found}, but {task} reads {expected}; is it the file of "
                        "another task? Give the task's own file (see 'plmkit finetune --help' for the formats)")


__all__ = ["ReadReport", "open_text", "read_tsv_rows", "read_table", "table_format", "check_not_empty", "where",
           "label_index", "show_labels", "parse_float", "json_text", "json_id", "load_json", "sniff_format",
           "refuse_json", "expect_json"]
