"""The Korean pretraining recipe (issue 24 item 2, benchmarks/korean_recipe.py).

The fast tests check what keeps the evaluation honest: each task file is split into a training and a
validation part that together hold every example once, and no validation text reaches the pretraining
text. The slow tests run the recipe's ``--quick`` form end to end on the real data (what CI runs: plmkit
reads both parts back in their own formats; the table, report and plot are sane) and the README's Korean
guide command by command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "korean_recipe.py"


def _load():
    """benchmarks/korean_recipe.py as a module (it imports machine_info from its own folder)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("korean_recipe", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.fixture(scope="module")
def recipe():
    return _load()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 200), eval_rows=st.integers(0, 250), seed=st.integers(0, 5))
def test_split_is_a_fixed_partition(recipe, n, eval_rows, seed):
    items = [f"row {i}" for i in range(n)]
    train, held = recipe._split(items, eval_rows, seed)
    assert sorted(train + held) == sorted(items)  # every row once
    assert len(held) == min(n, eval_rows) and not set(train) & set(held)
    assert recipe._split(items, eval_rows, seed) == (train, held)  # the same split every time


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), max_size=60), rows=st.integers(0, 120))
def test_grouped_split_holds_out_whole_groups_for_at_least_the_rows_asked(recipe, sizes, rows):
    groups = [[(g, i) for i in range(n)] for g, n in enumerate(sizes)]
    train, held = recipe._split(groups, recipe._groups_for(groups, rows))
    held_rows = sum(map(len, held))
    assert sorted(train + held) == sorted(groups)
    if rows <= sum(sizes):  # enough rows: at least those asked, and not a whole group more
        assert rows <= held_rows < rows + max(sizes, default=1)
    else:
        assert not train


def test_pretraining_text_leaves_out_validation_text(recipe, tmp_path):
    docs = {"nsmc": [["정말 재밌다"], ["개노잼  ㅋㅋ"], ["정말 재밌다"]],
            "klue-nli": [["전제 문장이다.", "가설 하나.", "가설 둘."], ["검증 전제.", "다른 가설."]]}
    counts = recipe.write_pretraining_text(docs, {"검증 전제.", "가설 둘."}, tmp_path / "text")
    nsmc = (tmp_path / "text" / "nsmc.txt").read_text(encoding="utf-8")
    nli = (tmp_path / "text" / "klue-nli.txt").read_text(encoding="utf-8")
    assert nsmc == "정말 재밌다\n\n개노잼 ㅋㅋ\n"  # duplicates once, whitespace squeezed
    assert nli == "전제 문장이다.\n가설 하나.\n\n다른 가설.\n"  # validation sentences dropped, the rest kept
    assert counts["klue-nli"] == {"documents": 2, "sentences": 3, "dropped_as_validation_text": 2}


_CELL = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=8).filter(
    lambda t: t.strip() == t and t)


@settings(max_examples=40, deadline=None)
@given(task=st.sampled_from(["kornli", "klue-nli"]),
       pairs=st.lists(st.tuples(st.integers(0, 12), _CELL), min_size=1, max_size=40),
       eval_rows=st.integers(0, 45))
def test_nli_parts_keep_each_premise_whole_in_the_files_own_format(recipe, tmp_path_factory, task, pairs, eval_rows):
    """Either NLI file: the parts together hold every row once, in the file's format, a premise in one part only,
    and the pretraining documents are premises with their hypotheses."""
    src = tmp_path_factory.mktemp("data")
    labels = ("entailment", "neutral", "contradiction")
    if task == "kornli":
        rows = [f"전제 {p}\t{h}\t{labels[i % 3]}\n" for i, (p, h) in enumerate(pairs)]
        (src / "nli.tsv").write_text("sentence1\tsentence2\tgold_label\n" + "".join(rows), encoding="utf-8")
    else:
        rows = [{"premise": f"전제 {p}", "hypothesis": h, "gold_label": labels[i % 3]} for i, (p, h) in enumerate(pairs)]
        (src / "nli.tsv").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    spec = recipe.replace(recipe.TASKS[task], file="nli.tsv")
    out = tmp_path_factory.mktemp("parts")
    train_f, eval_f, docs, held = recipe.write_parts(src, spec, eval_rows, out)
    parts = [spec.layout.read(f)[1] for f in (train_f, eval_f)]
    key = (lambda r: json.dumps(r, sort_keys=True)) if task == "klue-nli" else str
    assert sorted(map(key, parts[0] + parts[1])) == sorted(map(key, rows))
    premise = (lambda r: r["premise"]) if task == "klue-nli" else (lambda r: r.split("\t")[0])
    assert not {premise(r) for r in parts[0]} & {premise(r) for r in parts[1]}
    assert len(parts[1]) >= min(eval_rows, len(rows))
    assert sorted(s for d in docs for s in d[1:]) == sorted(h for p, h in map(spec.layout.sentences, parts[0]))
    assert set(held) == {s for p, h in map(spec.layout.sentences, parts[1]) for s in (p, h)}


