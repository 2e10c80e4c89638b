"""Issue 25's GPU measurements: static shapes + CUDA graphs, FP8, where the time goes — plmkit against transformers.

Parts (``benchmarks/gpu_issue25.sh`` runs them in one call on an H100/H200, each within a time budget):

``throughput``  BERT pretraining steps at one batch size, contenders interleaved (the method of BENCHMARKS.md
                "Speed on a GPU": same initial weights, same batch, the loss checked equal before timing,
                median of the timed steps after warm-up, bf16 autocast, fused AdamW, clipping 1.0):
                ``transformers`` (sdpa, eager: its best settings), ``compiled`` (plmkit, torch.compile, the
                dynamic MLM gather: today's method), ``graphs`` (plmkit, static ``mlm_positions`` +
                torch.compile mode "reduce-overhead": CUDA graphs) and ``graphs-fp8`` (the same, the encoder's
                Linear layers in FP8 through torchao). MFU = model FLOPs / step time / peak (989 TFLOP/s dense
                bf16, H100/H200 SXM). Every batch row predicts BERT's count, round(0.15 · 126) = 19 tokens, so
                the dynamic and the static path do the same work (static: 20 slots, google-research/bert's
                max_predictions_per_seq). ``--profile`` adds the kernel-class profile of each contender
                (``bash benchmarks/gpu.sh 5``'s tables). For ``graphs*`` it checks that CUDA graphs are active:
                Inductor's cudagraph-skip counters stay 0 and the profiler sees cudaGraphLaunch every step.
``curves``      Two ``plmkit pretrain`` runs through the CLI from the same seed on a prepared corpus, 200 steps
                each, compared: the loss curves (mean difference over the second half against its standard
                error and 1% of the loss), held-out MLM loss, and tokens/s of the steady steps. On the GPU: BERT-
                large ``--bf16 --cuda-graphs`` against ``--bf16 --cuda-graphs --fp8`` (the trainer's own path).

``--dry-run`` runs every part on the CPU in seconds with a tiny model (no compile, no CUDA graphs; FP8 through
torchao's CPU emulation when it is installed; the curves compare the dynamic and the static MLM path, which must
agree) and writes the same JSON — the test suite runs it (tests/test_static_shapes.py).

    python benchmarks/gpu_issue25.py throughput --preset bert-base --batch 128 --profile --json out.json
    python benchmarks/gpu_issue25.py curves --data gpu/brown-uncased --preset bert-large --json curves.json
    python benchmarks/gpu_issue25.py --dry-run --out /tmp/issue25
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

import pretrain_throughput as pt  # noqa: E402

from plmkit.data.objectives import IGNORE_INDEX, default_max_predictions, predicted_positions  # noqa: E402
from plmkit.training import accel  # noqa: E402

CONTENDERS = ("transformers", "compiled", "graphs", "graphs-fp8")
MASK_PROB = 0.15
TINY = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}  # the dry run's model (bert-tiny's layout)


# --------------------------------------------------------------------------- batches
def bert_batch(config, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """pretrain_throughput's rows, masked by BERT's count rule: each row predicts exactly round(0.15 · (L − 2))
    of its L − 2 non-special tokens (80% [MASK], 10% random, 10% kept), as plmkit's data serve them."""
    data = pt.make_batch(config, batch, length, seed)
    original = torch.where(data["labels"] != IGNORE_INDEX, data["labels"], data["input_ids"])
    g = torch.Generator().manual_seed(seed + 1)
    k = int(math.floor((length - 2) * MASK_PROB + 0.5))
    keys = torch.rand(batch, length, generator=g)
    keys[:, 0] = keys[:, -1] = 2.0  # [CLS] and [SEP] are never predicted
    pick = torch.zeros(batch, length, dtype=torch.bool)
    pick.scatter_(1, keys.argsort(dim=1)[:, :k], True)
    r = torch.rand(batch, length, generator=g)
    V = config.vocab_size
    ids = original.clone()
    ids[pick & (r < 0.8)] = 103 % V
    rnd = pick & (r >= 0.8) & (r < 0.9)
    ids[rnd] = torch.randint(5, V, (int(rnd.sum()),), generator=g)
    return {**data, "input_ids": ids, "labels": original.masked_fill(~pick, IGNORE_INDEX)}


