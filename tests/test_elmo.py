"""ELMo (plmkit.models.elmo) and the downstream BiLSTM tagger / classifier (plmkit.models.tagger)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import plmkit
from plmkit.config import get_preset, model_config_from_preset
from plmkit.errors import CheckpointError, ConfigError, UsageError
from plmkit.models.elmo import (
    Elmo, ElmoConfig, ElmoModel, ScalarMix, add_sentence_boundaries, batch_to_char_ids, elmo_config_from_preset,
    load_elmo, remove_sentence_boundaries, word_to_char_ids,
)
from plmkit.models.tagger import (
    BiLstmClassifier, BiLstmTagger, TaggerConfig, build_label_vocab, build_word_vocab, load_tagger, tagger_batch,
)

pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported"),
              pytest.mark.usefixtures("one_thread")]


SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
WORDS = "the a cat dog sat ran on in mat park . big small red".split()
VOCAB = SPECIALS + WORDS


def tiny(**kw) -> ElmoModel:
    torch.manual_seed(kw.pop("seed", 0))
    vocab = kw.pop("vocab", VOCAB)
    return ElmoModel(ElmoConfig(dropout=0.0, **kw), vocab).eval()


def word_tokenizer(vocab=VOCAB) -> plmkit.Tokenizer:
    from tokenizers import Tokenizer as Fast
    from tokenizers import models, pre_tokenizers

    backend = Fast(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return plmkit.Tokenizer(backend, {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>",
                                      "eos_token": "</s>"})


# ----------------------------------------------------------------------------- characters
def test_char_ids_match_allennlp_reference():
    # Expected values copied from allennlp's tests/data/token_indexers/elmo_indexer_test.py.
    pad = [261] * 50
    assert word_to_char_ids("Second") == [259, 84, 102, 100, 112, 111, 101, 260] + pad[8:]
    assert word_to_char_ids(".") == [259, 47, 260] + pad[3:]
    assert word_to_char_ids(chr(256) + "t") == [259, 197, 129, 117, 260] + pad[5:]
    m = tiny()
    assert m.vocab_chars[VOCAB.index("<s>")].tolist() == [259, 257, 260] + pad[3:]  # allennlp's <S>
    assert m.vocab_chars[VOCAB.index("</s>")].tolist() == [259, 258, 260] + pad[3:]  # allennlp's </S>
    assert m.vocab_chars[VOCAB.index("<pad>")].tolist() == [0] * 50
    long = word_to_char_ids("x" * 60)
    assert len(long) == 50 and long[1:49] == [ord("x") + 1] * 48 and long[49] == 260
    ids = batch_to_char_ids([["Second", "."], ["a"]])
    assert ids.shape == (2, 2, 50) and ids[1, 1].tolist() == [0] * 50


def test_sentence_boundaries_round_trip():
    x = torch.arange(1, 7).view(2, 3, 1).float()
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    wrapped, m2 = add_sentence_boundaries(x, mask, torch.tensor([-1.0]), torch.tensor([-2.0]))
    assert wrapped[:, :, 0].tolist() == [[-1, 1, 2, 3, -2], [-1, 4, -2, 0, 0]]
    assert m2.long().tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    back, m3 = remove_sentence_boundaries(wrapped, m2)
    assert torch.equal(back, x * mask.unsqueeze(-1)) and torch.equal(m3, mask.bool())


# ----------------------------------------------------------------------------- model
def test_shapes_and_losses():
    m = tiny()
    B, T, P, L = 3, 7, m.config.projection_dim, m.config.num_layers
    ids = torch.randint(4, len(VOCAB), (B, T))
    out = m(input_ids=ids, labels=ids, output_hidden_states=True)
    assert out.loss.shape == () and out.forward_loss.shape == () and out.backward_loss.shape == ()
    assert torch.allclose(out.loss, (out.forward_loss + out.backward_loss) / 2)
    # An untrained model is close to uniform over the vocabulary.
    assert abs(out.forward_loss.item() - math.log(len(VOCAB))) < 0.5
    states = m.layer_states(input_ids=ids)
    assert states.shape == (L + 1, B, T, 2 * P)
    assert torch.allclose(states, out.hidden_states)
    assert torch.equal(states[0, ..., :P], states[0, ..., P:])  # layer 0 = [x; x]
    assert out.forward_hidden.shape == out.backward_hidden.shape == (B, T, P)
    # The word-id path and the character path spell words identically.
    chars = m.vocab_chars[ids].long()
    assert torch.allclose(m.layer_states(char_ids=chars), states, atol=1e-6)
    with pytest.raises(UsageError):
        m()
    with pytest.raises(UsageError):
        m(input_ids=ids, token_type_ids=ids)


def test_token_log_probs_are_the_chain_rule_of_the_loss():
    m = tiny()
    ids = torch.randint(4, len(VOCAB), (2, 6))
    out = m(input_ids=ids, labels=ids)
    fwd, bwd = m.token_log_probs(input_ids=ids)
    assert torch.allclose(-fwd[:, 1:].mean(), out.forward_loss, atol=1e-5)
    assert torch.allclose(-bwd[:, :-1].mean(), out.backward_loss, atol=1e-5)
    assert (fwd[:, 0] == 0).all() and (bwd[:, -1] == 0).all()
    # New text: spelled by characters, scored against word ids (OOV → <unk>).
    batch = m.encode_words([["the", "zebra", "sat"], ["a"]])
    assert batch["input_ids"][0].tolist() == [2, VOCAB.index("the"), 1, VOCAB.index("sat"), 3]
    f2, b2 = m.token_log_probs(char_ids=batch["char_ids"], attention_mask=batch["attention_mask"],
                               targets=batch["input_ids"])
    assert (f2[1, 3:] == 0).all() and (f2[1, 1:3] < 0).all() and (b2[1, :2] < 0).all() and b2[1, 2] == 0


@pytest.mark.parametrize("path", ["input_ids", "char_ids"])
def test_forward_never_sees_future_backward_never_sees_past(path):
    m = tiny()
    P, t = m.config.projection_dim, 4
    ids = torch.randint(4, len(VOCAB), (2, 10))
    later, earlier = ids.clone(), ids.clone()
    later[:, t + 1:] = (later[:, t + 1:] - 4 + 1) % len(WORDS) + 4  # every word after t changes
    earlier[:, :t] = (earlier[:, :t] - 4 + 1) % len(WORDS) + 4  # every word before t changes

    def states(x):
        return m.layer_states(**({"input_ids": x} if path == "input_ids" else {"char_ids": m.vocab_chars[x].long()}))

    base, s_later, s_earlier = states(ids), states(later), states(earlier)
    fwd = slice(0, P)
    bwd = slice(P, 2 * P)
    for layer in (1, 2):
        # (equal up to float rounding: the batch's distinct words are spelled in one batched CNN call)
        assert torch.allclose(base[layer, :, : t + 1, fwd], s_later[layer, :, : t + 1, fwd], atol=1e-6)
        assert not torch.allclose(base[layer, :, t + 1, fwd], s_later[layer, :, t + 1, fwd])
        assert not torch.allclose(base[layer, :, t, bwd], s_later[layer, :, t, bwd])  # backward does see it
        assert torch.allclose(base[layer, :, t:, bwd], s_earlier[layer, :, t:, bwd], atol=1e-6)
        assert not torch.allclose(base[layer, :, t - 1, bwd], s_earlier[layer, :, t - 1, bwd])
        assert not torch.allclose(base[layer, :, t, fwd], s_earlier[layer, :, t, fwd])


def test_layers_are_lstmp_with_a_residual_connection():
    m = tiny()
    P = m.config.projection_dim
    states = m.layer_states(input_ids=torch.randint(4, len(VOCAB), (2, 6)))  # (3, B, T, 2P)
    x, h1 = states[0, ..., :P], states[1]
    # Layer 1 of each LM reads the token encoding (the backward LM from the right).
    assert torch.allclose(h1[..., :P], m.forward_layers[0](x)[0], atol=1e-6)
    assert torch.allclose(h1[..., P:], m.backward_layers[0](x.flip(1))[0].flip(1), atol=1e-6)
    # Layer 2 = LSTMP(layer 1) + layer 1 (the paper's residual connection).
    f2 = m.forward_layers[1](h1[..., :P])[0] + h1[..., :P]
    b2 = (m.backward_layers[1](h1[..., P:].flip(1))[0] + h1[..., P:].flip(1)).flip(1)
    assert torch.allclose(states[2], torch.cat([f2, b2], -1), atol=1e-6)
    assert m.forward_layers[0].proj_size == P and m.forward_layers[0].hidden_size == m.config.lstm_dim


def test_padded_rows_equal_unpadded():
    m = tiny()
    sents = [["the", "big", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran"]]
    batch = m.encode_words(sents)
    together = m.layer_states(char_ids=batch["char_ids"], attention_mask=batch["attention_mask"])
    alone = m.encode_words(sents[1:])
    single = m.layer_states(char_ids=alone["char_ids"], attention_mask=alone["attention_mask"])
    n = single.shape[2]
    assert torch.allclose(together[:, 1, :n], single[:, 0], atol=1e-6)
    assert (together[:, 1, n:] == 0).all()
    emb, mask = m.embed_sentences(sents)
    assert emb.shape[:3] == (3, 2, 7) and mask.sum(1).tolist() == [7, 3]
    assert torch.allclose(emb[:, 1, :3], single[:, 0, 1:4], atol=1e-6)  # markers removed


def test_scalar_mix_weights_and_values():
    torch.manual_seed(0)
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.scalars.copy_(torch.tensor([0.3, -1.2, 2.0]))
        mix.gamma.fill_(1.7)
    w = mix.weights()
    assert torch.allclose(w.sum(), torch.tensor(1.0))
    layers = torch.randn(3, 2, 5, 4)
    expected = 1.7 * sum(w[j] * layers[j] for j in range(3))
    assert torch.allclose(mix(layers), expected, atol=1e-6)
    assert torch.allclose(mix(list(layers)), expected, atol=1e-6)

    # Layer norm: allennlp normalises each layer by the mean / variance of its unmasked elements.
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    ln = ScalarMix(3, layer_norm=True)
    with torch.no_grad():
        ln.scalars.copy_(mix.scalars)
    real = mask.bool()
    expected = 0
    for j in range(3):
        vals = layers[j][real]  # (N, D) the unmasked vectors
        expected = expected + w[j] * (layers[j] - vals.mean()) / vals.std(unbiased=False)
    got = ln(layers, mask)
    assert torch.allclose(got[real], expected[real], atol=1e-5)
    changed = layers.clone()
    changed[:, 0, 3:] = 100.0  # padded values do not leak into real positions
    assert torch.allclose(ln(changed, mask)[real], got[real], atol=1e-5)
    with pytest.raises(UsageError):
        ln(layers)


def test_save_load_round_trip(tmp_path):
    m = tiny(seed=3)
    tok = word_tokenizer()
    folder = m.save_pretrained(tmp_path / "elmo", tokenizer=tok)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "elmo" and cfg["vocab_size"] == len(VOCAB) and cfg["lstm_dim"] == 64
    assert not list(folder.glob("*.bin")) and (folder / "tokenizer.json").exists()
    for loaded in (load_elmo(folder), plmkit.from_pretrained(folder)):
        assert isinstance(loaded, ElmoModel) and loaded.vocab == VOCAB
        batch = m.encode_words([["the", "cat", "sat"], ["a", "zebra"]])
        assert torch.equal(loaded.layer_states(char_ids=batch["char_ids"], attention_mask=batch["attention_mask"]),
                           m.layer_states(char_ids=batch["char_ids"], attention_mask=batch["attention_mask"]))
        ids = batch["input_ids"][:1]
        assert torch.equal(loaded(input_ids=ids, labels=ids).loss, m(input_ids=ids, labels=ids).loss)
    assert plmkit.load_tokenizer(folder).token_to_id("cat") == VOCAB.index("cat")
    with pytest.raises(UsageError):  # a tokenizer that does not match the model's words
        m.save_pretrained(tmp_path / "other", tokenizer=word_tokenizer(VOCAB[::-1]))


def test_cli_info_and_presets_list_elmo(tmp_path, capsys):
    from plmkit.cli import main

    folder = tiny().save_pretrained(tmp_path / "elmo")
    assert main(["info", str(folder)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_type"] == "elmo" and info["parameters"] == tiny().num_parameters()
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert "elmo-original" in listing and "elmo-small" in listing


def test_bad_folders_raise_checkpoint_errors(tmp_path):
    m = tiny()
    good = m.save_pretrained(tmp_path / "good")
    # No vocabulary.
    f = m.save_pretrained(tmp_path / "novocab")
    (f / "elmo_vocab.txt").unlink()
    with pytest.raises(CheckpointError, match="elmo_vocab.txt"):
        load_elmo(f)
    # Vocabulary of another size.
    f = m.save_pretrained(tmp_path / "badvocab")
    (f / "elmo_vocab.txt").write_text("a\nb\n")
    with pytest.raises(CheckpointError, match="vocab_size"):
        load_elmo(f)
    # Unknown config key.
    f = m.save_pretrained(tmp_path / "badkey")
    cfg = json.loads((f / "config.json").read_text())
    cfg["lstm_cells"] = 9
    (f / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="lstm_cells"):
        load_elmo(f)
    # Weights of another size.
    f = tiny(lstm_dim=48).save_pretrained(tmp_path / "mixed")
    (f / "config.json").write_text((good / "config.json").read_text())
    with pytest.raises(CheckpointError, match="shape"):
        load_elmo(f)
    # Truncated weights.
    f = m.save_pretrained(tmp_path / "trunc")
    data = (f / "model.safetensors").read_bytes()
    (f / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_elmo(f)
    with pytest.raises(CheckpointError):
        load_elmo(tmp_path / "missing")


# ----------------------------------------------------------------------------- training
TEXT = "<s> the big cat sat on the mat . </s> <s> a small dog ran in the park . </s>".split()


def _train(m: ElmoModel, steps: int, lr: float = 1e-2) -> tuple[float, float, float, float]:
    ids = torch.tensor([VOCAB.index(w) for w in TEXT * 2]).view(2, -1)  # (2, 36): a tiny repeated text
    m.eval()
    with torch.no_grad():
        before = m(input_ids=ids, labels=ids)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    m.train()
    for _ in range(steps):
        loss = m(**{"input_ids": ids, "labels": ids}).loss  # the trainer's call
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        after = m(input_ids=ids, labels=ids)
    return before.forward_loss.item(), after.forward_loss.item(), before.backward_loss.item(), after.backward_loss.item()


def test_training_reduces_loss_full_softmax():
    m = tiny()
    assert m.config.softmax == "full"  # auto → full for a small vocabulary
    f0, f1, b0, b1 = _train(m, 20)
    assert f1 < 0.5 * f0 and b1 < 0.5 * b0, (f0, f1, b0, b1)


def test_adaptive_softmax_is_normalised_and_learns():
    m = tiny(softmax="adaptive", adaptive_cutoffs=[6, 12])
    assert m.softmax.kind == "adaptive"
    h = torch.randn(5, m.config.projection_dim)
    logp = m.softmax.log_probs(h)
    assert logp.shape == (5, len(VOCAB))
    assert torch.allclose(logp.exp().sum(-1), torch.ones(5), atol=1e-5)
    tgt = torch.tensor([0, 3, 7, 12, 17])
    assert torch.allclose(m.softmax.target_log_probs(h, tgt), logp.gather(1, tgt[:, None]).squeeze(1), atol=1e-5)
    assert torch.allclose(m.softmax.loss(h, tgt), -logp.gather(1, tgt[:, None]).mean(), atol=1e-5)
    ids = torch.randint(0, len(VOCAB), (2, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the trainer's --bf16
        assert torch.isfinite(m(input_ids=ids, labels=ids).loss)
    f0, f1, b0, b1 = _train(m, 20)
    assert f1 < 0.6 * f0 and b1 < 0.6 * b0, (f0, f1, b0, b1)


def test_sampled_softmax_trains_and_evaluates_exactly():
    m = tiny(softmax="sampled", num_samples=8)
    h = torch.randn(6, m.config.projection_dim)
    tgt = torch.tensor([0, 3, 7, 12, 17, 5])
    m.softmax.eval()  # evaluation uses the exact, full softmax
    full = torch.nn.functional.cross_entropy(h @ m.softmax.weight.T + m.softmax.bias, tgt)
    assert torch.allclose(m.softmax.loss(h, tgt), full, atol=1e-5)
    m.softmax.train()
    torch.manual_seed(1)
    sampled = m.softmax.loss(h.requires_grad_(), tgt)
    assert torch.isfinite(sampled) and not torch.allclose(sampled, full)
    sampled.backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()
    f0, f1, b0, b1 = _train(m, 40)
    assert f1 < 0.6 * f0 and b1 < 0.6 * b0, (f0, f1, b0, b1)


# ----------------------------------------------------------------------------- presets
def test_presets_registered_and_published_size():
    assert get_preset("elmo-small")["model"]["model_type"] == "elmo"
    assert get_preset("elmo-original")["data"]["objective"] == "bilm"
    small = elmo_config_from_preset("elmo-small", {"dropout": 0.2})
    assert small.dropout == 0.2 and small.lstm_dim == 512
    original = elmo_config_from_preset("elmo-original")
    assert (original.lstm_dim, original.projection_dim, original.num_filters, original.num_highway) == (4096, 512, 2048, 2)
    # a preset is a starting point (issue 21); values that cannot work together are refused with the reason
    assert elmo_config_from_preset("elmo-original", {"lstm_dim": 1024}).lstm_dim == 1024
    with pytest.raises(ConfigError, match="lstm_dim=256: .*projection_dim"):
        elmo_config_from_preset("elmo-original", {"lstm_dim": 256})
    with pytest.raises(ConfigError):
        elmo_config_from_preset("bert-tiny")
    with pytest.raises(ConfigError):
        model_config_from_preset("elmo-small")
    with pytest.raises(ConfigError, match="projection_dim"):
        ElmoConfig(projection_dim=64, lstm_dim=64)
    with torch.device("meta"):
        big = ElmoModel(original, VOCAB)
    # allennlp's model table: the original ELMo has 93.6 M parameters (softmax excluded).
    assert abs(big.num_parameters(exclude_embeddings=True) / 1e6 - 93.6) < 0.1


# ----------------------------------------------------------------------------- downstream
# A toy tagging task where the tag of "saw"/"run" depends on the previous word (noun after a
# determiner, verb after a pronoun).
TAGGED = [
    ("the saw is big", "DET NOUN VERB ADJ"),
    ("they saw the dog", "PRON VERB DET NOUN"),
    ("the run is long", "DET NOUN VERB ADJ"),
    ("we run in the park", "PRON VERB ADP DET NOUN"),
    ("a dog is small", "DET NOUN VERB ADJ"),
    ("they run", "PRON VERB"),
]


def _toy_tagging():
    sents = [s.split() for s, _ in TAGGED]
    tags = [t.split() for _, t in TAGGED]
    return sents, tags


def test_tagger_batch_format():
    sents, tags = _toy_tagging()
    wv, lv = build_word_vocab(sents), build_label_vocab(tags)
    assert wv["<pad>"] == 0 and wv["<unk>"] == 1 and wv["the"] == 2  # most frequent first
    batch = tagger_batch(sents[:2] + [["unseen", "dog"]], tags[:2] + [["NOUN", "NOUN"]], wv, lv, elmo=50)
    assert batch["input_ids"].shape == (3, 4) and batch["labels"].shape == (3, 4)
    assert batch["input_ids"][2, 0] == 1 and batch["attention_mask"][2].tolist() == [1, 1, 0, 0]
    assert batch["labels"][2, 2:].tolist() == [-100, -100]
    assert torch.equal(batch["char_ids"], batch_to_char_ids(sents[:2] + [["unseen", "dog"]]))
    cls = tagger_batch(sents[:2], ["pos", "neg"], wv, {"neg": 0, "pos": 1})
    assert cls["labels"].tolist() == [1, 0] and "char_ids" not in cls
    with pytest.raises(UsageError):
        tagger_batch(sents[:1], [["DET"]], wv, lv)


def _accuracy(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.argmax(-1)
    real = batch["labels"] != -100
    return (pred[real] == batch["labels"][real]).float().mean().item()


def _fit(model, batch, steps: int = 60) -> tuple[float, float]:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    first = last = None
    for _ in range(steps):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
    return first, last


@pytest.mark.parametrize("use_elmo", [False, True])
def test_tagger_learns_toy_set(use_elmo, tmp_path):
    torch.manual_seed(0)
    sents, tags = _toy_tagging()
    wv, lv = build_word_vocab(sents), build_label_vocab(tags)
    elmo = Elmo(tiny(), dropout=0.0) if use_elmo else None
    cfg = TaggerConfig(vocab_size=len(wv), num_labels=len(lv), embedding_dim=16, hidden_size=16, dropout=0.0)
    model = BiLstmTagger(cfg, elmo=elmo, word_vocab=wv, label_vocab=lv)
    batch = tagger_batch(sents, tags, wv, lv, elmo=elmo)
    lm_before = {k: v.clone() for k, v in elmo.lm.state_dict().items()} if elmo else None
    first, last = _fit(model, batch)
    assert last < 0.1 * first
    assert _accuracy(model, batch) == 1.0
    if use_elmo:
        assert all(torch.equal(v, elmo.lm.state_dict()[k]) for k, v in lm_before.items())  # frozen biLM
        assert not elmo.lm.training  # never in dropout mode
        assert elmo.mixes[0].scalars.grad is not None and elmo.mixes[0].gamma.grad is not None
        with pytest.raises(UsageError, match="char_ids"):
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    # Save / load: same predictions from the folder alone (the biLM travels in elmo/).
    folder = model.save_pretrained(tmp_path / "tagger")
    assert (folder / "elmo" / "config.json").exists() == use_elmo
    loaded = load_tagger(folder)
    new = [["they", "saw", "a", "zebra"]]
    with torch.no_grad():
        assert torch.equal(loaded(**loaded.batch(new)).logits, model.eval()(**model.batch(new)).logits)


@pytest.mark.parametrize("use_elmo", [False, True])
def test_classifier_learns_toy_set(use_elmo):
    torch.manual_seed(0)
    sents = [s.split() for s in ("the cat is good", "a good dog", "the park is bad", "a bad mat", "good", "bad cat")]
    labels = ["pos", "pos", "neg", "neg", "pos", "neg"]
    wv, lv = build_word_vocab(sents), build_label_vocab(labels)
    elmo = Elmo(tiny(), layer_norm=True, dropout=0.0) if use_elmo else None
    cfg = TaggerConfig(vocab_size=len(wv), num_labels=2, embedding_dim=8, hidden_size=8, dropout=0.0, pooling="max")
    model = BiLstmClassifier(cfg, elmo=elmo)
    batch = tagger_batch(sents, labels, wv, lv, elmo=elmo)
    first, last = _fit(model, batch, steps=40)
    assert last < 0.1 * first
    model.eval()
    with torch.no_grad():
        assert model(**batch).logits.argmax(-1).tolist() == batch["labels"].tolist()
    mean = BiLstmClassifier(TaggerConfig(vocab_size=len(wv), num_labels=2, embedding_dim=8, hidden_size=8,
                                         pooling="mean"), elmo=elmo)
    assert mean(**batch).logits.shape == (6, 2)
