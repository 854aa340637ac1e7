"""benchmarks/bench_train.py --profile and --pairs, and benchmarks/trace_summary.py, which reads the traces."""

import argparse
import gzip
import json
import os
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
    assert report["pretrain"]["tokens_per_step"] == 2 * 16 and report["compile_mode"] == "default"
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
