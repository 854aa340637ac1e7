"""minillm export qr: a chatbot page of at most 2,953 bytes and its version-40 QR code.

The page is built from a run's data (the tiny run's articles, and the bundled data under data/ where it
exists), opened from disk in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
and must answer as ``minillm.export.qr.answer`` (its Python re-implementation) does; the PNG must decode back
to exactly the page's bytes with OpenCV's QR decoder.
"""

import json
import re
from pathlib import Path

import pytest
from conftest import CHROMIUM_ARGS, TINY_FACTS, tiny_articles, tiny_pairs, tiny_run_tables

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.records import Article
from minillm.evaluation.metrics import keyword_hit
from minillm.export.qr import BUDGET, answer, build_page, export_qr, fact_sentence
from minillm.training.config import config_from_dict, save_config

pytest.importorskip("qrcode", reason="qrcode is not installed (the [export] extra)")

CHROMIUM = Path("/usr/bin/chromium")
XSS = "<img src=x onerror=alert(1)>"
HOSTILE = Article.create(source="offline", title="Quasar", domain="astronomy",
                         text="A quasar <img src=x onerror=alert(2)> is a very bright galactic nucleus.",
                         url="https://en.wikipedia.org/wiki/Quasar", retrieved_at="2026-01-01T00:00:00+00:00")
ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "runs" / "quickstart"
NATURAL = ROOT / "src" / "minillm" / "eval_data" / "natural_questions.jsonl"


def data_run(root: Path, articles) -> Path:
    """A run directory holding only a config.toml whose data are articles (and their QA pairs): the page
    reads nothing else."""
    write_jsonl(root / "articles.jsonl", articles)
    write_jsonl(root / "train.jsonl", tiny_pairs(articles))
    write_jsonl(root / "val.jsonl", tiny_pairs(articles)[:1])
    (root / "run").mkdir()
    save_config(config_from_dict(tiny_run_tables(root, {"arch": "markov"}), "tiny"), root / "run" / "config.toml")
    return root / "run"


def decode_qr(png: Path) -> bytes:
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (the dev extra)")
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    # QRCodeDetectorAruco finds the code at the PNG's own size (8 px modules) for every version tried; the
    # classic QRCodeDetector decodes version 40 there but misses some smaller versions at any scale
    for detector in (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector()):
        for scale in (1, 2):
            resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            data = detector.detectAndDecodeBytes(resized)[0]
            if data:
                return data
    raise AssertionError(f"OpenCV decoded no QR code in {png}")


# --- the tiny run -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("qr")
    summary = export_qr(tiny_run, out / "syneva.html", out / "qr.png")
    return out / "syneva.html", out / "qr.png", summary


def test_tiny_run_page_fits_and_holds_every_fact(tiny_export):
    html, png, summary = tiny_export
    page = html.read_bytes()
    assert len(page) <= BUDGET
    assert re.fullmatch(rf"wrote {re.escape(str(html))} \({len(page):,} of 2,953 bytes, 7 facts\) and "
                        rf"{re.escape(str(png))} \(version \d+-L\)", summary), summary
    assert b"Wikipedia, CC BY-SA 4.0" in page
    page.decode("ascii")  # bytes == characters
    _, facts = build_page(tiny_articles(), tiny_pairs(tiny_articles()))
    assert sorted(facts) == sorted(fact_sentence(text) for _, _, text in TINY_FACTS)
    assert answer(facts, "Where does the Nile flow?") == "The Nile is a river in northeast Africa."
    assert answer(facts, "How many chambers does the heart have?").startswith("The heart is")
    assert answer(facts, "zzz?") == "?"


def test_qr_png_decodes_to_the_page_bytes(tiny_export):
    html, png, summary = tiny_export
    assert decode_qr(png) == html.read_bytes()


def test_full_page_is_a_version_40_code_that_decodes(tmp_path):
    """A page filled to the budget (the tiny facts, repeated with different words) needs version 40."""
    import random

    rng = random.Random(0)
    words = [f"{rng.choice('bcdfghjklmnp')}{rng.choice('aeiou')}{rng.choice('rstvz')}" for _ in range(400)]
    articles = [Article.create(source="offline", title=f"Thing {i}", domain=f"d{i % 3}",
                               text=" ".join(rng.choice(words) for _ in range(14)).capitalize() + ".",
                               url="", retrieved_at="2026-01-01T00:00:00+00:00") for i in range(80)]
    run = data_run(tmp_path, articles)
    summary = export_qr(run, tmp_path / "p.html", tmp_path / "p.png")
    page = (tmp_path / "p.html").read_bytes()
    assert BUDGET - 120 < len(page) <= BUDGET and "(version 40-L)" in summary
    assert decode_qr(tmp_path / "p.png") == page


# --- bad inputs ---------------------------------------------------------------------------------------------


