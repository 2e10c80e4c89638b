"""Hugging Face checkpoints in and out: config keys and parameter names for bert, roberta, albert, gpt2.

A plmkit model folder *is* a Hugging Face folder (DESIGN §3): ``config.json`` with HF keys (plmkit
extras under ``"plmkit"``), ``model.safetensors`` with HF parameter names, and the tokenizer files.
``transformers.AutoModel*.from_pretrained`` opens what plmkit writes, and plmkit opens what
transformers writes, losing nothing: tensors plmkit does not use (old ``position_ids`` buffers,
GPT-2's causal-mask buffers, unknown heads) are carried through and written back unchanged.

Layout differences handled here:

* plmkit fuses query/key/value into one ``qkv`` projection; HF BERT-family checkpoints store them
  separately (split / concatenated along dim 0, bit-exact).
* GPT-2 stores linear layers as ``Conv1D`` (weight transposed).
* Tied decoders (``cls.predictions.decoder``, ``lm_head``) are not stored, as transformers does.

Weights are read only through safetensors; nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .._files import atomic_write
from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError
from .model import PlmModel, normalize_task, task_heads

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

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
              "reorder_and_upcast_attn", "is_decoder", "add_cross_attention", "use_cache", "gradient_checkpointing"}
# plmkit fields that the model_type already implies; written under "plmkit" only when they differ.
_VARIANT_FIELDS = ("embedding_size", "share_layers", "causal", "pre_norm", "position_offset", "type_vocab_size")


def _variant_defaults(model_type: str, pad_token_id: int | None) -> dict[str, Any]:
    return {
        "bert": dict(share_layers=False, causal=False, pre_norm=False, position_offset=0),
        "roberta": dict(share_layers=False, causal=False, pre_norm=False, position_offset=(pad_token_id or 0) + 1),
        "albert": dict(share_layers=True, causal=False, pre_norm=False, position_offset=0),
        "gpt2": dict(share_layers=False, causal=True, pre_norm=True, position_offset=0, type_vocab_size=0),
    }[model_type]


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
    if not isinstance(model_type, str) or model_type not in ("bert", "roberta", "albert", "gpt2"):
        raise CheckpointError(
            f"{source}: unknown model_type {model_type!r}; plmkit loads bert, roberta, albert and gpt2 "
            "folders (and its own elmo folders)" + ("" if model_type else " — the key is missing")
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
            kw["embedding_size"] = d.get("embedding_size", 128)
            if d.get("classifier_dropout_prob") is not None:
                kw["classifier_dropout"] = d["classifier_dropout_prob"]
        elif d.get("classifier_dropout") is not None:
            kw["classifier_dropout"] = d["classifier_dropout"]
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
    if c.id2label is not None or c.num_labels != 2:
        labels = c.id2label or {i: f"LABEL_{i}" for i in range(c.num_labels)}
        d["id2label"] = {str(i): v for i, v in labels.items()}
        d["label2id"] = {v: i for i, v in labels.items()}
    d["tie_word_embeddings"] = True
    d.update(c.hf_extra)
    defaults = _variant_defaults(c.model_type, c.pad_token_id)
    variant = {k: getattr(c, k) for k in _VARIANT_FIELDS
               if k in defaults and getattr(c, k) != defaults[k]}
    if c.model_type != "albert" and c.embedding_size not in (None, c.hidden_size):
        variant["embedding_size"] = c.embedding_size
    plm: dict[str, Any] = {"format": 1}
    if variant:
        plm["model"] = variant
        warnings.warn(f"config fields {sorted(variant)} differ from what model_type={c.model_type!r} implies; "
                      "plmkit reloads them exactly but transformers will not", stacklevel=3)
    if extra:
        plm.update(extra)
    d["plmkit"] = plm
    return d


# ----------------------------------------------------------------------------- tasks ↔ classes
_CLASS_PREFIX = {"bert": "Bert", "roberta": "Roberta", "albert": "Albert", "gpt2": "GPT2"}
_TASK_SUFFIX = {None: "Model", "pretraining": "ForPreTraining", "masked-lm": "ForMaskedLM",
                "sequence-classification": "ForSequenceClassification", "question-answering": "ForQuestionAnswering",
                "multiple-choice": "ForMultipleChoice", "token-classification": "ForTokenClassification"}


def architecture_for(config: ModelConfig, task: str | None) -> str:
    prefix = _CLASS_PREFIX[config.model_type]
    if config.model_type == "gpt2" and task in ("causal-lm", "pretraining"):
        return "GPT2LMHeadModel"
    if config.model_type == "roberta" and task == "pretraining":
        return "RobertaForMaskedLM"  # RoBERTa has no NSP: its pretraining model is the MLM
    return prefix + _TASK_SUFFIX.get(task, "Model")


def class_has_pooler(model_type: str, task: str | None) -> bool:
    """Whether the Hugging Face class for ``task`` builds the pooler (so a saved folder must hold it)."""
    if model_type == "gpt2":
        return False
    if task is None or task == "multiple-choice":
        return True
    if task == "pretraining":
        return model_type != "roberta"  # RoBERTa's pretraining class is RobertaForMaskedLM
    if task == "sequence-classification":
        return model_type != "roberta"  # RobertaClassificationHead reads <s> directly
    return False  # masked-lm, question-answering, token-classification, causal-lm


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
    return {"bert": "bert.", "roberta": "roberta.", "albert": "albert.", "gpt2": "transformer."}[model_type]


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
    if body.embed_proj is not None:
        raise CheckpointError(f"{c.model_type} checkpoints have no embedding projection; embedding_size must "
                              "equal hidden_size (use model_type albert for factorized embeddings)")
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
        base = {"bert": "cls.predictions", "roberta": "lm_head", "albert": "predictions"}.get(model_type)
        if base is None:
            raise CheckpointError(f"{model_type} has no masked-LM head in the Hugging Face layout")
        dense = f"{base}.transform.dense" if model_type == "bert" else f"{base}.dense"
        norm = {"bert": f"{base}.transform.LayerNorm", "roberta": f"{base}.layer_norm",
                "albert": f"{base}.LayerNorm"}[model_type]
        return _lin(f"heads.mlm.dense", dense) + _LN("heads.mlm.norm", norm) + [Rule("heads.mlm.bias", (f"{base}.bias",))]
    if kind == "nsp":
        return _lin("heads.nsp.classifier", "cls.seq_relationship")
    if kind == "sop":
        return _lin("heads.sop.classifier", "sop_classifier.classifier")
    if kind == "qa":
        return _lin("heads.qa.out", "qa_outputs")
    if kind in ("choice", "tagger"):
        return _lin(f"heads.{kind}.out", "classifier")
    if kind == "classifier":
        if model_type == "roberta":
            return _lin("heads.classifier.dense", "classifier.dense") + _lin("heads.classifier.out", "classifier.out_proj")
        if model_type == "gpt2":
            return _lin("heads.classifier.out", "score", bias=False)
        return _lin("heads.classifier.out", "classifier")
    if kind == "lm":
        return []  # tied to the input embeddings
    raise ValueError(kind)


# Tied copies transformers may store; recomputed from the embeddings, never read.
_TIED = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "lm_head.decoder.weight",
         "lm_head.decoder.bias", "predictions.decoder.weight", "predictions.decoder.bias", "lm_head.weight")

# Signature tensors that tell which heads a checkpoint has.
_HEAD_SIGNATURES = {
    "mlm": ("cls.predictions.bias", "lm_head.bias", "predictions.bias"),
    "nsp": ("cls.seq_relationship.weight",),
    "sop": ("sop_classifier.classifier.weight",),
    "qa": ("qa_outputs.weight",),
    "classifier": ("classifier.out_proj.weight", "score.weight"),
}


def _heads_in_checkpoint(keys: set[str], model_type: str, arch_task: str | None) -> list[str]:
    heads = [k for k, sigs in _HEAD_SIGNATURES.items() if any(s in keys for s in sigs)]
    if "classifier.weight" in keys:  # shared by three HF heads; the architecture tells which
        heads.append({"multiple-choice": "choice", "token-classification": "tagger"}.get(arch_task or "", "classifier"))
    if model_type == "gpt2" and arch_task == "causal-lm":
        heads.append("lm")
    return list(dict.fromkeys(heads))


# ----------------------------------------------------------------------------- load
def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); fix the file or "
                              "restore it from the model's source") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not a JSON text file (byte {e.start}: {e.reason}; it may be binary, e.g. a "
                              "pickle); plmkit reads configuration only as JSON — restore the file from the model's "
                              "source") from None


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"model folder {folder} does not exist; give a folder with config.json and "
                              "model.safetensors (a plmkit run's export or a Hugging Face model folder)")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is a file, not a model folder; pass the folder that holds config.json")
    cfg = folder / CONFIG_NAME
    if not cfg.exists():
        raise CheckpointError(f"{folder} has no config.json, so it is not a model folder; give the folder "
                              "written by save_pretrained / plmkit export / transformers")
    data = _read_json(cfg)
    if not isinstance(data, dict):
        from ..errors import excerpt, type_name

        raise CheckpointError(f"{cfg}: expected a JSON object of settings {{\"model_type\": ..., ...}}, got "
                              f"{type_name(data)} {excerpt(data)}; restore the file from the model's source")
    return data


def architecture(raw: dict[str, Any]) -> str | None:
    """The first entry of config.json's ``architectures`` (None when absent or not a list of names)."""
    archs = raw.get("architectures")
    return archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None


