"""The Trainer: pretrain a model on article text, then fine-tune it on QA pairs, in one run.

    >>> cfg = load_config("configs/tiny-cpu.toml")
    >>> result = train(cfg, "runs/tiny")             # Ctrl-C saves a checkpoint ...
    >>> result = train(None, "runs/tiny", resume=True)  # ... and this continues exactly where it stopped
    >>> model, tokenizer, cfg = load_run("runs/tiny")

A run directory holds:

    config.toml        the resolved config (vocab_size filled in): enough to rebuild the model
    tokenizer.json     Hugging Face tokenizers format
    model.safetensors  the weights with the best validation loss of the latest phase (pretraining: held-out
                       text; fine-tuning: the val split's QA pairs); the latest checkpoint's weights when
                       there is no validation data, or before the first evaluation. Fine-tuning starts a
                       new "best": a fine-tuned model wins even where pretraining's val QA loss was lower
                       (fine-tuning can raise it by forgetting articles), because only it has learnt to
                       answer in the QA format and stop.
    last.safetensors   the weights at the latest checkpoint
    train_state.pt     everything resume needs, in one file written atomically: weights, optimizer, grad
                       scaler, phase and step, best loss, RNG states (python, numpy, torch, data sampler),
                       data position. Only tensors and plain containers, so it loads with weights_only=True.
    metrics.jsonl      one JSON object per log line ("event": "train") and evaluation ("event": "eval")

Design choices:
- Steps are optimizer steps; each takes ``grad_accum`` micro-batches of ``batch_size`` sequences.
- AdamW, fused on CUDA. Weight decay applies to matrices only: not to biases and norm gains (they set
  scales and offsets, and shrinking them towards 0 only hurts), nor to embeddings (rare tokens' rows would
  decay to zero between their rare updates). One optimizer serves both phases, its moments carried over.
- Learning rate per phase: linear warmup over ``warmup_steps``, then cosine decay to ``min_lr``; fine-tuning
  peaks at ``finetune_lr`` and decays to ``min_lr * finetune_lr / lr``.
- The loss is token-level cross entropy averaged per micro-batch (over answer tokens only when fine-tuning,
  see train_data.py); validation losses are averaged over all scored tokens of their fixed batches.
- Mixed precision by default only on CUDA: bf16 autocast where supported, else fp16 with a GradScaler;
  float32 on CPU and MPS unless ``train.dtype`` asks for another.
- A NaN or infinite loss raises ``TrainingDiverged`` before the optimizer step, so nothing bad is saved and
  the run directory keeps its last good checkpoint.
- Resume is exact: the same weights, bit for bit, as a run that never stopped (checked on CPU and on one
  CUDA GPU), because the checkpoint holds every RNG and the data position as of the last completed step,
  also on Ctrl-C mid-step (see checkpoint.py). A resumed run may change [train], e.g. to train longer.
- Every neural rung (``trained_by = "trainer"`` in minillm.models) trains here the same way. Count-based
  rungs (``trained_by = "fit"``: pattern, markov) get the same tokenizer, streams and encoded QA pairs in
  a ``FitData`` and fit in one pass; their run directory has fit.json instead of a checkpoint.
- Left out: gradient checkpointing; the models here fit one device easily.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from minillm.checkpoint import STATE_FILE, load_train_state, rng_state, save_train_state, set_rng_state, trim_metrics
from minillm.config import Config, load_config, save_config
from minillm.data.records import InputError, append_jsonl, atomic_write
from minillm.models import LanguageModel, model_class
from minillm.models.base import load_weights, save_weights
from minillm.tokenizer import Tokenizer
from minillm.train_data import (
    IGNORE_INDEX,
    QABatches,
    TextBatches,
    fit_data,
    fixed_qa_batches,
    fixed_text_batches,
    pretrain_tokens,
    qa_examples,
    tokenizer_file,
)

PHASES = ("pretrain", "finetune")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run directory still holds the last good checkpoint."""


@dataclass
class TrainResult:
    out_dir: Path
    steps: int  # optimizer steps completed over the whole run, both phases
    best_val_loss: float | None  # of the weights in model.safetensors
    final_losses: dict[str, float]  # "train" (last step), "val_text", "val_qa" where there is data
    seconds: float  # wall time of this call, data preparation included
    tokens: int  # tokens trained on in this call, padding included
    tokens_per_s: float  # of those, per second of training steps (evaluation and checkpoints excluded)


