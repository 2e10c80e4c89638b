"""Configuration, in one place: every config dataclass, the named presets, and ``key=value`` overrides.

The configs: :class:`ModelConfig` (every Transformer), :class:`DataConfig` (how pretraining rows are
built), :class:`TrainConfig` (the trainer's optimisation settings), :class:`ElmoConfig` and
:class:`TaggerConfig` (the ELMo biLM and the BiLSTM tagger). Each is read by one helper,
:func:`config_from_dict` (types and ranges checked, the field named in the error), and a preset by one
resolver, :func:`config_from_preset`. Fine-tuning's ``FinetuneConfig`` holds a :class:`TrainConfig` and
lives with the task code (:mod:`plmkit.finetune.config`); the modules that run a config re-export it
(``plmkit.data.objectives.DataConfig`` is this ``DataConfig``).

One :class:`ModelConfig` describes every Transformer in the family. BERT is the default; RoBERTa,
ALBERT, ELECTRA and the GPT-style causal LM are a handful of fields that each name a change a paper
made (``embedding_size`` and ``share_layers`` from ALBERT, ``position_offset`` and ``type_vocab_size=1``
from RoBERTa, ``causal`` and ``pre_norm`` from GPT-2, ``discriminator`` and ``generator_size`` from
ELECTRA). The heads are fields too (``pair_head``, ``classifier_pooling``, ``choice_pooling``,
``head_act``, ``mlm_act``): a field left unset takes what its published layout (``model_type``, the
parameter names of its checkpoints) implies, from one table (:data:`LAYOUT_HEADS`). Presets are a
name → overrides table (as in minGPT's ``model_type`` and fairseq's named architectures), resolved
by one function (:func:`config_from_preset`) for every config kind, ELMo's included. A preset is a
starting point: any field may be overridden, as ``transformers``' ``--config_overrides`` does;
values that cannot work together are refused with the reason.

Presets carry three sections: ``model`` (a :class:`ModelConfig`), ``data`` (a :class:`DataConfig`) and
``train`` (a :class:`TrainConfig`); ELMo presets are an :class:`ElmoConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import numbers
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

from .errors import ConfigError, excerpt, type_name

MODEL_TYPES = ("bert", "roberta", "albert", "gpt2", "electra")
ACTIVATIONS = ("gelu", "gelu_new", "relu", "gelu_pytorch_tanh", "gelu_fast")
# A first-token head's dense layer: RoBERTa's classifier uses tanh (as BERT's pooler), ELECTRA's heads GELU.
HEAD_ACTIVATIONS = ("tanh", *ACTIVATIONS)
PAIR_HEADS = ("nsp", "sop", "none")
CLASSIFIER_POOLINGS = ("pooled", "first-token", "last-token")
CHOICE_POOLINGS = ("pooled", "first-token", "none")


# --------------------------------------------------------------------------- typed reading
# Every config dataclass is read through :func:`config_from_dict`: each value is checked against the
# field's annotation (int, float, bool, str, Optional, Literal, list, dict) and an optional range
# before the dataclass is built, so a size given as "128", null where a number belongs, a boolean for a
# count, NaN, or a negative size is a ConfigError naming the source, the key, the value and what was
# expected, never a TypeError deep inside the model. Ranges are named here once:
POSITIVE = "positive"  # > 0
NONNEG = "nonneg"  # >= 0
UNIT = "unit"  # a probability or fraction in [0, 1]
UNIT_OPEN = "unit_open"  # [0, 1): dropout (1 would drop everything)
SEED = "seed"  # what numpy and torch accept as a seed: 0 … 2**32 - 1
MAX_SEED = 2**32 - 1

_INT_RANGES = {POSITIVE: "a positive integer", NONNEG: "an integer >= 0", SEED: f"an integer from 0 to {MAX_SEED}"}
_NUM_RANGES = {POSITIVE: "a positive number", NONNEG: "a number >= 0", UNIT: "a number between 0 and 1",
               UNIT_OPEN: "a number in [0, 1)", SEED: f"an integer from 0 to {MAX_SEED}"}


def _in_range(value: Any, rng: Any) -> bool:
    if rng is None:
        return True
    if rng == POSITIVE:
        return value > 0
    if rng == NONNEG:
        return value >= 0
    if rng == UNIT:
        return 0 <= value <= 1
    if rng == UNIT_OPEN:
        return 0 <= value < 1
    if rng == SEED:
        return 0 <= value <= MAX_SEED
    lo, hi = rng
    return lo <= value <= hi


def _describe(tp: Any, rng: Any = None) -> str:
    """What a value of annotation ``tp`` (and range ``rng``) must be, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        text = " or ".join(_describe(a, rng) for a in inner)
        return text + " or null" if len(inner) < len(args) else text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if isinstance(rng, tuple) and rng and isinstance(rng[0], str):
        return "one of " + ", ".join(rng)
    if tp is bool:
        return "true or false"
    if tp is int:
        if isinstance(rng, tuple):
            return f"an integer from {rng[0]} to {rng[1]}"
        return _INT_RANGES.get(rng, "an integer")
    if tp is float:
        if isinstance(rng, tuple):
            return f"a number from {rng[0]} to {rng[1]}"
        return _NUM_RANGES.get(rng, "a finite number")
    if tp is str:
        return "a string"
    if origin in (list, tuple):
        return "a list" + (f" of {_describe(args[0])}" if args and args[0] is not Any else "")
    if origin is dict or tp is dict:
        if len(args) == 2 and args[1] is not Any:
            keys = 'integer keys ("0", "1", …)' if args[0] is int else _describe(args[0]).split(" ", 1)[-1] + " keys"
            return f"an object mapping {keys} to {_describe(args[1]).split(' ', 1)[-1]}s"
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any, rng: Any = None, paths: bool = False) -> bool:
    """Whether ``value`` is a ``tp`` (in range ``rng``); bools are never numbers, strings never numbers."""
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return type(None) in args
        return any(_matches(value, a, rng, paths) for a in args if a is not type(None))
    if origin is Literal:
        return value in args
    if isinstance(rng, tuple) and rng and isinstance(rng[0], str):  # choices of a str field
        return isinstance(value, str) and value in rng
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and _in_range(value, rng)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            return False
        return finite and _in_range(value, rng)
    if tp is str:
        return isinstance(value, str) or (paths and isinstance(value, os.PathLike))
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return all(_matches(v, item, None, paths) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            return False
        if not args:
            return True
        key_tp, val_tp = args
        # JSON object keys are strings: an int key may come as "3"
        keys_ok = all(_matches(k, key_tp) or (key_tp is int and isinstance(k, str) and _is_int_text(k)) for k in value)
        return keys_ok and all(_matches(v, val_tp) for v in value.values())
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _is_int_text(text: str) -> bool:
    t = text.strip()
    return t.lstrip("-").isdigit() and t.isascii() and len(t) < 20


def _shown(value: Any) -> str:
    """The offending value as a short quote: JSON spellings for null and booleans, a type for text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, numbers.Number) and not isinstance(value, float):
        text = str(value)
        return text if len(text) <= 30 else f"an integer of {len(text)} digits"
    shown = excerpt(value)
    return shown if isinstance(value, (int, float)) else f"{shown} ({type_name(value)})"


def where(source: str, key: str) -> str:
    """``--set train.lr`` / ``runs/x/config.json: hidden_size``: the place an error message names."""
    return f"{source} {key}" if source.startswith("--") else f"{source}: {key}"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_value(cls: type, name: str, value: Any, source: str, key: str | None = None, rng: Any = None,
                paths: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` fits field ``name`` of dataclass ``cls`` (and range ``rng``)."""
    tp = _hints(cls)[name]
    if not _matches(value, tp, rng, paths):
        raise ConfigError(f"{where(source, key or name)} must be {_describe(tp, rng)}, got {_shown(value)}")


def check_fields(obj: Any, source: str, section: str = "", ranges: Mapping[str, Any] | None = None,
                 names: Mapping[str, str] | None = None, paths: tuple[str, ...] = ()) -> None:
    """Check every field of the dataclass instance ``obj`` against its annotation and ``ranges``."""
    ranges = ranges or {}
    for f in dataclasses.fields(obj):
        name = f.name
        check_value(type(obj), name, getattr(obj, name), source, section + (names or {}).get(name, name),
                    ranges.get(name), name in paths)


def check_values(cls: type, values: Mapping[str, Any], source: str, section: str = "",
                 ranges: Mapping[str, Any] | None = None) -> None:
    """Check each value of ``values`` (keys: fields of ``cls``, as ``--set`` gives them) against its field."""
    for name, value in values.items():
        check_value(cls, name, value, source, section + name, (ranges or {}).get(name))


def config_from_dict(cls: type, d: Any, source: str, section: str = "", ranges: Mapping[str, Any] | None = None,
                     what: str = "config", names: Mapping[str, str] | None = None, paths: tuple[str, ...] = ()):
    """Build dataclass ``cls`` from the mapping ``d`` read from ``source`` (a file path, ``--set``, a preset).

    Unknown keys, missing required keys, and values that do not fit a field's annotation or its range
    in ``ranges`` (``POSITIVE``, ``NONNEG``, ``UNIT``, ``UNIT_OPEN``, ``SEED``, an inclusive ``(lo, hi)``,
    or a tuple of allowed strings) are :class:`ConfigError`s naming ``source`` and the key
    (``section`` + the key, or its spelling in ``names``, e.g. a Hugging Face key). The dataclass's own
    ``validate`` then checks how the values fit together.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: expected an object of {what} settings {{\"key\": value, ...}}, got "
                          f"{type_name(d)} {excerpt(d)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in d if k not in fields)
    if unknown:
        raise ConfigError(f"{source}: unknown {what} key(s) {', '.join(unknown)}; "
                          f"known keys: {', '.join(sorted(fields))}")
    ranges = ranges or {}
    for name, value in d.items():
        check_value(cls, name, value, source, section + (names or {}).get(name, name), ranges.get(name),
                    name in paths)
    missing = [n for n, f in fields.items() if n not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{source}: missing {what} key(s) {', '.join(section + m for m in missing)}")
    try:
        return cls(**copy.deepcopy(dict(d)))
    except ConfigError as e:  # the dataclass's own validate: say where the values came from
        text = str(e)
        if text.startswith(source):
            raise
        raise ConfigError(f"{source}: {text}") from None


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
    # ---- Heads. A head field left None takes what model_type's layout implies (LAYOUT_HEADS).
    # The sentence-pair pretraining head: BERT's NSP, ALBERT's SOP (its own dropout), or none (RoBERTa
    # found NSP does not help; GPT-2, ELECTRA). Pretraining sets it from data.pair, the one place it is chosen.
    pair_head: str | None = None
    # How a sequence classifier reads a sequence: "pooled" (BERT, ALBERT: the pooler's tanh(W·h_[CLS])),
    # "first-token" (RoBERTa, ELECTRA: its own dense + head_act over <s>/[CLS]), "last-token" (GPT-2).
    classifier_pooling: str | None = None
    # How a multiple-choice head reads each choice: "pooled" (BERT, RoBERTa, ALBERT), "first-token"
    # (ELECTRA's SequenceSummary: dense + head_act over [CLS]), or "none" (GPT-2 has no such class).
    choice_pooling: str | None = None
    # The activation of a first-token head's dense layer: tanh (RoBERTa), gelu (ELECTRA).
    head_act: str | None = None
    # The MLM transform's activation; None = hidden_act (BERT, ALBERT). RoBERTa's lm_head and ELECTRA's
    # generator hard-code exact GELU.
    mlm_act: str | None = None
    # ---- ELECTRA (Clark et al., 2020). A discriminator is pretrained by replaced-token detection on every
    # position, against a smaller MLM generator that shares its embeddings (models/electra.py).
    discriminator: bool | None = None
    # The generator's hidden size, feed-forward size and attention heads as a fraction of the discriminator's
    # (the paper's Table 6: 1/4 for Small, 1/3 for Base; 1/4-1/2 worked best in its Figure 3). Discriminators only.
    generator_size: float | None = None
    # λ in loss = MLM + λ·RTD: the paper's 50 (the RTD loss, a binary cross-entropy, is much smaller per token).
    rtd_weight: float | None = None
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

    @property
    def has_pooler(self) -> bool:
        """Whether the base model (no task) carries BERT's pooler, as Hugging Face's BertModel, RobertaModel and
        AlbertModel do: exactly the layouts whose classifier or multiple-choice head reads it (not GPT-2, ELECTRA)."""
        return self.classifier_pooling == "pooled" or self.choice_pooling == "pooled"

    def validate(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ConfigError(
                f"unknown model_type {self.model_type!r}; plmkit's Transformer supports "
                f"{', '.join(MODEL_TYPES)} (ELMo has its own 'elmo' config)"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"unknown hidden_act {self.hidden_act!r}; use one of {', '.join(ACTIVATIONS)}")
        layout = LAYOUT_HEADS[self.model_type]
        for name, value in layout.items():  # unset head fields: what the layout implies
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.discriminator:  # ELECTRA's defaults (Clark et al., 2020)
            self.generator_size = 0.25 if self.generator_size is None else self.generator_size
            self.rtd_weight = 50.0 if self.rtd_weight is None else self.rtd_weight
        check_fields(self, "model config", ranges=MODEL_RANGES)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.discriminator and not layout["discriminator"]:
            raise ConfigError(f"model.discriminator=true does not fit model_type {self.model_type!r}: only the electra "
                              "layout has a replaced-token-detection head; use an electra-* preset")
        if self.generator_size is not None and self.generator_size <= 0:
            raise ConfigError(f"generator_size must be a fraction in (0, 1] of the discriminator's size, got "
                              f"{self.generator_size}")
        if bool(self.pre_norm) != (self.model_type in PRE_NORM_LAYOUTS):
            # The checkpoint is the transformers layout of model_type, and each fixes where LayerNorm sits:
            # BERT/RoBERTa/ALBERT/ELECTRA normalise the embeddings and after each sub-layer, GPT-2 before each one.
            which = "only gpt2 (the gpt-* presets) is pre-LayerNorm" if self.pre_norm else "gpt2 is always pre-LayerNorm"
            raise ConfigError(f"model.pre_norm={self.pre_norm} does not fit model_type {self.model_type!r}: {which}; "
                              "its checkpoint layout has no place for the other arrangement. Remove the setting")
        if self.position_offset >= self.max_position_embeddings:
            raise ConfigError("position_offset must be smaller than max_position_embeddings")
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ConfigError(f"pad_token_id={self.pad_token_id} is not an id of the vocabulary of "
                              f"vocab_size={self.vocab_size}; give an id below vocab_size")
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
            if sorted(self.id2label) != list(range(len(self.id2label))):
                raise ConfigError(f"id2label must number its labels 0 … {len(self.id2label) - 1}, got keys "
                                  f"{excerpt(sorted(self.id2label))}")

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config", names: Mapping[str, str] | None = None,
                  section: str = "") -> "ModelConfig":
        """Read a config mapping from ``source``; ``names`` gives the keys' spelling there (e.g. GPT-2's n_embd)."""
        return config_from_dict(cls, d, source, section=section, ranges=MODEL_RANGES, what="model config",
                                names=names)

    def replace(self, **changes: Any) -> "ModelConfig":
        return ModelConfig.from_dict({**self.to_dict(), **changes})


MODEL_RANGES: dict[str, Any] = {
    **dict.fromkeys(("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "embedding_size", "num_labels", "layer_norm_eps"), POSITIVE),
    **dict.fromkeys(("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"), UNIT_OPEN),
    **dict.fromkeys(("type_vocab_size", "position_offset", "initializer_range", "pad_token_id", "bos_token_id",
                     "eos_token_id"), NONNEG),
    "problem_type": ("regression", "single_label_classification", "multi_label_classification"),
    "pair_head": PAIR_HEADS, "classifier_pooling": CLASSIFIER_POOLINGS, "choice_pooling": CHOICE_POOLINGS,
    "head_act": HEAD_ACTIVATIONS, "mlm_act": ACTIVATIONS, "generator_size": UNIT, "rtd_weight": POSITIVE,
}

# What each published layout (model_type: the parameter names and config.json keys of its checkpoints) implies for
# the head fields a config leaves unset. heads.py and model.py read only the fields; hf.py writes a field under
# "plmkit" in config.json when it differs from its layout's value here (transformers would not know it).
_BERT_HEADS = dict(pair_head="nsp", classifier_pooling="pooled", choice_pooling="pooled", head_act="tanh",
                   mlm_act=None, classifier_dropout=None, discriminator=False)
LAYOUT_HEADS: dict[str, dict[str, Any]] = {
    "bert": _BERT_HEADS,
    # RobertaClassificationHead: dense + tanh over <s>; its lm_head hard-codes exact GELU.
    "roberta": {**_BERT_HEADS, "pair_head": "none", "classifier_pooling": "first-token", "mlm_act": "gelu"},
    # ALBERT's heads have their own dropout (classifier_dropout_prob, 0.1) where its body has none.
    "albert": {**_BERT_HEADS, "pair_head": "sop", "classifier_dropout": 0.1},
    # GPT2ForSequenceClassification reads the last real token; transformers has no GPT-2 multiple-choice class.
    "gpt2": {**_BERT_HEADS, "pair_head": "none", "classifier_pooling": "last-token", "choice_pooling": "none"},
    # ElectraClassificationHead and ElectraForMultipleChoice's SequenceSummary: dense + GELU over [CLS], no pooler.
    "electra": {**_BERT_HEADS, "pair_head": "none", "classifier_pooling": "first-token", "choice_pooling": "first-token",
                "head_act": "gelu", "mlm_act": "gelu", "discriminator": True},
}
# The layouts whose blocks normalise before each sub-layer (and end with a final LayerNorm).
PRE_NORM_LAYOUTS = ("gpt2",)

# The ranges of plmkit.training.trainer.TrainConfig's numbers (lr's sign and the choices: its validate).
TRAIN_RANGES: dict[str, Any] = {
    **dict.fromkeys(("adam_eps", "max_steps", "max_time", "epochs", "stop_after", "batch_size", "grad_accum",
                     "keep_last"), POSITIVE),
    **dict.fromkeys(("weight_decay", "warmup", "clip_norm", "log_every", "eval_every", "save_every",
                     "save_minutes"), NONNEG),
    **dict.fromkeys(("adam_beta1", "adam_beta2"), UNIT_OPEN),
    "min_lr_ratio": UNIT, "seed": SEED,
}


# --------------------------------------------------------------------------- presets
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


def _electra(layers: int, hidden: int, heads: int, embedding: int, generator: float) -> dict[str, Any]:
    # BERT's blocks and WordPiece vocabulary; factorized embeddings (Small: 128 < hidden 256), no pooler.
    return dict(model_type="electra", num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                intermediate_size=4 * hidden, embedding_size=embedding, generator_size=generator)


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
# ELECTRA's build_pretraining_dataset: two consecutive segments, 5% short targets, no pair task; masks drawn anew
# every step (dynamic), 85% [MASK] and 15% kept (its pretrain_helpers.mask: no random replacement, since the
# generator's samples are the replacements).
_ELECTRA_DATA = dict(objective="rtd", pair="none", masking="dynamic", packing="segment-pair", ngram=1,
                     short_seq_prob=0.05, replace_mask=0.85, replace_random=0.0)

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
    # Clark et al. (2020) ELECTRA: the discriminator's sizes; the generator is generator_size of them (Table 6).
    "electra-tiny": {"model": _electra(2, 128, 2, 128, 0.25), "data": _ELECTRA_DATA},
    "electra-small": {"model": _electra(12, 256, 4, 128, 0.25), "data": _ELECTRA_DATA},
    "electra-base": {"model": _electra(12, 768, 12, 768, 1 / 3), "data": _ELECTRA_DATA},
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


def config_from_preset(name: str | None, overrides: Mapping[str, Any] | None, build: Any, section: str = "model",
                       kind: str = "transformer", source: str | None = None) -> Any:
    """``build(values, source)`` of a preset's ``section`` plus ``overrides``: the one preset resolution.

    A preset is a starting point, as ``transformers``' ``--config_overrides`` treats a named config:
    any field may be overridden (``--set model.hidden_size=256`` on ``bert-tiny``), and only fields
    are changed that were given (the intermediate size does not follow the hidden size). Values that
    cannot work together (heads that do not divide the hidden size, …) are a ConfigError that gives the
    reason and says which values came from the preset and which from the overrides. ``kind`` ("transformer"
    or "elmo") is the model a ``model`` section must describe: a preset of the other kind is refused.
    """
    overrides = dict(overrides or {})
    base: dict[str, Any] = dict(get_preset(name).get(section, {})) if name else {}
    if name and section == "model" and (base.get("model_type") == "elmo") != (kind == "elmo"):
        if kind == "elmo":
            raise ConfigError(f"preset {name!r} is a {base.get('model_type')} Transformer, not ELMo; use "
                              "plmkit.model_config_from_preset for it, or pick elmo-small / elmo-original")
        raise ConfigError(f"preset {name!r} is an ELMo biLM, not a Transformer; use "
                          "plmkit.models.elmo.elmo_config_from_preset for it")
    if source is None:
        source = f"preset {name}" if name else f"{'ELMo' if kind == 'elmo' else section} config"
    try:
        return build({**base, **overrides}, source)
    except ConfigError as e:
        raise ConfigError(preset_conflict(name, base, overrides, str(e), section, source)) from None


def model_config_from_preset(name: str | None, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    """A :class:`ModelConfig` from a preset plus explicit overrides (see :func:`config_from_preset`)."""
    return config_from_preset(name, overrides, lambda d, source: ModelConfig.from_dict(d, source=source))


def preset_conflict(name: str | None, base: Mapping[str, Any], overrides: Mapping[str, Any], message: str,
                    section: str = "model", source: str | None = None) -> str:
    """``message`` (a refused config) with the preset and override values of the keys it names, when an
    override took part: ``preset bert-tiny + --set model.hidden_size=100: hidden_size (100) must be ... (the
    preset sets num_attention_heads=2; change it too with --set model.num_attention_heads=N)``."""
    def named(key: str) -> bool:
        return re.search(rf"\b{re.escape(key)}\b", message) is not None

    changed = {k: v for k, v in overrides.items() if k in base and base[k] != v and named(k)}
    if not name or not changed:
        return message
    message = message.removeprefix(f"{source or f'preset {name}'}: ")
    from_preset = [k for k in base if k not in overrides and named(k)]
    given = ", ".join(f"--set {section}.{k}={json.dumps(v)}" for k, v in changed.items())
    text = f"preset {name} + {given}: {message}"
    if from_preset:
        text += (f" (the preset sets {', '.join(f'{k}={json.dumps(base[k])}' for k in from_preset)}; change "
                 f"{'it' if len(from_preset) == 1 else 'them'} too with --set {section}.{from_preset[0]}=...)")
    return text


# --------------------------------------------------------------------------- model size before allocation
def estimate_parameters(c: ModelConfig, body_only: bool = False) -> int:
    """Parameters a :class:`ModelConfig` implies, computed from its sizes alone (nothing is allocated).

    ``body_only`` counts the encoder without pooler and heads: a lower bound on what any checkpoint of
    this config holds. The full count adds the pooler and the largest pretraining head: an MLM head, or
    an ELECTRA discriminator's replaced-token head (its generator is :func:`generator_config`'s model).
    """
    E, H, I, L, V = c.embed_dim, c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.vocab_size
    n = V * E + c.max_position_embeddings * E + c.type_vocab_size * E
    n += 0 if c.pre_norm else 2 * E  # embedding LayerNorm
    n += E * H + H if E != H else 0  # ALBERT's / ELECTRA's projection E → H
    layer = 3 * H * H + 3 * H + H * H + H + H * I + I + I * H + H + 4 * H  # qkv, out, ffn, two LayerNorms
    n += (1 if c.share_layers else L) * layer
    n += 2 * H if c.pre_norm else 0  # final LayerNorm
    if not body_only:
        n += H * H + H if c.has_pooler else 0  # pooler
        if c.discriminator:
            n += H * H + H + H + 1  # dense + one logit per token
        else:
            n += H * E + E + 2 * E + V  # MLM transform, LayerNorm and bias (the decoder is tied)
    return n


def generator_config(c: ModelConfig) -> ModelConfig:
    """The generator of ELECTRA discriminator ``c``: hidden size, feed-forward size and attention heads scaled by
    ``generator_size`` (Clark et al., 2020, Table 6: 1/4 for Small, 1/3 for Base: 256 → 64 hidden, 4 → 1 heads),
    the same depth, and embeddings of the discriminator's width, which the two models share."""
    f = c.generator_size
    hidden = max(1, round(c.hidden_size * f))
    heads = max(1, round(c.num_attention_heads * f))
    while hidden % heads:
        heads -= 1
    return c.replace(hidden_size=hidden, intermediate_size=max(1, round(c.intermediate_size * f)),
                     num_attention_heads=heads, embedding_size=c.embed_dim, discriminator=False,
                     generator_size=None, rtd_weight=None)


