"""Static shapes for the pretraining step (issue 25): a fixed number of predicted slots per row
(``data.max_predictions``, google-research/bert's ``max_predictions_per_seq``) carried as ``mlm_positions``,
and the GPU switches that rely on it (``--cuda-graphs``, ``--fp8``; plmkit.training.accel).

What is checked, on the CPU: the static path gives the dynamic path's masks, losses, gradients, logits and
loss-contract counts for BERT (NSP), ALBERT (SOP, n-grams), RoBERTa (full rows) and ELECTRA (the generator's
MLM; its samples at padded slots change nothing); a compiled step has no graph break with it and has one
without it; BERT's slot numbers (20 at 128, 80 at 512); masking under a cap as BERT's script caps it; exact
resume; hypothesis over lengths, mask probabilities, caps and masking units; the flags' errors on a CPU, on a GPU
without FP8 and without torchao; torchao's FP8 conversion of the encoder blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plmkit.cli import main
from plmkit.config import model_config_from_preset
from plmkit.data.objectives import (IGNORE_INDEX, DataConfig, MLMMasker, PretrainingStream, data_config_from_preset,
                                    default_max_predictions, predicted_positions)
from plmkit.errors import ConfigError
from plmkit.models.heads import MLMHead
from plmkit.models.protocol import LABELLED
from plmkit.training import accel
from plmkit.training.pretrain import build_model_config, build_pretraining_model, evaluate_pretraining
from plmkit.training.trainer import TrainConfig
from test_objectives import prepared, synthetic_documents

PRESETS = ("bert-tiny", "albert-tiny", "roberta-tiny", "electra-tiny")
TINY = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    """Synthetic prepared corpora (no data needed): BERT-style specials, and RoBERTa-style for roberta-tiny."""
    return {"bert": prepared(tmp_path_factory, "bert", synthetic_documents(40, 5, 300, seed=7)),
            "roberta": prepared(tmp_path_factory, "roberta", synthetic_documents(40, 5, 300, seed=8))}


def corpus_for(preset: str, corpora):
    return corpora["roberta" if preset.startswith("roberta") else "bert"]


def streams(preset: str, corpus, slots: int | None = None, batch: int = 6, max_length: int = 48, **data):
    """The preset's stream without and with static shapes (``slots``: the default for the length when None)."""
    dyn = data_config_from_preset(preset, {"max_length": max_length, **data})
    slots = default_max_predictions(max_length, dyn.mask_prob) if slots is None else slots
    return (PretrainingStream(corpus, dyn, batch_size=batch, seed=3),
            PretrainingStream(corpus, dyn.replace(max_predictions=slots), batch_size=batch, seed=3))


def tiny_model(preset: str, stream: PretrainingStream, **extra):
    overrides = dict(TINY, embedding_size=16) if preset.startswith(("albert", "electra")) else dict(TINY)
    overrides.update(extra)
    config = build_model_config(preset, overrides, stream.tokenizer, stream.config.max_length, data=stream.config)
    torch.manual_seed(0)
    model, _ = build_pretraining_model(config, stream.config, preset)
    model.prepare_training()
    return model


def value(t: torch.Tensor) -> float:
    return float(t.detach())


def grads(model, batch) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    out = model(**batch)
    out.loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# --------------------------------------------------------------------------- BERT's numbers, the data side
def test_default_slots_are_berts_max_predictions_per_seq_and_never_cap_a_row():
    assert default_max_predictions(128, 0.15) == 20 and default_max_predictions(512, 0.15) == 80
    for length in (8, 9, 64, 100, 128, 256, 384, 512, 1024):
        for p in (0.0, 0.1, 0.15, 0.2, 0.4, 1.0):
            slots = default_max_predictions(length, p)
            most = max(1, int(np.floor((length - 2) * p + 0.5)))
            assert slots % 4 == 0 and most <= slots < most + 4, (length, p, slots)


