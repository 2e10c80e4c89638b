"""`plmkit pretrain` end to end against the model step alone, side by side in one run.

Three measures, interleaved round by round (so that drifting machine load hits them alike):

* **model step, reference** — what ``benchmarks/pretrain_throughput.py --configs bert-mini`` times for
  plmkit: the preset's model (its own vocabulary, 30,522 for BERT) on one random packed batch (B × L, no
  padding), forward + backward + clipping inside fused AdamW, embedding gradient buffers kept
  (``make_step(trainer=True)``), bf16 autocast where the hardware runs it natively;
* **model step, same batches** — the same step on the model ``plmkit pretrain`` builds (the preset sized to
  the corpus' tokenizer, the same seed) over the first batches of the run's own stream, built beforehand:
  exactly the arithmetic of the run, with nothing around it;
* **plmkit pretrain** — the command itself in a fresh process (``python -m plmkit.cli pretrain --preset P
  --data D --max-steps N``, otherwise defaults: progress lines, checkpoints by the clock, the held-out
  evaluation at the end). Its steady rate is read from ``metrics.jsonl``: the log windows after the first
  (warm-up), wall time between log lines; the whole command (start-up, data check, evaluation, saving)
  is reported too;
* **in-process** (``--variants in-process``) — the same run through ``plmkit.training.pretrain.pretrain`` in
  this process, timed between log lines by the wall clock *and by the process's CPU time* (every thread:
  the step's, the batch-building thread's, the TensorBoard writer's), so that it compares with the model
  step's CPU time. On a machine shared with other work the wall clock measures the scheduler more than
  the loop; CPU time per step moves far less with load.

``positions/s`` counts B × L per step (what the model computes); ``tokens/s`` counts tokens that are not
padding (what the trainer reports: BERT's segment pairs leave part of each row empty). The ratios:
the run's positions/s over the same-batch model step (what the loop costs around the model), and the
run's tokens/s over the reference model step (the comparison of issue 23).

    PLMKIT_DATA=../shared/data python benchmarks/pretrain_end_to_end.py             # bert-mini, 32 × 128, Austen
    python benchmarks/pretrain_end_to_end.py --data PREPARED --rounds 3 --steps 60 --variants cli,no-prefetch

Without ``--data`` it trains a WordPiece tokenizer on Austen's six novels (``$PLMKIT_DATA/corpora/austen``;
it asks for 30,522 ids, the text supports about 14,200) and prepares them, in a temporary folder.
``--variants`` also takes ``no-prefetch``: the in-process run with the batches built in the loop, not
ahead in a thread (``plmkit.training.prefetch``), for the before/after of that change.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")

from machine_info import machine  # noqa: E402
from pretrain_throughput import make_batch, make_step, ours_loss  # noqa: E402

VARIANTS = ("cli", "in-process", "no-prefetch")


def prepare_austen(data_root: Path, folder: Path, vocab: int) -> Path:
    """Austen's novels, WordPiece-tokenized and prepared by the plmkit commands a user would run."""
    austen = data_root / "corpora" / "austen"
    if not austen.is_dir():
        raise SystemExit(f"{austen} not found: set PLMKIT_DATA to the shared data folder or pass --data")
    cli = [sys.executable, "-m", "plmkit.cli"]
    subprocess.run(cli + ["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", str(vocab), "--split-sentences",
                          "--out", str(folder / "tok"), str(austen)], check=True, capture_output=True)
    subprocess.run(cli + ["prepare", "--tokenizer", str(folder / "tok"), "--out", str(folder / "prepared"),
                          "--doc-per-file", "--split-sentences", str(austen)], check=True, capture_output=True)
    return folder / "prepared"


def time_steps(step, batches: list, n: int, warmup: int) -> tuple[float, float]:
    """(median wall seconds, mean CPU seconds of this process) per step over ``n`` steps after ``warmup``,
    cycling through ``batches``."""
    wall = []
    for i in range(warmup):
        step(batches[i % len(batches)])
    c0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        step(batches[i % len(batches)])
        wall.append(time.perf_counter() - t0)
    return statistics.median(wall), (time.process_time() - c0) / n


