"""Raw-text readers shared by the library and the CLI: input paths → documents → sentences.

Pretraining needs documents (for next-sentence pairs and document packing) made of sentences (for
segment boundaries), so every reader yields sentences with a document-start flag. Formats are
detected per file (``format="auto"``) or forced:

=======  =====================================================================================
text     plain UTF-8 text; ``.gz`` / ``.bz2`` / ``.xz`` are decompressed on the fly (by magic bytes)
jsonl    one JSON object per line (``.jsonl``, ``.ndjson``); its ``text_field`` is one document
json     a JSON object with a ``text_field`` (State of the Union layout: one speech per file), or a
         list of such objects; each object is one document
brown    NLTK's tagged Brown layout (``word/tag`` tokens, one sentence per line, blank lines between
         paragraphs; detected by content since the files have no extension); each file is a document
=======  =====================================================================================

Conventions follow BERT's ``create_pretraining_data.py``: one sentence per line and a blank line
between documents. ``doc_per_file=True`` makes each file (or JSON record file) one document.
``split_sentences=True`` is for text that is *not* one sentence per line (novels wrapped at 70
columns, JSON speeches): lines are joined into paragraphs (blank-line separated) and each paragraph
is split into sentences by ``sentencex`` (a maintained rule-based splitter for ~300 languages that
needs no model download). Brown files always keep their own sentences.

Folders are read recursively in sorted order, skipping hidden files; a folder with an NLTK
``cats.txt`` (Brown) is read as the files that ``cats.txt`` lists. Globs (``data/*.txt.gz``) are
expanded. Every source is hashed (sha256) and measured while it streams, for ``meta.json``.

Robustness: invalid UTF-8 is replaced by U+FFFD and counted (``SourceInfo.invalid_utf8``), never
fatal; a file that holds no text, looks binary (NUL bytes or mostly invalid UTF-8), is a corrupt
archive or a malformed JSON file raises :class:`~plmkit.errors.DataError` naming the file (and line).

The tagged-Brown API (:func:`read_tagged`, :func:`iter_tagged`, :func:`brown_categories`) keeps the
tags, for the POS-tagging and genre-classification tasks.
"""

from __future__ import annotations

import bz2
import codecs
import glob
import gzip
import hashlib
import io
import itertools
import json
import lzma
import os
import re
import threading
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import DataError, UsageError, excerpt

FORMATS = ("auto", "text", "jsonl", "json", "brown")
_HEAD_BYTES = 1 << 16
_BUFFER = 1 << 20

# Invalid UTF-8 becomes U+FFFD, as errors="replace" does, and is counted (per thread: the
# decoding thread is the one reading the file).
_invalid = threading.local()


def _invalid_count() -> int:
    return getattr(_invalid, "count", 0)


def _count_and_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _invalid.count = _invalid_count() + 1
    return "\ufffd", exc.end


codecs.register_error("plmkit-count-replace", _count_and_replace)


