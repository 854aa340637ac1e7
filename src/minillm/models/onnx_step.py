"""MiniTransformer's decoding as two ONNX graphs for onnxruntime: the engine's faster backend on a CPU.

    decoder = OnnxStepDecoder(step_graphs(model, folder))    # exported into folder once per weights
    ids = list(generate(model, prompt_ids, sampling, eos_id=tok.eos_id, decoder=decoder))

    prompt graph  input_ids (1, T)  ->  logits (1, vocab) after the last token, present.N.key/value ...
    step graph    input_ids (1, 1), past_key_values.N.key/value (1, heads, past, head_dim) ...
                  ->  logits (1, vocab), present.N.key/value (past + 1 positions) ...
    (a copy head adds past_copy.key/ids and present_copy.key/ids, as export/onnx.py names them)

Why graphs of their own and not ``minillm export onnx``'s: the export is the model's forward for any number
of new tokens after any past, with the mask built for that general case, and the logits of every position.
The prompt graph reads a prompt from an empty cache (causal attention, no mask) and keeps the last
position's logits; the step graph reads one token (no mask at all), joins q/k/v and gate/up as DecodeStep
does, and uses opset 23's RMSNormalization and Attention: 100 nodes to the export's 214, and a step in
about 0.7 of the export's time (measured figures: experiments/README.md).

Design choices:
- The prompt graph is the model's own forward (``logits_to_keep=1``) with ``PromptCache`` recording the
  keys and values; the step graph (``StepGraph``) is DecodeStep.one's arithmetic with the cache as tensors
  in and out (concatenated: ONNX has no in-place update), its norms one operator each (Norm.fused, which
  the exporter writes as RMSNormalization). Positions are the past length.
- onnxruntime's arithmetic is not torch's: logits agree to about 1e-6, not to the bit, so a near-tie could
  in principle pick another token; tests and bench_generate.py compare the ids.
- ``step_graphs`` keeps the graphs in a folder under a hash of the weights and config (and this file's
  ``GRAPH_VERSION``): the exports (torch.onnx, a few seconds each) happen once per weights file, each
  written to a temporary file and renamed, so a crash never leaves half a graph.
- onnxruntime, onnx and onnxscript are imported when used (the [export] extra); answering/engine.py says
  what happens where they are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minillm.core.quiet import quiet
from minillm.models.decode_step import DecodeStep

GRAPH_VERSION = "1"  # change when StepGraph changes: graphs kept from before are then not reused
OPSET = 23  # RMSNormalization and Attention
EXAMPLE_PAST = 5  # the past length the graph is traced with (not 0 or 1, which torch.export specialises)


def cache_names(config: Any) -> list[str]:
    names = [f"past_key_values.{i}.{kv}" for i in range(config.num_layers) for kv in ("key", "value")]
    return names + (["past_copy.key", "past_copy.ids"] if config.copy_head else [])


def present_names(config: Any) -> list[str]:
    return [n.replace("past_key_values.", "present.").replace("past_copy.", "present_copy.")
            for n in cache_names(config)]


class StepGraph(nn.Module):
    """(input_ids (1, 1), *past) -> (logits (1, vocab), *presents): DecodeStep.one with the cache as tensors."""

    def __init__(self, step: DecodeStep):
        super().__init__()
        self.step = step

    def forward(self, input_ids: torch.Tensor, past: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        step = self.step
        heads, head_dim = step.heads, step.head_dim
        pos = past[0].size(2)
        x = F.embedding(input_ids, step.tok_emb)
        if step.pos_emb is not None:
            x = x + step.pos_emb[pos:pos + 1]
        presents: list[torch.Tensor] = []
        for layer, weights in enumerate(step.layers):
            qkv = F.linear(weights.norm1.fused(x), weights.qkv, weights.qkv_bias)
            qkv = qkv.view(1, 3 * heads, 1, head_dim)
            qk, v = qkv[:, :2 * heads], qkv[:, 2 * heads:]
            if step.rotary is not None:
                cos, sin = step.rotary[0][pos:pos + 1], step.rotary[1][pos:pos + 1]
                x1, x2 = qk.chunk(2, dim=-1)
                qk = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
            keys = torch.cat([past[2 * layer], qk[:, heads:]], dim=2)
            values = torch.cat([past[2 * layer + 1], v], dim=2)
            presents += [keys, values]
            y = F.scaled_dot_product_attention(qk[:, :heads], keys, values)
            x = x + F.linear(y.view(1, 1, step.dim), weights.out, weights.out_bias)
            x = x + step.mlp(weights, weights.norm2.fused(x))
        x = step.norm_f.fused(x)
        logits = F.linear(x, step.head)
        if step.copy is not None:
            dim = step.copy.dim
            query_key = F.linear(x, step.pointer_qk)
            keys = torch.cat([past[-2], query_key[:, :, dim:]], dim=1)
            ids = torch.cat([past[-1], input_ids], dim=1)
            presents += [keys, ids]
            scores = query_key[..., :dim] @ keys[:, :-1].transpose(1, 2) / step.sqrt_dim
            gen = torch.sigmoid(F.linear(x, step.copy.gate.weight, step.copy.gate.bias))
            probs = (logits.softmax(-1) * gen).scatter_add(2, ids[:, None, 1:], (1 - gen) * scores.softmax(-1))
            logits = probs.clamp_min(1e-30).log()
        return logits[:, 0], *presents


class PromptCache:
    """KVCache's interface for a prompt read from nothing: each layer's keys and values kept as presents."""

    pos = 0

    def __init__(self) -> None:
        self.present: list[torch.Tensor] = []

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.present += [k, v]
        return k, v

    def update_copy(self, keys: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.present += [keys, ids]
        return keys, ids

    def advance(self, num_tokens: int) -> None:
        """Nothing to do: the presents are the graph's outputs."""


