"""Downstream BiLSTM models that can take ELMo vectors: a sequence tagger and a sentence classifier.

This is the "use" half of Peters et al. (2018): a task model with its *own* static word embeddings
(randomly initialised over a vocabulary built on the training set) and a BiLSTM; ELMo, when given,
is frozen and its task-weighted scalar mix of layers (:class:`plmkit.models.elmo.Elmo`) is
concatenated to the word embeddings — the task model itself does not change. Nothing here comes
from BERT; the tagger follows the classic BiLSTM-softmax tagger (e.g. Lample et al., 2016, without
the CRF), the classifier pools the BiLSTM states (max or mean) into one linear layer.

Batches (built by :func:`tagger_batch`) are dicts of tensors:

* ``input_ids`` (B, T) word indices into the task's word vocabulary (0 = ``<pad>``, 1 = ``<unk>``),
* ``attention_mask`` (B, T) 1 for real words,
* ``char_ids`` (B, T, 50) ELMo character ids of the raw words (only when an ELMo is used), or instead
  ``elmo_states`` (B, T, L + 1, 2P): the frozen biLM's layer states (:meth:`Elmo.layer_states`),
  computed once per sentence — ``plmkit finetune`` caches them so that epochs and seeds do not
  rerun the biLM; the learned scalar mix is applied to them in every step either way,
* ``labels`` (B, T) tag indices with -100 at padding (tagging) or (B,) class indices (classification).

Both models return a :class:`~plmkit.models.ModelOutput` with ``loss`` and ``logits``, so the shared
trainer (``model(**batch).loss``) trains them. ``save_pretrained(folder)`` writes ``config.json``
(``model_type`` ``bilstm-tagger`` / ``bilstm-classifier``, the sizes, the labels), ``model.safetensors``
(the task weights and the scalar mix), ``words.txt`` (the word vocabulary) and, with ELMo, the biLM
as an ELMo folder in ``elmo/``; :func:`load_tagger` reads it back.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# TaggerConfig lives in plmkit.config with every other config; its names stay importable from here.
from ..config import POSITIVE, TAGGER_RANGES, UNIT_OPEN, TaggerConfig, check_fits, config_from_dict  # noqa: F401
from ..errors import CheckpointError, ConfigError, UsageError
from .dropout import Dropout
from .elmo import Elmo, ElmoModel, batch_to_char_ids, load_elmo
from .folder import (CONFIG_NAME, WEIGHTS_NAME, check_tensor, header_state, load_state, read_config, read_word_list,
                     write_config, write_weights, write_word_list)
from .hf import _id2label
from .model import ModelOutput
from .protocol import LABELLED, ROWS, LossField, count_labelled, count_rows

PAD, UNK = "<pad>", "<unk>"
IGNORE_INDEX = -100
WORDS_NAME = "words.txt"


# ----------------------------------------------------------------------------- vocabularies & batches
def build_word_vocab(sentences: Iterable[Sequence[str]], min_count: int = 1,
                     max_size: int | None = None) -> dict[str, int]:
    """Word → index from the training sentences: ``<pad>`` = 0, ``<unk>`` = 1, then by frequency."""
    counts = Counter(w for s in sentences for w in s)
    words = sorted((w for w, n in counts.items() if n >= min_count and w not in (PAD, UNK)),
                   key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - 2)]
    return {PAD: 0, UNK: 1, **{w: i + 2 for i, w in enumerate(words)}}


def build_label_vocab(labels: Iterable[Any]) -> dict[str, int]:
    """Label → index, sorted; ``labels`` are per-sentence labels or per-token label lists."""
    seen: set[str] = set()
    for item in labels:
        if isinstance(item, (list, tuple)):
            seen.update(str(x) for x in item)
        else:
            seen.add(str(item))
    return {lab: i for i, lab in enumerate(sorted(seen))}


def tagger_batch(sentences: Sequence[Sequence[str]], labels: Sequence[Any] | None, word_vocab: Mapping[str, int],
                 label_vocab: Mapping[str, int] | None,
                 elmo: Elmo | ElmoModel | int | None = None) -> dict[str, torch.Tensor]:
    """Collate tokenized sentences (and their labels) into a batch for the tagger or classifier.

    ``labels`` is one label list per sentence (tagging: ``labels`` (B, T), -100 at padding) or one
    label per sentence (classification: ``labels`` (B,)), or None. ``elmo`` (an :class:`Elmo`, an
    :class:`ElmoModel`, or the characters-per-word count) adds ``char_ids`` (B, T, 50) of the raw words.
    """
    if not sentences:
        raise UsageError("tagger_batch needs at least one sentence")
    unk = word_vocab.get(UNK)
    B, T = len(sentences), max(len(s) for s in sentences)
    pad = word_vocab.get(PAD, 0)
    ids = torch.full((B, T), pad, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for i, s in enumerate(sentences):
        row = []
        for w in s:
            j = word_vocab.get(w, unk)
            if j is None:
                raise UsageError(f"word {w!r} is not in the word vocabulary and it has no {UNK!r} entry")
            row.append(j)
        if row:
            ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if labels is not None:
        if label_vocab is None:
            raise UsageError("tagger_batch got labels but no label_vocab")
        if len(labels) != B:
            raise UsageError(f"tagger_batch got {B} sentences but {len(labels)} labels")

        def index(lab: Any) -> int:
            try:
                return label_vocab[str(lab)]
            except KeyError:
                known = ", ".join(sorted(label_vocab)[:10]) + (", …" if len(label_vocab) > 10 else "")
                raise UsageError(f"label {lab!r} is not in the label vocabulary ({known})") from None

        if all(isinstance(x, (list, tuple)) for x in labels):
            y = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
            for i, (s, tags) in enumerate(zip(sentences, labels)):
                if len(tags) != len(s):
                    raise UsageError(f"sentence {i} of the batch has {len(s)} words but {len(tags)} tags")
                if tags:
                    y[i, : len(tags)] = torch.tensor([index(t) for t in tags])
        else:
            y = torch.tensor([index(x) for x in labels], dtype=torch.long)
        batch["labels"] = y
    if elmo is not None:
        if isinstance(elmo, int) and not isinstance(elmo, bool):
            max_chars = elmo
        elif isinstance(elmo, Elmo):
            max_chars = elmo.max_characters_per_token
        elif isinstance(elmo, ElmoModel):
            max_chars = elmo.config.max_characters_per_token
        else:
            max_chars = 50
        batch["char_ids"] = batch_to_char_ids(sentences, max_chars)
    return batch


# ----------------------------------------------------------------------------- models
class _BiLstmEncoder(nn.Module):
    """word embeddings [; ELMo] → dropout → BiLSTM → dropout: (B, T, 2H).

    ``word_vocab`` / ``label_vocab`` (optional) travel with the model so that a saved folder can
    tag new text.
    """

    model_type = "bilstm"

    def __init__(self, config: TaggerConfig, elmo: Elmo | None = None, word_vocab: Mapping[str, int] | None = None,
                 label_vocab: Mapping[str, int] | None = None):
        super().__init__()
        self.config = config
        self.word_vocab = dict(word_vocab) if word_vocab is not None else None
        self.label_vocab = dict(label_vocab) if label_vocab is not None else None
        if self.word_vocab is not None and len(self.word_vocab) != config.vocab_size:
            raise ConfigError(f"tagger config vocab_size={config.vocab_size} but word_vocab has "
                              f"{len(self.word_vocab)} words")
        if self.label_vocab is not None and len(self.label_vocab) != config.num_labels:
            raise ConfigError(f"tagger config num_labels={config.num_labels} but label_vocab has "
                              f"{len(self.label_vocab)} labels")
        self.embed = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_id)
        self.elmo = elmo
        in_dim = config.embedding_dim + (elmo.output_dim if elmo is not None else 0)
        self.lstm = nn.LSTM(in_dim, config.hidden_size, num_layers=config.num_layers, batch_first=True,
                            bidirectional=True, dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = Dropout(config.dropout)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               char_ids: torch.Tensor | None, elmo_states: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = attention_mask.bool() if attention_mask is not None else input_ids != self.config.pad_id  # (B, T)
        x = self.embed(input_ids)  # (B, T, E)
        if self.elmo is not None:
            if elmo_states is not None:  # the frozen biLM's layers, computed once per sentence
                e = self.elmo(attention_mask=mask, layer_states=elmo_states)  # (B, T, 2P)
            elif char_ids is not None:
                e = self.elmo(char_ids, mask)  # (B, T, 2P)
            else:
                raise UsageError("this model uses ELMo, so its batches need char_ids (or precomputed elmo_states): "
                                 "build them with tagger_batch(..., elmo=model.elmo)")
            x = torch.cat([x, e], dim=-1)  # (B, T, E + 2P)
        elif elmo_states is not None:
            raise UsageError("elmo_states were given but this model has no ELMo")
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(x), lengths, batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=input_ids.shape[1])  # (B, T, 2H)
        return self.dropout(h), mask

    @property
    def label_names(self) -> tuple[str, ...]:
        """The labels in id order (``logits[..., i]`` scores ``label_names[i]``)."""
        if self.label_vocab is None:
            raise UsageError("this model was built without label_vocab, so its labels have no names")
        return tuple(sorted(self.label_vocab, key=self.label_vocab.__getitem__))

    def batch(self, sentences: Sequence[Sequence[str]], labels: Sequence[Any] | None = None) -> dict[str, torch.Tensor]:
        """:func:`tagger_batch` with this model's vocabularies (and ELMo, if it has one)."""
        if self.word_vocab is None:
            raise UsageError("this model was built without word_vocab; call tagger_batch with the vocabularies")
        return tagger_batch(sentences, labels, self.word_vocab, self.label_vocab, elmo=self.elmo)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def prepare_training(self, gradient_checkpointing: bool = False) -> None:
        """Nothing to prepare (the loss contract, models/protocol.py)."""

    # ------------------------------------------------------------------ model protocol (protocol.py)
    input_kind = "words"
    lm_kind = None  # a task model: it neither scores text nor (without a word_layer_states) embeds it
    num_layer_states = None

    def describe(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "task": self.task, "heads": []}

    def save_pretrained(self, path: str | Path, tokenizer=None, extra: dict[str, Any] | None = None) -> Path:
        """Write the folder :func:`load_tagger` reads (``tokenizer`` is accepted and ignored: words are the input)."""
        if self.word_vocab is None or self.label_vocab is None:
            raise UsageError("save_pretrained needs the model's word_vocab and label_vocab (pass them to the constructor)")
        folder = Path(path)
        words = sorted(self.word_vocab, key=self.word_vocab.__getitem__)
        if [self.word_vocab[w] for w in words] != list(range(len(words))) or any("\n" in w for w in words):
            raise UsageError("the word vocabulary must map words without line breaks to 0 … V−1")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("elmo.lm.")}
        cfg: dict[str, Any] = {"model_type": self.model_type, **self.config.to_dict(),
                               "id2label": {str(i): lab for lab, i in self.label_vocab.items()},
                               "plmkit": {"format": 1, **(extra or {})}}
        if self.elmo is not None:
            e = self.elmo
            cfg["elmo"] = {"num_output_representations": len(e.mixes), "layer_norm": e.mixes[0].layer_norm,
                           "dropout": e.dropout.p, "freeze": e.freeze}
            e.lm.save_pretrained(folder / "elmo")
        write_weights(folder, state)
        write_word_list(folder / WORDS_NAME, words)
        write_config(folder, cfg)
        return folder


