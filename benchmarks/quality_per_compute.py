"""Quality per compute: downstream scores as a function of pretraining work, one line per recipe.

Users buy a better model for the compute they have, not tokens per second. This pretrains several
recipes on the same prepared Brown corpus (the demo's: cased WordPiece of 8,000, the held-out fifth
of every genre never seen) at budgets of **equal work**, fine-tunes the same three tasks from each
with several seeds, and from the same architecture's random initialisation:

* ``bert``         BERT-MLM, the demo's recipe (``plmkit.demo.FULL_PRETRAIN_SET``: bert-tiny, MLM alone,
                   20% masked, dynamic masking over full sentences)
* ``roberta``      RoBERTa-style MLM: dynamic masking, full sentences, no pair objective, 15% (roberta-tiny)
* ``albert``       ALBERT: shared layers, factorised embeddings, SOP, n-gram masking (albert-tiny)
* ``electra``      ELECTRA: generator MLM + replaced-token detection on every position (electra-tiny), on the
                   demo's rows (dynamic masking over full sentences, 20% masked)
* ``transformers`` transformers' own recipe: ``BertForMaskedLM`` + ``DataCollatorForLanguageModeling``
                   on 16-token blocks of the same training text (what ``run_mlm.py`` gives a user), for
                   the same *wall-clock* time plmkit's ``bert`` run took at that budget

Every recipe pretrains on the demo's batch: 256 rows of 16 tokens a step, peak LR 2e-3, 5% warmup.
Budgets are named by the minutes the ``bert`` recipe takes on the quiet 2-core machine (300 steps a
minute: the demo's 2,100 steps in 7.0 minutes), and are measured in **model FLOPs**, counted by
``torch.utils.flop_counter.FlopCounterMode`` over real optimizer steps of each recipe (forward,
backward, all matmuls and attention), so a budget is the same amount of work on any machine. Each
recipe gets ``round(budget FLOPs / its FLOPs per step)`` steps.

Tasks (accuracy / entity F1 on held-out data): Brown POS tagging (178 tags) and Brown genre (15
classes) as in ``plmkit demo``, and CoNLL-2003 NER (first ``--ner-train`` sentences of eng.train,
first ``--ner-eval`` of eng.testa).

    python benchmarks/quality_per_compute.py --out runs/qpc --budgets 3,9,27 \\
        --recipes bert,roberta,albert,electra,transformers --seeds 1,2,3
    python benchmarks/quality_per_compute.py --out runs/qpc --budgets 3,9 --recipes bert,electra   # the core claim

Results go to OUT/results.json (every run: steps, FLOPs, wall time, per-seed scores), OUT/table.md
and OUT/quality-per-compute.png. Everything is cached in OUT: a re-run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

STEPS_PER_MINUTE = 2100 / 7.0  # the bert recipe on the quiet 2-core machine (BENCHMARKS.md, the demo: 7.0 min)
ROWS, LENGTH, LR = 256, 16, 2e-3  # the demo's pretraining batch: 256 rows of 16 tokens, peak LR 2e-3


def _demo_set() -> dict[str, Any]:
    from plmkit.demo import FULL_PRETRAIN_SET

    return dict(FULL_PRETRAIN_SET)


RECIPES: dict[str, dict[str, Any]] = {  # preset, its --set overrides (a callable: read when the recipe runs), label
    "bert": {"preset": "bert-tiny", "set": _demo_set, "label": "BERT-MLM (plmkit, the demo's recipe)"},
    "roberta": {"preset": "roberta-tiny", "set": dict, "label": "RoBERTa-style MLM (plmkit)"},
    "albert": {"preset": "albert-tiny", "set": dict, "label": "ALBERT (plmkit)"},
    "electra": {"preset": "electra-tiny", "set": _demo_set, "label": "ELECTRA (plmkit)"},
    "transformers": {"preset": None, "set": dict, "label": "transformers run_mlm recipe"},
}
TASKS = {  # name → (plmkit task, metric)
    "brown-pos": ("brown-pos", "accuracy"),
    "genre": ("classify", "accuracy"),
    "conll-ner": ("conll-ner", "f1"),
}


def log(msg: str) -> None:
    print(f"[qpc] {msg}", file=sys.stderr, flush=True)


def data_root() -> Path:
    root = os.environ.get("PLMKIT_DATA")
    if not root:
        sys.exit("set PLMKIT_DATA to the shared data folder (it holds corpora/brown and conll2003)")
    return Path(root)


# ---------------------------------------------------------------- setup (cached)

def setup(out: Path, args) -> dict[str, Any]:
    """Tokenizer, prepared corpus and task files, built once in OUT/setup."""
    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.data.fetch import fetch_brown
    from plmkit.demo import split_documents, write_genre_file, write_pos_files
    from plmkit.tokenization import train_tokenizer

    s = out / "setup"
    done = s / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    if s.exists():
        shutil.rmtree(s)  # an unfinished setup of this benchmark's own
    s.mkdir(parents=True)
    brown = fetch_brown(str(data_root() / "corpora" / "brown"), log=log)
    train_files, held_files = split_documents(brown)
    tok = train_tokenizer("wordpiece", read_sentences(train_files, format="brown"), vocab_size=8000, lowercase=False)
    tok.save_pretrained(s / "tokenizer")
    prepare_corpus(train_files, s / "prepared", tokenizer=s / "tokenizer", format="brown", progress=False)
    write_pos_files(train_files, s / "pos-train.txt", args.pos_train, seed=1)
    write_pos_files(held_files, s / "pos-eval.txt", args.eval_examples, seed=2)
    write_genre_file(train_files, s / "genre-train.jsonl", args.genre_train, seed=1)
    write_genre_file(held_files, s / "genre-eval.jsonl", args.eval_examples, seed=2)
    info = {"brown": str(brown), "train_documents": len(train_files), "held_out_documents": len(held_files),
            "train_files": [str(f) for f in train_files]}
    done.write_text(json.dumps(info))
    return info


# ---------------------------------------------------------------- work per step

def flops_per_step(out: Path, recipe: str) -> float:
    """Model FLOPs of one optimizer step of ``preset`` at the benchmark's batch, counted, not estimated.

    FlopCounterMode counts every matmul, bmm and attention kernel dispatched in the training loop. Two
    runs of 2 and 4 steps cancel the one-off work (model build, the final save); what is left is two steps.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from plmkit.training.pretrain import pretrain

    cache = out / "flops.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if recipe in known:
        return known[recipe]
    counts = []
    for steps in (2, 4):
        run = out / "flops-runs" / f"{recipe}-{steps}"
        if run.exists():
            shutil.rmtree(run)
        with FlopCounterMode(display=False) as counter:
            pretrain(RECIPES[recipe]["preset"], out / "setup" / "prepared", run, overrides=RECIPES[recipe]["set"](),
                     flags=_flags(steps, seed=0, quiet=True))
        counts.append(counter.get_total_flops())
        shutil.rmtree(run)
    per_step = (counts[1] - counts[0]) / 2
    known[recipe] = per_step
    cache.write_text(json.dumps(known, indent=1))
    return per_step


