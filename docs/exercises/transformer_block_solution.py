"""Reference solution of transformer_block.py (read it after trying the exercise)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def block_forward(x: torch.Tensor, p: dict[str, torch.Tensor], num_heads: int) -> torch.Tensor:
    B, T, C = x.shape

    def linear(h: torch.Tensor, name: str) -> torch.Tensor:
        return h @ p[f"{name}.weight"].T + p[f"{name}.bias"]

    def heads(h: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, num_heads, T, C // num_heads)
        return h.view(B, T, num_heads, C // num_heads).transpose(1, 2)

    h = F.layer_norm(x, (C,), p["norm1.weight"], p["norm1.bias"], eps=1e-5)
    q, k, v = (heads(linear(h, f"attn.{name}_proj")) for name in "qkv")
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
    x = x + linear(y, "attn.out_proj")
    h = F.layer_norm(x, (C,), p["norm2.weight"], p["norm2.bias"], eps=1e-5)
    return x + linear(F.gelu(linear(h, "mlp.up")), "mlp.down")
