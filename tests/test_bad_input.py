"""Bad input across every command, files that try to run code, and a disk that fills up.

Every case of the table runs ``plmkit.cli.main([...])`` in-process and asserts what issue 9 asks of
a bad input: a non-zero exit (2 for bad flags and option values), one ``plmkit ...: error:``
paragraph that names the file, line or key and says what to do, no Python traceback, and every
file under the shared inputs and the case's own folder unchanged — nothing edited, deleted or left
half-written. A few cases run ``python -m plmkit.cli`` to check the real exit status and stderr.

The "no code execution" tests plant pickles whose unpickling would create a marker file where plmkit
expects model weights, configuration, tokenizers, trainer state or corpus indexes, and check that
they are refused (or ignored) and never executed. The disk-full tests mount a small tmpfs in a
user + mount namespace (``unshare -Urm``; no root needed where the kernel allows unprivileged user
namespaces), or as root in a mount namespace (``unshare -m``), and fill it during ``pretrain``, ``prepare``, ``export`` and
``finetune``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from plmkit import ModelConfig, PlmModel
from plmkit.cli import main
from plmkit.data import PreparedCorpus, prepare_corpus
from plmkit.tokenization import load_tokenizer, train_tokenizer
from plmkit.training import checkpoint as ckpt

SRC = Path(__file__).resolve().parents[1] / "src"
WORDS = "the a jury said city run well found that it was report election county fulton grand".split()


# ----------------------------------------------------------------------------------------- the world
def _text(rng: random.Random, docs: int, sentences: int) -> str:
    out = []
    for _ in range(docs):
        out += [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + " ." for _ in range(sentences)]
        out.append("")
    return "\n".join(out) + "\n"


def _run_quiet(argv: list[str]) -> None:
    """Run a command that must succeed (building the shared inputs)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Shared, valid inputs: text, tokenizer, prepared corpus, a tiny model folder, a pretraining run."""
    w = tmp_path_factory.mktemp("world")
    rng = random.Random(0)
    (w / "text.txt").write_text(_text(rng, 12, 8))
    train_tokenizer("wordpiece", (w / "text.txt").read_text().split("\n"), vocab_size=120).save_pretrained(w / "tok")
    prepare_corpus([w / "text.txt"], w / "prep", tokenizer=w / "tok", workers=1)
    tok = load_tokenizer(w / "tok")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
    PlmModel(cfg, task="pretraining").save_pretrained(w / "base", tokenizer=tok)
    rows = [{"text": " ".join(rng.choice(WORDS) for _ in range(6)), "label": rng.choice(["pos", "neg"])}
            for _ in range(24)]
    (w / "cls.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _run_quiet(["pretrain", "--preset", "bert-tiny", "--data", str(w / "prep"), "--out", str(w / "run"),
                "--max-steps", "2", "--save-every", "1", "--batch-size", "4", "--max-length", "32", "--no-progress",
                "--set", "train.tensorboard=false"])
    return w


@pytest.fixture(scope="module")
def finetuned(world) -> Path:
    """A classifier fine-tuned for one step from ``world/base`` (for evaluate / predict)."""
    out = world / "ft"
    if not out.exists():
        _run_quiet(["finetune", "classify", "--model", str(world / "base"), "--train", str(world / "cls.jsonl"),
                    "--out", str(out), "--text-column", "text", "--label-column", "label", "--max-steps", "1",
                    "--batch-size", "8", "--no-tensorboard"])
    return out


# ----------------------------------------------------------------------------------------- helpers
def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` → its SHA-256 (or "dir"): a change, an addition or a deletion shows."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


ERROR_LINE = re.compile(r"^plmkit( [a-z-]+)*: error:( |$)")


def error_paragraph(err: str) -> str:
    """The one error paragraph at the end of stderr, whitespace-normalised (asserting it is one)."""
    assert "Traceback" not in err, err
    lines = err.rstrip("\n").splitlines()
    starts = [i for i, line in enumerate(lines) if ERROR_LINE.match(line)]
    assert len(starts) == 1, f"expected exactly one error paragraph:\n{err}"
    para = lines[starts[0]:]
    assert all(line.strip() for line in para), f"the error is not one paragraph:\n{err}"
    return " ".join(" ".join(para).split())


def model_copy(world: Path, tmp: Path, name: str = "model", src: str = "base") -> Path:
    d = tmp / name
    shutil.copytree(world / src, d)
    return d


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def flip_byte(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def corpus_copy(world: Path, tmp: Path) -> Path:
    d = tmp / "prep"
    shutil.copytree(world / "prep", d)
    return d


def run_copy(world: Path, tmp: Path) -> Path:
    d = tmp / "run"
    shutil.copytree(world / "run", d)
    return d


def user_folder(tmp: Path) -> Path:
    d = tmp / "mine"
    d.mkdir(exist_ok=True)
    (d / "notes.txt").write_text("my notes\n")
    return d


# ----------------------------------------------------------------------------------------- the table
@dataclass
class Case:
    """One bad input: ``make(world, tmp)`` builds the bad files in ``tmp`` and returns the argv."""

    id: str
    make: Callable[[Path, Path], list[str]]
    code: int
    says: tuple[str, ...]  # regexes over the error paragraph: the file / line / key, and the fix
    finetuned: bool = False  # needs the fine-tuned model (world/ft)


def pretrain_args(world: Path, tmp: Path, *extra: str, data: Path | None = None, out: str = "run-new") -> list[str]:
    return ["pretrain", "--preset", "bert-tiny", "--data", str(data or world / "prep"), "--out", str(tmp / out),
            "--batch-size", "4", "--max-length", "32", "--no-progress", "--set", "train.tensorboard=false", *extra]


def _config_binary(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    (d / "config.json").write_bytes(pickle.dumps({"model_type": "bert"}))
    return ["info", str(d)]


def _config_truncated(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    (d / "config.json").write_text('{\n  "model_type": "bert",\n  "hidden_size": ')
    return ["info", str(d)]


def _config_model_type(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    edit_json(d / "config.json", model_type="xlnet")
    return ["info", str(d)]


def _config_unknown_plmkit_key(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    cfg = json.loads((d / "config.json").read_text())
    cfg.setdefault("plmkit", {}).setdefault("model", {})["hiden_size"] = 3
    (d / "config.json").write_text(json.dumps(cfg))
    return ["info", str(d)]


def _weights_truncated(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    truncate(d / "model.safetensors")
    return ["info", str(d)]


def _weights_shape(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    edit_json(d / "config.json", hidden_size=64)
    return ["info", str(d)]


def _tokenizer_json_broken(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    truncate(d / "tokenizer.json", 0.3)
    return ["score", "--model", str(d), str(w / "text.txt")]


def _tokenizer_config_binary(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    (d / "tokenizer_config.json").write_bytes(b"\x80\x04\x95\x10\x00garbage")
    return ["embed", "--model", str(d), "--out", str(t / "v.npy"), str(w / "text.txt")]


def _empty_file(w: Path, t: Path) -> Path:
    (t / "empty.txt").write_text("\n\n")
    return t / "empty.txt"


def _gz_truncated(w: Path, t: Path) -> list[str]:
    import gzip

    data = gzip.compress((w / "text.txt").read_bytes())
    (t / "cut.txt.gz").write_bytes(data[: len(data) // 2])
    return ["prepare", "--tokenizer", str(w / "tok"), "--out", str(t / "out"), str(t / "cut.txt.gz")]


def _jsonl_bad_line(w: Path, t: Path) -> list[str]:
    (t / "bad.jsonl").write_text('{"text": "fine"}\n{"text": broken\n')
    return ["prepare", "--tokenizer", str(w / "tok"), "--out", str(t / "out"), str(t / "bad.jsonl")]


def _jsonl_no_field(w: Path, t: Path) -> list[str]:
    (t / "nofield.jsonl").write_text('{"body": "the jury said"}\n')
    return ["prepare", "--tokenizer", str(w / "tok"), "--out", str(t / "out"), str(t / "nofield.jsonl")]


def _binary_input(w: Path, t: Path) -> list[str]:
    (t / "image.txt").write_bytes(bytes(range(256)) * 64)
    return ["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "100", "--out", str(t / "tok"),
            str(t / "image.txt")]


def _info_truncated_shard(w: Path, t: Path) -> list[str]:
    d = corpus_copy(w, t)
    truncate(d / "shards" / "00000.tokens.bin", 0.9)
    return ["prepare", "--info", str(d)]


def _info_verify_flipped(w: Path, t: Path) -> list[str]:
    d = corpus_copy(w, t)
    flip_byte(d / "shards" / "00000.tokens.bin")
    return ["prepare", "--info", str(d), "--verify"]


def _corpus_meta_broken(w: Path, t: Path) -> list[str]:
    d = corpus_copy(w, t)
    truncate(d / "meta.json", 0.5)
    return pretrain_args(w, t, "--max-steps", "1", data=d)


def _pretrain_flipped_shard(w: Path, t: Path) -> list[str]:
    d = corpus_copy(w, t)
    flip_byte(d / "shards" / "00000.tokens.bin")  # same size: only the checksum can tell
    return pretrain_args(w, t, "--max-steps", "1", data=d)


def _pretrain_flipped_index(w: Path, t: Path) -> list[str]:
    d = corpus_copy(w, t)
    flip_byte(d / "sentence_lengths.npy", 0.9)
    return pretrain_args(w, t, "--max-steps", "1", data=d)


def _pretrain_tokenizer_swapped(w: Path, t: Path) -> list[str]:
    d = corpus_copy(w, t)
    shutil.rmtree(d / "tokenizer")
    train_tokenizer("wordpiece", ["other words entirely", "nothing alike"] * 20, vocab_size=60).save_pretrained(
        d / "tokenizer")
    return pretrain_args(w, t, "--max-steps", "1", data=d)


def _resume_all_damaged(w: Path, t: Path) -> list[str]:
    r = run_copy(w, t)
    for folder in ckpt.list_checkpoints(r):
        flip_byte(folder / "model.safetensors")
    return pretrain_args(w, t, "--max-steps", "4", "--resume", out="run")


def _resume_changed_settings(w: Path, t: Path) -> list[str]:
    run_copy(w, t)
    return pretrain_args(w, t, "--max-steps", "4", "--resume", "--lr", "0.5", out="run")


def _export_damaged_step(w: Path, t: Path) -> list[str]:
    r = run_copy(w, t)
    flip_byte(r / "checkpoints" / "step-0000001" / "model.safetensors")
    return ["export", str(r), "--step", "1", "--out", str(t / "exported")]


def _train_tsv_latin1(w: Path, t: Path) -> list[str]:
    (t / "train.tsv").write_bytes("index\tsentence1\tsentence2\tlabel\n0\tcaf\xe9 ok\tfine\tentailment\n"
                                  .encode("latin-1"))
    return ["finetune", "rte", "--model", str(w / "base"), "--train", str(t / "train.tsv"), "--out", str(t / "ft"),
            "--max-length", "64"]


def _train_tsv_bad_label(w: Path, t: Path) -> list[str]:
    (t / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta b\tc d\tentailment\n"
                                 "1\ta b\tc d\tmaybe\n")
    return ["finetune", "rte", "--model", str(w / "base"), "--train", str(t / "train.tsv"), "--out", str(t / "ft"),
            "--max-length", "64"]


def _squad_invalid_json(w: Path, t: Path) -> list[str]:
    (t / "train.json").write_text('{"version": "1.1", "data": [{"title": "x", "paragraphs": [\n')
    return ["finetune", "squad", "--model", str(w / "base"), "--train", str(t / "train.json"), "--out", str(t / "ft"),
            "--max-length", "64", "--doc-stride", "16"]


def _classify_missing_label_column(w: Path, t: Path) -> list[str]:
    return ["finetune", "classify", "--model", str(w / "base"), "--train", str(w / "cls.jsonl"), "--out",
            str(t / "ft"), "--text-column", "text", "--label-column", "lbl", "--max-length", "64"]


CASES = [
    # --- global and argparse (usage errors: exit 2)
    Case("unknown-command", lambda w, t: ["bogus"], 2, (r"invalid choice: 'bogus'", r"plmkit --help")),
    Case("unknown-flag", lambda w, t: ["presets", "--bogus"], 2, (r"unrecognized arguments: --bogus", r"--help")),
    Case("data-fetch-unknown-corpus", lambda w, t: ["data", "fetch", "wikipedia"], 2,
         (r"invalid choice: 'wikipedia'", r"choose from 'brown'")),
    Case("tokenizer-bad-kind", lambda w, t: ["tokenizer", "train", "--kind", "sentencepiece", "--vocab-size", "100",
                                             "--out", str(t / "tok"), str(w / "text.txt")], 2,
         (r"--kind: invalid choice: 'sentencepiece'", r"plmkit tokenizer train --help")),
    Case("pretrain-int-flag-not-a-number", lambda w, t: pretrain_args(w, t, "--max-steps", "ten"), 2,
         (r"--max-steps: invalid int value: 'ten'", r"plmkit pretrain --help")),
    Case("pretrain-missing-required", lambda w, t: ["pretrain", "--preset", "bert-tiny"], 2,
         (r"required: --data, --out", r"--help")),
    # --- model folders (info / score / embed)
    Case("model-folder-missing", lambda w, t: ["info", str(t / "nope")], 1,
         (r"model folder \S*nope does not exist", r"give a folder with config.json")),
    Case("model-folder-is-a-file", lambda w, t: ["info", str(w / "text.txt")], 1,
         (r"text.txt is a file", r"pass the folder that holds config.json")),
    Case("config-json-binary", _config_binary, 1,
         (r"model/config.json: not a JSON text file", r"restore the file")),
    Case("config-json-truncated", _config_truncated, 1,
         (r"model/config.json: not valid JSON \(line 3", r"fix the file or restore it")),
    Case("config-unknown-model-type", _config_model_type, 1,
         (r"config.json: unknown model_type 'xlnet'", r"plmkit loads bert, roberta, albert and gpt2")),
    Case("config-unknown-plmkit-key", _config_unknown_plmkit_key, 2,
         (r"config.json: unknown key plmkit.model.hiden_size", r"remove the key or correct its name")),
    Case("weights-truncated", _weights_truncated, 1,
         (r"model/model.safetensors: cannot read safetensors file", r"restore it or use an earlier checkpoint")),
    Case("weights-do-not-match-config", _weights_shape, 1,
         (r"word_embeddings.weight has shape \(\d+, 32\)", r"check config.json")),
    Case("tokenizer-json-truncated", _tokenizer_json_broken, 1,
         (r"model/tokenizer.json: cannot be read", r"plmkit tokenizer train")),
    Case("tokenizer-config-binary", _tokenizer_config_binary, 1,
         (r"tokenizer_config.json: not a JSON text file", r"restore the file or delete it")),
    Case("score-model-without-lm-head", lambda w, t: ["score", "--model", str(w / "ft"), str(w / "text.txt")], 2,
         (r"ft has no language-model head", r"plmkit embed"), finetuned=True),
    Case("score-input-missing", lambda w, t: ["score", "--model", str(w / "base"), str(t / "nope.txt")], 1,
         (r"nope.txt does not exist", r"check the path")),
    Case("score-input-empty", lambda w, t: ["score", "--model", str(w / "base"), str(_empty_file(w, t))], 1,
         (r"empty.txt holds no text", r"remove it from the inputs")),
    Case("score-per-token-without-jsonl", lambda w, t: ["score", "--model", str(w / "base"), "--per-token",
                                                         str(w / "text.txt")], 2, (r"--per-token needs --jsonl",)),
    Case("score-batch-size-zero", lambda w, t: ["score", "--model", str(w / "base"), "--batch-size", "0",
                                                 str(w / "text.txt")], 2, (r"--batch-size must be at least 1",)),
    Case("embed-layer-out-of-range", lambda w, t: ["embed", "--model", str(w / "base"), "--out", str(t / "v.npy"),
                                                    "--layers", "9", str(w / "text.txt")], 2,
         (r"layer 9 does not exist", r"valid indices are -3..2")),
    Case("embed-unknown-extension", lambda w, t: ["embed", "--model", str(w / "base"), "--out", str(t / "v.xyz"),
                                                   str(w / "text.txt")], 2,
         (r"v.xyz", r"name the file .npy, .safetensors or .jsonl")),
    Case("embed-out-exists", lambda w, t: ["embed", "--model", str(w / "base"), "--out",
                                            str(user_folder(t) / "notes.txt"), "--format", "jsonl",
                                            str(w / "text.txt")], 2,
         (r"notes.txt already exists", r"choose another --out or pass --overwrite")),
    Case("embed-mix-weights-not-numbers", lambda w, t: ["embed", "--model", str(w / "base"), "--out",
                                                         str(t / "v.npy"), "--layers", "mix", "--mix-weights", "a,b",
                                                         str(w / "text.txt")], 2,
         (r"--mix-weights 'a,b'", r"give comma-separated numbers")),
    # --- tokenizer train
    Case("tokenizer-input-missing", lambda w, t: ["tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "100",
                                                   "--out", str(t / "tok"), str(t / "nope.txt")], 1,
         (r"nope.txt does not exist", r"check the path")),
    Case("tokenizer-vocab-too-small", lambda w, t: ["tokenizer", "train", "--kind", "wordpiece", "--vocab-size",
                                                     "0", "--out", str(t / "tok"), str(w / "text.txt")], 2,
         (r"--vocab-size 0 is too small", r"at least 6")),
    Case("tokenizer-binary-input", _binary_input, 1, (r"image.txt", r"binary")),
    Case("tokenizer-overwrite-user-folder", lambda w, t: ["tokenizer", "train", "--kind", "wordpiece",
                                                           "--vocab-size", "100", "--overwrite", "--out",
                                                           str(user_folder(t)), str(w / "text.txt")], 2,
         (r"--overwrite refuses to replace \S*mine", r"choose another --out")),
    # --- prepare
    Case("prepare-jsonl-bad-line", _jsonl_bad_line, 1, (r"bad.jsonl:2: not a valid JSON Lines record",
                                                        r"--format text")),
    Case("prepare-jsonl-missing-field", _jsonl_no_field, 1, (r"nofield.jsonl:1: the record has no 'text' field",
                                                             r"--text-field")),
    Case("prepare-gz-truncated", _gz_truncated, 1, (r"cut.txt.gz", r"corrupt or truncated")),
    Case("prepare-shard-tokens-zero", lambda w, t: ["prepare", "--tokenizer", str(w / "tok"), "--out",
                                                     str(t / "out"), "--shard-tokens", "0", str(w / "text.txt")], 2,
         (r"--shard-tokens must be at least 1",)),
    Case("prepare-folder-without-tokenizer", lambda w, t: ["prepare", "--tokenizer", str(user_folder(t)), "--out",
                                                            str(t / "out"), str(w / "text.txt")], 1,
         (r"mine has no tokenizer", r"plmkit tokenizer train")),
    Case("prepare-overwrite-user-folder", lambda w, t: ["prepare", "--tokenizer", str(w / "tok"), "--overwrite",
                                                         "--out", str(user_folder(t)), str(w / "text.txt")], 2,
         (r"--overwrite refuses to replace \S*mine", r"nothing was changed")),
    Case("prepare-info-truncated-shard", _info_truncated_shard, 1,
         (r"shards/00000.tokens.bin is \d+ bytes, expected \d+", r"prepare it again")),
    Case("prepare-info-verify-flipped-byte", _info_verify_flipped, 1,
         (r"shards/00000.tokens.bin: checksum mismatch", r"run 'plmkit prepare' for this corpus again")),
    # --- pretrain
    Case("pretrain-data-not-prepared", lambda w, t: pretrain_args(w, t, "--max-steps", "1", data=w / "base"), 1,
         (r"base is not a prepared corpus \(no meta.json\)", r"plmkit prepare")),
    Case("pretrain-corpus-meta-truncated", _corpus_meta_broken, 1, (r"prep/meta.json: not valid JSON",
                                                                    r"prepare the corpus again")),
    Case("pretrain-shard-flipped-byte", _pretrain_flipped_shard, 1,
         (r"prep/shards/00000.tokens.bin: checksum mismatch", r"run 'plmkit prepare' for this corpus again")),
    Case("pretrain-index-flipped-byte", _pretrain_flipped_index, 1,
         (r"prep/sentence_lengths.npy", r"run 'plmkit prepare' for this corpus again")),
    Case("pretrain-corpus-tokenizer-swapped", _pretrain_tokenizer_swapped, 1,
         (r"prep/tokenizer does not match the tokenizer the corpus was prepared with", r"prepare the corpus again")),
    Case("pretrain-unknown-preset", lambda w, t: ["pretrain", "--preset", "bert-huge", "--data", str(w / "prep"),
                                                   "--out", str(t / "r"), "--max-steps", "1"], 2,
         (r"unknown preset 'bert-huge'", r"choose one of: albert-base")),
    Case("pretrain-set-unknown-key", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                                 "model.hiden_size=3"), 2,
         (r"--set model.hiden_size: model has no key .hiden_size.", r"did you mean model.hidden_size")),
    Case("pretrain-set-pre-norm-bert", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                                   "model.pre_norm=true"), 2,
         (r"model.pre_norm=True does not fit model_type 'bert'", r"Remove the setting")),
    Case("pretrain-device-missing", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--device", "cuda:99"), 2,
         (r"--device cuda:99: (this PyTorch build has no CUDA support|no CUDA GPU is visible|this machine has \d+ "
          r"CUDA device)",)),
    Case("pretrain-device-bad-name", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--device", "gpu"), 2,
         (r"--device gpu: not a device name; use auto, cpu, cuda or cuda:N",)),
    Case("pretrain-set-without-equals", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set", "lr"), 2,
         (r"--set 'lr'", r"expected key=value")),
    Case("pretrain-set-bad-value", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                               "data.mask_prob=lots"), 2,
         (r"data.mask_prob must be a number between 0 and 1, got 'lots'",)),
    Case("pretrain-bad-duration", lambda w, t: pretrain_args(w, t, "--max-time", "soon"), 2,
         (r"cannot read duration 'soon'", r"use e.g. 90s, 30m")),
    Case("pretrain-no-stop-condition", lambda w, t: pretrain_args(w, t), 2,
         (r"give a stop condition: --max-steps N, --max-time 30m or --epochs E",)),
    Case("pretrain-negative-lr", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--lr", "-1"), 2,
         (r"train.lr must be positive, got -1",)),
    Case("pretrain-batch-larger-than-corpus", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--batch-size",
                                                                          "10000"), 1,
         (r"prep: an epoch has only \d+ sequences", r"use more data or a smaller --batch-size")),
    Case("pretrain-elmo-on-subword-corpus", lambda w, t: ["pretrain", "--preset", "elmo-small", "--data",
                                                           str(w / "prep"), "--out", str(t / "r"), "--max-steps", "1"],
         1, (r"prep was prepared with a sub-word tokenizer", r"plmkit prepare --word-level")),
    Case("pretrain-out-is-user-folder", lambda w, t: pretrain_args(w, t, "--max-steps", "1",
                                                                    out=user_folder(t).name), 2,
         (r"--out \S*mine exists and is not an empty folder", r"choose a new --out")),
    Case("pretrain-resume-nothing", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--resume"), 1,
         (r"run-new has no checkpoint to resume from", r"start without --resume")),
    Case("pretrain-resume-all-checkpoints-damaged", _resume_all_damaged, 1,
         (r"no usable checkpoint: \S*step-0000002/model.safetensors does not match its recorded checksum",
          r"Restore a checkpoint folder from a copy, or start a new run")),
    Case("pretrain-resume-changed-settings", _resume_changed_settings, 2,
         (r"settings differ from the run being resumed \(lr: checkpoint", r"resume with the original settings")),
    # --- export
    Case("export-not-a-run", lambda w, t: ["export", str(w / "base"), "--out", str(t / "exported")], 1,
         (r"base is not a plmkit run folder", r"pass the --out folder of 'plmkit pretrain'")),
    Case("export-missing-step", lambda w, t: ["export", str(w / "run"), "--step", "999", "--out",
                                               str(t / "exported")], 1,
         (r"no checkpoint at step 999", r"available steps: 1, 2")),
    Case("export-damaged-step", _export_damaged_step, 1,
         (r"step-0000001 is damaged: \S*model.safetensors does not match", r"export another --step")),
    Case("export-out-exists", lambda w, t: ["export", str(w / "run"), "--out", str(user_folder(t))], 2,
         (r"mine already exists", r"pass --overwrite")),
    Case("export-overwrite-user-folder", lambda w, t: ["export", str(w / "run"), "--overwrite", "--out",
                                                        str(user_folder(t))], 2,
         (r"--overwrite refuses to replace \S*mine: it is not a model folder", r"nothing was changed")),
    # --- finetune / evaluate / predict
    Case("finetune-unknown-task", lambda w, t: ["finetune", "qa", "--model", str(w / "base"), "--train",
                                                 str(w / "cls.jsonl"), "--out", str(t / "ft")], 2,
         (r"unknown task 'qa'", r"choose one of: cola")),
    Case("finetune-train-missing", lambda w, t: ["finetune", "rte", "--model", str(w / "base"), "--train",
                                                  str(t / "nope.tsv"), "--out", str(t / "ft")], 1,
         (r"nope.tsv", r"check the path")),
    Case("finetune-model-missing", lambda w, t: ["finetune", "classify", "--model", str(t / "nomodel"), "--train",
                                                  str(w / "cls.jsonl"), "--out", str(t / "ft"), "--text-column",
                                                  "text", "--label-column", "label"], 1,
         (r"nomodel", r"does not exist")),
    Case("finetune-tsv-not-utf8", _train_tsv_latin1, 1, (r"train.tsv: not UTF-8 text", r"save it as UTF-8")),
    Case("finetune-tsv-unknown-label", _train_tsv_bad_label, 1, (r"train.tsv", r"line 3", r"maybe")),
    Case("finetune-squad-invalid-json", _squad_invalid_json, 1, (r"train.json: not valid JSON \(line 2",
                                                                 r"fix the file")),
    Case("finetune-classify-without-text-column", lambda w, t: ["finetune", "classify", "--model", str(w / "base"),
                                                                 "--train", str(w / "cls.jsonl"), "--out",
                                                                 str(t / "ft")], 2,
         (r"classify needs --text-column NAME",)),
    Case("finetune-classify-missing-label-column", _classify_missing_label_column, 1, (r"cls.jsonl", r"lbl")),
    Case("finetune-out-not-empty", lambda w, t: ["finetune", "classify", "--model", str(w / "base"), "--train",
                                                  str(w / "cls.jsonl"), "--out", str(user_folder(t)),
                                                  "--text-column", "text", "--label-column", "label"], 2,
         (r"mine exists and is not empty", r"choose a new --out")),
    Case("finetune-max-length-beyond-positions", lambda w, t: ["finetune", "classify", "--model", str(w / "base"),
                                                                "--train", str(w / "cls.jsonl"), "--out",
                                                                str(t / "ft"), "--text-column", "text",
                                                                "--label-column", "label", "--max-length", "4096"], 2,
         (r"--max-length 4096 exceeds the model's 128 positions", r"use --max-length 128 or less")),
    Case("finetune-seeds-not-integers", lambda w, t: ["finetune", "classify", "--model", str(w / "base"), "--train",
                                                       str(w / "cls.jsonl"), "--out", str(t / "ft"), "--seeds",
                                                       "one,two"], 2,
         (r"--seeds 'one,two'", r"give comma-separated integers")),
    Case("evaluate-base-model", lambda w, t: ["evaluate", "classify", "--model", str(w / "base"), "--eval",
                                               str(w / "cls.jsonl"), "--text-column", "text", "--label-column",
                                               "label"], 1,
         (r"base has", r"fine-tune it first")),
    Case("evaluate-out-exists", lambda w, t: ["evaluate", "classify", "--model", str(w / "ft"), "--eval",
                                               str(w / "cls.jsonl"), "--out", str(user_folder(t) / "notes.txt")], 2,
         (r"notes.txt already exists", r"choose another --out"), finetuned=True),
    Case("evaluate-predictions-for-non-squad", lambda w, t: ["evaluate", "classify", "--eval", str(w / "cls.jsonl"),
                                                              "--predictions", str(w / "cls.jsonl")], 2,
         (r"--predictions", r"works for squad and korquad")),
    # --- demo (fails before any work)
    Case("demo-minutes-not-positive", lambda w, t: ["demo", "--out", str(t / "demo"), "--minutes", "0"], 2,
         (r"--minutes must be positive, got 0",)),
    Case("demo-seeds-not-integers", lambda w, t: ["demo", "--out", str(t / "demo"), "--seeds", "a,b"], 2,
         (r"--seeds takes comma-separated integers, got 'a,b'",)),
    Case("demo-overwrite-user-folder", lambda w, t: ["demo", "--out", str(user_folder(t)), "--overwrite"], 2,
         (r"--overwrite refuses to replace \S*mine: it is not a demo folder written by plmkit", r"notes.txt",
          r"nothing was changed")),
    Case("predict-out-exists", lambda w, t: ["predict", "classify", "--model", str(w / "ft"), "--input",
                                              str(w / "cls.jsonl"), "--out", str(user_folder(t) / "notes.txt")], 2,
         (r"notes.txt already exists", r"choose another --out"), finetuned=True),
]


# --- configuration files and option values, by class (issue 20 items 6-7)
def _config_edit(**changes):
    """A case maker: the world's model folder with config.json's values replaced (``_top`` replaces the file)."""
    def make(w: Path, t: Path) -> list[str]:
        d = model_copy(w, t)
        if "_top" in changes:
            (d / "config.json").write_text(json.dumps(changes["_top"]))
        else:
            edit_json(d / "config.json", **changes)
        return ["info", str(d)]
    return make


def _config_id2label(id2label, label2id=None):
    def make(w: Path, t: Path) -> list[str]:
        d = model_copy(w, t)
        edit_json(d / "config.json", id2label=id2label, **({"label2id": label2id} if label2id is not None else {}))
        return ["info", str(d)]
    return make


def _finetune_tokenizer_beyond_vocab(w: Path, t: Path) -> list[str]:
    d = model_copy(w, t)
    edit_json(d / "config.json", vocab_size=40)
    return ["finetune", "classify", "--model", str(d), "--train", str(w / "cls.jsonl"), "--out", str(t / "ft"),
            "--text-column", "text", "--label-column", "label", "--max-steps", "1"]


def _ft(w: Path, t: Path, *extra: str) -> list[str]:
    return ["finetune", "classify", "--model", str(w / "base"), "--train", str(w / "cls.jsonl"), "--out",
            str(t / "ft"), "--text-column", "text", "--label-column", "label", *extra]


_ARG = r"argument {}(/--[-a-z]+)*: "  # an option with aliases is named with them (--lr/--learning-rate)
CASES += [
    # config.json: not an object, wrong types, null, non-finite, absurd sizes, inconsistent labels
    Case("config-json-is-a-list", _config_edit(_top=[{"model_type": "bert"}]), 1,
         (r"model/config.json: expected a JSON object", r"restore the file")),
    Case("config-size-as-string", _config_edit(hidden_size="32"), 2,
         (r"config.json: hidden_size must be a positive integer, got '32' \(a string\)",)),
    Case("config-size-null", _config_edit(num_attention_heads=None), 2,
         (r"config.json: num_attention_heads must be a positive integer, got null",)),
    Case("config-size-boolean", _config_edit(num_hidden_layers=True), 2,
         (r"config.json: num_hidden_layers must be a positive integer, got true",)),
    Case("config-dropout-nan", _config_edit(hidden_dropout_prob=float("nan")), 2,
         (r"config.json: hidden_dropout_prob must be a number in \[0, 1\), got nan",)),
    Case("config-negative-vocab", _config_edit(vocab_size=-5), 2,
         (r"config.json: vocab_size must be a positive integer, got -5",)),
    Case("config-heads-do-not-divide-hidden", _config_edit(num_attention_heads=3), 2,
         (r"config.json: hidden_size \(32\) must be divisible by num_attention_heads \(3\)",)),
    Case("config-10e5-layers", _config_edit(num_hidden_layers=10**5), 1,
         (r"config.json says num_hidden_layers=100000 but \S*model holds the weights of 2 layer",
          r"check config.json")),
    Case("config-hidden-10e9", _config_edit(hidden_size=10**9, num_attention_heads=1), 1,
         (r"config.json describes a model of at least [\d,]+ parameters", r"holds only [\d,]+ weights")),
    Case("config-id2label-key-not-an-id", _config_id2label({"zero": "a", "1": "b"}), 2,
         (r"config.json: id2label key 'zero' is not a label id",)),
    Case("config-id2label-value-not-text", _config_id2label({"0": 5, "1": "b"}), 2,
         (r"config.json: id2label\['0'\] must be a label name \(a string\), got 5",)),
    Case("config-id2label-ids-not-0-to-n", _config_id2label({"0": "a", "5": "b"}), 2,
         (r"id2label must number its 2 labels 0 … 1",)),
    Case("config-label2id-not-inverse", _config_id2label({"0": "a", "1": "b"}, {"a": 1, "b": 0}), 2,
         (r"label2id .* is not the inverse of id2label",)),
    Case("config-plmkit-section-a-list", _config_edit(plmkit=[1]), 2,
         (r"config.json: the \"plmkit\" section .* must be JSON objects",)),
    Case("config-gpt2-key-as-string", _config_edit(_top={"model_type": "gpt2", "n_embd": "32", "n_layer": 2,
                                                         "n_head": 4, "vocab_size": 86}), 2,
         (r"config.json: n_embd must be a positive integer, got '32'",)),
    Case("finetune-tokenizer-beyond-vocabulary", _finetune_tokenizer_beyond_vocab, 1,
         (r"the tokenizer has \d+ ids but the model's vocab_size is 40", r"come from different models")),
    # option values: NaN / inf, negative, zero, out-of-range seeds, malformed durations (argparse: exit 2)
    *[Case(f"pretrain-option-{opt[2:]}-{value}", (lambda o, v: lambda w, t: pretrain_args(w, t, "--max-steps", "1",
                                                                                          f"{o}={v}"))(opt, value), 2,
           (_ARG.format(opt) + why,))
      for opt, value, why in [("--lr", "nan", r"'nan' is not a finite number"),
                              ("--lr", "inf", r"'inf' is not a finite number"),
                              ("--batch-size", "0", r"must be a whole number >= 1, got 0"),
                              ("--grad-accum", "-2", r"must be a whole number >= 1"),
                              ("--seed", "-1", r"a seed is a whole number from 0 to 4294967295, got -1"),
                              ("--seed", "4294967296", r"a seed is a whole number from 0"),
                              ("--keep-last", "0", r"must be a whole number >= 1, got 0"),
                              ("--keep-last", "-1", r"must be a whole number >= 1"),
                              ("--warmup", "-0.5", r"must be a number >= 0, got -0.5"),
                              ("--log-every", "-1", r"must be a whole number >= 0, got -1"),
                              ("--max-length", "0", r"must be a whole number >= 1, got 0"),
                              ("--max-time", "1e400s", r"cannot read duration '1e400s'"),
                              ("--max-time", "inf", r"cannot read duration 'inf'"),
                              ("--max-time", "5mm", r"cannot read duration '5mm'"),
                              ("--max-time", "--5m", r"cannot read duration '--5m'"),
                              ("--max-time", "400d", r"duration '400d' is longer than 365 days")]],
    Case("pretrain-max-steps-negative", lambda w, t: pretrain_args(w, t, "--max-steps", "-1"), 2,
         (r"argument --max-steps(/--[-a-z]+)*: must be a whole number >= 1, got -1",)),
    Case("pretrain-max-steps-zero", lambda w, t: pretrain_args(w, t, "--max-steps", "0"), 2,
         (r"argument --max-steps(/--[-a-z]+)*: must be a whole number >= 1, got 0",)),
    Case("finetune-epochs-inf", lambda w, t: _ft(w, t, "--epochs", "inf"), 2,
         (r"argument --epochs(/--[-a-z]+)*: 'inf' is not a finite number",)),
    Case("finetune-lr-nan", lambda w, t: _ft(w, t, "--lr", "nan"), 2, (r"argument --lr(/--[-a-z]+)*: 'nan' is not a finite",)),
    Case("finetune-max-length-zero", lambda w, t: _ft(w, t, "--max-length", "0"), 2,
         (r"argument --max-length(/--[-a-z]+)*: must be a whole number >= 1, got 0",)),
    Case("finetune-seeds-out-of-range", lambda w, t: _ft(w, t, "--seeds", "1,-2"), 2,
         (r"--seeds '1,-2': give comma-separated seeds from 0 to 4294967295",)),
    Case("finetune-eval-split-one", lambda w, t: _ft(w, t, "--eval-split", "1"), 2,
         (r"argument --eval-split(/--[-a-z]+)*: must be a number between 0 and 1 \(exclusive\), got 1",)),
    # --set values of the wrong type: refused before anything is read or trained
    Case("pretrain-set-keep-last-not-a-number", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                                            "train.keep_last=abc"), 2,
         (r"--set train.keep_last must be a positive integer, got 'abc' \(a string\)",)),
    Case("pretrain-set-size-as-string", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                                    'model.hidden_dropout_prob="0.1"'), 2,
         (r"--set model.hidden_dropout_prob must be a number in \[0, 1\), got '0.1' \(a string\)",)),
    Case("pretrain-set-null-for-a-count", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                                      "data.dupe_factor=null"), 2,
         (r"--set data.dupe_factor must be a positive integer, got null",)),
    Case("pretrain-set-nan-learning-rate", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                                       "lr=NaN"), 2,
         (r"--set train.lr must be a finite number, got nan",)),
    Case("pretrain-set-bool-for-an-int", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--set",
                                                                     "train.batch_size=true"), 2,
         (r"--set train.batch_size must be a positive integer, got true",)),
    # lengths and sizes that cannot fit: refused from the estimate before anything is allocated
    Case("pretrain-max-length-100000", lambda w, t: pretrain_args(w, t, "--max-steps", "1", "--max-length",
                                                                   "100000"), 2,
         (r"needs about [\d.]+ [TPG]B of memory but this machine has", r"use a shorter --max-length")),
]


# --- data and model files from outside, by class (issue 20 items 6-7): wrong types, wrong formats, bad bytes
def _model_with(edit: Callable[[Path], None], command: str = "score"):
    """A case maker: the world's model folder changed by ``edit(folder)``, then loaded by ``command``."""
    def make(w: Path, t: Path) -> list[str]:
        d = model_copy(w, t)
        edit(d)
        if command == "info":
            return ["info", str(d)]
        return ["score", "--model", str(d), str(w / "text.txt")]
    return make


