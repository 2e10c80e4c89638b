"""ELMo's downstream use through ``plmkit finetune / evaluate / predict``: the BiLSTM tagger (brown-pos,
conll-ner) and sentence classifier (classify), without and with ``--elmo``; the README's ELMo commands
run as written on a miniature ``$PLMKIT_DATA``; bad input.

The toy tasks need context: an ambiguous word ("saw", "run", ...) is a noun after a determiner and
a verb after a pronoun, so a tagger that learns them has used its BiLSTM, not only word identity.
"""

from __future__ import annotations

import json
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import plmkit
from plmkit.cli import main

pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported"),
              pytest.mark.usefixtures("one_thread")]


def run(*argv) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main([str(a) for a in argv])


# --------------------------------------------------------------------------- toy data
DET, ADJ = ["the", "a"], ["big", "small", "red", "old"]
NOUN, PRON = ["dog", "cat", "man", "park", "car", "house"], ["they", "we", "he", "she"]
AMBIGUOUS, VERB = ["saw", "run", "watch", "walk"], ["hit", "likes", "sees"]


def toy_tagged(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Brown-tagset sentences: 'the (big) saw hits the dog .' (saw/nn) or 'they saw the (big) dog .' (saw/vbd)."""
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    out = []
    for _ in range(n):
        adj = [(pick(ADJ), "jj")] if rng.random() < 0.5 else []
        if rng.random() < 0.5:
            s = [(pick(DET), "at"), *adj, (pick(AMBIGUOUS), "nn"), (pick(VERB), "vbz"), (pick(DET), "at"),
                 (pick(NOUN), "nn")]
        else:
            s = [(pick(PRON), "pps"), (pick(AMBIGUOUS), "vbd"), (pick(DET), "at"), *adj, (pick(NOUN), "nn")]
        out.append(s + [(".", ".")])
    return out


def write_brown(path: Path, sentences) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(f"{w}/{t}" for w, t in s) + "\n\n" for s in sentences), encoding="utf-8")
    return path


def toy_ner(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """IOB1 CoNLL sentences; 'Washington' is a person after 'President' and a location after 'in'."""
    rng = np.random.default_rng(seed)
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    people, places, orgs = ["John", "Mary", "Smith", "Washington"], ["Paris", "Berlin", "Washington"], ["Google", "Siemens"]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.35:
            s = [("President", "O"), (pick(people), "I-PER"), ("visited", "O"), (pick(places), "I-LOC")]
        elif r < 0.7:
            s = [(pick(people[:3]), "I-PER"), ("lives", "O"), ("in", "O"), (pick(places), "I-LOC")]
        else:
            s = [(pick(people[:3]), "I-PER"), ("works", "O"), ("for", "O"), (pick(orgs), "I-ORG")]
        out.append(s + [(".", "O")])
    return out


def write_conll(path: Path, sentences) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join("".join(f"{w} NNP I-NP {t}\n" for w, t in s) + "\n" for s in sentences)
    path.write_text("-DOCSTART- -X- -X- O\n\n" + body, encoding="utf-8")
    return path


def toy_reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """'the film was good' → pos, 'the film was not good' → neg (negation needs the context)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        good = rng.random() < 0.5
        neg = rng.random() < 0.5
        word = ["good", "great", "fine"][int(rng.integers(3))] if good else ["bad", "dull", "poor"][int(rng.integers(3))]
        subject = ["the film", "this movie", "the plot"][int(rng.integers(3))]
        rows.append((f"{subject} was {'not ' if neg else ''}{word}", "pos" if good != neg else "neg"))
    return rows


def write_csv(path: Path, rows, pair: bool = False) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "other", "label"] if pair else ["text", "label"])
        for text, label in rows:
            w.writerow([text, text, label] if pair else [text, label])
    return path


@pytest.fixture(scope="module")
def tiny_elmo(tmp_path_factory) -> Path:
    """A tiny (untrained) ELMo folder: characters still give every word, seen or not, its own vectors."""
    from plmkit.models.elmo import ElmoConfig, ElmoModel

    torch.manual_seed(0)
    vocab = ["<pad>", "<unk>", "<s>", "</s>", *DET, *NOUN, *PRON, *AMBIGUOUS, *VERB, "."]
    folder = tmp_path_factory.mktemp("elmo") / "elmo"
    ElmoModel(ElmoConfig(dropout=0.0), vocab).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pos_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pos")
    return write_brown(d / "train" / "ca01", toy_tagged(160, 0)), write_brown(d / "eval" / "ca10", toy_tagged(60, 1))