def test_predicted_positions_list_the_labelled_columns_in_order_padded_with_minus_one():
    labels = np.full((3, 6), IGNORE_INDEX)
    labels[0, [1, 4]] = 7
    labels[2, [0, 2, 3, 5]] = 9
    got = predicted_positions(labels, 5)
    assert got.tolist() == [[1, 4, -1, -1, -1], [-1] * 5, [0, 2, 3, 5, -1]]
    assert predicted_positions(labels, 8).shape == (3, 8)  # more slots than columns: padding
    with pytest.raises(ValueError, match="more than the 3 slots"):
        predicted_positions(labels, 3)


@pytest.mark.parametrize("preset", PRESETS)
def test_static_batches_have_the_dynamic_masks_and_fixed_shapes(preset, corpora):
    dyn, sta = streams(preset, corpus_for(preset, corpora))
    P = sta.config.max_predictions
    for epoch, rows in ((0, np.arange(6)), (1, np.arange(10, 16)), (3, np.array([5, 1, 9, 2, 7, 0]))):
        a, b = dyn.build_batch(epoch, rows), sta.build_batch(epoch, rows)
        assert set(b) == set(a) | {"mlm_positions"}
        assert all(torch.equal(a[k], b[k]) for k in a)  # the same masks: no row reaches the default cap
        pos = b["mlm_positions"]
        assert pos.shape == (6, P) and pos.dtype == torch.int64
        chosen = b["labels"] != IGNORE_INDEX
        for r in range(6):
            real = pos[r][pos[r] >= 0]
            assert real.tolist() == torch.nonzero(chosen[r]).view(-1).tolist()  # ascending, exactly the labelled
            assert (pos[r][len(real):] == -1).all()


@pytest.mark.parametrize("preset", ["bert-tiny", "albert-tiny"])
def test_a_row_with_more_candidates_than_slots_is_capped_as_in_berts_script(preset, corpora):
    """create_pretraining_data.py: num_to_predict = min(max_predictions_per_seq, max(1, round(n · p)))."""
    dyn, sta = streams(preset, corpora["bert"], slots=3, max_length=64)
    b = sta.build_batch(0, np.arange(6))
    counts = (b["labels"] != IGNORE_INDEX).sum(1)
    assert (counts <= 3).all() and (counts == 3).any()
    assert ((b["mlm_positions"] >= 0).sum(1) == counts).all()
    uncapped = (dyn.build_batch(0, np.arange(6))["labels"] != IGNORE_INDEX).sum(1)
    assert (uncapped > 3).any()  # the cap did bite


def test_max_predictions_belongs_to_masked_objectives():
    with pytest.raises(ConfigError, match="data.max_predictions=20.*masks nothing"):
        data_config_from_preset("gpt-tiny", {"max_predictions": 20})
    assert not data_config_from_preset("gpt-tiny").static_predictions
    assert data_config_from_preset("roberta-tiny", {"max_predictions": 20}).static_predictions


# --------------------------------------------------------------------------- the model side
@pytest.mark.parametrize("preset", ["bert-tiny", "albert-tiny", "roberta-tiny"])
def test_static_loss_gradients_logits_and_counts_equal_the_dynamic_path(preset, corpora):
    dyn, sta = streams(preset, corpus_for(preset, corpora))
    model = tiny_model(preset, sta)
    batch = sta.build_batch(0, np.arange(6))
    plain = {k: v for k, v in batch.items() if k != "mlm_positions"}
    model.eval()  # no dropout: both passes see the same network
    a, b = model(**plain), model(**batch)
    assert abs(value(a.mlm_loss) - value(b.mlm_loss)) < 1e-6 and abs(value(a.loss) - value(b.loss)) < 1e-6
    real = batch["mlm_positions"].view(-1) >= 0
    assert b.prediction_logits.shape[0] == batch["mlm_positions"].numel()
    assert torch.allclose(a.prediction_logits, b.prediction_logits[real], atol=1e-6)
    ga, gb = grads(model, plain), grads(model, batch)
    assert ga.keys() == gb.keys()
    assert all(torch.allclose(ga[n], gb[n], atol=1e-6, rtol=1e-5) for n in ga), preset
    # the loss contract counts real predictions, never the padded slots
    counts = model.loss_counts(batch)
    assert counts == model.loss_counts(plain)
    assert counts[LABELLED] == int(real.sum()) < batch["mlm_positions"].numel()


