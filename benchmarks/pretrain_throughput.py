"""Pretraining throughput: plmkit vs Hugging Face transformers, side by side, same machine, same run.

For each config the peer (``BertForPreTraining`` / ``RobertaForMaskedLM`` / ``AlbertForPreTraining``)
is built from the identical config and loaded with plmkit's initial weights (through a saved
folder), gets its best settings (sdpa attention, bf16 autocast, fused AdamW), and both compute the
same loss definition (MLM cross-entropy over the masked positions + NSP/SOP cross-entropy) on the
same batch; the script checks the two losses agree before timing. Steps are interleaved
(plmkit, peer, plmkit, peer, …) and the median of the timed steps after warm-up is reported.

    python benchmarks/pretrain_throughput.py                      # bert-mini, the issue's target
    python benchmarks/pretrain_throughput.py --configs bert-mini,bert-base,roberta-base,albert-base
    python benchmarks/pretrain_throughput.py --memory             # peak RSS of each tool, separate processes

A step is forward + backward + clip + optimizer step on one batch (B × L tokens, no padding).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import torch

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import plmkit  # noqa: E402
from plmkit.config import model_config_from_preset  # noqa: E402
from plmkit.training.optim import ResidentEmbeddingGrads, build_optimizer, clipped_step, grad_norm  # noqa: E402

PEERS = {"bert": "BertForPreTraining", "roberta": "RobertaForMaskedLM", "albert": "AlbertForPreTraining"}


def make_batch(config, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Packed rows, 15% of tokens predicted with 80/10/10 replacement, NSP/SOP labels (if any)."""
    g = torch.Generator().manual_seed(seed)
    V = config.vocab_size
    ids = torch.randint(1000 if V > 2000 else 5, V, (batch, length), generator=g)
    ids[:, 0] = 101 % V
    ids[:, -1] = 102 % V
    labels = torch.full_like(ids, -100)
    pick = torch.rand(ids.shape, generator=g) < 0.15
    pick[:, 0] = pick[:, -1] = False
    labels[pick] = ids[pick]
    r = torch.rand(ids.shape, generator=g)
    masked = ids.clone()
    masked[pick & (r < 0.8)] = 103 % V
    rnd = pick & (r >= 0.8) & (r < 0.9)
    masked[rnd] = torch.randint(5, V, (int(rnd.sum()),), generator=g)
    out = {"input_ids": masked, "labels": labels}
    if config.model_type in ("bert", "albert"):
        types = torch.zeros_like(ids)
        types[:, length // 2:] = 1
        out["token_type_ids"] = types
        key = "sentence_order_label" if config.model_type == "albert" else "next_sentence_label"
        out[key] = torch.randint(0, 2, (batch,), generator=g)
    return out


def build_pair(preset: str, seed: int = 0, threads: int | None = None, overrides: dict | None = None):
    import transformers as T

    config = model_config_from_preset(preset, overrides)
    torch.manual_seed(seed)
    ours = plmkit.PlmModel(config, task="pretraining")
    with tempfile.TemporaryDirectory() as d:
        ours.save_pretrained(d)
        peer = getattr(T, PEERS[config.model_type]).from_pretrained(d, attn_implementation="sdpa")
    ours.train()
    peer.train()
    return config, ours, peer


def peer_loss(peer, batch):
    kw = dict(batch)
    if "sentence_order_label" in kw:
        kw["sentence_order_label"] = kw.pop("sentence_order_label")
    return peer(**kw).loss


def ours_loss(model, batch):
    return model(**batch).loss


def make_step(model, loss_fn, bf16: bool, device: torch.device = torch.device("cpu"), trainer: bool = False):
    """One training step: forward, backward, clip to norm 1, fused AdamW, zero the gradients.

    ``trainer=True`` does it as plmkit's Trainer does (``plmkit.training.optim``): clipping inside the
    fused AdamW kernel and, on a CPU, embedding gradient buffers kept between steps (the model's
    embedding tables stay in that mode: give every step function of one model ``trainer=True``)."""
    opt = build_optimizer(model, "adamw", 1e-4, 0.01, (0.9, 0.999), 1e-6)  # fused AdamW for both tools
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    if trainer:
        resident = ResidentEmbeddingGrads(model, enabled=device.type == "cpu").__enter__()
        params = [p for p in model.parameters() if p.requires_grad]

    def step(batch):
        with ctx():
            loss = loss_fn(model, batch)
        loss.backward()
        if trainer:
            clipped_step(opt, params, grad_norm(params), 1.0)
            resident.zero_grad(opt)
            return loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved_seconds(runs: dict, steps: int, warmup: int,
                        device: torch.device = torch.device("cpu")) -> dict[str, list[float]]:
    """``runs``: name → callable doing one step. ``warmup`` + ``steps`` rounds of one step of each in
    turn (so drifting machine load hits every run alike); the seconds of the timed steps per name."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + steps):
        for name, fn in runs.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def model_flops_per_step(config, batch: int, length: int) -> float:
    """6·N·tokens (N = non-embedding parameters, each used once per token) + attention score/value FLOPs.

    The tied MLM decoder counts too (a V×E matmul per *predicted* token in plmkit; the peer does it
    for every token, but MFU credits only the work the objective needs: 15% of tokens).
    """
    h, L, V, E = config.hidden_size, config.num_hidden_layers, config.vocab_size, config.embed_dim
    ffn = config.intermediate_size
    per_layer = 4 * h * h + 2 * h * ffn  # QKV + out, FFN in + out
    n_body = per_layer * L  # shared ALBERT layers still run L times
    tokens = batch * length
    attn = 2 * 2 * batch * length * length * h * L  # QK^T and AV, multiply-add = 2 FLOPs
    decoder = 2 * 0.15 * tokens * V * E
    return 3 * (2 * n_body * tokens + attn + decoder)  # forward + backward (2× forward)


def check_same_loss(ours, peer, batch) -> tuple[float, float]:
    ours.eval(), peer.eval()
    with torch.no_grad():
        a, b = float(ours_loss(ours, batch)), float(peer_loss(peer, batch))
    ours.train(), peer.train()
    if abs(a - b) > 1e-4 * max(1.0, abs(b)):
        raise SystemExit(f"loss definitions differ: plmkit {a} vs transformers {b}")
    return a, b


def bench(preset: str, batch: int, length: int, steps: int, warmup: int, bf16: bool, compile_: bool,
          device: torch.device = torch.device("cpu"), peak_tflops: float | None = None) -> dict:
    config, ours, peer = build_pair(preset)
    data = make_batch(config, batch, length)
    ours.to(device), peer.to(device)
    data = {k: v.to(device) for k, v in data.items()}
    la, lb = check_same_loss(ours, peer, data)  # fp32, on the device (TF32 is off by default)
    if compile_:
        ours = torch.compile(ours)
    step_ours = make_step(ours, ours_loss, bf16, device, trainer=not compile_)  # as plmkit's Trainer steps
    step_peer = make_step(peer, peer_loss, bf16, device)
    times = interleaved_seconds({"plmkit": lambda: step_ours(data), "transformers": lambda: step_peer(data)},
                                steps, warmup, device)
    tokens = batch * length
    med = {k: statistics.median(v) for k, v in times.items()}
    extra = {}
    if peak_tflops:
        flops = model_flops_per_step(config, batch, length)
        extra = {"model_tflops_per_step": flops / 1e12, "peak_tflops": peak_tflops,
                 "plmkit_mfu": flops / med["plmkit"] / (peak_tflops * 1e12),
                 "transformers_mfu": flops / med["transformers"] / (peak_tflops * 1e12)}
    return {**extra, "config": preset, "batch": batch, "length": length, "bf16": bf16, "compile": compile_,
            "device": str(device),
            "steps_timed": steps, "loss_check": [round(la, 5), round(lb, 5)],
            "plmkit_tokens_per_s": tokens / med["plmkit"], "transformers_tokens_per_s": tokens / med["transformers"],
            "ratio": med["transformers"] / med["plmkit"],
            "plmkit_step_s": med["plmkit"], "transformers_step_s": med["transformers"]}


def memory_child(tool: str, preset: str, batch: int, length: int, steps: int, bf16: bool,
                 device: torch.device = torch.device("cpu")) -> None:
    """Peak memory of one tool's training steps, in a process of its own: RSS on CPU, allocated on CUDA."""
    config, ours, peer = build_pair(preset)
    data = {k: v.to(device) for k, v in make_batch(config, batch, length).items()}
    if tool == "plmkit":
        del peer
        model, loss_fn = ours, ours_loss
    else:
        del ours
        model, loss_fn = peer, peer_loss
    import gc

    gc.collect()
    model.to(device)
    step = make_step(model, loss_fn, bf16, device, trainer=tool == "plmkit")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        for _ in range(steps):
            step(data)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device)
        print(json.dumps({"tool": tool, "peak_mb": peak / 2**20, "before_steps_mb": base / 2**20,
                          "measure": "torch.cuda.max_memory_allocated"}))
        return
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(steps):
        step(data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"tool": tool, "peak_mb": peak / 1024, "before_steps_mb": base / 1024,
                      "measure": "peak RSS (ru_maxrss)"}))


