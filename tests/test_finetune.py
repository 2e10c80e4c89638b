"""End to end through the CLI, in-process: ``plmkit finetune / evaluate / predict`` on a tiny BERT for one
task of every family, folders that load in transformers, seeds summaries, and bad-input messages."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import plmkit
from plmkit.cli import main
from plmkit.config import ModelConfig
from plmkit.models import PlmModel
from plmkit.tokenization import train_tokenizer

WORDS = ("the a man woman dog cat plays runs is was red blue big small house car river city paris france "
         "music guitar game sells buys rain sun team won lost new old").split()


def _sentences(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(4, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny pretrained-looking BERT folder (base model with pooler) and its WordPiece tokenizer."""
    tok = train_tokenizer("wordpiece", _sentences() + ["Super Bowl Denver Broncos Carolina Panthers 50 EU German"],
                          vocab_size=160, min_frequency=1)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=37, max_position_embeddings=256)
    folder = tmp_path_factory.mktemp("tiny-bert")
    PlmModel(cfg, add_pooler=True).save_pretrained(folder, tokenizer=tok)
    return folder


def run(*argv) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main([str(a) for a in argv])


FAST = ["--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--max-length", "64", "--no-tensorboard"]


def _head(src: Path, dst: Path, n: int, keep_header: bool = True) -> Path:
    lines = src.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    dst.write_text("".join(lines[: n + (1 if keep_header else 0)]), encoding="utf-8")
    return dst