def test_tasks_are_chosen_by_name_and_an_unknown_one_stops_before_anything_is_written(recipe, tmp_path, capsys):
    assert [t.name for t in recipe.recipe_tasks(recipe.Recipe())] == ["nsmc", "kornli", "korsts", "klue-ner"]
    chosen = recipe.Recipe(tasks=["klue-nli", "nsmc"])
    assert [t.name for t in recipe.recipe_tasks(chosen)] == ["klue-nli", "nsmc"]
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as stop:
        recipe.main(["--data", str(tmp_path), "--out", str(out), "--split-only", "--set", "tasks=nsmc,klue-nil"])
    assert "klue-nil" in str(stop.value) and "klue-nli" in str(stop.value) and not out.exists()
    with pytest.raises(SystemExit) as stop:  # the task-adaptive phase's tasks are checked the same way
        recipe.main(["--data", str(tmp_path), "--out", str(out), "--split-only", "--set", "adapt_tasks=korsts,kornil"])
    assert "adapt_tasks" in str(stop.value) and "kornil" in str(stop.value) and not out.exists()
    for bad in ("seeds=1,a", "pretrain_steps=1e3", "bf16=maybe"):  # a value of the wrong kind: the option named, no traceback
        with pytest.raises(SystemExit) as stop:
            recipe.main(["--data", str(tmp_path), "--out", str(out), "--split-only", "--set", bad])
        assert stop.value.code == 2 and f"--set {bad}" in capsys.readouterr().err and not out.exists()


def test_table_reports_mean_spread_gain_and_separation(recipe):
    rows = []
    for scratch, pre in (([0.60, 0.62, 0.64], [0.70, 0.71, 0.75]), ([0.5, 0.6], [0.55, 0.7])):
        row = {"task": "nsmc", "metric": "accuracy", "scratch": recipe.summarize(scratch),
               "pretrained": recipe.summarize(pre)}
        row["gain"] = row["pretrained"]["mean"] - row["scratch"]["mean"]
        row["separated"] = min(pre) > max(scratch)
        rows.append(row)
    assert rows[0]["scratch"]["spread"] == pytest.approx(0.02)
    table = recipe.format_table(rows).splitlines()
    assert "0.6200 ± 0.0200" in table[2] and "0.7200 ± 0.0250" in table[2] and "+0.1000" in table[2]
    assert table[2].endswith("yes") and table[3].endswith("no")


