"""The task protocol from outside (issue 22): a task defined in this file, registered with one line, then
fine-tuned, evaluated and used for prediction through the public API and the CLI; the registry's rules;
FinetuneConfig composing the trainer's TrainConfig; and no code outside the task classes asking which
task it runs."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from plmkit.errors import ConfigError, DataError, UsageError
from plmkit.evaluation import metrics as M
from plmkit.finetune import FinetuneConfig, Scored, Task, TaskOptions, evaluate, finetune, get_task, predict
from plmkit.finetune.tasks import TASKS, SentenceExample, classifier_labels, convert_sentences, register_task
from plmkit.finetune.tasks.files import ReadReport, open_text
from plmkit.training.trainer import TrainConfig
from test_finetune import WORDS, run, tiny_dir  # noqa: F401  (tiny_dir: the tiny BERT fixture)

ANIMALS = {"dog", "cat"}


# --------------------------------------------------------------------------- a task defined here
class AnimalMention(Task):
    """Does a sentence mention an animal? A file of ``label :: sentence`` lines (``#`` starts a comment)."""

    name = "animal-mention"
    description = "does the sentence mention an animal ('yes :: the dog runs' lines)"
    model_task = "sequence-classification"  # a classifier on [CLS]
    main_metric = "f1"
    labels = ("no", "yes")

    def read(self, path, role, options, require_labels=True):
        report, examples = ReadReport(str(path)), []
        with open_text(path) as f:
            for n, line in enumerate(f, start=1):
                if not line.strip() or line.startswith("#"):
                    report.skip("comment or blank line", n)
                    continue
                label, sep, text = line.strip().rpartition(" :: ")
                if not sep and require_labels:
                    raise DataError(f"{path}, line {n}: expected 'label :: sentence'")
                examples.append(SentenceExample(str(n), text, None, label or None, n))
        report.read = len(examples)
        return examples, report

    def featurize(self, examples, tokenizer, labels, options, with_types, training, path=""):
        return convert_sentences(examples, tokenizer, labels, self.sequence_length(options), with_types, path)

    def head_config(self, labels):
        return {"id2label": dict(enumerate(labels))}

    def model_labels(self, model, folder):
        return classifier_labels(self, model, folder)

    def decode(self, examples, features, outputs, labels, options, info=None):
        return Scored({}, [labels[int(np.argmax(o["logits"]))] for o in outputs])

    def score(self, examples, scored, labels, info=None):
        pred = [int(p == "yes") for p in scored.predictions]
        gold = [int(e.label == "yes") for e in examples]
        return {"accuracy": M.accuracy(pred, gold), "f1": M.f1_binary(pred, gold)}


@pytest.fixture
def animal_task():
    task = register_task(AnimalMention())  # the one registry line
    yield task
    TASKS.pop("animal-mention")


def _write(path: Path, n: int, seed: int, labelled: bool = True, flip: bool = False) -> list[str]:
    """n sentences over test_finetune's words, half of them naming an animal; returns their labels."""
    rng = np.random.default_rng(seed)
    others = [w for w in WORDS if w not in ANIMALS]
    lines, golds = ["# generated for tests/test_task_api.py"], []
    for i in range(n):
        words = list(rng.choice(others, size=rng.integers(3, 8)))
        if i % 2:
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(sorted(ANIMALS))))
        gold = "yes" if i % 2 else "no"
        golds.append(gold)
        shown = {"yes": "no", "no": "yes"}[gold] if flip else gold
        lines.append(f"{shown} :: {' '.join(words)}" if labelled else " ".join(words))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return golds


