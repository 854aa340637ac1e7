"""benchmarks/bench_int8_kernels.py: PyTorch's int8 weight-only matmul against the dequantized float32 matmul
that minillm's quantized runs use."""

import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from minillm.compress.quantize import quantize_int8
from minillm.models.weights import dequantize_int8

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_int8_kernels import Int8Linear  # noqa: E402


def test_int8_kernel_equals_the_dequantized_matmul():
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    x = torch.randn(3, 5, 96)
    dequantized = dequantize_int8(*quantize_int8(linear.weight.detach()))
    expected = F.linear(x, dequantized, linear.bias)
    assert torch.allclose(Int8Linear(linear)(x), expected, atol=1e-4)
    assert Int8Linear(linear).q.dtype == torch.int8


def test_bench_times_both_on_a_run(tiny_run):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_int8_kernels.py"), str(tiny_run),
                          "--new-tokens", "5", "--runs", "1"], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["same_ids"] and result["dequantized_tokens_per_s"] > 0 and result["int8_matmul_tokens_per_s"] > 0
    assert result["float32_bytes_saved_while_running"] > 0
