"""Task metrics against independent references: scikit-learn / scipy for GLUE, and hand-worked cases
of the official SQuAD 1.1 / 2.0, KorQuAD 1.0 and conlleval definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from plmkit.evaluation import metrics as M

# --------------------------------------------------------------------------- GLUE


def _fixed(n=200, seed=0):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.7, gold, 1 - gold)
    return pred, gold


def test_glue_classification_metrics_equal_sklearn():
    pred, gold = _fixed()
    assert M.glue_metrics("rte", pred, gold) == {"accuracy": pytest.approx(accuracy_score(gold, pred))}
    mrpc = M.glue_metrics("mrpc", pred, gold)
    assert mrpc["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert mrpc["f1"] == pytest.approx(f1_score(gold, pred))
    assert set(M.glue_metrics("qqp", pred, gold)) == {"accuracy", "f1"}
    assert M.glue_metrics("cola", pred, gold)["matthews_correlation"] == pytest.approx(matthews_corrcoef(gold, pred))
    # F1 is of the positive class (label 1), not a macro average.
    assert M.f1_binary([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / 3)


def test_glue_multiclass_accuracy_and_stsb_correlations_equal_scipy():
    rng = np.random.default_rng(1)
    gold3 = rng.integers(0, 3, 150)
    pred3 = np.where(rng.random(150) < 0.6, gold3, rng.integers(0, 3, 150))
    assert M.glue_metrics("mnli", pred3, gold3)["accuracy"] == pytest.approx(accuracy_score(gold3, pred3))
    gold = rng.uniform(0, 5, 100)
    pred = gold + rng.normal(0, 1, 100)
    out = M.glue_metrics("stsb", pred, gold)
    assert out["pearson"] == pytest.approx(pearsonr(pred, gold)[0])
    assert out["spearmanr"] == pytest.approx(spearmanr(pred, gold)[0])


def test_klue_sts_f1_binarises_at_three():
    gold = [4.0, 3.0, 2.9, 0.5]
    pred = [3.5, 2.0, 3.1, 0.0]  # binarised: pred 1 0 1 0; gold 1 1 0 0
    out = M.klue_sts_metrics(pred, gold)
    assert out["f1"] == pytest.approx(f1_score([1, 1, 0, 0], [1, 0, 1, 0]))
    assert out["pearson"] == pytest.approx(pearsonr(pred, gold)[0])


# --------------------------------------------------------------------------- SQuAD


def test_normalize_answer_follows_the_official_rule():
    assert M.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert M.normalize_answer("an apple, a pear & the end.") == "apple pear end"
    assert M.normalize_answer("Theory") == "theory"  # 'the' only as a whole word
    assert M.normalize_answer("  Saint-Denis  ") == "saintdenis"  # hyphens are punctuation


def _dataset(qas):
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


def test_squad_v1_exact_and_f1_on_hand_worked_cases():
    data = _dataset([
        {"id": "q1", "answers": [{"text": "Denver Broncos"}, {"text": "the Broncos"}]},
        {"id": "q2", "answers": [{"text": "Santa Clara, California"}]},
        {"id": "q3", "answers": [{"text": "1990"}]},
        {"id": "q4", "answers": [{"text": "gold"}]},
    ])
    preds = {"q1": "Broncos",  # vs "the Broncos" → "broncos" == "broncos": EM 1
             "q2": "Santa Clara",  # P 2/2, R 2/3 → F1 0.8, EM 0
             "q3": "in 1990 and 1991"}  # P 1/4, R 1 → F1 0.4; q4 missing → 0
    out = M.squad_v1_evaluate(data, preds)
    # plmkit's scale is the fraction; the official script prints 100x it (explicit x100 below).
    assert 100 * out["exact_match"] == pytest.approx(100 * 1 / 4)
    assert 100 * out["f1"] == pytest.approx(100 * (1 + 0.8 + 0.4 + 0) / 4)
    assert out["total"] == 4 and out["missing"] == 1
    official = M.squad_v1_evaluate(data, preds, official=True)
    assert official["exact_match"] == pytest.approx(100 * 1 / 4)
    assert official["f1"] == pytest.approx(100 * (1 + 0.8 + 0.4 + 0) / 4)
    assert M.official_metrics("squad", out) == pytest.approx(official)


def test_squad_v1_takes_the_best_gold_answer():
    data = _dataset([{"id": "q", "answers": [{"text": "a cat"}, {"text": "black cat sat"}]}])
    # vs "cat": F1 1.0 (articles removed); vs "black cat sat": 2*(1/2*1/3)/(1/2+1/3) = 0.4
    out = M.squad_v1_evaluate(data, {"q": "the cat!"}, official=True)
    assert out == pytest.approx({"exact_match": 100.0, "f1": 100.0, "total": 1, "missing": 0})
    out = M.squad_v1_evaluate(data, {"q": "black dog"})  # "black dog" vs "black cat sat": P 1/2 R 1/3 → 0.4
    assert 100 * out["f1"] == pytest.approx(40.0) and out["exact_match"] == 0.0


def test_squad_v1_and_v2_f1_differ_on_empty_answers():
    assert M.squad_f1_v1("", "") == 0.0  # v1.1: nothing shared → 0
    assert M.squad_f1_v2("", "") == 1.0  # v2.0: both empty → agree
    assert M.squad_f1_v2("the", "") == 1.0  # "the" normalises to nothing
    assert M.squad_f1_v2("x", "") == 0.0


def _v2_data():
    return _dataset([
        {"id": "a1", "answers": [{"text": "Paris"}], "is_impossible": False},
        {"id": "a2", "answers": [{"text": "red car"}], "is_impossible": False},
        {"id": "n1", "answers": [], "is_impossible": True},
        {"id": "n2", "answers": [], "is_impossible": True},
    ])


def test_squad_v2_no_answer_scoring_and_breakdowns():
    preds = {"a1": "Paris", "a2": "car", "n1": "", "n2": "Lyon"}
    out = M.squad_v2_evaluate(_v2_data(), preds, official=True)
    # exact: a1 1, a2 0, n1 1 (empty == empty), n2 0 → 50; f1: 1, 2/3, 1, 0
    assert out["exact"] == pytest.approx(50.0)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    assert out["HasAns_total"] == 2 and out["NoAns_total"] == 2
    assert out["HasAns_exact"] == pytest.approx(50.0) and out["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert out["NoAns_exact"] == pytest.approx(50.0) and out["NoAns_f1"] == pytest.approx(50.0)
    assert "best_f1" not in out  # only with no-answer probabilities
    # plmkit's names and scale: exact_match (every SQuAD-family task), fractions; the same numbers x100.
    mine = M.squad_v2_evaluate(_v2_data(), preds)
    assert "exact" not in mine and "HasAns_exact" not in mine
    assert 100 * mine["exact_match"] == pytest.approx(50.0) and 100 * mine["f1"] == pytest.approx(out["f1"])
    for prefix in ("HasAns_", "NoAns_"):
        assert 100 * mine[prefix + "exact_match"] == pytest.approx(out[prefix + "exact"])
        assert 100 * mine[prefix + "f1"] == pytest.approx(out[prefix + "f1"])
        assert mine[prefix + "total"] == out[prefix + "total"]


def test_squad_v2_threshold_and_best_threshold_search():
    preds = {"a1": "Paris", "a2": "car", "n1": "Rome", "n2": "Lyon"}
    na = {"a1": 0.1, "a2": 0.6, "n1": 0.7, "n2": 0.3}
    # na_prob_thresh 0.5: a2 and n1 predicted unanswerable → a1 1, a2 0, n1 1, n2 0.
    out = M.squad_v2_evaluate(_v2_data(), preds, na_probs=na, na_prob_thresh=0.5, official=True)
    assert out["exact"] == pytest.approx(50.0)
    assert out["f1"] == pytest.approx(50.0)
    # Sweep (official find_best_thresh): start with all null = 2 (the two NoAns); ascending na:
    # a1 (0.1) +1 → 3 (best, thresh 0.1); n2 (0.3) -1 → 2; a2 (0.6) +0 / +2/3; n1 (0.7) -1.
    assert out["best_exact"] == pytest.approx(75.0) and out["best_exact_thresh"] == pytest.approx(0.1)
    assert out["best_f1"] == pytest.approx(75.0) and out["best_f1_thresh"] == pytest.approx(0.1)
    mine = M.squad_v2_evaluate(_v2_data(), preds, na_probs=na, na_prob_thresh=0.5)
    assert 100 * mine["exact_match"] == pytest.approx(50.0) and 100 * mine["f1"] == pytest.approx(50.0)
    assert 100 * mine["best_exact_match"] == pytest.approx(75.0) and mine["best_exact_match_thresh"] == pytest.approx(0.1)
    assert 100 * mine["best_f1"] == pytest.approx(75.0) and mine["best_f1_thresh"] == pytest.approx(0.1)
    assert mine["null_threshold"] == 0.5  # the threshold exact_match / f1 were scored at, on the na_probs scale


def test_squad_v2_missing_predictions_are_left_out_of_totals():
    out = M.squad_v2_evaluate(_v2_data(), {"a1": "Paris", "n1": ""})
    assert out["total"] == 2 and out["exact_match"] == pytest.approx(1.0) and out["missing"] == 2
    assert M.squad_v2_evaluate(_v2_data(), {"a1": "Paris", "n1": ""}, official=True)["exact"] == pytest.approx(100.0)


def test_squad_version_detection():
    assert M.squad_version({"version": "v2.0", "data": []}) == "2.0"
    assert M.squad_version({"version": "1.1", "data": _v2_data()}) == "2.0"  # is_impossible present
    assert M.squad_version({"version": "1.1", "data": _dataset([{"id": "q", "answers": []}])}) == "1.1"


# --------------------------------------------------------------------------- KorQuAD


def test_korquad_uses_character_f1_and_its_own_normaliser():
    assert M.korquad_normalize("《한국》의 '수도'") == "한국 의 수도"
    # chars: pred 서울특별시 (5) vs gold 서울 (2): common 2 → P 2/5, R 1 → F1 4/7
    assert M.korquad_f1("서울특별시", "서울") == pytest.approx(2 * 0.4 / 1.4)
    # Articles are not removed in KorQuAD (English 'the' stays), unlike SQuAD.
    assert M.korquad_normalize("the Seoul") == "the seoul"
    data = _dataset([{"id": "k1", "answers": [{"text": "1989년 2월 15일"}]},
                     {"id": "k2", "answers": [{"text": "서울"}, {"text": "서울특별시"}]}])
    out = M.korquad_evaluate(data, {"k1": "1989년 2월 15일", "k2": "서울특별시청"})
    # k1 exact; k2 best gold 서울특별시 (5 chars) vs 6 chars: P 5/6 R 1 → 10/11
    assert 100 * out["exact_match"] == pytest.approx(50.0)
    assert 100 * out["f1"] == pytest.approx(100 * (1 + 10 / 11) / 2)
    official = M.korquad_evaluate(data, {"k1": "1989년 2월 15일", "k2": "서울특별시청"}, official=True)
    assert official["exact_match"] == pytest.approx(50.0) and official["f1"] == pytest.approx(100 * (1 + 10 / 11) / 2)
    assert M.official_metrics("korquad", out) == pytest.approx(official)


# --------------------------------------------------------------------------- conlleval


@pytest.mark.parametrize("tags,chunks", [
    # IOB1: entities are I- throughout; B- only where two of one type touch.
    (["I-PER", "I-PER", "O", "I-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["I-PER", "B-PER", "O"], [("PER", 0, 1), ("PER", 1, 2)]),
    (["I-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # a type change starts a chunk
    (["O", "I-ORG", "O", "I-ORG", "I-ORG"], [("ORG", 1, 2), ("ORG", 3, 5)]),  # I- after O starts one
    # IOB2 / BIO
    (["B-PER", "I-PER", "B-PER", "O"], [("PER", 0, 2), ("PER", 2, 3)]),
    (["B-LOC", "I-PER"], [("LOC", 0, 1), ("PER", 1, 2)]),
    (["I-MISC"], [("MISC", 0, 1)]),  # a chunk running to the end of the sentence
    (["O", "O"], []),
])
def test_conlleval_chunks(tags, chunks):
    assert M.get_chunks(tags) == chunks


def test_conlleval_scores_hand_worked_iob1():
    gold = [["I-PER", "I-PER", "O", "I-LOC", "O"], ["I-ORG", "B-ORG", "O"]]
    pred = [["I-PER", "I-PER", "O", "I-ORG", "O"], ["I-ORG", "I-ORG", "O"]]
    # gold chunks: PER(0,2) LOC(3,4) | ORG(0,1) ORG(1,2) → 4
    # pred chunks: PER(0,2) ORG(3,4) | ORG(0,2)           → 3; correct: PER only → 1
    out = M.conlleval(pred, gold)
    assert 100 * out["precision"] == pytest.approx(100 / 3)
    assert 100 * out["recall"] == pytest.approx(25.0)
    assert 100 * out["f1"] == pytest.approx(2 * (100 / 3) * 25 / (100 / 3 + 25))
    assert 100 * out["accuracy"] == pytest.approx(100 * 6 / 8)  # token accuracy, O included
    assert 100 * out["f1_PER"] == pytest.approx(100.0) and out["f1_LOC"] == 0.0
    # What conlleval prints: percentages, F1 named FB1.
    official = M.conlleval(pred, gold, official=True)
    assert official["precision"] == pytest.approx(100 / 3) and official["recall"] == pytest.approx(25.0)
    assert official["FB1"] == pytest.approx(2 * (100 / 3) * 25 / (100 / 3 + 25))
    assert official["accuracy"] == pytest.approx(100 * 6 / 8) and official["FB1_PER"] == pytest.approx(100.0)
    assert M.official_metrics("conll-ner", out) == pytest.approx(official)


def test_conlleval_boundaries_must_match_exactly():
    gold = [["I-PER", "I-PER", "I-PER"]]
    assert M.conlleval([["I-PER", "I-PER", "O"]], gold)["f1"] == 0.0
    assert M.conlleval([["B-PER", "I-PER", "I-PER"]], gold)["f1"] == 1.0  # B- at the start: same chunk


def test_klue_character_metrics():
    gold = [["B-PS", "I-PS", "O", "B-LC"]]
    pred = [["B-PS", "I-PS", "O", "O"]]
    assert 100 * M.entity_macro_f1(pred, gold) == pytest.approx(50.0)  # PS 100, LC 0
    labels = ["O", "B-PS", "I-PS", "B-LC", "I-LC"]
    flat_g, flat_p = ["B-PS", "I-PS", "O", "B-LC"], ["B-PS", "I-PS", "O", "O"]
    char = M.char_macro_f1(pred, gold, labels)
    assert char == pytest.approx(f1_score(flat_g, flat_p, labels=labels, average="macro", zero_division=0.0))
    # KLUE-baseline's names and percentages (klue_ner_entity_macro_f1 / klue_ner_char_macro_f1).
    official = M.official_metrics("klue-ner", {"entity_macro_f1": M.entity_macro_f1(pred, gold),
                                               "char_macro_f1": char})
    assert official == pytest.approx({"klue_ner_entity_macro_f1": 50.0, "klue_ner_char_macro_f1": 100 * char})


def test_accuracy_of_choices_and_tags():
    assert M.accuracy([0, 1, 2, 3], [0, 1, 3, 3]) == 0.75
    assert M.accuracy(["nn", "vb"], ["nn", "nn"]) == 0.5



# --------------------------------------------------------------------------- one convention


def test_squad_v2_best_threshold_reproduces_the_best_score_when_answering_nothing_wins():
    """plmkit's best_f1_thresh is on the na_probs scale and, applied, gives best_f1; the official block keeps
    the script's 0.0 for that case."""
    preds = {"a1": "Lyon", "a2": "blue", "n1": "Rome", "n2": "Oslo"}  # every answer wrong: null everywhere wins
    na = {"a1": 0.9, "a2": 0.5, "n1": 0.7, "n2": 0.3}
    mine = M.squad_v2_evaluate(_v2_data(), preds, na_probs=na)
    official = M.squad_v2_evaluate(_v2_data(), preds, na_probs=na, official=True)
    assert official["best_f1_thresh"] == 0.0 and official["best_f1"] == pytest.approx(50.0)
    assert mine["best_f1_thresh"] < min(na.values()) and 100 * mine["best_f1"] == pytest.approx(50.0)
    applied = M.squad_v2_evaluate(_v2_data(), preds, na_probs=na, na_prob_thresh=mine["best_f1_thresh"])
    assert applied["f1"] == pytest.approx(mine["best_f1"])
    assert applied["null_threshold"] == mine["best_f1_thresh"]
    assert M.tuned_null_threshold(_v2_data(), preds, na) == pytest.approx(mine["best_f1_thresh"])


