"""``plmkit score``: chain-rule likelihood, pseudo-log-likelihood, ELMo, CLI and bad input.

The references are independent: transformers' GPT2LMHeadModel / BertForMaskedLM /
RobertaForMaskedLM opened on the folder plmkit saved, with transformers' tokenizer, one masked
copy at a time for the PLL. The real-data check (PLL prefers grammatical Brown sentences to the
same words scrambled) trains a tiny plmkit MLM in the test and is marked ``slow``.
"""

from __future__ import annotations

import functools
import io
import json
import math
import random
import warnings
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer as FastTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

import plmkit
from plmkit import ModelConfig, PlmModel, UsageError
from plmkit.cli import main
from plmkit.embed import plan_windows
from plmkit.tokenization import Tokenizer

T = pytest.importorskip("transformers", reason="transformers (test extra) is not installed")

TOL = 1e-4
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the stage tonight.",
    "Colorless green ideas sleep furiously, said the linguist.",
    "She sells sea shells by the sea shore every summer.",
    "The stock market fell sharply in early trading today.",
    "Language models assign probabilities to sentences of words.",
    "Tokenizers split unfamiliar words into smaller pieces.",
    "Dogs and cats are playing together in the garden.",
] * 4
SENTENCES = [
    "The lazy dog sleeps.",
    "A guitar is playing the man on stage.",
    "Unfamiliar tokenizers assign pieces to probabilities of every sea shell in the garden.",
    "x",
]
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


# --------------------------------------------------------------------------- tiny models (shared with test_embed)
def bpe_tokenizer(kind: str) -> Tokenizer:
    """A byte-level BPE trained on CORPUS: GPT-2 style (<|endoftext|>) or RoBERTa style (<s> … </s>)."""
    specials = ["<|endoftext|>"] if kind == "gpt2" else ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = FastTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(CORPUS, trainer)
    if kind == "gpt2":
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    else:
        backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    return Tokenizer(backend)


def wordpiece_tokenizer() -> Tokenizer:
    backend = FastTokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        show_progress=False)
    backend.train_from_iterator(CORPUS, trainer)
    backend.post_processor = processors.BertProcessing(("[SEP]", backend.token_to_id("[SEP]")),
                                                       ("[CLS]", backend.token_to_id("[CLS]")))
    return Tokenizer(backend)


def tiny_model(kind: str, folder: Path, task: str | None, positions: int = 64, seed: int = 0) -> Path:
    """A random tiny model of ``kind`` (gpt2 | bert | roberta) saved with its tokenizer."""
    torch.manual_seed(seed)
    if kind == "gpt2":
        tok = bpe_tokenizer("gpt2")
        eos = tok.eos_token_id
        config = ModelConfig(model_type="gpt2", vocab_size=tok.vocab_size, max_position_embeddings=positions,
                             type_vocab_size=0, causal=True, pre_norm=True, hidden_act="gelu_new", layer_norm_eps=1e-5,
                             pad_token_id=None, bos_token_id=eos, eos_token_id=eos, **SIZES)
    elif kind == "roberta":
        tok = bpe_tokenizer("roberta")
        config = ModelConfig(model_type="roberta", vocab_size=tok.vocab_size, max_position_embeddings=positions + 2,
                             position_offset=2, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
                             bos_token_id=0, eos_token_id=2, **SIZES)
    else:
        tok = wordpiece_tokenizer()
        config = ModelConfig(vocab_size=tok.vocab_size, max_position_embeddings=positions, **SIZES)
    model = PlmModel(config, task=task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(folder, tokenizer=tok)
    return folder


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    return tiny_model("gpt2", tmp_path_factory.mktemp("gpt2"), "causal-lm")


@pytest.fixture(scope="module")
def bert_mlm_dir(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("bert"), "masked-lm")


@functools.lru_cache(maxsize=None)
def hf_tokenizer(folder: Path):
    return T.PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))


@functools.lru_cache(maxsize=None)
def hf_model(cls, folder: Path):
    return cls.from_pretrained(folder).eval()


# --------------------------------------------------------------------------- causal LM
def reference_causal(folder: Path, text: str, window: int | None = None, stride: int | None = None) -> list[float]:
    """Per-token log p(x_t | <|endoftext|> x_<t) from transformers' GPT2LMHeadModel.

    Windows (when the text is longer than ``window``): Hugging Face's strided evaluation, starts
    0, stride, 2·stride, … with the last window right-aligned to the end; each window scores the
    tokens not scored before.
    """
    model = hf_model(T.GPT2LMHeadModel, folder)
    tok = hf_tokenizer(folder)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    ids = [eos] + tok(text, add_special_tokens=False)["input_ids"]
    n = len(ids)
    window = window or n
    starts = [0] if n <= window else list(range(0, n - window, stride)) + [n - window]
    out, done = [], 1
    for s in starts:
        e = min(s + window, n)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids[s:e]])).logits[0].float(), -1)  # (L, V)
        for p in range(done, e):
            out.append(float(logp[p - 1 - s, ids[p]]))
        done = e
    return out


def test_causal_log_likelihood_equals_transformers(gpt2_dir):
    result = plmkit.score(str(gpt2_dir), SENTENCES, batch_size=3)
    assert result.method == "causal" and result.conditioned_on == "<|endoftext|>"
    total, count = 0.0, 0
    for text, s in zip(SENTENCES, result.sentences):
        ref = reference_causal(gpt2_dir, text)
        assert s.num_tokens == len(ref) == len(hf_tokenizer(gpt2_dir)(text)["input_ids"])
        assert abs(s.log_likelihood - sum(ref)) <= TOL, (text, s.log_likelihood, sum(ref))
        assert max(abs(a - b) for a, b in zip(s.token_log_probs, ref)) <= TOL
        total, count = total + sum(ref), count + len(ref)
    assert result.num_tokens == count
    assert math.isclose(result.perplexity, math.exp(-total / count), rel_tol=1e-4)


def test_causal_long_text_is_scored_in_strided_windows(gpt2_dir):
    text = " ".join(CORPUS[:4])  # ~50 tokens; windows of 16 with stride 6
    result = plmkit.score(gpt2_dir, [text, SENTENCES[0]], max_length=16, stride=6, batch_size=4)
    ref = reference_causal(gpt2_dir, text, window=16, stride=6)
    assert len(ref) > 40
    s = result.sentences[0]
    assert s.num_tokens == len(ref)
    assert max(abs(a - b) for a, b in zip(s.token_log_probs, ref)) <= TOL
    # a text that fits one window is unaffected by the window length
    assert abs(result.sentences[1].log_likelihood - sum(reference_causal(gpt2_dir, SENTENCES[0]))) <= TOL
    # the model's own position limit (64) windows automatically instead of failing
    long = " ".join(CORPUS[:12])
    auto = plmkit.score(gpt2_dir, [long])
    assert auto.num_tokens == len(hf_tokenizer(gpt2_dir)(long)["input_ids"]) > 64


def test_causal_without_start_token_skips_the_first_token(gpt2_dir):
    result = plmkit.score(gpt2_dir, SENTENCES[:2], add_start_token=False)
    assert result.conditioned_on is None and "not scored" in result.description
    model = hf_model(T.GPT2LMHeadModel, gpt2_dir)
    for text, s in zip(SENTENCES[:2], result.sentences):
        ids = hf_tokenizer(gpt2_dir)(text)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
        ref = sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))
        assert s.num_tokens == len(ids) - 1
        assert abs(s.log_likelihood - ref) <= TOL


def test_loaded_model_and_tokenizer_objects_are_accepted(gpt2_dir):
    model = plmkit.from_pretrained(gpt2_dir)
    model.train()
    a = plmkit.score(model, SENTENCES[:2], tokenizer=plmkit.load_tokenizer(gpt2_dir))
    b = plmkit.score(str(gpt2_dir), SENTENCES[:2])
    assert model.training  # the caller's mode is restored
    assert [s.log_likelihood for s in a] == pytest.approx([s.log_likelihood for s in b], abs=1e-6)


