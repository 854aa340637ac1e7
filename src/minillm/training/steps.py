"""The pieces of a training step: the learning-rate schedule, the losses, the weight-decay groups, and
``minimize``, the small loop a rung that trains outside the Trainer (bert) is handed through ``FitData``.

Design choices:
- One schedule for every rung (linear warmup, cosine decay to a floor), so a rung that has its own
  objective still trains on the same [train] settings as the Trainer's.
- ``minimize`` is deliberately plain (AdamW, clip, no mixed precision, no checkpoints): a count-based
  rung's fit runs in one pass and is not resumed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from minillm.training.config import TrainConfig
from minillm.training.data import IGNORE_INDEX


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


def summed_nll(forward: torch.nn.Module, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The summed next-token loss of a batch, ignored targets left out. ``forward`` runs ``model`` (itself,
    compiled or DDP-wrapped); a rung that ``scores_targets`` scores the targets alone."""
    if getattr(model, "scores_targets", False):
        return forward(x, targets=y).sum()
    return lm_loss(forward(x), y, reduction="sum")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices; not biases, norm gains (1-D) or embeddings (tied output weights included)."""
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    decay, no_decay = [], []
    for p in model.parameters():  # shared (tied) parameters come once
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def minimize(parameters: Iterable[torch.nn.Parameter], steps: int, peak: float,
             loss_of: Callable[[], torch.Tensor], train: TrainConfig) -> float:
    """``steps`` AdamW steps on ``loss_of()`` under the [train] schedule (peak lr ``peak``, floor
    ``train.min_lr`` scaled as the Trainer scales it), weight decay on matrices only, gradients clipped at
    ``train.grad_clip``; returns the mean of the last 50 losses (NaN with no step). FloatingPointError when
    the loss stops being finite."""
    parameters = list(parameters)
    decay, rest = [p for p in parameters if p.dim() >= 2], [p for p in parameters if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=peak, betas=(train.beta1, train.beta2))
    floor, recent = train.min_lr * peak / train.lr, []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, peak, floor, train.warmup_steps)
        loss = loss_of()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_(parameters, train.grad_clip)
        opt.step()
        recent = (recent + [loss.item()])[-50:]
    return sum(recent) / len(recent) if recent else float("nan")