def _side_files_only(d: Path) -> None:
    (d / "tokenizer.json").unlink()


def _vocab_txt(content: bytes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        _side_files_only(d)
        (d / "vocab.txt").write_bytes(content)
    return edit


def _sharded(shard_name: str) -> Callable[[Path], None]:
    """Split model.safetensors into one shard + an index whose weight_map names ``shard_name``."""
    def edit(d: Path) -> None:
        from safetensors.torch import load_file, save_file

        state = load_file(d / "model.safetensors")
        (d / "model.safetensors").unlink()
        save_file(state, d / "model-00001-of-00001.safetensors")
        wmap = dict.fromkeys(state, "model-00001-of-00001.safetensors")
        wmap[sorted(state)[0]] = shard_name
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wmap}))
    return edit


def _nan_weights(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(d / "model.safetensors")
    key = next(k for k in sorted(state) if k.endswith("LayerNorm.weight"))
    state[key] = state[key] * float("nan")
    save_file(state, d / "model.safetensors", metadata={"format": "pt"})


def _corpus_meta(edit: Callable[[dict], None]):
    def make(w: Path, t: Path) -> list[str]:
        d = corpus_copy(w, t)
        meta = json.loads((d / "meta.json").read_text())
        edit(meta)
        (d / "meta.json").write_text(json.dumps(meta))
        return pretrain_args(w, t, "--max-steps", "1", data=d)
    return make


def _task_file(task: str, name: str, content: str | bytes, *extra: str):
    """A case maker: ``finetune TASK --train FILE`` with the given file content."""
    def make(w: Path, t: Path) -> list[str]:
        f = t / name
        f.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return ["finetune", task, "--model", str(w / "base"), "--train", str(f), "--out", str(t / "ft"),
                "--max-length", "64", *extra]
    return make


_SQUAD = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{
    "context": "The jury said the city election was conducted well. " * 40,
    "qas": [{"id": f"q{i}", "question": "Who said it?", "answers": [{"text": "The jury", "answer_start": 0}]}
            for i in range(30)]}]}]}


