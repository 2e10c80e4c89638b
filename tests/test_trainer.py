"""The shared trainer: exact resume, accumulation equivalence, NaN handling, safe checkpoints."""

from __future__ import annotations

import errno
import json
import os
import warnings

import pytest
import torch
from safetensors.torch import load_file

import plmkit
from plmkit import ModelConfig, PlmModel
from plmkit.errors import CheckpointError, ConfigError, PlmkitError
from plmkit.training import checkpoint as ckpt
from plmkit.training.trainer import TrainConfig, Trainer, parse_duration

V = 99


class ToySource:
    """Deterministic MLM + NSP micro-batches: batch k depends only on (seed, k)."""

    def __init__(self, batch_size: int, length: int = 16, seed: int = 0, pair: bool = True):
        self.batch_size, self.length, self.seed, self.pair = batch_size, length, seed, pair
        self.position = 0

    def _batch(self, k: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100003 + k)
        # learnable: each row counts upwards from a random start, so a masked token follows from its neighbours
        start = torch.randint(0, V - 5, (self.batch_size, 1), generator=g)
        ids = (start + torch.arange(self.length)) % 10 + 5
        labels = torch.full_like(ids, -100)
        pick = torch.rand(ids.shape, generator=g) < 0.2
        pick[:, 1] = True
        labels[pick] = ids[pick]
        ids = ids.masked_fill(pick, 4)
        out = {"input_ids": ids, "labels": labels}
        if self.pair:
            out["next_sentence_label"] = (start.view(-1) % 2).long()
        return out

    def __iter__(self):
        while True:
            b = self._batch(self.position)
            self.position += 1
            yield b

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = int(state["position"])


def tiny_model(seed: int = 0, dropout: float = 0.1, task: str = "pretraining") -> PlmModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=64, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return PlmModel(cfg, task=task)


def cfg(**kw) -> TrainConfig:
    base = dict(lr=1e-3, max_steps=8, batch_size=4, log_every=1, progress=False, tensorboard=False, warmup=2)
    return TrainConfig(**{**base, **kw})


def losses(run_dir) -> list[tuple[int, float]]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec and "skipped_nonfinite" not in rec:
            out.append((rec["step"], rec["loss"]))
    return out


def final_weights(run_dir, step):
    return load_file(str(run_dir / "checkpoints" / ckpt.step_name(step) / "model.safetensors"))


def test_stop_and_resume_is_bit_identical(tmp_path):
    # one run of 2N steps
    a = tmp_path / "a"
    Trainer(tiny_model(), cfg(), ToySource(4), a).train()
    # the same run paused after N steps, then resumed in a fresh process-like setting
    b = tmp_path / "b"
    s1 = Trainer(tiny_model(), cfg(stop_after=4), ToySource(4), b).train()
    assert s1["step"] == 4 and s1["stop_reason"] == "stop_after"
    torch.manual_seed(1234)  # the resumed run must not depend on the ambient RNG
    s2 = Trainer(tiny_model(seed=99), cfg(), ToySource(4), b, resume=True).train()
    assert s2["step"] == 8
    assert losses(a) == losses(b)
    wa, wb = final_weights(a, 8), final_weights(b, 8)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_grad_accumulation_equals_one_big_batch(tmp_path):
    one = Trainer(tiny_model(dropout=0.0), cfg(batch_size=8, max_steps=3), ToySource(8), tmp_path / "one").train()
    # two micro-batches of 4 are the two halves of each batch of 8
    class Halves(ToySource):
        def __iter__(self):
            while True:
                b = self._batch(self.position)
                self.position += 1
                yield {k: v[:4] for k, v in b.items()}
                yield {k: v[4:] for k, v in b.items()}

    two = Trainer(tiny_model(dropout=0.0), cfg(batch_size=4, grad_accum=2, max_steps=3), Halves(8), tmp_path / "two").train()
    la, lb = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [s for s, _ in la] == [s for s, _ in lb]
    assert all(abs(x - y) < 1e-5 for (_, x), (_, y) in zip(la, lb))
    wa, wb = final_weights(tmp_path / "one", 3), final_weights(tmp_path / "two", 3)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    assert one["step"] == two["step"] == 3


