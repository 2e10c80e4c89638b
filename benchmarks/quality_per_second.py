"""Quality per second: the held-out MLM loss each tool reaches in the same wall-clock budget.

Throughput alone can hide skipped work, so this trains the same model for the same minutes with
each tool and compares where they end:

* **plmkit**: `plmkit.training.pretrain.pretrain` (the code behind `plmkit pretrain --max-time`),
  its trainer, data stream and time-following LR schedule.
* **transformers**: `BertForPreTraining` (sdpa attention) with the *same initial weights* (plmkit's
  seeded initialisation saved and loaded), the *same batches* (plmkit's `PretrainingStream` over the
  same training documents, same seed: the data pipeline is not what is compared), the same
  optimizer (fused AdamW, same groups, betas, eps, weight decay), clipping and the same LR schedule
  following the same clock — in a plain loop, the way people train it by hand.

Both final models are scored by the same referee: `transformers`' `BertForPreTraining` forward on
the same held-out batches (2% of the documents, as `plmkit pretrain` holds out), MLM cross-entropy
over the masked positions. The plmkit model is exported and loaded into `transformers` for this.

    python benchmarks/quality_per_second.py --data PREPARED --minutes 10                 # one tool after the other
    python benchmarks/quality_per_second.py --data PREPARED --minutes 10 --concurrent    # both at once, 1 thread each

`--concurrent` runs the two tools at the same time in two processes with one thread each, so both
see the same machine state for the whole budget (on a 2-core machine: one core each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def held_out_and_stream(data: Path, preset: str, batch: int, length: int, seed: int, eval_batches: int = 20):
    """plmkit's own split: (train stream, held-out batches), exactly as `pretrain` builds them."""
    from plmkit.data import PreparedCorpus
    from plmkit.data.objectives import PretrainingStream, data_config_from_preset

    corpus = PreparedCorpus(data)
    dcfg = data_config_from_preset(preset, {"max_length": length})
    train_docs, eval_docs = corpus.split(eval_fraction=0.02, seed=seed,
                                         min_eval_documents=2 if dcfg.pair == "nsp" else 1)
    stream = PretrainingStream(corpus, dcfg, batch_size=batch, seed=seed, documents=train_docs)
    held = PretrainingStream(corpus, dcfg, batch_size=batch, seed=seed + 1, documents=eval_docs)
    it = iter(held)
    evals = [next(it) for _ in range(min(eval_batches, max(1, held.steps_per_epoch())))]
    return corpus, stream, evals


def referee(model_dir_or_model, evals) -> float:
    """Held-out MLM loss by transformers' BertForPreTraining forward (the same code for both tools)."""
    import torch
    import transformers as T

    model = (T.BertForPreTraining.from_pretrained(model_dir_or_model, attn_implementation="sdpa")
             if isinstance(model_dir_or_model, (str, Path)) else model_dir_or_model)
    model.eval()
    nll, n = 0.0, 0
    with torch.no_grad():
        for b in evals:
            out = model(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"],
                        attention_mask=b.get("attention_mask"))
            where = b["labels"] != -100
            logits = out.prediction_logits[where]
            nll += float(torch.nn.functional.cross_entropy(logits, b["labels"][where], reduction="sum"))
            n += int(where.sum())
    return nll / n


def run_plmkit(args, work: Path) -> dict:
    from plmkit.training.checkpoint import export_checkpoint
    from plmkit.training.pretrain import pretrain

    summary = pretrain(args.preset, args.data, work / "plmkit-run",
                       flags={"max_time": args.minutes * 60, "batch_size": args.batch, "max_length": args.length,
                              "lr": args.lr, "warmup": args.warmup, "log_every": 50, "eval_every": 0,
                              "save_every": 0, "seed": args.seed, "progress": False, "tensorboard": False})
    export_checkpoint(work / "plmkit-run", work / "plmkit-model")
    _, _, evals = held_out_and_stream(Path(args.data), args.preset, args.batch, args.length, args.seed)
    return {"tool": "plmkit", "steps": summary["step"], "tokens": summary["tokens_seen"],
            "elapsed_s": summary["elapsed_s"], "own_eval_mlm_loss": summary.get("eval_mlm_loss"),
            "referee_mlm_loss": referee(work / "plmkit-model", evals)}


