"""Pruning of a neural run: zero its smallest weights, or remove whole FFN neurons; optionally fine-tune after.

    >>> prune_run("runs/quickstart", "runs/quickstart-p50", sparsity=0.5)
    'pruned 50% of the weights of each of ... matrices (L1 magnitude): ... nonzero parameters, weights ...'
    >>> prune_run("runs/quickstart", "runs/quickstart-ffn", sparsity=0.5, structured="ffn", finetune_steps=200)
    'pruned 50% of the FFN neurons (ffn_dim ...): ..., 200 recovery steps (val QA loss 1.52 -> 1.61 -> 1.55) ...'
    >>> model, tok, cfg = load_run("runs/quickstart-p50")   # dense float32 again as it loads

Unstructured (the default): ``torch.nn.utils.prune.l1_unstructured`` on every weight matrix (each
nn.Linear and nn.Embedding: token and position embeddings, the linear layers, the output head), with the
same ``sparsity`` for each, so each matrix keeps exactly ``n - round(sparsity * n)`` of its ``n`` weights, the
largest in magnitude. Vectors (norm gains, biases) are left alone. Stored in safetensors so that zeros cost
nothing: each pruned matrix NAME becomes

    NAME.mask    uint8, the matrix's nonzero pattern in row-major order, 8 a byte, the first in the lowest bit
                 (numpy.packbits(..., bitorder="little")): rows * cols / 8 bytes
    NAME.values  the nonzero weights in row-major order, in the weight's dtype (float32)

and the metadata's ``pruning`` (JSON) names the matrices with their shapes, beside the usual ``model`` and
``config``. ``models.base.load_weights`` unpacks such a file into dense matrices, so every command takes the
pruned run unchanged. Float32 values plus a one-bit mask: 1/32 + (1 - sparsity) of the dense bytes, 0.53x
at sparsity 0.5 (int32 indices would cost 4 bytes per nonzero where the mask costs 1/8 byte per weight).

Structured, ``--structured ffn``: each block drops the ``round(sparsity * ffn_dim)`` hidden neurons of its
feed-forward layer with the lowest importance ``|up row, with its bias| * |down column|`` (times
``|gate row, with its bias|`` for SwiGLU), L2 norms: a neuron's output is its activation times its down
column, and its activation grows with its input weights. A neuron whose down column is zero counts 0 and
goes first: removing it leaves the logits as they were. The result is a smaller dense model, written as an
ordinary run with the smaller ``ffn_dim`` in its config.toml; its metadata's ``pruning`` only records what
was done (no matrices to unpack).

Recovery, ``finetune_steps``: the pruned model trains for that many steps of the run's own QA fine-tuning
phase (its config.toml's [data] and [train], at ``finetune_lr``) through training/trainer.py's Trainer, in a scratch
folder, with pretraining skipped and compile off. Unstructured masks stay in force during training
(``torch.nn.utils.prune``'s forward pre-hooks multiply each weight by its mask, so pruned weights get no
gradient and stay zero); ``prune.remove`` makes them plain weights again before saving. The val QA loss
is measured (as the Trainer's evaluation: summed over the val split's answer tokens of ``eval_batches``
fixed batches, in float32) before pruning, after pruning and after recovery, reported in the summary
and kept in the metadata. The final weights are saved, not the best evaluated ones. Pruning alone reads
nothing but the run; recovery also reads the run's QA files.

Design choices:
- Per matrix, not global: the embeddings (normal(0, 0.02) init) and the xavier-initialised linear layers
  live on different scales, so one global magnitude threshold would empty the embedding tables first.
- Bad input raises InputError before anything is written; the run is written whole or not at all
  (``atomic_directory``). It keeps the original's config (changed only in ffn_dim), tokenizer, retrieval
  index and metrics, not its training state: it cannot be resumed, only used.
- A pruned or quantized run is not pruned again: prune the original.

Left out (InputError): ``--structured heads``: fewer heads of the same width need a head_dim separate from
emb_dim // num_heads, which ModelConfig, the KV cache and the hf/onnx/gguf exports would all have to
honour. ``--structured vocab``: dropping the rows of tokens the data never produces means remapping the
tokenizer's ids and pruning its BPE merges so that no input can still produce a dropped token.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune
from torch.utils.hooks import RemovableHandle

from minillm.compress import copy_kept
from minillm.core.device import resolve_device
from minillm.core.errors import InputError
from minillm.core.files import atomic_directory, check_new_output
from minillm.models import MiniTransformer, model_class
from minillm.models.weights import (
    WEIGHTS_FILE,
    read_weights_metadata,
    tensor_bytes,
    weights_metadata,
    write_safetensors,
)
from minillm.tokenizer import Tokenizer
from minillm.training.config import Config, load_config, save_config
from minillm.training.data import IGNORE_INDEX
from minillm.training.distributed import Ranks
from minillm.training.runs import CONFIG_FILE, TOKENIZER_FILE, load_run
from minillm.training.steps import summed_nll
from minillm.training.trainer import Trainer

STRUCTURED = ("ffn", "heads", "vocab")
NOT_SUPPORTED = {
    "heads": "removing attention heads is not supported yet: fewer heads of the same width need a head_dim "
             "apart from emb_dim // num_heads, which the model config, its KV cache and the exports lack",
    "vocab": "dropping vocabulary rows is not supported yet: the tokenizer's ids would have to be remapped and "
             "its BPE merges pruned so that no input can still produce a dropped token",
}


# --- unstructured: magnitude masks, stored as bits and values -------------------------------------------------


def weight_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose ``weight`` matrix is pruned: every nn.Linear and nn.Embedding, each shared one once."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Embedding)]


def prune_magnitude(model: nn.Module, sparsity: float) -> RemovableHandle:
    """Mask the ``round(sparsity * n)`` smallest-magnitude weights of each matrix; the masks stay in force until
    ``unmask``. torch.nn.utils.prune recomputes ``weight = weight_orig * weight_mask`` in a pre-hook of each
    module's forward, but MiniTransformer reads ``lm_head.weight`` without calling lm_head (one path with tied
    embeddings), so one pre-hook on the whole model recomputes every masked weight before each forward."""
    methods = [(module, prune.L1Unstructured.apply(module, "weight", amount=sparsity))
               for _, module in weight_modules(model)]

    def remask(_model: nn.Module, inputs: tuple) -> None:
        for module, method in methods:
            method(module, inputs)

    return model.register_forward_pre_hook(remask)


def unmask(model: nn.Module, handle: RemovableHandle) -> None:
    """Make the masked weights plain parameters again, pruned entries zero."""
    handle.remove()
    for _, module in weight_modules(model):
        prune.remove(module, "weight")


def pack(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask: uint8 bits of the nonzeros, row-major, first in the lowest bit; values: the nonzeros)."""
    flat = w.detach().cpu().reshape(-1)
    nonzero = flat != 0
    return torch.from_numpy(np.packbits(nonzero.numpy(), bitorder="little")), flat[nonzero].contiguous()


