"""Tokenizers: load the tokenizer saved in a model folder (plmkit- or Hugging Face-written).

Built on Hugging Face ``tokenizers``: a plmkit tokenizer is a ``tokenizers.Tokenizer`` (the Rust
fast tokenizer, ``tokenizer.json``) plus the names of its special tokens, and it tokenizes exactly
as ``transformers.AutoTokenizer`` does on the same folder. Folders that have no ``tokenizer.json``
but a WordPiece ``vocab.txt`` or a byte-level BPE ``vocab.json`` + ``merges.txt`` are built into
the same fast tokenizer on load.

Training (:func:`train_tokenizer`) builds the three sub-word vocabularies of the model family,
plus a word-level vocabulary for ELMo:

=========  ==================  =============================================  ======================
kind       for                 special tokens (ids 0..4, in this order)       pre-tokenization
=========  ==================  =============================================  ======================
wordpiece  BERT                ``[PAD] [UNK] [CLS] [SEP] [MASK]``             BERT (whitespace + punct.)
bpe        RoBERTa / GPT-2     ``<s> <pad> </s> <unk> <mask>``                byte-level (GPT-2 regex)
unigram    ALBERT              ``<pad> <unk> [CLS] [SEP] [MASK]``             SentencePiece ``▁`` (Metaspace)
wordlevel  ELMo                ``<pad> <unk> <s> </s>``                       whitespace
=========  ==================  =============================================  ======================

What changes relative to BERT's uncased WordPiece: lowercasing and accent stripping are
Korean-safe. BERT strips accents by NFD-decomposing the text and dropping combining marks, which
leaves every Hangul syllable decomposed into conjoining jamo (``한`` → ``ᄒ ᅡ ᆫ``), so a Korean
vocabulary is learnt over jamo and decodes to unreadable text. Here accents are stripped by
``NFD → StripAccents → NFC``: the final NFC recomposes the Hangul syllables (whose jamo are
letters, not marks), so only true combining marks (``é`` → ``e``) go. Text is NFC-normalised,
never NFKC/NFKD, which would turn compatibility jamo (``ㅋㅋ``) into conjoining jamo.
Because these normalizers are not the ones ``transformers``' ``BertTokenizer`` /
``AlbertTokenizer`` classes rebuild from flags, trained folders name the generic
``PreTrainedTokenizerFast`` class, so ``AutoTokenizer`` runs ``tokenizer.json`` exactly as written.

No ``[UNK]``: a character the training text never had (a rare Hangul syllable such as ``봤`` in a
vocabulary learnt from formal text, ``ㅠㅠ``, an emoji) must not become an unknown token. Byte-level
BPE has every byte in its alphabet. The unigram kind has SentencePiece's *byte fallback* (on by
default): the 256 byte tokens ``<0x00>`` … ``<0xFF>`` take ids 5..260, the model writes an unknown
character as the bytes of its UTF-8 form, and the ``ByteFallback`` decoder joins them again, so
``decode(encode(x))`` gives back ``x`` up to the normalizer (NFC; lowercasing unless cased) and
whitespace (``▁``, U+2581, reads back as a space). WordPiece in ``tokenizers`` has no byte
fallback: a word with an unseen character is one ``[UNK]``; training it on mostly-Hangul text warns
and points to unigram.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import math
import os
import random
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import numpy as np
from tokenizers import Encoding
from tokenizers import Tokenizer as FastTokenizer

from ._files import read_text_lines
from .errors import CheckpointError, DataError, UsageError, excerpt

SPECIAL_KEYS = ("cls_token", "sep_token", "pad_token", "mask_token", "unk_token", "bos_token", "eos_token")
_BERT_SPECIALS = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]",
                  "unk_token": "[UNK]"}
_ROBERTA_SPECIALS = {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "mask_token": "<mask>",
                     "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
_GPT2_SPECIALS = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
# transformers' AlbertTokenizer defaults (albert-base-v2 ids: <pad>=0 <unk>=1 [CLS]=2 [SEP]=3 [MASK]=4).
_ALBERT_SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "[CLS]", "sep_token": "[SEP]",
                    "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"}
_WORDLEVEL_SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value


class Tokenizer:
    """A fast tokenizer plus its special tokens, in the Hugging Face habit.

    ``tok("text")`` / ``tok(texts, pairs, max_length=128)`` returns a dict of padded tensors
    (``input_ids``, ``attention_mask``, ``token_type_ids``), like ``transformers`` tokenizers.
    """

    def __init__(self, backend: FastTokenizer, special_tokens: dict[str, str] | None = None,
                 kind: str | None = None, model_max_length: int | None = None,
                 init_kwargs: dict[str, Any] | None = None):
        self.backend = backend
        # Truncation and padding are applied per call, never left switched on in the backend.
        self.backend.no_truncation()
        self.backend.no_padding()
        self.kind = kind or _detect_kind(backend)
        specials = dict(special_tokens or {})
        for key, tok in _default_specials(self.kind, backend).items():
            specials.setdefault(key, tok)
        self.special_tokens = {k: v for k, v in specials.items() if v is not None and backend.token_to_id(v) is not None}
        self.model_max_length = model_max_length
        self.init_kwargs = dict(init_kwargs or {})

    # ------------------------------------------------------------------ special tokens
    def _id(self, key: str) -> int | None:
        tok = self.special_tokens.get(key)
        return None if tok is None else self.backend.token_to_id(tok)

    cls_token_id = property(lambda self: self._id("cls_token"))
    sep_token_id = property(lambda self: self._id("sep_token"))
    pad_token_id = property(lambda self: self._id("pad_token"))
    mask_token_id = property(lambda self: self._id("mask_token"))
    unk_token_id = property(lambda self: self._id("unk_token"))
    bos_token_id = property(lambda self: self._id("bos_token"))
    eos_token_id = property(lambda self: self._id("eos_token"))

    @property
    def mask_token(self) -> str | None:
        return self.special_tokens.get("mask_token")

    @property
    def special_ids(self) -> set[int]:
        """Ids of every special / added-special token (never masked, never scored)."""
        ids = {self.backend.token_to_id(t) for t in self.special_tokens.values()}
        for tid, added in self.backend.get_added_tokens_decoder().items():
            if added.special:
                ids.add(tid)
        return {i for i in ids if i is not None}

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self.backend.id_to_token(i)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.backend.id_to_token(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        unk = self.unk_token_id
        return [t if (t := self.backend.token_to_id(tok)) is not None else unk for tok in tokens]

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str | list[str], pair: str | list[str] | None = None, add_special_tokens: bool = True,
               is_pretokenized: bool = False) -> Encoding:
        """One ``tokenizers.Encoding`` (ids, tokens, offsets, word_ids, type_ids)."""
        return self.backend.encode(text, pair, is_pretokenized=is_pretokenized, add_special_tokens=add_special_tokens)

    def encode_batch(self, texts: Sequence[str] | Sequence[list[str]], pairs: Sequence[str] | None = None,
                     add_special_tokens: bool = True, is_pretokenized: bool = False) -> list[Encoding]:
        inputs = list(texts) if pairs is None else list(zip(texts, pairs))
        return self.backend.encode_batch(inputs, is_pretokenized=is_pretokenized, add_special_tokens=add_special_tokens)

    def tokenize(self, text: str) -> list[str]:
        return self.backend.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __call__(self, texts: str | Sequence[str], pairs: str | Sequence[str] | None = None,
                 max_length: int | None = None, truncation: bool = True, padding: bool = True,
                 return_tensors: str | None = "pt", add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False, is_pretokenized: bool = False) -> dict[str, Any]:
        """Encode a text / batch into padded arrays (``return_tensors='pt'`` torch, ``'np'`` numpy)."""
        single = isinstance(texts, str) or (is_pretokenized and texts and isinstance(texts[0], str))
        if single:
            texts = [texts]  # type: ignore[list-item]
            pairs = None if pairs is None else [pairs]  # type: ignore[list-item]
        max_length = max_length if max_length is not None else self.model_max_length
        if truncation and max_length:
            self.backend.enable_truncation(max_length, strategy="longest_first")
        try:
            encs = self.encode_batch(texts, pairs, add_special_tokens=add_special_tokens,
                                     is_pretokenized=is_pretokenized)  # type: ignore[arg-type]
        finally:
            self.backend.no_truncation()
        return self.pad(encs, padding=padding, return_tensors=return_tensors,
                        return_offsets_mapping=return_offsets_mapping)

    def pad(self, encodings: Sequence[Encoding], padding: bool = True, return_tensors: str | None = "pt",
            return_offsets_mapping: bool = False) -> dict[str, Any]:
        """Right-pad a list of encodings to the longest one."""
        pad_id = self.pad_token_id if self.pad_token_id is not None else 0
        T = max((len(e.ids) for e in encodings), default=0)
        if not padding:
            if len({len(e.ids) for e in encodings}) > 1 and return_tensors:
                raise UsageError("sequences of different lengths need padding=True to form a tensor")
        B = len(encodings)
        ids = np.full((B, T), pad_id, dtype=np.int64)
        mask = np.zeros((B, T), dtype=np.int64)
        types = np.zeros((B, T), dtype=np.int64)
        offsets = np.zeros((B, T, 2), dtype=np.int64)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n] = e.ids
            mask[i, :n] = 1
            types[i, :n] = e.type_ids
            if return_offsets_mapping and n:
                offsets[i, :n] = e.offsets
        out: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        if return_tensors == "pt":
            import torch

            out = {k: torch.from_numpy(v) for k, v in out.items()}
        elif return_tensors is None:
            out = {k: v.tolist() for k, v in out.items()}
        return out

    # ------------------------------------------------------------------ identity & saving
    def hash(self) -> str:
        """A content hash of the tokenizer (stable across saves): data prepared with it records this."""
        return hashlib.sha256(self.backend.to_str().encode("utf-8")).hexdigest()[:16]

    def model_input_names(self) -> list[str]:
        """What a model takes from this tokenizer, as ``transformers`` names them: ``token_type_ids`` only where a
        pair's second segment gets its own type id (BERT and ALBERT kinds, not RoBERTa's)."""
        names = self.init_kwargs.get("model_input_names")
        if names is not None:
            return list(names)
        segments = set(self.backend.encode("a", "b").type_ids)
        return ["input_ids", "token_type_ids", "attention_mask"] if len(segments) > 1 else ["input_ids", "attention_mask"]

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (+ vocab files)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(folder / "tokenizer.json"))
        specials = dict(self.special_tokens)
        cfg: dict[str, Any] = {
            **self.init_kwargs,
            **specials,
            # A loaded folder keeps its class; trained tokenizers name PreTrainedTokenizerFast (see top).
            "tokenizer_class": self.init_kwargs.get("tokenizer_class")
            or _TOKENIZER_CLASS.get(self.kind, "PreTrainedTokenizerFast"),
            "model_max_length": self.model_max_length or 1_000_000_000_000_000_019_884_624_838_656,
            "clean_up_tokenization_spaces": False,
        }
        if "model_input_names" not in cfg and cfg["tokenizer_class"] == "PreTrainedTokenizerFast":
            # The generic class returns no token_type_ids in transformers 5: a BERT pair would reach the model as
            # one segment. Name them wherever tokenizer.json gives the second segment its own type id.
            cfg["model_input_names"] = self.model_input_names()
        (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2, ensure_ascii=False) + "\n",
                                                         encoding="utf-8")
        model = json.loads(self.backend.to_str())["model"]
        if model["type"] == "WordPiece":
            vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
            (folder / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8")
        elif model["type"] == "BPE":
            (folder / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
            merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
            (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
        return folder


_TOKENIZER_CLASS = {"wordpiece": "BertTokenizer", "bpe": "RobertaTokenizer", "unigram": "AlbertTokenizer"}


def _detect_kind(backend: FastTokenizer) -> str:
    model_type = json.loads(backend.to_str())["model"]["type"]
    return {"WordPiece": "wordpiece", "BPE": "bpe", "Unigram": "unigram", "WordLevel": "wordlevel"}.get(model_type, "unknown")


def _default_specials(kind: str, backend: FastTokenizer) -> dict[str, str]:
    if kind == "wordlevel":
        return dict(_WORDLEVEL_SPECIALS)
    if backend.token_to_id("[CLS]") is not None and backend.token_to_id("<pad>") is not None:
        return dict(_ALBERT_SPECIALS)
    if backend.token_to_id("[CLS]") is not None:
        return dict(_BERT_SPECIALS)
    if backend.token_to_id("<s>") is not None:
        return dict(_ROBERTA_SPECIALS)
    if backend.token_to_id("<|endoftext|>") is not None:
        return dict(_GPT2_SPECIALS)
    return {}


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load the tokenizer of a model or tokenizer folder (plmkit- or Hugging Face-written).

    Every file is checked before use: the JSON side files must be objects whose known keys have the
    types ``transformers`` writes, ``vocab.txt`` / ``vocab.json`` / ``merges.txt`` must be UTF-8 with
    one token (merge) per line and no duplicates, and the tokenizer must be able to encode any text
    (its unknown token is in its vocabulary) with ids inside its vocabulary. A problem is a
    :class:`CheckpointError` naming the file and the key or line.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"tokenizer folder {folder} does not exist; pass a model folder or the --out "
                              "folder of 'plmkit tokenizer train'")
    cfg: dict[str, Any] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        p = folder / name
        if p.exists():
            data = _check_side_file(p, _read_side_json(p))
            cfg = {**data, **cfg} if name == "special_tokens_map.json" else {**cfg, **data}
    specials = {k: _token_content(cfg[k]) for k in SPECIAL_KEYS if cfg.get(k) is not None}
    max_len = cfg.get("model_max_length")
    if max_len is not None and (isinstance(max_len, float) or max_len > 1_000_000):
        max_len = None  # transformers' "no limit" sentinel (1e30, written as an integer or a float)
    init = {k: cfg[k] for k in ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "add_prefix_space",
                                "tokenizer_class", "model_input_names", "plmkit") if k in cfg}
    if (folder / "tokenizer.json").exists():
        file = folder / "tokenizer.json"
        try:
            backend = FastTokenizer.from_file(str(file))
        except BaseException as e:  # tokenizers raises a plain Exception, or panics (a BaseException), on bad files
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise CheckpointError(f"{file}: cannot be read as a tokenizers file ({excerpt(str(e), 160)}); restore it "
                                  "from the model's source, or train one with 'plmkit tokenizer train'") from None
    elif (folder / "vocab.txt").exists():
        from tokenizers.implementations import BertWordPieceTokenizer

        file = folder / "vocab.txt"
        vocab = _read_vocab_txt(file)
        names = {k: specials.get(k) or d for k, d in (("unk_token", "[UNK]"), ("cls_token", "[CLS]"),
                                                       ("sep_token", "[SEP]"))}
        for key, tok in names.items():
            if tok not in vocab:
                raise CheckpointError(f"{file}: the {key} {excerpt(tok)} is not in the vocabulary; a WordPiece "
                                      "vocabulary needs its [UNK], [CLS] and [SEP] tokens (restore the file, or name "
                                      "the right tokens in tokenizer_config.json)")
        lower = cfg.get("do_lower_case", True)
        impl = BertWordPieceTokenizer(str(file), lowercase=True if lower is None else lower,
                                      strip_accents=cfg.get("strip_accents"),
                                      handle_chinese_chars=cfg.get("tokenize_chinese_chars", True) is not False,
                                      unk_token=names["unk_token"], cls_token=names["cls_token"],
                                      sep_token=names["sep_token"])
        backend = impl._tokenizer
    elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        from tokenizers.implementations import ByteLevelBPETokenizer
        from tokenizers.processors import RobertaProcessing

        file = folder / "vocab.json"
        _check_bpe_files(file, folder / "merges.txt")
        try:
            impl = ByteLevelBPETokenizer(str(file), str(folder / "merges.txt"),
                                         add_prefix_space=bool(cfg.get("add_prefix_space")), trim_offsets=True)
        except BaseException as e:  # a case the checks above missed: still a message, not a traceback
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise CheckpointError(f"{file} + merges.txt: cannot be read as a byte-level BPE vocabulary "
                                  f"({excerpt(str(e), 160)}); restore them from the model's source") from None
        backend = impl._tokenizer
        if backend.token_to_id("<s>") is not None and backend.token_to_id("</s>") is not None:
            backend.post_processor = RobertaProcessing(("</s>", backend.token_to_id("</s>")),
                                                       ("<s>", backend.token_to_id("<s>")))
    else:
        raise CheckpointError(
            f"{folder} has no tokenizer (tokenizer.json, vocab.txt, or vocab.json + merges.txt); copy the "
            "tokenizer files into the model folder or train one with 'plmkit tokenizer train'"
        )
    _check_backend(backend, file)
    return Tokenizer(backend, specials, model_max_length=max_len, init_kwargs=init)


_SIDE_FILE_HINT = "restore the file or delete it (tokenizer.json alone is enough)"
# Keys of tokenizer_config.json / special_tokens_map.json that plmkit reads, and the types they must have.
_BOOL_KEYS = ("do_lower_case", "tokenize_chinese_chars", "add_prefix_space")
_OPTIONAL_BOOL_KEYS = ("strip_accents",)  # null means "as do_lower_case"


def _read_side_json(p: Path) -> Any:
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{p}: cannot be read ({e.strerror}); {_SIDE_FILE_HINT}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{p}: not a JSON text file (byte {e.start}: {e.reason}; it may be binary); "
                              f"{_SIDE_FILE_HINT}") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p}: not valid JSON (line {e.lineno}: {e.msg}); {_SIDE_FILE_HINT}") from None
    except (ValueError, RecursionError) as e:  # a 5000-digit number, nesting deeper than the stack
        raise CheckpointError(f"{p}: cannot be read as JSON ({excerpt(str(e))}); {_SIDE_FILE_HINT}") from None


def _check_side_file(p: Path, data: Any) -> dict[str, Any]:
    """Type-check the keys plmkit reads from ``tokenizer_config.json`` / ``special_tokens_map.json``."""
    from .errors import type_name

    if not isinstance(data, dict):
        raise CheckpointError(f"{p}: expected a JSON object of settings, got {type_name(data)} ({excerpt(data)}); "
                              f"{_SIDE_FILE_HINT}")

    def bad(key: str, expected: str) -> CheckpointError:
        return CheckpointError(f"{p}: {key!r} is {type_name(data[key])} ({excerpt(data[key])}), expected {expected}; "
                               f"fix the value or {_SIDE_FILE_HINT}")

    for key in SPECIAL_KEYS:
        value = data.get(key)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, dict) and isinstance(value.get("content"), str):
            continue  # an AddedToken as transformers writes it: {"content": "[CLS]", "lstrip": false, ...}
        raise bad(key, 'a token (text, or an object {"content": "..."})')
    if "model_max_length" in data and data["model_max_length"] is not None:
        v = data["model_max_length"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 1 or (
                isinstance(v, float) and v <= 1_000_000 and not v.is_integer()):
            raise bad("model_max_length", "a positive integer (the longest input, in tokens)")
        if isinstance(v, float) and v <= 1_000_000:
            data = {**data, "model_max_length": int(v)}
    for key in _BOOL_KEYS:
        if key in data and data[key] is not None and not isinstance(data[key], bool):
            raise bad(key, "true or false")
    for key in _OPTIONAL_BOOL_KEYS:
        if key in data and data[key] is not None and not isinstance(data[key], bool):
            raise bad(key, "true, false or null")
    if data.get("tokenizer_class") is not None and not isinstance(data["tokenizer_class"], str):
        raise bad("tokenizer_class", "a class name")
    names = data.get("model_input_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise bad("model_input_names", "a list of names")
    if data.get("plmkit") is not None and not isinstance(data["plmkit"], dict):
        raise bad("plmkit", "an object")
    return data


def _read_vocab_txt(file: Path) -> dict[str, int]:
    """``vocab.txt`` (one WordPiece token per line) as token → id, refusing empty files and duplicates."""
    tokens = read_text_lines(file, "WordPiece vocabulary (vocab.txt)")
    if not tokens:
        raise CheckpointError(f"{file}: empty; a vocab.txt has one token per line — restore it from the model's source")
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise CheckpointError(f"{file}, line {i + 1}: token {excerpt(tok)} already appears on line {vocab[tok] + 1}; "
                                  "each token may appear once (a duplicate would shift every id after it) — restore "
                                  "the file from the model's source")
        vocab[tok] = i
    return vocab


def _check_bpe_files(vocab_file: Path, merges_file: Path) -> None:
    """``vocab.json`` (token → id, ids 0..n-1 once each) and ``merges.txt`` ("a b" per line, both in the vocabulary)."""
    from .errors import type_name

    hint = "restore it from the model's source"
    text = "\n".join(read_text_lines(vocab_file, "BPE vocabulary (vocab.json)"))  # UTF-8, no NUL
    try:
        vocab = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{vocab_file}: not valid JSON (line {e.lineno}: {e.msg}); {hint}") from None
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{vocab_file}: cannot be read as JSON ({excerpt(str(e))}); {hint}") from None
    if not isinstance(vocab, dict) or not vocab:
        raise CheckpointError(f"{vocab_file}: expected a non-empty JSON object mapping token to id, got "
                              f"{type_name(vocab)} ({excerpt(vocab)}); {hint}")
    seen: dict[int, str] = {}
    for tok, i in vocab.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(vocab):
            raise CheckpointError(f"{vocab_file}: the id of {excerpt(tok)} is {excerpt(i)}; ids must be the integers "
                                  f"0..{len(vocab) - 1}, each once; {hint}")
        if i in seen:
            raise CheckpointError(f"{vocab_file}: id {i} is given to both {excerpt(seen[i])} and {excerpt(tok)}; {hint}")
        seen[i] = tok
    for n, line in enumerate(read_text_lines(merges_file, "BPE merges file (merges.txt)"), start=1):
        if not line.strip() or (n == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise CheckpointError(f"{merges_file}, line {n}: expected two tokens separated by one space, got "
                                  f"{excerpt(line)}; {hint}")
        for piece in (parts[0], parts[1], parts[0] + parts[1]):
            if piece not in vocab:
                raise CheckpointError(f"{merges_file}, line {n}: {excerpt(piece)} is not in {vocab_file.name}; the "
                                      f"merges belong to another vocabulary — {hint}")


def _check_backend(backend: FastTokenizer, file: Path) -> None:
    """What plmkit relies on in a loaded tokenizer: a non-empty vocabulary whose ids all fit in it (they index
    the embedding), and an unknown token that exists, so any text encodes instead of failing mid-run."""
    vocab = backend.get_vocab(with_added_tokens=True)
    size = backend.get_vocab_size(with_added_tokens=True)
    if not vocab:
        raise CheckpointError(f"{file}: the tokenizer has an empty vocabulary; restore it from the model's source")
    top = max(vocab.values())
    if top >= size:
        tok = next(t for t, i in vocab.items() if i == top)
        raise CheckpointError(f"{file}: token {excerpt(tok)} has id {top}, beyond the vocabulary of {size} ids; ids "
                              "must be 0..size-1 — restore the file from the model's source")
    model = json.loads(backend.model.__getstate__())
    kind = model.get("type")
    unk = model.get("unk_token")
    if kind in ("WordPiece", "WordLevel") or (kind == "BPE" and unk is not None):
        if not isinstance(unk, str) or backend.token_to_id(unk) is None:
            raise CheckpointError(f"{file}: the {kind} model's unknown token {excerpt(unk)} is not in its vocabulary, "
                                  "so text with an unseen word or character cannot be encoded; restore the file, or "
                                  "train a tokenizer with 'plmkit tokenizer train'")
    if kind == "Unigram" and model.get("unk_id") is not None:
        unk_id = model["unk_id"]
        if not isinstance(unk_id, int) or not 0 <= unk_id < len(model.get("vocab") or []):
            raise CheckpointError(f"{file}: the Unigram model's unk_id {excerpt(unk_id)} is not an id of its "
                                  "vocabulary; restore the file from the model's source")


# ---------------------------------------------------------------------------------------- training
TRAINABLE_KINDS = ("wordpiece", "bpe", "unigram", "wordlevel")
# Special tokens per kind, in id order (they take ids 0..n-1).
KIND_SPECIALS: dict[str, dict[str, str]] = {
    "wordpiece": dict(_BERT_SPECIALS),
    "bpe": {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
            "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"},
    "unigram": dict(_ALBERT_SPECIALS),
    "wordlevel": dict(_WORDLEVEL_SPECIALS),
}
_PAD_FIRST = {"wordpiece": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
              "bpe": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
              "unigram": ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"],
              "wordlevel": ["<pad>", "<unk>", "<s>", "</s>"]}
# Lowercase by default where the reference model did: BERT-uncased and ALBERT yes, RoBERTa/GPT-2 and ELMo no.
DEFAULT_LOWERCASE = {"wordpiece": True, "bpe": False, "unigram": True, "wordlevel": False}
# SentencePiece's byte pieces (byte fallback), ids len(specials) .. len(specials)+255 of a unigram vocabulary.
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
# The characters that spell a byte token are always in a byte-fallback vocabulary, and byte tokens score
# below any path of characters, so a literal "<0x41>" in the text is read as characters, never as byte 0x41.
_BYTE_TOKEN_CHARS = "<>x0123456789ABCDEF"
_UNIGRAM_ALPHABET_ERROR = "not large enough to contain all chars"

T = TypeVar("T")


def text_normalizer(kind: str, lowercase: bool, strip_accents: bool | None = None):
    """The Korean-safe normalizer of a trained tokenizer (None for a cased byte-level BPE, like GPT-2).

    ``strip_accents`` defaults to ``lowercase`` for WordPiece and unigram (BERT-uncased, ALBERT) and
    to False otherwise. Accents are stripped by NFD → StripAccents → NFC so that Hangul syllables are
    recomposed (see the module docstring); Hangul has no case, so Lowercase leaves it alone.
    """
    from tokenizers import normalizers

    if strip_accents is None:
        strip_accents = lowercase and kind in ("wordpiece", "unigram")
    steps: list[Any] = []
    if kind == "wordpiece":
        # BERT's cleaning (control characters, whitespace) and spaces around CJK ideographs, but never
        # its own accent stripping or lowercasing, which NFD-decompose Hangul.
        steps.append(normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=False))
    if kind in ("wordpiece", "unigram"):
        steps.append(normalizers.NFC())
    if strip_accents:
        steps += [normalizers.NFD(), normalizers.StripAccents(), normalizers.NFC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps) if steps else None


def _new_backend(kind: str, lowercase: bool, strip_accents: bool | None, byte_fallback: bool = False) -> FastTokenizer:
    """An untrained ``tokenizers.Tokenizer`` with the kind's normalizer, pre-tokenizer and decoder."""
    from tokenizers import decoders, models, pre_tokenizers

    if kind == "wordpiece":
        backend = FastTokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    elif kind == "bpe":
        backend = FastTokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        backend.decoder = decoders.ByteLevel()
    elif kind == "unigram":
        backend = FastTokenizer(models.Unigram())
        # transformers' AlbertTokenizer: split on whitespace, then mark each word's start with "▁".
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
        if byte_fallback:
            # transformers' SentencePiece conversion (Llama, T5 with byte fallback): "▁" → " ", byte tokens →
            # the characters they spell, then drop the one space that the first word's "▁" leaves.
            backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                                 decoders.Strip(content=" ", left=1, right=0)])
        else:
            backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    elif kind == "wordlevel":
        backend = FastTokenizer(models.WordLevel(unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:
        raise UsageError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TRAINABLE_KINDS)}")
    norm = text_normalizer(kind, lowercase, strip_accents)
    if norm is not None:
        backend.normalizer = norm
    return backend


