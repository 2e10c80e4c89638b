"""Tokenizers: load the tokenizer saved in a model folder (plmkit- or Hugging Face-written).

Built on Hugging Face ``tokenizers``: a plmkit tokenizer is a ``tokenizers.Tokenizer`` (the Rust
fast tokenizer, ``tokenizer.json``) plus the names of its special tokens, and it tokenizes exactly
as ``transformers.AutoTokenizer`` does on the same folder. Folders that have no ``tokenizer.json``
but a WordPiece ``vocab.txt`` or a byte-level BPE ``vocab.json`` + ``merges.txt`` are built into
the same fast tokenizer on load.

Training new tokenizers (WordPiece, byte-level BPE, unigram) lives beside this loader.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tokenizers import Encoding
from tokenizers import Tokenizer as FastTokenizer

from .errors import CheckpointError, UsageError

SPECIAL_KEYS = ("cls_token", "sep_token", "pad_token", "mask_token", "unk_token", "bos_token", "eos_token")
_BERT_SPECIALS = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]",
                  "unk_token": "[UNK]"}
_ROBERTA_SPECIALS = {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "mask_token": "<mask>",
                     "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
_GPT2_SPECIALS = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}


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

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (+ vocab files)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(folder / "tokenizer.json"))
        specials = dict(self.special_tokens)
        cfg: dict[str, Any] = {
            **self.init_kwargs,
            **specials,
            "tokenizer_class": _TOKENIZER_CLASS.get(self.kind, "PreTrainedTokenizerFast"),
            "model_max_length": self.model_max_length or 1_000_000_000_000_000_019_884_624_838_656,
            "clean_up_tokenization_spaces": False,
        }
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
    if backend.token_to_id("[CLS]") is not None:
        return dict(_BERT_SPECIALS)
    if backend.token_to_id("<s>") is not None:
        return dict(_ROBERTA_SPECIALS)
    if backend.token_to_id("<|endoftext|>") is not None:
        return dict(_GPT2_SPECIALS)
    return {}


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load the tokenizer of a model or tokenizer folder (plmkit- or Hugging Face-written)."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"tokenizer folder {folder} does not exist; pass a model folder or the --out "
                              "folder of 'plmkit tokenizer train'")
    cfg: dict[str, Any] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        p = folder / name
        if p.exists():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None
            cfg = {**data, **cfg} if name == "special_tokens_map.json" else {**cfg, **data}
    specials = {k: _token_content(cfg[k]) for k in SPECIAL_KEYS if cfg.get(k) is not None}
    max_len = cfg.get("model_max_length")
    if not isinstance(max_len, int) or max_len > 1_000_000:
        max_len = None
    init = {k: cfg[k] for k in ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "add_prefix_space")
            if k in cfg}
    if (folder / "tokenizer.json").exists():
        try:
            backend = FastTokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # tokenizers raises a plain Exception on bad files
            raise CheckpointError(f"{folder / 'tokenizer.json'}: cannot be read as a tokenizers file ({e})") from None
    elif (folder / "vocab.txt").exists():
        from tokenizers.implementations import BertWordPieceTokenizer

        lower = cfg.get("do_lower_case", True)
        impl = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lower,
                                      strip_accents=cfg.get("strip_accents"),
                                      handle_chinese_chars=cfg.get("tokenize_chinese_chars", True))
        backend = impl._tokenizer
    elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        from tokenizers.implementations import ByteLevelBPETokenizer
        from tokenizers.processors import RobertaProcessing

        impl = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                                     add_prefix_space=cfg.get("add_prefix_space", False), trim_offsets=True)
        backend = impl._tokenizer
        if backend.token_to_id("<s>") is not None and backend.token_to_id("</s>") is not None:
            backend.post_processor = RobertaProcessing(("</s>", backend.token_to_id("</s>")),
                                                       ("<s>", backend.token_to_id("<s>")))
    else:
        raise CheckpointError(
            f"{folder} has no tokenizer (tokenizer.json, vocab.txt, or vocab.json + merges.txt); copy the "
            "tokenizer files into the model folder or train one with 'plmkit tokenizer train'"
        )
    return Tokenizer(backend, specials, model_max_length=max_len, init_kwargs=init)
