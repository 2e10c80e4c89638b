"""Fine-tuning, evaluation and prediction for GLUE, SQuAD, SWAG, tagging, Korean and generic tasks.

BERT's recipe (Devlin et al., 2019, §4 and appendix A.3): start from a pretrained encoder, add one
task head (classification/regression on the pooled ``[CLS]``, start/end span logits, a score per
choice, a label per token), and train everything end to end for a few epochs with AdamW, linear
warmup then decay. RoBERTa, ALBERT and GPT-2-style models fine-tune the same way through their own
heads (see :mod:`plmkit.models.heads`); the training loop is the shared
:class:`plmkit.training.trainer.Trainer`.

What this module adds to the recipe, for speed on CPUs and GPUs alike:

* **length-bucketed, dynamically padded batches** — examples are shuffled, cut into chunks of 50
  batches, sorted by length within a chunk, batched, and the batches shuffled (``transformers``'
  ``group_by_length`` batches the same way but keeps each chunk's batches in order, longest first;
  that order measured no better: BENCHMARKS.md); each batch is padded only to its own longest row,
  and the attention mask is dropped when no row is padded;
* **batched, no-grad evaluation** over length-sorted features, with optional bf16 autocast;
* ``seeds``: every seed trains from the same data and validation split; the summary gives the mean
  and (sample) standard deviation of every metric, since GLUE scores vary a lot between seeds;
* without an evaluation file, a deterministic validation split is carved from the training file
  (by article for SQuAD, so no paragraph is on both sides).

A task is a :class:`TaskSpec`: a reader for its official file format, a feature converter, the model
head it needs and its official metric. :data:`TASKS` lists them all.

**ELMo's downstream use** (Peters et al., 2018, §3.3) goes through the same runner: with
``arch="bilstm"`` (``--arch bilstm``) the task model is a BiLSTM tagger or sentence classifier over
the task's own word embeddings (:mod:`plmkit.models.tagger`) instead of a pretrained Transformer,
and ``elmo=DIR`` (``--elmo DIR``) concatenates a frozen biLM's layers, mixed by weights the task
learns. The readers, splits, metrics, seeds, ``metrics.json`` and the trainer are the ones above;
only the features differ (whole words, no sub-word tokenizer) — see :class:`WordFeaturizer`.
Because the biLM is frozen, its layer states are computed once per sentence and cached
(``elmo_cache``), so epochs and seeds do not rerun it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .data.tasks import (IGNORE_INDEX, Features, ReadReport, check_not_empty, carve_split, convert_sentences)
from .data.tasks import generic as generic_tasks
from .data.tasks import glue, korean, squad, swag, tagging
from .config import MAX_SEED, NONNEG, POSITIVE, SEED, UNIT_OPEN, check_fields
from .errors import CheckpointError, ConfigError, DataError, PlmkitError, UsageError
from .evaluation import metrics as M
from .models.facts import check_max_length, model_device, pad_token_id
from .training.distributed import choose_device

# --------------------------------------------------------------------------- task registry


@dataclass(frozen=True)
class TaskSpec:
    """How to read, featurize, model and score one task."""

    name: str
    family: str  # "sentence" | "squad" | "choice" | "tagging"
    model_task: str  # plmkit / transformers head: sequence-classification, question-answering, ...
    labels: tuple[str, ...] | None  # fixed class labels; None = regression or read from the training data
    main_metric: str
    description: str
    regression: bool = False
    labels_from_data: bool = False  # generic classify, brown-pos
    max_length: int = 128
    char_level: bool = False


def _sentence(name, labels, main, desc, regression=False, max_length=128, **kw) -> TaskSpec:
    return TaskSpec(name, "sentence", "sequence-classification", labels, main, desc, regression=regression,
                    max_length=max_length, **kw)


TASKS: dict[str, TaskSpec] = {
    "cola": _sentence("cola", glue.GLUE_TASKS["cola"].labels, "matthews_correlation", "GLUE CoLA acceptability"),
    "sst2": _sentence("sst2", glue.GLUE_TASKS["sst2"].labels, "accuracy", "GLUE SST-2 sentiment"),
    "mrpc": _sentence("mrpc", glue.GLUE_TASKS["mrpc"].labels, "f1", "GLUE MRPC paraphrase"),
    "stsb": _sentence("stsb", None, "pearson", "GLUE STS-B similarity (regression)", regression=True),
    "qqp": _sentence("qqp", glue.GLUE_TASKS["qqp"].labels, "f1", "GLUE QQP duplicate questions"),
    "mnli": _sentence("mnli", glue.GLUE_TASKS["mnli"].labels, "accuracy", "GLUE MultiNLI"),
    "qnli": _sentence("qnli", glue.GLUE_TASKS["qnli"].labels, "accuracy", "GLUE QNLI"),
    "rte": _sentence("rte", glue.GLUE_TASKS["rte"].labels, "accuracy", "GLUE RTE entailment"),
    "wnli": _sentence("wnli", glue.GLUE_TASKS["wnli"].labels, "accuracy", "GLUE WNLI"),
    "squad": TaskSpec("squad", "squad", "question-answering", None, "f1", "SQuAD 1.1 / 2.0 extractive QA",
                      max_length=384),
    "korquad": TaskSpec("korquad", "squad", "question-answering", None, "f1", "KorQuAD 1.0 extractive QA",
                        max_length=384),
    "swag": TaskSpec("swag", "choice", "multiple-choice", None, "accuracy", "SWAG multiple choice"),
    "conll-ner": TaskSpec("conll-ner", "tagging", "token-classification", tagging.CONLL_LABELS, "f1",
                          "CoNLL-2003 English NER (IOB1, conlleval F1)"),
    "brown-pos": TaskSpec("brown-pos", "tagging", "token-classification", None, "accuracy",
                          "Brown corpus POS tagging", labels_from_data=True),
    "klue-ner": TaskSpec("klue-ner", "tagging", "token-classification", tagging.KLUE_LABELS, "f1",
                         "KLUE-NER Korean NER (character level)", char_level=True),
    "klue-nli": _sentence("klue-nli", korean.KLUE_NLI_LABELS, "accuracy", "KLUE-NLI Korean NLI"),
    "klue-sts": _sentence("klue-sts", None, "pearson", "KLUE-STS Korean similarity (regression)", regression=True),
    "kornli": _sentence("kornli", korean.KLUE_NLI_LABELS, "accuracy", "KorNLI Korean NLI"),
    "korsts": _sentence("korsts", None, "pearson", "KorSTS Korean similarity (regression)", regression=True),
    "nsmc": _sentence("nsmc", ("0", "1"), "accuracy", "NSMC Korean movie-review sentiment"),
    "classify": _sentence("classify", None, "accuracy", "any CSV/TSV/JSONL classification",
                          labels_from_data=True),
    "regress": _sentence("regress", None, "pearson", "any CSV/TSV/JSONL regression", regression=True),
}


def get_task(name: str) -> TaskSpec:
    key = name.lower().replace("_", "-")
    key = {"sst-2": "sst2", "sts-b": "stsb", "mnli-mm": "mnli", "conll2003": "conll-ner", "conll": "conll-ner",
           "ner": "conll-ner", "pos": "brown-pos", "squad2": "squad", "squad-v2": "squad"}.get(key, key)
    if key not in TASKS:
        raise UsageError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[key]


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


def read_task_file(spec: TaskSpec, path: str | Path, role: str, options: TaskOptions,
                   require_labels: bool = True) -> tuple[list, ReadReport]:
    """Read a task file. ``role`` is "train", "eval" or "input" (prediction: labels optional)."""
    training = role == "train"
    name = spec.name
    if spec.family == "squad":
        return squad.read_squad(path, for_training=training, require_answers=require_labels)
    if spec.family == "choice":
        return swag.read_swag(path, require_labels=require_labels)
    if name == "conll-ner":
        return tagging.read_conll(path, require_labels=require_labels)
    if name == "brown-pos":
        return _read_brown(path, require_labels)
    if name == "klue-ner":
        return tagging.read_klue_ner(path, require_labels=require_labels)
    if name in glue.GLUE_TASKS:
        return glue.read_column_tsv(path, glue.GLUE_TASKS[name], require_labels=require_labels)
    if name in korean.KOREAN_TSV_TASKS:
        return glue.read_column_tsv(path, korean.KOREAN_TSV_TASKS[name], require_labels=require_labels)
    if name == "klue-nli":
        return korean.read_klue_nli(path, require_labels=require_labels)
    if name == "klue-sts":
        return korean.read_klue_sts(path, require_labels=require_labels)
    if name in ("classify", "regress"):
        if not options.text_columns:
            raise UsageError(f"task {name} needs --text-column NAME (or --text-columns A,B for a pair) and "
                             "--label-column NAME")
        if options.label_column is None and require_labels:
            raise UsageError(f"task {name} needs --label-column NAME")
        return generic_tasks.read_generic(path, options.text_columns, options.label_column, spec.regression,
                                          require_labels=require_labels, id_column=options.id_column)
    raise UsageError(f"no reader for task {name}")


def _read_brown(path, require_labels: bool):
    """Brown POS through the shared tagged-Brown reader (:func:`plmkit.data.readers.iter_tagged`).

    A file, a folder (NLTK layout; ``cats.txt`` lists the files) or a glob. For prediction, an
    untagged file is read as one whitespace-tokenised sentence per line.
    """
    from .data.readers import expand_inputs, iter_tagged, looks_tagged
    from .data.tasks import TaggingExample, refuse_json

    files = expand_inputs(path)
    for file in files[:1]:
        refuse_json(file, "brown-pos", "tagged Brown text (word/tag tokens, one sentence per line; NLTK's "
                    "corpora/brown layout)")
    if not require_labels:
        with open(files[0], encoding="utf-8", errors="replace") as f:
            head = f.read(1 << 16)
        if not looks_tagged(head):
            return tagging.read_plain_sentences(path)
    report = ReadReport(str(path))
    examples = []
    for file, sentences in iter_tagged(path):
        for i, (words, tags) in enumerate(sentences, start=1):
            examples.append(TaggingExample(f"{file.name}-{i}", words, tags, line=i))
    report.read = len(examples)
    return examples, report


def featurize(spec: TaskSpec, examples: Sequence, tokenizer, labels: Sequence[str] | None, options: TaskOptions,
              with_types: bool, training: bool, path: str | Path = "") -> Features:
    max_length = options.max_length or spec.max_length
    if spec.family == "sentence":
        return convert_sentences(examples, tokenizer, None if spec.regression else labels, max_length, with_types,
                                 path)
    if spec.family == "squad":
        return squad.convert_squad(examples, tokenizer, max_length, options.doc_stride, options.max_query_length,
                                   with_types, training=training)
    if spec.family == "choice":
        return swag.convert_choices(examples, tokenizer, max_length, with_types)
    if spec.char_level:
        return tagging.convert_chars(examples, tokenizer, labels or (), max_length, with_types)
    return tagging.convert_words(examples, tokenizer, labels or (), max_length, with_types)


def labels_from_examples(spec: TaskSpec, examples: Sequence) -> tuple[str, ...]:
    if spec.family == "tagging":
        found = {t for e in examples for t in (e.tags or ())}
    else:
        found = {str(e.label) for e in examples if e.label is not None}
    if len(found) < 2:
        raise DataError(f"the training data has {len(found)} distinct label(s) ({', '.join(sorted(found))}); "
                        "a classifier needs at least two")
    return tuple(sorted(found))


# --------------------------------------------------------------------------- batching
# Per-word inputs of the BiLSTM models, (words, ...) per feature: padded along their *first* axis.
PER_WORD_KEYS = ("char_ids", "elmo_states")


def collate(items: Sequence[dict[str, np.ndarray]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to the longest one; drop ``attention_mask`` when no row is padded."""
    lengths = [f["input_ids"].shape[-1] for f in items]
    T = max(lengths)
    out: dict[str, torch.Tensor] = {}
    for key in items[0]:
        first = items[0][key]
        if np.ndim(first) == 0:
            out[key] = torch.from_numpy(np.asarray([f[key] for f in items]))
            continue
        if key in PER_WORD_KEYS:
            arr = np.zeros((len(items), T, *first.shape[1:]), dtype=first.dtype)  # (B, T, ...)
            for i, f in enumerate(items):
                arr[i, : f[key].shape[0]] = f[key]
            out[key] = torch.from_numpy(arr.astype(np.int64) if key == "char_ids" else arr)  # ids stored as int16
            continue
        fill = {"input_ids": pad_id, "labels": IGNORE_INDEX}.get(key, 0)
        shape = (len(items), *first.shape[:-1], T)
        arr = np.full(shape, fill, dtype=first.dtype)
        for i, f in enumerate(items):
            arr[i, ..., : f[key].shape[-1]] = f[key]
        out[key] = torch.from_numpy(arr)
    if "attention_mask" not in out:
        if min(lengths) < T:
            mask = np.zeros((len(items), T), dtype=np.int64)
            for i, n in enumerate(lengths):
                mask[i, :n] = 1
            out["attention_mask"] = torch.from_numpy(mask)
    elif bool(out["attention_mask"].all()):
        del out["attention_mask"]
    return out


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                     bucket_batches: int = 50) -> list[np.ndarray]:
    """Index batches grouped by length: shuffle, sort within chunks of ``bucket_batches`` batches,
    batch, shuffle the batches. ``rng=None``: no shuffling (evaluation: fully length-sorted)."""
    n = len(lengths)
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    chunk = batch_size * bucket_batches
    batches = []
    for c in range(0, n, chunk):
        part = order[c:c + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


class FeatureBatches:
    """An endless, resumable, length-bucketed source of training batches (the trainer's BatchSource).

    Epoch ``e`` is a deterministic function of (seed, e); the state is (epoch, batches served).
    """

    def __init__(self, features: Features, batch_size: int, seed: int = 0, pad_id: int = 0,
                 bucket: bool = True, drop_keys: Sequence[str] = ()):
        if len(features) == 0:
            raise DataError("no training features")
        self.features = features
        self.batch_size = batch_size
        self.seed = seed
        self.pad_id = pad_id
        self.bucket = bucket
        self.drop_keys = set(drop_keys)
        self.lengths = features.lengths()
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        return math.ceil(len(self.features) / self.batch_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        if self.bucket:
            return bucketed_batches(self.lengths, self.batch_size, rng)
        order = rng.permutation(len(self.features))
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            batches = self.epoch_batches(self.epoch)
            while self.position < len(batches):
                idx = batches[self.position]
                self.position += 1
                items = [{k: v for k, v in self.features.inputs[i].items() if k not in self.drop_keys}
                         for i in idx.tolist()]
                yield collate(items, self.pad_id)
            self.epoch += 1
            self.position = 0

    def state_dict(self) -> dict:
        return {"epoch": int(self.epoch), "position": int(self.position), "seed": int(self.seed)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


# --------------------------------------------------------------------------- model outputs
@torch.no_grad()
def run_model(model, features: Features, batch_size: int = 64, pad_id: int = 0, bf16: bool = False
              ) -> list[dict[str, np.ndarray]]:
    """Forward every feature once, in length-sorted batches without gradients.

    Returns, per feature (in the original order): ``logits`` (classification / regression /
    choice), ``start``/``end`` (span, unpadded), or ``tags`` (token classification: arg-max label
    per token, unpadded).
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    lengths = features.lengths()
    results: list[dict[str, np.ndarray] | None] = [None] * len(features)
    label_keys = {"labels", "start_positions", "end_positions"}
    try:
        for idx in bucketed_batches(lengths, batch_size, None):
            items = [{k: v for k, v in features.inputs[i].items() if k not in label_keys} for i in idx.tolist()]
            batch = {k: v.to(device) for k, v in collate(items, pad_id).items()}
            with autocast():
                out = model(**batch)
            if out.start_logits is not None:
                start, end = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
                for j, i in enumerate(idx.tolist()):
                    n = lengths[i]
                    results[i] = {"start": start[j, :n], "end": end[j, :n]}
            elif model.task == "token-classification":
                tags = out.logits.float().argmax(-1).cpu().numpy()
                for j, i in enumerate(idx.tolist()):
                    results[i] = {"tags": tags[j, :lengths[i]]}
            else:
                logits = out.logits.float().cpu().numpy()
                for j, i in enumerate(idx.tolist()):
                    results[i] = {"logits": logits[j]}
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- scoring
def sentence_metrics(spec: TaskSpec, preds: np.ndarray, golds: np.ndarray) -> dict[str, float]:
    if spec.name in M.GLUE_METRICS or spec.name in glue.GLUE_TASKS:
        return M.glue_metrics(spec.name, preds, golds)
    if spec.name == "klue-sts":
        return M.klue_sts_metrics(preds, golds)
    if spec.regression:
        return M.pearson_spearman(preds, golds)
    return {"accuracy": M.accuracy(preds, golds)}


@dataclass
class Scored:
    metrics: dict[str, float]
    predictions: list[Any]  # one per example: label / score / choice / tag list / answer text
    extra: dict[str, Any] = field(default_factory=dict)  # SQuAD: null_odds, nbest, best_non_null


def decode(spec: TaskSpec, examples: Sequence, features: Features, outputs: list[dict[str, np.ndarray]],
           labels: Sequence[str] | None, options: TaskOptions, version_2: bool = False) -> Scored:
    """Turn model outputs into per-example predictions (no scoring)."""
    if spec.family == "sentence":
        logits = np.stack([o["logits"] for o in outputs]) if outputs else np.zeros((0, 1))
        if spec.regression:
            return Scored({}, logits[:, 0].astype(float).tolist())
        ids = logits.argmax(-1)
        return Scored({}, [labels[int(i)] for i in ids], {"ids": ids})
    if spec.family == "choice":
        return Scored({}, [int(np.argmax(o["logits"])) for o in outputs])
    if spec.family == "tagging":
        fn = tagging.decode_chars if spec.char_level else tagging.decode_words
        return Scored({}, [fn(e, o["tags"], features.extra[i], labels) for i, (e, o) in enumerate(zip(examples, outputs))])
    threshold = options.null_threshold if options.null_threshold is not None else 0.0
    post = squad.postprocess(examples, features, [o["start"] for o in outputs], [o["end"] for o in outputs],
                             n_best=options.n_best, max_answer_length=options.max_answer_length,
                             version_2=version_2, null_threshold=threshold)
    post["null_threshold"] = float(threshold)  # what the predictions were cut at (SQuAD 2.0)
    return Scored({}, [post["predictions"][e.qid] for e in examples], post)


def score(spec: TaskSpec, examples: Sequence, scored: Scored, labels: Sequence[str] | None,
          version_2: bool = False) -> dict[str, float]:
    """The task's official metric(s) for decoded predictions, in plmkit's names and scale (fractions;
    :mod:`plmkit.evaluation.metrics`); :func:`official_scores` gives the official script's."""
    if spec.family == "sentence":
        if spec.regression:
            golds = np.array([float(e.label) for e in examples])
            return sentence_metrics(spec, np.asarray(scored.predictions, dtype=float), golds)
        golds = np.array([list(labels).index(str(e.label)) for e in examples])
        return sentence_metrics(spec, np.asarray(scored.extra["ids"]), golds)
    if spec.family == "choice":
        return {"accuracy": M.accuracy(scored.predictions, [e.label for e in examples])}
    if spec.family == "tagging":
        golds = [e.tags for e in examples]
        if spec.name == "brown-pos" or (spec.labels is None and spec.family == "tagging"):
            flat_p = [t for s in scored.predictions for t in s]
            flat_g = [t for s in golds for t in s]
            return {"accuracy": M.accuracy(flat_p, flat_g)}
        out = M.conlleval(scored.predictions, golds)
        if spec.char_level:
            out["entity_macro_f1"] = M.entity_macro_f1(scored.predictions, golds)
            out["char_macro_f1"] = M.char_macro_f1(scored.predictions, golds, labels or ())
        return out
    official = squad.to_official(examples)
    preds = scored.extra["predictions"]
    if spec.name == "korquad":
        return M.korquad_evaluate(official, preds)
    if version_2:
        # The predictions were cut at null_threshold; the scorer applies the same one to the same null_odds.
        return M.squad_v2_evaluate(official, preds, na_probs=scored.extra["null_odds"],
                                   na_prob_thresh=scored.extra.get("null_threshold", 0.0),
                                   best_thresh_predictions=scored.extra["best_non_null"])
    return M.squad_v1_evaluate(official, preds)


def official_scores(spec: TaskSpec, examples: Sequence, scored: Scored, metrics: dict[str, float],
                    version_2: bool = False) -> dict[str, float]:
    """The scores of :func:`score` as the task's official script names and prints them (0–100), for
    comparison with papers and leaderboards; ``{}`` where plmkit's names and scale are the script's."""
    if spec.family == "squad" and version_2 and spec.name != "korquad":
        return M.squad_v2_evaluate(squad.to_official(examples), scored.extra["predictions"],
                                   na_probs=scored.extra["null_odds"],
                                   na_prob_thresh=scored.extra.get("null_threshold", 0.0),
                                   best_thresh_predictions=scored.extra["best_non_null"], official=True)
    return M.official_metrics(spec.name, metrics)


# --------------------------------------------------------------------------- model + tokenizer
def seed_folders(folder: str | Path) -> list[Path]:
    """The ``seed-N`` model folders of a ``--seeds`` run folder, by seed (empty for any other folder)."""
    found = []
    try:
        for child in Path(folder).iterdir():
            m = re.fullmatch(r"seed-(-?\d+)", child.name)
            if m and (child / "config.json").is_file():
                found.append((int(m.group(1)), child))
    except OSError:
        return []
    return [p for _, p in sorted(found)]


def check_model_folder(model_dir: str | Path, training: bool) -> None:
    """Point to the right folder or flag when ``--model`` is not a Transformer model folder but a ``--seeds``
    run (its ``seed-N`` folders) or an ELMo biLM (``--elmo``); other problems are reported by the loaders."""
    from .models.folder import read_config

    folder = Path(model_dir)
    if folder.is_dir() and not (folder / "config.json").exists():
        seeds = seed_folders(folder)
        if seeds:
            names = ", ".join(p.name for p in seeds[:5]) + (", ..." if len(seeds) > 5 else "")
            raise CheckpointError(f"{folder} is the folder of a --seeds run, which holds one fine-tuned model per "
                                  f"seed ({names}) and their summary, not a model itself; pass one seed's folder, "
                                  f"e.g. --model {seeds[0]}")
        return
    if not folder.is_dir():
        return
    try:
        kind = read_config(folder).get("model_type")
    except CheckpointError:
        return  # the loader says what is wrong with config.json
    if kind == "elmo":
        if training:
            raise UsageError(f"--model {folder} is an ELMo biLM (model_type 'elmo'), which is not fine-tuned like a "
                             f"Transformer: pass it as --elmo {folder} (without --model) to train a BiLSTM task "
                             "model on its vectors")
        raise UsageError(f"--model {folder} is a pretrained ELMo biLM, not a fine-tuned task model; fine-tune one on "
                         f"it first (plmkit finetune TASK --elmo {folder} --out DIR ...) and pass --model DIR")


def load_tokenizer_for(model_dir: str | Path):
    from .tokenization import load_tokenizer

    folder = Path(model_dir)
    if not (folder / "config.json").exists() and folder.is_dir():
        raise CheckpointError(f"{folder} has no config.json, so it is not a model folder; pass a plmkit or "
                              "Hugging Face model folder to --model")
    try:
        return load_tokenizer(folder)
    except CheckpointError as e:
        raise CheckpointError(f"{e}. Fine-tuning and evaluation tokenize with the model folder's own tokenizer, "
                              "so the folder must contain it (tokenizer.json or vocab files)") from None


def finetune_info(model_dir: str | Path) -> dict[str, Any]:
    """The ``plmkit.finetune`` block a fine-tuned folder's config.json carries ({} for others)."""
    from .models.folder import read_config

    raw = read_config(model_dir)
    return dict((raw.get("plmkit") or {}).get("finetune") or {})


def pad_id_for(tokenizer, model) -> int:
    """The pad id (:func:`plmkit.models.facts.pad_token_id`), also set as the model config's when it has none."""
    pad = pad_token_id(tokenizer, model)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad  # GPT-2: the classifier finds the last real token by the pad id
    return pad


def check_vocabulary(tokenizer, model, folder: str | Path) -> None:
    """A tokenizer with more ids than the model's embedding table would index past it: refuse (CheckpointError)."""
    config = getattr(model, "config", model)
    if len(tokenizer) > config.vocab_size:
        raise CheckpointError(f"{folder}: the tokenizer has {len(tokenizer):,} ids but the model's vocab_size is "
                              f"{config.vocab_size:,}, so ids from {config.vocab_size:,} on have no embedding; the "
                              "tokenizer files and config.json come from different models — restore the model's own "
                              "tokenizer")


# --------------------------------------------------------------------------- fine-tuning
@dataclass
class FinetuneConfig:
    """Everything ``plmkit finetune`` takes. Defaults follow BERT's fine-tuning recipe (appendix A.3)."""

    task: str
    model: str | None  # the pretrained folder to fine-tune; None with arch="bilstm"
    train: str
    out: str
    eval: list[str] = field(default_factory=list)
    # BERT: 2–4 epochs, batch 16/32, lr in {5e-5, 3e-5, 2e-5}, 10% warmup, weight decay 0.01.
    epochs: float = 3.0
    # None: 2e-5 (BERT's recipe) for Transformers, 1e-2 for BiLSTMs trained from scratch (BILSTM_LR).
    lr: float | None = None
    # The batch the optimizer sees; grad_accum K splits it into K micro-batches of batch_size / K examples
    # (K must divide it), accumulated into one step: the same batch in less memory.
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accum: int = 1
    # < 1: a fraction of the steps (--warmup-ratio); >= 1: a number of steps (--warmup-steps).
    warmup: float = 0.1
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    max_steps: int | None = None
    seeds: list[int] = field(default_factory=lambda: [42])
    bf16: bool = False
    eval_split: float = 0.1  # fraction of train carved off for validation when no --eval is given
    split_seed: int = 0  # the carved split is the same for every training seed
    max_train: int | None = None  # use only the first N training examples (quick runs, benchmarks)
    max_eval: int | None = None  # score only the first N examples of each evaluation set
    eval_every: int = 0
    bucket: bool = True
    device: str = "auto"
    resume: bool = False
    # Resumable checkpoints while training, as in pretraining (TrainConfig.save_every / save_minutes): by
    # default every 5 minutes, so a kill loses at most that; save_every N adds one every N steps, 0 turns both off.
    save_every: int | None = None
    save_minutes: float = 5.0
    keep_checkpoints: bool = False
    progress: bool | None = None  # None/True: a bar on a terminal, status lines in a log (plmkit._progress)
    tensorboard: bool = True
    options: TaskOptions = field(default_factory=TaskOptions)
    # "transformer" fine-tunes `model`; "bilstm" trains plmkit.models.tagger's BiLSTM tagger / classifier
    # from scratch (no `model`); "auto": bilstm when `elmo` is given, else transformer.
    arch: str = "auto"
    # An ELMo folder: its frozen layers, scalar-mixed by weights the task learns, are concatenated to the
    # BiLSTM's word embeddings (Peters et al., 2018, §3.3).
    elmo: str | None = None
    # TaggerConfig fields for the BiLSTM: embedding_dim, hidden_size, num_layers, dropout, pooling,
    # elmo_dropout, elmo_layer_norm (unset: TaggerConfig's defaults, the usual small BiLSTM tagger).
    bilstm: dict[str, Any] = field(default_factory=dict)
    # Training words seen fewer times become <unk>, so that <unk> itself gets trained for unseen words.
    min_word_count: int = 2
    # Cache the frozen biLM's layer states once per sentence (None: when they fit in ELMO_CACHE_MAX_BYTES).
    elmo_cache: bool | None = None

    def __post_init__(self) -> None:
        # Types and ranges of every field (paths may be str or os.PathLike), before anything is read.
        check_fields(self, "finetune settings", ranges=FINETUNE_RANGES, paths=("model", "train", "out", "eval", "elmo"))
        for seed in self.seeds:
            if not 0 <= seed <= MAX_SEED:
                raise ConfigError(f"finetune settings: seed {seed} is out of range; seeds are integers from 0 to "
                                  f"{MAX_SEED}")


# Ranges of FinetuneConfig's numbers (config.check_fields).
FINETUNE_RANGES: dict[str, Any] = {
    **dict.fromkeys(("lr", "batch_size", "eval_batch_size", "grad_accum", "max_steps", "max_train", "max_eval"),
                    POSITIVE),
    **dict.fromkeys(("epochs", "warmup", "weight_decay", "clip_norm", "eval_every", "min_word_count", "save_every",
                     "save_minutes"), NONNEG),
    "eval_split": UNIT_OPEN, "split_seed": SEED,
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class TaskData:
    """Examples and features of one task, shared by every seed of a run."""

    spec: TaskSpec
    labels: tuple[str, ...] | None
    train_examples: list
    train_features: Features
    evals: list[tuple[str, list, Features, bool]]  # (name, examples, features, squad v2)
    reports: list[dict[str, Any]]
    validation: str
    featurizer: Any = None  # the WordFeaturizer of a BiLSTM run (its word vocabulary, ELMo)


def prepare_data(cfg: FinetuneConfig, spec: TaskSpec, tokenizer, with_types: bool,
                 featurizer_for: Callable[[list, list[list], tuple[str, ...] | None], Callable] | None = None
                 ) -> TaskData:
    """Read, split and featurize the task's files once for every seed.

    ``featurizer_for(train_examples, eval_example_lists, labels)`` replaces the tokenizer's features
    (BiLSTM models: :meth:`WordFeaturizer.for_training`); it returns ``f(examples, training, path)``.
    """
    opts = cfg.options
    train_ex, train_rep = read_task_file(spec, cfg.train, "train", opts)
    _log(train_rep.summary())
    check_not_empty(train_ex, cfg.train, "training file")
    reports = [train_rep.to_dict()]
    version_2 = train_rep.info.get("version") == "2.0"
    eval_sets: list[tuple[str, list, str, bool]] = []
    if cfg.eval:
        for path in cfg.eval:
            ex, rep = read_task_file(spec, path, "eval", opts)
            _log(rep.summary())
            check_not_empty(ex, path, "evaluation file")
            reports.append(rep.to_dict())
            eval_sets.append((Path(path).stem, ex, str(path), rep.info.get("version") == "2.0"))
        validation = "files: " + ", ".join(cfg.eval)
    else:
        groups = [e.article for e in train_ex] if spec.family == "squad" else len(train_ex)
        tr, ev = carve_split(groups, cfg.eval_split, cfg.split_seed)
        eval_sets.append(("validation", [train_ex[i] for i in ev.tolist()], str(cfg.train), version_2))
        train_ex = [train_ex[i] for i in tr.tolist()]
        validation = (f"carved from {cfg.train}: {len(ev)} of {len(ev) + len(tr)} examples "
                      f"(--eval-split {cfg.eval_split}, split seed {cfg.split_seed}"
                      f"{', whole articles' if spec.family == 'squad' else ''})")
        _log(f"validation split {validation}")
    if cfg.max_train is not None:  # after carving, so the validation split does not depend on it
        train_ex = train_ex[: cfg.max_train]
    if cfg.max_eval is not None:
        eval_sets = [(n, ex[: cfg.max_eval], p, v2) for n, ex, p, v2 in eval_sets]
    labels = spec.labels
    if spec.labels_from_data:
        labels = labels_from_examples(spec, train_ex)
    if featurizer_for is None:
        def feat(ex, training, path):
            return featurize(spec, ex, tokenizer, labels, opts, with_types, training=training, path=path)
    else:
        feat = featurizer_for(train_ex, [ex for _, ex, _, _ in eval_sets], labels)
    train_feats = feat(train_ex, True, cfg.train)
    if train_feats.stats:
        _log(f"training features: {len(train_feats)} ({', '.join(f'{k}={v}' for k, v in train_feats.stats.items())})")
    evals = []
    for name, ex, path, v2 in eval_sets:
        if spec.labels_from_data and spec.family == "sentence":
            for e in ex:  # a label the training data never showed cannot be scored
                if str(e.label) not in labels:
                    from .data.tasks import show_labels
                    from .errors import excerpt

                    raise DataError(f"{path}, line {e.line}: unknown label {excerpt(str(e.label))}; the training "
                                    f"data has labels {show_labels(labels)}")
        feats = feat(ex, False, path)
        evals.append((name, ex, feats, v2))
    return TaskData(spec, labels, train_ex, train_feats, evals, reports, validation,
                    featurizer=feat if featurizer_for is not None else None)


def evaluate_sets(model, data: TaskData, cfg: FinetuneConfig, pad_id: int, options: TaskOptions,
                  official: dict[str, float] | None = None) -> tuple[dict[str, float], dict[str, Scored]]:
    """Score every evaluation set; metric names get a ``<set>/`` prefix when there are several.
    ``official``, when given, is filled with the official scripts' names and scale (:func:`official_scores`)."""
    metrics: dict[str, float] = {}
    scored_sets = {}
    for name, ex, feats, v2 in data.evals:
        outputs = run_model(model, feats, cfg.eval_batch_size, pad_id, cfg.bf16)
        scored = decode(data.spec, ex, feats, outputs, data.labels, options, version_2=v2)
        m = score(data.spec, ex, scored, data.labels, version_2=v2)
        scored_sets[name] = scored
        prefix = f"{name}/" if len(data.evals) > 1 else ""
        metrics.update({prefix + k: v for k, v in m.items()})
        if official is not None:
            official.update({prefix + k: v for k, v in official_scores(data.spec, ex, scored, m, v2).items()})
    return metrics, scored_sets


def _out_ready(out: Path, resume: bool) -> None:
    """Fail fast, writing nothing, unless ``out`` may take this fine-tuning run (new, empty, or to --resume)."""
    from .training import checkpoint as ckpt

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
    from ._files import run_folder
    from .training import checkpoint as ckpt

    inputs = [cfg.model, cfg.train, *(cfg.eval or []), cfg.elmo]
    with run_folder(cfg.out, "finetune-run", inputs=inputs, accept=lambda p: _out_ready(p, cfg.resume),
                    worth_keeping=ckpt.worth_keeping):
        return _finetune(cfg)


def _finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    from .models import from_pretrained
    from .training.checkpoint import write_json_atomic

    spec = get_task(cfg.task)
    if not cfg.seeds:
        raise UsageError("--seeds needs at least one seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise UsageError(f"--seeds has duplicates: {cfg.seeds}")
    arch = resolve_arch(cfg)
    if not cfg.resume:  # a resumed run may be older (finetune_batches); a new one is checked before any data
        from .training.pretrain import check_grad_accum

        check_grad_accum(cfg.batch_size, cfg.grad_accum)
    out = Path(cfg.out)
    build: Callable[[], torch.nn.Module] | None = None
    if arch == "bilstm":
        check_bilstm_task(spec, cfg.options)
        bilstm_config_overrides(cfg.bilstm)  # unknown keys fail before any data is read
        lm = load_elmo_for_task(cfg.elmo) if cfg.elmo else None
        _out_ready(out, cfg.resume)
        tokenizer, with_types = None, False
        data = prepare_data(cfg, spec, None, False, featurizer_for=lambda tr, evs, labels: WordFeaturizer.for_training(
            spec, tr, evs, labels, cfg, lm))
        build = lambda: new_bilstm_model(spec, data, cfg, lm)  # noqa: E731
        described = "a BiLSTM" + (f" with ELMo from {cfg.elmo}" if cfg.elmo else " (no ELMo)")
    else:
        _out_ready(out, cfg.resume)
        check_model_folder(cfg.model, training=True)  # a --seeds run or an ELMo folder: say what to pass
        tokenizer = load_tokenizer_for(cfg.model)
        # Read the model's config once to learn about segment embeddings and positions.
        from .models.folder import read_config
        from .models.hf import config_from_hf

        base_config = config_from_hf(read_config(cfg.model), source=str(Path(cfg.model) / "config.json"))
        with_types = base_config.type_vocab_size >= 2
        check_max_length(base_config, cfg.options.max_length or spec.max_length)
        check_vocabulary(tokenizer, base_config, cfg.model)
        data = prepare_data(cfg, spec, tokenizer, with_types)
        described = str(cfg.model)
    multi = len(cfg.seeds) > 1
    runs: dict[str, dict[str, Any]] = {}
    for seed in cfg.seeds:
        run_dir = out / f"seed-{seed}" if multi else out
        if multi:
            if cfg.resume and (run_dir / "metrics.json").exists():  # finished before the interruption
                runs[str(seed)] = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
                _log(f"seed {seed}: already finished in {run_dir}")
                continue
            _out_ready(run_dir, cfg.resume)
        _log(f"{'training' if build else 'fine-tuning'} {spec.name} {'as' if build else 'from'} {described}, "
             f"seed {seed} → {run_dir}")
        runs[str(seed)] = _train_one(cfg, spec, data, tokenizer, seed, run_dir, with_types, from_pretrained, build)
        if multi:
            write_json_atomic(run_dir / "metrics.json", runs[str(seed)])
    result: dict[str, Any] = {"task": spec.name, "model": described, "train": str(cfg.train),
                              "validation": data.validation, "data": data.reports}
    if arch == "bilstm":
        result.update(arch="bilstm", elmo=str(cfg.elmo) if cfg.elmo else None)
    if multi:
        result["seeds"] = cfg.seeds
        result["main_metric"] = spec.main_metric
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


def _train_one(cfg: FinetuneConfig, spec: TaskSpec, data: TaskData, tokenizer, seed: int, run_dir: Path,
               with_types: bool, from_pretrained: Callable, build: Callable[[], torch.nn.Module] | None = None
               ) -> dict[str, Any]:
    """One seed: a Transformer from ``cfg.model`` with a new head, or (``build``) a new BiLSTM model."""
    from .training.trainer import TrainConfig, Trainer, load_weights_from_folder

    torch.manual_seed(seed)  # the new head's initialisation depends on the seed, as in transformers
    if build is not None:
        model = build()
        pad_id = 0  # the BiLSTM's word vocabulary puts <pad> at 0
    else:
        kwargs: dict[str, Any] = {}
        if spec.family in ("sentence", "tagging"):
            if spec.regression:
                kwargs.update(num_labels=1, problem_type="regression")
            else:
                kwargs.update(id2label=dict(enumerate(data.labels)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*newly initialised.*")
            warnings.filterwarnings("ignore", message=".*does not use were kept.*")
            model = from_pretrained(cfg.model, task=spec.model_task, **kwargs)
        pad_id = pad_id_for(tokenizer, model)
    micro, accum = finetune_batches(cfg, run_dir)
    source = FeatureBatches(data.train_features, micro, seed=seed, pad_id=pad_id, bucket=cfg.bucket)
    steps_per_epoch = len(source)  # micro-batches
    lr = cfg.lr if cfg.lr is not None else (BILSTM_LR if build is not None else TRANSFORMER_LR)
    tc = TrainConfig(lr=lr, weight_decay=cfg.weight_decay, warmup=cfg.warmup, schedule="linear",
                     epochs=cfg.epochs if cfg.max_steps is None else None, max_steps=cfg.max_steps,
                     batch_size=micro, grad_accum=accum, clip_norm=cfg.clip_norm, bf16=cfg.bf16,
                     seed=seed, eval_every=cfg.eval_every, save_every=cfg.save_every, save_minutes=cfg.save_minutes,
                     keep_last=1, device=cfg.device,
                     progress=cfg.progress is not False,  # a bar on a terminal, status lines in a log
                     tensorboard=cfg.tensorboard)

    def quick_eval(m) -> dict[str, float]:
        metrics, _ = evaluate_sets(m, data, cfg, pad_id, cfg.options)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    if build is not None:
        run_config = {"task": spec.name, "model": {"arch": "bilstm", "elmo": str(cfg.elmo) if cfg.elmo else None,
                                                   **model.config.to_dict()},
                      "tokenizer_hash": data.featurizer.vocab_hash, "train": str(cfg.train), "seed": seed}
    else:
        run_config = {"task": spec.name, "model": str(cfg.model), "tokenizer_hash": tokenizer.hash(),
                      "train": str(cfg.train), "seed": seed}
    run_config["fingerprint"] = _fingerprint(cfg, spec, data, model, run_config["tokenizer_hash"], seed, build)
    trainer = Trainer(model, tc, source, run_dir, evaluate=quick_eval if cfg.eval_every else None,
                      steps_per_epoch=steps_per_epoch, tokenizer=tokenizer, run_config=run_config,
                      resume=cfg.resume,  # --resume: the checkpoint's weights with this task's heads
                      load_weights=lambda folder: load_weights_from_folder(
                          folder, task="auto" if build is not None else spec.model_task))
    t0 = time.perf_counter()
    summary = trainer.train()
    train_s = summary.get("elapsed_s", time.perf_counter() - t0)
    if str(summary.get("stop_reason", "")).startswith("signal"):
        raise PlmkitError(f"fine-tuning stopped by a signal; a checkpoint is in {run_dir}/checkpoints — continue "
                          "with the same command plus --resume")
    t1 = time.perf_counter()
    official: dict[str, float] = {}
    metrics, scored_sets = evaluate_sets(model, data, cfg, pad_id, cfg.options, official=official)
    eval_s = time.perf_counter() - t1
    options = TaskOptions(**asdict(cfg.options))
    first_name, first_ex, _, first_v2 = data.evals[0]
    if spec.family == "squad" and first_v2:
        extra = scored_sets[first_name].extra  # tuned on the (first) eval set, as BERT's recipe does
        options.null_threshold = M.tuned_null_threshold(squad.to_official(first_ex), extra["best_non_null"],
                                                        extra["null_odds"])
    epochs_done = summary.get("step", 0) * accum / max(steps_per_epoch, 1)
    info = {"task": spec.name, "labels": list(data.labels) if data.labels else None,
            "options": _options_dict(options), "seed": seed, "base_model": str(cfg.model)}
    if build is not None:
        info.update(arch="bilstm", elmo=str(cfg.elmo) if cfg.elmo else None, base_model=None, lr=lr)
        model.save_pretrained(run_dir, extra={"finetune": info})  # elmo/ holds the frozen biLM
    else:
        model.save_pretrained(run_dir, only_task_heads=True, tokenizer=tokenizer, extra={"finetune": info})
    for name, scored in scored_sets.items():
        _write_eval_predictions(spec, run_dir, name, scored, len(scored_sets) > 1)
    if not cfg.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # written by this run; the model is saved
    result: dict[str, Any] = {"metrics": metrics}
    if official:
        result["official"] = official
    return {**result, "main_metric": spec.main_metric, "steps": summary.get("step"),
            "epochs": round(epochs_done, 4), "train_seconds": round(float(train_s), 2),
            "seconds_per_epoch": round(float(train_s) / epochs_done, 2) if epochs_done else None,
            "eval_seconds": round(eval_s, 2), "train_examples": len(data.train_examples),
            "train_features": len(data.train_features)}


def finetune_batches(cfg: FinetuneConfig, run_dir: Path) -> tuple[int, int]:
    """(micro-batch, accumulation steps) of a run: ``batch_size`` is the optimizer batch, split into
    ``grad_accum`` micro-batches. A run being resumed that was started when ``--grad-accum K`` accumulated K
    whole batches (its checkpoint records the flags as given) resumes as it was, with a note."""
    from .training.pretrain import check_grad_accum, older_grad_accum_run, recorded_train_config

    if cfg.grad_accum == 1:
        return cfg.batch_size, 1
    if cfg.resume and older_grad_accum_run(recorded_train_config(run_dir), cfg.batch_size, cfg.grad_accum,
                                           str(run_dir)):
        return cfg.batch_size, cfg.grad_accum
    check_grad_accum(cfg.batch_size, cfg.grad_accum)
    return cfg.batch_size // cfg.grad_accum, cfg.grad_accum


def _fingerprint(cfg: FinetuneConfig, spec: TaskSpec, data: TaskData, model, tokenizer_hash: str, seed: int,
                 build: Callable | None) -> dict[str, Any]:
    """What makes a fine-tuning run this run; ``--resume`` must find the same (checkpoint.fingerprint_differences).

    The model is its config (not where the base folder lies: the weights come from the checkpoint); the
    training file by size and SHA-256; the validation split only when it is carved from that file.
    """
    from .training.checkpoint import file_identity

    fp: dict[str, Any] = {
        "task": spec.name, "model": model.config.to_dict(), "tokenizer_hash": tokenizer_hash, "seed": seed,
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


def _write_eval_predictions(spec: TaskSpec, run_dir: Path, name: str, scored: Scored, multi: bool) -> None:
    """SQuAD: the official prediction files (so the official scripts can re-score them)."""
    if spec.family != "squad":
        return
    from .training.checkpoint import write_json_atomic

    stem = f"predictions-{name}" if multi else "predictions"
    write_json_atomic(run_dir / f"{stem}.json", scored.extra["predictions"])
    if scored.extra.get("null_odds"):
        write_json_atomic(run_dir / f"{stem}.null_odds.json", scored.extra["null_odds"])


# --------------------------------------------------------------------------- BiLSTM task models (ELMo's use)
TRANSFORMER_LR = 2e-5  # BERT's fine-tuning recipe (appendix A.3)
# A BiLSTM trained from scratch for a few epochs wants a far larger rate than fine-tuning: on Brown POS
# (benchmarks/elmo_brown.py, 5 epochs) 1e-3 gave 68.6% accuracy, 5e-3 79.9%, 1e-2 84.2%.
BILSTM_LR = 1e-2
BILSTM_MODEL_TYPES = ("bilstm-tagger", "bilstm-classifier")
# The cached biLM states cost (L + 1) · 2P · 4 bytes per word (3 KiB for elmo-small); above this, the
# biLM runs in every step instead (set elmo_cache / --elmo-cache to decide explicitly).
ELMO_CACHE_MAX_BYTES = 2 << 30
_BILSTM_FIXED = ("vocab_size", "num_labels", "pad_id")  # set from the data, not by the user


def resolve_arch(cfg: FinetuneConfig) -> str:
    """The architecture to train, "transformer" or "bilstm", from ``cfg.arch`` / ``cfg.model`` / ``cfg.elmo``.

    Inconsistent combinations are a UsageError that says what to give instead.
    """
    if cfg.arch not in ("auto", "transformer", "bilstm"):
        raise UsageError(f"--arch {cfg.arch!r}: choose transformer (fine-tune --model) or bilstm (a BiLSTM tagger / "
                         "classifier trained from scratch, optionally with --elmo)")
    arch = cfg.arch if cfg.arch != "auto" else ("bilstm" if cfg.elmo else "transformer")
    if arch == "transformer":
        if cfg.elmo:
            raise UsageError("--elmo adds ELMo vectors to the BiLSTM task model, not to a Transformer; use --arch bilstm "
                             "--elmo DIR without --model, or drop --elmo to fine-tune --model")
        if not cfg.model:
            raise UsageError("give --model DIR (a pretrained model folder to fine-tune), or --arch bilstm [--elmo DIR] "
                             "to train a BiLSTM tagger / classifier on the task's own word embeddings (plus ELMo)")
        if cfg.bilstm:
            raise UsageError(f"the BiLSTM settings {', '.join(sorted(cfg.bilstm))} apply to --arch bilstm (or --elmo), "
                             "not to fine-tuning a Transformer")
    elif cfg.model:
        raise UsageError(f"--arch bilstm{' / --elmo' if cfg.elmo else ''} trains a BiLSTM task model from scratch and "
                         f"takes no --model ({cfg.model}); add pretrained vectors with --elmo ELMO_DIR, or drop "
                         "--arch bilstm / --elmo to fine-tune --model")
    return arch


def check_bilstm_task(spec: TaskSpec, options: TaskOptions | None = None) -> None:
    """The BiLSTM models tag words or classify single sentences; anything else is a UsageError."""
    if not ((spec.family == "tagging" and not spec.char_level) or (spec.family == "sentence" and not spec.regression)):
        raise UsageError(f"the BiLSTM task model (--arch bilstm / --elmo) tags words (conll-ner, brown-pos) or "
                         f"classifies single sentences (classify, sst2, cola, nsmc, ...), so it cannot do {spec.name}; "
                         f"fine-tune a Transformer with --model for {spec.name}")
    if options is not None and options.max_length is not None:
        raise UsageError("--max-length cuts the sub-word sequences of Transformers; the BiLSTM reads whole sentences, "
                         "so drop --max-length")


def bilstm_config_overrides(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate BiLSTM settings (:class:`~plmkit.models.tagger.TaggerConfig` fields) and return them."""
    from .models.tagger import TaggerConfig

    known = [f.name for f in dataclasses.fields(TaggerConfig) if f.name not in _BILSTM_FIXED]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise UsageError(f"unknown BiLSTM setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    TaggerConfig(vocab_size=2, num_labels=2, **settings)  # value checks (ConfigError names the field)
    return dict(settings)


def load_elmo_for_task(path: str | Path):
    """The biLM of an ``--elmo`` folder, or an error that says what the folder is and what to pass instead."""
    from .models.elmo import load_elmo
    from .models.folder import read_config

    folder = Path(path)
    if folder.is_dir() and not (folder / "config.json").exists() and (folder / "checkpoints").is_dir():
        raise UsageError(f"--elmo {folder} is a run folder of 'plmkit pretrain', not a model folder; export the model "
                         f"first (plmkit export {folder} --out {folder / 'model'}) and pass --elmo {folder / 'model'}")
    try:
        raw = read_config(folder)
    except CheckpointError as e:
        raise CheckpointError(f"--elmo: {e}") from None
    kind = raw.get("model_type")
    if kind != "elmo":
        hint = ""
        if kind in ("bert", "roberta", "albert", "gpt2"):
            hint = f"; to fine-tune this {kind} model, pass it as --model instead (without --elmo / --arch bilstm)"
        elif kind in BILSTM_MODEL_TYPES and (folder / "elmo").is_dir():
            hint = f"; its biLM is in {folder / 'elmo'}"
        raise UsageError(f"--elmo {folder} holds a {kind or 'untyped'} model, not ELMo: --elmo takes an ELMo folder "
                         f"(config.json with model_type 'elmo'), e.g. the export of a 'plmkit pretrain --preset "
                         f"elmo-small' run{hint}")
    return load_elmo(folder)


def example_words(spec: TaskSpec, example: Any, path: str | Path = "") -> list[str]:
    """The words a BiLSTM reads: a tagging example's tokens, or a sentence split on whitespace (as the
    word-level tokenizer of ``plmkit prepare --word-level`` splits ELMo's pretraining text)."""
    if spec.family == "tagging":
        return list(example.tokens)
    if example.text_b is not None:
        from .data.tasks import where

        raise UsageError(f"{f'{path}, ' if path else ''}{where(example.line)}: a sentence pair, but the BiLSTM "
                         "classifier reads one text; give a single --text-column, or fine-tune a Transformer "
                         "(--model) for sentence pairs")
    return example.text_a.split() or [""]  # an empty text is one unknown word


class WordFeaturizer:
    """Features for the BiLSTM models: whole words as the task's reader gives them (no sub-word tokenizer).

    Each feature holds ``input_ids`` (ids in the task's word vocabulary: 0 = ``<pad>``, 1 = ``<unk>``),
    ``labels`` (a tag id per word, -100 for tags outside the label set; or one class id) and, with ELMo,
    either ``elmo_states`` (words, L + 1, 2P) — the frozen biLM's layers, computed here once per
    sentence (``cache=True``) — or ``char_ids`` (words, 50) for the model to run the biLM itself.
    Tagging features carry ``extra["first"] = arange(words)``, so :func:`tagging.decode_words` maps the
    per-word predictions back unchanged. Call it as ``featurizer(examples, training, path)``.
    """

    def __init__(self, spec: TaskSpec, word_vocab: dict[str, int], labels: Sequence[str] | None, elmo=None,
                 cache: bool = False, device: torch.device | str = "cpu", batch_words: int = 4096):
        self.spec = spec
        self.word_vocab = word_vocab
        self.labels = tuple(labels or ())
        self.elmo = elmo  # a plmkit.models.elmo.Elmo (only its frozen biLM is used here)
        self.cache = bool(cache and elmo is not None)
        self.device = torch.device(device)
        self.batch_words = batch_words

    @classmethod
    def for_training(cls, spec: TaskSpec, train_examples: Sequence, eval_lists: Sequence[Sequence],
                     labels: Sequence[str] | None, cfg: FinetuneConfig, lm=None) -> "WordFeaturizer":
        """The word vocabulary from the training examples; decides whether to cache the biLM's states."""
        from .models.elmo import Elmo
        from .models.tagger import build_word_vocab

        if cfg.min_word_count < 1:
            raise UsageError(f"--min-word-count must be at least 1, got {cfg.min_word_count}")
        vocab = build_word_vocab((example_words(spec, e, cfg.train) for e in train_examples),
                                 min_count=cfg.min_word_count)
        _log(f"BiLSTM word vocabulary: {len(vocab):,} entries (training words seen at least {cfg.min_word_count} "
             "time(s); the rest are <unk>)")
        cache = False
        elmo = None
        if lm is not None:
            elmo = Elmo(lm, dropout=0.0)
            words = sum(len(example_words(spec, e)) for lst in (train_examples, *eval_lists) for e in lst)
            need = words * elmo.num_layers * elmo.output_dim * 4
            cache = cfg.elmo_cache if cfg.elmo_cache is not None else need <= ELMO_CACHE_MAX_BYTES
            _log(f"ELMo: {'caching' if cache else 'not caching'} the frozen biLM's layer states of {words:,} words "
                 f"({need / 2**20:,.0f} MiB){'' if cache else '; the biLM runs in every training step'}")
        return cls(spec, vocab, labels, elmo, cache=cache, device=choose_device(cfg.device))

    @property
    def vocab_hash(self) -> str:
        import hashlib

        words = sorted(self.word_vocab, key=self.word_vocab.__getitem__)
        return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()[:16]

    def __call__(self, examples: Sequence, training: bool = False, path: str | Path = "") -> Features:
        from .data.tasks import label_index

        unk = self.word_vocab.get("<unk>", 1)
        index = {t: i for i, t in enumerate(self.labels)}
        sentences = [example_words(self.spec, e, path) for e in examples]
        inputs, extra = [], []
        unknown = 0
        for e, words in zip(examples, sentences):
            feat = {"input_ids": np.asarray([self.word_vocab.get(w, unk) for w in words], dtype=np.int64)}
            if self.spec.family == "tagging":
                if e.tags is not None:
                    feat["labels"] = np.asarray([index.get(t, IGNORE_INDEX) for t in e.tags], dtype=np.int64)
                    unknown += int((feat["labels"] == IGNORE_INDEX).sum())
                extra.append({"first": np.arange(len(words), dtype=np.int64)})
            else:
                if e.label is not None:
                    feat["labels"] = np.int64(label_index(e.label, self.labels, path or "input", e.line))
                extra.append({})
            inputs.append(feat)
        if self.elmo is not None:
            if self.cache:
                for feat, states in zip(inputs, self._layer_states(sentences)):
                    feat["elmo_states"] = states
            else:
                from .models.elmo import word_to_char_ids

                W = self.elmo.max_characters_per_token
                spelled: dict[str, list[int]] = {}  # each distinct word is spelled once

                def spell(w: str) -> list[int]:
                    if w not in spelled:
                        spelled[w] = word_to_char_ids(w, W)
                    return spelled[w]

                for feat, words in zip(inputs, sentences):
                    feat["char_ids"] = np.asarray([spell(w) for w in words], dtype=np.int16)  # (words, W)
        stats = {"unknown_tags": unknown} if self.spec.family == "tagging" else {}
        return Features(inputs, np.arange(len(examples)), extra, stats)

    @torch.no_grad()
    def _layer_states(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """The frozen biLM's layer states of every sentence, each (words, L + 1, 2P) float32."""
        from .models.elmo import batch_to_char_ids

        elmo, lm = self.elmo, self.elmo.lm
        home = model_device(lm)
        lm.to(self.device)
        t0 = time.perf_counter()
        out: list[np.ndarray | None] = [None] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))  # little padding per batch
        i = 0
        try:
            while i < len(order):
                size = max(1, self.batch_words // max(1, len(sentences[order[i]])))
                idx = order[i:i + size]
                i += size
                batch = [sentences[j] for j in idx]
                char_ids = batch_to_char_ids(batch, elmo.max_characters_per_token).to(self.device)  # (B, T, W)
                lengths = torch.tensor([len(s) for s in batch], device=self.device)
                mask = torch.arange(char_ids.shape[1], device=self.device)[None, :] < lengths[:, None]  # (B, T)
                states = elmo.layer_states(char_ids, mask).permute(1, 2, 0, 3).float().cpu().numpy()  # (B, T, L+1, 2P)
                for k, j in enumerate(idx):
                    out[j] = np.ascontiguousarray(states[k, : len(sentences[j])])
        finally:
            lm.to(home)
        words = sum(len(s) for s in sentences)
        _log(f"ELMo: layer states of {len(sentences):,} sentences ({words:,} words) in {time.perf_counter() - t0:.1f} s")
        return out  # type: ignore[return-value]


def new_bilstm_model(spec: TaskSpec, data: TaskData, cfg: FinetuneConfig, lm=None):
    """A freshly initialised BiLSTM tagger / classifier for ``data`` (with a new scalar mix over ``lm``)."""
    from .models.elmo import Elmo
    from .models.tagger import BiLstmClassifier, BiLstmTagger, TaggerConfig

    vocab = data.featurizer.word_vocab
    config = TaggerConfig(vocab_size=len(vocab), num_labels=len(data.labels), **bilstm_config_overrides(cfg.bilstm))
    elmo = Elmo(lm, layer_norm=config.elmo_layer_norm, dropout=config.elmo_dropout) if lm is not None else None
    cls = BiLstmTagger if spec.family == "tagging" else BiLstmClassifier
    return cls(config, elmo=elmo, word_vocab=vocab, label_vocab={lab: i for i, lab in enumerate(data.labels)})


def _load_bilstm(spec: TaskSpec, model_dir: str | Path) -> tuple[Any, None, TaskSpec, tuple[str, ...]]:
    """A saved BiLSTM tagger / classifier, checked against the task (model, tokenizer=None, spec, labels)."""
    from .models import from_pretrained

    check_bilstm_task(spec)
    model = from_pretrained(model_dir)
    if model.task != spec.model_task:
        raise CheckpointError(f"{model_dir} holds a {model.model_type}, but {spec.name} needs a "
                              f"{'bilstm-tagger' if spec.family == 'tagging' else 'bilstm-classifier'}; train one "
                              f"with: plmkit finetune {spec.name} --arch bilstm ...")
    labels = model.label_names
    if spec.labels is not None and set(labels) != set(spec.labels):
        raise CheckpointError(f"{model_dir}: the model's labels {list(labels)} are not {spec.name}'s {list(spec.labels)}")
    return model, None, spec, labels


def _loaded_featurizer(model, tokenizer, spec: TaskSpec, labels, opts: TaskOptions) -> tuple[Callable, int]:
    """``(featurize(examples, training, path), pad_id)`` for a loaded fine-tuned model."""
    if tokenizer is None:  # a BiLSTM folder: its own word vocabulary (and ELMo)
        return WordFeaturizer(spec, model.word_vocab, labels, model.elmo), 0
    pad_id = pad_id_for(tokenizer, model)
    with_types = model.config.type_vocab_size >= 2
    check_max_length(model, opts.max_length or spec.max_length)
    check_vocabulary(tokenizer, model, getattr(model, "loaded_from", "the model"))

    def feat(ex, training, path):
        return featurize(spec, ex, tokenizer, labels, opts, with_types, training=training, path=path)
    return feat, pad_id


# --------------------------------------------------------------------------- evaluate / predict
def load_finetuned(task: str, model_dir: str | Path, options: TaskOptions | None = None,
                   explicit: Sequence[str] = ()):
    """Model, tokenizer, spec, labels and options of a fine-tuned folder (plmkit- or transformers-written).

    ``explicit`` names the option fields the user set on the command line; the rest come from the
    folder's saved options.
    """
    from .models import from_pretrained
    from .models.folder import read_config

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
        return _load_bilstm(spec, model_dir) + (opts,)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not use were kept.*")
        model = from_pretrained(model_dir, task="auto")
    if model.task != spec.model_task:
        have = model.task or "no task head (a base model)"
        raise CheckpointError(f"{model_dir} has {have}, but {spec.name} needs a {spec.model_task} model; "
                              f"fine-tune it first: plmkit finetune {spec.name} --model {model_dir} ...")
    labels: tuple[str, ...] | None = None
    if spec.family in ("sentence", "tagging") and not spec.regression:
        if model.config.id2label:
            labels = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
        if spec.labels is not None and (labels is None or set(labels) != set(spec.labels)):
            if labels is not None and not all(x.startswith("LABEL_") for x in labels):
                raise CheckpointError(f"{model_dir}: the model's labels {list(labels)} are not {spec.name}'s "
                                      f"{list(spec.labels)}")
            if model.config.num_labels != len(spec.labels):
                raise CheckpointError(f"{model_dir}: the model has {model.config.num_labels} labels, "
                                      f"{spec.name} has {len(spec.labels)}")
            labels = spec.labels
        if labels is None:
            raise CheckpointError(f"{model_dir}: config.json has no id2label, so predictions cannot be named")
    elif spec.regression and model.config.num_labels != 1:
        raise CheckpointError(f"{model_dir} has {model.config.num_labels} outputs; {spec.name} is a regression "
                              "task and needs a model fine-tuned with one output")
    return model, tokenizer, spec, labels, opts


def evaluate(task: str, model_dir: str | Path, eval_files: Sequence[str], options: TaskOptions | None = None,
             explicit: Sequence[str] = (), batch_size: int = 64, bf16: bool = False, device: str = "auto"
             ) -> dict[str, Any]:
    """Score a fine-tuned model folder on labelled files (metric names prefixed by file when several)."""
    model, tokenizer, spec, labels, opts = load_finetuned(task, model_dir, options, explicit)
    model.to(choose_device(device))
    feat, pad_id = _loaded_featurizer(model, tokenizer, spec, labels, opts)
    out: dict[str, Any] = {}
    official: dict[str, Any] = {}
    reports = []
    for path in eval_files:
        ex, rep = read_task_file(spec, path, "eval", opts)
        _log(rep.summary())
        check_not_empty(ex, path, "evaluation file")
        reports.append(rep.to_dict())
        v2 = rep.info.get("version") == "2.0"
        feats = feat(ex, False, path)
        outputs = run_model(model, feats, batch_size, pad_id, bf16)
        scored = decode(spec, ex, feats, outputs, labels, opts, version_2=v2)
        m = score(spec, ex, scored, labels, version_2=v2)
        prefix = f"{Path(path).stem}/" if len(eval_files) > 1 else ""
        out.update({prefix + k: v for k, v in m.items()})
        official.update({prefix + k: v for k, v in official_scores(spec, ex, scored, m, v2).items()})
    result: dict[str, Any] = {"task": spec.name, "model": str(model_dir), "metrics": out}
    if official:
        result["official"] = official
    result["data"] = reports
    return result


def evaluate_squad_predictions(task: str, eval_file: str | Path, predictions_file: str | Path,
                               na_probs_file: str | Path | None = None, na_prob_thresh: float = 1.0
                               ) -> dict[str, Any]:
    """Score a prediction file like the official script (no model): v1.1, v2.0 or KorQuAD."""
    from .data.tasks import expect_json, load_json
    from .errors import excerpt, type_name

    spec = get_task(task)
    if spec.family != "squad":
        raise UsageError("--predictions (scoring a prediction file without a model) works for squad and korquad")
    # The dataset goes through the task's own reader first: every field is type-checked there.
    squad.read_squad(eval_file, require_answers=False)
    dataset = load_json(eval_file, "the dataset is SQuAD JSON {\"version\": ..., \"data\": [articles]}")
    if not any(True for a in dataset["data"] for p in a.get("paragraphs", []) for _ in p.get("qas", [])):
        raise DataError(f"{eval_file}: the evaluation file has no questions")
    expected = 'a JSON object mapping question id to answer text ({"56be4db0acb8001400a502ec": "Denver Broncos"})'
    expect_json(predictions_file, "--predictions", expected, kinds=("a JSON object", "a SQuAD-format JSON"))
    preds = load_json(predictions_file, f"the prediction file is {expected}")
    if not isinstance(preds, dict):
        raise DataError(f"{predictions_file}: expected {expected}, got {type_name(preds)}")
    if "data" in preds and isinstance(preds["data"], list):
        raise DataError(f"{predictions_file}: this is a SQuAD dataset (it has a 'data' list), not a prediction "
                        f"file; --predictions takes {expected} (the predictions.json that 'plmkit predict' writes)")
    for qid, answer in preds.items():
        if not isinstance(answer, str):
            raise DataError(f"{predictions_file}: the prediction for {excerpt(qid)} is {type_name(answer)} "
                            f"({excerpt(answer)}), expected answer text (\"\" for no answer)")
    na = None
    if na_probs_file is not None:
        expect_json(na_probs_file, "--na-probs", "a JSON object mapping question id to a probability",
                    kinds=("a JSON object",))
        na = load_json(na_probs_file, "the no-answer probability file is a JSON object {question id: probability}")
        if not isinstance(na, dict):
            raise DataError(f"{na_probs_file}: expected a JSON object mapping question id to a no-answer "
                            f"probability, got {type_name(na)}")
        for qid, prob in na.items():
            if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not math.isfinite(prob):
                raise DataError(f"{na_probs_file}: the no-answer probability of {excerpt(qid)} is {excerpt(prob)}, "
                                "expected a finite number")
        missing = [qid for qid in preds if qid not in na]
        if missing:  # the official script would stop with a KeyError
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise DataError(f"{na_probs_file}: no no-answer probability for question {excerpt(missing[0])}{more} of "
                            f"{predictions_file}; it needs one for every predicted question")
    if spec.name == "korquad":
        metrics = M.korquad_evaluate(dataset["data"], preds)
        official = M.official_metrics("korquad", metrics)
    elif M.squad_version(dataset) == "2.0" or na_probs_file is not None:
        metrics = M.squad_v2_evaluate(dataset["data"], preds, na_probs=na, na_prob_thresh=na_prob_thresh)
        official = M.squad_v2_evaluate(dataset["data"], preds, na_probs=na, na_prob_thresh=na_prob_thresh,
                                       official=True)
    else:
        metrics = M.squad_v1_evaluate(dataset["data"], preds)
        official = M.official_metrics("squad", metrics)
    if metrics.get("missing"):
        _log(f"{metrics['missing']} question(s) of {eval_file} have no prediction in {predictions_file}")
    return {"task": spec.name, "metrics": metrics, "official": official}


def predict(task: str, model_dir: str | Path, input_file: str | Path, out_file: str | Path,
            options: TaskOptions | None = None, explicit: Sequence[str] = (), batch_size: int = 64,
            bf16: bool = False, device: str = "auto", overwrite: bool = False) -> dict[str, Any]:
    """Predict for an (unlabelled) file and write the predictions; returns counts."""
    from ._files import check_files, output_files

    out = Path(out_file)
    family = get_task(task).family
    targets = [out] + ([out.with_name(out.stem + ".null_odds.json")] if family == "squad" else [])
    inputs = [model_dir, input_file]
    check_files(targets, "prediction file", overwrite, inputs=inputs)  # before any work
    model, tokenizer, spec, labels, opts = load_finetuned(task, model_dir, options, explicit)
    model.to(choose_device(device))
    feat, pad_id = _loaded_featurizer(model, tokenizer, spec, labels, opts)
    if spec.name == "conll-ner" and Path(input_file).suffix == ".txt":  # plain sentences, one per line
        ex, rep = tagging.read_plain_sentences(input_file)
    else:
        ex, rep = read_task_file(spec, input_file, "input", opts, require_labels=False)
    _log(rep.summary())
    check_not_empty(ex, input_file, "input file")
    v2 = rep.info.get("version") == "2.0"
    feats = feat(ex, False, input_file)
    outputs = run_model(model, feats, batch_size, pad_id, bf16)
    scored = decode(spec, ex, feats, outputs, labels, opts, version_2=v2)
    if spec.family == "squad" and not v2:
        targets = targets[:1]  # SQuAD 1.1 has no no-answer odds
    with output_files(targets, "prediction file", overwrite, inputs=inputs) as tmps:
        if spec.family == "squad":
            Path(tmps[0]).write_text(json.dumps(scored.extra["predictions"], indent=2), encoding="utf-8")
            if v2:
                Path(tmps[1]).write_text(json.dumps(scored.extra["null_odds"], indent=2), encoding="utf-8")
        else:
            _write_predictions(spec, ex, scored, out, tmps[0])
    return {"task": spec.name, "examples": len(ex), "out": str(out)}


def _write_predictions(spec: TaskSpec, examples: Sequence, scored: Scored, out: Path, tmp: Path) -> None:
    """Write predictions for ``out`` (its suffix picks the format) into the file ``tmp``."""
    with open(tmp, "w", encoding="utf-8") as f:
        if spec.family == "tagging":
            if out.suffix in (".jsonl", ".json"):
                for e, tags in zip(examples, scored.predictions):
                    f.write(json.dumps({"id": e.guid, "tokens": e.tokens, "tags": tags}, ensure_ascii=False) + "\n")
            else:  # CoNLL style: token<TAB>tag, blank line between sentences
                for e, tags in zip(examples, scored.predictions):
                    f.write("".join(f"{w}\t{t}\n" for w, t in zip(e.tokens, tags)) + "\n")
        elif out.suffix == ".tsv":  # GLUE submission format
            f.write("index\tprediction\n")
            for e, p in zip(examples, scored.predictions):
                f.write(f"{e.guid}\t{p:.3f}\n" if isinstance(p, float) else f"{e.guid}\t{p}\n")
        else:
            for e, p in zip(examples, scored.predictions):
                f.write(json.dumps({"id": e.guid, "prediction": p}, ensure_ascii=False) + "\n")


__all__ = ["TaskSpec", "TASKS", "get_task", "TaskOptions", "FinetuneConfig", "finetune", "evaluate",
           "evaluate_squad_predictions", "predict", "FeatureBatches", "collate", "bucketed_batches", "run_model",
           "read_task_file", "featurize", "decode", "score", "summarize", "WordFeaturizer", "resolve_arch",
           "load_elmo_for_task"]