def resolve_device(name: str) -> torch.device:
    """``auto`` = cuda > mps > cpu; a device this machine lacks is an InputError."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{name}': CUDA is not available on this machine (try cpu or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device '{name}': MPS is not available on this machine (try cpu or auto)")
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, name)


def lr_at(step: int, total: int, peak: float, floor: float, warmup: int) -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then cosine decay to ``floor`` at step ``total``."""
    warmup = min(warmup, total)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (1 + math.cos(math.pi * progress)) * (peak - floor)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross entropy; targets equal to -100 (prompt, padding) are ignored."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices; not biases, norm gains (1-D) or embeddings (tied output weights included)."""
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    decay, no_decay = [], []
    for p in model.parameters():  # shared (tied) parameters come once
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _due(step: int, total: int, interval: int) -> bool:
    """At the end of a phase, and every ``interval`` steps (0 = only at the end)."""
    return step == total or (interval > 0 and step % interval == 0)


def _run_config(cfg: Config | None, run_dir: Path) -> Config:
    """On resume: the run's config.toml, whose [train] section ``cfg`` may replace (to train longer)."""
    saved = load_config(run_dir / "config.toml")
    if cfg is None:
        return saved
    for section in ("data", "tokenizer", "model"):
        ours, theirs = getattr(cfg, section), getattr(saved, section)
        if section == "model" and not ours.get("vocab_size"):
            ours = {**ours, "vocab_size": theirs["vocab_size"]}
        if ours != theirs:
            raise InputError(f"{run_dir / 'config.toml'}: [{section}] differs from the given config; "
                             "a resumed run can change only [train]")
    return replace(saved, train=cfg.train)


