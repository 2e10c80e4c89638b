"""CPU fine-tuning speed, plmkit against transformers: MiniLM on SST-2 and MRPC (issue: speed targets).

The same examples, batch size, maximum length, schedule and metric code on both sides; the peer is
`transformers`' AutoModelForSequenceClassification in a plain loop with its LengthGroupedSampler (see
finetune_glue.py, which this runs with the speed workload as its defaults). Seconds per training epoch
over the same examples is the inverse of examples/s, so the speed-up column is the examples/s ratio.

    PLMKIT_DATA=../shared/data python benchmarks/finetune_throughput.py --seeds 1 --epochs 1
    # any finetune_glue.py option works: --tasks, --max-train, --bf16, --threads, --json ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_glue import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--tasks" or a.startswith("--tasks=") for a in argv):
        argv = ["--tasks", "sst2,mrpc", *argv]
    sys.exit(main(argv))