def available_memory(device: str | None = None) -> int | None:
    """Bytes a model may use: the CUDA device's memory for a ``cuda`` device, else ``MemAvailable``
    (``/proc/meminfo``); None where it cannot be read (then nothing is refused)."""
    if device is not None and str(device).startswith("cuda"):
        try:
            import torch

            index = int(str(device).split(":", 1)[1]) if ":" in str(device) else 0
            return int(torch.cuda.get_device_properties(index).total_memory)
        except Exception:  # noqa: BLE001 - no CUDA, or no such device: the device check reports it
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def training_memory(c: ModelConfig, batch_size: int, length: int, flash: bool = False, bf16: bool = False,
                    gradient_checkpointing: bool = False) -> dict[str, int]:
    """Rough bytes one training step of ``c`` needs: fp32 weights + gradients + AdamW's two moments (16
    bytes a parameter), and the activations kept for the backward pass — per layer about batch × length ×
    (8 hidden + 2 intermediate) values, plus batch × heads × length² × 3 for attention without a fused
    kernel (scores, softmax, dropout mask; the CPU path), all of them only once with gradient checkpointing.
    An ELECTRA discriminator trains with its generator: both count (the shared embeddings once)."""
    params = estimate_parameters(c)
    per_value = 2 if bf16 else 4
    B, T = batch_size, length
    models = [c]
    if c.discriminator and c.generator_size:
        g = generator_config(c)
        models.append(g)
        params += estimate_parameters(g) - _embedding_parameters(g)
    acts = 0
    for m in models:
        H, I, L = m.hidden_size, m.intermediate_size, m.num_hidden_layers
        layer = B * T * (8 * H + 2 * I) + (0 if flash else 3 * B * m.num_attention_heads * T * T)
        acts += (layer + L * B * T * H) if gradient_checkpointing else L * layer
        acts += 2 * B * T * m.embed_dim  # embeddings
    return {"parameters": params, "state": 16 * params, "activations": per_value * acts}


