"""Pretraining: a preset + a prepared corpus → a model trained with its paper's objective.

``plmkit pretrain --preset bert-mini --data prepared/ --out runs/bert`` resolves three config
sections — ``model`` (:class:`~plmkit.config.ModelConfig`), ``data``
(:class:`~plmkit.data.objectives.DataConfig`: masking, pair objective, packing) and ``train``
(:class:`~plmkit.training.trainer.TrainConfig`) — from the preset, then ``--set section.key=value``
overrides, then explicit flags. The model is sized to the corpus' tokenizer; a held-out split of
the corpus' documents gives periodic evaluation (MLM loss/accuracy, NSP/SOP accuracy, perplexity).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import DataConfig, ModelConfig, TrainConfig, get_preset, model_config_from_preset
from ..errors import ConfigError, DataError, UsageError
from .._progress import is_main_process
from . import accel
from .autobatch import MicroBatchChoice, check_micro_batch, choose_micro_batch, divisors
from .prefetch import Prefetch
from .trainer import Trainer, load_weights_from_folder

SECTIONS = ("model", "data", "train")


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def split_overrides(overrides: Mapping[str, Any], model_fields: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{"model.hidden_size": 256, "lr": 1e-4}`` → ``{"model": {...}, "data": {}, "train": {"lr": ...}}``.

    A bare key is placed in the one section that has it; an unknown or ambiguous key is an error
    that names it and suggests the closest known keys.
    """
    fields = {"model": model_fields or _field_names(ModelConfig), "data": _field_names(DataConfig),
              "train": _field_names(TrainConfig)}
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in overrides.items():
        section, _, name = key.partition(".") if "." in key else ("", "", key)
        if section:
            if section not in fields:
                raise ConfigError(f"--set {key}: unknown section {section!r}; use model., data. or train.")
            if name not in fields[section]:
                close = difflib.get_close_matches(name, sorted(fields[section]), n=3)
                raise ConfigError(f"--set {key}: {section} has no key {name!r}"
                                  + (f"; did you mean {', '.join(section + '.' + c for c in close)}?" if close else
                                     f"; known keys: {', '.join(sorted(fields[section]))}"))
            out[section][name] = value
            continue
        owners = [s for s in SECTIONS if name in fields[s]]
        if not owners:
            every = sorted(f"{s}.{n}" for s in SECTIONS for n in fields[s])
            close = difflib.get_close_matches(name, [e.split(".", 1)[1] for e in every], n=3)
            raise ConfigError(f"--set {key}: unknown key" + (f"; did you mean {', '.join(close)}?" if close else ""))
        if len(owners) > 1:
            raise ConfigError(f"--set {key}: ambiguous, it exists in {' and '.join(owners)}; "
                              f"write {owners[0]}.{name}=... or {owners[1]}.{name}=...")
        out[owners[0]][name] = value
    return out


def check_override_values(sections: Mapping[str, Mapping[str, Any]], elmo: bool = False) -> None:
    """``--set`` values against their fields' types and ranges (ConfigError naming ``--set section.key``)."""
    from ..config import MODEL_RANGES, TRAIN_RANGES, check_values
    from ..config import DATA_RANGES, DataConfig

    if elmo:
        from ..config import ELMO_RANGES, ElmoConfig

        check_values(ElmoConfig, sections["model"], "--set", "model.", ELMO_RANGES)
    else:
        check_values(ModelConfig, sections["model"], "--set", "model.", MODEL_RANGES)
    data = {k: ("none" if v is None and k in ("objective", "pair", "masking", "packing") else v)
            for k, v in sections["data"].items()}  # --set data.pair=none parses as None
    check_values(DataConfig, data, "--set", "data.", DATA_RANGES)
    check_values(TrainConfig, sections["train"], "--set", "train.", TRAIN_RANGES)


def is_elmo_preset(preset: str | None) -> bool:
    return bool(preset) and get_preset(preset).get("model", {}).get("model_type") == "elmo"