def _trainer(kind: str, vocab_size: int, min_frequency: int, limit_alphabet: int | None, show_progress: bool,
             initial_alphabet: Sequence[str] = ()):
    from tokenizers import AddedToken, pre_tokenizers, trainers

    specials: list[Any] = []
    for tok in _PAD_FIRST[kind]:
        # RoBERTa's <mask> and ALBERT's [MASK] swallow the space before them ("a <mask>" → "a", "<mask>").
        lstrip = tok == "<mask>" or (kind == "unigram" and tok == "[MASK]")
        specials.append(AddedToken(tok, lstrip=lstrip, rstrip=False, normalized=False, special=True))
    if kind == "wordpiece":
        extra = {} if limit_alphabet is None else {"limit_alphabet": limit_alphabet}  # default: every character
        return trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                         continuing_subword_prefix="##", show_progress=show_progress, **extra)
    if kind == "bpe":
        return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                   initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress)
    if kind == "unigram":
        return trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                                       max_piece_length=16, show_progress=show_progress,
                                       initial_alphabet=list(initial_alphabet))
    return trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                     show_progress=show_progress)


def _post_processor(kind: str, backend: FastTokenizer):
    from tokenizers import processors

    if kind == "bpe":
        return processors.RobertaProcessing(("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>")),
                                            trim_offsets=True, add_prefix_space=False)
    if kind in ("wordpiece", "unigram"):
        cls, sep = ("[CLS]", "[SEP]")
        return processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, backend.token_to_id(cls)), (sep, backend.token_to_id(sep))])
    return None  # word level (ELMo adds its own <s> ... </s>)


