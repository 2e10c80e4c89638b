"""One Transformer encoder for BERT, RoBERTa, ALBERT and a GPT-2-style causal LM.

Follows Vaswani et al. (2017) as used by BERT (Devlin et al., 2019). The variants are fields of
:class:`~plmkit.config.ModelConfig`, each naming what a paper changed relative to BERT:

* RoBERTa (Liu et al., 2019): ``type_vocab_size=1``; ``position_offset`` = pad id + 1 so that
  position ids count only real tokens (the Hugging Face / fairseq layout, 514 positions).
* ALBERT (Lan et al., 2020): ``embedding_size`` E < H with an E→H projection (factorized
  embeddings); ``share_layers`` reuses one block's weights at every depth.
* GPT-2 (Radford et al., 2019): ``causal`` attention, ``pre_norm`` blocks with a final LayerNorm,
  no segment embeddings (``type_vocab_size=0``).

Attention is ``torch.nn.functional.scaled_dot_product_attention`` with boolean masks (True =
attend). A query row with no key to attend to (a fully padded sequence, or left padding under a
causal mask) attends uniformly to every key instead of producing NaN; its output is never used.
Training with attention dropout on a CPU runs the same math as SDPA's CPU path there
(:func:`~plmkit.models.dropout.attention_with_dropout`) with cheaper dropout masks; every dropout in
the models is :class:`~plmkit.models.dropout.Dropout` (``nn.Dropout`` with that mask on CPUs).

Document masking (``document_ids``, from ``data.document_mask``): a packed row that holds several
documents attends only within each one, and position ids restart at every document, so each
document is encoded as if it were alone in its row (the padding-free equivalent of one row per
document). It runs as an SDPA boolean (B, 1, T, T) mask. FlexAttention with a block mask (which skips
the blocks across documents) is there as an opt-in for GPUs (``encoder.flex_attention = True``, used
only when no attention dropout is active): on an H100, BERT-base at 32 × 512 with ~4 documents per
row, it was slower than the SDPA mask (61.1 vs 46.6 ms per training step; BENCHMARKS.md), so it is
not the default.

Output rows (``output_positions``): a head that reads one position per row — a sequence classifier's
[CLS] / ``<s>`` / GPT-2 last token, a multiple-choice head's [CLS] — needs the last layer only there.
That layer then projects its keys and values for every position but its queries, attention output and
feed-forward for those rows alone: the same numbers as the full layer's rows, and ~10/12 of one
layer's matmul FLOPs per token skipped (~14% of MiniLM's 6-layer encoder; ~7% of BERT-base's).

This module does no I/O and knows nothing of tasks, files or the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import ModelConfig
from ..errors import UsageError
from .dropout import Dropout, attention_with_dropout, uses_cpu_mask

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask


def activation(name: str):
    """The nonlinearity named in the config (HF names): feed-forward, MLM transform, first-token heads."""
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    if name == "tanh":
        return torch.tanh
    raise ValueError(f"unknown activation {name!r}")


def init_weights(module: nn.Module, std: float) -> None:
    """BERT/GPT-2 initialisation: N(0, std) for weights, zeros for biases, ones for LayerNorm."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Embeddings(nn.Module):
    """Token + position (+ segment) embeddings, then LayerNorm (post-LN models) and dropout."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        e = config.embed_dim
        self.config = config
        self.word = nn.Embedding(config.vocab_size, e, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, e)
        self.token_type = nn.Embedding(config.type_vocab_size, e) if config.type_vocab_size > 0 else None
        # Pre-LN models (GPT-2) normalise inside each block instead.
        self.norm = None if config.pre_norm else nn.LayerNorm(e, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def position_ids(self, input_ids: torch.Tensor, document_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) position ids; RoBERTa-style offsets count only non-pad tokens; with ``document_ids``
        they restart at 0 (RoBERTa: pad id + 1) where each document begins."""
        B, T = input_ids.shape
        if document_ids is not None:
            idx = torch.arange(T, device=input_ids.device).unsqueeze(0).expand(B, T)
            starts = torch.ones_like(document_ids, dtype=torch.bool)
            starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
            first = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values  # (B, T)
            pos = idx - first
            return pos + self.config.pad_token_id + 1 if self.config.position_offset else pos
        if self.config.position_offset:
            pad = self.config.pad_token_id
            mask = (input_ids != pad).int()
            return torch.cumsum(mask, dim=1) * mask + pad
        return torch.arange(T, device=input_ids.device).unsqueeze(0).expand(B, T)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, document_ids: torch.Tensor | None = None) -> torch.Tensor:
        if position_ids is None:
            position_ids = self.position_ids(input_ids, document_ids)
        x = self.word(input_ids) + self.position(position_ids)  # (B, T, E)
        if self.token_type is not None:
            if token_type_ids is None:
                x = x + self.token_type.weight[0]
            else:
                x = x + self.token_type(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection and SDPA."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        h = config.hidden_size
        self.n_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(h, 3 * h)  # rows: [query; key; value]
        self.out = nn.Linear(h, h)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, mask: "torch.Tensor | BlockMask | None", is_causal: bool,
                queries: torch.Tensor | None = None) -> torch.Tensor:
        """``queries`` (B, k, H): attend from these rows only (keys and values from all of ``x``; ``mask``
        is then the rows' own mask, which carries any causality)."""
        B, T, H = x.shape
        if queries is None:
            qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, T, head_dim)
        else:
            q = F.linear(queries, self.qkv.weight[:H], self.qkv.bias[:H])
            q = q.view(B, -1, self.n_heads, self.head_dim).transpose(1, 2)  # (B, heads, k, head_dim)
            kv = F.linear(x, self.qkv.weight[H:], self.qkv.bias[H:]).view(B, T, 2, self.n_heads, self.head_dim)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
            is_causal = False
        if mask is not None and not isinstance(mask, torch.Tensor):  # a FlexAttention block mask
            y = _flex_attention()(q, k, v, block_mask=mask)
        elif self.training and self.dropout_p > 0 and uses_cpu_mask(q, self.dropout_p):
            # SDPA's CPU path with dropout is this same math, but with bernoulli_ masks (3x the cost)
            y = attention_with_dropout(q, k, v, mask, is_causal, self.dropout_p)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0,
                is_causal=is_causal and mask is None,
            )  # (B, heads, T or k, head_dim)
        return self.out(y.transpose(1, 2).reshape(B, q.shape[2], H))


