#!/usr/bin/env bash
# One prepared script for a lent GPU (H100 / H200): BERT-base pretraining at sequence length 128 in
# bf16 — plmkit's model FLOPs utilisation and its speed against transformers on the same GPU.
#
#   device run:  bash benchmarks/gpu.sh            (the device image has torch + transformers)
#
# MFU = (6·N·tokens + attention FLOPs + the MLM decoder at the 15% predicted tokens) / time / peak,
# peak = dense bf16 989 TFLOP/s (H100/H200 SXM datasheet). Also bert-large, and the fused/compiled path.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT="${OUT:-/tmp}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
PEAK="${PEAK_TFLOPS:-989}"
for preset in bert-base bert-large; do
  python3 benchmarks/pretrain_throughput.py --device cuda --precision bf16 --configs "$preset" \
      --batch 128 --length 128 --steps 10 --warmup 3 --peak-tflops "$PEAK" --json "$OUT/gpu-$preset.json"
done
python3 benchmarks/pretrain_throughput.py --device cuda --precision bf16 --configs bert-base --compile \
    --batch 128 --length 128 --steps 10 --warmup 5 --peak-tflops "$PEAK" --json "$OUT/gpu-bert-base-compiled.json"