def _flags(steps: int, seed: int, quiet: bool = False) -> dict[str, Any]:
    return {"max_steps": steps, "batch_size": ROWS, "max_length": LENGTH, "lr": LR, "warmup": 0.05,
            "log_every": 50, "eval_every": 0, "save_every": 0, "seed": seed, "tensorboard": False,
            "progress": not quiet}


# ---------------------------------------------------------------- pretraining

def pretrain_recipe(out: Path, recipe: str, budget: float, steps: int) -> dict[str, Any]:
    from plmkit.training.pretrain import pretrain

    run = out / "pretrain" / f"{recipe}-{budget:g}"
    meta = run.with_suffix(".json")
    if meta.exists():
        return json.loads(meta.read_text())
    if run.exists():
        shutil.rmtree(run)  # an interrupted run of this benchmark's own
    log(f"pretraining {recipe} for {steps} steps (budget {budget:g} min-equivalent)")
    t = time.time()
    summary = pretrain(RECIPES[recipe]["preset"], out / "setup" / "prepared", run, overrides=RECIPES[recipe]["set"](),
                       flags=_flags(steps, seed=0))
    info = {"recipe": recipe, "budget": budget, "steps": summary["step"], "wall_s": round(time.time() - t, 1),
            "model": str(summary["checkpoint"]),
            "final_eval": {k: v for k, v in summary.items() if k.startswith("eval_")},
            "load_average_at_end": os.getloadavg()}
    meta.write_text(json.dumps(info, indent=1))
    return info