def build_model_config(preset: str | None, overrides: dict[str, Any], tokenizer, max_length: int,
                       train: TrainConfig | None = None, data=None) -> ModelConfig:
    """The preset's model, sized to the corpus' tokenizer and the sequence length.

    With ``data`` (the run's :class:`~plmkit.data.objectives.DataConfig`), the pretraining heads follow the
    objective, chosen in one place: ``pair_head`` is ``data.pair`` and ``discriminator`` is ``data.objective ==
    "rtd"`` (ELECTRA); a ``--set model.pair_head`` / ``model.discriminator`` that says otherwise is refused.
    With ``train``, the memory one training step needs (weights, gradients, AdamW state and the
    activations of a batch of ``max_length`` rows; :func:`plmkit.config.training_memory`) is estimated
    from the config alone and a run that cannot fit in the device's memory is refused before anything
    is allocated.
    """
    vocab = tokenizer.vocab_size
    if "vocab_size" in overrides and int(overrides["vocab_size"]) != vocab:
        raise ConfigError(
            f"model.vocab_size={overrides['vocab_size']} does not match the prepared data's tokenizer "
            f"({vocab} ids); the data was prepared with a different vocabulary — re-run 'plmkit prepare' "
            "with the model's tokenizer, or drop the model.vocab_size override")
    fixed = {"vocab_size": vocab}
    if tokenizer.pad_token_id is not None:
        fixed["pad_token_id"] = tokenizer.pad_token_id
    for name in ("bos_token_id", "eos_token_id"):
        tid = getattr(tokenizer, name)
        if tid is not None:
            fixed[name] = tid
    heads = {} if data is None else objective_heads(data, overrides)
    config = model_config_from_preset(preset, {**fixed, **overrides, **heads})
    if config.position_offset and "position_offset" not in overrides:  # RoBERTa: positions start after the pad id
        config = config.replace(position_offset=config.pad_token_id + 1)
    if config.causal and "eos_token_id" not in fixed and tokenizer.sep_token_id is not None:
        config = config.replace(eos_token_id=tokenizer.sep_token_id)
    need = max_length + config.position_offset
    if need > config.max_position_embeddings:
        if "max_position_embeddings" in overrides:
            raise ConfigError(f"--max-length {max_length} needs {need} positions but "
                              f"model.max_position_embeddings={config.max_position_embeddings}")
        config = config.replace(max_position_embeddings=need)
    if train is not None:
        check_training_memory(config, train, max_length)
    return config


def build_pretraining_model(config: ModelConfig, data, preset: str | None = None) -> tuple[nn.Module, Any]:
    """The model the objective trains, and the ``load_weights(folder)`` that reads its checkpoints on --resume.

    The heads follow the objective: MLM + NSP/SOP, MLM alone (RoBERTa), the causal LM, or ELECTRA's generator and
    discriminator (``rtd``: :class:`~plmkit.models.electra.ElectraPretrainingModel`, saved as two folders).
    """
    from ..models import PlmModel

    if data.objective == "rtd":
        from ..models.auto import load_electra_pretraining
        from ..models.electra import ElectraPretrainingModel

        return ElectraPretrainingModel(config), lambda folder: load_electra_pretraining(folder, config).state_dict()
    task = "causal-lm" if data.objective == "causal" else ("masked-lm" if config.pair_head == "none" else "pretraining")
    if (task == "causal-lm") != config.causal:
        raise ConfigError(f"preset {preset}: data.objective={data.objective!r} needs a "
                          f"{'causal' if task == 'causal-lm' else 'bidirectional'} model (model.causal={config.causal})")
    # --resume: the same heads
    return PlmModel(config, task=task), functools.partial(load_weights_from_folder, task=task)


