"""The machine a benchmark ran on, recorded beside its figures: cores, processor, load, library versions.

    from machine import machine_info          # benchmarks/ is on sys.path when a benchmark runs
    report["machine"] = machine_info()

The load average is there because the figures of a shared machine move with what else runs on it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch


def processor() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(onnxruntime_threads: int | None = None, torch_threads: int | None = None) -> dict:
    """cores, processor, torch's threads, the load average when called, and the versions of torch,
    onnxruntime and Python; ``onnxruntime_threads``: the intra-op threads its sessions were given (None:
    its default); ``torch_threads``: those of the process measured (None: this one's)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cores": os.cpu_count(), "processor": processor(),
            "torch_threads": torch_threads or torch.get_num_threads(),
            "onnxruntime_threads": onnxruntime_threads if onnxruntime_threads is not None else "default",
            "load_average_1m": None if load is None else round(load[0], 2),
            "torch": torch.__version__, "onnxruntime": version("onnxruntime"), "python": platform.python_version(),
            "platform": platform.platform()}
