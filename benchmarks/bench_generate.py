"""Time greedy generation with and without the KV cache; print JSON.

    python benchmarks/bench_generate.py [--config seed-3m|tiny] [--new-tokens 256] [--device cpu] [--runs 3]

The model is randomly initialised (seed 0): speed does not depend on what the weights learned. Configs:
- seed-3m: the seed's MiniTransformer (vocab 5000, emb 256, 2 layers, 2 heads, ffn 256) but with
  max_seq_len=512, since a 16-token prompt plus 256 new tokens does not fit the seed's 32 positions;
- tiny: vocab 512, emb 64, 2 layers, 4 heads, max_seq_len 512.
No eos is given, so every run makes exactly --new-tokens tokens. Each mode runs once to warm up, then
--runs times; the medians are reported. torch's default thread count is used; on a shared machine the
figures are noisy, so compare them only within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from minillm.engine import Sampling, generate
from minillm.models import MiniTransformer, ModelConfig

CONFIGS = {
    "seed-3m": ModelConfig(vocab_size=5000, max_seq_len=512, emb_dim=256, num_layers=2, num_heads=2),
    "tiny": ModelConfig(vocab_size=512, max_seq_len=512, emb_dim=64, num_layers=2, num_heads=4),
}
PROMPT_TOKENS = 16


def time_generation(model: MiniTransformer, prompt: list[int], sampling: Sampling, use_cache: bool,
                    runs: int, device: str) -> tuple[float, list[int]]:
    """Median seconds of `runs` timed generations after one warm-up, and the ids they made."""
    ids: list[int] = []
    times = []
    for run in range(runs + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        ids = list(generate(model, prompt, sampling, use_cache=use_cache))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if run:  # run 0 is the warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times), ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="seed-3m")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per mode, after one warm-up")
    args = parser.parse_args()

    config = CONFIGS[args.config]
    if PROMPT_TOKENS + args.new_tokens > config.max_seq_len:
        parser.error(f"--new-tokens: at most {config.max_seq_len - PROMPT_TOKENS} fit in max_seq_len")
    torch.manual_seed(0)
    model = MiniTransformer(config).to(args.device)
    prompt = torch.randint(0, config.vocab_size, (PROMPT_TOKENS,)).tolist()
    sampling = Sampling(max_new_tokens=args.new_tokens)

    cache_s, cache_ids = time_generation(model, prompt, sampling, True, args.runs, args.device)
    nocache_s, nocache_ids = time_generation(model, prompt, sampling, False, args.runs, args.device)
    print(json.dumps({
        "config": args.config,
        "parameters": model.num_parameters(),
        "max_seq_len": config.max_seq_len,
        "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": len(cache_ids),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "runs": args.runs,
        "seconds_cache": round(cache_s, 4),
        "seconds_nocache": round(nocache_s, 4),
        "tokens_per_s_cache": round(len(cache_ids) / cache_s, 1),
        "tokens_per_s_nocache": round(len(nocache_ids) / nocache_s, 1),
        "speedup": round(nocache_s / cache_s, 2),
        "same_ids": cache_ids == nocache_ids,
    }, indent=2))


if __name__ == "__main__":
    main()
