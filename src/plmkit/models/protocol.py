"""What every plmkit model offers: the loss contract the trainer relies on, and the model protocol
(:class:`PlmkitModel`, :class:`TokenModel`, :class:`WordModel`) that ``score``, ``embed`` and ``plmkit info`` use.

**The loss contract** (fairseq's criterion returns ``loss, sample_size, logging``; here the model
does). A model the :class:`~plmkit.training.trainer.Trainer` can train provides four things, and
the trainer reads nothing else from it:

* ``forward(**batch)`` returns an output whose ``loss_terms`` is a sequence of :class:`LossTerm`:
  each term is a *mean* over some items (masked tokens, next tokens, tagged words, rows) and names
  which count of :meth:`loss_counts` it is a mean over. ``in_loss`` terms are what is trained on;
  ``logged`` terms appear under their ``name`` in ``metrics.jsonl`` beside the total (a term can be
  both, or — like ELMo's per-direction losses — only logged).
* ``loss_counts(batch) -> dict[str, int]``: for every count a term may name, the number of items in
  this micro-batch. It is called on the host *before* the batch is copied to the device, so it must
  read only the batch's tensors (no forward pass, no device sync).
* ``prepare_training(gradient_checkpointing)``: called once before the first step; a model may turn
  on activation checkpointing here and drop per-step input checks that the data pipeline makes
  unnecessary (a no-op is fine).
* ``save_pretrained(folder, tokenizer=None, extra=None)`` writes a checkpoint; ``--resume`` reads it back
  through the ``load_weights(folder) -> state dict`` the recipe hands the trainer (default: ``from_pretrained``).

The trainer sums every count over the micro-batches of one optimizer step and over all ranks,
then trains on ``Σ_terms value · count / total_count`` — so K micro-batches of B rows give the same
loss and gradient as one batch of K·B, and N ranks of B the same as one process of N·B. A new
objective therefore needs only to report its mean and the name of what it averaged over; the
trainer needs no change. Weighted by ``count / max(total, 1)``, a term whose items are absent from
the whole step contributes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import torch

# Names of the counts plmkit's own models report (a model may define others).
ROWS = "rows"  # one item per row (sequence, pair, choice set) of the batch
LABELLED = "labelled"  # label positions that are not -100 (MLM: masked tokens; tagging: tagged tokens)
NEXT_TOKENS = "next_tokens"  # causal LM: positions 1… whose label is not -100 (each is predicted from the left)
TOKENS = "tokens"  # real (unpadded) tokens: attention_mask's ones (ELECTRA's discriminator judges every one)
IGNORE_INDEX = -100


@dataclass(frozen=True)
class LossTerm:
    """One term of a model's loss: ``value`` is a mean over the items counted by ``loss_counts()[count]``."""

    name: str
    value: torch.Tensor
    count: str
    in_loss: bool = True  # part of the loss that is trained on
    logged: bool = True  # written to metrics.jsonl under ``name``, weighted like the loss


@dataclass(frozen=True)
class LossField:
    """A :class:`LossTerm` whose value is the output's attribute ``name`` (how :class:`~plmkit.models.ModelOutput`
    declares its terms, so that the value read is the one the output holds when the trainer reads it)."""

    name: str
    count: str
    in_loss: bool = True
    logged: bool = True


@runtime_checkable
class TrainableModel(Protocol):
    """The loss contract (see the module docstring): what the trainer calls on a model."""

    def __call__(self, **batch: torch.Tensor) -> Any: ...  # returns an output with ``loss_terms``

    def loss_counts(self, batch: Mapping[str, torch.Tensor]) -> dict[str, int]: ...

    def prepare_training(self, gradient_checkpointing: bool = False) -> None: ...

    def save_pretrained(self, path: Any, tokenizer: Any = None, extra: dict[str, Any] | None = None) -> Any: ...


def count_rows(batch: Mapping[str, torch.Tensor]) -> int:
    return int(batch["input_ids"].shape[0])


def count_tokens(batch: Mapping[str, torch.Tensor]) -> int:
    """Real tokens: the ones of ``attention_mask``, or every position without one."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


def count_labelled(batch: Mapping[str, torch.Tensor], shift: int = 0) -> int:
    """Label positions (from ``shift`` on) that are not -100; 0 without (B, T) labels."""
    labels = batch.get("labels")
    if labels is None or labels.dim() < 2:
        return 0
    return int((labels[:, shift:] != IGNORE_INDEX).sum())


# ----------------------------------------------------------------------------- the model protocol
@runtime_checkable
class PlmkitModel(Protocol):
    """What every plmkit model (Transformer :class:`~plmkit.models.PlmModel`, ELMo, the BiLSTM task models)
    offers to ``score``, ``embed`` and ``plmkit info`` — they use nothing else of a model.

    A new model provides:

    * ``input_kind``: ``"tokens"`` (sub-word ids from the tokenizer saved with it: then it is a
      :class:`TokenModel`) or ``"words"`` (whitespace words, no tokenizer: a :class:`WordModel` when it can score
      or embed);
    * ``lm_kind``: how it scores text — ``"causal"`` (exact chain rule), ``"masked"`` (pseudo-log-likelihood),
      ``"words"`` (its own word-level LM, :meth:`WordModel.sequence_log_probs`) or None (it cannot);
    * ``num_layer_states``: how many hidden states :meth:`TokenModel.encode` / :meth:`WordModel.word_layer_states`
      give (embeddings + one per layer), or None when it has none to give;
    * ``describe()``: ``{"model_type", "task", "heads"}`` for ``plmkit info``.
    """

    input_kind: str

    @property
    def lm_kind(self) -> str | None: ...

    @property
    def num_layer_states(self) -> int | None: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class TokenModel(PlmkitModel, Protocol):
    """A model over sub-word ids (``input_kind == "tokens"``); ``config`` carries ``vocab_size``,
    ``hidden_size``, ``num_hidden_layers``, ``positions_available``, ``causal`` and the special token ids."""

    config: Any

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               all_layers: bool = True) -> tuple[torch.Tensor, ...]:
        """Hidden states (B, T, H): every layer's (embeddings first), or with ``all_layers=False`` the last alone."""
        ...

    def lm_log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, H) last-layer states at predicting positions and (N,) target ids → (N,) float32 log-probabilities
        from the model's LM head (``lm_kind`` says which: the next token, or the masked one)."""
        ...


@runtime_checkable
class WordModel(PlmkitModel, Protocol):
    """A model over words (``input_kind == "words"``) that can embed and score them (ELMo).

    ``word_layer_states(sentences)``: per sentence a (num_layer_states, n_words, dim) tensor.
    ``sequence_log_probs(sentences, batch_size)``: see :class:`plmkit.score.SequenceScorer`.
    """

    def word_layer_states(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...

    def sequence_log_probs(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[dict[str, Any]]: ...
