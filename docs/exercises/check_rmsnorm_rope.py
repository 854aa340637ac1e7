"""Checks for rmsnorm_rope.py: ``python docs/exercises/check_rmsnorm_rope.py [FILE]`` (default: rmsnorm_rope.py).

``rms_norm`` is compared with PyTorch's ``nn.RMSNorm`` and with minillm's ``RMSNorm``; ``rotary`` with minillm's
``rotary_tables`` and ``apply_rotary`` (src/minillm/models/transformer.py) and with the same rotation written
as complex multiplication (each pair a + ib times e^(i angle), as RoFormer derives it). A query and a key
rotated for positions m and n must give the same dot product as for m + 7 and n + 7.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from minillm.models.transformer import RMSNorm, apply_rotary, rotary_tables


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def complex_rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """The rotation as complex multiplication: pair (x[i], x[i + d/2]) is the number x[i] + i x[i + d/2]."""
    d = x.size(-1)
    angles = positions.double()[:, None] * base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    a, b = x.chunk(2, dim=-1)
    z = torch.complex(a, b) * torch.polar(torch.ones_like(angles), angles)
    return torch.cat([z.real, z.imag], dim=-1)


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 16, generator=g, dtype=torch.float64) * 3
    weight = torch.randn(16, generator=g, dtype=torch.float64)
    for eps in (1e-5, 1e-2):
        got = module.rms_norm(x, weight, eps)
        reference = nn.RMSNorm(16, eps=eps, dtype=torch.float64)
        mine = RMSNorm(16, eps).double()
        with torch.no_grad():
            reference.weight.copy_(weight)
            mine.weight.copy_(weight)
            want, ours = reference(x), mine(x)
        assert got.shape == x.shape, f"rms_norm: shape {tuple(got.shape)}, expected {tuple(x.shape)}"
        assert torch.allclose(got, want, atol=1e-12), f"rms_norm(eps={eps}) differs from torch.nn.RMSNorm"
        assert torch.allclose(got, ours, atol=1e-12), f"rms_norm(eps={eps}) differs from minillm's RMSNorm"

    q = torch.randn(2, 3, 6, 8, generator=g, dtype=torch.float64)  # (B, H, T, head_dim)
    positions = torch.tensor([0, 1, 2, 5, 11, 30])
    got = module.rotary(q, positions)
    assert got.shape == q.shape, f"rotary: shape {tuple(got.shape)}, expected {tuple(q.shape)}"
    assert torch.allclose(got[..., 0, :], q[..., 0, :], atol=1e-12), "position 0 should not be rotated"
    assert torch.allclose(got, complex_rotary(q, positions), atol=1e-12), \
        "rotary differs from the complex rotation (pairs are features i and i + d/2; angle position * base^(-2i/d))"
    cos, sin = rotary_tables(8, 31)
    ours = apply_rotary(q.float(), cos[positions], sin[positions]).double()
    assert torch.allclose(got, ours, atol=1e-5), "rotary differs from minillm's apply_rotary"
    assert torch.allclose(module.rotary(q, positions, base=100.0), complex_rotary(q, positions, 100.0), atol=1e-12), \
        "rotary ignores its base"
    qm, kn = q[0, 0, 0], q[0, 0, 1]
    near = module.rotary(torch.stack([qm, kn]), torch.tensor([4, 1]))
    far = module.rotary(torch.stack([qm, kn]), torch.tensor([11, 8]))
    assert torch.allclose(near[0] @ near[1], far[0] @ far[1], atol=1e-10), \
        "the dot product of a rotated query and key should depend only on how far apart they are"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("rmsnorm_rope.py")
    check(load(target))
    print(f"{target}: all checks pass")
