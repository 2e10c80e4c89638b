"""ELMo on a CPU in minutes: does it learn (perplexity vs a unigram LM), and does it help Brown POS tagging?

Issue 6's two quality targets, end to end through the ``plmkit`` command line:

1. **ELMo learns.** Prepare Brown + Austen + State of the Union at word level (10k-word vocabulary),
   pretrain ``elmo-small`` for a few minutes (500 steps of 16 × 64 words: 12.7 min on one core of a
   busy 2-core machine; a step budget rather than a time budget, so that a busy machine changes the
   wall time, not the model), and compare the held-out forward and backward perplexity with a unigram LM's
   on exactly the same predicted words. The unigram LM counts the training documents of the same
   prepared corpus (same vocabulary, same document split as ``plmkit pretrain``'s held-out set) with
   add-one smoothing: p(w) = (c(w) + 1) / (N + V). A unigram LM ignores context, so it scores both
   directions the same way; the two figures differ only because the forward LM predicts words
   2..T of each window and the backward LM words 1..T-1.
2. **ELMo helps a task.** Brown POS tagging with a fixed split of the Brown files: files whose number
   ends in 0 (``c[a-r][0-9]0``: 41 files, ~95k words, every genre) are the evaluation set; the tagger
   trains on the files ending in 2 (54 files, ~126k words) so that six runs fit the budget. The same
   BiLSTM tagger (static word embeddings → BiLSTM → softmax) is trained without and with the ELMo of
   step 1 concatenated (``plmkit finetune brown-pos --arch bilstm [--elmo DIR]``), same epochs, same
   data, 3 seeds each; the table gives mean ± sample std of token accuracy. The frozen biLM's states
   are computed once per sentence (``plmkit finetune`` caches them), so the ELMo tagger costs little
   more per epoch than the plain one.

The ELMo corpus leaves out the POS evaluation files (Brown files ending in 0), so the tagger is never
scored on text the biLM was trained on.

    python benchmarks/elmo_brown.py                  # everything (~27 min on 2 busy cores), into runs/elmo-brown
    python benchmarks/elmo_brown.py --smoke          # a 2-minute check of every stage, into runs/elmo-brown-smoke
    python benchmarks/elmo_brown.py --work DIR       # resume: every stage whose output exists is skipped

Long stages run as ``nice -n 10`` subprocesses with ``OMP_NUM_THREADS=--threads`` (default 1: on a
shared 2-core CPU one PyTorch thread ran ELMo 4× faster than two). Never use ``--bf16`` on CPUs
without AVX512-BF16: it is emulated there and ~80× slower. Results go to ``WORK/results.json`` and
``WORK/results.md`` (the table, the exact commands and the machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from machine_info import machine  # benchmarks/ is the script's folder, first on sys.path

warnings.filterwarnings("ignore", message="LSTM with projections is not supported")

EVAL_GLOB = "c[a-r][0-9]0"  # POS evaluation files: the number ends in 0
TAGGER_TRAIN_GLOB = "c[a-r][0-9]2"  # POS training files (a subset of the non-evaluation files)
LM_BROWN_GLOB = "c[a-r][0-9][1-9]"  # ELMo's Brown part: every file but the POS evaluation files
LM_LR = 4e-3  # pretraining peak rate (better than 2e-3 after 80 steps: held-out perplexity 546 vs 568)
EVAL_FRACTION, SPLIT_SEED = 0.02, 0  # plmkit pretrain's held-out documents (its defaults)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], args, what: str) -> float:
    """Run a plmkit command under nice with the chosen thread count; returns its wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false"}
    full = (["nice", "-n", str(args.nice)] if args.nice else []) + cmd
    text = " ".join(shlex.quote(c) for c in cmd).replace(sys.executable + " -m plmkit.cli", "plmkit")
    log(f"{what}: {text}")
    t0 = time.perf_counter()
    subprocess.run(full, check=True, env=env)
    seconds = time.perf_counter() - t0
    # Kept in the work folder, so that a resumed run still reports every command and stage time.
    with open(args.work / "commands.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"stage": what, "command": text, "seconds": round(seconds, 1)}) + "\n")
    return seconds


def plmkit_cmd() -> list[str]:
    return [sys.executable, "-m", "plmkit.cli"]


# --------------------------------------------------------------------------- stages
def stage_prepare(args) -> Path:
    out = args.work / "corpus"
    if (out / "meta.json").exists():
        log(f"prepare: {out} exists, skipped")
        return out
    data = args.data / "corpora"
    cmd = plmkit_cmd() + ["prepare", "--word-level", "--vocab-size", str(args.vocab_size), "--doc-per-file",
                          "--split-sentences", "--workers", "1", "--out", str(out),
                          str(data / "brown" / LM_BROWN_GLOB), str(data / "austen"), str(data / "sotu" / "*.json")]
    run(cmd, args, "prepare")
    return out


def stage_pretrain(args, corpus: Path) -> Path:
    run_dir, model_dir = args.work / "elmo-run", args.work / "elmo-model"
    if (model_dir / "config.json").exists():
        log(f"pretrain: {model_dir} exists, skipped")
        return model_dir
    done = run_dir / "pretrain-done"
    if not done.exists():
        budget = ["--max-time", args.pretrain_time] if args.pretrain_time else ["--max-steps", str(args.pretrain_steps)]
        cmd = plmkit_cmd() + ["pretrain", "--preset", "elmo-small", "--data", str(corpus), "--out", str(run_dir),
                              *budget, "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                              "--lr", str(args.lr), "--warmup", "0.05", "--log-every", "10", "--eval-every", "0",
                              "--save-every", "100", "--no-progress", "--device", "cpu",
                              *sum((["--set", s] for s in args.set), [])]
        if (run_dir / "checkpoints").is_dir():
            cmd.append("--resume")  # an interrupted run continues (with --max-time, its clock too)
        run(cmd, args, "pretrain")
        done.write_text("ok\n")
    run(plmkit_cmd() + ["export", str(run_dir), "--out", str(model_dir)], args, "export")
    return model_dir


def stage_perplexity(args, corpus_dir: Path, model_dir: Path) -> dict:
    """Held-out forward/backward perplexity of ELMo and of the add-one unigram LM on the same words."""
    out = args.work / "perplexity.json"
    if out.exists():
        log(f"perplexity: {out} exists, skipped")
        return json.loads(out.read_text())
    import torch

    import plmkit
    from plmkit.data import PreparedCorpus
    from plmkit.data.objectives import PretrainingStream, data_config_from_preset
    from plmkit.training.pretrain import evaluate_pretraining

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    corpus = PreparedCorpus(corpus_dir)
    train_docs, eval_docs = corpus.split(eval_fraction=EVAL_FRACTION, seed=SPLIT_SEED)
    V = corpus.vocab_size
    eos = corpus.load_tokenizer().eos_token_id
    counts = np.zeros(V, dtype=np.int64)
    for d in train_docs.tolist():
        counts += np.bincount(corpus.document_tokens(d), minlength=V)
    counts[eos] += len(train_docs)  # the training stream puts </s> after every document
    log_p = np.log(counts + 1.0) - math.log(counts.sum() + V)  # add-one (Laplace) smoothing

    dcfg = data_config_from_preset("elmo-small", {"max_length": args.max_length})
    stream = PretrainingStream(corpus, dcfg, batch_size=32, seed=SPLIT_SEED + 1, documents=eval_docs)
    batches, tokens = [], 0
    n_batches = max(1, stream.steps_per_epoch())
    it = iter(stream)
    for _ in range(n_batches):
        b = next(it)
        batches.append(b)
        tokens += int(b["input_ids"].numel())
        if tokens >= args.ppl_tokens:
            break
    uni = {"fwd_nll": 0.0, "bwd_nll": 0.0, "n": 0}
    for b in batches:
        lab = b["labels"].numpy()
        for name, tgt in (("fwd_nll", lab[:, 1:]), ("bwd_nll", lab[:, :-1])):
            keep = tgt[tgt != -100]
            uni[name] -= float(log_p[keep].sum())
        uni["n"] += int((lab[:, 1:] != -100).sum())
    model = plmkit.from_pretrained(model_dir)
    elmo = evaluate_pretraining(model, batches, torch.device("cpu"))
    log_lines = (args.work / "elmo-run" / "metrics.jsonl").read_text().splitlines()
    last = [json.loads(x) for x in log_lines if x.strip()][-1]  # the final evaluation record
    result = {
        "pretraining": {"steps": last["step"], "minutes": round(last["elapsed_s"] / 60, 1),
                        "tokens": last["step"] * args.batch_size * args.max_length, "lr": args.lr,
                        "settings": args.set},
        "heldout_documents": int(len(eval_docs)), "train_documents": int(len(train_docs)),
        "predicted_words_per_direction": uni["n"], "windows": sum(int(b["input_ids"].shape[0]) for b in batches),
        "window_length": args.max_length, "vocab_size": int(V), "train_tokens_counted": int(counts.sum()),
        "unigram": {"forward_perplexity": math.exp(uni["fwd_nll"] / uni["n"]),
                    "backward_perplexity": math.exp(uni["bwd_nll"] / uni["n"])},
        "elmo": {"forward_perplexity": elmo["forward_perplexity"], "backward_perplexity": elmo["backward_perplexity"]},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def stage_pos(args, name: str, elmo_dir: Path | None) -> dict:
    out = args.work / name
    if (out / "metrics.json").exists():
        log(f"{name}: {out} exists, skipped")
        return json.loads((out / "metrics.json").read_text())
    brown = args.data / "corpora" / "brown"
    cmd = plmkit_cmd() + ["finetune", "brown-pos", "--arch", "bilstm", "--train", str(brown / TAGGER_TRAIN_GLOB),
                          "--eval", str(brown / EVAL_GLOB), "--out", str(out), "--seeds", args.seeds,
                          "--epochs", str(args.tagger_epochs), "--batch-size", "32", "--no-tensorboard",
                          "--device", "cpu"]
    if args.max_train:
        cmd += ["--max-train", str(args.max_train)]
    if args.max_eval:
        cmd += ["--max-eval", str(args.max_eval)]
    if elmo_dir is not None:
        cmd += ["--elmo", str(elmo_dir)]
    if out.exists():  # interrupted: finished seeds are kept, unfinished ones (this script's output) start over
        for seed_dir in out.glob("seed-*"):
            if not (seed_dir / "metrics.json").exists():
                shutil.rmtree(seed_dir)
        cmd.append("--resume")
    run(cmd, args, name)
    return json.loads((out / "metrics.json").read_text())


# --------------------------------------------------------------------------- report
def pos_row(label: str, res: dict) -> str:
    runs = res.get("runs", {})
    per_seed = ", ".join(f"{100 * r['metrics']['accuracy']:.2f}" for r in runs.values())
    spe = res.get("seconds_per_epoch")
    return (f"| {label} | {100 * res['mean']['accuracy']:.2f} ± {100 * res['std']['accuracy']:.2f} | {per_seed} | "
            f"{spe:.0f} |" if spe else f"| {label} | {100 * res['mean']['accuracy']:.2f} ± "
            f"{100 * res['std']['accuracy']:.2f} | {per_seed} | – |")


def report(args, ppl: dict, pos_plain: dict, pos_elmo: dict) -> str:
    u, e, pre = ppl["unigram"], ppl["elmo"], ppl["pretraining"]
    seed_dir = next((args.work / "pos-bilstm").glob("seed-*"))
    tagger_lr = json.loads((seed_dir / "config.json").read_text())["plmkit"]["finetune"]["lr"]
    gain = 100 * (pos_elmo["mean"]["accuracy"] - pos_plain["mean"]["accuracy"])
    m = args.machine
    lines = [
        f"### ELMo on Brown + Austen + State of the Union ({pre['minutes']} min of elmo-small pretraining on a CPU)",
        "",
        f"`elmo-small` (2 × 512 LSTM cells, 128 projection, 256 character filters), {pre['steps']} steps of "
        f"{args.batch_size} windows × {args.max_length} words ({pre['tokens']:,} words, well under one epoch), "
        f"lr {pre['lr']}, {', '.join(pre['settings']) or 'preset settings'}, {pre['minutes']} min.",
        "",
        f"Held-out perplexity: {ppl['heldout_documents']} held-out documents of the prepared corpus (plmkit pretrain's "
        f"split), {ppl['windows']} windows of {ppl['window_length']} words, {ppl['predicted_words_per_direction']:,} "
        f"predicted words per direction; vocabulary {ppl['vocab_size']:,} words (`<unk>` for the rest). Unigram: "
        f"add-one smoothed counts of the {ppl['train_tokens_counted']:,} training tokens.",
        "",
        "| model | forward perplexity | backward perplexity |",
        "|---|---|---|",
        f"| unigram LM (add-one) | {u['forward_perplexity']:.1f} | {u['backward_perplexity']:.1f} |",
        f"| ELMo `elmo-small`, {pre['minutes']} min | {e['forward_perplexity']:.1f} | {e['backward_perplexity']:.1f} |",
        f"| ratio unigram / ELMo | {u['forward_perplexity'] / e['forward_perplexity']:.2f}× | "
        f"{u['backward_perplexity'] / e['backward_perplexity']:.2f}× |",
        "",
        f"Brown POS tagging (full Brown tagset), evaluated on the files whose number ends in 0; trained on the files "
        f"ending in 2; {args.tagger_epochs:g} epochs, batch 32, lr {tagger_lr} (the BiLSTM default), sizes 100/100, "
        f"dropout 0.5, seeds {args.seeds}; token accuracy (%):",
        "",
        "| tagger | accuracy mean ± std | per seed | s / epoch |",
        "|---|---|---|---|",
        pos_row("BiLSTM (word embeddings only)", pos_plain),
        pos_row("BiLSTM + ELMo (scalar mix, frozen biLM)", pos_elmo),
        "",
        f"ELMo adds {gain:+.2f} accuracy points on the mean of {len(args.seeds.split(','))} seeds.",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs shared with other jobs (load average at start "
        f"{m['load_average_at_start'][0]:.1f}), {'/'.join(m['isa']) or 'no AVX2'}; PyTorch {m['torch']}, "
        f"{args.threads} thread(s) (`OMP_NUM_THREADS`), `nice -n {args.nice}`, fp32. Stage wall times: "
        + ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in args.timings.items()) + ".",
        "",
        "Commands:",
        "",
        "```bash",
        f"python benchmarks/elmo_brown.py {' '.join(args.argv)}".rstrip(),
        "# which runs:",
        *args.commands,
        "```",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=os.environ.get("PLMKIT_DATA"), help="the shared data folder (PLMKIT_DATA)")
    p.add_argument("--work", type=Path, default=None, help="output folder (default runs/elmo-brown[-smoke])")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (OMP_NUM_THREADS; default 1)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the subprocesses (default 10; 0 = none)")
    p.add_argument("--vocab-size", type=int, default=10000, help="ELMo's word vocabulary (default 10000)")
    p.add_argument("--pretrain-steps", type=int, default=500,
                   help="elmo-small pretraining steps (default 500: 12.7 min on one core of a busy 2-core machine)")
    p.add_argument("--pretrain-time", default=None, help="a time budget (e.g. 8m) instead of --pretrain-steps")
    p.add_argument("--batch-size", type=int, default=16, help="pretraining windows per step (default 16)")
    p.add_argument("--max-length", type=int, default=64, help="pretraining window in words (default 64)")
    p.add_argument("--lr", type=float, default=LM_LR, help=f"pretraining peak learning rate (default {LM_LR})")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="plmkit pretrain --set overrides (default: model.dropout=0)")
    p.add_argument("--ppl-tokens", type=int, default=20000, help="held-out words scored for perplexity (default 20k)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--tagger-epochs", type=float, default=5)
    p.add_argument("--max-train", type=int, default=None, help="cap on tagger training sentences")
    p.add_argument("--max-eval", type=int, default=None, help="cap on tagger evaluation sentences")
    p.add_argument("--smoke", action="store_true", help="tiny settings: checks every stage in ~2 minutes")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.data is None:
        p.error("give --data or set PLMKIT_DATA")
    if args.set is None:
        # Less than one epoch of pretraining has nothing to regularise: dropout would only slow learning.
        args.set = ["model.dropout=0"]
    if args.smoke:
        args.pretrain_steps, args.pretrain_time, args.ppl_tokens, args.tagger_epochs = 20, None, 2000, 1
        args.max_train, args.max_eval, args.seeds = args.max_train or 300, args.max_eval or 200, "1,2"
    args.work = args.work or Path("runs/elmo-brown" + ("-smoke" if args.smoke else ""))
    args.work.mkdir(parents=True, exist_ok=True)
    args.machine = machine()
    corpus = stage_prepare(args)
    model = stage_pretrain(args, corpus)
    ppl = stage_perplexity(args, corpus, model)
    log(f"perplexity: {json.dumps({k: ppl[k] for k in ('unigram', 'elmo')})}")
    plain = stage_pos(args, "pos-bilstm", None)
    with_elmo = stage_pos(args, "pos-bilstm-elmo", model)
    steps = [json.loads(line) for line in (args.work / "commands.jsonl").read_text().splitlines() if line.strip()]
    args.commands = [st["command"] for st in steps]
    args.timings = {f"{st['stage']}_s": st["seconds"] for st in steps}
    args.timings["perplexity_s"] = ppl["seconds"]
    text = report(args, ppl, plain, with_elmo)
    (args.work / "results.md").write_text(text)
    (args.work / "results.json").write_text(json.dumps(
        {"perplexity": ppl, "pos": {"bilstm": {k: plain[k] for k in ("mean", "std", "runs")},
                                    "bilstm_elmo": {k: with_elmo[k] for k in ("mean", "std", "runs")}},
         "machine": args.machine, "timings_s": args.timings, "commands": args.commands}, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
