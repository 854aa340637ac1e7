"""`minillm export hf|onnx|gguf`: a trained neural run in the formats other runtimes load.

- ``hf`` (minillm.export.hf): a Hugging Face folder. Llama-shaped runs (rotary, RMSNorm, SwiGLU, no biases)
  become ``LlamaForCausalLM``, GPT-2-shaped ones (learned positions, LayerNorm, GELU) ``GPT2LMHeadModel``;
  any other run ships its modeling code in the folder (``trust_remote_code=True``).
- ``onnx`` (minillm.export.onnx): a decoder with a KV cache, inputs and outputs named as Hugging Face's
  exporters name them; ``--int8`` through onnxruntime's dynamic quantization.
- ``gguf`` (minillm.export.gguf): Llama-shaped runs for llama.cpp.

Every writer goes through ``neural_run`` (which runs export at all) and ``records.check_new_output``
(never over a file or folder that holds something), and writes to a temporary path renamed into place.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from minillm.core.errors import InputError
from minillm.training.config import load_config
from minillm.training.runs import CONFIG_FILE, load_run

NEURAL_ARCHS = ("transformer", "attention", "mlp")


def neural_run(run_dir: str | Path, fmt: str) -> tuple[Any, Any, Any]:
    """(model, tokenizer, config) of a neural run, on the CPU in float32; InputError for any other run."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(f"{run_dir}: not a run directory (no config.toml)")
    arch = load_config(run_dir / CONFIG_FILE).arch
    if arch not in NEURAL_ARCHS:
        raise InputError(f"export {fmt}: {run_dir} is a {arch} run; only neural runs "
                         f"({', '.join(NEURAL_ARCHS)}) export to {fmt}")
    model, tok, cfg = load_run(run_dir)
    return model.float().eval(), tok, cfg


def require(module: str, fmt: str) -> Any:
    """``import module``, or InputError saying how to install it (the ``export`` extra has every one)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"export {fmt} needs the {module} package: pip install 'minillm[export]'") from None


def llama_shape_problems(config: Any) -> list[str]:
    """What keeps a transformer's config from being Llama-shaped (rotary, RMSNorm, SwiGLU, no biases, no copy
    head, a block per layer: what hf exports as LlamaForCausalLM and gguf as llama); [] when it is."""
    wanted = {"position": "rotary", "norm": "rmsnorm", "activation": "swiglu"}
    problems = [f"{name} is {getattr(config, name)!r}, not {value!r}" for name, value in wanted.items()
                if getattr(config, name, None) != value]
    for name in ("bias", "copy_head", "share_layers"):
        if getattr(config, name, False):
            problems.append(f"{name} is true")
    return problems
