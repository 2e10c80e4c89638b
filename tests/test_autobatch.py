"""`--micro-batch N|auto`: splitting the batch is the same optimisation, the probe leaves no trace, the
choice is deterministic under faked memory readers, and a resumed auto run reuses its recorded choice.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from plmkit.cli import main
from plmkit.config import ModelConfig
from plmkit.data import prepare_corpus
from plmkit.errors import PlmkitError, UsageError
from plmkit.models import PlmModel
from plmkit.tokenization import train_tokenizer
from plmkit.training import autobatch

WORDS = "the a jury said city run well found that it was report election county fulton grand".split()
# bert-tiny (2 layers, hidden 128) on a ~100-piece vocabulary; no dropout, so split and whole batches compare.
TINY = ["--set", "model.hidden_dropout_prob=0",
        "--set", "model.attention_probs_dropout_prob=0", "--set", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A synthetic corpus (vocab ~100 word pieces) prepared for BERT's MLM + NSP."""
    root = tmp_path_factory.mktemp("autobatch")
    rng = random.Random(0)
    lines = []
    for _ in range(24):
        lines += [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + " ." for _ in range(10)] + [""]
    (root / "text.txt").write_text("\n".join(lines) + "\n")
    train_tokenizer("wordpiece", lines, vocab_size=99).save_pretrained(root / "tok")
    prepare_corpus([root / "text.txt"], root / "prep", tokenizer=root / "tok", workers=1)
    return root / "prep"


@pytest.fixture(scope="module")
def split_run(corpus, tmp_path_factory) -> Path:
    """The reference run: batch 8 in micro-batches of 2 (4 accumulation steps)."""
    out = tmp_path_factory.mktemp("split") / "run"
    assert pretrain(corpus, out, "--batch-size", "8", "--micro-batch", "2") == 0
    return out


def pretrain(corpus: Path, out: Path, *extra: str) -> int:
    return main(["pretrain", "--preset", "bert-tiny", "--data", str(corpus), "--out", str(out), "--max-length", "32",
                 "--max-steps", "4", "--log-every", "1", "--no-progress", "--seed", "3", "--lr", "3e-3",
                 "--warmup", "1", *TINY, *extra])


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "loss" in r]


def final_eval(run: Path) -> dict[str, float]:
    recs = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "eval_mlm_loss" in r]
    return recs[-1]


def weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    folder = sorted((run / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    return load_file(str(folder / "model.safetensors"))


# ----------------------------------------------------------------------------------- choosing M
def test_divisor_check_names_both_options_and_suggests_divisors():
    assert autobatch.divisors(12) == [1, 2, 3, 4, 6, 12]
    with pytest.raises(UsageError) as e:
        autobatch.check_micro_batch(3, 8)
    msg = str(e.value)
    assert "--micro-batch 3" in msg and "--batch-size 8" in msg and "1, 2, 4, 8" in msg
    autobatch.check_micro_batch(4, 8)
    autobatch.check_micro_batch("auto", 8)
    assert autobatch.parse_micro_batch("AUTO") == "auto" and autobatch.parse_micro_batch("16") == 16


def linear_peak(fixed: float, per_row: float):
    return lambda m: int(fixed + per_row * m)


def test_cpu_estimate_fits_a_line_and_takes_the_largest_divisor_under_the_budget(monkeypatch):
    monkeypatch.setattr(autobatch, "current_rss", lambda: int(0.5e9))
    monkeypatch.setattr(autobatch, "available_memory", lambda: int(2.5e9))  # budget 0.8 × 3.0 GB = 2.4 GB
    seen = []

    def measure(m):
        seen.append(m)
        return linear_peak(1e9, 1e8)(m)

    c = autobatch.estimate_cpu(None, None, 64, measure=measure)
    assert seen == [2, 2, 4]  # warm-up, then the two points of the line
    assert (c.micro_batch, c.grad_accum) == (8, 8)  # 1 GB + 0.1 GB/row fits ≤ 14 rows; largest divisor of 64: 8
    assert c.details["per_row_bytes"] == pytest.approx(1e8)
    # Not-yet-allocated optimizer state counts: 0.7 GB more leaves room for 7 rows → 4.
    c = autobatch.estimate_cpu(None, None, 64, extra_bytes=int(0.7e9), measure=linear_peak(1e9, 1e8))
    assert c.micro_batch == 4
    assert c.message().startswith("plmkit: micro-batch 4 × 16 accumulation steps = batch 64 (estimate: peak ")
    # Plenty of memory: the whole batch; none at all: one row, and the message says it may not fit.
    monkeypatch.setattr(autobatch, "available_memory", lambda: int(1e12))
    assert autobatch.estimate_cpu(None, None, 64, measure=linear_peak(1e9, 1e8)).micro_batch == 64
    monkeypatch.setattr(autobatch, "available_memory", lambda: 0)
    c = autobatch.estimate_cpu(None, None, 64, measure=linear_peak(1e9, 1e8))
    assert c.micro_batch == 1 and "may not fit" in c.reason


def test_cpu_estimate_falls_back_to_the_whole_batch_without_proc(monkeypatch):
    monkeypatch.setattr(autobatch, "available_memory", lambda: None)
    c = autobatch.estimate_cpu(None, None, 32, measure=lambda m: pytest.fail("must not measure"))
    assert c.micro_batch == 32 and "cannot be read" in c.reason
    monkeypatch.setattr(autobatch, "available_memory", lambda: int(1e9))
    monkeypatch.setattr(autobatch, "current_rss", lambda: int(1e8))
    c = autobatch.estimate_cpu(None, None, 32, measure=lambda m: None)
    assert c.micro_batch == 32 and "cannot be measured" in c.reason


def test_cuda_search_goes_down_from_the_largest_divisor_past_oom_and_the_margin():
    tried = []

    def measure(m):  # OOM above 32 rows; 1 GB + 0.1 GB per row below
        tried.append(m)
        return None if m > 32 else int(1e9 + 1e8 * m)

    # 32 rows: (1 + 3.2 + 1 GB optimizer state) × 1.1 = 5.7 GB > 5 GB; 16 rows: 3.96 GB fits.
    c = autobatch.probe_cuda(None, None, 128, torch.device("cuda"), extra_bytes=int(1e9), measure=measure,
                             capacity=int(5e9))
    assert tried == [128, 64, 32, 16] and (c.micro_batch, c.grad_accum) == (16, 8)
    assert "probe: peak 3.6 GB at 16" in c.message() and "5.0 GB available" in c.message()
    with pytest.raises(PlmkitError, match="not even one row"):
        autobatch.probe_cuda(None, None, 8, torch.device("cuda"), measure=lambda m: None, capacity=int(5e9))


def test_ranks_agree_on_the_smallest_choice(monkeypatch):
    import torch.distributed as tdist

    from plmkit.training.distributed import Dist

    def fake_all_reduce(t, op):  # another rank chose 4
        assert op == tdist.ReduceOp.MIN
        t.copy_(torch.minimum(t, torch.tensor([4])))

    monkeypatch.setattr(tdist, "is_initialized", lambda: True)
    monkeypatch.setattr(tdist, "all_reduce", fake_all_reduce)
    mine = autobatch.MicroBatchChoice(32, 16, True, "probe: ...")
    got = autobatch.agree(mine, Dist(rank=0, world_size=2))
    assert (got.micro_batch, got.grad_accum) == (4, 8) and "smallest over 2 ranks" in got.reason
    assert autobatch.agree(mine, Dist()).micro_batch == 16  # a single process: no collective


def test_probe_leaves_weights_rng_grads_and_mode_untouched(monkeypatch):
    cfg = ModelConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=64)
    torch.manual_seed(0)
    model = PlmModel(cfg, task="pretraining").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)

    def make_batch(m):  # full length, labels included; dropout is on during the probe
        ids = torch.randint(5, 99, (m, 64), generator=g)
        return {"input_ids": ids, "labels": torch.where(torch.rand(m, 64, generator=g) < 0.15, ids, -100),
                "next_sentence_label": torch.randint(0, 2, (m,), generator=g)}

    monkeypatch.setattr(autobatch, "available_memory", lambda: int(1e12))
    rng = torch.get_rng_state()
    c = autobatch.choose_micro_batch(model, make_batch, 8, torch.device("cpu"))
    assert c.micro_batch == 8 and c.details["measured"]  # real /proc readings on Linux
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------------- end to end
def test_micro_batches_are_the_same_optimisation_as_the_whole_batch(corpus, split_run, tmp_path, capsys):
    assert pretrain(corpus, tmp_path / "whole", "--batch-size", "8") == 0
    a, b = losses(tmp_path / "whole"), losses(split_run)
    assert [s for s, _ in a] == [s for s, _ in b] == [1, 2, 3, 4]
    assert max(abs(x - y) for (_, x), (_, y) in zip(a, b)) < 1e-5, list(zip(a, b))
    assert a[0][1] != a[-1][1]  # the weights moved: equal losses are not a frozen model
    ea, eb = final_eval(tmp_path / "whole"), final_eval(split_run)
    assert abs(ea["eval_mlm_loss"] - eb["eval_mlm_loss"]) < 1e-5  # the same held-out rows, in micro-batches
    wa, wb = weights(tmp_path / "whole"), weights(split_run)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5
    run = json.loads((split_run / "run.json").read_text())
    assert run["micro_batch"]["micro_batch"] == 2 and run["train_config"]["grad_accum"] == 4


