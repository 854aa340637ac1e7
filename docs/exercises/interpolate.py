"""Exercise (hybrid page): mix an n-gram model with a network, and tune the mixing weight. Fill in two functions.

Check your work with ``python docs/exercises/check_interpolate.py`` (it runs the checks on this file).

The hybrid rung (src/minillm/models/hybrid.py) gives each next token the probability

    p = w * p_ngram + (1 - w) * p_neural

Models hand out log-probabilities, and a long text's are very negative: exp(-800) is 0 in float64, so
computing exp, mixing and taking the log again turns a likely token into log(0) = -inf. Mix in log space.
"""

from __future__ import annotations

import torch


def mix(log_p_ngram: torch.Tensor, log_p_neural: torch.Tensor, w: float) -> torch.Tensor:
    """log(w * exp(log_p_ngram) + (1 - w) * exp(log_p_neural)), elementwise, finite wherever a part is.

    w = 1 gives log_p_ngram back exactly, w = 0 gives log_p_neural back exactly.
    """
    raise NotImplementedError("log w + log_p_ngram and log(1 - w) + log_p_neural, added in log space")


def best_weight(log_p_ngram: torch.Tensor, log_p_neural: torch.Tensor) -> float:
    """The w in [0, 1] whose mix has the lowest mean loss, -mix(...).mean(), on these log-probabilities of
    held-out tokens (to within 1e-3 of the best w; the loss is convex in w)."""
    raise NotImplementedError("search [0, 1]: a fine grid, or a ternary / golden-section search")
