"""Contextual word vectors from any plmkit model: choose layers, pool sub-tokens into words.

This is the *feature-based* use of a pretrained model: nothing in the model changes, its hidden
states are read out. BERT (Devlin et al., 2019, §5.3) concatenates chosen layers as features for
NER; ELMo (Peters et al., 2018, eq. 1) collapses all layers into one vector per word with a scalar
mix, ELMo_k = γ Σ_j softmax(s)_j h_k,j. :class:`Embedder` offers both, for BERT, RoBERTa, ALBERT,
the causal LM and ELMo:

* **words** are the whitespace-separated pieces of each input string, or the items of a
  pre-tokenized list. Sub-tokens are assigned to words from the tokenizer's character offsets, so
  byte-level BPE, WordPiece and unigram vocabularies all work without re-tokenizing words apart.
* **pooling**: ``first`` (the first sub-token's vector, as BERT's NER set-up) or ``mean``.
* **layers**: hidden state 0 is the embedding output, ``i`` is the output of layer ``i``, negative
  indices count from the end (``-1`` = last). One index gives that layer; a list gives the layers
  **concatenated** along the feature axis (``dim = len(layers) · hidden``); ``"mix"`` gives a
  scalar mix over every hidden state (uniform, or the given ``mix_weights`` normalised to sum 1).
* **long inputs** are never cut: a sentence longer than the model's positions (or ``max_length``)
  is run in overlapping windows (stride half a window); each token's vector comes from the window
  where it has the most context — centred for bidirectional encoders, the most left context for
  the causal LM. :func:`plan_windows` is shared with :mod:`plmkit.score`.

ELMo works on words directly: :meth:`plmkit.models.elmo.ElmoModel.embed_sentences` gives every
layer's state per word (layer 0 the character-CNN token encoding, doubled to 2P as in the paper,
layers 1..L the biLSTM states, forward and backward concatenated), so there is nothing to pool;
layer selection and mixing work the same. Any other word-level model plugs in with one method::

    model.word_layer_states(sentences: list[list[str]]) -> list[Tensor]  # each (layers, n_words, dim)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from ._files import output_files
from .errors import CheckpointError, UsageError
from .models.facts import check_max_length, model_device, pad_token_id
from .models.protocol import PlmkitModel, TokenModel

POOLS = ("first", "mean")
FORMATS = ("npy", "safetensors", "jsonl")


# ----------------------------------------------------------------------------- model + tokenizer
def resolve_model(model_or_path: Any, tokenizer: Any = None, device: str | torch.device | None = None,
                  needs_tokenizer: bool = True):
    """``(model, tokenizer, name)`` from a model folder path or a loaded model.

    A loaded plmkit model remembers its folder (``loaded_from``), so the tokenizer is found there
    when none is given. Models with their own word-level input (ELMo) need no tokenizer.
    """
    from .models import from_pretrained
    from .tokenization import load_tokenizer

    if isinstance(model_or_path, (str, os.PathLike)):
        name = str(model_or_path)
        model = from_pretrained(model_or_path)
    elif isinstance(model_or_path, nn.Module):
        model = model_or_path
        name = getattr(model, "loaded_from", None) or type(model).__name__
    else:
        raise UsageError(f"model must be a model folder path or a loaded plmkit model, got {type(model_or_path).__name__}")
    if device is not None:
        model.to(device)
    if tokenizer is None and needs_tokenizer and not has_word_hook(model):
        folder = getattr(model, "loaded_from", None)
        if folder is None:
            raise UsageError("this model was not loaded from a folder, so its tokenizer is unknown; pass "
                             "tokenizer=plmkit.load_tokenizer(DIR)")
        tokenizer = load_tokenizer(folder)
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer is not None and isinstance(model, TokenModel) and model.input_kind == "tokens":
        if tokenizer.vocab_size > model.config.vocab_size:
            raise CheckpointError(
                f"the tokenizer has {tokenizer.vocab_size} ids but the model {name} only {model.config.vocab_size}; "
                "they do not belong together — use the tokenizer saved with the model")
    return model, tokenizer, name


def has_word_hook(model: nn.Module) -> bool:
    """True for models that take words, not sub-word ids: a plmkit model whose ``input_kind`` is "words" (ELMo,
    the BiLSTM task models), or any model with ``word_layer_states`` / ``sequence_log_probs`` (models/protocol.py)."""
    if isinstance(model, PlmkitModel):
        return model.input_kind == "words"
    return isinstance(model, (_WordStates, _SequenceScorer))


def word_layer_states(model: nn.Module, sentences: list[list[str]]) -> list[torch.Tensor]:
    """Every layer's state per word for a word-level model: one (layers, n_words, dim) tensor per sentence."""
    if not isinstance(model, _WordStates):
        raise UsageError(f"{type(model).__name__} takes words but has no word_layer_states method, so it cannot "
                         "give word vectors")
    return list(model.word_layer_states(sentences))