def _embedding_parameters(c: ModelConfig) -> int:
    """The token, position and segment tables and their LayerNorm (what an ELECTRA generator shares)."""
    E = c.embed_dim
    return (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * E + (0 if c.pre_norm else 2 * E)


def check_fits(need: int, what: str, advice: str, device: str | None = None) -> None:
    """Refuse (ConfigError) when ``need`` bytes exceed the memory available to ``device``."""
    have = available_memory(device)
    if have is not None and need > have:
        where = f"the {device} device has" if device and str(device).startswith("cuda") else "this machine has"
        raise ConfigError(f"{what} needs about {format_bytes(need)} of memory but {where} {format_bytes(have)} "
                          f"available; {advice}")


# ----------------------------------------------------------------------------- pretraining data
# How pretraining rows are built (plmkit.data.objectives reads it).
OBJECTIVES = ("mlm", "rtd", "causal", "bilm")
PAIRS = ("nsp", "sop", "none")
MASKINGS = ("static", "dynamic", "none")
PACKINGS = ("segment-pair", "full-sentences", "doc-sentences", "causal")
_CHOICE_FIELDS = ("objective", "pair", "masking", "packing")
# Ranges of the numeric fields (config.config_from_dict); the choices are checked by DataConfig.validate.
DATA_RANGES = {**dict.fromkeys(("max_length", "ngram", "dupe_factor", "max_predictions"), POSITIVE),
               **dict.fromkeys(("mask_prob", "replace_mask", "replace_random", "short_seq_prob"), UNIT)}


# --------------------------------------------------------------------------- config
@dataclass
class DataConfig:
    """How pretraining sequences are built from a prepared corpus. Defaults are BERT's recipe."""

    # "mlm" (BERT/RoBERTa/ALBERT), "rtd" (ELECTRA: masked data for its generator, every token judged by its
    # discriminator), "causal" (GPT next-token prediction) or "bilm" (ELMo's forward + backward LMs; the same
    # windows as "causal", the model predicts in both directions). Pretraining builds the model's heads from it.
    objective: str = "mlm"
    # Sentence-pair task: BERT's NSP, ALBERT's SOP, or none (RoBERTa found NSP does not help). The pretrained
    # model's pair head (model.pair_head) is set from this field: one choice, made here.
    pair: str = "nsp"
    # BERT fixes masks when the data is prepared ("static"); RoBERTa re-masks on every pass ("dynamic").
    masking: str = "static"
    # BERT segment pairs; RoBERTa full-sentences / doc-sentences; causal-LM windows for GPT.
    packing: str = "segment-pair"
    # 128 is BERT's phase-1 length (90% of its steps); tokens per row including specials.
    max_length: int = 128
    # 15% of maskable tokens are predicted (BERT, kept by RoBERTa and ALBERT).
    mask_prob: float = 0.15
    # Of the predicted tokens: 80% become [MASK], 10% a random token, the rest stay unchanged, so the
    # model cannot rely on seeing [MASK] (absent at fine-tuning time) to know what to predict.
    replace_mask: float = 0.8
    replace_random: float = 0.1
    # Mask all tokens of a word together (BERT's whole-word-masking models).
    whole_word: bool = False
    # Longest n-gram of whole words to mask, P(n) ∝ 1/n; 1 = BERT, ALBERT uses 3.
    ngram: int = 1
    # Static masking: each sequence gets this many different masks (BERT's create_pretraining_data default).
    dupe_factor: int = 10
    # Segment pairs: 10% of documents use a random shorter target, to match short fine-tuning inputs.
    short_seq_prob: float = 0.1
    # google-research/bert's max_predictions_per_seq (20 at length 128, 80 at 512): at most this many
    # predictions per row (a row whose count would be higher is capped, as create_pretraining_data.py caps
    # it), and batches carry them as fixed (B, max_predictions) ``mlm_positions``: every step has the same
    # shapes, which CUDA graphs need (--cuda-graphs sets it to default_max_predictions() when unset).
    # None: no cap beyond mask_prob, and the MLM head finds the labelled positions of each batch itself.
    max_predictions: int | None = None
    # Rows that pack several documents (full-sentences, causal) attend only within each document and
    # restart positions there (batches carry ``document_ids``): each document is seen as if alone, with
    # no padding. Off by default: RoBERTa's full-sentences and GPT-2 attend across documents.
    document_mask: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def choice(name: str, options: tuple[str, ...]) -> None:
            if getattr(self, name) is None and "none" in options:  # --set data.pair=none parses as None
                setattr(self, name, "none")
            if getattr(self, name) not in options:
                raise ConfigError(f"data.{name}={getattr(self, name)!r} is not one of {', '.join(options)}")

        choice("objective", OBJECTIVES)
        choice("pair", PAIRS)
        choice("masking", MASKINGS)
        choice("packing", PACKINGS)
        check_fields(self, "data config", "data.", DATA_RANGES)
        if self.replace_mask + self.replace_random > 1.0 + 1e-9:
            raise ConfigError(
                f"data.replace_mask + data.replace_random = {self.replace_mask + self.replace_random:g} exceeds 1; "
                "the rest of the predicted tokens stay unchanged (BERT: 0.8 + 0.1, leaving 0.1)")
        if self.document_mask and (self.packing not in ("full-sentences", "causal") or self.objective == "bilm"):
            raise ConfigError(f"data.document_mask=true needs rows that pack several documents into a Transformer: "
                              f"packing 'full-sentences' or 'causal' with objective 'mlm', 'rtd' or 'causal' (got packing="
                              f"{self.packing!r}, objective={self.objective!r}); segment-pair and doc-sentences rows "
                              "never hold two documents")
        if self.objective in ("causal", "bilm"):
            if (self.packing, self.masking, self.pair) != ("causal", "none", "none"):
                raise ConfigError(
                    f"data.objective={self.objective!r} needs packing='causal', masking='none' and pair='none' "
                    f"(got packing={self.packing!r}, masking={self.masking!r}, pair={self.pair!r})")
        else:
            if self.packing == "causal":
                raise ConfigError("data.packing='causal' is for objective='causal' or 'bilm'; for MLM use "
                                  "segment-pair, full-sentences or doc-sentences")
            if self.masking == "none":
                raise ConfigError(f"data.objective={self.objective!r} needs masking='static' or 'dynamic'")
            if self.objective == "rtd" and self.pair != "none":
                raise ConfigError(f"data.objective='rtd' (ELECTRA) has no sentence-pair task: its discriminator judges "
                                  f"tokens, not pairs; use data.pair=none (got {self.pair!r})")
            if self.pair != "none" and self.packing != "segment-pair":
                raise ConfigError(f"data.pair={self.pair!r} needs packing='segment-pair' (got {self.packing!r}); "
                                  "full-sentences and doc-sentences rows have no second segment")
        if self.max_length < 8:
            raise ConfigError(f"data.max_length={self.max_length} is too short for a pretraining row (use >= 8)")
        if self.max_predictions is not None and not self.masked:
            raise ConfigError(f"data.max_predictions={self.max_predictions} caps masked-LM predictions, and "
                              f"data.objective={self.objective!r} masks nothing (every position is predicted, "
                              "with static shapes already); drop data.max_predictions")

    @property
    def masked(self) -> bool:
        """Whether rows carry MLM masks and labels (objective mlm or rtd) rather than causal windows."""
        return self.objective in ("mlm", "rtd")

    @property
    def word_units(self) -> bool:
        """Whether masking picks whole words (whole-word or n-gram masking) rather than single tokens."""
        return self.whole_word or self.ngram > 1

    @property
    def static_predictions(self) -> bool:
        """Whether batches carry fixed-size ``mlm_positions`` (a masked objective with ``max_predictions`` set)."""
        return self.masked and self.max_predictions is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "data config") -> "DataConfig":
        if isinstance(d, Mapping):  # --set data.pair=none parses as None
            d = {k: ("none" if v is None and k in _CHOICE_FIELDS else v) for k, v in d.items()}
        return config_from_dict(cls, d, source, section="data.", ranges=DATA_RANGES, what="data config")

    def replace(self, **changes: Any) -> "DataConfig":
        return DataConfig.from_dict({**self.to_dict(), **changes})