def test_loss_falls_and_logs_have_required_keys(tmp_path):
    summary = Trainer(tiny_model(dropout=0.0), cfg(max_steps=30, lr=3e-3, eval_every=10),
                      ToySource(8), tmp_path, evaluate=lambda m: {"probe": 1.0}).train()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert {"step", "loss", "lr", "tokens_per_s", "elapsed_s", "mlm_loss", "pair_loss"} <= set(train[0])
    assert train[-1]["loss"] < train[0]["loss"] - 0.3
    evals = [r for r in records if "eval_probe" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert summary["eval_probe"] == 1.0
    # warmup then linear decay to 0
    lrs = [r["lr"] for r in train]
    assert lrs[0] < lrs[1] and lrs[-1] == pytest.approx(3e-3 * (30 - 29) / 28)


def test_eval_at_start_logs_step_0_and_leaves_training_unchanged(tmp_path):
    def probe(m):  # the held-out "loss" is a function of the weights, so step 0 differs from later evals
        return {"probe": float(sum(p.detach().abs().sum() for p in m.parameters()))}

    runs = {}
    for flag in (False, True):
        Trainer(tiny_model(), cfg(max_steps=6, eval_every=3, eval_at_start=flag), ToySource(8),
                tmp_path / str(flag), evaluate=probe).train()
        runs[flag] = [json.loads(x) for x in (tmp_path / str(flag) / "metrics.jsonl").read_text().splitlines()]
    evals = {k: [(r["step"], r["eval_probe"]) for r in v if "eval_probe" in r] for k, v in runs.items()}
    assert [s for s, _ in evals[True]] == [0, 3, 6] and [s for s, _ in evals[False]] == [3, 6]
    assert evals[True][1:] == evals[False] and evals[True][0][1] != evals[True][1][1]
    # evaluating first (in eval mode, no dropout draws) changes nothing in training
    assert [r["loss"] for r in runs[True] if "loss" in r] == [r["loss"] for r in runs[False] if "loss" in r]


def test_checkpoint_is_a_model_folder_that_loads_everywhere(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_model(), cfg(max_steps=2), ToySource(4), run).train()
    folder = ckpt.latest_checkpoint(run)
    assert folder.name == "step-0000002"
    model = plmkit.from_pretrained(folder)
    assert model.task == "pretraining"
    T = pytest.importorskip("transformers")
    hf, info = T.BertForPreTraining.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    out = tmp_path / "exported"
    ckpt.export_checkpoint(run, out)
    assert sorted(p.name for p in out.iterdir()) == [".plmkit-output.json", "config.json", "model.safetensors"]
    with pytest.raises(PlmkitError, match="lies inside the input folder"):  # never into the run it exports
        ckpt.export_checkpoint(run, run / "exported")


def test_rotation_keeps_last_k(tmp_path):
    Trainer(tiny_model(), cfg(max_steps=9, save_every=2, keep_last=2), ToySource(4), tmp_path).train()
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["step-0000008", "step-0000009"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-0000009"


def test_refuses_to_overwrite_a_run_and_resume_needs_one(tmp_path):
    Trainer(tiny_model(), cfg(max_steps=1), ToySource(4), tmp_path).train()
    with pytest.raises(PlmkitError, match="already holds a run"):
        Trainer(tiny_model(), cfg(max_steps=1), ToySource(4), tmp_path).train()
    with pytest.raises(PlmkitError, match="no checkpoint to resume"):
        Trainer(tiny_model(), cfg(max_steps=1), ToySource(4), tmp_path / "new", resume=True).train()


def test_resume_with_changed_settings_is_an_error(tmp_path):
    Trainer(tiny_model(), cfg(stop_after=2), ToySource(4), tmp_path).train()
    with pytest.raises(ConfigError, match="lr: checkpoint 0.001 vs now 0.002"):
        Trainer(tiny_model(), cfg(lr=2e-3), ToySource(4), tmp_path, resume=True).train()


def test_corrupted_latest_checkpoint_falls_back_to_previous(tmp_path):
    Trainer(tiny_model(), cfg(max_steps=4, save_every=2, keep_last=3), ToySource(4), tmp_path).train()
    weights = tmp_path / "checkpoints" / "step-0000004" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="step-0000004.*checksum.*using .*step-0000002"):
        folder = ckpt.latest_checkpoint(tmp_path)
    assert folder.name == "step-0000002"


def test_disk_full_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch):
    Trainer(tiny_model(), cfg(max_steps=2), ToySource(4), tmp_path).train()
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints" / "step-0000002").iterdir()}
    real = ckpt.optimizer_to_files

    def full(opt, folder):
        real(opt, folder)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "optimizer_to_files", full)
    with pytest.raises(CheckpointError, match="no space left.*step-0000002 is intact"):
        Trainer(tiny_model(), cfg(max_steps=4), ToySource(4), tmp_path, resume=True).train()
    after = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints" / "step-0000002").iterdir()}
    assert before == after
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-0000002"]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    Trainer(tiny_model(dropout=0.0), cfg(max_steps=4, stop_after=2), ToySource(4), tmp_path).train()
    good = ckpt.latest_checkpoint(tmp_path)
    good_bytes = (good / "model.safetensors").read_bytes()
    trainer = Trainer(tiny_model(dropout=0.0), cfg(max_steps=4), ToySource(4), tmp_path, resume=True)
    orig = trainer.model.forward

    def nan_forward(*a, **k):
        out = orig(*a, **k)
        out.mlm_loss = out.mlm_loss * float("nan")
        return out

    trainer.model.forward = nan_forward
    with pytest.raises(PlmkitError, match=r"loss became nan at step 3.*step-0000002"):
        trainer.train()
    assert (good / "model.safetensors").read_bytes() == good_bytes
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-0000002"]


