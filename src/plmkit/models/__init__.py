"""Models: the shared Transformer encoder, task heads, Hugging Face import/export, ELMo and the BiLSTM task models.

:func:`from_pretrained` (:mod:`.auto`) loads a folder of any model kind."""

from .auto import from_pretrained
from .model import TASKS, ModelOutput, PlmModel, normalize_task, save_pretrained, task_heads
from .transformer import TransformerEncoder

__all__ = ["from_pretrained", "save_pretrained", "TASKS", "ModelOutput", "PlmModel", "normalize_task",
           "task_heads", "TransformerEncoder"]
