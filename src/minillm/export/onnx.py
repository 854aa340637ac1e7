"""`minillm export onnx RUN --out model.onnx [--int8]`: a neural run as an ONNX decoder with a KV cache.

    >>> export_onnx("runs/tiny-cpu", "model.onnx")
    'wrote model.onnx (5.9 MB, 2 layers, KV cache: past_key_values.N.key/value) — onnxruntime loads it'
    >>> onnx_greedy("model.onnx", prompt_ids, max_new_tokens=40, eos_id=tok.eos_id)  # as model.generate

The graph's inputs and outputs are named as Hugging Face's exporters (optimum) name a decoder's:

    inputs   input_ids                    int64   (batch, seq)
             attention_mask               int64   (batch, past + seq), all ones (see below)
             past_key_values.N.key/value  float32 (batch, heads, past, head_dim)   N = 0 .. num_layers - 1
    outputs  logits                       float32 (batch, seq, vocab)
             present.N.key/value          float32 (batch, heads, past + seq, head_dim)

batch, seq and past are dynamic axes (batch_size, sequence_length, past_sequence_length). The first call
passes empty past tensors (past = 0) with the whole prompt; every later call passes the previous call's
present.* as past_key_values.* with the new token(s). Positions, learned or rotary, start at the past length.

A transformer with a copy head (``copy_head = true``) also caches what its pointer looks back at:

    inputs   past_copy.key   float32 (batch, past, head_dim)   the pointer keys of the tokens read so far
             past_copy.ids   int64   (batch, past)             those tokens' ids (what the pointer copies)
    outputs  present_copy.key, present_copy.ids                the same with the new tokens appended

and its logits are the log-probabilities of the generator-pointer mixture (softmax gives the probabilities
back, argmax the same token). ``share_layers`` models still have one cache slot per layer. The mlp rung has
no attention and no cache: its graph is input_ids (+ attention_mask) -> logits over the whole sequence,
each position reading its window of ``context`` tokens; it is fed the whole sequence every step.

Design choices:
- The model's own forward is exported, not a re-implementation: ``_PastCache`` has engine.KVCache's
  interface (pos, update, update_copy, advance) over the past tensors given as inputs, returning past and new
  keys concatenated, and ``_Decoder`` wraps the model in a module taking and returning the flat tensors.
- Exporter: ``torch.onnx.export(dynamo=True)`` (torch.export), the dynamic axes given as named ``Dim``s,
  which torch.onnx turns into ``Dim.DYNAMIC`` (their ranges inferred from the trace, no constraint error).
  The attention code branches in Python on ``past == 0`` and ``T == 1``; the example input (batch 2, 3 new
  tokens after 4 cached ones: no size 0 or 1, which torch.export specialises, and no two sizes equal)
  takes the general branch, an explicit (seq, past + seq) lower-triangular mask that is also right when
  past = 0 (causal) and when seq = 1 (every key visible). The ONNX graph keeps none of torch.export's
  range guards; tests check batch 1, past 0 and seq 1 against minillm's logits. The TorchScript exporter
  (dynamo=False) was tried: it drops the unused attention_mask input from the graph and bakes the Python
  branches into the trace as constants (TracerWarnings).
- attention_mask is accepted, as onnxruntime-genai and optimum always pass it, but not read: only all-ones
  masks are supported, i.e. no padding; batch rows must have the same length (a mask with zeros gives the
  same logits as all ones).
- past + seq must stay within the run's max_seq_len, as in minillm (which raises): beyond it onnxruntime
  fails or, for one position too many, may broadcast a position silently. ``minillm.max_seq_len`` (and
  ``minillm.arch``) are in the model's metadata_props; ``onnx_greedy`` stops there as engine.generate does.
- One self-contained file (no external data): the runs are a few MB, far from ONNX's 2 GB limit.
- ``--int8``: onnxruntime's ``quantize_dynamic`` (int8 weights, activations quantized on the fly) on the
  float32 export; only the int8 file is written to --out.
- Written whole or not at all: export (and quantization) happen in a temporary folder beside --out, the
  file is loaded by onnxruntime there, then renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from minillm.core.errors import InputError, disk_full_names
from minillm.core.files import check_new_output
from minillm.core.numbers import human_bytes
from minillm.core.quiet import quiet
from minillm.export import neural_run, require

if TYPE_CHECKING:
    import onnxruntime

# the example input the graph is traced with: see "Exporter" in the module docstring
EXAMPLE_BATCH, EXAMPLE_SEQ, EXAMPLE_PAST = 2, 3, 4


class _PastCache:
    """engine.KVCache's interface over past tensors given as graph inputs, for one forward call: ``pos`` is
    the past length, ``update``/``update_copy`` return past and new concatenated and keep them as the
    presents (in call order: layer 0 key, value, layer 1 ..., then the copy head's keys and ids)."""

    def __init__(self, past: tuple[torch.Tensor, ...]):
        self.past = past
        self.pos = past[0].size(2)
        self.present: list[torch.Tensor] = []

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.cat([self.past[2 * layer], k], dim=2)
        v = torch.cat([self.past[2 * layer + 1], v], dim=2)
        self.present += [k, v]
        return k, v

    def update_copy(self, keys: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.cat([self.past[-2], keys], dim=1)
        ids = torch.cat([self.past[-1], ids], dim=1)
        self.present += [keys, ids]
        return keys, ids

    def advance(self, num_tokens: int) -> None:
        """Nothing to do: the next call gets the presents as its past."""


class _Decoder(nn.Module):
    """(input_ids, attention_mask, past tensors) -> (logits, *present tensors), through the model's forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                past: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        cache = _PastCache(past)
        logits = self.model(input_ids, kv_cache=cache)
        return logits, *cache.present


class _NoCache(nn.Module):
    """(input_ids, attention_mask) -> logits, for the mlp rung."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)


def has_copy_head(config: Any) -> bool:
    return getattr(config, "copy_head", False)  # the attention rung's config has no such field


def cache_names(model: nn.Module) -> list[str]:
    """The cache inputs' names in graph order (none for the mlp rung); the outputs are the same names with
    ``present`` for ``past``."""
    if model.name == "mlp":
        return []
    names = [f"past_key_values.{i}.{kv}" for i in range(model.config.num_layers) for kv in ("key", "value")]
    if has_copy_head(model.config):
        names += ["past_copy.key", "past_copy.ids"]
    return names


def present_name(past_name: str) -> str:
    """past_key_values.0.key -> present.0.key, past_copy.ids -> present_copy.ids."""
    return past_name.replace("past_key_values.", "present.").replace("past_copy.", "present_copy.")


def export_onnx(run_dir: str | Path, out: str | Path, *, int8: bool = False) -> str:
    """Write the run's model to ``out`` as ONNX (int8 weights with ``int8``); returns a one-line summary."""
    for module in ("onnx", "onnxscript"):  # what torch.onnx.export(dynamo=True) needs: a clear line if missing
        require(module, "onnx")
    onnxruntime = require("onnxruntime", "onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = check_new_output(out)
    if out.is_dir():
        raise InputError(f"{out}: is a folder; give the .onnx file to write")
    model, _, _ = neural_run(run_dir, "onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    with disk_full_names(out), quiet(), \
            tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp") as tmp:
        written = Path(tmp) / "model.onnx"
        _export(model, written)
        if int8:
            quantized = Path(tmp) / "model.int8.onnx"
            quantize_dynamic(written, quantized, weight_type=QuantType.QInt8)
            written = quantized
        onnxruntime.InferenceSession(written, providers=["CPUExecutionProvider"])
        os.replace(written, out)
    size = human_bytes(out.stat().st_size) + (", int8 weights" if int8 else "")
    if model.name == "mlp":
        return f"wrote {out} ({size}, mlp: input_ids -> logits, no KV cache) — onnxruntime loads it"
    layers = model.config.num_layers
    cache = "past_key_values.N.key/value" + (" + past_copy.key/ids" if has_copy_head(model.config) else "")
    return (f"wrote {out} ({size}, {layers} layer{'s' if layers > 1 else ''}, KV cache: {cache}) — "
            "onnxruntime loads it")


def _export(model: nn.Module, path: Path) -> None:
    """torch.onnx.export (dynamo) of the decoder around ``model`` to ``path``, with minillm's metadata."""
    from torch.export import Dim

    config = model.config
    batch, seq, past = Dim("batch_size"), Dim("sequence_length"), Dim("past_sequence_length")
    ids = torch.zeros(EXAMPLE_BATCH, EXAMPLE_SEQ, dtype=torch.long)
    if model.name == "mlp":
        wrapper: nn.Module = _NoCache(model)
        args: tuple[Any, ...] = (ids, torch.ones_like(ids))
        dynamic_shapes: tuple[Any, ...] = ({0: batch, 1: seq}, {0: batch, 1: seq})
        input_names, output_names = ["input_ids", "attention_mask"], ["logits"]
    else:
        kv_shape = (EXAMPLE_BATCH, config.num_heads, EXAMPLE_PAST, config.head_dim)
        past_tensors = [torch.zeros(kv_shape) for _ in range(2 * config.num_layers)]
        past_axes = [{0: batch, 2: past}] * (2 * config.num_layers)
        if has_copy_head(config):
            past_tensors += [torch.zeros(EXAMPLE_BATCH, EXAMPLE_PAST, config.head_dim),
                             torch.zeros(EXAMPLE_BATCH, EXAMPLE_PAST, dtype=torch.long)]
            past_axes += [{0: batch, 1: past}] * 2
        wrapper = _Decoder(model)
        args = (ids, torch.ones(EXAMPLE_BATCH, EXAMPLE_PAST + EXAMPLE_SEQ, dtype=torch.long), tuple(past_tensors))
        dynamic_shapes = ({0: batch, 1: seq}, {0: batch, 1: Dim("total_sequence_length")}, tuple(past_axes))
        input_names = ["input_ids", "attention_mask", *cache_names(model)]
        output_names = ["logits", *map(present_name, cache_names(model))]
    program = torch.onnx.export(wrapper.eval(), args, dynamo=True, input_names=input_names,
                                output_names=output_names, dynamic_shapes=dynamic_shapes, verbose=False)
    program.model.metadata_props.update({"minillm.arch": model.name, "minillm.max_seq_len": str(config.max_seq_len)})
    program.save(path, external_data=False)


def onnx_greedy(model: str | Path | onnxruntime.InferenceSession, prompt_ids: list[int], max_new_tokens: int,
                eos_id: int | None = None, *, use_cache: bool = True) -> list[int]:
    """Greedy new token ids after prompt_ids from an exported model (a path, or an onnxruntime
    InferenceSession), with engine.generate's stop rules: eos (not returned), max_new_tokens, max_seq_len.

    With ``use_cache`` the prompt is read once with empty past tensors and every later step feeds one token
    with the previous step's presents; without it (and always for the mlp rung, which has no cache) every
    step feeds the whole sequence with empty past tensors."""
    import onnxruntime

    session = model
    if isinstance(model, str | Path):
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    max_seq_len = int(session.get_modelmeta().custom_metadata_map["minillm.max_seq_len"])
    if not prompt_ids:
        raise ValueError("the prompt is empty: give at least one token (e.g. bos)")
    if len(prompt_ids) >= max_seq_len:
        raise ValueError(f"the prompt has {len(prompt_ids)} tokens but max_seq_len is {max_seq_len}: "
                         "no room for an answer")
    empty = {i.name: _empty(i) for i in session.get_inputs() if i.name not in ("input_ids", "attention_mask")}
    use_cache = use_cache and bool(empty)
    output_names = [o.name for o in session.get_outputs()]
    ids, past, cached = list(prompt_ids), empty, 0  # cached: how many of ids the past tensors hold
    new_ids: list[int] = []
    while True:
        outputs = session.run(None, {"input_ids": np.array([ids[cached:]], dtype=np.int64),
                                     "attention_mask": np.ones((1, len(ids)), dtype=np.int64), **past})
        if use_cache:
            presents = dict(zip(output_names, outputs, strict=True))
            past, cached = {name: presents[present_name(name)] for name in empty}, len(ids)
        token = int(outputs[0][0, -1].argmax())
        if token == eos_id:
            return new_ids
        new_ids.append(token)
        ids.append(token)
        if len(new_ids) == max_new_tokens or len(ids) == max_seq_len:
            return new_ids


def _empty(node: Any) -> np.ndarray:
    """An empty past tensor (batch 1, past length 0) for a cache input of an onnxruntime session."""
    shape = [1] + [d if isinstance(d, int) else 0 for d in node.shape[1:]]
    return np.zeros(shape, dtype=np.int64 if node.type == "tensor(int64)" else np.float32)
