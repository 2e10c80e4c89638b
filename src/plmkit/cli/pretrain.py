"""``plmkit pretrain`` and ``plmkit export``."""

from __future__ import annotations

import json

from . import _types as T
from . import common_parent
from ._help import add_warmup_options, warmup_value
from .._progress import is_main_process


def _micro_batch(text: str):
    from ..training.autobatch import parse_micro_batch  # torch loads only when the flag is used

    return parse_micro_batch(text)


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain", parents=[common_parent()],
        help="pretrain a preset (BERT, RoBERTa, ALBERT, causal LM, ELMo) on a prepared corpus",
        description="Pretrain with the preset's objective. Settings resolve as preset < --set key=value < flags. "
                    "Runs under torchrun as DDP (gloo on CPU, NCCL on GPU).")
    p.add_argument("--preset", required=True, help="e.g. bert-mini, roberta-base, albert-base, gpt-tiny, elmo-small "
                                                   "(see 'plmkit presets')")
    p.add_argument("--data", required=True, help="a folder written by 'plmkit prepare'")
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics.jsonl, TensorBoard events")
    stop = p.add_argument_group("how long")
    stop.add_argument("--max-steps", type=T.positive_int, help="optimizer steps (default: none; a run needs --max-steps, --max-time or --epochs)")
    stop.add_argument("--max-time", type=T.duration,
                      help="time budget, e.g. 90s, 30m, 2h; the LR schedule follows the clock (default: none)")
    stop.add_argument("--epochs", type=T.positive_float, metavar="E",
                      help="passes over the prepared corpus: E × (its sequences of --max-length / the global batch) "
                           "optimizer steps")
    stop.add_argument("--stop-after", type=T.positive_int,
                      help="save and stop after N steps of the planned run, to resume later (default: none)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=T.positive_int,
                     help="the batch the optimizer sees, in rows per process (default: the preset's, 32); "
                          "the effective batch is this × the number of processes. --micro-batch M or --grad-accum K "
                          "only split it into smaller micro-batches to save memory")
    opt.add_argument("--micro-batch", type=_micro_batch, metavar="M|auto",
                     help="split each --batch-size batch into micro-batches of M rows and accumulate their gradients "
                          "(batch/M steps): the same optimisation as the whole batch, in less memory. M must divide "
                          "--batch-size. 'auto' picks the largest divisor that fits the device's memory (probed on "
                          "GPU, estimated on CPU), prints what it chose, and records it in the run for --resume")
    opt.add_argument("--grad-accum", "--gradient-accumulation-steps", dest="grad_accum", type=T.positive_int,
                     metavar="K",
                     help="split each --batch-size batch into K micro-batches of batch/K rows and accumulate their "
                          "gradients into one optimizer step (K must divide --batch-size; the same as --micro-batch "
                          "batch/K, which it cannot be combined with) (default: 1, no split)")
    opt.add_argument("--max-length", "--max-seq-length", dest="max_length", type=T.positive_int,
                     help="tokens per sequence (default: the preset's, 128)")
    opt.add_argument("--lr", "--learning-rate", dest="lr", type=T.finite_float,
                     help="peak learning rate (default: the preset's, 5e-4)")
    add_warmup_options(opt, ratio_default="the preset's, 0.06", steps_default="none")
    opt.add_argument("--optimizer", choices=["adamw", "lamb"],
                     help="adamw (fused AdamW) or lamb (LAMB, for large batches) (default: the preset's, adamw)")
    opt.add_argument("--bf16", action="store_true", default=None, help="bf16 autocast (CPU with AVX512-BF16, or GPU)")
    opt.add_argument("--gradient-checkpointing", action="store_true", default=None,
                     help="recompute activations in the backward pass to save memory")
    opt.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    opt.add_argument("--cuda-graphs", action="store_true", default=None,
                     help="GPU: compile the step as CUDA graphs (torch.compile mode reduce-overhead), which removes "
                          "the host's launch gaps; needs static shapes, so masked-LM rows get a fixed number of "
                          "predicted slots (data.max_predictions, set when unset; no row is capped)")
    opt.add_argument("--fp8", action="store_true", default=None,
                     help="GPU with FP8 tensor cores (compute capability 8.9+: H100/H200, L4/L40, B200): the encoder's "
                          "matmuls in FP8 through torchao's float8 training (pip install 'plmkit[fp8]'); fast with "
                          "--compile or --cuda-graphs; weights and checkpoints stay full precision")
    opt.add_argument("--seed", type=T.seed,
                     help="random seed of the initialisation, masking and data order (default: the preset's, 0)")
    opt.add_argument("--device", help="auto (default: a GPU if present), cpu, cuda")
    log = p.add_argument_group("logging and checkpoints")
    log.add_argument("--log-every", type=T.nonneg_int, metavar="N",
                     help="log the averaged loss every N steps to metrics.jsonl (default: the preset's, 10)")
    log.add_argument("--eval-every", type=T.nonneg_int, metavar="N",
                     help="evaluate on the held-out documents every N steps, 0: only at the end (default: the "
                          "preset's, 0)")
    log.add_argument("--save-minutes", type=T.nonneg_float, metavar="M",
                     help="save a resumable checkpoint every M minutes of training (default 5; 0: not by the clock). "
                          "A checkpoint is also written at the end and on Ctrl-C/SIGTERM, so a kill -9 or a preempted "
                          "job loses at most M minutes; continue with the same command plus --resume")
    log.add_argument("--save-every", type=T.nonneg_int, metavar="N",
                     help="also save every N steps; 0 turns periodic checkpoints off altogether (by the clock too: "
                          "a kill then loses the whole run)")
    log.add_argument("--keep-last", type=T.positive_int, help="checkpoints to keep (default: the preset's, 3)")
    log.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override any setting: model.hidden_dropout_prob=0, data.mask_prob=0.2, train.schedule=cosine "
                        "(bare keys are looked up in the three sections) (default: none: the preset as it is)")
    p.add_argument("--init", metavar="MODEL",
                   help="start from this model folder's weights instead of a fresh model: continued or domain-adaptive "
                        "pretraining, or a second phase on longer rows. The architecture comes from the folder, the "
                        "objective and training defaults from --preset; prepare --data with the folder's tokenizer "
                        "(default: none, a fresh model)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest good checkpoint, exactly; refused when the model, "
                        "data, objective or seed differ from the run's (only stop, logging and saving settings, "
                        "--device and --compile may change)")
    p.add_argument("--no-verify-data", action="store_true",
                   help="skip the SHA-256 check of the prepared corpus at start (file sizes are still checked); "
                        "the check reads every shard once, about 1.4 GB/s")
    p.set_defaults(func=run_pretrain)

    e = sub.add_parser("export", parents=[common_parent()],
                       help="write a run's final (or chosen) checkpoint as a standalone model folder")
    e.add_argument("run", help="a run folder of 'plmkit pretrain' / 'plmkit finetune'")
    e.add_argument("--step", type=T.nonneg_int, help="checkpoint step (default: the latest good one)")
    e.add_argument("--out", required=True, help="the model folder to write (loads in plmkit and transformers)")
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    e.set_defaults(func=run_export)