def start_from_model(init: str | Path, overrides: dict[str, Any], tokenizer, data, train: TrainConfig | None = None,
                     preset: str | None = None) -> tuple[nn.Module, Any, ModelConfig, dict[str, Any]]:
    """``--init DIR``: continue pretraining from a saved model (domain-adaptive pretraining, or a second phase
    on longer rows as BERT did) instead of a fresh initialisation.

    The architecture and the weights come from ``DIR`` (a plmkit or Hugging Face model folder); the preset gives
    the objective and the training defaults, and ``--set model.*`` may still change what does not change a shape
    (dropout, ...). The heads follow the objective (:func:`objective_heads`): a head the folder lacks (NSP after
    MLM alone) starts fresh, one the objective has no use for (a fine-tuned classifier) is left out; both are
    listed in the returned identity. The corpus must be prepared with the folder's tokenizer (same ids), and
    ``--max-length`` must fit in its position table. Returns ``(model, load_weights, config, identity)``;
    ``identity`` (the folder's path, size and SHA-256 over its files) goes into the run's fingerprint, so
    ``--resume`` needs the same start.
    """
    import warnings

    from ..errors import CheckpointError
    from ..models import from_pretrained
    from ..tokenization import load_tokenizer
    from .checkpoint import file_identity

    folder = Path(init)
    if data.objective == "rtd":
        raise UsageError(f"--init {folder}: continuing ELECTRA pretraining is not supported (its generator and "
                         "discriminator start together); continue a masked-LM or causal-LM model, or drop --init")
    if not (folder / "config.json").is_file():
        what = "no such folder" if not folder.exists() else "not a model folder (no config.json)"
        raise UsageError(f"--init {folder}: {what}; pass a model folder (transformers' save_pretrained layout), "
                         "e.g. one written by 'plmkit export RUN --out MODEL' from a pretraining run")
    try:
        own = load_tokenizer(folder)
    except CheckpointError as e:
        raise UsageError(f"--init {folder}: its tokenizer could not be read ({e}); the corpus must be prepared "
                         "with the model's own tokenizer, so the folder needs it") from None
    if own.hash() != tokenizer.hash() and own.backend.get_vocab() != tokenizer.backend.get_vocab():
        raise UsageError(f"--init {folder}: the corpus was prepared with another tokenizer than the model's "
                         f"({tokenizer.vocab_size:,} against {own.vocab_size:,} ids, or the same size with other "
                         f"ids); prepare it again with 'plmkit prepare --tokenizer {folder} ...'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the heads are sorted out below, and reported
        src = from_pretrained(folder, task="auto")
    if not isinstance(getattr(src, "config", None), ModelConfig):
        raise UsageError(f"--init {folder}: a {type(src).__name__} cannot continue Transformer pretraining; "
                         "pass a bert / roberta / albert / gpt2 model folder")
    heads = objective_heads(data, overrides)
    config = src.config.replace(**{**overrides, **heads})
    need = data.max_length + config.position_offset
    if need > config.max_position_embeddings:
        raise ConfigError(f"--max-length {data.max_length} needs {need} positions but --init {folder} has "
                          f"{config.max_position_embeddings}; use --max-length "
                          f"{config.max_position_embeddings - config.position_offset} or less")
    if train is not None:
        check_training_memory(config, train, data.max_length)
    model, load_weights = build_pretraining_model(config, data, preset)
    theirs, ours = src.state_dict(), model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} in the folder, {tuple(ours[k].shape)} here" for k, v in theirs.items()
             if k in ours and v.shape != ours[k].shape]
    if wrong:
        raise ConfigError(f"--init {folder}: --set changed the shape of {len(wrong)} tensor(s): "
                          f"{'; '.join(wrong[:3])}; drop the --set model.* that resizes the model")
    model.load_state_dict({**ours, **{k: v for k, v in theirs.items() if k in ours}})
    identity = {**file_identity(folder), "new": sorted(k for k in ours if k not in theirs),
                "left_out": sorted(k for k in theirs if k not in ours)}
    return model, load_weights, config, identity