@dataclass
class ReadOptions:
    """How raw files become documents and sentences (the CLI's reader flags)."""

    # auto-detect each file's format; or one of FORMATS to force it.
    format: str = "auto"
    # JSON / JSONL field holding the text ("text" in the State of the Union files).
    text_field: str = "text"
    # BERT's convention is a blank line between documents; many corpora are one document per file.
    doc_per_file: bool = False
    # Off: lines are sentences. On: paragraphs are split into sentences by sentencex.
    split_sentences: bool = False
    # Language code for the sentence splitter (sentencex knows ~300; "ko" for Korean).
    language: str = "en"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UsageError(f"unknown input format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if not self.text_field:
            raise UsageError("the JSON text field (--text-field) may not be empty")

    @classmethod
    def from_kwargs(cls, options: "ReadOptions | None" = None, **kwargs: Any) -> "ReadOptions":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise UsageError(f"unknown reader option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        base = asdict(options) if options is not None else {}
        return cls(**{**base, **{k: v for k, v in kwargs.items() if v is not None}})


@dataclass
class SourceInfo:
    """One input file as read: what ``meta.json`` records under ``sources``."""

    path: str
    size: int
    format: str = ""
    compression: str | None = None
    sha256: str = ""
    documents: int = 0
    sentences: int = 0
    invalid_utf8: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------- input paths
def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by ``inputs``: files, folders (recursive, sorted; NLTK ``cats.txt`` aware) and globs."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = _folder_files(p)
            if not found:
                raise DataError(f"input folder {p} holds no files")
            files += found
        elif any(ch in str(item) for ch in "*?["):
            matches = sorted(glob.glob(os.path.expanduser(str(item)), recursive=True))
            if not matches:
                raise DataError(f"no file matches the input pattern {item}")
            for m in matches:
                mp = Path(m)
                files += _folder_files(mp) if mp.is_dir() else [mp] if mp.is_file() else []
        elif p.exists():
            raise DataError(f"input {p} is neither a file nor a folder")
        else:
            raise DataError(f"input {p} does not exist; check the path (inputs are files, folders or globs)")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    if not unique:
        raise DataError("no input files were given")
    return unique


def _folder_files(folder: Path) -> list[Path]:
    cats = brown_categories(folder, missing_ok=True)
    if cats:
        return [folder / fid for fid in cats]
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return out


def brown_categories(folder: str | os.PathLike, missing_ok: bool = False) -> dict[str, list[str]]:
    """File id → categories from an NLTK ``cats.txt`` (Brown: ``ca01 news``), in file order.

    Returns ``{}`` when ``missing_ok`` and the folder has no usable ``cats.txt`` (absent, or naming
    files that are not there).
    """
    path = Path(folder) / "cats.txt"
    if not path.is_file():
        if missing_ok:
            return {}
        raise DataError(f"{folder} has no cats.txt (NLTK's file → category list, as in the Brown corpus)")
    cats: dict[str, list[str]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            if missing_ok:
                return {}
            raise DataError(f"{path}:{lineno}: expected 'FILEID CATEGORY...', got {excerpt(line.strip())}")
        cats[parts[0]] = parts[1:]
    if missing_ok and (not cats or not all((Path(folder) / f).is_file() for f in cats)):
        return {}
    return cats


# ----------------------------------------------------------------------------------- opening files
class _HashingRaw(io.RawIOBase):
    """A raw reader that hashes and counts the bytes it passes on (sha256 of the file as stored)."""

    def __init__(self, f: io.RawIOBase):
        self.f = f
        self.sha = hashlib.sha256()
        self.nbytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self.f.readinto(b)
        if n:
            self.sha.update(memoryview(b)[:n])
            self.nbytes += n
        return n or 0

    def close(self) -> None:
        self.f.close()
        super().close()


class _Prefixed(io.RawIOBase):
    """``head`` bytes already read, then the rest of ``stream`` (so the head can be sniffed)."""

    def __init__(self, head: bytes, stream):
        self.head = memoryview(head)
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self.head.nbytes:
            n = min(len(b), self.head.nbytes)
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(b))
        b[: len(data)] = data
        return len(data)


_MAGIC = [(b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"(\xb5/\xfd", "zstd"),
          (b"PK\x03\x04", "zip")]


class TextSource:
    """One input file opened for streaming text: decompression, hashing, binary check, format sniffing.

    Use as a context manager; ``text`` is the decoded text stream and ``info`` the :class:`SourceInfo`
    (``sha256`` is final once the text has been read to the end).
    """

    def __init__(self, path: str | os.PathLike, format: str = "auto"):
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
            raw = open(self.path, "rb", buffering=0)
        except FileNotFoundError:
            raise DataError(f"input {self.path} does not exist") from None
        except IsADirectoryError:
            raise DataError(f"input {self.path} is a folder, not a file") from None
        except PermissionError:
            raise DataError(f"input {self.path} cannot be read (permission denied)") from None
        self.info = SourceInfo(path=str(self.path), size=size)
        self._hash = _HashingRaw(raw)  # type: ignore[arg-type]
        stream: Any = io.BufferedReader(self._hash, _BUFFER)
        magic = stream.peek(8)[:8]
        for prefix, name in _MAGIC:
            if magic.startswith(prefix):
                self.info.compression = name
        comp = self.info.compression
        if comp in ("zstd", "zip"):
            self.close()
            raise DataError(f"{self.path} is a {comp} archive, which plmkit does not read; decompress it or use "
                            ".gz, .bz2 or .xz")
        if comp == "gzip":
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        elif comp == "bz2":
            stream = bz2.BZ2File(stream, mode="rb")
        elif comp == "xz":
            stream = lzma.LZMAFile(stream, mode="rb")
        self._stream = stream
        head = self._guard(lambda: stream.read(_HEAD_BYTES))
        self._check_binary(head)
        self.info.format = format if format != "auto" else self._sniff(head)
        self.text = io.TextIOWrapper(io.BufferedReader(_Prefixed(head, stream), _BUFFER), encoding="utf-8-sig",
                                     errors="plmkit-count-replace", newline=None)
        self._invalid_at_start = _invalid_count()

    # -- helpers
    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
            raise DataError(f"{self.path}: corrupt or truncated {self.info.compression or ''} data ({e}); "
                            "check the file or decompress it by hand to see the problem") from None

    def _check_binary(self, head: bytes) -> None:
        nul = head.find(b"\x00")
        if nul >= 0:
            self.close()
            raise DataError(f"{self.path} looks like a binary file (a NUL byte at offset {nul}), not text; pass UTF-8 "
                            "text, .gz/.bz2/.xz text, JSON/JSONL or Brown files")
        if head:
            decoded = head.decode("utf-8", errors="replace")
            bad = decoded.count("\ufffd") - head.decode("utf-8", errors="ignore").count("\ufffd")
            if bad > 16 and bad > 0.3 * len(decoded):
                self.close()
                raise DataError(f"{self.path} is not UTF-8 text ({bad} invalid bytes in its first "
                                f"{len(head)} bytes); convert it to UTF-8 first, e.g. with iconv")

    def _sniff(self, head: bytes) -> str:
        name = self.path.name.lower()
        for ext in (".gz", ".bz2", ".xz"):
            if name.endswith(ext):
                name = name[: -len(ext)]
        if name.endswith((".jsonl", ".ndjson")):
            return "jsonl"
        if name.endswith(".json"):
            return "json"
        text = head.decode("utf-8", errors="replace")
        if len(head) == _HEAD_BYTES:  # drop a possibly cut last line
            text = text[: text.rfind("\n") + 1] or text
        return "brown" if looks_tagged(text) else "text"

    def iter_text(self) -> Iterator[str]:
        """The decoded lines; decompression errors become :class:`DataError`."""
        it = iter(self.text)
        while True:
            try:
                line = next(it)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
                raise DataError(f"{self.path}: corrupt or truncated {self.info.compression or ''} data ({e}); "
                                "check the file or decompress it by hand to see the problem") from None
            yield line

    def read_all(self) -> str:
        return self._guard(self.text.read)

    @property
    def bytes_read(self) -> int:
        return self._hash.nbytes

    def finish(self) -> SourceInfo:
        """Drain what is left (so the checksum covers the whole file) and fill in the statistics."""
        self._guard(lambda: self._drain())
        self.info.sha256 = self._hash.sha.hexdigest()
        self.info.invalid_utf8 = _invalid_count() - self._invalid_at_start
        return self.info

    def _drain(self) -> None:
        while self._hash.readinto(bytearray(_BUFFER)):
            pass

    def close(self) -> None:
        try:
            self._hash.close()
        except Exception:
            pass

    def __enter__(self) -> "TextSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_TAGGED_TOKEN = re.compile(r"^\S*[^\s/]/[^\s/]+$")


def looks_tagged(text: str, min_fraction: float = 0.95, sample: int = 500) -> bool:
    """True when ``text`` looks like ``word/tag`` tokens (the Brown layout): 95% of (the first 500) tokens."""
    tokens = text.split(maxsplit=sample)[:sample]
    if len(tokens) < 20:
        return False
    return sum(1 for t in tokens if _TAGGED_TOKEN.match(t)) >= min_fraction * len(tokens)


# ----------------------------------------------------------------------------------- sentences
def sentence_splitter(language: str = "en") -> Callable[[str], list[str]]:
    """A function paragraph → sentences (sentencex, rule-based, offline)."""
    try:
        import sentencex
    except ImportError:
        raise UsageError("--split-sentences needs the sentencex package; install it with 'pip install sentencex'") \
            from None

    def split(paragraph: str) -> list[str]:
        return [s for s in (piece.strip() for piece in sentencex.segment(language, paragraph)) if s]

    return split


def _paragraph_sentences(lines: Iterable[str], split: Callable[[str], list[str]] | None,
                         doc_per_block: bool) -> Iterator[tuple[str, bool]]:
    """Sentences of a block of lines (a file, or one JSON record's text), with document-start flags.

    Without ``split``, each non-blank line is a sentence; with it, blank-line separated paragraphs
    are split. With ``doc_per_block`` the whole block is one document, else blank lines separate
    documents.
    """
    new_doc = True
    if split is None:
        for line in lines:
            s = line.strip()
            if s:
                yield s, new_doc
                new_doc = False
            elif not doc_per_block:
                new_doc = True
        return
    para: list[str] = []
    for line in itertools.chain(lines, ("",)):
        s = line.strip()
        if s:
            para.append(s)
        elif para:
            for sent in split(" ".join(para)):
                yield sent, new_doc
                new_doc = False
            para = []
            if not doc_per_block:
                new_doc = True


class CorpusReader:
    """Sentences, with document boundaries, of a set of input files in one of the supported formats.

    ``reader.sentences()`` yields ``(sentence, starts_document)``; ``reader.documents()`` yields
    lists of sentences. After (or while) iterating, ``reader.sources`` holds a :class:`SourceInfo`
    per file read, ``reader.bytes_read`` the bytes consumed so far (for progress bars) and
    ``reader.total_bytes`` the size of all inputs.
    """

    def __init__(self, inputs: str | os.PathLike | Iterable[str | os.PathLike], options: ReadOptions | None = None,
                 **kwargs: Any):
        self.options = ReadOptions.from_kwargs(options, **kwargs)
        self.files = expand_inputs(inputs)
        self.total_bytes = sum(f.stat().st_size for f in self.files)
        self.sources: list[SourceInfo] = []
        self._done_bytes = 0
        self._current: TextSource | None = None
        self._split = sentence_splitter(self.options.language) if self.options.split_sentences else None

    @property
    def bytes_read(self) -> int:
        return self._done_bytes + (self._current.bytes_read if self._current is not None else 0)

    @property
    def invalid_utf8(self) -> int:
        return sum(s.invalid_utf8 for s in self.sources)

    def __iter__(self) -> Iterator[list[str]]:
        return self.documents()

    def documents(self) -> Iterator[list[str]]:
        doc: list[str] = []
        for sent, starts in self.sentences():
            if starts and doc:
                yield doc
                doc = []
            doc.append(sent)
        if doc:
            yield doc

    def texts(self, progress: bool | None = False, desc: str = "reading") -> Iterator[str]:
        """Just the sentences (for tokenizer training), optionally with progress in bytes (plmkit._progress:
        a bar on a terminal, status lines in a log; ``progress`` None or True shows it)."""
        if progress is False:
            for sent, _ in self.sentences():
                yield sent
            return
        from .._progress import Progress

        with Progress(total=self.total_bytes, unit="B", unit_scale=True, desc=desc, enabled=progress,
                      mininterval=0.5) as bar:
            last = 0
            for i, (sent, _) in enumerate(self.sentences()):
                if i % 4096 == 0:
                    now = self.bytes_read
                    bar.update(now - last)
                    last = now
                yield sent
            bar.update(self.bytes_read - last)

    def sentences(self) -> Iterator[tuple[str, bool]]:
        self.sources = []
        self._done_bytes = 0
        for path in self.files:
            with TextSource(path, self.options.format) as src:
                self._current = src
                n_sent = n_doc = 0
                for sent, starts in self._file_sentences(src):
                    n_sent += 1
                    if starts or n_sent == 1:
                        n_doc += 1
                        starts = True
                    yield sent, starts
                info = src.finish()
                self._current = None
            if n_sent == 0:
                what = {"jsonl": f"records with a non-empty {self.options.text_field!r} field",
                        "json": f"a non-empty {self.options.text_field!r} field"}.get(info.format, "text")
                raise DataError(f"input {path} holds no text (no {what}); remove it from the inputs or fix it")
            info.documents, info.sentences = n_doc, n_sent
            self.sources.append(info)
            self._done_bytes += info.size

    def _file_sentences(self, src: TextSource) -> Iterator[tuple[str, bool]]:
        fmt, opts = src.info.format, self.options
        if fmt == "text":
            yield from _paragraph_sentences(src.iter_text(), self._split, opts.doc_per_file)
        elif fmt == "brown":
            new_doc = True
            for words, _tags in _tagged_sentences(src):
                yield " ".join(words), new_doc
                new_doc = False
        elif fmt == "jsonl":
            first = True
            for lineno, line in enumerate(src.iter_text(), 1):
                if not line.strip():
                    continue
                text = _record_text(_parse_json(line, src.path, lineno), opts.text_field, src.path, lineno)
                for sent, starts in _paragraph_sentences(text.split("\n"), self._split, True):
                    yield sent, starts and (first or not opts.doc_per_file)
                    first = False
        elif fmt == "json":
            data = _parse_json(src.read_all(), src.path, None)
            records = data if isinstance(data, list) else [data]
            first = True
            for i, rec in enumerate(records):
                text = _record_text(rec, opts.text_field, src.path, None, index=i if isinstance(data, list) else None)
                for sent, starts in _paragraph_sentences(text.split("\n"), self._split, True):
                    yield sent, starts and (first or not opts.doc_per_file)
                    first = False
        else:  # pragma: no cover - ReadOptions validates the format
            raise UsageError(f"unknown format {fmt!r}")


def _parse_json(text: str, path: Path, lineno: int | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"{path}:{lineno}" if lineno is not None else f"{path}:{e.lineno}"
        kind = "JSON Lines record" if lineno is not None else "JSON document"
        raise DataError(f"{where}: not a valid {kind} ({e.msg}); use --format text if the file is plain text")\
            from None
    except (ValueError, RecursionError) as e:  # a 5000-digit number, nesting deeper than the stack
        where = f"{path}:{lineno}" if lineno is not None else f"{path}"
        raise DataError(f"{where}: cannot be read as JSON ({excerpt(str(e))}); use --format text if the file is "
                        "plain text") from None


def _record_text(rec: Any, field_name: str, path: Path, lineno: int | None, index: int | None = None) -> str:
    where = f"{path}:{lineno}" if lineno is not None else f"{path}" + (f" (record {index})" if index is not None else "")
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object with a {field_name!r} field, got {type(rec).__name__} "
                        f"({excerpt(rec)})")
    if field_name not in rec:
        keys = ", ".join(excerpt(k, 30) for k in sorted(map(str, rec))[:10])
        raise DataError(f"{where}: the record has no {field_name!r} field (its fields: {keys}); name the text field "
                        "with --text-field")
    text = rec[field_name]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise DataError(f"{where}: field {field_name!r} holds {type(text).__name__}, not text ({excerpt(text)})")
    return text


# ----------------------------------------------------------------------------------- tagged (Brown)
def _tagged_sentences(src: TextSource) -> Iterator[tuple[list[str], list[str]]]:
    for lineno, line in enumerate(src.iter_text(), 1):
        tokens = line.split()
        if not tokens:
            continue
        words, tags = [], []
        for tok in tokens:
            w, sep, t = tok.rpartition("/")
            if not (w and t):
                raise DataError(f"{src.path}:{lineno}: token {excerpt(tok)} is not word/tag; this is not a tagged (Brown) file "
                                "(pass --format text to read it as plain text)")
            words.append(w)
            tags.append(t)
        yield words, tags


def read_tagged(path: str | os.PathLike) -> list[tuple[list[str], list[str]]]:
    """The sentences of one tagged (Brown-layout) file as ``(words, tags)`` pairs, tags as in the file."""
    with TextSource(path, "brown") as src:
        sents = list(_tagged_sentences(src))
        src.finish()
    if not sents:
        raise DataError(f"input {path} holds no tagged sentences")
    return sents


def iter_tagged(inputs: str | os.PathLike | Iterable[str | os.PathLike]
                ) -> Iterator[tuple[Path, list[tuple[list[str], list[str]]]]]:
    """``(file, [(words, tags), ...])`` for each tagged file of ``inputs`` (files, folders, globs)."""
    for path in expand_inputs(inputs):
        yield path, read_tagged(path)


# ----------------------------------------------------------------------------------- shortcuts
def read_documents(inputs: str | os.PathLike | Iterable[str | os.PathLike], options: ReadOptions | None = None,
                   **kwargs: Any) -> Iterator[list[str]]:
    """Documents (lists of sentences) of ``inputs``; keyword arguments are :class:`ReadOptions` fields."""
    return CorpusReader(inputs, options, **kwargs).documents()


def read_sentences(inputs: str | os.PathLike | Iterable[str | os.PathLike], options: ReadOptions | None = None,
                   **kwargs: Any) -> Iterator[str]:
    """All sentences of ``inputs`` in order (what a tokenizer trains on)."""
    return CorpusReader(inputs, options, **kwargs).texts()


__all__ = ["FORMATS", "ReadOptions", "SourceInfo", "CorpusReader", "TextSource", "expand_inputs", "brown_categories",
           "looks_tagged", "sentence_splitter", "read_tagged", "iter_tagged", "read_documents", "read_sentences"]
