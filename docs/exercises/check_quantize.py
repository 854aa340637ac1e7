"""Checks for quantize.py: ``python docs/exercises/check_quantize.py [FILE]`` (default: quantize.py).

8-bit: the values and scales are compared with minillm's ``quantize_int8`` and the round trip with PyTorch's
``fake_quantize_per_channel_affine`` (symmetric, zero point 0, range [-127, 127]); every weight must come
back within half its row's scale. 4-bit: the bytes are compared with minillm's ``quantize_int4``, given rows
whose largest value is 7 so that its scale is 1 and it packs exactly the values given.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from minillm.compress.quantize import quantize_int4
from minillm.compress.quantize import quantize_int8 as minillm_int8


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 48, generator=g) * torch.rand(16, 1, generator=g) * 3
    q, scale = module.quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape, \
        f"q: {q.dtype} {tuple(q.shape)}, expected int8 {tuple(w.shape)}"
    assert scale.dtype == torch.float16 and scale.shape == (16,), f"scale: {scale.dtype} {tuple(scale.shape)}"
    want_q, want_scale = minillm_int8(w)
    assert torch.equal(scale, want_scale), "scales differ from max |row| / 127 in float16"
    assert torch.equal(q, want_q), "q differs from minillm's quantize_int8"
    back = module.dequantize_int8(q, scale)
    assert back.dtype == torch.float32 and back.shape == w.shape, "dequantize_int8: a float32 matrix of w's shape"
    fake = torch.fake_quantize_per_channel_affine(w, scale.float(), torch.zeros(16, dtype=torch.int32), 0, -127, 127)
    assert torch.allclose(back, fake, atol=1e-6), "the round trip differs from torch.fake_quantize_per_channel_affine"
    assert ((back - w).abs() <= scale.float()[:, None] / 2 + 1e-6).all(), "a weight came back further than s / 2"

    values = torch.randint(-7, 8, (5, 12), generator=g)
    values[:, 0] = 7  # every row's largest |value| is 7: minillm's scale is then exactly 1
    packed = module.pack_int4(values)
    assert packed.dtype == torch.uint8 and packed.shape == (5, 6), \
        f"packed: {packed.dtype} {tuple(packed.shape)}, expected uint8 (5, 6)"
    want, _ = quantize_int4(values.float(), group_size=12)
    assert torch.equal(packed, want), "bytes differ from minillm's: even column in the low nibble, value + 8"
    assert torch.equal(module.unpack_int4(packed).long(), values), "unpack_int4(pack_int4(q)) is not q"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("quantize.py")
    check(load(target))
    print(f"{target}: all checks pass")
