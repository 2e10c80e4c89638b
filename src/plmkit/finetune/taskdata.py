"""A task's data for one fine-tuning run: its files read, a validation split carved when there is no
``--eval``, and every set featurized once for all seeds (:func:`prepare_data`).

Also the task's operations as plain functions (``read_task_file``, ``featurize``, ``decode``, ``score``),
the API from before tasks were classes; each calls the task's method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .config import FinetuneConfig
from .tasks.base import Features, Scored, Task, TaskOptions, carve_split, log
from .tasks.files import ReadReport, check_not_empty


@dataclass
class EvalSet:
    """One evaluation set: its examples and features, and what its reader found (``ReadReport.info``)."""

    name: str
    examples: list
    features: Features
    info: dict[str, Any]


@dataclass
class TaskData:
    """Examples and features of one task, shared by every seed of a run."""

    task: Task
    labels: tuple[str, ...] | None
    train_examples: list
    train_features: Features
    evals: list[EvalSet]
    reports: list[dict[str, Any]]
    validation: str
    featurizer: Any = None  # the WordFeaturizer of a BiLSTM run (its word vocabulary, ELMo)


def prepare_data(cfg: FinetuneConfig, task: Task, tokenizer, with_types: bool,
                 featurizer_for: Callable[[list, list[list], tuple[str, ...] | None], Callable] | None = None
                 ) -> TaskData:
    """Read, split and featurize the task's files once for every seed.

    ``featurizer_for(train_examples, eval_example_lists, labels)`` replaces the tokenizer's features
    (BiLSTM models: :meth:`plmkit.finetune.bilstm.WordFeaturizer.for_training`); it returns
    ``f(examples, training, path)``.
    """
    opts = cfg.options
    train_ex, train_rep = task.read(cfg.train, "train", opts)
    log(train_rep.summary())
    check_not_empty(train_ex, cfg.train, "training file")
    reports = [train_rep.to_dict()]
    eval_sets: list[tuple[str, list, str, dict[str, Any]]] = []
    if cfg.eval:
        for path in cfg.eval:
            ex, rep = task.read(path, "eval", opts)
            log(rep.summary())
            check_not_empty(ex, path, "evaluation file")
            reports.append(rep.to_dict())
            eval_sets.append((Path(path).stem, ex, str(path), rep.info))
        validation = "files: " + ", ".join(cfg.eval)
    else:
        tr, ev = carve_split(task.split_groups(train_ex), cfg.eval_split, cfg.split_seed)
        eval_sets.append(("validation", [train_ex[i] for i in ev.tolist()], str(cfg.train), train_rep.info))
        train_ex = [train_ex[i] for i in tr.tolist()]
        validation = (f"carved from {cfg.train}: {len(ev)} of {len(ev) + len(tr)} examples "
                      f"(--eval-split {cfg.eval_split}, split seed {cfg.split_seed}{task.split_note})")
        log(f"validation split {validation}")
    if cfg.max_train is not None:  # after carving, so the validation split does not depend on it
        train_ex = train_ex[: cfg.max_train]
    if cfg.max_eval is not None:
        eval_sets = [(n, ex[: cfg.max_eval], p, info) for n, ex, p, info in eval_sets]
    labels = task.labels_from(train_ex) if task.labels_from_data else task.labels
    if featurizer_for is None:
        def feat(ex, training, path):
            return task.featurize(ex, tokenizer, labels, opts, with_types, training=training, path=path)
    else:
        feat = featurizer_for(train_ex, [ex for _, ex, _, _ in eval_sets], labels)
    train_feats = feat(train_ex, True, cfg.train)
    if train_feats.stats:
        log(f"training features: {len(train_feats)} ({', '.join(f'{k}={v}' for k, v in train_feats.stats.items())})")
    evals = []
    for name, ex, path, info in eval_sets:
        task.check_eval_labels(ex, labels, path)
        evals.append(EvalSet(name, ex, feat(ex, False, path), info))
    return TaskData(task, labels, train_ex, train_feats, evals, reports, validation,
                    featurizer=feat if featurizer_for is not None else None)


# --------------------------------------------------------------------------- the task's operations as functions
def read_task_file(task: Task, path: str | Path, role: str, options: TaskOptions,
                   require_labels: bool = True) -> tuple[list, ReadReport]:
    """Read a task file (``task.read``). ``role`` is "train", "eval" or "input" (prediction: labels optional)."""
    return task.read(path, role, options, require_labels)


def featurize(task: Task, examples: Sequence, tokenizer, labels: Sequence[str] | None, options: TaskOptions,
              with_types: bool, training: bool, path: str | Path = "") -> Features:
    """Model inputs of ``examples`` (``task.featurize``)."""
    return task.featurize(examples, tokenizer, labels, options, with_types, training, path)


def _info(version_2: bool) -> Mapping[str, Any]:
    return {"version": "2.0" if version_2 else "1.1"}


def decode(task: Task, examples: Sequence, features: Features, outputs: list[dict[str, np.ndarray]],
           labels: Sequence[str] | None, options: TaskOptions, version_2: bool = False) -> Scored:
    """Per-example predictions from model outputs (``task.decode``; ``version_2``: a SQuAD 2.0 file)."""
    return task.decode(examples, features, outputs, labels, options, _info(version_2))


def score(task: Task, examples: Sequence, scored: Scored, labels: Sequence[str] | None,
          version_2: bool = False) -> dict[str, float]:
    """The task's metric(s) for decoded predictions (``task.score``; ``version_2``: a SQuAD 2.0 file)."""
    return task.score(examples, scored, labels, _info(version_2))


__all__ = ["EvalSet", "TaskData", "prepare_data", "read_task_file", "featurize", "decode", "score"]
