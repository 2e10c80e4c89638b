"""``--micro-batch auto``: the largest micro-batch that fits the device, for any requested batch.

BERT-large was hard to reproduce on 12–16 GB GPUs because the batch the optimizer sees had to fit
in memory at once. Gradient accumulation removes that limit: a batch of B rows is split into
micro-batches of M rows (M divides B), their gradients are summed, and the trainer normalises the
loss over the whole effective batch (see :mod:`plmkit.training.trainer`), so B/M micro-batches of M
are the same optimisation as one batch of B, to rounding. This module only *chooses* M; the trainer's
existing ``grad_accum`` does the accumulation.

How M is chosen (largest divisor of B that fits):

* **CUDA** — measure, don't guess. From the largest divisor down, run one real forward + backward
  of the actual model on a full-length batch of the objective's real shapes (labels included), under
  bf16 autocast and activation checkpointing as configured, with the gradients already allocated (as
  they are from the second micro-batch on). ``torch.OutOfMemoryError`` means "too big"; otherwise
  the peak allocated memory plus the optimizer state that does not exist yet (AdamW/LAMB: two fp32
  tensors per parameter) plus a safety margin (10%) must stay within what the device gives this
  process (free memory + what PyTorch already holds).
* **CPU** — there is no out-of-memory exception (the kernel's OOM killer ends the process), so
  estimate. Reset the process' peak RSS (write ``5`` to ``/proc/self/clear_refs``), read the peak
  (``VmHWM`` in ``/proc/self/status``) after one forward + backward at two small micro-batch sizes,
  fit ``peak(m) = fixed + per_row · m``, and take the largest divisor whose predicted peak (plus the
  optimizer state) stays under 80% of ``MemAvailable`` (``/proc/meminfo``) + the current RSS. Where
  these files do not exist (not Linux), the whole batch is used and the message says so.

The probe leaves no trace: gradients are dropped, the model's mode and the torch RNG states are
restored, and the weights are never updated, so a run with ``auto`` equals, bit for bit, a run with
the same M given explicitly. Under torchrun every rank probes and all take the minimum.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import PlmkitError, UsageError

GB = 1e9
# Headroom above the measured CUDA peak: allocator fragmentation, optimizer temporaries, NCCL buffers.
CUDA_SAFETY = 0.10
# Share of (available + already resident) host memory a CPU run may plan to use: the estimate is a
# line through two small measurements, and the OS, page cache and the data pipeline need room too.
CPU_FRACTION = 0.80
# Optimizer state per parameter, in fp32 tensors: AdamW and LAMB keep two moments.
OPTIMIZER_STATES = {"adamw": 2, "lamb": 2}

_PROC = Path("/proc/self")
_MEMINFO = Path("/proc/meminfo")


@dataclass
class MicroBatchChoice:
    """The micro-batch chosen for a per-process ``batch_size``, and why."""

    batch_size: int
    micro_batch: int
    auto: bool
    # One clause for the message, e.g. "probe: peak 3.1 GB at 16, 12.0 GB available".
    reason: str
    # Probe measurements (for the record in run.json); empty for an explicit M.
    details: dict[str, Any] | None = None

    @property
    def grad_accum(self) -> int:
        return self.batch_size // self.micro_batch

    def message(self) -> str:
        steps = "accumulation step" if self.grad_accum == 1 else "accumulation steps"
        return (f"plmkit: micro-batch {self.micro_batch} × {self.grad_accum} {steps} = batch {self.batch_size} "
                f"({self.reason})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grad_accum"] = self.grad_accum
        return d


def divisors(n: int) -> list[int]:
    """The divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def parse_micro_batch(text: str) -> int | str:
    """``--micro-batch`` value: ``auto`` or a positive integer (argparse ``type=``)."""
    import argparse

    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}")
    return value


def check_micro_batch(micro_batch: int | str, batch_size: int) -> None:
    """A UsageError unless ``micro_batch`` is ``auto`` or a divisor of ``batch_size``."""
    if micro_batch == "auto":
        return
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
        raise UsageError(f"--micro-batch must be 'auto' or a positive integer, got {micro_batch!r}")
    if batch_size % micro_batch:
        divs = divisors(batch_size)
        raise UsageError(f"--micro-batch {micro_batch} does not divide --batch-size {batch_size}: the batch is "
                         f"split into equal micro-batches. Use one of its divisors ({', '.join(map(str, divs))}), "
                         "or --micro-batch auto to pick the largest that fits the device")