def test_a_task_defined_outside_plmkit_fine_tunes_evaluates_and_predicts(animal_task, tiny_dir, tmp_path, capsys):
    train, dev, flipped, unlabelled = (tmp_path / n for n in ("train.txt", "dev.txt", "flipped.txt", "input.txt"))
    _write(train, 300, seed=1)
    golds = _write(dev, 120, seed=2)
    _write(flipped, 120, seed=2, flip=True)
    _write(unlabelled, 120, seed=2, labelled=False)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = finetune(FinetuneConfig(task="animal-mention", model=str(tiny_dir), train=str(train), eval=[str(dev)],
                                         out=str(out), epochs=5, lr=3e-3, warmup=0, batch_size=16, seeds=[0],
                                         progress=False, tensorboard=False, device="cpu",
                                         options=TaskOptions(max_length=32)))
    metrics = result["metrics"]
    majority = max(golds.count("yes"), golds.count("no")) / len(golds)
    assert result["main_metric"] == "f1" and result["data"][0]["skipped"] == {"comment or blank line": 1}
    assert metrics["accuracy"] >= 0.9 > majority and metrics["f1"] >= 0.9, metrics  # it learned the task
    saved = json.loads((out / "config.json").read_text())
    assert saved["id2label"] == {"0": "no", "1": "yes"} and saved["plmkit"]["finetune"]["task"] == "animal-mention"

    again = evaluate("animal-mention", out, [str(dev)], device="cpu")
    assert again["metrics"] == metrics  # the saved folder scores as the run did
    wrong = evaluate("animal-mention", out, [str(flipped)], device="cpu")["metrics"]
    assert wrong["accuracy"] == pytest.approx(1 - metrics["accuracy"])  # every label flipped: every verdict too

    predict("animal-mention", out, unlabelled, tmp_path / "pred.jsonl", device="cpu")
    rows = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(rows) == len(golds) and {r["prediction"] for r in rows} <= {"yes", "no"}
    hits = sum(r["prediction"] == g for r, g in zip(rows, golds))
    assert hits / len(golds) == pytest.approx(metrics["accuracy"])

    capsys.readouterr()
    assert run("evaluate", "animal-mention", "--model", out, "--eval", dev) == 0  # the CLI finds it by name
    assert json.loads(capsys.readouterr().out) == metrics


def test_the_registry_refuses_a_taken_name_and_resolves_spellings(animal_task):
    assert get_task("Animal_Mention") is animal_task
    with pytest.raises(UsageError, match="task name 'animal-mention' is taken"):
        register_task(AnimalMention())
    with pytest.raises(UsageError, match="'rte' is taken"):
        register_task(type("Rte", (AnimalMention,), {"name": "rte"})())
    with pytest.raises(UsageError, match="is taken"):
        register_task(type("Other", (AnimalMention,), {"name": "other-task"})(), aliases=("ner",))
    assert "other-task" not in TASKS  # a refused registration leaves nothing behind
    other = AnimalMention()
    assert register_task(other, replace=True) is other and get_task("animal-mention") is other
    with pytest.raises(UsageError, match="unknown task 'animal'; choose one of: .*animal-mention"):
        get_task("animal")
    with pytest.raises(TypeError):
        type("Incomplete", (Task,), {"name": "x"})()  # read / featurize / decode / score are required


def test_a_task_that_cannot_use_the_bilstm_says_so(animal_task, tmp_path):
    _write(tmp_path / "train.txt", 20, seed=1)
    with pytest.raises(UsageError, match="cannot do animal-mention"):
        finetune(FinetuneConfig(task="animal-mention", model=None, arch="bilstm", train=str(tmp_path / "train.txt"),
                                out=str(tmp_path / "run"), progress=False, tensorboard=False))