# --------------------------------------------------------------------------- masked LM
def reference_pll(folder: Path, cls, text: str) -> tuple[float, int]:
    """Salazar et al.'s PLL, one masked copy per forward pass, with transformers."""
    model = hf_model(cls, folder)
    tok = hf_tokenizer(folder)
    mask_id = tok.convert_tokens_to_ids("[MASK]" if cls is T.BertForMaskedLM else "<mask>")
    enc = tok(text, return_special_tokens_mask=True)
    ids = enc["input_ids"]
    specials = set(tok.all_special_ids)
    # transformers' tokenizer built from tokenizer.json alone knows no special tokens; mark by id
    specials |= {tok.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]", "<s>", "</s>") if t in tok.get_vocab()}
    total, n = 0.0, 0
    for p, tid in enumerate(ids):
        if tid in specials:
            continue
        masked = list(ids)
        masked[p] = mask_id
        with torch.no_grad():
            logits = model(torch.tensor([masked])).logits[0, p]
        total += float(torch.log_softmax(logits, -1)[tid])
        n += 1
    return total, n


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_pll_batched_equals_one_at_a_time(kind, tmp_path):
    folder = tiny_model(kind, tmp_path / kind, "masked-lm")
    cls = T.BertForMaskedLM if kind == "bert" else T.RobertaForMaskedLM
    result = plmkit.score(folder, SENTENCES, batch_size=7)  # copies of different sentences share batches
    assert result.method == "pll" and result.conditioned_on is None
    for text, s in zip(SENTENCES, result.sentences):
        ref, n = reference_pll(folder, cls, text)
        assert s.num_tokens == n
        assert abs(s.log_likelihood - ref) <= TOL, (kind, text, s.log_likelihood, ref)
    assert "pseudo_perplexity" in result.summary()


def test_pll_long_sentence_scores_every_token_once(bert_mlm_dir):
    text = " ".join(CORPUS[:5])
    full = plmkit.score(bert_mlm_dir, [text], max_length=64)
    short = plmkit.score(bert_mlm_dir, [text], max_length=12)
    n = len(plmkit.load_tokenizer(bert_mlm_dir).tokenize(text))
    assert n > 12 and full.num_tokens == short.num_tokens == n
    assert short.sentences[0].tokens == full.sentences[0].tokens
    assert math.isfinite(short.log_likelihood) and short.log_likelihood != full.log_likelihood


