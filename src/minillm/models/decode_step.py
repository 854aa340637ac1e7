"""MiniTransformer's forward for one new token per sequence, without the nn.Module calls: the decode step.

    >>> step = DecodeStep(model)
    >>> logits, cache = step.prefill(prompt_ids)          # the model's own forward reads the prompt
    >>> logits = step.one(token, cache)                   # then one token at a time: (vocab,)
    >>> logits = step.rows(tokens, positions, slots)      # or one token for each of many sequences: (n, vocab)

At batch 1 a step of a 1.5M-parameter model is a few MFLOP; besides the matrix products the time went to
~40 Module calls (hooks, autocast, dropout checks) and ~90 small tensor ops around them. Measured figures:
experiments/README.md.

Design choices:
- ``one`` runs the same ATen ops as ``MiniTransformer.forward`` with a cache, on the same shapes, so its
  logits equal the model's to the bit (tests check every variant): answers do not change. What goes is
  the Python around the ops and a few ops that cannot change a bit: q/k/v in one matrix (each output is
  the same dot product), gate and up in one, the copy head's query and key in one; rotary applied to q and
  k together; the pointer's masks, which are all true when one token is read after the cache.
- ``prefill`` asks the forward for the last ``MIN_ROWS`` positions' logits only (``logits_to_keep``).
- ``rows`` decodes many sequences, each at its own position, with one forward: one matrix product per
  weight for all of them, as serving engines batch (serve/batching.py); norms are one operator each
  (Norm.fused). A sequence's numbers are the same whatever the others are: matrix products get at least
  ``MIN_ROWS`` rows (padding rows are computed and dropped; with fewer rows MKL picks another kernel and
  the last bits move), attention reads the cache's whole length with a mask (a shape that never depends
  on the other sequences). They are not the bits of ``one`` (one row takes another kernel), so a near-tie
  may in principle pick another token; the tests and benchmarks/bench_serve.py compare batched answers
  with unbatched ones.
- The weights are read from the model when the step is made (fused copies of the matrices it joins): make
  a new one after the weights change (training does).

Left out: the attention rung and the others (their ``generate`` is the reference engine's); dropout
(decoding is in eval mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from minillm.models.generation import KVCache

MIN_ROWS = 8  # matrix products in ``rows`` never have fewer rows: the same kernel for every batch size


@dataclass(frozen=True)
class Norm:
    weight: torch.Tensor
    bias: torch.Tensor | None
    eps: float
    rms: bool  # RMSNorm (the model's formula) rather than LayerNorm
    eps_tensor: torch.Tensor  # eps as a 0-d tensor of the weight's dtype: the same sum, without wrapping a float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.rms:  # transformer.RMSNorm, op for op
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps_tensor) * self.weight
        return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        """The norm as one operator (F.rms_norm or F.layer_norm): the same arithmetic, not promised to the bit."""
        if self.rms:
            return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)
        return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class Layer:
    """One block's weights, with q/k/v joined in ``qkv`` and (SwiGLU) gate and up joined in ``up``."""
    norm1: Norm
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    out: torch.Tensor
    out_bias: torch.Tensor | None
    norm2: Norm
    up: torch.Tensor
    up_bias: torch.Tensor | None
    down: torch.Tensor
    down_bias: torch.Tensor | None


def make_norm(module: nn.Module) -> Norm:
    rms = not isinstance(module, nn.LayerNorm)
    eps = torch.tensor(module.eps, dtype=module.weight.dtype, device=module.weight.device)
    return Norm(module.weight, None if rms else module.bias, module.eps, rms, eps)


