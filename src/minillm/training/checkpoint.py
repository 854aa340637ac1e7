"""Checkpoint state: what ``train_state.pt`` holds besides weights and optimizer, and how it is read back.

A checkpoint must let ``train(resume=True)`` continue bit for bit, so it records every source of
randomness (python, numpy, torch CPU and CUDA, and the Trainer's data generator) as of the last completed
step. ``torch.load(..., weights_only=True)`` refuses arbitrary pickles, so everything is stored as tensors
and plain containers: numpy's state becomes a tensor and four numbers.

Under DDP the checkpoint is rank 0's alone: after every step all processes hold the same weights, optimizer
and data generator, and dropout is seeded per micro-batch from the step, so every process resumes from it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from minillm.core.errors import InputError
from minillm.core.files import atomic_write, repair_jsonl_tail, write_jsonl
from minillm.training.runs import METRICS_FILE, RUN_FILES, STATE_FILE

STATE_KEYS = {"model", "optimizer", "scaler", "phase", "step", "rng", "batches", "best", "elapsed"}


def rng_state(data_rng: torch.Generator) -> dict:
    """Every generator's state now, ``data_rng`` (the Trainer's batch sampler) included."""
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(), "data": data_rng.get_state(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2],
                       "has_gauss": np_state[3], "gauss": np_state[4]}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, data_rng: torch.Generator) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    data_rng.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(state: dict, run_dir: Path) -> None:
    with atomic_write(run_dir / STATE_FILE, "wb") as fh:
        torch.save(state, fh)


def load_train_state(run_dir: Path) -> dict:
    """The checkpoint of ``run_dir``; InputError naming the file if it is missing, corrupt or foreign."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise InputError(f"{path}: no such file; nothing to resume (train without resume to start a run)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file fails in zipfile, pickle or torch itself
        reason = (str(e).strip().splitlines() or [""])[0]
        raise InputError(f"{path}: corrupt checkpoint ({type(e).__name__}: {reason})") from None
    missing = STATE_KEYS - set(state if isinstance(state, dict) else ())
    if missing:
        raise InputError(f"{path}: not a minillm checkpoint (missing {', '.join(sorted(missing))})")
    return state


def trim_metrics(run_dir: Path, global_step: int) -> None:
    """Drop metrics logged after the checkpoint being resumed: those steps are about to be redone."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    repair_jsonl_tail(path)
    kept = [r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())
            if r.get("global_step", 0) <= global_step]
    write_jsonl(path, kept)


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete what writes of the run's files killed midway left (SIGKILL, a power cut): atomic_write's
    ``.NAME.*.tmp`` files, never seen by a reader. Only for the run's one writer, before it writes."""
    stale = [p for name in RUN_FILES for p in run_dir.glob(f".{name}.*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
