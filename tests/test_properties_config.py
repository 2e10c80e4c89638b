"""Property-based tests (hypothesis) for configuration files and option values (issue 20, items 6–7).

* A model folder's ``config.json``, randomly mutated (values swapped for null, text, booleans, huge,
  negative or non-finite numbers, lists and objects; keys deleted or added; the whole file replaced
  by a list or a scalar), either loads or raises :class:`~plmkit.errors.PlmkitError` — never another
  exception — and loading allocates nothing (``meta=True``: config.json and the safetensors header).
* ``--set key=value`` with random keys of the three sections and random values either is accepted
  or raises ``PlmkitError`` before any file is read or written (the corpus does not exist and the run
  folder is never created).
* Random numeric option strings on ``pretrain`` / ``finetune`` either parse to a finite value in the
  option's range or exit 2 with one ``plmkit CMD: error: argument --X: …`` paragraph.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plmkit import ModelConfig, PlmModel
from plmkit.cli import build_parser
from plmkit.config import MAX_SEED, parse_overrides
from plmkit.data.objectives import DataConfig
from plmkit.errors import PlmkitError
from plmkit.models import from_pretrained
from plmkit.training.trainer import TrainConfig

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.text(max_size=12), st.sampled_from(["128", "1e3", "nan", "-1", "", "bert"]),
    st.integers(min_value=-10, max_value=10), st.sampled_from([10**5, 10**9, 10**30, -(10**9), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=64, num_labels=3,
                      id2label={0: "a", 1: "b", 2: "c"})
    d = tmp_path_factory.mktemp("prop-config") / "model"
    PlmModel(cfg, task="sequence-classification").save_pretrained(d)
    return d


@st.composite
def mutated_config(draw, base: dict):
    d = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "set", "set", "delete", "add", "label", "top"]))
        keys = sorted(d) if isinstance(d, dict) else []
        if op == "top":
            return draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=5), st.integers(),
                                  st.none(), st.just([d])))
        if not keys:
            continue
        if op == "set":
            d[draw(st.sampled_from(keys))] = draw(ODD_VALUES)
        elif op == "delete":
            del d[draw(st.sampled_from(keys))]
        elif op == "add":
            d[draw(st.text(min_size=1, max_size=10))] = draw(ODD_VALUES)
        elif op == "label":  # id2label / label2id entries
            which = draw(st.sampled_from(["id2label", "label2id"]))
            if isinstance(d.get(which), dict):
                d[which][draw(st.text(max_size=4))] = draw(ODD_VALUES)
    return d


def test_mutated_config_json_loads_or_raises_plmkit_error(model_dir, tmp_path):
    base = json.loads((model_dir / "config.json").read_text())
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)

    @FAST
    @given(mutated_config(base))
    def check(d):
        (folder / "config.json").write_text(json.dumps(d))  # NaN / Infinity are written as JSON allows
        try:
            model = from_pretrained(folder, meta=True)
        except PlmkitError:
            return
        assert all(p.is_meta for p in model.parameters())  # nothing was allocated

    check()


def test_info_on_an_absurd_config_answers_at_once(model_dir, tmp_path):
    import time

    from plmkit.cli import main

    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    for change in ({"num_hidden_layers": 10**5}, {"hidden_size": 10**9, "num_attention_heads": 1},
                   {"vocab_size": 10**12}, {"max_position_embeddings": 10**9}):
        (folder / "config.json").write_text(json.dumps({**cfg, **change}))
        err = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["info", str(folder)])
        assert time.perf_counter() - start < 0.5, change
        assert code in (1, 2) and "plmkit: error:" in err.getvalue() and "Traceback" not in err.getvalue(), change


# ------------------------------------------------------------------------------------------------ --set
def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


SET_KEYS = st.one_of(
    st.sampled_from([f"model.{n}" for n in _fields(ModelConfig)] + [f"data.{n}" for n in _fields(DataConfig)]
                    + [f"train.{n}" for n in _fields(TrainConfig)]),
    st.sampled_from(_fields(TrainConfig) + _fields(DataConfig)),
    st.text(max_size=12),
)
SET_VALUES = st.one_of(
    st.sampled_from(["abc", "null", "true", "NaN", "Infinity", "-1", "0", "1e400", '"128"', "[1, 2]", "{}",
                     "128", "0.5", "1.5", "none", "cosine", "lamb", "static", "-0.0", "4294967296"]),
    st.integers(-(10**12), 10**12).map(str), st.floats(allow_nan=True).map(repr), st.text(max_size=10),
)


def test_random_set_overrides_parse_or_fail_before_any_io(tmp_path):
    from plmkit.training.pretrain import pretrain

    out = tmp_path / "run"

    @FAST
    @given(st.lists(st.tuples(SET_KEYS, SET_VALUES), min_size=1, max_size=3),
           st.sampled_from(["bert-tiny", "gpt-tiny", "roberta-tiny", "albert-tiny", "elmo-small"]))
    def check(items, preset):
        try:
            overrides = parse_overrides([f"{k}={v}" for k, v in items])
            pretrain(preset, tmp_path / "no-corpus", out, overrides=overrides, flags={"max_steps": 1})
        except PlmkitError:
            pass
        else:  # pragma: no cover - the corpus does not exist
            raise AssertionError("pretrain ran without a corpus")
        assert not out.exists()

    check()


# ------------------------------------------------------------------------------------------------ options
# option → (what a parsed value must satisfy)
PRETRAIN_OPTIONS = {
    "--max-steps": lambda v: isinstance(v, int) and v >= 1, "--stop-after": lambda v: v >= 1,
    "--batch-size": lambda v: v >= 1, "--grad-accum": lambda v: v >= 1, "--max-length": lambda v: v >= 1,
    "--lr": math.isfinite, "--warmup": lambda v: math.isfinite(v) and v >= 0,
    "--seed": lambda v: 0 <= v <= MAX_SEED, "--log-every": lambda v: v >= 0, "--eval-every": lambda v: v >= 0,
    "--save-every": lambda v: v >= 0, "--keep-last": lambda v: v >= 1,
    "--max-time": lambda v: math.isfinite(v) and v > 0,
}
FINETUNE_OPTIONS = {
    "--epochs": lambda v: math.isfinite(v) and v >= 0, "--lr": lambda v: math.isfinite(v) and v > 0,
    "--batch-size": lambda v: v >= 1, "--max-steps": lambda v: v >= 1, "--seed": lambda v: 0 <= v <= MAX_SEED,
    "--warmup": lambda v: v >= 0, "--weight-decay": lambda v: v >= 0, "--max-length": lambda v: v >= 1,
    "--eval-split": lambda v: 0 < v < 1, "--eval-batch-size": lambda v: v >= 1, "--dropout": math.isfinite,
}
NUMBER_TEXT = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1", "1e400", "1e-5", "-0.5", "4294967296", "1_000", "0x10",
                     " 7 ", "1.5", "3", "ten", "", "5mm", "2h30m", "90s", "1e400s", "--5m", "-0", "1e3"]),
    st.integers(-(10**20), 10**20).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)


def _parse(argv: list[str]) -> tuple[object, int | None, str]:
    parser = build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parser.parse_args(argv), None, err.getvalue()
        except SystemExit as e:
            return None, int(e.code or 0), err.getvalue()


def _dest(command: str, option: str) -> str:
    """Where argparse stores ``option`` of ``command`` (an option may store under another name, e.g. --warmup)."""
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    return next(a.dest for a in sub._actions if option in a.option_strings)


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_random_numeric_option_values_are_accepted_or_exit_2(command):
    options = PRETRAIN_OPTIONS if command == "pretrain" else FINETUNE_OPTIONS
    base = (["pretrain", "--preset", "bert-tiny", "--data", "d", "--out", "o"] if command == "pretrain" else
            ["finetune", "rte", "--train", "t", "--out", "o"])

    @FAST
    @given(st.sampled_from(sorted(options)), NUMBER_TEXT)
    def check(option, text):
        args, code, err = _parse([*base, f"{option}={text}"])
        if args is None:
            lines = err.strip().splitlines()
            assert code == 2 and lines, err
            assert lines[0].startswith(f"plmkit {command}: error: argument {option}"), err
            assert "Traceback" not in err and sum(line.startswith("plmkit") for line in lines) == 1, err
            return
        value = getattr(args, _dest(command, option))
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (option, text, value)
        assert options[option](value), (option, text, value)

    check()
