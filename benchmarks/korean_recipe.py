"""Korean pretraining that pays off: the README's Korean guide, run end to end and measured (issue 24).

The recipe, every step a ``plmkit`` command (run here as subprocesses, exactly as a user types them):

1. Split each task file into a training part and a validation part (``tasks/``, the files' own
   formats; a fixed shuffle). Only the training parts are used below; the validation parts are
   never pretrained on, and any text that also occurs in a validation part is dropped from the
   pretraining text.
2. Write the unlabelled text of the training parts (``pretrain-text/``: NSMC reviews, KorNLI
   premises with their hypotheses, KorSTS sentence pairs, KLUE-NER sentences; one sentence per line,
   a blank line between documents) beside the shared Korean corpora (``corpora/ko``).
3. ``plmkit tokenizer train --kind unigram --cased`` (byte fallback: never ``[UNK]``) on both.
4. ``plmkit prepare`` both; ``plmkit pretrain --preset bert-mini`` with the English demo's recipe (MLM
   alone, 20% masked, dynamic masking over full sentences, rows of 16 tokens, 256 a step) for a fixed
   number of STEPS (not minutes, so the result does not depend on the machine's load); ``plmkit export``.
   Then the task-adaptive phase: ``plmkit pretrain --init`` on the sentence-pair tasks' training text
   (KorSTS, KorNLI) with MLM + NSP on 64-token segment pairs, and ``plmkit export`` again.
5. The scratch twin: the same architecture (the exported ``config.json``) with random weights and the
   same tokenizer (``plmkit.PlmModel(config).save_pretrained``).
6. ``plmkit finetune`` NSMC, KorNLI, KorSTS and KLUE-NER from both, with the same settings and
   seeds (KorSTS on its whole training part), each scored on its validation part.
7. The table (task, metric, scratch mean ± spread, pretrained mean ± spread, gain), ``report.json``
   and ``korean-recipe.png`` (one panel per task: a dot per seed, the means as bars).

    PLMKIT_DATA=../shared/data .venv/bin/python benchmarks/korean_recipe.py --out runs/korean-recipe
    PLMKIT_DATA=../shared/data .venv/bin/python benchmarks/korean_recipe.py --quick --out runs/korean-quick

"spread" is half the range over seeds (max − min) / 2, so "mean ± spread" covers every seed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

try:  # run as a script: benchmarks/ is first on sys.path
    from machine_info import machine
except ImportError:  # imported from the tests
    from benchmarks.machine_info import machine

PLMKIT = [sys.executable, "-m", "plmkit.cli"]


def _tsv_rows(path: Path) -> tuple[str, list[str]]:
    """A header line, then a row per line."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return lines[0], [ln for ln in lines[1:] if ln.strip()]


def _ner_blocks(path: Path) -> tuple[str, list[str]]:
    """KLUE-NER: the file's '## ' preamble, and one block per sentence ('## guid' line + 'char<TAB>tag' rows)."""
    text = path.read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n") if b.strip()]
    first = blocks[0].split("\n")
    # the preamble lines precede the first sentence's own '## guid<TAB>...' line
    k = next(i for i, ln in enumerate(first) if ln.startswith("## ") and "\t" in ln)
    preamble = "".join(ln + "\n" for ln in first[:k])
    blocks[0] = "\n".join(first[k:])
    return preamble, [b.strip("\n") for b in blocks]


def _json_rows(path: Path) -> tuple[str, list]:
    """A JSON list of records."""
    return "", json.loads(path.read_text(encoding="utf-8"))


def _tsv_columns(*cols: int) -> Callable[[str], list[str]]:
    return lambda row: [row.rstrip("\n").split("\t")[c] for c in cols]


@dataclass(frozen=True)
class Format:
    """How a task file is laid out: rows read and written back byte for byte, and the text of a row."""

    read: Callable[[Path], tuple[str, list]]  # (the text before the rows, the rows)
    write: Callable[[str, list], str]  # (that text, rows) -> a file read() reads back
    sentences: Callable[[Any], list[str]]  # a row's unlabelled text; NLI: [premise, hypothesis]


