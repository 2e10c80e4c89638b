"""Crash-safe by default, and ``--resume`` continues the same run or refuses (issue 20, items 3 and 4).

* By default the trainer saves a resumable checkpoint every ``save_minutes`` of training; a run killed
  after such a save and resumed ends bit for bit where an uninterrupted run ends (weights and logged
  losses, also between two log lines). ``--save-every 0`` turns periodic saving off, on request only.
* Each run records a fingerprint (model, objective and data settings, the identity of the prepared data,
  the tokenizer and the training file, the seed); a ``--resume`` that differs in any of them is refused
  with every difference listed, and leaves the run as it was. Stop, logging and saving settings may change,
  and so may where the data lies (it is identified by content).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from plmkit.cli import main
from plmkit.config import ModelConfig
from plmkit.errors import ConfigError
from plmkit.models import PlmModel
from plmkit.training import checkpoint as ckpt
from plmkit.training.trainer import TrainConfig, Trainer

from test_trainer import ToySource, cfg, final_weights, losses, tiny_model


class Killed(Exception):
    """Stands for a kill -9 right after a checkpoint was written (nothing after it runs)."""


def kill_after_saving(monkeypatch, step: int) -> list[int]:
    """Make ``save_checkpoint`` die right after it wrote checkpoint ``step``; returns the steps saved so far."""
    real = ckpt.save_checkpoint
    saved: list[int] = []

    def save(run_dir, at, *args, **kwargs):
        path = real(run_dir, at, *args, **kwargs)
        saved.append(at)
        if at == step:
            raise Killed(f"killed after saving step {at}")
        return path

    monkeypatch.setattr(ckpt, "save_checkpoint", save)
    return saved


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- saving by default
def test_the_default_is_a_checkpoint_every_five_minutes_and_zero_is_only_on_request():
    c = TrainConfig(max_steps=1)
    assert c.save_every is None and c.save_minutes == 5.0
    from plmkit.finetune import FinetuneConfig

    f = FinetuneConfig(task="sst2", model=None, train="x", out="y")
    assert f.save_every is None and f.save_minutes == 5.0


def test_checkpoints_by_the_clock_resume_exactly_even_between_log_lines(tmp_path, monkeypatch):
    # Reference: default saving (nothing periodic in a run this short), logged every 3 steps.
    ref = tmp_path / "ref"
    Trainer(tiny_model(), cfg(log_every=3), ToySource(4), ref).train()
    assert [p.name for p in ckpt.list_checkpoints(ref)] == ["step-0000008"]
    # The same run with a clock interval so short that every step is due; killed right after step 5's save,
    # which falls between the log lines of steps 3 and 6.
    run = tmp_path / "run"
    saved = kill_after_saving(monkeypatch, 5)
    with pytest.raises(Killed):
        Trainer(tiny_model(), cfg(log_every=3, save_minutes=1e-9, keep_last=2), ToySource(4), run).train()
    assert saved == [1, 2, 3, 4, 5]  # one checkpoint after every step, by the clock alone
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step-0000004", "step-0000005"]  # keep_last rotates
    state = ckpt.load_trainer_state(ckpt.latest_checkpoint(run))
    assert state["log_window"]["n"] == 2  # steps 4 and 5, not logged yet
    monkeypatch.undo()
    torch.manual_seed(4321)  # the resumed run must not depend on the ambient RNG
    summary = Trainer(tiny_model(seed=7), cfg(log_every=3), ToySource(4), run, resume=True).train()
    assert summary["step"] == 8
    assert losses(run) == losses(ref) and [s for s, _ in losses(ref)] == [3, 6, 8]
    assert same_weights(final_weights(ref, 8), final_weights(run, 8))


def test_save_every_zero_turns_periodic_saving_off_and_save_every_n_adds_steps(tmp_path):
    Trainer(tiny_model(), cfg(max_steps=4, save_every=0, save_minutes=1e-9, keep_last=10), ToySource(4),
            tmp_path / "off").train()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "off")] == ["step-0000004"]  # only the final one
    Trainer(tiny_model(), cfg(max_steps=4, save_minutes=0, keep_last=10), ToySource(4), tmp_path / "noclock").train()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "noclock")] == ["step-0000004"]
    Trainer(tiny_model(), cfg(max_steps=5, save_every=2, keep_last=10), ToySource(4), tmp_path / "steps").train()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "steps")] == ["step-0000002", "step-0000004",
                                                                           "step-0000005"]


@pytest.mark.parametrize("key,value", [("save_minutes", -1.0), ("save_minutes", float("nan")),
                                       ("save_minutes", "5"), ("save_every", -3), ("save_every", 2.5)])
def test_bad_saving_settings_are_config_errors(key, value, tmp_path):
    with pytest.raises(ConfigError, match=f"train.{key}"):
        TrainConfig.from_dict({"max_steps": 2, key: value})


def test_trainer_fingerprint_differences_are_listed_together(tmp_path):
    fp = {"model": {"hidden_size": 32, "num_hidden_layers": 2}, "data": {"max_length": 128, "mask_prob": 0.15},
          "corpus": {"path": "/a/prep", "sha256": "1" * 64}, "tokenizer_hash": "a" * 64, "seed": 0}
    Trainer(tiny_model(), cfg(stop_after=2), ToySource(4), tmp_path, run_config={"fingerprint": fp}).train()
    now = json.loads(json.dumps(fp))
    now["data"].update(max_length=64, mask_prob=0.2)
    now["corpus"] = {"path": "/b/prep", "sha256": "2" * 64}
    with pytest.raises(ConfigError) as e:
        Trainer(tiny_model(), cfg(lr=2e-3), ToySource(4), tmp_path, resume=True,
                run_config={"fingerprint": now}).train()
    text = str(e.value)
    for part in ("4 differences", "lr: checkpoint 0.001 vs now 0.002", "data.max_length: checkpoint 128 vs now 64",
                 "data.mask_prob: checkpoint 0.15 vs now 0.2",
                 "prepared data differs: checkpoint /a/prep (sha256 111111111111…) vs now /b/prep (sha256 2222"):
        assert part in text, (part, text)
    # The same data in another folder is the same data: identity is by content.
    moved = {**fp, "corpus": {"path": "/elsewhere/prep", "sha256": "1" * 64}}
    assert Trainer(tiny_model(), cfg(), ToySource(4), tmp_path, resume=True,
                   run_config={"fingerprint": moved}).train()["step"] == 8


# --------------------------------------------------------------------------- pretrain
BROWN_A = [f"c{g}01" for g in "abfgjkn"]
BROWN_B = [f"c{g}02" for g in "abfgjkn"]


@pytest.fixture(scope="module")
def corpora(data_dir, tmp_path_factory) -> dict[str, Path]:
    """Two Brown slices prepared with one tokenizer, and a copy of the first in another folder."""
    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.tokenization import train_tokenizer

    root = tmp_path_factory.mktemp("fingerprint-data")
    brown = data_dir / "corpora" / "brown"
    tok = train_tokenizer("wordpiece", read_sentences([brown / f for f in BROWN_A + BROWN_B]), vocab_size=600)
    tok.save_pretrained(root / "tok")
    out = {}
    for name, files in (("a", BROWN_A), ("b", BROWN_B)):
        prepare_corpus([brown / f for f in files], root / f"prep-{name}", tokenizer=root / "tok", workers=1)
        out[name] = root / f"prep-{name}"
    shutil.copytree(out["a"], root / "moved" / "prep-a")
    out["a-moved"] = root / "moved" / "prep-a"
    return out


def pretrain_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--preset", "bert-tiny", "--data", str(corpus), "--out", str(out), "--batch-size", "8",
            "--max-length", "64", "--log-every", "2", "--no-progress", "--seed", "3",
            "--set", "train.tensorboard=false", *extra]


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of a run folder but plmkit's own bookkeeping of the folder (.plmkit-*: its writer's lock and
    ownership marker, which record who used the folder last)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and not p.name.startswith(".plmkit-")}


def loss_lines(run: Path) -> list[tuple[int, float]]:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if "loss" in r]


def newest_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.list_checkpoints(run)[-1] / "model.safetensors"))


def test_pretrain_resume_with_other_data_length_or_masking_is_refused(corpora, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(pretrain_args(corpora["a"], run, "--max-steps", "6", "--stop-after", "2")) == 0
    fingerprint = json.loads((run / "run.json").read_text())["fingerprint"]
    assert fingerprint["data"]["max_length"] == 64 and fingerprint["seed"] == 3
    assert set(fingerprint) >= {"model", "data", "corpus", "tokenizer_hash", "seed"}
    assert ckpt.load_trainer_state(ckpt.latest_checkpoint(run))["run_config"]["fingerprint"] == fingerprint
    before = snapshot(run)
    capsys.readouterr()
    cases = {
        "another prepared corpus": (pretrain_args(corpora["b"], run, "--max-steps", "6", "--resume"),
                                    [f"prepared data differs: checkpoint {corpora['a'].resolve()} (sha256 ",
                                     f"vs now {corpora['b'].resolve()} (sha256 "]),
        "another --max-length": (pretrain_args(corpora["a"], run, "--max-steps", "6", "--resume", "--max-length", "32"),
                                 ["data.max_length: checkpoint 64 vs now 32"]),
        "another masking rate": (pretrain_args(corpora["a"], run, "--max-steps", "6", "--resume",
                                               "--set", "data.mask_prob=0.2"),
                                 ["data.mask_prob: checkpoint 0.15 vs now 0.2"]),
        "another pair objective": (pretrain_args(corpora["a"], run, "--max-steps", "6", "--resume",
                                                 "--set", "data.pair=sop"),
                                   ["data.pair: checkpoint 'nsp' vs now 'sop'"]),
        "another seed": (pretrain_args(corpora["a"], run, "--max-steps", "6", "--resume", "--seed", "4"),
                         ["seed: checkpoint 3 vs now 4"]),
        "all at once": (pretrain_args(corpora["b"], run, "--max-steps", "6", "--resume", "--max-length", "32",
                                      "--set", "data.mask_prob=0.2"),
                        ["3 differences", "prepared data differs", "data.max_length: checkpoint 64 vs now 32",
                         "data.mask_prob: checkpoint 0.15 vs now 0.2"]),
    }
    for name, (argv, expected) in cases.items():
        code = main(argv)
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2, (name, err)
        assert "Traceback" not in err and "plmkit: error: --resume from" in err, (name, err)
        for part in expected:
            assert part in err, (name, part, err)
        assert snapshot(run) == before, name  # a refused resume changes nothing in the run


def test_pretrain_resume_may_change_stop_log_and_save_settings_and_move_the_data(corpora, tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(pretrain_args(corpora["a"], ref, "--max-steps", "6")) == 0
    assert main(pretrain_args(corpora["a"], run, "--max-steps", "6", "--stop-after", "2", "--save-minutes", "1",
                              "--keep-last", "2")) == 0
    # Resume from the same data in another folder, with other stop / save / eval settings (the planned
    # length, --max-steps, stays: it sets the learning-rate schedule).
    assert main(pretrain_args(corpora["a-moved"], run, "--max-steps", "6", "--resume", "--save-every", "0",
                              "--save-minutes", "0", "--keep-last", "1", "--eval-every", "4")) == 0
    assert loss_lines(run) == loss_lines(ref) and len(loss_lines(ref)) == 3
    assert same_weights(newest_weights(ref), newest_weights(run))


def test_ddp_ranks_save_by_rank_zeros_clock_at_the_same_steps(corpora, tmp_path):
    """Only rank 0 reads the clock; its decision travels in the step's all-reduce. Were the ranks to decide
    apart, one would wait in the save's barrier while the other ran on, and the run would hang or fail."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "plmkit.cli",
           *pretrain_args(corpora["a"], out, "--max-steps", "10", "--batch-size", "4", "--log-every", "1",
                          "--save-minutes", "0.0001", "--keep-last", "20")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    steps = [int(p.name[len(ckpt.PREFIX):]) for p in ckpt.list_checkpoints(out)]
    assert len(steps) >= 3 and steps[-1] == 10, steps  # by the clock (6 ms), every step or nearly
    assert len(loss_lines(out)) == 10
    assert not list(out.glob(".rng-rank*"))


