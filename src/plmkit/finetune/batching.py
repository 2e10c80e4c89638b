"""Batches for fine-tuning and evaluation: length-bucketed, padded per batch, and a no-grad inference pass.

* :func:`collate` pads a batch to its longest row only, and drops the attention mask when no row is
  padded;
* :func:`bucketed_batches` shuffles, sorts by length within chunks of 50 batches, batches, and shuffles
  the batches (``transformers``' ``group_by_length`` batches the same way but keeps each chunk's batches
  in order, longest first; that order measured no better: BENCHMARKS.md);
* :class:`FeatureBatches` is the trainer's endless, exactly resumable batch source;
* :func:`run_model` forwards every feature once, length-sorted, without gradients, and hands each
  batch's output to the task (:meth:`plmkit.finetune.tasks.Task.batch_outputs`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..models.facts import model_device
from .tasks.base import IGNORE_INDEX, Features, Task

# Per-word inputs of the BiLSTM models, (words, ...) per feature: padded along their *first* axis.
PER_WORD_KEYS = ("char_ids", "elmo_states")


def collate(items: Sequence[dict[str, np.ndarray]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to the longest one; drop ``attention_mask`` when no row is padded."""
    lengths = [f["input_ids"].shape[-1] for f in items]
    T = max(lengths)
    out: dict[str, torch.Tensor] = {}
    for key in items[0]:
        first = items[0][key]
        if np.ndim(first) == 0:
            out[key] = torch.from_numpy(np.asarray([f[key] for f in items]))
            continue
        if key in PER_WORD_KEYS:
            arr = np.zeros((len(items), T, *first.shape[1:]), dtype=first.dtype)  # (B, T, ...)
            for i, f in enumerate(items):
                arr[i, : f[key].shape[0]] = f[key]
            out[key] = torch.from_numpy(arr.astype(np.int64) if key == "char_ids" else arr)  # ids stored as int16
            continue
        fill = {"input_ids": pad_id, "labels": IGNORE_INDEX}.get(key, 0)
        shape = (len(items), *first.shape[:-1], T)
        arr = np.full(shape, fill, dtype=first.dtype)
        for i, f in enumerate(items):
            arr[i, ..., : f[key].shape[-1]] = f[key]
        out[key] = torch.from_numpy(arr)
    if "attention_mask" not in out:
        if min(lengths) < T:
            mask = np.zeros((len(items), T), dtype=np.int64)
            for i, n in enumerate(lengths):
                mask[i, :n] = 1
            out["attention_mask"] = torch.from_numpy(mask)
    elif bool(out["attention_mask"].all()):
        del out["attention_mask"]
    return out


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                     bucket_batches: int = 50) -> list[np.ndarray]:
    """Index batches grouped by length: shuffle, sort within chunks of ``bucket_batches`` batches,
    batch, shuffle the batches. ``rng=None``: no shuffling (evaluation: fully length-sorted)."""
    n = len(lengths)
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    chunk = batch_size * bucket_batches
    batches = []
    for c in range(0, n, chunk):
        part = order[c:c + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    perm = rng.permutation(len(batches))
    return [batches[i] for i in perm]


class FeatureBatches:
    """An endless, resumable, length-bucketed source of training batches (the trainer's BatchSource).

    Epoch ``e`` is a deterministic function of (seed, e); the state is (epoch, batches served).
    """

    def __init__(self, features: Features, batch_size: int, seed: int = 0, pad_id: int = 0,
                 bucket: bool = True, drop_keys: Sequence[str] = ()):
        if len(features) == 0:
            raise DataError("no training features")
        self.features = features
        self.batch_size = batch_size
        self.seed = seed
        self.pad_id = pad_id
        self.bucket = bucket
        self.drop_keys = set(drop_keys)
        self.lengths = features.lengths()
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        return math.ceil(len(self.features) / self.batch_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        if self.bucket:
            return bucketed_batches(self.lengths, self.batch_size, rng)
        order = rng.permutation(len(self.features))
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            batches = self.epoch_batches(self.epoch)
            while self.position < len(batches):
                idx = batches[self.position]
                self.position += 1
                items = [{k: v for k, v in self.features.inputs[i].items() if k not in self.drop_keys}
                         for i in idx.tolist()]
                yield collate(items, self.pad_id)
            self.epoch += 1
            self.position = 0

    def state_dict(self) -> dict:
        return {"epoch": int(self.epoch), "position": int(self.position), "seed": int(self.seed)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


@torch.no_grad()
def run_model(model, task: Task, features: Features, batch_size: int = 64, pad_id: int = 0, bf16: bool = False
              ) -> list[dict[str, np.ndarray]]:
    """Forward every feature once, in length-sorted batches without gradients.

    Returns, per feature (in the original order), what ``task.batch_outputs`` keeps of the model's
    output: ``logits`` (classification / regression / choice), ``start``/``end`` (span, unpadded), or
    ``tags`` (token classification: arg-max label per token, unpadded).
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    lengths = features.lengths()
    results: list[dict[str, np.ndarray] | None] = [None] * len(features)
    label_keys = {"labels", "start_positions", "end_positions"}
    try:
        for idx in bucketed_batches(lengths, batch_size, None):
            items = [{k: v for k, v in features.inputs[i].items() if k not in label_keys} for i in idx.tolist()]
            batch = {k: v.to(device) for k, v in collate(items, pad_id).items()}
            with autocast():
                out = model(**batch)
            rows = idx.tolist()
            for i, result in zip(rows, task.batch_outputs(out, [int(lengths[i]) for i in rows])):
                results[i] = result
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


__all__ = ["PER_WORD_KEYS", "collate", "bucketed_batches", "FeatureBatches", "run_model"]
