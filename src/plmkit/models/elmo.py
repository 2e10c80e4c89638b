"""ELMo: a character-aware bidirectional LSTM language model and its scalar-mixed layer states.

Follows Peters et al. (2018), "Deep contextualized word representations", and the reference
implementations (allenai/bilm-tf for training, allennlp's ``Elmo`` for downstream use).

What changes relative to BERT: nothing is shared but the tokenizer, data, trainer, checkpoint
folder shape and CLI (DESIGN §1). Instead of a Transformer encoder over sub-word embeddings:

* **Token encoder** — each word is spelled as UTF-8 bytes plus begin/end-of-word markers (ELMo's
  262 character ids, at most 50 per word); character embeddings → convolutions of several widths
  with max-pooling over the characters → highway layers → a linear projection to P.
* **Language model** — L = 2 layers of LSTMs with a projection (LSTMP: C cells, output P), one
  stack reading left to right (the forward LM) and one reading right to left (the backward LM),
  with a residual connection between the layers. Both LMs share the token encoder and the word-level
  softmax, which is a full softmax, a sampled softmax (bilm-tf's choice for its 793k-word vocabulary)
  or an adaptive softmax (Grave et al., 2017) for large vocabularies.
* **Objective** — the sum of the forward LM's log p(x_t | x_<t) and the backward LM's
  log p(x_t | x_>t); ``loss`` is the mean of the two NLLs (per predicted word).
* **Use** — :class:`ScalarMix` forms ELMo_k = γ Σ_j softmax(s)_j h_k,j over the L + 1 layer states
  (layer 0 is the token encoding, duplicated to 2P as in the paper); :class:`Elmo` wraps a frozen
  biLM plus the task-learned mix, to concatenate to a task model's own word embeddings.

Simplifications relative to bilm-tf (documented, deliberate): no cell/projection clipping (it keeps
``torch.nn.LSTM``'s fused kernels), LSTM state is not carried across batches (each window starts
from zeros), and the sampled softmax draws negatives with replacement (log-uniform, with the usual
log-expected-count correction and removal of accidental hits).

A model folder is the plmkit/Hugging Face shape (DESIGN §3): ``config.json`` with
``model_type: "elmo"`` and the :class:`ElmoConfig` fields, ``model.safetensors``,
``elmo_vocab.txt`` (the softmax's words, one per line, in id order) and, when one was given, the
word-level tokenizer files.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# ElmoConfig lives in plmkit.config with every other config; its names stay importable from here.
from ..config import ELMO_RANGES, ElmoConfig, check_fits, elmo_config_from_preset, format_bytes  # noqa: F401
from ..errors import CheckpointError, ConfigError, UsageError
from .dropout import Dropout
from .folder import (CONFIG_NAME, WEIGHTS_NAME, check_tensor, header_state, load_state, read_config, read_word_list,
                     write_config, write_weights, write_word_list)
from .model import ModelOutput
from .protocol import LABELLED, LossField, count_labelled

# torch's CPU LSTM with proj_size falls back from oneDNN to its own (correct) kernel and says so on
# every call; the message is not actionable for users.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")

# ----------------------------------------------------------------------------- characters
# ELMo's character ids (allennlp ELMoCharacterMapper / bilm-tf UnicodeCharsVocabulary): the 256
# UTF-8 byte values, then begin/end-of-sentence, begin/end-of-word and padding characters; every
# id is shifted by one so that 0 marks a padded *word* position (its embedding row is zero).
BOS_CHAR, EOS_CHAR, BOW_CHAR, EOW_CHAR, PAD_CHAR = 256, 257, 258, 259, 260
CHAR_VOCAB_SIZE = 262
IGNORE_INDEX = -100
VOCAB_NAME = "elmo_vocab.txt"
# softmax="auto": a full softmax up to this many words, an adaptive softmax above it.
AUTO_FULL_SOFTMAX_MAX_VOCAB = 20_000


def word_to_char_ids(word: str, max_chars: int = 50) -> list[int]:
    """ELMo character ids of one word: ``[BOW, bytes..., EOW, PAD, ...]`` (+1), ``max_chars`` long.

    Words longer than ``max_chars - 2`` UTF-8 bytes are cut, as in allennlp and bilm-tf.
    """
    data = word.encode("utf-8", "ignore")[: max_chars - 2]
    ids = [PAD_CHAR] * max_chars
    ids[0] = BOW_CHAR
    for k, b in enumerate(data, start=1):
        ids[k] = b
    ids[len(data) + 1] = EOW_CHAR
    return [c + 1 for c in ids]


def _marker_char_ids(char: int, max_chars: int) -> list[int]:
    ids = [PAD_CHAR] * max_chars
    ids[0], ids[1], ids[2] = BOW_CHAR, char, EOW_CHAR
    return [c + 1 for c in ids]


def sentence_marker_char_ids(max_chars: int = 50) -> tuple[list[int], list[int]]:
    """The character ids of the begin- and end-of-sentence tokens (``<S>`` / ``</S>`` in bilm-tf)."""
    return _marker_char_ids(BOS_CHAR, max_chars), _marker_char_ids(EOS_CHAR, max_chars)


def batch_to_char_ids(sentences: Sequence[Sequence[str]], max_chars: int = 50) -> torch.Tensor:
    """Right-padded character ids (B, T, max_chars) of a batch of tokenized sentences; 0 = no word."""
    T = max((len(s) for s in sentences), default=0)
    out = torch.zeros(len(sentences), T, max_chars, dtype=torch.long)
    for i, sent in enumerate(sentences):
        if len(sent):
            out[i, : len(sent)] = torch.tensor([word_to_char_ids(w, max_chars) for w in sent])
    return out


def add_sentence_boundaries(ids: torch.Tensor, mask: torch.Tensor, bos: torch.Tensor,
                            eos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Wrap each right-padded row in ``bos`` … ``eos`` (allennlp's add_sentence_boundary_token_ids).

    ids (B, T, *rest), mask (B, T); bos / eos broadcast to ``rest``. Returns (B, T + 2, *rest) and
    the new mask (B, T + 2).
    """
    B, T = mask.shape
    mask = mask.bool()
    lengths = mask.sum(1)  # (B,)
    out = ids.new_zeros((B, T + 2, *ids.shape[2:]))
    keep = mask.view(B, T, *([1] * (ids.dim() - 2)))
    out[:, 1 : T + 1] = ids * keep
    out[:, 0] = bos
    out[torch.arange(B, device=ids.device), lengths + 1] = eos
    new_mask = torch.zeros(B, T + 2, dtype=torch.bool, device=mask.device)
    new_mask[:, : T + 2] = torch.arange(T + 2, device=mask.device)[None, :] < (lengths + 2)[:, None]
    return out, new_mask