# --------------------------------------------------------------------------- finetune
WORDS = "the a man woman dog cat plays runs is was red blue big small house car river city".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    from plmkit.tokenization import train_tokenizer

    rng = np.random.default_rng(0)
    text = [" ".join(rng.choice(WORDS, size=8)) for _ in range(200)]
    tok = train_tokenizer("wordpiece", text, vocab_size=100, min_frequency=1)
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=64)
    folder = tmp_path_factory.mktemp("tiny-bert")
    PlmModel(config, add_pooler=True).save_pretrained(folder, tokenizer=tok)
    return folder


def classify_file(path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            words = list(rng.choice(WORDS, 6))
            f.write(json.dumps({"text": " ".join(words), "label": "dog" if "dog" in words else "none"}) + "\n")
    return path


def finetune_args(model: Path, train: Path, out: Path, *extra) -> list[str]:
    return [str(a) for a in ("finetune", "classify", "--model", model, "--train", train, "--out", out,
                             "--text-columns", "text", "--label-column", "label", "--epochs", "2",
                             "--batch-size", "8", "--lr", "1e-3", "--max-length", "32", "--no-tensorboard",
                             "--seed", "5", *extra)]


def run_cli(argv: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(argv)


def test_finetune_saves_by_default_resumes_exactly_and_refuses_another_run(tiny_bert, tmp_path, monkeypatch,
                                                                         capsys):
    train = classify_file(tmp_path / "train.jsonl", 64)
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert run_cli(finetune_args(tiny_bert, train, ref)) == 0
    # Killed right after the checkpoint of step 5 (of 2 epochs x 8 batches), written by the clock
    # (--save-minutes so short that every step is due; the default is 5 minutes).
    saved = kill_after_saving(monkeypatch, 5)
    with pytest.raises(Killed):
        run_cli(finetune_args(tiny_bert, train, run, "--save-minutes", "1e-9"))
    assert saved == [1, 2, 3, 4, 5]
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step-0000005"]  # fine-tuning keeps the last one
    monkeypatch.undo()
    before = snapshot(run)
    capsys.readouterr()
    # Another training file (one record changed), other task options or another seed: refused, nothing changed.
    other = tmp_path / "other.jsonl"
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    other.write_text("".join(lines[:-1]) + json.dumps({"text": "the red dog", "label": "dog"}) + "\n",
                     encoding="utf-8")
    cases = {
        "another training file": (finetune_args(tiny_bert, other, run, "--resume"),
                                  [f"training file differs: checkpoint {train.resolve()} (sha256 ",
                                   f"vs now {other.resolve()} (sha256 "]),
        "another --max-length": (finetune_args(tiny_bert, train, run, "--resume", "--max-length", "16"),
                                 ["options.max_length: checkpoint 32 vs now 16"]),
        "another --seed": (finetune_args(tiny_bert, train, run, "--resume", "--seed", "6"),
                           ["seed: checkpoint 5 vs now 6"]),
    }
    for name, (argv, expected) in cases.items():
        code = run_cli(argv)
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and "Traceback" not in err, (name, err)
        for part in expected:
            assert part in err, (name, part, err)
        assert snapshot(run) == before, name
    # The same command plus --resume (the data moved to another folder) ends where the uninterrupted run ended.
    moved = tmp_path / "moved" / "train.jsonl"
    moved.parent.mkdir()
    shutil.copy(train, moved)
    assert run_cli(finetune_args(tiny_bert, moved, run, "--resume")) == 0
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert same_weights(a, b)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, run))
    assert ma["metrics"] == mb["metrics"] and ma["steps"] == mb["steps"] == 16