def test_a_batch_without_predictions_gives_a_zero_loss_in_both_paths():
    config = model_config_from_preset("bert-tiny", {"vocab_size": 50, **TINY})
    head = MLMHead(config)
    hidden = torch.randn(2, 7, 32, requires_grad=True)
    labels = torch.full((2, 7), IGNORE_INDEX)
    positions = torch.full((2, 4), -1)
    decoder = torch.randn(50, 32)
    _, dyn = head(hidden, decoder, labels)
    logits, sta = head(hidden, decoder, labels, positions)
    assert value(dyn) == value(sta) == 0.0 and logits.shape == (8, 50)
    sta.backward()
    assert hidden.grad is not None and not hidden.grad.any()


def test_electra_generator_uses_the_static_gather_and_padded_samples_change_nothing(corpora, monkeypatch):
    from plmkit.models import electra

    dyn, sta = streams("electra-tiny", corpora["bert"])
    model = tiny_model("electra-tiny", sta)
    batch = sta.build_batch(0, np.arange(6))
    plain = {k: v for k, v in batch.items() if k != "mlm_positions"}
    # With a deterministic sampler (the generator's argmax), the whole step is the dynamic one's.
    monkeypatch.setattr(electra, "sample_tokens", lambda logits, generator=None: logits.detach().argmax(-1))
    model.eval()
    a, b = model(**plain), model(**batch)
    assert abs(value(a.mlm_loss) - value(b.mlm_loss)) < 1e-6 and abs(value(a.loss) - value(b.loss)) < 1e-5
    assert torch.equal(a.corrupted_ids, b.corrupted_ids) and torch.equal(a.rtd_labels, b.rtd_labels)
    ga, gb = grads(model, plain), grads(model, batch)
    assert all(torch.allclose(ga[n], gb[n], atol=1e-6, rtol=1e-5) for n in ga)
    assert model.loss_counts(batch) == model.loss_counts(plain)
    monkeypatch.undo()
    # With the real sampler: only masked positions may change, whatever is sampled at the padded slots.
    model.train()
    out = model(**batch)
    masked = batch["labels"] != IGNORE_INDEX
    original = torch.where(masked, batch["labels"], batch["input_ids"])
    assert torch.equal(out.corrupted_ids[~masked], original[~masked]) and not out.rtd_labels[~masked].any()
    garbage = torch.full((batch["mlm_positions"].numel(),), 2)  # [CLS]: never the original of a masked token
    corrupted, replaced = electra.replace_masked(batch["input_ids"], batch["labels"], garbage, batch["mlm_positions"])
    assert torch.equal(corrupted[~masked], original[~masked]) and (corrupted[masked] == 2).all()
    assert int(replaced.sum()) == int(masked.sum())


def test_held_out_evaluation_is_the_same_with_static_batches(corpora):
    dyn, sta = streams("bert-tiny", corpora["bert"])
    model = tiny_model("bert-tiny", sta)
    plain = [dyn.build_batch(0, np.arange(i, i + 6)) for i in (0, 6)]
    static = [sta.build_batch(0, np.arange(i, i + 6)) for i in (0, 6)]
    a = evaluate_pretraining(model.eval(), plain, torch.device("cpu"))
    b = evaluate_pretraining(model, static, torch.device("cpu"))
    assert a.keys() == b.keys() and a["mlm_accuracy"] == b["mlm_accuracy"]
    assert all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(a[k])) for k in a), (a, b)


