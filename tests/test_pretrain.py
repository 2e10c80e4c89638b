"""`plmkit pretrain` end to end on real Brown text: every variant learns, exports load in
transformers with equal logits, runs resume exactly (also after SIGKILL), and DDP equals one process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import plmkit
from plmkit.cli import main
from plmkit.data import PreparedCorpus, prepare_corpus, read_sentences
from plmkit.tokenization import train_tokenizer

BROWN_FILES = [f"c{g}{i:02d}" for g in "abfgjkn" for i in range(1, 5)]  # 28 documents from 7 genres
KINDS = {"bert-tiny": "wordpiece", "roberta-tiny": "bpe", "albert-tiny": "unigram", "gpt-tiny": "bpe"}


@pytest.fixture(scope="module")
def corpora(data_dir, tmp_path_factory) -> dict[str, Path]:
    """Brown slices prepared with each tokenizer kind (vocab 2000)."""
    root = tmp_path_factory.mktemp("pretrain-data")
    files = [data_dir / "corpora" / "brown" / f for f in BROWN_FILES]
    out = {}
    for kind in ("wordpiece", "bpe", "unigram"):
        tok = train_tokenizer(kind, read_sentences(files), vocab_size=2000)
        tok.save_pretrained(root / f"tok-{kind}")
        prepare_corpus(files, root / f"prep-{kind}", tokenizer=root / f"tok-{kind}")
        out[kind] = root / f"prep-{kind}"
    return out


def run(argv: list[str]) -> int:
    return main(argv)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def common(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--data", str(corpus), "--out", str(out), "--batch-size", "8", "--max-length", "64",
            "--log-every", "1", "--no-progress", "--seed", "3", *extra]


@pytest.mark.parametrize("preset", list(KINDS))
def test_every_variant_learns_and_exports_to_transformers(preset, corpora, tmp_path, capsys):
    T = pytest.importorskip("transformers")
    out = tmp_path / "run"
    assert run(["--debug"] + common(corpora[KINDS[preset]], out, "--preset", preset, "--max-steps", "60", "--lr", "2e-3",
                                    "--warmup", "5", "--eval-every", "30")) == 0
    recs = metrics(out)
    first = next(r for r in recs if "loss" in r)
    evals = [r for r in recs if any(k.startswith("eval_") for k in r)]
    assert [r["step"] for r in evals] == [30, 60]
    key = "eval_loss" if preset == "gpt-tiny" else "eval_mlm_loss"
    start = first.get("mlm_loss", first["loss"])
    assert evals[-1][key] < start - 0.8, (start, evals[-1][key])  # held-out loss well below where it started
    if preset == "bert-tiny":
        assert "eval_nsp_accuracy" in evals[-1]
    if preset == "albert-tiny":
        assert "eval_sop_accuracy" in evals[-1]
    # export and compare MLM / LM logits with transformers
    exported = tmp_path / "exported"
    assert run(["export", str(out), "--out", str(exported)]) == 0
    ours = plmkit.from_pretrained(exported)
    cls = {"bert-tiny": T.BertForPreTraining, "roberta-tiny": T.RobertaForMaskedLM,
           "albert-tiny": T.AlbertForPreTraining, "gpt-tiny": T.GPT2LMHeadModel}[preset]
    peer, info = cls.from_pretrained(exported, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tok = plmkit.load_tokenizer(exported)
    batch = tok(["The jury said it did find that the city was well run.", "It rained."])
    if preset in ("roberta-tiny", "gpt-tiny"):
        batch.pop("token_type_ids")
    with torch.no_grad():
        a, b = ours(**batch), peer.eval()(**batch)
    name = "logits" if preset in ("roberta-tiny", "gpt-tiny") else "prediction_logits"
    mask = batch["attention_mask"].bool()
    assert (getattr(a, name)[mask] - getattr(b, name)[mask]).abs().max() < 1e-4


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    folder = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    return load_file(str(folder / "model.safetensors"))


def test_stopped_and_resumed_run_equals_uninterrupted(corpora, tmp_path):
    corpus = corpora["wordpiece"]
    assert run(common(corpus, tmp_path / "a", "--preset", "bert-tiny", "--max-steps", "12")) == 0
    assert run(common(corpus, tmp_path / "b", "--preset", "bert-tiny", "--max-steps", "12", "--stop-after", "5")) == 0
    assert run(common(corpus, tmp_path / "b", "--preset", "bert-tiny", "--max-steps", "12", "--resume")) == 0
    la = [(r["step"], r["loss"]) for r in metrics(tmp_path / "a") if "loss" in r]
    lb = [(r["step"], r["loss"]) for r in metrics(tmp_path / "b") if "loss" in r]
    assert la == lb and len(la) == 12
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "plmkit.cli", *args]


def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(corpora, tmp_path):
    corpus = corpora["wordpiece"]
    # Every run in its own process with the same thread count: bit-exactness needs the same reduction order.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = common(corpus, tmp_path / "ref", "--preset", "albert-tiny", "--max-steps", "16", "--save-every", "2")
    subprocess.run(_cli(*args), env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    kargs = common(corpus, killed, "--preset", "albert-tiny", "--max-steps", "16", "--save-every", "2")
    proc = subprocess.Popen(_cli(*kargs), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait for the first checkpoint, then kill at a random moment (possibly mid-save)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "checkpoints").glob("step-*")):
        time.sleep(0.05)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = subprocess.run(_cli(*kargs, "--resume"), env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    wa, wb = _weights(tmp_path / "ref"), _weights(killed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    la = [(r["step"], r["loss"]) for r in metrics(tmp_path / "ref") if "loss" in r]
    lb = [(r["step"], r["loss"]) for r in metrics(killed) if "loss" in r]
    assert la == lb


def test_ddp_two_ranks_equal_one_process_with_twice_the_batch(corpora, tmp_path):
    corpus = corpora["wordpiece"]
    nodrop = ["--set", "model.hidden_dropout_prob=0", "--set", "model.attention_probs_dropout_prob=0"]
    base = ["pretrain", "--data", str(corpus), "--preset", "bert-tiny", "--max-length", "64", "--log-every", "1",
            "--no-progress", "--max-steps", "20", "--seed", "5", *nodrop]
    assert run(base + ["--out", str(tmp_path / "single"), "--batch-size", "8"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "plmkit.cli",
           *base, "--out", str(tmp_path / "ddp"), "--batch-size", "4"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    la = [r["loss"] for r in metrics(tmp_path / "single") if "loss" in r]
    lb = [r["loss"] for r in metrics(tmp_path / "ddp") if "loss" in r]
    assert len(la) == len(lb) == 20
    assert max(abs(x - y) for x, y in zip(la, lb)) < 1e-5, list(zip(la, lb))
    # rank 0 alone wrote the checkpoints
    assert len(list((tmp_path / "ddp" / "checkpoints").glob("step-*"))) == 1


def test_document_mask_reaches_the_model_and_learns(corpora, tmp_path, monkeypatch):
    """--set data.document_mask=true: every batch (training and held-out) carries document_ids, rows do hold
    several documents, and RoBERTa's full-sentences pretraining still learns."""
    calls: list[tuple[bool, int]] = []
    forward = plmkit.PlmModel.forward

    def spy(self, *args, document_ids=None, **kwargs):
        calls.append((document_ids is not None, -1 if document_ids is None else int(document_ids.max())))
        return forward(self, *args, document_ids=document_ids, **kwargs)

    monkeypatch.setattr(plmkit.PlmModel, "forward", spy)
    out = tmp_path / "dm"
    assert run(common(corpora["bpe"], out, "--preset", "roberta-tiny", "--max-steps", "30", "--lr", "2e-3",
                      "--set", "data.document_mask=true", "--set", "data.pair=none")) == 0
    assert calls and all(has for has, _ in calls), "a batch without document_ids reached the model"
    assert max(most for _, most in calls) >= 1  # some row packs two or more documents
    losses = [m["loss"] for m in metrics(out) if "loss" in m]
    assert losses[-1] < losses[0] - 0.5
    assert json.loads((out / "run.json").read_text())["data_config"]["document_mask"] is True