INDEX_NAME = "model.safetensors.index.json"


def _read_index(index: Path) -> list[str]:
    """The shard file names of ``model.safetensors.index.json``, checked: an object whose ``weight_map`` maps
    each tensor name (once) to a shard file inside the folder that exists."""
    from ..errors import excerpt, type_name

    hint = "restore it from the model's source (or merge the shards into one model.safetensors)"
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in items:
            if k in seen:
                duplicates.append(k)
            seen[k] = v
        return seen

    try:
        with open(index, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{index}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {hint}") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{index}: not a JSON text file (byte {e.start}: {e.reason}); {hint}") from None
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{index}: cannot be read as JSON ({excerpt(str(e))}); {hint}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{index}: expected a JSON object with a 'weight_map', got {type_name(data)} "
                              f"({excerpt(data)}); {hint}")
    wmap = data.get("weight_map")
    if not isinstance(wmap, dict) or not wmap:
        found = "no 'weight_map'" if "weight_map" not in data else f"a 'weight_map' that is {type_name(wmap)}"
        raise CheckpointError(f"{index}: {found}; expected 'weight_map': {{tensor name: shard file}}; {hint}")
    if duplicates:
        raise CheckpointError(f"{index}: weight_map lists tensor {excerpt(duplicates[0])} twice; each tensor is in "
                              f"one shard — {hint}")
    folder = index.parent.resolve()
    names: list[str] = []
    for key, shard in wmap.items():
        if not isinstance(shard, str):
            raise CheckpointError(f"{index}: weight_map[{excerpt(key)}] is {type_name(shard)} ({excerpt(shard)}), "
                                  f"expected a shard file name; {hint}")
        if not shard or "/" in shard or "\\" in shard or shard in (".", "..") or "\x00" in shard \
                or not shard.endswith(".safetensors"):
            raise CheckpointError(f"{index}: weight_map[{excerpt(key)}] names {excerpt(shard)}; a shard must be a "
                                  "*.safetensors file name in the model folder itself (no '/', no '..'); " + hint)
        f = index.parent / shard
        if f.resolve().parent != folder:
            raise CheckpointError(f"{index}: shard {excerpt(shard)} resolves outside {index.parent}; {hint}")
        if shard not in names:
            if not f.is_file():
                raise CheckpointError(f"{index}: shard {excerpt(shard)} (of tensor {excerpt(key)}) is missing from "
                                      f"{index.parent}; copy every shard file, or {hint}")
            names.append(shard)
    return sorted(names)


