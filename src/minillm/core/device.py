"""The device and the dtype: ``auto`` picks cuda, then mps, then cpu; a name is checked before use."""

from __future__ import annotations

import torch

from minillm.core.errors import InputError


def resolve_device(name: str) -> torch.device:
    """``auto`` = cuda > mps > cpu; a device this machine lacks is an InputError."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{name}': CUDA is not available on this machine (try cpu or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device '{name}': MPS is not available on this machine (try cpu or auto)")
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, name)
