"""Continuous batching for ``minillm serve``: the answers being generated are decoded together, one forward
a step for all of them (models/batch.py), by one thread that owns the model.

    model = BatchingModel(network, max_batch=32)   # a LanguageModel whose generate joins the batch
    ids = list(model.generate(prompt_ids, sampling, eos_id=tok.eos_id, decode=tok.decode))  # any thread
    model.close()

Design choices:
- ``generate`` keeps the interface every rung has (an iterator of token ids), so answer, stream_answer and
  the worker's request threads are unchanged: each request thread waits on its own queue while the
  batching thread fills it. Arguments are checked when ``generate`` is called, as generation.generate does.
- The batching thread loops: it reads the prompts that arrived (each alone, the model's own forward; up to
  the free rows), then steps every sequence once (one forward), hands each its token, and drops those that
  ended. With nothing to decode it sleeps on the queue.
- Tokens are handed over in groups: a request's first token at once, then HAND_EVERY at a time and the
  rest when its sequence ends. Each hand-over wakes the request's thread, which then competes for the GIL
  with the batching thread; once a token, for 32 sequences answering in one process (32 threads calling
  the worker, no HTTP), that cost 12% of the answers per second; over HTTP the difference was within the
  noise (experiments/README.md, "Serving on two cores"). A stream shows whole sentences anyway
  (answering.stream_answer), so eight tokens (one step each, a few ms) later is not seen.
- Cancellation: an iterator (``Tokens``) closed or dropped before its end (a client that went away:
  worker.py stops reading) marks its request, whose sequence leaves the batch at the next step; a request
  given up before its prompt was read is never read.
- Errors reading a prompt go to that request's iterator alone; an error in a step (a bug) goes to every
  sequence in the batch, which is then emptied: one broken step never hangs a client. Closing fails the
  requests still in the batch or waiting, for the same reason.
- Models without a batched decode step (every rung but the transformer) are not wrapped: the worker keeps
  answering those one at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from minillm.models import MiniTransformer
from minillm.models.batch import BatchDecoder, Sequence
from minillm.models.generation import Sampling, check_prompt
from minillm.models.transformer import plain_modules

_END = object()  # the last item of a request's queue: its sequence ended
HAND_EVERY = 8  # token ids handed over together (the first alone, at once)


@dataclass(eq=False)
class Request:
    prompt_ids: list[int]
    sampling: Sampling
    eos_id: int | None
    decode: Callable[[list[int]], str] | None
    tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # lists of token ids, then _END or an error
    cancelled: bool = False
    held: list[int] = field(default_factory=list)  # picked, not handed over yet
    handed: int = 0  # token ids handed over


class Tokens:
    """A request's token ids as the batching thread hands them over; closing it, or dropping it unfinished,
    cancels the request (a generator would not notice being closed before its first token)."""

    def __init__(self, request: Request):
        self.request = request
        self.finished = False
        self.ready: list[int] = []  # handed over, not read yet (reversed: pop() gives the next)

    def __iter__(self) -> Tokens:
        return self

    def __next__(self) -> int:
        if self.finished:
            raise StopIteration
        if self.ready:
            return self.ready.pop()
        item = self.request.tokens.get()
        if isinstance(item, list):
            self.ready = item[::-1]
            return self.ready.pop()
        if item is _END or isinstance(item, BaseException):
            self.close()
            if item is _END:
                raise StopIteration
            raise item
        return item

    def close(self) -> None:
        self.finished = True
        self.request.cancelled = True  # the batching thread drops it at its next step, or never reads it

    def __del__(self) -> None:
        self.request.cancelled = True


def can_batch(model: Any) -> bool:
    """Whether models/batch.py decodes this model: a MiniTransformer of its own module classes."""
    return isinstance(model, MiniTransformer) and plain_modules(model)


class BatchingModel:
    """``model`` whose ``generate`` is decoded in a batch with every other answer in progress."""

    def __init__(self, model: Any, max_batch: int):
        self.model = model.eval()
        self.batch = BatchDecoder(model, max_batch)
        self._incoming: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="minillm-batch", daemon=True)
        self._thread.start()

    def generate(self, prompt_ids: list[int], sampling: Sampling, *, eos_id: int | None = None,
                 decode: Callable[[list[int]], str] | None = None) -> Tokens:
        check_prompt(prompt_ids, self.model.max_seq_len, sampling, decode)
        if self._closed:
            raise RuntimeError("the batching thread is closed")
        request = Request(list(prompt_ids), sampling, eos_id, decode)
        self._incoming.put(request)
        return Tokens(request)

    def close(self) -> None:
        self._closed = True
        self._incoming.put(None)  # wakes the thread if it sleeps
        self._thread.join(timeout=10)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    # --- the batching thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        requests: dict[Sequence, Request] = {}
        try:
            self._serve(requests)
        finally:  # closed: nobody may wait for a token that will never come
            stopped = RuntimeError("the batching thread stopped")
            for request in requests.values():
                request.tokens.put(stopped)
            while not self._incoming.empty():
                request = self._incoming.get()
                if request is not None:
                    request.tokens.put(stopped)

    def _serve(self, requests: dict[Sequence, Request]) -> None:
        with torch.inference_mode():
            while not self._closed:
                self._admit(requests, block=not requests)
                for sequence, request in list(requests.items()):
                    if request.cancelled:
                        self.batch.remove(sequence)
                        del requests[sequence]
                try:
                    picked = self.batch.step()
                except Exception as exc:  # a bug: fail the requests in the batch, keep serving the next ones
                    for sequence, request in requests.items():
                        self.batch.remove(sequence)
                        request.tokens.put(exc)
                    requests.clear()
                    continue
                for sequence, token in picked:
                    self._hand(requests[sequence], token, sequence.picker.done)
                    if sequence.picker.done:
                        del requests[sequence]

    def _admit(self, requests: dict[Sequence, Request], block: bool) -> None:
        """Read the prompts that arrived, while rows are free; wait for one when ``block``."""
        while not self.batch.full:
            try:
                request = self._incoming.get(block=block)
            except queue.Empty:
                return
            block = False
            if request is None or request.cancelled:
                continue
            try:
                sequence, token = self.batch.add(request.prompt_ids, request.sampling, eos_id=request.eos_id,
                                                 decode=request.decode)
            except Exception as exc:  # this request's own problem (e.g. its decode failed)
                request.tokens.put(exc)
                continue
            self._hand(request, token, sequence.picker.done)
            if not sequence.picker.done:
                requests[sequence] = request

    @staticmethod
    def _hand(request: Request, token: int | None, done: bool) -> None:
        if token is not None:
            request.held.append(token)
        if request.held and (done or not request.handed or len(request.held) >= HAND_EVERY):
            request.tokens.put(request.held)
            request.handed += len(request.held)
            request.held = []
        if done:
            request.tokens.put(_END)