SMALL = ["--embedding-dim", "16", "--hidden-size", "24", "--dropout", "0", "--lr", "2e-2", "--batch-size", "16",
         "--no-tensorboard"]


def read_tags(path: Path) -> list[list[str]]:
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    return [[line.split("\t")[1] for line in b.splitlines()] for b in blocks]


# --------------------------------------------------------------------------- brown-pos
@pytest.mark.parametrize("use_elmo", [False, True], ids=["bilstm", "bilstm+elmo"])
def test_brown_pos_tagger_trains_evaluates_predicts(use_elmo, tiny_elmo, pos_files, tmp_path, capsys):
    from safetensors.torch import load_file

    train, dev = pos_files
    out = tmp_path / "pos"
    extra = ["--elmo", tiny_elmo] if use_elmo else ["--arch", "bilstm"]
    assert run("finetune", "brown-pos", *extra, "--train", train, "--eval", dev, "--out", out, "--epochs", "12",
               *SMALL) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"] == "bilstm" and metrics["elmo"] == (str(tiny_elmo) if use_elmo else None)
    acc = metrics["metrics"]["accuracy"]
    assert acc >= 0.97, metrics  # the ambiguous words need the BiLSTM's context
    assert (out / "words.txt").exists() and (out / "elmo" / "config.json").exists() == use_elmo
    assert not (out / "checkpoints").exists()

    model = plmkit.from_pretrained(out)  # from_pretrained dispatches bilstm-tagger folders to load_tagger
    assert type(model).__name__ == "BiLstmTagger" and (model.elmo is not None) == use_elmo
    if use_elmo:  # the task learned the scalar mix; the biLM stayed frozen
        assert model.elmo.mixes[0].scalars.abs().sum() > 0 and model.elmo.mixes[0].gamma.item() != 1.0
        before, after = load_file(str(tiny_elmo / "model.safetensors")), load_file(str(out / "elmo" / "model.safetensors"))
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)

    capsys.readouterr()
    assert run("info", out) == 0 and json.loads(capsys.readouterr().out)["model_type"] == "bilstm-tagger"

    # evaluate recomputes ELMo from characters (training used cached states): the same score.
    assert run("evaluate", "brown-pos", "--model", out, "--eval", dev) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(acc, abs=1e-9)

    # predict on the gold file: the accuracy recomputed here from the written tags is the reported one.
    assert run("predict", "brown-pos", "--model", out, "--input", dev, "--out", tmp_path / "tags.txt") == 0
    pred = read_tags(tmp_path / "tags.txt")
    gold = [[t for _, t in s] for s in toy_tagged(60, 1)]
    assert [len(p) for p in pred] == [len(g) for g in gold]
    assert np.mean([p == g for ps, gs in zip(pred, gold) for p, g in zip(ps, gs)]) == pytest.approx(acc)
    # Plain text (one sentence per line), with a word the tagger never saw.
    plain = tmp_path / "plain.txt"
    plain.write_text("they watch the zebra .\nthe run sees a cat .\n", encoding="utf-8")
    assert run("predict", "brown-pos", "--model", out, "--input", plain, "--out", tmp_path / "plain.tags") == 0
    tags = read_tags(tmp_path / "plain.tags")
    assert tags[0][:3] == ["pps", "vbd", "at"] and tags[1][:3] == ["at", "nn", "vbz"]


