"""What machine a benchmark ran on, for its JSON: the CPU model and the instruction sets that decide
fp32 vs bf16 speed (sessions land on different machines — an AVX2-only AMD EPYC, an Intel Xeon with
AVX512-BF16 and AMX — so a timing means little without this)."""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path


@functools.cache
def _cpuinfo_lines() -> tuple[str, ...]:
    """/proc/cpuinfo, read once per process (empty off Linux)."""
    try:
        return tuple(Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return ()


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` of /proc/cpuinfo (Linux), None where there is none."""
    return next((ln.split(":", 1)[1].strip() for ln in _cpuinfo_lines() if ln.split(":", 1)[0].strip() == name),
                None)


def cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def machine() -> dict:
    import torch

    from plmkit.training.distributed import bf16_is_fast

    flags = set((_cpuinfo_field("flags") or "").split())
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "isa": isa,
            "cpu_bf16_native": bf16_is_fast(torch.device("cpu")), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "load_average_at_start": os.getloadavg()}