def test_unknown_set_key_and_vocab_mismatch_are_clear_errors(corpora, tmp_path, capsys):
    corpus = corpora["wordpiece"]
    code = run(common(corpus, tmp_path / "x", "--preset", "bert-tiny", "--max-steps", "1", "--set", "model.hiden_size=3"))
    err = capsys.readouterr().err
    assert code == 2 and "hiden_size" in err and "hidden_size" in err and "Traceback" not in err
    code = run(common(corpus, tmp_path / "y", "--preset", "bert-tiny", "--max-steps", "1", "--set", "model.vocab_size=30522"))
    err = capsys.readouterr().err
    assert code == 2 and "vocab_size=30522" in err and "2000" in " ".join(err.split())
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_resume_with_data_from_another_tokenizer_is_refused(corpora, tmp_path, capsys):
    out = tmp_path / "r"
    assert run(common(corpora["wordpiece"], out, "--preset", "bert-tiny", "--max-steps", "4", "--stop-after", "2")) == 0
    code = run(common(corpora["unigram"], out, "--preset", "bert-tiny", "--max-steps", "4", "--resume"))
    err = capsys.readouterr().err
    assert code == 2 and "tokenizer hash differs" in err


def test_prepared_corpus_split_is_disjoint(corpora):
    c = PreparedCorpus(corpora["wordpiece"])
    train, held = c.split(eval_fraction=0.1, seed=0)
    assert len(set(train) & set(held)) == 0 and len(train) + len(held) == c.num_documents