def pretrain_transformers(out: Path, budget: float, seconds: float) -> dict[str, Any]:
    """transformers' recipe for ``seconds`` of wall clock: BertForMaskedLM + DataCollatorForLanguageModeling.

    The model is bert-tiny's shape on the same tokenizer; the text is grouped into LENGTH-token blocks as
    run_mlm.py's group_texts does; the collator masks 15% (80/10/10) anew each batch; AdamW with linear
    decay and 5% warmup at the same peak LR and batch. The step count is set from the speed of the first
    steps so the schedule ends on time (a time guard stops it in any case).
    """
    import torch
    import transformers as T

    run = out / "pretrain" / f"transformers-{budget:g}"
    meta = run.with_suffix(".json")
    if meta.exists():
        return json.loads(meta.read_text())
    if run.exists():
        shutil.rmtree(run)
    tok_dir = out / "setup" / "tokenizer"
    # As a run_mlm.py user loads it. (PreTrainedTokenizerFast(tokenizer_file=..., unk_token=..., ...) in
    # transformers 5 silently splits every word into characters: an earlier version of this benchmark trained
    # transformers' recipe on characters.) The ids must be plmkit's, or the comparison is void.
    hf_tok = T.AutoTokenizer.from_pretrained(str(tok_dir))
    lines = train_text(out).read_text(encoding="utf-8").splitlines()
    ids: list[int] = []
    for start in range(0, len(lines), 2000):
        for row in hf_tok(lines[start:start + 2000], add_special_tokens=False)["input_ids"]:
            ids.extend(row)
    _same_tokens_as_plmkit(hf_tok, tok_dir, lines[:200], ids, out)
    body = LENGTH - 2
    blocks = [[hf_tok.cls_token_id] + ids[i:i + body] + [hf_tok.sep_token_id]
              for i in range(0, len(ids) - body + 1, body)]
    collator = T.DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15)
    torch.manual_seed(0)
    cfg = T.BertConfig(vocab_size=hf_tok.vocab_size, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=512, max_position_embeddings=512)
    model = T.BertForMaskedLM(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, eps=1e-6)
    g = torch.Generator().manual_seed(0)

    def batches():
        while True:
            for chunk in torch.randperm(len(blocks), generator=g).split(ROWS):
                if len(chunk) == ROWS:
                    yield collator([{"input_ids": blocks[i]} for i in chunk.tolist()])

    it = batches()
    t0 = time.time()
    step, total = 0, None
    sched = None
    while True:
        if total is None and step == 20:  # the speed so far sets the schedule's length
            total = max(21, int(seconds / ((time.time() - t0) / 20)))
            for group in opt.param_groups:
                group["initial_lr"] = LR  # the schedule starts at step 20 (LambdaLR's resume form needs it)
            sched = T.get_linear_schedule_with_warmup(opt, int(0.05 * total), total, last_epoch=step - 1)
        lr_scale = min(1.0, (step + 1) / 20) if total is None else None
        if lr_scale is not None:
            for group in opt.param_groups:
                group["lr"] = LR * lr_scale * 0.25  # a gentle start while the speed is measured
        batch = next(it)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sched is not None:
            sched.step()
        step += 1
        if (total is not None and step >= total) or time.time() - t0 >= seconds:
            break
    run.mkdir(parents=True)
    model.save_pretrained(run)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (tok_dir / name).exists():
            shutil.copy(tok_dir / name, run / name)
    info = {"recipe": "transformers", "budget": budget, "steps": step, "wall_s": round(time.time() - t0, 1),
            "model": str(run), "final_loss": float(loss), "load_average_at_end": os.getloadavg()}
    meta.write_text(json.dumps(info, indent=1))
    return info


