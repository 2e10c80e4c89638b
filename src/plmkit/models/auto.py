"""Loading any plmkit model folder: the one place that knows every model kind.

:data:`LOADERS` maps a folder's ``config.json`` ``model_type`` to the function that loads it —
the Transformer families (bert, roberta, albert, gpt2, electra: :func:`load_transformer`), ELMo
(:func:`plmkit.models.elmo.load_elmo`) and the BiLSTM task models (:func:`plmkit.models.tagger.load_tagger`).
:func:`from_pretrained` reads ``model_type`` and dispatches. A new model kind adds its loader here.

Imports point one way: ``hf`` (names) ← ``model`` (PlmModel, its saving) ← ``auto``; ``elmo`` / ``tagger`` ← ``auto``;
every one of them reads and writes its files through ``folder``.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import MODEL_TYPES, ModelConfig, check_fits, estimate_parameters, format_bytes
from ..errors import CheckpointError, UsageError
from .electra import GENERATOR_DIR, ElectraPretrainingModel
from .elmo import load_elmo
from .facts import model_device
from .folder import CONFIG_NAME, WEIGHTS_NAME, check_tensor, header_state, load_state, read_config
from .hf import (_TIED, Rule, _heads_in_checkpoint, _to_ours, _to_theirs, architecture, body_prefix, body_rules,
                 config_from_hf, head_rules, pooler_name, task_for_architecture)
from .model import PlmModel, normalize_task, task_heads
from .tagger import load_tagger

_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|h)\.(\d+)\.")


def check_model_size(config: ModelConfig, state: dict[str, torch.Tensor], source: str, folder: Path,
                     meta: bool) -> None:
    """Before a model is built: its config must not describe more than the checkpoint holds, and the
    model plus the loaded weights must fit in memory (CheckpointError / ConfigError with the estimate)."""
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
        need = 4 * estimate_parameters(config) + sum(t.numel() * t.element_size() for t in state.values())
        check_fits(need, f"loading {folder} ({estimate_parameters(config):,} parameters, "
                         f"{format_bytes(need)} with the weights read)", "use a machine with more memory")


def load_transformer(folder: Path, task: str | None = "auto", num_labels: int | None = None,
                     id2label: dict[int, str] | None = None, *, meta: bool = False, **config_overrides: Any) -> PlmModel:
    """A bert / roberta / albert / gpt2 / electra folder (plmkit- or transformers-written) as a :class:`PlmModel`
    (see :func:`from_pretrained`; its warnings name the caller of :func:`from_pretrained`)."""
    folder = Path(folder)
    raw = read_config(folder)
    config = config_from_hf(raw, source=str(folder / CONFIG_NAME))
    if config_overrides:
        config = config.replace(**config_overrides)
    arch_task = task_for_architecture(architecture(raw))
    headers = header_state(folder)
    check_model_size(config, headers, str(folder / CONFIG_NAME), folder, meta)
    state = headers if meta else load_state(folder)
    prefix = body_prefix(config.model_type)
    prefixed = any(k.startswith(prefix) for k in state)
    present = _heads_in_checkpoint(set(state), config, arch_task)
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

    pooler_key = (prefix if prefixed else "") + pooler_name(config.model_type)
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
    # A checkpoint without the pooler (BertForMaskedLM, what run_mlm.py saves) fine-tunes a pooled classifier
    # as transformers does: the pooler starts newly initialised, like the task's head, and the warning says so.
    fresh_pooler = [] if has_pooler else [k for k in expected if k.startswith("body.pooler.")]
    for ours, rule in expected.items():
        if ours in fresh_pooler:
            continue
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
                      f"unchanged for saving: {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}", stacklevel=3)
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
    if new_heads or fresh_pooler:
        params = fresh_pooler + [n for n, _ in model.named_parameters()
                                 if any(n.startswith(f"heads.{h}.") for h in new_heads)]
        needs = " and ".join(([f"head(s) {', '.join(new_heads)}"] if new_heads else [])
                             + (["the pooler"] if fresh_pooler else []))
        warnings.warn(f"{folder}: task {task!r} needs {needs} that the checkpoint does not "
                      f"have; newly initialised parameters: {', '.join(params)} — train them before use", stacklevel=3)
    model.eval()
    model.loaded_from = str(folder)
    return model


def load_electra_pretraining(folder: str | os.PathLike, config: ModelConfig | None = None) -> ElectraPretrainingModel:
    """An ELECTRA pretraining pair from a folder its :meth:`~ElectraPretrainingModel.save_pretrained` wrote: the
    discriminator in ``folder``, the generator in ``folder/generator``, their embeddings shared again (they were
    saved from one table, so the generator's copy must equal the discriminator's). ``config``: the run's
    discriminator config (its generator_size and rtd_weight; default: the folder's)."""
    folder = Path(folder)
    gen_folder = folder / GENERATOR_DIR
    if not (gen_folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{folder} has no ELECTRA generator ({gen_folder} with config.json); an ELECTRA "
                              "pretraining checkpoint holds the discriminator and, in generator/, the generator")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the run's own checkpoint: its heads are the ones it saved
        disc = load_transformer(folder, task="pretraining")
        gen = load_transformer(gen_folder, task="masked-lm")
    for name, p in disc.body.embeddings.named_parameters():
        if not torch.equal(p, dict(gen.body.embeddings.named_parameters())[name]):
            raise CheckpointError(f"{gen_folder}: its embeddings ({name}) differ from the discriminator's in {folder}; "
                                  "ELECTRA's generator shares them — the two folders do not belong together")
    model = ElectraPretrainingModel(config or disc.config, generator=gen, discriminator=disc)
    model.loaded_from = str(folder)
    return model


def scoring_model(model: Any) -> Any:
    """The model that scores text for ``model`` (``plmkit score``): the model itself, or for an ELECTRA
    discriminator, which has no language-model head, the generator saved beside it (``generator/`` in its
    folder, as ``plmkit export`` writes it), on the discriminator's device."""
    if not isinstance(model, PlmModel) or model.lm_kind is not None or "rtd" not in model.heads:
        return model
    folder = getattr(model, "loaded_from", None)
    gen_folder = Path(folder) / GENERATOR_DIR if folder else None
    if gen_folder is None or not (gen_folder / CONFIG_NAME).is_file():
        where = f"{gen_folder} does not exist" if gen_folder else "this model was not loaded from a folder"
        raise UsageError(f"{folder or 'the model'} is an ELECTRA discriminator: it judges tokens but has no language "
                         f"model to score text with. Its generator (a masked LM) scores text, and {where}; pass the "
                         "generator folder as --model, or the folder 'plmkit export' wrote for an ELECTRA run "
                         "(it puts the generator in generator/)")
    generator = from_pretrained(gen_folder, task="masked-lm")
    return generator.to(model_device(model))


def _load_elmo(folder: Path, task: str | None = "auto", num_labels: int | None = None,
               id2label: dict[int, str] | None = None, *, meta: bool = False, **config_overrides: Any):
    return load_elmo(folder, meta=meta)  # ELMo shares the folder shape, not the class


def _load_tagger(folder: Path, task: str | None = "auto", num_labels: int | None = None,
                 id2label: dict[int, str] | None = None, *, meta: bool = False, **config_overrides: Any):
    return load_tagger(folder, meta=meta)  # the BiLSTM task models (with or without ELMo)


#: ``model_type`` → loader(folder, task, num_labels, id2label, *, meta, **config_overrides).
LOADERS: dict[str, Callable[..., Any]] = {
    **dict.fromkeys(MODEL_TYPES, load_transformer),  # bert, roberta, albert, gpt2, electra
    "elmo": _load_elmo,
    "bilstm-tagger": _load_tagger,
    "bilstm-classifier": _load_tagger,
}


def loader_for(model_type: Any) -> Callable[..., Any]:
    """The loader of a ``model_type``; any other value goes to :func:`load_transformer`, whose config check
    names the model types plmkit reads."""
    return LOADERS.get(model_type, load_transformer) if isinstance(model_type, str) else load_transformer


def from_pretrained(path: str | os.PathLike, task: str | None = "auto", num_labels: int | None = None,
                    id2label: dict[int, str] | None = None, *, meta: bool = False, **config_overrides: Any):
    """Load any plmkit or Hugging Face model folder (bert, roberta, albert, gpt2, electra; elmo; bilstm-tagger/-classifier).

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
    return loader_for(raw.get("model_type"))(folder, task, num_labels, id2label, meta=meta, **config_overrides)