def _squad_with(edit: Callable[[dict], None]) -> str:
    data = json.loads(json.dumps(_SQUAD))
    edit(data["data"][0]["paragraphs"][0]["qas"][0])
    return json.dumps(data)


def _predictions(preds: object):
    def make(w: Path, t: Path) -> list[str]:
        (t / "dev.json").write_text(json.dumps(_SQUAD))
        (t / "preds.json").write_text(json.dumps(preds))
        return ["evaluate", "squad", "--eval", str(t / "dev.json"), "--predictions", str(t / "preds.json")]
    return make


_SHORT = r"^.{1,700}$"  # a whole error paragraph: the offending input is quoted only as a short excerpt
_KLUE_NLI = [{"guid": "g1", "premise": 3, "hypothesis": "b", "gold_label": "entailment"}]
_RTE = "index\tsentence1\tsentence2\tlabel\n0\ta b\tc d\tentailment\n"
CASES += [
    # tokenizer files: wrong JSON types, vocabularies that are not UTF-8, empty, duplicated, incomplete
    Case("tokenizer-config-max-length-not-a-number",
         _model_with(lambda d: edit_json(d / "tokenizer_config.json", model_max_length="x")), 1,
         (r"tokenizer_config.json: 'model_max_length' is a string \('x'\), expected a positive integer",
          r"fix the value or restore the file")),
    Case("tokenizer-config-special-token-a-list",
         _model_with(lambda d: edit_json(d / "tokenizer_config.json", cls_token=["[CLS]"])), 1,
         (r"tokenizer_config.json: 'cls_token' is a list", r"expected a token")),
    Case("tokenizer-config-flag-a-string",
         _model_with(lambda d: (_side_files_only(d), edit_json(d / "tokenizer_config.json", do_lower_case="yes"))),
         1, (r"tokenizer_config.json: 'do_lower_case' is a string \('yes'\), expected true or false",)),
    Case("special-tokens-map-not-an-object",
         _model_with(lambda d: (d / "special_tokens_map.json").write_text("[1, 2]")), 1,
         (r"special_tokens_map.json: expected a JSON object of settings, got a list",)),
    Case("vocab-txt-not-utf8", _model_with(_vocab_txt(b"[PAD]\n[UNK]\n[CLS]\n[SEP]\ncaf\xe9\n")), 1,
         (r"vocab.txt, line 5: not UTF-8 text", r"restore it")),
    Case("vocab-txt-empty", _model_with(_vocab_txt(b"")), 1, (r"vocab.txt: empty", r"one token per line")),
    Case("vocab-txt-duplicate-token", _model_with(_vocab_txt(b"[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nthe\n")), 1,
         (r"vocab.txt, line 6: token 'the' already appears on line 5",)),
    Case("vocab-txt-without-unk", _model_with(_vocab_txt(b"[PAD]\n[CLS]\n[SEP]\nthe\n")), 1,
         (r"vocab.txt: the unk_token '\[UNK\]' is not in the vocabulary",)),
    Case("tokenizer-json-unknown-token-missing",
         _model_with(lambda d: edit_json(d / "tokenizer.json", model={
             **json.loads((d / "tokenizer.json").read_text())["model"], "unk_token": "<nope>"})), 1,
         (r"tokenizer.json: the WordPiece model's unknown token '<nope>' is not in its vocabulary",)),
    # weights: a malformed or escaping shard index, non-finite values
    Case("safetensors-index-escapes-the-folder", _model_with(_sharded("../../outside.safetensors"), "info"), 1,
         (r"model.safetensors.index.json: weight_map\[.*\] names '../../outside.safetensors'", r"no '\.\.'")),
    Case("safetensors-index-shard-missing", _model_with(_sharded("model-00002-of-00002.safetensors"), "info"), 1,
         (r"index.json: shard 'model-00002-of-00002.safetensors' .* is missing",)),
    Case("safetensors-index-not-an-object",
         _model_with(lambda d: (_sharded("model-00001-of-00001.safetensors")(d),
                                (d / "model.safetensors.index.json").write_text('"weights"')), "info"), 1,
         (r"index.json: expected a JSON object with a 'weight_map', got a string",)),
    Case("weights-not-finite", _model_with(_nan_weights), 1,
         (r"model.safetensors: tensor \S+LayerNorm.weight holds \d+ NaN or infinite value", r"earlier checkpoint")),
    # prepared corpus: meta.json keys missing or of the wrong type
    Case("corpus-meta-count-as-string", _corpus_meta(lambda m: m["counts"].update(tokens=str(m["counts"]["tokens"]))),
         1, (r"prep/meta.json: 'counts.tokens' is a string", r"prepare the corpus again")),
    Case("corpus-meta-key-missing", _corpus_meta(lambda m: m.pop("shards")), 1,
         (r"prep/meta.json: no key 'shards'", r"prepare the corpus again")),
    Case("corpus-meta-negative-count", _corpus_meta(lambda m: m["counts"].update(documents=-3)), 1,
         (r"prep/meta.json: 'counts.documents' is -3, expected an integer of at least 0",)),
    Case("corpus-meta-shard-outside", _corpus_meta(lambda m: m["shards"][0].update(tokens_file="../../x.bin")), 1,
         (r"meta.json: shards\[0\].tokens_file is '../../x.bin'; shard files must lie inside the corpus folder",)),
    # task files: a file of another task (found / expected format, a short excerpt), wrong JSON types
    Case("finetune-rte-given-squad-json", _task_file("rte", "squad.json", json.dumps(_SQUAD)), 1,
         (r"squad.json: this file looks like a SQuAD-format JSON file, but rte reads a tab-separated file", _SHORT)),
    Case("finetune-squad-given-tsv", _task_file("squad", "train.tsv", _RTE, "--doc-stride", "16"), 1,
         (r"train.tsv: this file looks like tab-separated text \(4 columns on line 1\), but squad / korquad reads "
          r"SQuAD JSON",)),
    Case("finetune-conll-given-jsonl", _task_file("conll-ner", "train.txt", '{"text": "a"}\n{"text": "b"}\n'), 1,
         (r"looks like JSON Lines .* but conll-ner reads CoNLL-2003 column text",)),
    Case("finetune-squad-question-null", _task_file("squad", "train.json", _squad_with(
        lambda q: q.update(question=None)), "--doc-stride", "16"), 1,
         (r"train.json, question q0: 'question' is null \(None\), expected text",)),
    Case("finetune-squad-answer-start-string", _task_file("squad", "train.json", _squad_with(
        lambda q: q["answers"][0].update(answer_start="0")), "--doc-stride", "16"), 1,
         (r"question q0 answer 0: 'answer_start' is a string \('0'\), expected a character offset",)),
    Case("finetune-squad-answers-an-object", _task_file("squad", "train.json", _squad_with(
        lambda q: q.update(answers={"text": "x"})), "--doc-stride", "16"), 1,
         (r"question q0: 'answers' is an object .* expected a list",)),
    Case("finetune-squad-context-a-number", _task_file("squad", "train.json", json.dumps(
        {"data": [{"paragraphs": [{"context": 7, "qas": []}]}]}), "--doc-stride", "16"), 1,
         (r"article 0 paragraph 0: 'context' is a number \(7\), expected text",)),
    Case("finetune-klue-nli-number-premise", _task_file("klue-nli", "train.json", json.dumps(_KLUE_NLI)), 1,
         (r"train.json, record 1: 'premise' is a number \(3\), expected text",)),
    Case("finetune-klue-sts-labels-a-list", _task_file("klue-sts", "train.json", json.dumps(
        [{"sentence1": "a", "sentence2": "b", "labels": [4.2]}])), 1,
         (r"record 1: 'labels' is a list \(\[4.2\]\), expected an object with 'real-label'",)),
    Case("finetune-klue-ner-line-without-tag", _task_file("klue-ner", "train.tsv", "## g1\t<a:PS>\na\tB-PS\n"
                                                          + "x" * 5000 + "\n"), 1,
         (r"train.tsv, line 3: expected 'character<TAB>tag' \(KLUE-NER format\), got 'x+'… \(5,000 characters\)",
          _SHORT)),
    Case("finetune-conll-wrong-column-count", _task_file("conll-ner", "train.txt",
                                                         "EU NNP B-NP B-ORG\nrejects VBZ O\n"), 1,
         (r"train.txt, line 2: 3 column\(s\) where the file's first token line has 4",)),
    Case("finetune-swag-missing-column", _task_file("swag", "train.csv", "sent1,sent2,ending0,label\na,b,c,0\n"), 1,
         (r"train.csv, line 1: the header has no column 'ending1'",)),
    Case("finetune-regress-label-nan", _task_file("regress", "train.jsonl", '{"text": "a", "y": NaN}\n',
                                                  "--text-column", "text", "--label-column", "y"), 1,
         (r"train.jsonl, line 1: label nan is not a finite number",)),
    Case("finetune-classify-text-a-list", _task_file("classify", "train.jsonl", '{"text": ["a"], "y": "p"}\n',
                                                     "--text-column", "text", "--label-column", "y"), 1,
         (r"train.jsonl, line 1: field 'text' is a list \(\['a'\]\), expected text",)),
    Case("finetune-classify-record-not-an-object", _task_file("classify", "train.jsonl", '[1, 2]\n',
                                                              "--text-column", "text", "--label-column", "y"), 1,
         (r"train.jsonl, line 1: expected a JSON object, got a list",)),
    Case("finetune-brown-given-json", _task_file("brown-pos", "ca01", json.dumps(_KLUE_NLI)), 1,
         (r"ca01: this file looks like a JSON list, but brown-pos reads tagged Brown text",)),
    # prediction files for evaluate --predictions
    Case("evaluate-predictions-answer-not-text", _predictions({"q0": 3}), 1,
         (r"preds.json: the prediction for 'q0' is a number \(3\), expected answer text",)),
    Case("evaluate-predictions-a-list", _predictions(["The jury"]), 1,
         (r"preds.json: this file looks like a JSON list, but --predictions reads a JSON object mapping question id",)),
]


