"""``FinetuneConfig``: what ``plmkit finetune`` takes — the task, its files and options, the model, and
the training config it trains with.

The optimisation settings are a :class:`~plmkit.training.trainer.TrainConfig` (``training``), the one
pretraining uses, with BERT's fine-tuning recipe where fine-tuning differs (:data:`FINETUNE_TRAINING`),
not a copy of its fields. Its fields are also keywords and attributes of ``FinetuneConfig``, as they
were before ``training`` existed: ``FinetuneConfig(..., lr=3e-5, epochs=2).training.lr == 3e-5``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

from ..config import MAX_SEED, NONNEG, POSITIVE, SEED, TRAIN_RANGES, UNIT_OPEN, TrainConfig, check_fields
from ..errors import ConfigError
from .tasks.base import TaskOptions

TRANSFORMER_LR = 2e-5  # BERT's fine-tuning recipe (appendix A.3)
# A BiLSTM trained from scratch for a few epochs wants a far larger rate than fine-tuning: on Brown POS
# (benchmarks/elmo_brown.py, 5 epochs) 1e-3 gave 68.6% accuracy, 5e-3 79.9%, 1e-2 84.2%.
BILSTM_LR = 1e-2

# Where fine-tuning trains differently from TrainConfig's defaults (which suit pretraining). BERT's recipe
# (appendix A.3): 2–4 epochs, batch 16/32, lr in {5e-5, 3e-5, 2e-5} (here by architecture: TRANSFORMER_LR,
# BILSTM_LR), 10% warmup then linear decay, weight decay 0.01. One checkpoint is enough: the run's result is
# the saved model folder, the checkpoint only lets an interrupted run resume.
FINETUNE_TRAINING: dict[str, Any] = {"epochs": 3.0, "warmup": 0.1, "schedule": "linear", "keep_last": 1}

# TrainConfig's fields, which FinetuneConfig takes as keywords and attributes. `seed` is not among them:
# FinetuneConfig.seeds lists the runs, and each run trains with its own.
TRAIN_KEYWORDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.init and f.name != "seed")
# Keywords whose None means "the default" (lr: the architecture's; progress: shown).
_NONE_IS_DEFAULT = ("lr", "progress")


def _accepts_training_keywords(cls):
    """Let ``cls`` (FinetuneConfig) take TrainConfig's fields as keywords and attributes of its ``training``."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_training_keywords"] = {k: kwargs.pop(k) for k in list(kwargs) if k in TRAIN_KEYWORDS}
        init(self, *args, **kwargs)  # the dataclass __init__; __post_init__ applies the keywords

    cls.__init__ = __init__

    def attribute(name: str) -> property:
        def get(self: Any) -> Any:
            return getattr(self.training, name)

        def set_(self: Any, value: Any) -> None:
            setattr(self.training, name, value)
        return property(get, set_, doc=f"``training.{name}``")

    for name in TRAIN_KEYWORDS:
        setattr(cls, name, attribute(name))
    return cls


