"""The loss contract (plmkit.models.protocol): a model defined here, following only the contract, trains
through the shared Trainer, and micro-batches are weighted by the counts the model reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from plmkit.models.protocol import LossTerm, TrainableModel
from plmkit.training.trainer import TrainConfig, Trainer

V, T = 20, 8


@dataclass
class ToyOutput:
    loss: torch.Tensor
    loss_terms: list[LossTerm]


class ToyModel(nn.Module):
    """Two objectives: a per-token tag loss over the labelled tokens, and a per-row regression."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(V, 16)
        self.tag = nn.Linear(16, 3)
        self.reg = nn.Linear(16, 1)

    def forward(self, input_ids, tags, target):
        h = self.embed(input_ids)  # (B, T, 16)
        tag_loss = F.cross_entropy(self.tag(h).reshape(-1, 3), tags.reshape(-1), ignore_index=-100)
        row_loss = F.mse_loss(self.reg(h.mean(1)).squeeze(-1), target)
        return ToyOutput(tag_loss + row_loss, [LossTerm("tag_loss", tag_loss, "tagged"),
                                               LossTerm("row_loss", row_loss, "rows")])

    def loss_counts(self, batch):
        return {"tagged": int((batch["tags"] != -100).sum()), "rows": int(batch["input_ids"].shape[0])}

    def prepare_training(self, gradient_checkpointing=False):
        pass

    def save_pretrained(self, path, tokenizer=None, extra=None):
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path / "model.safetensors"))
        (path / "config.json").write_text(json.dumps({"model_type": "toy"}))


class ToyBatches:
    """Batch k of B rows, with unequal numbers of tagged tokens per row (so rows ≠ tokens as weights)."""

    def __init__(self, rows: int, halves: bool = False):
        self.rows, self.halves, self.position = rows, halves, 0

    def _batch(self, k):
        g = torch.Generator().manual_seed(k)
        ids = torch.randint(0, V, (self.rows, T), generator=g)
        tags = ids % 3
        keep = torch.arange(T) < torch.randint(1, T + 1, (self.rows, 1), generator=g)  # 1…T tagged tokens per row
        return {"input_ids": ids, "tags": tags.masked_fill(~keep, -100), "target": ids.float().mean(1) / V}

    def __iter__(self):
        while True:
            b = self._batch(self.position)
            self.position += 1
            if self.halves:
                h = self.rows // 2
                yield {k: v[:h] for k, v in b.items()}
                yield {k: v[h:] for k, v in b.items()}
            else:
                yield b

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = int(state["position"])


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(lr=1e-2, max_steps=3, batch_size=8, log_every=1, progress=False, tensorboard=False,
                                 warmup=0, save_every=0, save_minutes=0), **kw})


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def test_a_model_following_the_contract_trains_and_micro_batches_weigh_by_their_counts(tmp_path):
    assert isinstance(ToyModel(), TrainableModel)
    Trainer(ToyModel(), _cfg(), ToyBatches(8), tmp_path / "one").train()
    Trainer(ToyModel(), _cfg(batch_size=4, grad_accum=2), ToyBatches(8, halves=True), tmp_path / "two").train()
    one, two = _log(tmp_path / "one"), _log(tmp_path / "two")
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        for key in ("loss", "tag_loss", "row_loss"):  # both terms logged, each a mean over its own count
            assert abs(a[key] - b[key]) < 1e-5, (key, a, b)
        assert abs(a["loss"] - (a["tag_loss"] + a["row_loss"])) < 1e-5
    wa = load_file(str(tmp_path / "one/checkpoints/step-0000003/model.safetensors"))
    wb = load_file(str(tmp_path / "two/checkpoints/step-0000003/model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_row_weighting_would_differ_here(tmp_path):
    """The halves carry different numbers of tagged tokens, so the test above distinguishes count weights."""
    src = iter(ToyBatches(8, halves=True))
    first, second = next(src), next(src)
    assert int((first["tags"] != -100).sum()) != int((second["tags"] != -100).sum())


def test_resume_goes_through_the_loader_the_recipe_passes(tmp_path):
    calls = []

    def loader(folder):
        calls.append(Path(folder).name)
        return load_file(str(Path(folder) / "model.safetensors"))

    Trainer(ToyModel(), _cfg(max_steps=4, stop_after=2, save_every=2), ToyBatches(8), tmp_path / "r").train()
    ref = tmp_path / "ref"
    Trainer(ToyModel(), _cfg(max_steps=4), ToyBatches(8), ref).train()
    Trainer(ToyModel(seed=5), _cfg(max_steps=4, save_every=2), ToyBatches(8), tmp_path / "r", resume=True,
            load_weights=loader).train()
    assert calls == ["step-0000002"]
    assert [x["loss"] for x in _log(tmp_path / "r")] == [x["loss"] for x in _log(ref)]


# --------------------------------------------------------------------------- the model protocol
@dataclass
class BagConfig:
    vocab_size: int
    hidden_size: int = 8
    num_hidden_layers: int = 1
    positions_available: int = 32
    causal: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    model_type: str = "bag"


class BagLM(nn.Module):
    """A causal 'LM' that is no plmkit class: each position sees the mean of the embeddings up to it."""

    input_kind = "tokens"
    lm_kind = "causal"

    def __init__(self, config: BagConfig):
        super().__init__()
        torch.manual_seed(0)
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.vocab_size)

    @property
    def num_layer_states(self):
        return 2

    def describe(self):
        return {"model_type": "bag", "task": "causal-lm", "heads": ["lm"]}

    def encode(self, input_ids, attention_mask=None, all_layers=True):
        x = self.embed(input_ids)  # (B, T, H)
        h = x.cumsum(1) / torch.arange(1, x.shape[1] + 1).view(1, -1, 1)
        return (x, h) if all_layers else (h,)

    def lm_log_probs(self, hidden, targets):
        return torch.log_softmax(self.out(hidden).float(), -1).gather(1, targets.unsqueeze(1)).squeeze(1)


def test_score_and_embed_use_only_the_model_protocol():
    import plmkit
    from plmkit.embed import Embedder
    from plmkit.models.protocol import PlmkitModel, TokenModel
    from test_score import bpe_tokenizer

    tok = bpe_tokenizer("gpt2")
    model = BagLM(BagConfig(vocab_size=tok.vocab_size, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
    assert isinstance(model, PlmkitModel) and isinstance(model, TokenModel)
    text = "the cat sat on the mat"
    result = plmkit.score(model, [text], tokenizer=tok)
    assert result.method == "causal" and result.conditioned_on == "<|endoftext|>"
    ids = [tok.eos_token_id] + tok.encode(text, add_special_tokens=False).ids
    with torch.no_grad():
        h = model.encode(torch.tensor([ids]), all_layers=False)[-1][0]
        logp = torch.log_softmax(model.out(h), -1)
    expected = sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))
    assert abs(result.sentences[0].log_likelihood - expected) < 1e-4
    assert result.sentences[0].num_tokens == len(ids) - 1

    vectors = Embedder(model, tokenizer=tok, layers=0, pool="first").embed([text])[0]
    assert vectors.shape == (len(text.split()), 8)
    with torch.no_grad():
        first = model.embed(torch.tensor(tok.encode("the", add_special_tokens=False).ids[:1]))[0]
    assert torch.allclose(torch.from_numpy(vectors[0]), first, atol=1e-6)
