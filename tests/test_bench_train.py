"""benchmarks/bench_train.py --profile and --pairs, and benchmarks/trace_summary.py, which reads the traces."""

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import shakespeare_slice

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import bench_train  # noqa: E402
import trace_summary  # noqa: E402


def event(name, cat, ts, dur, tid=1):
    return {"ph": "X", "name": name, "cat": cat, "ts": ts, "dur": dur, "pid": 7, "tid": tid}


def test_trace_summary_measures_busy_idle_and_nccl_time_per_step(tmp_path):
    events = [
        event("ProfilerStep#1", "user_annotation", 0, 100), event("ProfilerStep#2", "user_annotation", 100, 100),
        event("ProfilerStep#1", "gpu_user_annotation", 0, 100, tid=99),  # the GPU track's copy: not a step
        event("gemm", "kernel", 10, 30, tid=99), event("ncclDevKernel_AllReduce", "kernel", 30, 30, tid=99),
        event("gemm", "kernel", 100, 50, tid=99), event("Memcpy HtoD", "gpu_memcpy", 160, 10, tid=99),
        event("aten::mm", "cpu_op", 5, 20), event("aten::inner", "cpu_op", 10, 5),  # nested: not outermost
        event("Optimizer.step", "user_annotation", 120, 30),
        event("evaluate_function: MmBackward0", "cpu_op", 40, 50, tid=2),  # the autograd thread
        event("aten::tiny", "cpu_op", 40, 1, tid=3),  # under 5% of the steps: left out
    ]
    path = tmp_path / "trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    summary = trace_summary.summarise(trace_summary.load(path))
    # device time 10..170 = 160 us over 2 steps; busy [10, 60) + [100, 150) + [160, 170) = 110 us
    assert summary["steps"] == 2 and summary["step_ms"] == [0.1, 0.1]
    assert (summary["gpu_span_ms"], summary["gpu_busy_ms"], summary["gpu_idle_ms"]) == (0.08, 0.055, 0.025)
    assert (summary["nccl_ms"], summary["nccl_alone_ms"]) == (0.015, 0.01)  # 10 of its 30 us overlap the gemm
    assert summary["kernels_per_step"] == 1.5 and summary["top_kernels"][0] == ["gemm", 0.04]
    assert summary["host_top_ms"] == [["Optimizer.step", 0.015], ["aten::mm", 0.01]]
    assert summary["host_python_ms"] == 0.075  # 200 us of steps, 50 of them in outermost events
    assert summary["other_threads_top_ms"] == {"2": [["evaluate_function: MmBackward0", 0.025]]}


def test_trace_summary_without_steps_says_how_to_record_them():
    assert "bench_train.py --profile" in trace_summary.summarise([event("gemm", "kernel", 0, 5)])["error"]


def bench(tmp_path, *extra):
    text = shakespeare_slice(tmp_path)
    command = [sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--config", "shakespeare-char",
               "--device", "cpu", "--no-compile", "--steps", "4", "--window", "2", "--set", f"data.text={text}",
               "--set", "model.num_layers=1", "--set", "model.emb_dim=32", "--set", "model.num_heads=2",
               "--set", "model.ffn_dim=64", "--set", "model.max_seq_len=16", "--set", "train.batch_size=2", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "MINILLM_CACHE": str(tmp_path / "cache"),
                               "OMP_NUM_THREADS": "1"})


