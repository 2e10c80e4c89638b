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
        # and end to end in transformers: its own tokenizer gives the pair its segment ids
        hf_batch = transformers.AutoTokenizer.from_pretrained(str(out))(
            ["A man is playing.", "Rain"], ["Someone plays.", "Sun is out today"], padding=True, return_tensors="pt")
        assert torch.equal(hf_batch["token_type_ids"], batch["token_type_ids"])
        assert torch.allclose(ours(**batch).logits, theirs(**hf_batch).logits, atol=1e-5)
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
    result = json.loads((out / "metrics.json").read_text())
    m = result["metrics"]
    assert {"exact_match", "f1", "total"} <= set(m) and 0 <= m["exact_match"] <= m["f1"] <= 1
    # The official script's names and 0-100 scale, beside plmkit's fractions.
    assert result["official"]["exact_match"] == pytest.approx(100 * m["exact_match"])
    assert result["official"]["f1"] == pytest.approx(100 * m["f1"])
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
    result = json.loads((out / "metrics.json").read_text())
    m, official = result["metrics"], result["official"]
    for key in ("exact_match", "f1", "HasAns_exact_match", "HasAns_f1", "NoAns_exact_match", "best_exact_match",
                "best_f1", "best_f1_thresh", "null_threshold"):
        assert key in m
    assert "exact" not in m and m["null_threshold"] == 0.0  # scored at 0 while fine-tuning
    # The official script's names and scale are kept in the official block.
    assert official["exact"] == pytest.approx(100 * m["exact_match"]) and official["f1"] == pytest.approx(100 * m["f1"])
    assert official["HasAns_exact"] == pytest.approx(100 * m["HasAns_exact_match"])
    assert official["best_f1"] == pytest.approx(100 * m["best_f1"])
    saved = json.loads((out / "config.json").read_text())["plmkit"]["finetune"]["options"]
    odds = json.loads((out / "predictions.null_odds.json").read_text())
    # One threshold on one scale (null score - best span score, as in predictions.null_odds.json): the saved
    # null_threshold is metrics.json's best_f1_thresh; the official block keeps the script's convention
    # (0.0 when answering nothing is best, where plmkit gives a value below every null score).
    assert saved["null_threshold"] == m["best_f1_thresh"]
    if m["best_f1_thresh"] < min(odds.values()):
        assert official["best_f1_thresh"] == 0.0
    else:
        assert official["best_f1_thresh"] == pytest.approx(m["best_f1_thresh"])
    capsys.readouterr()
    assert run("evaluate", "squad", "--eval", train, "--predictions", out / "predictions.json",
               "--na-probs", out / "predictions.null_odds.json", "--na-prob-thresh", str(m["null_threshold"])) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["exact_match"] == pytest.approx(m["exact_match"]) and again["f1"] == pytest.approx(m["f1"])
    assert again["best_f1_thresh"] == pytest.approx(m["best_f1_thresh"])
    # With the tuned threshold (read from the folder), evaluate reaches the tuned score, and says which it used.
    assert run("evaluate", "squad", "--model", out, "--eval", train) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["f1"] == pytest.approx(m["best_f1"]) and tuned["null_threshold"] == m["best_f1_thresh"]
    # predict writes the answers and the null-score differences the threshold applies to.
    assert run("predict", "squad", "--model", out, "--input", train, "--out", tmp_path / "p.json") == 0
    answers = json.loads((tmp_path / "p.json").read_text())
    diffs = json.loads((tmp_path / "p.null_odds.json").read_text())
    assert set(answers) == set(diffs)
    assert all((answers[q] == "") == (diffs[q] > saved["null_threshold"]) for q in answers if answers[q] or
               diffs[q] > saved["null_threshold"])


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
    result = json.loads((out / "metrics.json").read_text())
    m = result["metrics"]
    assert {"precision", "recall", "f1", "accuracy"} <= set(m)
    assert all(0.0 <= v <= 1.0 for v in m.values())  # fractions, as brown-pos and GLUE (was 0-100)
    assert result["official"]["FB1"] == pytest.approx(100 * m["f1"])  # conlleval's name and scale
    assert result["official"]["accuracy"] == pytest.approx(100 * m["accuracy"])
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
    result = json.loads((out / "metrics.json").read_text())
    m = result["metrics"]
    assert ("f1" in m and "char_macro_f1" in m) if task == "klue-ner" else ("accuracy" in m)
    assert all(0.0 <= v <= 1.0 for v in m.values())
    if task == "klue-ner":
        assert result["official"]["klue_ner_char_macro_f1"] == pytest.approx(100 * m["char_macro_f1"])
        assert result["official"]["klue_ner_entity_macro_f1"] == pytest.approx(100 * m["entity_macro_f1"])
    else:
        assert "official" not in result  # NSMC's scorer is plain accuracy: nothing to translate


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



