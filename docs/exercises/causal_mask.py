"""Exercise (transformer page): causal self-attention written out, mask included. Fill in the two functions.

Check your work with ``python docs/exercises/check_causal_mask.py`` (it runs the checks on this file).
"""

from __future__ import annotations

import torch


def causal_mask(T: int) -> torch.Tensor:
    """A (T, T) bool tensor: mask[i, j] is True when position i may look at position j (j <= i)."""
    raise NotImplementedError("the lower triangle, diagonal included")


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim), future positions masked out) v, for (B, H, T, head_dim) tensors.

    Scores of masked pairs become -inf before the softmax, so each position's weights over positions
    0..i sum to 1 and a later token can never change an earlier output.
    """
    raise NotImplementedError("scores, mask, softmax, weighted sum of v")
