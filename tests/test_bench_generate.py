"""benchmarks/bench_generate.py --run: the same weights timed in minillm's engine (and its reference),
transformers and onnxruntime, every runtime giving the engine's greedy ids, the machine recorded beside."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")


def test_runtimes_compared_on_one_runs_weights(tiny_run):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_generate.py"), "--run", str(tiny_run),
                          "--new-tokens", "6", "--runs", "1"], capture_output=True, text=True, check=True)
    [result] = json.loads(out.stdout)
    assert result["run"] == str(tiny_run) and result["new_tokens"] == 6
    assert result["hf_class"] == "GPT2LMHeadModel" and result["hf_cache"] is True  # the tiny run is GPT-2-shaped
    assert result["hf_same_ids"] and result["onnx_fp32_same_ids"] and result["minillm_reference_same_ids"]
    assert result["minillm_onnxruntime_same_ids"]
    for runtime in ("minillm", "minillm_onnxruntime", "minillm_reference", "hf", "onnx_fp32", "onnx_int8"):
        assert result[f"{runtime}_tokens_per_s"] > 0
    assert result["speedup_vs_hf"] > 0 and isinstance(result["minillm_vs_onnx_fp32"], float)
    machine = result["machine"]
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["torch"] and machine["onnxruntime"]