def train_text(out: Path) -> Path:
    """The transformers recipe's input: the training documents' sentences as text, one per line (made once)."""
    from plmkit.data import read_sentences

    path = out / "setup" / "train-text.txt"
    if not path.exists():
        files = json.loads((out / "setup" / "done.json").read_text())["train_files"]
        part = path.with_suffix(".part")
        part.write_text("".join(sentence + "\n" for sentence in read_sentences(files, format="brown")),
                        encoding="utf-8")
        part.replace(path)
    return path


def _same_tokens_as_plmkit(hf_tok, tok_dir: Path, lines: list[str], ids: list[int], out: Path) -> None:
    """Refuse to run transformers' recipe on other tokens than plmkit's: the same ids for the same line, and as
    many tokens in all as plmkit's prepared corpus holds (the text itself must be the same, not only the
    tokenizer: an earlier version of this benchmark wrote the text with a space between every character)."""
    from plmkit.tokenization import load_tokenizer

    ours = load_tokenizer(tok_dir)
    for line in lines:
        theirs, mine = hf_tok(line)["input_ids"], ours(line)["input_ids"][0].tolist()
        if theirs != mine:
            raise SystemExit(f"transformers' tokenizer gives other ids than plmkit's for {line[:60]!r}: "
                             f"{hf_tok.convert_ids_to_tokens(theirs)[:12]} vs {ours.convert_ids_to_tokens(mine)[:12]}")
    prepared = json.loads((out / "setup" / "prepared" / "meta.json").read_text())["counts"]["tokens"]
    if abs(len(ids) - prepared) > 0.01 * prepared:
        raise SystemExit(f"transformers' recipe would train on {len(ids):,} tokens, plmkit's prepared corpus of the "
                         f"same documents holds {prepared:,}: not the same text")


def scratch_model(out: Path) -> str:
    """bert-tiny's random initialisation (seed 0), the common from-scratch baseline."""
    import torch

    from plmkit.models import PlmModel
    from plmkit.tokenization import load_tokenizer
    from plmkit.training.pretrain import build_model_config

    d = out / "pretrain" / "scratch"
    if not (d / "config.json").exists():
        tok = load_tokenizer(out / "setup" / "tokenizer")
        torch.manual_seed(0)
        PlmModel(build_model_config("bert-tiny", {}, tok, 128), task="pretraining").save_pretrained(d, tokenizer=tok)
    return str(d)


# ---------------------------------------------------------------- fine-tuning