_FLEX = None


def _flex_attention():
    """FlexAttention, compiled once per process (its uncompiled form is a slow reference)."""
    global _FLEX
    if _FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX = torch.compile(flex_attention, dynamic=False)
    return _FLEX


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError:  # PyTorch < 2.5
        return False
    return True


def document_block_mask(document_ids: torch.Tensor, causal: bool):
    """FlexAttention block mask: attend within the same document (and to the past, if causal)."""
    from torch.nn.attention.flex_attention import create_block_mask

    B, T = document_ids.shape

    def same_document(b, h, q, kv):
        keep = document_ids[b, q] == document_ids[b, kv]
        return keep & (q >= kv) if causal else keep

    return create_block_mask(same_document, B, None, T, T, device=document_ids.device)


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A Transformer layer: post-LN (BERT, RoBERTa, ALBERT) or pre-LN (GPT-2)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pre_norm = config.pre_norm
        self.attn = SelfAttention(config)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, mask: "torch.Tensor | BlockMask | None", is_causal: bool,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """``rows`` (B, k): compute the output at these positions only, (B, k, H) — keys and values still
        come from every position, so the result equals those rows of the full output; ``mask`` must then
        be the rows' own mask (see :func:`rows_mask`)."""
        def pick(t: torch.Tensor) -> torch.Tensor:
            return t if rows is None else t.gather(1, rows[:, :, None].expand(-1, -1, t.shape[-1]))

        if self.pre_norm:
            n = self.norm1(x)
            x = pick(x) + self.dropout(self.attn(n, mask, is_causal, queries=None if rows is None else pick(n)))
            return x + self.dropout(self.ffn(self.norm2(x)))
        xr = pick(x)
        x = self.norm1(xr + self.dropout(self.attn(x, mask, is_causal, queries=None if rows is None else xr)))
        return self.norm2(x + self.dropout(self.ffn(x)))


