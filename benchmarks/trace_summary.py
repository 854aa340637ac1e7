"""Summarise torch.profiler chrome traces of training steps (``bench_train.py --profile DIR``); print JSON.

    python benchmarks/trace_summary.py DIR/trace-rank0.json.gz [DIR/trace-rank1.json.gz ...]

Per trace, over the recorded steps (the ``ProfilerStep#N`` ranges on the host):
- ``step_ms``: host wall time of each step (launching it; the GPU may still run the previous one);
- ``gpu_span_ms``: from the first to the last device activity (kernels, copies, memsets), divided by steps
  (null in a trace without a GPU, which has the host figures alone);
- ``gpu_busy_ms``: the union of device activity per step; ``gpu_idle_ms`` = span - busy, the time the GPU waited;
- ``nccl_ms``: NCCL kernels per step, ``nccl_alone_ms`` the part of them no other kernel overlapped;
- ``top_kernels``: the kernels with the most device time per step;
- ``host_top_ms``: on the thread that ran the steps, the outermost operators and annotations per step by name,
  and ``host_python_ms``, the step time outside all of them (the Python of the loop and of the libraries,
  or waiting for another thread); ``other_threads_top_ms`` the same for other busy threads (the backward
  runs on the autograd engine's thread of the GPU).
"""

import argparse
import gzip
import json
from collections import defaultdict
from pathlib import Path


def load(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def length(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Total length where the merged interval lists ``a`` and ``b`` overlap."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0.0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def host_breakdown(events: list[dict], steps: list[dict], tid: tuple) -> tuple[dict[str, float], float]:
    """Microseconds of the outermost host events of thread ``tid`` (pid, tid) inside the steps, by name, and
    the part of the steps' time not covered by them."""
    inside = sorted((e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) == tid
                     and e.get("cat") in ("cpu_op", "user_annotation", "python_function")
                     and not str(e.get("name", "")).startswith("ProfilerStep#")),
                    key=lambda e: (e["ts"], -e["dur"]))
    bounds = sorted((s["ts"], s["ts"] + s["dur"]) for s in steps)
    totals: dict[str, float] = defaultdict(float)
    covered, end = 0.0, -1.0
    for e in inside:
        if e["ts"] < end or not any(a <= e["ts"] < b for a, b in bounds):
            continue  # nested in the last outermost event, or between steps
        totals[e["name"]] += e["dur"]
        covered += e["dur"]
        end = e["ts"] + e["dur"]
    return totals, sum(b - a for a, b in bounds) - covered


def spans(events: list[dict]) -> list[tuple[float, float]]:
    return [(e["ts"], e["ts"] + e["dur"]) for e in events]


def top(totals: dict[str, float], ms: float, count: int) -> list[list]:
    """The ``count`` largest of ``totals`` (microseconds) as [name, milliseconds per step]."""
    return [[name[:90], round(us * ms, 3)] for name, us in sorted(totals.items(), key=lambda kv: -kv[1])[:count]]


def device_summary(device: list[dict], ms: float) -> dict:
    """Device activity of the recorded steps; ``ms`` turns microseconds into milliseconds per step."""
    nccl = union(spans(e for e in device if "nccl" in e["name"].lower()))
    other = union(spans(e for e in device if "nccl" not in e["name"].lower()))
    busy = length(union(spans(device)))
    span = max(e["ts"] + e["dur"] for e in device) - min(e["ts"] for e in device)
    per_kernel: dict[str, float] = defaultdict(float)
    for e in device:
        per_kernel[e["name"]] += e["dur"]
    return {"gpu_span_ms": round(span * ms, 3), "gpu_busy_ms": round(busy * ms, 3),
            "gpu_idle_ms": round((span - busy) * ms, 3), "nccl_ms": round(length(nccl) * ms, 3),
            "nccl_alone_ms": round((length(nccl) - overlap(nccl, other)) * ms, 3),
            "kernels_per_step": round(sum(e["cat"] == "kernel" for e in device) * ms * 1e3, 1),
            "top_kernels": top(per_kernel, ms, 12)}


def summarise(events: list[dict]) -> dict:
    steps = [e for e in events if e.get("ph") == "X" and e.get("cat") == "user_annotation"
             and str(e.get("name", "")).startswith("ProfilerStep#")]  # the host's, not the GPU track's copy
    if not steps:
        return {"error": "no ProfilerStep ranges in the trace: record it with bench_train.py --profile"}
    ms = 1e-3 / len(steps)  # microseconds over all steps -> milliseconds per step
    main_thread = (steps[0]["pid"], steps[0]["tid"])
    host, python = host_breakdown(events, steps, main_thread)
    threads = {}
    for tid in {(e["pid"], e["tid"]) for e in events if e.get("cat") == "cpu_op"} - {main_thread}:
        busy, _ = host_breakdown(events, steps, tid)  # e.g. the autograd engine's thread of a GPU
        if sum(busy.values()) > 0.05 * sum(s["dur"] for s in steps):
            threads[str(tid[1])] = top(busy, ms, 10)
    device = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    return {"steps": len(steps), "step_ms": [round(e["dur"] / 1e3, 3) for e in steps],
            **(device_summary(device, ms) if device else {"gpu_span_ms": None}),
            "host_top_ms": top(host, ms, 15), "host_python_ms": round(python * ms, 3),
            "other_threads_top_ms": threads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="+", type=Path)
    args = parser.parse_args()
    print(json.dumps({str(path): summarise(load(path)) for path in args.traces}, indent=2))


if __name__ == "__main__":
    main()
