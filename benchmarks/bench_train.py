"""Time the Trainer; print JSON: tokens/s, ms per step, MFU, peak memory, compile time, and with --full the
wall time to a target validation loss.

    python benchmarks/bench_train.py --config tiny-cpu|seed-3m [--steps 30] [--device cpu] [--articles 2500]
    python benchmarks/bench_train.py --config shakespeare-char --device cuda [--steps 300] [--no-compile]
    python benchmarks/bench_train.py --config shakespeare-char --device cuda --full [--target-loss 1.47] --out DIR
    torchrun --standalone --nproc_per_node 2 benchmarks/bench_train.py --config shakespeare-char --full ...
    python benchmarks/bench_train.py --config shakespeare-char --steps 300 --window 20 --pairs [5] --out DIR
    python benchmarks/bench_train.py --vs-nanogpt [CONFIG ...] [--seeds 3] [--stop-step 3000] --out DIR

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

--stop-step N: with --full, stop after step N of the config's schedule (the learning rate follows the whole
schedule as far as step N, as ``train(max_steps=N)``); with --vs-nanogpt, nanoGPT too (``--max_iters=N``, its
``lr_decay_iters`` unchanged).

--vs-nanogpt [CONFIG ...]: nanoGPT beside minillm, on this machine, one after the other (never at once). Each
of ``--seeds`` rounds (default 3) runs nanoGPT's own unmodified train.py with its GPU recipe
(``config/train_shakespeare_char.py``) through ``../shared/anchors/run-nanogpt``, then each CONFIG (default
shakespeare-char and shakespeare-char-fast) as this script's ``--full`` run in a new process, with an empty
token cache (the tokenizer is trained and the text encoded again, as run-nanogpt prepares its data each time).
Round k seeds minillm with the config's ``train.seed`` + k, and nanoGPT with its ``torch.manual_seed(1337)``
+ k (round 0 runs it untouched; later rounds through a small wrapper that adds k to that one call, since
nanoGPT has no seed option). The torch.compile cache is the machine's usual one, so a fresh machine's first
round compiles from a cold cache and later rounds reuse it: each run records its ``round``.
Times run from the moment this script starts the process (for nanoGPT, run-nanogpt's data preparation
included) to the first evaluation whose validation loss is <= ``--target-loss`` (1.47): nanoGPT's is when its
``step N: train loss X, val loss Y`` line is printed, minillm's the child's own ``seconds_to_target`` plus the
child's start-up delay. Tokens/s: nanoGPT's, tokens per iteration over the median of its per-iteration times
from iteration 300 on, those of evaluation steps left out (its timer spans the evaluation); minillm's as
--full reports it (the median of its log windows after the first, evaluations left out). Validation losses
are not computed alike (nanoGPT: 200 random batches at each evaluation; minillm: ``eval_batches`` fixed
batches), and a run evaluated more often has more chances at a low best. Prints JSON: every run, each side's
mean and spread of the best validation loss, and per CONFIG the ratios (tokens/s over nanoGPT's, time to
target over nanoGPT's, medians over the rounds and the first round alone) and whether the goals of issue 29
hold (tokens/s >= 1.8x, time <= 0.4x, mean best val <= nanoGPT's). ``--out DIR`` keeps bench.json, nanoGPT's
logs, each minillm run's bench.json and metrics, and runs-so-far.json (the runs done so far, rewritten after
each: what a run killed half-way leaves). Without ``../shared/anchors`` (or its data) it says so and exits 2.

--profile DIR: torch.profiler records ``--profile-steps`` optimizer steps of the first run after its first
``--profile-skip`` steps, in every process: ``trace-rank{R}.json.gz`` (chrome://tracing, Perfetto) and
``ops-rank{R}.txt`` (the operators by device time). ``benchmarks/trace_summary.py`` reads the traces: how
busy the GPU was in each step and how much of it was NCCL. The profiler slows the recorded steps a little.
"""

import time

