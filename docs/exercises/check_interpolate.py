"""Checks for interpolate.py: ``python docs/exercises/check_interpolate.py [FILE]`` (default: interpolate.py).

``mix`` is compared with minillm's own (``minillm.models.hybrid.mix``) and with the formula computed directly
in float64 where that does not underflow; ``best_weight`` must reach the loss of minillm's ``tune_weight``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from minillm.models.hybrid import mix as minillm_mix
from minillm.models.hybrid import tune_weight


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loss(ngram: torch.Tensor, neural: torch.Tensor, w: float) -> float:
    return float(-minillm_mix(ngram, neural, w).mean())


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    g = torch.Generator().manual_seed(0)
    ngram = -torch.rand(500, generator=g, dtype=torch.float64) * 8
    neural = -torch.rand(500, generator=g, dtype=torch.float64) * 8
    for w in (0.0, 0.25, 0.78, 1.0):
        got = module.mix(ngram, neural, w)
        direct = torch.log(w * ngram.exp() + (1 - w) * neural.exp())
        assert got.shape == ngram.shape, f"mix: shape {tuple(got.shape)}, expected {tuple(ngram.shape)}"
        assert torch.allclose(got, direct, atol=1e-12), f"mix(..., {w}) differs from log(w p_ngram + (1 - w) p_neural)"
        assert torch.allclose(got, minillm_mix(ngram, neural, w), atol=1e-12), f"mix(..., {w}) differs from minillm's"
    assert torch.equal(module.mix(ngram, neural, 1.0), ngram), "mix(..., 1) should give log_p_ngram back exactly"
    assert torch.equal(module.mix(ngram, neural, 0.0), neural), "mix(..., 0) should give log_p_neural back exactly"
    deep = torch.tensor([-800.0, -1000.0, -745.2], dtype=torch.float64)
    got = module.mix(deep, deep - 3.0, 0.5)
    assert torch.isfinite(got).all(), "mix underflows: exp(-800) is 0 in float64, so mix in log space"
    assert torch.allclose(got, minillm_mix(deep, deep - 3.0, 0.5), atol=1e-9), "mix of very small probabilities is off"

    for shift in (0.0, 1.5, -6.0, 6.0):  # the best w inside (0, 1), then at either end
        neural_part = neural + shift
        w = float(module.best_weight(ngram, neural_part))
        assert 0.0 <= w <= 1.0, f"best_weight gave {w}, outside [0, 1]"
        best = loss(ngram, neural_part, tune_weight(ngram, neural_part))
        assert loss(ngram, neural_part, w) <= best + 1e-6, \
            f"best_weight gave w = {w:.4f}, whose loss is above the best ({best:.6f} at w = " \
            f"{tune_weight(ngram, neural_part):.4f})"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("interpolate.py")
    check(load(target))
    print(f"{target}: all checks pass")
