"""Reference solution of interpolate.py (read it after trying the exercise)."""

from __future__ import annotations

import math

import torch


def mix(log_p_ngram: torch.Tensor, log_p_neural: torch.Tensor, w: float) -> torch.Tensor:
    log_w = math.log(w) if w > 0 else -math.inf
    log_rest = math.log1p(-w) if w < 1 else -math.inf
    return torch.logaddexp(log_p_ngram + log_w, log_p_neural + log_rest)


def best_weight(log_p_ngram: torch.Tensor, log_p_neural: torch.Tensor) -> float:
    def loss(w: float) -> float:
        return float(-mix(log_p_ngram, log_p_neural, w).mean())

    low, high = 0.0, 1.0
    while high - low > 1e-4:  # ternary search: the loss is convex, so the third that holds the worse end goes
        a, b = low + (high - low) / 3, high - (high - low) / 3
        if loss(a) <= loss(b):
            high = b
        else:
            low = a
    return min((0.0, 1.0, (low + high) / 2), key=loss)
