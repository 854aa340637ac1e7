"""Time greedy generation; print JSON.

    python benchmarks/bench_generate.py [--config seed-3m|tiny] [--new-tokens 256] [--device cpu] [--runs 3]
    python benchmarks/bench_generate.py --run RUN [--run RUN2 ...] [--new-tokens 100] [--runs 3]

Without --run: minillm's engine with and without the KV cache. The model is randomly initialised (seed 0):
speed does not depend on what the weights learned. Configs:
- seed-3m: the seed's MiniTransformer (vocab 5000, emb 256, 2 layers, 2 heads, ffn 256) but with
  max_seq_len=512, since a 16-token prompt plus 256 new tokens does not fit the seed's 32 positions;
- tiny: vocab 512, emb 64, 2 layers, 4 heads, max_seq_len 512.

With --run (a trained neural run, each given once): the same weights in every runtime, batch 1, CPU, from
one open-book-length prompt: minillm's engine (KV cache), Hugging Face ``generate`` on the ``export hf``
folder (with its cache: Llama- and GPT-2-shaped runs; the custom code of other runs has none), and
onnxruntime on the ``export onnx`` file, float32 and ``--int8`` (KV cache; ``export.onnx.onnx_greedy``).
Each makes exactly --new-tokens tokens (no eos); ``same_ids`` says whether a runtime's ids equal the
engine's up to the engine's first <eos> (HF's min_new_tokens keeps it from choosing <eos>; int8 weights may
differ after a while). ``speedup_vs_hf`` is HF's seconds over the engine's.

No eos is given, so every run makes exactly --new-tokens tokens. Each mode runs once to warm up, then
--runs times; the medians are reported. torch's default thread count is used; on a shared machine the
figures are noisy, so compare them only within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from minillm.models import MiniTransformer, ModelConfig
from minillm.models.generation import Sampling, generate
from minillm.prompt import fit_prompt

CONFIGS = {
    "seed-3m": ModelConfig(vocab_size=5000, max_seq_len=512, emb_dim=256, num_layers=2, num_heads=2),
    "tiny": ModelConfig(vocab_size=512, max_seq_len=512, emb_dim=64, num_layers=2, num_heads=4),
}
PROMPT_TOKENS = 16


def median_time(make: Callable[[], list[int]], runs: int, device: str = "cpu") -> tuple[float, list[int]]:
    """Median seconds of `runs` timed calls of make() after one warm-up, and the ids the last one made."""
    ids: list[int] = []
    times = []
    for run in range(runs + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        ids = make()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if run:  # run 0 is the warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times), ids


def time_generation(model: MiniTransformer, prompt: list[int], sampling: Sampling, use_cache: bool,
                    runs: int, device: str) -> tuple[float, list[int]]:
    return median_time(lambda: list(generate(model, prompt, sampling, use_cache=use_cache)), runs, device)


PROMPT_QUESTION = "What is the Sun?"
PROMPT_CONTEXT = ("The Sun is the star at the centre of the Solar System. It is a massive, nearly perfect sphere "
                  "of hot plasma, heated to incandescence by nuclear fusion reactions in its core.")


def compare_runtimes(run: str, new_tokens: int, runs: int) -> dict:
    """Tokens/s of one run's weights in minillm's engine, HF generate and onnxruntime (fp32, int8)."""
    import onnxruntime
    import transformers

    from minillm.export.hf import CUSTOM, export_hf
    from minillm.export.onnx import export_onnx, onnx_greedy
    from minillm.training.runs import load_run

    transformers.logging.disable_progress_bar()
    model, tok, _ = load_run(run)
    # the passage shortened as answers shorten it (engine.fit_prompt) where the run reads few positions
    room = max(model.max_seq_len // 2, model.max_seq_len - new_tokens)
    prompt = fit_prompt(tok, PROMPT_QUESTION, PROMPT_CONTEXT, room)
    new_tokens = min(new_tokens, model.max_seq_len - len(prompt))
    results = {"run": run, "parameters": model.num_parameters(), "prompt_tokens": len(prompt),
               "new_tokens": new_tokens, "threads": torch.get_num_threads()}
    seconds, engine_ids = median_time(
        lambda: list(model.generate(prompt, Sampling(max_new_tokens=new_tokens))), runs)
    results["minillm_tokens_per_s"] = round(new_tokens / seconds, 1)
    agree = engine_ids.index(tok.eos_id) if tok.eos_id in engine_ids else len(engine_ids)
    results["ids_compared"] = agree
    with tempfile.TemporaryDirectory() as tmp:
        summary = export_hf(run, Path(tmp) / "hf")
        hf = transformers.AutoModelForCausalLM.from_pretrained(Path(tmp) / "hf", trust_remote_code=True).eval()
        use_cache = CUSTOM not in summary
        ids = torch.tensor([prompt])

        def hf_generate() -> list[int]:
            with torch.inference_mode():
                out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, use_cache=use_cache,
                                  max_new_tokens=new_tokens, min_new_tokens=new_tokens, repetition_penalty=1.0,
                                  suppress_tokens=None, pad_token_id=tok.pad_id)
            return out[0, len(prompt):].tolist()

        hf_seconds, hf_ids = median_time(hf_generate, runs)
        results |= {"hf_class": type(hf).__name__, "hf_cache": use_cache,
                    "hf_tokens_per_s": round(new_tokens / hf_seconds, 1),
                    "hf_same_ids": hf_ids[:agree] == engine_ids[:agree],
                    "speedup_vs_hf": round(hf_seconds / seconds, 2)}
        for name, int8 in (("onnx_fp32", False), ("onnx_int8", True)):
            path = Path(tmp) / f"{name}.onnx"
            export_onnx(run, path, int8=int8)
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            ort_seconds, ort_ids = median_time(lambda s=session: onnx_greedy(s, prompt, new_tokens), runs)
            results |= {f"{name}_tokens_per_s": round(new_tokens / ort_seconds, 1),
                        f"{name}_same_ids": ort_ids[:agree] == engine_ids[:agree]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="seed-3m")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per mode, after one warm-up")
    parser.add_argument("--run", action="append", help="a trained neural run: compare runtimes on its weights "
                                                       "(repeat for several runs)")
    args = parser.parse_args()
    if args.run:
        print(json.dumps([compare_runtimes(run, args.new_tokens, args.runs) for run in args.run], indent=2))
        return

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
