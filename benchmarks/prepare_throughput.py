"""Benchmark ``plmkit prepare``: throughput against raw ``tokenizers`` and peak memory against corpus size.

1. Throughput. The same text (the first ``--throughput-mb`` MB of a concatenation of the shared
   corpora: Brown, Austen, State of the Union, Korean) is tokenized twice in the same process,
   alternating, best of ``--repeats``:
     * raw: ``tokenizers.Tokenizer.encode_batch`` over the sentences already in memory, in batches
       of 1M characters, with ``--workers`` Rust threads (the tokenizer at its best: no reading, no
       conversion to arrays, no writing);
     * pipeline: ``plmkit.data.prepare_corpus(..., workers=--workers)`` from the file on disk to
       finished shards (reading, UTF-8 decoding, hashing, tokenizing in worker processes, word
       starts, writing, indexes, meta.json).
   Target: pipeline MB/s >= 0.8 x raw MB/s.
2. Memory. ``plmkit prepare`` runs as a child process on concatenations of ``--sizes`` MB (default
   100 and 500). Reported: the peak of the summed PSS (proportional set size: shared pages split
   between the processes that share them) of it and its worker processes, sampled every 0.1 s,
   and its own peak RSS from ``wait4``. Target: < 1 GB, and the same at both sizes.

Everything is generated under a temporary folder (``--tmp``, default the system's), never in the
repository, and removed at the end. Smoke run (a minute)::

    PLMKIT_DATA=../shared/data python benchmarks/prepare_throughput.py --sizes 5,10 --throughput-mb 5

Full run (10-20 minutes on a 2-core machine)::

    PLMKIT_DATA=../shared/data python benchmarks/prepare_throughput.py --sizes 100,500 --throughput-mb 50 \
        --json prepare_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import cpu_name  # benchmarks/ is the script's folder, first on sys.path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("PLMKIT_DATA"), help="shared data folder (default: $PLMKIT_DATA)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: train a WordPiece on the corpora)")
    p.add_argument("--vocab-size", type=int, default=30522, help="vocabulary of the trained WordPiece (BERT's)")
    p.add_argument("--max-sentences", type=int, default=100_000, help="training sample of the WordPiece")
    p.add_argument("--sizes", default="100,500", help="corpus sizes in MB for the memory runs (comma-separated)")
    p.add_argument("--throughput-mb", type=float, default=50, help="MB of text for the throughput comparison")
    p.add_argument("--repeats", type=int, default=2, help="throughput repetitions (best is reported)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                   help="raw: tokenizer threads; pipeline: worker processes (default: the CPUs)")
    p.add_argument("--tmp", help="folder for the generated corpora (default: the system temp folder)")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args()


def build_base(data: Path, path: Path) -> int:
    """The corpora as one text file: one sentence per line, a blank line between documents."""
    from plmkit.data import read_documents

    groups = [([data / "corpora" / "brown"], {}),
              ([data / "corpora" / "austen"], {"doc_per_file": True, "split_sentences": True}),
              ([data / "corpora" / "sotu"], {"split_sentences": True}),
              ([data / "corpora" / "ko"], {})]
    with open(path, "w", encoding="utf-8") as f:
        for inputs, opts in groups:
            for doc in read_documents(inputs, **opts):
                f.write("\n".join(doc))
                f.write("\n\n")
    return path.stat().st_size


def make_corpus(base: Path, path: Path, megabytes: float) -> int:
    """Repeat ``base`` up to ``megabytes`` (cut at a document boundary), streaming."""
    target = int(megabytes * 1e6)
    text = base.read_bytes()
    written = 0
    with open(path, "wb") as f:
        while written < target:
            chunk = text[: target - written]
            if len(chunk) < len(text):
                cut = chunk.rfind(b"\n\n")
                chunk = chunk[: cut + 2] if cut > 0 else chunk
                if not chunk:
                    break
            f.write(chunk)
            written += len(chunk)
            if len(chunk) < len(text):
                break
    return path.stat().st_size


def throughput(tokenizer: Path, corpus: Path, workdir: Path, repeats: int, workers: int) -> dict:
    from plmkit import load_tokenizer
    from plmkit.data import read_sentences
    from plmkit.data.shards import prepare_corpus

    tok = load_tokenizer(tokenizer)
    sentences = list(read_sentences(corpus))
    batches, batch, size = [], [], 0
    for s in sentences:
        batch.append(s)
        size += len(s)
        if size >= 1 << 20:
            batches.append(batch)
            batch, size = [], 0
    if batch:
        batches.append(batch)
    mb = corpus.stat().st_size / 1e6
    raw_best = fast_best = pipe_best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        n_raw = 0
        for b in batches:
            n_raw += sum(len(e.ids) for e in tok.backend.encode_batch(b, add_special_tokens=False))
        raw_best = min(raw_best, time.perf_counter() - t)
        t = time.perf_counter()
        for b in batches:
            tok.backend.encode_batch_fast(b, add_special_tokens=False)
        fast_best = min(fast_best, time.perf_counter() - t)
        out = workdir / f"tp-{r}"
        t = time.perf_counter()
        corpus_out = prepare_corpus(corpus, out, tokenizer, workers=workers)
        pipe_best = min(pipe_best, time.perf_counter() - t)
        assert corpus_out.num_tokens == n_raw, (corpus_out.num_tokens, n_raw)  # same work, nothing lost
        shutil.rmtree(out)
    return {"megabytes": round(mb, 2), "tokens": n_raw, "sentences": len(sentences),
            "raw_encode_batch_mb_s": mb / raw_best, "raw_encode_batch_fast_mb_s": mb / fast_best,
            "pipeline_mb_s": mb / pipe_best, "ratio": raw_best / pipe_best}


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss(tokenizer: Path, corpus: Path, out: Path, workers: int) -> dict:
    """Run ``plmkit prepare`` as a child process: peak summed PSS of its process tree, and its own peak RSS."""
    import threading

    cmd = [sys.executable, "-m", "plmkit.cli", "prepare", "--tokenizer", str(tokenizer), "--out", str(out),
           "--workers", str(workers), "--no-progress", str(corpus)]
    log_out, log_err = out.parent / "prepare.out", out.parent / "prepare.err"
    t = time.perf_counter()
    peak = [0]
    done = threading.Event()

    def sample(pid: int) -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], sum(_pss_kib(p) for p in _tree(pid)))

    with open(log_out, "wb") as fo, open(log_err, "wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = log_out.read_text(), log_err.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"plmkit prepare failed ({proc.returncode}):\n{stderr}")
    mb = corpus.stat().st_size / 1e6
    shutil.rmtree(out)
    return {"megabytes": round(mb, 1), "seconds": round(seconds, 1), "mb_s": round(mb / seconds, 2),
            "peak_pss_tree_mb": round(peak[0] / 1024, 1), "peak_rss_main_mb": round(usage.ru_maxrss / 1024, 1),
            "summary": stdout.strip()}


def machine() -> str:
    return f"{cpu_name()} ({os.cpu_count()} CPUs), Python {platform.python_version()}"


def main() -> None:
    args = parse_args()
    if not args.data:
        raise SystemExit("pass --data or set PLMKIT_DATA to the shared data folder")
    # The raw contender's Rust thread pool: as many threads as the pipeline has worker processes.
    os.environ["RAYON_NUM_THREADS"] = str(args.workers)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    import tokenizers

    data = Path(args.data)
    sizes = [float(s) for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="plmkit-bench-", dir=args.tmp))
    try:
        base = work / "base.txt"
        print(f"building the base corpus from {data} ...", flush=True)
        base_mb = build_base(data, base) / 1e6
        tokenizer = Path(args.tokenizer) if args.tokenizer else work / "tok"
        if not args.tokenizer:
            from plmkit.data import read_sentences
            from plmkit.tokenization import train_tokenizer

            print(f"training a WordPiece ({args.vocab_size} tokens, {args.max_sentences} sentences) ...", flush=True)
            train_tokenizer("wordpiece", read_sentences(base), vocab_size=args.vocab_size,
                            max_sentences=args.max_sentences).save_pretrained(tokenizer)
        tp_file = work / "throughput.txt"
        make_corpus(base, tp_file, args.throughput_mb)
        print(f"throughput on {args.throughput_mb} MB ...", flush=True)
        tp = throughput(tokenizer, tp_file, work, args.repeats, args.workers)
        tp_file.unlink()
        memory = []
        for size in sizes:
            f = work / f"corpus-{size:g}MB.txt"
            make_corpus(base, f, size)
            print(f"peak RSS of plmkit prepare on {size:g} MB ...", flush=True)
            memory.append(peak_rss(tokenizer, f, work / "out", args.workers))
            f.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {"machine": machine(), "tokenizers": tokenizers.__version__, "workers": args.workers,
              "base_corpus_mb": round(base_mb, 1), "throughput": tp, "memory": memory,
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    print()
    print(f"machine: {result['machine']}; tokenizers {result['tokenizers']}; {args.workers} tokenizer threads "
          "(raw) / worker processes (pipeline)")
    print(f"throughput on {tp['megabytes']} MB ({tp['tokens']:,} tokens):")
    print("| contender | MB/s | vs raw encode_batch |")
    print("|---|---:|---:|")
    print(f"| tokenizers encode_batch (text in memory) | {tp['raw_encode_batch_mb_s']:.2f} | 1.00x |")
    print(f"| tokenizers encode_batch_fast (no offsets, no word ids) | {tp['raw_encode_batch_fast_mb_s']:.2f} | "
          f"{tp['raw_encode_batch_fast_mb_s'] / tp['raw_encode_batch_mb_s']:.2f}x |")
    print(f"| plmkit prepare (file to shards) | {tp['pipeline_mb_s']:.2f} | {tp['ratio']:.2f}x |")
    print()
    print("| corpus | wall (incl. start-up) | MB/s | peak PSS, all processes | peak RSS, main process |")
    print("|---:|---:|---:|---:|---:|")
    for m in memory:
        print(f"| {m['megabytes']} MB | {m['seconds']} s | {m['mb_s']} | {m['peak_pss_tree_mb']} MB | "
              f"{m['peak_rss_main_mb']} MB |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