TSV_WRITE = lambda header, rows: header + "".join(rows)  # noqa: E731
FORMATS = {
    "nsmc-tsv": Format(_tsv_rows, TSV_WRITE, _tsv_columns(1)),  # id, document, label
    "korsts-tsv": Format(_tsv_rows, TSV_WRITE, _tsv_columns(5, 6)),  # genre ... score, sentence1, sentence2
    "nli-tsv": Format(_tsv_rows, TSV_WRITE, _tsv_columns(0, 1)),  # sentence1, sentence2, gold_label
    "nli-json": Format(_json_rows, lambda _, rows: json.dumps(rows, ensure_ascii=False, indent=1) + "\n",
                       lambda r: [r["premise"], r["hypothesis"]]),
    # the sentence, from its 'char<TAB>tag' rows
    "ner-blocks": Format(_ner_blocks, lambda pre, rows: pre + "\n\n".join(rows) + "\n\n",
                         lambda b: ["".join(ln.rsplit("\t", 1)[0] for ln in b.split("\n")[1:])]),
}


@dataclass(frozen=True)
class Task:
    """One fine-tuning task of the recipe: its file, how many rows to validate on, how to train."""

    name: str  # the plmkit task
    file: str  # under $PLMKIT_DATA
    format: str  # a key of FORMATS
    metric: str  # the key of metrics.json's "metrics" that the table reports
    eval_rows: int  # validation part carved from the file (the rest is the training part)
    epochs: float
    # NLI files: a premise comes with several hypotheses; they go to one part, and are one pretraining document
    by_premise: bool = False
    # Fine-tune on the whole training part instead of the recipe's first ``finetune_train`` examples, and at this
    # sequence length instead of the recipe's. KorSTS: 1,000 pairs leave both starts at noise (BENCHMARKS.md).
    all_examples: bool = False
    max_length: int | None = None

    @property
    def layout(self) -> Format:
        return FORMATS[self.format]


TASKS = {t.name: t for t in (
    Task("nsmc", "korean/nsmc/ratings-part-a.txt", "nsmc-tsv", "accuracy", 1000, 4),
    Task("kornli", "korean/kornli/xnli.dev.ko.tsv", "nli-tsv", "accuracy", 1000, 6, by_premise=True),
    Task("korsts", "korean/korsts/sts-train.tsv", "korsts-tsv", "pearson", 1000, 6, all_examples=True, max_length=64),
    Task("klue-ner", "korean/klue/klue-ner-v1.1_dev.tsv", "ner-blocks", "f1", 1000, 6),
    # Not in the default recipe: a bert-tiny stays at chance on it from either start (BENCHMARKS.md, run 5).
    Task("klue-nli", "korean/klue/klue-nli-v1.1_dev.json", "nli-json", "accuracy", 1000, 6, by_premise=True),
)}
# The recipe's tasks: one of each kind (sentiment, inference, similarity, NER). KorNLI is the inference task:
# on KLUE-NLI a bert-tiny stays at chance (0.33-0.38) from either start, whatever the fine-tuning settings
# (BENCHMARKS.md); ``--set tasks=...`` adds it (or removes any task).
DEFAULT_TASKS = ["nsmc", "kornli", "korsts", "klue-ner"]