class PromptGraph(nn.Module):
    """(input_ids (1, T)) -> (logits (1, vocab) after the last token, *presents): the model's own forward
    on a prompt, from an empty cache, keeping only the last position's logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cache = PromptCache()
        logits = self.model(input_ids, kv_cache=cache, logits_to_keep=1)
        return logits[:, 0], *cache.present


def weights_key(model: nn.Module) -> str:
    """A hash of the model's config, weights and GRAPH_VERSION: the name of its step graph."""
    digest = hashlib.sha256(f"{GRAPH_VERSION} {json.dumps(model.config.to_dict(), sort_keys=True)}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def step_graphs(model: nn.Module, folder: str | Path) -> tuple[Path, Path]:
    """The model's prompt and step graphs in ``folder`` (``prompt-<key>.onnx``, ``step-<key>.onnx``, key:
    weights_key), exported there first if absent."""
    folder = Path(folder)
    key = weights_key(model)
    paths = folder / f"prompt-{key}.onnx", folder / f"step-{key}.onnx"
    for path, export in zip(paths, (export_prompt_graph, export_step_graph), strict=True):
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder, prefix=f".{path.stem}.", suffix=".tmp") as tmp:
                export(model, Path(tmp) / path.name)
                os.replace(Path(tmp) / path.name, path)
    return paths


def export_prompt_graph(model: nn.Module, path: Path) -> None:
    """torch.onnx.export (dynamo, opset 23) of the model's PromptGraph to ``path``."""
    from torch.export import Dim

    config = model.config
    with torch.no_grad(), quiet():  # the engine's user asked a question, not for an export
        program = torch.onnx.export(PromptGraph(model.eval()), (torch.zeros(1, EXAMPLE_PAST, dtype=torch.long),),
                                    dynamo=True, opset_version=OPSET, input_names=["input_ids"],
                                    output_names=["logits", *present_names(config)],
                                    dynamic_shapes=({1: Dim("sequence_length", min=1, max=config.max_seq_len)},),
                                    verbose=False)
        program.save(path, external_data=False)


def export_step_graph(model: nn.Module, path: Path) -> None:
    """torch.onnx.export (dynamo, opset 23) of the model's StepGraph to ``path``."""
    from torch.export import Dim

    config = model.config
    with torch.no_grad(), quiet():  # the engine's user asked a question, not for an export
        graph = StepGraph(DecodeStep(model.eval())).eval()
        past = [torch.zeros(1, config.num_heads, EXAMPLE_PAST, config.head_dim) for _ in range(2 * config.num_layers)]
        axes = [{2: Dim("past_sequence_length", min=1, max=config.max_seq_len - 1)}] * len(past)
        if config.copy_head:
            past += [torch.zeros(1, EXAMPLE_PAST, config.head_dim), torch.zeros(1, EXAMPLE_PAST, dtype=torch.long)]
            axes += [{1: axes[0][2]}] * 2
        program = torch.onnx.export(graph, (torch.zeros(1, 1, dtype=torch.long), tuple(past)), dynamo=True,
                                    opset_version=OPSET, input_names=["input_ids", *cache_names(config)],
                                    output_names=["logits", *present_names(config)],
                                    dynamic_shapes=({}, tuple(axes)), verbose=False)
        program.save(path, external_data=False)


class OnnxStepDecoder:
    """generation.Decoder on onnxruntime: the prompt graph reads the prompt, the step graph each token after."""

    def __init__(self, graphs: tuple[Path, Path], threads: int | None = None):
        import onnxruntime

        sessions = []
        for graph, spin in zip(graphs, ("0", "1"), strict=True):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            # the prompt session's threads must not spin between answers, taking a core from the steps
            options.add_session_config_entry("session.intra_op.allow_spinning", spin)
            sessions.append(onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"]))
        self.prompt, self.step = sessions
        self.input_names = [i.name for i in self.step.get_inputs()]

    def __call__(self, model: nn.Module, prompt_ids: list[int]) -> tuple[torch.Tensor, Callable[[int], torch.Tensor]]:
        outputs = self.prompt.run(None, {"input_ids": np.array([prompt_ids], dtype=np.int64)})
        past = outputs[1:]
        token_array = np.zeros((1, 1), dtype=np.int64)

        def step(token: int) -> torch.Tensor:
            nonlocal past
            token_array[0, 0] = token
            outputs = self.step.run(None, dict(zip(self.input_names, [token_array, *past], strict=True)))
            past = outputs[1:]
            return torch.from_numpy(outputs[0][0])

        return torch.from_numpy(outputs[0][0]), step