# --------------------------------------------------------------------------- options and ids (issue 21)
def test_glue_predictions_without_an_index_column_carry_submission_ids(tiny_dir, data_dir, tmp_path):
    train = _head(data_dir / "glue/CoLA/train.tsv", tmp_path / "train.tsv", 40, keep_header=False)  # no header
    out = tmp_path / "cola"
    assert run("finetune", "cola", "--model", tiny_dir, "--train", train, "--out", out, "--max-steps", "1", *FAST) == 0
    assert run("predict", "cola", "--model", out, "--input", train, "--out", tmp_path / "p.tsv") == 0
    rows = (tmp_path / "p.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and [r.split("\t")[0] for r in rows[1:]] == [str(i) for i in range(40)]
    rte = tmp_path / "rte.tsv"  # a labelled RTE file without its index column: ids 0, 1, ... as well
    rte.write_text("sentence1\tsentence2\tlabel\nA man plays.\tA person plays.\tentailment\n"
                   "It rains.\tThe sun is out.\tnot_entailment\n")
    from plmkit.finetune.tasks.glue import GLUE_TASKS, read_column_tsv

    examples, _ = read_column_tsv(rte, GLUE_TASKS["rte"])
    assert [e.guid for e in examples] == ["0", "1"]


def test_grad_accum_splits_the_optimizer_batch_and_must_divide_it(tiny_dir, data_dir, tmp_path, capsys):
    train = _head(data_dir / "glue/RTE/train.tsv", tmp_path / "train.tsv", 40)
    out = tmp_path / "rte"
    # 36 examples after the carved split; --batch-size 8 is the optimizer batch: 5 steps per epoch, each of
    # 2 micro-batches of 4 (before, --grad-accum 2 accumulated two batches of 8: 3 steps).
    assert run("finetune", "rte", "--model", tiny_dir, "--train", train, "--out", out, "--grad-accum", "2",
               "--keep-checkpoints", *FAST) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 5
    state = json.loads(next((out / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    assert (state["train_config"]["batch_size"], state["train_config"]["grad_accum"]) == (4, 2)
    capsys.readouterr()
    assert run("finetune", "rte", "--model", tiny_dir, "--train", train, "--out", tmp_path / "o2",
               "--batch-size", "8", "--gradient-accumulation-steps", "3", *FAST) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--grad-accum 3 does not divide --batch-size 8" in err and "1, 2, 4, 8" in err
    assert not (tmp_path / "o2").exists()

    # A run started when --grad-accum K accumulated K batches of --batch-size (its checkpoint records per-step
    # batch 4 and K=2, i.e. "--batch-size 4 --grad-accum 2" in the old meaning) resumes as it was recorded.
    (out / "metrics.json").unlink()
    assert run("finetune", "rte", "--model", tiny_dir, "--train", train, "--out", out, "--resume",
               "--grad-accum", "2", *[a if a != "8" else "4" for a in FAST]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "was started when --grad-accum 2 accumulated 2 batches of --batch-size 4 rows" in err
    assert "--batch-size 8 --grad-accum 2" in err


def test_transformers_spellings_and_warmup_options(tiny_dir, data_dir, tmp_path, capsys):
    from plmkit.cli import build_parser

    parser = build_parser()
    aliases = {"--max-seq-length": "max_length", "--gradient-accumulation-steps": "grad_accum",
               "--learning-rate": "lr", "--num-train-epochs": "epochs", "--n-best-size": "n_best",
               "--null-score-diff-threshold": "null_threshold", "--warmup-ratio": "warmup_ratio",
               "--warmup-steps": "warmup_steps"}
    args = parser.parse_args(["finetune", "rte", "--train", "t", "--out", "o", "--max-seq-length", "64",
                              "--gradient-accumulation-steps", "2", "--learning-rate", "3e-5", "--num-train-epochs",
                              "2", "--n-best-size", "5", "--null-score-diff-threshold", "1.5"])
    assert (args.max_length, args.grad_accum, args.lr, args.epochs, args.n_best, args.null_threshold) == (
        64, 2, 3e-5, 2.0, 5, 1.5)
    for flag, dest in aliases.items():
        assert any(flag in a.option_strings and a.dest == dest for a in parser._subparsers._group_actions[0]
                   .choices["finetune"]._actions), flag
    pre = parser.parse_args(["pretrain", "--preset", "bert-tiny", "--data", "d", "--out", "o", "--max-seq-length",
                             "32", "--gradient-accumulation-steps", "4", "--learning-rate", "1e-3",
                             "--warmup-steps", "7"])
    assert (pre.max_length, pre.grad_accum, pre.lr, pre.warmup_steps) == (32, 4, 1e-3, 7)
    for bad in (["--warmup-ratio", "1"], ["--warmup-ratio", "0.1", "--warmup-steps", "3"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["finetune", "rte", "--train", "t", "--out", "o", *bad])
    capsys.readouterr()

    from plmkit.cli._help import warmup_value

    assert warmup_value(parser.parse_args(["finetune", "rte", "--train", "t", "--out", "o", "--warmup-ratio",
                                           "0.2"])) == 0.2
    assert warmup_value(parser.parse_args(["finetune", "rte", "--train", "t", "--out", "o", "--warmup-steps",
                                           "10"])) == 10.0
    assert capsys.readouterr().err == ""
    assert warmup_value(parser.parse_args(["finetune", "rte", "--train", "t", "--out", "o", "--warmup", "0.3"])) == 0.3
    assert "--warmup 0.3 is deprecated" in capsys.readouterr().err
    # The old spelling still trains, with the note on stderr.
    train = _head(data_dir / "glue/RTE/train.tsv", tmp_path / "train.tsv", 24)
    assert run("finetune", "rte", "--model", tiny_dir, "--train", train, "--out", tmp_path / "w", "--warmup", "2",
               "--max-steps", "2", *FAST) == 0
    assert "--warmup 2 is deprecated and will be removed; use --warmup-steps 2" in capsys.readouterr().err


def test_every_option_shows_its_default_in_help(capsys):
    """Every option that takes a value says its default in --help (switches are off unless given)."""
    import argparse

    from plmkit.cli import build_parser
    from plmkit.cli._help import HelpFormatter

    def parsers(parser, name="plmkit"):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    yield from parsers(p, f"{name} {sub}")

    missing = []
    for name, parser in parsers(build_parser()):
        assert parser.formatter_class is HelpFormatter, name
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue
            text = formatter._get_help_string(action)
            if "default" not in text.lower() or not action.help:
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, missing
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "cuda:1 ... (default: auto)" in shown  # --device, through the formatter
    assert "--warmup-ratio R" in shown and "(default: 0.1)" in shown
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    from plmkit.training.trainer import TrainConfig

    c = TrainConfig()
    for text in (f"(default: the preset's, {c.batch_size})", "(default: the preset's, 5e-4)",
                 f"(default: the preset's, {c.warmup})", f"(default: the preset's, {c.log_every})"):
        assert text in shown, text
    assert c.lr == 5e-4
