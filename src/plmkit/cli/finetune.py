"""``plmkit finetune``, ``plmkit evaluate`` and ``plmkit predict``: thin commands over :mod:`plmkit.finetune`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import _types as T
from . import common_parent
from ._help import add_warmup_options, warmup_value
from ..errors import UsageError

_TASK_HELP = ("task: cola sst2 mrpc stsb qqp mnli qnli rte wnli | squad korquad | swag | conll-ner brown-pos "
              "klue-ner | klue-nli klue-sts kornli korsts nsmc | classify regress")


def _task_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("task options (saved with a fine-tuned model; evaluate/predict reuse them)")
    saved = "the fine-tuned model's, else "  # evaluate / predict reuse what finetune saved
    g.add_argument("--max-length", "--max-seq-length", dest="max_length", type=T.positive_int, default=None,
                   help=f"tokens per sequence (default: {saved}128; 384 for SQuAD)")
    g.add_argument("--doc-stride", type=T.positive_int, default=None,
                   help=f"SQuAD: tokens of overlap between context windows (default: {saved}128)")
    g.add_argument("--max-query-length", type=T.positive_int, default=None,
                   help=f"SQuAD: questions are cut to this many tokens (default: {saved}64)")
    g.add_argument("--max-answer-length", type=T.positive_int, default=None,
                   help=f"SQuAD: longest answer in tokens (default: {saved}30)")
    g.add_argument("--n-best", "--n-best-size", dest="n_best", type=T.positive_int, default=None,
                   help=f"SQuAD: start/end candidates per window (default: {saved}20)")
    g.add_argument("--null-threshold", "--null-score-diff-threshold", dest="null_threshold", type=T.finite_float,
                   default=None,
                   help="SQuAD 2.0: predict no answer when the null score minus the best span score (the value in "
                        "*.null_odds.json) exceeds this (default: the fine-tuned model's, which finetune tunes on the "
                        "eval set and also reports as best_f1_thresh; 0 while fine-tuning)")
    g.add_argument("--text-column", dest="text_column", action="append", default=None, metavar="NAME",
                   help="classify/regress: text column, give twice for a sentence pair (default: the fine-tuned "
                        "model's)")
    g.add_argument("--text-columns", default=None, metavar="A[,B]",
                   help="classify/regress: text column(s), comma-separated (default: the fine-tuned model's)")
    g.add_argument("--label-column", default=None, metavar="NAME",
                   help="classify/regress: label column (default: the fine-tuned model's)")
    g.add_argument("--id-column", default=None, metavar="NAME",
                   help="classify/regress: id column for predictions (default: the fine-tuned model's, else "
                        "the line's position)")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-batch-size", "--batch-size-eval", dest="eval_batch_size", type=T.positive_int, default=64,
                   help="evaluation batch size (default 64)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with AVX512-BF16, GPUs)")
    p.add_argument("--device", default="auto", help="auto (a GPU if present), cpu, cuda, cuda:1 ...")


def _bilstm_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "BiLSTM task model (instead of --model): static word embeddings [+ ELMo] -> BiLSTM -> softmax",
        "For conll-ner, brown-pos and single-sentence classification (classify, sst2, cola, ...). The word vocabulary "
        "comes from the training file; the folder written to --out works with evaluate and predict.")
    g.add_argument("--arch", choices=["transformer", "bilstm"], default=None,
                   help="transformer: fine-tune --model (the default); bilstm: train a BiLSTM tagger / classifier from "
                        "scratch (implied by --elmo)")
    g.add_argument("--elmo", metavar="DIR", default=None,
                   help="ELMo folder (e.g. 'plmkit export' of a 'plmkit pretrain --preset elmo-small' run): its frozen "
                        "layers, mixed by weights the task learns, are concatenated to the word embeddings (default: "
                        "none, no ELMo)")
    g.add_argument("--embedding-dim", type=T.positive_int, default=None, metavar="N", help="word embedding size (default 100)")
    g.add_argument("--hidden-size", type=T.positive_int, default=None, metavar="N", help="LSTM cells per direction (default 100)")
    g.add_argument("--num-layers", type=T.positive_int, default=None, metavar="N", help="BiLSTM layers (default 1)")
    g.add_argument("--dropout", type=T.finite_float, default=None, metavar="P", help="dropout on the BiLSTM's input and output (default 0.5)")
    g.add_argument("--pooling", choices=["max", "mean"], default=None,
                   help="classifier: pool the BiLSTM states over the words by max or mean (default max)")
    g.add_argument("--elmo-dropout", type=T.finite_float, default=None, metavar="P", help="dropout on the ELMo vectors (default 0.5)")
    g.add_argument("--elmo-layer-norm", action="store_true", default=None,
                   help="normalise each biLM layer before the scalar mix")
    g.add_argument("--min-word-count", type=T.positive_int, default=None, metavar="N",
                   help="training words seen fewer times become <unk>, so <unk> is trained too (default 2)")
    g.add_argument("--elmo-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="compute the frozen biLM's layer states once per sentence instead of in every step "
                        "(default: when they fit in 2 GiB)")


_BILSTM_FLAGS = ("embedding_dim", "hidden_size", "num_layers", "dropout", "pooling", "elmo_dropout", "elmo_layer_norm")


def register(sub) -> None:
    p = sub.add_parser("finetune", parents=[common_parent()], help="fine-tune a model on a task and score it",
                       description="Fine-tune a plmkit or Hugging Face model folder (--model) on a task; writes the "
                                   "fine-tuned model folder (loads in transformers) and metrics.json to --out. "
                                   "Or, for tagging (conll-ner, brown-pos) and single-sentence classification, train "
                                   "a BiLSTM on the task's own word embeddings instead (--arch bilstm), with frozen "
                                   "ELMo vectors concatenated (--elmo DIR), as in Peters et al. (2018).")
    p.add_argument("task", help=_TASK_HELP)
    p.add_argument("--model", default=None,
                   help="pretrained model folder to fine-tune, plmkit or Hugging Face (default: none: required "
                        "except with --arch bilstm)")
    p.add_argument("--train", required=True, help="training file in the task's official format")
    p.add_argument("--eval", nargs="+", action="extend", default=None, metavar="FILE",
                   help="evaluation file(s) (MNLI: matched and mismatched); default: carve --eval-split from --train")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--epochs", "--num-train-epochs", dest="epochs", type=T.nonneg_float, default=3.0,
                   help="training epochs (default 3)")
    p.add_argument("--lr", "--learning-rate", dest="lr", type=T.positive_float, default=None,
                   help="peak learning rate (default 2e-5; 1e-2 for --arch bilstm)")
    p.add_argument("--batch-size", type=T.positive_int, default=32,
                   help="the batch the optimizer sees, in examples (default 32); --grad-accum K splits it into K "
                        "micro-batches")
    p.add_argument("--grad-accum", "--gradient-accumulation-steps", dest="grad_accum", type=T.positive_int, default=1,
                   metavar="K",
                   help="split each --batch-size batch into K micro-batches of batch/K examples and accumulate their "
                        "gradients into one optimizer step: the same batch in less memory; K must divide "
                        "--batch-size (default 1)")
    add_warmup_options(p, ratio_default="0.1", steps_default="none")
    p.add_argument("--weight-decay", type=T.nonneg_float, default=0.01, help="AdamW weight decay (default 0.01)")
    p.add_argument("--max-steps", type=T.positive_int, default=None,
                   help="stop after this many optimizer steps, overriding --epochs (default: none)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=T.seed, default=None, help="random seed (default 42)")
    seeds.add_argument("--seeds", default=None, metavar="1,2,3",
                       help="run every seed; --out gets seed-N/ folders and a mean/std summary (default: none, "
                            "one run with --seed)")
    p.add_argument("--eval-split", type=T.fraction, default=0.1,
                   help="without --eval: fraction of --train held out for validation (default 0.1)")
    p.add_argument("--split-seed", type=T.seed, default=0, help="seed of the carved validation split (default 0)")
    p.add_argument("--max-train", type=T.positive_int, default=None,
                   help="use only the first N training examples, taken after carving the validation split "
                        "(default: all)")
    p.add_argument("--max-eval", type=T.positive_int, default=None,
                   help="score only the first N examples of each evaluation set (default: all)")
    p.add_argument("--eval-every", type=T.nonneg_int, default=0, help="also evaluate every N steps (default: at the end only)")
    p.add_argument("--no-bucket", action="store_true", help="plain shuffled batches instead of length-bucketed ones")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out from its checkpoint, exactly; refused when the model, "
                        "task, training file, task options or seed differ from the run's")
    p.add_argument("--save-minutes", type=T.nonneg_float, default=5.0, metavar="M",
                   help="save a resumable checkpoint every M minutes of training (default 5; 0: not by the clock), "
                        "so a kill loses at most M minutes; also on Ctrl-C/SIGTERM")
    p.add_argument("--save-every", type=T.nonneg_int, default=None, metavar="N",
                   help="also save every N steps; 0 turns periodic checkpoints off altogether, by the clock too "
                        "(default: none, by the clock only)")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the trainer checkpoint (with optimizer state)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard events")
    _run_options(p)
    _task_options(p)
    _bilstm_options(p)
    p.set_defaults(func=run_finetune)

    p = sub.add_parser("evaluate", parents=[common_parent()], help="score a fine-tuned model (or a SQuAD prediction file)",
                       description="Score a fine-tuned model folder on labelled file(s) and print the metrics as "
                                   "JSON. For squad/korquad, --predictions scores a prediction file without a model, "
                                   "like the official scripts.")
    p.add_argument("task", help=_TASK_HELP)
    p.add_argument("--model", help="fine-tuned model folder (default: none; give it or --predictions)")
    p.add_argument("--eval", nargs="+", action="extend", required=True, metavar="FILE", help="labelled file(s)")
    p.add_argument("--predictions",
                   help="squad/korquad: a prediction file {question id: answer} to score, no model (default: none)")
    p.add_argument("--na-probs",
                   help="squad 2.0 with --predictions: no-answer scores {id: score}, e.g. the *.null_odds.json that "
                        "predict writes (the official script's --na-prob-file) (default: none)")
    p.add_argument("--na-prob-thresh", type=T.finite_float, default=1.0,
                   help="squad 2.0 with --predictions: no answer where the --na-probs score exceeds this (default: "
                        "1.0, the official script's; give the model's null_threshold to reproduce its metrics)")
    p.add_argument("--out", help="also write the metrics JSON, with the official block, to this file; it must not "
                                 "exist (default: none)")
    _run_options(p)
    _task_options(p)
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", parents=[common_parent()], help="predict with a fine-tuned model",
                       description="Predict for a file with a fine-tuned model. Output: squad → {id: answer} JSON; "
                                   "tagging → token<TAB>tag lines (or .jsonl); others → JSON lines, or "
                                   "'index<TAB>prediction' for a .tsv --out (GLUE submission format).")
    p.add_argument("task", help=_TASK_HELP)
    p.add_argument("--model", required=True, help="fine-tuned model folder")
    p.add_argument("--input", required=True, help="file in the task's format (labels not needed)")
    p.add_argument("--out", required=True, help="prediction file to write (must not exist)")
    _run_options(p)
    _task_options(p)
    p.set_defaults(func=run_predict)


_OPTION_FIELDS = ("max_length", "doc_stride", "max_query_length", "max_answer_length", "n_best", "null_threshold",
                  "label_column", "id_column")


def task_options(args):
    """TaskOptions from the flags, and the names of the fields the user set explicitly."""
    from ..finetune import TaskOptions

    opts = TaskOptions()
    explicit = []
    for name in _OPTION_FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(opts, name, value)
            explicit.append(name)
    columns: list[str] = []
    for item in (args.text_column or []):
        columns.append(item)
    if args.text_columns:
        columns.extend(c.strip() for c in args.text_columns.split(",") if c.strip())
    if columns:
        opts.text_columns = tuple(columns)
        explicit.append("text_columns")
    for name in ("max_length", "doc_stride", "max_query_length", "max_answer_length", "n_best"):
        v = getattr(opts, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
    return opts, explicit


def run_finetune(args) -> int:
    from ..config import MAX_SEED
    from ..errors import excerpt
    from ..finetune import FinetuneConfig, finetune

    opts, _ = task_options(args)
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--seeds {args.seeds!r}: give comma-separated integers, e.g. --seeds 1,2,3") from None
        if not seeds or any(not 0 <= s <= MAX_SEED for s in seeds):
            raise UsageError(f"--seeds {excerpt(args.seeds)}: give comma-separated seeds from 0 to {MAX_SEED}, e.g. "
                             "--seeds 1,2,3")
    else:
        seeds = [42 if args.seed is None else args.seed]
    for name in ("batch_size", "grad_accum", "eval_batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if not args.resume:  # a resumed run may have been started when --grad-accum accumulated whole batches
        from ..training.pretrain import check_grad_accum

        check_grad_accum(args.batch_size, args.grad_accum)
    warmup = warmup_value(args)
    if args.epochs <= 0 and args.max_steps is None:
        raise UsageError("--epochs must be positive")
    # FinetuneConfig checks every setting, its training settings (a TrainConfig) included, before any data is read.
    cfg = FinetuneConfig(task=args.task, model=args.model, train=args.train, out=args.out, eval=list(args.eval or []),
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
                         grad_accum=args.grad_accum, warmup=0.1 if warmup is None else warmup,
                         weight_decay=args.weight_decay,
                         max_steps=args.max_steps, seeds=seeds, bf16=args.bf16, eval_split=args.eval_split,
                         split_seed=args.split_seed, max_train=args.max_train, max_eval=args.max_eval,
                         eval_every=args.eval_every,
                         bucket=not args.no_bucket, device=args.device, resume=args.resume,
                         save_every=args.save_every, save_minutes=args.save_minutes,
                         keep_checkpoints=args.keep_checkpoints, tensorboard=not args.no_tensorboard, options=opts,
                         **_bilstm_settings(args))
    result = finetune(cfg)
    shown = result.get("mean") if "mean" in result else result.get("metrics")
    summary = {"task": result["task"], "out": args.out, "metrics": shown}
    if "std" in result:
        summary["std"] = result["std"]
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def _bilstm_settings(args) -> dict:
    """FinetuneConfig fields of the BiLSTM flags (the library checks that they fit --arch / --model)."""
    settings: dict = {"arch": args.arch or "auto", "elmo": args.elmo,
                      "bilstm": {k: getattr(args, k) for k in _BILSTM_FLAGS if getattr(args, k) is not None}}
    bilstm = args.arch == "bilstm" or (args.arch is None and args.elmo is not None)
    for name in ("min_word_count", "elmo_cache"):
        value = getattr(args, name)
        if value is not None:
            if not bilstm:
                raise UsageError(f"--{name.replace('_', '-')} applies to the BiLSTM task model (--arch bilstm / --elmo)")
            settings[name] = value
    return settings


def run_evaluate(args) -> int:
    from .._files import check_files, output_files
    from ..finetune import evaluate, evaluate_squad_predictions

    out = Path(args.out) if args.out else None
    inputs = [args.model, args.predictions, args.na_probs, *(args.eval or [])]
    if out is not None:
        check_files([out], "metrics file", inputs=inputs)  # before any work
    if args.predictions:
        if len(args.eval) != 1:
            raise UsageError("--predictions scores one --eval file")
        result = evaluate_squad_predictions(args.task, args.eval[0], args.predictions, args.na_probs,
                                            args.na_prob_thresh)
    else:
        if not args.model:
            raise UsageError("give --model DIR (a fine-tuned model folder), or for squad/korquad --predictions FILE")
        opts, explicit = task_options(args)
        result = evaluate(args.task, args.model, args.eval, opts, explicit, batch_size=args.eval_batch_size,
                          bf16=args.bf16, device=args.device)
    text = json.dumps(result["metrics"], indent=2, ensure_ascii=False)
    print(text)
    if out is not None:
        with output_files([out], "metrics file", inputs=inputs) as (tmp,):
            tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


def run_predict(args) -> int:
    from ..finetune import predict

    opts, explicit = task_options(args)
    result = predict(args.task, args.model, args.input, args.out, opts, explicit, batch_size=args.eval_batch_size,
                     bf16=args.bf16, device=args.device)
    print(json.dumps(result, ensure_ascii=False))
    return 0
