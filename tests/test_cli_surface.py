"""The command line's surface (issue 21): terminal-aware progress, one summary under torchrun, a closed pipe
that ends quietly, presets as starting points, ``pretrain --epochs``, messages that point to ``--elmo`` or a
``seed-N`` folder, and long sentences split by ``prepare``.

Terminal cases run real processes: stderr a pipe (a log) or a pseudo-terminal (``pty.openpty``)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from plmkit import _progress
from plmkit.cli import PIPE_CLOSED, main
from plmkit.config import model_config_from_preset
from plmkit.data import PreparedCorpus, prepare_corpus
from plmkit.data.shards import split_long_sentences
from plmkit.errors import ConfigError
from plmkit.tokenization import train_tokenizer
from plmkit.training.trainer import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src"
WORDS = "the a man woman dog cat plays runs is was red blue big small house car river city".split()
# A model small enough for a few CPU steps in a subprocess.
TINY = ["--set", "model.hidden_size=32", "--set", "model.intermediate_size=37", "--max-length", "32",
        "--batch-size", "8", "--no-verify-data"]


def text(n_docs: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        sents = [" ".join(rng.choice(WORDS, size=rng.integers(4, 12))) + rng.choice([" .", " !", " ?"])
                 for _ in range(8)]
        docs.append("\n".join(s[0].upper() + s[1:] for s in sents))
    return "\n\n".join(docs) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("surface")
    (root / "corpus.txt").write_text(text(30), encoding="utf-8")
    lines = [x for x in (root / "corpus.txt").read_text().splitlines() if x] + ["a , b ; c : d ."]
    train_tokenizer("wordpiece", lines, vocab_size=120, min_frequency=1).save_pretrained(root / "tok")
    prepare_corpus([root / "corpus.txt"], root / "prep", tokenizer=root / "tok", workers=1)
    return {"root": root, "tok": root / "tok", "prep": root / "prep", "text": root / "corpus.txt"}


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONWARNINGS": "ignore"}


def plmkit(*args) -> list[str]:
    return [sys.executable, "-m", "plmkit.cli", *map(str, args)]


def run_in_log(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    """stderr a pipe, as with ``2>&1 | tee log``."""
    return subprocess.run(plmkit(*args), env=env(), capture_output=True, text=True, timeout=timeout)


def run_on_terminal(*args, timeout: int = 300) -> tuple[int, str, str]:
    """stderr a pseudo-terminal (100 columns); returns (status, stdout, what the terminal received)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    received = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO once the last writer closed the terminal
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        res = subprocess.run(plmkit(*args), env=env(), stdout=subprocess.PIPE, stderr=slave, text=True,
                             timeout=timeout)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return res.returncode, res.stdout, received.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------ 1. output
def test_progress_mode_follows_stderr_and_rank(monkeypatch):
    monkeypatch.setattr(_progress, "stderr_is_terminal", lambda: True)
    monkeypatch.delenv("RANK", raising=False)
    assert _progress.progress_mode(None) == _progress.progress_mode(True) == "bar"
    assert _progress.progress_mode(False) == "off"
    monkeypatch.setattr(_progress, "stderr_is_terminal", lambda: False)
    assert _progress.progress_mode(None) == "lines"
    monkeypatch.setenv("RANK", "1")  # torchrun's other ranks print nothing
    assert _progress.progress_mode(True) == "off" and not _progress.is_main_process()


def test_status_lines_in_a_log(monkeypatch, capsys):
    monkeypatch.setattr(_progress, "stderr_is_terminal", lambda: False)
    monkeypatch.delenv("RANK", raising=False)
    with _progress.Progress(total=4_000_000, desc="prepare", unit="B", unit_scale=True, every_s=0.0) as bar:
        bar.update(1_000_000)
        bar.set_postfix(tokens="12")
        bar.update(1_000_000)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("prepare: 1.0 MB/4.0 MB (25%) | elapsed 0:00:00 | ETA")
    assert lines[1].startswith("prepare: 2.0 MB/4.0 MB (50%) | tokens 12 |")
    assert lines[-1].endswith("ETA 0:00:00")  # the final state at close


