"""Weight-only quantization of a neural run: 8-bit per output channel, or 4-bit per group, in safetensors.

    >>> quantize_run("runs/quickstart", "runs/quickstart-int8", bits=8)
    QuantizeReport(bits=8, group_size=None, tensors=19, bytes_before=5945348, bytes_after=1518854)
    >>> model, tok, cfg = load_run("runs/quickstart-int8")   # dequantized as it loads; answers as before

Formats (every matrix: the token embeddings, each linear layer, the output head; vectors stay float32):
- 8-bit (SYNEVA's choice): symmetric per output channel (a row of the weight), ``q = round(w / s)`` in
  [-127, 127] with ``s = max |row| / 127``; stored as ``NAME.q`` (int8, the weight's shape) and
  ``NAME.scale`` (float16, one per row).
- 4-bit: symmetric per group of ``group_size`` consecutive weights of a row, ``q`` in [-7, 7] with
  ``s = max |group| / 7``; ``q + 8`` is a nibble, two to a byte (even column in the low nibble), stored as
  ``NAME.q4`` (uint8, rows x columns / 2) and ``NAME.scale`` (float16, rows x columns / group_size).
- The file's metadata says so (``quantization``: bits, group size, the quantized names), beside the usual
  ``model`` and ``config``; ``models.base.load_weights`` dequantizes such a file into float32 as it loads.

Design choices:
- Dequantize at load, then run the float32 model: every step of the answer runs the same kernels as the
  original, and nothing else in minillm needs to know. Integer kernels were measured and are slower here:
  PyTorch's int8 weight-only matmul (``torch._weight_int8pack_mm``, behind torchao's int8 weight-only mode)
  made the quickstart run's greedy answer at 0.74x the tokens/s of the dequantized model on two CPU cores
  (``python benchmarks/bench_int8_kernels.py runs/quickstart``); it only saves memory while running
  (1.3 MB of float32 weights there), not disk bytes.
- Symmetric, round to nearest: the maximum error of a weight is half its scale (``dequantize`` bounds are
  tested). No calibration data, no outlier handling.
- The quantized run keeps the config, tokenizer and retrieval index of the original, not its training state:
  it cannot be resumed, only used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch

from minillm.compress import copy_kept
from minillm.core.errors import InputError
from minillm.core.files import atomic_directory, check_new_output
from minillm.models.weights import WEIGHTS_FILE, read_weights_metadata, tensor_bytes, unpack_state, write_safetensors

BITS = (8, 4)
DEFAULT_GROUP_SIZE = 32


@dataclass(frozen=True)
class QuantizeReport:
    bits: int
    group_size: int | None
    tensors: int          # matrices quantized
    bytes_before: int     # tensor data of the original weights file
    bytes_after: int      # tensor data of the quantized one


HALF_SMALLEST = 2.0 ** -24  # the smallest float16 above 0: an all-zero row's scale (clamped after the cast)


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8, scale float16 per row) of a matrix; w ~ q * scale[:, None]."""
    w = w.float()
    scale = (w.abs().amax(dim=1) / 127).half().clamp_min(HALF_SMALLEST)
    q = torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def quantize_int4(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed uint8 rows x cols/2, scale float16 rows x cols/group_size) of a matrix."""
    rows, cols = w.shape
    if cols % group_size or group_size % 2:
        raise ValueError(f"group size {group_size} must be even and divide the row length {cols}")
    groups = w.float().reshape(rows, cols // group_size, group_size)
    scale = (groups.abs().amax(dim=2) / 7).half().clamp_min(HALF_SMALLEST)
    q = torch.round(groups / scale.float()[:, :, None]).clamp(-7, 7).reshape(rows, cols).to(torch.int16) + 8
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8)
    return packed, scale


def quantize_state(tensors: dict[str, torch.Tensor], bits: int, group_size: int | None
                   ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The stored tensors of a quantized state dict, and the names of the matrices quantized."""
    stored, names = {}, []
    for name, t in tensors.items():
        if t.dim() != 2 or not t.is_floating_point():
            stored[name] = t.contiguous()
            continue
        names.append(name)
        if bits == 8:
            stored[f"{name}.q"], stored[f"{name}.scale"] = quantize_int8(t)
        else:
            stored[f"{name}.q4"], stored[f"{name}.scale"] = quantize_int4(t, group_size)
    return stored, names


def quantize_run(run_dir: str | Path, out_dir: str | Path, bits: int = 8,
                 group_size: int | None = None) -> QuantizeReport:
    """Write ``out_dir``: the run in ``run_dir`` with its weights quantized (see the module docstring).

    Raises InputError for a run that is not a neural one, is already quantized, a bad ``bits`` or group
    size, or an ``out_dir`` that exists and is not empty; nothing is written then."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if bits not in BITS:
        raise InputError(f"--bits: {bits} is not supported; choose 8 or 4")
    if bits == 8 and group_size is not None:
        raise InputError("--group-size: 8-bit weights are scaled per output channel; a group size is for --bits 4")
    group_size = (group_size or DEFAULT_GROUP_SIZE) if bits == 4 else None
    if group_size is not None and (group_size < 2 or group_size % 2):
        raise InputError(f"--group-size: must be an even number >= 2, got {group_size}")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{run_dir}: no {WEIGHTS_FILE}: only neural runs (transformer, mlp, attention) have "
                         "weights to quantize")
    metadata = read_weights_metadata(weights)
    if "quantization" in metadata:
        raise InputError(f"{weights}: already quantized ({json.loads(metadata['quantization'])['bits']}-bit)")
    check_new_output(out_dir)
    tensors = safetensors.torch.load_file(str(weights))
    if "pruning" in metadata:  # a pruned run: its matrices made dense first (the pruned weights stay 0)

        tensors = unpack_state(tensors, json.loads(metadata.pop("pruning")))
    for name, t in tensors.items():
        if group_size and t.dim() == 2 and t.size(1) % group_size:
            raise InputError(f"--group-size: {group_size} does not divide the rows of {name!r} "
                             f"({t.size(1)} columns); choose a divisor of it")
    stored, names = quantize_state(tensors, bits, group_size)
    quantization = {"bits": bits, "group_size": group_size, "tensors": names}
    with atomic_directory(out_dir) as staging:
        copy_kept(run_dir, staging)
        write_safetensors(staging / WEIGHTS_FILE, stored, {**metadata, "quantization": json.dumps(quantization)})
    return QuantizeReport(bits, group_size, len(names), tensor_bytes(tensors), tensor_bytes(stored))