@pytest.mark.slow
def test_quick_recipe_end_to_end(recipe, data_dir, tmp_path):
    """``korean_recipe.py --quick`` (what CI runs): every step through plmkit's CLI, then the table and plot."""
    out = tmp_path / "recipe"
    env = {**os.environ, "PLMKIT_DATA": str(data_dir)}
    res = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                         text=True, env=env, timeout=1200)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "scratch" in res.stdout and "pretrained" in res.stdout and "gain" in res.stdout
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_task = {r["task"]: r for r in report["results"]}
    assert list(by_task) == ["nsmc", "kornli", "korsts", "klue-ner"] == report["recipe"]["tasks"]
    for task, r in by_task.items():
        lo = -1.0 if r["metric"] == "pearson" else 0.0
        for init in ("scratch", "pretrained"):
            assert len(r[init]["per_seed"]) == len(report["recipe"]["seeds"])
            assert all(lo <= v <= 1.0 for v in r[init]["per_seed"]), (task, r)
        assert r["gain"] == pytest.approx(r["pretrained"]["mean"] - r["scratch"]["mean"])
        assert (out / "table.txt").read_text(encoding="utf-8").count(task) == 1
    # the parts hold every example of the file once (counts from the data's README), and plmkit read them all;
    # KorNLI's validation part takes whole premises (each with its three hypotheses), so it may hold a few more
    rows = {"nsmc": 25000, "kornli": 2490, "korsts": 5749, "klue-ner": 5000}
    eval_rows = report["recipe"]["eval_rows"]
    for task, r in by_task.items():
        read = {Path(d["path"]).name.split("-")[-1].split(".")[0]: d["read"] for d in r["data"]}
        assert read["train"] + read["eval"] == rows[task], (task, read)
        assert eval_rows <= read["eval"] <= eval_rows + (2 if task == "kornli" else 0), (task, read)
    nli = [recipe.TASKS["kornli"].layout.read(out / "tasks" / f"kornli-{part}.tsv")[1] for part in ("train", "eval")]
    assert not {r.split("\t")[0] for r in nli[0]} & {r.split("\t")[0] for r in nli[1]}
    # the pretraining learnt: held-out MLM loss fell well below where it started
    assert report["pretraining"]["eval_mlm_loss"] < report["pretraining_start"]["eval_mlm_loss"] - 1.0
    # the task-adaptive phase continued the general model (its MLM starts where the general one ended, far below
    # a fresh model's) on the pair tasks' text with MLM + NSP, and lowered the MLM loss; the starts come from it
    adapt = report["adaptation"]
    assert adapt["tasks"] == ["korsts", "kornli"] and adapt["step"] == report["recipe"]["adapt_steps"]
    assert adapt["start"]["eval_mlm_loss"] < report["pretraining_start"]["eval_mlm_loss"] - 1.0
    assert adapt["eval_mlm_loss"] < adapt["start"]["eval_mlm_loss"] and "eval_nsp_accuracy" in adapt
    for init in ("scratch", "pretrained"):
        assert json.loads((out / f"finetune/korsts-{init}/metrics.json").read_text())["model"] == str(out / f"model-{init}")
    assert (out / "model-general" / "config.json").exists()
    # KorSTS trains on its whole training part, the other tasks on the recipe's first finetune_train examples
    for task, r in by_task.items():
        used = json.loads((out / "finetune" / f"{task}-pretrained" / "metrics.json").read_text())["train_examples"]
        read = next(d["read"] for d in r["data"] if "-train." in d["path"])
        assert used == (read if task == "korsts" else min(read, report["recipe"]["finetune_train"])), (task, used)
    # fine-tuning learnt: a model that learnt anything separates positive from negative reviews (200 pretraining
    # steps leave the pretrained start weaker than a fresh one, so quick asserts no gain: BENCHMARKS.md)
    assert max(by_task["nsmc"]["scratch"]["mean"], by_task["nsmc"]["pretrained"]["mean"]) > 0.6
    # nothing of the validation parts was pretrained on
    pretrain_lines = {ln for f in (out / "pretrain-text").iterdir() for ln in f.read_text(encoding="utf-8").splitlines()}
    for task in report["tasks"]:
        eval_f = next((out / "tasks").glob(f"{task['name']}-eval.*"))
        spec = recipe.TASKS[task["name"]]
        for doc in recipe.texts_of(spec, spec.layout.read(eval_f)[1]):
            assert not {" ".join(s.split()) for s in doc} & pretrain_lines, task["name"]
    png = (out / "korean-recipe.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.slow
def test_readme_korean_guide_runs(data_dir, tmp_path):
    """The README's Korean guide, every command as written in test_readme's quick form (2 steps, 40 examples),
    from a folder laid out like the project root (.venv, benchmarks/)."""
    import re

    from test_readme import FENCE, logical_lines, quick_form

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    guide = text[text.index("## Korean guide"):]
    guide = guide[:guide.index("\n## ", 1)]
    blocks = [m.group(2) for m in FENCE.finditer(guide) if m.group(1) == "bash"
              and m.group(4) == "tests/test_korean_recipe.py::test_readme_korean_guide_runs"]
    assert len(blocks) == 1, "the guide's step-by-step block is marked as covered by this test"
    work = tmp_path / "root"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (work / "benchmarks").symlink_to(ROOT / "benchmarks")
    env = {**os.environ, "DATA": str(data_dir), "PATH": f"{work / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "TQDM_DISABLE": "1"}
    lines = logical_lines(quick_form(blocks[0]))
    assert any(re.match(r"plmkit finetune klue-ner ", ln) for ln in lines)
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=work, env=env, capture_output=True,
                             text=True, timeout=900)
        assert res.returncode == 0, f"README Korean guide failed at:\n{line}\n{res.stderr[-3000:]}"
    for task in ("nsmc", "kornli", "korsts", "klue-ner"):
        metrics = json.loads((work / "ko" / "finetune" / task / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["seeds"] == [1, 2, 3] and set(metrics["runs"]) == {"1", "2", "3"}
