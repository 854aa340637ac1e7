"""Checks for greedy_decode.py: ``python docs/exercises/check_greedy_decode.py [FILE]`` (default: greedy_decode.py).

``step`` runs a small random MiniTransformer with minillm's KV cache, as the exported decoder runs the
trained one. The tokens are compared with minillm's own engine (``minillm.models.generation.generate``,
greedy), and the calls with what a cached decoder expects: the prompt once, then one token a call, and
no call after the last token.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from minillm.models.generation import KVCache, Sampling, generate
from minillm.models.transformer import MiniTransformer, ModelConfig


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Decoder:
    """step(new_ids, past) -> (logits of the last new token, present), recording what each call was given."""

    def __init__(self, model: MiniTransformer):
        self.model = model
        self.calls: list[tuple[int, bool]] = []  # (tokens given, past given)

    @torch.inference_mode()
    def __call__(self, new_ids: list[int], past: Any) -> tuple[torch.Tensor, Any]:
        self.calls.append((len(new_ids), past is not None))
        cache = past if past is not None else KVCache.for_model(self.model)
        return self.model(torch.tensor([new_ids]), kv_cache=cache)[0, -1], cache


def run_checks(module: ModuleType) -> None:
    torch.manual_seed(0)
    model = MiniTransformer(ModelConfig(vocab_size=50, max_seq_len=64, emb_dim=32, num_layers=2, num_heads=4)).eval()
    prompt = [1, 17, 5, 33, 8]
    want = list(generate(model, prompt, Sampling(max_new_tokens=8)))
    decoder = Decoder(model)
    got = [int(t) for t in module.greedy(decoder, prompt, 8)]
    assert got == want, f"tokens {got}, minillm's greedy engine gives {want}"
    assert decoder.calls[0] == (len(prompt), False), \
        f"the first call should give the whole prompt and no past, got {decoder.calls[0]}"
    assert all(call == (1, True) for call in decoder.calls[1:]), \
        "every call after the first should give one new token and the past it got back"
    assert len(decoder.calls) == 8, f"{len(decoder.calls)} calls for 8 tokens: no call after the last token"

    eos = want[4]  # a token of the answer made the end: it stops where that token first comes
    got = [int(t) for t in module.greedy(Decoder(model), prompt, 8, eos_id=eos)]
    assert got == want[:want.index(eos)], f"with eos_id={eos}: {got}, expected {want[:want.index(eos)]}"
    assert [int(t) for t in module.greedy(Decoder(model), prompt, 1)] == want[:1], "max_new_tokens=1: one token"


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs fastest on one thread: more only wait for each other
    try:
        run_checks(module)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("greedy_decode.py")
    check(load(target))
    print(f"{target}: all checks pass")