def test_cached_elmo_states_equal_running_the_bilm(tiny_elmo, pos_files):
    """The frozen biLM's states computed once per sentence give the tagger the same logits as char_ids."""
    from plmkit.finetune import WordFeaturizer, collate, get_task, read_task_file, TaskOptions
    from plmkit.models.elmo import Elmo, load_elmo
    from plmkit.models.tagger import BiLstmTagger, TaggerConfig, build_word_vocab

    spec = get_task("brown-pos")
    examples, _ = read_task_file(spec, pos_files[1], "eval", TaskOptions())
    examples = examples[:12]
    vocab = build_word_vocab([e.tokens for e in examples])
    labels = sorted({t for e in examples for t in e.tags})
    torch.manual_seed(0)
    elmo = Elmo(load_elmo(tiny_elmo), layer_norm=True, dropout=0.0)
    model = BiLstmTagger(TaggerConfig(vocab_size=len(vocab), num_labels=len(labels), dropout=0.0), elmo=elmo,
                         word_vocab=vocab, label_vocab={t: i for i, t in enumerate(labels)}).eval()
    with torch.no_grad():
        elmo.mixes[0].scalars.copy_(torch.tensor([0.3, -0.2, 0.5]))
    cached = WordFeaturizer(spec, vocab, labels, elmo, cache=True, batch_words=40)(examples)
    plain = WordFeaturizer(spec, vocab, labels, elmo, cache=False)(examples)
    assert cached.inputs[0]["elmo_states"].shape == (len(examples[0].tokens), 3, elmo.output_dim)
    assert plain.inputs[0]["char_ids"].dtype == np.int16
    with torch.no_grad():
        a = model(**collate(cached.inputs, 0)).logits
        b = model(**collate(plain.inputs, 0)).logits
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


def test_seeds_summary_and_conll_ner_with_elmo(tiny_elmo, tmp_path, capsys):
    train = write_conll(tmp_path / "eng.train", toy_ner(150, 0))
    dev = write_conll(tmp_path / "eng.testa", toy_ner(50, 1))
    out = tmp_path / "ner"
    assert run("finetune", "conll-ner", "--elmo", tiny_elmo, "--train", train, "--eval", dev, "--out", out,
               "--epochs", "12", "--seeds", "1,2", *SMALL) == 0
    res = json.loads((out / "metrics.json").read_text())
    f1s = [r["metrics"]["f1"] for r in res["runs"].values()]
    assert res["seeds"] == [1, 2] and res["mean"]["f1"] == pytest.approx(np.mean(f1s))
    assert res["std"]["f1"] == pytest.approx(np.std(f1s, ddof=1))
    assert min(f1s) >= 0.95, res  # "Washington" after "President" vs after "in"
    model = plmkit.from_pretrained(out / "seed-1")
    assert set(model.label_names) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"}
    capsys.readouterr()
    assert run("evaluate", "conll-ner", "--model", out / "seed-1", "--eval", dev) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(res["runs"]["1"]["metrics"]["f1"])
    text = tmp_path / "news.txt"
    text.write_text("President Washington visited Berlin .\nMary lives in Washington .\n", encoding="utf-8")
    assert run("predict", "conll-ner", "--model", out / "seed-1", "--input", text, "--out", tmp_path / "ner.txt") == 0
    assert read_tags(tmp_path / "ner.txt") == [["O", "I-PER", "O", "I-LOC", "O"], ["I-PER", "O", "O", "I-LOC", "O"]]


