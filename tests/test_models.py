"""The model family: real MiniLM weights, variants really built, presets, bad input."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

import plmkit
from plmkit import CheckpointError, ConfigError, ModelConfig, PlmModel, UsageError
from plmkit.config import model_config_from_preset

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell very sharply in early trading today.",
    "Korean and English text both go through the same WordPiece vocabulary here, at different lengths.",
]


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=64)
    return ModelConfig(**{**base, **kw})


# --------------------------------------------------------------------------- real weights
def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()
    return (hidden * m).sum(1) / m.sum(1)


def test_minilm_hidden_states_equal_transformers(minilm_dir):
    T = pytest.importorskip("transformers")
    ours = plmkit.from_pretrained(minilm_dir)
    tok = plmkit.load_tokenizer(minilm_dir)
    batch = tok(SENTENCES)
    assert batch["attention_mask"].sum(1).unique().numel() == len(SENTENCES)  # padded; every length differs
    ref = T.BertModel.from_pretrained(minilm_dir).eval()
    with torch.no_grad():
        a = ref(**batch, output_hidden_states=True)
        b = ours(**batch, output_hidden_states=True)
    assert len(b.hidden_states) == 7
    # fp32 rounding differs with the CPU's kernels (AVX2 vs AVX-512/AMX sum in other orders): 1.35e-5 at
    # most on an AMX Xeon, on hidden values up to ~10; a wrong mask, scale or layer is off by > 1e-2.
    for x, y in zip(a.hidden_states, b.hidden_states):
        torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.pooler_output, a.pooler_output, atol=1e-5, rtol=1e-5)


def test_minilm_sentence_embeddings_rank_paraphrase_first(minilm_dir):
    model = plmkit.from_pretrained(minilm_dir)
    tok = plmkit.load_tokenizer(minilm_dir)
    batch = tok(SENTENCES[:3])
    with torch.no_grad():
        emb = torch.nn.functional.normalize(mean_pool(model(**batch).last_hidden_state, batch["attention_mask"]), dim=-1)
    sim_paraphrase = float(emb[0] @ emb[1])
    sim_unrelated = float(emb[0] @ emb[2])
    assert sim_paraphrase > sim_unrelated + 0.3, (sim_paraphrase, sim_unrelated)


def test_minilm_tokenizer_matches_autotokenizer(minilm_dir):
    T = pytest.importorskip("transformers")
    ours = plmkit.load_tokenizer(minilm_dir)
    ref = T.AutoTokenizer.from_pretrained(minilm_dir)
    for s in SENTENCES:
        assert ours.encode(s).ids == ref(s)["input_ids"]
    assert ours.cls_token_id == ref.cls_token_id and ours.mask_token_id == ref.mask_token_id


def test_minilm_with_new_task_head_warns_and_lists_parameters(minilm_dir):
    with pytest.warns(UserWarning, match=r"heads\.classifier\.out\.weight"):
        model = plmkit.from_pretrained(minilm_dir, task="sequence-classification", num_labels=3)
    assert model.task == "sequence-classification"
    assert model.heads["classifier"].out.weight.shape == (3, 384)


def test_minilm_saved_back_keeps_every_tensor(minilm_dir, tmp_path):
    plmkit.from_pretrained(minilm_dir).save_pretrained(tmp_path)
    a, b = load_file(str(minilm_dir / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- variants
def test_albert_layers_share_one_set_of_parameters():
    model = PlmModel(model_config_from_preset("albert-base"))
    assert len(model.body.layers) == 1
    assert all(model.body.layer(i) is model.body.layers[0] for i in range(12))
    bert = PlmModel(model_config_from_preset("bert-base"))
    assert len(bert.body.layers) == 12 and bert.body.layer(0) is not bert.body.layer(1)
    # factorized embeddings: E=128 looked up, projected to H=768
    assert model.body.embeddings.word.weight.shape == (30000, 128)
    assert model.body.embed_proj.weight.shape == (768, 128)


# albert-xxlarge: the paper's table says 235M, but its published config (and the HF checkpoint
# albert-xxlarge-v2) has 222.6M parameters; we check against the released model.
@pytest.mark.parametrize("preset,published", [
    ("albert-base", 12e6), ("bert-base", 110e6), ("roberta-base", 125e6), ("gpt2-small", 124e6),
    ("bert-large", 340e6), ("albert-large", 18e6), ("albert-xxlarge", 223e6), ("roberta-large", 355e6),
])
def test_preset_parameter_counts_match_published_sizes(preset, published):
    config = model_config_from_preset(preset)
    with torch.device("meta"):
        n = PlmModel(config).num_parameters()
    assert abs(n - published) / published < 0.05, f"{preset}: {n / 1e6:.1f}M vs {published / 1e6:.0f}M"


@pytest.mark.parametrize("preset,sizes", [
    ("bert-tiny", (2, 128, 2)), ("bert-mini", (4, 256, 4)), ("bert-small", (4, 512, 8)), ("bert-medium", (8, 512, 8)),
])
def test_compact_bert_presets(preset, sizes):
    c = model_config_from_preset(preset)
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads) == sizes
    assert c.intermediate_size == 4 * c.hidden_size


def test_causal_lm_never_sees_the_future():
    torch.manual_seed(0)
    model = PlmModel(tiny(model_type="gpt2", causal=True, pre_norm=True, type_vocab_size=0, hidden_act="gelu_new",
                          pad_token_id=None), task="causal-lm").eval()
    ids = torch.randint(0, 99, (2, 20))
    for t in (0, 7, 18):
        changed = ids.clone()
        changed[:, t + 1:] = torch.randint(0, 99, changed[:, t + 1:].shape)
        with torch.no_grad():
            a, b = model(ids).logits, model(changed).logits
        assert torch.equal(a[:, : t + 1], b[:, : t + 1])
        assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_bidirectional_encoder_does_see_the_future():
    torch.manual_seed(0)
    model = PlmModel(tiny(), task="masked-lm").eval()
    ids = torch.randint(5, 99, (1, 10))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 99
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits[0, 0], model(changed).logits[0, 0])


def test_roberta_position_ids_count_only_real_tokens():
    model = PlmModel(model_config_from_preset("roberta-tiny", {"vocab_size": 99}))
    ids = torch.tensor([[0, 5, 6, 2, 1, 1]])
    assert model.body.embeddings.position_ids(ids).tolist() == [[2, 3, 4, 5, 1, 1]]
    assert model.config.positions_available == 512


@pytest.mark.parametrize("preset", ["bert-tiny", "roberta-tiny", "albert-tiny", "gpt-tiny"])
def test_document_mask_encodes_each_document_as_if_alone(preset):
    """A packed row of three documents with document_ids gives, for each document, the hidden states of
    that document encoded on its own (positions restart, nothing crosses a document boundary)."""
    torch.manual_seed(0)
    model = PlmModel(model_config_from_preset(preset, {"vocab_size": 99})).eval()
    lengths = (7, 12, 5)
    docs = [torch.randint(5, 99, (n,)) for n in lengths]
    row = torch.cat(docs).unsqueeze(0)  # (1, 24)
    document_ids = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)]).unsqueeze(0)
    with torch.no_grad():
        packed = model(row, document_ids=document_ids).last_hidden_state[0]
        plain = model(row).last_hidden_state[0]
        alone = torch.cat([model(d.unsqueeze(0)).last_hidden_state[0] for d in docs])
    torch.testing.assert_close(packed, alone, atol=2e-5, rtol=1e-4)
    # without the mask the later documents do see (and shift positions past) the earlier ones
    assert not torch.allclose(plain[lengths[0]:], alone[lengths[0]:], atol=1e-3)
    assert model.body.embeddings.position_ids(row, document_ids)[0, lengths[0]:lengths[0] + 3].tolist() == \
        ([2, 3, 4] if preset == "roberta-tiny" else [0, 1, 2])


def test_document_mask_trains_with_dropout_and_checks_its_shape():
    torch.manual_seed(0)
    model = PlmModel(model_config_from_preset("roberta-tiny", {"vocab_size": 99}), task="masked-lm").train()
    ids = torch.randint(5, 99, (2, 16))
    doc = torch.tensor([[0] * 9 + [1] * 7, [0] * 16])
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    loss = model(ids, labels=labels, document_ids=doc).loss
    loss.backward()
    assert torch.isfinite(loss) and model.body.embeddings.word.weight.grad is not None
    with pytest.raises(UsageError, match="document_ids must have the shape of input_ids"):
        model(ids, document_ids=doc[:, :8])


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_fully_padded_row_gives_no_nan(kind):
    extra = dict(model_type="gpt2", causal=True, pre_norm=True, type_vocab_size=0, pad_token_id=0) if kind == "gpt2" else {}
    model = PlmModel(tiny(**extra)).eval()
    ids = torch.randint(1, 99, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1] = 0
    mask[0, :3] = 0  # left padding: under a causal mask the first queries see no key at all
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_hidden_states=True)
    assert all(torch.isfinite(h).all() for h in out.hidden_states)
    model.train()
    out = PlmModel(tiny(**extra), task="sequence-classification")(ids, attention_mask=mask, labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_mlm_logits_only_at_labelled_positions():
    model = PlmModel(tiny(), task="masked-lm").eval()
    ids = torch.randint(5, 99, (2, 10))
    labels = torch.full_like(ids, -100)
    labels[0, 3] = ids[0, 3]
    labels[1, 7] = ids[1, 7]
    with torch.no_grad():
        out = model(ids, labels=labels)
        full = model(ids).logits
    assert out.logits.shape == (2, 99)
    assert torch.allclose(out.logits, full[labels != -100], atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    config = tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    a = PlmModel(config, task="masked-lm")
    b = PlmModel(config, task="masked-lm")
    b.load_state_dict(a.state_dict())
    b.gradient_checkpointing_enable()
    ids = torch.randint(5, 99, (2, 10))
    for m in (a, b):
        m(ids, labels=ids).loss.backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), n


@pytest.mark.parametrize("preset", ["bert-tiny", "roberta-tiny", "albert-tiny", "gpt-tiny"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_classifier_last_layer_only_at_the_read_position_is_exact(preset, checkpointing):
    """A sequence classifier reads one position per row ([CLS], <s>, GPT-2's last non-pad token): its last
    layer computes only that row. Logits, loss and every gradient equal those of the full last layer
    (output_hidden_states=True runs every position), with padding and a causal model included."""
    torch.manual_seed(0)
    config = model_config_from_preset(preset, {"vocab_size": 99, "num_labels": 3, "hidden_dropout_prob": 0.0,
                                               "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0,
                                               "pad_token_id": 1})
    model = PlmModel(config, task="sequence-classification")
    if checkpointing:
        model.gradient_checkpointing_enable()
    ids = torch.randint(5, 99, (3, 11))
    mask = torch.ones_like(ids)
    ids[1, 7:], mask[1, 7:] = 1, 0  # padded rows: GPT-2 reads position 6 there
    ids[2, 4:], mask[2, 4:] = 1, 0
    labels = torch.tensor([0, 2, 1])
    grads = []
    for full in (True, False):
        model.zero_grad()
        out = model(ids, attention_mask=mask, labels=labels, output_hidden_states=full)
        out.loss.backward()
        grads.append((out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                            if p.grad is not None}))
        if not full:
            assert out.last_hidden_state.shape == (3, 1, config.hidden_size)  # the row the head read, alone
    (full_logits, full_grads), (row_logits, row_grads) = grads
    torch.testing.assert_close(row_logits, full_logits, atol=1e-5, rtol=1e-4)
    assert full_grads.keys() == row_grads.keys()
    for n in full_grads:
        torch.testing.assert_close(row_grads[n], full_grads[n], atol=1e-5, rtol=1e-4, msg=n)
    # and the saving is real: the last layer's feed-forward sees B x 1 rows, not B x T
    seen = []
    hook = model.body.layer(config.num_hidden_layers - 1).ffn.fc1.register_forward_hook(
        lambda m, i, o: seen.append(tuple(i[0].shape)))
    model(ids, attention_mask=mask)
    hook.remove()
    assert seen[-1] == (3, 1, config.hidden_size)


def test_multiple_choice_reads_only_the_first_rows_and_matches_the_full_encoder():
    torch.manual_seed(0)
    config = model_config_from_preset("bert-tiny", {"vocab_size": 99, "hidden_dropout_prob": 0.0,
                                                    "attention_probs_dropout_prob": 0.0})
    model = PlmModel(config, task="multiple-choice").eval()
    ids = torch.randint(5, 99, (2, 4, 9))
    with torch.no_grad():
        rows = model(ids).logits
        full = model(ids, output_hidden_states=True).logits
    torch.testing.assert_close(rows, full, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- configs & presets
def test_preset_is_a_starting_point_and_conflicts_are_refused_with_the_reason():
    # As transformers' --config_overrides: a preset's sizes may be overridden (issue 21) ...
    c = model_config_from_preset("bert-base", {"hidden_size": 256, "num_attention_heads": 4})
    assert (c.hidden_size, c.num_attention_heads, c.num_hidden_layers) == (256, 4, 12)
    assert model_config_from_preset("bert-base", {"hidden_size": 768, "vocab_size": 1000}).vocab_size == 1000
    # ... but values that cannot work together are refused, naming what came from where.
    with pytest.raises(ConfigError, match=r"preset bert-base \+ --set model.hidden_size=250: .*divisible.*"
                                          r"preset sets num_attention_heads=12"):
        model_config_from_preset("bert-base", {"hidden_size": 250})


def test_unknown_config_key_and_preset_are_errors():
    with pytest.raises(ConfigError, match="hiden_size"):
        ModelConfig.from_dict({"hiden_size": 3})
    with pytest.raises(ConfigError, match="bert-huge"):
        model_config_from_preset("bert-huge")


# --------------------------------------------------------------------------- bad input
def _saved_tiny(path):
    model = PlmModel(tiny(), task="masked-lm")
    model.save_pretrained(path)
    return model


def test_folder_without_config_json(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        plmkit.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        plmkit.from_pretrained(tmp_path / "nope")


def test_unknown_model_type(tmp_path):
    _saved_tiny(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_type"] = "t5"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown model_type 't5'"):
        plmkit.from_pretrained(tmp_path)


def test_tensor_of_the_wrong_shape(tmp_path):
    _saved_tiny(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["bert.encoder.layer.1.intermediate.dense.weight"] = torch.zeros(36, 32)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"layer\.1\.intermediate\.dense\.weight has shape \(36, 32\).*\(37, 32\)"):
        plmkit.from_pretrained(tmp_path)


def test_truncated_weights_file(tmp_path):
    _saved_tiny(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        plmkit.from_pretrained(tmp_path)


def test_missing_tensor(tmp_path):
    _saved_tiny(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["bert.encoder.layer.0.output.dense.bias"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tensor.*layer.0.output.dense.bias"):
        plmkit.from_pretrained(tmp_path)


def test_input_ids_beyond_the_vocabulary():
    model = PlmModel(tiny())
    with pytest.raises(UsageError, match="input id 99 is outside the model's vocabulary"):
        model(torch.tensor([[1, 2, 99]]))
    with pytest.raises(UsageError, match="input id -1"):
        model(torch.tensor([[1, -1]]))


def test_sequence_longer_than_positions():
    model = PlmModel(tiny())
    with pytest.raises(UsageError, match="sequence length 65 exceeds the model's 64 positions"):
        model(torch.ones(1, 65, dtype=torch.long))


def test_pickle_weights_are_refused(tmp_path):
    _saved_tiny(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="will not unpickle"):
        plmkit.from_pretrained(tmp_path)


def test_plmkit_round_trip_preserves_everything(tmp_path):
    torch.manual_seed(0)
    model = PlmModel(tiny(num_labels=4, id2label={0: "a", 1: "b", 2: "c", 3: "d"}), task="sequence-classification").eval()
    model.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = plmkit.from_pretrained(tmp_path)
    assert again.task == "sequence-classification" and again.config.id2label[3] == "d"
    ids = torch.randint(0, 99, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)


# --------------------------------------------------------------------------- heads are config fields (issue 22 item 6)
def test_head_fields_left_unset_take_what_the_layout_implies():
    bert, roberta, albert, gpt = (model_config_from_preset(p) for p in ("bert-tiny", "roberta-tiny", "albert-tiny",
                                                                       "gpt-tiny"))
    assert (bert.pair_head, bert.classifier_pooling, bert.choice_pooling, bert.mlm_act) == ("nsp", "pooled", "pooled", None)
    assert (roberta.pair_head, roberta.classifier_pooling, roberta.head_act, roberta.mlm_act) == \
        ("none", "first-token", "tanh", "gelu")
    assert (albert.pair_head, albert.classifier_dropout) == ("sop", 0.1)
    assert (gpt.classifier_pooling, gpt.choice_pooling, gpt.has_pooler) == ("last-token", "none", False)
    # the same values whichever way the config is built, and a round trip keeps them
    direct = ModelConfig(model_type="roberta", vocab_size=99)
    assert (direct.pair_head, direct.classifier_pooling, direct.mlm_act) == ("none", "first-token", "gelu")
    assert ModelConfig.from_dict(roberta.to_dict()) == roberta
    with pytest.raises(ConfigError, match="pair_head must be one of nsp, sop, none"):
        tiny(pair_head="next")
    with pytest.raises(ConfigError, match="classifier_pooling"):
        tiny(classifier_pooling="mean")


def test_a_head_is_built_from_its_fields_whatever_the_model_type(tmp_path):
    """A BERT-layout model asked for RoBERTa's classifier (first token, dense + tanh) gets exactly that head, saves
    the choice under "plmkit" (transformers' BertForSequenceClassification has no place for it) and reloads it."""
    torch.manual_seed(0)
    config = tiny(classifier_pooling="first-token", mlm_act="relu", num_labels=3)
    model = PlmModel(config, task="sequence-classification").eval()
    head = model.heads["classifier"]
    assert head.dense is not None and head.style == "first-token" and model.body.pooler is None
    ids = torch.randint(5, 99, (2, 9))
    with torch.no_grad():
        h = model(ids, output_hidden_states=True).hidden_states[-1]
        expected = head.out(torch.tanh(head.dense(h[:, 0])))
        assert torch.allclose(model(ids).logits, expected, atol=1e-6)
    with pytest.warns(UserWarning, match="classifier_pooling"):
        model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["plmkit"]["model"] == {"classifier_pooling": "first-token", "mlm_act": "relu"}
    again = plmkit.from_pretrained(tmp_path)
    assert (again.config.classifier_pooling, again.config.mlm_act) == ("first-token", "relu")
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)
    # the MLM transform's activation is a field too
    mlm = PlmModel(config, task="masked-lm").heads["mlm"]
    x = torch.randn(3, 32)
    assert torch.equal(mlm.act(x), torch.relu(x))


def test_the_pair_head_is_the_one_the_objective_names():
    """Pretraining chooses the sentence-pair head in one place, data.pair: the model's pair_head follows it, and a
    --set model.pair_head that says otherwise is refused with what to set instead."""
    from plmkit.data.objectives import data_config_from_preset
    from plmkit.training.pretrain import build_model_config

    class Tok:  # what build_model_config reads of a tokenizer
        vocab_size, pad_token_id, bos_token_id, eos_token_id, sep_token_id = 99, 0, None, None, 3

    for preset, pair, heads in (("bert-tiny", "nsp", ("mlm", "nsp")), ("bert-tiny", "sop", ("mlm", "sop")),
                                ("bert-tiny", "none", ("mlm",)), ("albert-tiny", "nsp", ("mlm", "nsp")),
                                ("roberta-tiny", "none", ("mlm",))):
        data = data_config_from_preset(preset, {"pair": pair} if pair != "none" else {"pair": "none"})
        config = build_model_config(preset, {}, Tok(), 32, data=data)
        assert config.pair_head == pair
        assert PlmModel(config, task="pretraining").active_heads == heads
    data = data_config_from_preset("bert-tiny")
    assert build_model_config("bert-tiny", {"pair_head": "nsp"}, Tok(), 32, data=data).pair_head == "nsp"
    with pytest.raises(ConfigError, match=r'--set model.pair_head="none" contradicts data.pair="nsp".*set data.pair'):
        build_model_config("bert-tiny", {"pair_head": None}, Tok(), 32, data=data)


def test_one_preset_resolution_serves_every_config_kind():
    from plmkit.config import config_from_preset
    from plmkit.data.objectives import data_config_from_preset
    from plmkit.models.elmo import elmo_config_from_preset

    with pytest.raises(ConfigError, match="preset 'elmo-small' is an ELMo biLM, not a Transformer"):
        model_config_from_preset("elmo-small")
    with pytest.raises(ConfigError, match="preset 'bert-tiny' is a bert Transformer, not ELMo"):
        elmo_config_from_preset("bert-tiny")
    # a conflict names what came from where, in every section
    with pytest.raises(ConfigError, match=r'preset bert-tiny \+ --set data.packing="full-sentences": data.pair=.*'
                                          r'needs packing=.*the preset sets pair="nsp"; change it too with --set data.pair'):
        data_config_from_preset("bert-tiny", {"data.packing": "full-sentences"})
    built = config_from_preset("roberta-tiny", {"masking": "static"}, lambda d, source: (d, source), section="data")
    assert built[0]["masking"] == "static" and built[0]["packing"] == "full-sentences" and built[1] == "preset roberta-tiny"


def test_a_bert_without_the_pair_head_saves_without_a_warning_and_loads_in_transformers(tmp_path):
    """BERT pretrained with data.pair=none (the quick demo) is a BertForMaskedLM: transformers holds all of it, so
    saving it warns of nothing; a head transformers' class for the layout lacks (RoBERTa with NSP) still warns."""
    T = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = PlmModel(tiny(pair_head="none"), task="pretraining")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save_pretrained(tmp_path / "bert")
    assert json.loads((tmp_path / "bert" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    hf, info = T.BertForMaskedLM.from_pretrained(tmp_path / "bert", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ids = torch.randint(5, 99, (2, 7))
    with torch.no_grad():
        ours = plmkit.from_pretrained(tmp_path / "bert", task="masked-lm").eval()(ids).logits
        assert torch.allclose(hf.eval()(ids).logits, ours, atol=1e-5)
    with pytest.warns(UserWarning, match=r"\['pair_head'.*\] differ from what model_type='roberta' implies"):
        PlmModel(tiny(model_type="roberta", pair_head="nsp", pad_token_id=1), task="pretraining").save_pretrained(
            tmp_path / "roberta")