def test_the_table_covers_every_command(world, tmp_path):
    from plmkit.cli import build_parser

    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    covered = set()
    for i, case in enumerate(CASES):
        (tmp_path / str(i)).mkdir()
        covered.add(case.make(world, tmp_path / str(i))[0])
    missing = commands - covered
    assert not missing, f"no bad-input case for: {sorted(missing)}"
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world, tmp_path, capsys, request):
    if case.finetuned:
        request.getfixturevalue("finetuned")
    argv = case.make(world, tmp_path)
    capsys.readouterr()
    before = snapshot(world, tmp_path)
    code = main(argv)
    captured = capsys.readouterr()
    text = error_paragraph(captured.err)
    assert code == case.code, f"exit {code}, expected {case.code}: {text}"
    for pattern in case.says:
        assert re.search(pattern, text), f"{pattern!r} not in: {text}"
    assert captured.out == "", captured.out
    after = snapshot(world, tmp_path)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"files changed, added or removed: {changed}"


# ----------------------------------------------------------------------------------------- real processes
def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop("PLMKIT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "plmkit.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, **kw)


def test_real_process_bad_flag_and_damaged_shard(world, tmp_path):
    res = _cli(["pretrain", "--preset", "bert-tiny", "--data", str(world / "prep"), "--out", str(tmp_path / "r"),
                "--max-steps", "ten"])
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[0].startswith("plmkit pretrain: error: argument --max-steps")
    assert "usage:" not in res.stderr and "Traceback" not in res.stderr and res.stdout == ""
    corpus = corpus_copy(world, tmp_path)
    flip_byte(corpus / "shards" / "00000.word_starts.bin")
    before = snapshot(tmp_path)
    res = _cli(pretrain_args(world, tmp_path, "--max-steps", "1", data=corpus))
    assert res.returncode == 1, res.stderr
    text = error_paragraph(res.stderr)
    assert "00000.word_starts.bin: checksum mismatch" in text and "plmkit prepare" in text
    assert snapshot(tmp_path) == before
    # --debug shows the traceback (the exception propagates)
    from plmkit.errors import DataError

    with pytest.raises(DataError, match="checksum mismatch"):
        main(["--debug", *pretrain_args(world, tmp_path, "--max-steps", "1", data=corpus)])


