"""The Trainer: pretrain a model on article text, then fine-tune it on QA pairs, in one run.

    >>> cfg = load_config("configs/tiny-cpu.toml")
    >>> result = train(cfg, "runs/tiny")             # Ctrl-C saves a checkpoint ...
    >>> result = train(None, "runs/tiny", resume=True)  # ... and this continues exactly where it stopped
    >>> model, tokenizer, cfg = load_run("runs/tiny")

On several GPUs of one machine (PyTorch DDP), from the shell; the second line starts torchrun itself:

    torchrun --standalone --nproc_per_node 2 -m minillm train --config shakespeare-char --out runs/sc
    minillm train --nproc 2 --config shakespeare-char --out runs/sc

A run directory's files: training/runs.py.

Design choices:
- Steps are optimizer steps; each takes ``grad_accum`` micro-batches of ``batch_size`` sequences.
- AdamW, fused on CUDA and CPU (on two cores: a tiny-cpu step 176 -> 167 ms). Weight decay applies to
  matrices only: not to biases and norm gains (they set scales and offsets, and shrinking them towards 0
  only hurts), nor to embeddings (rare tokens' rows would decay to zero between their rare updates). One
  optimizer serves both phases, its moments carried over.
- Learning rate per phase: linear warmup over ``warmup_steps``, then cosine decay to ``min_lr``; fine-tuning
  peaks at ``finetune_lr`` and decays to ``min_lr * finetune_lr / lr``.
- The loss is token-level cross entropy averaged per micro-batch (over answer tokens only when fine-tuning,
  see training/data.py); validation losses are averaged over all scored tokens of their fixed batches.
- Mixed precision by default only on CUDA: bf16 autocast where supported, else fp16 with a GradScaler;
  float32 on CPU and MPS unless ``train.dtype`` asks for another.
- The training loop never waits for the device: batches are pinned and copied asynchronously, and each
  step's loss stays on the device until a log line, evaluation or checkpoint reads the pending ones back in
  one go (``sync``). There a NaN or infinite loss raises ``TrainingDiverged`` naming its step, before
  anything is saved (a checkpoint also checks that the weights are finite), so the run directory keeps its
  last good checkpoint. Throughput is measured between those syncs, evaluation and checkpoints left out.
- Dropout draws from a seed per micro-batch (run seed, step, micro-batch index): the masks do not depend on
  how many processes share a step, and resume needs no per-process random state.
- Resume is exact: the same weights, bit for bit, as a run that never stopped (checked on CPU, in one
  process and in two under DDP), because the checkpoint holds every RNG and the data position as of the
  last completed step, also on Ctrl-C mid-step (see training/checkpoint.py). A resumed run may change [train], e.g.
  to train longer. After SIGKILL anywhere, a checkpoint write included, it resumes from the last whole
  checkpoint just as exactly (benchmarks/bench_faults.py), first deleting the killed writes' temporaries.
- Several processes (torchrun, DDP or one flat gradient buffer): training/distributed.py.
- ``train.compile`` compiles the model in place (``model.compile()``) before DDP wraps it, as PyTorch's
  docs advise: evaluation uses the same compiled model, and DDP's hooks and ``no_sync`` stay eager. The
  cost: the all-reduce starts after the compiled backward rather than overlapping it. Compiling the DDP
  module instead (``torch.compile(ddp)``, graph split at the gradient buckets) was slower on two H200s:
  13.4 ms per step against 11.8 ms, for 64 sequences of 256 per GPU.
- ``train.compile_mode = "reduce-overhead"`` replays the compiled forward and backward as CUDA graphs. A
  small model's step is otherwise bound by the host launching ~340 kernels: on an H200 the shakespeare-char
  GPU work is 5.6 ms of a 9.5-13 ms step; with CUDA graphs the step takes 5.7 ms. Under DDP the graphs
  hold the model alone, and the all-reduce stays eager. The loop marks each step's first forward
  (``cudagraph_mark_step_begin``): its outputs from the step before are consumed by then.
- Every neural rung (``trained_by = "trainer"`` in minillm.models) trains here the same way. Count-based
  rungs (``trained_by = "fit"``: pattern, markov) get the same tokenizer, streams and encoded QA pairs in
  a ``FitData`` and fit in one pass; their run directory has fit.json instead of a checkpoint.
- Left out: gradient checkpointing and FSDP (the models here fit one device easily), and several machines
  (the processes share one filesystem: rank 0 writes what the others read).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from minillm.core.device import resolve_device, resolve_dtype
from minillm.core.errors import InputError
from minillm.core.files import append_jsonl
from minillm.models import model_class
from minillm.models.weights import save_weights, weights_metadata
from minillm.tokenizer import Tokenizer
from minillm.training.checkpoint import (
    STATE_FILE,
    load_train_state,
    remove_stale_temporaries,
    rng_state,
    save_train_state,
    set_rng_state,
    trim_metrics,
)
from minillm.training.config import Config, load_config
from minillm.training.data import (
    IGNORE_INDEX,
    QABatches,
    TextBatches,
    fixed_qa_batches,
    fixed_text_batches,
    pretrain_tokens,
    qa_examples,
    step_batches,
)
from minillm.training.distributed import Ranks, flat_gradients, join_processes, local_grad_accum, world_size
from minillm.training.runs import (
    CONFIG_FILE,
    LAST_WEIGHTS_FILE,
    METRICS_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    TrainingDiverged,
    TrainResult,
    fit_run,
    resumed_config,
    start_run,
)
from minillm.training.steps import lr_at, param_groups, summed_nll

PHASES = ("pretrain", "finetune")


def _due(step: int, total: int, interval: int) -> bool:
    """At the end of a phase, and every ``interval`` steps (0 = only at the end)."""
    return step == total or (interval > 0 and step % interval == 0)


# --- several processes (torchrun + DDP) ----------------------------------------------------------------------


# torch.compile modes that replay CUDA graphs -> the same mode without them (for CPU and MPS)
CUDA_GRAPH_MODES = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}


# --- the Trainer ------------------------------------------------------------------------------------------


@dataclass
class _Totals:
    """Steps, tokens (all processes) and seconds of training read back by ``sync``."""

    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0


class Trainer:
    """The state of one ``train`` call; methods are the steps of the loop in ``run``."""

    def __init__(self, cfg: Config, run_dir: Path, tok: Tokenizer, device: torch.device, progress: bool,
                 started: float, ranks: Ranks, loss: Callable[..., torch.Tensor] | None = None):
        self.cfg, self.run_dir, self.tok, self.device, self.progress = cfg, run_dir, tok, device, progress
        self.ranks = ranks
        self.loss = summed_nll if loss is None else loss  # the training steps' loss; validation's is summed_nll
        t = cfg.train
        random.seed(t.seed)
        np.random.seed(t.seed)
        torch.manual_seed(t.seed)
        self.data_rng = torch.Generator().manual_seed(t.seed)
        self.model = model_class(cfg.arch)(cfg.model_config()).to(device)
        # CUDA graphs need a CUDA device; a graph's outputs live only until its next replay (_new_graph_step)
        self.cudagraphs = t.compile and device.type == "cuda" and t.compile_mode in CUDA_GRAPH_MODES
        if t.compile:
            mode = t.compile_mode if device.type == "cuda" else CUDA_GRAPH_MODES.get(t.compile_mode, t.compile_mode)
            self.model.compile(mode=None if mode == "default" else mode)
        several = ranks.world_size > 1
        self.ddp = (DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
                    if several and t.ddp == "ddp" else None)
        self.flat_grads = None  # train.ddp = "flat": all the gradients, all-reduced once a step
        if several and t.ddp == "flat":
            with torch.no_grad():  # every process starts from rank 0's weights, as under DDP
                for tensor in [*self.model.parameters(), *self.model.buffers()]:
                    dist.broadcast(tensor, src=0)
            self.flat_grads = flat_gradients([p for p in self.model.parameters() if p.requires_grad])
            self.reduce_op = dist.ReduceOp.AVG if dist.get_backend() == "nccl" else dist.ReduceOp.SUM  # gloo: no AVG
        self.train_forward = self.model if self.ddp is None else self.ddp
        self.local_accum = local_grad_accum(t.grad_accum, ranks.world_size)
        self.dtype = resolve_dtype(t.dtype, device)
        self.autocast = (torch.autocast(device.type, dtype=self.dtype) if self.dtype != torch.float32
                         else nullcontext())
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, t.weight_decay), lr=t.lr,
                                           betas=(t.beta1, t.beta2), fused=device.type in ("cuda", "cpu"))
        self.phase, self.step, self.best = PHASES[0], 0, None
        self.elapsed_before, self.started = 0.0, started
        self.pending_losses: list[torch.Tensor] = []  # on the device: one per step since the last sync
        self.pending_tokens = 0
        self.clock = time.perf_counter()  # when the training time not yet counted began
        self.call, self.window = _Totals(), _Totals()  # this call; since the last log line
        self.last_loss, self.last_eval = math.nan, {}
        with ranks.main_first():
            self._load_data()
        self.position = self._position()

    def _load_data(self) -> None:
        cfg, tok_bytes = self.cfg, (self.run_dir / TOKENIZER_FILE).read_bytes()
        t, seq_len, pad = cfg.train, cfg.model["max_seq_len"], self.tok.pad_id
        pin = self.device.type == "cuda"
        self.train_batches, self.val_batches = {}, {}
        if t.pretrain_steps:
            text, val_text = pretrain_tokens(cfg, self.tok, tok_bytes)
            self.train_batches["pretrain"] = TextBatches(text, t.batch_size, seq_len, self.data_rng, pin)
            if val_text is not None:
                self.val_batches["val_text"] = self._share(fixed_text_batches(val_text, t.eval_batches,
                                                                              t.batch_size, seq_len))
        if t.finetune_steps:
            qa = qa_examples(cfg.data.train_qa, cfg, self.tok, tok_bytes, training=True)
            self.train_batches["finetune"] = QABatches(qa, t.batch_size, pad, self.data_rng, pin)
            if cfg.data.val_qa:
                val_qa = qa_examples(cfg.data.val_qa, cfg, self.tok, tok_bytes)
                self.val_batches["val_qa"] = self._share(fixed_qa_batches(val_qa, t.eval_batches, t.batch_size,
                                                                          pad))

    def _share(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> list:
        """This process's share of fixed validation batches (every world_size-th), pinned for a GPU."""
        share = list(batches)[self.ranks.rank::self.ranks.world_size]
        return [(x.pin_memory(), y.pin_memory()) for x, y in share] if self.device.type == "cuda" else share

    def _sum_over_processes(self, values: list[float]) -> list[float]:
        if self.ranks.world_size == 1:
            return values
        summed = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return summed.tolist()

    # --- checkpoints -------------------------------------------------------------------------------------

    def _position(self) -> dict:
        """Where the run stands after its last completed step: what a checkpoint records besides weights."""
        batches = self.train_batches.get(self.phase)
        return {"phase": self.phase, "step": self.step, "rng": rng_state(self.data_rng),
                "batches": batches.state_dict() if batches else {}}

    @property
    def elapsed(self) -> float:
        """Wall seconds of the whole run so far, over all its ``train`` calls."""
        return self.elapsed_before + time.perf_counter() - self.started

    def save_weights(self, name: str) -> None:
        """Weights with the model config in the metadata, as the model's own ``save`` writes them."""
        save_weights(self.model, self.run_dir / name, weights_metadata(self.model))

    def save_checkpoint(self) -> None:
        """Rank 0 writes the checkpoint of the last completed step; call it after a ``sync``."""
        if not self.ranks.main:
            return
        if not torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all():
            self._diverged(self.step, "the weights are NaN or infinite")
        self.save_weights(LAST_WEIGHTS_FILE)
        state = {**self.position, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "best": self.best, "elapsed": self.elapsed}
        save_train_state(state, self.run_dir)
        no_best_yet = not (self.run_dir / WEIGHTS_FILE).exists()
        if no_best_yet or self._selection_metric() not in self.val_batches:
            self.save_weights(WEIGHTS_FILE)

    def restore(self, state: dict) -> None:
        path = self.run_dir / STATE_FILE
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise InputError(f"{path}: does not match config.toml ({e})") from None
        if state["scaler"]:  # empty when saved by a disabled scaler (a run that did not use fp16)
            self.scaler.load_state_dict(state["scaler"])
        self.phase, self.step, self.best = state["phase"], state["step"], state["best"]
        self.elapsed_before = state["elapsed"]
        set_rng_state(state["rng"], self.data_rng)
        if self.phase in self.train_batches:
            self.train_batches[self.phase].load_state_dict(state["batches"])
        self.position = self._position()

    # --- evaluation --------------------------------------------------------------------------------------

    def _selection_metric(self) -> str:
        """The validation loss that picks model.safetensors in the current phase."""
        order = ("val_text", "val_qa") if self.phase == "pretrain" else ("val_qa", "val_text")
        return next((name for name in order if name in self.val_batches), order[0])

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Each validation loss over all its fixed batches; one wait for the device per loss."""
        self.model.eval()
        sums = []
        for batches in self.val_batches.values():
            losses, count = [], 0
            for x, y in batches:
                self._new_graph_step()
                with self.autocast:
                    losses.append(summed_nll(self.model, self.model, x.to(self.device, non_blocking=True),
                                             y.to(self.device, non_blocking=True)))
                count += int((y != IGNORE_INDEX).sum())  # y is still on the host: no wait
            sums += [sum(torch.stack(losses).tolist()) if losses else 0.0, count]
        self.model.train()
        sums = self._sum_over_processes(sums)
        losses = {name: sums[2 * i] / sums[2 * i + 1] for i, name in enumerate(self.val_batches)}
        metric = self._selection_metric()
        if metric in losses and (self.best is None or losses[metric] < self.best):
            self.best = losses[metric]
            if self.ranks.main:
                self.save_weights(WEIGHTS_FILE)
        return losses

    # --- the loop ----------------------------------------------------------------------------------------

    def train_step(self, batches: TextBatches | QABatches, lr: float) -> None:
        """One optimizer step over this process's share of the ``grad_accum`` micro-batches; its loss and
        tokens stay pending until the next ``sync``."""
        t, rank, size = self.cfg.train, self.ranks.rank, self.ranks.world_size
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        seeds = np.random.SeedSequence([t.seed, self.global_step()]).generate_state(t.grad_accum, np.uint64)
        micro_batches = step_batches(batches, t.grad_accum, rank, size)
        loss_sum = torch.zeros((), device=self.device)
        for i, (x, y) in enumerate(micro_batches):
            torch.manual_seed(int(seeds[rank + i * size]))  # this micro-batch's dropout masks
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            last = i == len(micro_batches) - 1
            if i == 0:  # later micro-batches: the gradients so far may still be the last replay's outputs
                self._new_graph_step()
            with self.ddp.no_sync() if self.ddp is not None and not last else nullcontext():  # all-reduce once
                with self.autocast:
                    nll = self.loss(self.train_forward, self.model, x, y)
                loss = nll / (y != IGNORE_INDEX).sum().clamp_min(1) / self.local_accum
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach()
            self.pending_tokens += x.numel()
        if self.flat_grads is not None:  # one all-reduce, after the last backward: clipping sees the mean
            dist.all_reduce(self.flat_grads, op=self.reduce_op)
            if self.reduce_op == dist.ReduceOp.SUM:
                self.flat_grads.div_(size)
        if t.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.flat_grads is None:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.flat_grads.zero_()  # in place: the gradients stay views of it
        self.pending_losses.append(loss_sum)

    def _new_graph_step(self) -> None:
        """Under CUDA graphs: the last forward's outputs are consumed, so the next replay may overwrite them."""
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()

    def sync(self, collective: bool = True) -> float:
        """Wait for the device and count the steps since the last sync; their losses are means over the
        processes (unless not ``collective``: this process's alone, as on Ctrl-C when the others may be
        gone). Returns the last step's loss; raises TrainingDiverged if any loss is NaN or infinite."""
        losses = torch.stack(self.pending_losses).tolist() if self.pending_losses else []
        tokens = self.pending_tokens
        if collective and self.ranks.world_size > 1:
            *losses, tokens = self._sum_over_processes([*losses, tokens])
            losses = [loss / self.ranks.world_size for loss in losses]
        if self.device.type == "cuda":  # the last step's backward and optimizer step, after its loss
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        for totals in (self.call, self.window):
            totals.steps, totals.tokens = totals.steps + len(losses), totals.tokens + int(tokens)
            totals.seconds += now - self.clock
        self.pending_losses, self.pending_tokens, self.clock = [], 0, now
        for i, loss in enumerate(losses):
            if not math.isfinite(loss):
                self._diverged(self.step - len(losses) + 1 + i, f"loss is {loss}")
        self.last_loss = losses[-1] if losses else self.last_loss
        return self.last_loss

    def _diverged(self, step: int, what: str) -> None:
        kept = (f"{self.run_dir} keeps the last good checkpoint" if (self.run_dir / STATE_FILE).exists()
                else "no checkpoint was saved before")
        raise TrainingDiverged(f"{self.phase} step {step}: {what}; stopped, {kept} (try a lower train.lr)")

    def log(self, record: dict) -> None:
        if self.ranks.main:
            record = {"event": record.pop("event"), "phase": self.phase, "step": self.step,
                      "global_step": self.global_step(), **record, "elapsed": round(self.elapsed, 3)}
            append_jsonl(self.run_dir / METRICS_FILE, [record])

    def global_step(self) -> int:
        done = sum(getattr(self.cfg.train, f"{p}_steps") for p in PHASES[:PHASES.index(self.phase)])
        return done + self.step

    def run(self, max_steps: int | None) -> TrainResult:
        t = self.cfg.train
        bar = tqdm(total=t.pretrain_steps + t.finetune_steps, initial=self.global_step(), unit="step",
                   disable=not (self.progress and self.ranks.main), dynamic_ncols=True)
        steps = 0
        self.clock = time.perf_counter()
        try:
            for phase in PHASES[PHASES.index(self.phase):]:
                if phase != self.phase:
                    self.phase, self.step = phase, 0
                    self.best = None  # fine-tuned weights compete only with each other
                    self.position = self._position()
                total = getattr(t, f"{phase}_steps")
                peak = t.lr if phase == "pretrain" else t.finetune_peak_lr
                while self.step < total:
                    if max_steps is not None and steps >= max_steps:
                        self.sync()
                        self.save_checkpoint()
                        return self._result()
                    lr = lr_at(self.step, total, peak, t.min_lr * peak / t.lr, t.warmup_steps)
                    self.train_step(self.train_batches[phase], lr)
                    self.step += 1
                    steps += 1
                    self.position = self._position()
                    bar.update()
                    self._after_step(total, lr, bar)
        except KeyboardInterrupt:
            if self.ranks.main:  # no collectives: the other processes may have stopped anywhere
                self.sync(collective=False)
                self.save_checkpoint()  # as of the last completed step: resume redoes the interrupted one
            raise
        finally:
            bar.close()
        return self._result()

    def _after_step(self, total: int, lr: float, bar: tqdm) -> None:
        """Log, evaluate and checkpoint where due, after one ``sync`` for them all."""
        t = self.cfg.train
        log = _due(self.step, total, t.log_interval)
        evaluate = bool(self.val_batches) and _due(self.step, total, t.eval_interval)
        checkpoint = _due(self.step, total, t.checkpoint_interval)
        if not (log or evaluate or checkpoint):
            return
        loss = self.sync()
        if log:
            rate = self.window.tokens / self.window.seconds
            bar.set_postfix(phase=self.phase, loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}")
            self.log({"event": "train", "loss": loss, "lr": lr, "tokens_per_s": round(rate, 1),
                      "ms_per_step": round(1000 * self.window.seconds / self.window.steps, 3)})
            self.window = _Totals()
        if evaluate:
            self.last_eval = self.evaluate()
            self.log({"event": "eval", **{f"{k}_loss": v for k, v in self.last_eval.items()}})
        if checkpoint:
            self.save_checkpoint()
        self.clock = time.perf_counter()  # evaluation and checkpoints are not training time

    def _result(self) -> TrainResult:
        losses = {"train": self.last_loss} if self.call.steps else {}
        losses.update(self.last_eval)
        rate = self.call.tokens / self.call.seconds if self.call.seconds else 0.0
        return TrainResult(out_dir=self.run_dir, steps=self.global_step(), best_val_loss=self.best,
                           final_losses=losses, seconds=time.perf_counter() - self.started,
                           tokens=self.call.tokens, tokens_per_s=rate)


