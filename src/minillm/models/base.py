"""The interface every rung implements, and safetensors weight files for the neural rungs.

Design choices:
- ``LanguageModel`` is a ``typing.Protocol``: rungs do not inherit from it, they only have its members,
  so a torch ``nn.Module`` (transformer, mlp) and a plain count-based class (markov) both fit. It is
  ``runtime_checkable``, so ``isinstance(model, LanguageModel)`` checks that the members are there.
- Training is not part of the interface: neural rungs are ``nn.Module``s trained by the one Trainer,
  count-based rungs fit in one pass with their own ``fit(FitData)``. Each class also names its
  ``config_class`` and ``trained_by`` ("trainer" or "fit"); see models/__init__.py.
- ``generate`` takes its limits (max_new_tokens, temperature, ...) in one ``minillm.engine.Sampling``.
- Weights are safetensors, never pickle; writing is atomic (temp file in the same dir, fsync, rename).
  The state dict is saved as it is, so it must not hold one tensor under two names: the transformer ties
  and shares weights by reusing modules, not by aliasing parameters.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import safetensors
import safetensors.torch
import torch
from torch import nn

from minillm.data.records import InputError, atomic_write

if TYPE_CHECKING:
    import numpy as np

    from minillm.config import TrainConfig
    from minillm.data.records import Article
    from minillm.engine import Sampling
    from minillm.tokenizer import Tokenizer

WEIGHTS_FILE = "model.safetensors"


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
    train: TrainConfig | None = None  # the [train] settings, for a rung with a loop of its own (bert)


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


def read_weights_config(path: Path, name: str, config_class: type) -> object:
    """The ``config_class`` stored in a weights file's metadata by ``weights_metadata``; InputError naming
    the file when it is not a ``name`` weights file or its config does not validate."""
    metadata = read_weights_metadata(path)
    if metadata.get("model") != name or "config" not in metadata:
        raise InputError(f"{path}: not a {name} weights file (no model config in its metadata)")
    try:
        return config_class(**json.loads(metadata["config"]))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: field 'config': {exc}") from exc


def weights_metadata(model: nn.Module) -> dict[str, str]:
    """What a weights file says about its model: the rung's name and its config as JSON."""
    return {"model": model.name, "config": json.dumps(dataclasses.asdict(model.config))}


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """Bytes of the tensors' data (a weights file's, without its header)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


def weights_size_bytes(model: nn.Module) -> int:
    """Bytes of tensor data ``save_weights`` writes (the state dict; non-persistent buffers are not saved)."""
    return tensor_bytes(model.state_dict())


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write the model's state dict to a safetensors file, atomically."""
    write_safetensors(path, {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()},
                      metadata)


def write_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
                      ) -> None:
    """tensors as a safetensors file, atomically. Serialized to bytes first, then written by atomic_write:
    safetensors' own save_file reports a full disk as a SafetensorError rather than an OSError, and makes
    the file 0600."""
    data = safetensors.torch.save(tensors, metadata=metadata)
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def read_weights_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a safetensors file's header."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such weights file") from exc
    except safetensors.SafetensorError as exc:
        raise InputError(f"{path}: not a safetensors file ({exc})") from exc


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a safetensors file into the model; names and shapes must match exactly. A quantized file
    (minillm compress quantize) is dequantized to float32 first, a pruned one (minillm compress prune) made
    dense, and the model remembers its stored bytes."""
    try:
        tensors = safetensors.torch.load_file(str(path))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such weights file") from exc
    except safetensors.SafetensorError as exc:
        raise InputError(f"{path}: not a safetensors file ({exc})") from exc
    metadata = read_weights_metadata(path)
    stored_bytes = tensor_bytes(tensors)
    if "quantization" in metadata:
        from minillm.compress.quantize import dequantize_state

        try:
            tensors = dequantize_state(tensors, json.loads(metadata["quantization"]))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InputError(f"{path}: field 'quantization': not a quantized minillm model ({exc!r})") from exc
        model.stored_bytes = stored_bytes
    if "pruning" in metadata:
        from minillm.compress.prune import unpack_state

        try:
            tensors = unpack_state(tensors, json.loads(metadata["pruning"]))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise InputError(f"{path}: field 'pruning': not a pruned minillm model ({exc!r})") from exc
        model.stored_bytes = stored_bytes
    expected = model.state_dict()
    problems = [f"missing {name!r}" for name in expected if name not in tensors]
    problems += [f"unexpected {name!r}" for name in tensors if name not in expected]
    problems += [f"{name!r} has shape {tuple(t.shape)}, the model needs {tuple(expected[name].shape)}"
                 for name, t in tensors.items() if name in expected and t.shape != expected[name].shape]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise InputError(f"{path}: weights do not fit this model: {shown}")
    model.load_state_dict(tensors)
