"""The batching thread without HTTP: N threads answer questions through one BatchingModel; print JSON.

    python benchmarks/bench_batching.py RUN [--clients 32] [--seconds 15] [--max-tokens 128] [--mode open]

What `minillm serve` does for each request, minus the server: a ModelWorker (retrieval, the prompt, the
answer's rules) over the run's transformer wrapped in serve.batching.BatchingModel, the network reading
(``--reader model``); --clients threads each ask the questions of bench_serve.QUESTIONS in turn, one after
another, until --seconds have passed (requests in flight are finished and counted). One warm-up answer
comes first, not counted. Torch runs on one thread, as ``serve`` on two cores does. Without the HTTP
stack and the client process, changes to the batching thread show here that are within the noise over
HTTP (experiments/README.md, "Serving on two cores"). Output: answers/s, completion tokens/s, the
answers, and the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import torch
from bench_serve import QUESTIONS, run_threads
from machine import machine_info

from minillm.answering.reader import with_reader
from minillm.retrieval.index import load_index
from minillm.serve.batching import BatchingModel
from minillm.serve.worker import ModelWorker
from minillm.training.runs import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory with a transformer (and an index for --mode open)")
    parser.add_argument("--clients", type=int, default=32, help="threads asking at once (default 32)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long clients start questions")
    parser.add_argument("--max-tokens", type=int, default=128, help="max new tokens an answer (default 128)")
    parser.add_argument("--mode", choices=["open", "closed"], default="open", help="open book (default) or closed")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be >= 1 and --seconds > 0")
    network, tokenizer, _ = load_run(args.run)
    torch.set_num_threads(1)
    batching = BatchingModel(network, args.clients)
    worker = ModelWorker(with_reader(batching, tokenizer, "model"), tokenizer, load_index(args.run),
                         concurrency=2 * args.clients)
    sampling = worker.sampling(args.max_tokens)
    worker._reply(QUESTIONS[0], sampling, args.mode)  # warm-up
    lock, counts, answers = threading.Lock(), {"answers": 0, "tokens": 0}, {}
    deadline = time.perf_counter() + args.seconds

    def client(first: int) -> None:
        turn = first
        while time.perf_counter() < deadline:
            question = QUESTIONS[turn % len(QUESTIONS)]
            turn += 1
            reply = worker._reply(question, sampling, args.mode)
            with lock:
                counts["answers"] += 1
                counts["tokens"] += reply.finished.completion_tokens
                answers.setdefault(question, reply.text)

    start = time.perf_counter()
    run_threads(client, args.clients)
    seconds = time.perf_counter() - start
    worker.close()
    batching.close()
    json.dump({"run": args.run, "clients": args.clients, "mode": args.mode, "max_tokens": args.max_tokens,
               "seconds": round(seconds, 2), "answers": counts["answers"],
               "answers_per_s": round(counts["answers"] / seconds, 2),
               "completion_tokens_per_s": round(counts["tokens"] / seconds, 1),
               "texts": answers, "machine": machine_info(torch_threads=1)}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
