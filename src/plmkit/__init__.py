"""plmkit: pretrain, fine-tune, evaluate and use contextual word-representation models.

The Python API follows the Hugging Face habit::

    import plmkit
    model = plmkit.from_pretrained("path/to/model")          # plmkit- or transformers-written
    tok = plmkit.load_tokenizer("path/to/model")
    out = model(**tok(["A man is playing a guitar."]), output_hidden_states=True)
    model.save_pretrained("out/")                             # loads in transformers too
"""

from __future__ import annotations

from ._version import __version__  # noqa: F401  (plmkit.__version__)

from ._lazy import lazy_attributes
from .errors import CheckpointError, ConfigError, DataError, PlmkitError, UsageError

# The rest loads on first use (PEP 562), so that `import plmkit.cli` (every command's start) does not import
# torch before the command has installed its signal handling: Ctrl-C then ends even a start-up cleanly.
_LAZY = {
    "ModelConfig": "config", "PRESETS": "config", "get_preset": "config", "model_config_from_preset": "config",
    "preset_names": "config", "ModelOutput": "models", "PlmModel": "models", "from_pretrained": "models",
    "Tokenizer": "tokenization", "load_tokenizer": "tokenization", "Embedder": "embed",
    "ScoreResult": "score", "score": "score",  # plmkit.score: the function (the module is callable too)
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

__all__ = [
    "ModelConfig", "PRESETS", "get_preset", "model_config_from_preset", "preset_names",
    "PlmkitError", "UsageError", "ConfigError", "CheckpointError", "DataError",
    "PlmModel", "ModelOutput", "from_pretrained", "Tokenizer", "load_tokenizer",
    "score", "ScoreResult", "Embedder",
]
