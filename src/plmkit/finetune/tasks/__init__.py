"""Fine-tuning tasks by name: one :class:`~.base.Task` object per task, each owning its files, features,
decoding, scoring and prediction files.

The families (one class each, in their own module, with their readers and converters):

* :class:`.sentence.SentenceTask` — sentence(-pair) classification and regression: GLUE (:mod:`.glue`),
  the Korean sentence tasks (:mod:`.korean`), any CSV/TSV/JSONL table (:mod:`.generic`);
* :class:`.squad.SpanTask` — extractive QA: SQuAD 1.1 / 2.0, KorQuAD (:class:`.squad.KorQuADTask`);
* :class:`.swag.ChoiceTask` — multiple choice: SWAG;
* :class:`.tagging.TaggingTask` — token classification: CoNLL-2003 NER, Brown POS
  (:class:`.tagging.PosTask`), KLUE-NER (:class:`.tagging.CharTaggingTask`).

Adding a task is one class (or one object of a family's class) and one line::

    register_task(MyTask())          # plmkit finetune my-task ... / finetune(FinetuneConfig(task="my-task", ...))

Nothing here imports torch; the runner in :mod:`plmkit.finetune.runner` ties a task to the trainer.
"""

from __future__ import annotations

import functools

from ...errors import UsageError
from ...evaluation import metrics as M
from . import files, generic, glue, korean, squad, swag, tagging
from .base import (IGNORE_INDEX, Features, Scored, Task, TaskOptions, carve_split, classifier_labels, distinct_labels,
                   encoding_arrays, pair_encode)
from .files import ReadReport, check_not_empty
from .generic import TableTask
from .sentence import SentenceExample, SentenceTask, convert_sentences
from .squad import KorQuADTask, SpanTask, SquadExample
from .swag import ChoiceExample, ChoiceTask
from .tagging import CharTaggingTask, PosTask, TaggingExample, TaggingTask

TASKS: dict[str, Task] = {}  # registry key (lower case, "-" for "_") → task
ALIASES: dict[str, str] = {}  # other spellings → registry key


def task_key(name: str) -> str:
    """How a task name is looked up: case and ``_``/``-`` do not matter."""
    return name.lower().replace("_", "-")


def register_task(task: Task, aliases: tuple[str, ...] = (), replace: bool = False) -> Task:
    """Make ``task`` available by its name (and ``aliases``) to ``finetune``, ``evaluate`` and ``predict``.

    A name that is taken is refused unless ``replace``. Returns the task, so a module can register
    a task where it defines it.
    """
    if not isinstance(task, Task):
        raise UsageError(f"register_task takes a plmkit.finetune.Task object, got {type(task).__name__}")
    key = task_key(task.name)
    for name in (key, *map(task_key, aliases)):
        if not replace and (name in TASKS or name in ALIASES):
            raise UsageError(f"task name {name!r} is taken (by {get_task(name)!r}); choose another name, or pass "
                             "replace=True to replace that task")
    TASKS[key] = task
    for alias in aliases:
        ALIASES[task_key(alias)] = key
    return task


def get_task(name: str) -> Task:
    """The task registered as ``name`` (or one of its aliases); a UsageError lists the known ones."""
    key = task_key(name)
    key = ALIASES.get(key, key)
    if key not in TASKS:
        raise UsageError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[key]


# --------------------------------------------------------------------------- the registry
def _glue(name: str, description: str, main_metric: str) -> SentenceTask:
    """A GLUE task: the original TSV's reader, its labels (None: a regression), GLUE's metric."""
    spec = glue.GLUE_TASKS[name]
    return SentenceTask(name, description, reader=functools.partial(glue.read_column_tsv, task=spec),
                        labels=spec.labels, main_metric=main_metric, regression=spec.regression,
                        metrics=functools.partial(M.glue_metrics, name))


def _korean_tsv(name: str, description: str) -> SentenceTask:
    spec = korean.KOREAN_TSV_TASKS[name]
    return SentenceTask(name, description, reader=functools.partial(glue.read_column_tsv, task=spec),
                        labels=spec.labels, regression=spec.regression)


register_task(_glue("cola", "GLUE CoLA acceptability", "matthews_correlation"))
register_task(_glue("sst2", "GLUE SST-2 sentiment", "accuracy"), aliases=("sst-2",))
register_task(_glue("mrpc", "GLUE MRPC paraphrase", "f1"))
register_task(_glue("stsb", "GLUE STS-B similarity (regression)", "pearson"), aliases=("sts-b",))
register_task(_glue("qqp", "GLUE QQP duplicate questions", "f1"))
register_task(_glue("mnli", "GLUE MultiNLI", "accuracy"), aliases=("mnli-mm",))
register_task(_glue("qnli", "GLUE QNLI", "accuracy"))
register_task(_glue("rte", "GLUE RTE entailment", "accuracy"))
register_task(_glue("wnli", "GLUE WNLI", "accuracy"))
register_task(SpanTask("squad", "SQuAD 1.1 / 2.0 extractive QA"), aliases=("squad2", "squad-v2"))
register_task(KorQuADTask("korquad", "KorQuAD 1.0 extractive QA"))
register_task(ChoiceTask("swag", "SWAG multiple choice"))
register_task(TaggingTask("conll-ner", "CoNLL-2003 English NER (IOB1, conlleval F1)", reader=tagging.read_conll,
                          labels=tagging.CONLL_LABELS, input_reader=tagging.read_conll_input),
              aliases=("conll2003", "conll", "ner"))
register_task(PosTask("brown-pos", "Brown corpus POS tagging", reader=tagging.read_brown), aliases=("pos",))
register_task(CharTaggingTask("klue-ner", "KLUE-NER Korean NER (character level)", reader=tagging.read_klue_ner,
                              labels=tagging.KLUE_LABELS))
register_task(SentenceTask("klue-nli", "KLUE-NLI Korean NLI", reader=korean.read_klue_nli,
                           labels=korean.KLUE_NLI_LABELS))
register_task(SentenceTask("klue-sts", "KLUE-STS Korean similarity (regression)", reader=korean.read_klue_sts,
                           regression=True, metrics=M.klue_sts_metrics))
register_task(_korean_tsv("kornli", "KorNLI Korean NLI"))
register_task(_korean_tsv("korsts", "KorSTS Korean similarity (regression)"))
register_task(_korean_tsv("nsmc", "NSMC Korean movie-review sentiment"))
register_task(TableTask("classify", "any CSV/TSV/JSONL classification"))
register_task(TableTask("regress", "any CSV/TSV/JSONL regression", regression=True))


__all__ = ["TASKS", "ALIASES", "Task", "TaskOptions", "Scored", "Features", "ReadReport", "IGNORE_INDEX",
           "register_task", "get_task", "task_key", "carve_split", "check_not_empty", "classifier_labels",
           "distinct_labels", "pair_encode", "encoding_arrays", "SentenceExample", "SquadExample", "ChoiceExample",
           "TaggingExample", "convert_sentences", "SentenceTask", "TableTask", "SpanTask", "KorQuADTask", "ChoiceTask",
           "TaggingTask", "PosTask", "CharTaggingTask", "files", "generic", "glue", "korean", "squad", "swag",
           "tagging"]
