"""ELMo's downstream use (Peters et al., 2018, §3.3): a BiLSTM task model instead of a fine-tuned Transformer.

With ``arch="bilstm"`` (``--arch bilstm``) the task model is a BiLSTM tagger or sentence classifier over
the task's own word embeddings (:mod:`plmkit.models.tagger`), and ``elmo=DIR`` (``--elmo DIR``)
concatenates a frozen biLM's layers, mixed by weights the task learns. The readers, splits, metrics,
seeds, ``metrics.json`` and the trainer are the Transformer path's; only the features differ (whole
words, no sub-word tokenizer: :class:`WordFeaturizer`). Because the biLM is frozen, its layer states
are computed once per sentence and cached (``elmo_cache``), so epochs and seeds do not rerun it. Which
tasks a BiLSTM can learn, and how their words and labels look, the task says (``Task.bilstm_model``,
``Task.words``, ``Task.word_features``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import MODEL_TYPES
from ..errors import CheckpointError, UsageError
from ..models.facts import model_device
from ..training.distributed import choose_device
from .config import FinetuneConfig
from .tasks.base import Features, Task, TaskOptions, log

BILSTM_MODEL_TYPES = ("bilstm-tagger", "bilstm-classifier")
# The cached biLM states cost (L + 1) · 2P · 4 bytes per word (3 KiB for elmo-small); above this, the
# biLM runs in every step instead (set elmo_cache / --elmo-cache to decide explicitly).
ELMO_CACHE_MAX_BYTES = 2 << 30
_BILSTM_FIXED = ("vocab_size", "num_labels", "pad_id")  # set from the data, not by the user


def resolve_arch(cfg: FinetuneConfig) -> str:
    """The architecture to train, "transformer" or "bilstm", from ``cfg.arch`` / ``cfg.model`` / ``cfg.elmo``.

    Inconsistent combinations are a UsageError that says what to give instead.
    """
    if cfg.arch not in ("auto", "transformer", "bilstm"):
        raise UsageError(f"--arch {cfg.arch!r}: choose transformer (fine-tune --model) or bilstm (a BiLSTM tagger / "
                         "classifier trained from scratch, optionally with --elmo)")
    arch = cfg.arch if cfg.arch != "auto" else ("bilstm" if cfg.elmo else "transformer")
    if arch == "transformer":
        if cfg.elmo:
            raise UsageError("--elmo adds ELMo vectors to the BiLSTM task model, not to a Transformer; use --arch bilstm "
                             "--elmo DIR without --model, or drop --elmo to fine-tune --model")
        if not cfg.model:
            raise UsageError("give --model DIR (a pretrained model folder to fine-tune), or --arch bilstm [--elmo DIR] "
                             "to train a BiLSTM tagger / classifier on the task's own word embeddings (plus ELMo)")
        if cfg.bilstm:
            raise UsageError(f"the BiLSTM settings {', '.join(sorted(cfg.bilstm))} apply to --arch bilstm (or --elmo), "
                             "not to fine-tuning a Transformer")
    elif cfg.model:
        raise UsageError(f"--arch bilstm{' / --elmo' if cfg.elmo else ''} trains a BiLSTM task model from scratch and "
                         f"takes no --model ({cfg.model}); add pretrained vectors with --elmo ELMO_DIR, or drop "
                         "--arch bilstm / --elmo to fine-tune --model")
    return arch


def check_bilstm_task(task: Task, options: TaskOptions | None = None) -> None:
    """The BiLSTM models tag words or classify single sentences (``task.bilstm_model``); else a UsageError."""
    if task.bilstm_model is None:
        raise task.no_bilstm()
    if options is not None and options.max_length is not None:
        raise UsageError("--max-length cuts the sub-word sequences of Transformers; the BiLSTM reads whole sentences, "
                         "so drop --max-length")


def bilstm_config_overrides(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate BiLSTM settings (:class:`~plmkit.models.tagger.TaggerConfig` fields) and return them."""
    from ..config import TaggerConfig

    known = [f.name for f in dataclasses.fields(TaggerConfig) if f.name not in _BILSTM_FIXED]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise UsageError(f"unknown BiLSTM setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    TaggerConfig(vocab_size=2, num_labels=2, **settings)  # value checks (ConfigError names the field)
    return dict(settings)


def load_elmo_for_task(path: str | Path):
    """The biLM of an ``--elmo`` folder, or an error that says what the folder is and what to pass instead."""
    from ..models.elmo import load_elmo
    from ..models.folder import read_config

    folder = Path(path)
    if folder.is_dir() and not (folder / "config.json").exists() and (folder / "checkpoints").is_dir():
        raise UsageError(f"--elmo {folder} is a run folder of 'plmkit pretrain', not a model folder; export the model "
                         f"first (plmkit export {folder} --out {folder / 'model'}) and pass --elmo {folder / 'model'}")
    try:
        raw = read_config(folder)
    except CheckpointError as e:
        raise CheckpointError(f"--elmo: {e}") from None
    kind = raw.get("model_type")
    if kind != "elmo":
        hint = ""
        if kind in MODEL_TYPES:
            hint = f"; to fine-tune this {kind} model, pass it as --model instead (without --elmo / --arch bilstm)"
        elif kind in BILSTM_MODEL_TYPES and (folder / "elmo").is_dir():
            hint = f"; its biLM is in {folder / 'elmo'}"
        raise UsageError(f"--elmo {folder} holds a {kind or 'untyped'} model, not ELMo: --elmo takes an ELMo folder "
                         f"(config.json with model_type 'elmo'), e.g. the export of a 'plmkit pretrain --preset "
                         f"elmo-small' run{hint}")
    return load_elmo(folder)


class WordFeaturizer:
    """Features for the BiLSTM models: whole words as the task's reader gives them (no sub-word tokenizer).

    Each feature holds ``input_ids`` (ids in the task's word vocabulary: 0 = ``<pad>``, 1 = ``<unk>``),
    ``labels`` (a tag id per word, -100 for tags outside the label set; or one class id) and, with ELMo,
    either ``elmo_states`` (words, L + 1, 2P) — the frozen biLM's layers, computed here once per
    sentence (``cache=True``) — or ``char_ids`` (words, 50) for the model to run the biLM itself.
    Tagging features carry ``extra["first"] = arange(words)``, so :func:`tagging.decode_words` maps the
    per-word predictions back unchanged. Call it as ``featurizer(examples, training, path)``.
    """

    def __init__(self, task: Task, word_vocab: dict[str, int], labels: Sequence[str] | None, elmo=None,
                 cache: bool = False, device: torch.device | str = "cpu", batch_words: int = 4096):
        self.task = task
        self.word_vocab = word_vocab
        self.labels = tuple(labels or ())
        self.elmo = elmo  # a plmkit.models.elmo.Elmo (only its frozen biLM is used here)
        self.cache = bool(cache and elmo is not None)
        self.device = torch.device(device)
        self.batch_words = batch_words

    @classmethod
    def for_training(cls, task: Task, train_examples: Sequence, eval_lists: Sequence[Sequence],
                     labels: Sequence[str] | None, cfg: FinetuneConfig, lm=None) -> "WordFeaturizer":
        """The word vocabulary from the training examples; decides whether to cache the biLM's states."""
        from ..models.elmo import Elmo
        from ..models.tagger import build_word_vocab

        if cfg.min_word_count < 1:
            raise UsageError(f"--min-word-count must be at least 1, got {cfg.min_word_count}")
        vocab = build_word_vocab((task.words(e, cfg.train) for e in train_examples),
                                 min_count=cfg.min_word_count)
        log(f"BiLSTM word vocabulary: {len(vocab):,} entries (training words seen at least {cfg.min_word_count} "
            "time(s); the rest are <unk>)")
        cache = False
        elmo = None
        if lm is not None:
            elmo = Elmo(lm, dropout=0.0)
            words = sum(len(task.words(e)) for lst in (train_examples, *eval_lists) for e in lst)
            need = words * elmo.num_layers * elmo.output_dim * 4
            cache = cfg.elmo_cache if cfg.elmo_cache is not None else need <= ELMO_CACHE_MAX_BYTES
            log(f"ELMo: {'caching' if cache else 'not caching'} the frozen biLM's layer states of {words:,} words "
                f"({need / 2**20:,.0f} MiB){'' if cache else '; the biLM runs in every training step'}")
        return cls(task, vocab, labels, elmo, cache=cache, device=choose_device(cfg.device))

    @property
    def vocab_hash(self) -> str:
        import hashlib

        words = sorted(self.word_vocab, key=self.word_vocab.__getitem__)
        return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()[:16]

    def __call__(self, examples: Sequence, training: bool = False, path: str | Path = "") -> Features:
        unk = self.word_vocab.get("<unk>", 1)
        sentences = [self.task.words(e, path) for e in examples]
        ids = [np.asarray([self.word_vocab.get(w, unk) for w in words], dtype=np.int64) for words in sentences]
        features = self.task.word_features(examples, ids, self.labels, path)
        inputs = features.inputs
        if self.elmo is not None:
            if self.cache:
                for feat, states in zip(inputs, self._layer_states(sentences)):
                    feat["elmo_states"] = states
            else:
                from ..models.elmo import word_to_char_ids

                W = self.elmo.max_characters_per_token
                spelled: dict[str, list[int]] = {}  # each distinct word is spelled once

                def spell(w: str) -> list[int]:
                    if w not in spelled:
                        spelled[w] = word_to_char_ids(w, W)
                    return spelled[w]

                for feat, words in zip(inputs, sentences):
                    feat["char_ids"] = np.asarray([spell(w) for w in words], dtype=np.int16)  # (words, W)
        return features

    @torch.no_grad()
    def _layer_states(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """The frozen biLM's layer states of every sentence, each (words, L + 1, 2P) float32."""
        from ..models.elmo import batch_to_char_ids

        elmo, lm = self.elmo, self.elmo.lm
        home = model_device(lm)
        lm.to(self.device)
        t0 = time.perf_counter()
        out: list[np.ndarray | None] = [None] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))  # little padding per batch
        i = 0
        try:
            while i < len(order):
                size = max(1, self.batch_words // max(1, len(sentences[order[i]])))
                idx = order[i:i + size]
                i += size
                batch = [sentences[j] for j in idx]
                char_ids = batch_to_char_ids(batch, elmo.max_characters_per_token).to(self.device)  # (B, T, W)
                lengths = torch.tensor([len(s) for s in batch], device=self.device)
                mask = torch.arange(char_ids.shape[1], device=self.device)[None, :] < lengths[:, None]  # (B, T)
                states = elmo.layer_states(char_ids, mask).permute(1, 2, 0, 3).float().cpu().numpy()  # (B, T, L+1, 2P)
                for k, j in enumerate(idx):
                    out[j] = np.ascontiguousarray(states[k, : len(sentences[j])])
        finally:
            lm.to(home)
        words = sum(len(s) for s in sentences)
        log(f"ELMo: layer states of {len(sentences):,} sentences ({words:,} words) in {time.perf_counter() - t0:.1f} s")
        return out  # type: ignore[return-value]


def new_bilstm_model(task: Task, vocab: dict[str, int], labels: Sequence[str], cfg: FinetuneConfig, lm=None):
    """A freshly initialised BiLSTM tagger / classifier (``task.bilstm_model``) with a new scalar mix over ``lm``."""
    from ..models.elmo import Elmo
    from ..config import TaggerConfig
    from ..models.tagger import MODEL_CLASSES

    config = TaggerConfig(vocab_size=len(vocab), num_labels=len(labels), **bilstm_config_overrides(cfg.bilstm))
    elmo = Elmo(lm, layer_norm=config.elmo_layer_norm, dropout=config.elmo_dropout) if lm is not None else None
    return MODEL_CLASSES[task.bilstm_model](config, elmo=elmo, word_vocab=vocab,
                                            label_vocab={lab: i for i, lab in enumerate(labels)})


def load_bilstm(task: Task, model_dir: str | Path) -> tuple[Any, tuple[str, ...]]:
    """A saved BiLSTM tagger / classifier and its labels, checked against the task."""
    from ..models import from_pretrained

    check_bilstm_task(task)
    model = from_pretrained(model_dir)
    if model.task != task.model_task:
        raise CheckpointError(f"{model_dir} holds a {model.model_type}, but {task.name} needs a {task.bilstm_model}; "
                              f"train one with: plmkit finetune {task.name} --arch bilstm ...")
    labels = model.label_names
    if task.labels is not None and set(labels) != set(task.labels):
        raise CheckpointError(f"{model_dir}: the model's labels {list(labels)} are not {task.name}'s {list(task.labels)}")
    return model, labels


__all__ = ["BILSTM_MODEL_TYPES", "ELMO_CACHE_MAX_BYTES", "resolve_arch", "check_bilstm_task", "bilstm_config_overrides",
           "load_elmo_for_task", "WordFeaturizer", "new_bilstm_model", "load_bilstm"]