def test_resume_skips_a_damaged_newest_checkpoint_with_a_clear_warning(world, tmp_path):
    run = run_copy(world, tmp_path)
    truncate(run / "checkpoints" / "step-0000002" / "optimizer.safetensors")
    res = _cli(pretrain_args(world, tmp_path, "--max-steps", "3", "--save-every", "1", "--resume", out="run"))
    assert res.returncode == 0, res.stderr
    warning = " ".join(res.stderr.split())
    assert re.search(r"plmkit: warning: skipped damaged checkpoint\(s\): \S*step-0000002/optimizer.safetensors "
                     r"does not match its recorded checksum \(truncated or corrupted\); using \S*step-0000001",
                     warning), res.stderr
    assert "resumed from" in warning and "at step 1" in warning and "Traceback" not in res.stderr
    # step 2 was redone over the damaged copy; every checkpoint now verifies
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step-0000001", "step-0000002", "step-0000003"]
    assert all(ckpt.verify_checkpoint(p) is None for p in ckpt.list_checkpoints(run))


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(world, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "run.json").write_text("{}")  # what a run leaves when it dies before its first save
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "lo')
    assert main(pretrain_args(world, tmp_path, "--max-steps", "2", "--log-every", "1", "--resume", out="r")) == 0
    assert "no checkpoint yet" in capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[:2] == [1, 2] and 9.0 not in [json.loads(x).get("loss") for x in
                                              (out / "metrics.jsonl").read_text().splitlines()]
    fresh = tmp_path / "fresh"
    assert main(pretrain_args(world, tmp_path, "--max-steps", "2", "--log-every", "1", out="fresh")) == 0
    a = (out / "checkpoints" / "step-0000002" / "model.safetensors").read_bytes()
    b = (fresh / "checkpoints" / "step-0000002" / "model.safetensors").read_bytes()
    assert a == b  # the same as a run that was never interrupted


