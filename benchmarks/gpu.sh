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
# 7. Fine-tuning on the GPU, bf16: (a) the Trainer's optimiser step (clipping inside fused AdamW, as
#    GradScaler's grad_scale) against clip_grad_norm_ + step on CUDA; (b) finetune_glue.py, plmkit
#    against the same recipe through transformers, 1 epoch of MRPC, CoNLL-2003 and all SQuAD questions,
#    on a bert-base with random weights (a pretrained checkpoint is too big to carry: this times the
#    pipelines, it does not score a model). Needs gpu/finetune/ (made on the CPU machine):
#      mkdir -p gpu/finetune/tokenizer gpu/finetune/data/{glue/MRPC,conll2003,squad}
#      cp <MiniLM model dir>/{tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} gpu/finetune/tokenizer/
#      cp $PLMKIT_DATA/glue/MRPC/train.tsv gpu/finetune/data/glue/MRPC/
#      cp $PLMKIT_DATA/conll2003/eng.{train,testa} gpu/finetune/data/conll2003/
#      cp $PLMKIT_DATA/squad/squad-v1.1-dev-part-a.json gpu/finetune/data/squad/
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
PARTS="${*:-1 2 3 4a 4b 5 6 7}"  # bash benchmarks/gpu.sh 5   runs part 5 alone
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
if want 7; then
  part "7a. the Trainer's optimiser step on CUDA against clip_grad_norm_ + step"
  timeout 60 python3 - <<'PY' || echo "part 7a FAILED (exit $?)"
import sys, torch
sys.path.insert(0, "tests")
from test_optim import OPTIMISERS, fast_steps, plain_steps, tag_batch, tagger
dev = torch.device("cuda")
batches = [{k: v.to(dev) for k, v in tag_batch(k).items()} for k in range(4)]
for name in ("fused adamw", "lamb"):
    for max_norm in (0.05, 0.0):
        a, b = tagger().to(dev), tagger().to(dev)
        na = plain_steps(a, OPTIMISERS[name], batches, max_norm if max_norm > 0 else float("inf"))
        nb = fast_steps(b, OPTIMISERS[name], batches, max_norm)
        diff = max((x - y).abs().max().item() for x, y in zip(a.parameters(), b.parameters()))
        ok = diff < 2e-6 and all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(na, nb))
        print(f"{name}, max_norm {max_norm}: norms {[round(x, 4) for x in na]}, max param diff {diff:.2e}: "
              f"{'OK' if ok else 'DIFFERENT'}")
PY
  part "7b. fine-tuning, bert-base (random weights), bf16, 1 epoch: plmkit vs transformers"
  if [ -d gpu/finetune/tokenizer ]; then
    rm -rf /tmp/plmkit-gpu-bert-base
    python3 - <<'PY' || echo "part 7b model FAILED"
import plmkit, torch
from plmkit import PlmModel, model_config_from_preset
tok = plmkit.load_tokenizer("gpu/finetune/tokenizer")
torch.manual_seed(0)
model = PlmModel(model_config_from_preset("bert-base", {"vocab_size": 30522, "pad_token_id": 0}), task="pretraining")
model.save_pretrained("/tmp/plmkit-gpu-bert-base", tokenizer=tok)
print("bert-base with random weights:", sum(p.numel() for p in model.parameters()) / 1e6, "M parameters")
PY
    PLMKIT_DATA=gpu/finetune/data timeout 420 python3 benchmarks/finetune_glue.py --model /tmp/plmkit-gpu-bert-base \
        --tasks mrpc,conll-ner,squad --seeds 1 --epochs 1 --max-train 100000 --bf16 --device cuda \
        --json "$OUT/gpu-finetune.json" || echo "part 7b FAILED (exit $?)"
  else
    echo "part 7b skipped: no gpu/finetune (see the header)"
  fi
fi
part "done"
