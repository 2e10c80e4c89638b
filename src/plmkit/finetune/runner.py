"""Fine-tuning: one task, one pretrained model (or a new BiLSTM), one run per seed, the shared trainer.

BERT's recipe (Devlin et al., 2019, §4 and appendix A.3): start from a pretrained encoder, add one
task head (classification/regression on the pooled ``[CLS]``, start/end span logits, a score per
choice, a label per token), and train everything end to end for a few epochs with AdamW, linear
warmup then decay. RoBERTa, ALBERT and GPT-2-style models fine-tune the same way through their own
heads (see :mod:`plmkit.models.heads`); the training loop is the shared
:class:`plmkit.training.trainer.Trainer`, with the :class:`~plmkit.training.trainer.TrainConfig` that
``FinetuneConfig.training`` holds.

The runner knows no task: the task (:mod:`plmkit.finetune.tasks`) reads its files, featurizes them,
sizes the head, decodes and scores the outputs and writes its prediction files. What the runner adds:

* length-bucketed, dynamically padded batches and batched no-grad evaluation (:mod:`.batching`);
* ``seeds``: every seed trains from the same data and validation split; the summary gives the mean
  and (sample) standard deviation of every metric, since GLUE scores vary a lot between seeds;
* without an evaluation file, a deterministic validation split is carved from the training file
  (by article for SQuAD, so no paragraph is on both sides);
* a run folder that resumes exactly (``resume``) and refuses to resume with other settings;
* ELMo's downstream use, a BiLSTM task model instead of a Transformer (:mod:`.bilstm`).
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import PlmkitError, UsageError
from ..models.facts import check_max_length
from .batching import FeatureBatches
from .bilstm import (WordFeaturizer, bilstm_config_overrides, check_bilstm_task, load_elmo_for_task, new_bilstm_model,
                     resolve_arch)
from .config import FinetuneConfig
from .folders import check_model_folder, check_vocabulary, load_tokenizer_for, pad_id_for
from .inference import score_sets
from .taskdata import TaskData, prepare_data
from .tasks import get_task
from .tasks.base import Task, TaskOptions, log


def _out_ready(out: Path, resume: bool) -> None:
    """Fail fast, writing nothing, unless ``out`` may take this fine-tuning run (new, empty, or to --resume)."""
    from ..training import checkpoint as ckpt

    if (out / "metrics.json").exists():
        raise UsageError(f"{out} already holds a finished fine-tuning run (metrics.json); choose a new --out "
                         "(plmkit never overwrites results)")
    if resume or ckpt.is_dead_attempt(out):
        return
    if out.exists() and (not out.is_dir() or ckpt.run_contents(out)):
        raise UsageError(f"{out} exists and is not empty; choose a new --out, or add --resume to continue an "
                         "interrupted run in it")


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune (one run per seed), evaluate, save the model folder(s) and metrics.json; returns the summary.

    The run folder ``cfg.out`` is locked while it runs (one writer per folder), may not be or sit inside
    one of the inputs, and a run that fails before it has saved anything worth resuming takes back what it
    wrote (see :mod:`plmkit._files`).
    """
    from .._files import run_folder
    from ..training import checkpoint as ckpt

    inputs = [cfg.model, cfg.train, *(cfg.eval or []), cfg.elmo]
    with run_folder(cfg.out, "finetune-run", inputs=inputs, accept=lambda p: _out_ready(p, cfg.resume),
                    worth_keeping=ckpt.worth_keeping):
        return _finetune(cfg)