@dataclass
class Recipe:
    """The budget, in steps and examples. The full run's numbers are what BENCHMARKS.md reports."""

    # bert-mini (4 layers, hidden 256): its pretrained start leads bert-tiny's on every task, and KorSTS needs it
    preset: str = "bert-mini"
    vocab_size: int = 8000
    tokenizer_sentences: int | None = None  # train the tokenizer on a random sample of this many sentences (None: all)
    # bert-mini: held-out MLM 4.57 / 25.9% at 2,500 steps, 4.18 / 29.6% at 5,000 (BENCHMARKS.md)
    pretrain_steps: int = 5000
    pretrain_batch: int = 256  # rows of pretrain_length tokens per step (4,096 tokens, as the English demo)
    pretrain_length: int = 16  # short rows leave the bag-of-words plateau fast (the English demo; BENCHMARKS.md)
    pretrain_lr: float = 1e-3
    # --set overrides of the preset's objective, comma-separated (empty: bert-tiny's MLM + NSP on segment pairs).
    # The English demo's (plmkit.demo.FULL_PRETRAIN_SET): MLM alone (no room for a pair in 16 tokens), dynamic
    # masking over full sentences (no padding: most documents here are one review or one sentence), 20% masked.
    # Measured against MLM + NSP on 64-token rows: held-out MLM accuracy 17.9% against 11.9% (BENCHMARKS.md).
    pretrain_objective: str = "data.pair=none,data.packing=full-sentences,data.masking=dynamic,data.mask_prob=0.2"
    # bf16 autocast in both pretraining phases: about twice as fast on a CPU with AVX512-BF16 or AMX, many times
    # slower without (plmkit warns); off by default so that the table does not depend on the CPU.
    bf16: bool = False
    # The task-adaptive phase: the pretrained model continued on the sentence-pair tasks' training text with MLM + NSP
    # (the preset's segment pairs: is the second segment the pair's other sentence?), so that the model learns to
    # compare two segments; KorSTS gains from it and from nothing else tried (BENCHMARKS.md). 0 steps: no phase.
    adapt_steps: int = 1500
    adapt_tasks: list[str] = field(default_factory=lambda: ["korsts", "kornli"])  # those among ``tasks``
    adapt_batch: int = 64
    adapt_length: int = 64  # both sentences of a pair in one row
    adapt_lr: float = 1e-3
    adapt_objective: str = "data.masking=dynamic,data.mask_prob=0.2"
    finetune_train: int = 1000  # training examples per task (the first N of the shuffled training part)
    finetune_lr: float = 3e-4  # the same for both starts; at 1e-3 bert-mini collapses to one class on KorNLI
    finetune_batch: int = 32
    max_length: int = 128  # fine-tuning sequence length
    epochs_scale: float = 1.0  # multiplies every task's epochs
    eval_rows: int | None = None  # None: each task's own
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))  # names in TASKS, in the table's order

    @classmethod
    def quick(cls) -> "Recipe":
        # Fine-tuning costs little next to starting a process, and fewer than ~1,000 examples leave a model from
        # scratch predicting one class: quick cuts the model, pretraining, the vocabulary and the validation parts.
        return cls(preset="bert-tiny", vocab_size=4000, tokenizer_sentences=20000, pretrain_steps=200,
                   pretrain_batch=128, adapt_steps=50, adapt_batch=32, eval_rows=200, seeds=[1])


def _log(msg: str) -> None:
    print(f"[korean-recipe] {msg}", file=sys.stderr, flush=True)


def plmkit(*args: str, log: Path) -> str:
    """Run one plmkit command (as a subprocess, the way a user runs it); its stdout, or an error with its log."""
    cmd = [*PLMKIT, *args]
    shown = "plmkit " + " ".join(args)
    _log(shown)
    with open(log, "a", encoding="utf-8") as err:
        err.write(f"$ {shown}\n")
        err.flush()
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                             env={**os.environ, "TQDM_DISABLE": "1"})
    if res.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{shown} exited {res.returncode}; the end of {log}:\n{tail}")
    return res.stdout


# ---- 1. training / validation parts, in each file's own format -------------------------------------------

