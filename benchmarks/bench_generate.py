"""Time greedy generation; print JSON.

    python benchmarks/bench_generate.py [--config seed-3m|tiny] [--new-tokens 256] [--device cpu] [--runs 3]
    python benchmarks/bench_generate.py --run RUN [--run RUN2 ...] [--new-tokens 100] [--runs 3] [--threads N]

Without --run: minillm's engine three ways: ``model.generate`` (the decode step, models/decode_step.py), the
reference engine on the model's forward with the KV cache (generation.generate) and without the cache. The
model is randomly initialised (seed 0): speed does not depend on what the weights learned. Configs:
- seed-3m: the seed's MiniTransformer (vocab 5000, emb 256, 2 layers, 2 heads, ffn 256) but with
  max_seq_len=512, since a 16-token prompt plus 256 new tokens does not fit the seed's 32 positions;
- tiny: vocab 512, emb 64, 2 layers, 4 heads, max_seq_len 512.

With --run (a trained neural run, each given once): the same weights in every runtime, batch 1, CPU, from
one open-book-length prompt: minillm's engine, on its own decode step (``model.generate``) and on its
onnxruntime backend (``minillm_onnxruntime``: answering/engine.py, what ``minillm ask`` uses where
onnxruntime is installed), its reference engine (the model's forward with the KV cache: what ``generate``
ran before the decode step), Hugging Face ``generate`` on the
``export hf`` folder (with its cache: Llama- and GPT-2-shaped runs; the custom code of other runs has none),
and onnxruntime on the ``export onnx`` file, float32 and ``--int8`` (KV cache; ``export.onnx.onnx_greedy``).
Each makes exactly --new-tokens tokens (no eos); ``same_ids`` says whether a runtime's ids equal the
engine's up to the engine's first <eos> (HF's min_new_tokens keeps it from choosing <eos>; int8 weights may
differ after a while). ``speedup_vs_hf`` is HF's seconds over the engine's; ``minillm_vs_onnx_fp32`` and
``minillm_onnxruntime_vs_onnx_fp32`` the engine's tokens/s over those of onnxruntime float32 on the export.

No eos is given, so every run makes exactly --new-tokens tokens. Each runtime runs once to warm up, then
--runs rounds in which every runtime runs once (interleaved, so that a change of the machine's load hits
them alike); the medians are reported. Threads: torch's default and onnxruntime's, or --threads N for
both. ``machine`` records the cores, processor, threads, load average and versions (benchmarks/machine.py):
on a shared machine the figures are noisy, so compare them only within one run of this script.
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


def interleaved(makers: dict[str, Callable[[], list[int]]], runs: int,
                device: str = "cpu") -> tuple[dict[str, float], dict[str, list[int]]]:
    """Median seconds of each maker over `runs` rounds that call every maker once, after one warm-up call
    of each, and the ids each made last."""
    times: dict[str, list[float]] = {name: [] for name in makers}
    ids: dict[str, list[int]] = {}
    for run in range(runs + 1):
        for name, make in makers.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            ids[name] = make()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if run:  # run 0 is the warm-up
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, ids


PROMPT_QUESTION = "What is the Sun?"
PROMPT_CONTEXT = ("The Sun is the star at the centre of the Solar System. It is a massive, nearly perfect sphere "
                  "of hot plasma, heated to incandescence by nuclear fusion reactions in its core.")


def compare_runtimes(run: str, new_tokens: int, runs: int, threads: int | None) -> dict:
    """Tokens/s of one run's weights in minillm's engine (and its reference), HF generate and onnxruntime."""
    import onnxruntime
    import transformers
    from machine import machine_info  # benchmarks/ is sys.path[0] when this runs as a script

    from minillm.answering.engine import with_engine
    from minillm.export.hf import CUSTOM, export_hf
    from minillm.export.onnx import export_onnx, onnx_greedy
    from minillm.training.runs import load_run

    transformers.logging.disable_progress_bar()
    model, tok, _ = load_run(run)
    # the passage shortened as answers shorten it (engine.fit_prompt) where the run reads few positions
    room = max(model.max_seq_len // 2, model.max_seq_len - new_tokens)
    prompt = fit_prompt(tok, PROMPT_QUESTION, PROMPT_CONTEXT, room)
    new_tokens = min(new_tokens, model.max_seq_len - len(prompt))
    sampling = Sampling(max_new_tokens=new_tokens)
    makers: dict[str, Callable[[], list[int]]] = {
        "minillm": lambda: list(model.generate(prompt, sampling)),
        "minillm_reference": lambda: list(generate(model, prompt, sampling)),
    }
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        engine, _ = with_engine(model, "onnxruntime", Path(tmp) / "engine")  # its graphs exported here, untimed
        makers["minillm_onnxruntime"] = lambda: list(engine.generate(prompt, sampling))
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

        makers["hf"] = hf_generate
        for name, int8 in (("onnx_fp32", False), ("onnx_int8", True)):
            path = Path(tmp) / f"{name}.onnx"
            export_onnx(run, path, int8=int8)
            session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            makers[name] = lambda s=session: onnx_greedy(s, prompt, new_tokens)
        seconds, made = interleaved(makers, runs)
    engine_ids = made["minillm"]
    agree = engine_ids.index(tok.eos_id) if tok.eos_id in engine_ids else len(engine_ids)
    results = {"run": run, "parameters": model.num_parameters(), "prompt_tokens": len(prompt),
               "new_tokens": new_tokens, "runs": runs, "ids_compared": agree}
    for name in makers:
        results[f"{name}_tokens_per_s"] = round(new_tokens / seconds[name], 1)
        if name != "minillm":
            results[f"{name}_same_ids"] = made[name][:agree] == engine_ids[:agree]
    results |= {"hf_class": type(hf).__name__, "hf_cache": use_cache,
                "speedup_vs_hf": round(seconds["hf"] / seconds["minillm"], 2),
                "speedup_vs_reference": round(seconds["minillm_reference"] / seconds["minillm"], 2),
                "minillm_vs_onnx_fp32": round(seconds["onnx_fp32"] / seconds["minillm"], 2),
                "minillm_onnxruntime_vs_onnx_fp32": round(seconds["onnx_fp32"] / seconds["minillm_onnxruntime"], 2),
                "machine": machine_info(threads)}
    return results


def main() -> None:
    from machine import machine_info  # benchmarks/ is sys.path[0] when this runs as a script

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="seed-3m")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per mode, after one warm-up")
    parser.add_argument("--run", action="append", help="a trained neural run: compare runtimes on its weights "
                                                       "(repeat for several runs)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime alike (default: each "
                                                    "its own default)")
    args = parser.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.run:
        print(json.dumps([compare_runtimes(run, args.new_tokens, args.runs, args.threads) for run in args.run],
                         indent=2))
        return

    config = CONFIGS[args.config]
    if PROMPT_TOKENS + args.new_tokens > config.max_seq_len:
        parser.error(f"--new-tokens: at most {config.max_seq_len - PROMPT_TOKENS} fit in max_seq_len")
    torch.manual_seed(0)
    model = MiniTransformer(config).to(args.device)
    prompt = torch.randint(0, config.vocab_size, (PROMPT_TOKENS,)).tolist()
    sampling = Sampling(max_new_tokens=args.new_tokens)

    seconds, ids = interleaved({
        "fast": lambda: list(model.generate(prompt, sampling)),
        "cache": lambda: list(generate(model, prompt, sampling)),
        "nocache": lambda: list(generate(model, prompt, sampling, use_cache=False)),
    }, args.runs, args.device)
    print(json.dumps({
        "config": args.config,
        "parameters": model.num_parameters(),
        "max_seq_len": config.max_seq_len,
        "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": len(ids["fast"]),
        "device": args.device,
        "runs": args.runs,
        **{f"seconds_{name}": round(s, 4) for name, s in seconds.items()},
        **{f"tokens_per_s_{name}": round(len(ids[name]) / s, 1) for name, s in seconds.items()},
        "speedup": round(seconds["nocache"] / seconds["cache"], 2),
        "speedup_fast": round(seconds["cache"] / seconds["fast"], 2),
        "same_ids": ids["cache"] == ids["nocache"] == ids["fast"],
        "machine": machine_info(),
    }, indent=2))


if __name__ == "__main__":
    main()