def with_positions(batch: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
    """The same batch with its static ``mlm_positions`` (default_max_predictions slots per row)."""
    slots = default_max_predictions(length, MASK_PROB)
    return {**batch, "mlm_positions": torch.from_numpy(predicted_positions(batch["labels"].numpy(), slots))}


# --------------------------------------------------------------------------- throughput
def check_losses(ours, peer, dynamic, static, device) -> dict[str, float]:
    """fp32, eval mode, uncompiled: plmkit's dynamic path, its static path and transformers give one loss."""
    ours.eval(), peer.eval()
    with torch.no_grad():
        got = {"plmkit_dynamic": float(pt.ours_loss(ours, dynamic)), "plmkit_static": float(pt.ours_loss(ours, static)),
               "transformers": float(pt.peer_loss(peer, dynamic))}
    ours.train(), peer.train()
    ref = got["transformers"]
    bad = {k: v for k, v in got.items() if abs(v - ref) > 1e-4 * max(1.0, abs(ref))}
    if bad:
        raise SystemExit(f"loss definitions differ: {got}")
    return got


def cuda_graph_check(step, batch, device) -> dict:
    """Are the compiled step's CUDA graphs replayed? Inductor counts every step it could not graph
    (``cudagraph_skips``); the profiler sees the host call that replays a graph (``cudaGraphLaunch``)."""
    from torch._dynamo.utils import counters
    from torch.profiler import ProfilerActivity, profile

    skips = sum(v for k, v in counters["inductor"].items() if "cudagraph" in k and "skip" in k)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step(batch)
        pt.sync(device)
    launches = sum(e.count for e in prof.key_averages() if e.key == "cudaGraphLaunch") / 3
    return {"cudagraph_skips": int(skips), "graph_launches_per_step": launches,
            "cuda_graphs_active": launches >= 1 and skips == 0,
            "how": "torch._dynamo.utils.counters['inductor'] cudagraph skips == 0 and torch.profiler "
                   "cudaGraphLaunch calls per step >= 1 (forward and backward graphs)"}


def throughput(preset: str, batch: int, length: int, names: list[str], steps: int, warmup: int, device: torch.device,
               bf16: bool, peak: float | None, profile: bool, dry: bool, top: int = 15,
               overrides: dict | None = None) -> dict:
    torch._dynamo.reset()
    config, ours, peer = pt.build_pair(preset, overrides=overrides)
    dynamic = bert_batch(config, batch, length)
    static = with_positions(dynamic, length)
    ours.to(device), peer.to(device)
    dynamic = {k: v.to(device) for k, v in dynamic.items()}
    static = {k: v.to(device) for k, v in static.items()}
    losses = check_losses(ours, peer, dynamic, static, device)
    runs, notes = {}, {}
    for name in names:
        if name == "transformers":
            runs[name] = (pt.make_step(peer, pt.peer_loss, bf16, device), dynamic)
            continue
        model = copy.deepcopy(ours)
        graphs = name.startswith("graphs")
        if name.endswith("fp8"):
            if device.type == "cuda":
                accel.check(pt_train(fp8=True), device)
            converted = accel.convert_fp8(model)
            notes[name] = f"{len(converted)} Linear layers in FP8 (torchao float8, tensorwise)"
        if not dry:
            model = torch.compile(model, mode="reduce-overhead" if graphs else None)
        runs[name] = (pt.make_step(model, pt.ours_loss, bf16, device), static if graphs else dynamic)
    times = pt.interleaved_seconds({n: (lambda s=s, b=b: s(b)) for n, (s, b) in runs.items()}, steps, warmup, device)
    med = {n: statistics.median(v) for n, v in times.items()}
    flops = pt.model_flops_per_step(config, batch, length)
    tokens = batch * length
    row = {"part": "throughput", "config": preset, "batch": batch, "length": length, "bf16": bf16,
           "device": str(device), "dry_run": dry, "steps_timed": steps, "warmup": warmup, "loss_check": losses,
           "slots": default_max_predictions(length, MASK_PROB), "model_tflops_per_step": flops / 1e12,
           "peak_tflops": peak, "contenders": {}}
    for n in names:
        c = {"step_s": med[n], "tokens_per_s": tokens / med[n]}
        if peak:
            c["mfu"] = flops / med[n] / (peak * 1e12)
        if "transformers" in med and n != "transformers":
            c["vs_transformers"] = med["transformers"] / med[n]
        if n in notes:
            c["note"] = notes[n]
        row["contenders"][n] = c
    if "graphs" in med and "graphs-fp8" in med:
        row["fp8_speedup"] = med["graphs"] / med["graphs-fp8"]
    for n in names:
        if n.startswith("graphs") and device.type == "cuda" and not dry:
            row["contenders"][n]["cuda_graphs"] = cuda_graph_check(runs[n][0], runs[n][1], device)
    print_throughput(row)
    if profile:
        for n in names:
            step, data = runs[n]
            pt.profile_step(n if n == "transformers" else f"plmkit {n}", step, data, top, device, warmup=1,
                            flops=flops, label=f"{preset}, B={batch} L={length}")
    return row


def pt_train(**kw):
    from plmkit.training.trainer import TrainConfig

    return TrainConfig(max_steps=1, **kw)


def print_throughput(row: dict) -> None:
    print(f"\n{row['config']}, B={row['batch']} L={row['length']}, {'bf16' if row['bf16'] else 'fp32'}, "
          f"{row['device']}{' (dry run)' if row['dry_run'] else ''}; loss check {row['loss_check']}")
    print("| contender | tokens/s | step (ms) | MFU | vs transformers |\n|---|---:|---:|---:|---:|")
    for n, c in row["contenders"].items():
        mfu = f"{c['mfu']:.1%}" if "mfu" in c else "–"
        ratio = f"{c['vs_transformers']:.2f}×" if "vs_transformers" in c else "–"
        print(f"| {n} | {c['tokens_per_s']:,.0f} | {c['step_s'] * 1e3:.1f} | {mfu} | {ratio} |")
        if "cuda_graphs" in c:
            g = c["cuda_graphs"]
            print(f"|   CUDA graphs active: {g['cuda_graphs_active']} ({g['graph_launches_per_step']:g} launches per "
                  f"step, {g['cudagraph_skips']} skips) | | | | |")
    if "fp8_speedup" in row:
        print(f"FP8 / bf16 tokens/s (graphs-fp8 vs graphs): {row['fp8_speedup']:.2f}×")


# --------------------------------------------------------------------------- loss curves through the CLI
def run_cli(args: list[str], timeout: float | None) -> dict:
    """``plmkit <args>`` in a process of its own (its GPU memory and CUDA graphs freed at exit); its summary.
    ``timeout`` None: in this process (the dry run: no second torch import)."""
    if timeout is None:
        import io

        from plmkit.cli import main as cli

        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = cli(args)
        if code != 0:
            raise SystemExit(f"plmkit {' '.join(args)} failed ({code})")
        text = stdout.getvalue()
        return json.loads(text[text.index("{"):])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src") + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-m", "plmkit.cli", *args], capture_output=True, text=True, env=env,
                         timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"plmkit {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    sys.stderr.write(res.stderr[-1500:])
    return json.loads(res.stdout[res.stdout.index("{"):])


