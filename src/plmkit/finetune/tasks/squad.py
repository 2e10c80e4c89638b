"""SQuAD 1.1 / 2.0 (and KorQuAD 1.0): reader, windowed features, and answer post-processing.

Follows BERT's recipe (Devlin et al., 2019, §4.2–4.3) as ``transformers``' ``run_qa.py`` implements
it with a fast tokenizer:

* The question (cut to ``max_query_length`` tokens) and the context form a pair; contexts longer
  than the window are split into overlapping windows, ``doc_stride`` tokens of overlap between
  consecutive windows (the ``stride`` of ``transformers``' fast tokenizers).
* Answer start/end *token* positions come from the tokenizer's character offsets; a window that
  does not contain the whole answer (and every unanswerable question) points at the ``[CLS]``
  position.
* Prediction takes the ``n_best`` highest start and end logits of every window, keeps the pairs
  that lie in the context with ``end >= start`` and length ``<= max_answer_length``, and returns
  the context text between the start token's first and the end token's last character.
* SQuAD 2.0: the null score is ``start[CLS] + end[CLS]`` (lowest over windows); the question is
  predicted unanswerable when ``null - best_span > threshold``. The threshold is tuned on the
  evaluation set with the official v2 script's search (``best_f1_thresh``).

An answer whose ``answer_start`` does not point at its text in the context is skipped as a
training target and counted in the :class:`ReadReport` (the gold text still counts for scoring,
as the official scripts use only texts).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..._files import write_json_atomic
from ...errors import DataError, UsageError, excerpt, type_name
from ...evaluation import metrics as M
from .base import Features, Scored, Task, TaskOptions, log
from .files import ReadReport, expect_json, json_id, json_text, load_json

@dataclass
class SquadExample:
    """A SQuAD-format question over a context paragraph.

    ``answers`` holds every gold answer (the official scorers compare against all of them);
    ``answer_start``/``answer_text`` is the training target (the first answer whose
    ``answer_start`` matches the context), or None for unanswerable questions.
    """

    qid: str
    question: str
    context: str
    answers: list[str] = field(default_factory=list)
    answer_start: int | None = None
    answer_text: str | None = None
    is_impossible: bool = False
    article: int = 0  # index of the article in the file: validation splits never share an article
    line: int = 0


MISMATCH = "answer(s) whose answer_start does not match the context"
NO_TARGET = "question(s) with no usable answer (not used for training)"


SQUAD_FORMAT = 'SQuAD JSON: one object {"version": ..., "data": [articles with "paragraphs"]}'


def read_squad(path: str | Path, for_training: bool = False, require_answers: bool = True
               ) -> tuple[list[SquadExample], ReadReport]:
    """Read the official SQuAD JSON (``{"data": [{"title", "paragraphs": [{"context", "qas"}]}]}``).

    ``for_training`` drops answerable questions none of whose answers match the context (counted);
    evaluation keeps them, since the official scorers compare gold *texts* only. Every field is
    type-checked: text where text belongs, ``answer_start`` an integer, lists and objects where the
    format has them; a mismatch is a DataError naming the article, paragraph or question and the key.
    """
    report = ReadReport(str(path))
    expect_json(path, "squad / korquad", SQUAD_FORMAT, kinds=("a JSON object", "a SQuAD-format JSON"))
    raw = load_json(path, "SQuAD files are one JSON object {\"version\": ..., \"data\": [articles]}")
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, list):
        found = f"{type_name(raw)}" if not isinstance(raw, dict) else (
            f"an object whose 'data' is {type_name(data)}" if "data" in raw else
            f"an object with the keys {excerpt(list(raw))}")
        raise DataError(f"{path}: not a SQuAD file — expected a JSON object with a 'data' list of articles, found "
                        f"{found}; is it the file of another task?")
    version = raw.get("version", "")
    v2 = isinstance(version, (str, int, float)) and str(version).lstrip("v").startswith("2")
    examples: list[SquadExample] = []
    for a, article in enumerate(data):
        if not isinstance(article, dict):
            raise DataError(f"{path}: data[{a}] is {type_name(article)} ({excerpt(article)}), expected an article "
                            "object with 'paragraphs'")
        paragraphs = article.get("paragraphs", [])
        if not isinstance(paragraphs, list):
            raise DataError(f"{path}: article {a}: 'paragraphs' is {type_name(paragraphs)} ({excerpt(paragraphs)}), "
                            "expected a list")
        for p, para in enumerate(paragraphs):
            if not isinstance(para, dict) or "context" not in para or "qas" not in para:
                raise DataError(f"{path}: article {a} paragraph {p} has no 'context' or 'qas'")
            context = json_text(para["context"], path, f"article {a} paragraph {p}", "context")
            qas = para["qas"]
            if not isinstance(qas, list):
                raise DataError(f"{path}: article {a} paragraph {p}: 'qas' is {type_name(qas)} ({excerpt(qas)}), "
                                "expected a list of questions")
            for q, qa in enumerate(qas):
                place = f"article {a} paragraph {p} question {q}"
                if not isinstance(qa, dict):
                    raise DataError(f"{path}: {place} is {type_name(qa)} ({excerpt(qa)}), expected a question "
                                    "object with 'id', 'question' and 'answers'")
                qid = json_id(qa["id"], path, place) if "id" in qa else f"{a}-{p}-{len(examples)}"
                where = f"question {qid}" if "id" in qa else place
                if "question" not in qa:
                    raise DataError(f"{path}: {where} has no 'question' text")
                question = json_text(qa["question"], path, where, "question")
                impossible = qa.get("is_impossible")
                if impossible is None:
                    impossible = False
                if impossible not in (True, False, 0, 1) or isinstance(impossible, float):
                    raise DataError(f"{path}, {where}: 'is_impossible' is {type_name(impossible)} "
                                    f"({excerpt(impossible)}), expected true or false")
                impossible = bool(impossible)
                v2 = v2 or "is_impossible" in qa
                answers = qa.get("answers")
                if answers is None:
                    answers = []
                if not isinstance(answers, list):
                    raise DataError(f"{path}, {where}: 'answers' is {type_name(answers)} ({excerpt(answers)}), "
                                    "expected a list of {\"text\", \"answer_start\"} objects")
                if not answers and not impossible and require_answers:
                    raise DataError(f"{path}: {where} has no answers and is not marked is_impossible")
                texts, start, target = [], None, None
                for i, ans in enumerate(answers):
                    if not isinstance(ans, dict):
                        raise DataError(f"{path}, {where}: answer {i} is {type_name(ans)} ({excerpt(ans)}), expected "
                                        "an object {\"text\", \"answer_start\"}")
                    text = json_text(ans.get("text"), path, f"{where} answer {i}", "text")
                    s = ans.get("answer_start")
                    if s is not None and (isinstance(s, bool) or not isinstance(s, int)):
                        raise DataError(f"{path}, {where} answer {i}: 'answer_start' is {type_name(s)} "
                                        f"({excerpt(s)}), expected a character offset (an integer)")
                    texts.append(text)
                    ok = s is not None and 0 <= s and context[s:s + len(text)] == text and text != ""
                    if not ok:
                        report.skip(MISMATCH, where)
                    elif target is None:
                        start, target = s, text
                if for_training and not impossible and target is None and require_answers:
                    report.skip(NO_TARGET, where)
                    continue
                examples.append(SquadExample(qid=qid, question=question, context=context, answers=texts,
                                             answer_start=start, answer_text=target, is_impossible=impossible,
                                             article=a))
    report.read = len(examples)
    report.info["version"] = "2.0" if v2 else "1.1"
    return examples, report


def to_official(examples: Sequence[SquadExample]) -> list[dict[str, Any]]:
    """The examples as the official scripts' ``data`` list (ids and gold answer texts)."""
    qas = [{"id": e.qid, "answers": [{"text": t} for t in e.answers]} for e in examples]
    return [{"title": "", "paragraphs": [{"context": "", "qas": qas}]}]