# ---------------------------------------------------------------------------- host memory readers
def reset_peak_rss() -> bool:
    """Reset the process' peak RSS (``VmHWM``) to its current RSS; False where Linux' interface is missing."""
    try:
        (_PROC / "clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int | None:
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss() -> int | None:
    """Peak resident memory of this process since the last reset, in bytes (``VmHWM``)."""
    return _status_kb("VmHWM")


def current_rss() -> int | None:
    """Resident memory of this process now, in bytes (``VmRSS``)."""
    return _status_kb("VmRSS")


def available_memory() -> int | None:
    """Memory the system can give without swapping (``MemAvailable``), in bytes."""
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# ---------------------------------------------------------------------------- the probe
def param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def optimizer_state_bytes(model: nn.Module, optimizer: str = "adamw") -> int:
    """Bytes the optimizer will allocate on its first step (fp32 moments per trainable parameter)."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return OPTIMIZER_STATES.get(optimizer, 2) * 4 * n


@contextlib.contextmanager
def _untouched(model: nn.Module, device: torch.device):
    """Restore the model's mode and gradients and the torch RNG states after the probe."""
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    was_training = model.training
    try:
        model.train()
        yield
    finally:
        for p in model.parameters():
            p.grad = None
        model.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _allocate_grads(model: nn.Module) -> None:
    """Gradients exist from the second micro-batch on: count them in every measured peak."""
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)


def forward_backward(model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device, bf16: bool) -> None:
    """One training forward + backward of ``batch`` (the memory a micro-batch needs)."""
    batch = {k: v.to(device) for k, v in batch.items()}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        out = model(**batch)
    loss = out.loss
    if loss is None:
        raise PlmkitError("--micro-batch auto: the model returned no loss for a probe batch; pass --micro-batch N")
    loss.float().backward()
    del out, loss, batch


def _fits_cuda(model: nn.Module, make_batch: Callable[[int], dict[str, torch.Tensor]], m: int,
               device: torch.device, bf16: bool) -> int | None:
    """Peak allocated bytes of a forward + backward at micro-batch ``m``, or None when it runs out of memory."""
    oom = False
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        _allocate_grads(model)
        forward_backward(model, make_batch(m), device, bf16)
        torch.cuda.synchronize(device)
    except torch.OutOfMemoryError:
        oom = True  # leave the except block first, so the traceback's tensors can be freed
    peak = torch.cuda.max_memory_allocated(device)
    for p in model.parameters():
        if p.grad is not None:
            p.grad.zero_()
    gc.collect()
    torch.cuda.empty_cache()
    return None if oom else int(peak)


def probe_cuda(model: nn.Module, make_batch: Callable[[int], dict[str, torch.Tensor]], batch_size: int,
               device: torch.device, bf16: bool = False, extra_bytes: int = 0, safety: float = CUDA_SAFETY,
               measure: Callable[[int], int | None] | None = None,
               capacity: int | None = None) -> MicroBatchChoice:
    """Largest divisor of ``batch_size`` whose measured peak + ``extra_bytes`` fits with ``safety`` to spare.

    ``measure(m)`` (peak bytes, or None on out-of-memory) and ``capacity`` (bytes this process may
    use) default to the real device; tests pass their own.
    """
    if measure is None:
        measure = lambda m: _fits_cuda(model, make_batch, m, device, bf16)  # noqa: E731
    if capacity is None:
        free, _total = torch.cuda.mem_get_info(device)
        capacity = int(free + torch.cuda.memory_reserved(device))
    tried: dict[int, int | None] = {}
    for m in reversed(divisors(batch_size)):
        peak = measure(m)
        tried[m] = peak
        if peak is not None and (peak + extra_bytes) * (1 + safety) <= capacity:
            reason = (f"probe: peak {(peak + extra_bytes) / GB:.1f} GB at {m} incl. optimizer state, "
                      f"{capacity / GB:.1f} GB available")
            return MicroBatchChoice(batch_size, m, True, reason,
                                    {"device": "cuda", "peak_bytes": peak, "extra_bytes": extra_bytes,
                                     "capacity_bytes": capacity, "tried": {str(k): v for k, v in tried.items()}})
    raise PlmkitError(f"--micro-batch auto: not even one row per micro-batch fits in {capacity / GB:.1f} GB on "
                      f"{device} (with the optimizer state and a {safety:.0%} margin); use --gradient-checkpointing, "
                      "--bf16, a shorter --max-length or a smaller preset")


def _measure_cpu(model: nn.Module, make_batch: Callable[[int], dict[str, torch.Tensor]], m: int,
                 bf16: bool) -> int | None:
    _allocate_grads(model)
    batch = make_batch(m)
    gc.collect()
    if not reset_peak_rss():
        return None
    forward_backward(model, batch, torch.device("cpu"), bf16)
    return peak_rss()