STARTED = time.perf_counter()  # before the heavy imports: --full's time to target counts them
STARTED_UNIX = time.time()  # the same moment on the wall clock: --vs-nanogpt adds the delay before it

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
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
from minillm.core.errors import InputError  # noqa: E402
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

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # the workspace's anchors and data, beside the clone; absent in a user's
VS_CONFIGS = ("shakespeare-char", "shakespeare-char-fast")  # --vs-nanogpt's minillm runs by default
NANOGPT_RECIPE = "config/train_shakespeare_char.py"  # nanoGPT's GPU recipe, as it is
NANOGPT_SEED = 1337  # train.py's torch.manual_seed(1337 + seed_offset)
NANOGPT_STEADY_FROM = 300  # nanoGPT iterations before this (compilation, warm-up) are left out of its median
NANOGPT_EVAL = re.compile(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
NANOGPT_ITER = re.compile(r"iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
NANOGPT_TOKENS = re.compile(r"tokens per iteration will be: ([\d,]+)")
GOALS = {"tokens_per_s_ratio": 1.8, "seconds_to_target_ratio": 0.4}  # issue 29: at least, at most


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
        result = train(cfg, run_dir, device=str(device), progress=False, max_steps=args.stop_step)
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
                      total_s=round(time.perf_counter() - STARTED, 1), started_unix=STARTED_UNIX)
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
    parser.add_argument("--stop-step", type=int, metavar="N",
                        help="with --full or --vs-nanogpt: stop after step N of the schedule")
    parser.add_argument("--vs-nanogpt", nargs="*", metavar="CONFIG",
                        help="nanoGPT, then each CONFIG (default: shakespeare-char shakespeare-char-fast), "
                             "--seeds rounds; needs ../shared/anchors")
    parser.add_argument("--seeds", type=int, default=3, help="with --vs-nanogpt: rounds, one seed each")
    args = parser.parse_args()
    if args.vs_nanogpt is not None:
        sys.exit(vs_nanogpt_main(parser, args))
    if args.stop_step is not None and (not args.full or args.stop_step < 1):
        parser.error("--stop-step N needs --full (or --vs-nanogpt) and N >= 1")
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


# --- --vs-nanogpt: nanoGPT beside minillm on this machine ---------------------------------------------------


def vs_nanogpt_main(parser: argparse.ArgumentParser, args) -> int:
    """--vs-nanogpt: check the arguments and the anchors, run the rounds, print (and write) the report."""
    if args.full or args.pairs is not None or args.profile or world_size() > 1:
        parser.error("--vs-nanogpt starts its own runs: it takes neither --full, --pairs, --profile nor torchrun")
    if args.seeds < 1 or (args.stop_step is not None and args.stop_step < 1):
        parser.error("--vs-nanogpt needs --seeds >= 1 and --stop-step >= 1")
    configs = list(args.vs_nanogpt) or list(VS_CONFIGS)
    for config in configs:  # an unknown config or a bad --set fails here, before any run
        try:
            load_config(shipped_config(config), list(args.set))
        except InputError as e:
            parser.error(str(e))
    missing = [p for p in (SHARED / "anchors" / "run-nanogpt", SHARED / "anchors" / "nanoGPT" / NANOGPT_RECIPE,
                           SHARED / "data" / "tinyshakespeare" / "input.txt") if not p.is_file()]
    if missing:
        print(f"bench_train.py --vs-nanogpt: {missing[0]} is absent: no nanoGPT to compare against (it needs "
              f"the workspace's ../shared/anchors and ../shared/data beside the repository)", file=sys.stderr)
        return 2
    report = run_vs_nanogpt(args, configs)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


def nanogpt_command(device: str, stop_step: int | None, out_dir: Path) -> list[str]:
    """run-nanogpt with nanoGPT's GPU recipe as it is; on a CPU without torch.compile; ``stop_step``: its
    ``max_iters`` (``lr_decay_iters`` stays the recipe's, so the schedule is unchanged up to there)."""
    command = [str(SHARED / "anchors" / "run-nanogpt"), NANOGPT_RECIPE, f"--device={device}"]
    if device == "cpu":
        command.append("--compile=False")
    if stop_step is not None:
        command.append(f"--max_iters={stop_step}")
    return command + [f"--out_dir={out_dir}"]


SEEDED_PYTHON = """#!/bin/sh
# nanoGPT's train.py seeds torch once, torch.manual_seed(1337 + seed_offset), and has no seed option: this runs
# it unchanged with {offset} added to the seed of that first call (run-nanogpt's data preparation runs as it is)
[ "$1" = train.py ] || exec {python} "$@"
exec {python} -c 'import runpy, sys, torch
seed, calls = torch.manual_seed, []
def manual_seed(value):
    calls.append(value)
    return seed(value + {offset} if len(calls) == 1 else value)
torch.manual_seed = manual_seed
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$@"
"""


def seeded_python(work: Path, offset: int) -> str:
    """The PYTHON that run-nanogpt runs train.py with: this interpreter, its first torch seed + ``offset``."""
    if offset == 0:
        return sys.executable
    path = work / f"python-seed+{offset}"
    path.write_text(SEEDED_PYTHON.format(python=sys.executable, offset=offset))
    path.chmod(0o755)
    return str(path)


def parse_nanogpt(lines: list[tuple[float, str]], target: float) -> dict:
    """nanoGPT's log, each line with the seconds since its process started: evaluations, speed, the target."""
    evals, iters, tokens = [], [], None
    for seconds, line in lines:
        if m := NANOGPT_EVAL.match(line):
            evals.append((int(m[1]), float(m[3]), round(seconds, 2)))
        elif m := NANOGPT_ITER.match(line):
            iters.append((int(m[1]), float(m[3])))
        elif m := NANOGPT_TOKENS.search(line):
            tokens = int(m[1].replace(",", ""))
    if not evals:
        raise RuntimeError("nanoGPT printed no evaluation")
    eval_steps = {step for step, _, _ in evals}
    steady = [ms for step, ms in iters if step >= NANOGPT_STEADY_FROM and step not in eval_steps]
    best = min(evals, key=lambda e: e[1])
    ms = statistics.median(steady) if steady else None
    return {"tokens_per_iter": tokens, "ms_per_iter": None if ms is None else round(ms, 3),
            "steady_iters": len(steady),
            "tokens_per_s": None if ms is None or tokens is None else round(tokens / ms * 1000),
            "seconds_to_target": next((s for _, loss, s in evals if loss <= target), None),
            "best_val_loss": best[1], "best_step": best[0], "last_step": evals[-1][0],
            "val_curve": [list(e) for e in evals]}


def run_nanogpt(work: Path, offset: int, args, device: str, log: Path) -> dict:
    """One nanoGPT run; every line of its output timed as it is read, from the moment it is started."""
    command = nanogpt_command(device, args.stop_step, work / f"nanogpt-out-{offset}")
    env = {**os.environ, "PYTHON": seeded_python(work, offset), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=REPO)
    lines = [(time.perf_counter() - started, line) for line in proc.stdout]
    rc, total = proc.wait(), time.perf_counter() - started
    log.write_text("".join(line for _, line in lines))
    if rc:
        raise RuntimeError(f"nanoGPT failed (exit {rc}); its log: {log}\n"
                           + "".join(line for _, line in lines[-20:]))
    report = {"torch_seed": NANOGPT_SEED + offset,
              "command": ["run-nanogpt", *command[1:-1], "--out_dir=TMP"], **parse_nanogpt(lines, args.target_loss),
              "total_s": round(total, 1)}
    return report


def minillm_command(args, config: str, seed: int, run_out: Path) -> list[str]:
    """This script's --full run of ``config`` with ``train.seed`` = ``seed``, in a process of its own."""
    command = [sys.executable, str(Path(__file__).resolve()), "--full", "--config", config, "--device", args.device,
               "--target-loss", str(args.target_loss), *(f"--set={item}" for item in args.set),
               f"--set=train.seed={seed}", "--out", str(run_out)]
    if args.compile is not None:
        command.append("--compile" if args.compile else "--no-compile")
    if args.stop_step is not None:
        command += ["--stop-step", str(args.stop_step)]
    return command


def run_minillm(work: Path, args, config: str, seed: int, run_out: Path) -> dict:
    command = minillm_command(args, config, seed, run_out)
    env = {**os.environ, "MINILLM_CACHE": str(work / f"cache-{run_out.name}")}  # a new, empty token cache
    spawned = time.time()
    with open(run_out.parent / f"{run_out.name}.log", "w") as log:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"minillm {config} failed (exit {done.returncode}); its errors: {log.name}:\n"
                           + "\n".join(Path(log.name).read_text(errors="replace").splitlines()[-20:]))
    child = json.loads((run_out / "bench.json").read_text())
    full = child["full"]
    delay = max(0.0, full.pop("started_unix") - spawned)  # the interpreter's start, before the child's clock
    hit = full["seconds_to_target"]
    return {"config": config, "seed": seed, "compile": child["compile"], "compile_mode": child["compile_mode"],
            "batch_size": child["batch_size"], "tokens_per_s": full["tokens_per_s"], "ms_per_step": full["ms_per_step"],
            "compile_s": full["compile_s"], "seconds_to_target": None if hit is None else round(hit + delay, 1),
            "start_delay_s": round(delay, 2), "best_val_loss": full["best_val_loss"], "best_step": full["best_step"],
            "last_step": full["val_curve"][-1][0] if full["val_curve"] else None, "val_curve": full["val_curve"],
            "total_s": round(full["total_s"] + delay, 1), "peak_memory_mb": full.get("peak_memory_mb")}


