"""minillm serve's guards: the API key, request limits, CORS, the CSP, static files and the bind warning.

Most checks go through FastAPI's TestClient (in process, no port); those that need the real HTTP stack run
a uvicorn server (test_serve.running_server): the `openai` client against a key, and path-traversal
targets sent as raw bytes on a socket, since an HTTP client would normalise `..` and escapes away before
the server ever saw them.
"""

import socket
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")
openai = pytest.importorskip("openai", reason="the openai client is not installed")
from fastapi.testclient import TestClient  # noqa: E402
from test_serve import running_server  # noqa: E402

from minillm.cli import main  # noqa: E402
from minillm.serve.app import MAX_BODY_BYTES, bind_warning, create_app, resolve_api_key  # noqa: E402
from minillm.serve.openai_api import MAX_MESSAGE_CHARS, MAX_MESSAGES  # noqa: E402

KEY = "s3cret-key-for-tests-Ünïcode"  # non-ASCII on purpose: compare_digest must be given bytes
ASCII_KEY = "sk-minillm-test-0123456789"
USER = {"role": "user", "content": "What is the Sun?"}
CHAT = {"messages": [USER], "max_tokens": 2}
CSP_DIRECTIVES = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
                  "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"]


def local(app) -> nullcontext:
    """A client for app addressed to 127.0.0.1 (the Host check); not TestClient's own `with`, whose
    lifespan exit would close the module-wide app's worker."""
    return nullcontext(TestClient(app, base_url="http://127.0.0.1"))


@pytest.fixture(scope="module")
def open_app(tiny_run):
    return create_app(tiny_run)


@pytest.fixture(scope="module")
def keyed_app(tiny_run):
    return create_app(tiny_run, api_key=KEY)


# --- the API key --------------------------------------------------------------------------------------


def bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}".encode()}  # UTF-8 bytes on the wire


def test_every_api_route_needs_the_key_and_the_page_health_and_static_do_not(keyed_app):
    with local(keyed_app) as client:
        for headers in ({}, bearer("wrong"), bearer(KEY + "x"), {"authorization": f"Basic {KEY}".encode()},
                        {"authorization": "Bearer"}):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                                 ("POST", "/v1/answer"), ("GET", "/v1/nothing")):
                response = client.request(method, path, headers=headers, json=CHAT)
                assert response.status_code == 401, (method, path, headers)
                error = response.json()["error"]
                assert error["type"] == "authentication_error" and error["field"] == "authorization"
                assert error["message"].startswith("authorization: ") and KEY not in response.text
                assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/v1/models", headers=bearer(KEY)).json()["data"][0]["id"] == "run"
        answer = client.post("/v1/answer", headers=bearer(KEY), json={"question": "What is the Sun?",
                                                                     "max_new_tokens": 2})
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] <= 2


def test_the_page_asks_for_the_key_once_and_then_works_with_a_session_cookie(keyed_app):
    with local(keyed_app) as client:
        first = client.get("/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/login"
        form = client.get("/login")
        assert form.status_code == 200 and 'name="key"' in form.text and "<script" not in form.text
        wrong = client.post("/login", data={"key": "guess"}, follow_redirects=False)
        assert wrong.status_code == 401 and "not the key" in wrong.text and "set-cookie" not in wrong.headers
        right = client.post("/login", data={"key": KEY}, follow_redirects=False)
        assert right.status_code == 303 and right.headers["location"] == "/"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
        assert client.get("/").text.startswith("<!doctype html>")  # the client keeps the cookie
        assert client.get("/v1/models").status_code == 200  # the page's own fetches carry it
        assert client.get("/login", follow_redirects=False).headers["location"] == "/"
        client.cookies.clear()
        client.cookies.set("minillm_session", "forged")
        assert client.get("/v1/models").status_code == 401


def test_without_a_key_nothing_changes(open_app):
    with local(open_app) as client:
        assert client.get("/", follow_redirects=False).status_code == 200
        assert client.get("/v1/models").status_code == 200
        assert client.get("/login", follow_redirects=False).headers["location"] == "/"


@pytest.fixture(scope="module")
def keyed_url(tiny_run):
    with running_server(create_app(tiny_run, api_key=ASCII_KEY)) as base_url:
        yield base_url


def test_openai_client_with_the_right_key_works_and_a_wrong_one_is_refused(keyed_url):
    def client(key):
        return openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=key, max_retries=0, timeout=60)

    completion = client(ASCII_KEY).chat.completions.create(model="run", **CHAT)
    assert completion.usage.completion_tokens <= 2
    assert [m.id for m in client(ASCII_KEY).models.list().data] == ["run"]
    for wrong in ("wrong", ASCII_KEY[:-1], ASCII_KEY + " x"):
        with pytest.raises(openai.AuthenticationError) as raised:
            client(wrong).chat.completions.create(model="run", **CHAT)
        assert raised.value.status_code == 401 and "authorization" in raised.value.message
    with pytest.raises(openai.AuthenticationError):
        client("wrong").models.list()
    assert httpx.get(f"{keyed_url}/health").status_code == 200
    assert httpx.get(f"{keyed_url}/v1/models", headers=bearer(ASCII_KEY)).status_code == 200
    assert httpx.get(f"{keyed_url}/v1/models").status_code == 401


