"""Sentence likelihood: exact chain rule for causal LMs, pseudo-log-likelihood for masked LMs.

* **Causal LM** (GPT-2 layout; Radford et al., 2019): log p(x_1:T) = Σ_t log p(x_t | x_<t), exact.
  When the tokenizer has a beginning/end-of-text token (``<|endoftext|>``, ``<s>``), it is put in
  front and the first real token is scored given it; otherwise the first token cannot be scored
  and is left out of the count. :attr:`ScoreResult.conditioned_on` says which. Texts longer than
  the model's positions are scored in strided windows (stride = half a window), so every token
  after the first window keeps at least half a window of left context.
* **Masked LM** (BERT, RoBERTa, ALBERT): the pseudo-log-likelihood of Salazar et al. (2020),
  PLL(W) = Σ_t log P(w_t | W_\\t): every token is masked in turn and its log-probability read from
  the MLM head. The masked copies of many sentences are batched together, and the MLM head is
  evaluated only at the masked position of each copy. Special tokens ([CLS], [SEP], <s>, …) are
  not scored. Long sentences are split into overlapping windows; each token is scored in the
  window where it sits nearest the middle. An ELECTRA discriminator has no LM head: its generator
  (the masked LM it was pretrained against, in ``generator/`` beside it) scores the text.
* **ELMo** (Peters et al., 2018): exact chain rule in both directions over the input's words
  (whitespace split), through :meth:`~plmkit.models.elmo.ElmoModel.token_log_probs`. The forward
  LM gives ``log_likelihood`` = Σ_t log p(w_t | w_<t) and the backward LM
  ``backward_log_likelihood`` = Σ_t log p(w_t | w_>t). With the model's sentence markers (the
  default) each word is scored, the first given ``<s>`` (forward) and the last given ``</s>``
  (backward); the end marker itself is not scored, as the causal LM scores no end token. Words
  outside the softmax vocabulary are scored as ``<unk>``. Any other word-level LM plugs in through
  one method on the model (see :class:`SequenceScorer`).

All log-probabilities are natural logs, computed in float32. Corpus perplexity is
exp(-Σ log-likelihood / Σ scored tokens); for a masked LM this is Salazar et al.'s
pseudo-perplexity.
"""

from __future__ import annotations

import math
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from .embed import inference, max_positions, plan_windows, resolve_model, special_frame, split_words
from .errors import UsageError
from .models.auto import scoring_model
from .models.facts import model_device, pad_token_id
from .models.protocol import PlmkitModel

METHODS = ("auto", "causal", "pll", "elmo")
_DESCRIPTION = {
    "causal": "exact chain rule, log p(x_1:T) = sum_t log p(x_t | x_<t)",
    "pll": "pseudo-log-likelihood (Salazar et al., 2020): each token masked in turn",
    "elmo": "exact chain rule of the forward LM (backward LM reported beside it)",
}


@runtime_checkable
class SequenceScorer(Protocol):
    """What a model with its own word-level LM (ELMo) implements to be scored.

    ``sequence_log_probs(sentences, batch_size)`` takes lists of words and returns, per sentence, a
    dict with ``"forward"`` (and optionally ``"backward"``): 1-D tensors of natural-log
    probabilities, one per scored token, and optionally ``"tokens"``: the names of the scored
    tokens (e.g. the words plus ``</S>``) and ``"conditioned_on"``: what the first token was
    conditioned on (e.g. ``"<S>"``).
    """

    def sequence_log_probs(self, sentences: list[list[str]], batch_size: int = 32) -> list[dict[str, Any]]: ...


@dataclass
class SentenceScore:
    """One sentence: its log-likelihood (natural log) and the tokens that were scored."""

    text: str
    log_likelihood: float
    num_tokens: int
    tokens: list[str] = field(default_factory=list)
    token_log_probs: list[float] = field(default_factory=list)
    backward_log_likelihood: float | None = None  # ELMo's backward LM

    @property
    def perplexity(self) -> float:
        return math.exp(-self.log_likelihood / self.num_tokens) if self.num_tokens else float("nan")

    def to_dict(self, per_token: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"text": self.text, "log_likelihood": self.log_likelihood, "num_tokens": self.num_tokens,
                             "perplexity": _finite(self.perplexity)}
        if self.backward_log_likelihood is not None:
            d["backward_log_likelihood"] = self.backward_log_likelihood
        if per_token:
            d["tokens"] = self.tokens
            d["token_log_probs"] = self.token_log_probs
        return d