def weight_files(folder: Path) -> list[Path]:
    """``model.safetensors``, or the shards its checked index names; CheckpointError when there are none."""
    files = [folder / WEIGHTS_NAME]
    index = folder / INDEX_NAME
    if not files[0].exists() and index.exists():
        files = [folder / n for n in _read_index(index)]
    if not files[0].exists():
        pickled = [n for n in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack") if (folder / n).exists()]
        hint = (f" It has {pickled[0]}, which plmkit will not unpickle; convert it once with transformers: "
                "AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)") if pickled else ""
        raise CheckpointError(f"{folder} has no {WEIGHTS_NAME}.{hint}")
    return files


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def read_header(f: Path) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Name → (dtype, shape) of every tensor in a safetensors file, from its JSON header alone.

    Nothing but the header is read, so this is instant however large the weights are; the header is
    checked as safetensors checks it (length, dtypes, shapes, offsets within the file), so a truncated
    or foreign file is a CheckpointError here too.
    """
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{f}: cannot read safetensors file ({why}); the file is truncated or corrupt — "
                               "restore it or use an earlier checkpoint")

    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > min(size - 8, _MAX_HEADER):
                raise bad("no valid header length")
            header = json.loads(fh.read(n).decode("utf-8"))
    except CheckpointError:
        raise
    except OSError:
        raise
    except (ValueError, RecursionError):  # JSON or UTF-8
        raise bad("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data_size = size - 8 - n
    out: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[entry["dtype"]]
            shape = tuple(entry["shape"])
            start, end = entry["data_offsets"]
            ok = all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in (*shape, start, end))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise bad(f"tensor {name[:60]!r} has no valid dtype, shape and offsets")
        numel = 1
        for d in shape:
            numel *= d
        if end - start != numel * dtype.itemsize or end > data_size:
            raise bad(f"tensor {name[:60]!r} does not fit in the file")
        out[name] = (dtype, shape)
    return out


def header_state(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors as meta tensors (shape and dtype, no data) from the safetensors headers."""
    state: dict[str, torch.Tensor] = {}
    for f in weight_files(folder):
        for name, (dtype, shape) in read_header(f).items():
            state[name] = torch.empty(shape, dtype=dtype, device="meta")
    return state


_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|h)\.(\d+)\.")