def data_config_from_preset(name: str | None, overrides: Mapping[str, Any] | None = None) -> DataConfig:
    """The preset's ``data`` section (``config.PRESETS[name]["data"]``) plus overrides.

    Override keys are DataConfig field names, optionally written ``data.<field>`` as on the command
    line (``--set data.mask_prob=0.2``). An unknown key is a :class:`ConfigError` naming it.
    """
    extra = {(key[len("data."):] if key.startswith("data.") else key): value for key, value in (overrides or {}).items()}
    return config_from_preset(name, extra, lambda d, source: DataConfig.from_dict(d, source=source), section="data",
                              source=f"preset {name!r} data section" if name else "data config")


# ----------------------------------------------------------------------------- training
# Optimisation settings (plmkit.training.trainer runs them; fine-tuning's FinetuneConfig holds one).
@dataclass
class TrainConfig:
    """Optimisation settings. Defaults suit a small model on a CPU; presets and flags override."""

    # Peak learning rate; BERT-base used 1e-4, small models tolerate more.
    lr: float = 5e-4
    # AdamW decoupled decay as in BERT (not applied to biases and LayerNorm weights).
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    # RoBERTa found 0.98 more stable with large batches.
    adam_beta2: float = 0.999
    # BERT's epsilon.
    adam_eps: float = 1e-6
    # < 1: fraction of the run; >= 1: a number of optimizer steps. BERT warmed up 10k of 1M steps.
    warmup: float = 0.06
    # "linear" (BERT), "cosine", or "constant" after warmup.
    schedule: str = "linear"
    min_lr_ratio: float = 0.0
    # Stop conditions (the first reached wins); max_time in seconds makes the schedule follow the clock.
    max_steps: int | None = None
    max_time: float | None = None
    epochs: float | None = None
    # Save and stop after this many steps of the planned run (resume later with --resume).
    stop_after: int | None = None
    # Micro-batch per process; the effective batch is batch_size × grad_accum × world size.
    batch_size: int = 32
    grad_accum: int = 1
    # Global gradient-norm clipping as in BERT; 0 disables.
    clip_norm: float = 1.0
    bf16: bool = False
    # "adamw" (fused) or "lamb" (large-batch BERT / ALBERT).
    optimizer: str = "adamw"
    seed: int = 0
    log_every: int = 10
    eval_every: int = 0
    # Also evaluate before the first step of a fresh run, so a learning curve starts where the model did.
    eval_at_start: bool = False
    # Periodic checkpoints, besides the one at the end and the one SIGINT/SIGTERM writes. Unset (None):
    # by the clock alone, every save_minutes; N > 0: also every N steps; 0: no periodic checkpoint at all
    # (only when the user asks for it: a kill then loses the whole run).
    save_every: int | None = None
    # Minutes of training between checkpoints by the clock (0: none by the clock). 5 bounds what a kill -9 or
    # a preempted job loses to 5 minutes, while a save costs about 1% of that even for BERT-base with Adam
    # (1.3 GB written and hashed in ~3 s on a local SSD; a bert-tiny save takes ~10 ms). A save reads the
    # training state and changes none of it, so where saves fall never changes the run.
    save_minutes: float = 5.0
    keep_last: int = 3
    compile: bool = False
    # GPU only (training/accel.py): the step compiled as CUDA graphs (static shapes: data.max_predictions), and
    # the encoder's matmuls in FP8 through torchao (compute capability >= 8.9). Off: they need a GPU that has them.
    cuda_graphs: bool = False
    fp8: bool = False
    gradient_checkpointing: bool = False
    # A NaN/inf loss: "stop" (keep the last good checkpoint) or "skip" the step.
    on_nonfinite: str = "stop"
    device: str = "auto"
    # Rank 0 shows progress: a bar on a terminal, a status line every log_every steps in a log; False: none.
    progress: bool = True
    tensorboard: bool = True

    def validate(self) -> None:
        check_fields(self, "train config", "train.", TRAIN_RANGES)
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")
        if self.schedule not in ("linear", "cosine", "constant"):
            raise ConfigError(f"train.schedule must be linear, cosine or constant, got {self.schedule!r}")
        if self.optimizer not in ("adamw", "lamb"):
            raise ConfigError(f"train.optimizer must be adamw or lamb, got {self.optimizer!r}")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"train.on_nonfinite must be stop or skip, got {self.on_nonfinite!r}")
        if self.max_steps is None and self.max_time is None and self.epochs is None:
            raise ConfigError("give a stop condition: --max-steps N, --max-time 30m or --epochs E")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "train config") -> "TrainConfig":
        """Read train settings (each value checked against its field's type and range), then ``validate``."""
        config = config_from_dict(cls, d, source, section="train.", ranges=TRAIN_RANGES, what="train")
        try:
            config.validate()
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        return config


