"""Knowledge distillation: train a smaller student run on a trained teacher run's next-token distributions.

    >>> distill("runs/quickstart", "tiny-cpu", "runs/student", temperature=2.0, alpha=0.5,
    ...         overrides=["model.emb_dim=64", "model.num_layers=1", "model.ffn_dim=192",
    ...                    "train.pretrain_steps=200", "train.finetune_steps=50"])
    'distilled runs/quickstart (1.49M) into runs/student (0.58M): 250 steps, val QA loss 3.88, val text loss ...'

The student trains exactly as ``minillm train --config STUDENT --set ...`` would train it (the same phases,
steps, data, optimizer and schedule: it is the one Trainer of training/trainer.py), except for the loss of each
micro-batch, summed over the positions the usual loss scores (the Trainer divides by their count):

    (1 - alpha) * cross entropy(student, targets) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

Design choices:
- Hinton et al. (2015): the T^2 keeps the soft term's gradients on the scale of the hard term's whatever T,
  so alpha alone sets the mix. alpha = 0 is the usual loss, alpha = 1 the teacher's distribution alone.
- The teacher reads each micro-batch itself, in eval mode under no_grad, on the student's device (under the
  Trainer's autocast on CUDA): no precomputed outputs, which would be (tokens x vocab) numbers. Eval mode
  draws no random numbers, so the student's dropout masks are those of plain training. Any neural run can
  teach (transformer, attention, mlp), larger or trained on a GPU; its max_seq_len must cover the student's.
  A copy-head teacher outputs log-probabilities, which are valid logits: softmax(log p / T) is its tempered
  distribution.
- The KL term needs the whole distribution at every scored position, so the student runs ``model(ids)``,
  the full (B, T, vocab) output, rather than the ``model(ids, targets=y)`` fast path (for a copy head that
  path never forms the mixture); its hard term is ``lm_loss`` of that output, the loss of a rung without the
  fast path. The cost is the fast path's saving: a copy-head student's step is slower than plain training.
  With alpha = 0 the loss is exactly ``lm_loss`` of the full output, equal to the fast path's to float
  rounding.
- One vocabulary: the student's ``data.tokenizer`` is the teacher's tokenizer.json and its vocab_size the
  teacher's (an InputError if the student config sets another).
- Validation losses, and the choice of model.safetensors, stay the usual loss: a distilled run and a plainly
  trained one compare directly. The logged train loss is the distillation loss.
- The student is a normal run directory. Its config.toml opens with a commented ``[distill]`` table
  (teacher as given, temperature, alpha): a comment, because load_config accepts only the four sections it
  knows, so every command reads the run unchanged. ``minillm train --resume`` of a stopped distillation
  continues with the usual loss, without the teacher.
- The teacher must be good at what the student is scored on. Measured on two CPU cores (T = 2, alpha = 0.5),
  a student of tiny-cpu at emb_dim 64, 1 layer, ffn_dim 192, no copy head, 300 + 50 steps, against the same
  config trained alone with the same tokenizer and steps (held-out bits/byte, seeds 1337 and 2):
  taught by the ladder's ``modern`` run (1.48M, held-out bits/byte 1.68), 2.018 and 2.031 distilled against
  2.090 and 2.089 alone (-3%), val QA loss 4.93 against 5.18; taught by the quickstart run (copy head,
  fine-tuned until its held-out text loss rose to 4.5 nats), 2.33 against 2.24 alone: that teacher's text
  distribution is worse than what the student learns by itself. A distillation step costs about 2.4x a
  plain one (the teacher's forward and the student's full output).
- Left out: several processes (DDP), matching hidden states or attention maps, and a teacher whose
  tokenizer differs from the student's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import tomli_w
import torch

from minillm.core.device import resolve_device
from minillm.core.errors import InputError
from minillm.core.files import atomic_write, check_new_output
from minillm.models import model_class
from minillm.training.config import load_config, shipped_config
from minillm.training.data import IGNORE_INDEX
from minillm.training.runs import CONFIG_FILE, TOKENIZER_FILE, load_run
from minillm.training.steps import lm_loss
from minillm.training.trainer import train


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, temperature: float,
                 alpha: float) -> torch.Tensor:
    """(1 - alpha) * cross entropy + alpha * T^2 * KL(teacher_T || student_T), summed over the targets that
    are not ignored; ``student`` and ``teacher`` are logits (B, T, vocab), ``targets`` (B, T)."""
    scored = targets != IGNORE_INDEX
    log_p_student = (student[scored].float() / temperature).log_softmax(-1)
    log_p_teacher = (teacher[scored].float() / temperature).log_softmax(-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum()
    return (1 - alpha) * lm_loss(student, targets, reduction="sum") + alpha * temperature ** 2 * kl


class DistillLoss:
    """The Trainer's training loss while distilling: called as ``summed_nll(forward, model, x, y)`` is."""

    def __init__(self, teacher: torch.nn.Module, temperature: float, alpha: float):
        self.teacher, self.temperature, self.alpha = teacher.eval(), temperature, alpha

    def __call__(self, forward: torch.nn.Module, model: torch.nn.Module, x: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher = self.teacher(x)
        return distill_loss(forward(x), teacher, y, self.temperature, self.alpha)


def distill(teacher: str | Path, config: str | Path, out: str | Path, *, overrides: list[str] | tuple[str, ...] = (),
            temperature: float = 2.0, alpha: float = 0.5, device: str | None = None) -> str:
    """Train the student run ``out`` (config ``config`` with ``overrides``) on the teacher run ``teacher``;
    returns a one-line summary. Every bad input is an InputError raised before anything is written."""
    teacher, out = Path(teacher), Path(out)
    if not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"--temperature must be a positive number, got {temperature}")
    if not 0 <= alpha <= 1:
        raise InputError(f"--alpha must be in [0, 1], got {alpha}")
    check_new_output(out)
    if not (teacher / CONFIG_FILE).is_file():
        raise InputError(f"{teacher}: not a run directory (no config.toml)")
    teacher_cfg = load_config(teacher / CONFIG_FILE)
    if model_class(teacher_cfg.arch).trained_by != "trainer":
        raise InputError(f"{teacher}: a {teacher_cfg.arch} run has no next-token distribution to distill; "
                         "the teacher must be a neural run (transformer, attention, mlp)")
    cfg = load_config(shipped_config(str(config)), overrides)
    if model_class(cfg.arch).trained_by != "trainer":
        raise InputError(f"{config}: the student must be a neural run (transformer, attention, mlp), "
                         f"not {cfg.arch}")
    vocab_size = teacher_cfg.model["vocab_size"]
    if cfg.model["vocab_size"] not in (0, vocab_size):
        raise InputError(f"{config}: model.vocab_size = {cfg.model['vocab_size']} differs from the teacher's "
                         f"{vocab_size}; set it to 0 (the student takes the teacher's tokenizer)")
    if cfg.model["max_seq_len"] > teacher_cfg.model["max_seq_len"]:
        raise InputError(f"{config}: model.max_seq_len = {cfg.model['max_seq_len']} is longer than the "
                         f"teacher's {teacher_cfg.model['max_seq_len']}")
    target = str(resolve_device(device or cfg.train.device))
    teacher_model, _, _ = load_run(teacher, device=target)
    cfg = replace(cfg, data=replace(cfg.data, tokenizer=str(teacher / TOKENIZER_FILE)),
                  model={**cfg.model, "vocab_size": vocab_size})

    try:
        result = train(cfg, out, device=target, loss=DistillLoss(teacher_model, temperature, alpha))
    finally:
        if (out / CONFIG_FILE).is_file():
            _record(out / CONFIG_FILE, teacher, temperature, alpha)
    student, _, _ = load_run(out)
    losses = "".join(f", {name} loss {result.final_losses[key]:.2f}"
                     for key, name in (("val_qa", "val QA"), ("val_text", "val text")) if key in result.final_losses)
    return (f"distilled {teacher} ({teacher_model.num_parameters() / 1e6:.2f}M) into {out} "
            f"({student.num_parameters() / 1e6:.2f}M): {result.steps:,} steps{losses} -> {out}")


def _record(config_toml: Path, teacher: Path, temperature: float, alpha: float) -> None:
    """Open the run's config.toml with a commented [distill] table saying how the run was trained."""
    table = tomli_w.dumps({"distill": {"teacher": str(teacher), "temperature": temperature, "alpha": alpha}})
    lines = ["# trained by minillm compress distill (a comment: load_config reads four sections only)",
             *(f"# {line}" for line in table.splitlines())]
    text = "\n".join(lines) + "\n\n" + config_toml.read_text(encoding="utf-8")
    with atomic_write(config_toml, "w") as fh:
        fh.write(text)