def reservoir_sample(items: Iterable[T], k: int, seed: int = 0) -> list[T]:
    """A uniform random sample of ``k`` items from a stream of unknown length, in O(k) memory.

    Li's Algorithm L (1994): after the reservoir fills, it jumps over a geometrically distributed
    number of items between replacements, so it draws O(k log(n/k)) random numbers, not n.
    Deterministic for a given ``seed`` and stream; the whole stream when it has at most ``k`` items.
    """
    if k <= 0:
        raise UsageError(f"the sample size must be positive, got {k}")
    rng = random.Random(seed)
    it = iter(items)
    sample = list(itertools.islice(it, k))
    if len(sample) < k:
        return sample

    def u() -> float:  # uniform on (0, 1]
        return 1.0 - rng.random()

    w = math.exp(math.log(u()) / k)
    missing = object()
    while True:
        skip = int(math.log(u()) / math.log1p(-w)) if w < 1.0 else 0
        item = next(itertools.islice(it, skip, None), missing)
        if item is missing:
            return sample
        sample[rng.randrange(k)] = item  # type: ignore[assignment]
        w *= math.exp(math.log(u()) / k)


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int, lowercase: bool | None = None,
                    strip_accents: bool | None = None, max_sentences: int | None = None, min_frequency: int = 2,
                    limit_alphabet: int | None = None, seed: int = 0, show_progress: bool = False,
                    byte_fallback: bool | None = None) -> Tokenizer:
    """Train a WordPiece / byte-level BPE / unigram / word-level tokenizer on a stream of sentences.

    ``texts`` is any iterable of strings (sentences or lines), e.g.
    ``plmkit.data.read_sentences(paths)``; it is streamed, so memory holds only the trainer's word
    counts, unless ``max_sentences`` asks for a uniform random sample (reservoir sampling, seeded by
    ``seed``) to train on. ``lowercase`` defaults per kind (:data:`DEFAULT_LOWERCASE`). For
    ``wordlevel``, ``vocab_size`` may be 0 to keep every word seen ``min_frequency`` times or more.
    The result saves with :meth:`Tokenizer.save_pretrained` into a folder that
    ``transformers.AutoTokenizer`` loads and that tokenizes identically.

    ``byte_fallback`` (unigram only; default on) puts the 256 byte tokens in the vocabulary (counted in
    ``vocab_size``), so no text gives ``[UNK]``. A unigram vocabulary must hold every character of
    its training text; when ``vocab_size`` is smaller than that alphabet and byte fallback is on, the
    rarest characters are left to byte fallback (the text is read a second time, so ``texts`` must
    be re-iterable, e.g. a list; a one-shot iterator gets an error that says the size needed).
    """
    if kind not in TRAINABLE_KINDS:
        raise UsageError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TRAINABLE_KINDS)}")
    if byte_fallback is None:
        byte_fallback = kind == "unigram"
    elif byte_fallback and kind in ("wordpiece", "wordlevel"):
        raise UsageError(f"--byte-fallback: a {kind} model has no byte fallback in Hugging Face tokenizers (an unseen "
                         "character makes the word [UNK]); use --kind unigram (byte fallback) or --kind bpe "
                         "(byte-level), which never give [UNK]")
    elif not byte_fallback and kind == "bpe":
        raise UsageError("--no-byte-fallback: the bpe kind is byte-level, every byte is in its alphabet; it cannot be "
                         "switched off")
    byte_fallback = bool(byte_fallback and kind == "unigram")
    specials = _PAD_FIRST[kind]
    n_bytes = 256 if (kind == "bpe" or byte_fallback) else 0
    floor = len(specials) + n_bytes + 1
    if byte_fallback:
        floor += len(_BYTE_TOKEN_CHARS) + 8  # the characters of "<0xNN>", "▁" and a few characters and pieces
    if kind == "wordlevel" and vocab_size == 0:
        vocab_size = 2**31 - 1
    if vocab_size < floor:
        what = f"{len(specials)} special tokens"
        if n_bytes:
            what += f" + 256 byte {'symbols' if kind == 'bpe' else 'tokens'}"
        raise UsageError(f"--vocab-size {vocab_size} is too small for a {kind} tokenizer"
                         f"{' with byte fallback' if byte_fallback else ''}: it needs at least {floor} "
                         f"({what} + pieces)")
    if min_frequency < 1:
        raise UsageError(f"the minimum frequency must be at least 1, got {min_frequency}")
    if lowercase is None:
        lowercase = DEFAULT_LOWERCASE[kind]
    initial = (_BYTE_TOKEN_CHARS.lower() if lowercase else _BYTE_TOKEN_CHARS) if byte_fallback else ""
    initial = "".join(dict.fromkeys(initial))
    model_size = vocab_size - (256 if byte_fallback else 0)

    counted = _Counted(texts, count_chars=kind in ("unigram", "wordpiece"))
    source: Iterable[str] = reservoir_sample(counted, max_sentences, seed) if max_sentences else counted
    backend = _new_backend(kind, lowercase, strip_accents, byte_fallback)
    if kind == "wordpiece":
        _train_wordpiece(backend, source, model_size, min_frequency, limit_alphabet, show_progress)
    elif not _train(backend, source, _trainer(kind, model_size, min_frequency, limit_alphabet, show_progress, initial),
                    model_size):
        backend = _train_unigram_within_alphabet(counted, source, backend, model_size, vocab_size, byte_fallback,
                                                 initial, show_progress)
    if counted.n == 0:
        raise DataError("there is no text to train the tokenizer on (the input gave no sentences)")
    if byte_fallback:
        backend = _with_byte_tokens(backend, len(specials))
    post = _post_processor(kind, backend)
    if post is not None:
        backend.post_processor = post
    if kind == "wordpiece":
        _warn_if_mostly_hangul(counted.chars)
    init: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "plmkit": {"kind": kind, "lowercase": lowercase,
                   "strip_accents": bool(strip_accents if strip_accents is not None
                                         else lowercase and kind in ("wordpiece", "unigram")),
                   "trained_on_sentences": counted.n if not max_sentences else min(counted.n, max_sentences)},
    }
    if kind == "unigram":
        init["plmkit"]["byte_fallback"] = byte_fallback
    return Tokenizer(backend, KIND_SPECIALS[kind], kind=kind, init_kwargs=init)


