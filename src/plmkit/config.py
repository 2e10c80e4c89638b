"""Configuration: the model config, named presets, and ``key=value`` overrides.

One :class:`ModelConfig` describes every Transformer in the family. BERT is the default; RoBERTa,
ALBERT and the GPT-style causal LM are a handful of fields that each name a change a paper made
(``embedding_size`` and ``share_layers`` from ALBERT, ``position_offset`` and ``type_vocab_size=1``
from RoBERTa, ``causal`` and ``pre_norm`` from GPT-2). Presets are a name → overrides table (as in
minGPT's ``model_type`` and fairseq's named architectures): asking for a preset *and* a conflicting
explicit size is an error rather than a silent surprise.

Presets carry three sections: ``model`` (a :class:`ModelConfig`), and ``data`` / ``train`` that
the pretraining objective and trainer read (their dataclasses live with that code).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError

MODEL_TYPES = ("bert", "roberta", "albert", "gpt2")
ACTIVATIONS = ("gelu", "gelu_new", "relu", "gelu_pytorch_tanh", "gelu_fast")


@dataclass
class ModelConfig:
    """The shape and variant switches of a Transformer encoder or causal LM.

    Defaults are a tiny BERT that trains on a laptop CPU; presets give the published sizes.
    """

    # Which published layout the weights and config.json follow (parameter names, defaults).
    model_type: str = "bert"
    # BERT's uncased WordPiece vocabulary; set from the tokenizer when pretraining.
    vocab_size: int = 30522
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    # 4 × hidden, as in every BERT/GPT-2 size.
    intermediate_size: int = 512
    # BERT uses exact (erf) GELU; GPT-2 and ALBERT use the tanh approximation ("gelu_new").
    hidden_act: str = "gelu"
    # 0.1 as in BERT; ALBERT found dropout hurts at its scale and uses 0.
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    # BERT: 512 positions. RoBERTa reserves pad_token_id + 1 slots in front (514 in HF layout).
    max_position_embeddings: int = 512
    # Segment (A/B) embeddings: 2 for BERT/ALBERT (NSP/SOP pairs), 1 for RoBERTa (no NSP), 0 = none (GPT-2).
    type_vocab_size: int = 2
    # BERT's TF-ported epsilon; RoBERTa/GPT-2 use 1e-5.
    layer_norm_eps: float = 1e-12
    # Truncated-normal-ish init std from BERT/GPT-2.
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    # ALBERT: factorized embeddings of size E < hidden, projected E → H. None = hidden_size.
    embedding_size: int | None = None
    # ALBERT: every layer reuses one set of weights (cross-layer parameter sharing).
    share_layers: bool = False
    # GPT-2: each position attends only to itself and the past.
    causal: bool = False
    # GPT-2: LayerNorm before attention / FFN plus a final LayerNorm (BERT is post-LN).
    pre_norm: bool = False
    # RoBERTa: position ids count only non-pad tokens and start at pad_token_id + 1.
    position_offset: int = 0
    # Task heads.
    num_labels: int = 2
    problem_type: str | None = None  # regression | single_label_classification | multi_label_classification
    id2label: dict[int, str] | None = None
    classifier_dropout: float | None = None
    # Keys of a Hugging Face config.json that plmkit does not model; written back unchanged.
    hf_extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- derived values
    @property
    def embed_dim(self) -> int:
        """Width of the token embeddings (E); differs from hidden_size only for ALBERT."""
        return self.embedding_size or self.hidden_size

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def positions_available(self) -> int:
        """The longest sequence the position table can hold."""
        return self.max_position_embeddings - self.position_offset

    def validate(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ConfigError(
                f"unknown model_type {self.model_type!r}; plmkit's Transformer supports "
                f"{', '.join(MODEL_TYPES)} (ELMo has its own 'elmo' config)"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"unknown hidden_act {self.hidden_act!r}; use one of {', '.join(ACTIVATIONS)}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if bool(self.pre_norm) != (self.model_type == "gpt2"):
            # The checkpoint is the transformers layout of model_type, and each fixes where LayerNorm sits:
            # BERT/RoBERTa/ALBERT normalise the embeddings and after each sub-layer, GPT-2 before each one.
            which = "only gpt2 (the gpt-* presets) is pre-LayerNorm" if self.pre_norm else "gpt2 is always pre-LayerNorm"
            raise ConfigError(f"model.pre_norm={self.pre_norm} does not fit model_type {self.model_type!r}: {which}; "
                              "its checkpoint layout has no place for the other arrangement. Remove the setting")
        if self.position_offset >= self.max_position_embeddings:
            raise ConfigError("position_offset must be smaller than max_position_embeddings")
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"{source}: unknown model config key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(names))}"
            )
        return cls(**copy.deepcopy(dict(d)))

    def replace(self, **changes: Any) -> "ModelConfig":
        return ModelConfig.from_dict({**self.to_dict(), **changes})


# --------------------------------------------------------------------------- presets
# Size fields: a preset fixes them; an explicit different value is an error (minGPT rule).
SIZE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "embedding_size")


def _bert(layers: int, hidden: int, heads: int) -> dict[str, Any]:
    return dict(model_type="bert", num_hidden_layers=layers, hidden_size=hidden,
                num_attention_heads=heads, intermediate_size=4 * hidden)


def _roberta(layers: int, hidden: int, heads: int) -> dict[str, Any]:
    # fairseq's GPT-2 byte-level BPE (50,265 ids); pad id 1, positions offset past it.
    return dict(model_type="roberta", num_hidden_layers=layers, hidden_size=hidden,
                num_attention_heads=heads, intermediate_size=4 * hidden, vocab_size=50265,
                max_position_embeddings=514, position_offset=2, type_vocab_size=1, layer_norm_eps=1e-5,
                pad_token_id=1, bos_token_id=0, eos_token_id=2)


def _albert(layers: int, hidden: int, heads: int, ffn: int) -> dict[str, Any]:
    return dict(model_type="albert", num_hidden_layers=layers, hidden_size=hidden,
                num_attention_heads=heads, intermediate_size=ffn, embedding_size=128,
                vocab_size=30000, share_layers=True, hidden_act="gelu_new", hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0, pad_token_id=0, bos_token_id=2, eos_token_id=3)


def _gpt(layers: int, hidden: int, heads: int, positions: int = 1024, vocab: int = 50257) -> dict[str, Any]:
    return dict(model_type="gpt2", num_hidden_layers=layers, hidden_size=hidden,
                num_attention_heads=heads, intermediate_size=4 * hidden, vocab_size=vocab,
                max_position_embeddings=positions, type_vocab_size=0, causal=True, pre_norm=True,
                hidden_act="gelu_new", layer_norm_eps=1e-5, pad_token_id=None,
                bos_token_id=vocab - 1, eos_token_id=vocab - 1)


# Pretraining recipe per family (read by the objective code and the trainer).
_BERT_DATA = dict(objective="mlm", pair="nsp", masking="static", packing="segment-pair", ngram=1)
_ROBERTA_DATA = dict(objective="mlm", pair="none", masking="dynamic", packing="full-sentences", ngram=1)
_ALBERT_DATA = dict(objective="mlm", pair="sop", masking="static", packing="segment-pair", ngram=3)
_GPT_DATA = dict(objective="causal", pair="none", masking="none", packing="causal", ngram=1)
_ELMO_DATA = dict(objective="bilm", pair="none", masking="none", packing="causal", ngram=1)

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Turc et al. (2019) "Well-Read Students Learn Better" compact BERTs.
    "bert-tiny": {"model": _bert(2, 128, 2), "data": _BERT_DATA},
    "bert-mini": {"model": _bert(4, 256, 4), "data": _BERT_DATA},
    "bert-small": {"model": _bert(4, 512, 8), "data": _BERT_DATA},
    "bert-medium": {"model": _bert(8, 512, 8), "data": _BERT_DATA},
    # Devlin et al. (2019).
    "bert-base": {"model": _bert(12, 768, 12), "data": _BERT_DATA},
    "bert-large": {"model": _bert(24, 1024, 16), "data": _BERT_DATA},
    # Liu et al. (2019).
    "roberta-tiny": {"model": _roberta(2, 128, 2), "data": _ROBERTA_DATA},
    "roberta-base": {"model": _roberta(12, 768, 12), "data": _ROBERTA_DATA},
    "roberta-large": {"model": _roberta(24, 1024, 16), "data": _ROBERTA_DATA},
    # Lan et al. (2020), v2 sizes.
    "albert-tiny": {"model": {**_albert(4, 256, 4, 1024), "embedding_size": 64}, "data": _ALBERT_DATA},
    "albert-base": {"model": _albert(12, 768, 12, 3072), "data": _ALBERT_DATA},
    "albert-large": {"model": _albert(24, 1024, 16, 4096), "data": _ALBERT_DATA},
    "albert-xlarge": {"model": _albert(24, 2048, 16, 8192), "data": _ALBERT_DATA},
    "albert-xxlarge": {"model": _albert(12, 4096, 64, 16384), "data": _ALBERT_DATA},
    # Radford et al. (2019) GPT-2 small, and a tiny causal LM for CPUs.
    "gpt2-small": {"model": _gpt(12, 768, 12), "data": _GPT_DATA},
    "gpt-tiny": {"model": _gpt(2, 128, 2, positions=512), "data": _GPT_DATA},
    # Peters et al. (2018) ELMo: fields of plmkit.models.elmo.ElmoConfig (elmo_config_from_preset).
    "elmo-small": {"model": dict(model_type="elmo", filters=[[1, 32], [2, 32], [3, 64], [4, 128]],
                                 num_highway=1, projection_dim=128, lstm_dim=512, softmax="auto"),
                   "data": _ELMO_DATA},
    "elmo-original": {"model": dict(model_type="elmo", filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256],
                                                                [6, 512], [7, 1024]],
                                    num_highway=2, projection_dim=512, lstm_dim=4096, softmax="sampled",
                                    num_samples=8192),
                      "data": _ELMO_DATA},
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> dict[str, dict[str, Any]]:
    """The override sections of a preset (a deep copy the caller may edit)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())}")
    return copy.deepcopy(PRESETS[name])


def parse_value(text: str) -> Any:
    """Parse the value of a ``--set key=value`` override: JSON if it parses, else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["model.hidden_size=256", "lr=1e-4"]`` → ``{"model.hidden_size": 256, "lr": 0.0001}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set model.hidden_dropout_prob=0.0")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value.strip())
    return out


def model_config_from_preset(name: str | None, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    """Build a :class:`ModelConfig` from a preset plus explicit overrides.

    Overriding a size field of a preset with a different value is an error: pick a preset or
    explicit sizes, not both.
    """
    overrides = dict(overrides or {})
    base: dict[str, Any] = get_preset(name)["model"] if name else {}
    if name:
        for key in SIZE_KEYS:
            if key in overrides and key in base and overrides[key] != base[key]:
                raise ConfigError(
                    f"preset {name!r} sets {key}={base[key]} but {key}={overrides[key]} was also given; "
                    "use a preset or explicit sizes, not both (drop --preset to size the model yourself)"
                )
    return ModelConfig.from_dict({**base, **overrides}, source=f"preset {name}" if name else "model config")
