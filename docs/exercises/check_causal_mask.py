"""Checks for causal_mask.py: ``python docs/exercises/check_causal_mask.py [FILE]`` (default: causal_mask.py).

The attention is compared with torch's ``scaled_dot_product_attention(is_causal=True)``, which is what
minillm's ``CausalSelfAttention`` (src/minillm/models/transformer.py) calls.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    for T in (1, 2, 5):
        mask = module.causal_mask(T)
        assert mask.dtype == torch.bool and mask.shape == (T, T), f"causal_mask({T}): a ({T}, {T}) bool tensor"
        assert torch.equal(mask, torch.ones(T, T, dtype=torch.bool).tril()), f"causal_mask({T}) is not j <= i"
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g, dtype=torch.float64) for _ in range(3))
    y = module.causal_attention(q, k, v)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert y.shape == ref.shape, f"output shape {tuple(y.shape)}, expected {tuple(ref.shape)}"
    assert torch.allclose(y, ref, atol=1e-10), "output differs from scaled_dot_product_attention(is_causal=True)"
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 4:], v2[:, :, 4:] = 100.0, -100.0  # change the future: positions 0..3 must not move
    assert torch.allclose(module.causal_attention(q, k2, v2)[:, :, :4], y[:, :, :4], atol=1e-10), \
        "a later token changed an earlier output: the mask lets the future through"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("causal_mask.py")
    check(load(target))
    print(f"{target}: all checks pass")