def check_model_size(config: ModelConfig, state: dict[str, torch.Tensor], source: str, folder: Path,
                     meta: bool) -> None:
    """Before a model is built: its config must not describe more than the checkpoint holds, and the
    model plus the loaded weights must fit in memory (CheckpointError / ConfigError with the estimate)."""
    from ..config import estimate_parameters, format_bytes

    stored = sum(t.numel() for t in state.values())
    body = estimate_parameters(config, body_only=True)
    layers = {int(m.group(1)) for k in state for m in [_LAYER_INDEX.search(k)] if m}
    if layers and not config.share_layers and config.num_hidden_layers > len(layers):
        raise CheckpointError(f"{source} says num_hidden_layers={config.num_hidden_layers} but {folder} holds the "
                              f"weights of {len(layers)} layer(s); the config does not belong to these weights — "
                              "check config.json or re-export the model")
    if body > 4 * stored + 1_000_000:  # far beyond the weights (a small mismatch gets the tensor-by-tensor message)
        raise CheckpointError(f"{source} describes a model of at least {body:,} parameters (hidden_size="
                              f"{config.hidden_size}, num_hidden_layers={config.num_hidden_layers}, vocab_size="
                              f"{config.vocab_size}) but {folder} holds only {stored:,} weights; the config does "
                              "not belong to these weights — check config.json or re-export the model")
    if not meta:
        from ..config import check_fits

        need = 4 * estimate_parameters(config) + sum(t.numel() * t.element_size() for t in state.values())
        check_fits(need, f"loading {folder} ({estimate_parameters(config):,} parameters, "
                         f"{format_bytes(need)} with the weights read)", "use a machine with more memory")


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` (or sharded ``model-0000x-of-0000y.safetensors``).

    The sharded index is checked (see :func:`_read_index`); a tensor found in two shards, or not in
    the shard the index names, is a CheckpointError, as is a file safetensors cannot parse.
    """
    files = weight_files(folder)
    index = folder / INDEX_NAME
    wmap: dict[str, str] = {}
    if files[0].name != WEIGHTS_NAME:
        with open(index, encoding="utf-8") as f:
            wmap = json.load(f)["weight_map"]
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as sf:
                for k in sf.keys():
                    if k in state:
                        raise CheckpointError(f"{f}: tensor {k} is also in {origin[k].name}; a tensor may be in one "
                                              "shard only — restore the files from the model's source")
                    state[k] = sf.get_tensor(k)
                    origin[k] = f
        except CheckpointError:
            raise
        except Exception as e:  # SafetensorError, OSError, ValueError, or anything a malformed header raises
            from ..errors import excerpt

            raise CheckpointError(f"{f}: cannot read safetensors file ({excerpt(str(e), 160)}); the file is truncated "
                                  "or corrupt — restore it or use an earlier checkpoint") from None
    for k, shard in wmap.items():
        if k not in state:
            raise CheckpointError(f"{index}: tensor {k} should be in {shard} but is not; the index and the shards "
                                  "do not match — restore them from the model's source")
    return state


def read_word_list(file: Path, what: str) -> list[str]:
    """A one-word-per-line vocabulary file of a model folder (ELMo's ``elmo_vocab.txt``, a tagger's words):
    UTF-8, non-empty, each word once — else a CheckpointError naming the file and line."""
    from ..errors import excerpt

    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CheckpointError(f"{file}, line {line}: not UTF-8 text ({e.reason}); "
                              f"{file.name} holds {what}, one word per line — restore it from the folder the model "
                              "was saved to") from None
    words = text.split("\n")
    if words and words[-1] == "":
        words.pop()
    if not words:
        raise CheckpointError(f"{file}: empty; it holds {what}, one word per line — restore it from the folder the "
                              "model was saved to")
    seen: dict[str, int] = {}
    for i, w in enumerate(words, start=1):
        if w in seen:
            raise CheckpointError(f"{file}, line {i}: word {excerpt(w)} already appears on line {seen[w]}; each word "
                                  "may appear once — restore the file from the folder the model was saved to")
        seen[w] = i
    return words


def check_tensor(file: Path, name: str, value: torch.Tensor, like: torch.Tensor, source: str = CONFIG_NAME) -> None:
    """A loaded tensor against the model's own: same shape, a dtype of the same kind (floating point for
    floating parameters, integer for integer buffers), and finite values. CheckpointError naming the tensor."""
    if tuple(value.shape) != tuple(like.shape):
        raise CheckpointError(f"{file}: tensor {name} has shape {tuple(value.shape)} but {source} implies "
                              f"{tuple(like.shape)}; the weights do not match this config — check {source} or "
                              "re-export the model")
    if like.is_floating_point():
        if not value.is_floating_point():
            raise CheckpointError(f"{file}: tensor {name} has dtype {str(value.dtype).replace('torch.', '')}, expected "
                                  "floating-point weights; the file is corrupt or not a model's weights")
        if value.numel() and not value.is_meta and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{file}: tensor {name} holds {bad:,} NaN or infinite value(s); the weights are "
                                  "damaged (a diverged run?) — use an earlier checkpoint")
    elif like.dtype != value.dtype and (value.is_floating_point() or value.is_complex()
                                        or (like.dtype == torch.bool) != (value.dtype == torch.bool)):
        raise CheckpointError(f"{file}: tensor {name} has dtype {str(value.dtype).replace('torch.', '')}, expected "
                              f"{str(like.dtype).replace('torch.', '')}")


def from_pretrained(path: str | os.PathLike, task: str | None = "auto", num_labels: int | None = None,
                    id2label: dict[int, str] | None = None, *, meta: bool = False, **config_overrides: Any):
    """Load any plmkit or Hugging Face model folder (bert, roberta, albert, gpt2; elmo; bilstm-tagger/-classifier).

    ``task="auto"`` keeps the task the checkpoint was saved for (its ``architectures``). Naming
    another task keeps the checkpoint's heads and adds the task's heads, newly initialised, with a
    warning that lists their parameters. ``num_labels`` / ``id2label`` size a new classifier.

    The config is checked and the model's size computed from it before anything is allocated: a config
    that describes more than the weights hold, or a model that does not fit in memory, is refused.
    ``meta=True`` builds the model on PyTorch's meta device from the safetensors headers alone (shapes
    and parameter counts checked, no weight read or allocated: ``plmkit info``).
    """
    folder = Path(path)
    raw = read_config(folder)
    if raw.get("model_type") == "elmo":
        from .elmo import load_elmo  # ELMo shares the folder shape, not the class

        return load_elmo(folder, meta=meta)
    if raw.get("model_type") in ("bilstm-tagger", "bilstm-classifier"):
        from .tagger import load_tagger  # the BiLSTM task models (with or without ELMo)

        return load_tagger(folder, meta=meta)
    config = config_from_hf(raw, source=str(folder / CONFIG_NAME))
    if config_overrides:
        config = config.replace(**config_overrides)
    arch_task = task_for_architecture(architecture(raw))
    headers = header_state(folder)
    check_model_size(config, headers, str(folder / CONFIG_NAME), folder, meta)
    state = headers if meta else load_state(folder)
    prefix = body_prefix(config.model_type)
    prefixed = any(k.startswith(prefix) for k in state)
    present = _heads_in_checkpoint(set(state), config.model_type, arch_task)
    if task == "auto":
        task = arch_task
    task = normalize_task(task)

    label_change = False
    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
        num_labels = len(id2label)
    if num_labels is not None and num_labels != config.num_labels:
        label_change = True
        config.num_labels = num_labels
    if id2label is not None:
        config.id2label = id2label
    elif label_change:
        config.id2label = None

    pooler_key = (prefix if prefixed else "") + ("pooler.weight" if config.model_type == "albert" else "pooler.dense.weight")
    has_pooler = pooler_key in state
    wanted = task_heads(task, config)
    keep = [h for h in present if not (label_change and h in ("classifier", "tagger") and h in wanted)]
    with torch.device("meta") if meta else contextlib.nullcontext():  # meta: shapes only, nothing allocated
        model = PlmModel(config, task=task, heads=keep, add_pooler=has_pooler)

    new_heads = [h for h in wanted if h not in keep and h != "lm"]
    expected: dict[str, Rule] = {}
    for rule in body_rules(model):
        theirs = tuple((prefix + t) if prefixed else t for t in rule.theirs)
        expected[rule.ours] = Rule(rule.ours, theirs, rule.op)
    for kind in keep:
        for rule in head_rules(config.model_type, kind, model.heads[kind]):
            expected[rule.ours] = rule

    own = dict(model.named_parameters())
    used: set[str] = set()
    missing: list[str] = []
    converted: dict[str, torch.Tensor] = {}
    for ours, rule in expected.items():
        if not all(t in state for t in rule.theirs):
            missing.extend(t for t in rule.theirs if t not in state)
            continue
        tensors = [state[t] for t in rule.theirs]
        for t, tensor in zip(rule.theirs, tensors):
            if not tensor.is_floating_point():
                raise CheckpointError(f"{folder / WEIGHTS_NAME}: tensor {t} has dtype "
                                      f"{str(tensor.dtype).replace('torch.', '')}, expected floating-point weights; "
                                      "the file is corrupt or not a model's weights")
        value = _to_ours(tensors, rule.op)
        target = own[ours]
        if tuple(value.shape) != tuple(target.shape):
            found = [tuple(t.shape) for t in tensors]
            wanted_shapes = [tuple(t.shape) for t in _to_theirs(target, rule)]
            raise CheckpointError(
                f"{folder / WEIGHTS_NAME}: tensor {', '.join(rule.theirs)} has shape "
                f"{found[0] if len(found) == 1 else found} but config.json implies "
                f"{wanted_shapes[0] if len(wanted_shapes) == 1 else wanted_shapes}; the weights do not match "
                "this config — check config.json (sizes, vocab_size) or re-export the model"
            )
        check_tensor(folder / WEIGHTS_NAME, ", ".join(rule.theirs), value, target)  # dtype kind, finiteness
        converted[ours] = value
        used.update(rule.theirs)
    if missing:
        raise CheckpointError(f"{folder / WEIGHTS_NAME} is missing tensor(s) {', '.join(missing[:6])}"
                              f"{' …' if len(missing) > 6 else ''} that config.json requires; the file is "
                              "incomplete or belongs to another model")
    with torch.no_grad():
        for ours, value in converted.items():
            own[ours].copy_(value)
    leftovers = {k: v for k, v in state.items() if k not in used and k not in _TIED}
    if label_change:
        dropped = [k for k in leftovers if k.startswith(("classifier.", "score."))]
        for k in dropped:
            leftovers.pop(k)
    benign = [k for k in leftovers if k.endswith(("position_ids", "attn.bias", "attn.masked_bias"))]
    unknown = [k for k in leftovers if k not in benign]
    if unknown:
        warnings.warn(f"{folder / WEIGHTS_NAME}: {len(unknown)} tensor(s) plmkit does not use were kept "
                      f"unchanged for saving: {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}", stacklevel=2)
    # Remember body tensors relative to the body so they follow a change of prefix on save.
    body_pass, top_pass = {}, {}
    for k, v in leftovers.items():
        if prefixed and k.startswith(prefix):
            body_pass[k[len(prefix):]] = v
        elif not prefixed:
            body_pass[k] = v
        else:
            top_pass[k] = v
    model.passthrough = {"body": body_pass, "top": top_pass}
    if new_heads:
        params = [n for n, _ in model.named_parameters() if any(n.startswith(f"heads.{h}.") for h in new_heads)]
        warnings.warn(f"{folder}: task {task!r} needs head(s) {', '.join(new_heads)} that the checkpoint does not "
                      f"have; newly initialised parameters: {', '.join(params)} — train them before use", stacklevel=2)
    model.eval()
    model.loaded_from = str(folder)
    return model


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
    if only_task_heads and not class_has_pooler(c.model_type, model.task):
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
    return out, architecture_for(c, model.task)


def save_pretrained(model: PlmModel, path: str | os.PathLike, only_task_heads: bool = False, tokenizer=None,
                    extra: dict[str, Any] | None = None) -> Path:
    folder = Path(path)
    state, arch = hf_state_dict(model, only_task_heads=only_task_heads)
    plm_extra = {"task": model.task, **(extra or {})}
    hf_config = config_to_hf(model.config, arch, extra=plm_extra)
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(hf_config, indent=2) + "\n"))
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder
