"""The FastAPI app of ``minillm serve``: the chat page, /v1/answer, /health and the OpenAI routes.

    app = create_app("runs/NAME")            # then: uvicorn.run(app, host="127.0.0.1", port=8000)

Routes:
- ``GET /``: the chat page (static/index.html, app.js, style.css: plain files, no build step, no CDN).
- ``POST /v1/answer`` {question, mode: closed|open (default: open when the run has an index), max_new_tokens,
  temperature, top_p, seed, stream}: the
  answer, its sources (title, url, license), open book its faithfulness and each sentence's source passage
  (retrieval.attribution), and timing; with ``stream: true``, server-sent events
  ``{"type": "sources"}``, ``{"type": "text"}`` pieces and ``{"type": "done"}`` with usage and timing.
- ``GET /health``; ``POST /v1/chat/completions`` and ``GET /v1/models`` (openai_api.py).

Design choices:
- The run's model, tokenizer and retrieval index (``minillm.retrieval.load_index``; None when the run has
  none, and then open-book requests get a 409 saying how to build one) load once, when the app is made:
  a broken run fails at start, not at the first request.
- One pure-ASGI guard sits in front of every route: it refuses bodies over ``max_body_bytes`` (413, read
  no further), adds the security headers (a CSP of ``default-src 'self'``, so even an injected script
  could not run or call out; ``nosniff``; no framing; no referrer), and, when the server is bound to a
  loopback address, answers only requests whose Host is a loopback name: a web page elsewhere cannot
  reach the server through DNS rebinding. Bound to another address it answers any Host; there is no
  authentication, so expose it only behind a proxy that adds some.
- FastAPI's /docs pages are off: they load their scripts from a CDN, which the CSP (and offline use) forbid.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers, MutableHeaders

from minillm.engine import Sampling
from minillm.retrieval import load_index
from minillm.serve.errors import error_body, error_response, install_error_handlers
from minillm.serve.openai_api import SSE_HEADERS, openai_routes, sse
from minillm.serve.worker import MAX_QUESTION_CHARS, Finished, ModelWorker, check_question
from minillm.train import load_run

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_BODY_BYTES = 64 * 1024
STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

log = logging.getLogger("minillm.serve")


class AnswerRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    question: str
    mode: Literal["closed", "open"] | None = None  # None: open when the run has an index
    max_new_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stream: bool = False


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(run_dir: str | Path, *, device: str = "cpu", host: str = DEFAULT_HOST,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app serving the run in run_dir; ``host`` is the address it will be bound to (the Host check)."""
    model, tokenizer, _ = load_run(run_dir, device=device)
    worker = ModelWorker(model, tokenizer, load_index(run_dir))
    model_id = Path(run_dir).resolve().name
    meta = {"parameters": model.num_parameters(), "size_bytes": model.size_bytes(),
            "size_mb": round(model.size_bytes() / 1e6, 3), "context_length": model.max_seq_len,
            "max_new_tokens": worker.max_new_tokens, "max_question_chars": MAX_QUESTION_CHARS,
            "open_book": worker.index is not None}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        worker.close()

    app = FastAPI(title="minillm", lifespan=lifespan, docs_url=None, redoc_url=None)
    allowed_hosts = LOOPBACK_NAMES | {host} if is_loopback(host) else None
    app.add_middleware(_Guard, allowed_hosts=allowed_hosts, max_body_bytes=max_body_bytes)
    install_error_handlers(app)
    app.include_router(openai_routes(worker, model_id, meta))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": model_id}

    @app.post("/v1/answer")
    async def answer(request: AnswerRequest) -> Any:
        question = check_question(request.question, "question")
        sampling = worker.sampling(request.max_new_tokens, request.temperature, request.top_p, request.seed)
        mode = request.mode or worker.default_mode
        worker.check_mode(mode)
        if request.stream:
            return StreamingResponse(_answer_events(worker, question, sampling, mode),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        reply = await worker.reply(question, sampling, mode)
        return {"question": question, "answer": reply.text, "mode": mode, "model": model_id,
                "sources": reply.sources, **reply.attribution, **_done(reply.finished)}

    return app


def _done(finished: Finished) -> dict[str, Any]:
    return {"finish_reason": finished.finish_reason,
            "usage": {"prompt_tokens": finished.prompt_tokens,
                      "completion_tokens": finished.completion_tokens},
            "timing": {"seconds": round(finished.seconds, 4),
                       "tokens_per_second": round(finished.tokens_per_second, 1)}}


async def _answer_events(worker: ModelWorker, question: str, sampling: Sampling,
                         mode: str) -> AsyncIterator[str]:
    try:
        async for event in worker.stream(question, sampling, mode):
            if isinstance(event, str):
                yield sse({"type": "text", "text": event})
            elif isinstance(event, Finished):
                yield sse({"type": "done", **_done(event)})
            else:
                yield sse({"type": "sources", "sources": event})
    except Exception:
        log.exception("generation failed")
        yield sse({"type": "error", **error_body(500, "generation failed")})


def _host_name(host_header: str) -> str | None:
    try:
        return urlsplit(f"//{host_header}").hostname  # "127.0.0.1:8000" -> 127.0.0.1, "[::1]:80" -> ::1
    except ValueError:
        return None


class _Guard:
    """What every HTTP request passes through: the Host check, the body size limit, the security headers."""

    def __init__(self, app: Any, allowed_hosts: frozenset[str] | None, max_body_bytes: int):
        self.app, self.allowed_hosts, self.max_body_bytes = app, allowed_hosts, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        headers = Headers(scope=scope)
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            refusal = error_response(400, "Host: this server is bound to a loopback address and answers only "
                                          "requests addressed to 127.0.0.1, localhost or ::1", "host")
            await refusal(scope, receive, send_with_headers)
            return
        too_large = error_response(413, f"body: larger than {self.max_body_bytes} bytes", "body")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await too_large(scope, receive, send_with_headers)
            return
        body = bytearray()  # read it all now (it is small) so that chunked bodies are capped too
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await too_large(scope, receive, send_with_headers)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()  # e.g. http.disconnect, which streaming responses listen for
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send_with_headers)