def run_in_process(prefetch: bool, preset: str, data: Path, out: Path, steps: int, batch: int, length: int,
                   bf16: bool, log_every: int) -> dict:
    """``pretrain()`` in this process; wall and CPU seconds per step between the first and the last log line."""
    from plmkit.training import pretrain as recipe
    from plmkit.training.trainer import Trainer

    marks: list[tuple[int, float, float]] = []
    flush, wrap = Trainer._flush_window, recipe.Prefetch

    def marked(self, *args, **kwargs):
        marks.append((self.step, time.process_time(), time.perf_counter()))
        return flush(self, *args, **kwargs)

    Trainer._flush_window = marked
    if not prefetch:
        recipe.Prefetch = lambda stream: stream  # the stream handed to the trainer as it was before
    try:
        summary = recipe.pretrain(preset, data, out, flags={"max_steps": steps, "batch_size": batch,
                                                             "max_length": length, "bf16": bf16,
                                                             "log_every": log_every, "progress": False})
    finally:
        Trainer._flush_window, recipe.Prefetch = flush, wrap
    (s0, c0, w0), (s1, c1, w1) = marks[0], marks[-1]  # from the end of the first log window (warm-up) to the last
    if s1 <= s0:
        raise SystemExit(f"--steps {steps} gives fewer than two log windows of --log-every {log_every}")
    step_s = (w1 - w0) / (s1 - s0)
    fill = summary["tokens_seen"] / (summary["step"] * batch * length)
    return {"step_s": step_s, "cpu_step_s": (c1 - c0) / (s1 - s0), "tokens_per_s": batch * length * fill / step_s}


class ModelSteps:
    """The two model-step measures, built once (models, optimizers, batches) and timed each round."""

    def __init__(self, preset: str, data: Path, batch: int, length: int, bf16: bool, seed: int, n_batches: int):
        from plmkit.config import model_config_from_preset
        from plmkit.data import PreparedCorpus
        from plmkit.data.objectives import PretrainingStream, data_config_from_preset
        from plmkit.models import PlmModel
        from plmkit.training.pretrain import build_model_config

        ref_config = model_config_from_preset(preset)
        torch.manual_seed(seed)
        ref = PlmModel(ref_config, task="pretraining").train()
        ref.prepare_training()
        self.ref_batch = [make_batch(ref_config, batch, length)]
        self.ref_step = make_step(ref, ours_loss, bf16, trainer=True)
        self.ref_vocab = ref_config.vocab_size

        corpus = PreparedCorpus(data)
        tok = corpus.load_tokenizer()
        dcfg = data_config_from_preset(preset, {"max_length": length})
        config = build_model_config(preset, {}, tok, length)
        torch.manual_seed(seed)
        model = PlmModel(config, task="pretraining").train()
        model.prepare_training()
        train_docs, _ = corpus.split(eval_fraction=0.02, seed=seed, min_eval_documents=2 if dcfg.pair == "nsp" else 1)
        it = iter(PretrainingStream(corpus, dcfg, batch_size=batch, seed=seed, documents=train_docs))
        self.batches = [next(it) for _ in range(n_batches)]
        self.fill = statistics.mean(float(b["attention_mask"].float().mean()) if "attention_mask" in b else 1.0
                                    for b in self.batches)
        self.step = make_step(model, ours_loss, bf16, trainer=True)
        self.vocab = config.vocab_size