def finetune_all(out: Path, name: str, model_dir: str, args) -> dict[str, Any]:
    from plmkit.finetune import FinetuneConfig, TaskOptions, finetune

    cache = out / "finetune" / f"{name}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    s = out / "setup"
    conll = data_root() / "conll2003"
    jobs = {
        "brown-pos": dict(train=s / "pos-train.txt", eval=s / "pos-eval.txt", epochs=args.pos_epochs,
                          options=TaskOptions(max_length=128)),
        "genre": dict(train=s / "genre-train.jsonl", eval=s / "genre-eval.jsonl", epochs=args.genre_epochs,
                      options=TaskOptions(max_length=128, text_columns=("text",), label_column="label")),
        "conll-ner": dict(train=conll / "eng.train", eval=conll / "eng.testa", epochs=args.ner_epochs,
                          options=TaskOptions(max_length=128), max_train=args.ner_train, max_eval=args.ner_eval),
    }
    scores: dict[str, Any] = {}
    for task, job in jobs.items():
        plm_task, metric = TASKS[task]
        run = out / "finetune" / f"{name}-{task}"
        if run.exists():
            shutil.rmtree(run)
        log(f"fine-tuning {task} from {name} (seeds {args.seeds})")
        extra = {k: job[k] for k in ("max_train", "max_eval") if k in job}
        res = finetune(FinetuneConfig(task=plm_task, model=model_dir, train=str(job["train"]), eval=[str(job["eval"])],
                                      out=str(run), epochs=job["epochs"], lr=args.finetune_lr, batch_size=32,
                                      seeds=list(args.seeds), options=job["options"], progress=False,
                                      tensorboard=False, save_every=0, **extra))
        runs = res["runs"] if len(args.seeds) > 1 else {str(args.seeds[0]): res}
        scores[task] = [float(r["metrics"][metric]) for r in runs.values()]
        shutil.rmtree(run)  # the scores are what this benchmark keeps; the models are large
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(scores, indent=1))
    return scores


# ---------------------------------------------------------------- report

def summarize(results: dict[str, Any]) -> str:
    scratch = results["scratch"]
    lines = ["| recipe | budget (min, quiet) | steps | GFLOPs | wall s | " + " | ".join(
        f"{t} (gain)" for t in TASKS) + " |", "|---|---:|---:|---:|---:|" + "---:|" * len(TASKS)]
    lines.append("| scratch | 0 | 0 | 0 | 0 | " + " | ".join(
        f"{statistics.mean(scratch[t]):.4f} ±{_spread(scratch[t]):.4f}" for t in TASKS) + " |")
    for key, r in sorted(results["runs"].items(), key=lambda kv: (kv[1]["budget"], kv[1]["recipe"])):
        cells = []
        for t in TASKS:
            m = statistics.mean(r["scores"][t])
            cells.append(f"{m:.4f} ±{_spread(r['scores'][t]):.4f} ({m - statistics.mean(scratch[t]):+.4f})")
        flops = r.get("flops")
        lines.append(f"| {r['recipe']} | {r['budget']:g} | {r['steps']} | "
                     f"{flops / 1e9:,.0f} | {r['wall_s']:.0f} | " if flops else
                     f"| {r['recipe']} | {r['budget']:g} | {r['steps']} | (wall clock) | {r['wall_s']:.0f} | ")
        lines[-1] += " | ".join(cells) + " |"
    return "\n".join(lines)


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


