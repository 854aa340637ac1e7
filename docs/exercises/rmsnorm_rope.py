"""Exercise (modern variants page): RMSNorm and rotary position embeddings. Fill in the two functions.

Check your work with ``python docs/exercises/check_rmsnorm_rope.py`` (it runs the checks on this file).

- RMSNorm (Zhang & Sennrich, 2019): x / sqrt(mean(x^2) + eps) * weight, over the last dimension. No mean
  is subtracted and there is no bias: LayerNorm with less work.
- Rotary embeddings (Su et al., 2021), with the pairing minillm, GPT-NeoX and Hugging Face's Llama use:
  of a vector of d features, feature i and feature i + d/2 form a pair (i < d/2), and the pair is rotated
  by the angle position * base^(-2i/d). A query at position m and a key at position n then meet at an
  angle that depends only on m - n.
"""

from __future__ import annotations

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x (..., d) divided by the root mean square of its last dimension, times weight (d,)."""
    raise NotImplementedError("x * rsqrt(mean of x squared + eps) * weight")


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x (..., T, d), d even, with each row t rotated for position positions[t] (an integer tensor (T,)).

    The pair (x[..., i], x[..., i + d/2]) becomes (a cos - b sin, a sin + b cos), with a, b the pair's
    values and the angle positions[t] * base ** (-2 * i / d).
    """
    raise NotImplementedError("angles (T, d/2), then rotate the two halves of the last dimension")