def kernel_kind(name: str) -> str:
    """A coarse class of a CUDA kernel, from its name."""
    n = name.lower()
    if any(k in n for k in ("gemm", "xmma", "cutlass", "cublas", "sm90_", "nvjet")):
        return "matmul"
    if "flash" in n or "fmha" in n or "attention" in n:
        return "attention"
    if "adam" in n or "multi_tensor" in n or "foreach" in n:
        return "optimizer"
    if "norm" in n:
        return "layer norm"
    if "softmax" in n or "nll" in n or "cross_entropy" in n or "log_softmax" in n:
        return "softmax / loss"
    if "copy" in n or "cast" in n or "to_copy" in n:
        return "copies / casts"
    return "other element-wise"


def profile_step(name: str, step, data, top: int = 12, device: torch.device = torch.device("cpu"),
                 warmup: int = 2, flops: float | None = None, label: str = "") -> None:
    """Profile 3 calls of ``step(data)`` after ``warmup`` and print where the time goes: self CPU time per
    operation (CPU), or time per CUDA kernel, per kernel class, and how busy the GPU was (CUDA)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = device.type == "cuda"
    for _ in range(warmup):
        step(data)
    sync(device)
    t0 = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(3):
            step(data)
        sync(device)
    wall = (time.perf_counter() - t0) / 3
    events = prof.key_averages()
    if not cuda:
        events = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        print(f"\n{name} ({label}): {total / 3e6:.3f} s of operator time per step")
        print("| operation | self CPU per step (ms) | share |\n|---|---:|---:|")
        for e in events[:top]:
            print(f"| `{e.key}` | {e.self_cpu_time_total / 3e3:.1f} | {e.self_cpu_time_total / total:.1%} |")
        return
    try:
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        assert kernels, "no CUDA kernel events recorded"
    except Exception as exc:  # an older/newer profiler API: fall back to its own table
        print(f"\n{name}: step {wall * 1e3:.1f} ms under the profiler ({exc!r}); per-operation table:")
        print(events.table(sort_by="self_cuda_time_total", row_limit=top))
        return
    busy = sum(e.device_time_total for e in kernels) / 3e3  # ms per step (µs → ms, 3 steps)
    per_kind: dict[str, float] = {}
    per_name: dict[str, float] = {}
    for e in kernels:
        per_kind[kernel_kind(e.name)] = per_kind.get(kernel_kind(e.name), 0.0) + e.device_time_total / 3e3
        per_name[e.name] = per_name.get(e.name, 0.0) + e.device_time_total / 3e3
    graph_launches = sum(e.count for e in events if e.key == "cudaGraphLaunch") / 3  # CUDA graphs replayed
    print(f"\n{name} ({label}): step {wall * 1e3:.1f} ms under the profiler, GPU busy {busy:.1f} ms "
          f"({busy / (wall * 1e3):.0%}), {len(kernels) // 3} kernels per step"
          + (f", {graph_launches:g} CUDA graph launches per step" if graph_launches else "")
          + (f"; model FLOPs {flops / 1e12:.2f} T" if flops else ""))
    print("| kernel class | GPU ms per step | share of busy |\n|---|---:|---:|")
    for k, v in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.2f} | {v / busy:.1%} |")
    if flops and "matmul" in per_kind:
        print(f"matmul kernels alone: {flops / (per_kind['matmul'] / 1e3) / 1e12:.0f} TFLOP/s of model FLOPs")
    print("| kernel | GPU ms per step |\n|---|---:|")
    for k, v in sorted(per_name.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| `{k[:90]}` | {v:.2f} |")


def profile(preset: str, batch: int, length: int, bf16: bool, top: int = 12,
            device: torch.device = torch.device("cpu"), compile_: bool = False) -> None:
    """Where the time goes over 3 training steps of each tool (transformers first: what users have)."""
    config, ours, peer = build_pair(preset)
    data = {k: v.to(device) for k, v in make_batch(config, batch, length).items()}
    for name, model, loss_fn in (("transformers", peer, peer_loss), ("plmkit", ours, ours_loss)):
        model.to(device)
        compiled = compile_ and name == "plmkit"
        if compiled:
            model = torch.compile(model)
        step = make_step(model, loss_fn, bf16, device, trainer=name == "plmkit" and not compiled)
        profile_step(name, step, data, top, device, warmup=5 if compiled else 2,
                     flops=model_flops_per_step(config, batch, length),
                     label=f"{preset}, B={batch} L={length}{', compiled' if compiled else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="bert-mini", help="comma-separated presets")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=7, help="timed steps per tool (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile plmkit's model")
    ap.add_argument("--memory", action="store_true", help="peak memory per tool, each in its own process (RSS on CPU, allocated GPU memory on CUDA)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="auto: bf16 autocast where the hardware runs bf16 natively (GPU, AVX512-BF16/AMX CPU), else fp32")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="dense bf16 peak of the device for MFU (H100/H200 SXM: 989)")
    ap.add_argument("--profile", action="store_true",
                    help="where the time goes: torch.profiler top operations of each tool (3 steps after warm-up)")
    ap.add_argument("--top", type=int, default=12, help="rows of the --profile tables")
    ap.add_argument("--json", help="also write results to this file")
    ap.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from plmkit.training.distributed import bf16_is_fast

    device = torch.device(args.device)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_is_fast(device))
    if args._child:
        memory_child(args._child[0], args._child[1], args.batch, args.length, args.steps, bf16, device)
        return
    results = []
    cpu = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else torch.cuda.get_device_name()
    print(f"torch {torch.__version__}, device {device} ({cpu}), threads {torch.get_num_threads()}, "
          f"precision {'bf16 autocast' if bf16 else 'fp32'} for both tools")
    for preset in args.configs.split(","):
        if args.profile:
            profile(preset, args.batch, args.length, bf16, args.top, device, args.compile)
            continue
        if args.memory:
            row = {"config": preset, "batch": args.batch, "length": args.length, "device": str(device)}
            for tool in ("plmkit", "transformers"):
                cmd = [sys.executable, __file__, "--_child", tool, preset, "--batch", str(args.batch), "--length",
                       str(args.length), "--steps", "3", "--precision", "bf16" if bf16 else "fp32",
                       "--device", str(device)]
                out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True)
                                 .stdout.strip().splitlines()[-1])
                row[f"{tool}_peak_mb"], row["measure"] = out["peak_mb"], out["measure"]
            row["ratio_memory"] = row["plmkit_peak_mb"] / row["transformers_peak_mb"]
            print(json.dumps(row))
            results.append(row)
            continue
        r = bench(preset, args.batch, args.length, args.steps, args.warmup, bf16, args.compile, device,
                  args.peak_tflops)
        results.append(r)
        mfu = (f"   MFU plmkit {r['plmkit_mfu']:.1%} transformers {r['transformers_mfu']:.1%}"
               if "plmkit_mfu" in r else "")
        print(f"{preset:<14} B={r['batch']} L={r['length']}  plmkit {r['plmkit_tokens_per_s']:>9,.0f} tok/s   "
              f"transformers {r['transformers_tokens_per_s']:>9,.0f} tok/s   ratio {r['ratio']:.2f}x   "
              f"(loss check {r['loss_check'][0]} vs {r['loss_check'][1]}){mfu}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
