"""Knowing what it does not know: confidence measures, calibration on validation questions, withheld
closed-book answers in ask, chat, eval and serve."""

import json
from dataclasses import replace

import pytest
import torch
from conftest import tiny_articles, tiny_pairs

from minillm.answering.answer import ANSWER_SAMPLING, answer, stream_answer
from minillm.answering.confidence import (
    FROM_ARTICLES,
    NOT_KNOWN,
    NOT_KNOWN_ANYWHERE,
    Calibration,
    answer_from_memory,
    confidences,
    load_calibration,
    save_calibration,
    shown_text,
)
from minillm.answering.open_book import answer_open
from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.evaluation.calibration import choose
from minillm.evaluation.metrics import area_under_risk_coverage, choose_threshold, risk_coverage
from minillm.evaluation.qa import evaluate_run
from minillm.models.ranker import NOT_ANSWERED
from minillm.prompt import encode_prompt
from minillm.retrieval.index import load_index
from minillm.training.runs import load_run

SAMPLING = replace(ANSWER_SAMPLING, max_new_tokens=24)
ALWAYS = Calibration("mean", -1e9, 0.8, 0.9, 1.0, 10, "val.jsonl")  # every answer is shown
NEVER = replace(ALWAYS, threshold=1.0)  # log-probabilities are <= 0: every answer is withheld


def test_risk_coverage_threshold_and_area():
    scored = [(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.1, False)]
    curve = risk_coverage(scored)
    assert [p["coverage"] for p in curve] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert curve[-1]["precision"] == 0.6 and curve[2]["precision"] == pytest.approx(2 / 3)
    assert choose_threshold(scored, 0.8) == {"threshold": 0.8, "coverage": 0.4, "precision": 1.0}
    assert choose_threshold(scored, 0.7) == {"threshold": 0.6, "coverage": 0.8, "precision": 0.75}
    assert choose_threshold(scored, 0.8, min_answered=3) is None
    best = [(0.9, True), (0.8, True), (0.6, True), (0.5, False), (0.1, False)]
    worst = [(0.9, False), (0.8, False), (0.6, True), (0.5, True), (0.1, True)]
    assert area_under_risk_coverage(best) < area_under_risk_coverage(scored) < area_under_risk_coverage(worst)


def test_confidence_measures_are_the_models_own_log_probs(tiny_run):
    model, tok, _ = load_run(tiny_run)
    question, text = "What is the Sun?", "The Sun is a star. It is hot."
    scores = confidences(model, tok, question, text)
    prompt = encode_prompt(tok, question)
    with torch.no_grad():
        log_probs = model.log_prob(torch.tensor([prompt + tok.encode(" " + text)]))[0, len(prompt) - 1:].double()
    first = len(tok.encode(" The Sun is a star."))
    assert scores["mean"] == pytest.approx(log_probs.mean().item())
    assert scores["first_sentence"] == pytest.approx(log_probs[:first].mean().item())
    assert scores["first_sentence_min"] == pytest.approx(log_probs[:first].min().item())
    assert scores["first_sentence"] != scores["mean"]
    assert confidences(model, tok, question, "  ") is None


def test_an_answer_below_the_threshold_is_withheld_and_answered_open_book_where_it_can_be(open_tiny_run):
    model, tok, _ = load_run(open_tiny_run)
    index = load_index(open_tiny_run)
    question = "What is the Sun?"
    plain = answer_from_memory(model, tok, question, SAMPLING, None)
    assert plain.known and plain.confidence is None and shown_text(plain) == plain.answer.text
    shown = answer_from_memory(model, tok, question, SAMPLING, ALWAYS, index)
    assert shown.known and shown.fallback is None and shown_text(shown) == plain.answer.text
    assert shown.confidence == pytest.approx(confidences(model, tok, question, plain.answer.text)["mean"])
    withheld = answer_from_memory(model, tok, question, SAMPLING, NEVER)
    assert not withheld.known and shown_text(withheld) == NOT_KNOWN
    fallback = answer_from_memory(model, tok, question, SAMPLING, NEVER, index)
    expected, passages = answer_open(model, tok, index, question, SAMPLING)
    assert fallback.fallback.text == expected.text and list(fallback.passages) == passages
    assert shown_text(fallback) == f"{NOT_KNOWN} {FROM_ARTICLES} {expected.text}"


