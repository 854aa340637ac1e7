"""Time the Trainer; print JSON: tokens/s, ms per step, MFU, peak memory, compile time, and with --full the
wall time to a target validation loss.

    python benchmarks/bench_train.py --config tiny-cpu|seed-3m [--steps 30] [--device cpu] [--articles 2500]
    python benchmarks/bench_train.py --config shakespeare-char --device cuda [--steps 300] [--no-compile]
    python benchmarks/bench_train.py --config shakespeare-char --device cuda --full [--target-loss 1.47] --out DIR
    torchrun --standalone --nproc_per_node 2 benchmarks/bench_train.py --config shakespeare-char --full ...
    python benchmarks/bench_train.py --config shakespeare-char --steps 300 --window 20 --pairs [5] --out DIR

Data: a config that pretrains on ``data.text`` only (shakespeare-char) reads its own file (``--set
data.text=PATH`` moves it); the others get ``--articles`` bundled offline articles, their generated QA pairs
and a grouped split, written under a temp dir, as ``minillm data fetch/generate/split`` would.

Steps (default): each phase of the config runs ``--steps`` optimizer steps in its own ``train`` call, with a
log line every ``--window`` steps (the Trainer's only waits for the device) and one evaluation batch at the
end. ``ms_per_step`` and ``tokens_per_s`` are medians over the windows after the first (steady state);
``compile_s`` is how much longer the first window took than a steady one (compilation, autotuning, warm-up);
``other_s`` is the rest of the call (tokenizing on a cold cache, the evaluation, the checkpoint).

--full: the config's whole run with its evaluations and checkpoints; adds ``seconds_to_target`` (wall time
from this script's first line to the first evaluation with val_text_loss <= --target-loss), the best
validation loss and its step, the validation curve, and ``total_s``.

MFU: flops per token as nanoGPT estimates them, 6 N + 12 L H Q T (N parameters without the position table,
L layers, H heads, Q head size, T = max_seq_len), times tokens/s, over the dense bf16 peak of the GPU
(PEAK_FLOPS, matched by name) times the number of GPUs; null where the peak is unknown (CPU). Peak memory is
``torch.cuda.max_memory_allocated`` on rank 0's GPU; ``peak_rss_mb`` the process's peak resident set.
Under torchrun every process runs this script and tokens/s count them all; rank 0 prints and writes.
``--out DIR`` gets bench.json (what is printed) and each run's metrics as ``{phase|full}-metrics.jsonl``.

--pairs [N]: the scaling from one GPU to two, in N rounds (default 5) that this one process starts one after
the other: one GPU, then two through torchrun, once under each ``train.ddp`` ("ddp", "flat"; which goes first
alternates by round). Each GPU does the one-GPU run's work per step (``train.grad_accum`` doubled for two).
Prints each pair's scaling (the two GPUs' tokens/s over the same round's one GPU, in the first phase) and the
median per ``train.ddp``; ``--out DIR`` keeps each run's bench.json and metrics in ``pair{I}-{one|ddp|flat}/``.
On a machine with fewer than 2 CUDA devices it refuses (exit 2).

--profile DIR: torch.profiler records ``--profile-steps`` optimizer steps of the first run after its first
``--profile-skip`` steps, in every process: ``trace-rank{R}.json.gz`` (chrome://tracing, Perfetto) and
``ops-rank{R}.txt`` (the operators by device time). ``benchmarks/trace_summary.py`` reads the traces: how
busy the GPU was in each step and how much of it was NCCL. The profiler slows the recorded steps a little.
"""

import time

STARTED = time.perf_counter()  # before the heavy imports: --full's time to target counts them

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from contextlib import contextmanager, nullcontext  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from minillm.core.device import resolve_device  # noqa: E402
from minillm.core.files import write_jsonl  # noqa: E402
from minillm.data.fetch import fetch_articles  # noqa: E402
from minillm.data.generate import generate_qa_pairs  # noqa: E402
from minillm.data.records import read_articles  # noqa: E402
from minillm.data.split import split_qa_pairs, write_split  # noqa: E402
from minillm.training.config import Config, load_config, shipped_config  # noqa: E402
from minillm.training.distributed import join_processes, world_size  # noqa: E402
from minillm.training.runs import load_run  # noqa: E402
from minillm.training.trainer import Trainer, train  # noqa: E402

