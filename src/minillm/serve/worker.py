"""Worker threads run every generation; the server's event loop only waits for them.

    worker = ModelWorker(model, tokenizer, index)            # one answer at a time
    worker = ModelWorker(BatchingModel(network, 32), tokenizer, index, concurrency=64)  # answers batched
    reply = await worker.reply("What is the Sun?", worker.sampling(), mode="closed")
    async for event in worker.stream("What is the Sun?", worker.sampling(), mode="open"):
        ...  # first the sources (a list of dicts), then str pieces of the answer, last Finished

Design choices:
- Each request is answered in a thread of the worker's pool (``ThreadPoolExecutor(max_workers=
  concurrency)``), first come first served. With ``concurrency=1`` (a model that cannot batch) answers come
  one at a time: on CPU one forward already uses the cores torch is given (``minillm serve --threads``),
  so two unbatched answers at once would each take about twice as long, and one thread keeps the model's
  module state (eval/train mode, which ``generate`` sets and restores) out of races. A model wrapped in
  serve/batching.py's BatchingModel decodes every answer in progress together, one forward a step, in its
  own thread: then many request threads wait on it at once (``concurrency``), each with its own KV cache
  row, and nothing of one request reaches another.
- The event loop never runs torch. Non-streaming requests await the worker's future; streaming ones await
  an ``asyncio.Queue`` that the worker fills through ``loop.call_soon_threadsafe``, one text piece at a
  time, so /health and new requests are still answered while a long answer is being generated.
- A stream whose client goes away sets a flag that the worker checks between pieces: an abandoned answer
  stops at the next token (batched: its sequence leaves the batch), and a request still queued when its
  client left does no work at all.
- Retrieval is serialised by a lock: the index is shared by the request threads.
- Defaults are those of ``minillm ask`` (engine.ANSWER_SAMPLING): greedy, repetition penalty 1.2, no
  repeated token 4-gram, a stop before a repeated word 4-gram, at most 4 whole sentences.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from minillm.answering.answer import ANSWER_SAMPLING, answer, stream_answer
from minillm.answering.attribution import attribution, passage_source
from minillm.answering.confidence import Calibration, Recalled, answer_from_memory, shown_text
from minillm.core.words import Vocabulary
from minillm.models.generation import Sampling
from minillm.retrieval.index import retrieve
from minillm.serve.errors import ApiError

MAX_QUESTION_CHARS = 2000
MAX_NEW_TOKENS = 512        # also capped by the model's context (max_seq_len)
DEFAULT_NEW_TOKENS = 128
RETRIEVED_PASSAGES = 3
MODES = ("closed", "open")


@dataclass(frozen=True)
class Finished:
    """The end of an answer: token counts and timing of the generation (queueing and retrieval excluded)."""
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    tokens_per_second: float
    finish_reason: str        # "length" when the token limit or the model's context ended it, else "stop"


@dataclass(frozen=True)
class Reply:
    text: str
    sources: list[dict]       # retrieval.passage_source of each article used, best first
    finished: Finished
    attribution: dict = field(default_factory=dict)  # open book: retrieval.attribution (faithfulness, sentences)
    memory: dict = field(default_factory=dict)  # closed book with a calibration: confidence, known_from_memory


def check_question(text: str, field: str) -> str:
    """The question, or an ApiError naming ``field`` when it is blank or longer than MAX_QUESTION_CHARS."""
    if not text.strip():
        raise ApiError(400, f"{field}: the question is empty", field)
    if len(text) > MAX_QUESTION_CHARS:
        raise ApiError(400, f"{field}: the question has {len(text)} characters; at most "
                            f"{MAX_QUESTION_CHARS} are allowed", field)
    return text


class _Metered:
    """The model as stream_answer sees it, counting the prompt and new tokens that stream_answer hides."""

    def __init__(self, model: Any, cancelled: threading.Event):
        self.model, self.cancelled = model, cancelled
        self.prompt_tokens = self.new_tokens = 0

    @property
    def max_seq_len(self) -> int:
        return self.model.max_seq_len

    def generate(self, prompt_ids: list[int], sampling: Sampling, **kwargs: Any) -> Iterator[int]:
        self.prompt_tokens = len(prompt_ids)
        for token in self.model.generate(prompt_ids, sampling, **kwargs):
            if self.cancelled.is_set():
                return
            self.new_tokens += 1
            yield token


class ModelWorker:
    """Answers questions with one model in ``concurrency`` threads (1: one generation at a time)."""

    def __init__(self, model: Any, tokenizer: Any, index: Any = None, calibration: Calibration | None = None,
                 concurrency: int = 1):
        self.model, self.tokenizer, self.index = model, tokenizer, index
        self.calibration = calibration  # closed book: answers below its threshold are withheld
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="minillm-generate")
        self._index_lock = threading.Lock()

    @property
    def max_new_tokens(self) -> int:
        return min(MAX_NEW_TOKENS, self.model.max_seq_len)

    def sampling(self, max_new_tokens: int | None = None, temperature: float | None = None,
                 top_p: float | None = None, seed: int | None = None,
                 max_tokens_field: str = "max_new_tokens") -> Sampling:
        """Sampling for one request; a token limit over the cap is an ApiError naming max_tokens_field."""
        if max_new_tokens is not None and max_new_tokens > self.max_new_tokens:
            raise ApiError(400, f"{max_tokens_field}: {max_new_tokens} is more than this model allows "
                                f"({self.max_new_tokens}; its context is {self.model.max_seq_len} tokens)",
                           max_tokens_field)
        return replace(ANSWER_SAMPLING, max_new_tokens=max_new_tokens or min(DEFAULT_NEW_TOKENS, self.max_new_tokens),
                       temperature=ANSWER_SAMPLING.temperature if temperature is None else temperature,
                       top_p=ANSWER_SAMPLING.top_p if top_p is None else top_p, seed=seed)

    @property
    def default_mode(self) -> str:
        """The best answers the run can give: open-book when it has a retrieval index."""
        return "closed" if self.index is None else "open"

    def check_mode(self, mode: str, field: str = "mode") -> None:
        """409 when open-book answers are asked of a run without a retrieval index."""
        if mode == "open" and self.index is None:
            raise ApiError(409, f"{field}: this run has no retrieval index, so it cannot answer open-book; "
                                "build one with `minillm index build RUN --articles ARTICLES.jsonl`", field)

    async def reply(self, question: str, sampling: Sampling, mode: str = "closed") -> Reply:
        """The whole answer at once."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._reply, question, sampling, mode)

    def _vocabulary(self) -> Vocabulary | None:
        """The words an open-book answer may spell (retrieval.Index.vocabulary); None without an index."""
        return None if self.index is None else self.index.vocabulary

    def _open(self, mode: str) -> bool:
        """Whether ``mode`` answers from the index (open book, and the server has one)."""
        return mode == "open" and self.index is not None

    def _retrieve(self, question: str, mode: str) -> tuple[list, str | None]:
        """(passages, context) for an open-book answer, as retrieval.answer_open finds them; closed: none."""
        with self._index_lock:
            return retrieve(self.index if self._open(mode) else None, question, RETRIEVED_PASSAGES, self.model)

    def _recall(self, question: str, sampling: Sampling) -> Recalled:
        """Closed book with a calibration: the answer, or that the model does not know (then open book when
        the run has an index)."""
        return answer_from_memory(self.model, self.tokenizer, question, sampling, self.calibration, self.index,
                                  k=RETRIEVED_PASSAGES)

    def _recalled_reply(self, question: str, sampling: Sampling) -> Reply:
        recalled = self._recall(question, sampling)
        result, passages = recalled.fallback or recalled.answer, list(recalled.passages)
        finished = Finished(result.prompt_tokens, result.new_tokens, result.seconds, result.tokens_per_second,
                            self._finish_reason(sampling, result.prompt_tokens, result.new_tokens))
        memory = {"confidence": recalled.confidence, "known_from_memory": recalled.known,
                  "answered_from": recalled.answered_from}
        return Reply(shown_text(recalled), _sources(passages), finished,
                     attribution(result.text, passages) if passages else {}, memory)

    def _reply(self, question: str, sampling: Sampling, mode: str) -> Reply:
        if mode == "closed" and self.calibration is not None:
            return self._recalled_reply(question, sampling)
        passages, context = self._retrieve(question, mode)
        result = answer(self.model, self.tokenizer, question, sampling, context=context, vocabulary=self._vocabulary(),
                        open_book=self._open(mode))
        finished = Finished(result.prompt_tokens, result.new_tokens, result.seconds, result.tokens_per_second,
                            self._finish_reason(sampling, result.prompt_tokens, result.new_tokens))
        return Reply(result.text, _sources(passages), finished, attribution(result.text, passages) if passages else {})

    async def stream(self, question: str, sampling: Sampling,
                     mode: str = "closed") -> AsyncIterator[list[dict] | str | Finished]:
        """The sources (empty when closed-book), then the answer in text pieces, then Finished."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        loop.run_in_executor(self._executor, self._stream, question, sampling, mode, cancelled, emit)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Finished):
                    return
        finally:
            cancelled.set()  # the client left, or the answer is over: either way the worker may stop

    def _stream(self, question: str, sampling: Sampling, mode: str, cancelled: threading.Event,
                emit: Callable[[object], None]) -> None:
        if cancelled.is_set():
            return
        try:
            if mode == "closed" and self.calibration is not None:  # judged whole before anything is shown
                reply = self._recalled_reply(question, sampling)
                for item in (reply.sources, reply.text, reply.finished):
                    emit(item)
                return
            passages, context = self._retrieve(question, mode)
            emit(_sources(passages))
            metered = _Metered(self.model, cancelled)
            start = time.perf_counter()
            for piece in stream_answer(metered, self.tokenizer, question, sampling, context=context,
                                      vocabulary=self._vocabulary(), open_book=self._open(mode)):
                emit(piece)
            seconds = time.perf_counter() - start
            if not cancelled.is_set():
                emit(Finished(metered.prompt_tokens, metered.new_tokens, seconds,
                              metered.new_tokens / seconds if seconds > 0 else 0.0,
                              self._finish_reason(sampling, metered.prompt_tokens, metered.new_tokens)))
        except Exception as exc:  # handed to the request's coroutine, which answers with an error event
            emit(exc)

    def _finish_reason(self, sampling: Sampling, prompt_tokens: int, new_tokens: int) -> str:
        full = new_tokens >= sampling.max_new_tokens or prompt_tokens + new_tokens >= self.model.max_seq_len
        return "length" if full else "stop"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _sources(passages: list) -> list[dict]:
    """One source per article, in the retrieval's order (a long article may give several passages)."""
    by_article: dict[str, dict] = {}
    for p in passages:
        by_article.setdefault(p.article_id, passage_source(p))
    return list(by_article.values())