def _split(items: list, eval_rows: int, seed: int = 0) -> tuple[list, list]:
    """(training part, validation part): a fixed shuffle, the first ``eval_rows`` items validate."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    held = set(order[:eval_rows])
    return [items[i] for i in order if i not in held], [items[i] for i in sorted(held)]


def _groups_for(groups: list[list], rows: int, seed: int = 0) -> int:
    """How many groups _split must hold out for at least ``rows`` rows (in its shuffled order)."""
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    n = total = 0
    while total < rows and n < len(order):
        total += len(groups[order[n]])
        n += 1
    return n


def texts_of(task: Task, part: list) -> list[list[str]]:
    """The unlabelled text of a part of a task file, as documents (lists of sentences)."""
    if not task.by_premise:
        return [task.layout.sentences(r) for r in part]
    docs: dict[str, list[str]] = {}  # a premise with all its hypotheses is one document
    for premise, hypothesis in map(task.layout.sentences, part):
        docs.setdefault(premise, [premise]).append(hypothesis)
    return list(docs.values())


def write_parts(data: Path, task: Task, eval_rows: int, out: Path) -> tuple[Path, Path, list[list[str]], list[str]]:
    """Write TASK-train / TASK-eval files; return them, the training part's documents and the validation texts."""
    src = data / task.file
    suffix = "".join(src.suffixes[-1:])
    train_f, eval_f = out / f"{task.name}-train{suffix}", out / f"{task.name}-eval{suffix}"
    header, rows = task.layout.read(src)
    if task.by_premise:  # all the hypotheses of a premise go to one part
        by_premise: dict[str, list] = {}
        for r in rows:
            by_premise.setdefault(task.layout.sentences(r)[0], []).append(r)
        groups = list(by_premise.values())
    else:
        groups = [[r] for r in rows]
    tr_g, ev_g = _split(groups, _groups_for(groups, eval_rows))
    tr, ev = [r for g in tr_g for r in g], [r for g in ev_g for r in g]
    for f, part in ((train_f, tr), (eval_f, ev)):
        f.write_text(task.layout.write(header, part), encoding="utf-8")
    held = [s.strip() for doc in texts_of(task, ev) for s in doc]
    return train_f, eval_f, texts_of(task, tr), held


def write_pretraining_text(docs_by_task: dict[str, list[list[str]]], held: set[str], out: Path) -> dict[str, Any]:
    """One text file per task (a sentence per line, a blank line between documents), without validation text."""
    out.mkdir(parents=True)
    counts: dict[str, Any] = {}
    for task, docs in docs_by_task.items():
        seen: set[tuple[str, ...]] = set()
        kept_docs, dropped = [], 0
        for doc in docs:
            sents = [" ".join(s.split()) for s in doc]
            keep = [s for s in sents if s and s not in held]
            dropped += len([s for s in sents if s in held])
            if keep and tuple(keep) not in seen:
                seen.add(tuple(keep))
                kept_docs.append(keep)
        (out / f"{task}.txt").write_text("\n\n".join("\n".join(d) for d in kept_docs) + "\n", encoding="utf-8")
        counts[task] = {"documents": len(kept_docs), "sentences": sum(map(len, kept_docs)),
                        "dropped_as_validation_text": dropped}
    return counts


# ---- 5. the scratch twin ---------------------------------------------------------------------------------

def save_scratch_twin(pretrained: Path, out: Path, seed: int = 0) -> None:
    """The pretrained model's architecture and tokenizer with freshly initialised weights."""
    import torch

    import plmkit

    config = plmkit.from_pretrained(pretrained).config
    torch.manual_seed(seed)
    plmkit.PlmModel(config, task="pretraining").save_pretrained(out, tokenizer=plmkit.load_tokenizer(pretrained))


# ---- 7. report -------------------------------------------------------------------------------------------

def seed_values(res: dict[str, Any], metric: str) -> list[float]:
    """``metric`` of every seed, from a finetune run's metrics.json (one seed, or ``--seeds``' runs)."""
    if "runs" in res:
        return [float(res["runs"][s]["metrics"][metric]) for s in sorted(res["runs"], key=int)]
    return [float(res["metrics"][metric])]


