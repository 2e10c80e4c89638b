"""The CPU dropout (16-bit integer masks) and the attention that uses it when dropout is on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from plmkit.config import model_config_from_preset
from plmkit.models import PlmModel
from plmkit.models.dropout import Dropout, attention_with_dropout, dropout, uses_cpu_mask
from plmkit.models.transformer import rows_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.02])
def test_drop_rate_and_mean_match_f_dropout(p):
    torch.manual_seed(0)
    n = 1_000_003  # not a multiple of 4: the last 64-bit draw is cut
    y = dropout(torch.ones(n), p)
    dropped = int((y == 0).sum())
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(dropped - n * p) < 5 * sigma
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, kept[0].item()))
    assert kept[0].item() == pytest.approx(1 / (1 - p), rel=1e-4)  # the exact inverse of the keep probability
    assert float(y.mean()) == pytest.approx(1.0, abs=5 * sigma / n / (1 - p))


def test_gradient_passes_only_where_kept_scaled_and_seeded_draws_repeat():
    x = torch.randn(7, 33, requires_grad=True)
    torch.manual_seed(3)
    y = dropout(x, 0.3)
    y.backward(torch.ones_like(y))
    kept = y != 0
    assert torch.allclose(y[kept], x.detach()[kept] / (1 - 0.3), rtol=1e-4)
    assert torch.all(x.grad[~kept] == 0)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - 0.3)), rtol=1e-4)
    torch.manual_seed(3)
    assert torch.equal(dropout(x.detach(), 0.3), y.detach())  # the default generator drives the mask


def test_eval_mode_zero_and_one_are_f_dropouts():
    x = torch.randn(4, 5)
    m = Dropout(0.4).eval()
    assert m(x) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    assert torch.equal(dropout(x, 0.3, training=False), x)
    assert isinstance(m, torch.nn.Dropout) and m.p == 0.4  # same attributes and repr as nn.Dropout
    # rates the 2^16 levels cannot express (round(p * 2^16) of 0 or 2^16) are left to F.dropout / SDPA
    assert uses_cpu_mask(x, 0.1) and not uses_cpu_mask(x, 1e-6) and not uses_cpu_mask(x, 1.0)


def _qkv(B=2, H=3, T=9, d=8):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(B, H, T, d, generator=g) for _ in range(3)]


def test_attention_without_dropout_equals_sdpa_for_padding_causal_and_row_masks():
    q, k, v = _qkv()
    B, T = q.shape[0], q.shape[2]
    pad = torch.ones(B, 1, 1, T, dtype=torch.bool)
    pad[1, ..., 6:] = False
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=pad)
    assert torch.allclose(attention_with_dropout(q, k, v, pad, False, 0.0), ref, atol=1e-6)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(attention_with_dropout(q, k, v, None, True, 0.0), ref, atol=1e-6)
    rows = torch.tensor([[8], [5]])  # the causal rows_mask of one query row each
    rm = rows_mask(None, rows, T, causal=True)
    qr = q.gather(2, rows[:, None, :, None].expand(-1, q.shape[1], -1, q.shape[3]))
    ref = F.scaled_dot_product_attention(qr, k, v, attn_mask=rm)
    assert torch.allclose(attention_with_dropout(qr, k, v, rm, False, 0.0), ref, atol=1e-6)


def test_attention_dropout_drops_probabilities_and_rescales():
    """With the mask drawn again from the same seed, the output is softmax(·) with those entries zeroed,
    scaled by 1/(1 − p), times v."""
    from plmkit.models.dropout import _keep_mask

    q, k, v = _qkv()
    pad = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    pad[0, ..., 7:] = False
    torch.manual_seed(11)
    out = attention_with_dropout(q, k, v, pad, False, 0.25)
    torch.manual_seed(11)
    keep, scale = _keep_mask(torch.Size((2, 3, 9, 9)), 0.25, q.device)
    probs = torch.softmax((q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(~pad, float("-inf")), -1)
    assert 0 < int((~keep).sum()) < keep.numel()
    assert torch.allclose(out, (probs * keep * scale) @ v, atol=1e-5)


def _tiny(**kw):
    config = model_config_from_preset("bert-tiny", {"vocab_size": 50, "num_labels": 3, **kw})
    torch.manual_seed(0)
    return PlmModel(config, task="sequence-classification")


def test_model_training_with_dropout_is_seeded_and_checkpointing_replays_the_masks():
    model = _tiny().train()
    ids = torch.randint(5, 50, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0
    labels = torch.tensor([0, 2, 1])

    def grads(checkpointing: bool):
        model.zero_grad()
        model.body.gradient_checkpointing = checkpointing
        torch.manual_seed(5)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        return out.loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss_a, ga = grads(False)
    loss_b, gb = grads(False)
    loss_c, gc = grads(True)
    assert torch.equal(loss_a, loss_b) and all(torch.equal(a, b) for a, b in zip(ga, gb))
    assert torch.allclose(loss_a, loss_c) and all(torch.allclose(a, c, atol=1e-6) for a, c in zip(ga, gc))
    model.eval()
    with torch.no_grad():
        e1 = model(input_ids=ids, attention_mask=mask).logits
        torch.manual_seed(99)
        e2 = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(e1, e2)  # no dropout in eval mode
    torch.manual_seed(6)
    assert not torch.equal(model.train()(input_ids=ids, attention_mask=mask, labels=labels).loss.detach(), loss_a)


def test_bf16_autocast_training_step_runs_with_attention_dropout():
    model = _tiny().train()
    ids = torch.randint(5, 50, (2, 10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, labels=torch.tensor([1, 0]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(torch.isfinite(p.grad).all() for p in model.parameters()
                                            if p.grad is not None)
