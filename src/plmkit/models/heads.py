"""Task heads, kept apart from the body (as google-research/bert keeps them out of modeling.py).

Each head takes the encoder's hidden states (and the pooled [CLS] vector where it needs one) and
returns its logits and, when labels are given, its loss. What differs between the papers' heads is a
field of :class:`~plmkit.config.ModelConfig`, never the model type:

* :class:`MLMHead` — BERT's masked-LM transform (activation ``mlm_act``) + decoder tied to the input
  embeddings. With labels, logits are computed **only at the labelled positions** (the rest would be
  thrown away): found from the labels, or (static shapes, for CUDA graphs) gathered at a fixed number of
  given positions per row, as google-research/bert's ``gather_indexes`` does.
* :class:`PairHead` — next-sentence prediction (BERT) or sentence-order prediction (ALBERT), as
  ``pair_head`` says.
* :class:`ReplacedTokenHead` — ELECTRA's discriminator: is each token the original or a replacement?
* :class:`SequenceClassificationHead` — classification or regression, read as ``classifier_pooling``
  says: the pooled output (BERT, ALBERT), ``<s>`` / [CLS] through its own dense layer (RoBERTa:
  tanh, ELECTRA: GELU; ``head_act``), or the last real token (GPT-2).
* :class:`SpanHead` — start/end logits for extractive QA (SQuAD).
* :class:`ChoiceHead` — one score per choice (SWAG), over the pooled output or (ELECTRA,
  ``choice_pooling="first-token"``) its own dense layer over [CLS]; the model flattens (B, C, T) inputs.
* :class:`TokenClassificationHead` — per-token labels (NER, POS).
* :class:`CausalLMHead` — next-token logits from the tied embeddings (GPT-2).

Losses follow Hugging Face ``transformers`` exactly (ignore index -100, QA positions clamped to
the sequence length, regression when ``num_labels == 1``) so numbers are comparable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .dropout import Dropout
from .transformer import activation, init_weights

IGNORE_INDEX = -100


def classifier_dropout(config: ModelConfig) -> float:
    """transformers' rule: ``classifier_dropout`` where set (ALBERT's layout sets 0.1), else the hidden dropout."""
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class Head(nn.Module):
    """Base class: knows whether it needs the pooled output."""

    uses_pooler = False

    def reset_parameters(self, config: ModelConfig) -> None:
        self.apply(lambda m: init_weights(m, config.initializer_range))


class MLMHead(Head):
    """dense → act → LayerNorm → decoder (tied to the word embeddings) + bias."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embed_dim)
        self.act = activation(config.mlm_act or config.hidden_act)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.reset_parameters(config)

    def forward(self, hidden: torch.Tensor, decoder: torch.Tensor, labels: torch.Tensor | None = None,
                positions: torch.Tensor | None = None):
        """hidden (B, T, H); decoder (V, E). Returns (logits, loss).

        Without labels or positions: logits (B, T, V). With labels: logits (N, V) for the N positions whose
        label is not -100, and the mean cross-entropy over them. With ``positions`` (B, P), each row's
        predicted positions padded with -1 (the data's ``mlm_positions``): logits (B·P, V) at those slots, padded
        slots included, and the same mean over the real slots — shapes that do not depend on the data.
        """
        if positions is not None:
            return self._gathered(hidden, decoder, labels, positions)
        if labels is None:
            return self._logits(hidden, decoder), None
        where = labels != IGNORE_INDEX  # (B, T)
        picked = hidden[where]  # (N, H)
        logits = self._logits(picked, decoder)  # (N, V)
        if picked.shape[0] == 0:
            return logits, hidden.sum() * 0.0
        return logits, F.cross_entropy(logits.float(), labels[where])

    def _gathered(self, hidden: torch.Tensor, decoder: torch.Tensor, labels: torch.Tensor | None,
                  positions: torch.Tensor):
        """The static-shape path: no boolean indexing, no count read on the host."""
        B, P = positions.shape
        real = positions >= 0  # (B, P): the weight mask
        index = positions.clamp(min=0)  # padded slots read position 0; their loss is masked out
        picked = hidden.gather(1, index[:, :, None].expand(-1, -1, hidden.shape[-1]))  # (B, P, H)
        logits = self._logits(picked.reshape(B * P, -1), decoder)  # (B·P, V)
        if labels is None:
            return logits, None
        targets = labels.gather(1, index).masked_fill(~real, IGNORE_INDEX)  # (B, P)
        total = F.cross_entropy(logits.float(), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
        return logits, total / real.sum().clamp(min=1)  # the mean over the real slots (0 when there is none)

    def _logits(self, h: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.act(self.dense(h)))
        return F.linear(h, decoder, self.bias)


class PairHead(Head):
    """NSP (BERT) or SOP (ALBERT): 2-way classifier over the pooled [CLS] vector."""

    uses_pooler = True

    def __init__(self, config: ModelConfig, dropout: float = 0.0):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, 2)
        self.reset_parameters(config)

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor | None = None):
        logits = self.classifier(self.dropout(pooled))  # (B, 2)
        loss = F.cross_entropy(logits.float(), labels.view(-1)) if labels is not None else None
        return logits, loss


