"""ELECTRA pretraining (Clark et al., ICLR 2020): a discriminator learns replaced-token detection on every token.

What changes relative to BERT is the pretraining, not the network: the generator and the discriminator
are the one :class:`~plmkit.models.transformer.TransformerEncoder` (two :class:`~plmkit.models.model.PlmModel`\\ s
of the electra layout, a config diff: factorized embeddings, no pooler, first-token heads), and this
module only composes them for the pretraining step:

* the **generator** is a small masked LM: ``generator_size`` of the discriminator's hidden size,
  feed-forward size and attention heads (the paper's Table 6: 1/4 for Small, 1/3 for Base;
  :func:`plmkit.config.generator_config`), as deep as the discriminator;
* the two **share** the token, position and segment embeddings and their LayerNorm (the official code
  builds both under ``electra/embeddings``); each projects E → its own hidden size where they differ
  (transformers' ``embeddings_project``), and the generator's MLM decoder is the shared token table;
* the **masking** is data-side (:mod:`plmkit.data.objectives`, ``objective="rtd"``): dynamic, whole-word or
  n-gram, as for BERT and RoBERTa;
* per step the generator predicts the masked tokens (its MLM loss, over the masked positions), a
  token is **sampled** from its softmax at each masked position (:func:`sample_tokens`; no gradient flows
  through the sample), the discriminator reads the original text with the samples put in, and learns
  for every real (unpadded) token whether it was replaced. A sample equal to the original token counts
  as **original**. The loss is ``MLM + rtd_weight · RTD`` (λ = 50, the paper's).

The loss reports its terms through the loss contract (:mod:`plmkit.models.protocol`): the generator's MLM
loss averages over the masked tokens (``labelled``), the discriminator's over the real tokens
(``tokens``), so gradient accumulation and DDP weight them exactly; the trainer needs nothing else.

Saving writes two Hugging Face folders: the discriminator (``ElectraForPreTraining``, which fine-tuning
starts from) in the folder itself and the generator (``ElectraForMaskedLM``, which ``plmkit score`` uses)
in ``generator/`` inside it, each with the tokenizer. Loading them back for ``--resume`` is
:func:`plmkit.models.auto.load_electra_pretraining`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import ModelConfig, generator_config
from ..errors import ConfigError, UsageError
from .model import ModelOutput, PlmModel
from .protocol import IGNORE_INDEX, LABELLED, ROWS, TOKENS, LossField, count_labelled, count_rows, count_tokens

GENERATOR_DIR = "generator"  # the generator's folder inside a saved discriminator folder


@dataclass
class ElectraOutput(ModelOutput):
    """:class:`ModelOutput` plus the discriminator's side: ``logits`` (B, T) are its replaced-token logits,
    ``prediction_logits`` (N, V) / ``mlm_loss`` the generator's at the N masked positions ((B·P, V) at the
    batch's ``mlm_positions``, padded slots included)."""

    rtd_loss: torch.Tensor | None = None  # mean binary cross-entropy over the real tokens
    weighted_rtd_loss: torch.Tensor | None = None  # rtd_weight · rtd_loss: the term that is trained on
    rtd_labels: torch.Tensor | None = None  # (B, T): 1 where the discriminator's input differs from the text
    corrupted_ids: torch.Tensor | None = None  # (B, T): the discriminator's input