def run_command(preset: str, data: Path, out: Path, steps: int, batch: int, length: int, bf16: bool,
                log_every: int, threads: int | None) -> dict:
    """One ``plmkit pretrain`` in a fresh process; its steady rate from metrics.jsonl and its whole wall time."""
    cmd = [sys.executable, "-m", "plmkit.cli", "pretrain", "--preset", preset, "--data", str(data), "--out", str(out),
           "--max-steps", str(steps), "--batch-size", str(batch), "--max-length", str(length), "--log-every",
           str(log_every)] + (["--bf16"] if bf16 else [])
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in lines if "tokens_per_s" in r]
    steady = logs[1:]  # the first window holds the warm-up steps
    if not steady:
        raise SystemExit(f"--steps {steps} gives fewer than two log windows of --log-every {log_every}")
    d_steps = steady[-1]["step"] - logs[0]["step"]
    d_time = steady[-1]["elapsed_s"] - logs[0]["elapsed_s"]
    tokens = sum(r["tokens_per_s"] * (r["elapsed_s"] - p["elapsed_s"]) for p, r in zip(logs, steady))
    return {"step_s": d_time / d_steps, "tokens_per_s": tokens / d_time, "command_wall_s": wall,
            "command_tokens_per_s": summary["tokens_seen"] / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="bert-mini")
    ap.add_argument("--data", help="a prepared corpus (default: Austen, prepared here from $PLMKIT_DATA)")
    ap.add_argument("--vocab-size", type=int, default=30522, help="WordPiece asked for when preparing Austen")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps of each plmkit pretrain run")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--model-steps", type=int, default=12, help="timed model steps of each kind per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default="cli,in-process", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="auto: bf16 autocast where the hardware runs bf16 natively (AVX512-BF16/AMX, GPU)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if set(variants) - set(VARIANTS):
        raise SystemExit(f"--variants: choose from {', '.join(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    from plmkit.training.distributed import bf16_is_fast

    bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_is_fast(torch.device("cpu")))
    with tempfile.TemporaryDirectory(prefix="plmkit-e2e-") as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else prepare_austen(Path(os.environ.get("PLMKIT_DATA", "")), tmp,
                                                                 args.vocab_size)
        steps = ModelSteps(args.preset, data, args.batch, args.length, bf16, args.seed, n_batches=4)
        positions = args.batch * args.length
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{'bf16 autocast' if bf16 else 'fp32'}; {args.preset}, batch {args.batch} × {args.length}; corpus "
              f"{data} (vocabulary {steps.vocab:,}; the reference model's {steps.ref_vocab:,}); the run's rows are "
              f"{steps.fill:.1%} tokens, the rest padding", flush=True)
        rows: dict[str, list] = {k: [] for k in ("ref", "same", *variants)}
        for r in range(args.rounds):
            rows["ref"].append(time_steps(steps.ref_step, steps.ref_batch, args.model_steps, 2))
            rows["same"].append(time_steps(steps.step, steps.batches, args.model_steps, 2))
            for v in variants:
                out = tmp / f"run-{v}-{r}"
                rows[v].append(run_command(args.preset, data, out, args.steps, args.batch, args.length, bf16,
                                           args.log_every, args.threads) if v == "cli" else
                               run_in_process(v == "in-process", args.preset, data, out, args.steps, args.batch,
                                              args.length, bf16, args.log_every))
            print(f"round {r + 1}: model step {rows['ref'][-1][0]:.3f} s (reference), {rows['same'][-1][0]:.3f} s "
                  "(the run's batches); " + ", ".join(f"{v} {rows[v][-1]['step_s']:.3f} s/step" for v in variants),
                  flush=True)

    def med(xs) -> float:
        return statistics.median(xs)

    ref_s, same_s = med(x[0] for x in rows["ref"]), med(x[0] for x in rows["same"])
    ref_cpu, same_cpu = med(x[1] for x in rows["ref"]), med(x[1] for x in rows["same"])
    result = {"machine": machine(), "preset": args.preset, "batch": args.batch, "length": args.length,
              "bf16": bf16, "rounds": args.rounds, "steps_per_run": args.steps, "padding_fill": steps.fill,
              "model_step_reference": {"wall_s": ref_s, "cpu_s": ref_cpu, "tokens_per_s": positions / ref_s},
              "model_step_same_batches": {"wall_s": same_s, "cpu_s": same_cpu, "positions_per_s": positions / same_s},
              "runs": {}}
    print("\n| measure | wall s/step | CPU s/step | positions/s | tokens/s (not padding) | against the model step |\n"
          "|---|---:|---:|---:|---:|---|")
    print(f"| model step, reference (random batch, vocabulary {steps.ref_vocab:,}) | {ref_s:.3f} | {ref_cpu:.3f} | "
          f"{positions / ref_s:,.0f} | {positions / ref_s:,.0f} | |")
    print(f"| model step, the run's batches (vocabulary {steps.vocab:,}) | {same_s:.3f} | {same_cpu:.3f} | "
          f"{positions / same_s:,.0f} | {positions * steps.fill / same_s:,.0f} | |")
    for v in variants:
        step_s, tps = med(x["step_s"] for x in rows[v]), med(x["tokens_per_s"] for x in rows[v])
        run = {"step_s": step_s, "positions_per_s": positions / step_s, "tokens_per_s": tps,
               "positions_ratio": same_s / step_s, "tokens_ratio_to_reference": tps / (positions / ref_s),
               "rounds": rows[v]}
        cpu = ""
        if v != "cli":
            run["cpu_step_s"] = med(x["cpu_step_s"] for x in rows[v])
            run["cpu_ratio"] = same_cpu / run["cpu_step_s"]
            cpu = f"{run['cpu_step_s']:.3f}"
        name = {"cli": "plmkit pretrain (a fresh process)", "in-process": "pretrain() in this process",
                "no-prefetch": "pretrain() in this process, batches built in the loop"}[v]
        print(f"| {name}, steady | {step_s:.3f} | {cpu} | {positions / step_s:,.0f} | {tps:,.0f} | positions/s "
              f"{run['positions_ratio']:.2f}×" + (f", CPU per step {run['cpu_ratio']:.2f}×" if cpu else "")
              + f" the same-batch step; tokens/s {run['tokens_ratio_to_reference']:.2f}× the reference |")
        if v == "cli":
            run["command_tokens_per_s"] = med(x["command_tokens_per_s"] for x in rows[v])
            print(f"| {name}, the whole command ({args.steps} steps, start-up and final evaluation included) | "
                  f"| | | {run['command_tokens_per_s']:,.0f} | |")
        result["runs"][v] = run
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
