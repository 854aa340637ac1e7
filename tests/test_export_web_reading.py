"""export web of a run whose [answer] reader is "pattern": reading.js reads the passages in the browser as
`minillm ask` does (its own module: the browser of test_export_web's page must be closed first)."""

import json
import shutil

from test_export_web import QUESTIONS, ask, browsing, export_site, serving  # skips with it without Chromium

from minillm.answering.answer import ANSWER_SAMPLING, answer
from minillm.answering.open_book import answer_open
from minillm.retrieval.index import load_index

READING_QUESTIONS = QUESTIONS + [
    "How many chambers does the heart have?", "What does the heart do?", "Where does the Nile flow?",
    "What is the only natural satellite of the Earth?", "Which river is the longest in the world?",
    "What else can you tell me about the Moon?", "Why is the Sun hot?", "What is water made of?",
    "What is the Sun covered with?", "Tell me about lions.", "How many people live in Africa?"]


def test_a_pattern_reader_run_answers_in_the_browser_as_minillm_ask(tiny_run, tmp_path):
    """[answer] reader = "pattern": reading.js answers open book with the pattern rung's reading, the same
    answers as `minillm ask` gives; closed book the network answers, as before."""
    from conftest import HOSTILE, tiny_articles

    from minillm.answering.reader import load_answerer
    from minillm.retrieval.index import Index

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    Index.build(tiny_articles() + [HOSTILE]).save(run / "index")
    config = run / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('reader = "model"', 'reader = "pattern"'),
                      encoding="utf-8")
    site = export_site(run, tmp_path / "site")
    assert json.loads((site / "config.json").read_text(encoding="utf-8"))["reading"]["prompt_seq_len"] == 1024
    model, tok, _ = load_answerer(run)
    index = load_index(run)
    with serving(site) as url, browsing(site, url) as page:
        for question in READING_QUESTIONS:
            expected, passages = answer_open(model, tok, index, question, ANSWER_SAMPLING)
            shown = ask(page, question, "open")
            assert shown["answer"] == (expected.text or "(no answer)"), question
            assert len(shown["sources"]) == len(passages), question
        closed = ask(page, "What is the heart?", "closed")["answer"]
        assert closed == (answer(model, tok, "What is the heart?", ANSWER_SAMPLING).text or "(no answer)")
        assert page.problems == [] and page.blocked == []