@pytest.mark.parametrize("n,size,stride", [(1, 4, None), (10, 4, 2), (11, 4, 3), (100, 16, 5), (17, 16, 15)])
@pytest.mark.parametrize("centered", [True, False])
def test_windows_cover_every_token_exactly_once(n, size, stride, centered):
    windows = plan_windows(n, size, stride, centered)
    owned = [p for w in windows for p in range(w.own_start, w.own_end)]
    assert owned == list(range(n))
    for w in windows:
        assert 0 <= w.start <= w.own_start <= w.own_end <= w.end <= n and w.end - w.start <= size
        if not centered and w.start > 0:  # causal: at least size - stride tokens of left context
            assert w.own_start - w.start >= size - (stride or size // 2)


# --------------------------------------------------------------------------- ELMo
def test_elmo_forward_and_backward_chain_rule(tmp_path):
    from plmkit.models.elmo import ElmoConfig, ElmoModel

    torch.manual_seed(0)
    vocab = ["<pad>", "<unk>", "<s>", "</s>", "the", "dog", "sleeps", "a", "man", "plays"]
    model = ElmoModel(ElmoConfig(dropout=0.0), vocab).eval()
    model.save_pretrained(tmp_path / "elmo")
    texts = ["the dog sleeps", "a man plays the guitar"]  # "guitar" is out of the vocabulary
    result = plmkit.score(tmp_path / "elmo", texts)
    assert result.method == "elmo" and result.conditioned_on.startswith("<s>")
    for text, s in zip(texts, result.sentences):
        words = text.split()
        ids = [2] + [vocab.index(w) if w in vocab else 1 for w in words] + [3]
        with torch.no_grad():
            out = model(char_ids=model.encode_words([words])["char_ids"])
            logp_f = model.softmax.log_probs(out.forward_hidden[0])  # (T, V): position t predicts t + 1
            logp_b = model.softmax.log_probs(out.backward_hidden[0])  # position t predicts t - 1
        fwd = sum(float(logp_f[t - 1, ids[t]]) for t in range(1, len(ids) - 1))
        bwd = sum(float(logp_b[t + 1, ids[t]]) for t in range(1, len(ids) - 1))
        assert s.num_tokens == len(words) and s.tokens == words
        assert abs(s.log_likelihood - fwd) <= TOL and abs(s.backward_log_likelihood - bwd) <= TOL
    assert result.backward_perplexity is not None


def test_a_word_level_model_plugs_in_with_sequence_log_probs():
    class Uniform(torch.nn.Module):
        """Every word has probability 1/10 in both directions."""

        def sequence_log_probs(self, sentences, batch_size=32):
            return [{"forward": torch.full((len(s),), -math.log(10)), "backward": torch.full((len(s),), -math.log(10)),
                     "conditioned_on": "<S>"} for s in sentences]

    result = plmkit.score(Uniform(), ["a b c", "d e"])
    assert result.method == "elmo" and result.num_tokens == 5
    assert result.perplexity == pytest.approx(10.0) and result.backward_perplexity == pytest.approx(10.0)


# --------------------------------------------------------------------------- CLI
def test_cli_prints_scores_and_perplexity(gpt2_dir, tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_text(SENTENCES[0] + "\n\n" + SENTENCES[1] + "\n", encoding="utf-8")
    assert main(["score", "--model", str(gpt2_dir), str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    ref = plmkit.score(gpt2_dir, SENTENCES[:2])
    rows = [line.split("\t") for line in out if not line.startswith("#")]
    assert [r[2] for r in rows] == SENTENCES[:2]  # blank line skipped
    assert [float(r[0]) for r in rows] == pytest.approx([s.log_likelihood for s in ref], abs=1e-4)
    assert [int(r[1]) for r in rows] == [s.num_tokens for s in ref]
    assert any("conditioned on <|endoftext|>" in line for line in out)
    assert f"perplexity: {ref.perplexity:.4f}" in out[-1]


def test_cli_jsonl_from_stdin(bert_mlm_dir, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(SENTENCES[:3]) + "\n"))
    assert main(["score", "--model", str(bert_mlm_dir), "--jsonl", "--per-token", "--batch-size", "5", "-"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and "summary" in lines[-1]
    ref = plmkit.score(bert_mlm_dir, SENTENCES[:3])
    for obj, s in zip(lines, ref.sentences):
        assert obj["text"] == s.text and obj["num_tokens"] == s.num_tokens == len(obj["tokens"])
        assert obj["log_likelihood"] == pytest.approx(s.log_likelihood, abs=1e-4)
        assert sum(obj["token_log_probs"]) == pytest.approx(obj["log_likelihood"], abs=1e-4)
    summary = lines[-1]["summary"]
    assert summary["method"] == "pll" and summary["pseudo_perplexity"] == pytest.approx(ref.perplexity, rel=1e-4)


def test_cli_errors(gpt2_dir, tmp_path, minilm_dir, capsys):
    text = tmp_path / "in.txt"
    text.write_text("A sentence.\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    cases = [
        (["--model", str(tmp_path / "nope"), str(text)], 1, "does not exist"),
        (["--model", str(gpt2_dir), str(empty)], 1, "holds no text"),
        (["--model", str(gpt2_dir), str(tmp_path / "missing.txt")], 1, "does not exist"),
        (["--model", str(minilm_dir), str(text)], 2, "no language-model head"),
        (["--model", str(gpt2_dir), "--method", "pll", str(text)], 2, "does not fit"),
        (["--model", str(gpt2_dir), "--batch-size", "0", str(text)], 2, "at least 1"),
        (["--model", str(gpt2_dir), "--max-length", "1000", str(text)], 2, "exceeds"),
    ]
    for argv, code, message in cases:
        assert main(["score", *argv]) == code, argv
        err = capsys.readouterr().err
        assert message in " ".join(err.split()), (argv, err)
        assert "Traceback" not in err


def test_inputs_go_through_the_readers(gpt2_dir, tmp_path, capsys):
    import gzip

    (tmp_path / "latin1.txt").write_bytes("first line\nna\xefve caf\xe9\n".encode("latin-1"))
    with gzip.open(tmp_path / "more.txt.gz", "wt", encoding="utf-8") as f:
        f.write("A compressed sentence.\n")
    (tmp_path / "ca01").write_text("The/at dog/nn sleeps/vbz ./.\n" * 5, encoding="utf-8")  # tagged Brown layout
    inputs = [str(tmp_path / n) for n in ("latin1.txt", "more.txt.gz", "ca01")]
    assert main(["score", "--model", str(gpt2_dir), "--jsonl", *inputs]) == 0
    captured = capsys.readouterr()
    texts = [json.loads(line).get("text") for line in captured.out.splitlines()][:-1]
    assert texts == ["first line", "na\ufffdve caf\ufffd", "A compressed sentence."] + ["The dog sleeps ."] * 5
    assert "replaced 2 invalid UTF-8" in captured.err


def test_api_bad_input(gpt2_dir):
    with pytest.raises(UsageError, match="list of texts"):
        plmkit.score(gpt2_dir, "a single string")
    with pytest.raises(UsageError, match="unknown scoring method"):
        plmkit.score(gpt2_dir, ["x"], method="bogus")
    model = PlmModel(ModelConfig(vocab_size=99, **SIZES), task="masked-lm")
    with pytest.raises(UsageError, match="tokenizer"):
        plmkit.score(model, ["x"])  # built in memory: no folder to find its tokenizer in


# --------------------------------------------------------------------------- real data (slow)
def brown_sentences(root: Path) -> dict[str, list[list[str]]]:
    """Brown words per file (the tagged format: ``word/tag`` tokens, one sentence per line)."""
    out = {}
    for f in sorted((root / "corpora" / "brown").glob("c[a-r][0-9][0-9]")):
        sents = []
        for line in f.read_text(encoding="utf-8").splitlines():
            words = [tok.rsplit("/", 1)[0] for tok in line.split()]
            if words:
                sents.append(words)
        out[f.name] = sents
    return out


@pytest.mark.slow
def test_pll_prefers_grammatical_brown_sentences_to_scrambled(data_dir, tmp_path):
    """A tiny plmkit MLM trained 400 steps on Brown prefers real word order on held-out files.

    Held out: every file numbered *9 (ca09, cb09, …: all 15 genres, 10% of the files). The model
    (2 layers, hidden 64, WordPiece 1000) trains on single sentences with BERT's 15% 80/10/10
    masking; it then prefers the real sentence in 127 of 150 pairs (85%; 80-89% after 200-800 steps).
    """
    files = brown_sentences(data_dir)
    assert len(files) == 500
    held_out = {name for name in files if name.endswith("9")}
    train = [" ".join(s) for name, sents in files.items() if name not in held_out for s in sents]
    random.Random(1).shuffle(train)
    train = train[:20000]
    backend = FastTokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(train, trainers.WordPieceTrainer(
        vocab_size=1000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    backend.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tok = Tokenizer(backend)
    L, steps = 24, 400
    config = ModelConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=256, max_position_embeddings=L, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and far faster on a busy machine
    try:
        torch.manual_seed(0)
        model = PlmModel(config, task="masked-lm")
        data = tok(train, max_length=L)
        rows, attention = data["input_ids"], data["attention_mask"]  # (N, L) [CLS] sentence [SEP] [PAD]…
        opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
        g = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(steps):
            pick_rows = torch.randint(len(rows), (64,), generator=g)
            mask = attention[pick_rows]
            width = int(mask.sum(1).max())
            batch, mask = rows[pick_rows, :width], mask[:, :width]
            labels = torch.full_like(batch, -100)
            pick = (torch.rand(batch.shape, generator=g) < 0.15) & (batch >= 5)  # never a special token
            labels[pick] = batch[pick]
            inputs = batch.clone()
            r = torch.rand(batch.shape, generator=g)
            inputs[pick & (r < 0.8)] = 4  # [MASK]
            rand = pick & (r >= 0.8) & (r < 0.9)
            inputs[rand] = torch.randint(5, tok.vocab_size, (int(rand.sum()),), generator=g)
            loss = model(input_ids=inputs, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        folder = tmp_path / "mlm"
        model.save_pretrained(folder, tokenizer=tok)

        rng = random.Random(0)
        held = [s for name in sorted(held_out) for s in files[name] if 6 <= len(s) <= 20]
        sample = rng.sample(held, 150)
        scrambled = []
        for s in sample:
            w = list(s)
            while w == s:
                rng.shuffle(w)
            scrambled.append(w)
        good = plmkit.score(folder, [" ".join(s) for s in sample], batch_size=256)
        bad = plmkit.score(folder, [" ".join(s) for s in scrambled], batch_size=256)
    finally:
        torch.set_num_threads(threads)
    assert all(a.num_tokens == b.num_tokens for a, b in zip(good, bad))  # same words, same sub-tokens
    wins = sum(a.log_likelihood > b.log_likelihood for a, b in zip(good, bad))
    assert wins / len(sample) >= 0.7, (wins, float(loss))