# dense bf16 tensor-core peaks (no sparsity), by a part of torch.cuda.get_device_name(); first match wins
PEAK_FLOPS = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}
DDP_MODES = ("ddp", "flat")  # the values of train.ddp that --pairs compares


def make_data(out: Path, articles: int) -> dict[str, int]:
    report = fetch_articles("offline", out / "articles.jsonl", limit=articles, seed=0)
    pairs, _ = generate_qa_pairs(read_articles(out / "articles.jsonl"))
    write_jsonl(out / "qa_pairs.jsonl", pairs)
    write_split(split_qa_pairs(pairs), out / "splits")
    return {"articles": report.total, "qa_pairs": len(pairs)}


def data_overrides(out: Path) -> list[str]:
    return [f"data.articles={json.dumps(str(out / 'articles.jsonl'))}",
            f"data.train_qa={json.dumps(str(out / 'splits' / 'train.jsonl'))}",
            f"data.val_qa={json.dumps(str(out / 'splits' / 'val.jsonl'))}"]


def phase_overrides(phase: str, steps: int, window: int) -> list[str]:
    """``steps`` of ``phase`` only, a log line every ``window`` steps, one evaluation batch at the end."""
    other = "finetune" if phase == "pretrain" else "pretrain"
    return [f"train.{phase}_steps={steps}", f"train.{other}_steps=0", "train.eval_interval=0",
            "train.eval_batches=1", "train.checkpoint_interval=0", f"train.log_interval={window}"]


def flops_per_token(cfg: Config, run_dir: Path) -> float | None:
    """nanoGPT's estimate of a transformer's training flops per token; None for other rungs."""
    if cfg.arch != "transformer":
        return None
    model, _, _ = load_run(run_dir)
    pos_emb = getattr(model, "pos_emb", None)
    n = model.num_parameters() - (pos_emb.weight.numel() if pos_emb is not None else 0)
    m = cfg.model
    return 6 * n + 12 * m["num_layers"] * m["emb_dim"] * m["max_seq_len"]  # H * Q = emb_dim


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for part, peak in PEAK_FLOPS.items() if part in name), None)


def speed(events: list[dict], flops: float | None, peak: float | None, processes: int) -> dict:
    """Steady-state speed from the train log lines of one fresh run (each closes a window of steps)."""
    windows = [e for e in events if e["event"] == "train"]
    steady = windows[1:]
    ms = statistics.median(e["ms_per_step"] for e in steady)
    rate = statistics.median(e["tokens_per_s"] for e in steady)
    report = {"tokens_per_s": round(rate), "ms_per_step": round(ms, 3), "steady_windows": len(steady),
              "compile_s": round(max(0.0, windows[0]["ms_per_step"] - ms) * windows[0]["global_step"] / 1000, 2)}
    if flops is not None and peak is not None:
        report["mfu"] = round(flops * rate / (peak * processes), 4)
    return report


@contextmanager
def profiled(out: Path, rank: int, skip: int, steps: int, device: torch.device):
    """Record ``steps`` optimizer steps after the first ``skip`` of the train call run inside the block."""
    from torch.profiler import ProfilerActivity, profile, schedule

    cuda = device.type == "cuda"

    def save(prof) -> None:
        out.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(out / f"trace-rank{rank}.json.gz"))
        table = prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
                                          row_limit=50)
        (out / f"ops-rank{rank}.txt").write_text(table + "\n")

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    warmup = 2
    with profile(activities=activities, on_trace_ready=save,
                 schedule=schedule(skip_first=max(0, skip - warmup), wait=0, warmup=warmup, active=steps,
                                   repeat=1)) as prof:
        step = Trainer.train_step

        def step_and_mark(self, *args, **kwargs):  # the Trainer has no step hook: mark each step's end
            step(self, *args, **kwargs)
            prof.step()

        Trainer.train_step = step_and_mark
        try:
            yield
        finally:
            Trainer.train_step = step