def test_the_key_comes_from_the_flag_or_the_environment():
    assert resolve_api_key(None, {}) is None
    assert resolve_api_key(None, {"MINILLM_API_KEY": "env"}) == "env"
    assert resolve_api_key("flag", {"MINILLM_API_KEY": "env"}) == "flag"
    for empty in ("", "  "):
        with pytest.raises(ValueError, match="empty"):
            resolve_api_key(empty, {})
        with pytest.raises(ValueError, match="empty"):
            resolve_api_key(None, {"MINILLM_API_KEY": empty})


def test_cli_refuses_an_empty_key_and_a_bad_origin(tiny_run, capsys, monkeypatch):
    assert main(["serve", str(tiny_run), "--api-key", ""]) == 2
    assert "empty" in capsys.readouterr().err
    monkeypatch.setenv("MINILLM_API_KEY", "")
    assert main(["serve", str(tiny_run)]) == 2
    assert "MINILLM_API_KEY" in capsys.readouterr().err
    monkeypatch.delenv("MINILLM_API_KEY")
    for origin in ("*", "https://example.org/", "example.org", "ftp://example.org"):
        assert main(["serve", str(tiny_run), "--cors-origin", origin]) == 2
        assert "--cors-origin" in capsys.readouterr().err


def test_bind_warning_only_for_a_reachable_address_without_a_key():
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert bind_warning(host, None) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        warning = bind_warning(host, None)
        assert warning and "\n" not in warning and host in warning and "--api-key" in warning
        assert bind_warning(host, "a-key") is None


# --- request limits -----------------------------------------------------------------------------------