def test_a_compiled_step_has_no_graph_break_with_static_shapes_and_one_without(corpora):
    """What CUDA graphs need: one graph for the whole forward (torch._dynamo.explain traces, compiles nothing).
    Dropout is off here: on a CPU, plmkit's dropout draws its own mask bits (models/dropout.py), an op dynamo
    does not trace; on a GPU, dropout is torch's own."""
    import torch._dynamo

    dyn, sta = streams("bert-tiny", corpora["bert"])  # segment pairs: padding, attention_mask
    model = tiny_model("bert-tiny", sta, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    batch = sta.build_batch(0, np.arange(6))
    plain = {k: v for k, v in batch.items() if k != "mlm_positions"}
    torch._dynamo.reset()
    static = torch._dynamo.explain(model)(**batch)
    dynamic = torch._dynamo.explain(model)(**plain)
    torch._dynamo.reset()
    assert static.graph_break_count == 0 and static.graph_count == 1, static.break_reasons
    assert dynamic.graph_break_count >= 1  # the number of masked positions is read from the data


# --------------------------------------------------------------------------- hypothesis: any length, rate, cap, unit
@st.composite
def masking_cases(draw):
    L = draw(st.integers(8, 64))
    p = draw(st.floats(0.0, 1.0))
    unit = draw(st.sampled_from(["token", "whole-word", "ngram"]))
    cap = draw(st.one_of(st.none(), st.integers(1, 2 * L)))
    cfg = DataConfig(pair="none", masking="dynamic", packing="full-sentences", max_length=L, mask_prob=p,
                     whole_word=unit == "whole-word", ngram=3 if unit == "ngram" else 1, max_predictions=cap)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B = draw(st.integers(1, 5))
    ids = rng.integers(5, 60, size=(B, L))
    ids[:, 0], ids[:, -1] = 2, 3
    ws = rng.random((B, L)) < 0.6
    keys = rng.integers(0, 2**63, size=B, dtype=np.int64).astype(np.uint64)
    return cfg, ids, ws, keys


@given(case=masking_cases())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_static_slots_hold_every_prediction_and_give_the_dynamic_loss(case):
    cfg, ids, ws, keys = case
    slots = cfg.max_predictions if cfg.max_predictions is not None else default_max_predictions(cfg.max_length,
                                                                                                cfg.mask_prob)
    masker = MLMMasker(cfg, 4, {0, 1, 2, 3, 4}, 60)
    masked, labels = masker(ids, ws, keys)
    uncapped, _ = MLMMasker(cfg.replace(max_predictions=None), 4, {0, 1, 2, 3, 4}, 60)(ids, ws, keys)
    if cfg.max_predictions is None:  # the default never caps: the masks are the uncapped ones
        assert np.array_equal(masked, uncapped)
    pos = predicted_positions(labels, slots)  # raises if a row had more predictions than slots
    chosen = labels != IGNORE_INDEX
    assert ((pos >= 0).sum(1) == chosen.sum(1)).all()
    for r in range(len(ids)):
        assert pos[r][pos[r] >= 0].tolist() == np.flatnonzero(chosen[r]).tolist()
    config = model_config_from_preset("bert-tiny", {"vocab_size": 60, **TINY})
    torch.manual_seed(0)
    head = MLMHead(config)
    hidden = torch.randn(len(ids), cfg.max_length, 32)
    decoder = torch.randn(60, 32)
    lab = torch.from_numpy(labels)
    dyn_logits, dyn = head(hidden, decoder, lab)
    sta_logits, sta = head(hidden, decoder, lab, torch.from_numpy(pos))
    assert abs(value(dyn) - value(sta)) <= 1e-6 * max(1.0, abs(value(dyn)))
    assert torch.allclose(dyn_logits, sta_logits[torch.from_numpy(pos).view(-1) >= 0], atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- end to end: runs, resume
@pytest.fixture(scope="module")
def brown(data_dir, tmp_path_factory) -> Path:
    """12 Brown documents prepared with a WordPiece tokenizer trained on them (vocab 1000)."""
    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.tokenization import train_tokenizer

    root = tmp_path_factory.mktemp("static-brown")
    files = [data_dir / "corpora" / "brown" / f"c{g}{i:02d}" for g in "abfjkn" for i in (1, 2)]
    train_tokenizer("wordpiece", read_sentences(files), vocab_size=1000).save_pretrained(root / "tok")
    prepare_corpus(files, root / "prep", tokenizer=root / "tok")
    return root / "prep"


def pretrain_args(corpus, out: Path, preset: str = "bert-tiny", *extra: str) -> list[str]:
    return ["pretrain", "--preset", preset, "--data", str(corpus), "--out", str(out), "--batch-size", "4",
            "--max-length", "48", "--log-every", "1", "--no-progress", "--seed", "5", "--eval-every", "4",
            "--set", "model.hidden_size=32", "--set", "model.num_attention_heads=4",
            "--set", "model.intermediate_size=64", *extra]


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_static_run_resumes_exactly(brown, tmp_path, capsys):
    static = ("--set", "data.max_predictions=20")
    assert main(pretrain_args(brown, tmp_path / "whole", "bert-tiny", "--max-steps", "8", *static)) == 0
    assert main(pretrain_args(brown, tmp_path / "cut", "bert-tiny", "--max-steps", "8", "--stop-after", "3",
                              *static)) == 0
    assert main(pretrain_args(brown, tmp_path / "cut", "bert-tiny", "--max-steps", "8", "--resume", *static)) == 0
    whole, cut = records(tmp_path / "whole"), records(tmp_path / "cut")
    assert len([r for r in whole if "loss" in r]) == 8 and any("eval_mlm_loss" in r for r in whole)
    untimed = lambda recs: [{k: v for k, v in r.items() if k not in ("elapsed_s", "tokens_per_s")} for r in recs]  # noqa: E731
    assert untimed(whole) == untimed(cut)  # losses, evaluations, learning rates: exactly
    # resuming with another number of slots is another run: refused, naming the setting
    capsys.readouterr()
    assert main(pretrain_args(brown, tmp_path / "cut", "bert-tiny", "--max-steps", "9", "--resume",
                              "--set", "data.max_predictions=24")) != 0
    assert "max_predictions" in capsys.readouterr().err


def test_electra_pretrains_with_static_shapes(brown, tmp_path):
    out = tmp_path / "electra"
    assert main(pretrain_args(brown, out, "electra-tiny", "--max-steps", "4",
                              "--set", "model.embedding_size=16", "--set", "data.max_predictions=12")) == 0
    last = [r for r in records(out) if "eval_rtd_loss" in r][-1]
    assert np.isfinite(last["eval_mlm_loss"]) and 0 <= last["eval_mlm_accuracy"] <= 1


# --------------------------------------------------------------------------- the flags
@pytest.mark.parametrize("flag, words", [("--cuda-graphs", "needs a CUDA GPU"), ("--fp8", "FP8 tensor cores")])
def test_gpu_flags_on_a_cpu_are_clear_errors_that_leave_nothing(flag, words, brown, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(pretrain_args(brown, out, "bert-tiny", "--max-steps", "2", "--device", "cpu", flag)) != 0
    err = capsys.readouterr().err
    assert flag in err and words in err and "device is cpu" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    # the same through --set train.<field>
    field = flag[2:].replace("-", "_")
    assert main(pretrain_args(brown, out, "bert-tiny", "--max-steps", "2", "--device", "cpu",
                              "--set", f"train.{field}=true")) != 0
    assert flag in capsys.readouterr().err


def test_fp8_on_a_gpu_without_fp8_or_without_torchao_is_a_clear_error(monkeypatch):
    train = TrainConfig(max_steps=1, fp8=True)
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    with pytest.raises(ConfigError, match=r"--fp8 .*A100.*compute capability 8\.0.*8\.9 or newer.*--bf16"):
        accel.check(train, cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(accel.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"--fp8 .*torchao.*not installed.*pip install 'plmkit\[fp8\]'"):
        accel.check(train, cuda)
    accel.check(TrainConfig(max_steps=1, cuda_graphs=True), cuda)  # CUDA graphs need no more than a CUDA GPU


def test_cuda_graphs_turn_on_static_shapes_and_compile_in_reduce_overhead_mode(monkeypatch, capsys):
    graphs = TrainConfig(max_steps=1, cuda_graphs=True)
    data = data_config_from_preset("bert-base")
    static = accel.static_data_config(data, graphs)
    assert static.max_predictions == 20 and static.static_predictions
    assert "data.max_predictions=20" in capsys.readouterr().err
    assert accel.static_data_config(data.replace(max_predictions=16), graphs).max_predictions == 16  # the user's
    assert accel.static_data_config(data_config_from_preset("gpt-tiny"), graphs).max_predictions is None
    assert accel.static_data_config(data, TrainConfig(max_steps=1)).max_predictions is None  # off: unchanged
    modes = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: modes.append(kw.get("mode")) or module)
    net = torch.nn.Linear(2, 2)
    assert accel.compiled(net, TrainConfig(max_steps=1)) is net and modes == []
    accel.compiled(net, graphs)
    accel.compiled(net, TrainConfig(max_steps=1, compile=True))
    accel.compiled(net, TrainConfig(max_steps=1, fp8=True))  # FP8 alone: not compiled (the same numbers, slowly)
    assert modes == ["reduce-overhead", None]


def test_fp8_converts_the_encoder_blocks_and_keeps_names_and_parameters():
    pytest.importorskip("torchao")
    config = model_config_from_preset("bert-tiny", {"vocab_size": 99, **TINY})
    torch.manual_seed(0)
    from plmkit.models import PlmModel

    model = PlmModel(config, task="pretraining")
    names, params = set(model.state_dict()), {n: p for n, p in model.named_parameters()}
    ids = torch.randint(5, 99, (2, 16))
    batch = {"input_ids": ids, "labels": ids, "next_sentence_label": torch.tensor([0, 1])}
    before = value(model.eval()(**batch).loss)
    converted = accel.convert_fp8(model)
    assert converted and all(".layers." in n for n in converted)
    assert len(converted) == 4 * config.num_hidden_layers  # QKV, attention output, FFN in and out
    assert type(model.heads["mlm"].dense) is torch.nn.Linear  # heads keep their precision
    assert set(model.state_dict()) == names
    assert all(p is params[n] for n, p in model.named_parameters())  # the optimizer's parameters, unchanged
    after = value(model(**batch).loss)
    assert abs(after - before) < 0.05 * before  # FP8 rounding, not another model


# --------------------------------------------------------------------------- the prepared GPU script
def test_the_gpu_script_runs_every_part_on_the_cpu(tmp_path, capsys):
    """benchmarks/gpu_issue25.py --dry-run: the code paths of the one GPU call (contenders, the loss check, the
    profile, the loss curves through the CLI), with a tiny model on one CPU thread; its curves compare the
    dynamic and the static MLM path through the trainer, which must agree."""
    import importlib.util
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_issue25.py"
    spec = importlib.util.spec_from_file_location("gpu_issue25", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        assert module.main(["--dry-run", "--out", str(tmp_path)]) == 0
    finally:
        sys.path.remove(str(script.parent))  # the script puts its folder first, for pretrain_throughput
    throughput, curves = json.loads((tmp_path / "issue25.json").read_text())
    assert {"transformers", "compiled", "graphs"} <= set(throughput["contenders"])
    losses = throughput["loss_check"]  # plmkit dynamic = plmkit static = transformers, checked before timing
    assert abs(losses["plmkit_static"] - losses["transformers"]) < 1e-4 * losses["transformers"]
    assert throughput["slots"] == 8 and all(c["tokens_per_s"] > 0 for c in throughput["contenders"].values())
    comparison = curves["comparison"]
    assert comparison["of"] == ["static", "dynamic"] and comparison["equal_within_noise"]
    assert abs(comparison["mean_difference"]) < 1e-4 and comparison["steps"] == 6
    assert "| contender | tokens/s |" in capsys.readouterr().out
