"""minillm serve: the OpenAI routes through the real `openai` client, /v1/answer, limits, errors, concurrency.

A real uvicorn server runs in a thread on a free 127.0.0.1 port, serving a copy of the tiny_run with a
retrieval index. Answers are checked against minillm.models.generation / minillm.retrieval.index called directly: the
server must give the same greedy answer, token counts and sources as the library.
"""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")
openai = pytest.importorskip("openai", reason="the openai client is not installed")
import uvicorn  # noqa: E402
from conftest import tiny_articles  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from minillm.answering.answer import answer  # noqa: E402
from minillm.cli import main  # noqa: E402
from minillm.models.generation import Sampling  # noqa: E402
from minillm.prompt import encode_prompt  # noqa: E402
from minillm.serve import create_app  # noqa: E402
from minillm.serve.batching import HAND_EVERY, BatchingModel  # noqa: E402
from minillm.serve.worker import ModelWorker  # noqa: E402
from minillm.training.runs import load_run  # noqa: E402

QUESTIONS = ["What is the Sun?", "What is the heart?", "Where is the Nile?", "What is water?",
             "What is a lion?", "What is a tornado?", "What is the Moon?", "What orbits the Sun?"]
# what the server uses when a request gives no sampling fields (the `minillm ask` defaults)
DEFAULT_SAMPLING = dict(max_new_tokens=96, repetition_penalty=1.2, max_sentences=4, no_repeat_ngram=4,
                        stop_repeat=4)


@contextmanager
def running_server(app):
    """uvicorn serving app in a thread on a free 127.0.0.1 port; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def make_open_run(tiny_run, directory: Path, articles) -> Path:
    """A copy of tiny_run (the session's run stays untouched) with a retrieval index over articles."""
    from minillm.retrieval.index import Index

    run = directory / "run"
    shutil.copytree(tiny_run, run)
    Index.build(articles).save(run / "index")
    return run


@pytest.fixture(scope="module")
def open_run(tiny_run, tmp_path_factory):
    return make_open_run(tiny_run, tmp_path_factory.mktemp("serve"), tiny_articles())


@pytest.fixture(scope="module")
def url(open_run):
    with running_server(create_app(open_run)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def library(open_run):
    """The model, tokenizer and index, loaded directly: the reference the server must agree with."""
    from minillm.retrieval.index import load_index

    model, tok, _ = load_run(open_run)
    return model, tok, load_index(open_run)


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_health_and_models(url, library, client):
    model, _, _ = library
    assert httpx.get(f"{url}/health").json() == {"status": "ok", "model": "run"}
    models = client.models.list().data
    assert [m.id for m in models] == ["run"]
    meta = httpx.get(f"{url}/v1/models").json()["data"][0]["meta"]
    assert meta["parameters"] == model.num_parameters() and meta["size_bytes"] == model.size_bytes()
    assert meta["context_length"] == model.max_seq_len and meta["open_book"] is True
    assert meta["reader"] == "model" and meta["reader_why"] == "the network writes the answer from the passages"


def test_openai_client_answer_matches_engine(client, library):
    """A run with an index answers OpenAI clients open-book: its best answers."""
    from minillm.answering.open_book import answer_open

    model, tok, index = library
    question = "What is the Sun?"
    completion = client.chat.completions.create(
        model="anything", messages=[{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Ignored earlier turn?"},
                                    {"role": "assistant", "content": "Yes."},
                                    {"role": "user", "content": question}])
    expected, _ = answer_open(model, tok, index, question, Sampling(**DEFAULT_SAMPLING), k=3)
    assert completion.model == "run" and completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == expected.text
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens == expected.prompt_tokens > len(encode_prompt(tok, question))
    assert completion.usage.completion_tokens == expected.new_tokens
    assert completion.usage.total_tokens == expected.prompt_tokens + expected.new_tokens


def test_openai_client_streams_the_same_answer(client):
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is the "},
                                             {"type": "text", "text": "Moon?"}]}]
    whole = client.chat.completions.create(model="run", messages=messages)
    chunks = list(client.chat.completions.create(model="run", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # streamed piece by piece, not in one chunk
    assert "".join(pieces).strip() == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.id == chunks[0].id for c in chunks)


def test_raw_stream_ends_with_done(url):
    body = {"messages": [{"role": "user", "content": "What is the Sun?"}], "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    assert not any("usage" in json.loads(e[6:]) for e in events[:-1])  # no usage unless asked for


def test_sampling_fields_are_mapped(client, library):
    from minillm.answering.open_book import answer_open

    model, tok, index = library
    ask = dict(model="run", messages=[{"role": "user", "content": "What is a lion?"}])
    short = client.chat.completions.create(**ask, max_tokens=3)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    alias = client.chat.completions.create(**ask, max_completion_tokens=2, max_tokens=50)
    assert alias.usage.completion_tokens == 2  # max_completion_tokens wins over the older max_tokens
    sampled = [client.chat.completions.create(**ask, temperature=1.5, top_p=0.9, seed=seed)
               .choices[0].message.content for seed in (7, 7, 8)]
    reference, _ = answer_open(model, tok, index, "What is a lion?",
                               Sampling(**{**DEFAULT_SAMPLING, "temperature": 1.5, "top_p": 0.9, "seed": 7}))
    assert sampled[0] == sampled[1] == reference.text
    assert sampled[2] != sampled[0]  # a different seed draws differently (gibberish model, many choices)


def test_answer_closed_book(url, library):
    model, tok, _ = library
    body = httpx.post(f"{url}/v1/answer", json={"question": "What is water?", "max_new_tokens": 20,
                                                "mode": "closed"}).json()
    expected = answer(model, tok, "What is water?", Sampling(**{**DEFAULT_SAMPLING, "max_new_tokens": 20}))
    assert body["answer"] == expected.text and body["mode"] == "closed" and body["sources"] == []
    assert "faithfulness" not in body and "sentences" not in body
    assert body["usage"] == {"prompt_tokens": expected.prompt_tokens,
                             "completion_tokens": expected.new_tokens}
    assert body["timing"]["seconds"] > 0 and body["timing"]["tokens_per_second"] > 0


def test_answer_open_book_has_sources(url, library):
    from minillm.answering.attribution import attribution
    from minillm.answering.open_book import answer_open

    model, tok, index = library
    question = "Which river flows north into the Mediterranean Sea?"
    body = httpx.post(f"{url}/v1/answer", json={"question": question, "mode": "open"}).json()
    default = httpx.post(f"{url}/v1/answer", json={"question": question}).json()  # open is the default
    assert {k: v for k, v in default.items() if k != "timing"} == {k: v for k, v in body.items() if k != "timing"}
    expected, passages = answer_open(model, tok, index, question, Sampling(**DEFAULT_SAMPLING), k=3)
    assert body["answer"] == expected.text and body["usage"]["prompt_tokens"] == expected.prompt_tokens
    assert body["faithfulness"] == attribution(expected.text, passages)["faithfulness"]
    assert body["sentences"] == attribution(expected.text, passages)["sentences"]
    nile = {"title": "Nile", "url": "https://en.wikipedia.org/wiki/Nile", "license": "CC BY-SA 4.0"}
    assert {k: body["sources"][0][k] for k in nile} == nile
    assert [s["title"] for s in body["sources"]] == list(dict.fromkeys(p.title for p in passages))


def test_answer_stream_events(url):
    question = {"question": "Which river flows north into the Mediterranean Sea?", "mode": "open"}
    whole = httpx.post(f"{url}/v1/answer", json=question).json()
    with httpx.stream("POST", f"{url}/v1/answer", json={**question, "stream": True}, timeout=60) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line]
    assert events[0] == {"type": "sources", "sources": whole["sources"]}
    assert {e["type"] for e in events[1:-1]} == {"text"}
    assert "".join(e["text"] for e in events[1:-1]).strip() == whole["answer"]
    assert events[-1]["type"] == "done" and events[-1]["usage"] == whole["usage"]


def test_open_book_with_nothing_found_says_the_articles_do_not_answer(url):
    from minillm.models.ranker import NOT_ANSWERED

    question = {"question": "Qwxz vrrbl plonk?", "mode": "open"}
    body = httpx.post(f"{url}/v1/answer", json=question).json()
    assert body["answer"] == NOT_ANSWERED and body["sources"] == []
    with httpx.stream("POST", f"{url}/v1/answer", json={**question, "stream": True}, timeout=60) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line]
    assert events[0] == {"type": "sources", "sources": []}
    assert "".join(e["text"] for e in events[1:-1]).strip() == NOT_ANSWERED and events[-1]["type"] == "done"
    closed = httpx.post(f"{url}/v1/answer", json={**question, "mode": "closed"}).json()
    assert closed["answer"] != NOT_ANSWERED  # closed book the network answers from memory


