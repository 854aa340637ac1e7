"""Reference solution of bengio_mlp.py (read it after trying the exercise)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mlp_logits(ids: torch.Tensor, emb: torch.Tensor, hidden_weight: torch.Tensor, hidden_bias: torch.Tensor,
               out_weight: torch.Tensor, out_bias: torch.Tensor, context: int) -> torch.Tensor:
    before_start = emb.size(0) - 1
    T = ids.size(1)
    padded = F.pad(ids, (context - 1, 0), value=before_start)  # (B, context - 1 + T)
    # offset i of the window at position t is padded[:, t + i]: i = 0 is the oldest token
    window = torch.cat([emb[padded[:, i:i + T]] for i in range(context)], dim=-1)  # (B, T, context * emb_dim)
    h = torch.tanh(window @ hidden_weight.T + hidden_bias)
    return h @ out_weight.T + out_bias
