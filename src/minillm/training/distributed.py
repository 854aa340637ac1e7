"""Several processes of one machine (torchrun + DDP, or one flat all-reduced gradient buffer).

Design choices:
- Several processes (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK): DDP over nccl on cuda:LOCAL_RANK, or gloo
  on CPU. ``grad_accum`` stays the number of micro-batches per step over all processes; each takes every
  N-th (train_data.step_batches), so N processes see the data one process sees at the same global batch,
  and their loss curve is one process's to float rounding. Gradients are all-reduced once per step
  (``no_sync`` on the other micro-batches). Rank 0 alone writes the run directory and its checkpoints;
  every process resumes from that one train_state.pt, with any number of processes. Logged losses are means
  over processes, throughput counts all of them, and evaluation splits the fixed batches among them.
- ``train.ddp = "flat"`` trains several processes without DDP: every parameter's ``.grad`` is a view into one
  flat buffer, so the backward adds into it in place, and after the last micro-batch one ``all_reduce``
  averages it (parameters are broadcast from rank 0 at the start, as DDP does). No forward wrapper, no
  per-gradient hooks, no bucket copies: less host work a step, which is what bounds a small model's step
  under DDP with CUDA graphs (experiments/gpu/README.md). The cost: the all-reduce never overlaps the
  backward, as under DDP with a compiled model. Its gradients are DDP's (tests/test_ddp.py); its speed on
  GPUs is not measured yet. In one process neither is used.
- PyTorch's own process groups, as torchrun sets them up (WORLD_SIZE, RANK, LOCAL_RANK); no home-made
  launcher. One process needs none of this: ``join_processes`` then returns a single rank.
- ``check_processes`` refuses at once what a multi-process run would refuse later, so the CLI can say so
  before torchrun starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from minillm.core.device import resolve_device
from minillm.core.errors import InputError
from minillm.models import model_class
from minillm.training.checkpoint import (
    STATE_FILE,
)
from minillm.training.config import Config
from minillm.training.runs import resumed_config


def world_size() -> int:
    """How many processes train this run: torchrun's WORLD_SIZE, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_grad_accum(grad_accum: int, processes: int) -> int:
    """Each process's micro-batches per optimizer step; InputError unless ``grad_accum`` divides evenly."""
    if grad_accum % processes:
        raise InputError(f"train.grad_accum = {grad_accum} is not divisible by the {processes} processes: it "
                         "counts the micro-batches of one optimizer step over all of them")
    return grad_accum // processes


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one run; rank 0 of 1 without torchrun."""

    rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # train() created the process group, so it destroys it at the end

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (writing the run directory and the token cache), then the others."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()


def join_processes(device: torch.device) -> tuple[Ranks, torch.device]:
    """Under torchrun: this process's Ranks and device (cuda:LOCAL_RANK for cuda), joining the process group
    (nccl on CUDA, gloo on CPU) unless the caller already has."""
    size = world_size()
    if size == 1:
        return Ranks(), device
    if device.type not in ("cuda", "cpu"):
        raise InputError(f"device '{device}': training in several processes needs cuda or cpu")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(f"{os.environ.get('LOCAL_WORLD_SIZE', size)} processes on this machine, but it has "
                             f"{torch.cuda.device_count()} CUDA devices")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    return Ranks(rank, size, owns_group), device


def check_processes(cfg: Config | None, out_dir: str | Path, processes: int, *, resume: bool = False,
                    device: str | None = None) -> None:
    """What ``train`` in ``processes`` processes would refuse at once, as an InputError: the CLI checks this
    before it starts torchrun."""
    if processes < 1:
        raise InputError(f"--nproc must be at least 1, got {processes}")
    cfg = resumed_config(cfg, Path(out_dir)) if resume else cfg
    if cfg is None:
        raise ValueError("check_processes() needs a Config unless resume=True")
    if not resume and (Path(out_dir) / STATE_FILE).exists():
        raise InputError(f"{out_dir}: already holds a run (train_state.pt); resume it or pick another "
                         "output directory")
    if processes > 1 and model_class(cfg.arch).trained_by == "fit":
        raise InputError(f"--nproc {processes}: a {cfg.arch} model fits in one pass of one process")
    local_grad_accum(cfg.train.grad_accum, processes)
    target = resolve_device(device or cfg.train.device)
    if processes > 1 and target.type == "cuda" and torch.cuda.device_count() < processes:
        raise InputError(f"--nproc {processes}: this machine has {torch.cuda.device_count()} CUDA devices")
    if processes > 1 and target.type not in ("cuda", "cpu"):
        raise InputError(f"--nproc {processes}: training in several processes needs cuda or cpu, not {target}")


def flat_gradients(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    """One zeroed buffer for all the gradients: each ``p.grad`` becomes a view into it, so the backward adds
    into it in place and one collective reduces them all. Zero it in place: ``set_to_none`` drops the views."""
    flat = torch.zeros(sum(p.numel() for p in parameters), dtype=parameters[0].dtype, device=parameters[0].device)
    offset = 0
    for p in parameters:
        p.grad = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat
