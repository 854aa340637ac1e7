"""benchmarks/bench_train.py --profile and benchmarks/trace_summary.py, which reads its traces."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import shakespeare_slice

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
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