# ----------------------------------------------------------------------------- ELMo
@dataclass
class ElmoConfig:
    """The shape of an ELMo biLM. Defaults are a tiny CPU model; presets give published sizes."""

    model_type: str = "elmo"
    # Words in the softmax; set from the vocabulary the model is built with.
    vocab_size: int | None = None
    # allennlp / bilm-tf: words are cut to 48 UTF-8 bytes plus the begin/end-of-word markers.
    max_characters_per_token: int = 50
    # 16 in every published ELMo: 262 characters need few dimensions.
    char_embedding_dim: int = 16
    # [width, number of filters]; the published model has 2048 filters of widths 1–7.
    filters: list[list[int]] = field(default_factory=lambda: [[1, 16], [2, 16], [3, 32]])
    # Highway layers over the pooled filters (2 in the published model, 1 in bilm-tf's small ones).
    num_highway: int = 1
    # relu in the published models' options files (tanh in some of bilm-tf's small ones).
    activation: str = "relu"
    # P: the token encoding and each LSTM layer's output (512 published).
    projection_dim: int = 32
    # C: LSTM cells per direction and layer (4096 published); must exceed P (LSTMP).
    lstm_dim: int = 64
    # L: the paper's 2 biLSTM layers.
    num_layers: int = 2
    # Residual connection from layer 1's output to layer 2's, as in the paper.
    residual: bool = True
    # bilm-tf trains with dropout 0.1 on LSTM inputs and on the output before the softmax.
    dropout: float = 0.1
    # full | sampled | adaptive | auto (full up to 20k words, adaptive above).
    softmax: str = "auto"
    # Negatives per batch for the sampled softmax (bilm-tf: 8192); eval always uses the full softmax.
    num_samples: int = 8192
    # Adaptive-softmax cluster boundaries (None: 2k / 10k / 50k / 200k below the vocabulary size).
    adaptive_cutoffs: list[int] | None = None
    # Each tail cluster's projection is 4× smaller than the last (Grave et al., 2017).
    adaptive_div_value: float = 4.0
    # Wrap new sentences in <s> … </s> when embedding them, as allennlp's Elmo does.
    sentence_boundaries: bool = True
    # Word-level special tokens (plmkit prepare --word-level); <s> / </s> spell as sentence markers.
    pad_token: str = "<pad>"
    unk_token: str = "<unk>"
    bos_token: str = "<s>"
    eos_token: str = "</s>"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_filters(self) -> int:
        return sum(n for _, n in self.filters)

    def validate(self) -> None:
        if self.model_type != "elmo":
            raise ConfigError(f"ElmoConfig needs model_type 'elmo', got {self.model_type!r}")
        check_fields(self, "ELMo config", ranges=ELMO_RANGES)
        for name in ("max_characters_per_token", "char_embedding_dim", "projection_dim", "lstm_dim",
                     "num_layers", "num_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"ELMo config {name} must be a positive integer, got {value!r}")
        if self.vocab_size is not None and (not isinstance(self.vocab_size, int) or self.vocab_size <= 0):
            raise ConfigError(f"ELMo config vocab_size must be a positive integer, got {self.vocab_size!r}")
        if self.max_characters_per_token < 3:
            raise ConfigError("ELMo config max_characters_per_token must be at least 3 (markers + one byte)")
        if not isinstance(self.num_highway, int) or self.num_highway < 0:
            raise ConfigError(f"ELMo config num_highway must be 0 or more, got {self.num_highway!r}")
        try:
            self.filters = [[int(w), int(n)] for w, n in self.filters]
        except (TypeError, ValueError):
            raise ConfigError(f"ELMo config filters must be a list of [width, count] pairs, got {self.filters!r}") from None
        if not self.filters or any(w <= 0 or n <= 0 or w > self.max_characters_per_token for w, n in self.filters):
            raise ConfigError(f"ELMo config filters {self.filters}: need at least one [width, count] pair with "
                              f"1 <= width <= max_characters_per_token ({self.max_characters_per_token}) and count >= 1")
        if self.projection_dim >= self.lstm_dim:
            raise ConfigError(f"ELMo config projection_dim ({self.projection_dim}) must be smaller than lstm_dim "
                              f"({self.lstm_dim}): each LSTM projects its C cells down to P (LSTMP)")
        if self.activation not in ("relu", "tanh"):
            raise ConfigError(f"ELMo config activation must be 'relu' or 'tanh', got {self.activation!r}")
        if self.softmax not in ("auto", "full", "sampled", "adaptive"):
            raise ConfigError(f"ELMo config softmax must be auto, full, sampled or adaptive, got {self.softmax!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"ELMo config dropout must be in [0, 1), got {self.dropout!r}")
        if self.adaptive_cutoffs is not None:
            cuts = [int(c) for c in self.adaptive_cutoffs]
            if not cuts or cuts != sorted(set(cuts)) or cuts[0] <= 0:
                raise ConfigError(f"ELMo config adaptive_cutoffs must be increasing positive integers, got "
                                  f"{self.adaptive_cutoffs!r}")
            self.adaptive_cutoffs = cuts
        if self.adaptive_div_value <= 0:
            raise ConfigError("ELMo config adaptive_div_value must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "ELMo config") -> "ElmoConfig":
        return config_from_dict(cls, d, source, ranges=ELMO_RANGES, what="ELMo config")

    def replace(self, **changes: Any) -> "ElmoConfig":
        return ElmoConfig.from_dict({**self.to_dict(), **changes})


# Ranges of ElmoConfig's numbers (config.config_from_dict); validate checks how they fit together.
ELMO_RANGES: dict[str, Any] = {
    **dict.fromkeys(("vocab_size", "max_characters_per_token", "char_embedding_dim", "projection_dim", "lstm_dim",
                     "num_layers", "num_samples", "adaptive_div_value"), POSITIVE),
    "num_highway": NONNEG, "dropout": UNIT_OPEN, "activation": ("relu", "tanh"),
    "softmax": ("auto", "full", "sampled", "adaptive"),
}

def elmo_config_from_preset(name: str | None, overrides: Mapping[str, Any] | None = None) -> ElmoConfig:
    """An :class:`ElmoConfig` from a preset (``elmo-small``, ``elmo-original``) plus overrides.

    As for Transformers, through :func:`plmkit.config.config_from_preset`: the preset is a starting point
    that any field may override; values that cannot work together are refused with the reason.
    """
    return config_from_preset(name, overrides, lambda d, source: ElmoConfig.from_dict(d, source=source), kind="elmo")


# ----------------------------------------------------------------------------- BiLSTM tagger
@dataclass
class TaggerConfig:
    """Sizes of the BiLSTM tagger / classifier (defaults: the usual small BiLSTM tagger)."""

    vocab_size: int
    num_labels: int
    # 100-d word vectors, the GloVe-100 size common in BiLSTM taggers.
    embedding_dim: int = 100
    # Cells per direction; 100–200 is the usual range for POS/NER BiLSTMs.
    hidden_size: int = 100
    num_layers: int = 1
    # Dropout on the BiLSTM input and output (0.5 as in Lample et al., 2016).
    dropout: float = 0.5
    # Dropout on the ELMo vectors (allennlp's Elmo default).
    elmo_dropout: float = 0.5
    # allennlp ScalarMix do_layer_norm: normalise each biLM layer before mixing.
    elmo_layer_norm: bool = False
    # Classifier only: pool the BiLSTM states by "max" or "mean" over the real words.
    pooling: str = "max"
    pad_id: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "tagger config", ranges=TAGGER_RANGES)
        if self.pad_id >= self.vocab_size:
            raise ConfigError(f"tagger config pad_id={self.pad_id} must be below vocab_size={self.vocab_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "tagger config") -> "TaggerConfig":
        return config_from_dict(cls, d, source, ranges=TAGGER_RANGES, what="tagger config")


# Ranges of TaggerConfig's fields (config.config_from_dict).
TAGGER_RANGES: dict[str, Any] = {
    **dict.fromkeys(("vocab_size", "num_labels", "embedding_dim", "hidden_size", "num_layers"), POSITIVE),
    **dict.fromkeys(("dropout", "elmo_dropout"), UNIT_OPEN), "pad_id": NONNEG, "pooling": ("max", "mean"),
}