def test_bench_train_profile_records_the_asked_steps(tmp_path):
    done = bench(tmp_path, "--profile", str(tmp_path / "prof"), "--profile-skip", "1", "--profile-steps", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["pretrain"]["tokens_per_step"] == 2 * 16 and report["compile"] is False  # --no-compile
    assert "Name" in (tmp_path / "prof" / "ops-rank0.txt").read_text()
    summary = trace_summary.summarise(trace_summary.load(tmp_path / "prof" / "trace-rank0.json.gz"))
    assert summary["steps"] == 2 and summary["gpu_span_ms"] is None  # a CPU run: host figures alone
    assert any(name.startswith("Optimizer.step") for name, _ in summary["host_top_ms"])


def test_bench_train_refuses_an_existing_profile_directory(tmp_path):
    (tmp_path / "prof").mkdir()
    done = bench(tmp_path, "--profile", str(tmp_path / "prof"))
    assert done.returncode == 2 and "--profile" in done.stderr and "already exists" in done.stderr
    assert not list((tmp_path / "prof").iterdir())


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine could run the pairs")
def test_bench_train_pairs_refuses_without_two_gpus(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--config", "shakespeare-char",
                           "--pairs"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "MINILLM_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("bench_train.py --pairs: needs 2 CUDA devices (one GPU, then two), this machine "
                                   f"has {torch.cuda.device_count()}")
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_bench_train_pairs_runs_one_gpu_then_two_under_each_ddp():
    args = argparse.Namespace(config="shakespeare-char", steps=300, window=20, articles=2500, compile=None,
                              set=["train.compile_mode=reduce-overhead"])
    commands = bench_train.pair_commands(args, grad_accum=1)
    assert list(commands) == ["one", "ddp", "flat"]
    assert commands["one"][:2] == [sys.executable, str(REPO / "benchmarks" / "bench_train.py")]
    assert "--set=train.compile_mode=reduce-overhead" in commands["one"] and "--device" in commands["one"]
    assert not any("torch.distributed.run" in part or "train.ddp" in part or "grad_accum" in part
                   for part in commands["one"])
    for mode in ("ddp", "flat"):  # each GPU does one GPU's micro-batches: grad_accum counts both
        assert commands[mode][:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node", "2"]
        assert commands[mode][6:] == commands["one"][1:] + ["--set=train.grad_accum=2", f"--set=train.ddp={mode}"]


def test_bench_train_pairs_reports_each_pairs_scaling_and_the_median():
    def run(tokens_per_s):
        return {"pretrain": {"tokens_per_s": tokens_per_s, "ms_per_step": 16384 / tokens_per_s * 1000}}

    rounds = [{"one": run(100), "ddp": run(150), "flat": run(190)},
              {"one": run(200), "flat": run(360), "ddp": run(300)},
              {"one": run(100), "ddp": run(170), "flat": run(180)}]
    report = bench_train.pair_scaling(rounds)
    assert report["phase"] == "pretrain" and report["pairs"][1]["order"] == ["one", "flat", "ddp"]
    assert report["pairs"][0]["flat"] == {"tokens_per_s": 190, "ms_per_step": 16384 / 190 * 1000, "scaling": 1.9}
    assert "scaling" not in report["pairs"][0]["one"]
    assert report["scaling"] == {"ddp": {"per_pair": [1.5, 1.5, 1.7], "median": 1.5},
                                 "flat": {"per_pair": [1.9, 1.8, 1.8], "median": 1.8}}


# --- --vs-nanogpt ------------------------------------------------------------------------------------------


def script_copy(tmp_path) -> Path:
    """bench_train.py copied to tmp_path/repo/benchmarks, so that its ../shared is tmp_path/shared."""
    copy = tmp_path / "repo" / "benchmarks" / "bench_train.py"
    copy.parent.mkdir(parents=True)
    copy.write_text((REPO / "benchmarks" / "bench_train.py").read_text())
    return copy


def run_copy(copy, *args, timeout=120):
    return subprocess.run([sys.executable, str(copy), *args], capture_output=True, text=True, cwd=copy.parents[1],
                          timeout=timeout, env={**os.environ, "MINILLM_CACHE": str(copy.parents[2] / "cache"),
                                                "OMP_NUM_THREADS": "1"})


def test_vs_nanogpt_without_the_anchors_says_so_and_exits_2(tmp_path):
    done = run_copy(script_copy(tmp_path), "--vs-nanogpt")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("bench_train.py --vs-nanogpt: ")
    assert f"{tmp_path / 'shared' / 'anchors' / 'run-nanogpt'} is absent" in done.stderr
    assert "../shared/anchors" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # refused before any work


@pytest.mark.parametrize("args, message", [
    (["--vs-nanogpt", "--full"], "--vs-nanogpt starts its own runs"),
    (["--vs-nanogpt", "--pairs", "2"], "--vs-nanogpt starts its own runs"),
    (["--vs-nanogpt", "--seeds", "0"], "--seeds >= 1"),
    (["--vs-nanogpt", "--stop-step", "0"], "--stop-step >= 1"),
    (["--vs-nanogpt", "no-such-config"], "config 'no-such-config': no such shipped config"),
    (["--vs-nanogpt", "--set", "train.compile_mode=fast"], "train.compile_mode: must be one of"),
    (["--config", "shakespeare-char", "--stop-step", "10"], "--stop-step N needs --full"),
])
def test_vs_nanogpt_and_stop_step_refuse_bad_arguments(tmp_path, args, message):
    done = run_copy(script_copy(tmp_path), *args)
    assert done.returncode == 2 and done.stdout == "" and message in done.stderr, done.stderr


FAKE_NANOGPT = """#!/usr/bin/env bash
# stands in for run-nanogpt: records how it was called, prints a nanoGPT log (val loss 1.5, then 1.46)
echo "$PYTHON $*" >> "$(dirname "$0")/calls.txt"
echo "tokens per iteration will be: 16,384"
echo "step 0: train loss 4.2000, val loss 4.2000"
for i in 290 300 310 320; do echo "iter $i: loss 2.0000, time 10.00ms, mfu 5.00%"; done
echo "step 330: train loss 1.4000, val loss 1.5000"
echo "iter 330: loss 1.9000, time 900.00ms, mfu 5.00%"
echo "iter 340: loss 1.9000, time 12.00ms, mfu 5.00%"
echo "step 350: train loss 1.3000, val loss 1.4600"
"""


def test_vs_nanogpt_runs_nanogpt_then_each_config_per_seed(tmp_path):
    """The whole flag on a CPU, with a stand-in for run-nanogpt and a tiny minillm: the rounds, the seeds, the
    stop step, the report's ratios."""
    text = shakespeare_slice(tmp_path)  # skips where ../shared is absent
    copy = script_copy(tmp_path)
    anchors = tmp_path / "shared" / "anchors"
    (anchors / "nanoGPT" / "config").mkdir(parents=True)
    (anchors / "nanoGPT" / "config" / "train_shakespeare_char.py").write_text("")
    (anchors / "run-nanogpt").write_text(FAKE_NANOGPT)
    (anchors / "run-nanogpt").chmod(0o755)
    (tmp_path / "shared" / "data" / "tinyshakespeare").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "tinyshakespeare" / "input.txt").write_text(text.read_text())
    tiny = ["model.num_layers=1", "model.emb_dim=32", "model.num_heads=2", "model.ffn_dim=64", "model.max_seq_len=16",
            "train.batch_size=2", "train.eval_interval=2", "train.eval_batches=1", "train.log_interval=1",
            f"data.text={text}"]
    done = run_copy(copy, "--vs-nanogpt", "shakespeare-char", "--seeds", "2", "--stop-step", "4", "--device", "cpu",
                    "--no-compile", "--target-loss", "20", "--out", str(tmp_path / "out"),
                    *(a for item in tiny for a in ("--set", item)), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert json.loads((tmp_path / "out" / "bench.json").read_text()) == report
    assert report["benchmark"] == "vs_nanogpt" and report["configs"] == ["shakespeare-char"]
    assert report["seeds"] == 2 and report["stop_step"] == 4 and report["device"] == "cpu"

    calls = (anchors / "calls.txt").read_text().splitlines()
    assert len(calls) == 2 and calls[0].startswith(f"{sys.executable} config/train_shakespeare_char.py "
                                                   "--device=cpu --compile=False --max_iters=4 --out_dir=")
    assert calls[1].split()[0].endswith("python-seed+1")  # round 1: the wrapper that adds 1 to its seed
    nanogpt = report["runs"]["nanogpt"]
    assert [r["torch_seed"] for r in nanogpt] == [1337, 1338] and [r["round"] for r in nanogpt] == [0, 1]
    first = nanogpt[0]
    assert first["val_curve"][1][:2] == [330, 1.5] and first["best_val_loss"] == 1.46 and first["best_step"] == 350
    # iterations from 300 on, the one at an evaluation step (330, 900 ms) left out: 10, 10, 10, 12 ms
    assert (first["ms_per_iter"], first["steady_iters"], first["tokens_per_s"]) == (10.0, 4, 1638400)
    assert first["seconds_to_target"] == first["val_curve"][0][2]  # the target 20: the first evaluation
    assert (tmp_path / "out" / "nanogpt-seed1.log").read_text().startswith("tokens per iteration")

    runs = report["runs"]["shakespeare-char"]
    assert [r["seed"] for r in runs] == [1337, 1338] and [r["round"] for r in runs] == [0, 1]
    for run in runs:
        assert run["last_step"] == 4 and [step for step, _ in run["val_curve"]] == [2, 4]  # stopped at 4
        assert run["compile"] is False and run["seconds_to_target"] > 0 and run["start_delay_s"] >= 0
        assert run["best_val_loss"] == min(loss for _, loss in run["val_curve"])
    assert (tmp_path / "out" / "minillm-shakespeare-char-seed1" / "full-metrics.jsonl").is_file()
    so_far = json.loads((tmp_path / "out" / "runs-so-far.json").read_text())
    assert so_far == report["runs"]

    summary = report["summary"]["configs"]["shakespeare-char"]
    assert summary["ratios"]["tokens_per_s"] == round(
        statistics.median(r["tokens_per_s"] for r in runs) / 1638400, 3)
    assert summary["best_val_loss"]["n"] == 2 and summary["seconds_to_target"]["reached"] == 2
    assert set(summary["goals"]) == {"tokens_per_s_ratio >= 1.8", "seconds_to_target_ratio <= 0.4",
                                     "mean_best_val_loss <= nanogpt"}


def test_vs_nanogpt_summary_gives_the_ratios_and_the_goals():
    def run(rate, seconds, best):
        return {"tokens_per_s": rate, "seconds_to_target": seconds, "best_val_loss": best}

    nanogpt = [run(1000, 70.0, 1.47), run(1200, 60.0, 1.46), run(1100, 65.0, 1.48)]
    minillm = {"fast": [run(2000, 30.0, 1.46), run(2100, 20.0, 1.45), run(1900, 25.0, 1.45)],
               "slow": [run(1500, None, 1.50), run(1500, 40.0, 1.49), run(1500, 40.0, 1.48)]}
    summary = bench_train.vs_summary(nanogpt, minillm)
    assert summary["nanogpt"]["best_val_loss"] == {"mean": 1.47, "min": 1.46, "max": 1.48, "stdev": 0.01, "n": 3}
    assert summary["nanogpt"]["tokens_per_s"]["median"] == 1100
    fast = summary["configs"]["fast"]
    assert fast["ratios"] == {"tokens_per_s": round(2000 / 1100, 3), "tokens_per_s_first_round": 2.0,
                              "seconds_to_target": round(25 / 65, 3),
                              "seconds_to_target_first_round": round(30 / 70, 3),
                              "seconds_to_target_per_round": [round(30 / 70, 3), round(20 / 60, 3),
                                                              round(25 / 65, 3)],
                              "best_val_loss_mean_minus_nanogpt": -0.0167}
    assert all(fast["goals"].values())
    slow = summary["configs"]["slow"]
    assert slow["seconds_to_target"] == {"per_round": [None, 40.0, 40.0], "reached": 2, "median": None}
    assert slow["ratios"]["seconds_to_target"] is None and slow["ratios"]["seconds_to_target_first_round"] is None
    assert slow["ratios"]["seconds_to_target_per_round"] == [None, round(40 / 60, 3), round(40 / 65, 3)]
    assert slow["goals"] == {"tokens_per_s_ratio >= 1.8": False, "seconds_to_target_ratio <= 0.4": False,
                             "mean_best_val_loss <= nanogpt": False}


def test_vs_nanogpt_passes_nanogpt_only_options_it_has():
    """Against the real anchors: run-nanogpt and the recipe exist, and every --key= given to nanoGPT is one of
    its train.py globals (its configurator refuses others)."""
    anchors = REPO.parent / "shared" / "anchors"
    if not (anchors / "run-nanogpt").is_file():
        pytest.skip(f"{anchors} is absent: no nanoGPT to check against")
    assert bench_train.SHARED == REPO.parent / "shared"
    command = bench_train.nanogpt_command("cpu", 3000, Path("/tmp/out"))
    assert command[0] == str(anchors / "run-nanogpt") and command[1] == bench_train.NANOGPT_RECIPE
    assert (anchors / "nanoGPT" / bench_train.NANOGPT_RECIPE).is_file()
    train_globals = set(re.findall(r"^(\w+) = ", (anchors / "nanoGPT" / "train.py").read_text(), re.M))
    keys = [arg.removeprefix("--").split("=")[0] for arg in command[2:]]
    assert keys == ["device", "compile", "max_iters", "out_dir"] and set(keys) <= train_globals
    assert bench_train.nanogpt_command("cuda", None, Path("/tmp/out"))[2:] == ["--device=cuda", "--out_dir=/tmp/out"]