@dataclass
class ScoreResult:
    """Per-sentence scores and the corpus totals."""

    sentences: list[SentenceScore]
    method: str  # causal | pll | elmo
    conditioned_on: str | None  # the token the first scored token was conditioned on, if any
    model: str = ""

    @property
    def log_likelihood(self) -> float:
        return float(sum(s.log_likelihood for s in self.sentences))

    @property
    def backward_log_likelihood(self) -> float | None:
        if not self.sentences or self.sentences[0].backward_log_likelihood is None:
            return None
        return float(sum(s.backward_log_likelihood or 0.0 for s in self.sentences))

    @property
    def num_tokens(self) -> int:
        return sum(s.num_tokens for s in self.sentences)

    @property
    def perplexity(self) -> float:
        """exp(-Σ log-likelihood / Σ tokens): perplexity (causal, ELMo forward) or pseudo-perplexity (PLL)."""
        n = self.num_tokens
        return math.exp(-self.log_likelihood / n) if n else float("nan")

    @property
    def backward_perplexity(self) -> float | None:
        b = self.backward_log_likelihood
        n = self.num_tokens
        return None if b is None or not n else math.exp(-b / n)

    @property
    def description(self) -> str:
        text = _DESCRIPTION[self.method]
        if self.method != "pll":
            text += (f"; the first token is conditioned on {self.conditioned_on}" if self.conditioned_on
                     else "; no start token, so the first token of each sentence is not scored")
        return text

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, i: int) -> SentenceScore:
        return self.sentences[i]

    def summary(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "method": self.method, "description": self.description,
                             "conditioned_on": self.conditioned_on, "sentences": len(self.sentences),
                             "num_tokens": self.num_tokens, "log_likelihood": self.log_likelihood,
                             "perplexity": _finite(self.perplexity)}
        if self.method == "pll":
            d["pseudo_perplexity"] = d.pop("perplexity")
        if self.backward_log_likelihood is not None:
            d["backward_log_likelihood"] = self.backward_log_likelihood
            d["backward_perplexity"] = _finite(self.backward_perplexity)
        return d

    def to_dict(self, per_token: bool = False) -> dict[str, Any]:
        return {"summary": self.summary(), "sentences": [s.to_dict(per_token) for s in self.sentences]}


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else x


# ----------------------------------------------------------------------------- entry point
def score(model: Any, texts: Sequence[str | Sequence[str]], tokenizer: Any = None, batch_size: int = 32,
          method: str = "auto", max_length: int | None = None, stride: int | None = None,
          add_start_token: bool = True, device: str | torch.device | None = None,
          progress: Callable[[int], None] | None = None) -> ScoreResult:
    """Score each text; ``model`` is a model folder path or a loaded model.

    ``method``: ``auto`` picks ``causal`` for a causal LM, ``pll`` for a model with a masked-LM head
    and ``elmo`` for a model with its own LM (``sequence_log_probs``). ``batch_size`` counts rows
    per forward pass: windows for a causal LM, masked copies for PLL. ``max_length`` caps the
    window (default: the model's positions). ``add_start_token=False`` scores causal texts
    without a leading BOS/EOS token. ``progress`` is called with the number of rows done.
    """
    if method not in METHODS:
        raise UsageError(f"unknown scoring method {method!r}; choose one of: {', '.join(METHODS)}")
    if isinstance(texts, str):
        raise UsageError("score() takes a list of texts; wrap a single text in a list")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    m, tok, name = resolve_model(model, tokenizer, device)
    scorer = scoring_model(m)  # an ELECTRA discriminator's text scores come from its generator
    if scorer is not m:
        m, name = scorer, f"{name} (scored by its ELECTRA generator, {scorer.loaded_from})"
    chosen = _pick_method(m, method, name)
    if chosen == "elmo":
        result = _score_word_lm(m, texts, batch_size)
    elif chosen == "causal":
        result = _score_causal(m, tok, texts, batch_size, max_positions(m, max_length), stride, add_start_token,
                               progress)
    else:
        result = _score_pll(m, tok, texts, batch_size, max_positions(m, max_length), stride, progress)
    result.model = name
    return result


