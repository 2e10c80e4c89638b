"""Fine-tuning, evaluation and prediction: ``plmkit finetune``, ``plmkit evaluate``, ``plmkit predict``.

::

    from plmkit.finetune import FinetuneConfig, TaskOptions, evaluate, finetune, predict
    result = finetune(FinetuneConfig(task="rte", model="models/bert", train="RTE/train.tsv", out="runs/rte",
                                     epochs=3, lr=2e-5))
    evaluate("rte", "runs/rte", ["RTE/dev.tsv"])["metrics"]

The package, one idea per module (imports point down the list):

* :mod:`.tasks` — the task protocol (:class:`Task`), one class per family (sentence, span, choice,
  tagging) with its readers and converters, and the registry of names (:func:`register_task`,
  :func:`get_task`): everything a task owns;
* :mod:`.config` — :class:`FinetuneConfig`, which composes the trainer's ``TrainConfig``;
* :mod:`.batching` — length-bucketed batches, padding per batch, the no-grad inference pass;
* :mod:`.taskdata` — a run's data: read, split, featurized once for every seed;
* :mod:`.folders` — model folders: tokenizer, saved task options, pad id, vocabulary checks;
* :mod:`.bilstm` — ELMo's downstream use: the BiLSTM task model and its word features;
* :mod:`.inference` — loading a fine-tuned folder, ``evaluate``, ``predict``, scoring evaluation sets;
* :mod:`.runner` — ``finetune``: one run per seed with the shared trainer.
"""

from __future__ import annotations

from .batching import FeatureBatches, bucketed_batches, collate, run_model
from .bilstm import WordFeaturizer, load_elmo_for_task, resolve_arch
from .config import BILSTM_LR, TRANSFORMER_LR, FinetuneConfig
from .folders import check_model_folder, pad_id_for
from .inference import evaluate, evaluate_squad_predictions, load_finetuned, predict
from .runner import finetune, summarize
from .taskdata import EvalSet, TaskData, decode, featurize, prepare_data, read_task_file, score
from .tasks import TASKS, Features, Scored, Task, TaskOptions, get_task, register_task

TaskSpec = Task  # the name of a task before tasks were classes

__all__ = ["Task", "TaskSpec", "TASKS", "register_task", "get_task", "TaskOptions", "Features", "Scored",
           "FinetuneConfig", "TRANSFORMER_LR", "BILSTM_LR", "finetune", "summarize", "evaluate",
           "evaluate_squad_predictions", "predict", "load_finetuned", "FeatureBatches", "collate", "bucketed_batches",
           "run_model", "EvalSet", "TaskData", "prepare_data", "read_task_file", "featurize", "decode", "score",
           "WordFeaturizer", "resolve_arch", "load_elmo_for_task", "check_model_folder", "pad_id_for"]