class ReplacedTokenHead(Head):
    """ELECTRA's discriminator (``ElectraDiscriminatorPredictions``): dense → hidden_act → one logit per token,
    "this token was replaced". The loss is the binary cross-entropy over the real (unpadded) tokens."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.out = nn.Linear(config.hidden_size, 1)
        self.reset_parameters(config)

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None):
        """hidden (B, T, H); labels (B, T): 1 replaced, 0 original. Returns logits (B, T) and the mean loss."""
        logits = self.out(self.act(self.dense(hidden))).squeeze(-1)  # (B, T)
        if labels is None:
            return logits, None
        real = attention_mask.bool() if attention_mask is not None else torch.ones_like(logits, dtype=torch.bool)
        loss = F.binary_cross_entropy_with_logits(logits.float()[real], labels[real].float())
        return logits, loss


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Hugging Face's problem-type rule: regression, single- or multi-label classification."""
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    logits = logits.float()
    if problem == "regression":
        if config.num_labels == 1:
            return F.mse_loss(logits.view(-1), labels.float().view(-1))
        return F.mse_loss(logits, labels.float())
    if problem == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.float())


class SequenceClassificationHead(Head):
    """Classification / regression over one sequence (or a sentence pair), read as ``classifier_pooling`` says.

    ``pooled`` (BERT, ALBERT): dropout → linear over the pooled output.
    ``first-token`` (RoBERTa, ELECTRA): dropout → dense → head_act (tanh, GELU) → dropout → out_proj over ``<s>``.
    ``last-token`` (GPT-2): linear (no bias) over the last non-pad token.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.style = config.classifier_pooling
        self.uses_pooler = self.style == "pooled"
        self.dropout = Dropout(classifier_dropout(config))
        h = config.hidden_size
        self.dense = nn.Linear(h, h) if self.style == "first-token" else None
        self.act = activation(config.head_act)
        self.out = nn.Linear(h, config.num_labels, bias=self.style != "last-token")
        self.reset_parameters(config)

    def read_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, 1): the one position per row this head reads — the first token, or GPT-2's last non-pad."""
        B, T = input_ids.shape
        if self.style != "last-token":
            return torch.zeros(B, 1, dtype=torch.long, device=input_ids.device)
        pad = self.config.pad_token_id
        if pad is None:
            return torch.full((B, 1), T - 1, dtype=torch.long, device=input_ids.device)
        idx = torch.arange(T, device=input_ids.device)
        return (idx * (input_ids != pad)).argmax(-1, keepdim=True)  # (B, 1)

    def forward(self, hidden: torch.Tensor, pooled: torch.Tensor | None, input_ids: torch.Tensor,
                labels: torch.Tensor | None = None):
        """``hidden``: (B, T, H), or (B, 1, H) when the encoder computed only :meth:`read_positions`'s row."""
        if self.style == "pooled":
            logits = self.out(self.dropout(pooled))
        elif self.style == "first-token":
            x = self.dropout(hidden[:, 0])
            x = self.dropout(self.act(self.dense(x)))
            logits = self.out(x)
        else:
            if hidden.shape[1] > 1:  # every position: pick the one this head reads
                hidden = hidden.gather(1, self.read_positions(input_ids)[:, :, None].expand(-1, -1, hidden.shape[-1]))
            logits = self.out(hidden[:, 0])
        loss = sequence_loss(logits, labels, self.config) if labels is not None else None
        return logits, loss


