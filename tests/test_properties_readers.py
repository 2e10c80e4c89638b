"""Property-based tests (hypothesis) of every reader of files from outside (issue 20, item 6-7).

One property per reader: a small valid input, mutated at random — bytes flipped, inserted, deleted or
cut off; lines dropped, doubled or given a column more or less; JSON values swapped for null, numbers,
NaN, booleans, lists, objects or 100,000-character strings; keys deleted — is either read or refused
with a :class:`plmkit.errors.PlmkitError`. Never another exception (a traceback for the user), and
never a message that quotes more than a short excerpt of the input.

Readers covered: the tokenizer folder (``tokenizer_config.json``, ``special_tokens_map.json``,
``vocab.txt``, ``vocab.json`` + ``merges.txt``, ``tokenizer.json``), ``model.safetensors.index.json``
and a shard's bytes, a prepared corpus's ``meta.json`` and index arrays, each task-file family (GLUE
TSV, JSON Lines classify / regress, SQuAD JSON, KLUE-NLI / KLUE-STS JSON, KLUE-NER, CoNLL, SWAG
CSV, Brown), the prediction JSON of ``evaluate --predictions``, and stdin bytes for score / embed.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plmkit.errors import PlmkitError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HUGE = "x" * 100_000
# An error names the file (a long tmp path), the key or line, what was expected and what to do; with
# every quote of the input cut to ~60 characters it stays well under this (a 100,000-character value
# quoted whole would not).
MESSAGE_LIMIT = 1500


def clean(fn: Callable[[], Any]) -> Any:
    """Run a reader: success, or a PlmkitError with a bounded message; any other exception fails the test."""
    try:
        return fn()
    except PlmkitError as e:
        assert len(str(e)) < MESSAGE_LIMIT, f"message of {len(str(e))} characters: {str(e)[:300]}…"
        assert "Traceback" not in str(e)
        return None


# ------------------------------------------------------------------------------------------ mutations
def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


_VALUES = st.sampled_from(["null", "int", "negative", "float", "nan", "inf", "bool", "empty-list", "list",
                           "empty-object", "object", "huge", "text", "empty-text", "delete"])


@st.composite
def json_mutation(draw, obj: Any, max_ops: int = 3) -> Any:
    """``obj`` with 1..max_ops values replaced by a value of another type, or deleted."""
    obj = copy.deepcopy(obj)
    for _ in range(draw(st.integers(1, max_ops))):
        path = draw(st.sampled_from(_paths(obj)))
        op = draw(_VALUES)
        value = {"null": None, "int": draw(st.integers(-(10**20), 10**20)), "negative": -1, "float": 2.5,
                 "nan": float("nan"), "inf": float("inf"), "bool": True, "empty-list": [], "list": [1, "a", None],
                 "empty-object": {}, "object": {"content": 3, "a": [1]}, "huge": HUGE,
                 "text": draw(st.text(max_size=12)), "empty-text": "", "delete": None}[op]
        if not path:
            obj = value if op != "delete" else {}
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if op == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return obj


@st.composite
def byte_mutation(draw, data: bytes, max_ops: int = 3) -> bytes:
    """``data`` with 1..max_ops byte- or line-level edits."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "drop-line", "double-line", "drop-tab",
                                   "add-tab", "junk-line", "huge-line", "nul"]))
        n = len(data)
        at = draw(st.integers(0, max(n - 1, 0)))
        lines = bytes(data).split(b"\n")
        li = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "flip" and n:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "drop-line":
            data = bytearray(b"\n".join(lines[:li] + lines[li + 1:]))
        elif op == "double-line":
            data = bytearray(b"\n".join(lines[:li + 1] + lines[li:]))
        elif op == "drop-tab":
            lines[li] = lines[li].replace(b"\t", b"", 1).replace(b",", b"", 1)
            data = bytearray(b"\n".join(lines))
        elif op == "add-tab":
            lines[li] = lines[li] + draw(st.sampled_from([b"\t", b",", b" x", b"\tO"]))
            data = bytearray(b"\n".join(lines))
        elif op == "junk-line":
            lines.insert(li, draw(st.text(max_size=20)).encode("utf-8"))
            data = bytearray(b"\n".join(lines))
        elif op == "huge-line":
            lines.insert(li, HUGE.encode())
            data = bytearray(b"\n".join(lines))
        elif op == "nul":
            data[at:at] = b"\x00"
    return bytes(data)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")