def test_pretrain_in_a_log_writes_status_lines_and_on_a_terminal_a_bar(corpus, tmp_path):
    res = run_in_log("pretrain", "--preset", "bert-tiny", "--data", corpus["prep"], "--out", tmp_path / "log-run",
                     "--max-steps", "6", "--log-every", "2", *TINY)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "\r" not in res.stderr
    status = [x for x in res.stderr.splitlines() if x.startswith("train: ")]
    assert [x.split(" | ")[0] for x in status] == ["train: step 2/6", "train: step 4/6", "train: step 6/6"]
    assert all(re.search(r"\| loss \d+\.\d{4} \| tok/s [\d,]+ \| elapsed \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d$", x)
               for x in status), status
    assert json.loads(res.stdout)["step"] == 6  # stdout holds the summary alone

    code, out, term = run_on_terminal("pretrain", "--preset", "bert-tiny", "--data", corpus["prep"],
                                      "--out", tmp_path / "tty-run", "--max-steps", "6", "--log-every", "2", *TINY)
    assert code == 0, term[-2000:]
    assert "\r" in term and "train:" in term and "6/6" in term  # tqdm's bar, redrawn in place
    assert "train: step 2/6 |" not in term  # no status lines on a terminal
    assert json.loads(out)["step"] == 6

    res = run_in_log("pretrain", "--preset", "bert-tiny", "--data", corpus["prep"], "--out", tmp_path / "quiet",
                     "--max-steps", "2", "--log-every", "1", "--no-progress", *TINY)
    assert res.returncode == 0 and "train:" not in res.stderr


def test_prepare_draws_a_bar_only_on_a_terminal(corpus, tmp_path):
    args = ["prepare", "--tokenizer", corpus["tok"], "--workers", "1", corpus["text"]]
    res = run_in_log(*args, "--out", tmp_path / "a")
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr and "prepared " in res.stdout
    code, out, term = run_on_terminal(*args, "--out", tmp_path / "b")
    assert code == 0 and "prepare:" in term and "\r" in term
    code, out, term = run_on_terminal(*args, "--out", tmp_path / "c", "--no-progress")
    assert code == 0 and "prepare:" not in term


def _closed_pipe() -> int:
    """The write end of a pipe whose reader has gone."""
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("command", ["presets", "info"])
def test_a_closed_pipe_ends_quietly(command, tmp_path, corpus):
    """``plmkit presets | head -2``: no message, and 141 (128 + SIGPIPE) as ``yes | head`` or ``git log | head``."""
    args = ["presets"]
    if command == "info":
        from plmkit import ModelConfig, PlmModel

        PlmModel(ModelConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=37)).save_pretrained(tmp_path / "m")
        args = ["info", tmp_path / "m"]
    w = _closed_pipe()
    try:
        res = subprocess.run(plmkit(*args), env=env(), stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert (res.returncode, res.stderr) == (PIPE_CLOSED, "")
    shell = subprocess.run(["bash", "-c", " ".join(map(str, plmkit(*args))) + " | head -1"], env=env(),
                           capture_output=True, text=True, timeout=120)
    assert shell.returncode == 0 and shell.stderr == "" and len(shell.stdout.splitlines()) == 1


def test_a_broken_pipe_that_is_not_our_output_is_still_an_error(monkeypatch, capsys):
    import plmkit.cli.models as models

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(models, "run_presets", broken)
    assert main(["presets"]) == 1
    assert "a pipe to another process closed" in capsys.readouterr().err


def test_torchrun_prints_one_summary_and_one_progress(corpus, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "plmkit.cli",
           "pretrain", "--preset", "bert-tiny", "--data", str(corpus["prep"]), "--out", str(tmp_path / "ddp"),
           "--max-steps", "4", "--log-every", "2", *TINY[:-3], "--batch-size", "4", "--no-verify-data"]
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)  # exactly one JSON document: rank 0's
    assert summary["checkpoint"] and summary["step"] == 4
    assert sum(x.startswith("train: step") for x in res.stderr.splitlines()) == 2
    assert res.stderr.count("plmkit: model ") == 1
    # tokens of both ranks: 4 steps of 2 × 4 rows (segment pairs padded to at most 32 tokens)
    assert 4 * 8 * 8 < summary["tokens_seen"] <= 4 * 8 * 32