def joined(*linears: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weights (and biases) of linears stacked: one matrix product gives their outputs side by side."""
    biases = [linear.bias for linear in linears]
    bias = None if biases[0] is None else torch.cat(biases)
    return torch.cat([linear.weight for linear in linears]).detach(), bias


def make_layer(block: nn.Module) -> Layer:
    attn, mlp = block.attn, block.mlp
    qkv, qkv_bias = joined(attn.q_proj, attn.k_proj, attn.v_proj)
    up, up_bias = joined(*([mlp.gate, mlp.up] if mlp.gate is not None else [mlp.up]))
    return Layer(make_norm(block.norm1), qkv, qkv_bias, attn.out_proj.weight, attn.out_proj.bias,
                 make_norm(block.norm2), up, up_bias, mlp.down.weight, mlp.down.bias)


class DecodeStep:
    """A MiniTransformer's decode step, for one sequence (``one``) or many (``rows``); see the module docstring."""

    def __init__(self, model: nn.Module):
        config = model.config
        self.model, self.config = model, config
        self.heads, self.head_dim, self.dim = config.num_heads, config.head_dim, config.emb_dim
        self.hidden = config.hidden_dim
        self.swiglu = config.activation == "swiglu"
        with torch.no_grad():
            blocks = [make_layer(block) for block in model.blocks]
        self.layers = [blocks[0 if config.share_layers else i] for i in range(config.num_layers)]
        self.norm_f = make_norm(model.norm_f)
        self.tok_emb = model.tok_emb.weight
        self.pos_emb = None if model.pos_emb is None else model.pos_emb.weight
        self.rotary = (model.rope_cos, model.rope_sin) if config.position == "rotary" else None
        self.head = model.tok_emb.weight if model.lm_head is None else model.lm_head.weight
        self.copy = model.copy_head
        if self.copy is not None:
            with torch.no_grad():
                self.pointer_qk = torch.cat([self.copy.query.weight, self.copy.key.weight])
            # CopyHead's float constants as 0-d tensors: the same arithmetic, fewer wrapped numbers a step
            self.sqrt_dim = torch.tensor(math.sqrt(self.copy.dim), device=self.head.device)
            self.one_tensor = torch.tensor(1.0, device=self.head.device)

    def prefill(self, prompt_ids: list[int]) -> tuple[torch.Tensor, KVCache]:
        """The logits (vocab,) after the prompt, read by the model's own forward into a new batch-1 cache.
        Only the last MIN_ROWS positions' logits are made: the same bits for the last one as all of them
        (the matrix products keep at least 8 rows), in a third of the time for a 128-token prompt."""
        cache = KVCache.for_model(self.model)
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.tok_emb.device)
        return self.model(ids, kv_cache=cache, logits_to_keep=min(len(prompt_ids), MIN_ROWS))[0, -1], cache

    # --- one sequence: the model's bits ---------------------------------------------------------------

    def one(self, token: int, cache: KVCache) -> torch.Tensor:
        """The logits (vocab,) after ``token``, read at position cache.pos of a batch-1 cache."""
        pos = cache.pos
        end = pos + 1
        heads = self.heads
        x = self.tok_emb[token].view(1, 1, self.dim)
        if self.pos_emb is not None:
            x = x + self.pos_emb[pos:end]
        if self.rotary is not None:
            cos, sin = self.rotary[0][pos:end], self.rotary[1][pos:end]
        for layer, weights in enumerate(self.layers):
            qkv = F.linear(weights.norm1(x), weights.qkv, weights.qkv_bias).view(1, 3 * heads, 1, self.head_dim)
            qk, v = qkv[:, :2 * heads], qkv[:, 2 * heads:]
            if self.rotary is not None:  # transformer.apply_rotary on q and k at once
                x1, x2 = qk.chunk(2, dim=-1)
                qk = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
            keys, values = cache.k[layer], cache.v[layer]
            keys.select(2, pos).copy_(qk[:, heads:, 0])
            values.select(2, pos).copy_(v[:, :, 0])
            y = F.scaled_dot_product_attention(qk[:, :heads], keys[:, :, :end], values[:, :, :end], dropout_p=0.0)
            x = x + F.linear(y.view(1, 1, self.dim), weights.out, weights.out_bias)
            x = x + self.mlp(weights, weights.norm2(x))
        x = self.norm_f(x)
        logits = F.linear(x, self.head)
        if self.copy is not None:
            logits = self.pointer_one(x, logits, token, cache)
        cache.advance(1)
        return logits[0, -1]

    def mlp(self, weights: Layer, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(x, weights.up, weights.up_bias)
        h = F.silu(h[..., :self.hidden]) * h[..., self.hidden:] if self.swiglu else F.gelu(h)
        return F.linear(h, weights.down, weights.down_bias)

    def pointer_one(self, x: torch.Tensor, logits: torch.Tensor, token: int, cache: KVCache) -> torch.Tensor:
        """transformer.CopyHead.forward for one token after the cache (its masks are then all true)."""
        x, logits = x.float(), logits.float()
        pos, dim = cache.pos, self.copy.dim
        query_key = F.linear(x, self.pointer_qk)
        if cache.copy_keys is None:
            raise ValueError("the cache holds no copy-head keys: read the prompt with prefill first")
        cache.copy_keys.select(1, pos).copy_(query_key[:, 0, dim:])
        cache.ids[0, pos] = token
        scores = query_key[..., :dim] @ cache.copy_keys[:, :pos].transpose(1, 2) / self.sqrt_dim
        gen = torch.sigmoid(F.linear(x, self.copy.gate.weight, self.copy.gate.bias))
        probs = (logits.softmax(-1) * gen).scatter_add(2, cache.ids[:, None, 1:pos + 1],
                                                       (self.one_tensor - gen) * scores.softmax(-1))
        return probs.clamp_min(1e-30).log()

    # --- many sequences: one forward for all ----------------------------------------------------------

    def rows(self, tokens: list[int], positions: list[int], slots: KVCache) -> torch.Tensor:
        """The logits (n, vocab) after tokens[i], read at positions[i] by the sequence in row i of ``slots``
        (a cache of at least MIN_ROWS rows, rows 0 .. n-1 in use; its ``pos`` is not used)."""
        n = len(tokens)
        rows = max(n, MIN_ROWS)
        if rows > slots.k.size(1):
            raise ValueError(f"{n} sequences but the cache has {slots.k.size(1)} rows (at least {MIN_ROWS})")
        device = self.tok_emb.device
        padding = [0] * (rows - n)  # padding rows: token 0 at position 0
        token_ids, where = torch.tensor([tokens + padding, positions + padding], device=device)
        row = torch.arange(rows, device=device)
        x = F.embedding(token_ids, self.tok_emb)
        if self.pos_emb is not None:
            x = x + F.embedding(where, self.pos_emb)
        if self.rotary is not None:
            cos, sin = self.rotary[0][where][:, None], self.rotary[1][where][:, None]
        span = torch.arange(slots.max_len, device=device)
        visible = (span[None] <= where[:, None])[:, None, None]  # (rows, 1, 1, max_len): keys 0 .. position
        heads, head_dim = self.heads, self.head_dim
        for layer, weights in enumerate(self.layers):
            qkv = F.linear(weights.norm1.fused(x), weights.qkv, weights.qkv_bias).view(rows, 3 * heads, head_dim)
            qk, v = qkv[:, :2 * heads], qkv[:, 2 * heads:]
            if self.rotary is not None:
                x1, x2 = qk.chunk(2, dim=-1)
                qk = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
            keys, values = slots.k[layer, :rows], slots.v[layer, :rows]
            keys[row, :, where] = qk[:, heads:]
            values[row, :, where] = v
            scores = (qk[:, :heads, None] @ keys.transpose(-1, -2)) / math.sqrt(head_dim)
            y = scores.masked_fill(~visible, float("-inf")).softmax(-1) @ values  # (rows, heads, 1, head_dim)
            x = x + F.linear(y.view(rows, self.dim), weights.out, weights.out_bias)
            x = x + self.mlp(weights, weights.norm2.fused(x))
        x = self.norm_f.fused(x)
        logits = F.linear(x, self.head)
        if self.copy is not None:
            logits = self.pointer_rows(x, logits, token_ids, where, slots)
        return logits[:n]

    def pointer_rows(self, x: torch.Tensor, logits: torch.Tensor, tokens: torch.Tensor, where: torch.Tensor,
                     slots: KVCache) -> torch.Tensor:
        """transformer.CopyHead.forward for one token of each row, over the cache's whole length, masked."""
        x, logits = x.float(), logits.float()
        rows, dim = x.size(0), self.copy.dim
        row = torch.arange(rows, device=x.device)
        query_key = F.linear(x, self.pointer_qk)
        slots.copy_keys[row, where] = query_key[:, dim:]
        slots.ids[row, where] = tokens
        keys, ids = slots.copy_keys[:rows, :-1], slots.ids[:rows, 1:]  # position j points at the token after it
        scores = (query_key[:, None, :dim] @ keys.transpose(1, 2))[:, 0] / math.sqrt(dim)
        allowed = torch.arange(keys.size(1), device=x.device)[None] < where[:, None]  # j < t, as CopyHead.pointer
        weights = scores.masked_fill(~allowed, -1e9).softmax(-1) * allowed
        gen = torch.sigmoid(F.linear(x, self.copy.gate.weight, self.copy.gate.bias))
        probs = (logits.softmax(-1) * gen).scatter_add(1, ids, (1 - gen) * weights)
        return probs.clamp_min(1e-30).log()

    def slot_cache(self, rows: int) -> KVCache:
        """A cache for ``rows`` with room for at least MIN_ROWS rows, copy-head keys included."""
        cache = KVCache.for_model(self.model, max(rows, MIN_ROWS))
        if self.copy is not None:
            cache.copy_keys = cache.k.new_zeros(cache.k.size(1), cache.max_len, self.copy.dim)
            cache.ids = torch.zeros(cache.k.size(1), cache.max_len, dtype=torch.long, device=cache.k.device)
        return cache


def fast_decoder(model: nn.Module, prompt_ids: list[int]) -> tuple[torch.Tensor, Callable[[int], torch.Tensor]]:
    """generation.Decoder through DecodeStep: the model's forward reads the prompt, ``one`` each token after."""
    step = DecodeStep(model)
    logits, cache = step.prefill(prompt_ids)
    return logits, partial(step.one, cache=cache)
