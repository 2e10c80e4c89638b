"""Document masking (``data.document_mask``): FlexAttention against an SDPA boolean mask, on a GPU.

Rows of T tokens packed with documents of random lengths; BERT-base with no attention dropout (the
setting in which plmkit's opt-in FlexAttention path, ``encoder.flex_attention = True``, applies). Checks that the FlexAttention path and the
SDPA boolean-mask path give the same hidden states, then times training steps (bf16 autocast, fused
AdamW) for: no document mask (attention crosses documents), the SDPA mask, and FlexAttention.

    python benchmarks/document_mask.py --device cuda                 # on a GPU (part of gpu.sh)
    python benchmarks/document_mask.py --device cpu --length 128 --batch 2 --steps 1 --preset bert-tiny   # smoke
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import plmkit
import plmkit.models.transformer as tr
from plmkit.config import model_config_from_preset
from plmkit.training.optim import build_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_throughput import interleaved_seconds  # noqa: E402


def documents(B: int, T: int, lo: int, hi: int, g: torch.Generator) -> torch.Tensor:
    """(B, T) document numbers: consecutive documents of lengths drawn from [lo, hi)."""
    out = torch.empty(B, T, dtype=torch.int64)
    for b in range(B):
        col, n = 0, 0
        while col < T:
            k = int(torch.randint(lo, hi, (1,), generator=g))
            out[b, col:col + k] = n
            col, n = col + k, n + 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="bert-base")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--doc-lengths", default="32,256", help="documents' lengths are drawn from [lo, hi)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    cfg = model_config_from_preset(args.preset, {"attention_probs_dropout_prob": 0.0})
    torch.manual_seed(0)
    model = plmkit.PlmModel(cfg, task="masked-lm").to(dev)
    B, T = args.batch, args.length
    lo, hi = (int(x) for x in args.doc_lengths.split(","))
    ids = torch.randint(1000, cfg.vocab_size, (B, T), generator=g).to(dev)
    doc = documents(B, T, lo, hi, g).to(dev)
    labels = torch.where(torch.rand(B, T, generator=g).to(dev) < 0.15, ids, torch.full_like(ids, -100))
    bf16 = dev.type == "cuda"
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    flex_here = tr.flex_available() and dev.type == "cuda"

    def set_flex(on: bool) -> None:
        model.body.flex_attention = on  # the encoder's opt-in switch

    print(f"torch {torch.__version__}, {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}), "
          f"{args.preset}, {B} rows × {T} tokens, documents of {lo}-{hi - 1} tokens "
          f"({float(doc.max(dim=1).values.float().mean()) + 1:.1f} per row), bf16 {bf16}")
    model.eval()
    with torch.no_grad(), autocast():
        set_flex(False)
        ref = model(ids, document_ids=doc).last_hidden_state.float()
        if flex_here:
            set_flex(True)
            mask = model.body.attention_mask(None, T, doc)
            assert not isinstance(mask, torch.Tensor), "FlexAttention was not chosen on the GPU"
            got = model(ids, document_ids=doc).last_hidden_state.float()
            rel = float((got - ref).norm() / ref.norm())
            print(f"FlexAttention vs SDPA mask, hidden states: relative difference {rel:.2e} (bf16: < 1e-2 expected)")
            assert rel < 2e-2, rel
    model.train()
    opt = build_optimizer(model, "adamw", 1e-4, 0.01, (0.9, 0.999), 1e-6)

    def step(kwargs) -> None:
        with autocast():
            loss = model(ids, labels=labels, **kwargs).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    variants = [("no document mask (crosses documents)", {}, False),
                ("document mask, SDPA boolean mask", {"document_ids": doc}, False)]
    if flex_here:
        variants.append(("document mask, FlexAttention", {"document_ids": doc}, True))
    def run(kwargs, flex):
        set_flex(flex)
        step(kwargs)

    times = interleaved_seconds({name: (lambda kw=kwargs, fl=flex: run(kw, fl)) for name, kwargs, flex in variants},
                                args.steps, args.warmup, dev)
    set_flex(False)
    base = statistics.median(times[variants[0][0]])
    print("| variant | step (ms) | tokens/s | vs no mask |\n|---|---:|---:|---:|")
    for name, _, _ in variants:
        t = statistics.median(times[name])
        print(f"| {name} | {t * 1e3:.1f} | {B * T / t:,.0f} | {base / t:.2f}× |")


if __name__ == "__main__":
    main()
