"""``plmkit embed``: word vectors equal transformers' hidden states; formats; windows; bad input.

The reference for the BERT family is transformers' BertModel on the real MiniLM checkpoint with
transformers' own tokenizer and its ``word_ids()``; for the causal LM, transformers' GPT2Model on
the folder plmkit saved; for ELMo, the model's own layer states.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import plmkit
from plmkit import UsageError
from plmkit.cli import main
from plmkit.embed import Embedder, offsets_path

from test_score import hf_tokenizer, tiny_model

T = pytest.importorskip("transformers", reason="transformers (test extra) is not installed")

TOL = 1e-5
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Tokenization splits unbelievably long words into several pieces.",
    "Korean 한국어 text and English share one vocabulary here.",
    "Hi",
]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    """plmkit's MiniLM, transformers' MiniLM and tokenizer, and transformers' hidden states per sentence."""
    ours = plmkit.from_pretrained(minilm_dir)
    ref = T.BertModel.from_pretrained(minilm_dir).eval()
    tok = T.AutoTokenizer.from_pretrained(minilm_dir)
    rows = []
    for s in SENTENCES:
        words = s.split()
        enc = tok(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            states = ref(**enc, output_hidden_states=True).hidden_states  # 7 × (1, T, 384)
        rows.append((words, enc.word_ids(), [h[0] for h in states]))
    return ours, rows


def first_positions(word_ids, n_words):
    return [word_ids.index(w) for w in range(n_words)]


def mean_over_words(h, word_ids, n_words):
    return torch.stack([h[[p for p, w in enumerate(word_ids) if w == i]].mean(0) for i in range(n_words)])


@pytest.mark.parametrize("layer", [-1, 0, 3])
def test_minilm_first_subtoken_vectors_equal_transformers(minilm, layer):
    model, rows = minilm
    vecs = Embedder(model, layers=layer, pool="first").embed(SENTENCES)
    for (words, word_ids, states), v in zip(rows, vecs):
        ref = states[layer][first_positions(word_ids, len(words))]
        assert v.shape == (len(words), 384) and v.dtype == np.float32
        assert np.abs(v - ref.numpy()).max() <= TOL


def test_minilm_mean_pooling_equals_manual_mean(minilm):
    model, rows = minilm
    vecs = Embedder(model, layers=-1, pool="mean").embed(SENTENCES)
    multi = 0
    for (words, word_ids, states), v in zip(rows, vecs):
        multi += sum(word_ids.count(w) > 1 for w in range(len(words)))
        assert np.abs(v - mean_over_words(states[-1], word_ids, len(words)).numpy()).max() <= TOL
    assert multi >= 3  # the sentences really have words of several sub-tokens


def test_minilm_layer_lists_concatenate_and_mix(minilm):
    model, rows = minilm
    concat = Embedder(model, layers="0,4,-1").embed(SENTENCES)
    uniform = Embedder(model, layers="mix", pool="mean").embed(SENTENCES)
    w = [0, 0, 1, 1, 2, 0, 4]
    weighted = Embedder(model, layers="mix", mix_weights=w).embed(SENTENCES)
    for (words, word_ids, states), c, u, m in zip(rows, concat, uniform, weighted):
        first = first_positions(word_ids, len(words))
        ref = torch.cat([states[0][first], states[4][first], states[6][first]], -1)
        assert c.shape == (len(words), 3 * 384) and np.abs(c - ref.numpy()).max() <= TOL
        ref_u = mean_over_words(torch.stack(states).mean(0), word_ids, len(words))
        assert np.abs(u - ref_u.numpy()).max() <= TOL
        ref_m = sum(wj / sum(w) * states[j][first] for j, wj in enumerate(w))
        assert np.abs(m - ref_m.numpy()).max() <= TOL


def test_minilm_long_sentence_runs_in_windows(minilm, minilm_dir):
    model, _ = minilm
    words = ("plmkit runs sentences longer than the window in overlapping pieces so that no word is lost "
             "and every word keeps context on both sides").split()
    tok = T.AutoTokenizer.from_pretrained(minilm_dir)
    ids = tok(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
    emb = Embedder(model, layers=-1, max_length=16)
    tv = emb.embed_tokens([words])[0]
    assert len(tv.tokens) == len(ids) > 16 and tv.vectors.shape == (len(ids), 384)
    assert emb.embed([words])[0].shape == (len(words), 384)
    # Content windows of 14 tokens, stride 7: the first window owns tokens 0..9 ((0 + 7 + 14) // 2 = 10).
    ref = T.BertModel.from_pretrained(minilm_dir).eval()
    with torch.no_grad():
        h = ref(torch.tensor([[tok.cls_token_id] + ids[:14] + [tok.sep_token_id]])).last_hidden_state[0, 1:15]
    assert np.abs(tv.vectors[:10] - h[:10].numpy()).max() <= TOL
    assert np.abs(tv.vectors[10:14] - h[10:14].numpy()).max() > 1e-3  # taken from the next window instead


def test_causal_lm_vectors_equal_transformers(tmp_path):
    folder = tiny_model("gpt2", tmp_path / "gpt2", "causal-lm")
    sentences = ["the lazy dog sleeps in the garden", "tokenizers split unfamiliar words into pieces tonight"]
    vecs = Embedder(str(folder), layers="-1,1", pool="mean").embed(sentences)
    ref = T.GPT2Model.from_pretrained(folder).eval()
    tok = hf_tokenizer(folder)
    split = 0
    for s, v in zip(sentences, vecs):
        enc = tok(s, return_tensors="pt")
        word_ids = enc.word_ids()  # byte-level pre-tokenizer: one word per space-separated piece here
        n = len(s.split())
        split += len(word_ids) - n
        with torch.no_grad():
            hs = ref(**enc, output_hidden_states=True).hidden_states
        want = torch.cat([mean_over_words(hs[-1][0], word_ids, n), mean_over_words(hs[1][0], word_ids, n)], -1)
        assert np.abs(v - want.numpy()).max() <= TOL
    assert split > 0  # some words really were split into several BPE pieces


def test_elmo_vectors_are_its_layer_states(tmp_path):
    from plmkit.models.elmo import ElmoConfig, ElmoModel

    torch.manual_seed(0)
    model = ElmoModel(ElmoConfig(dropout=0.0), ["<pad>", "<unk>", "<s>", "</s>", "the", "dog"]).eval()
    model.save_pretrained(tmp_path / "elmo")
    sentences = ["the dog barks", "dog"]
    with torch.no_grad():
        states, _ = model.embed_sentences([s.split() for s in sentences])  # (3, B, T, 64)
    for layers, expect in [(-1, lambda st: st[2]), ("0,1", lambda st: torch.cat([st[0], st[1]], -1)),
                           ("mix", lambda st: st.mean(0))]:
        vecs = Embedder(tmp_path / "elmo", layers=layers).embed(sentences)
        for b, (s, v) in enumerate(zip(sentences, vecs)):
            n = len(s.split())
            assert np.abs(v - expect(states[:, b, :n]).numpy()).max() <= TOL
    with pytest.raises(UsageError, match="layer 3 does not exist"):
        Embedder(tmp_path / "elmo", layers=3)


def test_word_the_tokenizer_drops_gets_a_zero_vector_and_a_warning(tmp_path):
    folder = tiny_model("bert", tmp_path / "bert", None)
    with pytest.warns(UserWarning, match="produced no sub-tokens"):
        v = Embedder(folder).embed(["the \x00 dog"])[0]
    assert v.shape[0] == 3 and not v[1].any() and v[0].any() and v[2].any()


# --------------------------------------------------------------------------- CLI and files
@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("bert"), None)


@pytest.fixture
def input_file(tmp_path) -> Path:
    f = tmp_path / "in.txt"
    f.write_text("\n".join(SENTENCES[:2]) + "\n\n" + SENTENCES[3] + "\n", encoding="utf-8")
    return f


@pytest.mark.parametrize("fmt", ["npy", "safetensors", "jsonl"])
def test_cli_writes_each_format_and_it_reads_back(bert_dir, input_file, tmp_path, fmt, capsys):
    out = tmp_path / f"vectors.{fmt}"
    assert main(["embed", "--model", str(bert_dir), "--out", str(out), "--pool", "mean", "--layers", "0,2",
                 str(input_file)]) == 0
    texts = [SENTENCES[0], SENTENCES[1], SENTENCES[3]]
    want = Embedder(bert_dir, layers="0,2", pool="mean").embed(texts)
    assert "wrote" in capsys.readouterr().err
    if fmt == "npy":
        flat, off = np.load(out), np.load(offsets_path(out))
        got = [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    elif fmt == "safetensors":
        with safe_open(str(out), framework="np") as f:
            flat, off = f.get_tensor("vectors"), f.get_tensor("offsets")
            meta = f.metadata()
        assert meta["layers"] == "0,2" and meta["pool"] == "mean" and meta["layer_combination"] == "concatenated"
        got = [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]
    else:
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["words"] for r in rows] == [t.split() for t in texts]
        got = [np.array(r["vectors"], dtype=np.float32) for r in rows]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape == (w.shape[0], 64)
        assert np.array_equal(g, w)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_format_flag_and_stdin(bert_dir, tmp_path, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a b c\n"))
    out = tmp_path / "vectors.bin"
    assert main(["embed", "--model", str(bert_dir), "--out", str(out), "--format", "jsonl", "--layers", "mix", "-"]) == 0
    row = json.loads(out.read_text(encoding="utf-8"))
    assert row["words"] == ["a", "b", "c"] and len(row["vectors"]) == 3


def test_cli_errors_leave_no_output(bert_dir, input_file, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    out = tmp_path / "v.npy"
    cases = [
        (["--model", str(bert_dir), "--layers", "7"], 2, "layer 7 does not exist"),
        (["--model", str(bert_dir), "--layers", "-4"], 2, "valid indices are -3..2"),
        (["--model", str(bert_dir), "--layers", "first"], 2, "--layers"),
        (["--model", str(bert_dir), "--mix-weights", "1,1,1"], 2, "layers is not 'mix'"),
        (["--model", str(bert_dir), "--layers", "mix", "--mix-weights", "1,1"], 2, "one weight per state"),
        (["--model", str(tmp_path / "nope")], 1, "does not exist"),
        (["--model", str(bert_dir), "--max-length", "2"], 2, "too small"),
    ]
    for argv, code, message in cases:
        assert main(["embed", *argv, "--out", str(out), str(input_file)]) == code, argv
        err = " ".join(capsys.readouterr().err.split())
        assert message in err and "Traceback" not in err, (argv, err)
    assert main(["embed", "--model", str(bert_dir), "--out", str(out), str(empty)]) == 1
    assert "holds no text" in " ".join(capsys.readouterr().err.split())
    assert main(["embed", "--model", str(bert_dir), "--out", str(tmp_path / "v.txt"), str(input_file)]) == 2
    assert "cannot tell the output format" in " ".join(capsys.readouterr().err.split())
    assert not any(tmp_path.glob("v*"))
    # an existing output is never overwritten without --overwrite
    out.write_bytes(b"keep me")
    assert main(["embed", "--model", str(bert_dir), "--out", str(out), str(input_file)]) == 2
    assert "already exists" in " ".join(capsys.readouterr().err.split()) and out.read_bytes() == b"keep me"
    # --overwrite replaces only vectors plmkit wrote: the user's file stays, plmkit's own output is replaced
    assert main(["embed", "--model", str(bert_dir), "--out", str(out), "--overwrite", str(input_file)]) == 2
    assert "refuses to replace" in " ".join(capsys.readouterr().err.split()) and out.read_bytes() == b"keep me"
    out.unlink()
    assert main(["embed", "--model", str(bert_dir), "--out", str(out), str(input_file)]) == 0
    assert main(["embed", "--model", str(bert_dir), "--out", str(out), "--overwrite", str(input_file)]) == 0
    assert np.load(out).shape[1] == 32


def test_api_bad_input(bert_dir):
    with pytest.raises(UsageError, match="unknown pooling"):
        Embedder(bert_dir, pool="max")
    with pytest.raises(UsageError, match="list of sentences"):
        Embedder(bert_dir).embed("one string")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Embedder(bert_dir).embed([""])[0].shape == (0, 32)
