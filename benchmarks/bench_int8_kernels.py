"""Int8 weights on CPU: dequantize at load (what minillm does) against PyTorch's int8 weight-only matmul; JSON.

    python benchmarks/bench_int8_kernels.py RUN [--new-tokens 128] [--runs 3]

RUN is a neural run, e.g. ``runs/quickstart``. Its weights are quantized in memory as ``minillm compress
quantize --bits 8`` stores them (compress.quantize.quantize_int8: symmetric, per output channel), then the
same greedy answer is timed twice, batch 1 on the CPU:

- ``dequantized``: every matrix dequantized to float32 once, ordinary float32 kernels (what loading a
  quantized run does, models.base.load_weights);
- ``int8_matmul``: every nn.Linear replaced by ``Int8Linear``, which keeps the int8 matrix and its scales and
  multiplies with ``torch._weight_int8pack_mm`` (int8 weight-only matmul, the CPU kernel behind torchao's
  int8 weight-only mode), so the float32 weights never exist. Embedding lookups stay float32, and so does
  the transformer's output head, which the model reads as a matrix (``F.linear(x, lm_head.weight)``).

Reported: tokens/s of each, their ratio, whether both give the same ids, and the float32 bytes the int8
kernels would save in memory while running. Each mode runs once to warm up, then --runs times (medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from minillm.compress.quantize import quantize_int8
from minillm.models.generation import Sampling
from minillm.models.weights import dequantize_int8


class Int8Linear(nn.Module):
    """y = x @ (q * scale).T + b, computed from the int8 matrix q without building the float32 one."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        q, scale = quantize_int8(linear.weight.detach())
        self.register_buffer("q", q)
        self.register_buffer("scale", scale.float())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch._weight_int8pack_mm(x.reshape(-1, x.size(-1)), self.q, self.scale)
        y = y.reshape(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias


def dequantize_linears(model: nn.Module) -> None:
    """Replace every nn.Linear's weight by its int8 round trip (what a quantized run loads)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.copy_(dequantize_int8(*quantize_int8(module.weight)))


def int8_linears(model: nn.Module) -> int:
    """Swap every nn.Linear but the output head for an Int8Linear in place; the bytes no longer held."""
    saved = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and name != "lm_head":
                saved += child.weight.numel() * 4 - child.weight.numel() - child.weight.size(0) * 4
                setattr(parent, name, Int8Linear(child))
    return saved


def time_answer(model: nn.Module, prompt: list[int], new_tokens: int, runs: int) -> tuple[float, list[int]]:
    ids: list[int] = []
    times = []
    for run in range(runs + 1):
        start = time.perf_counter()
        ids = list(model.generate(prompt, Sampling(max_new_tokens=new_tokens)))
        if run:
            times.append(time.perf_counter() - start)
    return statistics.median(times), ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a neural run directory")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from minillm.prompt import encode_prompt
    from minillm.training.runs import load_run

    model, tok, _ = load_run(args.run)
    prompt = encode_prompt(tok, "What is the Sun?")
    new_tokens = min(args.new_tokens, model.max_seq_len - len(prompt))
    dequantize_linears(model)
    deq_s, deq_ids = time_answer(model, prompt, new_tokens, args.runs)
    saved = int8_linears(model)
    int8_s, int8_ids = time_answer(model, prompt, new_tokens, args.runs)
    print(json.dumps({
        "run": args.run, "new_tokens": new_tokens, "threads": torch.get_num_threads(), "runs": args.runs,
        "dequantized_tokens_per_s": round(new_tokens / deq_s, 1),
        "int8_matmul_tokens_per_s": round(new_tokens / int8_s, 1),
        "int8_over_dequantized": round(deq_s / int8_s, 3),
        "same_ids": deq_ids == int8_ids,
        "float32_bytes_saved_while_running": saved,
    }, indent=2))


if __name__ == "__main__":
    main()
