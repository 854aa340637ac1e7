"""benchmarks/bench_batching.py: the batching thread without HTTP, on a tiny run with a retrieval index:
threads answer through one BatchingModel, each answer as the unbatched worker gives it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
from conftest import open_copy  # noqa: E402

from minillm.retrieval.index import load_index  # noqa: E402
from minillm.serve.worker import ModelWorker  # noqa: E402
from minillm.training.runs import load_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_serve import QUESTIONS  # noqa: E402


@pytest.fixture(scope="module")
def open_run(tiny_run, tmp_path_factory):
    return open_copy(tiny_run, tmp_path_factory.mktemp("batching") / "run")


def test_threads_answer_through_one_batch_as_one_at_a_time(open_run):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_batching.py"), str(open_run),
                          "--clients", "4", "--seconds", "1", "--max-tokens", "16"],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["answers"] >= 4 and result["answers_per_s"] > 0 and result["completion_tokens_per_s"] > 0
    assert result["machine"]["torch_threads"] == 1 and result["mode"] == "open"
    model, tok, _ = load_run(open_run)
    worker = ModelWorker(model, tok, load_index(open_run))  # unbatched: the model's own generate
    sampling = worker.sampling(16)
    for question, text in result["texts"].items():
        assert question in QUESTIONS
        assert text == worker._reply(question, sampling, "open").text
    worker.close()


def test_bad_arguments_exit_2(open_run):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_batching.py"), str(open_run),
                          "--clients", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--clients must be >= 1" in out.stderr
