"""What machine a benchmark ran on, for its JSON: the CPU model and the instruction sets that decide
fp32 vs bf16 speed (sessions land on different machines — an AVX2-only AMD EPYC, an Intel Xeon with
AVX512-BF16 and AMX — so a timing means little without this)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict:
    import torch

    from plmkit.training.distributed import bf16_is_fast

    cpu = platform.processor() or platform.machine()
    isa: list[str] = []
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu)
        flags = set(next((ln.split(":", 1)[1] for ln in lines if ln.startswith("flags")), "").split())
        isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "isa": isa,
            "cpu_bf16_native": bf16_is_fast(torch.device("cpu")), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "load_average_at_start": os.getloadavg()}
