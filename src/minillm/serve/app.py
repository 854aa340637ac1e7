"""The FastAPI app of ``minillm serve``: the chat page, /v1/answer, /health and the OpenAI routes.

    app = create_app("runs/NAME")            # then: uvicorn.run(app, host="127.0.0.1", port=8000)

Routes:
- ``GET /``: the chat page (static/index.html, app.js, style.css: plain files, no build step, no CDN).
- ``POST /v1/answer`` {question, history, mode: closed|open (default: open when the run has an index),
  max_new_tokens, temperature, top_p, seed, stream}: the answer, its sources (title, url, license), open
  book its faithfulness and each sentence's source passage (answering/attribution.py), and timing; closed
  book, when the run has a confidence.json (minillm calibrate), ``confidence``, ``known_from_memory`` and
  ``answered_from`` ("memory", "articles" when the answer was withheld and answered open book instead, null
  when withheld); with ``stream: true``, server-sent events
  ``{"type": "sources"}``, ``{"type": "text"}`` pieces and ``{"type": "done"}`` with usage and timing.
  ``history`` (earlier turns, oldest first: ``{question, answer}``) resolves a follow-up as ``chat`` and
  /v1/chat/completions do (answering/conversation.py): after "What is Venus?", "How hot is it there?" is
  answered as "How hot is it on Venus?", given back as ``resolved_question`` (streamed: a first
  ``{"type": "resolved"}`` event). The page keeps its conversation and sends it.
- ``GET /health``; ``POST /v1/chat/completions`` and ``GET /v1/models`` (openai_api.py).

Design choices:
- The run's model, tokenizer, retrieval index (``minillm.retrieval.index.load_index``; None when the run has
  none, and then open-book requests get a 409 saying how to build one) and confidence calibration load once,
  when the app is made:
  a broken run fails at start, not at the first request.
- A transformer's answers are decoded together, up to ``max_batch`` (``--max-batch``, 32) at once, one forward
  a step for all of them (serve/batching.py); other rungs answer one at a time (serve/worker.py).
- One pure-ASGI guard sits in front of every route. In order: when the server is bound to a loopback
  address it answers only requests whose Host is a loopback name (a web page elsewhere cannot reach it
  through DNS rebinding); with an API key, every route but the page, /login, /health and /static/ needs
  it (deny by default: a route added later is guarded too), 401 before any body is read; bodies over
  ``max_body_bytes`` (64 KiB) are refused (413, read no further, chunked ones too); and every response
  gets the security headers (``CSP``: only this origin's scripts, styles and fetches, no plugins, no
  framing, no <base>; ``nosniff``; no referrer).
- API key (``--api-key`` or ``MINILLM_API_KEY``): OpenAI clients send it as ``Authorization: Bearer KEY``;
  it is compared with ``hmac.compare_digest`` (constant time, on bytes, so any key works). The chat page
  cannot set that header itself, so with a key ``/`` sends a browser to ``/login``, a plain form (no
  script) where the key is typed once; the server then sets a session cookie holding a random token made
  at start (never the key): HttpOnly (scripts cannot read it), SameSite=Strict (no other site's page
  sends it: no CSRF), Secure over https, gone when the browser or the server closes. The page's own
  fetches carry it, so its code is unchanged. No rate limit on wrong keys: use a long random key.
- No CORS unless asked for (``cors_origins``, ``--cors-origin``): then Starlette's CORSMiddleware, outside
  the guard (preflights carry no key), for exactly those origins, GET and POST, the headers
  Authorization and Content-Type, no cookies.
- Static files: only the plain files that ``static/`` holds when the app is made, looked up by name in a
  dict; a name with a slash, a backslash, dots or percent-escapes is not a key of it, so any traversal
  attempt is a 404 by construction, whatever the decoding.
- FastAPI's /docs pages are off: they load their scripts from a CDN, which the CSP (and offline use) forbid.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import cookie_parser

from minillm.answering.confidence import load_calibration
from minillm.answering.conversation import Turn, resolve
from minillm.answering.engine import ENGINES, OnnxRuntimeEngine, with_engine
from minillm.answering.reader import reader_info, with_reader
from minillm.models.generation import Sampling
from minillm.retrieval.index import load_index
from minillm.serve.batching import BatchingModel, can_batch
from minillm.serve.errors import ApiError, error_body, error_response, install_error_handlers
from minillm.serve.openai_api import MAX_MESSAGES, SSE_HEADERS, LimitedText, openai_routes, sse
from minillm.serve.worker import MAX_QUESTION_CHARS, Finished, ModelWorker, check_question
from minillm.training.runs import load_run

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_BODY_BYTES = 64 * 1024
MAX_BATCH = 32  # answers decoded together (serve/batching.py); `minillm serve --max-batch`
STATIC_DIR = Path(__file__).parent / "static"
API_KEY_ENV = "MINILLM_API_KEY"
SESSION_COOKIE = "minillm_session"
OPEN_PATHS = frozenset({"/", "/login", "/health"})  # and /static/*: all else needs the key, when there is one
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# the in-browser engine (--web): the same, but WebAssembly may be compiled (onnxruntime-web needs it)
WEB_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("script-src 'self'", "script-src 'self' "
                                                              "'wasm-unsafe-eval'")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

log = logging.getLogger("minillm.serve")


class EarlierTurn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    question: LimitedText
    answer: LimitedText | None = None


class AnswerRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    question: LimitedText
    # the conversation so far, oldest first: a follow-up ("How hot is it there?") is resolved against it
    history: list[EarlierTurn] = Field(default_factory=list, max_length=MAX_MESSAGES)
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


def resolve_api_key(flag: str | None, environ: dict[str, str]) -> str | None:
    """The API key: ``--api-key`` first, else $MINILLM_API_KEY; None for no key. An empty key is an error
    (ValueError), not "no key": a blank variable must not quietly turn authentication off."""
    key = flag if flag is not None else environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        raise ValueError(f"the API key (--api-key or ${API_KEY_ENV}) is empty")
    return key


def bind_warning(host: str, api_key: str | None) -> str | None:
    """The start-up warning for an address other machines can reach with no API key; None when safe."""
    if is_loopback(host) or api_key:
        return None
    return (f"minillm serve: warning: {host} is not a loopback address and there is no API key: anyone who "
            f"can reach this port can use the model (set --api-key or ${API_KEY_ENV})")


def check_origin(origin: str) -> str:
    """origin as browsers send it (scheme://host[:port], http or https, no path), else ValueError: a
    trailing slash or a path would never match, and "*" would let every site in."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query \
            or parts.fragment or parts.username is not None:
        raise ValueError(f"--cors-origin {origin!r}: give an origin such as https://example.org "
                         "(scheme, host and port only; not *)")
    return origin


def _page_routes(app: FastAPI, auth: _Auth | None, web_files: dict[str, Path]) -> None:
    """The page, its static files, the in-browser engine's files (``web_files``) and, with a key, the login."""
    static_files = _static_files(STATIC_DIR)

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in static_files:
            raise ApiError(404, f"path: no static file {name!r}", "path")
        return FileResponse(static_files[name])

    @app.api_route("/web/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def web(name: str) -> FileResponse:
        path = web_files.get(name or "index.html")
        if path is None:
            raise ApiError(404, f"path: no file {name!r} in the in-browser engine", "path")
        return FileResponse(path, headers={"Content-Security-Policy": WEB_CSP})

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        if auth and not auth.has_session(request.headers):
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        if not auth or auth.has_session(request.headers):
            return RedirectResponse("/", status_code=303)
        return HTMLResponse(_login_page())

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not auth:
            return RedirectResponse("/", status_code=303)
        typed = parse_qs((await request.body()).decode("utf-8", "replace")).get("key", [""])[0]
        if not auth.key_matches(typed):
            return HTMLResponse(_login_page("That is not the key this server was started with."), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, auth.session, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response


def _engine(network: Any, max_batch: int, engine: str,
            threads: int | None) -> tuple[BatchingModel | None, Any, str, str | None]:
    """(the batching model or None, what decodes the answers, the engine's name, auto's fallback note)."""
    if max_batch > 1 and can_batch(network) and engine != "onnxruntime":
        batching = BatchingModel(network, max_batch)
        return batching, batching, f"minillm, batched ({max_batch})", None
    decoder, note = with_engine(network, engine, threads=threads)  # ValueError: onnxruntime cannot run
    return None, decoder, "onnxruntime" if isinstance(decoder, OnnxRuntimeEngine) else "minillm", note


def _model_meta(model: Any, worker: ModelWorker, web: bool, engine_name: str) -> dict:
    """What /v1/models says of the model beside its id."""
    return {"parameters": model.num_parameters(), "size_bytes": model.size_bytes(),
            "size_mb": round(model.size_bytes() / 1e6, 3), "context_length": model.max_seq_len,
            "max_new_tokens": worker.max_new_tokens, "max_question_chars": MAX_QUESTION_CHARS,
            "open_book": worker.index is not None, "browser_engine": "/web/" if web else None,
            "engine": engine_name, **reader_info(model)}


WORKER_ENV = "MINILLM_SERVE_WORKER"  # create_app's arguments (JSON) for each worker process of `serve --workers`


def app_for_worker() -> FastAPI:
    """The app of one worker process of ``minillm serve --workers N`` (uvicorn's factory, in each process):
    create_app with the arguments the parent process checked and put in WORKER_ENV, and its torch threads."""
    import torch

    kwargs = json.loads(os.environ[WORKER_ENV])
    threads = kwargs.get("threads")
    app = create_app(kwargs.pop("run_dir"), **kwargs)
    if threads:
        torch.set_num_threads(threads)
    return app


def create_app(run_dir: str | Path, *, device: str = "cpu", host: str = DEFAULT_HOST,
               max_body_bytes: int = MAX_BODY_BYTES, api_key: str | None = None,
               cors_origins: list[str] | tuple[str, ...] = (), web_dir: str | Path | None = None,
               reader: str | None = None, max_batch: int = MAX_BATCH, engine: str = "minillm",
               threads: int | None = None, session: str | None = None) -> FastAPI:
    """The app serving the run in run_dir; ``host`` is the address it will be bound to (the Host check);
    ``api_key``: required of every request but the page's (None: no key); ``cors_origins``: the other
    origins whose pages may call the API (none by default); ``web_dir``: a folder from ``minillm export web``
    served at /web/, the page's "answer in this browser" choice (ValueError if it is not one); ``reader``:
    who answers open book (answering/reader.py; None: the run's ``[answer] reader``); ``max_batch``: answers
    decoded together (serve/batching.py; 1: one at a time, as models that cannot batch always are);
    ``engine`` (answering/engine.py): who decodes one at a time; "auto" batches with minillm's engine when
    ``max_batch`` > 1, else takes onnxruntime where it runs; "onnxruntime" answers one at a time through it.
    ``app.state.engine`` names the engine, ``app.state.engine_note`` says why auto fell back (or None);
    ``threads``: onnxruntime's (default: torch's now; the CLI passes serve's --threads); ``session``: the login
    cookie's token (None: a new random one; worker processes of one server share one)."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    origins = [check_origin(origin) for origin in cors_origins]
    web_files = _web_files(Path(web_dir)) if web_dir is not None else {}
    network, tokenizer, cfg = load_run(run_dir, device=device)
    batching, decoder, engine_name, note = _engine(network, max_batch, engine, threads)
    try:
        model = with_reader(decoder, tokenizer, reader or cfg.answer.reader, run_dir)
    except ValueError:
        if batching is not None:
            batching.close()
        raise
    # twice the rows in threads: a request waits in its thread while its prompt is read or retrieval runs
    worker = ModelWorker(model, tokenizer, load_index(run_dir), calibration=load_calibration(run_dir),
                         concurrency=2 * max_batch if batching else 1)
    model_id = Path(run_dir).resolve().name
    meta = _model_meta(model, worker, bool(web_files), engine_name)

    def close() -> None:  # the worker's threads and the batching thread
        worker.close()
        if batching is not None:
            batching.close()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        close()

    app = FastAPI(title="minillm", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine, app.state.engine_note = engine_name, note
    app.state.close = close  # for an app that is never served (serve --workers checks the run with one)
    allowed_hosts = LOOPBACK_NAMES | {host} if is_loopback(host) else None
    auth = _Auth(api_key, session) if api_key else None
    app.add_middleware(_Guard, allowed_hosts=allowed_hosts, max_body_bytes=max_body_bytes, auth=auth)
    if origins:  # added last, so outermost: it answers preflights, which carry no key, before the guard
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    install_error_handlers(app)
    app.include_router(openai_routes(worker, model_id, meta))
    _page_routes(app, auth, web_files)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": model_id}

    @app.post("/v1/answer")
    async def answer(request: AnswerRequest) -> Any:
        asked = check_question(request.question, "question")
        question = resolve([Turn(t.question, t.answer) for t in request.history], asked).question
        sampling = worker.sampling(request.max_new_tokens, request.temperature, request.top_p, request.seed)
        mode = request.mode or worker.default_mode
        worker.check_mode(mode)
        if request.stream:
            return StreamingResponse(_answer_events(worker, question, sampling, mode, asked),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        reply = await worker.reply(question, sampling, mode)
        return {"question": asked, "resolved_question": question, "answer": reply.text, "mode": mode,
                "model": model_id, **reply.memory,
                "sources": reply.sources, **reply.attribution, **_done(reply.finished)}

    return app


def _done(finished: Finished) -> dict[str, Any]:
    return {"finish_reason": finished.finish_reason,
            "usage": {"prompt_tokens": finished.prompt_tokens,
                      "completion_tokens": finished.completion_tokens},
            "timing": {"seconds": round(finished.seconds, 4),
                       "tokens_per_second": round(finished.tokens_per_second, 1)}}


async def _answer_events(worker: ModelWorker, question: str, sampling: Sampling, mode: str,
                         asked: str) -> AsyncIterator[str]:
    try:
        if question != asked:  # a follow-up, resolved against the history: say what was answered
            yield sse({"type": "resolved", "question": question})
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


def _static_files(directory: Path) -> dict[str, Path]:
    """name -> path of each plain file in directory (no links, no folders): all /static/ may serve."""
    return {path.name: path for path in directory.iterdir() if path.is_file() and not path.is_symlink()}


def _web_files(directory: Path) -> dict[str, Path]:
    """relative path -> path of each plain file of an ``export web`` folder, all that /web/ may serve (looked
    up by name, as /static/: no path is ever joined from a request)."""
    if not (directory / "index.html").is_file() or not (directory / "vendor.json").is_file():
        raise ValueError(f"--web: {directory} is not a folder made by `minillm export web` (no index.html and "
                         "vendor.json)")
    return {p.relative_to(directory).as_posix(): p for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _login_page(problem: str = "") -> str:
    """The key form: plain HTML with no script or inline style (the CSP allows neither), posting to /login."""
    alert = f'<p id="form-error" role="alert">{html.escape(problem)}</p>' if problem else ""
    return ('<!doctype html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
            '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '  <title>minillm: API key</title>\n  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">\n'
            '  <link rel="stylesheet" href="/static/style.css">\n'
            '</head>\n<body>\n  <header><h1>minillm</h1></header>\n'
            '  <form id="login" method="post" action="/login">\n'
            '    <p class="note">This server needs its API key. Type it once: this browser then keeps a '
            'session until it or the server closes.</p>\n'
            '    <label>API key <input id="key" name="key" type="password" autocomplete="current-password" '
            'required autofocus></label>\n'
            f'    <button id="login-button" type="submit">Open the chat</button>\n    {alert}\n'
            '  </form>\n</body>\n</html>\n')


class _Auth:
    """The API key, and the session token that the login form gives a browser in its stead."""

    def __init__(self, api_key: str, session: str | None = None):
        self.key = api_key.encode("utf-8")
        # new at each start (restarting the server logs browsers out); shared by the worker processes
        self.session = session or secrets.token_urlsafe(32)

    def key_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode("utf-8"), self.key)

    def has_session(self, headers: Headers) -> bool:
        cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE, "")
        return hmac.compare_digest(cookie.encode("utf-8"), self.session.encode("ascii"))

    def allows(self, headers: Headers) -> bool:
        """A bearer token equal to the key (headers are latin-1 decoded: encoding back gives the bytes
        sent, the UTF-8 of a non-ASCII key), or the login session's cookie."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("latin-1"), self.key):
            return True
        return self.has_session(headers)


def _is_open(path: str) -> bool:
    """Paths that need no key: the page, /login, /health and one level of /static/ (no deeper name)."""
    return path in OPEN_PATHS or (path.startswith("/static/") and "/" not in path[len("/static/"):])


def _host_name(host_header: str) -> str | None:
    try:
        return urlsplit(f"//{host_header}").hostname  # "127.0.0.1:8000" -> 127.0.0.1, "[::1]:80" -> ::1
    except ValueError:
        return None


class _Guard:
    """What every HTTP request passes through: the Host check, the API key, the body size limit, the
    security headers."""

    def __init__(self, app: Any, allowed_hosts: frozenset[str] | None, max_body_bytes: int,
                 auth: _Auth | None = None):
        self.app, self.allowed_hosts, self.max_body_bytes, self.auth = app, allowed_hosts, max_body_bytes, auth

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
        if self.auth and not _is_open(scope["path"]) and not self.auth.allows(headers):
            refusal = error_response(401, "authorization: a missing or wrong API key; send the header "
                                          "Authorization: Bearer KEY", "authorization",
                                     headers={"WWW-Authenticate": "Bearer"})
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