def bench_run(cfg_path: Path, overrides: list[str], run_dir: Path, args, ranks, device, peak,
              profile: bool) -> tuple[dict, list]:
    """One ``train`` call on a fresh run directory (``profile``: recorded); its speed report and metrics."""
    cfg = load_config(cfg_path, overrides)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    called = time.perf_counter()
    recording = (profiled(args.profile, ranks.rank, args.profile_skip, args.profile_steps, device)
                 if profile else nullcontext())
    with recording:
        result = train(cfg, run_dir, device=str(device), progress=False)
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    report = speed(events, flops_per_token(cfg, run_dir), peak, ranks.world_size)
    report.update(tokens_per_step=result.tokens // result.steps, loss=round(result.final_losses["train"], 4),
                  other_s=round(result.seconds - result.tokens / result.tokens_per_s, 2))
    if device.type == "cuda":
        report["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    if args.full:
        evals = [(e["step"], e["val_text_loss"], called - STARTED + e["elapsed"])
                 for e in events if "val_text_loss" in e]
        best = min(evals, key=lambda e: e[1])
        hit = next((seconds for _, loss, seconds in evals if loss <= args.target_loss), None)
        report.update(target_loss=args.target_loss, seconds_to_target=None if hit is None else round(hit, 1),
                      best_val_loss=round(best[1], 4), best_step=best[0],
                      val_curve=[[step, round(loss, 4)] for step, loss, _ in evals],
                      total_s=round(time.perf_counter() - STARTED, 1))
    return report, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny-cpu", help="a shipped config name or a .toml file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (repeatable)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per phase (not with --full)")
    parser.add_argument("--window", type=int, default=10, help="steps per timed window (log line)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="default: the config's")
    parser.add_argument("--articles", type=int, default=2500, help="offline articles, for configs that use them")
    parser.add_argument("--full", action="store_true", help="train the whole config, evaluations included")
    parser.add_argument("--target-loss", type=float, default=1.47, help="with --full: val_text_loss to reach")
    parser.add_argument("--out", type=Path, help="a directory for bench.json and the metrics")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="a new directory for profiler traces")
    parser.add_argument("--profile-skip", type=int, default=100, help="steps before the recorded ones")
    parser.add_argument("--profile-steps", type=int, default=6, help="optimizer steps to record")
    parser.add_argument("--pairs", type=int, nargs="?", const=5, metavar="N",
                        help="N rounds (default 5): one GPU, then two under each train.ddp; needs 2 CUDA devices")
    args = parser.parse_args()
    if not args.full and args.steps < 2 * args.window:
        parser.error("--steps must be at least 2 * --window: the first window is warm-up")
    if args.profile and args.profile.exists():
        parser.error(f"--profile {args.profile}: already exists")
    if args.profile_skip < 0 or args.profile_steps < 1:
        parser.error("--profile-skip must be at least 0 and --profile-steps at least 1")
    cfg_path = shipped_config(args.config)
    overrides = list(args.set) + ([f"train.compile={str(args.compile).lower()}"] if args.compile is not None else [])
    if args.pairs is not None:
        if args.pairs < 1 or args.full or args.profile or args.device not in ("auto", "cuda") or world_size() > 1:
            parser.error("--pairs needs N >= 1, runs on cuda in one process (it starts torchrun itself), and "
                         "takes neither --full nor --profile")
        if torch.cuda.device_count() < 2:
            print(f"bench_train.py --pairs: needs 2 CUDA devices (one GPU, then two), this machine has "
                  f"{torch.cuda.device_count()}", file=sys.stderr)
            sys.exit(2)
        report = run_pairs(args, load_config(cfg_path, overrides).train.grad_accum)
        print(json.dumps(report, indent=2))
        if args.out:
            (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
        return
    ranks, device = join_processes(resolve_device(args.device))
    tmp = [tempfile.mkdtemp(prefix="minillm-bench-train-") if ranks.main else None]
    if ranks.world_size > 1:
        dist.broadcast_object_list(tmp)  # every process trains into rank 0's directory
    try:
        report = run_benchmarks(args, cfg_path, overrides, Path(tmp[0]), ranks, device)
    finally:
        ranks.barrier()
        if ranks.main:
            shutil.rmtree(tmp[0])
    if ranks.main:
        print(json.dumps(report, indent=2))
        if args.out:
            (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    if ranks.owns_group:
        dist.destroy_process_group()


def run_benchmarks(args, cfg_path: Path, overrides: list[str], out: Path, ranks, device: torch.device) -> dict:
    cfg = load_config(cfg_path, overrides)
    report = {"config": args.config, "device": str(device), "processes": ranks.world_size,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "compile": cfg.train.compile, "compile_mode": cfg.train.compile_mode,
              "batch_size": cfg.train.batch_size, "grad_accum": cfg.train.grad_accum,
              "max_seq_len": cfg.model["max_seq_len"]}
    if not cfg.data.text or cfg.train.finetune_steps:  # the config reads articles or QA pairs
        with ranks.main_first():
            if ranks.main:
                report.update(make_data(out, args.articles))
        overrides = overrides + data_overrides(out)
    peak = peak_flops(device)
    runs = {"full": []} if args.full else {p: phase_overrides(p, args.steps, args.window)
                                           for p in ("pretrain", "finetune") if getattr(cfg.train, f"{p}_steps")}
    for i, (name, extra) in enumerate(runs.items()):
        report[name], events = bench_run(cfg_path, overrides + extra, out / name, args, ranks, device, peak,
                                         profile=args.profile is not None and i == 0)
        if ranks.main and args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            write_jsonl(args.out / f"{name}-metrics.jsonl", events)
    report["parameters"] = load_run(out / next(iter(runs)))[0].num_parameters()
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return report


def pair_commands(args, grad_accum: int) -> dict[str, list[str]]:
    """The runs of a --pairs round, each this script in new processes: "one" GPU, and two under each train.ddp
    with ``grad_accum`` doubled, so that each GPU does the one GPU's micro-batches per step."""
    script = [str(Path(__file__).resolve()), "--config", args.config, "--device", "cuda", "--steps", str(args.steps),
              "--window", str(args.window), "--articles", str(args.articles), *(f"--set={item}" for item in args.set)]
    if args.compile is not None:
        script.append("--compile" if args.compile else "--no-compile")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *script,
                f"--set=train.grad_accum={2 * grad_accum}"]
    return {"one": [sys.executable, *script], **{mode: [*torchrun, f"--set=train.ddp={mode}"] for mode in DDP_MODES}}


def run_pairs(args, grad_accum: int) -> dict:
    """--pairs: ``args.pairs`` rounds of one GPU, then two under each train.ddp (alternating which goes first)."""
    commands = pair_commands(args, grad_accum)
    out = args.out or Path(tempfile.mkdtemp(prefix="minillm-bench-pairs-"))
    rounds = []
    try:
        for i in range(args.pairs):
            reports = {}
            for name in ("one", *(DDP_MODES if i % 2 == 0 else DDP_MODES[::-1])):
                run_out = out / f"pair{i + 1}-{name}"
                done = subprocess.run([*commands[name], "--out", str(run_out)], stdout=subprocess.DEVNULL)
                if done.returncode:
                    raise SystemExit(f"bench_train.py --pairs: round {i + 1}, the {name} run failed "
                                     f"(exit {done.returncode}); its errors are above")
                reports[name] = json.loads((run_out / "bench.json").read_text())
            rounds.append(reports)
    finally:
        if args.out is None:
            shutil.rmtree(out)
    one = rounds[0]["one"]
    return {**{key: one[key] for key in ("config", "gpu", "torch", "compile", "compile_mode", "batch_size",
                                         "grad_accum", "max_seq_len")},
            "steps": args.steps, "window": args.window, "set": args.set, **pair_scaling(rounds)}


def pair_scaling(rounds: list[dict[str, dict]]) -> dict:
    """Each round's speeds in its order, the two-GPU runs' scaling over its one-GPU run, and per train.ddp the
    scaling of every pair and its median. Speeds are of the first phase the config trains."""
    phase = next(p for p in ("pretrain", "finetune") if p in rounds[0]["one"])
    pairs = []
    for reports in rounds:
        one = reports["one"][phase]["tokens_per_s"]
        pair = {"order": list(reports)}
        for name, report in reports.items():
            pair[name] = {"tokens_per_s": report[phase]["tokens_per_s"], "ms_per_step": report[phase]["ms_per_step"]}
            if name != "one":
                pair[name]["scaling"] = round(report[phase]["tokens_per_s"] / one, 3)
        pairs.append(pair)
    scaling = {mode: [pair[mode]["scaling"] for pair in pairs] for mode in DDP_MODES}
    return {"phase": phase, "pairs": pairs,
            "scaling": {mode: {"per_pair": values, "median": round(statistics.median(values), 3)}
                        for mode, values in scaling.items()}}


if __name__ == "__main__":
    main()
