"""Kill-and-resume soak: SIGKILL a CPU fp32 pretraining run many times, resume each time, compare bits.

The claim under test (issue 9, "no lost work under crashes"): whatever moment a ``plmkit pretrain``
process dies at — while starting, while training, while writing a checkpoint — ``--resume`` continues
from the newest complete checkpoint and the run ends with weights, optimizer state and logged losses
*bit for bit* equal to an uninterrupted run.

1. A reference run trains ``--steps`` steps without interruption (``--save-every 1``, so a checkpoint
   is written after every step and kills often land mid-save).
2. The same command is started again in a second folder and killed with SIGKILL ``--kills`` times,
   each time resumed with ``--resume``. Kill moments are random, drawn from three kinds:
   ``startup`` (while the process imports, loads and resumes), ``train`` (a random moment once the
   run has made progress) and ``save`` (just after a temporary checkpoint folder ``.tmp-step-*``
   appears, i.e. in the middle of writing a checkpoint).
3. After each kill the harness checks that the newest checkpoint verifies (checksums) and records
   whether the kill left a half-written temporary folder (evidence that it landed mid-save).
4. The last resume runs to the end; final model and optimizer tensors and every logged loss are
   compared with the reference run.

``--default-saving`` runs plmkit's default settings instead: no ``--save-every`` (checkpoints come from
the clock alone, the mechanism behind the default of one every 5 minutes), the default ``--log-every``
(10, so most kills and resumes fall between two log lines) and ``--keep-last``. Its one change from the
defaults is the interval, ``--save-minutes`` (0.02 min = 1.2 s here): with 5 minutes, a soak that lets
every kill land after a new checkpoint would take hours. Only the number differs; the code path is the
one every default run takes. ``train`` kills then fall anywhere in the two intervals after a new
checkpoint, so many land well after it and the resume redoes up to an interval of steps.

Every process runs with ``OMP_NUM_THREADS=1`` (bit-exactness needs the same reduction order).
Exit status 0 when every kill was survived and the final state is identical, else 1.

    python benchmarks/kill_resume_soak.py                       # 12 kills, bert-tiny, synthetic text
    python benchmarks/kill_resume_soak.py --kills 30 --steps 120 --brown   # Brown slice from $PLMKIT_DATA
    python benchmarks/kill_resume_soak.py --default-saving             # no --save-every: checkpoints by the clock
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOG_EVERY = 10  # TrainConfig.log_every


def make_corpus(work: Path, brown: bool, seed: int) -> Path:
    """A small prepared corpus: a Brown slice ($PLMKIT_DATA) or seeded synthetic text."""
    from plmkit.data import prepare_corpus, read_sentences
    from plmkit.tokenization import train_tokenizer

    if brown:
        data = os.environ.get("PLMKIT_DATA")
        if not data:
            sys.exit("--brown needs PLMKIT_DATA (the shared data folder)")
        files = [Path(data) / "corpora" / "brown" / f"c{g}{i:02d}" for g in "abfgjkn" for i in range(1, 3)]
        vocab = 1000
    else:
        rng = random.Random(seed)
        words = [f"w{i}" for i in range(300)]
        lines = []
        for _ in range(60):  # 60 documents of 6-15 sentences
            for _ in range(rng.randint(6, 15)):
                lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) + " .")
            lines.append("")
        (work / "text.txt").write_text("\n".join(lines) + "\n")
        files = [work / "text.txt"]
        vocab = 400
    tok = train_tokenizer("wordpiece", read_sentences(files), vocab_size=vocab)
    tok.save_pretrained(work / "tok")
    prepare_corpus(files, work / "prep", tokenizer=work / "tok", workers=1)
    return work / "prep"


def pretrain_cmd(args, corpus: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "plmkit.cli", "pretrain", "--preset", args.preset, "--data", str(corpus),
           "--out", str(out), "--max-steps", str(args.steps), "--batch-size", "8", "--max-length", "64",
           "--seed", str(args.seed), "--no-progress", "--set", "train.tensorboard=false"]
    if args.default_saving:  # the defaults but for the clock interval (see the module docstring)
        return cmd + ["--save-minutes", str(args.save_minutes)]
    return cmd + ["--save-every", "1", "--keep-last", "3", "--log-every", "1", "--eval-every", "10"]


def logged_steps(args) -> int:
    """How many loss lines a run of ``args.steps`` steps logs (one per --log-every steps, and the last ones)."""
    every = 1 if not args.default_saving else DEFAULT_LOG_EVERY
    return args.steps // every + (1 if args.steps % every else 0)


def temp_folders(run: Path) -> list[str]:
    root = run / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".tmp-") or p.name.startswith(".latest."))


def newest_step(run: Path) -> int:
    from plmkit.training import checkpoint as ckpt

    found = ckpt.list_checkpoints(run)
    return int(found[-1].name[len(ckpt.PREFIX):]) if found else 0


def wait_kill(proc: subprocess.Popen, run: Path, kind: str, rng: random.Random, startup_s: float,
              step_s: float, after_save_s: float) -> tuple[bool, float]:
    """Kill ``proc`` at a moment of the given kind; returns (killed before it finished, seconds after start)."""
    t0 = time.monotonic()
    if kind == "startup":
        deadline = t0 + rng.uniform(0.05, startup_s)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
    elif kind == "train":
        start_step = newest_step(run)
        while proc.poll() is None and newest_step(run) <= start_step:
            time.sleep(0.005)
        deadline = time.monotonic() + rng.uniform(0.0, after_save_s)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.002)
    else:  # "save": poll for a temporary checkpoint folder, kill a random instant after it appears
        skip = rng.randint(0, 3)  # not always the first save after a resume
        seen = set(temp_folders(run))  # left by an earlier kill: not a save of this process
        while proc.poll() is None:
            tmp = [t for t in temp_folders(run) if t.startswith(".tmp-")]
            new = [t for t in tmp if t not in seen]
            if new:
                seen.update(new)
                if skip == 0:
                    time.sleep(rng.uniform(0.0, 0.004))
                    break
                skip -= 1
            time.sleep(0.0003)
    if proc.poll() is not None:
        return False, time.monotonic() - t0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True, time.monotonic() - t0


def losses(run: Path) -> list[tuple[int, float]]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            out.append((rec["step"], rec["loss"]))
    return out


def last_logged_step(run: Path) -> int:
    """The newest step with a loss line in metrics.jsonl (0 when none): how far the killed process got, to the
    log line."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [0]
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if "loss" in rec:
            steps.append(int(rec["step"]))
    return max(steps)


