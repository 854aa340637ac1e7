"""Which engine decodes a transformer's answers: minillm's own (models/decode_step.py, the readable
reference) or onnxruntime running the model's decode step as an ONNX graph (models/onnx_step.py).

    model, note = with_engine(model, "auto")   # onnxruntime where it is installed; note: None or one line
    minillm ask runs/quickstart "What is the Sun?" --engine minillm

Engines:
- ``minillm``: DecodeStep, whose logits are the model's forward to the bit.
- ``onnxruntime``: about twice as fast at batch 1 on a CPU (experiments/README.md); its logits agree with
  torch's to about 1e-6, so a near-tie could pick another token. The step graph is exported once per
  weights file into the cache folder ($MINILLM_CACHE, else ~/.cache/minillm; the onnx and onnxscript
  packages do that), then loaded in milliseconds.
- ``auto`` (what ask and chat use): onnxruntime for a transformer on the CPU where it is installed, else
  minillm's own engine, and a one-line note saying why when a transformer could have had onnxruntime.
  Asked for by name, ``onnxruntime`` that cannot run is an error (ValueError) instead.

Other rungs, models on a GPU, and transformers with a module swapped in or a forward hook
(transformer.plain_modules) always decode with their own ``generate``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from minillm.core.files import cache_dir
from minillm.models.generation import Sampling, generate
from minillm.models.onnx_step import OnnxStepDecoder, step_graphs
from minillm.models.transformer import MiniTransformer, plain_modules

ENGINES = ("auto", "minillm", "onnxruntime")
INSTALL = "pip install 'minillm[export]'"


class OnnxRuntimeEngine:
    """``model``, whose answers onnxruntime decodes; everything else (scores, size, files) is the model's."""

    def __init__(self, model: Any, decoder: OnnxStepDecoder):
        self.model, self.decoder = model, decoder

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Iterator[int]:
        return generate(self.model, prompt_ids, sampling, eos_id=eos_id, decode=decode, decoder=self.decoder)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def with_engine(model: Any, engine: str = "auto", folder: str | Path | None = None,
                threads: int | None = None) -> tuple[Any, str | None]:
    """``model`` answering through ``engine``, and a one-line note when ``auto`` fell back to minillm's
    engine (None otherwise); ``folder`` keeps the step graphs (default: the cache's ``onnx``); ``threads``:
    onnxruntime's (default: torch's)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "minillm":
        return model, None
    decodable = isinstance(model, MiniTransformer) and plain_modules(model)  # the step graph reads its modules
    if not decodable or next(model.parameters()).device.type != "cpu":
        if engine == "onnxruntime":
            raise ValueError("the onnxruntime engine decodes transformers on the CPU; this model is not one")
        return model, None
    if importlib.util.find_spec("onnxruntime") is None:
        problem = f"onnxruntime is not installed ({INSTALL})"
    else:
        try:
            decoder = OnnxStepDecoder(step_graphs(model, Path(folder) if folder else cache_dir() / "onnx"), threads)
        except ImportError as exc:  # onnx or onnxscript, which the first export needs
            problem = f"exporting the decode step needs {exc.name} ({INSTALL})"
        except Exception as exc:  # an exporter or runtime failure: the model still answers, with our engine
            problem = f"the decode step did not export or load ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        else:
            return OnnxRuntimeEngine(model, decoder), None
    if engine == "onnxruntime":
        raise ValueError(f"the onnxruntime engine cannot run: {problem}")
    return model, f"minillm's own engine answers: {problem}"
