"""The task protocol: what fine-tuning, ``evaluate`` and ``predict`` ask of a task, and what tasks share.

A task is an object of a :class:`Task` subclass, registered by name (:func:`plmkit.finetune.tasks.register_task`).
The runner (:mod:`plmkit.finetune.runner`) never asks which task it runs: it reads the files through
the task, featurizes through it, runs the model, and hands the outputs back to the task to decode,
score and write. So a new task is one class (or one object of an existing family's class) and one
registry line. The families here follow fairseq's split of model / task / criterion: the model
(:mod:`plmkit.models`) knows nothing of files or metrics, the task knows nothing of training.

Also here: :class:`Features` (a task's model inputs plus what decoding needs), :class:`TaskOptions`
(the settings a fine-tuned model saves for evaluate / predict), :class:`Scored` (decoded predictions),
and :func:`carve_split` (a validation split that never depends on the training seed).
"""

from __future__ import annotations

import abc
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import CheckpointError, DataError, UsageError
from ...evaluation import metrics as M
from .files import ReadReport

IGNORE_INDEX = -100  # a label position with no loss and no prediction (transformers' convention)


def log(msg: str) -> None:
    """A line of what fine-tuning does, on stderr (stdout carries the JSON result)."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- features
@dataclass
class Features:
    """Model inputs, one dict of int arrays per feature, plus per-feature bookkeeping.

    ``inputs[i]`` holds ``input_ids`` (and ``token_type_ids``) as 1-D arrays (2-D, one row per
    choice, for multiple choice) and the label fields the model takes (``labels`` or
    ``start_positions``/``end_positions``). ``example_index[i]`` is the example the feature came
    from (SQuAD windows: several features per example). ``extra[i]`` holds what post-processing
    needs (offsets, word ids).
    """

    inputs: list[dict[str, np.ndarray]]
    example_index: np.ndarray
    extra: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.inputs)

    def lengths(self) -> np.ndarray:
        """Padded length each feature needs (the longest choice for multiple choice)."""
        return np.array([f["input_ids"].shape[-1] for f in self.inputs], dtype=np.int64)


def pair_encode(tokenizer, firsts: Sequence[str], seconds: Sequence[str] | None, max_length: int,
                strategy: str = "longest_first") -> list:
    """Encode texts (or pairs) with the tokenizer's own special tokens, truncated to ``max_length``."""
    backend = tokenizer.backend
    backend.enable_truncation(max_length, strategy=strategy)
    try:
        return tokenizer.encode_batch(list(firsts), None if seconds is None else list(seconds))
    finally:
        backend.no_truncation()


def encoding_arrays(enc, with_types: bool) -> dict[str, np.ndarray]:
    out = {"input_ids": np.asarray(enc.ids, dtype=np.int64)}
    if with_types:
        out["token_type_ids"] = np.asarray(enc.type_ids, dtype=np.int64)
    return out


