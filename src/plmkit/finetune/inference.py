"""Scoring and using fine-tuned model folders: ``plmkit evaluate`` and ``plmkit predict``.

A fine-tuned folder (plmkit- or transformers-written, or a BiLSTM task model) is loaded with the task
options it was trained with (``config.json``'s ``plmkit.finetune`` block; options given on the command
line win), checked against the task, and run over the task's files. :func:`score_sets` is also what
the runner scores its evaluation sets with.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import CheckpointError
from ..models.facts import check_max_length
from ..training.distributed import choose_device
from .batching import run_model
from .bilstm import BILSTM_MODEL_TYPES, WordFeaturizer, load_bilstm
from .folders import check_model_folder, check_vocabulary, finetune_info, load_tokenizer_for, pad_id_for
from .taskdata import EvalSet
from .tasks import get_task
from .tasks.base import Scored, Task, TaskOptions, log
from .tasks.files import check_not_empty


def score_sets(model, task: Task, sets: Sequence[EvalSet], labels: Sequence[str] | None, options: TaskOptions,
               batch_size: int, pad_id: int, bf16: bool = False, official: dict[str, Any] | None = None
               ) -> tuple[dict[str, float], dict[str, Scored]]:
    """Score every evaluation set; metric names get a ``<set>/`` prefix when there are several.
    ``official``, when given, is filled with the official scripts' names and scale (``task.official_scores``)."""
    metrics: dict[str, float] = {}
    scored_sets = {}
    for s in sets:
        outputs = run_model(model, task, s.features, batch_size, pad_id, bf16)
        scored = task.decode(s.examples, s.features, outputs, labels, options, s.info)
        m = task.score(s.examples, scored, labels, s.info)
        scored_sets[s.name] = scored
        prefix = f"{s.name}/" if len(sets) > 1 else ""
        metrics.update({prefix + k: v for k, v in m.items()})
        if official is not None:
            official.update({prefix + k: v for k, v in task.official_scores(s.examples, scored, m, s.info).items()})
    return metrics, scored_sets


def load_finetuned(task: str, model_dir: str | Path, options: TaskOptions | None = None,
                   explicit: Sequence[str] = ()):
    """Model, tokenizer (None for a BiLSTM folder), task, labels and options of a fine-tuned folder.

    ``explicit`` names the option fields the user set on the command line; the rest come from the
    folder's saved options.
    """
    from ..models import from_pretrained
    from ..models.folder import read_config

    spec = get_task(task)
    check_model_folder(model_dir, training=False)  # a --seeds run or an ELMo folder: say what to pass
    bilstm = read_config(model_dir).get("model_type") in BILSTM_MODEL_TYPES
    tokenizer = None if bilstm else load_tokenizer_for(model_dir)  # BiLSTM folders carry words.txt instead
    info = finetune_info(model_dir)
    opts = TaskOptions()
    saved = info.get("options") or {}
    for k, v in saved.items():
        if hasattr(opts, k):
            setattr(opts, k, tuple(v) if k == "text_columns" else v)
    if options is not None:
        for k in explicit:
            setattr(opts, k, getattr(options, k))
    if info.get("task") and info["task"] != spec.name:
        warnings.warn(f"{model_dir} was fine-tuned for {info['task']!r}, not {spec.name!r}", stacklevel=2)
    if bilstm:
        model, labels = load_bilstm(spec, model_dir)
        return model, None, spec, labels, opts
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not use were kept.*")
        model = from_pretrained(model_dir, task="auto")
    if model.task != spec.model_task:
        have = model.task or "no task head (a base model)"
        raise CheckpointError(f"{model_dir} has {have}, but {spec.name} needs a {spec.model_task} model; "
                              f"fine-tune it first: plmkit finetune {spec.name} --model {model_dir} ...")
    return model, tokenizer, spec, spec.model_labels(model, model_dir), opts


