"""Data: raw-text readers, prepared (tokenized, sharded) corpora and the pretraining objectives.

``readers`` turns files into documents and sentences; ``shards`` writes and memory-maps prepared
corpora (``plmkit prepare``); ``objectives`` builds masked-LM / causal-LM batches from them.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

# Loaded on first use (PEP 562): the objectives import torch, which the CLI defers until a command runs.
_LAZY = {**dict.fromkeys(("CorpusReader", "ReadOptions", "SourceInfo", "brown_categories", "expand_inputs",
                          "iter_tagged", "read_documents", "read_sentences", "read_tagged"), "readers"),
         **dict.fromkeys(("PreparedCorpus", "ShardWriter", "prepare_corpus", "write_prepared"), "shards"),
         **dict.fromkeys(("DataConfig", "PretrainingStream", "data_config_from_preset"), "objectives")}
__all__ = list(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