def test_answer_resolves_a_follow_up_against_the_history(url):
    history = [{"question": "What is the Sun?", "answer": "The Sun is the star at the centre of the Solar System."}]
    asked = {"question": "What is it made of?", "history": history, "mode": "open"}
    body = httpx.post(f"{url}/v1/answer", json=asked).json()
    direct = httpx.post(f"{url}/v1/answer", json={"question": "What is the Sun made of?", "mode": "open"}).json()
    assert body["question"] == "What is it made of?" and body["resolved_question"] == "What is the Sun made of?"
    assert body["answer"] == direct["answer"] and body["sources"] == direct["sources"]
    with httpx.stream("POST", f"{url}/v1/answer", json={**asked, "stream": True}, timeout=60) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line]
    assert events[0] == {"type": "resolved", "question": "What is the Sun made of?"}
    alone = httpx.post(f"{url}/v1/answer", json={"question": "What is it made of?", "mode": "open"}).json()
    assert alone["resolved_question"] == "What is it made of?"  # no history: nothing to resolve against


def test_open_mode_without_an_index_is_a_409_naming_the_command(tiny_run):
    with TestClient(create_app(tiny_run), base_url="http://127.0.0.1") as test_client:
        assert test_client.get("/v1/models").json()["data"][0]["meta"]["open_book"] is False
        for stream in (False, True):
            response = test_client.post("/v1/answer", json={"question": "What is the Sun?", "mode": "open",
                                                            "stream": stream})
            assert response.status_code == 409
            assert response.json()["error"]["field"] == "mode"
            assert "minillm index build" in response.json()["error"]["message"]
        response = test_client.post("/v1/answer", json={"question": "What is the Sun?"})
        assert response.status_code == 200 and response.json()["mode"] == "closed"  # the default without one


USER = {"role": "user", "content": "What is the Sun?"}
BAD_REQUESTS = [
    ("/v1/chat/completions", {"content": b'{"messages": [', "headers": {"content-type": "application/json"}},
     400, "body"),
    ("/v1/chat/completions", {"json": {"model": "run"}}, 400, "messages"),
    ("/v1/chat/completions", {"json": {"messages": []}}, 400, "messages"),
    ("/v1/chat/completions", {"json": {"messages": "What is the Sun?"}}, 400, "messages"),
    ("/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": 42}]}}, 400,
     "messages.0.content"),
    ("/v1/chat/completions", {"json": {"messages": [{"role": "robot", "content": "hi"}]}}, 400,
     "messages.0.role"),
    ("/v1/chat/completions", {"json": {"messages": [{"role": "system", "content": "hi"}]}}, 400, "messages"),
    ("/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "  "}]}}, 400,
     "messages.0.content"),
    ("/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "x" * 2001}]}}, 400,
     "messages.0.content"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "max_tokens": 10_000}}, 400, "max_tokens"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "max_completion_tokens": 97}}, 400,
     "max_completion_tokens"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "max_tokens": -1}}, 400, "max_tokens"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "max_tokens": 1.5}}, 400, "max_tokens"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "temperature": -0.1}}, 400, "temperature"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "temperature": "hot"}}, 400, "temperature"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "top_p": 0}}, 400, "top_p"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "seed": "1"}}, 400, "seed"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "n": 2}}, 400, "n"),
    ("/v1/chat/completions", {"json": {"messages": [USER], "stream": "yes"}}, 400, "stream"),
    ("/v1/answer", {"json": {}}, 400, "question"),
    ("/v1/answer", {"json": ["What is the Sun?"]}, 400, "body"),
    ("/v1/answer", {"content": b"question=What", "headers": {"content-type": "text/plain"}}, 400, "body"),
    ("/v1/answer", {"json": {"question": None}}, 400, "question"),
    ("/v1/answer", {"json": {"question": "x" * 2001}}, 400, "question"),
    ("/v1/answer", {"json": {"question": "What?", "mode": "book"}}, 400, "mode"),
    ("/v1/answer", {"json": {"question": "What?", "history": "What is the Sun?"}}, 400, "history"),
    ("/v1/answer", {"json": {"question": "What?", "history": [{"answer": "A star."}]}}, 400, "history.0.question"),
    ("/v1/answer", {"json": {"question": "What?", "history": [{"question": 7}]}}, 400, "history.0.question"),
    ("/v1/answer", {"json": {"question": "What?", "history": [{"question": "Q?"}] * 65}}, 422, "history"),
    ("/v1/answer", {"json": {"question": "What?", "max_new_tokens": 0}}, 400, "max_new_tokens"),
    ("/v1/answer", {"json": {"question": "What?", "max_new_tokens": 513}}, 400, "max_new_tokens"),
    ("/v1/answer", {"json": {"question": "What?", "temperature": True}}, 400, "temperature"),
    ("/v1/answer", {"json": {"question": "What?", "top_p": 1.5}}, 400, "top_p"),
    ("/v1/answer", {"json": {"question": "What?", "temprature": 0.5}}, 400, "temprature"),
    ("/v1/answer", {"content": b"x" * (64 * 1024 + 1), "headers": {"content-type": "application/json"}},
     413, "body"),
]


@pytest.mark.parametrize("path,request_args,status,field", BAD_REQUESTS)
def test_bad_requests_get_a_json_error_naming_the_field(url, path, request_args, status, field):
    response = httpx.post(f"{url}{path}", **request_args)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["message"].startswith(f"{field}: ")
    assert "Traceback" not in response.text


def test_openai_client_sees_a_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="run", messages=[USER], max_tokens=4096)
    assert raised.value.status_code == 400 and "max_tokens" in raised.value.message


def test_chunked_body_over_the_limit_is_refused(url):
    def body():  # no Content-Length: the guard must count what arrives
        for _ in range(80):
            yield b" " * 1024

    response = httpx.post(f"{url}/v1/answer", content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["field"] == "body"


def test_unknown_routes_and_methods_are_json(url):
    missing = httpx.get(f"{url}/v1/nothing")
    assert missing.status_code == 404 and "/v1/nothing" in missing.json()["error"]["message"]
    assert httpx.get(f"{url}/v1/answer").status_code == 405
    assert httpx.get(f"{url}/docs").status_code == 404  # the CDN-loaded docs page is off


def test_security_headers_and_host_check(url):
    for path in ("/", "/static/app.js", "/static/style.css", "/health", "/v1/nothing"):
        response = httpx.get(f"{url}{path}")
        assert response.headers["content-security-policy"].startswith("default-src 'self'"), path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{url}/static/app.js").headers["content-type"].startswith(("text/javascript",
                                                                                 "application/javascript"))
    page = httpx.get(url).text
    assert "<script src=\"/static/app.js\"" in page and "http" not in page.split("<body>")[0]  # no CDN
    rebound = httpx.get(f"{url}/health", headers={"host": "attacker.example:8000"})
    assert rebound.status_code == 400 and rebound.json()["error"]["field"] == "host"
    assert httpx.get(f"{url}/health", headers={"host": "localhost:1234"}).status_code == 200


