"""The user-facing model: one :class:`TransformerEncoder` body plus named task heads.

A model holds the heads its checkpoint had and the heads its *task* needs; ``forward`` runs the
task's heads. Tasks use Hugging Face's vocabulary:

==========================  =====================  ==========================================
task                        heads                  HF class (BERT family)
==========================  =====================  ==========================================
``None`` (base)             —                      ``BertModel``
``pretraining``             mlm + pair_head        ``BertForPreTraining`` / ``AlbertForPreTraining``
                            (mlm alone)            (``RobertaForMaskedLM``: ``pair_head="none"``)
                            rtd                    ``ElectraForPreTraining`` (``discriminator=True``)
``masked-lm``               mlm                    ``*ForMaskedLM``
``causal-lm``               lm                     ``GPT2LMHeadModel``
``sequence-classification`` classifier             ``*ForSequenceClassification``
``question-answering``      qa                     ``*ForQuestionAnswering``
``multiple-choice``         choice                 ``*ForMultipleChoice``
``token-classification``    tagger                 ``*ForTokenClassification``
==========================  =====================  ==========================================

``forward`` takes tensors and optional labels and returns a :class:`ModelOutput` with ``loss`` and
the logits under transformers' names. Saving is :func:`save_pretrained` here (names mapped by
:mod:`plmkit.models.hf`); loading any model folder is :func:`plmkit.models.auto.from_pretrained`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import UsageError
from .folder import write_config, write_weights
from .heads import build_head
from .protocol import (LABELLED, NEXT_TOKENS, ROWS, TOKENS, LossField, LossTerm, count_labelled, count_rows,
                       count_tokens)
from .hf import config_to_hf, hf_state_dict
from .transformer import TransformerEncoder, scaled_init_

TASKS = ("pretraining", "masked-lm", "causal-lm", "sequence-classification", "question-answering",
         "multiple-choice", "token-classification")
TASK_ALIASES = {"mlm": "masked-lm", "lm": "causal-lm", "classification": "sequence-classification",
                "regression": "sequence-classification", "qa": "question-answering",
                "mc": "multiple-choice", "ner": "token-classification", "tagging": "token-classification"}


def normalize_task(task: str | None) -> str | None:
    if task is None:
        return None
    task = TASK_ALIASES.get(task, task)
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return task


def task_heads(task: str | None, config: ModelConfig) -> tuple[str, ...]:
    """The heads a task runs in ``forward``, from the config's fields: pretraining is the causal LM, ELECTRA's
    replaced-token detection (a discriminator) or the MLM with the config's ``pair_head``."""
    task = normalize_task(task)
    if task is None:
        return ()
    if task == "pretraining":
        if config.causal:
            return ("lm",)
        if config.discriminator:
            return ("rtd",)
        return ("mlm",) if config.pair_head == "none" else ("mlm", config.pair_head)
    if task == "multiple-choice" and config.choice_pooling == "none":
        raise UsageError(f"multiple-choice is not available for {config.model_type} models (transformers has no such "
                         "class either)")
    if task in ("masked-lm",) and config.causal:
        raise UsageError("a causal model has no masked-LM head; use task 'causal-lm'")
    return {"masked-lm": ("mlm",), "causal-lm": ("lm",), "sequence-classification": ("classifier",),
            "question-answering": ("qa",), "multiple-choice": ("choice",),
            "token-classification": ("tagger",)}[task]