def compare_curves(a: list[float], b: list[float]) -> dict:
    """b − a over the second half of the steps: its mean, that mean's standard error, and the verdict
    "equal within noise": |mean| <= 2 standard errors, or <= 1% of a's mean loss there."""
    n = len(a)
    half = slice(n // 2, n)
    d = [y - x for x, y in zip(a[half], b[half])]
    mean = statistics.fmean(d)
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    level = statistics.fmean(a[half])
    return {"steps": n, "window": [n // 2 + 1, n], "mean_difference": mean, "standard_error": se,
            "loss_level": level, "max_abs_difference": max(abs(x) for x in d),
            "equal_within_noise": abs(mean) <= max(2 * se, 0.01 * abs(level))}


def curves(data: str, preset: str, steps: int, batch: int, length: int, runs: dict[str, list[str]], out: Path,
           device: str, timeout: float | None, extra: list[str]) -> dict:
    result = {"part": "curves", "preset": preset, "data": str(data), "steps": steps, "batch": batch, "length": length,
              "runs": {}}
    recs = {}
    for label, flags in runs.items():
        run = out / f"curve-{label}"
        args = ["pretrain", "--preset", preset, "--data", str(data), "--out", str(run), "--max-steps", str(steps),
                "--batch-size", str(batch), "--max-length", str(length), "--log-every", "1", "--eval-every", "0",
                "--save-every", "0", "--no-progress", "--no-verify-data", "--seed", "0", "--device", device,
                *extra, *flags]
        summary = run_cli(args, timeout)
        recs[label] = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in recs[label] if "loss" in r and "step" in r and "skipped_nonfinite" not in r]
        steady = [r["tokens_per_s"] for r in recs[label] if "tokens_per_s" in r and r["step"] > min(20, steps // 2)]
        result["runs"][label] = {"flags": flags, "loss": losses,
                                 "tokens_per_s": statistics.median(steady) if steady else None,
                                 "eval": {k: v for k, v in summary.items() if k.startswith("eval_")}}
    (a, ra), (b, rb) = list(result["runs"].items())[:2]
    result["comparison"] = {"of": [b, a], **compare_curves(ra["loss"], rb["loss"])}
    if ra["tokens_per_s"] and rb["tokens_per_s"]:
        result["comparison"]["tokens_per_s_ratio"] = rb["tokens_per_s"] / ra["tokens_per_s"]
    c = result["comparison"]
    print(f"\ncurves {b} vs {a}, {preset}, {steps} steps of {batch} × {length}: mean loss difference over steps "
          f"{c['window'][0]}-{c['window'][1]} {c['mean_difference']:+.4f} ± {c['standard_error']:.4f} (loss "
          f"{c['loss_level']:.3f}): {'equal within noise' if c['equal_within_noise'] else 'DIFFERENT'}; tokens/s "
          + ", ".join(f"{k} {v['tokens_per_s'] or 0:,.0f}" for k, v in result["runs"].items())
          + (f" ({c['tokens_per_s_ratio']:.2f}×)" if "tokens_per_s_ratio" in c else "")
          + "; held-out " + ", ".join(f"{k} {v['eval'].get('eval_mlm_loss', float('nan')):.4f}"
                                      for k, v in result["runs"].items()))
    return result


# --------------------------------------------------------------------------- the dry run
def dry_corpus(out: Path) -> Path:
    """A small prepared corpus of generated sentences and a WordPiece tokenizer trained on them (no data needed)."""
    import random

    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.tokenization import train_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)]
    text = out / "text.txt"
    docs = ["\n".join(" ".join(rng.choices(words, k=rng.randint(4, 16))) + " ." for _ in range(rng.randint(3, 9)))
            for _ in range(60)]
    text.write_text("\n\n".join(docs) + "\n")
    train_tokenizer("wordpiece", read_sentences([text]), vocab_size=600).save_pretrained(out / "tok")
    prepare_corpus([text], out / "prep", tokenizer=out / "tok")
    return out / "prep"


def dry_run(out: Path) -> dict:
    """Every part, on the CPU, in seconds: the code paths of the GPU run with a tiny model (one thread)."""
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _dry_run(out)
    finally:
        torch.set_num_threads(threads)


def _dry_run(out: Path) -> dict:
    cpu = torch.device("cpu")
    names = ["transformers", "compiled", "graphs"]
    try:
        import importlib.util

        if importlib.util.find_spec("torchao") is not None:
            names.append("graphs-fp8")
    except ImportError:
        pass
    rows = [throughput("bert-tiny", 4, 32, names, steps=2, warmup=1, device=cpu, bf16=False, peak=None, profile=True,
                       dry=True, top=3, overrides={"vocab_size": 128, **TINY})]
    corpus = dry_corpus(out / "corpus")
    slots = default_max_predictions(32, MASK_PROB)
    rows.append(curves(str(corpus), "bert-tiny", 6, 4, 32,
                       {"dynamic": [], "static": ["--set", f"data.max_predictions={slots}"]}, out, "cpu", None,
                       [arg for k, v in TINY.items() for arg in ("--set", f"model.{k}={v}")]))
    (out / "issue25.json").write_text(json.dumps(rows, indent=2))
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", nargs="?", choices=["throughput", "curves"])
    ap.add_argument("--dry-run", action="store_true", help="every part on the CPU with a tiny model, in seconds")
    ap.add_argument("--out", default="/tmp/plmkit-issue25", help="folder for run folders and JSON")
    ap.add_argument("--preset", default="bert-base")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--contenders", default="transformers,compiled,graphs",
                    help=f"comma-separated, of {', '.join(CONTENDERS)}")
    ap.add_argument("--steps", type=int, default=8, help="throughput: timed steps; curves: training steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--profile", action="store_true", help="throughput: the kernel-class profile of each contender")
    ap.add_argument("--data", help="curves: a prepared corpus (plmkit prepare)")
    ap.add_argument("--lr", default="1e-4", help="curves: peak learning rate")
    ap.add_argument("--timeout", type=float, default=3600.0, help="curves: seconds per run")
    ap.add_argument("--json", help="append the result to this JSON list")
    args = ap.parse_args(argv)
    if args.dry_run:
        dry_run(Path(args.out))
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.part == "throughput":
        names = [n.strip() for n in args.contenders.split(",") if n.strip()]
        unknown = sorted(set(names) - set(CONTENDERS))
        if unknown:
            ap.error(f"unknown contender(s) {', '.join(unknown)}; choose among {', '.join(CONTENDERS)}")
        row = throughput(args.preset, args.batch, args.length, names, args.steps, args.warmup, device,
                         bf16=device.type == "cuda", peak=args.peak_tflops if device.type == "cuda" else None,
                         profile=args.profile, dry=False)
    elif args.part == "curves":
        if not args.data:
            ap.error("curves needs --data (a prepared corpus)")
        flags = ["--bf16", "--cuda-graphs"] if device.type == "cuda" else []
        row = curves(args.data, args.preset, args.steps, args.batch, args.length,
                     {"bf16": flags, "fp8": [*flags, "--fp8"]}, Path(args.out), str(device), args.timeout,
                     ["--lr", args.lr, "--warmup-steps", "20"])
    else:
        ap.error("give a part (throughput, curves) or --dry-run")
    if args.json:
        path = Path(args.json)
        rows = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps([*rows, row], indent=2))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
