"""Drive `minillm serve` with N concurrent clients for a fixed time on 127.0.0.1; print JSON.

    python benchmarks/bench_serve.py RUN [--clients 8] [--seconds 10] [--url http://127.0.0.1:8000]
                                         [--max-tokens 32] [--stream] [--max-requests 100000]

Without --url the script starts ``python -m minillm serve RUN`` on a free port itself, as a separate
process (so the clients' threads do not share the server's GIL), and stops it at the end; with --url it
drives a server already running there. Each client is a thread with its own HTTP connection, sending
``POST /v1/chat/completions`` one after another (greedy, questions in turn from a fixed list; with
--stream it reads the whole event stream). Clients stop starting requests after --seconds, or once
--max-requests have been started in all; requests in flight then are finished and counted. One warm-up
request comes first and is not counted.

An error is a reply other than 200, a transport error or a timeout (--timeout). Latency is per request,
send to last byte; percentiles are nearest-rank over the successful requests. The server generates one
answer at a time (serve/worker.py), so requests/s stays about the same as clients are added while
latency grows with the queue: the figures show the queue is served without errors, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

QUESTIONS = ["What is the Sun?", "What is the heart?", "Where is the Nile?", "What is water?",
             "What is a lion?", "What is a tornado?", "What is the Moon?", "What is a planet?"]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


@contextmanager
def started_server(run: str, startup_seconds: float):
    """`minillm serve RUN` on a free 127.0.0.1 port; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "minillm", "serve", run, "--port", str(port),
                                "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if process.poll() is not None:
                sys.exit(f"bench_serve: minillm serve exited with code {process.returncode}")
            if time.monotonic() > deadline:
                sys.exit(f"bench_serve: the server did not answer /health within {startup_seconds:.0f}s")
            try:
                httpx.get(f"{url}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def request(http: httpx.Client, url: str, question: str, max_tokens: int, stream: bool) -> int:
    """One chat completion, read to its end; returns its completion tokens (from the usage report)."""
    body = {"model": "bench", "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens}
    if not stream:
        response = http.post(f"{url}/v1/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]
    body.update(stream=True, stream_options={"include_usage": True})
    with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    if events[-1] != "[DONE]":
        raise ValueError(f"the stream ended without [DONE]: {events[-1][:200]}")
    return json.loads(events[-2])["usage"]["completion_tokens"]


def drive(url: str, clients: int, seconds: float, max_requests: int, max_tokens: int, stream: bool,
          timeout: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    tokens = 0
    started = 0
    lock = threading.Lock()
    with httpx.Client(timeout=timeout) as http:
        request(http, url, QUESTIONS[0], max_tokens, stream)  # warm-up
    start = time.perf_counter()
    deadline = start + seconds

    def client(number: int) -> None:
        nonlocal tokens, started
        with httpx.Client(timeout=timeout) as http:
            turn = number
            while time.perf_counter() < deadline:
                with lock:
                    if started >= max_requests:
                        return
                    started += 1
                sent = time.perf_counter()
                try:
                    made = request(http, url, QUESTIONS[turn % len(QUESTIONS)], max_tokens, stream)
                except (httpx.HTTPError, KeyError, ValueError) as e:
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                else:
                    with lock:
                        latencies.append(time.perf_counter() - sent)
                        tokens += made
                turn += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {"clients": clients, "seconds": round(wall, 2), "stream": stream, "max_tokens": max_tokens,
            "requests": len(latencies) + len(errors), "errors": len(errors), "first_errors": errors[:3],
            "requests_per_s": round(len(latencies) / wall, 2),
            "completion_tokens_per_s": round(tokens / wall, 1),
            "latency_ms": {name: round(1000 * percentile(latencies, p), 1)
                           for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory to serve (ignored with --url)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long clients start requests")
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000 (default: start one)")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request (default 32)")
    parser.add_argument("--stream", action="store_true", help="stream the replies (server-sent events)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop starting requests after this")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request is an error")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.max_requests < 1:
        parser.error("--clients and --max-requests must be >= 1 and --seconds > 0")

    if args.url:
        result = drive(args.url.rstrip("/"), args.clients, args.seconds, args.max_requests, args.max_tokens,
                       args.stream, args.timeout)
    else:
        with started_server(args.run, startup_seconds=120) as url:
            result = drive(url, args.clients, args.seconds, args.max_requests, args.max_tokens, args.stream,
                           args.timeout)
    print(json.dumps({"run": args.run if not args.url else None, "url": args.url, **result}, indent=2))


if __name__ == "__main__":
    main()