def objective_heads(data, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The model fields the pretraining objective decides: ``pair_head`` (``data.pair``) and ``discriminator``
    (``data.objective == "rtd"``). A ``--set model.<field>`` that contradicts them is a ConfigError."""
    heads = {"pair_head": data.pair, "discriminator": data.objective == "rtd"}
    for key, value in heads.items():
        given = overrides.get(key, value)
        given = "none" if given is None and key == "pair_head" else given  # --set model.pair_head=none parses as None
        if given != value:
            source = "data.pair" if key == "pair_head" else "data.objective"
            raise ConfigError(f"--set model.{key}={json.dumps(given)} contradicts {source}={json.dumps(getattr(data, source[5:]))}:"
                              f" the pretraining heads follow the objective; set {source} instead (model.{key} then "
                              "follows it)")
    return heads


def check_training_memory(config: ModelConfig, train: TrainConfig, max_length: int) -> None:
    """Refuse (ConfigError) a run whose estimated memory exceeds what the device has, with the estimate."""
    from ..config import check_fits, format_bytes, training_memory

    device = train.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    est = training_memory(config, train.batch_size, max_length, flash=str(device).startswith("cuda"),
                          bf16=train.bf16, gradient_checkpointing=train.gradient_checkpointing)
    need = est["state"] + est["activations"]
    check_fits(need, f"training this model ({est['parameters']:,} parameters: {format_bytes(est['state'])} for "
                     f"weights, gradients and AdamW state; {format_bytes(est['activations'])} of activations for a "
                     f"batch of {train.batch_size} × {max_length} tokens, attention growing with length²)",
               "use a shorter --max-length, a smaller --batch-size (or --micro-batch), "
               "--gradient-checkpointing, or a smaller model", device)


@torch.no_grad()
def evaluate_pretraining(model: nn.Module, batches: list[dict[str, torch.Tensor]], device: torch.device,
                         bf16: bool = False) -> dict[str, float]:
    """Held-out MLM loss/accuracy (+ perplexity), NSP/SOP accuracy, ELECTRA's replaced-token loss/accuracy (its
    generator's MLM metrics beside them), or causal-LM loss/perplexity."""
    sums = {"mlm_nll": 0.0, "mlm_correct": 0, "mlm_n": 0, "pair_correct": 0, "pair_n": 0, "lm_nll": 0.0, "lm_n": 0,
            "fwd_nll": 0.0, "bwd_nll": 0.0, "bi_n": 0, "rtd_nll": 0.0, "rtd_correct": 0, "rtd_n": 0,
            "rtd_replaced": 0}
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            out = model(**batch)
        labels = batch.get("labels")
        if getattr(out, "forward_loss", None) is not None:  # ELMo: both directions
            n = int((labels[:, 1:] != -100).sum())
            sums["fwd_nll"] += float(out.forward_loss) * n
            sums["bwd_nll"] += float(out.backward_loss) * n
            sums["bi_n"] += n
        elif getattr(model, "task", None) == "causal-lm":
            n = int((labels[:, 1:] != -100).sum())
            sums["lm_nll"] += float(out.loss) * n
            sums["lm_n"] += n
        else:
            where = labels != -100
            n = int(where.sum())
            if n:
                sums["mlm_nll"] += float(out.mlm_loss) * n
                pred = out.prediction_logits.argmax(-1)  # (n,) logits exist only at masked positions
                if "mlm_positions" in batch:  # static shapes: one row per slot; the real slots in the same order
                    pred = pred[batch["mlm_positions"].reshape(-1) >= 0]
                sums["mlm_correct"] += int((pred == labels[where]).sum())
                sums["mlm_n"] += n
            if getattr(out, "rtd_loss", None) is not None:  # ELECTRA's discriminator, on every real token
                real = batch["attention_mask"].bool() if "attention_mask" in batch else torch.ones_like(labels).bool()
                n = int(real.sum())
                sums["rtd_nll"] += float(out.rtd_loss) * n
                sums["rtd_correct"] += int(((out.logits > 0).long() == out.rtd_labels)[real].sum())
                sums["rtd_replaced"] += int(out.rtd_labels[real].sum())
                sums["rtd_n"] += n
            pair = batch.get("next_sentence_label", batch.get("sentence_order_label"))
            if pair is not None and out.seq_relationship_logits is not None:
                sums["pair_correct"] += int((out.seq_relationship_logits.argmax(-1) == pair.view(-1)).sum())
                sums["pair_n"] += int(pair.numel())
    res: dict[str, float] = {}
    if sums["mlm_n"]:
        res["mlm_loss"] = sums["mlm_nll"] / sums["mlm_n"]
        res["mlm_accuracy"] = sums["mlm_correct"] / sums["mlm_n"]
        res["mlm_perplexity"] = math.exp(min(res["mlm_loss"], 50))
    if sums["rtd_n"]:
        res["rtd_loss"] = sums["rtd_nll"] / sums["rtd_n"]
        res["rtd_accuracy"] = sums["rtd_correct"] / sums["rtd_n"]  # of every real token, replaced or not
        res["replaced_fraction"] = sums["rtd_replaced"] / sums["rtd_n"]  # what always answering "original" gets wrong
    if sums["pair_n"]:
        name = "sop" if any("sentence_order_label" in b for b in batches) else "nsp"
        res[f"{name}_accuracy"] = sums["pair_correct"] / sums["pair_n"]
    if sums["lm_n"]:
        res["loss"] = sums["lm_nll"] / sums["lm_n"]
        res["perplexity"] = math.exp(min(res["loss"], 50))
    if sums["bi_n"]:
        res["forward_loss"] = sums["fwd_nll"] / sums["bi_n"]
        res["backward_loss"] = sums["bwd_nll"] / sums["bi_n"]
        res["forward_perplexity"] = math.exp(min(res["forward_loss"], 50))
        res["backward_perplexity"] = math.exp(min(res["backward_loss"], 50))
        res["loss"] = (res["forward_loss"] + res["backward_loss"]) / 2
    return res


def _held_out_batches(corpus, dcfg, seed: int, eval_docs, eval_batches: int, rows: int,
                      per: int) -> list[dict[str, torch.Tensor]]:
    """Up to ``eval_batches`` batches of ``rows`` held-out rows, served ``per`` rows at a time (``per | rows``).

    A split batch gives the same rows as the whole one (the held-out order does not depend on the
    batch size), so the evaluation does not change with ``--micro-batch``, only its memory does.
    """
    from ..data.objectives import PretrainingStream

    held_out = PretrainingStream(corpus, dcfg, batch_size=per, seed=seed + 1, documents=eval_docs)
    n_held = held_out.num_instances(0)
    count = rows // per * min(eval_batches, max(1, n_held // rows))
    if 0 < n_held < rows:  # a small corpus: evaluate on what the held-out documents give
        per = max(x for x in divisors(n_held) if x <= per)
        held_out = PretrainingStream(corpus, dcfg, batch_size=per, seed=seed + 1, documents=eval_docs)
        count = n_held // per
    it = iter(held_out)
    return [next(it) for _ in range(count)]


def describe_run(preset: str, sections: Mapping[str, Mapping[str, Any]], model: nn.Module,
                 model_desc: Mapping[str, Any], dcfg, tcfg: TrainConfig, world_size: int, out: str | Path, choice=None,
                 steps_per_epoch: int | None = None) -> str:
    """The resolved settings in a short block for stderr: the preset and what ``--set`` changed, the model's
    sizes, the objective and the optimisation (``run.json`` in the run folder keeps every value)."""
    m = model_desc
    changed = ", ".join(f"{k}={v}" for k, v in sections.get("model", {}).items())
    params = sum(p.numel() for p in model.parameters())
    if m.get("model_type") == "elmo":
        sizes = (f"ELMo, char-CNN {len(m['filters'])} filter widths, {m['num_highway']} highway, "
                 f"{m['num_layers']}-layer biLSTM {m['lstm_dim']} cells → {m['projection_dim']}")
    else:
        sizes = (f"{m['model_type']}, {m['num_hidden_layers']} layers, hidden {m['hidden_size']}, "
                 f"{m['num_attention_heads']} heads, intermediate {m['intermediate_size']}"
                 + (f", embedding {m['embedding_size']}" if m.get("embedding_size") else "")
                 + f", vocab {m['vocab_size']:,}, {m['max_position_embeddings']} positions")
        if dcfg.objective == "rtd":  # ELECTRA: the discriminator above, its generator here
            from ..config import generator_config

            g = generator_config(ModelConfig.from_dict(m))
            heads = f"{g.num_attention_heads} head{'s' if g.num_attention_heads != 1 else ''}"
            sizes += (f"; generator ({m['generator_size']:.3g} of it) hidden {g.hidden_size}, {heads}, intermediate "
                      f"{g.intermediate_size}, sharing the embeddings; loss MLM + {m['rtd_weight']:g}·RTD")
    pair = "" if dcfg.pair == "none" else f" + {dcfg.pair}"
    masking = "" if dcfg.masking == "none" else f", {dcfg.masking} masking"
    batch = choice.batch_size if choice is not None else tcfg.batch_size * tcfg.grad_accum
    limits = (("max-steps", tcfg.max_steps, ""), ("max-time", tcfg.max_time, "s"), ("epochs", tcfg.epochs, ""))
    stops = [f"{name} {v:g}{unit}" for name, v, unit in limits if v is not None]
    if steps_per_epoch:
        stops[-1] += f" ({steps_per_epoch // tcfg.grad_accum:,} steps each)"
    lines = [
        f"plmkit: model  {preset}{' + ' + changed if changed else ''}: {sizes} ({params / 1e6:.1f}M parameters)",
        f"plmkit: data   {dcfg.objective}{pair}{masking}, {dcfg.packing} rows of {dcfg.max_length} tokens",
        f"plmkit: train  batch {batch} × {world_size} process(es), lr {tcfg.lr:g} {tcfg.schedule}, warmup "
        f"{tcfg.warmup:g}, {tcfg.optimizer}, seed {tcfg.seed}; until {' or '.join(stops)} "
        f"(every setting: {Path(out) / 'run.json'})",
    ]
    return "\n".join(lines)


def corpus_identity(corpus) -> dict[str, Any]:
    """``{"path", "sha256"}`` of a prepared corpus: a hash over the checksums its ``meta.json`` records for
    every shard and index file (and its tokenizer), so it names the content without reading the shards."""
    import hashlib
    import json

    meta = corpus.meta
    shards = meta.get("shards", [])
    sums = {"tokenizer": corpus.tokenizer_hash, "dtype": meta.get("dtype"), "index": meta.get("index_sha256", {}),
            "shards": [[s.get("num_tokens"), s.get("sha256_tokens"), s.get("sha256_word_starts")]
                       for s in (shards if isinstance(shards, list) else []) if isinstance(s, dict)]}
    digest = hashlib.sha256(json.dumps(sums, sort_keys=True, default=str).encode()).hexdigest()
    return {"path": str(Path(corpus.path).resolve()), "sha256": digest}


def recorded_micro_batch(out: str | Path) -> dict[str, Any] | None:
    """The micro-batch choice recorded in the newest checkpoint of run ``out`` (None when there is none)."""
    from . import checkpoint as ckpt

    # Any checkpoint with a readable state will do (the run's micro-batch is the same in all of them); the
    # trainer verifies the checksums of the one it resumes from, so they are not hashed twice.
    folder = ckpt.latest_checkpoint(Path(out), verify=False) if Path(out).is_dir() else None
    if folder is None:
        return None  # no checkpoint: the run starts again from step 0 and may choose afresh
    return ckpt.load_trainer_state(folder).get("run_config", {}).get("micro_batch")


def recorded_train_config(out: str | Path) -> dict[str, Any]:
    """The train settings recorded in the newest checkpoint of run ``out`` ({} when there is none)."""
    from . import checkpoint as ckpt

    folder = ckpt.latest_checkpoint(Path(out), verify=False) if Path(out).is_dir() else None
    if folder is None:
        return {}
    saved = ckpt.load_trainer_state(folder).get("train_config", {})
    return saved if isinstance(saved, dict) else {}


def older_grad_accum_run(saved: Mapping[str, Any], batch_size: int, grad_accum: int, what: str) -> bool:
    """Whether a run being resumed was started when ``--grad-accum K`` accumulated K whole batches of
    ``--batch-size`` rows (before --batch-size became the optimizer batch): its recorded train settings are
    the flags as given, with the per-step batch equal to ``batch_size``. Says so on stderr when it was."""
    if grad_accum <= 1 or saved.get("grad_accum") != grad_accum or saved.get("batch_size") != batch_size:
        return False
    print(f"plmkit: note: {what} was started when --grad-accum {grad_accum} accumulated {grad_accum} batches of "
          f"--batch-size {batch_size} rows; it resumes as it was recorded (optimizer batch {batch_size * grad_accum}). "
          f"Now --batch-size is the optimizer batch: the same run today is --batch-size {batch_size * grad_accum} "
          f"--grad-accum {grad_accum}", file=sys.stderr, flush=True)
    return True


def check_grad_accum(batch_size: int, grad_accum: int) -> None:
    """A UsageError unless ``grad_accum`` divides ``batch_size`` (it splits the optimizer batch into equal parts)."""
    if batch_size % grad_accum:
        shown = ", ".join(str(d) for d in divisors(batch_size))
        raise UsageError(f"--grad-accum {grad_accum} does not divide --batch-size {batch_size}: --batch-size is the "
                         f"batch the optimizer sees, and --grad-accum K splits it into K micro-batches of equal size; "
                         f"choose K among {shown}, or a --batch-size that is a multiple of {grad_accum}")


def _check_micro_batch_request(spec: int | str | None, recorded: dict[str, Any] | None,
                               tcfg: TrainConfig) -> int | str | MicroBatchChoice | None:
    """Validate ``--micro-batch`` against ``--batch-size``/``--grad-accum``; on resume, the run's recorded choice."""
    if tcfg.grad_accum != 1:
        given = f"--micro-batch {spec}" if spec is not None else f"the run's micro-batch {recorded['micro_batch']}"
        raise UsageError(f"--grad-accum {tcfg.grad_accum} (train.grad_accum) and {given} both split the batch; use "
                         "one of them. With --micro-batch M, --batch-size is the batch the optimizer sees and is "
                         "accumulated from --batch-size/M micro-batches of M rows")
    if spec is not None:
        check_micro_batch(spec, tcfg.batch_size)
    if recorded is None:
        return spec
    rb, rm = int(recorded["batch_size"]), int(recorded["micro_batch"])
    if rb != tcfg.batch_size:
        raise ConfigError(f"--resume: the run being resumed has --batch-size {rb} (micro-batches of {rm}), now "
                          f"{tcfg.batch_size}; resume with --batch-size {rb}")
    if spec not in (None, "auto") and spec != rm:
        raise ConfigError(f"--resume: the run being resumed uses --micro-batch {rm} (chosen at its start), now "
                          f"{spec}; resume with --micro-batch {rm} or auto, so that it continues exactly")
    return MicroBatchChoice(rb, rm, bool(recorded.get("auto", False)),
                            "recorded in the run at its start; not probed again", recorded.get("details"))


def _choose(spec: int | str, tcfg: TrainConfig, model: nn.Module, stream, d,
            reason: str = "--micro-batch as given") -> MicroBatchChoice:
    """An explicit micro-batch, or the largest divisor of the batch that fits the device (probed)."""
    if spec != "auto":
        return MicroBatchChoice(tcfg.batch_size, int(spec), False, reason)
    import numpy as np

    # Real rows of the objective (full length, labels included); building them does not move the stream.
    make_batch = lambda m: stream.build_batch(0, np.arange(m))  # noqa: E731
    return choose_micro_batch(model, make_batch, tcfg.batch_size, d.device, bf16=tcfg.bf16,
                              gradient_checkpointing=tcfg.gradient_checkpointing, optimizer=tcfg.optimizer,
                              world_size=d.world_size, dist=d)


def _pretrain(preset: str, data: str | Path, out: str | Path, overrides: Mapping[str, Any] | None = None,
             flags: Mapping[str, Any] | None = None, resume: bool = False, eval_batches: int = 20,
             eval_fraction: float = 0.02, verify_data: bool = True, init: str | Path | None = None) -> dict[str, Any]:
    """:func:`pretrain` with the run folder locked."""
    from ..data import PreparedCorpus
    from ..config import data_config_from_preset
    from ..data.objectives import PretrainingStream
    from . import distributed as distr

    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    micro_spec = flags.pop("micro_batch", None)
    elmo = is_elmo_preset(preset)
    model_fields = None
    if elmo:
        from ..config import ElmoConfig

        model_fields = _field_names(ElmoConfig)
    sections = split_overrides(dict(overrides or {}), model_fields)
    check_override_values(sections, elmo)  # every --set value has its field's type and range, before any I/O
    if "max_length" in flags:
        sections["data"]["max_length"] = flags.pop("max_length")
    dcfg = data_config_from_preset(preset, sections["data"])
    train_kw = {**sections["train"], **flags}
    tcfg = TrainConfig.from_dict(train_kw, source="train settings")
    dcfg = accel.prepare_run(dcfg, tcfg, note=is_main_process())  # --cuda-graphs / --fp8: device checks, static shapes
    corpus = PreparedCorpus(data, verify=verify_data)
    tokenizer = corpus.load_tokenizer()
    recorded = recorded_micro_batch(out) if resume else None
    reason = "--micro-batch as given"
    if tcfg.grad_accum > 1 and micro_spec is None:
        # --batch-size is the optimizer batch; --grad-accum K splits it into K micro-batches, i.e. it is
        # --micro-batch batch/K (one mechanism). A run started when K accumulated whole batches resumes as it was.
        if not (resume and recorded is None and older_grad_accum_run(recorded_train_config(out), tcfg.batch_size,
                                                                     tcfg.grad_accum, str(out))):
            check_grad_accum(tcfg.batch_size, tcfg.grad_accum)
            micro_spec = tcfg.batch_size // tcfg.grad_accum
            reason = f"--grad-accum {tcfg.grad_accum}"
            tcfg = dataclasses.replace(tcfg, grad_accum=1)
    if micro_spec is not None or recorded is not None:
        micro_spec = _check_micro_batch_request(micro_spec, recorded, tcfg)

    if elmo and init is not None:
        raise UsageError("--init continues Transformer pretraining; an ELMo run starts from scratch (drop --init)")
    started: dict[str, Any] | None = None
    if elmo:
        from ..config import elmo_config_from_preset
        from ..models.elmo import ElmoModel

        if not corpus.word_level:
            raise DataError(f"{data} was prepared with a sub-word tokenizer; ELMo trains on words — prepare the "
                            "corpus with 'plmkit prepare --word-level ...'")
        ecfg = elmo_config_from_preset(preset, sections["model"])
        torch.manual_seed(tcfg.seed)
        vocab = [tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)]
        model: nn.Module = ElmoModel(ecfg, vocab)
        model_desc: dict[str, Any] = dataclasses.asdict(ecfg)
        load_weights = functools.partial(load_weights_from_folder, task="auto")  # --resume: an ELMo folder
    else:
        if corpus.word_level:
            raise DataError(f"{data} was prepared at word level (for ELMo); Transformer presets need a sub-word "
                            "tokenizer — prepare with 'plmkit prepare --tokenizer DIR ...'")
        torch.manual_seed(tcfg.seed)  # the weights of the heads an --init folder lacks too
        if init is None:
            mcfg = build_model_config(preset, sections["model"], tokenizer, dcfg.max_length, train=tcfg, data=dcfg)
            model, load_weights = build_pretraining_model(mcfg, dcfg, preset)
        else:
            model, load_weights, mcfg, started = start_from_model(init, sections["model"], tokenizer, dcfg, tcfg,
                                                                  preset)
            if is_main_process():
                fresh = f"; new, initialised afresh: {', '.join(started['new'])}" if started["new"] else ""
                dropped = (f"; not used by the objective: {', '.join(started['left_out'])}"
                           if started["left_out"] else "")
                print(f"plmkit: init   weights from {init}{fresh}{dropped}", file=sys.stderr, flush=True)
        model_desc = mcfg.to_dict()

    d = distr.init(tcfg.device)
    # NSP draws its random segments from another document, so its held-out split needs two.
    train_docs, eval_docs = corpus.split(eval_fraction=eval_fraction, seed=tcfg.seed,
                                         min_eval_documents=2 if dcfg.pair == "nsp" else 1)
    stream = PretrainingStream(corpus, dcfg, batch_size=tcfg.batch_size, seed=tcfg.seed, documents=train_docs,
                               rank=d.rank, world_size=d.world_size)
    global_batch = tcfg.batch_size * d.world_size
    if stream.num_instances(0) < global_batch:  # before the trainer creates the run folder
        raise DataError(f"{data}: an epoch has only {stream.num_instances(0)} sequences of max_length "
                        f"{dcfg.max_length}, fewer than one global batch of {global_batch}; use more data or a "
                        "smaller --batch-size")
    choice = None
    if micro_spec is not None:
        # Split the per-process batch into micro-batches; the trainer's grad_accum sums them (one mechanism).
        choice = micro_spec if isinstance(micro_spec, MicroBatchChoice) else _choose(
            micro_spec, tcfg, model, stream, d, reason)
        if d.is_main:
            print(choice.message(), file=sys.stderr, flush=True)
        stream.batch_size = choice.micro_batch  # the data position does not depend on it
        tcfg = dataclasses.replace(tcfg, batch_size=choice.micro_batch, grad_accum=choice.grad_accum)
    # --epochs: optimizer steps per pass over the corpus (its first epoch's sequences over the global batch).
    steps_per_epoch = None
    if tcfg.epochs is not None:
        rows_per_step = stream.batch_size * tcfg.grad_accum * d.world_size
        steps_per_epoch = stream.num_instances(0) // rows_per_step * tcfg.grad_accum  # in micro-batches
    if d.is_main:
        print(describe_run(preset, sections, model, model_desc, dcfg, tcfg, d.world_size, out, choice,
                           steps_per_epoch), file=sys.stderr, flush=True)
    # The same held-out rows with or without --micro-batch; only the memory they take changes.
    eval_rows = choice.batch_size if choice is not None else tcfg.batch_size
    eval_list = _held_out_batches(corpus, dcfg, tcfg.seed, eval_docs, eval_batches, eval_rows, tcfg.batch_size)
    # What makes this run this run: --resume must find the same (training/checkpoint.py, fingerprint_differences).
    fingerprint = {"preset": preset, "model": model_desc, "data": dcfg.to_dict(), "corpus": corpus_identity(corpus),
                   "tokenizer_hash": corpus.tokenizer_hash, "seed": tcfg.seed, "eval_fraction": eval_fraction}
    # --resume of a run that started from a model (--init) needs the same model, and a fresh run no model
    fingerprint["init"] = None if started is None else {k: started[k] for k in ("path", "size", "sha256")}
    run_config = {"preset": preset, "data": str(Path(data).resolve()), "tokenizer_hash": corpus.tokenizer_hash,
                  "model": model_desc, "data_config": dcfg.to_dict(), "eval_documents": int(len(eval_docs)),
                  "train_documents": int(len(train_docs)), "fingerprint": fingerprint}
    if started is not None:
        run_config["init"] = started
    if choice is not None:
        run_config["micro_batch"] = choice.to_dict()
    # The next batches are built and masked in a thread while the model trains on this one (same batches,
    # same resume positions: training/prefetch.py).
    trainer = Trainer(model, tcfg, Prefetch(stream), out, steps_per_epoch=steps_per_epoch, tokenizer=tokenizer,
                      run_config=run_config, resume=resume, load_weights=load_weights,
                      evaluate=lambda m: evaluate_pretraining(m, eval_list, d.device, tcfg.bf16),
                      model_extra={"preset": preset, "data_config": dcfg.to_dict()})
    return trainer.train()