# ----------------------------------------------------------------------------------------- no code execution
class Payload:
    """Unpickling this object creates ``marker`` (builtins.open(marker, "w")): proof of code execution."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path) -> Path:
    m = tmp_path / "PWNED"
    # the payload is live: unpickling it does create the marker
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(Payload(probe))).close()
    assert probe.exists()
    probe.unlink()
    return m


def _refused(argv: list[str], capsys) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    return error_paragraph(err)


def test_pickled_weights_are_refused_not_loaded(world, tmp_path, marker, capsys):
    # a Hugging Face folder with only pytorch_model.bin (torch.save = pickle)
    d = model_copy(world, tmp_path)
    (d / "model.safetensors").unlink()
    torch.save({"bert.embeddings.word_embeddings.weight": Payload(marker)}, d / "pytorch_model.bin")
    text = _refused(["info", str(d)], capsys)
    assert "will not unpickle" in text and "safe_serialization=True" in text
    for argv in (["score", "--model", str(d), str(world / "text.txt")],
                 ["embed", "--model", str(d), "--out", str(tmp_path / "v.npy"), str(world / "text.txt")],
                 ["finetune", "classify", "--model", str(d), "--train", str(world / "cls.jsonl"), "--out",
                  str(tmp_path / "ft"), "--text-column", "text", "--label-column", "label", "--max-steps", "1"]):
        assert "will not unpickle" in _refused(argv, capsys)
    # a pickle under the safetensors name
    d2 = model_copy(world, tmp_path, "model2")
    (d2 / "model.safetensors").write_bytes(pickle.dumps({"w": Payload(marker)}))
    assert "cannot read safetensors file" in _refused(["info", str(d2)], capsys)
    assert not marker.exists()


def test_pickles_in_place_of_json_and_tokenizers_are_refused(world, tmp_path, marker, capsys):
    payload = pickle.dumps(Payload(marker))
    d = model_copy(world, tmp_path)
    (d / "config.json").write_bytes(payload)
    assert "not a JSON text file" in _refused(["info", str(d)], capsys)
    d = model_copy(world, tmp_path, "model2")
    (d / "tokenizer.json").write_bytes(payload)
    (d / "tokenizer_config.json").write_bytes(payload)
    assert "tokenizer_config.json: not a JSON text file" in _refused(["score", "--model", str(d),
                                                                      str(world / "text.txt")], capsys)
    (d / "tokenizer_config.json").unlink()
    assert "tokenizer.json: cannot be read" in _refused(["score", "--model", str(d), str(world / "text.txt")], capsys)
    assert not marker.exists()


def _rehash(folder: Path) -> None:
    """Make trainer_state.json's checksums match the files again (a deliberately crafted checkpoint)."""
    state = json.loads((folder / ckpt.STATE_NAME).read_text())
    state["files"] = {name: ckpt.sha256(folder / name) for name in state["files"] if (folder / name).exists()}
    (folder / ckpt.STATE_NAME).write_text(json.dumps(state))


