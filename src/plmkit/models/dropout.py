"""Dropout that is cheap on CPUs: the mask from 16-bit random integers instead of ``bernoulli_``.

PyTorch's CPU dropout draws one ``bernoulli_`` sample per element, ~3× the cost of drawing a 16-bit
integer; in CPU fine-tuning that draw was ~20% of a training step (MiniLM on SQuAD windows, where the
attention probabilities are 12 × T × T per row: ``benchmarks/finetune_profile.py --task squad``). Here
an element is dropped when a uniform 16-bit integer falls below ``round(p · 65536)``: the drop
probability is ``p`` to within 2⁻¹⁷, and the kept values are scaled by the exact inverse of the keep
probability, so the output is unbiased as ``F.dropout``'s is. The mask is kept as booleans (1 byte
per element) for the backward pass.

Only CPU tensors take this path; on a GPU ``F.dropout`` and SDPA's fused dropout are already fast.
The integers come from the default generator, so ``torch.manual_seed``, exact resume and activation
checkpointing (which replays the generator state) behave as with ``F.dropout``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16


def _keep_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """Booleans, True with probability 1 − round(p·2¹⁶)/2¹⁶, and the scale that keeps the mean."""
    drop = round(p * _LEVELS)
    n = math.prod(shape)
    # 64-bit draws cut into four 16-bit integers: a quarter of the generator calls of int16 draws
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), (1 << 63) - 1)
    keep = bits.view(torch.int16)[:n].view(shape) >= drop - _LEVELS // 2
    return keep, _LEVELS / (_LEVELS - drop)


class _CpuDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep, scale = _keep_mask(x.shape, p, x.device)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None


def uses_cpu_mask(x: torch.Tensor, p: float) -> bool:
    """Whether dropout at rate ``p`` on ``x`` takes the 16-bit mask: a CPU tensor and a rate the 2¹⁶
    levels can express (0 < round(p·2¹⁶) < 2¹⁶); elsewhere ``F.dropout`` / SDPA's own dropout."""
    return x.device.type == "cpu" and 0 < round(p * _LEVELS) < _LEVELS


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)``, with the cheaper mask on CPU tensors."""
    if not training or p <= 0.0:
        return x
    if not uses_cpu_mask(x, p):
        return F.dropout(x, p, training)
    return _CpuDropout.apply(x, p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same attributes, no parameters) with :func:`dropout`'s CPU mask."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)


def attention_with_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                           is_causal: bool, p: float) -> torch.Tensor:
    """softmax(q·kᵀ/√d + mask) with dropout, · v: what SDPA computes on a CPU when dropout is on (its
    math path), with :func:`dropout`'s mask. ``mask`` is boolean, True = attend, broadcastable to
    (B, heads, Tq, Tk), and leaves every query at least one key.

    Every pass over the (B, heads, Tq, Tk) scores counts: the mask is added in place (its backward is
    free), dropout zeroes probabilities with one ``where`` and its 1/(1 − p) scale is applied to the
    (B, heads, Tq, d) output instead."""
    scores = torch.matmul(q * (q.shape[-1] ** -0.5), k.transpose(-2, -1))  # (B, heads, Tq, Tk)
    Tq, Tk = scores.shape[-2:]
    if is_causal and mask is None:
        mask = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(Tk - Tq)
    if mask is not None:
        scores.add_(torch.zeros(mask.shape, dtype=scores.dtype, device=q.device).masked_fill_(~mask, float("-inf")))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    if p <= 0.0:
        return torch.matmul(probs, v)
    keep, scale = _keep_mask(probs.shape, p, probs.device)
    return torch.matmul(torch.where(keep, probs, 0.0), v) * scale