def _train(backend: FastTokenizer, texts: Iterable[str], trainer: Any, model_size: int) -> bool:
    """Train; False when a unigram vocabulary of ``model_size`` cannot hold the alphabet of the text.

    ``tokenizers`` refuses an alphabet larger than the vocabulary, and one just below it yields more
    pieces than asked (every character is added after the pieces): both are the same problem.
    """
    from tokenizers import trainers

    try:
        backend.train_from_iterator(texts, trainer=trainer)
    except Exception as e:  # tokenizers raises a plain Exception
        if _UNIGRAM_ALPHABET_ERROR not in str(e):
            raise
        return False
    return not isinstance(trainer, trainers.UnigramTrainer) or backend.get_vocab_size() <= model_size


# Stand-ins for the characters of a word after its first (WordPiece's "##" pieces) while training: a plane of
# private-use code points (characters there in the text get a stand-in too, so the mapping stays one to one).
_STAND_INS = (0xF0000, 0x10FFFE)


def _train_wordpiece(backend: FastTokenizer, texts: Iterable[str], vocab_size: int, min_frequency: int,
                     limit_alphabet: int | None, show_progress: bool) -> None:
    """Train ``backend``'s WordPiece model (BERT's pre-tokenizer): Hugging Face's trainer, made to give the same
    vocabulary every run.

    Its WordPiece trainer numbers the "##c" pieces in the order a hash map seeded per process visits the
    words, and breaks ties between merges of equal count by those numbers: two trainings on the same text
    gave the same pieces under different ids, and now and then a different piece at the end of the
    vocabulary, so a model pretrained on one could not be repeated with the other. Here the text is
    normalized and split into words by ``backend``'s own normalizer and pre-tokenizer, every character after
    a word's first is replaced by a private-use stand-in for it, and the trainer — with no "##" prefix —
    learns on those words: its alphabet is then numbered in code-point order and every tie is broken the
    same way. Mapping the stand-ins back to "##" pieces gives the vocabulary the trainer finds with
    its "##" prefix, up to the order of ties; ``limit_alphabet`` keeps the most frequent characters (ties by
    code point), as the trainer does. The special tokens come first, then the alphabet, then the merges.
    """
    from tokenizers import AddedToken, models, pre_tokenizers, trainers

    norm = backend.normalizer
    split = _BertWords()
    words: collections.Counter[str] = collections.Counter()
    for chunk in _batched(texts, 2000):
        text = "\n".join(chunk)
        words.update(split(norm.normalize_str(text) if norm is not None else text))
    chars: collections.Counter[str] = collections.Counter()
    for w, n in words.items():
        for c in w:
            chars[c] += n
    keep = sorted(chars)
    if limit_alphabet is not None and len(keep) > limit_alphabet:
        keep = sorted(sorted(keep, key=lambda c: (-chars[c], c))[:limit_alphabet])
    # One code point for every (position kind, character) the training text needs: characters after the first,
    # and first characters that are themselves in the stand-in plane.
    lo, hi = _STAND_INS
    needs = [(True, c) for c in keep] + [(False, c) for c in keep if ord(c) >= lo]
    if len(needs) > hi - lo:
        raise UsageError(f"the text has {len(keep):,} distinct characters, more than a WordPiece vocabulary can be "
                         f"trained on here ({hi - lo:,}); pass limit_alphabet to keep the most frequent")
    stand_in = {key: chr(lo + i) for i, key in enumerate(needs)}
    cont = {c: stand_in[True, c] for c in keep}  # (a stand-in enters the alphabet only if the text uses it)
    first = {c: stand_in.get((False, c), c) for c in keep}

    def mapped(w: str) -> str:
        tail = "".join(cont[c] for c in w[1:] if c in cont)
        return (first[w[0]] if w[0] in first else "") + tail

    def training_text() -> Iterator[str]:
        for w, n in words.items():
            m = mapped(w)
            if m:
                for k in range(0, n, 1000):  # a word seen n times, as n words
                    yield " ".join(itertools.repeat(m, min(1000, n - k)))

    specials = _trainer("wordpiece", vocab_size, min_frequency, None, show_progress).special_tokens
    learner = FastTokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=""))
    learner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Every character of the alphabet is a piece on its own, wherever it was seen (as the trainer's alphabet is),
    # and a "##" piece where it followed another.
    learner.train_from_iterator(training_text(), trainer=trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, continuing_subword_prefix="",
        initial_alphabet=[first[c] for c in keep], show_progress=show_progress))
    back = {v: ("##" if is_cont else "", c) for (is_cont, c), v in stand_in.items()}
    vocab: dict[str, int] = {}
    for piece, i in sorted(learner.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1]):
        if i < len(specials):
            vocab[piece] = i
            continue
        parts = [back.get(ch, ("", ch)) for ch in piece]
        vocab[parts[0][0] + "".join(c for _, c in parts)] = i
    backend.model = models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##")
    backend.add_special_tokens([AddedToken(t.content, lstrip=t.lstrip, rstrip=t.rstrip, normalized=t.normalized,
                                           special=True) for t in specials])