def _pick_method(model: nn.Module, method: str, name: str) -> str:
    """From the model protocol (models/protocol.py): ``lm_kind``; any other model scores through SequenceScorer."""
    if isinstance(model, PlmkitModel):
        kind = model.lm_kind
        available = {"words": "elmo", "causal": "causal", "masked": "pll"}.get(kind) if kind is not None else None
    else:
        available = "elmo" if isinstance(model, SequenceScorer) else None
    if available is None:
        about = model.describe() if isinstance(model, PlmkitModel) else {"model_type": type(model).__name__, "heads": []}
        kind, heads = about["model_type"], about["heads"]
        raise UsageError(
            f"{name} has no language-model head ({kind} model with heads: {', '.join(heads) or 'none'}), so it "
            "cannot score text. score needs a causal LM (GPT-2 layout), a masked-LM head (a *ForMaskedLM or "
            "*ForPreTraining folder, e.g. the export of 'plmkit pretrain') or ELMo. Encoder-only folders such as "
            "sentence-embedding models (BertModel) can still be used with 'plmkit embed'.")
    if method != "auto" and method != available:
        raise UsageError(f"method {method!r} does not fit {name}: it is scored with {available!r} "
                         f"({_DESCRIPTION[available]}); use --method auto or {available}")
    return available


