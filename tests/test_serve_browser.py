"""The chat page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The server runs the tiny_run with an index over the tiny articles plus one hostile article (markup in
its title, a javascript: URL): the page must show every user, model and article string as text.
"""

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
import httpx  # noqa: E402
from conftest import CHROMIUM_ARGS, HOSTILE, XSS_QUESTION, tiny_articles  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402
from test_serve import make_open_run, running_server  # noqa: E402

from minillm.serve import create_app  # noqa: E402

SCREENSHOT = Path("/tmp/minillm_serve.png")


@pytest.fixture(scope="module")
def url(tiny_run, tmp_path_factory):
    run = make_open_run(tiny_run, tmp_path_factory.mktemp("browser"), tiny_articles() + [HOSTILE])
    with running_server(create_app(run)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def page(url):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 900})
        page.dialogs, page.problems = [], []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
        page.goto(url)
        yield page
        browser.close()


def ask(page, question: str, mode: str) -> object:
    """Submit a question; return the assistant's message once its answer has finished streaming."""
    answers = page.locator(".message.assistant")
    before = answers.count()
    page.select_option("#mode", mode)
    page.fill("#question", question)
    page.click("#send")
    reply = answers.nth(before)
    reply.locator("xpath=self::*[@data-state='done']").wait_for(timeout=30_000)
    return reply


def test_page_shows_the_model(page):
    expect(page.locator("#model-size")).to_contain_text("parameters")  # (wait_for_function needs eval: CSP)
    assert page.text_content("#model-name") == "run"
    assert "MB" in page.text_content("#model-size")
    assert page.is_enabled("#mode option[value=open]")
    expect(page.locator("#mode")).to_have_value("open")  # the run has an index: open book first
    # who reads the passages, as /v1/models and ask --json say it (this run: reader = "model")
    expect(page.locator("#reader-info")).to_contain_text('Open book, reader "model": the network writes')


def test_open_book_answer_streams_in_with_attributed_sources(page, url, tmp_path):
    question = "Which river flows north into the Mediterranean Sea?"
    reply = ask(page, question, "open")
    expected = httpx.post(f"{url}/v1/answer", json={"question": question, "mode": "open"}).json()
    assert reply.locator(".answer-text").text_content().strip() == expected["answer"]
    link = reply.locator(".sources a").first
    assert link.text_content() == "Nile" and link.get_attribute("href") == "https://en.wikipedia.org/wiki/Nile"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert "CC BY-SA 4.0" in reply.locator(".sources li").first.text_content()
    stats = reply.locator(".stats").text_content()
    assert "tokens/s" in stats and f"{expected['usage']['completion_tokens']} tokens" in stats
    page.screenshot(path=str(tmp_path / "open_book.png"))


def test_markup_in_questions_and_sources_stays_text(page, tmp_path):
    closed = ask(page, XSS_QUESTION, "closed")
    assert page.locator(".message.user").last.text_content() == XSS_QUESTION
    assert closed.locator(".answer-text").text_content()
    hostile = ask(page, "What is a quasar galactic nucleus black hole?", "open")
    source = hostile.locator(".sources li", has_text="Quasar")
    assert source.text_content() == f"{HOSTILE.title} · {HOSTILE.license}"
    assert source.locator("a").count() == 0  # a javascript: URL is not made a link
    page.wait_for_timeout(300)  # give an injected onerror handler time to fire, if there were one
    assert page.locator("img").count() == 0 and page.locator("b").count() == 0
    assert page.dialogs == [] and page.problems == []
    page.screenshot(path=str(tmp_path / "xss.png"), full_page=True)
    shutil.copy(tmp_path / "xss.png", SCREENSHOT)


def test_a_refused_request_shows_the_servers_message(page, url):
    # the form itself keeps temperature within 0-2, so the server's refusal is replayed to the page
    refusal = httpx.post(f"{url}/v1/answer", json={"question": "What is the Sun?", "temperature": 5})
    page.route("**/v1/answer", lambda route: route.fulfill(status=refusal.status_code, body=refusal.text,
                                                           content_type="application/json"))
    try:
        answers = page.locator(".message.assistant")
        reply = answers.nth(answers.count())
        page.fill("#question", "What is the Sun?")
        page.click("#send")
        reply.locator("xpath=self::*[@data-state='error']").wait_for(timeout=30_000)
    finally:
        page.unroute("**/v1/answer")
    expected = f"error: {refusal.json()['error']['message']}"
    assert expected.startswith("error: temperature: ") and reply.locator(".stats").text_content() == expected


def test_the_page_keeps_the_conversation_for_follow_ups(page, url):
    ask(page, "What is the Sun?", "open")
    reply = ask(page, "What is it made of?", "open")
    assert reply.locator(".resolved").text_content() == "(about: What is the Sun made of?)"
    expected = httpx.post(f"{url}/v1/answer", json={"question": "What is the Sun made of?", "mode": "open"}).json()
    assert reply.locator(".answer-text").text_content().strip() == expected["answer"]
    assert reply.locator(".sources a").first.text_content() == "Sun"