def test_bad_inputs_fail_with_one_line_and_write_nothing(tmp_path, capsys, tiny_export):
    html, png, _ = tiny_export
    run = html.parent  # not a run: no config.toml
    cases = [
        (["export", "qr", str(tmp_path / "nope"), "--out", str(tmp_path / "a.html")], "no such run directory"),
        (["export", "qr", str(run), "--out", str(tmp_path / "a.html")], "no such config file"),
    ]
    missing = tmp_path / "missing"
    missing_run = data_run(missing, tiny_articles())
    (missing / "articles.jsonl").unlink()
    cases.append((["export", "qr", str(missing_run), "--out", str(tmp_path / "a.html")], "no such file"))
    good = data_run(tmp_path / "good", tiny_articles())
    cases.append((["export", "qr", str(good), "--out", str(html)], "already exists"))
    cases.append((["export", "qr", str(good), "--out", str(tmp_path / "a.html"), "--png", str(png)],
                  "already exists"))
    for argv, message in cases:
        before = html.read_bytes()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "a.html").exists() and html.read_bytes() == before
    with pytest.raises(InputError, match="does not fit in 800 bytes"):
        build_page(tiny_articles(), tiny_pairs(tiny_articles()), budget=800)
    assert main(["export", "qr", str(good), "--out", str(tmp_path / "a.html")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "a.html").stat().st_size <= BUDGET
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


# --- in Chromium, opened from disk --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, html: Path):
    page = browser.new_page()
    page.dialogs, page.problems = [], []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("request", lambda request: request.url.startswith("file:") or page.problems.append(request.url))
    page.goto(html.resolve().as_uri())
    page.wait_for_function("() => S.length > 0")  # the facts are inflated
    return page


def ask(page, question: str) -> str:
    page.fill("#q", question)
    page.press("#q", "Enter")
    return page.text_content("#answer")


def test_page_answers_from_disk_in_chromium(browser, tiny_export):
    html, _, _ = tiny_export
    page = open_page(browser, html)
    assert "Nile is a river in northeast Africa" in ask(page, "Where is the Nile?")
    assert "hydrogen and oxygen" in ask(page, "What is water made of?")
    assert "rotating column of air" in ask(page, "what is a TORNADO")
    _, facts = build_page(tiny_articles(), tiny_pairs(tiny_articles()))
    for question in ["What is the Sun?", "What orbits the Sun?", "Does the Moon have air?", "lions", "zzz", "",
                     "Where do lions live?", "How many chambers does a heart have?", "H2O formula?"]:
        assert ask(page, question) == answer(facts, question), question
    assert page.problems == [] and page.dialogs == []
    page.close()


def test_markup_stays_text(browser, tmp_path):
    run = data_run(tmp_path, tiny_articles() + [HOSTILE])
    export_qr(run, tmp_path / "p.html")
    page = open_page(browser, tmp_path / "p.html")
    hostile = "A quasar <img src=x onerror=alert> is a very bright galactic nucleus."  # "(2)": parentheses go
    assert fact_sentence(HOSTILE.text) == hostile
    assert ask(page, XSS) == hostile  # its words (img, src, onerror, alert) are the hostile fact's
    assert ask(page, "What is a quasar?") == hostile
    assert page.inner_html("#answer") == hostile.replace("<", "&lt;").replace(">", "&gt;")
    page.wait_for_timeout(200)
    assert page.locator("#answer img").count() == 0 and page.locator("img").count() == 0
    assert page.dialogs == [] and page.problems == []
    page.close()


@pytest.mark.skipif(not (QUICKSTART / "config.toml").exists() or not (ROOT / "data/raw/articles.jsonl").exists(),
                    reason="runs/quickstart or its data under data/ is absent")
def test_quickstart_page_agrees_with_python_on_the_natural_questions(browser, tmp_path, monkeypatch):
    """The bundled data's page: in the budget, and Chromium's answers to the natural questions equal
    ``answer``'s (the keyword hit rate is measured on these; the questions are not used to build the page)."""
    monkeypatch.chdir(ROOT)  # the run's config names its data relative to the repository
    summary = export_qr(QUICKSTART, tmp_path / "q.html")
    page_bytes = (tmp_path / "q.html").read_bytes()
    assert len(page_bytes) <= BUDGET and f"{len(page_bytes):,} of 2,953 bytes" in summary
    from minillm.export.qr import load_run_data

    _, facts = build_page(*load_run_data(QUICKSTART))
    questions = [json.loads(line) for line in NATURAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    page = open_page(browser, tmp_path / "q.html")
    hits = 0
    for q in questions:
        shown = ask(page, q["question"])
        assert shown == answer(facts, q["question"]), q["question"]
        hits += keyword_hit(shown, q["keywords"])
    print(f"{summary}; natural-question keyword hits in Chromium: {hits}/{len(questions)}")
    assert hits >= 1
    assert page.problems == [] and page.dialogs == []
    page.close()