def summarize(values: list[float]) -> dict[str, Any]:
    return {"mean": sum(values) / len(values), "spread": (max(values) - min(values)) / 2, "per_seed": values}


def format_table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'task':<9} {'metric':<9} {'scratch':>17} {'pretrained':>17} {'gain':>8}  every seed better",
             "-" * 82]
    for r in results:
        s, p = r["scratch"], r["pretrained"]
        lines.append(f"{r['task']:<9} {r['metric']:<9} {s['mean']:>9.4f} ± {s['spread']:.4f} "
                     f"{p['mean']:>9.4f} ± {p['spread']:.4f} {r['gain']:>+8.4f}  {'yes' if r['separated'] else 'no'}")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], curve: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """One panel per task (dots: seeds; bar and whiskers: mean, min and max) and the pretraining curve."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log("matplotlib is not installed; no plot (pip install matplotlib)")
        return None
    fig, axes = plt.subplots(1, len(results) + 1, figsize=(3.1 * (len(results) + 1), 3.6), dpi=120)
    for ax, r in zip(axes, results):
        for x, (init, color) in enumerate((("scratch", "#7f7f7f"), ("pretrained", "#1f77b4"))):
            vals, mean = r[init]["per_seed"], r[init]["mean"]
            ax.errorbar([x], [mean], yerr=[[mean - min(vals)], [max(vals) - mean]], fmt="_", ms=22, mew=2,
                        color=color, capsize=6)
            ax.scatter([x] * len(vals), vals, color=color, s=18, zorder=3, alpha=0.8)
            ax.annotate(f"{mean:.3f}", (x, mean), xytext=(14, 0), textcoords="offset points", va="center",
                        fontsize=8)
        ax.set_xlim(-0.6, 1.8)
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["scratch", "pretrained"])
        ax.set_title(f"{r['task']} ({r['metric']})\ngain {r['gain']:+.3f}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[-1]
    train = [c for c in curve if "mlm_loss" in c]
    evals = [c for c in curve if "eval_mlm_loss" in c]
    ax.plot([c["step"] for c in train], [c["mlm_loss"] for c in train], lw=1, label="train MLM")
    if evals:
        ax.plot([c["step"] for c in evals], [c["eval_mlm_loss"] for c in evals], "o-", ms=3, label="held-out MLM")
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("loss (nats)")
    ax.set_title("pretraining", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- the recipe ------------------------------------------------------------------------------------------

def recipe_tasks(recipe: Recipe) -> list[Task]:
    unknown = [t for t in recipe.tasks if t not in TASKS]
    if unknown or not recipe.tasks:
        raise SystemExit(f"--set tasks={','.join(recipe.tasks)}: {'no task ' + ', '.join(unknown) if unknown else 'no tasks'}"
                         f"; choose from {', '.join(TASKS)}")
    if unknown := [t for t in recipe.adapt_tasks if t not in TASKS]:
        raise SystemExit(f"--set adapt_tasks={','.join(recipe.adapt_tasks)}: no task {', '.join(unknown)}; "
                         f"choose from {', '.join(TASKS)}")
    return [TASKS[t] for t in recipe.tasks]


def fresh_folder(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose a new --out (or remove it)")
    out.mkdir(parents=True, exist_ok=True)


def split_tasks(data: Path, out: Path, recipe: Recipe) -> tuple[dict[str, tuple[Path, Path]], dict[str, Any]]:
    """Steps 1-2: out/tasks/TASK-{train,eval}.* and out/pretrain-text/TASK.txt (no validation text in it)."""
    tasks_dir = out / "tasks"
    tasks_dir.mkdir()
    parts, docs, held = {}, {}, set()
    for task in recipe_tasks(recipe):
        n_eval = recipe.eval_rows or task.eval_rows
        train_f, eval_f, task_docs, task_held = write_parts(data, task, n_eval, tasks_dir)
        parts[task.name], docs[task.name] = (train_f, eval_f), task_docs
        held.update(" ".join(s.split()) for s in task_held)
    return parts, write_pretraining_text(docs, held, out / "pretrain-text")


def run(data: Path, out: Path, recipe: Recipe, quick: bool, reuse: bool = False) -> dict[str, Any]:
    """The whole recipe into ``out``. With ``reuse``, a step whose output ``out`` already holds (from an
    interrupted or earlier run of the same recipe) is not run again; its time is the one recorded then."""
    if not reuse:
        fresh_folder(out)
    elif (out / "recipe.json").exists():
        before = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
        differ = [k for k, v in asdict(recipe).items() if before.get(k) != v]
        finetuning = {"finetune_train", "finetune_lr", "finetune_batch", "max_length", "epochs_scale", "seeds"}
        if set(differ) - finetuning or (differ and (out / "finetune").exists()):
            raise SystemExit(f"{out} holds a run of another recipe ({', '.join(differ)} differ); --reuse keeps "
                             "the tokenizer, corpus and models only for other fine-tuning settings, and only "
                             "once its finetune/ folder is moved away")
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=1) + "\n", encoding="utf-8")
    tasks = recipe_tasks(recipe)
    started_on = machine()  # the load average as the run starts
    log = out / "commands.log"
    timings_file = out / "timings.json"
    timings: dict[str, float] = json.loads(timings_file.read_text()) if timings_file.exists() else {}

    def step(name: str, done: Path, work) -> None:
        """Run ``work`` unless ``done`` exists (with --reuse); record its seconds as ``name``."""
        if reuse and done.exists():
            _log(f"{name}: reusing {done}")
            return
        t = time.time()
        work()
        timings[name] = round(time.time() - t, 1)
        timings_file.write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")

    corpora = [str(data / "corpora" / "ko"), str(out / "pretrain-text")]
    counts_file = out / "pretrain-text.json"
    step("split_s", counts_file, lambda: counts_file.write_text(
        json.dumps(split_tasks(data, out, recipe)[1], indent=1) + "\n", encoding="utf-8"))
    text_counts = json.loads(counts_file.read_text(encoding="utf-8"))
    parts = {t.name: (next((out / "tasks").glob(f"{t.name}-train.*")), next((out / "tasks").glob(f"{t.name}-eval.*")))
             for t in tasks}

    # 3-4. tokenizer, prepare, pretrain, export
    sample = ["--max-sentences", str(recipe.tokenizer_sentences)] if recipe.tokenizer_sentences else []
    step("tokenizer_s", out / "tok-ko" / "tokenizer.json", lambda: plmkit(
        "tokenizer", "train", "--kind", "unigram", "--vocab-size", str(recipe.vocab_size), "--cased", *sample,
        "--out", str(out / "tok-ko"), *corpora, log=log))
    step("prepare_s", out / "prepared-ko" / "meta.json", lambda: plmkit(
        "prepare", "--tokenizer", str(out / "tok-ko"), "--out", str(out / "prepared-ko"), *corpora, log=log))
    prep = json.loads((out / "prepared-ko" / "meta.json").read_text(encoding="utf-8"))["counts"]

    def pretrain(phase: str, data_dir: Path, run_dir: Path, steps: int, batch: int, length: int, lr: float,
                 objective: str, init: list[str]) -> dict[str, Any]:
        """One ``plmkit pretrain`` phase, for a fixed number of steps; its summary (kept as PHASE-summary.json)."""
        summary_file = out / f"{phase}-summary.json"
        step(f"{phase}_s", summary_file, lambda: summary_file.write_text(plmkit(
            "pretrain", "--preset", recipe.preset, *init, "--data", str(data_dir), "--out", str(run_dir),
            "--max-steps", str(steps), "--batch-size", str(batch), "--max-length", str(length), "--lr", str(lr),
            "--warmup-ratio", "0.05", "--seed", "0", "--log-every", "20", "--eval-every", str(max(50, steps // 8)),
            "--save-minutes", "0", "--save-every", str(max(100, steps // 5)), "--set", "train.eval_at_start=true",
            *(["--bf16"] if recipe.bf16 else []), *[a for kv in objective.split(",") if kv for a in ("--set", kv)],
            log=log), encoding="utf-8"))
        return json.loads(summary_file.read_text(encoding="utf-8"))

    summary = pretrain("pretrain", out / "prepared-ko", out / "pretrain", recipe.pretrain_steps, recipe.pretrain_batch,
                       recipe.pretrain_length, recipe.pretrain_lr, recipe.pretrain_objective, [])
    adapt_tasks = [t for t in recipe.adapt_tasks if t in recipe.tasks]
    adapting = recipe.adapt_steps > 0 and bool(adapt_tasks)
    general = out / ("model-general" if adapting else "model-pretrained")  # the model of the first phase
    step("export_s", general / "config.json", lambda: plmkit("export", str(out / "pretrain"), "--out", str(general), log=log))
    adaptation = None
    if adapting:  # 4b. the task-adaptive phase, from the general model, on the pair tasks' training text
        step("prepare_adapt_s", out / "prepared-adapt" / "meta.json", lambda: plmkit(
            "prepare", "--tokenizer", str(out / "tok-ko"), "--out", str(out / "prepared-adapt"),
            *[str(out / "pretrain-text" / f"{t}.txt") for t in adapt_tasks], log=log))
        adaptation = pretrain("adapt", out / "prepared-adapt", out / "pretrain-adapt", recipe.adapt_steps,
                              recipe.adapt_batch, recipe.adapt_length, recipe.adapt_lr, recipe.adapt_objective,
                              ["--init", str(general)])
        step("export_adapt_s", out / "model-pretrained" / "config.json", lambda: plmkit(
            "export", str(out / "pretrain-adapt"), "--out", str(out / "model-pretrained"), log=log))
    step("scratch_s", out / "model-scratch" / "config.json",
         lambda: save_scratch_twin(out / "model-pretrained", out / "model-scratch"))

    # 6. fine-tuning from both starts
    seeds = ",".join(map(str, recipe.seeds))
    results = []
    for task in tasks:
        train_f, eval_f = parts[task.name]
        row: dict[str, Any] = {"task": task.name, "metric": task.metric}
        for init in ("scratch", "pretrained"):
            run_out = out / "finetune" / f"{task.name}-{init}"
            step(f"finetune_{task.name}_{init}_s", run_out / "metrics.json", lambda: plmkit(
                "finetune", task.name, "--model", str(out / f"model-{init}"), "--train", str(train_f),
                "--eval", str(eval_f), "--out", str(run_out), "--seeds", seeds,
                *([] if task.all_examples else ["--max-train", str(recipe.finetune_train)]),
                "--epochs", f"{task.epochs * recipe.epochs_scale:g}", "--lr", str(recipe.finetune_lr),
                "--batch-size", str(recipe.finetune_batch), "--max-length", str(task.max_length or recipe.max_length),
                "--save-every", "0", "--no-tensorboard", log=log))
            res = json.loads((run_out / "metrics.json").read_text(encoding="utf-8"))
            row[init] = summarize(seed_values(res, task.metric))
            row["data"] = res["data"]  # what plmkit read of the two parts
        row["gain"] = row["pretrained"]["mean"] - row["scratch"]["mean"]
        row["separated"] = min(row["pretrained"]["per_seed"]) > max(row["scratch"]["per_seed"])
        results.append(row)
        _log(format_table([row]).splitlines()[-1])

    # 7. report
    def curve_of(run_dir: Path) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]

    def at_end(phase_summary: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in phase_summary.items() if k in ("step", "tokens_seen") or k.startswith("eval_")}

    curve = curve_of(out / "pretrain")
    report = {
        "quick": quick, "recipe": asdict(recipe), "tasks": [asdict(t) for t in tasks], "machine": started_on,
        "pretraining_text": text_counts, "prepared": prep,
        "pretraining": at_end(summary),
        "pretraining_start": next((c for c in curve if "eval_mlm_loss" in c), None),
        "adaptation": None if adaptation is None else {
            "tasks": adapt_tasks, **at_end(adaptation),
            "start": next((c for c in curve_of(out / "pretrain-adapt") if "eval_mlm_loss" in c), None)},
        "results": results, "timings_s": timings, "total_s": round(sum(timings.values()), 1),
        "load_average_at_end": os.getloadavg(),
    }
    png = plot(results, curve, out / "korean-recipe.png",
               f"Korean: {recipe.preset} pretrained {recipe.pretrain_steps}"
               f"{f' + {recipe.adapt_steps}' if adapting else ''} steps vs scratch, "
               f"{len(recipe.seeds)} seed(s), {recipe.finetune_train} training examples per task")
    report["plot"] = str(png) if png else None
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "table.txt").write_text(format_table(results) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/korean-recipe", help="output folder (must not exist or be empty)")
    ap.add_argument("--data", default=os.environ.get("PLMKIT_DATA"), help="the shared data folder ($PLMKIT_DATA)")
    ap.add_argument("--quick", action="store_true", help="the CI form (a few minutes): vocabulary 4,000, 200 pretraining steps of 128 rows, 200 validation rows, one seed")
    ap.add_argument("--split-only", action="store_true",
                    help="only write the task parts (OUT/tasks) and the pretraining text (OUT/pretrain-text), "
                         "the README's first step")
    ap.add_argument("--reuse", action="store_true",
                    help="continue a run in --out of the same recipe: steps whose output is there are not run again")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="change a Recipe field, e.g. pretrain_steps=2000, seeds=1,2 (repeatable)")
    args = ap.parse_args(argv)
    if not args.data:
        ap.error("give --data or set PLMKIT_DATA to the shared data folder")
    from plmkit.config import parse_value

    recipe = Recipe.quick() if args.quick else Recipe()
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in Recipe.__dataclass_fields__:
            ap.error(f"--set {item}: no recipe field {key!r}; fields: {', '.join(Recipe.__dataclass_fields__)}")
        kind = type(getattr(recipe, key)) if getattr(recipe, key) is not None else int
        try:
            if key == "seeds":
                value = [int(s) for s in value.split(",")]
            elif kind is bool:  # the spellings plmkit's own --set takes
                if not isinstance(value := parse_value(value), bool):
                    raise ValueError(value)
            elif key in ("tasks", "adapt_tasks"):
                value = [s.strip() for s in value.split(",") if s.strip()]
            else:
                value = kind(value)
        except ValueError:
            wants = {"seeds": "comma-separated integers", "bf16": "true or false"}.get(key, kind.__name__)
            ap.error(f"--set {item}: {key} takes {wants}")
        recipe = replace(recipe, **{key: value})
    recipe_tasks(recipe)  # an unknown task name stops here, before anything is written
    if args.split_only:
        fresh_folder(Path(args.out))
        parts, counts = split_tasks(Path(args.data), Path(args.out), recipe)
        for name, (train_f, eval_f) in parts.items():
            print(f"{name}: {train_f} (training part), {eval_f} (validation part); pretraining text "
                  f"{counts[name]['sentences']:,} sentences, {counts[name]['dropped_as_validation_text']} left out "
                  "as validation text")
        return 0
    report = run(Path(args.data), Path(args.out), recipe, args.quick, reuse=args.reuse)
    print(format_table(report["results"]))
    print(f"\nreport: {Path(args.out) / 'report.json'}\nplot:   {report['plot']}\n"
          f"total time: {report['total_s'] / 60:.1f} min ({json.dumps(report['timings_s'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
