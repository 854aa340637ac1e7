"""Checks for transformer_block.py: ``python docs/exercises/check_transformer_block.py [FILE]`` (default:
transformer_block.py).

The block is compared with two references given the same weights: minillm's own ``Block``
(src/minillm/models/transformer.py) and PyTorch's ``nn.TransformerEncoderLayer`` built as a pre-norm GELU
layer (``norm_first=True``) with a causal mask, which is the same computation written by someone else.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from minillm.models.transformer import Block, ModelConfig


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_layer(p: dict[str, torch.Tensor], emb_dim: int, num_heads: int, hidden: int) -> nn.Module:
    """nn.TransformerEncoderLayer holding the weights ``p`` (named as minillm's Block names them)."""
    layer = nn.TransformerEncoderLayer(emb_dim, num_heads, hidden, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True, dtype=torch.float64)
    names = {"linear1": "mlp.up", "linear2": "mlp.down", "norm1": "norm1", "norm2": "norm2",
             "self_attn.out_proj": "attn.out_proj"}
    state = {f"{theirs}.{part}": p[f"{ours}.{part}"] for theirs, ours in names.items() for part in ("weight", "bias")}
    for part in ("weight", "bias"):  # torch keeps q, k and v as one stacked projection
        state[f"self_attn.in_proj_{part}"] = torch.cat([p[f"attn.{n}_proj.{part}"] for n in "qkv"])
    layer.load_state_dict(state)
    return layer.eval()


def check(module: ModuleType) -> None:
    """Raises (AssertionError, or whatever the module raises) unless ``module`` solves the exercise."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=10, max_seq_len=16, emb_dim=24, num_layers=1, num_heads=3, ffn_dim=40)
    block = Block(config).double().eval()
    with torch.no_grad():
        for param in block.parameters():  # away from the init's ones and zeros, so that every weight matters
            param.add_(torch.randn_like(param) * 0.3)
    p = {name: t.detach() for name, t in block.named_parameters()}
    x = torch.randn(2, 7, config.emb_dim, dtype=torch.float64)
    with torch.no_grad():
        got = module.block_forward(x, p, config.num_heads)
        want = block(x, None, None, 0)
        mask = nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.float64)
        layer = torch_layer(p, config.emb_dim, config.num_heads, config.hidden_dim)
        theirs = layer(x, src_mask=mask, is_causal=True)
    assert got.shape == want.shape, f"output shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    assert torch.allclose(got, want, atol=1e-9), "output differs from minillm's Block with the same weights"
    assert torch.allclose(got, theirs, atol=1e-9), \
        "output differs from torch's TransformerEncoderLayer(norm_first=True)"
    later = x.clone()
    later[:, 5:] = 0.0
    with torch.no_grad():
        moved = module.block_forward(later, p, config.num_heads)
    assert torch.allclose(moved[:, :5], got[:, :5], atol=1e-9), "a later position changed an earlier output"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("transformer_block.py")
    check(load(target))
    print(f"{target}: all checks pass")