# ------------------------------------------------------------------------------------------ 2. messages
def test_preset_is_a_starting_point_printed_and_saved(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--preset", "bert-tiny", "--data", str(corpus["prep"]), "--out", str(out),
                 "--max-steps", "1", "--no-progress", *TINY, "--set", "model.num_hidden_layers=1"]) == 0
    err = capsys.readouterr().err
    assert "plmkit: model  bert-tiny + hidden_size=32, intermediate_size=37, num_hidden_layers=1: bert, 1 layers, " \
           "hidden 32, 2 heads, intermediate 37" in err
    assert "plmkit: train  batch 8 × 1 process(es)" in err and "run.json" in err
    run = json.loads((out / "run.json").read_text())
    assert (run["model"]["hidden_size"], run["model"]["num_hidden_layers"]) == (32, 1)
    assert run["train_config"]["batch_size"] == 8 and run["data_config"]["max_length"] == 32

    code = main(["pretrain", "--preset", "bert-tiny", "--data", str(corpus["prep"]), "--out", str(tmp_path / "bad"),
                 "--max-steps", "1", "--no-progress", *TINY, "--set", "model.num_attention_heads=3"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == ConfigError.exit_code
    assert "bert-tiny + --set model.hidden_size=32, --set model.num_attention_heads=3: hidden_size (32) must be " \
           "divisible by num_attention_heads (3)" in err
    assert not (tmp_path / "bad").exists()


def test_elmo_presets_are_starting_points_too():
    from plmkit.models.elmo import elmo_config_from_preset

    assert elmo_config_from_preset("elmo-small", {"lstm_dim": 256}).lstm_dim == 256
    with pytest.raises(ConfigError, match=r"elmo-small \+ --set model.lstm_dim=64: .*projection_dim \(128\) must be "
                                          r"smaller.*preset sets projection_dim=128"):
        elmo_config_from_preset("elmo-small", {"lstm_dim": 64})
    assert model_config_from_preset("albert-tiny", {"embedding_size": 32}).embedding_size == 32


def test_pretrain_epochs(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--preset", "bert-tiny", "--data", str(corpus["prep"]), "--out", str(out),
                 "--epochs", "2", "--log-every", "1", "--no-progress", *TINY]) == 0
    captured = capsys.readouterr()
    per_epoch = int(re.search(r"epochs 2 \((\d+) steps each\)", captured.err).group(1))
    summary = json.loads(captured.out)
    assert per_epoch > 1 and summary["step"] == 2 * per_epoch
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert records[-1]["epoch"] == 2.0 and records[per_epoch - 1]["epoch"] == 1.0


def test_stop_condition_hint_offers_only_options_pretrain_has(capsys):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict({})
    offered = set(re.findall(r"--[a-z][a-z-]+", str(e.value)))
    assert offered == {"--max-steps", "--max-time", "--epochs"}
    assert main(["pretrain", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert all(opt in help_text for opt in offered)


@pytest.fixture(scope="module")
def elmo_and_seeds(tmp_path_factory) -> dict[str, Path]:
    from plmkit.models.elmo import ElmoConfig, ElmoModel

    root = tmp_path_factory.mktemp("folders")
    torch.manual_seed(0)
    ElmoModel(ElmoConfig(dropout=0.0), ["<pad>", "<unk>", "<s>", "</s>", *WORDS]).save_pretrained(root / "elmo")
    seeds = root / "rte"  # what 'plmkit finetune rte --seeds 1 2 3 --out rte' leaves: no config.json at the top
    for s in (1, 2, 3):
        (seeds / f"seed-{s}").mkdir(parents=True)
        (seeds / f"seed-{s}" / "config.json").write_text('{"model_type": "bert"}')
    (seeds / "metrics.json").write_text("{}")
    (root / "rte.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tthe dog\ta cat\tentailment\n")
    return {"elmo": root / "elmo", "seeds": seeds, "rte": root / "rte.tsv", "root": root}


def _error(capsys, *argv) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in argv])
    assert code != 0
    return " ".join(capsys.readouterr().err.split())


def test_an_elmo_folder_as_model_points_to_elmo(elmo_and_seeds, tmp_path, capsys):
    f = elmo_and_seeds
    err = _error(capsys, "finetune", "sst2", "--model", f["elmo"], "--train", f["rte"], "--out", tmp_path / "o")
    assert f"pass it as --elmo {f['elmo']} (without --model)" in err
    assert not (tmp_path / "o").exists()
    err = _error(capsys, "predict", "rte", "--model", f["elmo"], "--input", f["rte"], "--out", tmp_path / "p.tsv")
    assert f"plmkit finetune TASK --elmo {f['elmo']} --out DIR" in err


@pytest.mark.parametrize("command", ["predict", "evaluate", "finetune"])
def test_a_seeds_run_folder_names_its_seed_folders(command, elmo_and_seeds, tmp_path, capsys):
    f = elmo_and_seeds
    argv = {"predict": ["--input", f["rte"], "--out", tmp_path / "p.tsv"], "evaluate": ["--eval", f["rte"]],
            "finetune": ["--train", f["rte"], "--out", tmp_path / "o"]}[command]
    err = _error(capsys, command, "rte", "--model", f["seeds"], *argv)
    assert "(seed-1, seed-2, seed-3)" in err and f"--model {f['seeds'] / 'seed-1'}" in err


# ------------------------------------------------------------------------------------------ 3. long sentences
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=12), st.integers(1, 64), st.integers(0, 2**31))
def test_split_long_sentences_keeps_every_token_and_boundary(lengths, max_tokens, seed):
    rng = np.random.default_rng(seed)
    lengths = np.array(lengths, dtype=np.int64)
    n = int(lengths.sum())
    ids = rng.integers(0, 10, n)
    word_starts = (rng.random(n) < 0.6).astype(np.uint8)
    classes = np.array([2, 1] + [0] * 8, dtype=np.int8)  # id 0 ends a sentence, id 1 a clause
    new, source, n_split = split_long_sentences(ids, word_starts, lengths, max_tokens, classes)
    assert new.sum() == n and n_split == int((lengths > max_tokens).sum())
    assert (np.diff(source) >= 0).all()  # pieces in order
    for i, length in enumerate(lengths):
        mine = new[source == i]
        assert mine.sum() == length  # the token stream is unchanged; only sentence ends are added
        assert (len(mine) == 1) if length <= max_tokens else ((mine <= max_tokens).all() and (mine > 0).all())
    starts = np.cumsum(new) - new
    continued = np.r_[False, source[1:] == source[:-1]]
    assert all(word_starts[s] == 1 for s in starts[continued])  # a piece starts a word