def estimate_cpu(model: nn.Module, make_batch: Callable[[int], dict[str, torch.Tensor]], batch_size: int,
                 bf16: bool = False, extra_bytes: int = 0, fraction: float = CPU_FRACTION,
                 measure: Callable[[int], int | None] | None = None) -> MicroBatchChoice:
    """Largest divisor of ``batch_size`` whose peak RSS, extrapolated from two small sizes, fits in host memory.

    ``measure(m)`` returns the peak RSS in bytes of one forward + backward at ``m`` rows (None where
    it cannot be measured); it defaults to the ``/proc`` readers above.
    """
    budget_avail, rss_now = available_memory(), current_rss()
    if measure is None:
        measure = lambda m: _measure_cpu(model, make_batch, m, bf16)  # noqa: E731
    divs = divisors(batch_size)
    # Two small sizes, the second at least twice the first (2 and 4 for most batches; 1 and B for a prime B).
    a = next((d for d in divs if d >= 2), 1)
    b = next((d for d in divs if d >= 2 * a), None)
    if b is None:
        a, b = 1, (divs[1] if len(divs) > 1 else None)
    if budget_avail is None or rss_now is None:
        return MicroBatchChoice(batch_size, batch_size, True,
                                "host memory cannot be read here (no /proc/meminfo); using the whole batch")
    budget = fraction * (budget_avail + rss_now)
    if b is None:  # a batch of 1: nothing to choose between
        return MicroBatchChoice(batch_size, batch_size, True, "a batch of one row: nothing to split")
    measure(a)  # warm-up: lazy allocations (thread pools, kernel caches) are not per-row memory
    pa, pb = measure(a), measure(b)
    if pa is None or pb is None:
        return MicroBatchChoice(batch_size, batch_size, True,
                                "peak memory cannot be measured here (no /proc/self/clear_refs); using the whole batch")
    per_row = max(0.0, (pb - pa) / (b - a))
    fixed = pa - per_row * a + extra_bytes

    def predict(m: int) -> float:
        return fixed + per_row * m

    fitting = [d for d in divs if predict(d) <= budget]
    m = fitting[-1] if fitting else 1
    reason = (f"estimate: peak {predict(m) / GB:.1f} GB at {m} = {fixed / GB:.2f} GB + {per_row / 1e6:.1f} MB/row "
              f"incl. optimizer state, {budget / GB:.1f} GB usable ({fraction:.0%} of available + resident)")
    if not fitting:
        reason += "; even 1 row may not fit"
    return MicroBatchChoice(batch_size, m, True, reason,
                            {"device": "cpu", "measured": {str(a): pa, str(b): pb}, "fixed_bytes": fixed,
                             "per_row_bytes": per_row, "budget_bytes": budget})


def agree(choice: MicroBatchChoice, dist) -> MicroBatchChoice:
    """Under torchrun every rank uses the smallest micro-batch any rank chose (all_reduce MIN)."""
    import torch.distributed as tdist

    if not (getattr(dist, "enabled", False) and tdist.is_available() and tdist.is_initialized()):
        return choice
    t = torch.tensor([choice.micro_batch], dtype=torch.int64, device=dist.device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MIN)
    m = int(t.item())
    if m != choice.micro_batch:
        choice = MicroBatchChoice(choice.batch_size, m, choice.auto,
                                  f"the smallest over {dist.world_size} ranks; this rank: {choice.reason}",
                                  choice.details)
    return choice


def choose_micro_batch(model: nn.Module, make_batch: Callable[[int], dict[str, torch.Tensor]], batch_size: int,
                       device: torch.device, bf16: bool = False, gradient_checkpointing: bool = False,
                       optimizer: str = "adamw", world_size: int = 1, dist=None) -> MicroBatchChoice:
    """Probe (CUDA) or estimate (CPU) the largest micro-batch of ``batch_size`` rows that fits ``device``.

    ``make_batch(m)`` returns a full-length training batch of ``m`` rows with labels. The model is moved
    to ``device`` (the trainer does the same) and left exactly as it was otherwise.
    """
    model.to(device)
    if gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
    # Not allocated yet: the optimizer's moments, and DDP's gradient buckets (a copy of the gradients).
    extra = optimizer_state_bytes(model, optimizer) + (param_bytes(model) if world_size > 1 else 0)
    with _untouched(model, device):
        if device.type == "cuda":
            choice = probe_cuda(model, make_batch, batch_size, device, bf16, extra)
        else:
            choice = estimate_cpu(model, make_batch, batch_size, bf16, extra)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return agree(choice, dist) if dist is not None else choice