# ----------------------------------------------------------------------------- causal LM
def start_token(tokenizer, model: nn.Module) -> tuple[int | None, str | None]:
    """The token a causal LM conditions the first real token on: BOS, else EOS (GPT-2's <|endoftext|>)."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id, model.config.bos_token_id, model.config.eos_token_id):
        if tid is not None and 0 <= tid < model.config.vocab_size:
            return int(tid), tokenizer.id_to_token(int(tid))
    return None, None


def _batch_rows(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)  # (B, T)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask


def _score_causal(model, tok, texts, batch_size, max_len, stride, add_start, progress) -> ScoreResult:
    start_id, start_name = start_token(tok, model) if add_start else (None, None)
    stride = stride if stride is not None else max(1, max_len // 2)
    # Rows: (sentence, window token ids, positions in the row that predict, targets, sequence positions)
    seqs, names, rows = [], [], []
    for si, text in enumerate(texts):
        text = text if isinstance(text, str) else " ".join(text)
        enc = tok.encode(text, add_special_tokens=False)
        seq = ([start_id] if start_id is not None else []) + list(enc.ids)
        seqs.append(seq)
        names.append(list(enc.tokens))
        for w in plan_windows(len(seq), max_len, stride, centered=False):
            targets = [p for p in range(max(w.own_start, w.start + 1), w.own_end)]
            if targets:
                rows.append((si, seq[w.start:w.end], [p - 1 - w.start for p in targets], targets))
    logps: list[dict[int, float]] = [{} for _ in texts]
    device = model_device(model)
    pad = pad_token_id(tok, model)
    order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]))
    with inference(model):
        for b in range(0, len(order), batch_size):
            batch = [rows[r] for r in order[b:b + batch_size]]
            ids, mask = _batch_rows([r[1] for r in batch], pad)
            h = model.encode(ids.to(device), mask.to(device), all_layers=False)[-1]  # (B, T, H)
            row_idx = torch.tensor([i for i, r in enumerate(batch) for _ in r[2]], device=device)
            pos_idx = torch.tensor([p for r in batch for p in r[2]], device=device)
            tgt = torch.tensor([r[1][p + 1] for r in batch for p in r[2]], device=device)
            lp = model.lm_log_probs(h[row_idx, pos_idx], tgt).tolist()  # (N,)
            k = 0
            for si, _, _, targets in batch:
                for p in targets:
                    logps[si][p] = lp[k]
                    k += 1
            if progress:
                progress(len(batch))
    offset = 1 if start_id is not None else 0
    sentences = []
    for si, text in enumerate(texts):
        positions = sorted(logps[si])
        values = [logps[si][p] for p in positions]
        sentences.append(SentenceScore(text=text if isinstance(text, str) else " ".join(text),
                                       log_likelihood=float(sum(values)), num_tokens=len(values),
                                       tokens=[names[si][p - offset] for p in positions], token_log_probs=values))
    return ScoreResult(sentences, "causal", start_name)


# ----------------------------------------------------------------------------- masked LM (PLL)
def _score_pll(model, tok, texts, batch_size, max_len, stride, progress) -> ScoreResult:
    mask_id = tok.mask_token_id
    if mask_id is None:
        raise UsageError("the tokenizer has no mask token ([MASK] / <mask>), so the pseudo-log-likelihood cannot be "
                         "computed; use the tokenizer the masked LM was trained with")
    prefix, suffix = special_frame(tok)
    size = max_len - len(prefix) - len(suffix)
    specials = tok.special_ids
    names, rows = [], []  # rows: (sentence, token position, masked row ids, row position, target)
    for si, text in enumerate(texts):
        text = text if isinstance(text, str) else " ".join(text)
        enc = tok.encode(text, add_special_tokens=False)
        ids = list(enc.ids)
        names.append(list(enc.tokens))
        for w in plan_windows(len(ids), size, stride, centered=True):
            window = prefix + ids[w.start:w.end] + suffix
            for p in range(w.own_start, w.own_end):
                if ids[p] in specials:
                    continue
                r = len(prefix) + p - w.start
                masked = list(window)
                masked[r] = mask_id
                rows.append((si, p, masked, r, ids[p]))
    logps: list[dict[int, float]] = [{} for _ in texts]
    device = model_device(model)
    pad = pad_token_id(tok, model)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][2]))
    with inference(model):
        for b in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[b:b + batch_size]]
            ids, mask = _batch_rows([r[2] for r in batch], pad)
            h = model.encode(ids.to(device), mask.to(device), all_layers=False)[-1]  # (B, T, H)
            at = torch.tensor([r[3] for r in batch], device=device)
            h_masked = h[torch.arange(len(batch), device=device), at]  # (B, H)
            tgt = torch.tensor([r[4] for r in batch], device=device)
            lp = model.lm_log_probs(h_masked, tgt).tolist()
            for (si, p, _, _, _), v in zip(batch, lp):
                logps[si][p] = v
            if progress:
                progress(len(batch))
    sentences = []
    for si, text in enumerate(texts):
        positions = sorted(logps[si])
        values = [logps[si][p] for p in positions]
        sentences.append(SentenceScore(text=text if isinstance(text, str) else " ".join(text),
                                       log_likelihood=float(sum(values)), num_tokens=len(values),
                                       tokens=[names[si][p] for p in positions], token_log_probs=values))
    return ScoreResult(sentences, "pll", None)


# ----------------------------------------------------------------------------- ELMo / word-level LMs
def _score_word_lm(model, texts, batch_size) -> ScoreResult:
    """A word-level LM through :class:`SequenceScorer` (plmkit's ElmoModel: ``ElmoModel.sequence_log_probs``)."""
    words = [split_words(t)[1] for t in texts]
    with inference(model):
        outs = model.sequence_log_probs(words, batch_size=batch_size)
    if len(outs) != len(words):
        raise RuntimeError(f"sequence_log_probs returned {len(outs)} results for {len(words)} sentences")
    sentences, conditioned = [], None
    for text, ws, out in zip(texts, words, outs):
        fwd = torch.as_tensor(out["forward"], dtype=torch.float32).reshape(-1)
        bwd = out.get("backward")
        bwd_ll = None if bwd is None else float(torch.as_tensor(bwd, dtype=torch.float32).sum())
        conditioned = out.get("conditioned_on", conditioned)
        tokens = list(out.get("tokens", ws))
        sentences.append(SentenceScore(text=text if isinstance(text, str) else " ".join(text),
                                       log_likelihood=float(fwd.sum()), num_tokens=int(fwd.numel()),
                                       tokens=tokens, token_log_probs=fwd.tolist(), backward_log_likelihood=bwd_ll))
    return ScoreResult(sentences, "elmo", conditioned)


__all__ = ["score", "ScoreResult", "SentenceScore", "SequenceScorer", "METHODS", "start_token"]


class _CallableModule(types.ModuleType):
    """``plmkit.score`` is the function, but importing this submodule binds the name to the module; calling
    the module calls the function, so ``plmkit.score(model, sentences)`` works whichever was bound first."""

    def __call__(self, *args: Any, **kwargs: Any) -> ScoreResult:
        return score(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