# ------------------------------------------------------------------------------------------ tokenizers
TEXTS = [" ".join(w) for w in [("the", "jury", "said", "further", "that", "the", "city"),
                                ("executive", "committee", "had", "charge", "of", "the", "election")]] * 30


@pytest.fixture(scope="module")
def tok_folders(tmp_path_factory) -> dict[str, Path]:
    from plmkit.tokenization import train_tokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    out = {}
    for kind, size in (("wordpiece", 60), ("bpe", 300)):
        train_tokenizer(kind, TEXTS, vocab_size=size).save_pretrained(root / kind)
        out[kind] = root / kind
    return out


def load_and_encode(folder: Path) -> None:
    from plmkit.tokenization import load_tokenizer

    tok = load_tokenizer(folder)
    tok.encode("the jury said ☃ zzz", "a pair")  # an unknown character must encode, not fail mid-run
    tok(["the city", "of"], max_length=8)


@FAST
@given(data=st.data(), name=st.sampled_from(["tokenizer_config.json", "special_tokens_map.json"]),
       kind=st.sampled_from(["wordpiece", "bpe"]), side_files_only=st.booleans())
def test_tokenizer_side_json_files(tok_folders, data, name, kind, side_files_only):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(tok_folders[kind], Path(tmp) / "tok"))
        if side_files_only:  # the side files then also steer how vocab.txt / vocab.json are built
            (d / "tokenizer.json").unlink()
        original = json.loads((d / name).read_text())
        write_json(d / name, data.draw(json_mutation(original)))
        clean(lambda: load_and_encode(d))


@FAST
@given(data=st.data())
def test_tokenizer_vocab_txt(tok_folders, data):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(tok_folders["wordpiece"], Path(tmp) / "tok"))
        (d / "tokenizer.json").unlink()
        (d / "vocab.txt").write_bytes(data.draw(byte_mutation((d / "vocab.txt").read_bytes())))
        clean(lambda: load_and_encode(d))


@FAST
@given(data=st.data(), which=st.sampled_from(["vocab.json", "merges.txt"]))
def test_tokenizer_bpe_vocab_and_merges(tok_folders, data, which):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(tok_folders["bpe"], Path(tmp) / "tok"))
        (d / "tokenizer.json").unlink()
        if which == "vocab.json" and data.draw(st.booleans()):
            write_json(d / which, data.draw(json_mutation(json.loads((d / which).read_text()), max_ops=2)))
        else:
            (d / which).write_bytes(data.draw(byte_mutation((d / which).read_bytes())))
        clean(lambda: load_and_encode(d))


@SLOW
@given(data=st.data(), kind=st.sampled_from(["wordpiece", "bpe"]), as_json=st.booleans())
def test_tokenizer_json(tok_folders, data, kind, as_json):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(tok_folders[kind], Path(tmp) / "tok"))
        f = d / "tokenizer.json"
        if as_json:
            write_json(f, data.draw(json_mutation(json.loads(f.read_text()))))
        else:
            f.write_bytes(data.draw(byte_mutation(f.read_bytes())))
        clean(lambda: load_and_encode(d))


# ------------------------------------------------------------------------------------------ weights
@pytest.fixture(scope="module")
def sharded_model(tmp_path_factory) -> Path:
    from safetensors.torch import load_file, save_file

    from plmkit import ModelConfig, PlmModel

    d = tmp_path_factory.mktemp("sharded") / "model"
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=20, max_position_embeddings=32)
    PlmModel(cfg, task="pretraining").save_pretrained(d)
    state = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    wmap = {}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, d / name, metadata={"format": "pt"})
        wmap.update(dict.fromkeys(names, name))
    write_json(d / "model.safetensors.index.json", {"metadata": {"total_size": 0}, "weight_map": wmap})
    return d