def test_auto_equals_explicit_bit_for_bit_and_resume_reuses_the_recorded_choice(corpus, split_run, tmp_path,
                                                                                 monkeypatch, capsys):
    import plmkit.training.pretrain as pretrain_mod

    real_measure = autobatch._measure_cpu

    def fake_measure(model, make_batch, m, bf16):  # real forward + backward, a fixed memory line
        real_measure(model, make_batch, m, bf16)
        return int(1e9 + 1e8 * m)

    monkeypatch.setattr(autobatch, "_measure_cpu", fake_measure)
    monkeypatch.setattr(autobatch, "current_rss", lambda: int(0.125e9))
    monkeypatch.setattr(autobatch, "available_memory", lambda: int(1.5e9))  # budget 1.3 GB: 2 rows fit, 4 do not
    assert pretrain(corpus, tmp_path / "auto", "--batch-size", "8", "--micro-batch", "auto") == 0
    err = capsys.readouterr().err
    assert "plmkit: micro-batch 2 × 4 accumulation steps = batch 8 (estimate: peak 1.2" in err
    assert losses(tmp_path / "auto") == losses(split_run)
    wa, wb = weights(tmp_path / "auto"), weights(split_run)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    # Stop after 2 steps, then resume where the probe would now choose differently: the recorded 2 is reused.
    first = ("--batch-size", "8", "--micro-batch", "auto", "--stop-after", "2")
    assert pretrain(corpus, tmp_path / "resumed", *first) == 0
    capsys.readouterr()

    def no_probe(*a, **k):
        raise AssertionError("a resumed run must not probe again")

    monkeypatch.setattr(pretrain_mod, "choose_micro_batch", no_probe)
    monkeypatch.setattr(autobatch, "available_memory", lambda: int(1e12))
    assert pretrain(corpus, tmp_path / "resumed", "--batch-size", "8", "--micro-batch", "auto", "--resume") == 0
    assert "micro-batch 2 × 4 accumulation steps = batch 8 (recorded in the run" in capsys.readouterr().err
    assert losses(tmp_path / "resumed") == losses(split_run)
    wc = weights(tmp_path / "resumed")
    assert all(torch.equal(wa[k], wc[k]) for k in wa)


def test_bad_micro_batch_requests_are_usage_errors(corpus, tmp_path, capsys):
    assert pretrain(corpus, tmp_path / "a", "--batch-size", "8", "--micro-batch", "3") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--micro-batch 3" in err and "--batch-size 8" in err and "1, 2, 4, 8" in err and "Traceback" not in err
    assert pretrain(corpus, tmp_path / "b", "--batch-size", "8", "--micro-batch", "2", "--grad-accum", "2") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--grad-accum 2" in err and "--micro-batch 2" in err
    assert pretrain(corpus, tmp_path / "c", "--micro-batch", "many") == 2
    assert "argument --micro-batch: expected 'auto' or a positive integer" in capsys.readouterr().err
    assert not any((tmp_path / x).exists() for x in "abc")
    # A resumed run keeps its micro-batch: another explicit one is refused with the one to use.
    assert pretrain(corpus, tmp_path / "r", "--batch-size", "8", "--micro-batch", "4", "--stop-after", "1") == 0
    assert "plmkit: micro-batch 4 × 2 accumulation steps = batch 8 (--micro-batch as given)" in capsys.readouterr().err
    assert pretrain(corpus, tmp_path / "r", "--batch-size", "8", "--micro-batch", "2", "--resume") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--micro-batch 4" in err and "resume with --micro-batch 4 or auto" in err
