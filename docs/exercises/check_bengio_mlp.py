"""Checks for bengio_mlp.py: ``python docs/exercises/check_bengio_mlp.py [FILE]`` (default: bengio_mlp.py).

The logits are compared with minillm's own ``MLPLanguageModel`` (src/minillm/models/mlp.py) given the same
weights, and position t must not move when a token older than its window changes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from minillm.models.mlp import MLPConfig, MLPLanguageModel


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    torch.manual_seed(0)
    config = MLPConfig(vocab_size=30, max_seq_len=16, context=4, emb_dim=6, hidden_dim=16)
    model = MLPLanguageModel(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():  # larger than the init, so that every weight matters
            p.copy_(torch.randn_like(p) * 0.5)
    weights = (model.tok_emb.weight, model.hidden[0].weight, model.hidden[0].bias, model.lm_head.weight,
               model.lm_head.bias)
    ids = torch.randint(0, config.vocab_size, (3, 11))
    with torch.no_grad():
        want = model(ids)
        got = module.mlp_logits(ids, *weights, config.context)
    assert got.shape == want.shape, f"logits shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    full = config.context - 1  # from here on every window lies inside the sequence
    assert torch.allclose(got[:, full:], want[:, full:], atol=1e-10), \
        "logits differ from MLPLanguageModel with the same weights (is the window concatenated oldest first?)"
    assert torch.allclose(got, want, atol=1e-10), \
        "the first positions differ: before the sequence starts, a window reads the before-start row (emb[-1])"
    changed = ids.clone()
    changed[:, 0] = (ids[:, 0] + 1) % config.vocab_size  # older than the window of positions >= context
    with torch.no_grad():
        moved = module.mlp_logits(changed, *weights, config.context)
    assert torch.allclose(moved[:, config.context:], got[:, config.context:], atol=1e-10), \
        f"a token more than {config.context - 1} positions back changed a later output: the window is too wide"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("bengio_mlp.py")
    check(load(target))
    print(f"{target}: all checks pass")
