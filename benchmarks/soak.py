"""Long-run soak: a CPU pretraining run of a given duration, with its memory and checkpoints watched.

The claims under test (issue 9, "long runs"): over a long pretraining run the resident memory of
the process does not grow, and checkpoint rotation behaves the whole time — never more than
``--keep-last`` checkpoints (one more only for the instant between writing a new one and deleting
the oldest), the ``latest`` pointer always names an existing checkpoint, and no temporary folder
outlives the save that made it.

``plmkit pretrain --max-time DURATION`` runs as a child process; every ``--interval`` seconds the
harness records its RSS and anonymous RSS (``/proc/PID/status``; psutil's total elsewhere;
children included), the newest step and the state of ``checkpoints/`` into a CSV. At the end it checks the final
checkpoints (count, names, checksums, pointer) and fits the memory of the last two thirds of the
run (the first third is warm-up: allocator pools, library pages, the first evaluation) against
time. It prints the slope, the growth over that span and a verdict — on anonymous memory, which a
leak grows (file-backed pages of libraries and memory-mapped shards come and go) — "flat" when the
fitted growth is under max(5 MB, 2% of it).

    python benchmarks/soak.py                                   # 30 minutes, bert-tiny, Brown ($PLMKIT_DATA)
    python benchmarks/soak.py --duration 3m --csv soak.csv      # a short smoke run
    python benchmarks/soak.py --data prepared/ --preset bert-mini --duration 2h --plot rss.png

Exit status 0 when the run finished, rotation held throughout and RSS was flat; else 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------- memory
def rss_bytes(pid: int) -> tuple[int, int | None] | None:
    """(RSS, anonymous RSS) of ``pid`` and its descendants; None once the process is gone.

    Anonymous memory (``RssAnon``: heap, tensors) is what a leak grows; the rest of RSS is file-backed
    pages (shared libraries, memory-mapped shards) that the kernel can drop. Linux reports both in
    ``/proc/PID/status``; elsewhere psutil gives the total only.
    """
    if not Path(f"/proc/{pid}/status").exists():
        try:
            import psutil  # type: ignore[import-not-found]

            proc = psutil.Process(pid)
            return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True)), None
        except Exception:  # noqa: BLE001 - psutil missing or the process is gone
            return None
    total, anon, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            if p == pid:
                return None
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon += int(line.split()[1]) * 1024
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return total, anon


# --------------------------------------------------------------------------------------- checkpoints
def checkpoint_state(run: Path) -> dict:
    root = run / "checkpoints"
    if not root.is_dir():
        return {"steps": [], "temp": [], "latest": None}
    steps, temp = [], []
    for p in root.iterdir():
        if p.name.startswith("step-") and p.name[5:].isdigit():
            steps.append(int(p.name[5:]))
        elif p.name.startswith("."):
            temp.append(p.name)
    latest = None
    try:
        latest = (root / "latest").read_text().strip()
    except OSError:
        pass
    return {"steps": sorted(steps), "temp": sorted(temp), "latest": latest}


def make_corpus(work: Path) -> Path:
    """Brown from $PLMKIT_DATA (or seeded synthetic text), with a 8k WordPiece vocabulary."""
    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.tokenization import train_tokenizer

    data = os.environ.get("PLMKIT_DATA")
    if data and (Path(data) / "corpora" / "brown").is_dir():
        files = [Path(data) / "corpora" / "brown"]
    else:
        rng = random.Random(0)
        words = [f"w{i}" for i in range(3000)]
        lines = []
        for _ in range(500):
            lines += [" ".join(rng.choice(words) for _ in range(rng.randint(5, 30))) for _ in range(rng.randint(5, 40))]
            lines.append("")
        (work / "text.txt").write_text("\n".join(lines) + "\n")
        files = [work / "text.txt"]
    print(f"preparing {', '.join(map(str, files))} ...", flush=True)
    tok = train_tokenizer("wordpiece", read_sentences(files), vocab_size=8000)
    tok.save_pretrained(work / "tok")
    prepare_corpus(files, work / "prep", tokenizer=work / "tok")
    return work / "prep"


def parse_duration(text: str) -> float:
    from plmkit.training.trainer import parse_duration as parse

    return float(parse(text))


# --------------------------------------------------------------------------------------- analysis
def memory_verdict(t: np.ndarray, rss_mb: np.ndarray) -> dict:
    """Fit RSS against time over the last two thirds (after warm-up)."""
    if len(t) < 6:
        return {"verdict": "too few samples", "flat": False}
    warm = t[0] + (t[-1] - t[0]) / 3
    keep = t >= warm
    tt, rr = t[keep], rss_mb[keep]
    slope, intercept = np.polyfit(tt, rr, 1)  # MB per second
    span = tt[-1] - tt[0]
    growth = slope * span
    third = len(t) // 3
    first, last = rss_mb[:third], rss_mb[-third:]
    limit = max(5.0, 0.02 * float(rr.mean()))
    return {"samples": int(len(t)), "warmup_s": round(float(warm - t[0]), 1),
            "slope_mb_per_hour": round(float(slope * 3600), 2), "fitted_growth_mb": round(float(growth), 2),
            "limit_mb": round(limit, 2), "rss_first_third_mb": round(float(first.mean()), 1),
            "rss_last_third_mb": round(float(last.mean()), 1), "rss_max_mb": round(float(rss_mb.max()), 1),
            "rss_min_after_warmup_mb": round(float(rr.min()), 1), "flat": bool(growth < limit),
            "verdict": "flat" if growth < limit else "GROWING"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", default="30m", help="how long the pretraining run lasts (default 30m)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--preset", default="bert-tiny")
    p.add_argument("--data", help="a prepared corpus (default: prepare Brown from $PLMKIT_DATA, or synthetic text)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--save-every", type=int, default=25, help="steps between checkpoints (default 25)")
    p.add_argument("--keep-last", type=int, default=3)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the run (default: inherited)")
    p.add_argument("--work", help="working folder (default: a new temporary folder, kept, path printed)")
    p.add_argument("--csv", help="where to write the samples (default: WORK/soak.csv)")
    p.add_argument("--json", help="also write the summary as JSON")
    p.add_argument("--plot", help="save RSS and step against time as a PNG (needs matplotlib)")
    args = p.parse_args()

    duration = parse_duration(args.duration)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="plmkit-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.data) if args.data else make_corpus(work)
    run = work / f"run-{int(time.time())}"
    csv_path = Path(args.csv) if args.csv else work / "soak.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, "-m", "plmkit.cli", "pretrain", "--preset", args.preset, "--data", str(corpus),
           "--out", str(run), "--max-time", f"{duration}s", "--batch-size", str(args.batch_size),
           "--max-length", str(args.max_length), "--save-every", str(args.save_every), "--keep-last",
           str(args.keep_last), "--eval-every", str(args.eval_every), "--log-every", "50", "--no-progress"]
    print(f"soak: {' '.join(cmd[2:])}", flush=True)
    log = open(work / "pretrain.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    rows: list[dict] = []
    problems: list[str] = []
    prev_temp: set[str] = set()
    saves_seen: set[int] = set()
    last_report = t0
    while True:
        now = time.monotonic() - t0
        sample = rss_bytes(proc.pid)
        state = checkpoint_state(run)
        done = proc.poll() is not None
        if sample is None or done:
            break
        rss, anon = sample
        steps = state["steps"]
        saves_seen.update(steps)
        if len(steps) > args.keep_last + 1:
            problems.append(f"{now:.0f}s: {len(steps)} checkpoints on disk ({steps}), keep-last is {args.keep_last}")
        if state["latest"] is not None and not (run / "checkpoints" / state["latest"]).is_dir():
            problems.append(f"{now:.0f}s: latest names {state['latest']}, which does not exist")
        stale = prev_temp & set(state["temp"])
        if stale:
            problems.append(f"{now:.0f}s: temporary entries outlived a save: {sorted(stale)}")
        prev_temp = set(state["temp"])
        rows.append({"t_s": round(now, 2), "rss_mb": round(rss / 2**20, 2),
                     "rss_anon_mb": round(anon / 2**20, 2) if anon is not None else "",
                     "newest_step": steps[-1] if steps else 0,
                     "checkpoints": len(steps), "temp_entries": len(state["temp"]), "latest": state["latest"]})
        if time.monotonic() - last_report >= 60:
            last_report = time.monotonic()
            print(f"  {now:6.0f}s  rss {rss / 2**20:7.1f} MB (anonymous {rows[-1]['rss_anon_mb']})  "
                  f"step {rows[-1]['newest_step']}  "
                  f"checkpoints {len(steps)}", flush=True)
        time.sleep(args.interval)
    rc = proc.wait()
    log.close()
    if rc != 0:
        problems.append(f"the pretraining run exited with status {rc} (see {work / 'pretrain.log'})")

    # final state: exactly the newest keep_last checkpoints, all verifying, pointer at the newest
    from plmkit.training import checkpoint as ckpt

    final = checkpoint_state(run)
    if len(final["steps"]) != min(args.keep_last, len(saves_seen | set(final["steps"]))):
        problems.append(f"at the end {len(final['steps'])} checkpoints remain: {final['steps']}")
    if final["steps"] and final["latest"] != f"step-{final['steps'][-1]:07d}":
        problems.append(f"at the end latest names {final['latest']}, not the newest step {final['steps'][-1]}")
    if final["temp"]:
        problems.append(f"temporary entries left at the end: {final['temp']}")
    damaged = [f"step {s}: {msg}" for s in final["steps"]
               if (msg := ckpt.verify_checkpoint(run / "checkpoints" / f"step-{s:07d}"))]
    problems += damaged

    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["t_s"])
        w.writeheader()
        w.writerows(rows)
    t = np.array([r["t_s"] for r in rows], dtype=float)
    rss_mb = np.array([r["rss_mb"] for r in rows], dtype=float)
    anon = rows and rows[0]["rss_anon_mb"] != ""
    # The verdict is on anonymous memory where the OS reports it (a leak grows it; file-backed pages of
    # libraries and memory-mapped shards come and go); the total RSS is fitted and reported as well.
    memory = memory_verdict(t, np.array([r["rss_anon_mb"] for r in rows], dtype=float) if anon else rss_mb)
    memory["measure"] = "RssAnon" if anon else "RSS"
    memory["total_rss"] = memory_verdict(t, rss_mb)
    if not memory["flat"]:
        problems.append(f"RSS grew: {memory}")
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()] if (
        run / "metrics.jsonl").exists() else []
    last_step = max((m.get("step", 0) for m in metrics), default=0)
    summary = {"duration_s": duration, "preset": args.preset, "steps": last_step,
               "checkpoints_written": (last_step // args.save_every) + 1 if args.save_every else 1,
               "distinct_checkpoints_seen": len(saves_seen), "keep_last": args.keep_last,
               "final_checkpoints": final["steps"], "memory": memory, "rotation_ok": not [
                   x for x in problems if "RSS grew" not in x], "problems": problems, "csv": str(csv_path),
               "run": str(run)}
    print(f"run: {last_step} steps in {duration:.0f} s; {summary['checkpoints_written']} checkpoints written "
          f"(every {args.save_every} steps), {len(saves_seen)} seen on disk by the sampler")
    for label, m in ((memory["measure"], memory), ("total RSS", memory["total_rss"])):
        print(f"memory ({label}): {m.get('rss_first_third_mb')} MB (first third) -> {m.get('rss_last_third_mb')} MB "
              f"(last third), max {m.get('rss_max_mb')} MB; after warm-up {m.get('slope_mb_per_hour')} MB/h, "
              f"fitted growth {m.get('fitted_growth_mb')} MB (limit {m.get('limit_mb')} MB): {m['verdict']}")
    print(f"rotation: {'ok' if summary['rotation_ok'] else 'FAILED'} — keep-last {args.keep_last} held at every "
          f"sample, latest pointer valid, no stray temporary folders; final checkpoints {final['steps']} verify"
          if summary["rotation_ok"] else "rotation: FAILED\n  " + "\n  ".join(problems))
    print(f"samples: {csv_path} ({len(rows)} rows, every {args.interval:g} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if args.plot and rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.plot(t / 60, rss_mb, label="RSS (MB)")
        if anon:
            ax.plot(t / 60, [r["rss_anon_mb"] for r in rows], label="anonymous RSS (MB)")
        ax.legend(loc="lower right")
        ax.set_xlabel("minutes")
        ax.set_ylabel("RSS (MB)")
        ax2 = ax.twinx()
        ax2.plot(t / 60, [r["newest_step"] for r in rows], color="grey", alpha=0.5, label="newest checkpoint step")
        ax2.set_ylabel("step")
        ax.set_title(f"plmkit pretrain {args.preset}: RSS over {duration / 60:.0f} min ({memory['verdict']})")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