def refused(response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field and error["message"].startswith(f"{field}: "), error


def test_body_over_the_limit_is_413_and_at_the_limit_is_read(open_app):
    with local(open_app) as client:
        body = b'{"messages": [{"role": "user", "content": "What is the Sun?"}], "max_tokens": 1}'
        at_limit = body + b" " * (MAX_BODY_BYTES - len(body))
        ok = client.post("/v1/chat/completions", content=at_limit, headers={"content-type": "application/json"})
        assert ok.status_code == 200, ok.text
        over = client.post("/v1/chat/completions", content=at_limit + b" ",
                           headers={"content-type": "application/json"})
        refused(over, 413, "body")
        assert over.json()["error"]["type"] == "request_too_large"


def test_too_many_messages_is_422(open_app):
    with local(open_app) as client:
        turns = [{"role": "assistant" if i % 2 else "user", "content": f"turn {i}"}
                 for i in range(MAX_MESSAGES - 1)]
        at_limit = client.post("/v1/chat/completions", json={"messages": turns + [USER], "max_tokens": 1})
        assert at_limit.status_code == 200, at_limit.text
        refused(client.post("/v1/chat/completions", json={"messages": turns + [USER, USER]}), 422, "messages")


@pytest.mark.parametrize("content,field", [
    ("x" * (MAX_MESSAGE_CHARS + 1), "messages.0.content"),
    ([{"type": "text", "text": "x" * MAX_MESSAGE_CHARS}, {"type": "text", "text": "y"}], "messages.0.content"),
])
def test_a_message_over_the_limit_is_422_naming_it(open_app, content, field):
    with local(open_app) as client:
        response = client.post("/v1/chat/completions",
                               json={"messages": [{"role": "system", "content": content}, USER]})
        refused(response, 422, field)
        assert str(MAX_MESSAGE_CHARS) in response.json()["error"]["message"]
        at_limit = client.post("/v1/chat/completions", json={
            "messages": [{"role": "system", "content": "x" * MAX_MESSAGE_CHARS}, USER], "max_tokens": 1})
        assert at_limit.status_code == 200, at_limit.text


def test_a_question_over_the_limit_is_422(open_app):
    with local(open_app) as client:
        refused(client.post("/v1/answer", json={"question": "x" * (MAX_MESSAGE_CHARS + 1)}), 422, "question")
        # within the hard limit but over the model's question limit: the 400 it always was
        refused(client.post("/v1/answer", json={"question": "x" * MAX_MESSAGE_CHARS}), 400, "question")


def test_openai_client_sees_422_as_unprocessable(tiny_run):
    with running_server(create_app(tiny_run)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        with pytest.raises(openai.UnprocessableEntityError) as raised:
            client.chat.completions.create(model="run", messages=[USER] * (MAX_MESSAGES + 1))
        assert raised.value.status_code == 422 and "messages" in raised.value.message


# --- CORS and headers ---------------------------------------------------------------------------------


def preflight(client: TestClient, origin: str):
    return client.options("/v1/chat/completions", headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})


def test_no_cors_unless_asked_for(open_app):
    with local(open_app) as client:
        response = preflight(client, "https://evil.example")
        assert "access-control-allow-origin" not in response.headers
        simple = client.get("/v1/models", headers={"origin": "https://evil.example"})
        assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_for_exactly_the_origins_given(tiny_run):
    app = create_app(tiny_run, api_key=KEY, cors_origins=["https://a.example", "http://localhost:3000"])
    with local(app) as client:
        for origin in ("https://a.example", "http://localhost:3000"):
            response = preflight(client, origin)  # preflights carry no key: they must pass anyway
            assert response.status_code == 200 and response.headers["access-control-allow-origin"] == origin
            assert "authorization" in response.headers["access-control-allow-headers"].lower()
            assert "access-control-allow-credentials" not in response.headers
        for origin in ("https://b.example", "https://a.example.evil", "http://a.example"):
            assert "access-control-allow-origin" not in preflight(client, origin).headers
        refused_ = client.get("/v1/models", headers={"origin": "https://a.example"})
        assert refused_.status_code == 401  # CORS lets the page read the refusal, not skip the key
        assert refused_.headers["access-control-allow-origin"] == "https://a.example"
        allowed = client.get("/v1/models", headers={"origin": "https://a.example", **bearer(KEY)})
        assert allowed.status_code == 200


def test_csp_and_nosniff_on_every_response(open_app, keyed_app):
    with local(open_app) as client, local(keyed_app) as keyed:
        responses = [client.get(path) for path in ("/", "/static/app.js", "/static/style.css",
                                                   "/static/favicon.svg", "/static/nothing.js", "/health")]
        responses += [keyed.get("/login"), keyed.get("/v1/models"), preflight(client, "https://x.example")]
        for response in responses:
            policy = [d.strip() for d in response.headers["content-security-policy"].split(";")]
            assert all(d in policy for d in CSP_DIRECTIVES), (response.url, policy)
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"


# --- static files -------------------------------------------------------------------------------------

TRAVERSALS = [
    "/static/../app.py", "/static/../../serve/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py",
    "/static/%2e%2e/app.py", "/static/.%2e/app.py", "/static/%252e%252e%252fapp.py", "/static/%252e%252e/app.py",
    "/static/..\\app.py", "/static/..%5capp.py", "/static/%5c..%5capp.py", "/static//etc/passwd",
    "/static/%2fetc%2fpasswd", "/static/%2Fetc%2Fpasswd", "/static/../../../../../../etc/passwd",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/static/C:%5cWindows%5cwin.ini", "/static/.",
    "/static/..", "/static/", "/static/%00app.js", "/static/app.js%00.py", "/static/./app.js",
    "/static/..;/app.py", "/static/%c0%ae%c0%ae/app.py", "/static/__init__.py",
]


def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """GET target sent byte for byte (no client-side normalisation); the status and the body."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture(scope="module")
def open_url(tiny_run):
    with running_server(create_app(tiny_run)) as base_url:
        yield base_url


def test_static_files_are_served(open_url):
    static = Path(__import__("minillm.serve.app", fromlist=["STATIC_DIR"]).STATIC_DIR)
    status, body = raw_get(open_url, "/static/app.js")
    assert status == 200 and body == (static / "app.js").read_bytes()


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_is_a_404(open_url, target):
    status, body = raw_get(open_url, target)
    assert status == 404, (target, status, body[:200])
    assert b"create_app" not in body and b"root:" not in body and b"[fonts]" not in body
    assert body.startswith(b'{"error":')


# --- the page in a real browser, with a key -----------------------------------------------------------


def test_browser_types_the_key_once_then_chats_under_the_csp(keyed_url):
    """Debian's chromium through Playwright (as test_serve_browser.py): a CSP violation or a refused
    fetch would show as a console error or an answer that never finishes."""
    from test_serve_browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            problems = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: message.type == "error"
                    and problems.append(f"{message.text} at {message.location.get('url')}"))
            page.goto(keyed_url)
            assert page.url == f"{keyed_url}/login"
            page.fill("#key", "wrong")
            page.click("#login-button")
            sync_api.expect(page.locator("#form-error")).to_contain_text("not the key")
            problems.clear()  # the 401 of the refused form is logged as a console error: expected
            page.fill("#key", ASCII_KEY)
            page.click("#login-button")
            page.wait_for_url(f"{keyed_url}/")
            sync_api.expect(page.locator("#model-size")).to_contain_text("parameters")
            assert page.text_content("#model-name") == "run"
            page.fill("#question", "What is the Sun?")
            page.click("#send")
            reply = page.locator(".message.assistant").first
            reply.locator("xpath=self::*[@data-state='done']").wait_for(timeout=30_000)
            assert reply.locator(".answer-text").text_content()
            assert problems == []
        finally:
            browser.close()