def pretrain(preset: str, data: str | Path, out: str | Path, overrides: Mapping[str, Any] | None = None,
             flags: Mapping[str, Any] | None = None, resume: bool = False, eval_batches: int = 20,
             eval_fraction: float = 0.02, verify_data: bool = True, init: str | Path | None = None) -> dict[str, Any]:
    """Pretrain ``preset`` on the prepared corpus ``data`` into run folder ``out``; returns the summary.

    ``flags`` are explicit settings (from the command line) that win over ``overrides``: any
    ``TrainConfig`` field, plus ``max_length`` and ``micro_batch`` (M or ``"auto"``: split the per-process
    ``batch_size`` into micro-batches of M rows accumulated by the trainer's ``grad_accum``; see
    :mod:`plmkit.training.autobatch`). ``verify_data`` checks the SHA-256 of every shard and
    index file against the corpus' ``meta.json`` before training (about 1.4 GB/s on one core; file
    sizes are always checked), so a damaged shard stops the run at the start with a message naming it.
    ``init`` (``--init``) starts from a saved model's weights instead of a fresh model (:func:`start_from_model`).
    """
    import os

    from .._files import run_folder
    from . import checkpoint as ckpt

    # One writer per run folder (rank 0 holds the lock under torchrun); a run that fails before it has saved
    # anything worth resuming takes back what it wrote, so that the corrected command runs again.
    from .trainer import check_run_out

    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    inputs = [data] if init is None else [data, init]  # --out may be neither
    with run_folder(out, "run", inputs=inputs, accept=lambda p: check_run_out(p, resume, allow_dead=single),
                    worth_keeping=ckpt.worth_keeping, lock=int(os.environ.get("RANK", "0")) == 0):
        return _pretrain(preset, data, out, overrides=overrides, flags=flags, resume=resume, eval_batches=eval_batches,
                         eval_fraction=eval_fraction, verify_data=verify_data, init=init)
