"""Never lose a user's files: ownership, outputs that are inputs, one writer per folder, faults (issue 20).

Classes of failure, each checked across the commands that write:

* ``--overwrite`` replaces only a folder plmkit wrote, of the same kind, holding nothing else;
* an output may not be an input, sit inside an input folder, contain an input, or sit inside a run's
  ``checkpoints/`` — symbolic links resolved;
* one writer per folder: a second command fails at once and names the process holding it; ``kill -9``
  releases it and the next writer cleans what the killed one left;
* a command that fails (or is killed) before it has anything worth resuming leaves no ``--out`` that
  blocks the rerun; SIGTERM during ``prepare`` ends its workers and removes the partial output;
* a property-based test drives :func:`plmkit._files.output_dir` from random starting states.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plmkit import ModelConfig, PlmModel
from plmkit._files import MARKER, output_dir, read_marker
from plmkit.cli import main
from plmkit.data import prepare_corpus
from plmkit.errors import UsageError
from plmkit.tokenization import load_tokenizer, train_tokenizer

# The synthetic corpus and paths of the bad-input tests (the same small world, built here in its own folder).
from test_bad_input import SRC, WORDS, _text  # noqa: E402


def _quiet(argv: list[str], capsys) -> None:
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()


PRETRAIN = ["--preset", "bert-tiny", "--max-length", "32", "--batch-size", "4", "--no-progress",
            "--set", "train.tensorboard=false"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("own")
    (w / "corpus").mkdir()
    (w / "corpus" / "text.txt").write_text(_text(random.Random(0), 12, 8))
    train_tokenizer("wordpiece", (w / "corpus" / "text.txt").read_text().split("\n"), vocab_size=120) \
        .save_pretrained(w / "tok")
    prepare_corpus([w / "corpus" / "text.txt"], w / "prep", tokenizer=w / "tok", workers=1)
    tok = load_tokenizer(w / "tok")
    cfg = ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
    PlmModel(cfg, task="pretraining").save_pretrained(w / "base", tokenizer=tok)
    rows = [{"text": " ".join(random.Random(i).choice(WORDS) for _ in range(6)), "label": ["pos", "neg"][i % 2]}
            for i in range(24)]
    (w / "cls.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["pretrain", *PRETRAIN, "--data", str(w / "prep"), "--out", str(w / "run"), "--max-steps", "2",
                 "--save-every", "1"]) == 0
    assert main(["export", str(w / "run"), "--out", str(w / "model")]) == 0
    assert main(["finetune", "classify", "--model", str(w / "base"), "--train", str(w / "cls.jsonl"), "--out",
                 str(w / "ft"), "--text-column", "text", "--label-column", "label", "--max-steps", "1",
                 "--batch-size", "8", "--no-tensorboard"]) == 0
    return w


def snapshot(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                out[str(p)] = "link:" + os.readlink(p)
            else:
                out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(argv: list[str], capsys, *patterns: str, code: int = 2) -> str:
    capsys.readouterr()
    got = main(argv)
    err = " ".join(capsys.readouterr().err.split())
    assert got == code, (got, err)
    assert "Traceback" not in err and re.search(r"plmkit( [a-z-]+)*: error:", err), err
    for pattern in patterns:
        assert re.search(pattern, err), (pattern, err)
    return err


def user_folder(t: Path) -> Path:
    d = t / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("my notes\n")
    (d / "results.csv").write_text("a,b\n1,2\n")
    return d


# ------------------------------------------------------------------------------------- the classes
def _writers(w: Path, t: Path, out: Path) -> dict[str, list[str]]:
    """Every command that writes, aimed at ``out`` (each with its real inputs from the world ``w``)."""
    return {
        "tokenizer": ["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "100", "--out", str(out),
                      str(w / "corpus")],
        "prepare": ["prepare", "--tokenizer", str(w / "tok"), "--out", str(out), str(w / "corpus" / "text.txt")],
        "pretrain": ["pretrain", *PRETRAIN, "--data", str(w / "prep"), "--out", str(out), "--max-steps", "1"],
        "export": ["export", str(w / "run"), "--out", str(out)],
        "finetune": ["finetune", "classify", "--model", str(w / "base"), "--train", str(w / "cls.jsonl"), "--out",
                     str(out), "--text-column", "text", "--label-column", "label", "--max-steps", "1"],
        "embed": ["embed", "--model", str(w / "model"), "--format", "jsonl", "--out", str(out),
                  str(w / "corpus" / "text.txt")],
        "predict": ["predict", "classify", "--model", str(w / "ft"), "--input", str(w / "cls.jsonl"), "--out",
                    str(out)],
        "evaluate": ["evaluate", "classify", "--model", str(w / "ft"), "--eval", str(w / "cls.jsonl"), "--out",
                     str(out)],
        "demo": ["demo", "--quick", "--data-dir", str(w / "corpus"), "--out", str(out)],
    }


# (command, an input of that command whose inside --out may not be) — the input folders of each command
INPUT_FOLDERS = {"tokenizer": "corpus", "prepare": "tok", "pretrain": "prep", "export": "run", "finetune": "base",
                 "embed": "model", "predict": "ft", "evaluate": "ft", "demo": "corpus"}
# an input (file or folder) that --out may not be
INPUTS = {"tokenizer": "corpus", "prepare": "corpus/text.txt", "pretrain": "prep", "export": "run",
          "finetune": "cls.jsonl", "embed": "corpus/text.txt", "predict": "cls.jsonl", "evaluate": "cls.jsonl",
          "demo": "corpus"}


@pytest.mark.parametrize("command", sorted(INPUTS))
def test_an_output_is_never_an_input_nor_inside_one(command, world, tmp_path, capsys):
    before = snapshot(world)
    # the input itself, through its own path and through a symbolic link to it
    link = tmp_path / "link"
    link.symlink_to(world / INPUTS[command])
    for out in (world / INPUTS[command], link):
        refused(_writers(world, tmp_path, out)[command], capsys, r"is also an input|lies inside the input folder|"
                                                                 r"contains the input")
    # inside one of its input folders, directly and through a link to the folder
    inside = world / INPUT_FOLDERS[command] / "sub" / "out"
    refused(_writers(world, tmp_path, inside)[command], capsys, r"lies inside the input folder")
    (tmp_path / "dirlink").symlink_to(world / INPUT_FOLDERS[command])
    refused(_writers(world, tmp_path, tmp_path / "dirlink" / "out")[command], capsys, r"lies inside the input folder")
    assert snapshot(world) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dirlink", "link"]


@pytest.mark.parametrize("command", ["tokenizer", "prepare", "pretrain", "finetune", "embed", "predict", "evaluate"])
def test_nothing_is_written_inside_a_runs_checkpoints(command, world, tmp_path, capsys):
    before = snapshot(world)
    out = world / "run" / "checkpoints" / "mine"
    refused(_writers(world, tmp_path, out)[command], capsys, r"inside the checkpoints of the run")
    assert snapshot(world) == before


@pytest.mark.parametrize("command", ["tokenizer", "prepare", "export", "demo"])
def test_overwrite_replaces_only_its_own_kind_of_output(command, world, tmp_path, capsys):
    before = snapshot(world)
    # a folder plmkit did not write: refused, and the message names what is in it
    mine = user_folder(tmp_path)
    argv = _writers(world, tmp_path, mine)[command] + ["--overwrite"]
    refused(argv, capsys, r"refuses to replace|will not replace", r"notes.txt")
    # a plmkit output of another kind (a model folder holds tokenizer.json too): refused, weights intact
    model_copy = tmp_path / "model-copy"
    assert main(["export", str(world / "run"), "--out", str(model_copy)]) == 0
    if command != "export":
        kept = snapshot(model_copy)
        refused(_writers(world, tmp_path, model_copy)[command] + ["--overwrite"], capsys,
                r"refuses to replace", r"it is a plmkit model, not a")
        assert snapshot(model_copy) == kept
    assert (mine / "notes.txt").read_text() == "my notes\n"
    assert snapshot(world) == before


def test_overwrite_refuses_a_plmkit_output_that_now_holds_the_users_files(world, tmp_path, capsys):
    out = tmp_path / "prep"
    prep = _writers(world, tmp_path, out)["prepare"]
    _quiet(prep, capsys)
    _quiet(prep + ["--overwrite"], capsys)  # its own output: replaced
    assert read_marker(out)["kind"] == "prepared-corpus"
    (out / "analysis.ipynb").write_text("{}")
    refused(prep + ["--overwrite"], capsys, r"holds files plmkit did not write there \(analysis.ipynb\)")
    assert (out / "analysis.ipynb").read_text() == "{}"


def test_embed_overwrites_only_its_own_vector_files(world, tmp_path, capsys):
    out = tmp_path / "v.jsonl"
    embed = _writers(world, tmp_path, out)["embed"]
    out.write_text("my own data\n")
    refused(embed + ["--overwrite"], capsys, r"refuses to replace \S*v.jsonl: it is not a vector file")
    assert out.read_text() == "my own data\n"
    out.unlink()
    _quiet(embed, capsys)
    _quiet(embed + ["--overwrite"], capsys)
    assert set(json.loads(out.read_text().splitlines()[0])) == {"words", "vectors"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.jsonl"]  # no lock or temporary file left


def test_data_fetch_never_empties_a_users_folder(tmp_path, capsys, monkeypatch):
    mine = user_folder(tmp_path)
    monkeypatch.delenv("PLMKIT_DATA", raising=False)
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "no-nltk"))
    monkeypatch.setenv("PLMKIT_CACHE", str(tmp_path / "cache"))
    before = snapshot(mine)
    refused(["data", "fetch", "brown", "--dir", str(mine)], capsys, r"--dir \S*mine is not empty", r"notes.txt")
    assert snapshot(mine) == before


# ------------------------------------------------------------------------------------- one writer per folder
def _holder(tmp_path: Path, code: str) -> subprocess.Popen:
    """A process that takes a plmkit lock (``code``, with ``OUT`` set) and waits; returns once it holds it."""
    ready = tmp_path / "ready"
    script = "import pathlib, time, sys\nfrom plmkit import _files\nOUT = sys.argv[1]\n" + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out"), str(ready)], env=env)
    for _ in range(300):
        if ready.exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the holder never took the lock")


HOLD_DIR = """
with _files.output_dir(OUT, "prepared-corpus") as tmp:
    pathlib.Path(sys.argv[2]).write_text("x")
    (tmp / "partial").write_text("half")
    time.sleep(120)