def test_concurrent_requests_get_independent_answers(client):
    def ask(question):
        return client.chat.completions.create(model="run", messages=[{"role": "user", "content": question}],
                                              max_tokens=30).choices[0].message.content

    sequential = [ask(q) for q in QUESTIONS]
    assert len(set(sequential)) > 1  # different questions, different answers: a mix-up would show
    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        concurrent = list(pool.map(ask, QUESTIONS))
    assert concurrent == sequential


def test_concurrent_streams_do_not_interleave(url):
    def stream(question):
        body = {"question": question, "stream": True, "max_new_tokens": 30}
        with httpx.stream("POST", f"{url}/v1/answer", json=body, timeout=60) as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line]
        return "".join(e["text"] for e in events if e["type"] == "text").strip()

    def whole(question):
        return httpx.post(f"{url}/v1/answer", json={"question": question, "max_new_tokens": 30},
                          timeout=60).json()["answer"]

    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        streamed = list(pool.map(stream, QUESTIONS))
    assert streamed == [whole(q) for q in QUESTIONS]


def test_batched_answers_equal_the_unbatched_servers(open_run):
    """Requests that arrive together are decoded together; each answer is the one a server answering one
    request at a time gives: mixed lengths, stop rules, open and closed book, sampled with a seed too."""
    requests = [({"question": q, "max_new_tokens": 4 + 7 * i, "mode": ("open", "closed")[i % 2]}
                 | ({"temperature": 0.8, "seed": i} if i % 3 == 2 else {})) for i, q in enumerate(QUESTIONS)]

    def replies(base_url: str) -> list[dict]:
        def ask(body):
            reply = httpx.post(f"{base_url}/v1/answer", json=body, timeout=60).json()
            return {key: reply[key] for key in ("answer", "sources", "finish_reason", "usage")}

        with ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(ask, requests * 2))

    with running_server(create_app(open_run, max_batch=1)) as base_url:
        unbatched = replies(base_url)
    with running_server(create_app(open_run, max_batch=4)) as base_url:  # 16 requests through 4 rows
        batched = replies(base_url)
    assert batched == unbatched
    assert len({r["usage"]["completion_tokens"] for r in batched}) > 4


def test_an_abandoned_answer_leaves_the_batch_and_the_others_go_on(library):
    model, tok, _ = library
    prompt = encode_prompt(tok, "What is the Sun?")
    other = encode_prompt(tok, "What is the heart?")
    long = Sampling(max_new_tokens=60)  # no eos given: each runs to its token limit
    expected = list(model.generate(other, long))
    batching = BatchingModel(model, 4)
    try:
        abandoned = batching.generate(prompt, long)
        kept = batching.generate(other, long)
        assert [next(abandoned), next(abandoned)] == list(model.generate(prompt, long))[:2]
        abandoned.close()
        assert list(kept) == expected and len(expected) == 60
        deadline = time.monotonic() + 10
        while batching.batch.sequences and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not batching.batch.sequences
    finally:
        batching.close()
    with pytest.raises(ValueError, match="the prompt is empty"):
        batching.generate([], long)  # checked when called, as generate checks


def test_tokens_are_handed_over_in_groups_the_first_at_once(library):
    """The batching thread wakes a request's thread once per HAND_EVERY tokens (the first alone, the rest
    when the sequence ends), not once per token; the request's iterator still gives every id in order."""
    model, tok, _ = library
    prompt, sampling = encode_prompt(tok, "What is the Sun?"), Sampling(max_new_tokens=2 * HAND_EVERY + 3)
    expected = list(model.generate(prompt, sampling))
    batching = BatchingModel(model, 4)
    try:
        tokens = batching.generate(prompt, sampling)
        deadline = time.monotonic() + 10
        while (tokens.request.held or batching.batch.sequences or tokens.request.tokens.empty()) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        handed = []
        while not tokens.request.tokens.empty():
            handed.append(tokens.request.tokens.get())
        assert [len(group) for group in handed[:-1]] == [1, HAND_EVERY, HAND_EVERY, 2]
        assert sum(handed[:-1], []) == expected and len(expected) == 2 * HAND_EVERY + 3
        for group in handed:  # what the iterator reads: every id in order, then the end
            tokens.request.tokens.put(group)
        assert list(tokens) == expected
        closed = batching.generate(prompt, sampling)
        assert [next(closed), next(closed)] == expected[:2]  # the second from a group of HAND_EVERY
        closed.close()  # as a client that went away: the rest of its group is not read
        assert list(closed) == []
    finally:
        batching.close()


