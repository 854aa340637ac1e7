"""Drive `minillm serve` with N concurrent clients for a fixed time on 127.0.0.1; print JSON.

    python benchmarks/bench_serve.py RUN [--clients 8] [--seconds 10] [--url http://127.0.0.1:8000]
                                         [--max-tokens 32] [--stream] [--max-requests 100000]
                                         [--reader model|pattern] [--max-batch N] [--engine E] [--workers N]
                                         [--check-answers]

Without --url the script starts ``python -m minillm serve RUN`` on a free port itself, as a separate
process (so the clients' threads do not share the server's GIL), and stops it at the end; that server runs
this checkout's ``src/`` (put first on its PYTHONPATH), so to compare two versions of the code run each
checkout's own copy of this script; with --url it
drives a server already running there. Each client is a thread with its own HTTP connection, sending
``POST /v1/chat/completions`` one after another (greedy, questions in turn from a fixed list; with
--stream it reads the whole event stream). Clients stop starting requests after --seconds, or once
--max-requests have been started in all; requests in flight then are finished and counted. One warm-up
request comes first and is not counted.

An error is a reply other than 200, a transport error or a timeout (--timeout). Latency is per request,
send to last byte; percentiles are nearest-rank over the successful requests. ``server_cpu_ms_per_request``
is the CPU time (user + system, /proc) of the server's processes over the timed part, per answered request:
on a shared machine it moves less than requests/s (null with --url). ``--reader``,
``--max-batch``, ``--engine`` and ``--workers`` are passed to ``minillm serve`` (a transformer's answers are
decoded together, up to ``--max-batch`` at once: serve/batching.py; 1: one at a time, as before batching).

``--check-answers``: every reply's text is kept, and once the clients are done the script starts a second
server answering one request at a time (``--max-batch 1``: minillm's own engine, the model's numbers to the
bit) and asks each question once: ``answers`` counts the replies that differ from that unbatched answer.
``machine`` records the cores, processor, load average and versions (benchmarks/machine.py).

Soak mode (``--soak SECONDS``, off by default; ``--clients`` then defaults to 32): the clients keep sending
requests until the deadline, a fixed mix in turn: ``POST /v1/chat/completions`` and ``POST /v1/answer``,
streaming and not, closed book and open book (``mode`` on /v1/answer; open only when the run has a
retrieval index, /v1/models says), and one request in 8 (``--disconnect-every``) a stream that the client
abandons after its first server-sent event (the server must then stop that answer: worker.py's cancel
flag). Every loop stops starting requests at the deadline (``--timeout`` bounds one in flight); only
127.0.0.1 is driven unless --url names another server. First the same mix runs for ``--warmup`` seconds
(default: a sixth of the soak, 1-10 s), not counted, so that the server's resident memory (VmRSS, read from
/proc/PID/status of the server this script started; null with --url) is measured once it is warm. At the
end a burst of one abandoned stream per client is sent, then one request of each kind: all must be
answered (``after_soak``). An error is any reply other than 2xx, a broken or incomplete body or event
stream (no [DONE], no ``done`` event, an ``error`` event), a transport error or a timeout; the deliberate
disconnects are counted apart, and one is an error only when its status or first event is wrong. Goals:
0 errors and less than 5% growth of VmRSS from the start (after the warm-up) to the end.
``second_half_growth_percent`` is the growth from the soak's middle to its end: a leak grows there as in the
first half, warming up does not. A server of the quickstart run (one process, 32 clients, 150 s) grew
678 -> 763 MB in its first 60 s and 763 -> 773 MB in the next 100 s: allocator pools and caches filling,
which a short warm-up leaves inside the measured growth.

    python benchmarks/bench_serve.py runs/quickstart --soak 60 --clients 32
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SOAK_KINDS = (  # (name, path, stream, mode): the mix each soak client sends in turn
    ("chat", "/v1/chat/completions", False, None),
    ("chat_stream", "/v1/chat/completions", True, None),
    ("answer_closed", "/v1/answer", False, "closed"),
    ("answer_open_stream", "/v1/answer", True, "open"),
    ("answer_open", "/v1/answer", False, "open"),
    ("answer_closed_stream", "/v1/answer", True, "closed"),
)
DISCONNECT_KINDS = (("disconnect_chat", "/v1/chat/completions", True, None),
                    ("disconnect_answer", "/v1/answer", True, "open"))

QUESTIONS = ["What is the Sun?", "What is the heart?", "Where is the Nile?", "What is water?",
             "What is a lion?", "What is a tornado?", "What is the Moon?", "What is a planet?"]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


@contextmanager
def started_server(run: str, startup_seconds: float, with_process: bool = False, serve_args: tuple[str, ...] = ()):
    """`minillm serve RUN [serve_args]` on a free 127.0.0.1 port; yields its URL (and, with_process, its Popen
    too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "minillm", "serve", run, "--port", str(port),
                                "--log-level", "warning", *serve_args], env=env, stdout=subprocess.DEVNULL)
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
        yield (url, process) if with_process else url
    finally:
        process.terminate()
        process.wait(timeout=30)


