"""Time the Trainer on real data for a few dozen steps of each phase; print JSON.

    python benchmarks/bench_train.py --config seed-3m|tiny-cpu [--steps 30] [--device cpu] [--articles 2500]

Data: ``--articles`` bundled offline articles, their generated QA pairs and a grouped split, written under a
temp dir, as ``minillm data fetch/generate/split`` would. A 3-step warm-up run trains the tokenizer,
tokenizes everything into the cache ($MINILLM_CACHE) and warms up the device: ``prepare_s``.
Then each phase runs ``--steps`` optimizer steps of its own ``train`` call with the config's batch and model
sizes. ``tokens_per_s`` and ``ms_per_step`` count training steps only; ``other_s`` is the rest of the call
(reading the cached tokens, the one evaluation, the checkpoint).
``full_run_s`` estimates the config's whole run from the step times. On CUDA, a few dozen fine-tuning
steps overstate the step time: nearly every padded batch length is new, and each new shape pays once for
kernel selection; use ``--steps 300`` or more there. Peak memory: per phase
``torch.cuda.max_memory_allocated`` on CUDA; ``peak_rss_mb`` is the process's peak resident set
(``ru_maxrss``), which includes data preparation.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path

import torch

from minillm.config import Config, load_config, shipped_config
from minillm.data.fetch import fetch_articles
from minillm.data.generate import generate_qa_pairs
from minillm.data.records import read_articles, write_jsonl
from minillm.data.split import split_qa_pairs, write_split
from minillm.models import MiniTransformer
from minillm.train import resolve_device, train


def make_data(out: Path, articles: int) -> dict[str, int]:
    report = fetch_articles("offline", out / "articles.jsonl", limit=articles, seed=0)
    pairs, _ = generate_qa_pairs(read_articles(out / "articles.jsonl"))
    write_jsonl(out / "qa_pairs.jsonl", pairs)
    write_split(split_qa_pairs(pairs), out / "splits")
    return {"articles": report.total, "qa_pairs": len(pairs)}


def phase_config(cfg_path: Path, out: Path, phase: str, steps: int, device: str) -> Config:
    """The config, on the bench data, running ``steps`` of ``phase`` only, evaluating once at the end."""
    other = "finetune" if phase == "pretrain" else "pretrain"
    return load_config(cfg_path, [
        f"data.articles={json.dumps(str(out / 'articles.jsonl'))}",
        f"data.train_qa={json.dumps(str(out / 'splits' / 'train.jsonl'))}",
        f"data.val_qa={json.dumps(str(out / 'splits' / 'val.jsonl'))}",
        f"train.{phase}_steps={steps}", f"train.{other}_steps=0", "train.eval_interval=0",
        "train.checkpoint_interval=0", f"train.log_interval={steps}", f"train.device={device}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny-cpu", help="a shipped config name or a .toml file")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per phase")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--articles", type=int, default=2500, help="offline articles to train on")
    args = parser.parse_args()
    cfg_path = shipped_config(args.config)
    cfg = load_config(cfg_path)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="minillm-bench-train-") as tmp:
        out = Path(tmp)
        report = {"config": args.config, "device": str(device), "torch_threads": torch.get_num_threads(),
                  "steps_per_phase": args.steps, "batch_size": cfg.train.batch_size,
                  "grad_accum": cfg.train.grad_accum, "max_seq_len": cfg.model["max_seq_len"],
                  **make_data(out, args.articles)}
        warmup = train(phase_config(cfg_path, out, "pretrain", 3, str(device)), out / "warmup", progress=False)
        report["prepare_s"] = round(warmup.seconds, 2)
        full_run_s = 0.0
        for phase in ("pretrain", "finetune"):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            result = train(phase_config(cfg_path, out, phase, args.steps, str(device)), out / phase,
                           progress=False)
            step_s = result.tokens / result.tokens_per_s / args.steps
            report[phase] = {"tokens_per_s": round(result.tokens_per_s), "ms_per_step": round(1000 * step_s, 2),
                             "other_s": round(result.seconds - step_s * args.steps, 2),
                             "loss": round(result.final_losses["train"], 4)}
            full_run_s += step_s * getattr(cfg.train, f"{phase}_steps")
            if device.type == "cuda":
                report[phase]["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        report["full_run_s"] = round(full_run_s)
        report["parameters"] = MiniTransformer.load(out / "pretrain").num_parameters()
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
