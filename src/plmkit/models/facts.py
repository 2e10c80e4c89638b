"""Facts about a loaded model that callers outside ``models/`` ask the same way: where it runs, the id
that pads its rows, and how long a row may be. One helper each, so fine-tuning, embedding and scoring
cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import UsageError


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without any)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def pad_token_id(tokenizer: Any, model: Any = None) -> int:
    """The id that pads a batch of rows: the tokenizer's pad token, else the model config's
    ``pad_token_id``, else the tokenizer's end-of-text token (GPT-2 has no pad), else 0.

    Padded positions are masked out of attention, so the choice changes no real position's output;
    it matters where a model finds the last real token by the pad id (GPT-2's sequence classifier).
    """
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return int(pad) if pad is not None else 0


def check_max_length(model: Any, max_length: int) -> int | None:
    """``--max-length`` against the positions of a model or a :class:`~plmkit.config.ModelConfig`:
    UsageError when longer. Returns the positions available (None for a model without a position
    table, e.g. ELMo or a BiLSTM)."""
    available = getattr(getattr(model, "config", model), "positions_available", None)
    if available is not None and max_length > available:
        raise UsageError(f"--max-length {max_length} exceeds the model's {available} positions; "
                         f"use --max-length {available} or less")
    return available