def test_classify_with_elmo(tiny_elmo, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", toy_reviews(200, 0))
    dev = write_csv(tmp_path / "dev.csv", toy_reviews(60, 1))
    out = tmp_path / "cls"
    assert run("finetune", "classify", "--elmo", tiny_elmo, "--train", train, "--eval", dev, "--out", out,
               "--text-column", "text", "--label-column", "label", "--epochs", "10", "--elmo-layer-norm",
               "--no-elmo-cache", *SMALL) == 0  # the biLM runs in every step (char_ids batches)
    res = json.loads((out / "metrics.json").read_text())
    assert res["metrics"]["accuracy"] >= 0.95, res  # "not good" is negative
    model = plmkit.from_pretrained(out)
    assert type(model).__name__ == "BiLstmClassifier" and model.elmo.mixes[0].layer_norm
    assert model.elmo.mixes[0].scalars.abs().sum() > 0  # the mix was trained through the biLM's char_ids path
    assert model.label_names == ("neg", "pos")
    capsys.readouterr()
    assert run("evaluate", "classify", "--model", out, "--eval", dev) == 0  # the columns are remembered
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(res["metrics"]["accuracy"])
    new = write_csv(tmp_path / "new.csv", [("the plot was not dull", "pos"), ("this movie was poor", "neg")])
    assert run("predict", "classify", "--model", out, "--input", new, "--out", tmp_path / "p.jsonl") == 0
    preds = [json.loads(line)["prediction"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert preds == ["pos", "neg"]


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_a_clear_message(tiny_elmo, pos_files, tmp_path, capsys):
    train, dev = pos_files
    bert = tmp_path / "bert"
    from plmkit.config import ModelConfig
    from plmkit.models import PlmModel

    PlmModel(ModelConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37)).save_pretrained(bert)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    pair = write_csv(tmp_path / "pair.csv", toy_reviews(20, 0), pair=True)
    squad = tmp_path / "squad.json"
    squad.write_text('{"data": []}')
    base = ["--train", train, "--eval", dev]
    cases = [  # (argv, exit code, words the message must contain)
        (["brown-pos", "--elmo", bert, *base], 2, ["not ELMo", "--model instead"]),
        (["brown-pos", "--elmo", run_dir, *base], 2, ["run folder", "plmkit export"]),
        (["brown-pos", "--elmo", tmp_path / "nowhere", *base], 1, ["--elmo", "does not exist"]),
        (["brown-pos", "--elmo", tiny_elmo, "--model", bert, *base], 2, ["takes no --model"]),
        (["brown-pos", *base], 2, ["--model", "--arch bilstm"]),
        (["brown-pos", "--model", bert, "--hidden-size", "8", *base], 2, ["apply to --arch bilstm"]),
        (["brown-pos", "--model", bert, "--min-word-count", "3", *base], 2, ["--min-word-count", "BiLSTM"]),
        (["brown-pos", "--arch", "bilstm", "--max-length", "32", *base], 2, ["--max-length", "whole sentences"]),
        (["squad", "--arch", "bilstm", "--train", squad], 2, ["cannot do squad"]),
        (["stsb", "--elmo", tiny_elmo, "--train", squad], 2, ["cannot do stsb"]),
        (["classify", "--arch", "bilstm", "--train", pair, "--text-columns", "text,other", "--label-column", "label"],
         2, ["sentence pair", "line 2"]),
        (["brown-pos", "--arch", "bilstm", "--dropout", "1.5", *base], 2, ["dropout", "[0, 1)"]),
    ]
    for i, (argv, code, words) in enumerate(cases):
        out = tmp_path / f"out-{i}"
        capsys.readouterr()
        assert run("finetune", *argv, "--out", out, "--no-tensorboard") == code, argv
        err = " ".join(capsys.readouterr().err.split())
        assert "plmkit: error:" in err, (argv, err)
        message = err.split("plmkit: error:", 1)[1]
        assert all(w in message for w in words), (argv, message)
        assert not out.exists() or not any(out.iterdir()), argv  # no partial output


def test_loaded_tagger_must_fit_the_task(tiny_elmo, pos_files, tmp_path, capsys):
    train, dev = pos_files
    out = tmp_path / "pos"
    assert run("finetune", "brown-pos", "--arch", "bilstm", "--train", train, "--eval", dev, "--out", out,
               "--epochs", "1", *SMALL) == 0
    capsys.readouterr()
    assert run("evaluate", "classify", "--model", out, "--eval", dev, "--text-column", "x", "--label-column", "y") == 1
    assert "bilstm-classifier" in capsys.readouterr().err
    assert run("evaluate", "conll-ner", "--model", out, "--eval", dev) == 1  # Brown tags are not CoNLL's
    assert "labels" in capsys.readouterr().err
    capsys.readouterr()
    assert run("finetune", "brown-pos", "--elmo", out, "--train", train, "--out", tmp_path / "x") == 2
    assert "not ELMo" in capsys.readouterr().err  # a tagger folder is not an ELMo (its biLM would be in elmo/)


# --------------------------------------------------------------------------- README
# The ELMo commands of the README, run as written on a miniature $PLMKIT_DATA (same layout, a few
# toy files), with one substitution: the pretraining budget (500 steps of 16 windows) becomes 2 steps of 2.
README_COMMANDS = [
    'plmkit prepare --word-level --vocab-size 10000 --doc-per-file --split-sentences --out prepared-elmo '
    '"$PLMKIT_DATA/corpora/brown/c[a-r][0-9][1-9]" $PLMKIT_DATA/corpora/austen "$PLMKIT_DATA/corpora/sotu/*.json"',
    "plmkit pretrain --preset elmo-small --data prepared-elmo --out runs/elmo --max-steps 500 --batch-size 16 "
    "--max-length 64 --lr 4e-3 --set model.dropout=0",
    "plmkit export runs/elmo --out elmo",
    "plmkit score --model elmo sentences.txt",
    "plmkit embed --model elmo --layers mix --out vectors.npy sentences.txt",
    'plmkit finetune brown-pos --arch bilstm --train "$PLMKIT_DATA/corpora/brown/c[a-r][0-9]2" '
    '--eval "$PLMKIT_DATA/corpora/brown/c[a-r][0-9]0" --epochs 5 --seeds 1,2,3 --out runs/pos',
    'plmkit finetune brown-pos --elmo elmo --train "$PLMKIT_DATA/corpora/brown/c[a-r][0-9]2" '
    '--eval "$PLMKIT_DATA/corpora/brown/c[a-r][0-9]0" --epochs 5 --seeds 1,2,3 --out runs/pos-elmo',
    'plmkit evaluate brown-pos --model runs/pos-elmo/seed-1 --eval "$PLMKIT_DATA/corpora/brown/c[a-r][0-9]0"',
    "plmkit predict brown-pos --model runs/pos-elmo/seed-1 --input sentences.txt --out tags.txt",
    "plmkit finetune conll-ner --elmo elmo --train $PLMKIT_DATA/conll2003/eng.train "
    "--eval $PLMKIT_DATA/conll2003/eng.testa --out runs/ner-elmo",
    "plmkit finetune classify --elmo elmo --train reviews.csv --text-column text --label-column label "
    "--out runs/reviews-elmo",
]
SUBSTITUTIONS = {"--max-steps 500 --batch-size 16": "--max-steps 2 --batch-size 2"}


def _normal(command: str) -> str:
    return " ".join(command.replace("'", "").replace('"', "").split())


def mini_data(root: Path) -> Path:
    """$PLMKIT_DATA in miniature: Brown-layout files (ca01 … ca12), Austen, SOTU JSON, CoNLL."""
    brown = root / "corpora" / "brown"
    for i, name in enumerate(["ca01", "ca02", "ca10", "cb11", "cb12"]):
        write_brown(brown / name, toy_tagged(40, 10 + i))
    (root / "corpora" / "austen").mkdir(parents=True)
    para = "It is a truth universally acknowledged. The dog saw the cat in the park!"
    (root / "corpora" / "austen" / "emma.txt").write_text("\n\n".join([para] * 30) + "\n", encoding="utf-8")
    (root / "corpora" / "sotu").mkdir(parents=True)
    for year in (1790, 1791):
        speech = {"year": year, "name": "George Washington", "text": "\n\n".join(["We saw the people run. They walk."] * 20)}
        (root / "corpora" / "sotu" / f"{year}_george_washington.json").write_text(json.dumps(speech))
    write_conll(root / "conll2003" / "eng.train", toy_ner(60, 0))
    write_conll(root / "conll2003" / "eng.testa", toy_ner(20, 1))
    return root


def test_readme_elmo_commands(tmp_path, monkeypatch, capsys):
    data = mini_data(tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "sentences.txt").write_text("they saw the big dog .\nthe watch hits a zebra .\n", encoding="utf-8")
    write_csv(work / "reviews.csv", toy_reviews(40, 0))
    for command in README_COMMANDS:
        for old, new in SUBSTITUTIONS.items():
            command = command.replace(old, new)
        argv = shlex.split(command.replace("$PLMKIT_DATA", str(data)))
        assert argv[0] == "plmkit"
        capsys.readouterr()
        assert run(*argv[1:]) == 0, command
        printed = capsys.readouterr().out
        if argv[1] == "score":
            assert "perplexity" in printed and "-inf" not in printed
    corpus = json.loads((work / "prepared-elmo" / "meta.json").read_text())
    assert len(corpus["sources"]) == 4 + 1 + 2  # ca10 (POS evaluation) is not in ELMo's corpus
    assert plmkit.from_pretrained(work / "elmo").config.projection_dim == 128  # elmo-small
    vectors = np.load(work / "vectors.npy")
    assert vectors.shape == (12, 256)  # one 2P vector per word of sentences.txt
    for run_dir in ("runs/pos", "runs/pos-elmo"):
        res = json.loads((work / run_dir / "metrics.json").read_text())
        assert res["seeds"] == [1, 2, 3] and set(res["mean"]) == {"accuracy"}
    assert len(read_tags(work / "tags.txt")) == 2
    assert json.loads((work / "runs/ner-elmo/metrics.json").read_text())["elmo"] == "elmo"
    assert (work / "runs/reviews-elmo/elmo/elmo_vocab.txt").exists()