def spread(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 4), "min": min(values), "max": max(values),
            "stdev": round(statistics.stdev(values), 4) if len(values) > 1 else None, "n": len(values)}


def side_summary(runs: list[dict]) -> dict:
    """One side's runs over the rounds: best val loss (mean, spread), time to target and tokens/s."""
    hits = [r["seconds_to_target"] for r in runs]
    rates = [r["tokens_per_s"] for r in runs if r["tokens_per_s"]]
    return {"best_val_loss": spread([r["best_val_loss"] for r in runs]),
            "seconds_to_target": {"per_round": hits, "reached": sum(h is not None for h in hits),
                                  "median": statistics.median(hits) if None not in hits else None},
            "tokens_per_s": {"per_round": [r["tokens_per_s"] for r in runs],
                             "median": round(statistics.median(rates)) if rates else None}}


def ratio(a, b) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def vs_summary(nanogpt: list[dict], minillm: dict[str, list[dict]]) -> dict:
    """Each side's summary, and per minillm config its ratios to nanoGPT's and the goals of issue 29."""
    ours = side_summary(nanogpt)
    report = {"nanogpt": ours, "configs": {}}
    for config, runs in minillm.items():
        theirs = side_summary(runs)
        ratios = {"tokens_per_s": ratio(theirs["tokens_per_s"]["median"], ours["tokens_per_s"]["median"]),
                  "tokens_per_s_first_round": ratio(runs[0]["tokens_per_s"], nanogpt[0]["tokens_per_s"]),
                  "seconds_to_target": ratio(theirs["seconds_to_target"]["median"],
                                             ours["seconds_to_target"]["median"]),
                  "seconds_to_target_first_round": ratio(runs[0]["seconds_to_target"],
                                                         nanogpt[0]["seconds_to_target"]),
                  # round by round (None where either side missed the target): the median is None as soon
                  # as one round missed, and the rounds differ (round 0 compiles from a cold cache)
                  "seconds_to_target_per_round": [ratio(a["seconds_to_target"], b["seconds_to_target"])
                                                  for a, b in zip(runs, nanogpt, strict=True)],
                  "best_val_loss_mean_minus_nanogpt": round(theirs["best_val_loss"]["mean"]
                                                            - ours["best_val_loss"]["mean"], 4)}
        goals = {"tokens_per_s_ratio >= 1.8": ratios["tokens_per_s"] is not None
                 and ratios["tokens_per_s"] >= GOALS["tokens_per_s_ratio"],
                 "seconds_to_target_ratio <= 0.4": ratios["seconds_to_target"] is not None
                 and ratios["seconds_to_target"] <= GOALS["seconds_to_target_ratio"],
                 "mean_best_val_loss <= nanogpt": ratios["best_val_loss_mean_minus_nanogpt"] <= 0}
        report["configs"][config] = {**theirs, "ratios": ratios, "goals": goals}
    return report


