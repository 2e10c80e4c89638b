"""Loading checkpoints saved by other tools' recipes (models.auto.load_transformer)."""

from __future__ import annotations

import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")

import plmkit  # noqa: E402


def _tiny_bert_config():
    return transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=37, max_position_embeddings=64)


def test_a_masked_lm_checkpoint_without_pooler_fine_tunes_a_pooled_classifier(tmp_path):
    """run_mlm.py saves BertForMaskedLM (no pooler); transformers fine-tunes it with a fresh pooler, so must plmkit."""
    torch.manual_seed(0)
    mlm = transformers.BertForMaskedLM(_tiny_bert_config())
    mlm.save_pretrained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = plmkit.from_pretrained(tmp_path, task="sequence-classification", num_labels=3)
    message = " ".join(str(w.message) for w in caught)
    assert "the pooler" in message and "body.pooler.weight" in message
    # the body is the checkpoint's (equal hidden states); the pooler and the classifier are new
    ids = torch.randint(0, 99, (2, 7))
    mask = torch.ones_like(ids)
    mlm.eval()
    with torch.no_grad():
        theirs = mlm.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        ours = model.encode(ids, mask, all_layers=False)[0]
        logits = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    # and the same checkpoint with a pooler loads it, with no warning about it
    base = transformers.BertForPreTraining(_tiny_bert_config())
    base.save_pretrained(tmp_path / "with-pooler")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plmkit.from_pretrained(tmp_path / "with-pooler", task="sequence-classification", num_labels=3)
    assert not any("the pooler" in str(w.message) for w in caught)