def compute_to_match(results: dict[str, Any], base: str = "bert", challenger: str = "electra",
                     at: float = 9.0) -> dict[str, Any]:
    """Per task: the smallest budget fraction of ``base``@``at`` at which ``challenger``'s mean reaches ``base``'s.

    Linear interpolation between the challenger's measured budgets; None where it never reaches it.
    """
    runs = results["runs"]
    target = runs.get(f"{base}-{at:g}")
    if target is None:
        return {}
    out: dict[str, Any] = {}
    mine = sorted((r for r in runs.values() if r["recipe"] == challenger), key=lambda r: r["budget"])
    for t in TASKS:
        goal = statistics.mean(target["scores"][t])
        points = [(0.0, statistics.mean(results["scratch"][t]))] + [
            (r["budget"], statistics.mean(r["scores"][t])) for r in mine]
        found = None
        for (b0, v0), (b1, v1) in zip(points, points[1:]):
            if v1 >= goal:
                found = b0 + (b1 - b0) * ((goal - v0) / (v1 - v0) if v1 != v0 else 1.0) if v0 < goal else b0
                break
        out[t] = None if found is None else found / at  # exact: rounding is for display only
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(4.2 * len(TASKS), 3.8), dpi=120)
    for ax, task in zip(axes, TASKS):
        base = statistics.mean(results["scratch"][task])
        for recipe in RECIPES:
            pts = sorted((r["budget"], statistics.mean(r["scores"][task]), _spread(r["scores"][task]))
                         for r in results["runs"].values() if r["recipe"] == recipe)
            if pts:
                xs = [0.0] + [p[0] for p in pts]
                ys = [base] + [p[1] for p in pts]
                errs = [_spread(results["scratch"][task])] + [p[2] for p in pts]
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=RECIPES[recipe]["label"])
        ax.set_title(f"{task} ({TASKS[task][1]})")
        ax.set_xlabel("budget (bert-tiny minutes, quiet 2-core CPU)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out score (mean of seeds, bars: spread)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/qpc")
    ap.add_argument("--budgets", default="3,9", help="minutes of the bert recipe's work on the quiet machine")
    ap.add_argument("--recipes", default="bert,electra")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--pos-train", type=int, default=1000)
    ap.add_argument("--genre-train", type=int, default=1000)
    ap.add_argument("--eval-examples", type=int, default=1000)
    ap.add_argument("--ner-train", type=int, default=1000)
    ap.add_argument("--ner-eval", type=int, default=1000)
    ap.add_argument("--pos-epochs", type=float, default=10.0)
    ap.add_argument("--genre-epochs", type=float, default=3.0)
    ap.add_argument("--ner-epochs", type=float, default=10.0)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    args = ap.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    recipes = [r.strip() for r in args.recipes.split(",")]
    for r in recipes:
        if r not in RECIPES:
            sys.exit(f"--recipes: unknown recipe {r!r}; choose from {', '.join(RECIPES)}")
    out = Path(args.out)
    # The benchmark removes unfinished parts of its own runs when it continues: only in a folder it made.
    marker = out / "quality_per_compute.json"
    if out.exists() and any(out.iterdir()) and not marker.exists():
        sys.exit(f"--out {out} holds files this benchmark did not write ({marker.name} is missing); "
                 "choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(json.dumps({"written_by": "benchmarks/quality_per_compute.py"}) + "\n")
    from machine_info import machine

    t_all = time.time()
    results: dict[str, Any] = {"machine": machine(), "args": {k: v for k, v in vars(args).items()},
                               "budgets": budgets, "recipes": recipes, "runs": {}}
    results["setup"] = setup(out, args)
    results["scratch"] = finetune_all(out, "scratch", scratch_model(out), args)
    base_flops = flops_per_step(out, "bert")
    results["flops_per_step"] = {"bert": base_flops}
    for budget in budgets:
        budget_flops = budget * STEPS_PER_MINUTE * base_flops
        for recipe in recipes:
            if recipe == "transformers":
                bert = results["runs"].get(f"bert-{budget:g}")
                if bert is None:
                    sys.exit("--recipes: the transformers recipe runs for the wall time of the bert recipe; "
                             "list bert before transformers")
                info = pretrain_transformers(out, budget, bert["wall_s"])
            else:
                per_step = flops_per_step(out, recipe)
                results["flops_per_step"][recipe] = per_step
                steps = max(1, round(budget_flops / per_step))
                info = pretrain_recipe(out, recipe, budget, steps)
                info["flops"] = steps * per_step
            info["scores"] = finetune_all(out, f"{recipe}-{budget:g}", info["model"], args)
            results["runs"][f"{recipe}-{budget:g}"] = info
            (out / "results.json").write_text(json.dumps(results, indent=1))
    results["compute_to_match"] = compute_to_match(results, at=max(budgets))
    results["total_s"] = round(time.time() - t_all, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = summarize(results)
    (out / "table.md").write_text(table + "\n")
    plot(results, out / "quality-per-compute.png")
    print(table)
    shown = {t: None if v is None else round(v, 3) for t, v in results["compute_to_match"].items()}
    print(f"compute to match bert@{max(budgets):g}: {shown}")


if __name__ == "__main__":
    main()