def _cut_question(tokenizer, question: str, max_query_length: int) -> str:
    question = question.lstrip()  # transformers strips leading spaces that waste tokens
    enc = tokenizer.encode(question, add_special_tokens=False)
    if len(enc.ids) <= max_query_length:
        return question
    return question[:enc.offsets[max_query_length - 1][1]]


def convert_squad(examples: Sequence[SquadExample], tokenizer, max_length: int = 384, doc_stride: int = 128,
                  max_query_length: int = 64, with_types: bool = True, training: bool = False) -> Features:
    """Windowed features. Training features carry ``start_positions``/``end_positions``; every
    feature's ``extra`` has ``offsets`` (T, 2) and ``context`` (bool mask of context tokens)."""
    if doc_stride >= max_length // 2:
        raise UsageError(f"--doc-stride {doc_stride} must be well below half of --max-length {max_length} "
                         "(it is the overlap between windows)")
    backend = tokenizer.backend
    specials = backend.num_special_tokens_to_add(True)
    # Every window must hold more than doc_stride context tokens: cap the question accordingly.
    query_cap = min(max_query_length, max_length - specials - doc_stride - 1)
    if query_cap < 1:
        raise UsageError(f"--max-length {max_length} leaves no room for the question and a context window with "
                         f"--doc-stride {doc_stride}; raise --max-length or lower --doc-stride")
    questions = [_cut_question(tokenizer, e.question, query_cap) for e in examples]
    backend.enable_truncation(max_length, stride=doc_stride, strategy="only_second")
    try:
        encs = backend.encode_batch(list(zip(questions, [e.context for e in examples])))
    except BaseException as e:  # tokenizers panics (a BaseException) on impossible truncations
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise UsageError(f"cannot fit question and context windows into --max-length {max_length} with "
                         f"--doc-stride {doc_stride} ({e}); raise --max-length or lower --doc-stride") from None
    finally:
        backend.no_truncation()
    cls_id = tokenizer.cls_token_id
    inputs, ex_index, extra = [], [], []
    windows_with_answer = windows_without = 0
    for i, (ex, enc) in enumerate(zip(examples, encs)):
        for w in [enc, *enc.overflowing]:
            ids = np.asarray(w.ids, dtype=np.int64)
            seq = w.sequence_ids
            ctx = np.array([s == 1 for s in seq], dtype=bool)
            offsets = np.asarray(w.offsets, dtype=np.int64).reshape(-1, 2)
            feat = {"input_ids": ids}
            if with_types:
                feat["token_type_ids"] = np.asarray(w.type_ids, dtype=np.int64)
            cls = int(np.flatnonzero(ids == cls_id)[0]) if cls_id is not None and (ids == cls_id).any() else 0
            if training:
                s_tok = e_tok = cls
                if ex.answer_text is not None and ctx.any():
                    start_char = ex.answer_start
                    end_char = start_char + len(ex.answer_text)
                    first, last = int(np.flatnonzero(ctx)[0]), int(np.flatnonzero(ctx)[-1])
                    if offsets[first, 0] <= start_char and offsets[last, 1] >= end_char:
                        idx = np.flatnonzero(ctx)
                        s_tok = int(idx[offsets[idx, 0] <= start_char][-1])
                        e_tok = int(idx[offsets[idx, 1] >= end_char][0])
                if s_tok != cls:
                    windows_with_answer += 1
                else:
                    windows_without += 1
                feat["start_positions"] = np.int64(s_tok)
                feat["end_positions"] = np.int64(e_tok)
            inputs.append(feat)
            ex_index.append(i)
            extra.append({"offsets": offsets, "context": ctx, "cls": cls})
    stats = {"windows": len(inputs)}
    if training:
        stats.update(windows_with_answer=windows_with_answer, windows_without_answer=windows_without)
    return Features(inputs, np.asarray(ex_index, dtype=np.int64), extra, stats)


def postprocess(examples: Sequence[SquadExample], features: Features, start_logits: Sequence[np.ndarray],
                end_logits: Sequence[np.ndarray], n_best: int = 20, max_answer_length: int = 30,
                version_2: bool = False, null_threshold: float = 0.0) -> dict[str, Any]:
    """Answer texts from per-window start/end logits (each (T,) of that window, unpadded).

    Returns ``predictions`` (qid → text; "" for predicted no-answer), ``best_non_null`` (qid → best
    span text), ``null_odds`` (qid → null score minus best span score; v2 only) and ``nbest``
    (qid → the top ``n_best`` candidates with scores).
    """
    by_example: dict[int, list[int]] = {}
    for f, e in enumerate(features.example_index.tolist()):
        by_example.setdefault(e, []).append(f)
    predictions, best_non_null, null_odds, nbest = {}, {}, {}, {}
    for e, ex in enumerate(examples):
        cands: list[tuple[float, str, float, float]] = []
        null_score = None
        for f in by_example.get(e, []):
            start, end = np.asarray(start_logits[f], dtype=np.float64), np.asarray(end_logits[f], dtype=np.float64)
            meta = features.extra[f]
            ctx, offsets, cls = meta["context"][: len(start)], meta["offsets"], meta["cls"]
            score_null = float(start[cls] + end[cls])
            if null_score is None or score_null < null_score:
                null_score = score_null
            top_s = np.argsort(start)[::-1][:n_best]
            top_e = np.argsort(end)[::-1][:n_best]
            for s in top_s.tolist():
                if not ctx[s]:
                    continue
                for t in top_e.tolist():
                    if not ctx[t] or t < s or t - s + 1 > max_answer_length:
                        continue
                    text = ex.context[offsets[s, 0]: offsets[t, 1]]
                    cands.append((float(start[s] + end[t]), text, float(start[s]), float(end[t])))
        cands.sort(key=lambda c: -c[0])
        best = next((c for c in cands if c[1] != ""), None)
        best_text = best[1] if best is not None else ""
        best_non_null[ex.qid] = best_text
        top = [{"text": c[1], "score": c[0], "start_logit": c[2], "end_logit": c[3]} for c in cands[:n_best]]
        if version_2:
            null = null_score if null_score is not None else 0.0
            diff = null - (best[0] if best is not None else -1e9)
            null_odds[ex.qid] = float(diff)
            predictions[ex.qid] = "" if (best is None or diff > null_threshold) else best_text
            top.append({"text": "", "score": null})
            top.sort(key=lambda c: -c["score"])
            top = top[:n_best]
        else:
            predictions[ex.qid] = best_text
        nbest[ex.qid] = top
    return {"predictions": predictions, "best_non_null": best_non_null, "null_odds": null_odds, "nbest": nbest}


# --------------------------------------------------------------------------- the task
def version_2(info: Mapping[str, Any] | None) -> bool:
    """Whether the file was SQuAD 2.0 (questions may have no answer), as its reader found."""
    return (info or {}).get("version") == "2.0"


PREDICTIONS = 'a JSON object mapping question id to answer text ({"56be4db0acb8001400a502ec": "Denver Broncos"})'


class SpanTask(Task):
    """Extractive question answering: a start and an end logit per token, the best valid span.

    SQuAD 1.1 and 2.0 (the version is read from the file) are scored with the official scripts'
    arithmetic; SQuAD 2.0's no-answer threshold is tuned on the first evaluation set and saved with the
    model. Writes the official prediction files (``{id: answer}`` and ``{id: null odds}``).
    """

    model_task = "question-answering"
    main_metric = "f1"
    max_length = 384
    split_note = ", whole articles"

    def __init__(self, name: str, description: str):
        self.name = name
        self.description = description

    def read(self, path: str | Path, role: str, options: TaskOptions, require_labels: bool = True
             ) -> tuple[list[SquadExample], ReadReport]:
        return read_squad(path, for_training=role == "train", require_answers=require_labels)

    def split_groups(self, examples: Sequence[SquadExample]) -> list[int]:
        return [e.article for e in examples]  # no paragraph on both sides of the split

    def featurize(self, examples: Sequence[SquadExample], tokenizer, labels: Sequence[str] | None,
                  options: TaskOptions, with_types: bool, training: bool, path: str | Path = "") -> Features:
        return convert_squad(examples, tokenizer, self.sequence_length(options), options.doc_stride,
                             options.max_query_length, with_types, training=training)

    def batch_outputs(self, output, lengths: Sequence[int]) -> list[dict[str, np.ndarray]]:
        start, end = output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()
        return [{"start": start[j, :n], "end": end[j, :n]} for j, n in enumerate(lengths)]

    def decode(self, examples: Sequence[SquadExample], features: Features, outputs: list[dict[str, np.ndarray]],
               labels: Sequence[str] | None, options: TaskOptions, info: Mapping[str, Any] | None = None) -> Scored:
        threshold = options.null_threshold if options.null_threshold is not None else 0.0
        post = postprocess(examples, features, [o["start"] for o in outputs], [o["end"] for o in outputs],
                           n_best=options.n_best, max_answer_length=options.max_answer_length,
                           version_2=version_2(info), null_threshold=threshold)
        post["null_threshold"] = float(threshold)  # what the predictions were cut at (SQuAD 2.0)
        return Scored({}, [post["predictions"][e.qid] for e in examples], post)

    def scored_as_v2(self, info: Mapping[str, Any] | None) -> bool:
        """Whether the no-answer scoring of SQuAD 2.0 applies (KorQuAD: never)."""
        return version_2(info)

    def answer_metrics(self, dataset: list[Mapping], predictions: Mapping[str, str]) -> dict[str, float]:
        """Exact match and F1 of answer texts, as the task's official script computes them (SQuAD 1.1)."""
        return M.squad_v1_evaluate(dataset, predictions)

    def score(self, examples: Sequence[SquadExample], scored: Scored, labels: Sequence[str] | None,
              info: Mapping[str, Any] | None = None) -> dict[str, float]:
        preds = scored.extra["predictions"]
        if self.scored_as_v2(info):
            # The predictions were cut at null_threshold; the scorer applies the same one to the same null_odds.
            return M.squad_v2_evaluate(to_official(examples), preds, na_probs=scored.extra["null_odds"],
                                       na_prob_thresh=scored.extra.get("null_threshold", 0.0),
                                       best_thresh_predictions=scored.extra["best_non_null"])
        return self.answer_metrics(to_official(examples), preds)

    def official_scores(self, examples: Sequence[SquadExample], scored: Scored, metrics: Mapping[str, float],
                        info: Mapping[str, Any] | None = None) -> dict[str, float]:
        if self.scored_as_v2(info):  # the v2 script's best_*_thresh differ in value, not only in name
            return M.squad_v2_evaluate(to_official(examples), scored.extra["predictions"],
                                       na_probs=scored.extra["null_odds"],
                                       na_prob_thresh=scored.extra.get("null_threshold", 0.0),
                                       best_thresh_predictions=scored.extra["best_non_null"], official=True)
        return super().official_scores(examples, scored, metrics, info)

    def tuned_options(self, options: TaskOptions, examples: Sequence[SquadExample], scored: Scored,
                      info: Mapping[str, Any] | None = None) -> TaskOptions:
        if not version_2(info):
            return options
        # SQuAD 2.0: the null threshold that maximises F1 on this set, as BERT's recipe tunes it.
        return dataclasses.replace(options, null_threshold=M.tuned_null_threshold(
            to_official(examples), scored.extra["best_non_null"], scored.extra["null_odds"]))

    def prediction_files(self, out: Path, info: Mapping[str, Any] | None = None) -> list[Path]:
        odds = out.with_name(out.stem + ".null_odds.json")  # SQuAD 2.0 only: 1.1 has no no-answer odds
        return [out, odds] if info is None or version_2(info) else [out]

    def write_predictions(self, examples: Sequence[SquadExample], scored: Scored, out: Path, files: Sequence[Path],
                          info: Mapping[str, Any] | None = None) -> None:
        Path(files[0]).write_text(json.dumps(scored.extra["predictions"], indent=2), encoding="utf-8")
        if version_2(info):
            Path(files[1]).write_text(json.dumps(scored.extra["null_odds"], indent=2), encoding="utf-8")

    def write_eval_predictions(self, run_dir: Path, name: str, scored: Scored, multi: bool) -> None:
        """The official prediction files, so the official scripts can re-score them."""
        stem = f"predictions-{name}" if multi else "predictions"
        write_json_atomic(run_dir / f"{stem}.json", scored.extra["predictions"])
        if scored.extra.get("null_odds"):
            write_json_atomic(run_dir / f"{stem}.null_odds.json", scored.extra["null_odds"])

    def score_prediction_file(self, eval_file: str | Path, predictions_file: str | Path,
                              na_probs_file: str | Path | None = None, na_prob_thresh: float = 1.0
                              ) -> dict[str, Any]:
        """Score a prediction file like the official script (no model): v1.1, v2.0 or KorQuAD."""
        # The dataset goes through the task's own reader first: every field is type-checked there.
        read_squad(eval_file, require_answers=False)
        dataset = load_json(eval_file, "the dataset is SQuAD JSON {\"version\": ..., \"data\": [articles]}")
        if not any(True for a in dataset["data"] for p in a.get("paragraphs", []) for _ in p.get("qas", [])):
            raise DataError(f"{eval_file}: the evaluation file has no questions")
        preds = read_predictions(predictions_file)
        na = read_na_probs(na_probs_file, preds, predictions_file) if na_probs_file is not None else None
        v2 = M.squad_version(dataset) == "2.0" or na is not None  # an --na-probs file asks for v2.0 scoring
        if self.scored_as_v2({"version": "2.0" if v2 else "1.1"}):
            metrics = M.squad_v2_evaluate(dataset["data"], preds, na_probs=na, na_prob_thresh=na_prob_thresh)
            official = M.squad_v2_evaluate(dataset["data"], preds, na_probs=na, na_prob_thresh=na_prob_thresh,
                                           official=True)
        else:
            metrics = self.answer_metrics(dataset["data"], preds)
            official = M.official_metrics(self.name, metrics)
        if metrics.get("missing"):
            log(f"{metrics['missing']} question(s) of {eval_file} have no prediction in {predictions_file}")
        return {"task": self.name, "metrics": metrics, "official": official}


class KorQuADTask(SpanTask):
    """KorQuAD 1.0: SQuAD 1.1's format, scored by KorQuAD's own script (character-level F1)."""

    def scored_as_v2(self, info: Mapping[str, Any] | None) -> bool:
        return False

    def answer_metrics(self, dataset: list[Mapping], predictions: Mapping[str, str]) -> dict[str, float]:
        return M.korquad_evaluate(dataset, predictions)


def read_predictions(path: str | Path) -> dict[str, str]:
    """A SQuAD prediction file ``{question id: answer text}``, every value checked."""
    expect_json(path, "--predictions", PREDICTIONS, kinds=("a JSON object", "a SQuAD-format JSON"))
    preds = load_json(path, f"the prediction file is {PREDICTIONS}")
    if not isinstance(preds, dict):
        raise DataError(f"{path}: expected {PREDICTIONS}, got {type_name(preds)}")
    if "data" in preds and isinstance(preds["data"], list):
        raise DataError(f"{path}: this is a SQuAD dataset (it has a 'data' list), not a prediction file; "
                        f"--predictions takes {PREDICTIONS} (the predictions.json that 'plmkit predict' writes)")
    for qid, answer in preds.items():
        if not isinstance(answer, str):
            raise DataError(f"{path}: the prediction for {excerpt(qid)} is {type_name(answer)} "
                            f"({excerpt(answer)}), expected answer text (\"\" for no answer)")
    return preds


def read_na_probs(path: str | Path, preds: Mapping[str, str], predictions_file: str | Path) -> dict[str, float]:
    """The official script's ``--na-prob-file``: a finite no-answer score for every predicted question."""
    expect_json(path, "--na-probs", "a JSON object mapping question id to a probability", kinds=("a JSON object",))
    na = load_json(path, "the no-answer probability file is a JSON object {question id: probability}")
    if not isinstance(na, dict):
        raise DataError(f"{path}: expected a JSON object mapping question id to a no-answer probability, got "
                        f"{type_name(na)}")
    for qid, prob in na.items():
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not math.isfinite(prob):
            raise DataError(f"{path}: the no-answer probability of {excerpt(qid)} is {excerpt(prob)}, expected a "
                            "finite number")
    missing = [qid for qid in preds if qid not in na]
    if missing:  # the official script would stop with a KeyError
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(f"{path}: no no-answer probability for question {excerpt(missing[0])}{more} of "
                        f"{predictions_file}; it needs one for every predicted question")
    return na
