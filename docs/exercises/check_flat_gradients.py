"""Checks for flat_gradients.py: ``python docs/exercises/check_flat_gradients.py [FILE]`` (default:
flat_gradients.py).

``flat_grad`` is compared with PyTorch's ``parameters_to_vector`` of the gradients. Then four workers, copies
of one model, each take a quarter of a batch; after ``all_reduce_mean`` and ``load_flat_grad`` every worker must
hold the gradient of the whole batch's mean loss, as autograd computes it on one model.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20, 8), nn.Flatten(), nn.Linear(24, 16), nn.Tanh(), nn.Linear(16, 20)).double()
    ids, targets = torch.randint(0, 20, (16, 3)), torch.randint(0, 20, (16,))
    F.cross_entropy(model(ids), targets).backward()
    whole = [p.grad.clone() for p in model.parameters()]

    flat = module.flat_grad(model)
    assert flat.dim() == 1, f"flat_grad: a 1-D tensor, got shape {tuple(flat.shape)}"
    assert torch.equal(flat, parameters_to_vector([p.grad for p in model.parameters()])), \
        "flat_grad differs from parameters_to_vector of the gradients (order: model.parameters())"

    workers = [copy.deepcopy(model) for _ in range(4)]
    for rank, worker in enumerate(workers):
        worker.zero_grad()
        share = slice(4 * rank, 4 * rank + 4)
        F.cross_entropy(worker(ids[share]), targets[share]).backward()
    buffers = [module.flat_grad(worker) for worker in workers]
    assert not torch.allclose(buffers[0], buffers[1]), "two workers' gradients should differ before the all-reduce"
    kept = list(buffers)
    module.all_reduce_mean(buffers)
    assert all(b is k for b, k in zip(buffers, kept, strict=True)), "all_reduce_mean must change the buffers in place"
    for worker, buffer in zip(workers, buffers, strict=True):
        module.load_flat_grad(worker, buffer)
        for (name, p), want in zip(worker.named_parameters(), whole, strict=True):
            assert p.grad.shape == p.shape, f"{name}: gradient shape {tuple(p.grad.shape)}, expected {tuple(p.shape)}"
            assert torch.allclose(p.grad, want, atol=1e-12), \
                f"{name}: after the all-reduce a worker's gradient is not the whole batch's"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("flat_gradients.py")
    check(load(target))
    print(f"{target}: all checks pass")