def pack_state(tensors: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """The stored tensors of a state dict whose matrices ``names`` are packed (the others as they are)."""
    stored = {}
    for name, t in tensors.items():
        if name in names:
            stored[f"{name}.mask"], stored[f"{name}.values"] = pack(t)
        else:
            stored[name] = t.contiguous()
    return stored


# --- structured: FFN neurons ------------------------------------------------------------------------------


def _row_norms(linear: nn.Linear) -> torch.Tensor:
    """L2 norm of each output row of a linear layer, its bias included."""
    w = linear.weight if linear.bias is None else torch.cat([linear.weight, linear.bias[:, None]], dim=1)
    return w.norm(dim=1)


@torch.no_grad()
def ffn_importance(mlp: nn.Module) -> torch.Tensor:
    """Per hidden neuron of a transformer MLP: |up row| * |down column| (* |gate row| for SwiGLU)."""
    score = _row_norms(mlp.up) * mlp.down.weight.norm(dim=0)
    return score if mlp.gate is None else score * _row_norms(mlp.gate)


@torch.no_grad()
def prune_ffn(model: MiniTransformer, sparsity: float) -> MiniTransformer:
    """A copy of ``model`` with each block's ``round(sparsity * ffn_dim)`` least important FFN neurons removed."""
    hidden = model.config.hidden_dim
    keep = hidden - round(sparsity * hidden)
    pruned = MiniTransformer(replace(model.config, ffn_dim=keep))
    state = model.state_dict()
    for i, block in enumerate(model.blocks):
        kept = ffn_importance(block.mlp).topk(keep).indices.sort().values  # neurons keep their order
        prefix = f"blocks.{i}.mlp."
        for name in ("up.weight", "up.bias", "gate.weight", "gate.bias"):
            if prefix + name in state:
                state[prefix + name] = state[prefix + name][kept]
        state[prefix + "down.weight"] = state[prefix + "down.weight"][:, kept]
    pruned.load_state_dict(state)
    return pruned.eval()


# --- recovery ---------------------------------------------------------------------------------------------


def recovery_trainer(cfg: Config, run_dir: Path, scratch: Path, steps: int) -> Trainer:
    """The Trainer of the run's QA fine-tuning phase alone, ``steps`` long, writing only into ``scratch``."""
    shutil.copy2(run_dir / TOKENIZER_FILE, scratch / TOKENIZER_FILE)
    train = replace(cfg.train, pretrain_steps=0, finetune_steps=steps, compile=False, eval_interval=0,
                    checkpoint_interval=0)
    return Trainer(replace(cfg, train=train), scratch, Tokenizer.load(scratch / TOKENIZER_FILE),
                    resolve_device(train.device), progress=False, started=time.perf_counter(), ranks=Ranks())


@torch.no_grad()
def val_qa_loss(model: nn.Module, batches: list, device: torch.device) -> float:
    """Mean loss over the answer tokens of the val QA batches (the Trainer's evaluation, in float32)."""
    training = model.training
    model.eval()
    total = sum(summed_nll(model, model, x.to(device), y.to(device)).item() for x, y in batches)
    model.train(training)
    return total / sum(int((y != IGNORE_INDEX).sum()) for _, y in batches)


def recover(original: nn.Module, model: nn.Module, cfg: Config, run_dir: Path, steps: int,
            sparsity: float | None) -> tuple[nn.Module, list[float]]:
    """``model`` fine-tuned for ``steps`` of the run's QA phase, first masked at ``sparsity`` (unless None) with
    the masks in force throughout; returns it on the CPU with the val QA losses of ``original``, of the pruned
    model and of the recovered one ([] without a val split)."""
    with tempfile.TemporaryDirectory(prefix="minillm-prune-") as scratch:
        trainer = recovery_trainer(cfg, run_dir, Path(scratch), steps)
        trainer.model.load_state_dict(model.state_dict())
        model, device, val = trainer.model, trainer.device, trainer.val_batches.get("val_qa")
        masks = prune_magnitude(model, sparsity) if sparsity is not None else None
        losses = [val_qa_loss(original.to(device), val, device), val_qa_loss(model, val, device)] if val else []
        trainer.run(None)
        losses += [val_qa_loss(model, val, device)] if val else []
    if masks is not None:
        unmask(model, masks)
    return model.cpu(), losses


# --- the command ------------------------------------------------------------------------------------------


def _check(run_dir: Path, out_dir: Path, sparsity: float | None, structured: str | None,
           finetune_steps: int) -> Config:
    """The run's config, or InputError for anything ``prune_run`` refuses."""
    if structured is not None and structured not in STRUCTURED:
        raise InputError(f"--structured: unknown {structured!r}; choose one of {', '.join(STRUCTURED)}")
    if structured in NOT_SUPPORTED:
        raise InputError(f"--structured {structured}: {NOT_SUPPORTED[structured]}")
    if sparsity is None:
        raise InputError("--sparsity: required for a neural run: the share of weights (with --structured ffn: "
                         "of FFN neurons) to remove, in (0, 1)")
    if not 0 < sparsity < 1:  # NaN too
        raise InputError(f"--sparsity: must be a number in (0, 1), got {sparsity}")
    if finetune_steps < 0:
        raise InputError(f"--finetune-steps: must be 0 or more, got {finetune_steps}")
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(f"{run_dir}: not a run directory (no config.toml)")
    cfg = load_config(run_dir / CONFIG_FILE)
    if model_class(cfg.arch).trained_by != "trainer":
        raise InputError(f"{run_dir}: a {cfg.arch} run has no neural weights to prune; only transformer, "
                         "attention and mlp runs do")
    if structured == "ffn" and cfg.arch != "transformer":
        raise InputError(f"--structured ffn: {run_dir} is an {cfg.arch} run, which has no feed-forward "
                         "layer; only transformer runs do")
    metadata = read_weights_metadata(run_dir / WEIGHTS_FILE)
    if "quantization" in metadata:
        bits = json.loads(metadata["quantization"])["bits"]
        raise InputError(f"{run_dir / WEIGHTS_FILE}: already quantized ({bits}-bit); prune the original run, "
                         "then quantize the pruned one")
    if "pruning" in metadata:
        raise InputError(f"{run_dir / WEIGHTS_FILE}: already pruned ({_what(json.loads(metadata['pruning']))}); "
                         "prune the original run")
    check_new_output(out_dir)
    return cfg


def _what(pruning: dict) -> str:
    unit = "FFN neurons" if pruning["method"] == "ffn" else "weights of each matrix"
    return f"{pruning['sparsity']:.0%} of the {unit}"


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n / 1e3:.1f}k"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def prune_run(run_dir: str | Path, out_dir: str | Path, sparsity: float | None = None,
              structured: str | None = None, finetune_steps: int = 0) -> str:
    """Write ``out_dir``: the run in ``run_dir`` pruned (see the module docstring); return a one-line summary.

    Raises InputError for a bad sparsity or option, a run that is not a neural one or is already pruned or
    quantized, ``structured="ffn"`` on a run without FFN layers, or an ``out_dir`` that exists and is not
    empty; nothing is written then."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    cfg = _check(run_dir, out_dir, sparsity, structured, finetune_steps)
    original, _, _ = load_run(run_dir)
    params_before, bytes_before, hidden = (original.num_parameters(), tensor_bytes(original.state_dict()),
                                           getattr(original.config, "hidden_dim", None))
    pruning = {"method": structured or "magnitude", "sparsity": sparsity, "finetune_steps": finetune_steps}
    model = original
    if structured == "ffn":
        removed = round(sparsity * hidden)
        if not 0 < removed < hidden:
            raise InputError(f"--sparsity {sparsity}: would remove {removed} of the {hidden} FFN neurons of "
                             "each block; choose a share that removes some and keeps some")
        model = prune_ffn(original, sparsity)
        cfg = replace(cfg, model={**cfg.model, "ffn_dim": model.config.ffn_dim})
        pruning["ffn_dim"] = [hidden, model.config.ffn_dim]
    losses = []
    if finetune_steps:
        model, losses = recover(original, model, cfg, run_dir, finetune_steps,
                                sparsity if structured is None else None)
    elif structured is None:
        unmask(model, prune_magnitude(model, sparsity))
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    matrices = {}  # packed as NAME.mask and NAME.values, by shape
    if structured is None:
        matrices = {f"{name}.weight": list(m.weight.shape) for name, m in weight_modules(model)}
        pruning["format"] = "bitmask"
    stored = pack_state(tensors, list(matrices))
    pruning.update(tensors=matrices, val_qa_loss=losses)
    with atomic_directory(out_dir) as staging:
        copy_kept(run_dir, staging)
        if structured is not None:
            save_config(cfg, staging / CONFIG_FILE)  # the smaller ffn_dim
        write_safetensors(staging / WEIGHTS_FILE, stored, {**weights_metadata(model), "pruning": json.dumps(pruning)})

    bytes_after = tensor_bytes(stored)
    if structured is None:
        zeros = sum(int((tensors[name] == 0).sum()) for name in matrices)
        summary = (f"pruned {sparsity:.0%} of the weights of each of {len(matrices)} matrices (L1 magnitude): "
                   f"{_count(params_before)} -> {_count(params_before - zeros)} nonzero parameters")
    else:
        summary = (f"pruned {sparsity:.0%} of the FFN neurons (ffn_dim {hidden} -> {model.config.ffn_dim}): "
                   f"{_count(params_before)} -> {_count(model.num_parameters())} parameters")
    summary += f", weights {_size(bytes_before)} -> {_size(bytes_after)} ({bytes_after / bytes_before:.2f}x)"
    if finetune_steps:
        summary += f", {finetune_steps} recovery steps"
        if losses:
            summary += f" (val QA loss {' -> '.join(f'{loss:.2f}' for loss in losses)})"
    return f"{summary} -> {out_dir}"
