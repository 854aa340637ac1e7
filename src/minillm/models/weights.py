"""Weights files: safetensors in and out, and reading the stored forms the compress stage writes
(int8 / int4 quantized, pruned to a mask and values) back into plain float tensors.

Design choices:
- Never pickle: safetensors only, written atomically (temp file in the same directory, then rename).
- The model's rung and config travel in the file's metadata (``weights_metadata``), so a weights file says
  what it holds.
- Reading a compressed file lives here, below compress/: a model loads any stored form without importing
  the stage that wrote it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import safetensors
import safetensors.torch
import torch
from torch import nn

from minillm.core.errors import InputError
from minillm.core.files import atomic_write

if TYPE_CHECKING:
    import numpy as np


import math

import numpy as np

WEIGHTS_FILE = "model.safetensors"


def read_weights_config(path: Path, name: str, config_class: type) -> object:
    """The ``config_class`` stored in a weights file's metadata by ``weights_metadata``; InputError naming
    the file when it is not a ``name`` weights file or its config does not validate."""
    metadata = read_weights_metadata(path)
    if metadata.get("model") != name or "config" not in metadata:
        raise InputError(f"{path}: not a {name} weights file (no model config in its metadata)")
    try:
        return config_class(**json.loads(metadata["config"]))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: field 'config': {exc}") from exc


def weights_metadata(model: nn.Module) -> dict[str, str]:
    """What a weights file says about its model: the rung's name and its config as JSON."""
    return {"model": model.name, "config": json.dumps(dataclasses.asdict(model.config))}


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """Bytes of the tensors' data (a weights file's, without its header)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


def weights_size_bytes(model: nn.Module) -> int:
    """Bytes of tensor data ``save_weights`` writes (the state dict; non-persistent buffers are not saved)."""
    return tensor_bytes(model.state_dict())


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write the model's state dict to a safetensors file, atomically."""
    write_safetensors(path, {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()},
                      metadata)


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
                      ) -> None:
    """tensors as a safetensors file, atomically. Serialized to bytes first, then written by atomic_write:
    safetensors' own save_file reports a full disk as a SafetensorError rather than an OSError, and makes
    the file 0600."""
    data = safetensors.torch.save(tensors, metadata=metadata)
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def read_weights_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a safetensors file's header."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such weights file") from exc
    except safetensors.SafetensorError as exc:
        raise InputError(f"{path}: not a safetensors file ({exc})") from exc


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a safetensors file into the model; names and shapes must match exactly. A quantized file
    (minillm compress quantize) is dequantized to float32 first, a pruned one (minillm compress prune) made
    dense, and the model remembers its stored bytes."""
    try:
        tensors = safetensors.torch.load_file(str(path))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such weights file") from exc
    except safetensors.SafetensorError as exc:
        raise InputError(f"{path}: not a safetensors file ({exc})") from exc
    metadata = read_weights_metadata(path)
    stored_bytes = tensor_bytes(tensors)
    if "quantization" in metadata:
        try:
            tensors = dequantize_state(tensors, json.loads(metadata["quantization"]))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InputError(f"{path}: field 'quantization': not a quantized minillm model ({exc!r})") from exc
        model.stored_bytes = stored_bytes
    if "pruning" in metadata:
        try:
            tensors = unpack_state(tensors, json.loads(metadata["pruning"]))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InputError(f"{path}: field 'pruning': not a pruned minillm model ({exc!r})") from exc
        model.stored_bytes = stored_bytes
    expected = model.state_dict()
    problems = [f"missing {name!r}" for name in expected if name not in tensors]
    problems += [f"unexpected {name!r}" for name in tensors if name not in expected]
    problems += [f"{name!r} has shape {tuple(t.shape)}, the model needs {tuple(expected[name].shape)}"
                 for name, t in tensors.items() if name in expected and t.shape != expected[name].shape]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise InputError(f"{path}: weights do not fit this model: {shown}")
    model.load_state_dict(tensors)


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float()[:, None]


def dequantize_int4(packed: torch.Tensor, scale: torch.Tensor, group_size: int) -> torch.Tensor:
    low, high = (packed & 0x0F).to(torch.int16) - 8, (packed >> 4).to(torch.int16) - 8
    q = torch.stack([low, high], dim=2).reshape(packed.size(0), -1).float()
    rows, cols = q.shape
    return (q.reshape(rows, cols // group_size, group_size) * scale.float()[:, :, None]).reshape(rows, cols)


def dequantize_state(stored: dict[str, torch.Tensor], quantization: dict) -> dict[str, torch.Tensor]:
    """The float32 state dict of a quantized file's tensors (the inverse of ``quantize_state``)."""
    bits, group_size, names = quantization["bits"], quantization.get("group_size"), quantization["tensors"]
    tensors = {}
    for name in names:
        if bits == 8:
            tensors[name] = dequantize_int8(stored[f"{name}.q"], stored[f"{name}.scale"])
        else:
            tensors[name] = dequantize_int4(stored[f"{name}.q4"], stored[f"{name}.scale"], group_size)
    quantized_keys = {f"{n}.{part}" for n in names for part in ("q", "q4", "scale")}
    tensors.update({k: v for k, v in stored.items() if k not in quantized_keys})
    return tensors


def unpack(mask: torch.Tensor, values: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """The dense matrix of ``pack``'s mask and values."""
    n = math.prod(shape)
    if mask.dtype != torch.uint8 or mask.numel() != (n + 7) // 8:
        raise ValueError(f"a mask of {n} bits takes {(n + 7) // 8} bytes of uint8, got {mask.numel()} "
                         f"of {mask.dtype}")
    nonzero = torch.from_numpy(np.unpackbits(mask.numpy(), count=n, bitorder="little").astype(bool))
    dense = torch.zeros(n, dtype=values.dtype)
    dense[nonzero] = values
    return dense.reshape(shape)


def unpack_state(stored: dict[str, torch.Tensor], pruning: dict) -> dict[str, torch.Tensor]:
    """The dense state dict of a pruned file's tensors (the inverse of ``pack_state``)."""
    shapes = pruning["tensors"]
    tensors = {name: unpack(stored[f"{name}.mask"], stored[f"{name}.values"], shape)
               for name, shape in shapes.items()}
    packed = {f"{name}.{part}" for name in shapes for part in ("mask", "values")}
    tensors.update({k: v for k, v in stored.items() if k not in packed})
    return tensors