def test_pickles_in_a_checkpoint_are_refused_or_ignored(world, tmp_path, marker, capsys):
    payload = pickle.dumps(Payload(marker))
    resume = lambda: main(pretrain_args(world, tmp_path, "--max-steps", "3", "--resume", out="run"))  # noqa: E731
    run = run_copy(world, tmp_path)
    newest = run / "checkpoints" / "step-0000002"
    # 1. a crafted optimizer.safetensors that is a pickle (checksums updated to match): refused
    (newest / "optimizer.safetensors").write_bytes(payload)
    _rehash(newest)
    capsys.readouterr()
    assert resume() == 1
    text = error_paragraph(capsys.readouterr().err)
    assert "optimizer.safetensors: not a readable safetensors file" in text and "resume from another checkpoint" in text
    # 2. a crafted RNG state: refused
    shutil.rmtree(run)
    run = run_copy(world, tmp_path)
    (newest / "rng-rank0.safetensors").write_bytes(payload)
    _rehash(newest)
    assert resume() == 1
    assert "rng-rank0.safetensors: unreadable RNG state" in error_paragraph(capsys.readouterr().err)
    # 3. a pickle renamed trainer_state.json: the checkpoint is incomplete, the previous one is used
    shutil.rmtree(run)
    run = run_copy(world, tmp_path)
    (newest / ckpt.STATE_NAME).write_bytes(payload)
    with pytest.warns(UserWarning, match=r"step-0000002/trainer_state.json is not valid JSON; using .*step-0000001"):
        assert resume() == 0
    # 4. Hugging Face Trainer pickles beside the state (optimizer.pt, training_args.bin ...): never read,
    #    and never exported into a model folder
    shutil.rmtree(run)
    run = run_copy(world, tmp_path)
    for name in ("optimizer.pt", "scheduler.pt", "training_args.bin", "rng_state.pth", "pytorch_model.bin"):
        (newest / name).write_bytes(payload)
    assert resume() == 0
    assert main(["export", str(run), "--step", "2", "--out", str(tmp_path / "exported")]) == 0
    exported = sorted(p.name for p in (tmp_path / "exported").iterdir())
    assert "model.safetensors" in exported and not [n for n in exported if n.endswith((".pt", ".bin", ".pth"))]
    assert not marker.exists()


