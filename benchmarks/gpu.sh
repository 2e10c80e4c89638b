#!/usr/bin/env bash
# One prepared script for a lent GPU (H100 / H200): every GPU check of the speed issue in one call.
#
#   device run:  bash benchmarks/gpu.sh     (the device image has torch + transformers; carry gpu/)
#
# 1. BERT-base pretraining, sequence length 128, bf16 autocast: plmkit's model FLOPs utilisation and
#    its speed against transformers (sdpa, bf16 autocast, fused AdamW) on the same GPU, interleaved;
#    also bert-large.
# 2. --micro-batch auto on the GPU, end to end through `plmkit pretrain`: BERT-large, 512-token rows,
#    a batch of 1024 rows that cannot fit at once; the probe picks the micro-batch, two steps run.
#    Needs a prepared corpus in gpu/brown-uncased (made on the CPU machine, carried along):
#      plmkit prepare --tokenizer <MiniLM model dir> --out gpu/brown-uncased $PLMKIT_DATA/corpora/brown
# 3. Peak GPU memory of each tool at the same batch (torch.cuda.max_memory_allocated, own process each).
# 4. The same BERT-base step with --compile (torch.compile of plmkit's model), and a batch of 256.
# 5. Where the GPU time goes (torch.profiler, CUDA kernels by class), eager and compiled.
# 6. Document masking (data.document_mask): FlexAttention against the SDPA boolean mask.
# Parts can be picked: bash benchmarks/gpu.sh 1 5
#
# MFU = (6·N·tokens + attention FLOPs + the MLM decoder at the 15% predicted tokens) / time / peak,
# peak = dense bf16 989 TFLOP/s (H100/H200 SXM datasheet; PEAK_TFLOPS overrides).
# Each part has its own time limit and a failure does not stop the next; logs and JSON go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-/tmp/plmkit-gpu}"
mkdir -p "$OUT"
PEAK="${PEAK_TFLOPS:-989}"
T="python3 benchmarks/pretrain_throughput.py --device cuda --precision bf16 --length 128 --peak-tflops $PEAK"
PARTS="${*:-1 2 3 4a 4b 5 6}"  # bash benchmarks/gpu.sh 5   runs part 5 alone
want() { [[ " $PARTS " == *" $1 "* ]]; }
part() { echo; echo "=== $1 ($(date +%T))"; }

part "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"

want 1 && part "1. BERT-base and BERT-large, B=128 L=128, bf16: MFU and ratio"
want 1 && { timeout 150 $T --configs bert-base,bert-large --batch 128 --steps 10 --warmup 3 --json "$OUT/gpu-throughput.json" \
    || echo "part 1 FAILED (exit $?)"; }

want 2 && part "2. --micro-batch auto: bert-large, 1024 rows x 512 tokens per step"
if ! want 2; then :
elif [ -d gpu/brown-uncased ]; then
  rm -rf /tmp/plmkit-gpu-mb
  timeout 150 python3 -m plmkit.cli pretrain --preset bert-large --data gpu/brown-uncased --out /tmp/plmkit-gpu-mb \
      --batch-size 1024 --max-length 512 --micro-batch auto --max-steps 2 --bf16 --device cuda --no-progress \
      --eval-every 0 --save-every 0 --no-verify-data 2>&1 | tail -20 || echo "part 2 FAILED"
  cp /tmp/plmkit-gpu-mb/run.json "$OUT/gpu-microbatch-run.json" 2>/dev/null
  cp /tmp/plmkit-gpu-mb/metrics.jsonl "$OUT/gpu-microbatch-metrics.jsonl" 2>/dev/null
else
  echo "part 2 skipped: no gpu/brown-uncased (see the header)"
fi

want 3 && part "3. peak GPU memory, bert-base B=128 L=128"
want 3 && { timeout 100 $T --configs bert-base --batch 128 --memory --json "$OUT/gpu-memory.json" || echo "part 3 FAILED (exit $?)"; }

want 4a && part "4a. bert-base with --compile"
want 4a && { timeout 170 $T --configs bert-base --batch 128 --steps 10 --warmup 5 --compile --json "$OUT/gpu-compiled.json" \
    || echo "part 4a FAILED (exit $?)"; }

want 4b && part "4b. bert-base, B=256"
want 4b && { timeout 70 $T --configs bert-base --batch 256 --steps 8 --warmup 3 --json "$OUT/gpu-b256.json" \
    || echo "part 4b FAILED (exit $?)"; }

if want 5; then
  part "5. where the GPU time goes: bert-base B=128, eager (both tools) and compiled (plmkit)"
  timeout 120 $T --configs bert-base --batch 128 --profile --top 15 || echo "part 5 eager FAILED (exit $?)"
  timeout 150 $T --configs bert-base --batch 128 --profile --compile --top 15 2>&1 | grep -v "W1\|^W" \
      || echo "part 5 compiled FAILED (exit $?)"
fi
if want 6; then
  part "6. document masking: FlexAttention vs the SDPA mask, bert-base 32 x 512"
  timeout 150 python3 benchmarks/document_mask.py --device cuda || echo "part 6 FAILED (exit $?)"
fi
part "done"
