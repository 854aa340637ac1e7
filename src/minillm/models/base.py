"""The interface every rung implements, and safetensors weight files for the neural rungs.

Design choices:
- ``LanguageModel`` is a ``typing.Protocol``: rungs do not inherit from it, they only have its members,
  so a torch ``nn.Module`` (transformer, mlp) and a plain count-based class (markov) both fit. It is
  ``runtime_checkable``, so ``isinstance(model, LanguageModel)`` checks that the members are there.
- Training is not part of the interface: neural rungs are ``nn.Module``s trained by the one Trainer,
  count-based rungs fit in one pass with their own ``fit(FitData)``. Each class also names its
  ``config_class`` and ``trained_by`` ("trainer" or "fit"); see models/__init__.py.
- ``generate`` takes its limits (max_new_tokens, temperature, ...) in one ``minillm.models.generation.Sampling``.
- Weights are safetensors, never pickle; writing is atomic (temp file in the same dir, fsync, rename).
  The state dict is saved as it is, so it must not hold one tensor under two names: the transformer ties
  and shares weights by reusing modules, not by aliasing parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    import numpy as np

    from minillm.data.records import Article
    from minillm.models.generation import Sampling
    from minillm.tokenizer import Tokenizer
    from minillm.training.config import TrainConfig

from minillm.models.generation import Sampling
from minillm.models.weights import (
    WEIGHTS_FILE,
    load_weights,
    read_weights_config,
    save_weights,
    weights_metadata,
    weights_size_bytes,
)


@runtime_checkable
class LanguageModel(Protocol):
    name: str  # registry name, e.g. "transformer"

    @property
    def max_seq_len(self) -> int:
        """The longest sequence, prompt plus answer, the model can read."""
        ...

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids[:, t] | ids[:, :t]) for t = 1..T-1 of ids (B, T): shape (B, T-1)."""
        ...

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        """New token ids, one at a time; stops at eos (not yielded) and at the limits in ``sampling``."""
        ...

    def num_parameters(self) -> int:
        """Learned numbers, each shared or tied tensor counted once."""
        ...

    def size_bytes(self) -> int:
        """Bytes of the saved weights (tensor data, without the file header)."""
        ...

    def save(self, run_dir: str | Path) -> Path:
        """Write the model into run_dir; return the file written."""
        ...

    @classmethod
    def load(cls, run_dir: str | Path) -> LanguageModel:
        """Rebuild a model saved with ``save``."""
        ...


@dataclass
class FitData:
    """What a count-based rung (``trained_by = "fit"``) learns from, as the Trainer prepares it for the
    neural rungs: the same tokenizer, the same pretraining stream and the same encoded QA pairs."""

    tokenizer: Tokenizer
    text: np.ndarray  # pretraining token stream: the training articles joined with <eos>
    val_text: np.ndarray | None  # the held-out articles' stream (None: too little held out)
    qa: list[list[int]]  # [bos] prompt answer [eos] of every training pair (and open-book copies with qa_context)
    qa_answer_start: list[int]  # index in qa[i] of the first answer token
    val_qa: list[list[int]] = field(default_factory=list)  # the val split, encoded the same way
    val_qa_answer_start: list[int] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)  # the training articles ([] with data.text)
    seed: int = 0  # train.seed: every random choice of fit draws from it
    train: TrainConfig | None = None  # the [train] settings, for a rung with an objective of its own (bert)
    # training's loop, minimize(parameters, steps, peak_lr, loss_of, train) -> mean recent loss (bert)
    minimize: Callable[..., float] | None = None
    # training's run loader, load_run(run_dir) -> (model, tokenizer, config), for a rung built on another
    # run (hybrid): a model never loads runs itself
    load_run: Callable[[str], tuple] | None = None


class TorchRung(nn.Module):
    """The members every neural rung shares: a rung is ``class X(TorchRung)`` with ``name``, ``config_class``,
    ``__init__(config)`` (kept as ``self.config``), ``forward(ids) -> logits`` and ``generate``."""

    name: str
    trained_by = "trainer"
    config_class: type
    # forward(ids, targets=y) returns each target's negative log-likelihood (B, T), 0 where ignored: the
    # Trainer then never asks for the full (B, T, vocab) output (see MiniTransformer's copy head)
    scores_targets = False
    stored_bytes: int | None = None  # tensor data of a quantized or pruned weights file it was loaded from

    @property
    def max_seq_len(self) -> int:
        return self.config.max_seq_len

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(ids[:, t] | ids[:, :t]) for t = 1..T-1, shape (B, T-1)."""
        logits = self(ids[:, :-1]).float()
        return logits.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() yields each shared tensor once

    def size_bytes(self) -> int:
        return self.stored_bytes if self.stored_bytes is not None else weights_size_bytes(self)

    def save(self, run_dir: str | Path) -> Path:
        """Write run_dir/model.safetensors with the config in its metadata, so the file rebuilds the model."""
        path = Path(run_dir) / WEIGHTS_FILE
        save_weights(self, path, weights_metadata(self))
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> TorchRung:
        path = Path(run_dir) / WEIGHTS_FILE
        model = cls(read_weights_config(path, cls.name, cls.config_class))
        load_weights(model, path)
        return model


def init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
