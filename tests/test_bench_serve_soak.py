"""benchmarks/bench_serve.py --soak: a short soak of a tiny run with a retrieval index, the request mix with
deliberate mid-stream disconnects, answered without errors and still answering after them."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")
from conftest import open_copy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def open_run(tiny_run, tmp_path_factory):
    """A copy of tiny_run (the session's run stays untouched) with a retrieval index: open book is mixed in."""
    return open_copy(tiny_run, tmp_path_factory.mktemp("soak") / "run")


def test_short_soak_has_no_errors_and_survives_disconnects(open_run):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_serve.py"), str(open_run),
                          "--soak", "4", "--clients", "4", "--warmup", "1", "--max-tokens", "16",
                          "--timeout", "30"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["mode"] == "soak" and result["clients"] == 4 and result["open_book"] is True
    assert result["errors"] == 0 and result["warmup_errors"] == 0, result["first_errors"]
    assert result["disconnects"] >= 2  # one request in 8 is abandoned after its first event
    assert result["by_kind"].get("disconnect_chat", 0) >= 1 and result["by_kind"].get("disconnect_answer", 0) >= 1
    assert {"chat", "chat_stream", "answer_open", "answer_open_stream", "answer_closed",
            "answer_closed_stream"} <= set(result["by_kind"])  # the whole mix ran
    assert result["requests"] == result["completed"] + result["disconnects"] + result["errors"]
    assert result["completed"] > result["disconnects"] and result["requests_per_s"] > 0
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    # the slots of the abandoned streams were freed: after the soak's disconnects and a burst of one abandoned
    # longest-possible stream per client, one request of every kind is still answered
    after = result["after_soak"]
    assert after["ok"] and after["abandoned_streams"] == 4 and after["answered"] == 6, after
    rss = result["rss_mib"]
    assert rss["start"] > 0 and rss["end"] > 0 and rss["peak"] >= rss["start"]
    assert isinstance(rss["growth_percent"], float) and isinstance(rss["second_half_growth_percent"], float)
    assert result["goals"]["no_errors"] is True


def test_an_abandoned_stream_frees_its_slot(open_run, monkeypatch):
    """The soak's own disconnecting client, against a server whose model takes 20 ms a token: the answer it
    abandons after the first event stops within a token or two (worker.py's cancel flag), where the same
    request read to its end makes the whole answer; and the next request is answered."""
    from test_serve import SlowModel, running_server

    import minillm.serve.app as app_module
    from minillm.serve.worker import ModelWorker

    spec = importlib.util.spec_from_file_location("bench_serve", REPO / "benchmarks" / "bench_serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    slow = []

    def slow_worker(model, tokenizer, index, **options):
        slow.append(SlowModel(model))
        return ModelWorker(slow[0], tokenizer, index, **options)

    monkeypatch.setattr(app_module, "ModelWorker", slow_worker)
    httpx = pytest.importorskip("httpx")
    with running_server(app_module.create_app(open_run)) as url, httpx.Client(timeout=60) as http:
        for kind in bench.DISCONNECT_KINDS:
            slow[0].tokens_made = 0
            bench.soak_request(http, url, kind, "What is the Sun?", 40, disconnect=False)
            whole = slow[0].tokens_made
            slow[0].tokens_made = 0
            bench.soak_request(http, url, kind, "What is the Sun?", 40, disconnect=True)
            time.sleep(0.02 * whole + 0.5)  # time enough for the whole answer, were it not stopped
            assert whole >= 10 and slow[0].tokens_made < whole / 2, (kind[0], slow[0].tokens_made, whole)
        bench.soak_request(http, url, bench.SOAK_KINDS[0], "What is the Moon?", 4, disconnect=False)


def test_soak_arguments_are_checked(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_serve.py"), str(tmp_path),
                          "--soak", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--soak must be > 0" in out.stderr


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_serve", REPO / "benchmarks" / "bench_serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_server_cpu_seconds_add_up_the_process_and_its_children():
    """server_cpu_ms_per_request's source: the CPU time of a process and its descendants (serve --workers)."""
    bench = load_bench()
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nprint(flush=True)\ninput()"
    child = subprocess.Popen([sys.executable, "-c", busy], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()  # it has used its 0.5 s of CPU and waits
        mine, theirs, both = sum(os.times()[:2]), bench.cpu_seconds(child.pid), bench.cpu_seconds(os.getpid())
        assert theirs >= 0.45
        assert both == pytest.approx(mine + theirs, abs=0.1)
    finally:
        child.communicate("")
    assert bench.cpu_seconds(None) is None and bench.cpu_seconds(child.pid) is None  # gone: no /proc entry