class BiLstmTagger(_BiLstmEncoder):
    """Static word embeddings [+ ELMo] → BiLSTM → per-word softmax (POS, NER)."""

    model_type = "bilstm-tagger"
    task = "token-classification"  # the plmkit / transformers task name, as finetune names tasks

    def __init__(self, config: TaggerConfig, elmo: Elmo | None = None, word_vocab: Mapping[str, int] | None = None,
                 label_vocab: Mapping[str, int] | None = None):
        super().__init__(config, elmo, word_vocab, label_vocab)
        self.out = nn.Linear(2 * config.hidden_size, config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                char_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                elmo_states: torch.Tensor | None = None, **unused: Any) -> ModelOutput:
        if unused:
            raise UsageError(f"unexpected tagger input(s): {', '.join(sorted(unused))}")
        h, mask = self.encode(input_ids, attention_mask, char_ids, elmo_states)
        logits = self.out(h)  # (B, T, num_labels)
        loss = None
        if labels is not None:
            labels = labels.masked_fill(~mask, IGNORE_INDEX)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return ModelOutput(loss=loss, logits=logits, loss_fields=(LossField("loss", LABELLED, logged=False),))

    def loss_counts(self, batch: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """The tagged words: labels that are not -100 (padding is -100 in :func:`tagger_batch`)."""
        return {LABELLED: count_labelled(batch)}


class BiLstmClassifier(_BiLstmEncoder):
    """Static word embeddings [+ ELMo] → BiLSTM → max / mean pool over words → linear (sentence labels)."""

    model_type = "bilstm-classifier"
    task = "sequence-classification"

    def __init__(self, config: TaggerConfig, elmo: Elmo | None = None, word_vocab: Mapping[str, int] | None = None,
                 label_vocab: Mapping[str, int] | None = None):
        super().__init__(config, elmo, word_vocab, label_vocab)
        self.out = nn.Linear(2 * config.hidden_size, config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                char_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                elmo_states: torch.Tensor | None = None, **unused: Any) -> ModelOutput:
        if unused:
            raise UsageError(f"unexpected classifier input(s): {', '.join(sorted(unused))}")
        h, mask = self.encode(input_ids, attention_mask, char_ids, elmo_states)  # (B, T, 2H)
        m = mask.unsqueeze(-1)
        if self.config.pooling == "max":
            pooled = h.masked_fill(~m, float("-inf")).amax(1)  # (B, 2H)
            pooled = pooled.masked_fill(~mask.any(1, keepdim=True), 0.0)  # empty rows
        else:
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        logits = self.out(pooled)  # (B, num_labels)
        loss = F.cross_entropy(logits.float(), labels.view(-1)) if labels is not None else None
        return ModelOutput(loss=loss, logits=logits, loss_fields=(LossField("loss", ROWS, logged=False),))

    def loss_counts(self, batch: Mapping[str, torch.Tensor]) -> dict[str, int]:
        return {ROWS: count_rows(batch)}


MODEL_CLASSES = {"bilstm-tagger": BiLstmTagger, "bilstm-classifier": BiLstmClassifier}


@dataclass
class _ElmoSettings:
    """The ``elmo`` section of a tagger's config.json (the arguments of :class:`~plmkit.models.elmo.Elmo`)."""

    num_output_representations: int = 1
    layer_norm: bool = False
    dropout: float = 0.5
    freeze: bool = True


def load_tagger(path: str | Path, meta: bool = False) -> BiLstmTagger | BiLstmClassifier:
    """Load a folder written by ``BiLstmTagger.save_pretrained`` / ``BiLstmClassifier.save_pretrained``.

    The config is checked and the model's size computed before anything is allocated; ``meta=True``
    builds it on the meta device from the safetensors header alone (``plmkit info``).
    """
    folder = Path(path)
    raw = read_config(folder)
    cfg_file = folder / CONFIG_NAME
    cls = MODEL_CLASSES.get(raw.get("model_type"))
    if cls is None:
        raise CheckpointError(f"{cfg_file}: model_type {raw.get('model_type')!r} is not a BiLSTM tagger or classifier "
                              f"({', '.join(MODEL_CLASSES)})")
    fields = {k: v for k, v in raw.items() if k not in ("model_type", "id2label", "elmo", "plmkit")}
    try:
        config = TaggerConfig.from_dict(fields, source=str(cfg_file))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    words_file = folder / WORDS_NAME
    if not words_file.exists():
        raise CheckpointError(f"{folder} has no {WORDS_NAME} (the word vocabulary); copy it from the folder the model "
                              "was saved to")
    words = read_word_list(words_file, "the task model's word vocabulary")
    try:
        id2label = _id2label(raw, str(cfg_file)) if raw.get("id2label") is not None else {}
        elmo_kw = (dataclasses.asdict(config_from_dict(_ElmoSettings, raw["elmo"], str(cfg_file), section="elmo.",
                                                        ranges={"num_output_representations": POSITIVE,
                                                                "dropout": UNIT_OPEN}, what="ELMo use"))
                   if raw.get("elmo") is not None else None)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    if len(words) != config.vocab_size or sorted(id2label) != list(range(config.num_labels)):
        raise CheckpointError(f"{cfg_file} does not match {WORDS_NAME} / its id2label (vocab_size={config.vocab_size}, "
                              f"{len(words)} words; num_labels={config.num_labels}, {len(id2label)} labels)")
    elmo = None
    if raw.get("elmo") is not None:
        if not (folder / "elmo").is_dir():
            raise CheckpointError(f"{cfg_file} uses ELMo but {folder / 'elmo'} is missing; copy the elmo/ folder too")
        elmo = Elmo(load_elmo(folder / "elmo", meta=meta), **elmo_kw)
    headers = header_state(folder)
    stored = sum(t.numel() for t in headers.values())
    c = config
    if c.vocab_size * c.embedding_dim > 4 * stored + 1_000_000:  # far beyond the weights (else: tensor by tensor)
        raise CheckpointError(f"{cfg_file} describes word embeddings of {c.vocab_size:,} × {c.embedding_dim} but "
                              f"{folder} holds only {stored:,} weights; the config does not belong to these weights")
    if not meta:
        lstm = c.num_layers * 8 * c.hidden_size * (c.embedding_dim + (elmo.output_dim if elmo else 0) + c.hidden_size + 2)
        check_fits(4 * (c.vocab_size * c.embedding_dim + lstm) + 4 * stored, f"loading {folder}",
                   "use a machine with more memory")
    with torch.device("meta") if meta else contextlib.nullcontext():
        model = cls(config, elmo=elmo, word_vocab={w: i for i, w in enumerate(words)},
                    label_vocab={lab: i for i, lab in id2label.items()})
    state = headers if meta else load_state(folder)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith("elmo.lm.")}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(f"{folder / WEIGHTS_NAME} does not fit {cfg_file}: missing {missing[:4]}, unexpected "
                              f"{unexpected[:4]}, wrong shape {bad[:4]}")
    for k, v in expected.items():
        check_tensor(folder / WEIGHTS_NAME, k, state[k], v, source=str(cfg_file))  # dtype kind, finite values
    if not meta:
        model.load_state_dict(state, strict=False)
    model.eval()
    return model
