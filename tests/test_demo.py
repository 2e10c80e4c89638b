"""`plmkit demo --quick` (what CI runs): the whole main job end to end, with its report and plots."""

from __future__ import annotations

import json

import pytest

from plmkit.cli import main


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(data_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "task" in printed and "scratch" in printed and "pretrained" in printed and "gain" in printed
    report = json.loads((out / "report.json").read_text())
    tasks = {r["task"]: r for r in report["results"]}
    assert set(tasks) == {"brown-pos", "classify"}
    for r in tasks.values():
        assert 0.0 <= r["scratch"]["mean"] <= 1.0 and 0.0 <= r["pretrained"]["mean"] <= 1.0
        assert r["gain"] == pytest.approx(r["pretrained"]["mean"] - r["scratch"]["mean"])
    # pretraining really trained: the MLM loss fell
    curve = [json.loads(x) for x in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["mlm_loss"] for r in curve if "mlm_loss" in r]
    assert losses[-1] < losses[0] - 0.5
    for name in ("pretraining-loss.png", "finetune-gain.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert name in printed
    assert report["train_documents"] + report["held_out_documents"] == 500
    # the demo refuses to run over an existing folder without --overwrite, and keeps it intact
    before = (out / "report.json").read_bytes()
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert (out / "report.json").read_bytes() == before