# --------------------------------------------------------------------------- FinetuneConfig composes TrainConfig
def test_finetune_config_composes_the_train_config():
    cfg = FinetuneConfig(task="rte", model="m", train="t", out="o", lr=3e-5, epochs=2, batch_size=16, grad_accum=2,
                         warmup=0.2, weight_decay=0.0, clip_norm=0.5, bf16=True, eval_every=7, save_every=11,
                         save_minutes=2.5, device="cpu", progress=None, tensorboard=False)
    # What the runner built by hand before FinetuneConfig held a TrainConfig (issue 22), for seed 5 of two
    # micro-batches of 8:
    assert cfg.run_training(5, 8, 2) == TrainConfig(
        lr=3e-5, weight_decay=0.0, warmup=0.2, schedule="linear", epochs=2, max_steps=None, batch_size=8, grad_accum=2,
        clip_norm=0.5, bf16=True, seed=5, eval_every=7, save_every=11, save_minutes=2.5, keep_last=1, device="cpu",
        progress=True, tensorboard=False)
    assert (cfg.lr, cfg.batch_size, cfg.training.batch_size) == (3e-5, 16, 16)  # keywords are attributes too
    cfg.lr = 1e-4
    assert cfg.training.lr == 1e-4
    default = FinetuneConfig(task="rte", model="m", train="t", out="o")
    assert (default.lr, default.epochs, default.warmup, default.batch_size, default.keep_last) == (
        2e-5, 3.0, 0.1, 32, 1)
    assert FinetuneConfig(task="pos", model=None, train="t", out="o", arch="bilstm").lr == 1e-2
    assert FinetuneConfig(task="pos", model=None, train="t", out="o", elmo="e", lr=None).lr == 1e-2
    steps = FinetuneConfig(task="rte", model="m", train="t", out="o", epochs=0, max_steps=5)
    assert (steps.epochs, steps.max_steps) == (None, 5)  # --max-steps overrides --epochs
    given = FinetuneConfig(task="rte", model="m", train="t", out="o", training=TrainConfig(lr=1e-3, optimizer="lamb"),
                           max_steps=3)
    assert (given.lr, given.training.optimizer, given.max_steps) == (1e-3, "lamb", 3)
    assert FinetuneConfig(task="rte", model="m", train="t", out="o").training is not default.training


@pytest.mark.parametrize("settings,message", [
    ({"lr": -1.0}, "lr must be positive"),
    ({"batch_size": 0}, "finetune settings: batch_size"),
    ({"warmup": float("nan")}, "finetune settings: warmup"),
    ({"epochs": 0}, "finetune settings: epochs"),
    ({"schedule": "sometimes"}, "schedule must be linear"),
    ({"eval_split": 1.0}, "finetune settings: eval_split"),
    ({"seeds": [-1]}, "seed -1 is out of range"),
    ({"training": {"lr": 1.0}}, "training is dict, expected a plmkit.training.trainer.TrainConfig"),
])
def test_bad_finetune_settings_name_the_setting(settings, message):
    with pytest.raises(ConfigError, match=message):
        FinetuneConfig(task="rte", model="m", train="t", out="o", **settings)


# --------------------------------------------------------------------------- no task families outside the tasks
def _task_name_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing something's ``.name`` / ``.family`` with task names or families."""
    names = set(TASKS) | {"sentence", "squad", "span", "choice", "tagging"}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if not any(isinstance(s, ast.Attribute) and s.attr in ("name", "family") for s in sides):
            continue
        consts = [c.value for s in sides for c in ast.walk(s) if isinstance(c, ast.Constant)]
        if any(isinstance(c, str) and c in names for c in consts):
            found.append(node.lineno)
    return found


def test_only_task_classes_know_which_task_runs():
    src = Path(__file__).resolve().parents[1] / "src" / "plmkit"
    offenders = []
    for path in sorted(src.rglob("*.py")):
        if "tasks" in path.relative_to(src).parts[:-1]:
            continue  # the task classes themselves
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(src)}:{line}" for line in _task_name_comparisons(tree)]
        offenders += [f"{path.relative_to(src)}:{n.lineno}" for n in ast.walk(tree)
                      if isinstance(n, ast.Attribute) and n.attr in ("family", "char_level")]
    assert not offenders, f"branches on a task's name or family outside finetune/tasks: {offenders}"
    assert _task_name_comparisons(ast.parse("if spec.name == 'conll-ner': pass")) == [1]  # the check sees one