def test_pickled_corpus_index_is_refused(world, tmp_path, marker, capsys):
    d = corpus_copy(world, tmp_path)
    n = PreparedCorpus(d).num_sentences
    np.save(d / "sentence_lengths.npy", np.array([Payload(marker)] * n, dtype=object), allow_pickle=True)
    text = _refused(pretrain_args(world, tmp_path, "--max-steps", "1", "--no-verify-data", data=d), capsys)
    assert "sentence_lengths.npy cannot be read" in text and "prepare it again" in text
    assert not marker.exists()


UNSAFE = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("dill", "load"), ("dill", "loads"),
          ("joblib", "load"), ("marshal", "loads"), ("shelve", "open"), ("yaml", "load"), ("yaml", "unsafe_load")}


def test_the_package_never_unpickles():
    """No pickle-family loader anywhere; torch.load only with weights_only=True; np.load only with
    allow_pickle=False."""
    problems = []
    for path in sorted((SRC / "plmkit").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            call = (name, node.func.attr)
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            if call in UNSAFE:
                problems.append(f"{where}: {name}.{node.func.attr}")
            if call == ("torch", "load") and not (isinstance(kw.get("weights_only"), ast.Constant)
                                                  and kw["weights_only"].value is True):
                problems.append(f"{where}: torch.load without weights_only=True")
            if call in (("np", "load"), ("numpy", "load")) and not (
                    isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False):
                problems.append(f"{where}: np.load without allow_pickle=False")
    assert not problems, problems


# ----------------------------------------------------------------------------------------- file modes
def test_outputs_follow_the_umask(world, tmp_path):
    """Outputs written through temporary names (mkstemp: 0600) end up with the mode the umask gives."""
    old = os.umask(0o027)
    try:
        prepare_corpus([world / "text.txt"], tmp_path / "prep", tokenizer=world / "tok", workers=1)
        _run_quiet(pretrain_args(world, tmp_path, "--max-steps", "1", data=tmp_path / "prep", out="run"))
        _run_quiet(["export", str(tmp_path / "run"), "--out", str(tmp_path / "model")])
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777
             for root in ("prep", "run", "model") for p in [tmp_path / root, *(tmp_path / root).rglob("*")]}
    wrong = {k: oct(m) for k, m in modes.items() if m != (0o750 if (tmp_path / k).is_dir() else 0o640)}
    assert not wrong, wrong
    assert "run/checkpoints/step-0000001/optimizer.safetensors" in modes and "model/model.safetensors" in modes


# ----------------------------------------------------------------------------------------- a full disk
@functools.cache  # probed once, and only when a disk-full test runs (not at collection)
def _private_mount_command() -> list[str] | None:
    """How to run a shell in a mount namespace of its own, where mounting a tmpfs is allowed: a user +
    mount namespace (no root needed where the kernel allows unprivileged user namespaces), or, as root
    (containers, CI), a mount namespace alone. None if neither works here."""
    if not shutil.which("unshare"):
        return None
    candidates = [["unshare", "-Urm"]] + ([["unshare", "-m"]] if os.geteuid() == 0 else [])
    for cmd in candidates:
        probe = subprocess.run([*cmd, "sh", "-c", "mount -t tmpfs -o size=64k plmkit-probe /mnt"],
                               capture_output=True)
        if probe.returncode == 0:
            return cmd
    return None


def _on_small_disk(tmp: Path, size_kb: int, script: str) -> None:
    """Run ``script`` (sh) with a ``size_kb`` tmpfs mounted at ``$DISK`` (= tmp/disk); afterwards a copy of
    what is left on it is at tmp/after (the tmpfs vanishes with the namespace)."""
    private_mount = _private_mount_command()
    if private_mount is None:  # not a skip: a full disk is what these tests are for, in CI and on any machine
        pytest.fail("cannot mount a small tmpfs to fill: the disk-full tests need unprivileged user + mount "
                    "namespaces (`unshare -Urm true` must work: sysctl kernel.unprivileged_userns_clone=1, or "
                    "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu) or root (`unshare -m`)")
    disk, after = tmp / "disk", tmp / "after"
    disk.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "DISK": str(disk), "OUT": str(tmp),
           "PY": sys.executable}
    full = (f"mount -t tmpfs -o size={size_kb}k plmkit-full \"$DISK\" && {{\n{textwrap.dedent(script)}\n}}; "
            f"cp -a \"$DISK\" \"{after}\"")
    res = subprocess.run([*private_mount, "sh", "-c", full], env=env, capture_output=True, text=True, timeout=300)
    assert after.is_dir(), res.stderr


def _result(tmp: Path, name: str) -> tuple[int, str]:
    return int((tmp / f"{name}.rc").read_text()), (tmp / f"{name}.err").read_text()


def test_disk_full_while_pretraining_keeps_the_previous_checkpoint(world, tmp_path):
    # one checkpoint of this run takes S bytes: give the disk room for about one and a half
    size = sum(p.stat().st_size for p in (world / "run" / "checkpoints" / "step-0000002").iterdir())
    _on_small_disk(tmp_path, int(size * 1.5 / 1024), f"""
        "$PY" -m plmkit.cli pretrain --preset bert-tiny --data {world / 'prep'} --out "$DISK/run" --max-steps 6 \\
            --save-every 1 --keep-last 1 --batch-size 4 --max-length 32 --no-progress --set train.tensorboard=false \\
            >/dev/null 2>"$OUT/pretrain.err"; echo $? > "$OUT/pretrain.rc"
    """)
    code, err = _result(tmp_path, "pretrain")
    text = error_paragraph(err)
    assert code == 1 and re.search(r"no space left on the device while saving checkpoint \S*step-0000002; the "
                                   r"previous checkpoint \S*step-0000001 is intact", text), text
    run = tmp_path / "after" / "run"
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step-0000001"]
    assert ckpt.verify_checkpoint(run / "checkpoints" / "step-0000001") is None
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_disk_full_in_prepare_export_and_finetune_leaves_no_partial_output(world, finetuned, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text(_text(random.Random(1), 400, 30))  # about 1.5 MB of text
    small = tmp_path / "small"
    prepare_corpus([world / "text.txt"], small, tokenizer=world / "tok", workers=1)
    _on_small_disk(tmp_path, 512, f"""
        cp -a {small} "$DISK/small"
        "$PY" -m plmkit.cli prepare --tokenizer {world / 'tok'} --overwrite --out "$DISK/small" {big} \\
            >/dev/null 2>"$OUT/prepare.err"; echo $? > "$OUT/prepare.rc"
        "$PY" -m plmkit.cli export {world / 'run'} --out "$DISK/exported" \\
            >/dev/null 2>"$OUT/export.err"; echo $? > "$OUT/export.rc"
        "$PY" -m plmkit.cli finetune classify --model {world / 'run' / 'checkpoints' / 'step-0000002'} \\
            --train {world / 'cls.jsonl'} \\
            --out "$DISK/ft" --text-column text --label-column label --max-steps 1 --batch-size 8 \\
            >/dev/null 2>"$OUT/finetune.err"; echo $? > "$OUT/finetune.rc"
        "$PY" -m plmkit.cli embed --model {world / 'base'} --out "$DISK/vectors.npy" {big} \
            >/dev/null 2>"$OUT/embed.err"; echo $? > "$OUT/embed.rc"
    """)
    after = tmp_path / "after"
    # embed writes without a memory map (a full disk was a SIGBUS): an error, and no file or temporary file left
    assert not (after / "vectors.npy").exists() and not (after / "vectors.offsets.npy").exists()
    for name in ("prepare", "export", "finetune", "embed"):
        code, err = _result(tmp_path, name)
        text = error_paragraph(err)
        assert code == 1 and "no space left on the device" in text, (name, text)
    # prepare --overwrite: the earlier corpus is untouched and still verifies; no temporary folders
    PreparedCorpus(after / "small", verify=True)
    # export: nothing half-written
    assert not (after / "exported").exists()
    # finetune: nothing was saved worth resuming, so the run takes back what it wrote and the same command runs
    # again (no --out left to refuse it), with no half-written checkpoint anywhere
    assert "run the same command again" in error_paragraph(_result(tmp_path, "finetune")[1])
    assert not (after / "ft").exists()
    leftovers = [p.name for p in after.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers
