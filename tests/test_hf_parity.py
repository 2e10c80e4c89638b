"""Parity with Hugging Face transformers, in both directions, for every supported class.

fp32, eval mode, random weights, inputs with padding and both segment ids: every logit, hidden
state and loss must match to 1e-5; loading and saving must lose nothing.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors import safe_open

import plmkit

T = pytest.importorskip("transformers", reason="transformers (test extra) is not installed")

TOL = 1e-5
B, L, V = 3, 12, 99
BASE = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)


def _configs():
    return {
        "BertForPreTraining": T.BertConfig(**BASE),
        "BertForSequenceClassification": T.BertConfig(**BASE, num_labels=3),
        "BertForQuestionAnswering": T.BertConfig(**BASE),
        "BertForMultipleChoice": T.BertConfig(**BASE),
        "BertForTokenClassification": T.BertConfig(**BASE, num_labels=5),
        "RobertaForMaskedLM": T.RobertaConfig(**BASE),
        "RobertaForSequenceClassification": T.RobertaConfig(**BASE, num_labels=3),
        "AlbertForPreTraining": T.AlbertConfig(**BASE, embedding_size=16),
        "AlbertForSequenceClassification": T.AlbertConfig(**BASE, embedding_size=16, num_labels=3),
        "GPT2LMHeadModel": T.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                         bos_token_id=V - 1, eos_token_id=V - 1),
        # ELECTRA: factorized embeddings (E=16 < H=32, embeddings_project), no pooler
        "ElectraForPreTraining": T.ElectraConfig(**BASE, embedding_size=16),
        "ElectraForMaskedLM": T.ElectraConfig(**BASE, embedding_size=16),
        "ElectraForSequenceClassification": T.ElectraConfig(**BASE, embedding_size=16, num_labels=3),
        "ElectraForQuestionAnswering": T.ElectraConfig(**BASE, embedding_size=16),
        "ElectraForMultipleChoice": T.ElectraConfig(**BASE, embedding_size=16),
        "ElectraForTokenClassification": T.ElectraConfig(**BASE, embedding_size=16, num_labels=5),
    }


CLASSES = list(_configs())
LOGIT_NAMES = ("logits", "prediction_logits", "seq_relationship_logits", "sop_logits", "start_logits", "end_logits")


def _inputs(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, L), generator=g)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    types = torch.zeros(B, L, dtype=torch.long)
    types[:, 6:] = 1
    kw: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
    if name.startswith("Roberta"):
        ids[mask == 0] = 1  # RoBERTa's pad id drives its position ids
    elif name.startswith(("Bert", "Albert", "Electra")):
        kw["token_type_ids"] = types
    else:
        ids[mask == 0] = 0
    if "MultipleChoice" in name:
        kw = {k: torch.stack([v, v.roll(1, dims=1)], dim=1) for k, v in kw.items()}  # (B, 2, L)
    return kw


def _labels(name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = inputs["input_ids"]
    if name == "ElectraForPreTraining":  # replaced-token detection: 1 = replaced, on every token
        return {"labels": torch.randint(0, 2, ids.shape, generator=g)}
    if name.endswith("PreTraining") or name.endswith("MaskedLM"):
        labels = torch.full_like(ids, -100)
        pick = torch.rand(ids.shape, generator=g) < 0.3
        labels[pick] = ids[pick]
        out = {"labels": labels}
        if name == "BertForPreTraining":
            out["next_sentence_label"] = torch.tensor([0, 1, 0])
        if name == "AlbertForPreTraining":
            out["sentence_order_label"] = torch.tensor([1, 0, 1])
        return out
    if name.endswith("SequenceClassification"):
        return {"labels": torch.tensor([0, 2, 1])}
    if name.endswith("QuestionAnswering"):
        return {"start_positions": torch.tensor([1, 3, 40]), "end_positions": torch.tensor([2, 5, 41])}
    if name.endswith("MultipleChoice"):
        return {"labels": torch.tensor([1, 0, 1])}
    if name.endswith("TokenClassification"):
        labels = torch.randint(0, 5, ids.shape, generator=g)
        labels[inputs["attention_mask"] == 0] = -100
        return {"labels": labels}
    return {"labels": ids.masked_fill(inputs["attention_mask"] == 0, -100)}


def _compare(name: str, a, b, mlm_mask: torch.Tensor | None = None) -> None:
    """Every logit and hidden state of transformers' output ``a`` equals plmkit's ``b``.

    With MLM labels, plmkit computes MLM logits only at the labelled positions (``mlm_mask``).
    """
    compared = 0
    for key in LOGIT_NAMES:
        ref = getattr(a, key, None)
        if ref is None:
            continue
        ours = getattr(b, key)
        assert ours is not None, f"{name}: plmkit gave no {key}"
        is_mlm = key == "prediction_logits" or (key == "logits" and name.endswith("MaskedLM"))
        if mlm_mask is not None and is_mlm:
            ref = ref[mlm_mask]
        assert ours.shape == ref.shape, f"{name}.{key}: shape {tuple(ours.shape)} vs {tuple(ref.shape)}"
        assert (ours - ref).abs().max().item() <= TOL, f"{name}.{key} differs"
        compared += 1
    assert compared, f"{name}: no logits compared"
    assert len(a.hidden_states) == len(b.hidden_states) == BASE["num_hidden_layers"] + 1
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states)):
        assert (x - y).abs().max().item() <= TOL, f"{name}: hidden state {i} differs"


def _run_both(name, hf_model, ours):
    inputs = _inputs(name)
    labels = _labels(name, inputs)
    is_mlm = name.endswith(("PreTraining", "MaskedLM"))
    with torch.no_grad():
        _compare(name, hf_model(**inputs, output_hidden_states=True), ours(**inputs, output_hidden_states=True))
        la = hf_model(**inputs, **labels, output_hidden_states=True)
        lb = ours(**inputs, **labels, output_hidden_states=True)
    assert lb.loss is not None
    assert abs(la.loss.item() - lb.loss.item()) <= TOL, f"{name}: loss {lb.loss.item()} vs {la.loss.item()}"
    _compare(name, la, lb, mlm_mask=(labels["labels"] != -100) if is_mlm else None)


@pytest.mark.parametrize("name", CLASSES)
def test_transformers_folder_loads_in_plmkit_with_equal_outputs(name, tmp_path):
    torch.manual_seed(0)
    hf_model = getattr(T, name)(_configs()[name]).eval()
    hf_model.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "newly initialised" or "unused tensors" warning allowed
        ours = plmkit.from_pretrained(tmp_path)
    assert not ours.training
    _run_both(name, hf_model, ours)


@pytest.mark.parametrize("name", CLASSES)
def test_transformers_folder_round_trips_bit_for_bit(name, tmp_path):
    torch.manual_seed(0)
    getattr(T, name)(_configs()[name]).save_pretrained(tmp_path / "hf")
    plmkit.from_pretrained(tmp_path / "hf").save_pretrained(tmp_path / "ours")
    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f1, \
            safe_open(str(tmp_path / "ours" / "model.safetensors"), "pt") as f2:
        assert set(f1.keys()) == set(f2.keys())
        for k in f1.keys():
            x, y = f1.get_tensor(k), f2.get_tensor(k)
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), k


def _plmkit_model(name: str) -> plmkit.PlmModel:
    """A plmkit model built from its own config (not loaded), for the plmkit → transformers direction."""
    from plmkit.models.hf import config_from_hf

    hf_cfg = _configs()[name].to_dict()
    config = config_from_hf(hf_cfg)
    task = {"PreTraining": "pretraining", "MaskedLM": "masked-lm", "SequenceClassification": "sequence-classification",
            "QuestionAnswering": "question-answering", "MultipleChoice": "multiple-choice",
            "TokenClassification": "token-classification", "LMHeadModel": "causal-lm"}
    t = next(v for k, v in task.items() if name.endswith(k))
    torch.manual_seed(0)
    model = plmkit.PlmModel(config, task=t)
    with torch.no_grad():  # make every parameter distinctive (LayerNorms and biases start at 1/0)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


@pytest.mark.parametrize("name", CLASSES)
def test_plmkit_folder_loads_in_transformers_with_equal_outputs(name, tmp_path):
    ours = _plmkit_model(name)
    ours.save_pretrained(tmp_path)
    cls = getattr(T, name)
    hf_model, info = cls.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"], info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    assert not info.get("mismatched_keys"), info.get("mismatched_keys")
    hf_model.eval()
    auto = {"PreTraining": T.AutoModelForPreTraining, "MaskedLM": T.AutoModelForMaskedLM,
            "SequenceClassification": T.AutoModelForSequenceClassification,
            "QuestionAnswering": T.AutoModelForQuestionAnswering, "MultipleChoice": T.AutoModelForMultipleChoice,
            "TokenClassification": T.AutoModelForTokenClassification, "LMHeadModel": T.AutoModelForCausalLM}
    auto_cls = next(v for k, v in auto.items() if name.endswith(k))
    assert type(auto_cls.from_pretrained(tmp_path)).__name__ == name  # the architecture is recorded
    _run_both(name, hf_model, ours)