class SpanHead(Head):
    """Start and end logits for extractive QA."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.out = nn.Linear(config.hidden_size, 2)
        self.reset_parameters(config)

    def forward(self, hidden: torch.Tensor, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None):
        start, end = self.out(hidden).split(1, dim=-1)  # (B, T, 1) each
        start, end = start.squeeze(-1).contiguous(), end.squeeze(-1).contiguous()  # (B, T)
        loss = None
        if start_positions is not None and end_positions is not None:
            T = start.shape[1]
            # Positions outside the window (e.g. answer cut off) are clamped and ignored, as in HF.
            s = start_positions.view(-1).clamp(0, T)
            e = end_positions.view(-1).clamp(0, T)
            loss = (F.cross_entropy(start.float(), s, ignore_index=T)
                    + F.cross_entropy(end.float(), e, ignore_index=T)) / 2
        return start, end, loss


class ChoiceHead(Head):
    """One score per choice; softmax across choices. ``choice_pooling``: ``pooled`` (BERT, RoBERTa, ALBERT):
    dropout → linear over the pooled output; ``first-token`` (ELECTRA's SequenceSummary): dense → head_act →
    dropout → linear over [CLS]. (transformers' ``summary_last_dropout``, 0.1 like the classifier dropout by
    default, stays in config.json; plmkit's head drops out with the classifier dropout.)"""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.uses_pooler = config.choice_pooling == "pooled"
        self.dropout = Dropout(classifier_dropout(config))
        self.dense = None if self.uses_pooler else nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.head_act)
        self.out = nn.Linear(config.hidden_size, 1)
        self.reset_parameters(config)

    def read_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, 1): the [CLS] position of every (flattened) choice."""
        return torch.zeros(input_ids.shape[0], 1, dtype=torch.long, device=input_ids.device)

    def forward(self, hidden: torch.Tensor, pooled: torch.Tensor | None, num_choices: int,
                labels: torch.Tensor | None = None):
        """``hidden``: (B·C, T, H), or (B·C, 1, H) when the encoder computed only the [CLS] rows."""
        x = pooled if self.uses_pooler else self.act(self.dense(hidden[:, 0]))
        logits = self.out(self.dropout(x)).view(-1, num_choices)  # (B, C)
        loss = F.cross_entropy(logits.float(), labels.view(-1)) if labels is not None else None
        return logits, loss


class TokenClassificationHead(Head):
    """Per-token labels; -100 marks positions without a label (sub-tokens after the first, specials)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.dropout = Dropout(classifier_dropout(config))
        self.out = nn.Linear(config.hidden_size, config.num_labels)
        self.reset_parameters(config)

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor | None = None):
        logits = self.out(self.dropout(hidden))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, self.config.num_labels), labels.view(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss


class CausalLMHead(Head):
    """Next-token logits through the tied embedding matrix; loss on shifted labels."""

    def forward(self, hidden: torch.Tensor, decoder: torch.Tensor, labels: torch.Tensor | None = None):
        logits = F.linear(hidden, decoder)  # (B, T, V)
        loss = None
        if labels is not None:
            shift_logits = logits[:, :-1].float()
            loss = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                   labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss


def build_head(kind: str, config: ModelConfig) -> Head:
    if kind == "mlm":
        return MLMHead(config)
    if kind == "nsp":
        return PairHead(config)
    if kind == "sop":
        return PairHead(config, dropout=classifier_dropout(config))
    if kind == "rtd":
        return ReplacedTokenHead(config)
    if kind == "classifier":
        return SequenceClassificationHead(config)
    if kind == "qa":
        return SpanHead(config)
    if kind == "choice":
        return ChoiceHead(config)
    if kind == "tagger":
        return TokenClassificationHead(config)
    if kind == "lm":
        return CausalLMHead()
    raise ValueError(f"unknown head {kind!r}")
