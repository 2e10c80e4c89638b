"""Where CPU fine-tuning time goes: MiniLM + a new task head, plmkit against transformers.

Both tools get the same batches of real rows (plmkit's length-bucketed batches of the task's training
file, padded per batch; the peer also gets the all-ones attention mask its collator would pass), the
same fused AdamW, clipping and fp32; plmkit's step is its Trainer's (clipping inside the fused AdamW
kernel, embedding gradient buffers kept between steps: ``plmkit.training.optim``). ``torch.profiler`` records 3 training steps of each after
2 warm-up steps and prints the top operations by self CPU time (transformers first: what users have).

    PLMKIT_DATA=../shared/data python benchmarks/finetune_profile.py --task sst2 --threads 2
    PLMKIT_DATA=../shared/data python benchmarks/finetune_profile.py --task mrpc --max-length 128 --threads 2

``--time N`` times instead: N training steps of each, interleaved (median seconds per step) —
transformers, plmkit, and for sentence tasks plmkit with the full last layer (``output_hidden_states=True``,
which runs every position) to measure what computing only the [CLS] row saves. Every task of
``finetune_glue.py`` works (``--task squad --batch-size 16``, ``--task conll-ner``, ``--task nsmc``...):

    PLMKIT_DATA=../shared/data python benchmarks/finetune_profile.py --task mrpc --batch-index 40 --time 20 --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import plmkit  # noqa: E402
from finetune_glue import HF_CLASS, TASKS, minilm_dir  # noqa: E402
from pretrain_throughput import interleaved_seconds, make_step, profile_step  # noqa: E402
from plmkit.finetune import FeatureBatches, FinetuneConfig, TaskOptions, get_task, pad_id_for, prepare_data  # noqa: E402
from plmkit.models import from_pretrained  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="sst2", choices=sorted(TASKS))
    ap.add_argument("--data", default=os.environ.get("PLMKIT_DATA"), help="the shared data folder (PLMKIT_DATA)")
    ap.add_argument("--model", default=None, help="model folder (default: the MiniLM checkpoint package)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=None, help="default: the task's length in finetune_glue.py")
    ap.add_argument("--batch-index", type=int, default=0, help="which of the epoch's batches to profile")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--time", type=int, default=0, metavar="N",
                    help="time N interleaved steps of each instead of profiling")
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("--data or PLMKIT_DATA: the shared data folder (it holds glue/<TASK>/train.tsv)")
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = Path(args.model) if args.model else minilm_dir()
    train, _ev, _max_train, max_length, *_ = TASKS[args.task]
    max_length = args.max_length or max_length
    spec = get_task(args.task)
    tok = plmkit.load_tokenizer(model_dir)
    with tempfile.TemporaryDirectory() as out:
        cfg = FinetuneConfig(task=args.task, model=str(model_dir), train=str(Path(args.data) / train), out=out,
                             batch_size=args.batch_size, max_train=2000, progress=False, tensorboard=False,
                             options=TaskOptions(max_length=max_length))
        data = prepare_data(cfg, spec, tok, with_types=True)
    kwargs = spec.head_config(data.labels)
    hf_kwargs = {"num_labels": len(data.labels)} if "id2label" in kwargs else dict(kwargs)
    torch.manual_seed(1)
    ours = from_pretrained(str(model_dir), task=spec.model_task, **kwargs)
    pad = pad_id_for(tok, ours)
    source = FeatureBatches(data.train_features, args.batch_size, seed=1, pad_id=pad, bucket=True)
    batch = next(itertools.islice(iter(source), args.batch_index % len(source), None))  # the stream repeats epochs
    peer_batch = dict(batch)  # what transformers' collator passes: the same rows, plus the attention mask
    peer_batch.setdefault("attention_mask", torch.ones_like(batch["input_ids"]))

    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(1)
    peer = getattr(transformers, HF_CLASS[spec.model_task]).from_pretrained(
        str(model_dir), attn_implementation="sdpa", **hf_kwargs)
    ours.train(), peer.train()
    rows, length = batch["input_ids"].shape
    label = f"MiniLM + {HF_CLASS[spec.model_task].removeprefix('AutoModelFor')} head, {args.task}, one batch of {rows} × {length} tokens, threads {torch.get_num_threads()}"
    print(f"torch {torch.__version__}; {label}")
    if args.time:
        runs = [("transformers", make_step(peer, lambda m, b: m(**b).loss, False), peer_batch),
                ("plmkit", make_step(ours, lambda m, b: m(**b).loss, False, trainer=True), batch)]
        if spec.model_task == "sequence-classification":  # the head that reads one row: what computing only that row saves
            runs.append(("plmkit, full last layer",
                         make_step(ours, lambda m, b: m(**b, output_hidden_states=True).loss, False, trainer=True),
                         batch))
        time_steps(args.time, label, runs)
        return
    profile_step("transformers", make_step(peer, lambda m, b: m(**b).loss, False), peer_batch, args.top,
                 label=label)
    profile_step("plmkit", make_step(ours, lambda m, b: m(**b).loss, False, trainer=True), batch, args.top,
                 label=label)


def time_steps(n: int, label: str, runs: list) -> None:
    """2 warm-up steps each, then ``n`` rounds of one step of each in turn; median seconds per step."""
    times = interleaved_seconds({name: (lambda step=step, batch=batch: step(batch)) for name, step, batch in runs},
                                steps=n, warmup=2)
    base = statistics.median(times[runs[0][0]])
    print(f"{label}; {n} steps each, interleaved, median")
    print("| run | s/step | vs " + runs[0][0] + " |\n|---|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.4f} | {base / med:.2f}× |")


if __name__ == "__main__":
    main()
