"""Rung 4: MiniTransformer, a decoder-only transformer, and ModelConfig, the settings that build it.

Reads top to bottom like nanoGPT's model.py: CausalSelfAttention, MLP, Block, MiniTransformer.

Design choices (defaults first; each alternative is a config field, never a subclass):
- Pre-norm blocks (x + attn(norm(x)), x + mlp(norm(x))) with a final norm: LayerNorm, or RMSNorm.
- Learned absolute positions, or rotary embeddings (RoPE, rotate-half pairing as in GPT-NeoX/LLaMA in
  Hugging Face) applied to queries and keys at their absolute position, also when decoding with a cache.
- Separate q/k/v projections (as nanochat), so Xavier init sees each projection's own fan-out.
- Feed-forward: GELU, or SwiGLU (silu(gate) * up, a third matrix). Hidden width ``ffn_dim`` defaults to
  emb_dim, which gives the seed config its 3,360,256 parameters; nanoGPT's 4x is ffn_dim=4*emb_dim.
- Biases on linear layers and LayerNorm by default (``bias``); the output head never has one (as nanoGPT),
  so tying it to the token embedding is a pure weight share: tied models have no ``lm_head`` at all and
  project with the embedding matrix, so the saved state dict never holds the same tensor twice.
- ``share_layers`` (ALBERT-style) keeps ONE block and applies it num_layers times; each application still
  has its own slot in the KV cache.
- Init: xavier_uniform_ for every nn.Linear weight, zeros for biases, normal(0, 0.02) for embedding tables.
- Attention through F.scaled_dot_product_attention (flash/memory-efficient kernels where available).
- KV cache (minillm.models.generation.KVCache, nanochat-style): the model writes each layer's new keys and values into
  the cache, reads its position offset from it, and advances it after the last layer.
- ``generate`` reads one token a step through models/decode_step.py: this forward's arithmetic, to the bit,
  without the Module calls; ``logits_to_keep`` (as Hugging Face's) spares a prompt the logits of every position.

Left out on purpose: grouped-query attention, QK-norm, a sliding window or any way past max_seq_len.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from minillm.core.checks import check_positive_int, not_number
from minillm.models import base
from minillm.models.base import init_weights
from minillm.models.decode_step import fast_decoder
from minillm.models.generation import KVCache, Sampling, generate

NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "swiglu")
POSITIONS = ("learned", "rotary")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the model's shape; saved as JSON in the weights file's metadata."""

    vocab_size: int                  # tokens in the vocabulary: embedding rows, logit columns
    max_seq_len: int                 # longest sequence the model reads (prompt + answer)
    emb_dim: int                     # width of the residual stream
    num_layers: int                  # blocks applied one after another
    num_heads: int                   # attention heads per block; head_dim = emb_dim // num_heads
    ffn_dim: int | None = None       # feed-forward hidden width; None -> emb_dim (nanoGPT uses 4 * emb_dim)
    dropout: float = 0.0             # after embeddings, on attention weights, after each residual branch
    bias: bool = True                # biases in linear layers and LayerNorm (never in the output head)
    norm: str = "layernorm"          # "layernorm" or "rmsnorm" (RMSNorm has no bias)
    activation: str = "gelu"         # "gelu" or "swiglu" (SwiGLU adds a gate matrix: 1.5x the MLP weights)
    position: str = "learned"        # "learned" absolute embeddings or "rotary" (RoPE on queries and keys)
    tie_embeddings: bool = False     # output head reuses the token embedding matrix
    share_layers: bool = False       # ALBERT-style: one block's weights reused by all num_layers layers
    copy_head: bool = False          # pointer-generator output: can copy a token that followed an earlier one
    norm_eps: float = 1e-5           # added to the variance in LayerNorm / RMSNorm

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "emb_dim", "num_layers", "num_heads"):
            check_positive_int(name, getattr(self, name))
        if self.ffn_dim is not None:
            check_positive_int("ffn_dim", self.ffn_dim)
        if self.emb_dim % self.num_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.position == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {self.head_dim} "
                             f"(emb_dim {self.emb_dim} / num_heads {self.num_heads})")
        if not_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not_number(self.norm_eps) or self.norm_eps <= 0:
            raise ValueError(f"norm_eps must be a positive number, got {self.norm_eps!r}")
        for name, allowed in (("norm", NORMS), ("activation", ACTIVATIONS), ("position", POSITIONS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        for name in ("bias", "tie_embeddings", "share_layers", "copy_head"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        """The feed-forward hidden width actually used."""
        return self.emb_dim if self.ffn_dim is None else self.ffn_dim

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown model config key(s) {', '.join(map(repr, unknown))}; "
                             f"known keys: {', '.join(known)}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.name not in values]
        if missing:
            raise ValueError(f"model config is missing {', '.join(map(repr, missing))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Zhang & Sennrich, 2019): LayerNorm without mean subtraction or bias."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.emb_dim, config.norm_eps)
    return nn.LayerNorm(config.emb_dim, eps=config.norm_eps, bias=config.bias)


def rotary_tables(head_dim: int, max_len: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of angle position * base^(-2i/head_dim), each (max_len, head_dim // 2)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[i], x[i + head_dim/2]) of x (B, H, T, head_dim) by the angles of their positions."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        d = config.emb_dim
        self.q_proj = nn.Linear(d, d, bias=config.bias)
        self.k_proj = nn.Linear(d, d, bias=config.bias)
        self.v_proj = nn.Linear(d, d, bias=config.bias)
        self.out_proj = nn.Linear(d, d, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None,
                kv_cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (proj(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        past = 0
        if kv_cache is not None:
            past = kv_cache.pos
            k, v = kv_cache.update(layer, k, v)
        dropout_p = self.attn_dropout if self.training else 0.0
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif T == 1:  # one new query may see every cached key: no mask at all
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:  # is_causal aligns to the top-left corner; new queries sit at the bottom-right of the matrix
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.out_proj(y))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d, hidden = config.emb_dim, config.hidden_dim
        self.up = nn.Linear(d, hidden, bias=config.bias)
        self.gate = nn.Linear(d, hidden, bias=config.bias) if config.activation == "swiglu" else None
        self.down = nn.Linear(hidden, d, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.up(x)) if self.gate is None else F.silu(self.gate(x)) * self.up(x)
        return self.dropout(self.down(h))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None,
                kv_cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rotary, kv_cache, layer)
        return x + self.mlp(self.norm2(x))


class CopyHead(nn.Module):
    """Pointer-generator output (See et al., 2017) for a decoder-only model.

    Position t points at an earlier position j < t and copies the token that came after it, ids[j + 1]:
    with the current token matching ids[j], that continues a span of the prompt (a name in the question, a
    sentence of the open-book passage) without the induction circuit a small model struggles to learn.
    A gate g(t) mixes the two: p(w) = g * softmax(logits)(w) + (1 - g) * sum of pointer weights on w.
    Everything here runs in float32 (under autocast too).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dim = config.head_dim
        self.query = nn.Linear(config.emb_dim, self.dim, bias=False)
        self.key = nn.Linear(config.emb_dim, self.dim, bias=False)
        self.gate = nn.Linear(config.emb_dim, 1)

    def forward(self, h: torch.Tensor, logits: torch.Tensor, ids: torch.Tensor, start: int,
                kv_cache: KVCache | None, keep: int = 0) -> torch.Tensor:
        """Log-probabilities (B, T, vocab) for hidden states h (B, T, C) of ids at positions start..; with
        ``keep``, for the last ``keep`` positions only (``logits`` then holds only theirs)."""
        with torch.autocast(h.device.type, enabled=False):
            h, logits = h.float(), logits.float()
            keys, seen = self.key(h), ids
            if kv_cache is not None:
                keys, seen = kv_cache.update_copy(keys, ids)
            if keep:
                h, start = h[:, -keep:], start + h.size(1) - keep
            B, T, _ = h.shape
            gen, weights = self.pointer(h, keys, start)
            n = weights.size(-1)
            # in probability space with one scatter of the T pointer weights: a handful of (B, T, vocab) passes
            # (the log-space mixture took twice as long per training step on CPU)
            probs = (logits.softmax(-1) * gen).scatter_add(2, seen[:, None, 1:].expand(B, T, n),
                                                           (1 - gen) * weights)
            return probs.clamp_min(1e-30).log()  # the floor keeps log(0) and its gradient finite

    def target_nll(self, h: torch.Tensor, logits: torch.Tensor, ids: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor:
        """-log p(target) (B, T) of the same mixture for a whole sequence (training and validation), 0 where
        the target is ignored (< 0). Only the targets' probabilities are formed, never the (B, T, vocab)
        mixture: the generator's through one cross entropy, the pointer's as the weights on positions whose
        successor is the target. Half the CPU time of a training step of tiny-cpu went to that mixture."""
        with torch.autocast(h.device.type, enabled=False):
            h, logits = h.float(), logits.float()
            gen, weights = self.pointer(h, self.key(h), 0)
            scored = targets >= 0
            safe = targets.clamp_min(0)
            p_gen = torch.exp(-_token_nll(logits, safe))
            p_copy = (weights * (ids[:, None, 1:] == safe[:, :, None])).sum(-1)
            p = gen.squeeze(-1) * p_gen + (1 - gen.squeeze(-1)) * p_copy
            return -p.clamp_min(1e-30).log() * scored

    def pointer(self, h: torch.Tensor, keys: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The gate (B, T, 1) and the pointer weights (B, T, n) over earlier positions j < t whose successor
        is known, for queries h (B, T, C) at positions start.. and keys (B, n + 1, dim) of positions 0.."""
        T = h.size(1)
        n = keys.size(1) - 1  # positions j whose successor ids[j + 1] is known
        scores = self.query(h) @ keys[:, :n].transpose(1, 2) / math.sqrt(self.dim)  # (B, T, n)
        t = torch.arange(start, start + T, device=h.device)[:, None]
        allowed = torch.arange(n, device=h.device)[None, :] < t  # j < t
        # a finite fill, not -inf: a row with nothing to point at (t = 0) would give NaN gradients
        weights = scores.masked_fill(~allowed, -1e9).softmax(-1) * allowed
        gen = torch.sigmoid(self.gate(h)).masked_fill((t == 0)[None], 1.0)  # t = 0: nothing to copy
        return gen, weights


def _token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy (B, T) of logits (B, T, vocab) at targets (B, T), 0 where a target is -100. Flattened:
    the (B, vocab, T) view cross_entropy takes for sequences was 1.3x slower per training step on CPU."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           reduction="none").view_as(targets)


def add_embeddings(model: nn.Module, config: Any) -> None:
    """The input side's modules, shared by MiniTransformer and the attention rung: token embeddings, learned
    positions or rotary tables (``config.position``), dropout; ``embed`` runs them."""
    model.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
    model.pos_emb = nn.Embedding(config.max_seq_len, config.emb_dim) if config.position == "learned" else None
    if config.position == "rotary":
        cos, sin = rotary_tables(config.head_dim, config.max_seq_len)
        # not persistent: derived from the config, so never saved with the weights
        model.register_buffer("rope_cos", cos, persistent=False)
        model.register_buffer("rope_sin", sin, persistent=False)
    model.drop = nn.Dropout(config.dropout)


def embed(model: nn.Module, ids: torch.Tensor, kv_cache: KVCache | None
          ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None, int]:
    """The input side shared by MiniTransformer and the attention rung: checks ids (B, T), looks up token
    (and learned position) embeddings at their absolute positions, applies dropout; returns them with the
    rotary tables for those positions (or None) and the first position."""
    if ids.dim() != 2:
        raise ValueError(f"ids must have shape (batch, time), got {tuple(ids.shape)}")
    T = ids.size(1)
    start = 0 if kv_cache is None else kv_cache.pos
    if start + T > model.config.max_seq_len:
        raise ValueError(f"sequence of {start + T} tokens is longer than max_seq_len={model.config.max_seq_len}")
    x = model.tok_emb(ids)
    if model.pos_emb is not None:
        x = x + model.pos_emb(torch.arange(start, start + T, device=ids.device))
    rotary = None
    if model.config.position == "rotary":
        rotary = (model.rope_cos[start:start + T], model.rope_sin[start:start + T])
    return model.drop(x), rotary, start


class MiniTransformer(base.TorchRung):
    """Token + position embeddings, num_layers pre-norm blocks, final norm, linear head to vocab logits."""

    name = "transformer"
    config_class = ModelConfig
    scores_targets = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        add_embeddings(self, config)
        num_blocks = 1 if config.share_layers else config.num_layers
        self.blocks = nn.ModuleList(Block(config) for _ in range(num_blocks))
        self.norm_f = make_norm(config)
        self.lm_head = None
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.copy_head = CopyHead(config) if config.copy_head else None
        self.apply(init_weights)

    def forward(self, ids: torch.Tensor, kv_cache: KVCache | None = None,
                targets: torch.Tensor | None = None, logits_to_keep: int = 0) -> torch.Tensor:
        """Logits (B, T, vocab) for ids (B, T); with a cache, for the T new tokens after the cached ones;
        with ``logits_to_keep`` (as Hugging Face's), for the last ``logits_to_keep`` positions only (B, k, vocab).

        With ``copy_head`` they are normalised log-probabilities (valid logits: softmax gives them back).
        With ``targets`` (B, T) instead: each target's negative log-likelihood (B, T), 0 where it is ignored
        (< 0); the Trainer asks for this, which with a copy head costs half the time of the full output."""
        x, rotary, start = embed(self, ids, kv_cache)
        T = ids.size(1)
        for layer in range(self.config.num_layers):
            block = self.blocks[0] if self.config.share_layers else self.blocks[layer]
            x = block(x, rotary, kv_cache, layer)
        x = self.norm_f(x)
        kept = x[:, -logits_to_keep:] if logits_to_keep else x
        logits = F.linear(kept, self.tok_emb.weight if self.lm_head is None else self.lm_head.weight)
        if targets is not None:
            if kv_cache is not None or logits_to_keep:
                raise ValueError("targets score a whole sequence: give no kv_cache or logits_to_keep with them")
            if self.copy_head is not None:
                return self.copy_head.target_nll(x, logits, ids, targets)
            return _token_nll(logits.float(), targets)
        if self.copy_head is not None:
            logits = self.copy_head(x, logits, ids, start, kv_cache, keep=logits_to_keep)
        if kv_cache is not None:
            kv_cache.advance(T)
        return logits

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None, use_cache: bool = True) -> Iterator[int]:
        """New token ids (generation.generate); with the cache through decode_step.DecodeStep, whose logits
        are this forward's to the bit, without its Module calls (the forward itself when a module was
        swapped for another kind or carries a hook: the step would not see it)."""
        fast = use_cache and plain_modules(self)
        return generate(self, prompt_ids, sampling, eos_id=eos_id, decode=decode, use_cache=use_cache,
                        decoder=fast_decoder if fast else None)


PLAIN_MODULES = (MiniTransformer, Block, CausalSelfAttention, MLP, CopyHead, RMSNorm, nn.Linear, nn.LayerNorm,
                 nn.Embedding, nn.Dropout, nn.ModuleList)


def plain_modules(model: nn.Module) -> bool:
    """Whether the model holds only the module classes DecodeStep reads the weights of (nothing swapped in,
    as benchmarks/bench_int8_kernels.py swaps in int8 linears) and no forward hooks."""
    return all(type(m) in PLAIN_MODULES and not (m._forward_hooks or m._forward_pre_hooks) for m in model.modules())