"""
HOLD_RUN = """
with _files.run_folder(OUT, "run"):
    pathlib.Path(sys.argv[2]).write_text("x")
    time.sleep(120)
"""


def test_a_second_writer_fails_at_once_naming_the_first(world, tmp_path, capsys):
    proc = _holder(tmp_path, HOLD_DIR)
    try:
        start = time.monotonic()
        refused(_writers(world, tmp_path, tmp_path / "out")["prepare"], capsys,
                rf"being written by another plmkit process \(pid {proc.pid} on ")
        assert time.monotonic() - start < 10
    finally:
        proc.kill()
        proc.wait()
    # kill -9 released the lock; the next writer removes what the killed one left and writes the corpus
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers, "the killed holder should have left its temporary folder and lock"
    _quiet(_writers(world, tmp_path, tmp_path / "out")["prepare"], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "ready"]


def test_a_run_folder_has_one_writer(world, tmp_path, capsys):
    proc = _holder(tmp_path, HOLD_RUN)
    try:
        refused(_writers(world, tmp_path, tmp_path / "out")["pretrain"], capsys,
                rf"being written by another plmkit process \(pid {proc.pid}")
        refused(_writers(world, tmp_path, tmp_path / "out")["finetune"], capsys, rf"pid {proc.pid}")
        # nor may anything else write inside a folder another process is writing
        refused(_writers(world, tmp_path, tmp_path / "out" / "tok")["tokenizer"], capsys,
                rf"inside \S*out, which another plmkit process is writing \(pid {proc.pid}")
    finally:
        proc.kill()
        proc.wait()


def test_other_ranks_accept_the_folder_while_rank_0_marks_it(tmp_path, monkeypatch):
    """Under torchrun the other ranks check --out (read-only) while rank 0 locks and marks it: the marker's
    temporary file of that instant is plmkit's own and must not make the folder look like the user's (CI once
    saw "--out ... exists and is not an empty folder" from rank 1 this way)."""
    from plmkit import _files
    from plmkit.finetune.runner import _out_ready
    from plmkit.training.trainer import check_run_out

    out = tmp_path / "run"
    seen: list[list[str]] = []
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == MARKER:  # the instant rank 0's marker exists only under its temporary name
            seen.append(sorted(p.name for p in out.iterdir()))
            check_run_out(out, False, allow_dead=False)  # what rank 1 runs for pretrain
            _out_ready(out, False)  # and for finetune
        return real_replace(src, dst)

    monkeypatch.setattr(_files.os, "replace", replace)
    with _files.run_folder(out, "run"):
        pass
    assert seen and any(n.startswith(f".{MARKER}.") for n in seen[0]), seen  # the window was exercised
    # a user's file of any name still counts, even one that looks like ours
    for name in ["notes.txt", f"{MARKER}.bak", f".{MARKER}", ".plmkit-lock.old"]:
        (out / name).write_text("mine")
        with pytest.raises(UsageError, match="not an empty folder"):
            check_run_out(out, False, allow_dead=False)
        (out / name).unlink()


# ------------------------------------------------------------------------------------- failures and kills
def test_a_run_that_fails_before_saving_leaves_no_out(world, tmp_path, capsys):
    out = tmp_path / "runs" / "r"
    # more rows than the corpus has: a data error after the folder was locked and marked
    refused(["pretrain", *PRETRAIN, "--data", str(world / "prep"), "--out", str(out), "--max-steps", "1",
             "--batch-size", "500"], capsys, r"fewer than one global batch", code=1)
    assert not out.exists()
    _quiet(["pretrain", *PRETRAIN, "--data", str(world / "prep"), "--out", str(out), "--max-steps", "1"], capsys)
    # an empty folder the user made stays, empty, after a failure
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(["finetune", "classify", "--model", str(world / "base"), "--train", str(world / "cls.jsonl"), "--out",
             str(empty), "--text-column", "text", "--label-column", "nope", "--max-steps", "1"], capsys, r"nope", code=1)
    assert list(empty.iterdir()) == []


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "plmkit.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(pred, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_a_run_killed_before_its_first_checkpoint_reruns_as_is(world, tmp_path):
    out = tmp_path / "run"
    argv = ["pretrain", *PRETRAIN, "--data", str(world / "prep"), "--out", str(out), "--max-steps", "100000",
            "--save-every", "0"]
    proc = _cli(argv)
    _wait_for(lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size > 0, 120)
    proc.kill()
    proc.wait()
    # the same command again, no --resume: the dead attempt held nothing worth resuming
    rerun = _cli(["pretrain", *PRETRAIN, "--data", str(world / "prep"), "--out", str(out), "--max-steps", "2"])
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert "stopped before its first checkpoint" in stderr
    assert json.loads(stdout)["step"] == 2


@pytest.fixture(scope="module")
def big_text(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("big") / "big.txt"
    p.write_text(_text(random.Random(3), 3000, 40))  # ~13 MB: prepare takes a few seconds with 2 workers
    return p


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_prepare_stopped_by_a_signal_leaves_no_partial_output_or_workers(sig, world, big_text, tmp_path):
    out = tmp_path / "prep"
    proc = _cli(["prepare", "--tokenizer", str(world / "tok"), "--workers", "2", "--out", str(out), str(big_text)])
    _wait_for(lambda: any(p.name.startswith(".prep.plmkit-tmp-") for p in tmp_path.iterdir())
              and len(_children(proc.pid)) >= 2)
    workers = _children(proc.pid)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    _wait_for(lambda: not any(_alive(p) for p in workers), 20)  # no worker outlives its parent
    assert not out.exists()
    if sig != signal.SIGKILL:
        assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig], stderr
        assert "Traceback" not in stderr and re.search(r"plmkit: error: (terminated|interrupted)", stderr), stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary folder, no lock file
    # the next prepare of the same --out cleans whatever a killed one left and succeeds
    rerun = _cli(["prepare", "--tokenizer", str(world / "tok"), "--workers", "1", "--out", str(out),
                  str(world / "corpus" / "text.txt")])
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prep"]


# ------------------------------------------------------------------------------------- property
KINDS = ["prepared-corpus", "tokenizer", "model"]
STATES = st.sampled_from(["missing", "empty", "file", "user", "own", "other-kind", "own+extra", "link-own",
                          "dangling-link"])


def _make(state: str, out: Path, kind: str) -> None:
    if state == "missing":
        return
    if state == "empty":
        out.mkdir()
    elif state == "file":
        out.write_text("a file of the user's\n")
    elif state == "user":
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")
    elif state in ("own", "own+extra", "other-kind"):
        with output_dir(out, kind if state != "other-kind" else "demo") as tmp:
            (tmp / "old.bin").write_bytes(b"old result")
        if state == "own+extra":
            (out / "extra.txt").write_text("added by the user\n")
    elif state == "link-own":
        real = out.parent / "real"
        with output_dir(real, kind) as tmp:
            (tmp / "old.bin").write_bytes(b"old result")
        out.symlink_to(real)
    elif state == "dangling-link":
        out.symlink_to(out.parent / "nowhere")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=STATES, kind=st.sampled_from(KINDS), overwrite=st.booleans(), fail=st.booleans(),
       nested=st.booleans())
def test_output_dir_either_replaces_its_own_result_or_changes_nothing(tmp_path_factory, state, kind, overwrite,
                                                                      fail, nested):
    root = tmp_path_factory.mktemp("prop")
    out = root / "a" / "out" if nested else root / "out"
    out.parent.mkdir(parents=True, exist_ok=True)
    _make(state, out, kind)
    before = snapshot(root)
    try:
        with output_dir(out, kind, overwrite=overwrite) as tmp:
            (tmp / "new.bin").write_bytes(b"new result")
            if fail:
                raise RuntimeError("the command failed halfway")
    except UsageError:
        assert snapshot(root) == before  # refused: nothing changed, nothing left
        assert state in ("file", "user", "other-kind", "own+extra") or (state in ("own", "link-own") and not overwrite)
        return
    except RuntimeError:
        assert snapshot(root) == before  # a failing rerun leaves the old result as it was, and no temporary files
        return
    assert not fail
    assert state in ("missing", "empty", "dangling-link") or overwrite
    target = out.resolve()
    assert (target / "new.bin").read_bytes() == b"new result" and not (target / "old.bin").exists()
    assert read_marker(target)["kind"] == kind and read_marker(target)["entries"] == ["new.bin"]
    hidden = [p.name for p in target.parent.iterdir() if p.name.startswith(".")]
    assert not hidden, hidden  # no lock, temporary or old folder left beside it
    assert sorted(p.name for p in target.iterdir()) == sorted([MARKER, "new.bin"])


def test_the_command_line_starts_without_torch():
    """Importing the CLI and building its parser loads no torch, so a Ctrl-C or SIGTERM during a command's
    start-up is handled by plmkit (a short message), not by a traceback from inside an import."""
    code = "import sys; from plmkit.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(SRC)},
                         capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_any_moment_ends_cleanly(sig, world, tmp_path):
    rng = random.Random(sig)
    # (from 0.2 s: before that the signal lands in the interpreter's own start-up, site imports, not in plmkit)
    for i, delay in enumerate([0.2, 0.4, 0.8] + [rng.uniform(1.0, 3.0) for _ in range(2)]):
        out = tmp_path / f"r{i}"
        proc = _cli(["pretrain", *PRETRAIN, "--data", str(world / "prep"), "--out", str(out), "--max-steps", "400",
                     "--save-every", "0"])
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        assert "Traceback" not in stderr, (delay, stderr)
        if proc.returncode != 0:  # stopped before training: a message, and nothing left behind
            assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], (delay, stderr)
            assert re.search(r"plmkit: error: (interrupted|terminated)", stderr), stderr
            assert not out.exists(), sorted(p.name for p in out.iterdir())
        # exit 0: the signal came during training; the trainer saved a checkpoint and stopped (or had finished)
        assert not [p for p in tmp_path.rglob("*") if ".plmkit-tmp-" in p.name or p.name.endswith(".plmkit-lock")]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["step", "data", "files", "elapsed_s", "tokens_seen", "skipped_steps", "world_size",
                            "train_config", "run_config", "log_window"]),
       value=st.one_of(st.none(), st.just("x"), st.just([1]), st.just(-3), st.just(float("nan")), st.just(1e300),
                       st.just({"a": 1}), st.booleans()))
def test_damaged_trainer_state_values_fall_back_or_refuse(world, tmp_path_factory, key, value):
    """A newest checkpoint whose trainer_state.json holds wrong types is skipped for the one before (with a
    warning) or the resume is refused with a message — never a traceback, never a changed run."""
    import contextlib
    import io
    import shutil

    run = tmp_path_factory.mktemp("ts") / "run"
    shutil.copytree(world / "run", run)
    state_path = run / "checkpoints" / "step-0000002" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state[key] = value
    state_path.write_text(json.dumps(state))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["pretrain", *PRETRAIN, "--data", str(world / "prep"), "--out", str(run), "--max-steps", "3",
                     "--resume"])
    text = err.getvalue()
    assert "Traceback" not in text
    assert code == 0 or re.search(r"plmkit: error:", text), text


def test_resume_of_a_run_killed_before_it_wrote_anything_starts_it(world, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    from plmkit._files import write_marker

    write_marker(out, "run", [])  # what a run killed right after taking its folder leaves
    _quiet(["pretrain", *PRETRAIN, "--data", str(world / "prep"), "--out", str(out), "--max-steps", "1", "--resume"],
           capsys)
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step-")] == ["step-0000001"]


def test_a_bad_stride_is_refused_even_when_no_sentence_needs_windows(world, tmp_path, capsys):
    for stride in ("0", "-1"):
        refused(["embed", "--model", str(world / "model"), "--format", "jsonl", "--out", str(tmp_path / "v.jsonl"),
                 "--stride", stride, str(world / "corpus" / "text.txt")], capsys, r"argument --stride: must be")
    from plmkit.embed import Embedder

    with pytest.raises(UsageError, match="stride must be"):
        Embedder(str(world / "model"), stride=0)
