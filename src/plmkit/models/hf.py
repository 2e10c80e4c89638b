"""Hugging Face names for bert, roberta, albert, gpt2, electra: config keys, architecture names, parameter names.

A plmkit model folder *is* a Hugging Face folder (DESIGN §3): ``config.json`` with HF keys (plmkit
extras under ``"plmkit"``), ``model.safetensors`` with HF parameter names, and the tokenizer files.
``transformers.AutoModel*.from_pretrained`` opens what plmkit writes, and plmkit opens what
transformers writes, losing nothing: tensors plmkit does not use (old ``position_ids`` buffers,
GPT-2's causal-mask buffers, unknown heads) are carried through and written back unchanged.

This module is only the mapping (no file is read or written here): :func:`config_from_hf` /
:func:`config_to_hf`, the architecture names, and the rules between plmkit's and HF's parameter
names (:func:`body_rules`, :func:`head_rules`, :func:`hf_state_dict`). Reading and writing folders is
:mod:`plmkit.models.folder`; loading a model of any kind is :mod:`plmkit.models.auto`; saving a
:class:`PlmModel` is :mod:`plmkit.models.model`.

Layout differences handled here:

* plmkit fuses query/key/value into one ``qkv`` projection; HF BERT-family checkpoints store them
  separately (split / concatenated along dim 0, bit-exact).
* GPT-2 stores linear layers as ``Conv1D`` (weight transposed).
* Tied decoders (``cls.predictions.decoder``, ``lm_head``, ``generator_lm_head``) are not stored, as
  transformers does.
* The head fields of :class:`~plmkit.config.ModelConfig` (``pair_head``, ``classifier_pooling``, …) are
  implied by ``model_type`` (:data:`plmkit.config.LAYOUT_HEADS`); one that differs is written under
  ``"plmkit"`` and read back from there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..config import LAYOUT_HEADS, MODEL_TYPES, ModelConfig
from ..errors import CheckpointError, ConfigError
from .folder import CONFIG_NAME

if TYPE_CHECKING:
    from .model import PlmModel


# ----------------------------------------------------------------------------- config.json
_COMMON_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "layer_norm_eps", "initializer_range", "pad_token_id", "bos_token_id",
                "eos_token_id", "problem_type")
_GPT2_KEYS = {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
              "n_inner": "intermediate_size", "activation_function": "hidden_act", "resid_pdrop": "hidden_dropout_prob",
              "attn_pdrop": "attention_probs_dropout_prob", "n_positions": "max_position_embeddings",
              "layer_norm_epsilon": "layer_norm_eps", "initializer_range": "initializer_range",
              "vocab_size": "vocab_size", "pad_token_id": "pad_token_id", "bos_token_id": "bos_token_id",
              "eos_token_id": "eos_token_id", "problem_type": "problem_type"}
# Keys transformers writes that carry no information plmkit needs to keep.
_DROP_KEYS = {"architectures", "transformers_version", "model_type", "torch_dtype", "dtype", "_name_or_path",
              "id2label", "label2id", "num_labels", "plmkit", "classifier_dropout", "classifier_dropout_prob",
              "embedding_size", "num_hidden_groups", "inner_group_num", "position_embedding_type",
              "embd_pdrop", "tie_word_embeddings", "scale_attn_weights", "scale_attn_by_inverse_layer_idx",
              "reorder_and_upcast_attn", "is_decoder", "add_cross_attention", "use_cache", "gradient_checkpointing",
              "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
              "summary_first_dropout"}
# The heads' fields (what LAYOUT_HEADS gives each model_type). ``discriminator`` is not among them: a folder's
# class says whether it holds ELECTRA's discriminator head (ElectraForPreTraining) or the generator's MLM head.
_HEAD_FIELDS = ("pair_head", "classifier_pooling", "choice_pooling", "head_act", "mlm_act")
# plmkit fields that the model_type already implies; written under "plmkit" only when they differ.
_VARIANT_FIELDS = ("embedding_size", "share_layers", "causal", "pre_norm", "position_offset", "type_vocab_size",
                   *_HEAD_FIELDS)
# Layouts whose config.json has an embedding_size (factorized embeddings E → H): ALBERT, ELECTRA.
_EMBEDDING_SIZE_LAYOUTS = ("albert", "electra")
# ElectraForMultipleChoice's SequenceSummary as plmkit's choice head computes it (transformers' defaults).
_ELECTRA_SUMMARY = {"summary_type": "first", "summary_use_proj": True, "summary_activation": "gelu"}


def _variant_defaults(model_type: str, pad_token_id: int | None) -> dict[str, Any]:
    body = {
        "bert": dict(share_layers=False, causal=False, pre_norm=False, position_offset=0),
        "roberta": dict(share_layers=False, causal=False, pre_norm=False, position_offset=(pad_token_id or 0) + 1),
        "albert": dict(share_layers=True, causal=False, pre_norm=False, position_offset=0),
        "gpt2": dict(share_layers=False, causal=True, pre_norm=True, position_offset=0, type_vocab_size=0),
        "electra": dict(share_layers=False, causal=False, pre_norm=False, position_offset=0),
    }[model_type]
    return {**body, **{k: LAYOUT_HEADS[model_type][k] for k in _HEAD_FIELDS}}


def config_from_hf(d: dict[str, Any], source: str = CONFIG_NAME) -> ModelConfig:
    """A transformers ``config.json`` dict → :class:`ModelConfig`.

    Every value is checked for type and range (:func:`plmkit.config.config_from_dict`), with errors
    naming ``source`` and the key as the file spells it; ``id2label`` must number its labels 0 … n-1
    with string names, and ``label2id`` (when present) must be its inverse.
    """
    from ..errors import excerpt, type_name

    if not isinstance(d, dict):
        raise CheckpointError(f"{source}: expected a JSON object of settings, got {type_name(d)} {excerpt(d)}")
    model_type = d.get("model_type")
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
        raise CheckpointError(
            f"{source}: unknown model_type {model_type!r}; plmkit loads bert, roberta, albert and gpt2 "
            "folders, electra folders and its own elmo folders" + ("" if model_type else " — the key is missing")
        )
    kw: dict[str, Any] = {"model_type": model_type}
    if model_type == "gpt2":
        for hf, ours in _GPT2_KEYS.items():
            if d.get(hf) is not None or hf in ("pad_token_id", "bos_token_id", "eos_token_id", "problem_type"):
                if hf in d:
                    kw[ours] = d[hf]
        if kw.get("intermediate_size") is None:
            n_embd = kw.get("hidden_size", 768)  # a wrong n_embd is reported under its own name below
            kw["intermediate_size"] = 4 * n_embd if isinstance(n_embd, int) and not isinstance(n_embd, bool) else 3072
        if not d.get("scale_attn_weights", True) or d.get("scale_attn_by_inverse_layer_idx", False):
            raise CheckpointError(f"{source}: GPT-2 attention scaling variants (scale_attn_weights=false or "
                                  "scale_attn_by_inverse_layer_idx=true) are not supported")
        extra_keys = set(d) - set(_GPT2_KEYS) - _DROP_KEYS
    else:
        for key in _COMMON_KEYS:
            if key in d:
                kw[key] = d[key]
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(f"{source}: position_embedding_type={d['position_embedding_type']!r} is not "
                                  "supported; plmkit uses learned absolute positions")
        if model_type == "albert":
            if d.get("num_hidden_groups", 1) != 1 or d.get("inner_group_num", 1) != 1:
                raise CheckpointError(f"{source}: ALBERT with num_hidden_groups or inner_group_num other than 1 "
                                      "is not supported (all published ALBERT models use 1)")
            if d.get("classifier_dropout_prob") is not None:
                kw["classifier_dropout"] = d["classifier_dropout_prob"]
        elif d.get("classifier_dropout") is not None:
            kw["classifier_dropout"] = d["classifier_dropout"]
        if model_type in _EMBEDDING_SIZE_LAYOUTS:
            kw["embedding_size"] = d.get("embedding_size", 128)  # both transformers configs default to 128
        if model_type == "electra":
            summary = {k: d.get(k, v) for k, v in _ELECTRA_SUMMARY.items()}
            if summary != _ELECTRA_SUMMARY or d.get("summary_proj_to_labels") or d.get("summary_first_dropout"):
                raise CheckpointError(f"{source}: ELECTRA's multiple-choice summary is supported as transformers "
                                      f"configures it ({_ELECTRA_SUMMARY}, no summary_proj_to_labels or "
                                      "summary_first_dropout); this config changes it")
        extra_keys = set(d) - set(_COMMON_KEYS) - _DROP_KEYS
    pad = kw.get("pad_token_id")
    kw.update(_variant_defaults(model_type, pad if isinstance(pad, int) and not isinstance(pad, bool) else None))
    if d.get("id2label") is not None:
        kw["id2label"] = _id2label(d, source)
        kw["num_labels"] = len(kw["id2label"])
    elif "num_labels" in d:
        kw["num_labels"] = d["num_labels"]
    kw["hf_extra"] = {k: d[k] for k in sorted(extra_keys)}
    plm = d.get("plmkit") or {}
    if not isinstance(plm, dict) or not isinstance(plm.get("model") or {}, dict):
        raise ConfigError(f"{source}: the \"plmkit\" section (and its \"model\") must be JSON objects, got "
                          f"{excerpt(plm)}; restore the file or remove the section")
    for key, value in (plm.get("model") or {}).items():
        if key not in _VARIANT_FIELDS:
            raise ConfigError(f"{source}: unknown key plmkit.model.{key}; plmkit writes only "
                              f"{', '.join(sorted(_VARIANT_FIELDS))} there — remove the key or correct its name")
        kw[key] = value
    names = {ours: hf for hf, ours in _GPT2_KEYS.items()} if model_type == "gpt2" else {}
    if model_type == "albert":
        names["classifier_dropout"] = "classifier_dropout_prob"
    for key in _VARIANT_FIELDS:
        if key in (plm.get("model") or {}):
            names[key] = f"plmkit.model.{key}"
    return ModelConfig.from_dict(kw, source=source, names=names)


def _id2label(d: dict[str, Any], source: str) -> dict[int, str]:
    """config.json's ``id2label`` (keys "0" … "n-1", string names), checked against ``label2id``."""
    from ..errors import excerpt

    raw = d["id2label"]
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source}: id2label must be a non-empty object {{\"0\": \"label\", ...}}, got "
                          f"{excerpt(raw)}")
    out: dict[int, str] = {}
    for k, v in raw.items():
        # JSON keys are strings; a config dict built in Python (transformers' to_dict()) has int keys
        t = str(k) if isinstance(k, int) and not isinstance(k, bool) and k >= 0 else \
            k.strip() if isinstance(k, str) else ""
        if not (t.isascii() and t.isdigit() and len(t) < 10):
            raise ConfigError(f"{source}: id2label key {excerpt(k)} is not a label id; keys are \"0\", \"1\", … "
                              "(one per class)")
        if not isinstance(v, str):
            raise ConfigError(f"{source}: id2label[{excerpt(k)}] must be a label name (a string), got {excerpt(v)}")
        out[int(t)] = v
    if sorted(out) != list(range(len(out))):
        raise ConfigError(f"{source}: id2label must number its {len(out)} labels 0 … {len(out) - 1}, got ids "
                          f"{excerpt(sorted(out))}")
    label2id = d.get("label2id")
    # label2id only restates id2label; a stale one (other names, e.g. transformers' LABEL_0 defaults) is ignored,
    # a contradicting one (the same names with other ids) is refused.
    inverse = {v: i for i, v in out.items()}
    if isinstance(label2id, dict) and set(label2id) == set(inverse):
        if len(inverse) != len(out) or label2id != inverse:
            raise ConfigError(f"{source}: label2id {excerpt(label2id)} is not the inverse of id2label "
                              f"{excerpt({str(i): v for i, v in out.items()})}; correct one of them (or remove label2id)")
    return out


def config_to_hf(config: ModelConfig, architecture: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """:class:`ModelConfig` → a transformers ``config.json`` dict (plus plmkit extras)."""
    c = config
    d: dict[str, Any] = {"architectures": [architecture], "model_type": c.model_type}
    if c.model_type == "gpt2":
        for hf, ours in _GPT2_KEYS.items():
            d[hf] = getattr(c, ours)
        d["embd_pdrop"] = c.hidden_dropout_prob
        d["scale_attn_weights"] = True
    else:
        for key in _COMMON_KEYS:
            d[key] = getattr(c, key)
        d["position_embedding_type"] = "absolute"
        if c.model_type == "albert":
            d.update(embedding_size=c.embed_dim, num_hidden_groups=1, inner_group_num=1,
                     classifier_dropout_prob=c.classifier_dropout if c.classifier_dropout is not None else 0.1)
        else:
            d["classifier_dropout"] = c.classifier_dropout
        if c.model_type == "electra":
            d.update(embedding_size=c.embed_dim, **_ELECTRA_SUMMARY, summary_last_dropout=0.1)
    if c.id2label is not None or c.num_labels != 2:
        labels = c.id2label or {i: f"LABEL_{i}" for i in range(c.num_labels)}
        d["id2label"] = {str(i): v for i, v in labels.items()}
        d["label2id"] = {v: i for i, v in labels.items()}
    d["tie_word_embeddings"] = True
    d.update(c.hf_extra)
    defaults = _variant_defaults(c.model_type, c.pad_token_id)
    variant = {k: getattr(c, k) for k in _VARIANT_FIELDS
               if k in defaults and getattr(c, k) != defaults[k]}
    if c.model_type not in _EMBEDDING_SIZE_LAYOUTS and c.embedding_size not in (None, c.hidden_size):
        variant["embedding_size"] = c.embedding_size
    plm: dict[str, Any] = {"format": 1}
    if variant:
        plm["model"] = variant
    # A model without the layout's sentence-pair head (BERT pretrained with data.pair=none) is what transformers'
    # own classes hold too (BertForMaskedLM, or a fine-tuning class): nothing of it is lost there, so no warning.
    lost = sorted(k for k in variant if not (k == "pair_head" and variant[k] == "none"))
    if lost:
        warnings.warn(f"config fields {lost} differ from what model_type={c.model_type!r} implies; "
                      "plmkit reloads them exactly but transformers will not", stacklevel=3)
    if extra:
        plm.update(extra)
    d["plmkit"] = plm
    return d


# ----------------------------------------------------------------------------- tasks ↔ classes
_CLASS_PREFIX = {"bert": "Bert", "roberta": "Roberta", "albert": "Albert", "gpt2": "GPT2", "electra": "Electra"}
_TASK_SUFFIX = {None: "Model", "pretraining": "ForPreTraining", "masked-lm": "ForMaskedLM",
                "sequence-classification": "ForSequenceClassification", "question-answering": "ForQuestionAnswering",
                "multiple-choice": "ForMultipleChoice", "token-classification": "ForTokenClassification"}


def architecture_for(config: ModelConfig, task: str | None, heads: tuple[str, ...] = ()) -> str:
    """The transformers class of a model of ``task`` whose task runs ``heads``."""
    prefix = _CLASS_PREFIX[config.model_type]
    if config.causal and task in ("causal-lm", "pretraining"):
        return "GPT2LMHeadModel"
    if task == "pretraining" and heads == ("mlm",):
        return prefix + "ForMaskedLM"  # no pair task (RoBERTa): the pretraining model is the MLM
    return prefix + _TASK_SUFFIX.get(task, "Model")


def task_for_architecture(arch: str | None) -> str | None:
    if not arch:
        return None
    if arch.endswith("LMHeadModel"):
        return "causal-lm"
    for task, suffix in _TASK_SUFFIX.items():
        if task is not None and arch.endswith(suffix):
            return task
    return None


# ----------------------------------------------------------------------------- parameter names
@dataclass(frozen=True)
class Rule:
    """One plmkit tensor ↔ one or more HF tensors. op: copy | T (transpose) | cat (dim 0)."""

    ours: str
    theirs: tuple[str, ...]
    op: str = "copy"


def _lin(ours: str, theirs: str, bias: bool = True, op: str = "copy") -> list[Rule]:
    rules = [Rule(f"{ours}.weight", (f"{theirs}.weight",), op)]
    if bias:
        rules.append(Rule(f"{ours}.bias", (f"{theirs}.bias",)))
    return rules


_LN = _lin  # LayerNorm has weight + bias too


def body_prefix(model_type: str) -> str:
    return {"bert": "bert.", "roberta": "roberta.", "albert": "albert.", "gpt2": "transformer.",
            "electra": "electra."}[model_type]


def pooler_name(model_type: str) -> str:
    """The pooler's weight, relative to the body: ALBERT's is a plain Linear, the others' a ``pooler.dense``."""
    return "pooler.weight" if model_type == "albert" else "pooler.dense.weight"


def body_rules(model: PlmModel) -> list[Rule]:
    """Rules for the encoder body (plmkit names under ``body.``), HF names *without* the body prefix."""
    return [Rule("body." + r.ours, r.theirs, r.op) for r in _body_rules(model)]


def _body_rules(model: PlmModel) -> list[Rule]:
    c = model.config
    body = model.body
    rules: list[Rule] = []
    if c.model_type == "gpt2":
        rules += [Rule("embeddings.word.weight", ("wte.weight",)), Rule("embeddings.position.weight", ("wpe.weight",))]
        for i in range(len(body.layers)):
            o, t = f"layers.{i}", f"h.{i}"
            rules += _LN(f"{o}.norm1", f"{t}.ln_1") + _LN(f"{o}.norm2", f"{t}.ln_2")
            rules += _lin(f"{o}.attn.qkv", f"{t}.attn.c_attn", op="T") + _lin(f"{o}.attn.out", f"{t}.attn.c_proj", op="T")
            rules += _lin(f"{o}.ffn.fc1", f"{t}.mlp.c_fc", op="T") + _lin(f"{o}.ffn.fc2", f"{t}.mlp.c_proj", op="T")
        if body.final_norm is not None:
            rules += _LN("final_norm", "ln_f")
        return rules
    rules += [Rule("embeddings.word.weight", ("embeddings.word_embeddings.weight",)),
              Rule("embeddings.position.weight", ("embeddings.position_embeddings.weight",))]
    if body.embeddings.token_type is not None:
        rules.append(Rule("embeddings.token_type.weight", ("embeddings.token_type_embeddings.weight",)))
    rules += _LN("embeddings.norm", "embeddings.LayerNorm")
    if c.model_type == "albert":
        if body.embed_proj is not None:
            rules += _lin("embed_proj", "encoder.embedding_hidden_mapping_in")
        t = "encoder.albert_layer_groups.0.albert_layers.0"
        if len(body.layers) != 1:
            raise CheckpointError("ALBERT checkpoints share one layer; this model has unshared layers "
                                  "(share_layers=false) and cannot be written in the ALBERT layout")
        o = "layers.0"
        qkv = tuple(f"{t}.attention.{n}" for n in ("query", "key", "value"))
        rules += [Rule(f"{o}.attn.qkv.weight", tuple(f"{n}.weight" for n in qkv), "cat"),
                  Rule(f"{o}.attn.qkv.bias", tuple(f"{n}.bias" for n in qkv), "cat")]
        rules += _lin(f"{o}.attn.out", f"{t}.attention.dense") + _LN(f"{o}.norm1", f"{t}.attention.LayerNorm")
        rules += _lin(f"{o}.ffn.fc1", f"{t}.ffn") + _lin(f"{o}.ffn.fc2", f"{t}.ffn_output")
        rules += _LN(f"{o}.norm2", f"{t}.full_layer_layer_norm")
        if body.pooler is not None:
            rules += _lin("pooler", "pooler")
        return rules
    if c.model_type == "electra":
        if body.embed_proj is not None:  # ElectraModel.embeddings_project (E != H)
            rules += _lin("embed_proj", "embeddings_project")
    elif body.embed_proj is not None:
        raise CheckpointError(f"{c.model_type} checkpoints have no embedding projection; embedding_size must "
                              "equal hidden_size (use model_type albert or electra for factorized embeddings)")
    if len(body.layers) != c.num_hidden_layers:
        raise CheckpointError(f"{c.model_type} checkpoints do not share layers; share_layers must be false "
                              "(use model_type albert for cross-layer sharing)")
    for i in range(len(body.layers)):
        o, t = f"layers.{i}", f"encoder.layer.{i}"
        qkv = tuple(f"{t}.attention.self.{n}" for n in ("query", "key", "value"))
        rules += [Rule(f"{o}.attn.qkv.weight", tuple(f"{n}.weight" for n in qkv), "cat"),
                  Rule(f"{o}.attn.qkv.bias", tuple(f"{n}.bias" for n in qkv), "cat")]
        rules += _lin(f"{o}.attn.out", f"{t}.attention.output.dense")
        rules += _LN(f"{o}.norm1", f"{t}.attention.output.LayerNorm")
        rules += _lin(f"{o}.ffn.fc1", f"{t}.intermediate.dense") + _lin(f"{o}.ffn.fc2", f"{t}.output.dense")
        rules += _LN(f"{o}.norm2", f"{t}.output.LayerNorm")
    if body.pooler is not None:
        rules += _lin("pooler", "pooler.dense")
    return rules


def head_rules(model_type: str, kind: str, head) -> list[Rule]:
    """Rules for one head, HF names as stored at the top level of the checkpoint."""
    if kind == "mlm":
        base = {"bert": "cls.predictions", "roberta": "lm_head", "albert": "predictions",
                "electra": "generator_predictions"}.get(model_type)
        if base is None:
            raise CheckpointError(f"{model_type} has no masked-LM head in the Hugging Face layout")
        dense = f"{base}.transform.dense" if model_type == "bert" else f"{base}.dense"
        norm = {"bert": f"{base}.transform.LayerNorm", "roberta": f"{base}.layer_norm",
                "albert": f"{base}.LayerNorm", "electra": f"{base}.LayerNorm"}[model_type]
        bias = "generator_lm_head.bias" if model_type == "electra" else f"{base}.bias"
        return _lin("heads.mlm.dense", dense) + _LN("heads.mlm.norm", norm) + [Rule("heads.mlm.bias", (bias,))]
    if kind in ("nsp", "sop"):  # the layout's one place for a sentence-pair head, whichever task it learned
        return _lin(f"heads.{kind}.classifier", "sop_classifier.classifier" if model_type == "albert"
                    else "cls.seq_relationship")
    if kind == "rtd":
        if model_type != "electra":
            raise CheckpointError(f"{model_type} has no replaced-token-detection head in the Hugging Face layout")
        return (_lin("heads.rtd.dense", "discriminator_predictions.dense")
                + _lin("heads.rtd.out", "discriminator_predictions.dense_prediction"))
    if kind == "qa":
        return _lin("heads.qa.out", "qa_outputs")
    if kind == "choice":
        summary = [] if head.dense is None else _lin("heads.choice.dense", "sequence_summary.summary")
        return summary + _lin("heads.choice.out", "classifier")
    if kind == "tagger":
        return _lin("heads.tagger.out", "classifier")
    if kind == "classifier":
        if head.style == "first-token":  # RobertaClassificationHead, ElectraClassificationHead
            return _lin("heads.classifier.dense", "classifier.dense") + _lin("heads.classifier.out", "classifier.out_proj")
        if head.style == "last-token":  # GPT2ForSequenceClassification
            return _lin("heads.classifier.out", "score", bias=False)
        return _lin("heads.classifier.out", "classifier")
    if kind == "lm":
        return []  # tied to the input embeddings
    raise ValueError(kind)


# Tied copies transformers may store; recomputed from the embeddings, never read.
_TIED = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "lm_head.decoder.weight",
         "lm_head.decoder.bias", "predictions.decoder.weight", "predictions.decoder.bias", "lm_head.weight",
         "generator_lm_head.weight")

# Signature tensors that tell which heads a checkpoint has ("pair": the layout's sentence-pair head).
_HEAD_SIGNATURES = {
    "mlm": ("cls.predictions.bias", "lm_head.bias", "predictions.bias", "generator_lm_head.bias"),
    "pair": ("cls.seq_relationship.weight", "sop_classifier.classifier.weight"),
    "rtd": ("discriminator_predictions.dense_prediction.weight",),
    "qa": ("qa_outputs.weight",),
    "classifier": ("classifier.out_proj.weight", "score.weight"),
}


def _heads_in_checkpoint(keys: set[str], config: ModelConfig, arch_task: str | None) -> list[str]:
    """The heads a checkpoint holds; its sentence-pair head is the config's ``pair_head`` (NSP or SOP)."""
    heads = [k for k, sigs in _HEAD_SIGNATURES.items() if any(s in keys for s in sigs)]
    if "pair" in heads:
        heads.remove("pair")
        if config.pair_head != "none":
            heads.append(config.pair_head)
    if "classifier.weight" in keys:  # shared by three HF heads; the architecture tells which
        heads.append({"multiple-choice": "choice", "token-classification": "tagger"}.get(arch_task or "", "classifier"))
    if config.causal and arch_task == "causal-lm":
        heads.append("lm")
    return list(dict.fromkeys(heads))


def architecture(raw: dict[str, Any]) -> str | None:
    """The first entry of config.json's ``architectures`` (None when absent or not a list of names)."""
    archs = raw.get("architectures")
    return archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None


def _to_ours(tensors: list[torch.Tensor], op: str) -> torch.Tensor:
    if op == "copy":
        return tensors[0]
    if op == "T":
        return tensors[0].t().contiguous()
    return torch.cat(tensors, dim=0)


def _to_theirs(value: torch.Tensor, rule: Rule) -> list[torch.Tensor]:
    if rule.op == "copy":
        return [value]
    if rule.op == "T":
        return [value.t().contiguous()]
    return [t.contiguous() for t in value.chunk(len(rule.theirs), dim=0)]


# ----------------------------------------------------------------------------- save
def hf_state_dict(model: PlmModel, only_task_heads: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """The model's tensors under Hugging Face names, and the architecture they form."""
    c = model.config
    heads = [h for h in model.heads if (h in model.active_heads or not only_task_heads)]
    is_base = model.task is None and not heads
    prefix = "" if is_base else body_prefix(c.model_type)
    params = dict(model.named_parameters())
    out: dict[str, torch.Tensor] = {}
    rules = [Rule(r.ours, tuple(prefix + t for t in r.theirs), r.op) for r in body_rules(model)]
    # Whether the task's HF class builds the pooler: the base model as its layout has it, a task's class when
    # one of its heads reads it (NSP/SOP, a pooled classifier or multiple-choice head).
    class_pooler = c.has_pooler if model.task is None else any(model.heads[k].uses_pooler for k in model.active_heads)
    if only_task_heads and not class_pooler:
        # the task's HF class has no pooler: leave it out so transformers loads the folder cleanly
        rules = [r for r in rules if not r.ours.startswith("body.pooler.")]
    for kind in heads:
        rules += head_rules(c.model_type, kind, model.heads[kind])
    for rule in rules:
        value = params[rule.ours].detach()
        for name, t in zip(rule.theirs, _to_theirs(value, rule)):
            out[name] = t.cpu().contiguous()
    if not only_task_heads:  # a task export holds exactly what its HF class expects
        for k, v in model.passthrough.get("body", {}).items():
            out.setdefault(prefix + k, v)
        for k, v in model.passthrough.get("top", {}).items():
            out.setdefault(k, v)
    return out, architecture_for(c, model.task, model.active_heads)