@contextlib.contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; the model's previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def max_positions(model: nn.Module, max_length: int | None) -> int:
    """The longest row a model takes: its position table, or ``max_length`` when smaller."""
    limit = model.config.positions_available if isinstance(model, TokenModel) else None
    if max_length is not None:
        if max_length < 4:
            raise UsageError(f"--max-length {max_length} is too small; give at least 4 tokens")
        check_max_length(model, max_length)
        return max_length
    return int(limit) if limit is not None else 512


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special ids the tokenizer puts before and after a single sentence ([CLS] … [SEP], <s> … </s>)."""
    cached = getattr(tokenizer, "_plmkit_frame", None)
    if cached is not None:
        return cached
    probe = "hello world"
    bare = tokenizer.encode(probe, add_special_tokens=False).ids
    full = tokenizer.encode(probe, add_special_tokens=True).ids
    frame = ([], [])
    for p in range(len(full) - len(bare) + 1):
        if full[p:p + len(bare)] == bare:
            frame = (list(full[:p]), list(full[p + len(bare):]))
            break
    tokenizer._plmkit_frame = frame
    return frame


# ----------------------------------------------------------------------------- words
def split_words(sentence: str | Sequence[str]) -> tuple[str, list[str], list[tuple[int, int]]]:
    """``(text, words, char spans)``: a string is split on whitespace; a list is joined with spaces."""
    if isinstance(sentence, str):
        matches = list(re.finditer(r"\S+", sentence))
        return sentence, [m.group() for m in matches], [m.span() for m in matches]
    words = [str(w) for w in sentence]
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), words, spans


def token_word_ids(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]], text_len: int) -> np.ndarray:
    """For each token, the index of the word its first non-space character falls in (-1 if none).

    A token that is only whitespace (byte-level BPE's lone ``Ġ``, SentencePiece's lone ``▁``)
    belongs to the word right after it, as in transformers' ``word_ids()``.
    """
    char_word = np.full(text_len + 1, -1, dtype=np.int64)
    for w, (s, e) in enumerate(spans):
        char_word[s:e] = w
    out = np.full(len(offsets), -1, dtype=np.int64)
    for t, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        hits = char_word[s:e]
        hits = hits[hits >= 0]
        if hits.size:
            out[t] = hits[0]
        elif e <= text_len:
            out[t] = char_word[e]
    return out


# ----------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Window:
    """Tokens ``[start, end)`` are fed to the model; outputs for ``[own_start, own_end)`` are kept."""

    start: int
    end: int
    own_start: int
    own_end: int


def plan_windows(n: int, size: int, stride: int | None = None, centered: bool = True) -> list[Window]:
    """Overlapping windows over ``n`` tokens, each token owned by exactly one window.

    ``centered=True`` (bidirectional encoders): a token belongs to the window where it sits nearest
    the middle. ``centered=False`` (causal LMs): a token belongs to the first window that reaches
    it, so it keeps at least ``size - stride`` tokens of left context (the strided evaluation in
    Hugging Face's perplexity guide).
    """
    if size < 1:
        raise UsageError(f"window size must be positive, got {size}")
    if n <= size:
        return [Window(0, n, 0, n)]
    stride = stride if stride is not None else max(1, size // 2)
    if not 1 <= stride < size:
        raise UsageError(f"stride must be between 1 and the window size - 1 ({size - 1}), got {stride}")
    starts = list(range(0, n - size, stride)) + [n - size]
    windows = []
    for k, s in enumerate(starts):
        if centered:
            lo = 0 if k == 0 else (starts[k - 1] + s + size) // 2
            hi = n if k == len(starts) - 1 else (s + starts[k + 1] + size) // 2
        else:
            lo = 0 if k == 0 else starts[k - 1] + size
            hi = s + size
        windows.append(Window(s, s + size, lo, hi))
    return windows


# ----------------------------------------------------------------------------- layer choice
def parse_layers(spec: str | int | Sequence[int]) -> int | list[int] | str:
    """``-1`` / ``"-1"`` → -1; ``"0,4,8"`` / ``[0, 4, 8]`` → [0, 4, 8]; ``"mix"`` → "mix"."""
    if isinstance(spec, (int, np.integer)):
        return int(spec)
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("mix", "scalar-mix"):
            return "mix"
        try:
            parts = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise UsageError(f"--layers {spec!r}: give one layer index (-1), a comma-separated list (0,4,8) "
                             "or 'mix'") from None
        if not parts:
            raise UsageError("--layers is empty; give -1, a list like 0,4,8, or mix")
        return parts[0] if len(parts) == 1 and "," not in text else parts
    parts = [int(p) for p in spec]
    if not parts:
        raise UsageError("layers is an empty list")
    return parts


def num_layer_states(model: nn.Module) -> int | None:
    """How many hidden states the model reports (embeddings + one per layer), if known up front."""
    return model.num_layer_states if isinstance(model, PlmkitModel) else None


class LayerSelection:
    """One layer, several layers concatenated, or a scalar mix of all hidden states."""

    def __init__(self, layers: str | int | Sequence[int], num_states: int | None = None,
                 mix_weights: Sequence[float] | None = None):
        self.spec = parse_layers(layers)
        self.raw_mix = None if mix_weights is None else [float(w) for w in mix_weights]
        if self.raw_mix is not None and self.spec != "mix":
            raise UsageError("mix weights were given but layers is not 'mix'; use --layers mix --mix-weights ...")
        if self.raw_mix is not None and (any(w < 0 for w in self.raw_mix) or sum(self.raw_mix) <= 0):
            raise UsageError(f"mix weights must be non-negative and not all zero, got {self.raw_mix}")
        self.num_states: int | None = None
        if num_states is not None:
            self.bind(num_states)

    def bind(self, num_states: int) -> None:
        """Check the indices against the model's number of hidden states."""
        if self.num_states == num_states:
            return
        if self.spec == "mix":
            if self.raw_mix is not None and len(self.raw_mix) != num_states:
                raise UsageError(f"{len(self.raw_mix)} mix weights given but the model has {num_states} hidden "
                                 f"states (embeddings + {num_states - 1} layers); give one weight per state")
        else:
            for i in ([self.spec] if isinstance(self.spec, int) else self.spec):
                if not -num_states <= i < num_states:
                    raise UsageError(
                        f"layer {i} does not exist: the model has {num_states} hidden states — 0 is the embedding "
                        f"output, 1..{num_states - 1} the layers; valid indices are {-num_states}..{num_states - 1}")
        self.num_states = num_states

    @property
    def mix_weights(self) -> list[float] | None:
        if self.spec != "mix" or self.num_states is None:
            return None
        w = self.raw_mix or [1.0] * self.num_states
        total = sum(w)
        return [x / total for x in w]

    @property
    def indices(self) -> list[int]:
        """Hidden-state indices used (non-negative)."""
        assert self.num_states is not None
        if self.spec == "mix":
            return list(range(self.num_states))
        picked = [self.spec] if isinstance(self.spec, int) else self.spec
        return [i % self.num_states for i in picked]

    def apply(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """``states``: one (..., D) tensor per hidden state → (..., D') selected / concatenated / mixed."""
        self.bind(len(states))
        if self.spec == "mix":
            w = self.mix_weights
            out = states[0] * w[0]
            for j in range(1, len(states)):
                out = out + states[j] * w[j]
            return out
        picked = [states[i] for i in self.indices]
        return picked[0] if len(picked) == 1 else torch.cat(picked, dim=-1)

    def describe(self) -> str:
        if self.spec == "mix":
            return "mix" if self.raw_mix is None else "mix:" + ",".join(f"{w:g}" for w in self.raw_mix)
        return str(self.spec) if isinstance(self.spec, int) else ",".join(map(str, self.spec))


# ----------------------------------------------------------------------------- the embedder
@dataclass
class TokenVectors:
    """The sub-token view of one sentence: tokens (no specials), their word index, their vectors."""

    tokens: list[str]
    word_ids: list[int]  # -1 for a token outside every word
    vectors: np.ndarray  # (n_tokens, dim) float32
    words: list[str]


class Embedder:
    """Contextual vectors per word (``embed``) or per sub-token (``embed_tokens``).

    >>> emb = plmkit.Embedder("path/to/model", layers=-1, pool="first")
    >>> vecs = emb.embed(["The cat sat .", ["pre", "tokenized", "words"]])
    >>> vecs[0].shape   # (4, hidden)
    """

    def __init__(self, model_or_path: Any, tokenizer: Any = None, layers: str | int | Sequence[int] = -1,
                 pool: str = "first", mix_weights: Sequence[float] | None = None, batch_size: int = 32,
                 max_length: int | None = None, stride: int | None = None,
                 device: str | torch.device | None = None):
        if pool not in POOLS:
            raise UsageError(f"unknown pooling {pool!r}; choose one of: {', '.join(POOLS)}")
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        self.model, self.tokenizer, self.name = resolve_model(model_or_path, tokenizer, device)
        self.word_level = has_word_hook(self.model)
        self.pool = pool
        self.batch_size = batch_size
        self.selection = LayerSelection(layers, num_layer_states(self.model), mix_weights)
        self.causal = isinstance(self.model, PlmkitModel) and self.model.lm_kind == "causal"
        self.max_length = max_positions(self.model, max_length) if not self.word_level else None
        if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int) or stride < 1):
            raise UsageError(f"stride must be a whole number of tokens >= 1, got {stride!r}")
        self.stride = stride
        self._dim: int | None = None

    # ------------------------------------------------------------------ public API
    @property
    def dim(self) -> int:
        """Width of each output vector (runs the model once on a tiny input if not yet known)."""
        if self._dim is None:
            self.embed(["a"])
        assert self._dim is not None
        return self._dim

    def embed(self, sentences: Sequence[str | Sequence[str]]) -> list[np.ndarray]:
        """One float32 array (n_words, dim) per sentence; words = whitespace split or the given list."""
        if isinstance(sentences, str):
            raise UsageError("embed() takes a list of sentences; wrap a single sentence in a list")
        if self.word_level:
            return [self._to_numpy(v) for v in self._word_hook_vectors(sentences)]
        out = []
        for tv, word_ids, vectors in self._token_vectors(sentences):
            out.append(self._to_numpy(self._pool(vectors, word_ids, len(tv.words))))
        return out

    def embed_tokens(self, sentences: Sequence[str | Sequence[str]]) -> list[TokenVectors]:
        """Sub-token vectors (the selected layers, no pooling), without special tokens."""
        if isinstance(sentences, str):
            raise UsageError("embed_tokens() takes a list of sentences; wrap a single sentence in a list")
        if self.word_level:
            out = []
            for s, v in zip(sentences, self._word_hook_vectors(sentences)):
                _, words, _ = split_words(s)
                out.append(TokenVectors(list(words), list(range(len(words))), self._to_numpy(v), list(words)))
            return out
        result = []
        for tv, _, vectors in self._token_vectors(sentences):
            tv.vectors = self._to_numpy(vectors)
            result.append(tv)
        return result

    def describe(self) -> dict[str, Any]:
        """What produced the vectors (kept in the .safetensors metadata)."""
        return {"model": self.name, "layers": self.selection.describe(), "pool": self.pool,
                "mix_weights": self.selection.mix_weights,
                "layer_combination": ("scalar mix" if self.selection.spec == "mix" else
                                      "concatenated" if isinstance(self.selection.spec, list) else "single")}

    # ------------------------------------------------------------------ internals
    def _to_numpy(self, v: torch.Tensor) -> np.ndarray:
        arr = v.detach().to("cpu", torch.float32).numpy()
        self._dim = arr.shape[-1] if arr.ndim == 2 else self._dim
        return arr

    def _word_hook_vectors(self, sentences) -> list[torch.Tensor]:
        word_lists = [split_words(s)[1] for s in sentences]
        out: list[torch.Tensor] = []
        with inference(self.model):
            for i in range(0, len(word_lists), self.batch_size):
                chunk = word_lists[i:i + self.batch_size]
                states = word_layer_states(self.model, chunk)  # each (S, n_words, D)
                for words, st in zip(chunk, states):
                    if st.shape[1] != len(words):
                        raise RuntimeError(f"word_layer_states gave {st.shape[1]} vectors for {len(words)} words")
                    out.append(self.selection.apply(list(st.float().unbind(0))))
        return out

    def _pool(self, vectors: torch.Tensor, word_ids: torch.Tensor, n_words: int) -> torch.Tensor:
        """(n_tokens, D) sub-token vectors → (n_words, D)."""
        D = vectors.shape[-1]
        out = torch.zeros(n_words, D, dtype=vectors.dtype)
        keep = word_ids >= 0
        ids, vec = word_ids[keep], vectors[keep]
        counts = torch.bincount(ids, minlength=n_words)  # (n_words,)
        if self.pool == "mean":
            out.index_add_(0, ids, vec)
            out = out / counts.clamp(min=1).unsqueeze(-1).to(out.dtype)
        else:
            # the earliest sub-token position of each word
            pos = torch.arange(ids.numel())
            first = torch.full((n_words,), ids.numel(), dtype=torch.long).scatter_reduce(0, ids, pos, reduce="amin")
            has = counts > 0
            out[has] = vec[first[has]]
        empty = int((counts == 0).sum())
        if empty:
            warnings.warn(f"{empty} word(s) produced no sub-tokens (the tokenizer's normalizer removed them); "
                          "their vectors are zeros", stacklevel=3)
        return out

    def _token_vectors(self, sentences) -> list[tuple[TokenVectors, torch.Tensor, torch.Tensor]]:
        """Per sentence: token info, token→word ids (n_tokens,), vectors (n_tokens, D) on the CPU."""
        tok = self.tokenizer
        prefix, suffix = special_frame(tok)
        size = self.max_length - len(prefix) - len(suffix)
        infos, rows = [], []  # rows: (sentence, window, ids)
        for si, sentence in enumerate(sentences):
            text, words, spans = split_words(sentence)
            enc = tok.encode(text, add_special_tokens=False)
            ids = list(enc.ids)
            wid = token_word_ids(enc.offsets, spans, len(text))
            infos.append((TokenVectors(list(enc.tokens), wid.tolist(), np.zeros((0, 0), np.float32), words),
                          torch.from_numpy(wid), len(ids)))
            for w in plan_windows(len(ids), size, self.stride, centered=not self.causal):
                rows.append((si, w, prefix + ids[w.start:w.end] + suffix))
        outputs: list[torch.Tensor | None] = [None] * len(infos)
        device = model_device(self.model)
        pad = pad_token_id(self.tokenizer, self.model)
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][2]))
        with inference(self.model):
            for b in range(0, len(order), self.batch_size):
                batch = [rows[r] for r in order[b:b + self.batch_size]]
                T = max(len(r[2]) for r in batch)
                ids = torch.full((len(batch), T), pad, dtype=torch.long)
                mask = torch.zeros(len(batch), T, dtype=torch.long)
                for i, (_, _, r) in enumerate(batch):
                    ids[i, :len(r)] = torch.tensor(r)
                    mask[i, :len(r)] = 1
                states = self.model.encode(ids.to(device), mask.to(device))  # (L+1) × (B, T, H)
                picked = self.selection.apply(states).float().cpu()  # (B, T, D)
                for i, (si, w, _) in enumerate(batch):
                    n_tok = infos[si][2]
                    if outputs[si] is None:
                        outputs[si] = torch.zeros(n_tok, picked.shape[-1])
                    lo = len(prefix) + w.own_start - w.start
                    outputs[si][w.own_start:w.own_end] = picked[i, lo:lo + w.own_end - w.own_start]
        result = []
        for si, (tv, wid, n_tok) in enumerate(infos):
            vec = outputs[si]
            if vec is None:  # no tokens at all
                vec = torch.zeros(0, self._output_dim())
            result.append((tv, wid, vec))
        return result

    def _output_dim(self) -> int:
        if self._dim is not None:
            return self._dim
        H = self.model.config.hidden_size
        self.selection.bind(self.model.config.num_hidden_layers + 1)
        return H if self.selection.spec == "mix" else H * len(self.selection.indices)


