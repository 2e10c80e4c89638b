"""torchrun / DDP plumbing: one process per device, gloo on CPU, NCCL on GPU.

``torchrun --nproc_per_node=N [--nnodes ... --rdzv_endpoint ...] -m plmkit.cli pretrain ...`` (or the
``plmkit`` script) sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`init` reads them. Without them the
run is a single process and every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def choose_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """The device ``--device SPEC`` names (auto: this rank's GPU if there is one, else the CPU).

    A device this machine does not have is a usage error that says what it has, not a traceback
    from deep inside PyTorch at the first tensor moved there.
    """
    from ..errors import UsageError

    if spec in (None, "auto"):
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec}: not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA support" if not torch.backends.cuda.is_built() else \
                "no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)"
            raise UsageError(f"--device {spec}: {why}; use --device cpu (or auto)")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
        if device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif device.type not in ("cpu", "mps"):
        raise UsageError(f"--device {spec}: plmkit runs on cpu or cuda devices")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively: CUDA with bf16, or a CPU with AVX512-BF16 or AMX.

    Without them PyTorch emulates bf16 and autocast is many times *slower* than fp32 (measured
    on an AVX2-only AMD EPYC: about 80× on a 4096×256×1024 matmul).
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
            fn = getattr(cpu, probe, None)
            if fn is not None and fn():
                return True
    return False


def init(device: str = "auto") -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=choose_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = choose_device(device, local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