@FAST
@given(data=st.data())
def test_safetensors_index(sharded_model, data):
    from plmkit import from_pretrained

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(sharded_model, Path(tmp) / "model"))
        f = d / "model.safetensors.index.json"
        index = json.loads(f.read_text())
        mutated = data.draw(json_mutation(index))
        if data.draw(st.booleans()) and isinstance(mutated, dict) and isinstance(mutated.get("weight_map"), dict):
            key = data.draw(st.sampled_from(sorted(index["weight_map"])))
            mutated["weight_map"][key] = data.draw(st.sampled_from(
                ["../model-00001-of-00002.safetensors", "/etc/passwd", "..", "sub/x.safetensors",
                 "model-00009-of-00002.safetensors", "config.json", ""]))
        write_json(f, mutated)
        clean(lambda: from_pretrained(d))


@SLOW
@given(data=st.data())
def test_safetensors_shard_bytes(sharded_model, data):
    from plmkit import from_pretrained

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(sharded_model, Path(tmp) / "model"))
        f = d / "model-00001-of-00002.safetensors"
        raw = f.read_bytes()
        header = 8 + int.from_bytes(raw[:8], "little")
        if data.draw(st.booleans()):  # edit the JSON header (dtypes, shapes, offsets), keep the tensor bytes
            head = json.loads(raw[8:header])
            body = json.dumps(data.draw(json_mutation(head, max_ops=2))).encode()
            f.write_bytes(len(body).to_bytes(8, "little") + body + raw[header:])
        else:
            f.write_bytes(data.draw(byte_mutation(raw)))
        clean(lambda: from_pretrained(d))


# ------------------------------------------------------------------------------------------ prepared corpus
@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    from plmkit.data import prepare_corpus
    from plmkit.tokenization import train_tokenizer

    root = tmp_path_factory.mktemp("prepared")
    (root / "text.txt").write_text("".join(f"{t} .\n{t} again .\n\n" for t in TEXTS[:20]))
    train_tokenizer("wordpiece", TEXTS, vocab_size=60).save_pretrained(root / "tok")
    prepare_corpus([root / "text.txt"], root / "prep", tokenizer=root / "tok", workers=1, shard_tokens=120)
    return root / "prep"


def open_corpus(d: Path) -> None:
    from plmkit.data import PreparedCorpus

    corpus = PreparedCorpus(d)
    for i in range(len(corpus)):
        corpus.document_tokens(i)
        corpus.document(i)
    corpus.info()


@FAST
@given(data=st.data())
def test_prepared_meta_json(prepared, data):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(prepared, Path(tmp) / "prep"))
        write_json(d / "meta.json", data.draw(json_mutation(json.loads((d / "meta.json").read_text()))))
        clean(lambda: open_corpus(d))


@FAST
@given(data=st.data(), name=st.sampled_from(["sentence_lengths.npy", "sentence_offsets.npy",
                                             "doc_sentence_offsets.npy"]))
def test_prepared_index_arrays(prepared, data, name):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(shutil.copytree(prepared, Path(tmp) / "prep"))
        f = d / name
        if data.draw(st.booleans()):  # well-formed .npy, wrong numbers / dtype / shape
            arr = np.load(f)
            op = data.draw(st.sampled_from(["swap", "bump", "negate", "float", "int32", "short", "2d"]))
            i = data.draw(st.integers(0, len(arr) - 1))
            if op == "swap" and len(arr) > 1:
                j = (i + 1) % len(arr)
                arr[i], arr[j] = arr[j], arr[i]
            elif op == "bump":
                arr[i] += data.draw(st.integers(1, 10**6))
            elif op == "negate":
                arr[i] = -arr[i] - 1
            arr = {"float": arr.astype(np.float64), "int32": arr.astype(np.int32), "short": arr[:-1],
                   "2d": arr.reshape(1, -1)}.get(op, arr)
            np.save(f, arr)
        else:
            f.write_bytes(data.draw(byte_mutation(f.read_bytes())))
        clean(lambda: open_corpus(d))


# ------------------------------------------------------------------------------------------ task files
RTE = ("index\tsentence1\tsentence2\tlabel\n0\tThe cat sat.\tA cat sat.\tentailment\n"
       "1\tIt rained.\tIt was dry.\tnot_entailment\n")
STSB = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n" \
       "0\tmain\tx\t2012\t1\tnone\tnone\tA plane takes off.\tAn air plane is taking off.\t5.000\n"
COLA = "gj04\t1\t\tOur friends won't buy this analysis.\nclc95\t0\t*\tThey drank the pub.\n"
CLASSIFY = [{"text": "the city said", "label": "pos", "score": 0.5}, {"text": "jury had charge", "label": "neg",
                                                                     "score": 2}]
SQUAD = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{
    "context": "Denver Broncos won the Super Bowl in 2016.",
    "qas": [{"id": "q1", "question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 0}]},
            {"id": "q2", "question": "Who lost?", "answers": [], "is_impossible": True},
            {"id": "q3", "question": "When?", "answers": [{"text": "2016", "answer_start": 37},
                                                          {"text": "in 2016", "answer_start": 34}]}]}]}]}
KLUE_NLI = [{"guid": "klue-nli-v1_dev_00000", "source": "airbnb", "premise": "방이 깨끗했다.",
             "hypothesis": "방이 더러웠다.", "gold_label": "contradiction", "author": "x", "label2": ["a"]},
            {"guid": "klue-nli-v1_dev_00001", "premise": "좋다.", "hypothesis": "좋았다.", "gold_label": "entailment"}]
KLUE_STS = [{"guid": "klue-sts-v1_dev_00000", "source": "airbnb-rtt", "sentence1": "숙소가 좋았다.",
             "sentence2": "숙소는 좋았습니다.", "labels": {"label": 4.2, "real-label": 4.2, "binary-label": 1}}]
KLUE_NER = ("## klue-ner-v1_dev_00000\t<철수:PS>는 갔다\n철\tB-PS\n수\tI-PS\n는\tO\n \tO\n갔\tO\n다\tO\n\n"
            "## klue-ner-v1_dev_00001\t<서울:LC>\n서\tB-LC\n울\tI-LC\n")
CONLL = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\n. . O O\n\n"
         "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n")
SWAG = (",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
        '0,anetv_1,5,"He sat. He",He sat.,He,gold,"stood, then ran.",ate.,slept.,sang.,0\n'
        "1,lsmdc_2,7,She ran. She,She ran.,She,gen,fell.,won.,lost.,hid.,3\n")
BROWN = "\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tIt/pps ran/vbd well/rb ./.\n"

# task, file name, content (text, or a JSON value written as JSON / as JSON Lines for .jsonl)
TASK_FILES = {
    "glue-tsv": ("rte", "train.tsv", RTE),
    "glue-tsv-regression": ("stsb", "train.tsv", STSB),
    "glue-tsv-headerless": ("cola", "train.tsv", COLA),
    "kornli-tsv": ("kornli", "train.tsv", "sentence1\tsentence2\tgold_label\n좋다.\t좋았다.\tentailment\n"),
    "jsonl-classify": ("classify", "train.jsonl", CLASSIFY),
    "jsonl-regress": ("regress", "train.jsonl", CLASSIFY),
    "csv-classify": ("classify", "train.csv", 'text,label,score\n"the city, said",pos,0.5\njury,neg,2\n'),
    "squad-json": ("squad", "train.json", SQUAD),
    "korquad-json": ("korquad", "train.json", SQUAD),
    "klue-nli-json": ("klue-nli", "train.json", KLUE_NLI),
    "klue-sts-json": ("klue-sts", "train.json", KLUE_STS),
    "klue-ner-tsv": ("klue-ner", "train.tsv", KLUE_NER),
    "conll": ("conll-ner", "train.txt", CONLL),
    "swag-csv": ("swag", "train.csv", SWAG),
    "brown": ("brown-pos", "ca01", BROWN),
}


def write_task_file(path: Path, content: Any) -> None:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif path.suffix == ".jsonl":
        records = content if isinstance(content, list) else [content]
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        write_json(path, content)