def final_tensors(run: Path, step: int) -> dict[str, "torch.Tensor"]:
    from safetensors.torch import load_file

    folder = run / "checkpoints" / f"step-{step:07d}"
    out = {f"model/{k}": v for k, v in load_file(str(folder / "model.safetensors")).items()}
    out.update({f"optimizer/{k}": v for k, v in load_file(str(folder / "optimizer.safetensors")).items()})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=12, help="SIGKILLs to survive (default 12)")
    p.add_argument("--steps", type=int, help="optimizer steps of the run (default 60; 400 with --default-saving)")
    p.add_argument("--default-saving", action="store_true",
                   help="plmkit's default saving and logging (no --save-every: checkpoints by the clock), with the "
                        "interval shortened to --save-minutes")
    p.add_argument("--save-minutes", type=float, default=0.02,
                   help="with --default-saving: minutes between checkpoints (default 0.02 = 1.2 s; plmkit's is 5)")
    p.add_argument("--preset", default="bert-tiny")
    p.add_argument("--seed", type=int, default=0, help="seed of the run and of the kill schedule")
    p.add_argument("--brown", action="store_true", help="train on a Brown slice from $PLMKIT_DATA")
    p.add_argument("--work", help="working folder (default: a temporary one, removed afterwards)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args()
    if args.steps is None:
        args.steps = 400 if args.default_saving else 60

    import torch
    from plmkit.training import checkpoint as ckpt

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="plmkit-kill-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    rng = random.Random(args.seed)
    try:
        corpus = make_corpus(work, args.brown, args.seed)
        ref, killed = work / "reference", work / "killed"
        t = time.monotonic()
        res = subprocess.run(pretrain_cmd(args, corpus, ref), env=env, capture_output=True, text=True)
        ref_s = time.monotonic() - t
        if res.returncode != 0:
            print(res.stderr[-3000:], file=sys.stderr)
            return 1
        # Rough timings for placing kills: process start-up, and one step (train + save).
        startup_s = min(4.0, ref_s / 2)
        step_s = max(0.01, (ref_s - startup_s) / args.steps)
        # A "train" kill falls this long after a new checkpoint: within 8 steps of it with a save every step,
        # anywhere in the two intervals that follow it with checkpoints by the clock.
        after_save_s = 2 * 60 * args.save_minutes if args.default_saving else 8 * step_s
        kept_ref = [int(f.name[len(ckpt.PREFIX):]) for f in ckpt.list_checkpoints(ref)]  # steps the clock chose
        print(f"reference: {args.steps} steps in {ref_s:.1f} s (about {step_s * 1000:.0f} ms a step"
              + (f"; checkpoints by the clock every {60 * args.save_minutes:.1f} s)" if args.default_saving
                 else " with its save)") + f"; its checkpoints kept: steps {kept_ref}")

        kinds = ["startup", "train", "save"]
        log = []
        attempts = 0
        while sum(1 for k in log if k["killed"]) < args.kills:
            attempts += 1
            if attempts > 4 * args.kills:
                print("the run kept finishing before a kill landed; raise --steps", file=sys.stderr)
                return 1
            kind = kinds[len(log) % 3] if len(log) < 3 else rng.choice(kinds)
            resume = killed.exists() and (killed / "run.json").exists()
            before = newest_step(killed)
            temp_before = set(temp_folders(killed))
            cmd = pretrain_cmd(args, corpus, killed) + (["--resume"] if resume else [])
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            was_killed, at = wait_kill(proc, killed, kind, rng, startup_s, step_s, after_save_s)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.stderr.close()
            if not was_killed:
                if proc.returncode != 0:
                    print(f"attempt {attempts} failed:\n{err[-3000:]}", file=sys.stderr)
                    return 1
                print(f"attempt {attempts}: the run finished before the {kind} kill; starting over would not "
                      "test anything, so stop here")
                break
            stray = [t for t in temp_folders(killed) if t not in temp_before]  # left by this kill
            # The newest checkpoint must verify; a damaged one would be skipped with a warning.
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                good = ckpt.latest_checkpoint(killed) if ckpt.list_checkpoints(killed) else None
            reached = last_logged_step(killed)
            entry = {"kill": len(log) + 1, "kind": kind, "seconds_after_start": round(at, 3), "resumed": resume,
                     "checkpoint_before": before, "checkpoint_after": newest_step(killed), "logged_step": reached,
                     # steps the resume redoes (at least: the process may have run past its last log line)
                     "steps_lost": max(0, reached - newest_step(killed)),
                     "newest_good": good.name if good else None, "damaged_skipped": len(caught),
                     "left_temp": stray, "killed": True}
            log.append(entry)
            mid = " (mid-save: left " + ", ".join(stray) + ")" if stray else ""
            print(f"kill {entry['kill']:>2} [{kind:<7}] at {at:6.2f} s: step {before} -> {entry['checkpoint_after']}, "
                  f"newest good {entry['newest_good']}, lost >= {entry['steps_lost']} steps{mid}")
        # the final resume runs to the end
        res = subprocess.run(pretrain_cmd(args, corpus, killed) + ["--resume"], env=env, capture_output=True,
                             text=True)
        if res.returncode != 0:
            print(res.stderr[-3000:], file=sys.stderr)
            return 1
        leftover = temp_folders(killed)
        a, b = final_tensors(ref, args.steps), final_tensors(killed, args.steps)
        same_keys = a.keys() == b.keys()
        differ = [k for k in a if k not in b or not torch.equal(a[k], b[k])]
        la, lb = losses(ref), losses(killed)
        kills = sum(1 for k in log if k["killed"])
        mid_save = sum(1 for k in log if k["left_temp"])
        max_lost = max((k["steps_lost"] for k in log), default=0)
        damaged = sum(k["damaged_skipped"] for k in log)
        ok = same_keys and not differ and la == lb and len(la) == logged_steps(args) and not leftover \
            and damaged == 0
        summary = {"kills": kills, "survived": kills if ok else None, "mid_save_kills": mid_save,
                   "by_kind": {k: sum(1 for e in log if e["kind"] == k) for k in kinds},
                   "damaged_checkpoints_skipped": damaged, "most_steps_lost": max_lost,
                   "most_seconds_lost": round(max_lost * step_s, 2),
                   "tensors_compared": len(a), "tensors_differing": len(differ),
                   "losses_equal": la == lb, "loss_lines": len(la), "steps": args.steps, "preset": args.preset,
                   "mode": "default saving (clock)" if args.default_saving else "--save-every 1",
                   "save_minutes": args.save_minutes if args.default_saving else None,
                   "reference_seconds": round(ref_s, 1), "reference_checkpoint_steps": kept_ref,
                   "temp_folders_left_at_end": leftover, "bit_identical": ok, "kills_log": log}
        print(f"kills survived: {kills if ok else 0}/{kills} ({mid_save} landed mid-save, left a temporary folder); "
              f"final model + optimizer tensors identical: {not differ and same_keys} ({len(a)} tensors); "
              f"losses identical: {la == lb} ({len(la)} log lines); damaged checkpoints seen: {damaged}; most work "
              f"lost to a kill: >= {max_lost} steps (~{max_lost * step_s:.1f} s)")
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        return 0 if ok else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