class _Trainer:
    """The state of one ``train`` call; methods are the steps of the loop in ``run``."""

    def __init__(self, cfg: Config, run_dir: Path, tok: Tokenizer, device: torch.device, progress: bool,
                 started: float):
        self.cfg, self.run_dir, self.tok, self.device, self.progress = cfg, run_dir, tok, device, progress
        t = cfg.train
        random.seed(t.seed)
        np.random.seed(t.seed)
        torch.manual_seed(t.seed)
        self.data_rng = torch.Generator().manual_seed(t.seed)
        self.model = model_class(cfg.arch)(cfg.model_config()).to(device)
        self.forward = torch.compile(self.model) if t.compile else self.model
        self.dtype = resolve_dtype(t.dtype, device)
        self.autocast = (torch.autocast(device.type, dtype=self.dtype) if self.dtype != torch.float32
                         else nullcontext())
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, t.weight_decay), lr=t.lr,
                                           betas=(t.beta1, t.beta2), fused=device.type == "cuda")
        self.phase, self.step, self.best = PHASES[0], 0, None
        self.elapsed_before, self.started = 0.0, started
        self._load_data()
        self.position = self._position()

    def _load_data(self) -> None:
        cfg, tok_bytes = self.cfg, (self.run_dir / "tokenizer.json").read_bytes()
        t, seq_len, pad = cfg.train, cfg.model["max_seq_len"], self.tok.pad_id
        self.train_batches, self.val_batches = {}, {}
        if t.pretrain_steps:
            text, val_text = pretrain_tokens(cfg, self.tok, tok_bytes)
            self.train_batches["pretrain"] = TextBatches(text, t.batch_size, seq_len, self.data_rng)
            if val_text is not None:
                self.val_batches["val_text"] = list(fixed_text_batches(val_text, t.eval_batches,
                                                                       t.batch_size, seq_len))
        if t.finetune_steps:
            qa = qa_examples(cfg.data.train_qa, cfg, self.tok, tok_bytes)
            self.train_batches["finetune"] = QABatches(qa, t.batch_size, pad, self.data_rng)
            if cfg.data.val_qa:
                val_qa = qa_examples(cfg.data.val_qa, cfg, self.tok, tok_bytes)
                self.val_batches["val_qa"] = list(fixed_qa_batches(val_qa, t.eval_batches, t.batch_size, pad))

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
        metadata = {"model": self.model.name, "config": json.dumps(dataclasses.asdict(self.model.config))}
        save_weights(self.model, self.run_dir / name, metadata)

    def save_checkpoint(self) -> None:
        self.save_weights("last.safetensors")
        state = {**self.position, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "best": self.best, "elapsed": self.elapsed}
        save_train_state(state, self.run_dir)
        no_best_yet = not (self.run_dir / "model.safetensors").exists()
        if no_best_yet or self._selection_metric() not in self.val_batches:
            self.save_weights("model.safetensors")

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
        self.model.eval()
        losses = {}
        for name, batches in self.val_batches.items():
            total, count = 0.0, 0
            for x, y in batches:
                with self.autocast:
                    logits = self.forward(x.to(self.device))
                total += lm_loss(logits, y.to(self.device), reduction="sum").item()
                count += int((y != IGNORE_INDEX).sum())
            losses[name] = total / count
        self.model.train()
        metric = self._selection_metric()
        if metric in losses and (self.best is None or losses[metric] < self.best):
            self.best = losses[metric]
            self.save_weights("model.safetensors")
        return losses

    # --- the loop ----------------------------------------------------------------------------------------

    def train_step(self, batches, lr: float) -> tuple[float, int]:
        """One optimizer step over ``grad_accum`` micro-batches; returns (loss, tokens)."""
        t = self.cfg.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum, tokens = torch.zeros((), device=self.device), 0
        for _ in range(t.grad_accum):
            x, y = batches.next()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self.autocast:
                logits = self.forward(x)
            loss = lm_loss(logits, y) / t.grad_accum
            self.scaler.scale(loss).backward()
            loss_sum += loss.detach()
            tokens += x.numel()
        loss_value = loss_sum.item()
        if not math.isfinite(loss_value):
            self.optimizer.zero_grad(set_to_none=True)
            kept = (f"{self.run_dir} keeps the last good checkpoint" if (self.run_dir / STATE_FILE).exists()
                    else "no checkpoint was saved before")
            raise TrainingDiverged(f"{self.phase} step {self.step + 1}: loss is {loss_value}; stopped, "
                                   f"{kept} (try a lower train.lr)")
        if t.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value, tokens

    def log(self, record: dict) -> None:
        record = {"event": record.pop("event"), "phase": self.phase, "step": self.step,
                  "global_step": self.global_step(), **record, "elapsed": round(self.elapsed, 3)}
        append_jsonl(self.run_dir / "metrics.jsonl", [record])

    def global_step(self) -> int:
        done = sum(getattr(self.cfg.train, f"{p}_steps") for p in PHASES[:PHASES.index(self.phase)])
        return done + self.step

    def run(self, max_steps: int | None) -> TrainResult:
        t = self.cfg.train
        bar = tqdm(total=t.pretrain_steps + t.finetune_steps, initial=self.global_step(), unit="step",
                   disable=not self.progress, dynamic_ncols=True)
        call = {"steps": 0, "tokens": 0, "seconds": 0.0, "loss": math.nan, "eval": {}}
        window = {"tokens": 0, "seconds": 0.0}  # throughput since the last log line
        try:
            for phase in PHASES[PHASES.index(self.phase):]:
                if phase != self.phase:
                    self.phase, self.step = phase, 0
                    self.best = None  # fine-tuned weights compete only with each other
                    self.position = self._position()
                total = getattr(t, f"{phase}_steps")
                peak = t.lr if phase == "pretrain" else t.finetune_peak_lr
                while self.step < total:
                    if max_steps is not None and call["steps"] >= max_steps:
                        self.save_checkpoint()
                        return self._result(call)
                    lr = lr_at(self.step, total, peak, t.min_lr * peak / t.lr, t.warmup_steps)
                    tic = time.perf_counter()
                    loss, tokens = self.train_step(self.train_batches[phase], lr)
                    seconds = time.perf_counter() - tic
                    self.step += 1
                    self.position = self._position()
                    bar.update()
                    for totals in (call, window):
                        totals.update(tokens=totals["tokens"] + tokens, seconds=totals["seconds"] + seconds)
                    call.update(steps=call["steps"] + 1, loss=loss)
                    if _due(self.step, total, t.log_interval):
                        rate = window["tokens"] / window["seconds"]
                        bar.set_postfix(phase=phase, loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}")
                        self.log({"event": "train", "loss": loss, "lr": lr, "tokens_per_s": round(rate, 1)})
                        window = {"tokens": 0, "seconds": 0.0}
                    if self.val_batches and _due(self.step, total, t.eval_interval):
                        call["eval"] = self.evaluate()
                        self.log({"event": "eval", **{f"{k}_loss": v for k, v in call["eval"].items()}})
                    if _due(self.step, total, t.checkpoint_interval):
                        self.save_checkpoint()
        except KeyboardInterrupt:
            self.save_checkpoint()  # as of the last completed step: resume redoes the interrupted one
            raise
        finally:
            bar.close()
        return self._result(call)

    def _result(self, call: dict) -> TrainResult:
        losses = {"train": call["loss"]} if call["steps"] else {}
        losses.update(call["eval"])
        rate = call["tokens"] / call["seconds"] if call["seconds"] else 0.0
        return TrainResult(out_dir=self.run_dir, steps=self.global_step(), best_val_loss=self.best,
                           final_losses=losses, seconds=time.perf_counter() - self.started,
                           tokens=call["tokens"], tokens_per_s=rate)


