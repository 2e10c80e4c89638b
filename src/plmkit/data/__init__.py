"""Data: raw-text readers, prepared (tokenized, sharded) corpora and the pretraining objectives.

``readers`` turns files into documents and sentences; ``shards`` writes and memory-maps prepared
corpora (``plmkit prepare``); ``objectives`` builds masked-LM / causal-LM batches from them.
"""

from __future__ import annotations

from .readers import (CorpusReader, ReadOptions, SourceInfo, brown_categories, expand_inputs, iter_tagged,
                      read_documents, read_sentences, read_tagged)
from .shards import PreparedCorpus, ShardWriter, prepare_corpus, write_prepared
from .objectives import DataConfig, PretrainingStream, data_config_from_preset

__all__ = ["CorpusReader", "ReadOptions", "SourceInfo", "brown_categories", "expand_inputs", "iter_tagged",
           "read_documents", "read_sentences", "read_tagged", "PreparedCorpus", "ShardWriter", "prepare_corpus",
           "write_prepared", "DataConfig", "PretrainingStream", "data_config_from_preset"]