def remove_sentence_boundaries(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo :func:`add_sentence_boundaries` on states (..., B, T + 2, D) → (..., B, T, D), mask (B, T)."""
    new_mask = mask[:, 2:].bool()  # position t is real iff t + 2 < length + 2
    inner = states[..., 1:-1, :] * new_mask.unsqueeze(-1).to(states.dtype)
    return inner, new_mask


# ----------------------------------------------------------------------------- modules
class Highway(nn.Module):
    """y = g ⊙ x + (1 − g) ⊙ f(W_h x), g = σ(W_g x) (Srivastava et al., 2015; allennlp's layout).

    The gate bias starts at 1 so that each layer initially carries its input through.
    """

    def __init__(self, dim: int, activation: str = "relu"):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * dim)
        self.act = F.relu if activation == "relu" else torch.tanh
        with torch.no_grad():
            self.proj.bias[dim:].fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.proj(x).chunk(2, dim=-1)  # (N, D) each
        g = torch.sigmoid(g)
        return g * x + (1 - g) * self.act(h)


class CharCNNEncoder(nn.Module):
    """Word → vector from its characters: embeddings → multi-width CNN + max-pool → highway → projection."""

    def __init__(self, config: ElmoConfig):
        super().__init__()
        c = config
        self.char_embedding = nn.Embedding(CHAR_VOCAB_SIZE, c.char_embedding_dim, padding_idx=0)
        nn.init.uniform_(self.char_embedding.weight, -1.0, 1.0)  # bilm-tf's init
        with torch.no_grad():
            self.char_embedding.weight[0].zero_()
        self.convs = nn.ModuleList(nn.Conv1d(c.char_embedding_dim, n, kernel_size=w) for w, n in c.filters)
        self.act = F.relu if c.activation == "relu" else torch.tanh
        self.highways = nn.ModuleList(Highway(c.num_filters, c.activation) for _ in range(c.num_highway))
        self.projection = nn.Linear(c.num_filters, c.projection_dim)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """char_ids (..., W) → (..., P)."""
        lead = char_ids.shape[:-1]
        x = self.char_embedding(char_ids.reshape(-1, char_ids.shape[-1]))  # (N, W, E)
        x = x.transpose(1, 2)  # (N, E, W)
        pooled = [self.act(conv(x).amax(dim=-1)) for conv in self.convs]  # each (N, n_filters)
        h = torch.cat(pooled, dim=-1)  # (N, F)
        for hw in self.highways:
            h = hw(h)
        return self.projection(h).view(*lead, -1)  # (..., P)


class ElmoSoftmax(nn.Module):
    """The word-level softmax both LMs share: full, sampled (training only) or adaptive."""

    def __init__(self, config: ElmoConfig, vocab_size: int):
        super().__init__()
        self.kind = config.softmax
        self.vocab_size = vocab_size
        self.num_samples = min(config.num_samples, vocab_size)
        P = config.projection_dim
        if self.kind == "adaptive":
            cutoffs = adaptive_cutoffs(config, vocab_size)
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(P, vocab_size, cutoffs, div_value=config.adaptive_div_value,
                                                          head_bias=True)
        else:
            self.weight = nn.Parameter(torch.randn(vocab_size, P) / math.sqrt(P))  # bilm-tf: N(0, 1/P)
            self.bias = nn.Parameter(torch.zeros(vocab_size))

    def target_log_probs(self, h: torch.Tensor, targets: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Exact log p(target) under the normalised distribution: h (N, P), targets (N,) → (N,)."""
        if self.kind == "adaptive":
            with _no_autocast(h):
                return self.adaptive(h.float(), targets)[0]
        out = []
        for i in range(0, h.shape[0], chunk):
            logits = F.linear(h[i : i + chunk], self.weight, self.bias).float()  # (n, V)
            out.append(logits.gather(1, targets[i : i + chunk, None]).squeeze(1) - logits.logsumexp(-1))
        return torch.cat(out) if out else h.new_zeros(0)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """Full log-distribution over the vocabulary: h (..., P) → (..., V)."""
        if self.kind == "adaptive":
            with _no_autocast(h):
                return self.adaptive.log_prob(h.reshape(-1, h.shape[-1]).float()).view(*h.shape[:-1], -1)
        return F.linear(h, self.weight, self.bias).float().log_softmax(-1)

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean NLL of targets (N,) given h (N, P); a sampled estimate while training with softmax=sampled."""
        if h.shape[0] == 0:
            return h.sum() * 0.0
        if self.kind == "sampled" and self.training:
            return self._sampled_loss(h, targets)
        if self.kind == "adaptive":
            with _no_autocast(h):
                return self.adaptive(h.float(), targets)[1]
        return F.cross_entropy(F.linear(h, self.weight, self.bias).float(), targets)

    def _log_q(self, ids: torch.Tensor) -> torch.Tensor:
        """log of the log-uniform (Zipfian) sampling probability of ids (frequency-sorted vocabulary)."""
        ids = ids.double()
        q = (torch.log(ids + 2) - torch.log(ids + 1)) / math.log(self.vocab_size + 1)
        return q.log().float()

    def _sampled_loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # Jean et al. (2015) / TensorFlow's sampled_softmax_loss: S negatives shared by the batch,
        # logits corrected by log(expected count); a negative equal to the target is removed.
        S, V = self.num_samples, self.vocab_size
        u = torch.rand(S, device=h.device, dtype=torch.float64)
        samples = (torch.exp(u * math.log(V + 1)) - 1).floor().long().clamp_(0, V - 1)  # (S,)
        log_count = math.log(S)
        true_logits = (h * self.weight[targets]).sum(-1) + self.bias[targets]  # (N,)
        true_logits = true_logits.float() - (self._log_q(targets) + log_count)
        neg_logits = F.linear(h, self.weight[samples], self.bias[samples]).float()  # (N, S)
        neg_logits = neg_logits - (self._log_q(samples) + log_count)[None, :]
        neg_logits = neg_logits.masked_fill(samples[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([true_logits[:, None], neg_logits], dim=1)  # (N, 1 + S)
        return F.cross_entropy(logits, torch.zeros_like(targets))


def _no_autocast(h: torch.Tensor):
    """AdaptiveLogSoftmaxWithLoss mixes dtypes under autocast (index_copy_ of bf16 into fp32): run it in fp32."""
    return torch.autocast(device_type=h.device.type, enabled=False)


def adaptive_cutoffs(config: ElmoConfig, vocab_size: int) -> list[int]:
    if config.adaptive_cutoffs is not None:
        cuts = list(config.adaptive_cutoffs)
        if cuts[-1] >= vocab_size:
            raise ConfigError(f"ELMo config adaptive_cutoffs {cuts} must all be below the vocabulary size "
                              f"({vocab_size})")
        return cuts
    cuts = [c for c in (2000, 10000, 50000, 200000) if c < vocab_size - 1]
    return cuts or [max(1, vocab_size // 2)]


@dataclass
class ElmoOutput(ModelOutput):
    """What :class:`ElmoModel` returns. ``loss`` = (forward_loss + backward_loss) / 2.

    ``hidden_states`` (when asked for) is the (L + 1, B, T, 2P) tensor of :meth:`ElmoModel.layer_states`.
    """

    forward_loss: torch.Tensor | None = None
    backward_loss: torch.Tensor | None = None
    forward_hidden: torch.Tensor | None = None  # (B, T, P) top forward-LM layer
    backward_hidden: torch.Tensor | None = None  # (B, T, P) top backward-LM layer
    mask: torch.Tensor | None = None  # (B, T) bool


class ElmoModel(nn.Module):
    """The ELMo biLM: ``ElmoModel(config, vocab)`` with ``vocab`` the softmax's words in id order.

    Inputs are word ids (their characters are looked up in a vocabulary → characters buffer, so a
    word-level prepared corpus needs only ``input_ids``) or, for arbitrary text, ``char_ids``
    (B, T, 50) from :func:`batch_to_char_ids` / :meth:`encode_words`.
    """

    def __init__(self, config: ElmoConfig, vocab: Sequence[str]):
        super().__init__()
        vocab = [str(w) for w in vocab]
        if not vocab:
            raise UsageError("ELMo needs a non-empty word vocabulary")
        if len(set(vocab)) != len(vocab):
            dupes = sorted({w for w in vocab if vocab.count(w) > 1})[:5] if len(vocab) < 5000 else []
            raise UsageError(f"the ELMo vocabulary has duplicate words{': ' + ', '.join(map(repr, dupes)) if dupes else ''}")
        if any("\n" in w or "\r" in w for w in vocab):
            raise UsageError("ELMo vocabulary words may not contain line breaks")
        if config.vocab_size is None:
            config = config.replace(vocab_size=len(vocab))
        elif config.vocab_size != len(vocab):
            raise ConfigError(f"ELMo config vocab_size={config.vocab_size} but the vocabulary has {len(vocab)} words")
        if config.softmax == "auto":
            config = config.replace(softmax="full" if len(vocab) <= AUTO_FULL_SOFTMAX_MAX_VOCAB else "adaptive")
        self.config = config
        self.vocab = vocab
        self.word_to_id = {w: i for i, w in enumerate(vocab)}
        self.unk_id = self.word_to_id.get(config.unk_token)
        self.bos_id = self.word_to_id.get(config.bos_token)
        self.eos_id = self.word_to_id.get(config.eos_token)
        self.pad_id = self.word_to_id.get(config.pad_token)
        self.register_buffer("vocab_chars", self._vocab_char_ids(), persistent=False)  # (V, W) int16
        W = config.max_characters_per_token
        bos, eos = sentence_marker_char_ids(W)
        self.register_buffer("bos_chars", torch.tensor(bos), persistent=False)  # (W,)
        self.register_buffer("eos_chars", torch.tensor(eos), persistent=False)  # (W,)

        P, C = config.projection_dim, config.lstm_dim
        self.token_encoder = CharCNNEncoder(config)
        self.forward_layers = nn.ModuleList(
            nn.LSTM(P, C, proj_size=P, batch_first=True) for _ in range(config.num_layers))
        self.backward_layers = nn.ModuleList(
            nn.LSTM(P, C, proj_size=P, batch_first=True) for _ in range(config.num_layers))
        self.dropout = Dropout(config.dropout)
        self.softmax = ElmoSoftmax(config, len(vocab))

    # ------------------------------------------------------------------ vocabulary
    def _vocab_char_ids(self) -> torch.Tensor:
        c = self.config
        W = c.max_characters_per_token
        bos, eos = sentence_marker_char_ids(W)
        rows = []
        for w in self.vocab:
            if w == c.pad_token:
                rows.append([0] * W)
            elif w == c.bos_token:
                rows.append(bos)
            elif w == c.eos_token:
                rows.append(eos)
            else:
                rows.append(word_to_char_ids(w, W))
        return torch.tensor(rows, dtype=torch.int16)

    @classmethod
    def from_tokenizer(cls, config: ElmoConfig, tokenizer) -> "ElmoModel":
        """Build with the vocabulary of a word-level plmkit :class:`~plmkit.Tokenizer`."""
        return cls(config, vocab_from_tokenizer(tokenizer))

    def words_to_ids(self, words: Sequence[str]) -> list[int]:
        """Word ids for the softmax; words outside the vocabulary become the unknown word."""
        if self.unk_id is None:
            missing = [w for w in words if w not in self.word_to_id]
            if missing:
                raise UsageError(f"word {missing[0]!r} is not in the ELMo vocabulary, which has no "
                                 f"{self.config.unk_token!r} token to stand for unknown words")
        return [self.word_to_id.get(w, self.unk_id) for w in words]  # type: ignore[misc]

    def encode_words(self, sentences: Sequence[Sequence[str]],
                     add_boundaries: bool | None = None) -> dict[str, torch.Tensor]:
        """Tensors for new text: ``input_ids`` (word ids, for scoring), ``char_ids`` (the real spelling
        of every word, out-of-vocabulary ones included) and ``attention_mask``.

        ``add_boundaries`` (default: the config's ``sentence_boundaries``) wraps each sentence in
        ``<s>`` … ``</s>``.
        """
        add = self.config.sentence_boundaries if add_boundaries is None else add_boundaries
        if add and (self.bos_id is None or self.eos_id is None):
            raise UsageError(f"the ELMo vocabulary has no {self.config.bos_token!r} / {self.config.eos_token!r} "
                             "tokens; call encode_words(..., add_boundaries=False)")
        W = self.config.max_characters_per_token
        char_ids = batch_to_char_ids(sentences, W)  # (B, T, W)
        B, T = char_ids.shape[:2]
        mask = torch.zeros(B, T, dtype=torch.bool)
        ids = torch.full((B, T), self.pad_id if self.pad_id is not None else 0, dtype=torch.long)
        for i, s in enumerate(sentences):
            mask[i, : len(s)] = True
            if len(s):
                ids[i, : len(s)] = torch.tensor(self.words_to_ids(s))
        if add:
            char_ids, _ = add_sentence_boundaries(char_ids, mask, self.bos_chars.cpu(), self.eos_chars.cpu())
            ids, mask = add_sentence_boundaries(ids, mask, torch.tensor(self.bos_id), torch.tensor(self.eos_id))
        device = self.vocab_chars.device
        return {"input_ids": ids.to(device), "char_ids": char_ids.to(device), "attention_mask": mask.long().to(device)}

    # ------------------------------------------------------------------ encoders
    def encode_tokens(self, input_ids: torch.Tensor | None = None, char_ids: torch.Tensor | None = None,
                      attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Context-independent token vectors (B, T, P) and the mask (B, T) bool."""
        if char_ids is not None:
            if char_ids.dim() != 3 or char_ids.shape[-1] != self.config.max_characters_per_token:
                raise UsageError(f"char_ids must be (batch, length, {self.config.max_characters_per_token}), "
                                 f"got {tuple(char_ids.shape)}")
            x = self.token_encoder(char_ids.long())  # (B, T, P)
            mask = attention_mask.bool() if attention_mask is not None else (char_ids > 0).any(-1)
        elif input_ids is not None:
            if input_ids.dim() != 2:
                raise UsageError(f"input_ids must be (batch, length), got {tuple(input_ids.shape)}")
            # Spell each distinct word once (a batch repeats words a lot), then scatter back.
            uniq, inverse = torch.unique(input_ids, return_inverse=True)  # (U,), (B, T)
            x = self.token_encoder(self.vocab_chars[uniq].long())[inverse]  # (B, T, P)
            mask = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        else:
            raise UsageError("ELMo needs input_ids (word ids) or char_ids (characters)")
        return x, mask

    def _run_lms(self, x: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Both LSTM stacks over token vectors x (B, T, P): per layer (forward (B, T, P), backward (B, T, P))."""
        full = bool(mask.all())
        lengths = mask.sum(1)
        keep = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        outs: list[tuple[torch.Tensor, torch.Tensor]] = []
        fwd_in, bwd_in = x, _reverse(x, lengths, full)  # the backward LM reads each row right to left
        for i, (f_lstm, b_lstm) in enumerate(zip(self.forward_layers, self.backward_layers)):
            f_x, b_x = self.dropout(fwd_in), self.dropout(bwd_in)
            f_out, _ = f_lstm(f_x)  # (B, T, P)
            b_out, _ = b_lstm(b_x)  # (B, T, P), in reversed order
            if self.config.residual and i > 0:
                f_out, b_out = f_out + f_x, b_out + b_x
            fwd_in, bwd_in = f_out, b_out
            outs.append((f_out * keep, _reverse(b_out, lengths, full) * keep))
        return outs

    def layer_states(self, input_ids: torch.Tensor | None = None, char_ids: torch.Tensor | None = None,
                     attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """All layers' biLM states (L + 1, B, T, 2P); layer 0 is the token encoding twice, [x; x].

        Rows are right-padded; padded positions are zero. No sentence markers are added here
        (see :meth:`embed_sentences` and :class:`Elmo`).
        """
        x, mask = self.encode_tokens(input_ids, char_ids, attention_mask)
        layers = self._run_lms(x, mask)
        keep = mask.unsqueeze(-1).to(x.dtype)
        states = [torch.cat([x, x], dim=-1) * keep] + [torch.cat([f, b], dim=-1) for f, b in layers]
        return torch.stack(states)  # (L + 1, B, T, 2P)

    @torch.no_grad()
    def embed_sentences(self, sentences: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer states of tokenized sentences, (L + 1, B, T, 2P), and their mask (B, T).

        Sentence markers are added before and removed after when ``config.sentence_boundaries``.
        """
        batch = self.encode_words(sentences)
        states = self.layer_states(char_ids=batch["char_ids"], attention_mask=batch["attention_mask"])
        mask = batch["attention_mask"].bool()
        if self.config.sentence_boundaries:
            states, mask = remove_sentence_boundaries(states, mask)
        return states, mask

    # ------------------------------------------------------------------ LM
    def forward(self, input_ids: torch.Tensor | None = None, char_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_hidden_states: bool = False, **unused: Any) -> ElmoOutput:
        """Run both LMs. With ``labels`` (B, T) word ids (-100 = not predicted; usually ``labels =
        input_ids``), the forward LM predicts labels[t+1] from positions ≤ t and the backward LM
        predicts labels[t-1] from positions ≥ t."""
        if unused:
            raise UsageError(f"unexpected ELMo input(s): {', '.join(sorted(unused))}")
        x, mask = self.encode_tokens(input_ids, char_ids, attention_mask)
        layers = self._run_lms(x, mask)
        f_top, b_top = layers[-1]
        out = ElmoOutput(forward_hidden=f_top, backward_hidden=b_top, mask=mask)
        if output_hidden_states:
            keep = mask.unsqueeze(-1).to(x.dtype)
            out.hidden_states = torch.stack([torch.cat([x, x], -1) * keep] +  # type: ignore[assignment]
                                            [torch.cat([f, b], -1) for f, b in layers])
        if labels is not None:
            if labels.shape != mask.shape:
                raise UsageError(f"ELMo labels must have the input's shape {tuple(mask.shape)}, got {tuple(labels.shape)}")
            f_tgt, b_tgt = _shifted_targets(labels, mask)
            out.forward_loss = self._direction_loss(self.dropout(f_top[:, :-1]), f_tgt)
            out.backward_loss = self._direction_loss(self.dropout(b_top[:, 1:]), b_tgt)
            out.loss = (out.forward_loss + out.backward_loss) / 2
            out.loss_fields = (LossField("loss", LABELLED, logged=False),  # models/protocol.py
                               LossField("forward_loss", LABELLED, in_loss=False),
                               LossField("backward_loss", LABELLED, in_loss=False))
        return out

    # ------------------------------------------------------------------ loss contract (protocol.py)
    def loss_counts(self, batch: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """The words with a label (not -100): the items both directions' mean losses are over."""
        return {LABELLED: count_labelled(batch)}

    def prepare_training(self, gradient_checkpointing: bool = False) -> None:
        """Nothing to prepare (the LSTMs have no activation checkpointing)."""

    def _direction_loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        where = targets != IGNORE_INDEX  # (B, T-1)
        return self.softmax.loss(h[where], targets[where])

    @torch.no_grad()
    def token_log_probs(self, input_ids: torch.Tensor | None = None, char_ids: torch.Tensor | None = None,
                        attention_mask: torch.Tensor | None = None,
                        targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact per-word log-probabilities under both LMs (chain rule), each (B, T).

        ``forward[:, t] = log p(x_t | x_<t)`` for t ≥ 1 and ``backward[:, t] = log p(x_t | x_>t)`` for
        t < length − 1; positions with no prediction (the first / last word, padding, targets of -100)
        are 0. ``targets`` (word ids) default to ``input_ids``; with ``char_ids`` they are needed.
        """
        if targets is None:
            if input_ids is None:
                raise UsageError("token_log_probs with char_ids needs targets (word ids, e.g. encode_words()['input_ids'])")
            targets = input_ids
        x, mask = self.encode_tokens(input_ids, char_ids, attention_mask)
        f_top, b_top = self._run_lms(x, mask)[-1]
        f_tgt, b_tgt = _shifted_targets(targets, mask)
        fwd = torch.zeros(mask.shape, dtype=torch.float32, device=x.device)
        bwd = torch.zeros_like(fwd)
        for h, tgt, view in ((f_top[:, :-1], f_tgt, fwd[:, 1:]), (b_top[:, 1:], b_tgt, bwd[:, :-1])):
            where = tgt != IGNORE_INDEX
            view[where] = self.softmax.target_log_probs(h[where], tgt[where])
        return fwd, bwd

    # ------------------------------------------------------------------ model protocol (protocol.py)
    input_kind = "words"
    lm_kind = "words"  # scored by its own word-level LM in both directions (sequence_log_probs)

    @property
    def num_layer_states(self) -> int:
        return self.config.num_layers + 1  # the token encoding + each biLSTM layer

    def describe(self) -> dict[str, Any]:
        return {"model_type": self.config.model_type, "task": None, "heads": []}

    def word_layer_states(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Per sentence its words' states (L + 1, n_words, 2P) (:meth:`embed_sentences`; empty sentences too)."""
        out: list[torch.Tensor | None] = [None] * len(sentences)
        filled = [i for i, s in enumerate(sentences) if len(s)]
        if filled:
            states, _ = self.embed_sentences([sentences[i] for i in filled])  # (L+1, B, T, 2P)
            for b, i in enumerate(filled):
                out[i] = states[:, b, :len(sentences[i])]
        S, D = self.config.num_layers + 1, 2 * self.config.projection_dim
        return [t if t is not None else torch.zeros(S, 0, D) for t in out]

    def sequence_log_probs(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[dict[str, Any]]:
        """Per-word log-probs in both directions, in the shape of :class:`plmkit.score.SequenceScorer`."""
        boundaries = bool(self.config.sentence_boundaries)
        out: list[dict[str, Any]] = []
        for i in range(0, len(sentences), batch_size):
            chunk = sentences[i:i + batch_size]
            filled = [s for s in chunk if s]
            if filled:
                batch = self.encode_words(filled)
                fwd, bwd = self.token_log_probs(char_ids=batch["char_ids"], attention_mask=batch["attention_mask"],
                                                targets=batch["input_ids"])  # (B, T) each
            k = 0
            for s in chunk:
                n = len(s)
                if n == 0:
                    out.append({"forward": torch.zeros(0), "backward": torch.zeros(0), "tokens": []})
                    continue
                f, b = fwd[k].float().cpu(), bwd[k].float().cpu()
                k += 1
                if boundaries:  # <s> w_1 … w_n </s>: every word, given <s> / </s>
                    out.append({"forward": f[1:n + 1], "backward": b[1:n + 1], "tokens": list(s),
                                "conditioned_on": f"{self.config.bos_token} (forward) / {self.config.eos_token} (backward)"})
                else:  # w_1 … w_n: the forward LM cannot score w_1, the backward LM cannot score w_n
                    out.append({"forward": f[1:n], "backward": b[:n - 1], "tokens": list(s[1:]),
                                "backward_tokens": list(s[:-1])})
        return out

    # ------------------------------------------------------------------ misc
    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Parameters; ``exclude_embeddings`` leaves out the softmax (the paper's 93.6M excludes it)."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= sum(p.numel() for p in self.softmax.parameters())
        return n

    def save_pretrained(self, path: str | Path, tokenizer=None, extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors``, ``elmo_vocab.txt`` (+ the tokenizer's files)."""
        return save_elmo(self, path, tokenizer=tokenizer, extra=extra)


def _shifted_targets(labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of the forward LM (labels[t+1] read at t) and backward LM (labels[t-1] read at t), (B, T-1)
    each, with -100 wherever the target or the position that predicts it is padding."""
    labels = labels.masked_fill(~mask, IGNORE_INDEX)
    f_tgt = labels[:, 1:].masked_fill(~mask[:, :-1], IGNORE_INDEX)  # read at positions 0 … T-2
    b_tgt = labels[:, :-1].masked_fill(~mask[:, 1:], IGNORE_INDEX)  # read at positions 1 … T-1
    return f_tgt, b_tgt


def _reverse(x: torch.Tensor, lengths: torch.Tensor, full: bool) -> torch.Tensor:
    """Reverse each right-padded row of x (B, T, D) within its length; padding stays at the end."""
    if full:
        return x.flip(1)
    T = x.shape[1]
    idx = torch.arange(T, device=x.device)[None, :]  # (1, T)
    rev = torch.where(idx < lengths[:, None], lengths[:, None] - 1 - idx, idx)  # (B, T)
    return x.gather(1, rev.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def vocab_from_tokenizer(tokenizer) -> list[str]:
    """The words of a word-level tokenizer in id order (ids must run 0 … V−1)."""
    vocab = tokenizer.get_vocab()
    words = [None] * len(vocab)
    for w, i in vocab.items():
        if not 0 <= i < len(words) or words[i] is not None:
            raise UsageError("the tokenizer's ids are not 0 … V−1 without gaps; ELMo needs a plain word vocabulary "
                             "(plmkit prepare --word-level)")
        words[i] = w
    kind = getattr(tokenizer, "kind", "wordlevel")
    if kind not in ("wordlevel", "unknown"):
        raise UsageError(f"ELMo predicts whole words, but this tokenizer is {kind}; prepare the corpus with "
                         "plmkit prepare --word-level")
    return words  # type: ignore[return-value]


# ----------------------------------------------------------------------------- downstream use
class ScalarMix(nn.Module):
    """ELMo_k = γ Σ_j softmax(s)_j h_k,j over the layers (allennlp's ScalarMix).

    With ``layer_norm=True`` each layer is first normalised by the mean and variance of all its
    unmasked elements (allennlp's ``do_layer_norm``), which needs the mask.
    """

    def __init__(self, num_layers: int, layer_norm: bool = False, trainable: bool = True):
        super().__init__()
        self.layer_norm = layer_norm
        self.scalars = nn.Parameter(torch.zeros(num_layers), requires_grad=trainable)  # s: uniform at start
        self.gamma = nn.Parameter(torch.ones(1), requires_grad=trainable)

    def weights(self) -> torch.Tensor:
        return self.scalars.softmax(0)  # (L + 1,) sums to 1

    def forward(self, layers: torch.Tensor | Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """layers (L + 1, B, T, D) or a list of (B, T, D); mask (B, T) → (B, T, D)."""
        stack = layers if isinstance(layers, torch.Tensor) else torch.stack(list(layers))
        if stack.shape[0] != self.scalars.shape[0]:
            raise UsageError(f"ScalarMix was built for {self.scalars.shape[0]} layers but got {stack.shape[0]}")
        if self.layer_norm:
            if mask is None:
                raise UsageError("ScalarMix with layer_norm=True needs the mask")
            m = mask.unsqueeze(-1).to(stack.dtype)  # (B, T, 1)
            count = m.sum() * stack.shape[-1]
            dims = tuple(range(1, stack.dim()))
            masked = stack * m
            mean = masked.sum(dims, keepdim=True) / count  # (L + 1, 1, 1, 1)
            var = (((masked - mean) * m) ** 2).sum(dims, keepdim=True) / count
            stack = (stack - mean) / torch.sqrt(var + 1e-12)
        w = self.weights().to(stack.dtype).view(-1, *([1] * (stack.dim() - 1)))
        return self.gamma * (w * stack).sum(0)


class Elmo(nn.Module):
    """A pretrained biLM (frozen by default) plus task-learned scalar mix(es), for downstream models.

    ``forward(char_ids (B, T, 50), attention_mask (B, T))`` returns one (B, T, 2P) tensor per
    representation (a list when ``num_output_representations > 1``): the vectors to concatenate to
    a task's word embeddings. Sentence markers are added and removed inside, as in allennlp.
    """

    def __init__(self, model: ElmoModel, num_output_representations: int = 1, layer_norm: bool = False,
                 dropout: float = 0.5, freeze: bool = True):
        super().__init__()
        self.lm = model
        self.freeze = freeze
        if freeze:
            self.lm.requires_grad_(False)
            self.lm.eval()
        L = model.config.num_layers + 1
        self.mixes = nn.ModuleList(ScalarMix(L, layer_norm=layer_norm) for _ in range(num_output_representations))
        self.dropout = Dropout(dropout)  # allennlp's Elmo default 0.5

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> "Elmo":
        return cls(load_elmo(path), **kwargs)

    @property
    def output_dim(self) -> int:
        return 2 * self.lm.config.projection_dim

    @property
    def max_characters_per_token(self) -> int:
        return self.lm.config.max_characters_per_token

    def train(self, mode: bool = True) -> "Elmo":
        super().train(mode)
        if self.freeze:
            self.lm.eval()  # a frozen biLM never applies its own dropout
        return self

    @property
    def num_layers(self) -> int:
        """L + 1: the token layer and the biLM's L LSTM layers."""
        return self.lm.config.num_layers + 1

    def layer_states(self, char_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The biLM's layer states for the words of right-padded rows, (L + 1, B, T, 2P).

        Sentence markers are added before and removed after (when the biLM was trained with them).
        With a frozen biLM this needs no gradient and depends on nothing the task learns, so a task
        may compute it once per sentence and pass it to :meth:`forward` as ``layer_states``.
        """
        mask = attention_mask.bool() if attention_mask is not None else (char_ids > 0).any(-1)
        lm = self.lm
        ids = char_ids.long()
        if lm.config.sentence_boundaries:
            ids, mask_b = add_sentence_boundaries(ids, mask, lm.bos_chars, lm.eos_chars)
        else:
            mask_b = mask
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            states = lm.layer_states(char_ids=ids, attention_mask=mask_b)  # (L + 1, B, T', 2P)
        if lm.config.sentence_boundaries:
            states, _ = remove_sentence_boundaries(states, mask_b)
        return states  # (L + 1, B, T, 2P)

    def forward(self, char_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                layer_states: torch.Tensor | None = None):
        """ELMo vectors (B, T, 2P) from ``char_ids`` (B, T, W), or from precomputed ``layer_states``
        (B, T, L + 1, 2P) — e.g. :meth:`layer_states` cached per sentence — which skips the biLM."""
        if layer_states is not None:
            if layer_states.dim() != 4 or layer_states.shape[2:] != (self.num_layers, self.output_dim):
                raise UsageError(f"layer_states must be (batch, length, {self.num_layers}, {self.output_dim}) for this "
                                 f"ELMo, got {tuple(layer_states.shape)}")
            states = layer_states.permute(2, 0, 1, 3)  # (L + 1, B, T, 2P)
            mask = attention_mask.bool() if attention_mask is not None else states[0].ne(0).any(-1)
        elif char_ids is not None:
            mask = attention_mask.bool() if attention_mask is not None else (char_ids > 0).any(-1)
            states = self.layer_states(char_ids, mask)
        else:
            raise UsageError("Elmo needs char_ids (B, T, W) or precomputed layer_states (B, T, L + 1, 2P)")
        reps = [self.dropout(mix(states, mask)) for mix in self.mixes]  # each (B, T, 2P)
        return reps[0] if len(reps) == 1 else reps


# ----------------------------------------------------------------------------- save / load
def save_elmo(model: ElmoModel, path: str | Path, tokenizer=None, extra: dict[str, Any] | None = None) -> Path:
    folder = Path(path)
    if tokenizer is not None and vocab_from_tokenizer(tokenizer) != model.vocab:
        raise UsageError("the tokenizer's vocabulary differs from the ELMo model's; save with the tokenizer "
                         "the model was built from")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = {**model.config.to_dict(), "architectures": ["ElmoBiLM"],
              "plmkit": {"format": 1, **(extra or {})}}
    write_weights(folder, state)
    write_word_list(folder / VOCAB_NAME, model.vocab)
    write_config(folder, config)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def estimate_elmo_parameters(c: ElmoConfig, vocab_size: int) -> tuple[int, int]:
    """(lower bound, estimate) of an ELMo's parameters from its config alone: the biLSTMs (both directions,
    LSTMP: 4 gates of C cells over input and projected state, projection C → P) are in every checkpoint;
    the estimate adds the char-CNN, highways and a full softmax."""
    P, C, F = c.projection_dim, c.lstm_dim, c.num_filters
    lstms = 2 * c.num_layers * (4 * C * (P + P) + 8 * C + C * P)
    cnn = 262 * c.char_embedding_dim + sum(n * (w * c.char_embedding_dim + 1) for w, n in c.filters)
    cnn += c.num_highway * (F * 2 * F + 2 * F) + F * P + P
    return lstms, lstms + cnn + vocab_size * (P + 1)


def load_elmo(path: str | Path, meta: bool = False) -> ElmoModel:
    """Load an ELMo folder written by :meth:`ElmoModel.save_pretrained`.

    The config is checked and the model's size computed before anything is allocated; ``meta=True``
    builds it on the meta device from the safetensors header alone (``plmkit info``).
    """
    folder = Path(path)
    raw = read_config(folder)
    cfg_file = folder / CONFIG_NAME
    if raw.get("model_type") != "elmo":
        raise CheckpointError(f"{cfg_file}: model_type is {raw.get('model_type')!r}, not 'elmo'; load it with "
                              "plmkit.from_pretrained")
    fields = {k: v for k, v in raw.items() if k not in ("architectures", "plmkit")}
    try:
        config = ElmoConfig.from_dict(fields, source=str(cfg_file))
    except ConfigError as e:
        raise CheckpointError(f"{e} — the folder was written by another version or edited by hand") from None
    vocab_file = folder / VOCAB_NAME
    if vocab_file.exists():
        vocab = read_word_list(vocab_file, "the ELMo softmax's vocabulary")
    elif (folder / "tokenizer.json").exists():
        from ..tokenization import load_tokenizer

        vocab = vocab_from_tokenizer(load_tokenizer(folder))
    else:
        raise CheckpointError(f"{folder} has no {VOCAB_NAME} (nor a word-level tokenizer.json), so the ELMo "
                              "softmax's words are unknown; copy the file from the folder the model was saved to")
    if config.vocab_size is not None and config.vocab_size != len(vocab):
        raise CheckpointError(f"{cfg_file} says vocab_size={config.vocab_size} but {vocab_file.name} has "
                              f"{len(vocab)} words; the folder mixes files from different models")
    headers = header_state(folder)
    stored = sum(t.numel() for t in headers.values())
    low, estimate = estimate_elmo_parameters(config, len(vocab))
    if low > 4 * stored + 1_000_000:  # far beyond the weights (a small mismatch gets the tensor-by-tensor message)
        raise CheckpointError(f"{cfg_file} describes an ELMo of at least {low:,} parameters (lstm_dim={config.lstm_dim}, "
                              f"projection_dim={config.projection_dim}, num_layers={config.num_layers}) but {folder} "
                              f"holds only {stored:,} weights; the config does not belong to these weights")
    if not meta:
        need = 4 * estimate + sum(t.numel() * t.element_size() for t in headers.values())
        check_fits(need, f"loading {folder} (about {estimate:,} parameters, {format_bytes(need)} with the weights "
                         "read)", "use a machine with more memory")
    try:
        with torch.device("meta") if meta else contextlib.nullcontext():
            model = ElmoModel(config, vocab)
    except (UsageError, ConfigError) as e:
        raise CheckpointError(f"{folder}: {e}") from None
    state = headers if meta else load_state(folder)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensor(s) {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}")
        if unexpected:
            parts.append(f"unexpected tensor(s) {', '.join(unexpected[:6])}{' …' if len(unexpected) > 6 else ''}")
        raise CheckpointError(f"{folder / WEIGHTS_NAME}: {'; '.join(parts)} for the ELMo described by {cfg_file}; "
                              "the weights and config.json come from different models")
    for k, v in expected.items():
        check_tensor(folder / WEIGHTS_NAME, k, state[k], v, source=str(cfg_file))  # shape, dtype kind, finite
    if not meta:
        model.load_state_dict(state)
    model.eval()
    return model