def test_closing_the_batch_fails_the_answers_in_it(library):
    model, tok, _ = library
    gate = threading.Event()

    def held_decode(ids):  # the batching thread waits here, inside a step, until the test lets it go
        gate.wait(10)
        return tok.decode(ids)

    batching = BatchingModel(model, 4)
    in_flight = batching.generate(encode_prompt(tok, "What is the Sun?"), Sampling(max_new_tokens=60, stop_repeat=4),
                                  decode=held_decode)
    closing = threading.Thread(target=batching.close)
    closing.start()
    time.sleep(0.05)
    gate.set()
    closing.join(10)
    with pytest.raises(RuntimeError, match="the batching thread stopped"):
        list(in_flight)
    with pytest.raises(RuntimeError, match="closed"):
        batching.generate([1, 2], Sampling())


class SlowModel:
    """A model whose every token takes 20 ms: long enough to see what runs while it generates."""

    def __init__(self, model):
        self.model, self.tokens_made = model, 0

    @property
    def max_seq_len(self):
        return self.model.max_seq_len

    def generate(self, prompt_ids, sampling, **kwargs):
        # never stop at eos, so an answer runs to max_new_tokens unless the worker stops it
        for token in self.model.generate(prompt_ids, sampling, **{**kwargs, "eos_id": None}):
            time.sleep(0.02)
            self.tokens_made += 1
            yield token


def test_streaming_leaves_the_event_loop_free_and_stops_when_abandoned(library):
    model, tok, _ = library
    slow = SlowModel(model)
    worker = ModelWorker(slow, tok)

    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        events = worker.stream("What is the Sun?", Sampling(max_new_tokens=60))
        await anext(events)  # the sources: the answer is being generated now, 20 ms a token
        await asyncio.sleep(0.2)  # the client waits 200 ms (pieces come a sentence at a time), then leaves
        ticks_while_generating = ticks
        await events.aclose()
        await asyncio.sleep(0.6)  # the whole answer would take 1.2 s: without a stop, 40 tokens by now
        made_when_abandoned = slow.tokens_made
        reply = await worker.reply("What is the Moon?", Sampling(max_new_tokens=5))
        ticking.cancel()
        return ticks_while_generating, made_when_abandoned, reply

    ticks, made, reply = asyncio.run(scenario())
    worker.close()
    assert ticks > 10, "the event loop was blocked while the model generated"
    assert made < 25, f"the abandoned answer went on to {made} of 60 tokens"
    assert reply.finished.completion_tokens == 5 and reply.finished.finish_reason == "length"


