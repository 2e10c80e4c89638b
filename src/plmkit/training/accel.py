"""Speed switches of the training step on a GPU: CUDA graphs (``--cuda-graphs``) and FP8 matmuls (``--fp8``).

Neither changes what is trained; each changes how the step runs:

* ``--cuda-graphs`` compiles the step with ``torch.compile(mode="reduce-overhead")``: Inductor records the
  compiled forward and backward as CUDA graphs and replays them, so the host no longer launches every
  kernel (BENCHMARKS.md measured ~6.5 ms of host gaps in a 36 ms compiled BERT-base step on an H100). A
  graph replays fixed shapes, so the data must have them: masked-LM batches get a fixed number of
  predicted slots per row (``data.max_predictions``, google-research/bert's ``max_predictions_per_seq``),
  which :func:`static_data_config` sets to :func:`~plmkit.data.objectives.default_max_predictions` when
  unset — a number no row reaches, so masks, losses and counts are those of the dynamic path.
* ``--fp8`` converts the ``nn.Linear`` layers of the encoder blocks with torchao's float8 training
  (``convert_to_float8_training``, tensorwise scaling; the FP8 formats of Micikevicius et al., 2022): their
  matmuls run on FP8 tensor cores (compute capability 8.9 or newer: Ada, Hopper, Blackwell) while weights,
  gradients and optimizer state stay in full precision, so checkpoints and their names do not change.
  Embeddings, heads and the tied MLM decoder keep bf16/fp32. No hand-written kernels: torchao is PyTorch's
  maintained library (``pip install 'plmkit[fp8]'``). Its scaling and casts are fast only when fused, so
  give ``--compile`` or ``--cuda-graphs`` with it (alone it computes the same numbers, slowly).

Both need a CUDA GPU. :func:`check` refuses them elsewhere — a CPU, a GPU without FP8, no torchao — with a
:class:`~plmkit.errors.ConfigError` that names the flag and what to do, before anything is trained.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import DataConfig, TrainConfig

FP8_CAPABILITY = (8, 9)  # the first CUDA architecture with FP8 tensor cores (Ada); Hopper is 9.0
FP8_CARDS = "L4/L40 (8.9), H100/H200 (9.0), B200 (10.0)"
FP8_ALIGN = 16  # torch._scaled_mm needs both matrix dimensions divisible by 16


def _device(train: "TrainConfig", device: torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    from .distributed import choose_device

    return choose_device(train.device, int(os.environ.get("LOCAL_RANK", "0") or 0))


def check(train: "TrainConfig", device: torch.device | None = None) -> None:
    """Refuse ``--cuda-graphs`` / ``--fp8`` where they cannot run (ConfigError naming the flag and what to do).

    ``device``: the run's device (default: resolved from ``train.device`` as the trainer resolves it).
    """
    if not (train.cuda_graphs or train.fp8):
        return
    device = _device(train, device)
    if device.type != "cuda":
        if train.cuda_graphs:
            raise ConfigError(f"--cuda-graphs (train.cuda_graphs) records the training step as CUDA graphs, which "
                              f"needs a CUDA GPU; this run's device is {device}. Drop --cuda-graphs (on a CPU, "
                              "--compile is what speeds up the step)")
        raise ConfigError(f"--fp8 (train.fp8) runs the encoder's matmuls on a GPU's FP8 tensor cores (compute "
                          f"capability 8.9 or newer: {FP8_CARDS}); this run's device is {device}. Drop --fp8 (--bf16 "
                          "is the mixed precision for this device)")
    if train.fp8:
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < FP8_CAPABILITY:
            raise ConfigError(f"--fp8 (train.fp8): {torch.cuda.get_device_name(device)} has compute capability "
                              f"{major}.{minor}, without FP8 tensor cores (8.9 or newer needed: {FP8_CARDS}). Drop "
                              "--fp8 and train with --bf16")
        if importlib.util.find_spec("torchao") is None:
            raise ConfigError("--fp8 (train.fp8) uses torchao's float8 training, which is not installed here; "
                              "install it with pip install 'plmkit[fp8]' (or pip install torchao), or drop --fp8")


def fp8_layer(module: nn.Module, name: str) -> bool:
    """Whether the Linear ``name`` runs in FP8: a layer of an encoder block (``…layers.N…``, where the FLOPs
    are) with both dimensions divisible by 16. Heads, the pooler and the embedding projection stay as they are."""
    in_blocks = "layers" in name.split(".")
    return (isinstance(module, nn.Linear) and in_blocks and module.in_features % FP8_ALIGN == 0
            and module.out_features % FP8_ALIGN == 0)


def convert_fp8(model: nn.Module) -> list[str]:
    """Swap the encoder blocks' Linear layers (:func:`fp8_layer`) for torchao's Float8Linear, in place.

    The layers keep their parameter objects (an optimizer built before or after sees the same ones) and their
    names (checkpoints do not change). Returns the names of the converted layers."""
    with _quiet_import():
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

    converted: list[str] = []

    def keep(module: nn.Module, name: str) -> bool:
        if fp8_layer(module, name):
            converted.append(name)
            return True
        return False

    convert_to_float8_training(model, module_filter_fn=keep, config=Float8LinearConfig.from_recipe_name("tensorwise"))
    if not converted:
        raise ConfigError("--fp8 (train.fp8): the model has no encoder Linear layer whose sizes are multiples of 16, "
                          "which FP8 matmuls need; drop --fp8")
    return converted


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """torchao logs a warning for each optional CUDA extension it cannot load (all of them on a CPU build, and
    a note from torch's pytree about one of its enums); they say nothing about float8 training, which is Python
    over torch._scaled_mm. Those two loggers are raised to ERROR while it is imported."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def prepare_model(model: nn.Module, train: "TrainConfig", device: torch.device | None = None) -> list[str]:
    """:func:`check`, then ``--fp8``'s conversion (:func:`convert_fp8`); the converted layers' names ([] without)."""
    check(train, device)
    return convert_fp8(model) if train.fp8 else []


def compiled(module: nn.Module, train: "TrainConfig") -> Any:
    """The step's forward: ``torch.compile`` with CUDA graphs (``--cuda-graphs``: mode "reduce-overhead"), plainly
    compiled (``--compile``), or the module itself."""
    if train.cuda_graphs:
        return torch.compile(module, mode="reduce-overhead")
    return torch.compile(module) if train.compile else module


def static_data_config(data: "DataConfig", train: "TrainConfig", note: bool = True) -> "DataConfig":
    """``--cuda-graphs`` replays fixed shapes: a masked objective without ``data.max_predictions`` gets
    :func:`~plmkit.data.objectives.default_max_predictions` (said on stderr when ``note``). Other data are
    returned as they are (causal windows, and a set max_predictions, have static shapes already)."""
    if not train.cuda_graphs or not data.masked or data.max_predictions is not None:
        return data
    from ..data.objectives import default_max_predictions

    slots = default_max_predictions(data.max_length, data.mask_prob)
    if note:
        print(f"plmkit: note: --cuda-graphs replays fixed shapes, so each row has {slots} predicted slots "
              f"(data.max_predictions={slots}: the most a row of {data.max_length} tokens gets at mask_prob "
              f"{data.mask_prob:g}, so no row is capped; set data.max_predictions to choose)", file=sys.stderr)
    return data.replace(max_predictions=slots)


def prepare_run(data: "DataConfig", train: "TrainConfig", note: bool = True) -> "DataConfig":
    """What a pretraining recipe calls once, before reading any data: :func:`check` (fail fast on a device the
    flags cannot use), then the data config they need (:func:`static_data_config`)."""
    check(train)
    return static_data_config(data, train, note)