def request(http: httpx.Client, url: str, question: str, max_tokens: int, stream: bool) -> tuple[int, str]:
    """One chat completion, read to its end; returns its completion tokens (from the usage report) and text."""
    body = {"model": "bench", "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens}
    if not stream:
        response = http.post(f"{url}/v1/chat/completions", json=body)
        response.raise_for_status()
        reply = response.json()
        return reply["usage"]["completion_tokens"], reply["choices"][0]["message"]["content"]
    body.update(stream=True, stream_options={"include_usage": True})
    with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    if events[-1] != "[DONE]":
        raise ValueError(f"the stream ended without [DONE]: {events[-1][:200]}")
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    return chunks[-1]["usage"]["completion_tokens"], text


def drive(url: str, clients: int, seconds: float, max_requests: int, max_tokens: int, stream: bool,
          timeout: float, answers: dict[str, list[str]] | None = None, pid: int | None = None) -> dict:
    """clients threads sending chat completions until seconds have passed; the figures. Each reply's text
    is appended to answers[question] where answers is given; with the server's pid, the CPU time its
    processes used per answered request."""
    latencies: list[float] = []
    errors: list[str] = []
    tokens = 0
    started = 0
    lock = threading.Lock()
    with httpx.Client(timeout=timeout) as http:
        request(http, url, QUESTIONS[0], max_tokens, stream)  # warm-up
    cpu_start = cpu_seconds(pid)
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
                question = QUESTIONS[turn % len(QUESTIONS)]
                try:
                    made, text = request(http, url, question, max_tokens, stream)
                except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
                else:
                    with lock:
                        latencies.append(time.perf_counter() - sent)
                        tokens += made
                        if answers is not None:
                            answers.setdefault(question, []).append(text)
                turn += 1

    run_threads(client, clients)
    wall = time.perf_counter() - start
    cpu_end = cpu_seconds(pid)
    latencies.sort()
    cpu_ms = (None if cpu_start is None or cpu_end is None or not latencies
              else round(1000 * (cpu_end - cpu_start) / len(latencies), 1))
    return {"clients": clients, "seconds": round(wall, 2), "stream": stream, "max_tokens": max_tokens,
            "requests": len(latencies) + len(errors), "errors": len(errors), "first_errors": errors[:3],
            "requests_per_s": round(len(latencies) / wall, 2),
            "completion_tokens_per_s": round(tokens / wall, 1),
            "latency_ms": {name: round(1000 * percentile(latencies, p), 1)
                           for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
            "server_cpu_ms_per_request": cpu_ms}


class BrokenReply(ValueError):
    """A 2xx reply whose body or event stream is not what the route promises."""


def run_threads(target, count: int) -> None:
    """target(0) .. target(count - 1), each in its own thread, all at once; returns when all have ended."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def rss_kib(pid: int | None) -> int | None:
    """The resident memory (VmRSS, KiB) of process pid and its descendants (``serve --workers N``: the
    worker processes) from /proc/PID/status; None without a pid or /proc."""
    return tree_total(pid, lambda p: next(int(line.split()[1]) for line in
                                          Path(f"/proc/{p}/status").read_text().splitlines()
                                          if line.startswith("VmRSS:")))


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system, s) used so far by process pid and its descendants, from /proc/PID/stat;
    None without a pid or /proc. Less noisy than requests/s on a shared machine: what a request costs."""

    def own(p: int) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)

    return tree_total(pid, own)


def tree_total(pid: int | None, read):
    """read(pid) plus the same of each descendant process (from /proc/PID/task/*/children); None without a
    pid or when pid's own entries cannot be read; a descendant that cannot be read counts 0."""
    if pid is None:
        return None
    try:
        value = read(pid)
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except (OSError, StopIteration, IndexError):
        return None
    return value + sum(tree_total(child, read) or 0 for child in children)


def soak_body(path: str, stream: bool, mode: str | None, question: str, max_tokens: int) -> dict:
    if path == "/v1/answer":
        body: dict = {"question": question, "max_new_tokens": max_tokens, "stream": stream}
        if mode is not None:
            body["mode"] = mode
        return body
    body = {"model": "bench", "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def sse_events(lines) -> Iterator:
    """The data of each server-sent event read from lines, JSON-decoded except OpenAI's [DONE]; lazily, so
    that a client may stop reading after any event."""
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: "):]
            yield data if data == "[DONE]" else json.loads(data)


def check_status(response: httpx.Response) -> None:
    if not 200 <= response.status_code < 300:
        response.read()
        raise BrokenReply(f"HTTP {response.status_code}: {response.text[:200]}")


def soak_request(http: httpx.Client, url: str, kind: tuple, question: str, max_tokens: int,
                 disconnect: bool) -> None:
    """One request of kind, checked to its end (BrokenReply when it is wrong); with disconnect, a stream
    closed by the client as soon as its first event has come."""
    name, path, stream, mode = kind
    body = soak_body(path, stream, mode, question, max_tokens)
    if not stream:
        response = http.post(f"{url}{path}", json=body)
        check_status(response)
        reply = response.json()
        if path == "/v1/answer":
            if not isinstance(reply.get("answer"), str) or reply.get("mode") != mode:
                raise BrokenReply(f"{name}: no answer or the wrong mode: {str(reply)[:200]}")
        elif not isinstance(reply["choices"][0]["message"]["content"], str) or "usage" not in reply:
            raise BrokenReply(f"{name}: no content or no usage: {str(reply)[:200]}")
        return
    with http.stream("POST", f"{url}{path}", json=body) as response:
        check_status(response)
        if disconnect:
            first = next(sse_events(response.iter_lines()), None)
            if not isinstance(first, dict) or "error" in first or first.get("type") == "error":
                raise BrokenReply(f"{name}: a bad first event: {str(first)[:200]}")
            return  # leaving the block closes the connection mid-stream
        events = list(sse_events(response.iter_lines()))
    if not events:
        raise BrokenReply(f"{name}: an empty event stream")
    if path == "/v1/answer":
        types = [e.get("type") for e in events]
        if types[0] != "sources" or types[-1] != "done" or "error" in types:
            raise BrokenReply(f"{name}: events {types[:3]}...{types[-3:]}")
    else:
        if events[-1] != "[DONE]" or any("error" in e for e in events[:-1]):
            raise BrokenReply(f"{name}: the stream ended without [DONE]: {str(events[-1])[:200]}")
        if not any(c.get("choices") and c["choices"][0].get("finish_reason") for c in events[:-1]):
            raise BrokenReply(f"{name}: no chunk with a finish_reason")


def soak_phase(url: str, clients: int, seconds: float, max_tokens: int, timeout: float, open_book: bool,
               disconnect_every: int) -> dict:
    """clients threads sending the soak mix until seconds have passed; what they did."""
    latencies: list[float] = []
    errors: list[str] = []
    by_kind: dict[str, int] = {}
    disconnects = 0
    turn = 0
    lock = threading.Lock()
    kinds = [k if open_book or k[3] != "open" else (k[0].replace("open", "closed"), k[1], k[2], "closed")
             for k in SOAK_KINDS]
    cut = [k if open_book or k[3] != "open" else (k[0], k[1], k[2], "closed") for k in DISCONNECT_KINDS]
    start = time.perf_counter()
    deadline = start + seconds

    def client() -> None:
        nonlocal disconnects, turn
        with httpx.Client(timeout=timeout) as http:
            while time.perf_counter() < deadline:
                with lock:
                    number, turn = turn, turn + 1
                disconnect = disconnect_every > 0 and number % disconnect_every == disconnect_every - 1
                kind = cut[number // disconnect_every % len(cut)] if disconnect else kinds[number % len(kinds)]
                sent = time.perf_counter()
                try:
                    soak_request(http, url, kind, QUESTIONS[number % len(QUESTIONS)], max_tokens, disconnect)
                except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
                    with lock:
                        errors.append(f"{kind[0]}: {type(e).__name__}: {e}")
                    continue
                with lock:
                    by_kind[kind[0]] = by_kind.get(kind[0], 0) + 1
                    if disconnect:
                        disconnects += 1
                    else:
                        latencies.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=client, name=f"soak-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"wall": time.perf_counter() - start, "latencies": sorted(latencies), "errors": errors,
            "by_kind": dict(sorted(by_kind.items())), "disconnects": disconnects}


def after_soak(url: str, clients: int, max_tokens: int, longest: int, timeout: float, open_book: bool) -> dict:
    """A burst of one abandoned stream per client, then one request of each kind: are they all answered?"""
    cut = [k if open_book or k[3] != "open" else (k[0], k[1], k[2], "closed") for k in DISCONNECT_KINDS]
    failures: list[str] = []

    def abandon(number: int) -> None:
        with httpx.Client(timeout=timeout) as http:
            try:  # the longest answers the model allows, so that answers not stopped would show in the time
                soak_request(http, url, cut[number % len(cut)], QUESTIONS[number % len(QUESTIONS)], longest,
                             disconnect=True)
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
                failures.append(f"burst: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=abandon, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    start = time.perf_counter()
    answered = 0
    with httpx.Client(timeout=timeout) as http:
        for number, kind in enumerate(SOAK_KINDS):
            if kind[3] == "open" and not open_book:
                continue
            try:
                soak_request(http, url, kind, QUESTIONS[number % len(QUESTIONS)], max_tokens, disconnect=False)
                answered += 1
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
                failures.append(f"{kind[0]}: {type(e).__name__}: {e}")
    return {"abandoned_streams": clients, "answered": answered, "failures": failures[:3],
            "ok": not failures, "seconds": round(time.perf_counter() - start, 2)}


def soak(url: str, pid: int | None, clients: int, seconds: float, warmup: float, max_tokens: int,
         timeout: float, disconnect_every: int) -> dict:
    """The soak: warm-up, then the measured phase with VmRSS sampled each second, then after_soak."""
    meta = httpx.get(f"{url}/v1/models", timeout=timeout).json()["data"][0].get("meta", {})
    open_book = bool(meta.get("open_book"))
    longest = meta.get("max_new_tokens") or max_tokens  # the server's cap on a request's tokens
    max_tokens = min(max_tokens, longest)
    warm = soak_phase(url, clients, warmup, max_tokens, timeout, open_book, disconnect_every)
    rss_start = rss_kib(pid)
    samples = [rss_start] if rss_start is not None else []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            value = rss_kib(pid)
            if value is not None:
                samples.append(value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    phase = soak_phase(url, clients, seconds, max_tokens, timeout, open_book, disconnect_every)
    stop.set()
    sampler.join()
    after = after_soak(url, clients, max_tokens, longest, timeout, open_book)
    rss_end = rss_kib(pid)
    latencies, wall = phase["latencies"], phase["wall"]
    growth = None if rss_start is None or rss_end is None else round(100 * (rss_end - rss_start) / rss_start, 2)
    middle = samples[len(samples) // 2] if samples else None  # a leak keeps growing; warming up levels off
    late_growth = None if middle is None or rss_end is None else round(100 * (rss_end - middle) / middle, 2)

    def mib(kib: int | None) -> float | None:
        return None if kib is None else round(kib / 1024, 1)

    return {"soak_seconds": seconds, "warmup_seconds": warmup, "warmup_errors": len(warm["errors"]),
            "clients": clients, "seconds": round(wall, 2), "max_tokens": max_tokens, "open_book": open_book,
            "disconnect_every": disconnect_every,
            "requests": len(latencies) + phase["disconnects"] + len(phase["errors"]),
            "completed": len(latencies), "disconnects": phase["disconnects"], "errors": len(phase["errors"]),
            "first_errors": phase["errors"][:3], "by_kind": phase["by_kind"],
            "requests_per_s": round((len(latencies) + phase["disconnects"]) / wall, 2),
            "completed_per_s": round(len(latencies) / wall, 2),
            "latency_ms": {name: round(1000 * percentile(latencies, p), 1)
                           for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
            "server_pid": pid,
            "rss_mib": {"start": mib(rss_start), "end": mib(rss_end), "peak": mib(max(samples, default=None)),
                        "growth_percent": growth, "second_half_growth_percent": late_growth},
            "after_soak": after,
            "goals": {"no_errors": not phase["errors"] and after["ok"],
                      "rss_growth_below_5_percent": None if growth is None else growth < 5}}


def check_answers(run: str, answers: dict[str, list[str]], max_tokens: int, timeout: float,
                  common_args: tuple[str, ...]) -> dict:
    """Each question asked once of a server answering one request at a time; how many of the replies kept
    in answers differ from that answer."""
    one_at_a_time = (*common_args, "--max-batch", "1", "--engine", "minillm")
    differing, first = 0, None
    with started_server(run, startup_seconds=120, serve_args=one_at_a_time) as url, \
            httpx.Client(timeout=timeout) as http:
        for question, texts in answers.items():
            _, expected = request(http, url, question, max_tokens, stream=False)
            for text in texts:
                if text != expected:
                    differing += 1
                    first = first or {"question": question, "unbatched": expected, "batched": text}
    return {"compared": sum(map(len, answers.values())), "questions": len(answers), "differing": differing,
            "first_difference": first}


def main() -> None:
    from machine import machine_info  # benchmarks/ is sys.path[0] when this runs as a script

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory to serve (ignored with --url)")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 8; 32 with --soak)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long clients start requests")
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000 (default: start one)")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request (default 32)")
    parser.add_argument("--stream", action="store_true", help="stream the replies (server-sent events)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop starting requests after this")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a request is an error")
    parser.add_argument("--soak", type=float, metavar="SECONDS",
                        help="soak mode: the request mix with disconnects for SECONDS (default: off)")
    parser.add_argument("--warmup", type=float, help="soak: uncounted warm-up seconds (default: soak/6, 1-10)")
    parser.add_argument("--disconnect-every", type=int, default=8,
                        help="soak: every Nth request is a stream abandoned after its first event (0: none)")
    parser.add_argument("--reader", choices=["model", "pattern", "ranker"], help="passed to minillm serve")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="passed to minillm serve: its torch threads (default, as serve's: cores minus one)")
    parser.add_argument("--max-batch", type=int, help="passed to minillm serve (default: serve's)")
    parser.add_argument("--workers", type=int, help="passed to minillm serve: its processes (default: serve's)")
    parser.add_argument("--engine", choices=["auto", "minillm", "onnxruntime"],
                        help="passed to minillm serve (default: serve's)")
    parser.add_argument("--check-answers", action="store_true",
                        help="compare every reply with the answer of a server answering one at a time")
    args = parser.parse_args()
    common_args = (("--reader", args.reader) if args.reader else ()) + ("--threads", str(args.threads))
    serve_args = common_args + (("--max-batch", str(args.max_batch)) if args.max_batch else ()) + (
        ("--engine", args.engine) if args.engine else ()) + (("--workers", str(args.workers)) if args.workers else ())
    if args.clients is None:
        args.clients = 32 if args.soak is not None else 8
    if args.clients < 1 or args.seconds <= 0 or args.max_requests < 1:
        parser.error("--clients and --max-requests must be >= 1 and --seconds > 0")
    if args.soak is not None:
        warmup = args.warmup if args.warmup is not None else min(10.0, max(1.0, args.soak / 6))
        if args.soak <= 0 or warmup < 0 or args.disconnect_every < 0:
            parser.error("--soak must be > 0, --warmup >= 0 and --disconnect-every >= 0")
        if args.url:
            result = soak(args.url.rstrip("/"), None, args.clients, args.soak, warmup, args.max_tokens,
                          args.timeout, args.disconnect_every)
        else:
            with started_server(args.run, startup_seconds=120, with_process=True,
                                serve_args=serve_args) as (url, process):
                result = soak(url, process.pid, args.clients, args.soak, warmup, args.max_tokens, args.timeout,
                              args.disconnect_every)
        print(json.dumps({"run": args.run if not args.url else None, "url": args.url, "mode": "soak",
                          "serve_args": serve_args, **result, "machine": machine_info(torch_threads=args.threads)},
                         indent=2))
        return

    answers: dict[str, list[str]] | None = {} if args.check_answers else None
    if args.url:
        result = drive(args.url.rstrip("/"), args.clients, args.seconds, args.max_requests, args.max_tokens,
                       args.stream, args.timeout, answers)
    else:
        with started_server(args.run, startup_seconds=120, with_process=True,
                            serve_args=serve_args) as (url, process):
            result = drive(url, args.clients, args.seconds, args.max_requests, args.max_tokens, args.stream,
                           args.timeout, answers, process.pid)
    if answers is not None:
        result["answers"] = check_answers(args.run, answers, args.max_tokens, args.timeout, common_args)
    print(json.dumps({"run": args.run if not args.url else None, "url": args.url, "serve_args": serve_args,
                      **result, "machine": machine_info(torch_threads=args.threads)}, indent=2))


if __name__ == "__main__":
    main()