@pytest.mark.parametrize("task", sorted(M.OFFICIAL_NAMES))
def test_official_metrics_are_the_same_scores_times_100(task):
    metrics = {key: 0.25 for key in M.OFFICIAL_NAMES[task]}
    metrics.update(total=8, missing=1)
    official = M.official_metrics(task, metrics)
    for key, name in M.OFFICIAL_NAMES[task].items():
        assert official[name] == pytest.approx(100 * metrics[key])
    if "total" in official:
        assert official["total"] == 8 and official["missing"] == 1  # counts are not scaled
    assert M.official_metrics("rte", {"accuracy": 0.5}) == {}  # GLUE's scorer uses plmkit's names and scale


def test_every_task_reports_fractions():
    """Every metric of every task is on one scale: accuracies, F1, EM in [0, 1] (correlations in [-1, 1])."""
    gold = [["I-PER", "I-PER", "O", "I-LOC", "O"], ["I-ORG", "B-ORG", "O"]]
    pred = [["I-PER", "I-PER", "O", "I-ORG", "O"], ["I-ORG", "I-ORG", "O"]]
    scores = [M.conlleval(pred, gold), M.glue_metrics("mrpc", [0, 1, 1], [0, 1, 0]),
              M.squad_v1_evaluate(_dataset([{"id": "q", "answers": [{"text": "x"}]}]), {"q": "x"}),
              M.squad_v2_evaluate(_v2_data(), {"a1": "Paris", "a2": "car", "n1": "", "n2": "Lyon"},
                                  na_probs={"a1": 0.1, "a2": 0.2, "n1": 0.3, "n2": 0.4})]
    for out in scores:
        for key, value in out.items():
            if key in ("total", "missing") or key.endswith(("_total", "thresh", "threshold")):
                continue
            assert -1.0 <= value <= 1.0, (key, value)
    assert M.squad_v1_evaluate(_dataset([{"id": "q", "answers": [{"text": "x"}]}]), {"q": "x"})["exact_match"] == 1.0
