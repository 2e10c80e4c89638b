"""What plmkit's Trainer adds around the training step, over the same real batches of a whole epoch.

One process, the same MiniLM weights, the first ``--steps`` batches of epoch 0 of the task (plmkit's
length-bucketed batches; varying shapes, as in a real epoch), fp32, 2 threads. Variants, each timed
over all the steps:

* ``trainer`` — ``plmkit.training.trainer.Trainer`` as ``plmkit finetune`` runs it (it collates each
  batch, logs every 10 steps, trims the heap only when the resident set grew 1.5×);
* ``trainer-trim10`` — the same with glibc's ``malloc_trim`` at every log line (before f30f0e8);
* ``trainer-notrim`` — the same without ``malloc_trim``;
* ``bare`` — plmkit's training step alone over pre-collated batches (``make_step(trainer=True)``:
  forward, backward, clipping inside fused AdamW, embedding gradient buffers kept);
* ``bare-trim10`` — ``bare`` plus ``malloc_trim(0)`` every 10 steps;
* ``hf`` — transformers' model, plain step (clip_grad_norm_, fused AdamW), on its own batches
  (``LengthGroupedSampler`` + per-batch padding, as ``finetune_glue.py``). Its first batches are
  its longest (the sampler puts them first), so compare ``hf`` with the others over a whole epoch only.

    PLMKIT_DATA=../shared/data python benchmarks/trainer_overhead.py --task conll-ner --threads 2
    PLMKIT_DATA=../shared/data python benchmarks/trainer_overhead.py --variants trainer,trainer-trim10 --steps 439
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import plmkit  # noqa: E402
from finetune_glue import HF_CLASS, hf_collate, minilm_dir, task_config  # noqa: E402
from pretrain_throughput import make_step  # noqa: E402
from plmkit.finetune import FeatureBatches, get_task, prepare_data  # noqa: E402
from plmkit.models import from_pretrained  # noqa: E402
from plmkit.training import trainer as trainer_mod  # noqa: E402

VARIANTS = ("trainer", "trainer-trim10", "trainer-notrim", "bare", "bare-trim10", "hf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="conll-ner")
    ap.add_argument("--data", default=os.environ.get("PLMKIT_DATA"), help="the shared data folder (PLMKIT_DATA)")
    ap.add_argument("--steps", type=int, default=None, help="batches to time (default: one whole epoch)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("--data or PLMKIT_DATA: the shared data folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    import transformers

    transformers.logging.set_verbosity_error()
    ns = argparse.Namespace(max_train=None, model=minilm_dir(), epochs=None, lr=None, batch_size=None, bf16=False,
                            max_eval=None, max_steps=None, max_length=None, device="cpu")
    cfg = task_config(args.task, Path(args.data), Path(tempfile.gettempdir()) / "unused", ns, [1])
    spec = get_task(args.task)
    tok = plmkit.load_tokenizer(cfg.model)
    data = prepare_data(cfg, spec, tok, with_types=True)
    kwargs = spec.head_config(data.labels)
    hf_kwargs = {"num_labels": len(data.labels)} if "id2label" in kwargs else dict(kwargs)

    def source() -> FeatureBatches:
        return FeatureBatches(data.train_features, cfg.batch_size, seed=1, pad_id=0, bucket=True)

    steps = args.steps or len(source())
    it = iter(source())
    batches = [next(it) for _ in range(steps)]

    def ours():
        torch.manual_seed(1)
        return from_pretrained(cfg.model, task=spec.model_task, **kwargs)

    def run_trainer(trim_growth: float | None = None) -> float:
        growth = trainer_mod.TRIM_GROWTH
        trainer_mod.TRIM_GROWTH = growth if trim_growth is None else trim_growth
        try:
            tc = trainer_mod.TrainConfig(lr=5e-5, weight_decay=0.01, warmup=0.1, schedule="linear", max_steps=steps,
                                         batch_size=cfg.batch_size, clip_norm=1.0, seed=1, save_every=0, keep_last=1,
                                         progress=False, tensorboard=False)
            with tempfile.TemporaryDirectory() as d:
                return trainer_mod.Trainer(ours(), tc, source(), Path(d) / "run", steps_per_epoch=len(source()),
                                           tokenizer=tok, run_config={}).train()["elapsed_s"]
        finally:
            trainer_mod.TRIM_GROWTH = growth

    def run_bare(trim_every: int) -> float:
        model = ours()
        model.train()
        model.body.check_inputs = False
        step = make_step(model, lambda m, b: m(**b).loss, False, trainer=True)
        trim = trainer_mod._malloc_trim() if trim_every else None
        t0 = time.perf_counter()
        for i, b in enumerate(batches):
            step(b)
            if trim is not None and i % trim_every == trim_every - 1:
                trim(0)
        return time.perf_counter() - t0

    def run_hf() -> float:
        from transformers.trainer_pt_utils import LengthGroupedSampler

        torch.manual_seed(1)
        model = getattr(transformers, HF_CLASS[spec.model_task]).from_pretrained(str(cfg.model), **hf_kwargs)
        model.train()
        step = make_step(model, lambda m, b: m(**b).loss, False)
        feats = data.train_features
        order = list(LengthGroupedSampler(cfg.batch_size, lengths=feats.lengths().tolist(),
                                          generator=torch.Generator().manual_seed(1000)))
        hb = [hf_collate([feats.inputs[j] for j in order[i:i + cfg.batch_size]], 0)
              for i in range(0, min(len(order), cfg.batch_size * steps), cfg.batch_size)]
        t0 = time.perf_counter()
        for b in hb:
            step(b)
        return time.perf_counter() - t0

    runs = {"trainer": run_trainer, "trainer-trim10": lambda: run_trainer(0.0),  # 0: trim at every log line
            "trainer-notrim": lambda: run_trainer(float("inf")),
            "bare": lambda: run_bare(0), "bare-trim10": lambda: run_bare(10), "hf": run_hf}
    print(f"{args.task}: {steps} batches ({sum(b['input_ids'].numel() for b in batches):,} padded tokens), "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    print("| variant | seconds |\n|---|---:|")
    for name in variants:
        print(f"| {name} | {runs[name]():.1f} |", flush=True)


if __name__ == "__main__":
    main()
