"""Batch-building speed of plmkit.data.objectives.PretrainingStream, per preset recipe.

Usage: python benchmarks/objectives_speed.py PREPARED_DIR [--batch-size 32] [--max-length 128]
Reports the median wall time and CPU time to build one batch (after the epoch plan is built),
and the time to build an epoch's plan. The model step it must hide behind is tens of ms or more.
"""

from __future__ import annotations

import argparse
import statistics
import time

from plmkit.data import PreparedCorpus
from plmkit.data.objectives import PretrainingStream, data_config_from_preset

RECIPES = [
    ("bert-base", {}),
    ("bert-base", {"whole_word": True}),
    ("albert-base", {}),
    ("roberta-base", {}),
    ("roberta-base", {"packing": "doc-sentences", "whole_word": True}),
    ("gpt2-small", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()
    corpus = PreparedCorpus(args.data)
    print(f"{corpus}\nbatch {args.batch_size} x {args.max_length}\n")
    print(f"| recipe | instances/epoch | epoch plan (s) | batch wall (ms) | batch CPU (ms) |")
    print("|---|---|---|---|---|")
    for preset, over in RECIPES:
        cfg = data_config_from_preset(preset, {**over, "max_length": args.max_length})
        t = time.perf_counter()
        stream = PretrainingStream(corpus, cfg, args.batch_size, seed=0)
        n = stream.num_instances()
        plan = time.perf_counter() - t
        it = iter(stream)
        next(it)
        wall, cpu = [], []
        for _ in range(args.batches):
            w, c = time.perf_counter(), time.process_time()
            next(it)
            wall.append(time.perf_counter() - w)
            cpu.append(time.process_time() - c)
        name = preset + "".join(f" {k}={v}" for k, v in over.items())
        print(f"| {name} | {n} | {plan:.2f} | {statistics.median(wall) * 1e3:.2f} | "
              f"{statistics.mean(cpu) * 1e3:.2f} |")


if __name__ == "__main__":
    main()