class _BertWords:
    """``BertPreTokenizer`` in Python: the runs of characters between whitespace, each punctuation mark a word
    of its own. Whitespace is Rust's ``char::is_whitespace`` (Unicode White_Space); punctuation is ASCII
    punctuation or a Unicode P* category, as in Hugging Face's ``is_bert_punc``."""

    WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

    def __init__(self):
        self.punct: set[str] = set()
        self.seen: set[str] = set()
        self.pattern = self._compile()

    def _compile(self):
        import re

        p = "".join(re.escape(c) for c in sorted(self.punct))
        return re.compile(f"[^{self.WHITESPACE}{p}]+" + (f"|[{p}]" if p else ""))

    def __call__(self, text: str) -> list[str]:
        import string
        import unicodedata

        new = set(text) - self.seen
        if new:
            self.seen |= new
            marks = {c for c in new if c in string.punctuation or unicodedata.category(c).startswith("P")}
            if marks:
                self.punct |= marks
                self.pattern = self._compile()
        return self.pattern.findall(text)


def _batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def _train_unigram_within_alphabet(counted: "_Counted", source: Iterable[str], backend: FastTokenizer,
                                   model_size: int, vocab_size: int, byte_fallback: bool, initial: str,
                                   show_progress: bool) -> FastTokenizer:
    """Retrain a unigram model whose vocabulary could not hold every character of the text.

    With byte fallback, the rarest characters are written as spaces in the training text (so no
    piece holds them) and as bytes when encoding; the most frequent characters keep up to half of
    the non-byte vocabulary. Needs a second pass over ``source``; without one, or without byte
    fallback, a :class:`UsageError` says which ``--vocab-size`` holds the whole alphabet.
    """
    norm = backend.normalizer
    alphabet = {ch for c in counted.chars if not c.isspace()
                for ch in (norm.normalize_str(c) if norm is not None else c) if not ch.isspace()}
    alphabet |= set(initial) | {"▁"}
    n_specials = len(_PAD_FIRST["unigram"])
    need = len(alphabet) + n_specials + 16 + (256 if byte_fallback else 0)  # + a few pieces (see _train)
    underlying = counted.texts if source is counted else source
    reiterable = iter(underlying) is not underlying  # a list, a reader; not a generator
    if not byte_fallback or not reiterable:
        how = ("or keep byte fallback on (--byte-fallback), which leaves rare characters to the byte tokens"
               if not byte_fallback else
               "or pass a list or another re-iterable (plmkit tokenizer train does) so that rare characters can be "
               "left to byte fallback")
        raise UsageError(f"--vocab-size {vocab_size} is too small for a unigram vocabulary of this text: it has about "
                         f"{len(alphabet):,} distinct characters (after normalization), and a unigram vocabulary holds "
                         f"each of them; pass --vocab-size {need} or more, {how}")
    ranked = [c for c, _ in counted.chars.most_common() if not c.isspace()]
    keep = max(1, (model_size - n_specials - len(initial) - 1) // 2)
    while True:
        table = {ord(c): " " for c in ranked[keep:]}
        trainer = _trainer("unigram", model_size, 1, None, show_progress, initial)
        if source is counted:
            counted.n = 0
        if _train(backend, (t.translate(table) for t in counted.again(source)), trainer, model_size):
            return backend
        if keep == 1:
            raise UsageError(f"--vocab-size {vocab_size} is too small for a unigram vocabulary of this text even "
                             f"with byte fallback; pass --vocab-size {need} or more")
        keep //= 2  # normalization made more characters than it kept (lowercase, NFC compositions)


def _with_byte_tokens(backend: FastTokenizer, n_specials: int) -> FastTokenizer:
    """The trained unigram model with SentencePiece's 256 byte tokens after the specials, byte fallback on."""
    state = json.loads(backend.to_str())
    model = state["model"]
    byte_set = set(BYTE_TOKENS)
    pieces = [p for p in model["vocab"][n_specials:] if p[0] not in byte_set]
    # Byte tokens are reached by fallback, never by segmentation: they score below any path of at most six
    # known characters (the length of "<0xNN>"), so literal "<0x41>" text stays characters.
    lowest = min((score for _, score in pieces), default=-1.0)
    byte_score = 6 * min(lowest, -1.0) - 1.0
    model["vocab"] = model["vocab"][:n_specials] + [[t, byte_score] for t in BYTE_TOKENS] + pieces
    model["byte_fallback"] = True
    return FastTokenizer.from_str(json.dumps(state))


def _hangul_share(chars: "collections.Counter[str]") -> float:
    """The share of Hangul (syllables and jamo) among the non-space characters counted."""
    total = hangul = 0
    for c, n in chars.items():
        if c.isspace():
            continue
        total += n
        o = ord(c)
        if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
            hangul += n
    return hangul / total if total else 0.0


def _warn_if_mostly_hangul(chars: "collections.Counter[str]") -> None:
    share = _hangul_share(chars)
    if share > 0.5:
        warnings.warn(f"the training text is mostly Hangul ({share:.0%} of its characters): a WordPiece vocabulary has "
                      "no byte fallback, so every word with a character it has not seen (a rare syllable such as "
                      "봤 or 잼, ㅠㅠ, an emoji) becomes one [UNK] — about 6% of the tokens of NSMC movie reviews for a "
                      "vocabulary learnt from corpora/ko. For Korean use --kind unigram (byte fallback, no [UNK]) or "
                      "--kind bpe (byte-level); see 'Korean' in README.md", stacklevel=3)


class _Counted:
    """Wrap an iterable of texts, counting the items (and, if asked, the characters) and checking that they are strings."""

    def __init__(self, texts: Iterable[str], count_chars: bool = False):
        if isinstance(texts, (str, bytes, os.PathLike)):
            raise UsageError("train_tokenizer takes an iterable of sentences, not one string or path; read files with "
                             "plmkit.data.read_sentences(paths)")
        self.texts = texts
        self.n = 0
        self.chars: collections.Counter[str] = collections.Counter()
        self._count_chars = count_chars
        self._passes = 0

    def __iter__(self) -> Iterator[str]:
        self._passes += 1
        count = self._count_chars and self._passes == 1
        for t in self.texts:
            if not isinstance(t, str):
                raise UsageError(f"train_tokenizer expects strings, got {type(t).__name__}")
            self.n += 1
            if count:
                self.chars.update(t)
            yield t

    def again(self, source: Iterable[str]) -> Iterator[str]:
        """``source`` read once more (itself when it is this wrapper, else e.g. the sample drawn from it)."""
        return iter(self) if source is self else iter(source)
