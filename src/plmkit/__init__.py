"""plmkit: pretrain, fine-tune, evaluate and use contextual word-representation models.

The Python API follows the Hugging Face habit::

    import plmkit
    model = plmkit.from_pretrained("path/to/model")          # plmkit- or transformers-written
    tok = plmkit.load_tokenizer("path/to/model")
    out = model(**tok(["A man is playing a guitar."]), output_hidden_states=True)
    model.save_pretrained("out/")                             # loads in transformers too
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import ModelConfig, PRESETS, get_preset, model_config_from_preset, preset_names
from .errors import CheckpointError, ConfigError, DataError, PlmkitError, UsageError
from .models import ModelOutput, PlmModel, from_pretrained
from .tokenization import Tokenizer, load_tokenizer
from .embed import Embedder
from .score import ScoreResult, score  # the function deliberately shadows the submodule name

__all__ = [
    "ModelConfig", "PRESETS", "get_preset", "model_config_from_preset", "preset_names",
    "PlmkitError", "UsageError", "ConfigError", "CheckpointError", "DataError",
    "PlmModel", "ModelOutput", "from_pretrained", "Tokenizer", "load_tokenizer",
    "score", "ScoreResult", "Embedder",
]
