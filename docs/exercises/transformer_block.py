"""Exercise (transformer page): one GPT-2 block's forward pass, from its weights. Fill in the function.

Check your work with ``python docs/exercises/check_transformer_block.py`` (it runs the checks on this file).

A pre-norm block (minillm's ``Block`` in src/minillm/models/transformer.py) is

    x = x + attention(layer_norm1(x))     # causal self-attention, num_heads heads, then an output projection
    x = x + mlp(layer_norm2(x))           # down(gelu(up(.)))

You may use ``F.layer_norm`` (eps 1e-5), ``F.gelu`` (the exact one, its default) and
``F.scaled_dot_product_attention(..., is_causal=True)``, which you wrote yourself on the attention page.
"""

from __future__ import annotations

import torch


def block_forward(x: torch.Tensor, p: dict[str, torch.Tensor], num_heads: int) -> torch.Tensor:
    """The block's output (B, T, C) for x (B, T, C). ``p`` holds the weights under ``Block``'s own names:

    norm1.weight, norm1.bias, norm2.weight, norm2.bias                       (C,)
    attn.q_proj / attn.k_proj / attn.v_proj / attn.out_proj .weight (C, C), .bias (C,)
    mlp.up.weight (H, C), mlp.up.bias (H,), mlp.down.weight (C, H), mlp.down.bias (C,)

    A linear layer computes h @ weight.T + bias. Each head sees C // num_heads of the C features.
    """
    raise NotImplementedError("norm, attention with heads, residual; norm, MLP, residual")