@dataclass
class ModelOutput:
    """What ``model(...)`` returns; absent fields are None. Supports ``out["loss"]`` and ``out.loss``."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    # MLM: (B, T, V); (N, V) at the labelled positions; (B·P, V) at the batch's mlm_positions (padded slots too)
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None  # NSP / SOP: (B, 2)
    # ELECTRA's discriminator puts its (B, T) replaced-token logits under ``logits``, as ElectraForPreTraining does.
    sop_logits: torch.Tensor | None = None  # ALBERT's name for the SOP logits (same tensor)
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    mlm_loss: torch.Tensor | None = None
    pair_loss: torch.Tensor | None = None
    # The loss contract (models/protocol.py): which of the fields above are loss terms, over which counts.
    loss_fields: tuple[LossField, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None and f.name != "loss_fields"]

    @property
    def loss_terms(self) -> list[LossTerm]:
        """The loss terms (models/protocol.py), read from the fields ``loss_fields`` names as they are now."""
        return [LossTerm(f.name, getattr(self, f.name), f.count, f.in_loss, f.logged)
                for f in self.loss_fields if getattr(self, f.name) is not None]


class PlmModel(nn.Module):
    """Encoder body + heads. Build with :func:`plmkit.from_pretrained` or ``PlmModel(config, task=...)``."""

    def __init__(self, config: ModelConfig, task: str | None = None, heads: Iterable[str] = (),
                 add_pooler: bool | None = None):
        super().__init__()
        self.config = config
        self.task = normalize_task(task)
        wanted = list(dict.fromkeys([*heads, *task_heads(self.task, config)]))
        if add_pooler is None:
            # Hugging Face's base models (BertModel, RobertaModel, AlbertModel) carry a pooler; GPT-2's, ELECTRA's do not.
            add_pooler = self.task is None and config.has_pooler
        self.body = TransformerEncoder(config, add_pooler=add_pooler)
        self.heads = nn.ModuleDict()
        for kind in wanted:
            self.add_head(kind)
        if config.pre_norm:
            scaled_init_(self.body, config)
        # Tensors from a loaded checkpoint that plmkit does not use (old buffers such as
        # position_ids, unknown heads): written back unchanged so nothing is lost.
        self.passthrough: dict[str, dict[str, torch.Tensor]] = {"body": {}, "top": {}}

    # ------------------------------------------------------------------ heads
    def add_head(self, kind: str) -> nn.Module:
        if kind in self.heads:
            return self.heads[kind]
        head = build_head(kind, self.config)
        if getattr(head, "uses_pooler", False):
            self.body.add_pooler()
        head.to(self.body.embeddings.word.weight.device)
        self.heads[kind] = head
        return head

    def set_task(self, task: str | None, num_labels: int | None = None) -> list[str]:
        """Switch the task; returns the names of heads that had to be newly created."""
        task = normalize_task(task)
        if num_labels is not None and num_labels != self.config.num_labels:
            self.config.num_labels = num_labels
            for kind in ("classifier", "tagger"):  # their size depends on num_labels
                if kind in self.heads:
                    del self.heads[kind]
        created = [k for k in task_heads(task, self.config) if k not in self.heads]
        for kind in created:
            self.add_head(kind)
        self.task = task
        return created

    @property
    def active_heads(self) -> tuple[str, ...]:
        return task_heads(self.task, self.config)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.body.embeddings.word.weight.numel()
        return n

    def gradient_checkpointing_enable(self) -> None:
        self.body.gradient_checkpointing = True

    # ------------------------------------------------------------------ loss contract (protocol.py)
    def loss_counts(self, batch: dict[str, torch.Tensor]) -> dict[str, int]:
        """Rows, and the predictions of the token-level heads (masked / tagged tokens, next tokens), on the host."""
        counts = {ROWS: count_rows(batch)}
        heads = self.active_heads
        if "mlm" in heads or "tagger" in heads:
            counts[LABELLED] = count_labelled(batch)
        if "lm" in heads:
            counts[NEXT_TOKENS] = count_labelled(batch, shift=1)
        if "rtd" in heads:
            counts[TOKENS] = count_tokens(batch)
        return counts

    def prepare_training(self, gradient_checkpointing: bool = False) -> None:
        if gradient_checkpointing:
            self.gradient_checkpointing_enable()
        self.body.check_inputs = False  # the data pipeline guarantees valid ids; avoids a sync per step

    # ------------------------------------------------------------------ model protocol (protocol.py)
    input_kind = "tokens"

    @property
    def lm_kind(self) -> str | None:
        """"causal" (a causal LM scores by the chain rule), "masked" (an MLM head: pseudo-log-likelihood) or None."""
        if self.config.causal:
            return "causal"
        return "masked" if "mlm" in self.heads else None

    @property
    def num_layer_states(self) -> int:
        return self.config.num_hidden_layers + 1

    def describe(self) -> dict[str, Any]:
        return {"model_type": self.config.model_type, "task": self.task, "heads": list(self.heads.keys())}

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               all_layers: bool = True) -> tuple[torch.Tensor, ...]:
        """The body's hidden states (B, T, H): embeddings + every layer, or (``all_layers=False``) the last alone."""
        if all_layers:
            return self.body(input_ids, attention_mask, output_hidden_states=True).hidden_states
        return (self.body(input_ids, attention_mask).last_hidden_state,)

    def lm_log_probs(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """(N, H) last-layer states at the predicting positions, (N,) target ids → (N,) log-probs (float32).

        The MLM head (``lm_kind == "masked"``: each row the state at a masked position) or the causal LM
        (each row the state before its target); logits for at most ``chunk`` rows at a time.
        """
        decoder = self.body.embeddings.word.weight
        out = []
        for i in range(0, hidden.shape[0], chunk):
            h = hidden[i:i + chunk]
            t = targets[i:i + chunk]
            if self.lm_kind == "masked":
                labels = t.unsqueeze(1)  # (n, 1): one labelled position per row → logits (n, V) in row order
                logits, _ = self.heads["mlm"](h.unsqueeze(1), decoder, labels)
            else:
                lm = self.heads["lm"] if "lm" in self.heads else None
                logits = lm(h, decoder)[0] if lm is not None else F.linear(h, decoder)  # (n, V)
            logp = torch.log_softmax(logits.float(), dim=-1)
            out.append(logp.gather(1, t.unsqueeze(1)).squeeze(1))
        return torch.cat(out) if out else hidden.new_zeros(0)

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, next_sentence_label: torch.Tensor | None = None,
                sentence_order_label: torch.Tensor | None = None,
                start_positions: torch.Tensor | None = None, end_positions: torch.Tensor | None = None,
                output_hidden_states: bool = False, document_ids: torch.Tensor | None = None,
                mlm_positions: torch.Tensor | None = None, **unused: Any) -> ModelOutput:
        """``mlm_positions`` (B, P): the MLM head's positions, padded with -1 (static shapes; data.max_predictions)."""
        if unused:
            raise UsageError(f"unexpected model input(s): {', '.join(sorted(unused))}")
        heads = self.active_heads
        num_choices = None
        if "choice" in heads:
            if input_ids.dim() != 3:
                raise UsageError(f"multiple-choice input_ids must be (batch, choices, length), got {tuple(input_ids.shape)}")
            num_choices = input_ids.shape[1]
            flat = lambda t: None if t is None else t.reshape(-1, t.shape[-1])  # noqa: E731
            input_ids, attention_mask, token_type_ids, position_ids = map(
                flat, (input_ids, attention_mask, token_type_ids, position_ids))

        # A classifier or multiple-choice head reads one position per row: the last layer computes only
        # that row (same numbers; the head then finds it at index 0), and last_hidden_state holds it alone.
        rows = None
        if len(heads) == 1 and heads[0] in ("classifier", "choice") and not output_hidden_states:
            rows = self.heads[heads[0]].read_positions(input_ids)  # (B, 1)
        enc = self.body(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                        document_ids=document_ids, output_positions=rows)
        h = enc.last_hidden_state  # (B, T, H), or (B, 1, H) at ``rows``
        needs_pool = any(getattr(self.heads[k], "uses_pooler", False) for k in heads)
        pooled = self.body.pool(h) if (needs_pool or (not heads and self.body.pooler is not None)) else None
        out = ModelOutput(last_hidden_state=h, pooler_output=pooled, hidden_states=enc.hidden_states)
        decoder = self.body.embeddings.word.weight
        losses = []
        terms: list[LossField] = []
        for kind in heads:
            head = self.heads[kind]
            if kind == "mlm":
                out.prediction_logits, out.mlm_loss = head(h, decoder, labels, mlm_positions)
                if self.task == "masked-lm":  # *ForMaskedLM names them `logits`
                    out.logits = out.prediction_logits
                losses.append(out.mlm_loss)
                if out.mlm_loss is not None:
                    terms.append(LossField("mlm_loss", LABELLED))
            elif kind in ("nsp", "sop"):
                pair = next_sentence_label if next_sentence_label is not None else sentence_order_label
                out.seq_relationship_logits, out.pair_loss = head(pooled, pair)
                if kind == "sop":
                    out.sop_logits = out.seq_relationship_logits
                losses.append(out.pair_loss)
                if out.pair_loss is not None:
                    terms.append(LossField("pair_loss", ROWS))
            elif kind == "rtd":  # labels: 1 where the token was replaced
                out.logits, loss = head(h, labels, attention_mask)
                losses.append(loss)
                if loss is not None:
                    terms.append(LossField("loss", TOKENS, logged=False))
            elif kind == "lm":
                out.logits, loss = head(h, decoder, labels)
                losses.append(loss)
                if loss is not None:
                    terms.append(LossField("loss", NEXT_TOKENS, logged=False))
            elif kind == "classifier":
                out.logits, loss = head(h, pooled, input_ids, labels)
                losses.append(loss)
            elif kind == "qa":
                out.start_logits, out.end_logits, loss = head(h, start_positions, end_positions)
                losses.append(loss)
            elif kind == "choice":
                out.logits, loss = head(h, pooled, num_choices, labels)
                losses.append(loss)
            elif kind == "tagger":
                out.logits, loss = head(h, labels)
                losses.append(loss)
                if loss is not None:
                    terms.append(LossField("loss", LABELLED, logged=False))
            if kind in ("classifier", "qa", "choice") and loss is not None:
                terms.append(LossField("loss", ROWS, logged=False))
        present = [loss for loss in losses if loss is not None]
        if present:
            out.loss = sum(present[1:], present[0])
            out.loss_fields = tuple(terms)
        return out

    # ------------------------------------------------------------------ I/O (names: hf.py; loading: auto.py)
    def save_pretrained(self, path, only_task_heads: bool = False, tokenizer=None,
                        extra: dict[str, Any] | None = None) -> None:
        """Write the Hugging Face layout: config.json + model.safetensors (+ tokenizer files)."""
        save_pretrained(self, path, only_task_heads=only_task_heads, tokenizer=tokenizer, extra=extra)


def save_pretrained(model: PlmModel, path: str | os.PathLike, only_task_heads: bool = False, tokenizer=None,
                    extra: dict[str, Any] | None = None) -> Path:
    folder = Path(path)
    state, arch = hf_state_dict(model, only_task_heads=only_task_heads)
    plm_extra = {"task": model.task, **(extra or {})}
    hf_config = config_to_hf(model.config, arch, extra=plm_extra)
    write_weights(folder, state)
    write_config(folder, hf_config)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder
