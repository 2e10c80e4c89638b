"""benchmarks/quality_per_compute.py: the parts whose mistakes would silently change its table.

* the transformers recipe's text keeps words whole (an earlier version put a space between every character,
  so transformers trained on characters), and the run refuses text or ids other than plmkit's;
* "compute to match" interpolates between measured budgets and says None where the challenger never gets there.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_per_compute.py"


@pytest.fixture(scope="module")
def qpc():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("quality_per_compute", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


SENTENCES = [["The", "jury", "said", "it", "did", "find", "that", "many", "of", "Georgia's", "laws", "."],
             ["The", "grand", "jury", "commented", "on", "a", "number", "of", "other", "topics", "."],
             ["It", "urged", "that", "the", "city", "take", "steps", "to", "remedy", "this", "problem", "."]]


@pytest.fixture(scope="module")
def setup_dir(tmp_path_factory):
    """A miniature of the benchmark's OUT/setup: a Brown-format training file, its tokenizer, its prepared corpus."""
    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.tokenization import train_tokenizer

    out = tmp_path_factory.mktemp("qpc")
    brown = out / "ca01"
    brown.write_text("".join("\t" + " ".join(f"{w}/nn" for w in s) + "\n\n" for s in SENTENCES * 20),
                     encoding="utf-8")
    s = out / "setup"
    s.mkdir()
    tok = train_tokenizer("wordpiece", read_sentences([brown], format="brown"), vocab_size=200, lowercase=False)
    tok.save_pretrained(s / "tokenizer")
    prepare_corpus([brown], s / "prepared", tokenizer=s / "tokenizer", format="brown", progress=False)
    (s / "done.json").write_text(json.dumps({"train_files": [str(brown)]}))
    return out


def test_the_transformers_text_keeps_words_whole(qpc, setup_dir):
    lines = qpc.train_text(setup_dir).read_text(encoding="utf-8").splitlines()
    assert lines[:3] == [" ".join(s) for s in SENTENCES]
    assert len(lines) == 3 * 20


def test_the_transformers_run_refuses_other_text_than_plmkits(qpc, setup_dir):
    transformers = pytest.importorskip("transformers")
    tok_dir = setup_dir / "setup" / "tokenizer"
    hf = transformers.AutoTokenizer.from_pretrained(str(tok_dir))

    def ids_of(lines):
        return [i for row in hf(lines, add_special_tokens=False)["input_ids"] for i in row]

    lines = qpc.train_text(setup_dir).read_text(encoding="utf-8").splitlines()
    qpc._same_tokens_as_plmkit(hf, tok_dir, lines, ids_of(lines), setup_dir)  # the same text: accepted
    spaced = [" ".join(line) for line in lines]  # the old bug: a space between every character
    with pytest.raises(SystemExit, match="not the same text"):
        qpc._same_tokens_as_plmkit(hf, tok_dir, lines, ids_of(spaced), setup_dir)


def _results(scratch: float, base: float, points: list[tuple[float, float]], at: float = 9.0) -> dict:
    runs = {f"bert-{at:g}": {"recipe": "bert", "budget": at, "scores": {t: [base] for t in ("brown-pos", "genre", "conll-ner")}}}
    for budget, value in points:
        runs[f"electra-{budget:g}"] = {"recipe": "electra", "budget": budget,
                                       "scores": {t: [value] for t in ("brown-pos", "genre", "conll-ner")}}
    return {"scratch": {t: [scratch] for t in ("brown-pos", "genre", "conll-ner")}, "runs": runs}


def test_compute_to_match_interpolates_between_budgets(qpc):
    # scratch 0.5 at 0; electra 0.6 at 3, 0.8 at 9; bert@9 = 0.7 → halfway between 3 and 9 → 6 / 9
    found = qpc.compute_to_match(_results(0.5, 0.7, [(3.0, 0.6), (9.0, 0.8)]))
    assert found == {t: pytest.approx(0.667, abs=1e-3) for t in ("brown-pos", "genre", "conll-ner")}
    assert qpc.compute_to_match(_results(0.5, 0.9, [(3.0, 0.6), (9.0, 0.8)]))["genre"] is None


@settings(max_examples=60, deadline=None)
@example(scratch=0.0, base=3.007805947668138e-92, values=[0.0, 1.0], budgets={1.0, 3.0, 9.0, 27.0})  # was rounded
@given(scratch=st.floats(0, 1), base=st.floats(0, 1),
       values=st.lists(st.floats(0, 1), min_size=1, max_size=4), budgets=st.sets(st.sampled_from([1.0, 3.0, 9.0, 27.0]),
                                                                                   min_size=4, max_size=4))
def test_compute_to_match_is_none_exactly_when_never_reached(qpc, scratch, base, values, budgets):
    points = list(zip(sorted(budgets), values))
    found = qpc.compute_to_match(_results(scratch, base, points))["brown-pos"]
    reached = [b for b, v in points if v >= base]
    if not reached:
        assert found is None
    else:  # somewhere between the budget before the first that reached it and that budget
        assert found is not None
        before = max([0.0] + [b for b, _ in points if b < min(reached)])
        assert before / 9.0 - 1e-9 <= found <= min(reached) / 9.0 + 1e-9
