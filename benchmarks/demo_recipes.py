"""The demo with another pretraining recipe or preset: how the demo's defaults were chosen (BENCHMARKS.md, "The demo").

Runs ``plmkit.demo.run_demo`` — the code behind ``plmkit demo`` — with the pretraining rows, rows per step and
masking rate given, MLM alone with dynamic masking over full sentences (what the demo sets), and prints one JSON
line: the held-out pretraining metrics and every seed's scores. Budgets are steps, so the result does not depend
on the machine's load (only on its thread count: ``OMP_NUM_THREADS``).

    PLMKIT_DATA=../shared/data python benchmarks/demo_recipes.py --out /tmp/x2 --rows 16 --batch 256 --mask 0.2
    PLMKIT_DATA=../shared/data python benchmarks/demo_recipes.py --out /tmp/e2 --quick --preset electra-tiny \\
        --set model.generator_size=0.5
"""

from __future__ import annotations

import argparse
import json

from plmkit.demo import QUICK_SETTINGS, DemoConfig, run_demo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="a new folder for the demo run")
    ap.add_argument("--quick", action="store_true", help="start from the quick demo's settings")
    ap.add_argument("--preset", default="bert-tiny")
    ap.add_argument("--steps", type=int, help="pretraining steps (default: the demo's)")
    ap.add_argument("--rows", type=int, help="tokens per pretraining row (default: the demo's)")
    ap.add_argument("--batch", type=int, help="pretraining rows per step (default: the demo's)")
    ap.add_argument("--mask", type=float, help="data.mask_prob (default: the demo's)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="another pretraining override, e.g. model.generator_size=0.5 (repeatable)")
    args = ap.parse_args()
    base = DemoConfig.quick_config() if args.quick else DemoConfig()
    pretrain_set = dict(base.pretrain_set)
    if args.mask is not None:
        pretrain_set["data.mask_prob"] = args.mask
    for item in args.set:
        key, _, value = item.partition("=")
        pretrain_set[key] = json.loads(value)
    kw = {"out": args.out, "preset": args.preset, "pretrain_set": pretrain_set}
    for name, value in (("pretrain_steps", args.steps), ("pretrain_max_length", args.rows),
                        ("batch_size", args.batch)):
        if value is not None:
            kw[name] = value
    cfg = DemoConfig.quick_config(**kw) if args.quick else DemoConfig(**kw)
    report = run_demo(cfg)
    print(json.dumps({"out": args.out, "preset": cfg.preset, "steps": cfg.pretrain_steps, "rows": cfg.pretrain_rows,
                      "batch": cfg.batch_size, "pretrain_set": pretrain_set, "quick": bool(args.quick),
                      "final_eval": report["pretraining"]["final_eval"],
                      "results": {r["task"]: {"scratch": r["scratch"]["per_seed"], "pretrained": r["pretrained"]["per_seed"],
                                              "gain": r["gain"]} for r in report["results"]}}))


if __name__ == "__main__":
    main()
