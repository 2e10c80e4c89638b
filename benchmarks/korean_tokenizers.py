"""[UNK] rate and round-trip of tokenizers trained on the shared Korean corpora, on everyday Korean.

Trains each kind with ``plmkit tokenizer train`` on ``$PLMKIT_DATA/corpora/ko`` (formal text: the
Constitution, bills, LibreOffice help) and encodes Korean it never saw: NSMC movie reviews, KorNLI,
KLUE-NLI, KorSTS and KorQuAD questions. A sentence round-trips when ``decode(encode(x))`` equals
``x`` after the tokenizer's normalizer (NFC; lowercasing where the kind lowercases), ignoring whitespace.

    PLMKIT_DATA=../shared/data .venv/bin/python benchmarks/korean_tokenizers.py
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from machine_info import machine  # benchmarks/ is the script's folder, first on sys.path
from plmkit import load_tokenizer
from plmkit.cli import main

DATA = Path(os.environ.get("PLMKIT_DATA", "../shared/data"))
RUNS = [  # (label, extra flags); every run: --vocab-size 8000 $DATA/corpora/ko
    ("unigram --cased (README)", ["--kind", "unigram", "--cased"]),
    ("unigram --cased --no-byte-fallback", ["--kind", "unigram", "--cased", "--no-byte-fallback"]),
    ("unigram (lowercased)", ["--kind", "unigram"]),
    ("bpe (byte-level)", ["--kind", "bpe"]),
    ("wordpiece --cased", ["--kind", "wordpiece", "--cased"]),
    ("wordpiece (lowercased)", ["--kind", "wordpiece"]),
]


def _tsv(path: Path, *columns: str) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row[c] for row in rows for c in columns if row[c] and row[c].strip()]


def held_out() -> dict[str, list[str]]:
    klue = json.loads((DATA / "korean/klue/klue-nli-v1.1_dev.json").read_text(encoding="utf-8"))
    squad = json.loads((DATA / "korean/korquad/korquad-v1.0-dev-part-a.json").read_text(encoding="utf-8"))
    sets = {
        "NSMC": _tsv(DATA / "korean/nsmc/ratings-part-a.txt", "document"),
        "KorNLI": _tsv(DATA / "korean/kornli/xnli.dev.ko.tsv", "sentence1", "sentence2"),
        "KLUE-NLI": [r[k] for r in klue for k in ("premise", "hypothesis")],
        "KorSTS": _tsv(DATA / "korean/korsts/sts-dev.tsv", "sentence1", "sentence2"),
        "KorQuAD q.": [q["question"] for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]],
    }
    return {k: list(dict.fromkeys(v)) for k, v in sets.items()}  # each distinct sentence once


def measure(tok, texts: list[str]) -> tuple[float, float, float]:
    encs = tok.encode_batch(texts, add_special_tokens=False)
    n_tok = sum(len(e.ids) for e in encs)
    n_unk = sum(e.ids.count(tok.unk_token_id) for e in encs)
    norm = tok.backend.normalizer
    same = sum("".join(tok.decode(e.ids).split()) == "".join((norm.normalize_str(t) if norm else t).split())
               for t, e in zip(texts, encs))
    return n_unk / n_tok, same / len(texts), n_tok / len(texts)


def main_() -> int:
    print("machine:", json.dumps(machine()))
    sets = held_out()
    print("held out:", ", ".join(f"{k} {len(v):,}" for k, v in sets.items()))
    print("| tokenizer (vocab 8000, corpora/ko) | train s | " + " | ".join(f"{k} [UNK] / round-trip" for k in sets)
          + " | NSMC tokens/sentence |")
    print("|---|---|" + "---|" * len(sets) + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, flags) in enumerate(RUNS):
            out = Path(tmp) / str(i)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert main(["tokenizer", "train", *flags, "--vocab-size", "8000", "--out", str(out),
                             str(DATA / "corpora/ko")]) == 0
            secs = time.perf_counter() - start
            tok = load_tokenizer(out)
            cells, per_sent = [], 0.0
            for name, texts in sets.items():
                unk, rt, tps = measure(tok, texts)
                cells.append(f"{unk:.2%} / {rt:.1%}")
                per_sent = tps if name == "NSMC" else per_sent
            print(f"| {label} | {secs:.1f} | " + " | ".join(cells) + f" | {per_sent:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main_())
