"""Reference solution of causal_mask.py (read it after trying the exercise)."""

from __future__ import annotations

import math

import torch


def causal_mask(T: int) -> torch.Tensor:
    return torch.ones(T, T, dtype=torch.bool).tril()


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~causal_mask(T).to(q.device), float("-inf"))
    return scores.softmax(dim=-1) @ v
