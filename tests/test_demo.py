"""`plmkit demo --quick` (what CI runs): the whole main job end to end, with its report and plots, and
pretraining paying off on both tasks (``--expect-gain`` fails the run otherwise)."""

from __future__ import annotations

import json

import pytest

from plmkit.cli import main
from plmkit.demo import QUICK_SETTINGS, DemoConfig, shortfalls


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_pretraining_pays_off(data_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    # --expect-gain: status 1, naming the task, unless pretrained beats scratch on both tasks.
    assert main(["demo", "--quick", "--out", str(out), "--expect-gain"]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "task" in printed and "scratch" in printed and "pretrained" in printed and "gain" in printed
    report = json.loads((out / "report.json").read_text())
    tasks = {r["task"]: r for r in report["results"]}
    assert set(tasks) == {"brown-pos", "classify"}
    for r in tasks.values():
        assert 0.0 <= r["scratch"]["mean"] <= 1.0 and 0.0 <= r["pretrained"]["mean"] <= 1.0
        assert r["gain"] == pytest.approx(r["pretrained"]["mean"] - r["scratch"]["mean"])
        assert r["gain"] > 0
    # pretraining is a fixed amount of work: the quick budget's steps, whatever the machine's load
    pretraining = report["pretraining"]
    assert pretraining["budget"] == "steps" and pretraining["steps"] == QUICK_SETTINGS["pretrain_steps"]
    assert pretraining["preset"] == DemoConfig().preset
    # pretraining really trained: the MLM loss fell, and the held-out loss was measured from step 0
    curve = [json.loads(x) for x in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["mlm_loss"] for r in curve if "mlm_loss" in r]
    assert losses[-1] < losses[0] - 0.5
    evals = [r["step"] for r in curve if "eval_mlm_loss" in r]
    assert evals[0] == 0 and evals[-1] == QUICK_SETTINGS["pretrain_steps"]
    # the estimate of the time left, once pretraining has been timed
    assert "fine-tuning next, about" in captured.err
    for name in ("pretraining-loss.png", "finetune-gain.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert name in printed
    assert report["train_documents"] + report["held_out_documents"] == 500
    # the demo refuses to run over an existing folder without --overwrite, and keeps it intact
    before = (out / "report.json").read_bytes()
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert (out / "report.json").read_bytes() == before


def test_budgets_are_work_and_a_time_budget_is_the_users_choice(capsys):
    full, quick = DemoConfig(), DemoConfig.quick_config()
    assert full.minutes is None and quick.minutes is None  # steps, not minutes
    assert quick.pretrain_steps < full.pretrain_steps and quick.seeds == [1] and quick.quick
    assert DemoConfig.quick_config(pretrain_steps=7).pretrain_steps == 7
    # the estimates scale with the work: full ≈ 9 + 4.3 minutes on the quiet reference machine
    pre, fine = full.reference_seconds()
    assert 8.5 * 60 < pre < 9.5 * 60 and 250 < fine < 270
    assert DemoConfig(pretrain_steps=4200).reference_seconds()[0] == pytest.approx(2 * pre)
    assert DemoConfig(minutes=2).reference_seconds() is None  # a time budget takes what it is given
    assert main(["demo", "--steps", "10", "--minutes", "1"]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(["demo", "--minutes", "0"]) == 2


def test_shortfalls_name_the_tasks_where_pretraining_did_not_pay_off():
    def row(task, scratch, pretrained):
        return {"task": task, "scratch": {"mean": scratch}, "pretrained": {"mean": pretrained},
                "gain": pretrained - scratch}

    assert shortfalls([row("brown-pos", 0.5, 0.6), row("classify", 0.1, 0.2)]) == []
    missed = shortfalls([row("brown-pos", 0.5436, 0.5028), row("classify", 0.1, 0.1)])
    assert [m.split(":")[0] for m in missed] == ["brown-pos", "classify"]
    assert "gain -0.0408" in missed[0] and "gain +0.0000" in missed[1]