def test_grad_accum_splits_the_batch_like_micro_batch_and_must_divide_it(corpora, tmp_path, capsys):
    """--batch-size is the optimizer batch with --grad-accum K too: K micro-batches of batch/K rows, the same
    run as --micro-batch batch/K (issue 21); a K that does not divide the batch is refused with the divisors."""
    a, b = tmp_path / "accum", tmp_path / "micro"
    assert run(common(corpora["wordpiece"], a, "--preset", "bert-tiny", "--max-steps", "3",
                      "--gradient-accumulation-steps", "2")) == 0
    assert "micro-batch 4 × 2 accumulation steps = batch 8 (--grad-accum 2)" in capsys.readouterr().err
    assert run(common(corpora["wordpiece"], b, "--preset", "bert-tiny", "--max-steps", "3", "--micro-batch", "4")) == 0
    assert [r["loss"] for r in metrics(a) if "loss" in r] == [r["loss"] for r in metrics(b) if "loss" in r]
    run_json = json.loads((a / "run.json").read_text())
    assert run_json["micro_batch"]["batch_size"] == 8 and run_json["micro_batch"]["micro_batch"] == 4
    assert (run_json["train_config"]["batch_size"], run_json["train_config"]["grad_accum"]) == (4, 2)
    capsys.readouterr()
    assert run(common(corpora["wordpiece"], tmp_path / "bad", "--preset", "bert-tiny", "--max-steps", "3",
                      "--grad-accum", "3")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--grad-accum 3 does not divide --batch-size 8" in err and "1, 2, 4, 8" in err
    assert not (tmp_path / "bad").exists()


def test_a_run_from_before_grad_accum_split_the_batch_resumes_as_recorded(capsys):
    from plmkit.training.pretrain import older_grad_accum_run

    # Recorded per-step batch 16 and K=8 (the flags as given then: 8 batches of 16 per step).
    saved = {"batch_size": 16, "grad_accum": 8}
    assert older_grad_accum_run(saved, 16, 8, "runs/roberta")
    err = " ".join(capsys.readouterr().err.split())
    assert "optimizer batch 128" in err and "--batch-size 128 --grad-accum 8" in err
    # A run started with today's meaning records the micro-batch (16 / 8 = 2): not an older run.
    assert not older_grad_accum_run({"batch_size": 2, "grad_accum": 8}, 16, 8, "runs/new")
    assert not older_grad_accum_run(saved, 16, 1, "runs/x") and capsys.readouterr().err == ""


def _encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("body.") and "pooler" not in k}