def test_prepare_splits_long_sentences_at_clause_ends_and_reports_it(corpus, tmp_path, capsys):
    rng = np.random.default_rng(1)
    clauses = [" ".join(rng.choice(WORDS, size=rng.integers(5, 9))) for _ in range(60)]
    speech = " , ".join(clauses) + " ."  # one 'sentence' of ~400 tokens: no sentence end inside
    (tmp_path / "speech.txt").write_text("A short one .\n\n" + speech + "\n", encoding="utf-8")
    assert main(["prepare", "--tokenizer", str(corpus["tok"]), "--out", str(tmp_path / "p"), "--split-sentences",
                 "--max-sentence-tokens", "64", "--workers", "1", "--no-progress", str(tmp_path / "speech.txt")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"; split 1 sentence\(s\) longer than 64 tokens$", out.strip()), out
    c = PreparedCorpus(tmp_path / "p")
    assert c.meta["counts"]["long_sentences_split"] == 1 and c.meta["max_sentence_tokens"] == 64
    assert c.num_documents == 2 and c.sentence_lengths.max() <= 64 and c.num_sentences >= 1 + 7
    from plmkit.tokenization import load_tokenizer

    tok = load_tokenizer(corpus["tok"])
    pieces = [tok.decode(c.sentence(i).tolist()) for i in range(1, c.num_sentences)]
    assert all(p.rstrip().endswith((",", ".")) for p in pieces), pieces  # every cut at a clause end
    assert "".join(" ".join(pieces).split()) == "".join(speech.split())
    assert main(["prepare", "--info", str(tmp_path / "p")]) == 0
    assert "split            1 sentence(s) longer than 64 tokens" in capsys.readouterr().out

    # 0 keeps it whole (and the default, 512, leaves this corpus as it is)
    for flag, name in ((["--max-sentence-tokens", "0"], "whole"), ([], "default")):
        assert main(["prepare", "--tokenizer", str(corpus["tok"]), "--out", str(tmp_path / name), "--workers", "1",
                     "--split-sentences", "--no-progress", *flag, str(tmp_path / "speech.txt")]) == 0
        assert PreparedCorpus(tmp_path / name).num_sentences == 2
    capsys.readouterr()
    shutil.rmtree(tmp_path / "whole")