# ----------------------------------------------------------------------------- writers
def infer_format(path: str | os.PathLike, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise UsageError(f"cannot tell the output format from {str(path)!r}; name the file .npy, .safetensors or "
                     ".jsonl, or pass --format npy|safetensors|jsonl")


def _reserve(f, size: int) -> None:
    """Reserve ``size`` bytes for ``f`` now, so that a disk too small fails at once (ENOSPC), not at the end."""
    try:
        os.posix_fallocate(f.fileno(), 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise OSError(e.errno, os.strerror(e.errno), str(f.name)) from None
        # EOPNOTSUPP/EINVAL: the file system cannot reserve; the sequential writes still report a full disk
    except AttributeError:  # no posix_fallocate on this platform
        pass


def is_vector_file(path: Path, fmt: str) -> bool:
    """Whether ``path`` is a vector file as ``plmkit embed`` writes it (so --overwrite may replace it)."""
    try:
        if fmt == "npy":
            if path.name.endswith(".offsets.npy"):
                return is_vector_file(path.with_name(path.name[:-len(".offsets.npy")] + ".npy"), fmt)
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            return dtype == np.dtype("<f4") and len(shape) == 2 and offsets_path(path).is_file()
        if fmt == "safetensors":
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                if not 0 < n < 1 << 24:
                    return False
                header = json.loads(f.read(n))
            return {"vectors", "offsets"} <= set(header) and "layers" in header.get("__metadata__", {})
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        return first == "" or set(json.loads(first)) == {"words", "vectors"}
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def offsets_path(path: str | os.PathLike) -> Path:
    """The sentence index written beside a ``.npy`` output: ``vectors.npy`` → ``vectors.offsets.npy``."""
    p = Path(path)
    return p.with_name((p.name[:-4] if p.name.endswith(".npy") else p.name) + ".offsets.npy")


class VectorWriter:
    """Streams word vectors to disk sentence by sentence; nothing is left behind if it fails.

    * ``npy``: one float32 array (total_words, dim) in FILE and the sentence offsets (int64,
      num_sentences + 1) in ``FILE.offsets.npy``; sentence i is ``vectors[off[i]:off[i+1]]``.
    * ``safetensors``: tensors ``vectors`` (total_words, dim) and ``offsets`` in one file; the
      metadata holds the model, layers and pooling.
    * ``jsonl``: one ``{"words": [...], "vectors": [[...], ...]}`` object per sentence.

    Outputs are written to temporary files in the target folder and renamed at the end.
    """

    def __init__(self, path: str | os.PathLike, fmt: str, sentence_lengths: Sequence[int],
                 metadata: dict[str, Any], overwrite: bool = False, inputs: Sequence[Any] = ()):
        self.path = Path(path)
        self.fmt = fmt
        self.lengths = [int(n) for n in sentence_lengths]
        self.metadata = metadata
        self.targets = [self.path] + ([offsets_path(self.path)] if fmt == "npy" else [])
        # Locked, checked against the inputs, written beside the targets and swapped in by close() (_files).
        self._stack = contextlib.ExitStack()
        self.tmp = self._stack.enter_context(output_files(
            self.targets, "vector file", overwrite=overwrite, is_ours=lambda p: is_vector_file(p, fmt),
            inputs=inputs))
        self.total = sum(self.lengths)
        self.count = 0  # sentences written
        self.row = 0  # words written
        self._file = None
        self.dim: int | None = None

    def _open(self, dim: int) -> None:
        self.dim = dim
        if self.fmt == "jsonl":
            self._file = open(self.tmp[0], "w", encoding="utf-8")
            return
        # Written sequentially, never through a memory map: a full disk is an OSError (ENOSPC) that is
        # reported, not a SIGBUS. The space is reserved up front where the file system allows it.
        self._file = open(self.tmp[0], "wb")
        if self.fmt == "npy":
            header = {"descr": "<f4", "fortran_order": False, "shape": (self.total, dim)}
            np.lib.format.write_array_header_1_0(self._file, header)
            size = self._file.tell() + self.total * dim * 4
        else:
            self._safetensors_header(dim)
            size = self._file.tell() + self.total * dim * 4 + (len(self.lengths) + 1) * 8
        _reserve(self._file, size)

    def _safetensors_header(self, dim: int) -> None:
        # safetensors layout: u64 header size, JSON header, then raw little-endian tensor bytes.
        n_vec = self.total * dim * 4
        n_off = (len(self.lengths) + 1) * 8
        meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in self.metadata.items()}
        header = {"__metadata__": meta,
                  "vectors": {"dtype": "F32", "shape": [self.total, dim], "data_offsets": [0, n_vec]},
                  "offsets": {"dtype": "I64", "shape": [len(self.lengths) + 1], "data_offsets": [n_vec, n_vec + n_off]}}
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self._file.write(len(raw).to_bytes(8, "little"))
        self._file.write(raw)

    def write(self, words: Sequence[str], vectors: np.ndarray) -> None:
        if self.count >= len(self.lengths):
            raise RuntimeError("more sentences written than announced")
        n = self.lengths[self.count]
        if vectors.shape[0] != n:
            raise RuntimeError(f"sentence {self.count}: {vectors.shape[0]} vectors for {n} words")
        if self.dim is None:
            self._open(int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else 0)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.fmt in ("npy", "safetensors"):
            self._file.write(vectors.astype("<f4").tobytes())
        else:
            self._file.write(json.dumps({"words": list(words), "vectors": vectors.tolist()}, ensure_ascii=False) + "\n")
        self.row += n
        self.count += 1

    def close(self, dim_if_empty: int = 0) -> list[Path]:
        """Finish and move the files into place; returns the paths written."""
        if self.count != len(self.lengths):
            raise RuntimeError(f"only {self.count} of {len(self.lengths)} sentences were written")
        if self.dim is None:
            self._open(dim_if_empty)
        offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        if self.fmt == "npy":
            self._file.close()
            with open(self.tmp[1], "wb") as f:  # a file handle: np.save would append ".npy" to a name
                np.save(f, offsets)
        elif self.fmt == "safetensors":
            self._file.write(offsets.astype("<i8").tobytes())
            self._file.close()
        else:
            self._file.close()
        self._stack.close()  # moves the files into place
        return self.targets

    def abort(self) -> None:
        """Remove the temporary files (after an error)."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)

@runtime_checkable
class _WordStates(Protocol):
    """A word-level model that gives word vectors (plmkit's ElmoModel, or any model with this method)."""

    def word_layer_states(self, sentences: list[list[str]]) -> Sequence[torch.Tensor]: ...


@runtime_checkable
class _SequenceScorer(Protocol):
    def sequence_log_probs(self, sentences: list[list[str]], batch_size: int = 32) -> list[dict[str, Any]]: ...