@contextmanager
def cli_server(run, *args, env=None):
    """`minillm serve RUN ARGS` in a process on a free port: yields (process, url); its output is in
    process.output once it stopped."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = str(Path(__file__).resolve().parents[1] / "src")
    process = subprocess.Popen([sys.executable, "-m", "minillm", "serve", str(run), "--port", str(port),
                                "--log-level", "warning", *args], env={**os.environ, "PYTHONPATH": src, **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"minillm serve did not start:\n{process.communicate()[0]}")
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield process, url
    finally:
        process.terminate()
        process.output = process.communicate(timeout=30)[0]


def test_cli_serve_starts_a_server(open_run):
    with cli_server(open_run) as (process, url):
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "model": "run"}
    assert f"{url}/" in process.output


def test_cli_serve_with_two_worker_processes(open_run, library):
    """--workers 2: two processes answer on one port, the same answers, and the page's login session (made
    by one process) is known to both."""
    model, tok, _ = library
    key = "k" * 24
    with cli_server(open_run, "--workers", "2", env={"MINILLM_API_KEY": key}) as (process, url):
        workers = [c for task in Path(f"/proc/{process.pid}/task").iterdir()
                   for c in (task / "children").read_text().split()]
        assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
        cookie = httpx.post(f"{url}/login", data={"key": key}).cookies  # a redirect to / that sets it
        session = httpx.Cookies({"minillm_session": cookie.get("minillm_session")} if cookie else {})
        expected = answer(model, tok, "What is water?", Sampling(**{**DEFAULT_SAMPLING, "max_new_tokens": 20})).text
        for _ in range(6):  # a new connection each time: each may reach either process
            assert httpx.get(f"{url}/v1/models", cookies=session).status_code == 200
            reply = httpx.post(f"{url}/v1/answer", json={"question": "What is water?", "max_new_tokens": 20,
                                                         "mode": "closed"},
                               headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert reply.json()["answer"] == expected
    assert f"{url}/" in process.output


def test_cli_serve_of_a_missing_run_or_bad_threads_exits_2(tmp_path, tiny_run, capsys):
    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--workers", "0"]) == 2
    assert "serve: --workers must be at least 1, got 0" in capsys.readouterr().err


def test_a_failing_generation_is_an_error_without_a_traceback(url, monkeypatch):
    import minillm.serve.worker as worker_module

    def failing_answer(*args, **kwargs):
        raise RuntimeError("secret internals")

    def failing_stream(*args, **kwargs):
        yield "It"
        raise RuntimeError("secret internals")

    monkeypatch.setattr(worker_module, "answer", failing_answer)
    monkeypatch.setattr(worker_module, "stream_answer", failing_stream)
    whole = httpx.post(f"{url}/v1/answer", json={"question": "What is the Sun?"})
    assert whole.status_code == 500 and whole.json()["error"]["message"] == "internal error"
    assert "secret" not in whole.text
    with httpx.stream("POST", f"{url}/v1/answer", json={"question": "What is the Sun?", "stream": True}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line]
    assert [e["type"] for e in events] == ["sources", "text", "error"]
    body = {"messages": [USER], "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        events = [line for line in r.iter_lines() if line]
    assert "error" in json.loads(events[-1][6:]) and "[DONE]" not in events[-1]
    assert not any("secret" in e or "Traceback" in e for e in events)


def test_the_engine_choice(open_run, library, tmp_path, monkeypatch):
    """--engine: batched minillm when the batch allows (auto), onnxruntime one at a time when asked (its
    answers those of the onnxruntime engine `ask` uses), and without onnxruntime one line and minillm's own."""
    from minillm.answering.engine import with_engine
    from minillm.answering.open_book import answer_open

    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path))
    model, tok, index = library
    assert create_app(open_run, max_batch=4, engine="auto").state.engine == "minillm, batched (4)"
    app = create_app(open_run, max_batch=4, engine="onnxruntime")
    assert app.state.engine == "onnxruntime" and app.state.engine_note is None
    engine, _ = with_engine(model, "onnxruntime", tmp_path / "onnx")
    alone, _ = with_engine(model, "onnxruntime", tmp_path / "onnx", threads=1)  # serve passes its --threads
    assert alone.decoder.step.get_session_options().intra_op_num_threads == 1
    with running_server(app) as base_url:
        for question in ("What is the Sun?", "Where is the Nile?"):
            reply = httpx.post(f"{base_url}/v1/answer", json={"question": question, "mode": "open"}).json()
            assert reply["answer"] == answer_open(engine, tok, index, question, Sampling(**DEFAULT_SAMPLING))[0].text
        assert httpx.get(f"{base_url}/v1/models").json()["data"][0]["meta"]["engine"] == "onnxruntime"
    with pytest.raises(ValueError, match="engine must be one of"):
        create_app(open_run, engine="fastest")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    app = create_app(open_run, max_batch=1, engine="auto")
    assert app.state.engine == "minillm" and "onnxruntime is not installed" in app.state.engine_note
    with pytest.raises(ValueError, match="the onnxruntime engine cannot run"):
        create_app(open_run, max_batch=1, engine="onnxruntime")
