"""Task metrics, computed exactly as the official scorers compute them.

Nothing here is new; each function says which scorer it reproduces, and the tests compare them
with an independent reference (scikit-learn / scipy) or with hand-worked cases of the official
definitions:

* GLUE (Wang et al., 2019): accuracy, F1 of the positive class (MRPC, QQP), Matthews correlation
  (CoLA), Pearson and Spearman correlation (STS-B) — through scikit-learn and scipy, as the GLUE
  and ``transformers`` scorers do.
* SQuAD 1.1 (Rajpurkar et al., 2016) ``evaluate-v1.1.py`` and SQuAD 2.0 (Rajpurkar et al., 2018)
  ``evaluate-v2.0.py``: answer normalisation (lower case, strip punctuation, articles and extra
  whitespace), EM and token F1 maximised over the gold answers; v2 adds the no-answer rule,
  ``HasAns_*`` / ``NoAns_*`` breakdowns and the ``best_*`` threshold search over a no-answer score.
* KorQuAD 1.0 ``evaluate-v1.0.py``: SQuAD 1.1 with extra quote / bracket removal, no article
  removal, and F1 over *characters* instead of words.
* conlleval (CoNLL-2000/2003 shared tasks): chunk-level precision / recall / F1 over IOB1, IOB2
  (BIO) or IOBES tag sequences, with conlleval's start/end-of-chunk rules (an ``I-`` after ``O``
  or after another type starts a chunk). KLUE-NER applies it to character sequences and also
  reports KLUE's character-level macro F1.
* Token accuracy (POS tagging) and multiple-choice accuracy (SWAG).

**One convention.** Every score is a plain float in a ``dict``, a *fraction* (accuracy, precision,
recall, F1 and EM in [0, 1]; correlations in [-1, 1]), as scikit-learn, seqeval and the GLUE metric
of ``evaluate`` return them, under one set of names: ``exact_match`` and ``f1`` for every SQuAD-family
task (SQuAD 2.0's ``exact`` is ``exact_match`` here, its ``HasAns_exact`` ``HasAns_exact_match``, …).
Where an official script prints other names or a 0–100 scale, ``official=True`` (or
:func:`official_metrics`) gives its output as the script prints it, for comparison with papers and
leaderboards. Counts (``total``, ``missing``) and thresholds are never scaled.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping, Sequence

import numpy as np

# --------------------------------------------------------------------------- GLUE / classification


def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Fraction of equal items (classification, POS tags, multiple choice)."""
    p, r = np.asarray(predictions), np.asarray(references)
    if p.shape != r.shape:
        raise ValueError(f"predictions {p.shape} and references {r.shape} differ in shape")
    return float((p == r).mean()) if p.size else 0.0


def f1_binary(predictions: Sequence[int], references: Sequence[int]) -> float:
    """F1 of the positive class (label 1), as GLUE scores MRPC and QQP."""
    from sklearn.metrics import f1_score

    return float(f1_score(references, predictions, pos_label=1, average="binary", zero_division=0.0))


def matthews(predictions: Sequence[int], references: Sequence[int]) -> float:
    """Matthews correlation coefficient (CoLA)."""
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(references, predictions))


