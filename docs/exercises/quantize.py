"""Exercise (compression page): 8-bit weights per output channel, and 4-bit values two to a byte. Fill in four
functions.

Check your work with ``python docs/exercises/check_quantize.py`` (it runs the checks on this file).

minillm's formats (src/minillm/compress/quantize.py):

- 8-bit, symmetric, one scale per row of a weight matrix: s = max |row| / 127, stored as float16;
  q = round(w / s) with that float16 scale, clamped to [-127, 127], stored as int8; read back as q * s.
- 4-bit values q in [-7, 7] are stored as the nibble q + 8 (0..15), two to a byte: the value of the even
  column in the low four bits, the odd column's in the high four.
"""

from __future__ import annotations

import torch


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8 (rows, cols), scale float16 (rows,)) of a float matrix w."""
    raise NotImplementedError("scale per row, round, clamp")


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 matrix q * scale, each row times its own scale."""
    raise NotImplementedError("broadcast the scale over each row")


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """uint8 (rows, cols / 2) holding q (rows, cols), an integer tensor with values in [-7, 7], cols even."""
    raise NotImplementedError("add 8, then even column | odd column << 4")


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The int8 (rows, 2 * bytes) values that pack_int4 packed."""
    raise NotImplementedError("low nibble, high nibble, minus 8, interleaved back into columns")