def rows_mask(mask: torch.Tensor | None, rows: torch.Tensor, T: int, causal: bool) -> torch.Tensor | None:
    """The attention mask of the query rows ``rows`` (B, k), from the full (B, 1, 1|T, T) mask."""
    if mask is None:
        if not causal:
            return None
        keys = torch.arange(T, device=rows.device)
        return keys[None, None, None, :] <= rows[:, None, :, None]  # (B, 1, k, T)
    if mask.shape[-2] == 1:
        return mask  # padding only: the same for every query
    return mask.gather(2, rows[:, None, :, None].expand(-1, 1, -1, T))  # (B, 1, k, T)


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor  # (B, T, H)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + every layer


class TransformerEncoder(nn.Module):
    """The shared body: embeddings → (E→H projection) → N blocks (→ final LayerNorm) (+ pooler).

    The pooler (dense + tanh over the first token, used by NSP/SOP and BERT-style classifiers) is
    created only when a head needs it or a checkpoint has it, so that a saved folder holds exactly
    the parameters its Hugging Face class expects.
    """

    def __init__(self, config: ModelConfig, add_pooler: bool = False):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.embed_proj = (nn.Linear(config.embed_dim, config.hidden_size)
                           if config.embed_dim != config.hidden_size else None)
        n_distinct = 1 if config.share_layers else config.num_hidden_layers
        self.layers = nn.ModuleList(Block(config) for _ in range(n_distinct))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.pre_norm else None
        self.pooler: nn.Linear | None = None
        self.gradient_checkpointing = False
        # Validating ids costs a device sync; the trainer turns it off once data is known good.
        self.check_inputs = True
        # Document masks as FlexAttention block masks (GPU, no attention dropout) instead of SDPA masks;
        # off: slower than SDPA at BERT's lengths on an H100 (see the module docstring).
        self.flex_attention = False
        self.apply(lambda m: init_weights(m, config.initializer_range))
        if add_pooler:
            self.add_pooler()

    def add_pooler(self) -> nn.Linear:
        if self.pooler is None:
            self.pooler = nn.Linear(self.config.hidden_size, self.config.hidden_size)
            init_weights(self.pooler, self.config.initializer_range)
            self.pooler.to(self.embeddings.word.weight.device)
        return self.pooler

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, H) → (B, H): tanh(W · h_[CLS] + b)."""
        if self.pooler is None:
            raise RuntimeError("this model has no pooler; call add_pooler() first")
        return torch.tanh(self.pooler(hidden[:, 0]))

    def layer(self, i: int) -> Block:
        return self.layers[0 if self.config.share_layers else i]

    def _validate(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> None:
        c = self.config
        if input_ids.dim() != 2:
            raise UsageError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
        T = input_ids.shape[1]
        if T > c.positions_available:
            raise UsageError(
                f"sequence length {T} exceeds the model's {c.positions_available} positions "
                f"(max_position_embeddings={c.max_position_embeddings}); truncate inputs, e.g. --max-length {c.positions_available}"
            )
        # The range check reads two numbers back from the device: a host sync, and under torch.compile a
        # graph break in every step (seen on an H100). Compiled training feeds ids from its own tokenizer,
        # whose size the trainer has already checked against the model, so the compiled graph skips it.
        if not self.check_inputs or input_ids.numel() == 0 or torch.compiler.is_compiling():
            return
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= c.vocab_size:
            bad = hi if hi >= c.vocab_size else lo
            raise UsageError(
                f"input id {bad} is outside the model's vocabulary (vocab_size={c.vocab_size}); "
                "the tokenizer does not match this model — use the tokenizer saved with the model"
            )
        if token_type_ids is not None and c.type_vocab_size > 0:
            tmax = int(token_type_ids.max())
            if tmax >= c.type_vocab_size or int(token_type_ids.min()) < 0:
                raise UsageError(
                    f"token_type_id {tmax} is outside the model's type_vocab_size={c.type_vocab_size}"
                    + ("; RoBERTa models take no segment ids (pass token_type_ids=None)" if c.type_vocab_size == 1 else "")
                )

    def attention_mask(self, attention_mask: torch.Tensor | None, T: int,
                       document_ids: torch.Tensor | None = None) -> "torch.Tensor | BlockMask | None":
        """Boolean SDPA mask, True = attend: (B, 1, 1, T) for padding, (B, 1, T, T) with causality or
        documents; a FlexAttention block mask for documents where ``self.flex_attention`` allows it."""
        if document_ids is not None:
            dropout = self.training and self.config.attention_probs_dropout_prob > 0
            if self.flex_attention and document_ids.is_cuda and attention_mask is None and not dropout \
                    and flex_available():
                return document_block_mask(document_ids, self.config.causal)
            mask = (document_ids[:, None, :, None] == document_ids[:, None, None, :])  # (B, 1, T, T)
            if attention_mask is not None:
                mask = mask & attention_mask.bool()[:, None, None, :]
            if self.config.causal:
                mask = mask & torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
            return mask | ~mask.any(dim=-1, keepdim=True)
        if attention_mask is None:
            return None  # no padding: the fast path (is_causal for causal models)
        keep = attention_mask.bool()
        # Without padding, no mask (SDPA's fastest kernels). Reading that needs the value on the host, so a
        # compiled step (torch.compile, CUDA graphs) builds the mask instead: the same attention, no graph break.
        if not torch.compiler.is_compiling() and bool(keep.all()):
            return None
        mask = keep[:, None, None, :]  # (B, 1, 1, T)
        if self.config.causal:
            causal = torch.ones(T, T, dtype=torch.bool, device=keep.device).tril()
            mask = mask & causal  # (B, 1, T, T)
        # A query with nothing to attend to would give NaN: let it attend everywhere instead.
        empty = ~mask.any(dim=-1, keepdim=True)
        return mask | empty

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                output_hidden_states: bool = False, document_ids: torch.Tensor | None = None,
                output_positions: torch.Tensor | None = None) -> EncoderOutput:
        """``output_positions`` (B, k): return the last layer at these positions only, (B, k, H) — what a
        head that reads only the [CLS] (or last) token needs. The last layer then computes its queries,
        attention output and feed-forward for those rows alone (its keys and values still see every
        position): the same numbers as the full output's rows, one layer's FLOPs less per token."""
        self._validate(input_ids, token_type_ids)
        T = input_ids.shape[1]
        if document_ids is not None and document_ids.shape != input_ids.shape:
            raise UsageError(f"document_ids must have the shape of input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(document_ids.shape)}")
        x = self.embeddings(input_ids, token_type_ids, position_ids, document_ids)  # (B, T, E)
        if self.embed_proj is not None:
            x = self.embed_proj(x)  # (B, T, H)
        mask = self.attention_mask(attention_mask, T, document_ids)
        causal = self.config.causal
        hidden: list[torch.Tensor] = [x] if output_hidden_states else []
        # Every layer is needed for the hidden states, and FlexAttention block masks have no row form.
        rows = output_positions if (output_positions is not None and not output_hidden_states
                                    and (mask is None or isinstance(mask, torch.Tensor))) else None
        n_layers = self.config.num_hidden_layers
        for i in range(n_layers):
            block = self.layer(i)
            last_rows = rows if i == n_layers - 1 else None
            layer_mask = mask if last_rows is None else rows_mask(mask, last_rows, T, causal)
            if self.gradient_checkpointing and self.training:
                x = checkpoint(block, x, layer_mask, causal, last_rows, use_reentrant=False)
            else:
                x = block(x, layer_mask, causal, last_rows)
            if output_hidden_states:
                hidden.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
            if output_hidden_states:
                hidden[-1] = x  # GPT-2 reports the last layer after ln_f
        if output_positions is not None and rows is None:  # every position was computed: pick the rows
            x = x.gather(1, output_positions[:, :, None].expand(-1, -1, x.shape[-1]))
        return EncoderOutput(last_hidden_state=x, hidden_states=tuple(hidden) if output_hidden_states else None)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def scaled_init_(module: nn.Module, config: ModelConfig) -> None:
    """GPT-2's residual-projection scaling: std / sqrt(2 · layers) for the output projections."""
    std = config.initializer_range / math.sqrt(2 * config.num_hidden_layers)
    for name, p in module.named_parameters():
        if name.endswith("attn.out.weight") or name.endswith("ffn.fc2.weight"):
            nn.init.normal_(p, mean=0.0, std=std)