def train(cfg: Config | None, out_dir: str | Path, *, resume: bool = False, device: str | None = None,
          progress: bool = True, max_steps: int | None = None,
          loss: Callable[..., torch.Tensor] | None = None) -> TrainResult:
    """Train (or with ``resume``, continue) the run in ``out_dir``; see the module docstring.

    ``cfg`` may be None when resuming (the run's config.toml is used); a given cfg may change only [train].
    ``device`` overrides ``train.device``. ``max_steps`` stops after that many steps of this call, with a
    checkpoint, so that a later ``resume`` continues. ``loss``, if given, replaces ``summed_nll`` (same
    arguments, a sum over the scored targets) in the training steps, not in validation: compress/distill.py
    passes its distillation loss. Raises InputError for bad input or a bad run directory, TrainingDiverged
    when the loss becomes NaN/inf.

    Under torchrun every process calls this alike: it joins the process group unless the caller already
    has (and then leaves it to the caller), and returns once rank 0 has written everything.
    """
    started, run_dir = time.perf_counter(), Path(out_dir)
    arch = (cfg if cfg is not None else load_config(run_dir / CONFIG_FILE)).arch
    if model_class(arch).trained_by == "fit":
        if world_size() > 1:
            raise InputError(f"a {arch} model fits in one pass of one process: run it without torchrun")
        return fit_run(cfg, run_dir, resume, started)
    if resume:
        cfg = resumed_config(cfg, run_dir)
    elif cfg is None:
        raise ValueError("train() needs a Config unless resume=True")
    elif (run_dir / STATE_FILE).exists():
        raise InputError(f"{run_dir}: already holds a run (train_state.pt); resume it or pick another "
                         "output directory")
    local_grad_accum(cfg.train.grad_accum, world_size())  # before any work is done
    ranks, target = join_processes(resolve_device(device or cfg.train.device))
    try:
        if resume:
            state = load_train_state(run_dir)
            tok = Tokenizer.load(run_dir / TOKENIZER_FILE)
        else:
            with ranks.main_first():
                if ranks.main:
                    cfg, tok = start_run(cfg, run_dir)
                else:
                    cfg, tok = load_config(run_dir / CONFIG_FILE), Tokenizer.load(run_dir / TOKENIZER_FILE)
            state = None
        trainer = Trainer(cfg, run_dir, tok, target, progress, started, ranks, loss)
        if state is not None:
            trainer.restore(state)
            if ranks.main:
                remove_stale_temporaries(run_dir)  # of writes a hard kill interrupted
                trim_metrics(run_dir, trainer.global_step())
        result = trainer.run(max_steps)
        ranks.barrier()  # rank 0's files are complete before any process returns
        return result
    finally:
        if ranks.owns_group:
            dist.destroy_process_group()