def test_nan_loss_can_be_skipped(tmp_path):
    model = tiny_model(dropout=0.0)
    orig = model.forward
    calls = {"n": 0}

    def sometimes_nan(*a, **k):
        out = orig(*a, **k)
        calls["n"] += 1
        if calls["n"] == 2:
            out.mlm_loss = out.mlm_loss * float("inf")
        return out

    model.forward = sometimes_nan
    summary = Trainer(model, cfg(max_steps=3, on_nonfinite="skip"), ToySource(4), tmp_path).train()
    assert summary["step"] == 3
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("skipped_nonfinite") == 1 for r in records)
    w = final_weights(tmp_path, 3)
    assert all(torch.isfinite(t).all() for t in w.values())


def test_time_budget_and_duration_parsing(tmp_path):
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400 and parse_duration("90s") == 90
    with pytest.raises(ConfigError):
        parse_duration("ten minutes")
    summary = Trainer(tiny_model(), cfg(max_steps=None, max_time=3, log_every=5), ToySource(4), tmp_path).train()
    assert summary["stop_reason"] == "max_time" and summary["step"] >= 2
    assert 3 <= summary["elapsed_s"] < 30


def test_no_stop_condition_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="stop condition"):
        Trainer(tiny_model(), cfg(max_steps=None), ToySource(4), tmp_path)


def test_bf16_and_checkpointing_run(tmp_path):
    summary = Trainer(tiny_model(), cfg(max_steps=2, bf16=True, gradient_checkpointing=True), ToySource(4), tmp_path).train()
    assert summary["step"] == 2
    w = final_weights(tmp_path, 2)
    assert all(t.dtype == torch.float32 for t in w.values())  # master weights stay fp32


def test_lamb_optimizer_trains(tmp_path):
    Trainer(tiny_model(dropout=0.0), cfg(max_steps=12, optimizer="lamb", lr=1e-2), ToySource(8), tmp_path).train()
    ls = [x for _, x in losses(tmp_path)]
    assert ls[-1] < ls[0]


def test_malloc_trim_is_found_on_glibc_linux_and_harmless():
    import platform
    import sys

    from plmkit.training import trainer as T

    trim = T._malloc_trim()
    if sys.platform == "linux" and platform.libc_ver()[0] == "glibc":
        assert trim is not None
        assert trim(0) in (0, 1)  # 1: memory was released, 0: there was none to release
    else:  # macOS, Windows, musl: no malloc_trim, so the trainer does nothing
        assert trim is None


def test_malloc_trim_runs_only_when_the_resident_set_has_grown(tmp_path, monkeypatch):
    # Each trim hands back pages the next batches fault in again (CoNLL-2003 epochs 301-318 s with
    # trims, 251-259 s without), so the trainer trims at a log line only when the resident set is
    # past TRIM_GROWTH times its first level (or what stayed resident after the last trim).
    from plmkit.training import trainer as T

    calls = []
    rss = iter([100, 120, 149, 151, 90, 140, 300, 200, 310, 100] + [100] * 50)
    monkeypatch.setattr(T, "_malloc_trim", lambda: (lambda pad: calls.append(pad) or 0))
    monkeypatch.setattr(T, "current_rss", lambda: next(rss))
    Trainer(tiny_model(), cfg(max_steps=12, log_every=2), ToySource(4), tmp_path / "run").train()
    # log lines read 100 (base), 120, 149, 151 → trim (90 after it: base stays 100), 140,
    # 300 → trim (200 after it: base 200): two trims in six log lines
    assert calls == [0, 0]


def test_rss_is_read_on_linux():
    import sys

    from plmkit.training import trainer as T

    rss = T.current_rss()
    assert (rss is not None and rss > 10 * 2**20) if sys.platform == "linux" else rss is None
