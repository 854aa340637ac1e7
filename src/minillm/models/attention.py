"""Rung 3: one causal self-attention layer and nothing else: what attention alone buys.

    >>> model = AttentionLanguageModel(AttentionConfig(vocab_size=4096, max_seq_len=256, emb_dim=128,
    ...                                                num_heads=4))
    >>> model(torch.tensor([[1, 7, 42]])).shape
    torch.Size([1, 3, 4096])

token embedding (+ learned positions, or rotary on queries and keys) -> x + attention(norm(x)) -> norm ->
linear head. It is a one-layer MiniTransformer with the feed-forward MLP taken out, built from the
transformer's own parts (make_norm, rotary_tables, CausalSelfAttention, init_weights), so the step up to
rung 4 changes exactly two things: the MLP and the depth. Unlike the MLP rung, every position sees the
whole sequence, so the answer can look back at the question however long it gets; but each output is
a mix of earlier token embeddings read straight out by the head, with no nonlinearity after the mix.

Design choices:
- Pre-norm with a final norm, as the transformer: the residual stream keeps the token's own embedding.
- Defaults as tiny-cpu's transformer: RMSNorm, rotary positions, biases in the attention projections,
  none in the output head.
- The config exposes ``num_layers`` (always 1) and ``head_dim`` as properties, so ``engine.KVCache``
  sizes a cache for it and ``engine.generate`` decodes one token per step from the cache.

Left out: several layers (that is the transformer rung), weight tying, the transformer's other variants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from minillm.core.checks import check_positive_int, not_number
from minillm.models import base
from minillm.models.base import init_weights
from minillm.models.generation import KVCache, Sampling, generate
from minillm.models.transformer import NORMS, POSITIONS, CausalSelfAttention, add_embeddings, embed, make_norm


@dataclass(frozen=True)
class AttentionConfig:
    """Everything that fixes the model's shape; saved as JSON in the weights file's metadata."""

    vocab_size: int               # tokens in the vocabulary: embedding rows, logit columns
    max_seq_len: int              # longest sequence the model reads (prompt + answer)
    emb_dim: int                  # width of the residual stream
    num_heads: int                # attention heads; head_dim = emb_dim // num_heads
    position: str = "rotary"      # "learned" absolute embeddings or "rotary" (RoPE on queries and keys)
    norm: str = "rmsnorm"         # "layernorm" or "rmsnorm" (RMSNorm has no bias)
    bias: bool = True             # biases in the attention projections and LayerNorm (never in the head)
    dropout: float = 0.0          # after embeddings, on attention weights, after the attention output
    norm_eps: float = 1e-5        # added to the variance in LayerNorm / RMSNorm

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "emb_dim", "num_heads"):
            check_positive_int(name, getattr(self, name))
        if self.emb_dim % self.num_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.position == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {self.head_dim} "
                             f"(emb_dim {self.emb_dim} / num_heads {self.num_heads})")
        if not_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not_number(self.norm_eps) or self.norm_eps <= 0:
            raise ValueError(f"norm_eps must be a positive number, got {self.norm_eps!r}")
        for name, allowed in (("norm", NORMS), ("position", POSITIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be true or false, got {self.bias!r}")

    @property
    def num_layers(self) -> int:
        """One attention layer; KVCache.for_model reads this."""
        return 1

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.num_heads


class AttentionLanguageModel(base.TorchRung):
    """Token (+ position) embeddings, one pre-norm causal self-attention layer, final norm, linear head."""

    name = "attention"
    config_class = AttentionConfig

    def __init__(self, config: AttentionConfig):
        super().__init__()
        self.config = config
        add_embeddings(self, config)
        self.norm = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm_f = make_norm(config)
        self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.apply(init_weights)

    def forward(self, ids: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for ids (B, T); with a cache, for the T new tokens after the cached ones."""
        x, rotary, _ = embed(self, ids, kv_cache)
        T = ids.size(1)
        x = x + self.attn(self.norm(x), rotary, kv_cache, 0)
        if kv_cache is not None:
            kv_cache.advance(T)
        return self.lm_head(self.norm_f(x))

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None, use_cache: bool = True) -> Iterator[int]:
        return generate(self, prompt_ids, sampling, eos_id=eos_id, decode=decode, use_cache=use_cache)