def run_transformers(args, work: Path) -> dict:
    import torch
    import transformers as T

    from plmkit.models import PlmModel
    from plmkit.training.optim import build_optimizer, lr_factor
    from plmkit.training.pretrain import build_model_config
    from plmkit.training.trainer import TrainConfig

    corpus, stream, evals = held_out_and_stream(Path(args.data), args.preset, args.batch, args.length, args.seed)
    tok = corpus.load_tokenizer()
    mcfg = build_model_config(args.preset, {}, tok, args.length)
    torch.manual_seed(args.seed)  # plmkit's initialisation, as `pretrain` seeds it
    init = PlmModel(mcfg, task="pretraining")
    with tempfile.TemporaryDirectory() as d:
        init.save_pretrained(d)
        peer = T.BertForPreTraining.from_pretrained(d, attn_implementation="sdpa")
    del init
    c = TrainConfig(lr=args.lr, warmup=args.warmup, max_time=args.minutes * 60)
    opt = build_optimizer(peer, "adamw", c.lr, c.weight_decay, (c.adam_beta1, c.adam_beta2), c.adam_eps)
    peer.train()
    keys = ("input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label")
    steps, tokens, t0 = 0, 0, time.perf_counter()
    for batch in stream:
        elapsed = time.perf_counter() - t0
        if elapsed >= c.max_time:
            break
        lr = c.lr * lr_factor(elapsed / c.max_time, c.warmup, c.schedule, c.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = peer(**{k: v for k, v in batch.items() if k in keys}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(peer.parameters(), c.clip_norm, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps += 1
        tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    elapsed = time.perf_counter() - t0
    return {"tool": "transformers", "steps": steps, "tokens": tokens, "elapsed_s": round(elapsed, 2),
            "referee_mlm_loss": referee(peer, evals)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a folder written by 'plmkit prepare' (WordPiece)")
    p.add_argument("--preset", default="bert-mini")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--concurrent", action="store_true", help="both tools at once, one thread each")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--json", default=None)
    p.add_argument("--_tool", choices=["plmkit", "transformers"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="plmkit-qps-"))
    work.mkdir(parents=True, exist_ok=True)
    if args._tool:
        res = run_plmkit(args, work) if args._tool == "plmkit" else run_transformers(args, work)
        print(json.dumps(res))
        return 0
    base = [sys.executable, __file__, "--data", args.data, "--preset", args.preset, "--minutes", str(args.minutes),
            "--batch", str(args.batch), "--length", str(args.length), "--lr", str(args.lr), "--warmup",
            str(args.warmup), "--seed", str(args.seed), "--work", str(work)]
    threads = ["--threads", "1"] if args.concurrent else (["--threads", str(args.threads)] if args.threads else [])
    cmds = {tool: base + threads + ["--_tool", tool] for tool in ("plmkit", "transformers")}
    results = []
    if args.concurrent:
        procs = {t: subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for t, c in cmds.items()}
        outs = {t: pr.communicate()[0] for t, pr in procs.items()}
    else:
        outs = {t: subprocess.run(c, stdout=subprocess.PIPE, text=True, check=True).stdout for t, c in cmds.items()}
    for t in ("plmkit", "transformers"):
        results.append(json.loads(outs[t].strip().splitlines()[-1]))
    print(f"{args.preset}, {args.minutes:g} min each, batch {args.batch} × {args.length}, lr {args.lr:g} "
          f"({'concurrently, 1 thread each' if args.concurrent else 'one after the other'})")
    print("| tool | steps | tokens | held-out MLM loss (transformers referee) |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['tool']} | {r['steps']:,} | {r['tokens']:,} | {r['referee_mlm_loss']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    ours, peer = results
    return 0 if ours["referee_mlm_loss"] < peer["referee_mlm_loss"] else 1


if __name__ == "__main__":
    sys.exit(main())