def test_open_book_with_no_passage_found_says_the_articles_do_not_answer(open_tiny_run, capsys):
    """No article shares a word with the question: open book answers NOT_ANSWERED (whole or streamed), not
    the network's unchecked guess; withheld from memory, the reply says that neither knows."""
    model, tok, _ = load_run(open_tiny_run)
    index = load_index(open_tiny_run)
    question = "Qwxz vrrbl plonk?"
    assert index.search(question) == []
    result, passages = answer_open(model, tok, index, question, SAMPLING)
    assert result.text == NOT_ANSWERED and passages == [] and result.new_tokens == 0
    assert list(stream_answer(model, tok, question, SAMPLING, open_book=True)) == [NOT_ANSWERED]
    assert answer(model, tok, question, SAMPLING).text != NOT_ANSWERED  # closed book: the network answers
    withheld = answer_from_memory(model, tok, question, SAMPLING, NEVER, index)
    assert withheld.fallback.text == NOT_ANSWERED and withheld.passages == () and withheld.answered_from is None
    assert shown_text(withheld) == NOT_KNOWN_ANYWHERE  # not "From the articles instead: I don't know: ..."
    answered = answer_from_memory(model, tok, "What is the Sun?", SAMPLING, NEVER, index)
    assert answered.answered_from == "articles" and shown_text(answered).startswith(f"{NOT_KNOWN} {FROM_ARTICLES}")
    assert answer_from_memory(model, tok, question, SAMPLING, ALWAYS, index).answered_from == "memory"
    assert main(["ask", str(open_tiny_run), question, "--mode", "open", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["answer"] == NOT_ANSWERED and reply["sources"] == []


def test_sources_of_an_answer_that_says_it_does_not_know_are_what_was_searched(open_tiny_run, capsys):
    from minillm.answering.confidence import says_not_known
    from minillm.cli.common import print_sources

    passages = load_index(open_tiny_run).search("What is the Sun?")
    for text, header in [(NOT_ANSWERED, "searched:"), (NOT_KNOWN_ANYWHERE, "searched:"),
                         ("The Sun is a star.", "sources:"), (f"{NOT_KNOWN} {FROM_ARTICLES} The Sun.", "sources:")]:
        print_sources(passages, text)
        out = capsys.readouterr().out
        assert out.splitlines()[0] == header and out.splitlines()[1].startswith("  [1] Sun - ")
        assert says_not_known(text) == (header == "searched:")


def rows(first_sentence, mean, right):
    return [{"question": "q", "answer": "a", "keyword_hit": None, "fact_recall": 1.0 if r else 0.0,
             "confidence": {"mean": m, "first_sentence": f, "first_sentence_min": f}}
            for f, m, r in zip(first_sentence, mean, right, strict=True)]


def test_calibration_picks_the_measure_that_answers_most_at_the_precision():
    right = [True] * 12 + [False] * 8
    separates = [1.0 - i / 100 for i in range(20)]  # every right answer above every wrong one
    mixed = [(-1) ** i * i / 100 for i in range(20)]
    calibration = choose(rows(separates, mixed, right), 0.8, "val.jsonl")
    # the most answered at 0.8: the 12 right ones and 3 wrong ones
    assert calibration.measure == "first_sentence" and calibration.threshold == separates[14]
    assert (calibration.coverage, calibration.precision, calibration.questions) == (0.75, 0.8, 20)
    hopeless = choose(rows(separates, mixed, [False] * 20), 0.8, "val.jsonl")
    assert hopeless.precision is None and hopeless.coverage == 0.0 and hopeless.threshold > max(separates)
    with pytest.raises(InputError, match="no answer could be scored"):
        choose([{**r, "confidence": None} for r in rows(separates, mixed, right)], 0.8, "val.jsonl")


def val_questions(tmp_path):
    path = tmp_path / "val.jsonl"
    write_jsonl(path, tiny_pairs(tiny_articles()))
    return path


def test_calibrate_then_ask_and_chat_say_when_the_model_does_not_know(open_tiny_run, tmp_path, capsys,
                                                                      monkeypatch):
    run = str(open_tiny_run)
    assert main(["calibrate", run, "--qa", str(val_questions(tmp_path)), "--no-progress"]) == 0
    calibration = load_calibration(run)
    assert calibration.questions == 7 and calibration.target_precision == 0.8
    out = capsys.readouterr().out
    assert "wrote" in out and all(name in out for name in ("mean", "first_sentence", "first_sentence_min"))
    save_calibration(NEVER, run)
    assert main(["ask", run, "What is the Sun?", "--mode", "closed", "--max-new-tokens", "24"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{NOT_KNOWN} {FROM_ARTICLES} ") and "sources:" in out
    assert main(["ask", run, "What is the Sun?", "--mode", "closed", "--max-new-tokens", "24", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["known_from_memory"] is False and reply["answered_from"] == "articles" and reply["sources"]
    assert reply["confidence"] < 0
    typed = iter(["What is the Moon?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt: next(typed))
    assert main(["chat", run, "--mode", "closed", "--max-new-tokens", "24"]) == 0
    assert f"{NOT_KNOWN} {FROM_ARTICLES}" in capsys.readouterr().out
    save_calibration(ALWAYS, run)
    assert main(["ask", run, "What is the Sun?", "--mode", "closed", "--max-new-tokens", "24", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["known_from_memory"] is True and reply["answered_from"] == "memory" and reply["sources"] == []
    (open_tiny_run / "confidence.json").write_text("{not json")
    assert main(["ask", run, "What is the Sun?", "--mode", "closed"]) == 2
    assert "confidence.json: not a confidence file" in capsys.readouterr().err


def test_eval_closed_reports_coverage_precision_and_the_risk_coverage_curve(open_tiny_run, tmp_path):
    questions = val_questions(tmp_path)
    result = evaluate_run(open_tiny_run, qa_path=questions, mode="closed",
                          sampling=SAMPLING)["qa"]
    selective = result["selective"]
    assert "threshold" not in selective and selective["questions"] == 7
    assert selective["curve"][-1]["coverage"] == 1.0
    assert all(set(r["confidence"]) == {"mean", "first_sentence", "first_sentence_min"} for r in result["answers"])
    middle = sorted(r["confidence"]["mean"] for r in result["answers"])[3]
    save_calibration(replace(ALWAYS, threshold=middle), open_tiny_run)
    selective = evaluate_run(open_tiny_run, qa_path=questions, mode="closed", sampling=SAMPLING)["qa"]["selective"]
    answered = [r for r in result["answers"] if r["confidence"]["mean"] >= middle]
    assert selective["threshold"] == middle and selective["coverage"] == pytest.approx(len(answered) / 7)
    right = [r["fact_recall"] >= 0.5 for r in answered]
    assert selective["precision_answered"] == pytest.approx(sum(right) / len(right))
    assert "selective" not in evaluate_run(open_tiny_run, qa_path=questions, mode="open", sampling=SAMPLING)["qa"]


def test_serve_withholds_a_closed_book_answer_and_says_so(open_tiny_run):
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from fastapi.testclient import TestClient

    from minillm.serve import create_app

    save_calibration(NEVER, open_tiny_run)
    question = {"question": "What is the Sun?", "mode": "closed", "max_new_tokens": 24}
    with TestClient(create_app(open_tiny_run), base_url="http://127.0.0.1") as client:
        body = client.post("/v1/answer", json=question).json()
        assert body["answer"].startswith(f"{NOT_KNOWN} {FROM_ARTICLES} ") and body["sources"]
        assert body["known_from_memory"] is False and body["answered_from"] == "articles"
        events = [json.loads(line[6:]) for line in
                  client.post("/v1/answer", json={**question, "stream": True}).text.splitlines() if line]
        assert "".join(e["text"] for e in events if e["type"] == "text") == body["answer"]
    save_calibration(ALWAYS, open_tiny_run)
    with TestClient(create_app(open_tiny_run), base_url="http://127.0.0.1") as client:
        body = client.post("/v1/answer", json=question).json()
        assert body["known_from_memory"] is True and body["sources"] == [] and NOT_KNOWN not in body["answer"]
