"""Optimisers and learning-rate schedules.

* AdamW (Loshchilov & Hutter, 2019) — fused where the PyTorch build supports it, else foreach —
  with BERT's convention of no weight decay on biases and LayerNorm weights.
* LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
  minutes"): Adam's update rescaled per layer by the trust ratio ||w|| / ||update||, which keeps
  very large batches (BERT, ALBERT) stable.
* Warmup then linear / cosine decay (or constant). With a time budget the schedule follows the
  clock: progress is elapsed / budget rather than step / max_steps.
* Two CPU savings around the optimiser, each giving the same update as the plain recipe
  (``clip_grad_norm_``, ``step``, ``zero_grad(set_to_none=True)``), to float rounding:

  - :func:`clipped_step`: fused AdamW divides the gradients by the clipping factor inside its own
    kernel (the ``grad_scale`` that ``torch.amp.GradScaler`` hands it) instead of a separate pass
    multiplying every gradient;
  - :class:`ResidentEmbeddingGrads`: an embedding table's gradient is its looked-up rows. PyTorch
    builds it as a fresh dense (V, E) tensor each step — for a 30k × 384 vocabulary a 47 MB
    allocation whose first touch costs page faults, ~30 ms on this 2-core CPU, as much as the
    optimiser step itself on short-sentence batches. Here the table's gradient buffer stays
    allocated: the lookup returns its gradient as rows (``nn.Embedding(sparse=True)``), autograd
    adds them into the dense buffer, and zeroing it is a memset. The optimiser still sees a dense
    gradient, so AdamW's update of every row (moments decay where a row was not looked up) is
    unchanged.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices; do not decay biases, LayerNorm weights or 1-D parameters (BERT's rule)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


class Lamb(torch.optim.Optimizer):
    """LAMB with decoupled weight decay and bias correction (the NVIDIA/You et al. formulation)."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.01, max_trust: float = 10.0):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_trust=max_trust)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = m / (1 - beta1 ** step)
                v_hat = v / (1 - beta2 ** step)
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm, u_norm = p.norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), (w_norm / u_norm).clamp(max=group["max_trust"]),
                                    torch.ones_like(w_norm))
                p.add_(update * trust, alpha=-group["lr"])
        return loss


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, betas: tuple[float, float],
                    eps: float) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name != "adamw":
        raise ValueError(f"unknown optimizer {name!r}")
    device = next(model.parameters()).device
    try:  # fused kernels exist for CPU and CUDA in recent PyTorch
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                 fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=True)


def grad_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """The 2-norm of all gradients together (what ``clip_grad_norm_`` returns), without clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # PyTorch >= 2.6
    if total_norm is not None:
        return total_norm(grads, 2.0, foreach=True)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _fused_adam(optimizer: torch.optim.Optimizer) -> bool:
    return isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW) and all(
        g.get("fused") for g in optimizer.param_groups)


def clipped_step(optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], norm: torch.Tensor,
                 max_norm: float) -> None:
    """``optimizer.step()`` on the gradients scaled by min(1, max_norm / (norm + 1e-6)) — what
    ``clip_grad_norm_(params, max_norm)`` then ``step()`` do (``norm`` from :func:`grad_norm`;
    ``max_norm <= 0``: no clipping). Fused AdamW takes the divisor max(1, (norm + 1e-6) / max_norm) as
    its ``grad_scale`` and divides in its kernel; other optimisers get the gradients divided first."""
    if max_norm <= 0:
        optimizer.step()
        return
    divisor = torch.clamp((norm.detach().float() + 1e-6) / max_norm, min=1.0)
    if _fused_adam(optimizer):
        optimizer.grad_scale = divisor  # read by Adam/AdamW.step, as torch.amp.GradScaler does
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        torch._foreach_div_(grads, divisor.to(grads[0].device))
    optimizer.step()


class ResidentEmbeddingGrads:
    """Keeps the gradient buffers of a model's trainable CPU ``nn.Embedding`` tables allocated across
    steps (see the module docstring). Use as a context around the training loop and call
    :meth:`zero_grad` instead of ``optimizer.zero_grad(set_to_none=True)``; on exit the tables are
    plain again (``sparse`` restored, gradients None). ``enabled=False`` (GPUs, DDP, torch.compile)
    makes it the plain ``zero_grad``."""

    def __init__(self, model: nn.Module, enabled: bool = True):
        self.tables: list[nn.Embedding] = []
        seen: set[int] = set()  # a weight shared by two tables gets one buffer
        for m in model.modules() if enabled else ():
            if (isinstance(m, nn.Embedding) and m.weight.requires_grad and m.weight.device.type == "cpu"
                    and not m.sparse and id(m.weight) not in seen):
                seen.add(id(m.weight))
                self.tables.append(m)
        self._buffers: list[torch.Tensor] = []

    def __enter__(self) -> "ResidentEmbeddingGrads":
        self._buffers = [torch.zeros_like(m.weight) for m in self.tables]
        for m, buf in zip(self.tables, self._buffers):
            m.sparse = True  # its backward returns the looked-up rows, added into the dense .grad below
            m.weight.grad = buf
        return self

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        for m, buf in zip(self.tables, self._buffers):
            buf.zero_()
            m.weight.grad = buf

    def __exit__(self, *exc) -> None:
        for m in self.tables:
            m.sparse = False
            m.weight.grad = None
        self._buffers = []


def lr_factor(progress: float, warmup: float, schedule: str, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak LR at ``progress`` ∈ [0, 1] of training; ``warmup`` is a fraction too."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    if schedule == "constant":
        return 1.0
    rest = (progress - warmup) / max(1e-12, 1.0 - warmup)
    if schedule == "linear":
        return min_ratio + (1.0 - min_ratio) * (1.0 - rest)
    if schedule == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * rest))
    raise ValueError(f"unknown schedule {schedule!r}")
