"""Model folders for fine-tuning, evaluation and prediction: the tokenizer a folder carries, the
``plmkit.finetune`` block of a fine-tuned folder, the pad id and vocabulary checks, and a clear word
when ``--model`` is a ``--seeds`` run or an ELMo biLM instead of a model to fine-tune."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UsageError
from ..models.facts import pad_token_id


def seed_folders(folder: str | Path) -> list[Path]:
    """The ``seed-N`` model folders of a ``--seeds`` run folder, by seed (empty for any other folder)."""
    found = []
    try:
        for child in Path(folder).iterdir():
            m = re.fullmatch(r"seed-(-?\d+)", child.name)
            if m and (child / "config.json").is_file():
                found.append((int(m.group(1)), child))
    except OSError:
        return []
    return [p for _, p in sorted(found)]


def check_model_folder(model_dir: str | Path, training: bool) -> None:
    """Point to the right folder or flag when ``--model`` is not a Transformer model folder but a ``--seeds``
    run (its ``seed-N`` folders) or an ELMo biLM (``--elmo``); other problems are reported by the loaders."""
    from ..models.folder import read_config

    folder = Path(model_dir)
    if folder.is_dir() and not (folder / "config.json").exists():
        seeds = seed_folders(folder)
        if seeds:
            names = ", ".join(p.name for p in seeds[:5]) + (", ..." if len(seeds) > 5 else "")
            raise CheckpointError(f"{folder} is the folder of a --seeds run, which holds one fine-tuned model per "
                                  f"seed ({names}) and their summary, not a model itself; pass one seed's folder, "
                                  f"e.g. --model {seeds[0]}")
        return
    if not folder.is_dir():
        return
    try:
        kind = read_config(folder).get("model_type")
    except CheckpointError:
        return  # the loader says what is wrong with config.json
    if kind == "elmo":
        if training:
            raise UsageError(f"--model {folder} is an ELMo biLM (model_type 'elmo'), which is not fine-tuned like a "
                             f"Transformer: pass it as --elmo {folder} (without --model) to train a BiLSTM task "
                             "model on its vectors")
        raise UsageError(f"--model {folder} is a pretrained ELMo biLM, not a fine-tuned task model; fine-tune one on "
                         f"it first (plmkit finetune TASK --elmo {folder} --out DIR ...) and pass --model DIR")


def load_tokenizer_for(model_dir: str | Path):
    from ..tokenization import load_tokenizer

    folder = Path(model_dir)
    if not (folder / "config.json").exists() and folder.is_dir():
        raise CheckpointError(f"{folder} has no config.json, so it is not a model folder; pass a plmkit or "
                              "Hugging Face model folder to --model")
    try:
        return load_tokenizer(folder)
    except CheckpointError as e:
        raise CheckpointError(f"{e}. Fine-tuning and evaluation tokenize with the model folder's own tokenizer, "
                              "so the folder must contain it (tokenizer.json or vocab files)") from None


def finetune_info(model_dir: str | Path) -> dict[str, Any]:
    """The ``plmkit.finetune`` block a fine-tuned folder's config.json carries ({} for others)."""
    from ..models.folder import read_config

    raw = read_config(model_dir)
    return dict((raw.get("plmkit") or {}).get("finetune") or {})


def pad_id_for(tokenizer, model) -> int:
    """The pad id (:func:`plmkit.models.facts.pad_token_id`), also set as the model config's when it has none."""
    pad = pad_token_id(tokenizer, model)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad  # GPT-2: the classifier finds the last real token by the pad id
    return pad


def check_vocabulary(tokenizer, model, folder: str | Path) -> None:
    """A tokenizer with more ids than the model's embedding table would index past it: refuse (CheckpointError)."""
    config = getattr(model, "config", model)
    if len(tokenizer) > config.vocab_size:
        raise CheckpointError(f"{folder}: the tokenizer has {len(tokenizer):,} ids but the model's vocab_size is "
                              f"{config.vocab_size:,}, so ids from {config.vocab_size:,} on have no embedding; the "
                              "tokenizer files and config.json come from different models — restore the model's own "
                              "tokenizer")



__all__ = ["seed_folders", "check_model_folder", "load_tokenizer_for", "finetune_info", "pad_id_for",
           "check_vocabulary"]