def run_vs_nanogpt(args, configs: list[str]) -> dict:
    """--seeds rounds of nanoGPT, then each config; the runs and their summary (vs_summary)."""
    device = resolve_device(args.device)
    out = args.out or Path(tempfile.mkdtemp(prefix="minillm-bench-vs-nanogpt-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="minillm-vs-nanogpt-work-"))
    base_seeds = {c: load_config(shipped_config(c), list(args.set)).train.seed for c in configs}
    nanogpt, minillm = [], {c: [] for c in configs}

    def so_far() -> None:
        (out / "runs-so-far.json").write_text(json.dumps({"nanogpt": nanogpt, **minillm}, indent=2) + "\n")

    try:
        for k in range(args.seeds):
            print(f"round {k + 1}/{args.seeds}: nanoGPT (torch seed {NANOGPT_SEED + k})", file=sys.stderr, flush=True)
            nanogpt.append({"round": k, **run_nanogpt(work, k, args, device.type, out / f"nanogpt-seed{k}.log")})
            so_far()
            for config in configs:
                seed = base_seeds[config] + k
                print(f"round {k + 1}/{args.seeds}: minillm {config} (train.seed {seed})", file=sys.stderr, flush=True)
                run_out = out / f"minillm-{Path(config).stem}-seed{k}"
                minillm[config].append({"round": k, **run_minillm(work, args, config, seed, run_out)})
                so_far()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    return {"benchmark": "vs_nanogpt", "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch": torch.__version__, "device": device.type, "seeds": args.seeds, "stop_step": args.stop_step,
            "target_loss": args.target_loss, "set": args.set, "configs": configs,
            "runs": {"nanogpt": nanogpt, **minillm}, "summary": vs_summary(nanogpt, minillm)}


if __name__ == "__main__":
    main()