def loaded_featurizer(model, tokenizer, task: Task, labels, opts: TaskOptions) -> tuple[Callable, int]:
    """``(featurize(examples, training, path), pad_id)`` for a loaded fine-tuned model."""
    if tokenizer is None:  # a BiLSTM folder: its own word vocabulary (and ELMo)
        return WordFeaturizer(task, model.word_vocab, labels, model.elmo), 0
    pad_id = pad_id_for(tokenizer, model)
    with_types = model.config.type_vocab_size >= 2
    check_max_length(model, task.sequence_length(opts))
    check_vocabulary(tokenizer, model, getattr(model, "loaded_from", "the model"))

    def feat(ex, training, path):
        return task.featurize(ex, tokenizer, labels, opts, with_types, training=training, path=path)
    return feat, pad_id


def evaluate(task: str, model_dir: str | Path, eval_files: Sequence[str], options: TaskOptions | None = None,
             explicit: Sequence[str] = (), batch_size: int = 64, bf16: bool = False, device: str = "auto"
             ) -> dict[str, Any]:
    """Score a fine-tuned model folder on labelled files (metric names prefixed by file when several)."""
    model, tokenizer, spec, labels, opts = load_finetuned(task, model_dir, options, explicit)
    model.to(choose_device(device))
    feat, pad_id = loaded_featurizer(model, tokenizer, spec, labels, opts)
    sets, reports = [], []
    for path in eval_files:
        ex, rep = spec.read(path, "eval", opts)
        log(rep.summary())
        check_not_empty(ex, path, "evaluation file")
        reports.append(rep.to_dict())
        sets.append(EvalSet(Path(path).stem, ex, feat(ex, False, path), rep.info))
    official: dict[str, Any] = {}
    metrics, _ = score_sets(model, spec, sets, labels, opts, batch_size, pad_id, bf16, official)
    result: dict[str, Any] = {"task": spec.name, "model": str(model_dir), "metrics": metrics}
    if official:
        result["official"] = official
    result["data"] = reports
    return result


def evaluate_squad_predictions(task: str, eval_file: str | Path, predictions_file: str | Path,
                               na_probs_file: str | Path | None = None, na_prob_thresh: float = 1.0
                               ) -> dict[str, Any]:
    """Score a prediction file like the official script (no model): v1.1, v2.0 or KorQuAD."""
    return get_task(task).score_prediction_file(eval_file, predictions_file, na_probs_file, na_prob_thresh)


def predict(task: str, model_dir: str | Path, input_file: str | Path, out_file: str | Path,
            options: TaskOptions | None = None, explicit: Sequence[str] = (), batch_size: int = 64,
            bf16: bool = False, device: str = "auto", overwrite: bool = False) -> dict[str, Any]:
    """Predict for an (unlabelled) file and write the predictions; returns counts."""
    from .._files import check_files, output_files

    out = Path(out_file)
    inputs = [model_dir, input_file]
    check_files(get_task(task).prediction_files(out), "prediction file", overwrite, inputs=inputs)  # before any work
    model, tokenizer, spec, labels, opts = load_finetuned(task, model_dir, options, explicit)
    model.to(choose_device(device))
    feat, pad_id = loaded_featurizer(model, tokenizer, spec, labels, opts)
    ex, rep = spec.read_input(input_file, opts)
    log(rep.summary())
    check_not_empty(ex, input_file, "input file")
    feats = feat(ex, False, input_file)
    outputs = run_model(model, spec, feats, batch_size, pad_id, bf16)
    scored = spec.decode(ex, feats, outputs, labels, opts, rep.info)
    with output_files(spec.prediction_files(out, rep.info), "prediction file", overwrite, inputs=inputs) as tmps:
        spec.write_predictions(ex, scored, out, tmps, rep.info)
    return {"task": spec.name, "examples": len(ex), "out": str(out)}


__all__ = ["score_sets", "load_finetuned", "loaded_featurizer", "evaluate", "evaluate_squad_predictions", "predict"]