def pearson_spearman(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """Pearson's r and Spearman's rho (STS-B, KorSTS, KLUE-STS); 0 when a side is constant."""
    from scipy.stats import pearsonr, spearmanr

    p, r = np.asarray(predictions, dtype=np.float64), np.asarray(references, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(r) == 0:
        return {"pearson": 0.0, "spearmanr": 0.0}
    return {"pearson": float(pearsonr(p, r)[0]), "spearmanr": float(spearmanr(p, r)[0])}


GLUE_METRICS = {"cola": ("matthews_correlation",), "stsb": ("pearson", "spearmanr"),
                "mrpc": ("accuracy", "f1"), "qqp": ("accuracy", "f1")}


def glue_metrics(task: str, predictions: Sequence, references: Sequence) -> dict[str, float]:
    """The GLUE score(s) of one task: predictions are label ids, or floats for STS-B."""
    if task == "cola":
        return {"matthews_correlation": matthews(predictions, references)}
    if task == "stsb":
        return pearson_spearman(predictions, references)
    if task in ("mrpc", "qqp"):
        return {"accuracy": accuracy(predictions, references), "f1": f1_binary(predictions, references)}
    return {"accuracy": accuracy(predictions, references)}


def klue_sts_metrics(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """KLUE-STS: Pearson's r on the real-valued score and F1 of the binarised score (>= 3.0)."""
    out = pearson_spearman(predictions, references)
    p = (np.asarray(predictions) >= 3.0).astype(int)
    r = (np.asarray(references) >= 3.0).astype(int)
    out["f1"] = f1_binary(p, r)
    return out


# --------------------------------------------------------------------------- SQuAD 1.1 / 2.0

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (SQuAD's official rule)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def squad_exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1_v1(prediction: str, gold: str) -> float:
    """SQuAD 1.1 token F1 (``evaluate-v1.1.py``): 0 when nothing is shared, even two empty answers."""
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def squad_f1_v2(prediction: str, gold: str) -> float:
    """SQuAD 2.0 token F1 (``evaluate-v2.0.py``): if either side is empty, 1 when both are, else 0."""
    pred_toks = normalize_answer(prediction).split() if prediction else []
    gold_toks = normalize_answer(gold).split() if gold else []
    if not pred_toks or not gold_toks:
        return float(pred_toks == gold_toks)
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _questions(dataset: Iterable[Mapping]) -> Iterable[Mapping]:
    for article in dataset:
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def squad_v1_evaluate(dataset: list[Mapping], predictions: Mapping[str, str], official: bool = False
                      ) -> dict[str, float]:
    """``evaluate-v1.1.py``: mean of the best EM / F1 over gold answers; unanswered questions score 0.

    ``dataset`` is the ``data`` list of the official JSON; ``predictions`` maps question id → text.
    Also returns ``missing`` (questions with no prediction) and ``total``. Fractions; ``official``: the
    script's percentages.
    """
    em = f1 = 0.0
    total = missing = 0
    for qa in _questions(dataset):
        total += 1
        if qa["id"] not in predictions:
            missing += 1
            continue
        golds = [a["text"] for a in qa["answers"]]
        pred = predictions[qa["id"]]
        em += max((squad_exact(pred, g) for g in golds), default=0.0)
        f1 += max((squad_f1_v1(pred, g) for g in golds), default=0.0)
    scale = 100.0 if official else 1.0
    if total == 0:
        return {"exact_match": 0.0, "f1": 0.0, "total": 0, "missing": 0}
    return {"exact_match": scale * em / total, "f1": scale * f1 / total, "total": total, "missing": missing}


def _best_threshold(preds: Mapping[str, str], scores: Mapping[str, float], na_probs: Mapping[str, float],
                    has_ans: Mapping[str, bool], all_null_below: bool = False, scale: float = 100.0
                    ) -> tuple[float, float]:
    """``find_best_thresh`` of ``evaluate-v2.0.py``: sweep the no-answer threshold over ``na_probs``.

    When predicting "no answer" everywhere is best, the official script reports threshold 0.0;
    ``all_null_below`` returns a threshold below every ``na_probs`` value instead, so that applying
    it (null when ``na_prob > threshold``) really reproduces the best score.
    """
    cur = best = sum(1 for v in has_ans.values() if not v)
    best_thresh = 0.0
    if all_null_below and na_probs:
        best_thresh = float(min(na_probs.values())) - 1.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur += diff
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return scale * best / len(scores), float(best_thresh)


def tuned_null_threshold(dataset: list[Mapping], best_non_null: Mapping[str, str],
                         na_probs: Mapping[str, float]) -> float:
    """The no-answer threshold that maximises SQuAD 2.0 F1 when applied as ``null if na_prob > t``.

    The official search (``best_f1_thresh``), given each question's best non-empty answer; if
    answering nothing is best, a threshold below every score.
    """
    has_ans = {qa["id"]: bool(qa["answers"]) for qa in _questions(dataset)}
    f1 = {}
    for qa in _questions(dataset):
        if qa["id"] in best_non_null:
            golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
            f1[qa["id"]] = max(squad_f1_v2(best_non_null[qa["id"]], g) for g in golds)
    return _best_threshold(best_non_null, f1, na_probs, has_ans, all_null_below=True)[1]


def squad_v2_evaluate(dataset: list[Mapping], predictions: Mapping[str, str],
                      na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0,
                      best_thresh_predictions: Mapping[str, str] | None = None, official: bool = False
                      ) -> dict[str, float]:
    """``evaluate-v2.0.py``: EM / F1 with no-answer questions, HasAns/NoAns breakdowns, best thresholds.

    A question is predicted unanswerable when its ``na_probs`` value exceeds ``na_prob_thresh``
    (or when its prediction is the empty string). With ``na_probs``, also returns the best scores
    over every threshold on ``na_probs`` and the threshold that gives each. The official script
    sweeps over the given predictions; ``best_thresh_predictions`` (each question's best *non-empty*
    answer) makes the sweep exact when the given predictions were already cut at some threshold.
    Questions without a prediction are left out of every total, as in the official script.

    plmkit's names and scale (the default): ``exact_match``, ``f1``, ``total``, ``HasAns_exact_match``,
    ``HasAns_f1``, ``HasAns_total``, ``NoAns_*``, ``best_exact_match`` / ``best_exact_match_thresh``,
    ``best_f1`` / ``best_f1_thresh``, ``missing``, and ``null_threshold`` (the ``na_prob_thresh``
    applied), scores as fractions. A ``best_*_thresh`` is the value that reproduces its score when
    applied as "null when ``na_prob`` > threshold": when answering nothing is best, a value below
    every ``na_probs`` value. ``official=True`` returns the script's output instead: ``exact``,
    ``HasAns_exact``, ``best_exact``, ``best_exact_thresh``, …, in percent, and threshold 0.0 when
    answering nothing is best (the script's convention).
    """
    has_ans = {qa["id"]: bool(qa["answers"]) for qa in _questions(dataset)}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qa in _questions(dataset):
        qid = qa["id"]
        if qid not in predictions:
            continue
        golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
        pred = predictions[qid]
        exact_raw[qid] = max(float(normalize_answer(g) == normalize_answer(pred)) for g in golds)
        f1_raw[qid] = max(squad_f1_v2(pred, g) for g in golds)
    probs = dict(na_probs) if na_probs is not None else {k: 0.0 for k in predictions}

    def thresholded(scores: dict[str, float]) -> dict[str, float]:
        return {q: (float(not has_ans[q]) if probs[q] > na_prob_thresh else s) for q, s in scores.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)

    scale = 100.0 if official else 1.0
    em_key = "exact" if official else "exact_match"

    def block(qids: list[str]) -> dict[str, float]:
        n = len(qids)
        return {em_key: scale * sum(exact[q] for q in qids) / n, "f1": scale * sum(f1[q] for q in qids) / n,
                "total": n}

    out: dict[str, float] = dict(block(list(exact))) if exact else {em_key: 0.0, "f1": 0.0, "total": 0}
    # The official script takes the HasAns/NoAns lists from the dataset (all questions).
    for prefix, want in (("HasAns", True), ("NoAns", False)):
        qids = [q for q, v in has_ans.items() if v is want]
        if qids:
            if all(q in exact for q in qids):
                out.update({f"{prefix}_{k}": v for k, v in block(qids).items()})
            else:
                present = [q for q in qids if q in exact]
                if present:
                    out.update({f"{prefix}_{k}": v for k, v in block(present).items()})
    if na_probs is not None and exact:
        sweep_preds = predictions
        sweep_exact, sweep_f1 = exact_raw, f1_raw
        if best_thresh_predictions is not None:
            sweep_preds = {q: best_thresh_predictions.get(q, predictions[q]) for q in predictions}
            sweep_exact, sweep_f1 = {}, {}
            for qa in _questions(dataset):
                q = qa["id"]
                if q in predictions:
                    golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
                    sweep_exact[q] = max(float(normalize_answer(g) == normalize_answer(sweep_preds[q])) for g in golds)
                    sweep_f1[q] = max(squad_f1_v2(sweep_preds[q], g) for g in golds)
        below = not official  # plmkit: a threshold that reproduces the best score when applied
        out[f"best_{em_key}"], out[f"best_{em_key}_thresh"] = _best_threshold(
            sweep_preds, sweep_exact, probs, has_ans, all_null_below=below, scale=scale)
        out["best_f1"], out["best_f1_thresh"] = _best_threshold(sweep_preds, sweep_f1, probs, has_ans,
                                                                 all_null_below=below, scale=scale)
    out["missing"] = sum(1 for q in has_ans if q not in predictions)
    if not official and na_probs is not None:
        out["null_threshold"] = float(na_prob_thresh)
    return out


def squad_version(data: Mapping) -> str:
    """"2.0" if the official JSON has ``is_impossible`` questions or says v2, else "1.1"."""
    if str(data.get("version", "")).lstrip("v").startswith("2"):
        return "2.0"
    return "2.0" if any("is_impossible" in qa for qa in _questions(data.get("data", []))) else "1.1"


# --------------------------------------------------------------------------- KorQuAD 1.0

_KORQUAD_REMOVE = re.compile(r"['\"《》<>〈〉()‘’]")


def korquad_normalize(s: str) -> str:
    """KorQuAD 1.0's normaliser: quotes and brackets to spaces, lower case, strip punctuation and spaces."""
    s = _KORQUAD_REMOVE.sub(" ", s).lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    return " ".join(s.split())


def korquad_f1(prediction: str, gold: str) -> float:
    """KorQuAD 1.0 F1: over the *characters* of the normalised, space-free answers."""
    pred = [c for tok in korquad_normalize(prediction).split() for c in tok]
    ref = [c for tok in korquad_normalize(gold).split() for c in tok]
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def korquad_evaluate(dataset: list[Mapping], predictions: Mapping[str, str], official: bool = False
                     ) -> dict[str, float]:
    """KorQuAD 1.0 ``evaluate-v1.0.py``: SQuAD 1.1's loop with KorQuAD's EM and character F1 (fractions;
    ``official``: the script's percentages)."""
    em = f1 = 0.0
    total = missing = 0
    for qa in _questions(dataset):
        total += 1
        if qa["id"] not in predictions:
            missing += 1
            continue
        pred = predictions[qa["id"]]
        golds = [a["text"] for a in qa["answers"]]
        em += max((float(korquad_normalize(pred) == korquad_normalize(g)) for g in golds), default=0.0)
        f1 += max((korquad_f1(pred, g) for g in golds), default=0.0)
    scale = 100.0 if official else 1.0
    if total == 0:
        return {"exact_match": 0.0, "f1": 0.0, "total": 0, "missing": 0}
    return {"exact_match": scale * em / total, "f1": scale * f1 / total, "total": total, "missing": missing}


# --------------------------------------------------------------------------- conlleval chunks


def _split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' → ('B', 'PER'); 'O' → ('O', ''). conlleval splits on the first '-'."""
    if tag == "O" or not tag:
        return "O", ""
    if "-" in tag:
        prefix, kind = tag.split("-", 1)
        if prefix in ("B", "I", "E", "S"):
            return prefix, kind
    return "I", tag  # conlleval's -r-less raw tags: a bare type is inside a chunk of that type


def _chunk_end(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's ``endOfChunk``: does the chunk open at the previous token end before this one?"""
    if prev_tag in ("B", "I") and tag in ("B", "O"):
        return True
    if prev_tag in ("E", "S"):  # IOBES: E and S always close their chunk
        return True
    return prev_tag != "O" and prev_type != kind


def _chunk_start(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """conlleval's ``startOfChunk``: does a chunk start at this token?"""
    if tag in ("B", "S"):
        return True
    if tag in ("I", "E") and prev_tag in ("O", "E", "S"):
        return True
    return tag != "O" and prev_type != kind


def get_chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """conlleval's chunks of one sentence: (type, start, end) with end exclusive.

    Works for IOB1 (``I-`` everywhere, ``B-`` only between adjacent chunks of one type), IOB2/BIO
    and IOBES: an ``I-X`` that follows ``O`` or a tag of another type starts a chunk, as in
    conlleval.
    """
    chunks = []
    prev_tag, prev_type = "O", ""
    start = None
    for i, raw in enumerate(list(tags) + ["O"]):
        tag, kind = _split_tag(raw)
        if start is not None and _chunk_end(prev_tag, tag, prev_type, kind):
            chunks.append((prev_type, start, i))
            start = None
        if tag != "O" and _chunk_start(prev_tag, tag, prev_type, kind):
            start = i
        prev_tag, prev_type = tag, kind
    return chunks


def conlleval(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]], official: bool = False
              ) -> dict[str, float]:
    """Chunk precision / recall / F1 (micro) and token accuracy, as ``conlleval`` computes them.

    Inputs are lists of sentences, each a list of tags. A chunk counts as correct when type, start
    and end all match. Also returns per-type F1 as ``f1_<TYPE>``. Fractions; ``official=True``: what
    conlleval prints — percentages, with F1 named ``FB1`` (``FB1_<TYPE>`` per type).
    """
    correct = found_pred = found_gold = 0
    by_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])  # correct, pred, gold
    tok_correct = tok_total = 0
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predicted sentences but {len(references)} references")
    for pred, gold in zip(predictions, references):
        if len(pred) != len(gold):
            raise ValueError("a predicted sentence and its reference differ in length")
        p_chunks, g_chunks = set(get_chunks(pred)), set(get_chunks(gold))
        correct += len(p_chunks & g_chunks)
        found_pred += len(p_chunks)
        found_gold += len(g_chunks)
        for kind, *_ in p_chunks & g_chunks:
            by_type[kind][0] += 1
        for kind, *_ in p_chunks:
            by_type[kind][1] += 1
        for kind, *_ in g_chunks:
            by_type[kind][2] += 1
        tok_correct += sum(p == g for p, g in zip(pred, gold))
        tok_total += len(gold)

    scale = 100.0 if official else 1.0
    f1_key = "FB1" if official else "f1"

    def prf(c: int, p: int, g: int) -> tuple[float, float, float]:
        precision = scale * c / p if p else 0.0
        recall = scale * c / g if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    precision, recall, f1 = prf(correct, found_pred, found_gold)
    out = {"precision": precision, "recall": recall, f1_key: f1,
           "accuracy": scale * tok_correct / tok_total if tok_total else 0.0}
    for kind in sorted(by_type):
        out[f"{f1_key}_{kind}"] = prf(*by_type[kind])[2]
    return out


def char_macro_f1(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                  labels: Sequence[str]) -> float:
    """KLUE-NER's character-level macro F1 (a fraction) over the given label set (KLUE excludes nothing)."""
    from sklearn.metrics import f1_score

    p = [t for s in predictions for t in s]
    r = [t for s in references for t in s]
    return float(f1_score(r, p, labels=list(labels), average="macro", zero_division=0.0))


def entity_macro_f1(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    """Mean over entity types of the per-type chunk F1 (KLUE's entity-level macro F1, a fraction)."""
    scores = conlleval(predictions, references)
    gold_types = {k for s in references for k, *_ in get_chunks(s)}
    per = [scores.get(f"f1_{k}", 0.0) for k in sorted(gold_types)]
    return float(np.mean(per)) if per else 0.0



# --------------------------------------------------------------------------- official names and scales

# Tasks whose official script (or benchmark code) names its scores otherwise or prints them in percent:
# plmkit key -> the script's key, every score times 100. KLUE's are the names of KLUE-baseline's metric
# functions (klue_baseline/metrics/functional.py), which return percentages. conlleval calls F1 "FB1".
# SQuAD 2.0 is not here: its official block is computed by squad_v2_evaluate(official=True), since the
# script's best_*_thresh convention differs in value, not only in name.
OFFICIAL_NAMES: dict[str, dict[str, str]] = {
    "squad": {"exact_match": "exact_match", "f1": "f1"},  # evaluate-v1.1.py
    "korquad": {"exact_match": "exact_match", "f1": "f1"},  # KorQuAD evaluate-v1.0.py
    "conll-ner": {"precision": "precision", "recall": "recall", "f1": "FB1", "accuracy": "accuracy"},
    "klue-ner": {"precision": "precision", "recall": "recall", "f1": "FB1", "accuracy": "accuracy",
                 "entity_macro_f1": "klue_ner_entity_macro_f1", "char_macro_f1": "klue_ner_char_macro_f1"},
    "klue-nli": {"accuracy": "klue_nli_acc"},
    "klue-sts": {"pearson": "klue_sts_pearsonr", "f1": "klue_sts_f1"},
}
# Per-type chunk F1 of the conlleval tasks: f1_PER -> FB1_PER.
_PER_TYPE = {"conll-ner", "klue-ner"}


def official_metrics(task: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """The scores of ``metrics`` (plmkit's names, fractions) under the official script's names, in percent.

    Only the keys the script reports; ``{}`` for tasks whose official scorer uses plmkit's names and
    scale already (GLUE, SWAG, POS accuracy, the generic tasks). Counts are copied, not scaled.
    """
    names = OFFICIAL_NAMES.get(task)
    if names is None:
        return {}
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in names:
            out[names[key]] = 100.0 * float(value)
        elif task in _PER_TYPE and key.startswith("f1_"):
            out["FB1_" + key[3:]] = 100.0 * float(value)
        elif key in ("total", "missing"):
            out[key] = value
    return out