def test_init_continues_from_a_model_folder_on_longer_rows_with_new_heads(corpora, tmp_path, capsys):
    """--init: phase 1 MLM alone on 32-token rows, exported; phase 2 MLM + NSP on 64-token rows starts from its
    weights (BERT's two phases, or domain-adaptive pretraining); the NSP head starts fresh and is reported."""
    corpus = corpora["wordpiece"]
    first = common(corpus, tmp_path / "p1", "--preset", "bert-tiny", "--max-steps", "30", "--lr", "2e-3",
                   "--max-length", "32", "--set", "data.pair=none", "--eval-every", "30")
    assert run(first) == 0
    assert run(["export", str(tmp_path / "p1"), "--out", str(tmp_path / "m1")]) == 0
    capsys.readouterr()
    start = plmkit.from_pretrained(tmp_path / "m1").state_dict()
    # a learning rate too small to move anything: the run's weights are the folder's, plus the fresh NSP head
    assert run(common(corpus, tmp_path / "p2", "--preset", "bert-tiny", "--max-steps", "1", "--lr", "1e-12",
                      "--init", str(tmp_path / "m1"))) == 0
    err = capsys.readouterr().err
    assert "heads.nsp.classifier.weight" in err and "initialised afresh" in err
    after = plmkit.from_pretrained(sorted((tmp_path / "p2" / "checkpoints").glob("step-*"))[-1]).state_dict()
    assert "heads.nsp.classifier.weight" in after
    enc = _encoder(after)
    assert enc and all(torch.allclose(enc[k], start[k], atol=1e-6) for k in enc)
    recorded = json.loads((tmp_path / "p2" / "run.json").read_text())
    init = next(v for k, v in _walk(recorded) if k == "init")
    assert init["path"] == str((tmp_path / "m1").resolve()) and len(init["sha256"]) == 64
    # the held-out MLM loss at step 0 is phase 1's, far below a fresh model's on the same rows
    fresh, cont = tmp_path / "fresh", tmp_path / "cont"
    for out, extra in ((fresh, []), (cont, ["--init", str(tmp_path / "m1")])):
        assert run(common(corpus, out, "--preset", "bert-tiny", "--max-steps", "1", "--set", "train.eval_at_start=true",
                          *extra)) == 0
    loss0 = {o: next(r["eval_mlm_loss"] for r in metrics(o) if r["step"] == 0) for o in (fresh, cont)}
    assert loss0[cont] < loss0[fresh] - 0.5, loss0


def _walk(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _walk(v)


def test_init_resumes_only_from_the_same_model_and_refuses_what_cannot_start(corpora, tmp_path, capsys):
    corpus = corpora["wordpiece"]
    assert run(common(corpus, tmp_path / "p1", "--preset", "bert-tiny", "--max-steps", "2")) == 0
    assert run(["export", str(tmp_path / "p1"), "--out", str(tmp_path / "m1")]) == 0
    out = tmp_path / "p2"
    args = common(corpus, out, "--preset", "bert-tiny", "--max-steps", "6", "--init", str(tmp_path / "m1"))
    assert run(args + ["--stop-after", "3"]) == 0
    capsys.readouterr()
    # --resume without the --init it started from is another run
    assert run(common(corpus, out, "--preset", "bert-tiny", "--max-steps", "6", "--resume")) == 2
    assert "init" in capsys.readouterr().err
    assert run(args + ["--resume"]) == 0
    assert [r["step"] for r in metrics(out) if "loss" in r] == [1, 2, 3, 4, 5, 6]
    # what cannot start is refused before anything is written, naming the option and what to do
    cases = {
        "another tokenizer": (common(corpora["unigram"], tmp_path / "e1", "--preset", "bert-tiny", "--max-steps", "1",
                                     "--init", str(tmp_path / "m1")), "prepare --tokenizer"),
        "no folder": (common(corpus, tmp_path / "e2", "--preset", "bert-tiny", "--max-steps", "1",
                             "--init", str(tmp_path / "nothing")), "no such folder"),
        "a run folder": (common(corpus, tmp_path / "e3", "--preset", "bert-tiny", "--max-steps", "1",
                                "--init", str(tmp_path / "p1")), "plmkit export"),
        "too long": (common(corpus, tmp_path / "e4", "--preset", "bert-tiny", "--max-steps", "1",
                            "--init", str(tmp_path / "m1")) + ["--max-length", "600"], "--max-length 512 or less"),
        "electra": (common(corpus, tmp_path / "e5", "--preset", "electra-tiny", "--max-steps", "1",
                           "--init", str(tmp_path / "m1")), "ELECTRA"),
        "a resized model": (common(corpus, tmp_path / "e6", "--preset", "bert-tiny", "--max-steps", "1",
                                   "--init", str(tmp_path / "m1"), "--set", "model.intermediate_size=64"), "shape"),
    }
    for name, (argv, says) in cases.items():
        code = run(argv)
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and says in err and "--init" in err and "Traceback" not in err, (name, err)
        assert not Path(argv[argv.index("--out") + 1]).exists(), name
    assert load_file(str(tmp_path / "m1" / "model.safetensors"))  # the start is untouched