def sample_tokens(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of ``logits`` (N, V), drawn from softmax(logits): the Gumbel-max trick,
    argmax(logits + g) with g = −log(−log u), u ~ U(0, 1) (the official implementation's sampler). No gradient."""
    with torch.no_grad():
        logits = logits.detach().float()
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
        gumbel = -torch.log(-torch.log(u.clamp_(min=torch.finfo(torch.float32).tiny)))
        return (logits + gumbel).argmax(-1)


def replace_masked(input_ids: torch.Tensor, labels: torch.Tensor, sampled: torch.Tensor,
                   positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's input and its labels: the original text (``labels`` where set, else ``input_ids``)
    with ``sampled`` (N,) at the N labelled positions; a label is 1 where the token differs from the original,
    so a sample that equals the original token counts as original.

    With ``positions`` (B, P) (static shapes: the batch's ``mlm_positions``, padded with -1), ``sampled`` is
    (B·P,), one per slot, and the samples of padded slots are dropped: they are written to a spare column
    that is cut off, so no real token changes and the shapes do not depend on the data."""
    masked = labels != IGNORE_INDEX  # (B, T)
    original = torch.where(masked, labels, input_ids)
    if positions is None:
        corrupted = original.clone()
        corrupted[masked] = sampled.to(corrupted.dtype)
    else:
        B, T = original.shape
        slots = torch.where(positions >= 0, positions, T)  # (B, P): padded slots → the spare column T
        wide = torch.cat([original, original.new_zeros(B, 1)], dim=1)  # (B, T + 1)
        corrupted = wide.scatter(1, slots, sampled.view(B, -1).to(wide.dtype))[:, :T]
    return corrupted, (corrupted != original).long()


class ElectraPretrainingModel(nn.Module):
    """The generator and the discriminator of one ELECTRA pretraining run (see the module docstring).

    ``config`` is the discriminator's (``discriminator=True``, electra layout); the generator is built from
    :func:`~plmkit.config.generator_config` unless given (both given: models loaded from a checkpoint).
    """

    def __init__(self, config: ModelConfig, generator: PlmModel | None = None,
                 discriminator: PlmModel | None = None):
        super().__init__()
        if not config.discriminator or config.generator_size is None:
            raise ConfigError(f"ELECTRA pretraining needs a discriminator config (model_type electra, discriminator="
                              f"true, a generator_size); got model_type {config.model_type!r}, discriminator="
                              f"{config.discriminator}")
        self.config = config
        self.discriminator = discriminator if discriminator is not None else PlmModel(config, task="pretraining")
        self.generator = generator if generator is not None else PlmModel(generator_config(config), task="masked-lm")
        if self.discriminator.active_heads != ("rtd",) or self.generator.active_heads != ("mlm",):
            raise ConfigError(f"ELECTRA pretraining pairs a replaced-token discriminator with a masked-LM generator; got "
                              f"heads {self.discriminator.active_heads} and {self.generator.active_heads}")
        self._tie_embeddings()

    def _tie_embeddings(self) -> None:
        """The generator uses the discriminator's embedding module (token, position, segment tables, LayerNorm)."""
        ours, theirs = self.discriminator.body.embeddings, self.generator.body.embeddings
        shapes = {n: tuple(p.shape) for n, p in ours.named_parameters()}
        other = {n: tuple(p.shape) for n, p in theirs.named_parameters()}
        if shapes != other:
            raise ConfigError(f"the generator's embeddings {other} do not have the discriminator's shapes {shapes}; "
                              "ELECTRA shares them (the generator's embedding_size must be the discriminator's)")
        self.generator.body.embeddings = ours

    @property
    def rtd_weight(self) -> float:
        return float(self.config.rtd_weight)

    # ------------------------------------------------------------------ loss contract (protocol.py)
    def loss_counts(self, batch: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """Rows, masked tokens (the generator's predictions) and real tokens (the discriminator's), on the host."""
        return {ROWS: count_rows(batch), LABELLED: count_labelled(batch), TOKENS: count_tokens(batch)}

    def prepare_training(self, gradient_checkpointing: bool = False) -> None:
        self.discriminator.prepare_training(gradient_checkpointing)
        self.generator.prepare_training(gradient_checkpointing)

    def gradient_checkpointing_enable(self) -> None:
        self.discriminator.gradient_checkpointing_enable()
        self.generator.gradient_checkpointing_enable()

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, document_ids: torch.Tensor | None = None,
                output_hidden_states: bool = False, mlm_positions: torch.Tensor | None = None,
                **unused: Any) -> ElectraOutput:
        """``input_ids`` (B, T) with the data's masks in, ``labels`` (B, T) the original tokens at the masked
        positions (-100 elsewhere). In eval mode the samples come from a fixed seed, so that a held-out
        evaluation is the same at every step and takes nothing from the training's random stream.

        ``mlm_positions`` (B, P), padded with -1 (static shapes, data.max_predictions): only the generator's MLM
        uses it — it predicts and samples at the P slots of each row, and :func:`replace_masked` drops the samples
        of padded slots; the discriminator judges every token either way."""
        if unused:
            raise UsageError(f"unexpected model input(s): {', '.join(sorted(unused))}")
        if labels is None:
            raise UsageError("ELECTRA pretraining needs labels: the original tokens at the masked positions "
                             "(-100 elsewhere), as the rtd objective's batches carry them")
        shared = dict(attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
                      document_ids=document_ids)
        gen = self.generator(input_ids, labels=labels, mlm_positions=mlm_positions, **shared)
        rng = None
        if not self.training:
            rng = torch.Generator(device=input_ids.device)
            rng.manual_seed(0)
        sampled = sample_tokens(gen.prediction_logits, rng)  # (N,), or (B·P,) with mlm_positions
        corrupted, replaced = replace_masked(input_ids, labels, sampled, mlm_positions)
        disc = self.discriminator(corrupted, labels=replaced, output_hidden_states=output_hidden_states, **shared)
        out = ElectraOutput(logits=disc.logits, prediction_logits=gen.prediction_logits, mlm_loss=gen.mlm_loss,
                            rtd_loss=disc.loss, rtd_labels=replaced, corrupted_ids=corrupted,
                            last_hidden_state=disc.last_hidden_state, hidden_states=disc.hidden_states)
        out.weighted_rtd_loss = self.rtd_weight * out.rtd_loss
        out.loss = out.mlm_loss + out.weighted_rtd_loss
        out.loss_fields = (LossField("mlm_loss", LABELLED), LossField("weighted_rtd_loss", TOKENS, logged=False),
                           LossField("rtd_loss", TOKENS, in_loss=False))
        return out

    # ------------------------------------------------------------------ I/O
    def save_pretrained(self, path: str | os.PathLike, tokenizer: Any = None,
                        extra: dict[str, Any] | None = None) -> Path:
        """The discriminator (``ElectraForPreTraining``) in ``path``, the generator (``ElectraForMaskedLM``) in
        ``path/generator``; both with the tokenizer, each a folder transformers and plmkit open."""
        folder = Path(path)
        about = {"generator_size": self.config.generator_size, "rtd_weight": self.rtd_weight}
        self.discriminator.save_pretrained(folder, tokenizer=tokenizer,
                                           extra={**(extra or {}), "electra": {**about, "generator": GENERATOR_DIR}})
        self.generator.save_pretrained(folder / GENERATOR_DIR, tokenizer=tokenizer,
                                       extra={**(extra or {}), "electra": {**about, "discriminator": ".."}})
        return folder

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