def train(cfg: Config | None, out_dir: str | Path, *, resume: bool = False, device: str | None = None,
          progress: bool = True, max_steps: int | None = None) -> TrainResult:
    """Train (or with ``resume``, continue) the run in ``out_dir``; see the module docstring.

    ``cfg`` may be None when resuming (the run's config.toml is used); a given cfg may change only [train].
    ``device`` overrides ``train.device``. ``max_steps`` stops after that many steps of this call, with a
    checkpoint, so that a later ``resume`` continues. Raises InputError for bad input or a bad run
    directory, TrainingDiverged when the loss becomes NaN/inf.
    """
    started, run_dir = time.perf_counter(), Path(out_dir)
    arch = (cfg if cfg is not None else load_config(run_dir / "config.toml")).arch
    if model_class(arch).trained_by == "fit":
        return _fit(cfg, run_dir, resume, started)
    if resume:
        cfg = _run_config(cfg, run_dir)
        target = resolve_device(device or cfg.train.device)
        state = load_train_state(run_dir)
        tok = Tokenizer.load(run_dir / "tokenizer.json")
    else:
        if cfg is None:
            raise ValueError("train() needs a Config unless resume=True")
        target = resolve_device(device or cfg.train.device)  # before any work is done
        if (run_dir / STATE_FILE).exists():
            raise InputError(f"{run_dir}: already holds a run (train_state.pt); resume it or pick another "
                             "output directory")
        cfg, tok = _start_run(cfg, run_dir)
        state = None
    trainer = _Trainer(cfg, run_dir, tok, target, progress, started)
    if state is not None:
        trainer.restore(state)
        trim_metrics(run_dir, trainer.global_step())
    return trainer.run(max_steps)


def _start_run(cfg: Config, run_dir: Path) -> tuple[Config, Tokenizer]:
    """Create the run directory with its tokenizer.json and resolved config.toml."""
    source = tokenizer_file(cfg)
    tok = Tokenizer.load(source)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(run_dir / "tokenizer.json", "wb") as fh:  # the same bytes: same cache keys
        fh.write(source.read_bytes())
    vocab_size = cfg.model["vocab_size"]
    if vocab_size == 0:
        cfg = replace(cfg, model={**cfg.model, "vocab_size": tok.vocab_size})
    elif vocab_size < tok.vocab_size:
        raise InputError(f"{source}: {tok.vocab_size} tokens do not fit model.vocab_size = {vocab_size}; "
                         "set it to 0 to take the tokenizer's")
    save_config(cfg, run_dir / "config.toml")
    return cfg, tok


FIT_FILE = "fit.json"  # a count-based run's summary; its presence marks the run as done


def _fit(cfg: Config | None, run_dir: Path, resume: bool, started: float) -> TrainResult:
    """A count-based rung: one pass of ``model.fit`` over the data the Trainer would use, then save."""
    if resume:
        raise InputError(f"{run_dir}: a {(cfg or load_config(run_dir / 'config.toml')).arch} model is fitted "
                         "in one pass; there is nothing to resume (train again into a new directory)")
    if (run_dir / FIT_FILE).exists() or (run_dir / STATE_FILE).exists():
        raise InputError(f"{run_dir}: already holds a run; pick another output directory")
    cfg, tok = _start_run(cfg, run_dir)
    data = fit_data(cfg, tok, (run_dir / "tokenizer.json").read_bytes())
    model = model_class(cfg.arch)(cfg.model_config())
    summary = model.fit(data) or {}
    model.save(run_dir)
    seconds = time.perf_counter() - started
    tokens = len(data.text) + sum(len(q) for q in data.qa)
    record = {"event": "fit", "phase": "fit", "step": 0, "global_step": 0, **summary,
              "tokens": tokens, "elapsed": round(seconds, 3)}
    append_jsonl(run_dir / "metrics.jsonl", [record])
    with atomic_write(run_dir / FIT_FILE, "w") as fh:
        json.dump(record, fh, indent=2)
    losses = {k.removesuffix("_loss"): v for k, v in summary.items()
              if k.endswith("_loss") and isinstance(v, float)}
    return TrainResult(out_dir=run_dir, steps=0, best_val_loss=losses.get("val_qa", losses.get("val_text")),
                       final_losses=losses, seconds=seconds, tokens=tokens,
                       tokens_per_s=tokens / seconds if seconds else 0.0)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[LanguageModel, Tokenizer, Config]:
    """The model (eval mode, weights of model.safetensors), tokenizer and config of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such run directory")
    cfg = load_config(run_dir / "config.toml")
    tok = Tokenizer.load(run_dir / "tokenizer.json")
    cls = model_class(cfg.arch)
    if cls.trained_by == "fit":
        if not (run_dir / FIT_FILE).is_file():
            raise InputError(f"{run_dir / FIT_FILE}: no such file (the {cfg.arch} fit did not finish)")
        model = cls.load(run_dir)
        return (model.to(resolve_device(device)) if hasattr(model, "to") else model), tok, cfg
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise InputError(f"{weights}: no such file (has the run saved a checkpoint yet?)")
    model = cls(cfg.model_config())
    load_weights(model, weights)
    return model.to(resolve_device(device)).eval(), tok, cfg
