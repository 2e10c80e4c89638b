"""Task readers on the real files, their quirks and bad-input messages, and feature conversion
(SQuAD windows and offsets, first-sub-token label alignment, KLUE characters, batching)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import plmkit
from plmkit.errors import DataError
from plmkit.evaluation.metrics import get_chunks
from plmkit.finetune import (FeatureBatches, TaskOptions, bucketed_batches, collate, featurize, get_task,
                             read_task_file)
from plmkit.finetune.tasks import IGNORE_INDEX, Features, carve_split, tagging
from plmkit.finetune.tasks import squad as sq


def read(task, path, role="train", **kw):
    return read_task_file(get_task(task), path, role, TaskOptions(**kw))


@pytest.fixture(scope="module")
def tok(minilm_dir):
    return plmkit.load_tokenizer(minilm_dir)


# --------------------------------------------------------------------------- readers on the real files
@pytest.mark.parametrize("task,path,count", [
    ("cola", "glue/CoLA/train.tsv", 8551),
    ("mrpc", "glue/MRPC/train.tsv", 3668),
    ("rte", "glue/RTE/train.tsv", 2490),
    ("stsb", "glue/STS-B/train.tsv", 5749),
    ("wnli", "glue/WNLI/train.tsv", 635),
    ("conll-ner", "conll2003/eng.train", 14041),
    ("conll-ner", "conll2003/eng.testa", 3250),
    ("klue-nli", "korean/klue/klue-nli-v1.1_dev.json", 3000),
    ("klue-sts", "korean/klue/klue-sts-v1.1_dev.json", 519),
    ("klue-ner", "korean/klue/klue-ner-v1.1_dev.tsv", 5000),
    ("kornli", "korean/kornli/xnli.dev.ko.tsv", 2490),
    ("korsts", "korean/korsts/sts-train.tsv", 5749),
    ("nsmc", "korean/nsmc/ratings-part-a.txt", 25000),
    ("korquad", "korean/korquad/korquad-v1.0-dev-part-a.json", 2865),
    ("squad", "squad/squad-v1.1-dev-part-a.json", 4961),
    ("squad", "squad/squad-v2.0-dev-subset-part-a.json", 2805),
])
def test_readers_read_every_example_of_the_real_files(data_dir, task, path, count):
    examples, report = read(task, data_dir / path, role="eval")
    assert len(examples) == count == report.read
    assert not report.skipped


def test_glue_quirks_on_real_files(data_dir):
    cola, _ = read("cola", data_dir / "glue/CoLA/train.tsv")  # no header: the first line is an example
    assert cola[0].text_a.startswith("Our friends won't buy this analysis")
    assert {e.label for e in cola} == {"0", "1"}
    mrpc, _ = read("mrpc", data_dir / "glue/MRPC/train.tsv")  # BOM before the header
    assert mrpc[0].label == "1" and mrpc[0].text_a.startswith("Amrozi") and mrpc[0].text_b.startswith("Referring")
    stsb, _ = read("stsb", data_dir / "glue/STS-B/train.tsv")
    assert stsb[0].label == 5.0 and isinstance(stsb[1].label, float)
    rte, _ = read("rte", data_dir / "glue/RTE/train.tsv")
    assert {e.label for e in rte} == {"entailment", "not_entailment"}


def test_squad_v2_and_conll_details(data_dir):
    ex, rep = read("squad", data_dir / "squad/squad-v2.0-dev-subset-part-a.json", role="eval")
    assert rep.info["version"] == "2.0"
    assert sum(e.is_impossible for e in ex) == 1527
    conll, _ = read("conll-ner", data_dir / "conll2003/eng.train")
    assert conll[0].tokens[:3] == ["EU", "rejects", "German"] and conll[0].tags[:3] == ["I-ORG", "O", "I-MISC"]
    assert not any("-DOCSTART-" in e.tokens for e in conll)


def test_klue_ner_keeps_spaces_and_their_tags(data_dir):
    ex, _ = read("klue-ner", data_dir / "korean/klue/klue-ner-v1.1_dev.tsv")
    first = ex[0]
    assert first.text.startswith("경찰은 또") and first.tags[:3] == ["B-OG", "I-OG", "O"]
    assert len(first.text) == len(first.tags)
    inside_space = [e for e in ex if any(c == " " and t.startswith("I-") for c, t in zip(e.tokens, e.tags))]
    assert inside_space  # spaces inside entities carry I- tags


def test_brown_pos_reader_on_the_corpus_folder(data_dir):
    ex, rep = read("brown-pos", data_dir / "corpora/brown/ca01")
    assert ex[0].tokens[:3] == ["The", "Fulton", "County"] and ex[0].tags[:3] == ["at", "np-tl", "nn-tl"]
    assert all(len(e.tokens) == len(e.tags) for e in ex)


# --------------------------------------------------------------------------- quirks and bad input (files written here)
def test_qqp_malformed_rows_are_skipped_and_counted(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                 "0\t1\t2\tHow old?\tWhat age?\t1\n"
                 "1\t3\t4\tbroken row with a newline inside\n"
                 "2\t5\t6\tWhy?\tHow?\t0\n")
    ex, rep = read("qqp", f)
    assert [e.label for e in ex] == ["1", "0"]
    assert sum(rep.skipped.values()) == 1 and "line 3" in rep.summary()


def test_wrong_column_count_names_the_line(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tentailment\n")
    with pytest.raises(DataError, match=r"line 3: 3 tab-separated column\(s\) but the header has 4"):
        read("rte", f)


def test_unknown_label_is_an_error_naming_line_and_labels(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tcontradiction\n")
    with pytest.raises(DataError, match=r"line 3: unknown label 'contradiction'.*'entailment', 'not_entailment'"):
        read("rte", f)
    c = tmp_path / "eng.train"
    c.write_text("EU NNP I-NP I-ORGX\n")
    with pytest.raises(DataError, match="line 1: unknown label 'I-ORGX'"):
        read("conll-ner", c)


def test_unlabelled_glue_test_files_read_for_prediction(tmp_path):
    f = tmp_path / "test.tsv"
    f.write_text("index\tsentence\n0\tThe book was read.\n1\tRead book the.\n")
    ex, _ = read_task_file(get_task("cola"), f, "input", TaskOptions(), require_labels=False)
    assert [e.text_a for e in ex] == ["The book was read.", "Read book the."] and ex[0].label is None
    with pytest.raises(DataError, match="no label column"):
        read("sst2", f)


def _squad_file(tmp_path, start_ok=True):
    ctx = "Paris is the capital of France. It is on the Seine."
    data = {"version": "1.1", "data": [{"title": "P", "paragraphs": [{"context": ctx, "qas": [
        {"id": "q1", "question": "What is the capital?", "answers": [{"text": "Paris", "answer_start": 0}]},
        {"id": "q2", "question": "Which river?", "answers": [{"text": "Seine", "answer_start": 45 if start_ok else 3}]},
        {"id": "q3", "question": "Which country?", "answers": [{"text": "France", "answer_start": 99},
                                                                {"text": "France", "answer_start": 24}]},
    ]}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    return path


def test_squad_answer_start_mismatch_is_counted_and_skipped(tmp_path):
    ex, rep = read("squad", _squad_file(tmp_path, start_ok=False))
    # q2's only answer points elsewhere: dropped from training; q3's second answer is used instead.
    assert [e.qid for e in ex] == ["q1", "q3"]
    assert ex[1].answer_start == 24
    assert rep.skipped == {sq.MISMATCH: 2, sq.NO_TARGET: 1}
    assert "question q2" in rep.summary()
    ev, rep_ev = read("squad", _squad_file(tmp_path, start_ok=False), role="eval")
    assert [e.qid for e in ev] == ["q1", "q2", "q3"] and rep_ev.skipped == {sq.MISMATCH: 2}


def test_swag_csv(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text(",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
                 '0,v1,5,"Members of the team, smiling.",Members of the team,smiling,gold,wave.,"eat, then sleep.",run.,sit.,1\n')
    ex, _ = read("swag", f)
    assert ex[0].context == "Members of the team" and ex[0].endings[1] == "smiling eat, then sleep."
    assert ex[0].label == 1


def test_generic_reader_csv_tsv_jsonl(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"Hello, world",pos\nbad,neg\n')
    (tmp_path / "a.jsonl").write_text('{"q": "x", "p": "y", "score": 0.5}\n{"q": "z", "p": "w", "score": 2}\n')
    ex, _ = read("classify", tmp_path / "a.csv", text_columns=("text",), label_column="label")
    assert [(e.text_a, e.label) for e in ex] == [("Hello, world", "pos"), ("bad", "neg")]
    ex, _ = read("regress", tmp_path / "a.jsonl", text_columns=("q", "p"), label_column="score")
    assert [(e.text_a, e.text_b, e.label) for e in ex] == [("x", "y", 0.5), ("z", "w", 2.0)]
    with pytest.raises(DataError, match="no column 'txt'"):
        read("classify", tmp_path / "a.csv", text_columns=("txt",), label_column="label")


def test_carved_split_is_deterministic_and_groupwise():
    a = carve_split(100, 0.1, seed=0)
    b = carve_split(100, 0.1, seed=0)
    assert np.array_equal(a[1], b[1]) and len(a[1]) == 10
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    assert not np.array_equal(a[1], carve_split(100, 0.1, seed=1)[1])
    groups = [i // 7 for i in range(70)]  # 10 articles of 7 questions
    tr, ev = carve_split(groups, 0.2, seed=3)
    assert len(ev) == 14 and not {groups[i] for i in tr} & {groups[i] for i in ev}


# --------------------------------------------------------------------------- features
def test_squad_windows_recover_every_answer_span(data_dir, tok):
    ex, _ = read("squad", data_dir / "squad/squad-v1.1-dev-part-a.json")
    ex = ex[:150]
    f = sq.convert_squad(ex, tok, max_length=128, doc_stride=32, training=True)
    assert f.stats["windows"] > len(ex)  # long contexts were split
    for i, feat in enumerate(f.inputs):
        e = ex[f.example_index[i]]
        off, ctx, cls = f.extra[i]["offsets"], f.extra[i]["context"], f.extra[i]["cls"]
        start_char, end_char = e.answer_start, e.answer_start + len(e.answer_text)
        idx = np.flatnonzero(ctx)
        window_has_answer = off[idx[0], 0] <= start_char and off[idx[-1], 1] >= end_char
        s, t = int(feat["start_positions"]), int(feat["end_positions"])
        if not window_has_answer:
            assert s == t == cls
            continue
        # The labelled tokens are the tightest token span that covers the answer characters.
        assert ctx[s] and ctx[t] and s <= t
        assert off[s, 0] <= start_char and off[t, 1] >= end_char
        assert (s + 1 > t) or off[s + 1, 0] > start_char
        assert (t - 1 < s) or off[t - 1, 1] < end_char
        assert e.answer_text in e.context[off[s, 0]:off[t, 1]]


def _qa_features(ctx_mask, offsets, ex_index=(0,)):
    extra = [{"offsets": np.asarray(o), "context": np.asarray(m, bool), "cls": 0} for o, m in zip(offsets, ctx_mask)]
    return Features([{"input_ids": np.zeros(len(m), np.int64)} for m in ctx_mask], np.asarray(ex_index), extra)


def test_nbest_returns_the_max_scoring_valid_span():
    rng = np.random.default_rng(0)
    context = " ".join(f"w{i}" for i in range(20))
    T = 25  # [CLS] q q [SEP] + 20 context words + [SEP]
    offsets = np.zeros((T, 2), np.int64)
    mask = np.zeros(T, bool)
    pos = 0
    for k in range(20):
        word = f"w{k}"
        offsets[4 + k] = (pos, pos + len(word))
        mask[4 + k] = True
        pos += len(word) + 1
    ex = [sq.SquadExample("q", "q?", context, ["w3"], 0, "w0")]
    for trial in range(20):
        start, end = rng.normal(size=T), rng.normal(size=T)
        start[1], end[2] = 9.0, 9.5  # best scores in the question: never valid
        f = _qa_features([mask], [offsets])
        got = sq.postprocess(ex, f, [start], [end], n_best=T, max_answer_length=4)["predictions"]["q"]
        best = max(((start[s] + end[e], s, e) for s in range(T) for e in range(T)
                    if mask[s] and mask[e] and s <= e and e - s + 1 <= 4))
        assert got == context[offsets[best[1], 0]:offsets[best[2], 1]]


def test_v2_null_prediction_and_threshold():
    context = "alpha beta"
    offsets = np.array([[0, 0], [0, 5], [6, 10], [0, 0]])
    mask = np.array([False, True, True, False])
    ex = [sq.SquadExample("q", "q?", context, [], is_impossible=True)]
    start, end = np.array([3.0, 1.0, 0.0, 0.0]), np.array([3.0, 0.0, 1.5, 0.0])  # null 6, best span 2.5
    out = sq.postprocess(ex, _qa_features([mask], [offsets]), [start], [end], version_2=True)
    assert out["predictions"]["q"] == "" and out["best_non_null"]["q"] == "alpha beta"
    assert out["null_odds"]["q"] == pytest.approx(3.5)
    out = sq.postprocess(ex, _qa_features([mask], [offsets]), [start], [end], version_2=True, null_threshold=4.0)
    assert out["predictions"]["q"] == "alpha beta"


def test_tagging_labels_sit_on_the_first_sub_token_of_each_word(data_dir, tok):
    ex, _ = read("conll-ner", data_dir / "conll2003/eng.testa")
    ex = ex[:200]
    f = featurize(get_task("conll-ner"), ex, tok, tagging.CONLL_LABELS, TaskOptions(), True, training=True)
    for e, feat, meta in zip(ex, f.inputs, f.extra):
        enc = tok.encode(e.tokens, is_pretokenized=True)
        firsts = [t for t, w in enumerate(enc.word_ids) if w is not None and (t == 0 or enc.word_ids[t - 1] != w)]
        labelled = np.flatnonzero(feat["labels"] != IGNORE_INDEX).tolist()
        assert labelled == firsts
        assert [tagging.CONLL_LABELS[i] for i in feat["labels"][labelled]] == e.tags
        # Predicting the gold labels gives back the gold tags.
        assert tagging.decode_words(e, np.where(feat["labels"] < 0, 0, feat["labels"]), meta,
                                    tagging.CONLL_LABELS) == e.tags


def test_klue_characters_round_trip_through_tokens(data_dir, tok):
    ex, _ = read("klue-ner", data_dir / "korean/klue/klue-ner-v1.1_dev.tsv")
    ex = ex[:150]
    labels = tagging.KLUE_LABELS
    f = featurize(get_task("klue-ner"), ex, tok, labels, TaskOptions(max_length=512), True, training=True)
    aligned = 0
    for i, e in enumerate(ex):
        owner, first = f.extra[i]["owner"], f.extra[i]["first"]

        def boundary(c):
            return c >= len(e.tokens) or owner[c] < 0 or first[owner[c]] == c
        if not all(boundary(s) and boundary(t) for _, s, t in get_chunks(e.tags)):
            continue  # an entity edge inside a token cannot be represented by token labels
        aligned += 1
        preds = np.where(f.inputs[i]["labels"] < 0, 0, f.inputs[i]["labels"])
        assert tagging.decode_chars(e, preds, f.extra[i], labels) == e.tags
    assert aligned > 100


# --------------------------------------------------------------------------- batching
def _toy_features(lengths):
    return Features([{"input_ids": np.arange(1, n + 1, dtype=np.int64), "labels": np.int64(n % 2)} for n in lengths],
                    np.arange(len(lengths)))


def test_collate_pads_dynamically_and_drops_a_full_mask():
    items = _toy_features([3, 5]).inputs
    b = collate(items, pad_id=0)
    assert b["input_ids"].shape == (2, 5) and b["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert b["labels"].tolist() == [1, 1]
    assert "attention_mask" not in collate(_toy_features([4, 4]).inputs, pad_id=0)
    tags = [{"input_ids": np.ones(2, np.int64), "labels": np.array([3, 4])},
            {"input_ids": np.ones(3, np.int64), "labels": np.array([1, 2, 3])}]
    assert collate(tags, 0)["labels"].tolist() == [[3, 4, IGNORE_INDEX], [1, 2, 3]]


def test_length_buckets_cover_each_example_once_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, 1000)
    batches = bucketed_batches(lengths, 16, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = np.random.default_rng(1).permutation(1000)
    padded_plain = sum(16 * lengths[plain[i:i + 16]].max() for i in range(0, 1000, 16))
    assert padded < 0.7 * padded_plain


def test_feature_batches_resume_exactly():
    feats = _toy_features(list(range(1, 41)))
    a = FeatureBatches(feats, 4, seed=7)
    it = iter(a)
    first = [next(it)["input_ids"] for _ in range(13)]  # crosses an epoch (10 batches per epoch)
    state = a.state_dict()
    rest = [next(it)["input_ids"] for _ in range(5)]
    b = FeatureBatches(feats, 4, seed=7)
    b.load_state_dict(state)
    it_b = iter(b)
    assert all(x.equal(next(it_b)["input_ids"]) for x in rest)
    assert state == {"epoch": 1, "position": 3, "seed": 7}
    # Epoch 0 served every feature exactly once (feature n is the row 1..n).
    epoch0 = sorted(int(row.max()) for x in first[:10] for row in x)
    assert epoch0 == list(range(1, 41)) and len(a) == 10