# --------------------------------------------------------------------------- validation split
def carve_split(groups: Sequence[Any] | int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic (train_indices, eval_indices) split of examples, by group.

    ``groups`` gives each example's group (SQuAD: its article, so no context is shared between
    the two sides) or is the number of examples (each its own group). ``fraction`` of the groups,
    at least one, go to evaluation; the same (groups, fraction, seed) always give the same split.
    """
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--eval-split must be between 0 and 1 (exclusive), got {fraction}")
    keys = list(range(groups)) if isinstance(groups, int) else list(groups)
    uniq = list(dict.fromkeys(keys))  # groups in order of first appearance (deterministic)
    if len(uniq) < 2:
        raise DataError("the training file has too few examples (or articles) to carve a validation split; "
                        "give an --eval file")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    n_eval = min(len(uniq) - 1, max(1, int(round(fraction * len(uniq)))))
    eval_groups = {uniq[i] for i in order[:n_eval].tolist()}
    is_eval = np.array([k in eval_groups for k in keys])
    return np.flatnonzero(~is_eval), np.flatnonzero(is_eval)


# --------------------------------------------------------------------------- options and results
@dataclass
class TaskOptions:
    """Task-level settings shared by finetune, evaluate and predict (saved with the model)."""

    max_length: int | None = None  # None: the task's default (128; 384 for SQuAD)
    doc_stride: int = 128  # SQuAD: tokens of overlap between windows of a long context
    max_query_length: int = 64  # SQuAD: questions are cut to this many tokens (BERT's default)
    max_answer_length: int = 30  # SQuAD: longest answer span in tokens
    n_best: int = 20  # SQuAD: start/end candidates kept per window
    null_threshold: float | None = None  # SQuAD 2.0: null-minus-span score above which "" is predicted
    text_columns: tuple[str, ...] = ()  # classify / regress
    label_column: str | None = None
    id_column: str | None = None


@dataclass
class Scored:
    """Decoded predictions of one evaluation set."""

    metrics: dict[str, float]
    predictions: list[Any]  # one per example: label / score / choice / tag list / answer text
    extra: dict[str, Any] = field(default_factory=dict)  # SQuAD: null_odds, nbest, best_non_null


def distinct_labels(found: set[str]) -> tuple[str, ...]:
    """The label set of a classifier whose labels come from the training data (sorted), at least two."""
    if len(found) < 2:
        raise DataError(f"the training data has {len(found)} distinct label(s) ({', '.join(sorted(found))}); "
                        "a classifier needs at least two")
    return tuple(sorted(found))


# --------------------------------------------------------------------------- the protocol
class Task(abc.ABC):
    """A fine-tuning task: its files, its features, its head, its metric.

    **A new task provides** the class attributes ``name``, ``description``, ``model_task`` (the head it
    trains: ``sequence-classification``, ``question-answering``, ``multiple-choice`` or
    ``token-classification``, as :func:`plmkit.from_pretrained` names them) and ``main_metric``, and four
    methods:

    * ``read(path, role, options, require_labels)`` → ``(examples, ReadReport)``: its file format;
      ``role`` is ``"train"``, ``"eval"`` or ``"input"`` (prediction, labels optional). Facts about
      the file that decoding or scoring need go in ``ReadReport.info`` and come back as ``info``;
    * ``featurize(examples, tokenizer, labels, options, with_types, training, path)`` → :class:`Features`;
    * ``decode(examples, features, outputs, labels, options, info)`` → :class:`Scored`, one prediction
      per example from ``outputs`` (what :meth:`batch_outputs` made of the model's output, per feature);
    * ``score(examples, scored, labels, info)`` → ``{metric: value}``, fractions as plmkit reports them.

    Everything else has a default for a task with one prediction per example: a head that needs no
    settings, labels fixed by the task (``labels``) or read from the training data
    (``labels_from_data``), the official scorer's names from :func:`plmkit.evaluation.metrics.official_metrics`,
    predictions written as JSON lines (or GLUE's TSV). Override a method where the task differs;
    the family classes (sentence, span, choice, tagging) show how.
    """

    name: str
    description: str
    model_task: str
    main_metric: str
    labels: tuple[str, ...] | None = None  # fixed class labels (None: none, a regression, or from the data)
    labels_from_data: bool = False  # the label set is the training data's (generic classify, brown-pos)
    max_length: int = 128  # tokens per sequence unless --max-length says otherwise
    split_note: str = ""  # how a carved validation split is made, for the log (SQuAD: whole articles)
    # The BiLSTM task model that can learn this task (--arch bilstm / --elmo): "bilstm-tagger",
    # "bilstm-classifier", or None when only a Transformer can.
    bilstm_model: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ------------------------------------------------------------------ reading
    @abc.abstractmethod
    def read(self, path: str | Path, role: str, options: TaskOptions, require_labels: bool = True
             ) -> tuple[list, ReadReport]:
        """Examples of a task file and what the reader did (role: train, eval or input)."""

    def read_input(self, path: str | Path, options: TaskOptions) -> tuple[list, ReadReport]:
        """Examples to predict for (``plmkit predict --input``): the task's format, labels optional."""
        return self.read(path, "input", options, require_labels=False)

    def labels_from(self, examples: Sequence) -> tuple[str, ...]:
        """The label set of the training examples (``labels_from_data`` tasks)."""
        return distinct_labels({str(e.label) for e in examples if e.label is not None})

    def check_eval_labels(self, examples: Sequence, labels: Sequence[str] | None, path: str | Path) -> None:
        """Refuse evaluation examples whose labels the model cannot predict (labels from the training data)."""

    def split_groups(self, examples: Sequence) -> Sequence[Any] | int:
        """What a carved validation split keeps together (:func:`carve_split`): by default each example."""
        return len(examples)

    # ------------------------------------------------------------------ features and the model
    @abc.abstractmethod
    def featurize(self, examples: Sequence, tokenizer, labels: Sequence[str] | None, options: TaskOptions,
                  with_types: bool, training: bool, path: str | Path = "") -> Features:
        """Model inputs (with labels where the examples have them) and what decoding needs."""

    def sequence_length(self, options: TaskOptions) -> int:
        """Tokens per sequence: ``--max-length``, else the task's default."""
        return options.max_length or self.max_length

    def head_config(self, labels: Sequence[str] | None) -> dict[str, Any]:
        """Keywords that size a new head (``from_pretrained(..., task=model_task, **head_config)``)."""
        return {}

    def model_labels(self, model, folder: str | Path) -> tuple[str, ...] | None:
        """The labels of a loaded fine-tuned model, checked against the task (None: the task has none)."""
        return None

    def batch_outputs(self, output, lengths: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """Per-feature arrays from the model's output for one batch (``lengths``: each row's real tokens).

        The default keeps each row's ``logits`` (classification, regression, multiple choice).
        """
        logits = output.logits.float().cpu().numpy()
        return [{"logits": logits[j]} for j in range(len(lengths))]

    # ------------------------------------------------------------------ decoding and scoring
    @abc.abstractmethod
    def decode(self, examples: Sequence, features: Features, outputs: list[dict[str, np.ndarray]],
               labels: Sequence[str] | None, options: TaskOptions, info: Mapping[str, Any] | None = None) -> Scored:
        """One prediction per example from the per-feature outputs (no scoring)."""

    @abc.abstractmethod
    def score(self, examples: Sequence, scored: Scored, labels: Sequence[str] | None,
              info: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The task's metric(s) for decoded predictions, in plmkit's names and scale (fractions)."""

    def official_scores(self, examples: Sequence, scored: Scored, metrics: Mapping[str, float],
                        info: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The scores of :meth:`score` as the task's official script names and prints them (0–100), for
        comparison with papers and leaderboards; ``{}`` where plmkit's names and scale are the script's."""
        return M.official_metrics(self.name, metrics)

    def tuned_options(self, options: TaskOptions, examples: Sequence, scored: Scored,
                      info: Mapping[str, Any] | None = None) -> TaskOptions:
        """The options saved with a fine-tuned model, after scoring the first evaluation set (SQuAD 2.0
        tunes its no-answer threshold there); by default ``options`` as they are."""
        return options

    # ------------------------------------------------------------------ writing predictions
    def prediction_files(self, out: Path, info: Mapping[str, Any] | None = None) -> list[Path]:
        """The files ``predict --out OUT`` writes; ``info=None``: every file it may write (checked first)."""
        return [out]

    def write_predictions(self, examples: Sequence, scored: Scored, out: Path, files: Sequence[Path],
                          info: Mapping[str, Any] | None = None) -> None:
        """Write the predictions for ``out`` into ``files`` (temporaries of :meth:`prediction_files`).

        By default one line per example: JSON ``{"id", "prediction"}``, or GLUE's submission TSV
        (``index<TAB>prediction``) for a ``.tsv`` ``out``.
        """
        with open(files[0], "w", encoding="utf-8") as f:
            if out.suffix == ".tsv":
                f.write("index\tprediction\n")
                for e, p in zip(examples, scored.predictions):
                    f.write(f"{e.guid}\t{p:.3f}\n" if isinstance(p, float) else f"{e.guid}\t{p}\n")
            else:
                for e, p in zip(examples, scored.predictions):
                    f.write(json.dumps({"id": e.guid, "prediction": p}, ensure_ascii=False) + "\n")

    def write_eval_predictions(self, run_dir: Path, name: str, scored: Scored, multi: bool) -> None:
        """Files a fine-tuning run writes beside its model for an evaluation set (SQuAD: the official
        prediction files); by default none."""

    def score_prediction_file(self, eval_file: str | Path, predictions_file: str | Path,
                              na_probs_file: str | Path | None = None, na_prob_thresh: float = 1.0
                              ) -> dict[str, Any]:
        """``evaluate --predictions``: score a prediction file without a model, like the official script."""
        raise UsageError("--predictions (scoring a prediction file without a model) works for squad and korquad")

    # ------------------------------------------------------------------ the BiLSTM task model (ELMo's use)
    def words(self, example: Any, path: str | Path = "") -> list[str]:
        """The words a BiLSTM reads for ``example`` (tasks with a ``bilstm_model``)."""
        raise self.no_bilstm()

    def word_features(self, examples: Sequence, input_ids: Sequence[np.ndarray], labels: Sequence[str],
                      path: str | Path = "") -> Features:
        """BiLSTM features from per-example word ids: the labels and what decoding needs."""
        raise self.no_bilstm()

    def no_bilstm(self) -> UsageError:
        """The error for a task no BiLSTM task model can learn."""
        return UsageError(f"the BiLSTM task model (--arch bilstm / --elmo) tags words (conll-ner, brown-pos) or "
                          f"classifies single sentences (classify, sst2, cola, nsmc, ...), so it cannot do "
                          f"{self.name}; fine-tune a Transformer with --model for {self.name}")


def classifier_labels(task: Task, model, folder: str | Path) -> tuple[str, ...]:
    """A loaded classifier's labels (config.json's id2label), checked against the task's fixed labels.

    A folder whose labels are transformers' placeholders (``LABEL_0`` ...) takes the task's labels
    when their number matches; other labels must be the task's.
    """
    labels: tuple[str, ...] | None = None
    if model.config.id2label:
        labels = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    if task.labels is not None and (labels is None or set(labels) != set(task.labels)):
        if labels is not None and not all(x.startswith("LABEL_") for x in labels):
            raise CheckpointError(f"{folder}: the model's labels {list(labels)} are not {task.name}'s "
                                  f"{list(task.labels)}")
        if model.config.num_labels != len(task.labels):
            raise CheckpointError(f"{folder}: the model has {model.config.num_labels} labels, "
                                  f"{task.name} has {len(task.labels)}")
        labels = task.labels
    if labels is None:
        raise CheckpointError(f"{folder}: config.json has no id2label, so predictions cannot be named")
    return labels


__all__ = ["IGNORE_INDEX", "log", "Features", "pair_encode", "encoding_arrays", "carve_split", "TaskOptions", "Scored",
           "Task", "distinct_labels", "classifier_labels"]
