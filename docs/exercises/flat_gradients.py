"""Exercise (scaling page): what data parallelism does to the gradients, in one flat buffer. Fill in three
functions.

Check your work with ``python docs/exercises/check_flat_gradients.py`` (it runs the checks on this file).

Under DDP every worker holds the same model and computes gradients on its own share of the batch; after the
backward pass the gradients are averaged across workers (an all-reduce), so that every copy takes the same
step. With equal shares, the average of the workers' gradients is the gradient of the whole batch's loss.
DDP copies the gradients into buckets for the all-reduce; experiments/gpu/README.md names "one flat gradient
buffer all-reduced once after the backward" as a route it did not try. Here it is, with the workers
simulated as copies of a model in one process.
"""

from __future__ import annotations

import torch
from torch import nn


def flat_grad(model: nn.Module) -> torch.Tensor:
    """One 1-D tensor holding every parameter's .grad, flattened, in the order of model.parameters()."""
    raise NotImplementedError("flatten each gradient and concatenate")


def load_flat_grad(model: nn.Module, flat: torch.Tensor) -> None:
    """Copy ``flat`` back into the parameters' .grad, each piece shaped like its parameter."""
    raise NotImplementedError("walk the parameters, taking numel() values at a time")


def all_reduce_mean(buffers: list[torch.Tensor]) -> None:
    """Replace every worker's buffer, in place, by the mean of all of them (an all-reduce, then / workers)."""
    raise NotImplementedError("sum them, divide by the number of workers, copy into each")