def _sentences_file(src: Path, dst: Path, n: int, start: int = 0) -> Path:
    """The first n blank-line-separated blocks (sentences) of a CoNLL / KLUE file after `start`."""
    blocks = [b for b in src.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    dst.write_text("\n\n".join(blocks[start:start + n]) + "\n", encoding="utf-8")
    return dst


def _hf_loads(folder: Path, auto_class: str) -> None:
    transformers = pytest.importorskip("transformers")
    cls = getattr(transformers, auto_class)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, info = cls.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info


# --------------------------------------------------------------------------- GLUE: finetune, evaluate, predict
def test_rte_finetune_evaluate_predict(tiny_dir, data_dir, tmp_path, capsys):
    train = _head(data_dir / "glue/RTE/train.tsv", tmp_path / "train.tsv", 48)
    lines = (data_dir / "glue/RTE/train.tsv").read_text().splitlines(keepends=True)
    dev = tmp_path / "dev.tsv"
    dev.write_text(lines[0] + "".join(lines[100:124]))
    out = tmp_path / "rte"
    assert run("finetune", "rte", "--model", tiny_dir, "--train", train, "--eval", dev, "--out", out, *FAST) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"accuracy"} and printed["metrics"] == metrics["metrics"]
    assert metrics["train_examples"] == 48 and metrics["seconds_per_epoch"] > 0
    assert not (out / "checkpoints").exists()
    _hf_loads(out, "AutoModelForSequenceClassification")

    # The saved folder scores the same through `plmkit evaluate`.
    assert run("evaluate", "rte", "--model", out, "--eval", dev, "--out", tmp_path / "m.json") == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(metrics["metrics"])
    assert json.loads((tmp_path / "m.json").read_text())["metrics"] == pytest.approx(metrics["metrics"])

    # And its labels come back by name for an unlabelled (GLUE test-format) file.
    test = tmp_path / "test.tsv"
    test.write_text("index\tsentence1\tsentence2\n0\tA man plays.\tA person plays.\n1\tIt rains.\tThe sun is out.\n")
    assert run("predict", "rte", "--model", out, "--input", test, "--out", tmp_path / "pred.tsv") == 0
    rows = (tmp_path / "pred.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 3
    assert {r.split("\t")[1] for r in rows[1:]} <= {"entailment", "not_entailment"}


def test_transformers_gives_the_same_logits(tiny_dir, data_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    train = _head(data_dir / "glue/MRPC/train.tsv", tmp_path / "train.tsv", 40)
    out = tmp_path / "mrpc"
    assert run("finetune", "mrpc", "--model", tiny_dir, "--train", train, "--out", out, "--max-steps", "2",
               *FAST) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["metrics"]) == {"accuracy", "f1"} and "carved" in m["validation"]
    tok = plmkit.load_tokenizer(out)
    batch = tok(["A man is playing.", "Rain"], ["Someone plays.", "Sun is out today"])
    ours = plmkit.from_pretrained(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    with torch.no_grad():
        assert torch.allclose(ours(**batch).logits, theirs(**batch).logits, atol=1e-5)
    assert theirs.config.id2label == {0: "0", 1: "1"}


def test_seeds_give_mean_and_std_for_regression(tiny_dir, data_dir, tmp_path, capsys):
    train = _head(data_dir / "glue/STS-B/train.tsv", tmp_path / "train.tsv", 40)
    out = tmp_path / "stsb"
    assert run("finetune", "stsb", "--model", tiny_dir, "--train", train, "--out", out, "--seeds", "1,2",
               "--eval-split", "0.25", *FAST) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["seeds"] == [1, 2] and set(m["runs"]) == {"1", "2"}
    p = [m["runs"][s]["metrics"]["pearson"] for s in ("1", "2")]
    assert m["mean"]["pearson"] == pytest.approx(np.mean(p))
    assert m["std"]["pearson"] == pytest.approx(np.std(p, ddof=1))
    assert p[0] != p[1]  # the seeds really differ
    for s in ("1", "2"):
        cfg = json.loads((out / f"seed-{s}" / "config.json").read_text())
        assert cfg["num_labels"] == 1 if "num_labels" in cfg else cfg["id2label"] == {"0": "LABEL_0"}
        assert cfg["problem_type"] == "regression"
    # Both seeds saw the same validation split.
    assert m["runs"]["1"]["train_examples"] == m["runs"]["2"]["train_examples"] == 30


# --------------------------------------------------------------------------- SQuAD 1.1 and 2.0
def _squad_slice(src: Path, dst: Path, paragraphs: int) -> Path:
    data = json.loads(src.read_text())
    art = data["data"][0]
    data["data"] = [dict(art, paragraphs=art["paragraphs"][:paragraphs])]
    dst.write_text(json.dumps(data))
    return dst


def test_squad_v1_finetune_and_official_rescoring(tiny_dir, data_dir, tmp_path, capsys):
    train = _squad_slice(data_dir / "squad/squad-v1.1-dev-part-a.json", tmp_path / "train.json", 2)
    out = tmp_path / "squad"
    assert run("finetune", "squad", "--model", tiny_dir, "--train", train, "--eval", train, "--out", out,
               "--doc-stride", "24", "--max-steps", "3", *FAST, "--max-length", "96") == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {"exact_match", "f1", "total"} <= set(m)
    _hf_loads(out, "AutoModelForQuestionAnswering")
    capsys.readouterr()
    # Re-scoring the written predictions without a model reproduces the numbers (official v1.1 script).
    assert run("evaluate", "squad", "--eval", train, "--predictions", out / "predictions.json") == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(m)


def test_squad_v2_reports_breakdowns_and_saves_the_tuned_threshold(tiny_dir, data_dir, tmp_path, capsys):
    train = _squad_slice(data_dir / "squad/squad-v2.0-dev-subset-part-a.json", tmp_path / "train.json", 2)
    out = tmp_path / "squad2"
    assert run("finetune", "squad", "--model", tiny_dir, "--train", train, "--eval", train, "--out", out,
               "--doc-stride", "24", "--max-steps", "2", *FAST, "--max-length", "96") == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "best_f1", "best_f1_thresh"):
        assert key in m
    saved = json.loads((out / "config.json").read_text())["plmkit"]["finetune"]["options"]
    odds = json.loads((out / "predictions.null_odds.json").read_text())
    # The official best_f1_thresh, or (when answering nothing is best) a value below every null score.
    assert saved["null_threshold"] == pytest.approx(m["best_f1_thresh"]) or saved["null_threshold"] < min(odds.values())
    capsys.readouterr()
    assert run("evaluate", "squad", "--eval", train, "--predictions", out / "predictions.json",
               "--na-probs", out / "predictions.null_odds.json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["exact"] == pytest.approx(m["exact"]) and "best_f1_thresh" in again
    # With the tuned threshold (read from the folder), evaluate reaches the tuned score.
    assert run("evaluate", "squad", "--model", out, "--eval", train) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["f1"] == pytest.approx(m["best_f1"])


# --------------------------------------------------------------------------- SWAG, tagging, Korean, generic
def test_swag(tiny_dir, tmp_path):
    rng = np.random.default_rng(0)
    rows = [",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label"]
    for i in range(24):
        ends = [" ".join(rng.choice(WORDS, 4)) for _ in range(4)]
        rows.append(f"{i},v{i},{i},x,{' '.join(rng.choice(WORDS, 5))},the man,gold,{','.join(ends)},{i % 4}")
    f = tmp_path / "train.csv"
    f.write_text("\n".join(rows) + "\n")
    out = tmp_path / "swag"
    assert run("finetune", "swag", "--model", tiny_dir, "--train", f, "--out", out, "--eval-split", "0.25", *FAST) == 0
    assert set(json.loads((out / "metrics.json").read_text())["metrics"]) == {"accuracy"}
    _hf_loads(out, "AutoModelForMultipleChoice")


def test_conll_ner_and_tagged_prediction(tiny_dir, data_dir, tmp_path):
    train = _sentences_file(data_dir / "conll2003/eng.train", tmp_path / "eng.train", 40)
    dev = _sentences_file(data_dir / "conll2003/eng.testa", tmp_path / "eng.testa", 20, start=1)
    out = tmp_path / "ner"
    assert run("finetune", "conll-ner", "--model", tiny_dir, "--train", train, "--eval", dev, "--out", out,
               *FAST) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {"precision", "recall", "f1", "accuracy"} <= set(m)
    _hf_loads(out, "AutoModelForTokenClassification")
    cfg = json.loads((out / "config.json").read_text())
    assert set(cfg["id2label"].values()) == {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC",
                                             "B-MISC", "I-MISC"}
    text = tmp_path / "input.txt"
    text.write_text("EU rejects German call\nPeter Blackburn\n")
    assert run("predict", "conll-ner", "--model", out, "--input", text, "--out", tmp_path / "tags.txt") == 0
    blocks = (tmp_path / "tags.txt").read_text().strip().split("\n\n")
    assert [len(b.splitlines()) for b in blocks] == [4, 2]
    assert blocks[0].splitlines()[0].split("\t")[0] == "EU"


def test_brown_pos_learns_its_tag_set_from_training(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "pos"
    assert run("finetune", "brown-pos", "--model", tiny_dir, "--train", data_dir / "corpora/brown/ca01",
               "--out", out, "--max-train", "40", *FAST) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["metrics"]["accuracy"] <= 1.0
    labels = json.loads((out / "config.json").read_text())["plmkit"]["finetune"]["labels"]
    assert "at" in labels and "np-tl" in labels


@pytest.mark.parametrize("task,path,n", [
    ("nsmc", "korean/nsmc/ratings-part-a.txt", 40),
    ("klue-ner", "korean/klue/klue-ner-v1.1_dev.tsv", 24),
])
def test_korean_tasks(tiny_dir, data_dir, tmp_path, task, path, n):
    src = data_dir / path
    train = (_sentences_file(src, tmp_path / "train.tsv", n) if task == "klue-ner"
             else _head(src, tmp_path / "train.tsv", n))
    out = tmp_path / task
    assert run("finetune", task, "--model", tiny_dir, "--train", train, "--out", out, "--eval-split", "0.25",
               *FAST) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert ("f1" in m and "char_macro_f1" in m) if task == "klue-ner" else ("accuracy" in m)


def test_generic_classify_jsonl_with_two_eval_files(tiny_dir, tmp_path, capsys):
    rng = np.random.default_rng(0)

    def write(name, n):
        with open(tmp_path / name, "w") as f:
            for _ in range(n):
                words = list(rng.choice(WORDS, 6))
                f.write(json.dumps({"a": " ".join(words), "b": words[0], "y": "dog" if "dog" in words else "none"}) + "\n")
        return tmp_path / name

    train, d1, d2 = write("train.jsonl", 40), write("d1.jsonl", 10), write("d2.jsonl", 10)
    out = tmp_path / "cls"
    assert run("finetune", "classify", "--model", tiny_dir, "--train", train, "--eval", d1, d2, "--out", out,
               "--text-columns", "a,b", "--label-column", "y", *FAST) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(m) == {"d1/accuracy", "d2/accuracy"}
    capsys.readouterr()
    # Columns are remembered with the model: predict needs no column flags.
    assert run("predict", "classify", "--model", out, "--input", d1, "--out", tmp_path / "p.jsonl") == 0
    preds = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(preds) == 10 and {p["prediction"] for p in preds} <= {"dog", "none"}


# --------------------------------------------------------------------------- bad input
def test_bad_input_messages(tiny_dir, data_dir, tmp_path, capsys):
    train = _head(data_dir / "glue/RTE/train.tsv", tmp_path / "train.tsv", 20)
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_dir / name, no_tok / name)
    assert run("finetune", "rte", "--model", no_tok, "--train", train, "--out", tmp_path / "o1", *FAST) == 1
    assert "has no tokenizer" in capsys.readouterr().err

    empty = tmp_path / "dev.tsv"
    empty.write_text("index\tsentence1\tsentence2\tlabel\n")
    assert run("finetune", "rte", "--model", tiny_dir, "--train", train, "--eval", empty, "--out", tmp_path / "o2",
               *FAST) == 1
    err = capsys.readouterr().err
    assert "dev.tsv" in err and "no examples" in err
    assert not (tmp_path / "o2").exists()  # nothing half-written

    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\tentailment\n")
    assert run("finetune", "rte", "--model", tiny_dir, "--train", bad, "--out", tmp_path / "o3", *FAST) == 1
    assert "line 3" in capsys.readouterr().err

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert run("finetune", "rte", "--model", tiny_dir, "--train", train, "--out", busy, *FAST) == 2
    assert "not empty" in capsys.readouterr().err and (busy / "keep.txt").read_text() == "mine"

    assert run("evaluate", "rte", "--model", tiny_dir, "--eval", train) == 1  # a base model, no task head
    assert "fine-tune it first" in capsys.readouterr().err