def run_pretrain(args) -> int:
    from ..config import parse_overrides
    from ..training.pretrain import pretrain

    flags = {
        "max_steps": args.max_steps, "max_time": args.max_time, "epochs": args.epochs, "stop_after": args.stop_after,
        "batch_size": args.batch_size, "micro_batch": args.micro_batch, "grad_accum": args.grad_accum,
        "max_length": args.max_length, "lr": args.lr,
        "warmup": warmup_value(args), "optimizer": args.optimizer, "bf16": args.bf16,
        "gradient_checkpointing": args.gradient_checkpointing, "compile": args.compile,
        "cuda_graphs": args.cuda_graphs, "fp8": args.fp8, "seed": args.seed,
        "device": args.device, "log_every": args.log_every, "eval_every": args.eval_every,
        "save_every": args.save_every, "save_minutes": args.save_minutes, "keep_last": args.keep_last,
        "progress": False if args.no_progress else None,
    }
    summary = pretrain(args.preset, args.data, args.out, overrides=parse_overrides(args.set), flags=flags,
                       resume=args.resume, verify_data=not args.no_verify_data, init=args.init)
    if is_main_process():  # under torchrun, one summary: rank 0's (it holds the checkpoint and the global counts)
        print(json.dumps(summary, indent=2))
    return 0


def run_export(args) -> int:
    from ..training.checkpoint import export_checkpoint

    out = export_checkpoint(args.run, args.out, step=args.step, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