def read_task(task: str, path: Path, role: str, require_labels: bool) -> None:
    from plmkit.finetune import TaskOptions, get_task, read_task_file

    label = "score" if task == "regress" else "label"
    opts = TaskOptions(text_columns=("text",), label_column=label)
    examples, report = read_task_file(get_task(task), path, role, opts, require_labels=require_labels)
    report.summary()
    for e in examples:  # what the converters rely on: text is text, labels are labels
        for attr in ("text_a", "text_b", "question", "context", "guid", "qid"):
            value = getattr(e, attr, None)
            assert value is None or isinstance(value, str), (attr, value)
        if getattr(e, "tokens", None) is not None:
            assert all(isinstance(t, str) for t in e.tokens)


@FAST
@given(data=st.data(), family=st.sampled_from(sorted(TASK_FILES)), role=st.sampled_from(["train", "eval"]),
       require_labels=st.booleans())
def test_task_file(data, family, role, require_labels):
    task, name, content = TASK_FILES[family]
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / name
        write_task_file(f, content)
        read_task(task, f, role, require_labels)  # the valid file reads
        if not isinstance(content, str) and data.draw(st.booleans()):
            write_task_file(f, data.draw(json_mutation(content)))
        else:
            f.write_bytes(data.draw(byte_mutation(f.read_bytes())))
        clean(lambda: read_task(task, f, role, require_labels))


@FAST
@given(data=st.data(), family=st.sampled_from(sorted(TASK_FILES)), other=st.sampled_from(sorted(TASK_FILES)))
def test_a_file_of_another_task_is_read_or_refused_briefly(data, family, other):
    """Any task's file given to any other task: read (compatible formats) or a short error."""
    task = TASK_FILES[family][0]
    _, name, content = TASK_FILES[other]
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / name
        write_task_file(f, content)
        if data.draw(st.booleans()):  # a big file (a real SQuAD file is one 2 MB line): the error stays short
            f.write_bytes(f.read_bytes().replace(b"e", HUGE.encode(), 1))
        clean(lambda: read_task(task, f, "train", True))


# ------------------------------------------------------------------------------------------ predictions
@FAST
@given(data=st.data(), na_probs=st.booleans())
def test_squad_predictions_json(data, na_probs):
    from plmkit.finetune import evaluate_squad_predictions

    with tempfile.TemporaryDirectory() as tmp:
        gold, preds, odds = Path(tmp) / "dev.json", Path(tmp) / "predictions.json", Path(tmp) / "odds.json"
        write_json(gold, SQUAD)
        valid = {"q1": "Denver Broncos", "q2": "", "q3": "2016"}
        write_json(odds, {"q1": -3.5, "q2": 2.0, "q3": -1.0})
        if data.draw(st.booleans()):
            write_json(preds, data.draw(json_mutation(valid)))
        else:
            write_json(preds, valid)
            target = odds if na_probs and data.draw(st.booleans()) else preds
            target.write_bytes(data.draw(byte_mutation(target.read_bytes())))
        clean(lambda: evaluate_squad_predictions("squad", gold, preds, na_probs_file=odds if na_probs else None))


# ------------------------------------------------------------------------------------------ stdin
class _Stdin(io.TextIOWrapper):
    """A stand-in for ``sys.stdin``: text over raw bytes, as the real one is."""


@FAST
@given(raw=st.one_of(st.binary(max_size=200),
                     st.builds(lambda b, cut: b[:cut], st.just("the jury said\nit ran\n".encode()),
                               st.integers(0, 22)),
                     st.just("caf\xe9 ok\n".encode("latin-1")), st.just(b"\xef\xbb\xbfthe jury\n")))
def test_stdin_bytes_for_score_and_embed(raw):
    from plmkit.cli.score import read_sentences  # embed reads its inputs through the same function

    saved = sys.stdin
    sys.stdin = _Stdin(io.BytesIO(raw), encoding="utf-8")
    try:
        sentences = clean(lambda: read_sentences(["-"]))
    finally:
        sys.stdin = saved
    if sentences is not None:
        assert all(isinstance(s, str) and s for s in sentences)
