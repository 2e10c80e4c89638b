"""The optimiser-side CPU savings give the plain recipe's update: clip_grad_norm_ → step → zero_grad."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from plmkit import ModelConfig, PlmModel
from plmkit.training import optim
from plmkit.training import trainer as trainer_mod
from plmkit.training.optim import Lamb, ResidentEmbeddingGrads, build_optimizer, clipped_step, grad_norm
from plmkit.training.trainer import TrainConfig, Trainer

from test_trainer import ToySource, final_weights, losses, tiny_model


def tagger(seed: int = 0) -> PlmModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                      pad_token_id=0, num_labels=3)
    return PlmModel(cfg, task="token-classification")


def tag_batch(k: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(k)
    ids = torch.randint(1, 99, (4, 12), generator=g)
    ids[:, 9:] = 0  # padding rows: the pad embedding must get no gradient
    mask = (ids != 0).long()
    labels = torch.randint(0, 3, (4, 12), generator=g).masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def plain_steps(model, make_opt, batches, max_norm):
    opt = make_opt(model)
    norms = []
    for b in batches:
        model(**b).loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, foreach=True)))
        opt.step()
        opt.zero_grad(set_to_none=True)
    return norms


def fast_steps(model, make_opt, batches, max_norm):
    opt = make_opt(model)
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    with ResidentEmbeddingGrads(model) as resident:
        for b in batches:
            model(**b).loss.backward()
            n = grad_norm(params)
            norms.append(float(n))
            clipped_step(opt, params, n, max_norm)
            resident.zero_grad(opt)
    return norms


OPTIMISERS = {
    "fused adamw": lambda m: build_optimizer(m, "adamw", 1e-2, 0.01, (0.9, 0.999), 1e-6),
    "foreach adamw": lambda m: torch.optim.AdamW(optim.param_groups(m, 0.01), lr=1e-2, foreach=True),
    "lamb": lambda m: build_optimizer(m, "lamb", 1e-2, 0.01, (0.9, 0.999), 1e-6),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize("max_norm", [0.05, 1e6, 0.0])
def test_fast_steps_equal_the_plain_recipe(name, max_norm):
    if name == "fused adamw":
        assert optim._fused_adam(OPTIMISERS[name](tagger()))  # the kernel-side clipping is what runs here
    batches = [tag_batch(k) for k in range(4)]
    a, b = tagger(), tagger()
    norms_a = plain_steps(a, OPTIMISERS[name], batches, max_norm if max_norm > 0 else float("inf"))
    norms_b = fast_steps(b, OPTIMISERS[name], batches, max_norm)
    assert norms_a == pytest.approx(norms_b, rel=1e-5)
    if max_norm == 0.05:
        assert min(norms_a) > 0.05  # clipping was active on every step
    for (name_a, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(pa, pb, atol=2e-6, rtol=1e-5), name_a
    # the embedding tables moved (their update is not skipped) and are plain again
    assert not torch.equal(a.body.embeddings.word.weight, tagger().body.embeddings.word.weight)
    assert all(not m.sparse and m.weight.grad is None for m in b.modules() if isinstance(m, nn.Embedding))


def test_resident_buffers_hold_the_dense_gradient_and_are_reused():
    a, b = tagger(), tagger()
    batch = tag_batch(0)
    a(**batch).loss.backward()
    opt = build_optimizer(b, "adamw", 1e-3, 0.0, (0.9, 0.999), 1e-6)
    word = b.body.embeddings.word
    with ResidentEmbeddingGrads(b) as resident:
        assert word in resident.tables and b.body.embeddings.position in resident.tables
        buf = word.weight.grad
        assert buf is not None and not buf.is_sparse and not buf.any()
        b(**batch).loss.backward()
        assert word.weight.grad is buf and not buf.is_sparse  # rows were added into the same buffer
        assert torch.allclose(buf, a.body.embeddings.word.weight.grad, atol=1e-7)
        assert not buf[0].any()  # the padding row
        opt.step()
        resident.zero_grad(opt)
        assert word.weight.grad is buf and not buf.any()
        assert all(p.grad is None for n, p in b.named_parameters() if "embeddings." not in n or "norm" in n)
    assert word.weight.grad is None and not word.sparse


def test_resident_grads_skip_frozen_sparse_and_disabled_tables():
    m = tagger()
    m.body.embeddings.position.weight.requires_grad_(False)
    extra = nn.Embedding(5, 3, sparse=True)  # a table the user made sparse on purpose stays theirs
    m.add_module("extra", extra)
    twin = nn.Embedding(99, 32)
    twin.weight = m.body.embeddings.word.weight  # two tables, one weight: one buffer
    m.add_module("twin", twin)
    tables = ResidentEmbeddingGrads(m).tables
    assert m.body.embeddings.word in tables and twin not in tables
    assert m.body.embeddings.position not in tables and extra not in tables
    assert ResidentEmbeddingGrads(m, enabled=False).tables == []
    with ResidentEmbeddingGrads(m, enabled=False) as r:
        assert m.body.embeddings.word.weight.grad is None and not m.body.embeddings.word.sparse
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        m(**tag_batch(0)).loss.backward()
        r.zero_grad(opt)
        assert all(p.grad is None for p in m.parameters())


def plain_trainer(monkeypatch):
    """The trainer with the plain recipe: dense embedding gradients, clip_grad_norm_ then step."""
    def plain_clipped_step(optimizer, params, norm, max_norm):
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        optimizer.step()

    monkeypatch.setattr(trainer_mod, "clipped_step", plain_clipped_step)
    monkeypatch.setattr(trainer_mod, "ResidentEmbeddingGrads",
                        lambda model, enabled: ResidentEmbeddingGrads(model, enabled=False))


def test_trainer_with_the_savings_trains_as_the_plain_recipe(tmp_path, monkeypatch):
    # MLM + NSP: the word table is also the (functionally tied) MLM decoder, so its gradient is
    # dense rows from the decoder plus looked-up rows; clipping active (clip_norm 0.1).
    kw = dict(lr=1e-3, max_steps=6, batch_size=4, log_every=1, progress=False, tensorboard=False, warmup=2,
              clip_norm=0.1, grad_accum=2)
    fast = Trainer(tiny_model(dropout=0.1), TrainConfig(**kw), ToySource(4), tmp_path / "fast").train()
    with monkeypatch.context() as mp:
        plain_trainer(mp)
        plain = Trainer(tiny_model(dropout=0.1), TrainConfig(**kw), ToySource(4), tmp_path / "plain").train()
    assert fast["step"] == plain["step"] == 6
    la, lb = losses(tmp_path / "fast"), losses(tmp_path / "plain")
    assert [s for s, _ in la] == [s for s, _ in lb] and all(abs(x - y) < 1e-5 for (_, x), (_, y) in zip(la, lb))
    wa, wb = final_weights(tmp_path / "fast", 6), final_weights(tmp_path / "plain", 6)
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_trainer_leaves_the_model_plain(tmp_path):
    model = tiny_model()
    Trainer(model, TrainConfig(lr=1e-3, max_steps=2, batch_size=4, progress=False, tensorboard=False),
            ToySource(4), tmp_path / "run").train()
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    assert tables and all(not m.sparse and m.weight.grad is None for m in tables)
    copy.deepcopy(model)  # no sparse-gradient state left behind