@_accepts_training_keywords
@dataclass
class FinetuneConfig:
    """Everything ``plmkit finetune`` takes. Defaults follow BERT's fine-tuning recipe (appendix A.3).

    ``training`` holds the optimisation (``lr``, ``epochs``, ``batch_size``, ``grad_accum``, ``warmup``,
    ``weight_decay``, ``clip_norm``, ``max_steps``, ``bf16``, ``eval_every``, ``save_every``,
    ``save_minutes``, ``device``, ``progress``, ``tensorboard``, and every other TrainConfig field), also
    given as keywords of FinetuneConfig itself. Two of its fields read as fine-tuning reads them:
    ``batch_size`` is the batch the optimizer sees, which ``grad_accum`` K splits into K micro-batches
    (K must divide it), and each of ``seeds`` replaces ``seed``. ``max_steps`` overrides ``epochs``.
    """

    task: str
    model: str | None  # the pretrained folder to fine-tune; None with arch="bilstm"
    train: str
    out: str
    eval: list[str] = field(default_factory=list)
    # None: FINETUNE_TRAINING with the architecture's lr (TRANSFORMER_LR, BILSTM_LR); keywords given to
    # FinetuneConfig (lr=..., epochs=...) apply on top of it, or of the TrainConfig given here.
    training: TrainConfig | None = None
    eval_batch_size: int = 64
    seeds: list[int] = field(default_factory=lambda: [42])
    eval_split: float = 0.1  # fraction of train carved off for validation when no --eval is given
    split_seed: int = 0  # the carved split is the same for every training seed
    max_train: int | None = None  # use only the first N training examples (quick runs, benchmarks)
    max_eval: int | None = None  # score only the first N examples of each evaluation set
    bucket: bool = True
    resume: bool = False
    # Resumable checkpoints are saved as in pretraining (training.save_every / save_minutes: every 5 minutes
    # by default); the newest is deleted once the model is saved, unless kept.
    keep_checkpoints: bool = False
    options: TaskOptions = field(default_factory=TaskOptions)
    # "transformer" fine-tunes `model`; "bilstm" trains plmkit.models.tagger's BiLSTM tagger / classifier
    # from scratch (no `model`); "auto": bilstm when `elmo` is given, else transformer.
    arch: str = "auto"
    # An ELMo folder: its frozen layers, scalar-mixed by weights the task learns, are concatenated to the
    # BiLSTM's word embeddings (Peters et al., 2018, §3.3).
    elmo: str | None = None
    # TaggerConfig fields for the BiLSTM: embedding_dim, hidden_size, num_layers, dropout, pooling,
    # elmo_dropout, elmo_layer_norm (unset: TaggerConfig's defaults, the usual small BiLSTM tagger).
    bilstm: dict[str, Any] = field(default_factory=dict)
    # Training words seen fewer times become <unk>, so that <unk> itself gets trained for unseen words.
    min_word_count: int = 2
    # Cache the frozen biLM's layer states once per sentence (None: when they fit in ELMO_CACHE_MAX_BYTES).
    elmo_cache: bool | None = None

    def __post_init__(self) -> None:
        given = {k: v for k, v in self.__dict__.pop("_training_keywords", {}).items()
                 if not (v is None and k in _NONE_IS_DEFAULT)}
        bilstm = self.arch == "bilstm" or (self.arch == "auto" and bool(self.elmo))
        base = self.training if self.training is not None else TrainConfig(
            **FINETUNE_TRAINING, lr=BILSTM_LR if bilstm else TRANSFORMER_LR)
        if not isinstance(base, TrainConfig):
            raise ConfigError(f"finetune settings: training is {type(base).__name__}, expected a plmkit.training."
                              "trainer.TrainConfig (or give its fields as keywords: lr=..., epochs=...)")
        training = dataclasses.replace(base, **given)  # a copy: this config owns its training settings
        if training.max_steps is not None:
            training.epochs = None  # --max-steps overrides --epochs
        self.training = training
        # Types and ranges of every field (paths may be str or os.PathLike), before anything is read.
        check_fields(self, "finetune settings", ranges=FINETUNE_RANGES, paths=("model", "train", "out", "eval", "elmo"))
        check_fields(training, "finetune settings", ranges=TRAIN_RANGES)
        training.validate()
        for seed in self.seeds:
            if not 0 <= seed <= MAX_SEED:
                raise ConfigError(f"finetune settings: seed {seed} is out of range; seeds are integers from 0 to "
                                  f"{MAX_SEED}")

    def run_training(self, seed: int, batch_size: int, grad_accum: int) -> TrainConfig:
        """The TrainConfig of one seed's run, whose optimizer batch is ``batch_size`` micro-batches times
        ``grad_accum`` (:func:`plmkit.finetune.runner.finetune_batches`)."""
        return dataclasses.replace(self.training, seed=seed, batch_size=batch_size, grad_accum=grad_accum)


# Ranges of FinetuneConfig's own numbers (config.check_fields); its training's are config.TRAIN_RANGES.
FINETUNE_RANGES: dict[str, Any] = {
    **dict.fromkeys(("eval_batch_size", "max_train", "max_eval"), POSITIVE),
    "min_word_count": NONNEG, "eval_split": UNIT_OPEN, "split_seed": SEED,
}


__all__ = ["FinetuneConfig", "FINETUNE_TRAINING", "FINETUNE_RANGES", "TRAIN_KEYWORDS", "TRANSFORMER_LR", "BILSTM_LR"]
