"""Models: the shared Transformer encoder, task heads, Hugging Face import/export (and ELMo)."""

from .hf import from_pretrained, save_pretrained
from .model import TASKS, ModelOutput, PlmModel, normalize_task, task_heads
from .transformer import TransformerEncoder

__all__ = ["from_pretrained", "save_pretrained", "TASKS", "ModelOutput", "PlmModel", "normalize_task",
           "task_heads", "TransformerEncoder"]