def _finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    from ..models import from_pretrained
    from ..training.checkpoint import write_json_atomic

    task = get_task(cfg.task)
    if not cfg.seeds:
        raise UsageError("--seeds needs at least one seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise UsageError(f"--seeds has duplicates: {cfg.seeds}")
    arch = resolve_arch(cfg)
    if not cfg.resume:  # a resumed run may be older (finetune_batches); a new one is checked before any data
        from ..training.pretrain import check_grad_accum

        check_grad_accum(cfg.batch_size, cfg.grad_accum)
    out = Path(cfg.out)
    build: Callable[[], torch.nn.Module] | None = None
    if arch == "bilstm":
        check_bilstm_task(task, cfg.options)
        bilstm_config_overrides(cfg.bilstm)  # unknown keys fail before any data is read
        lm = load_elmo_for_task(cfg.elmo) if cfg.elmo else None
        _out_ready(out, cfg.resume)
        tokenizer, with_types = None, False
        data = prepare_data(cfg, task, None, False, featurizer_for=lambda tr, evs, labels: WordFeaturizer.for_training(
            task, tr, evs, labels, cfg, lm))
        build = lambda: new_bilstm_model(task, data.featurizer.word_vocab, data.labels, cfg, lm)  # noqa: E731
        described = "a BiLSTM" + (f" with ELMo from {cfg.elmo}" if cfg.elmo else " (no ELMo)")
    else:
        _out_ready(out, cfg.resume)
        check_model_folder(cfg.model, training=True)  # a --seeds run or an ELMo folder: say what to pass
        tokenizer = load_tokenizer_for(cfg.model)
        # Read the model's config once to learn about segment embeddings and positions.
        from ..models.folder import read_config
        from ..models.hf import config_from_hf

        base_config = config_from_hf(read_config(cfg.model), source=str(Path(cfg.model) / "config.json"))
        with_types = base_config.type_vocab_size >= 2
        check_max_length(base_config, task.sequence_length(cfg.options))
        check_vocabulary(tokenizer, base_config, cfg.model)
        data = prepare_data(cfg, task, tokenizer, with_types)
        described = str(cfg.model)
    multi = len(cfg.seeds) > 1
    runs: dict[str, dict[str, Any]] = {}
    for seed in cfg.seeds:
        run_dir = out / f"seed-{seed}" if multi else out
        if multi:
            if cfg.resume and (run_dir / "metrics.json").exists():  # finished before the interruption
                runs[str(seed)] = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
                log(f"seed {seed}: already finished in {run_dir}")
                continue
            _out_ready(run_dir, cfg.resume)
        log(f"{'training' if build else 'fine-tuning'} {task.name} {'as' if build else 'from'} {described}, "
            f"seed {seed} → {run_dir}")
        runs[str(seed)] = _train_one(cfg, task, data, tokenizer, seed, run_dir, with_types, from_pretrained, build)
        if multi:
            write_json_atomic(run_dir / "metrics.json", runs[str(seed)])
    result: dict[str, Any] = {"task": task.name, "model": described, "train": str(cfg.train),
                              "validation": data.validation, "data": data.reports}
    if arch == "bilstm":
        result.update(arch="bilstm", elmo=str(cfg.elmo) if cfg.elmo else None)
    if multi:
        result["seeds"] = cfg.seeds
        result["main_metric"] = task.main_metric
        result.update(summarize(runs))
        result["runs"] = runs
    else:
        result.update(runs[str(cfg.seeds[0])])
    write_json_atomic(out / "metrics.json", result)
    return result


def summarize(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1) over seeds of every numeric metric."""
    keys = sorted({k for r in runs.values() for k, v in r.get("metrics", {}).items() if isinstance(v, (int, float))})
    mean, std = {}, {}
    for k in keys:
        vals = np.array([r["metrics"][k] for r in runs.values() if k in r.get("metrics", {})], dtype=float)
        mean[k] = float(vals.mean())
        std[k] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    timing = [r["seconds_per_epoch"] for r in runs.values() if r.get("seconds_per_epoch")]
    return {"mean": mean, "std": std, "seconds_per_epoch": float(np.mean(timing)) if timing else None}


def _train_one(cfg: FinetuneConfig, task: Task, data: TaskData, tokenizer, seed: int, run_dir: Path,
               with_types: bool, from_pretrained: Callable, build: Callable[[], torch.nn.Module] | None = None
               ) -> dict[str, Any]:
    """One seed: a Transformer from ``cfg.model`` with a new head, or (``build``) a new BiLSTM model."""
    from ..training.trainer import Trainer, load_weights_from_folder

    torch.manual_seed(seed)  # the new head's initialisation depends on the seed, as in transformers
    if build is not None:
        model = build()
        pad_id = 0  # the BiLSTM's word vocabulary puts <pad> at 0
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*newly initialised.*")
            warnings.filterwarnings("ignore", message=".*does not use were kept.*")
            model = from_pretrained(cfg.model, task=task.model_task, **task.head_config(data.labels))
        pad_id = pad_id_for(tokenizer, model)
    micro, accum = finetune_batches(cfg, run_dir)
    source = FeatureBatches(data.train_features, micro, seed=seed, pad_id=pad_id, bucket=cfg.bucket)
    steps_per_epoch = len(source)  # micro-batches
    tc = cfg.run_training(seed, micro, accum)

    def quick_eval(m) -> dict[str, float]:
        metrics, _ = score_sets(m, task, data.evals, data.labels, cfg.options, cfg.eval_batch_size, pad_id, cfg.bf16)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    if build is not None:
        run_config = {"task": task.name, "model": {"arch": "bilstm", "elmo": str(cfg.elmo) if cfg.elmo else None,
                                                   **model.config.to_dict()},
                      "tokenizer_hash": data.featurizer.vocab_hash, "train": str(cfg.train), "seed": seed}
    else:
        run_config = {"task": task.name, "model": str(cfg.model), "tokenizer_hash": tokenizer.hash(),
                      "train": str(cfg.train), "seed": seed}
    run_config["fingerprint"] = _fingerprint(cfg, task, data, model, run_config["tokenizer_hash"], seed, build)
    trainer = Trainer(model, tc, source, run_dir, evaluate=quick_eval if cfg.eval_every else None,
                      steps_per_epoch=steps_per_epoch, tokenizer=tokenizer, run_config=run_config,
                      resume=cfg.resume,  # --resume: the checkpoint's weights with this task's heads
                      load_weights=lambda folder: load_weights_from_folder(
                          folder, task="auto" if build is not None else task.model_task))
    t0 = time.perf_counter()
    summary = trainer.train()
    train_s = summary.get("elapsed_s", time.perf_counter() - t0)
    if str(summary.get("stop_reason", "")).startswith("signal"):
        raise PlmkitError(f"fine-tuning stopped by a signal; a checkpoint is in {run_dir}/checkpoints — continue "
                          "with the same command plus --resume")
    t1 = time.perf_counter()
    official: dict[str, float] = {}
    metrics, scored_sets = score_sets(model, task, data.evals, data.labels, cfg.options, cfg.eval_batch_size, pad_id,
                                      cfg.bf16, official=official)
    eval_s = time.perf_counter() - t1
    first = data.evals[0]  # tuned on the (first) eval set, as BERT's recipe does
    options = task.tuned_options(cfg.options, first.examples, scored_sets[first.name], first.info)
    epochs_done = summary.get("step", 0) * accum / max(steps_per_epoch, 1)
    info = {"task": task.name, "labels": list(data.labels) if data.labels else None,
            "options": _options_dict(options), "seed": seed, "base_model": str(cfg.model)}
    if build is not None:
        info.update(arch="bilstm", elmo=str(cfg.elmo) if cfg.elmo else None, base_model=None, lr=tc.lr)
        model.save_pretrained(run_dir, extra={"finetune": info})  # elmo/ holds the frozen biLM
    else:
        model.save_pretrained(run_dir, only_task_heads=True, tokenizer=tokenizer, extra={"finetune": info})
    for name, scored in scored_sets.items():
        task.write_eval_predictions(run_dir, name, scored, len(scored_sets) > 1)
    if not cfg.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # written by this run; the model is saved
    result: dict[str, Any] = {"metrics": metrics}
    if official:
        result["official"] = official
    return {**result, "main_metric": task.main_metric, "steps": summary.get("step"),
            "epochs": round(epochs_done, 4), "train_seconds": round(float(train_s), 2),
            "seconds_per_epoch": round(float(train_s) / epochs_done, 2) if epochs_done else None,
            "eval_seconds": round(eval_s, 2), "train_examples": len(data.train_examples),
            "train_features": len(data.train_features)}


def finetune_batches(cfg: FinetuneConfig, run_dir: Path) -> tuple[int, int]:
    """(micro-batch, accumulation steps) of a run: ``batch_size`` is the optimizer batch, split into
    ``grad_accum`` micro-batches. A run being resumed that was started when ``--grad-accum K`` accumulated K
    whole batches (its checkpoint records the flags as given) resumes as it was, with a note."""
    from ..training.pretrain import check_grad_accum, older_grad_accum_run, recorded_train_config

    if cfg.grad_accum == 1:
        return cfg.batch_size, 1
    if cfg.resume and older_grad_accum_run(recorded_train_config(run_dir), cfg.batch_size, cfg.grad_accum,
                                           str(run_dir)):
        return cfg.batch_size, cfg.grad_accum
    check_grad_accum(cfg.batch_size, cfg.grad_accum)
    return cfg.batch_size // cfg.grad_accum, cfg.grad_accum


def _fingerprint(cfg: FinetuneConfig, task: Task, data: TaskData, model, tokenizer_hash: str, seed: int,
                 build: Callable | None) -> dict[str, Any]:
    """What makes a fine-tuning run this run; ``--resume`` must find the same (checkpoint.fingerprint_differences).

    The model is its config (not where the base folder lies: the weights come from the checkpoint); the
    training file by size and SHA-256; the validation split only when it is carved from that file.
    """
    from ..training.checkpoint import file_identity

    fp: dict[str, Any] = {
        "task": task.name, "model": model.config.to_dict(), "tokenizer_hash": tokenizer_hash, "seed": seed,
        "train_file": file_identity(cfg.train), "max_train": cfg.max_train, "bucket": cfg.bucket,
        "carved_split": None if cfg.eval else {"eval_split": cfg.eval_split, "split_seed": cfg.split_seed},
        "options": _options_dict(cfg.options), "labels": list(data.labels) if data.labels else None,
    }
    if build is not None:
        fp["arch"] = "bilstm"
        weights = Path(cfg.elmo) / "model.safetensors" if cfg.elmo else None
        fp["elmo"] = file_identity(weights) if weights is not None and weights.is_file() else None
    return fp


def _options_dict(options: TaskOptions) -> dict[str, Any]:
    d = asdict(options)
    d["text_columns"] = list(d["text_columns"])
    return d


__all__ = ["finetune", "summarize", "finetune_batches"]
