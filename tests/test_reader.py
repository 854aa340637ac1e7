"""[answer] reader: open book read by the pattern rung's reading, closed book by the network (reader.py)."""

import json

import pytest

from minillm.answering.answer import answer
from minillm.answering.reader import READ_SEQ_LEN, PatternReading, load_answerer, with_reader
from minillm.cli import main
from minillm.models.generation import Sampling
from minillm.retrieval.index import load_index, retrieve
from minillm.training.config import load_config
from minillm.training.runs import load_run

SAMPLING = Sampling(max_new_tokens=128)
LION = "What does the lion live in?"


@pytest.fixture
def run(open_tiny_run):
    """The tiny run with an index over the tiny articles (its config: reader = "model")."""
    return open_tiny_run


def set_reader(run, reader: str) -> None:
    path = run / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert 'reader = "model"' in text  # every saved config has its [answer] table
    path.write_text(text.replace('reader = "model"', f'reader = "{reader}"'), encoding="utf-8")


def test_open_book_is_read_by_the_pattern_rung_closed_book_by_the_network(run):
    model, tok, _ = load_run(run)
    reading = with_reader(model, tok, "pattern")
    assert isinstance(reading, PatternReading) and with_reader(model, tok, "model") is model
    context = ("The lion is a large cat of Africa and India. It lives in groups called prides. Male lions have "
               "a mane.\nThe Nile is a river in northeast Africa.")
    # the best passage's lead, then its sentence that answers ("lives ... groups"), copied whole
    assert answer(reading, tok, LION, SAMPLING, context=context).text == (
        "The lion is a large cat of Africa and India. It lives in groups called prides. Male lions have a mane.")
    closed = answer(reading, tok, LION, SAMPLING)
    assert closed.token_ids == answer(model, tok, LION, SAMPLING).token_ids  # the network's own answer
    # everything but generate is the network's: what eval scores, its size, its window
    assert reading.max_seq_len == model.max_seq_len and reading.prompt_seq_len == READ_SEQ_LEN
    assert reading.num_parameters() == model.num_parameters() and reading.log_prob == model.log_prob
    with pytest.raises(ValueError, match="reader must be one of model, pattern"):
        with_reader(model, tok, "bert")


def test_a_long_closed_book_question_still_fits_the_networks_window(run):
    model, tok, _ = load_run(run)
    question = "What is " + " and ".join(["the Sun"] * 60) + "?"  # longer than the 96-token window
    result = answer(with_reader(model, tok, "pattern"), tok, question, SAMPLING)
    assert result.prompt_tokens > model.max_seq_len  # fitted for the reading's window, then refitted
    assert result.new_tokens > 0


def test_the_reading_gets_passages_one_per_line_the_network_joined_by_spaces(run):
    model, tok, _ = load_run(run)
    index = load_index(run)
    passages, spaced = retrieve(index, "Where in Africa is the Nile?", 2, model)
    _, lined = retrieve(index, "Where in Africa is the Nile?", 2, with_reader(model, tok, "pattern"))
    assert len(passages) == 2 and "\n" not in spaced
    assert lined.split("\n") == [p.text for p in passages] and spaced == " ".join(lined.split("\n"))


def test_the_runs_config_picks_the_reader_and_the_flag_overrides_it(run, capsys):
    assert load_config(run / "config.toml").answer.reader == "model"  # every config's default
    assert main(["ask", str(run), LION, "--json"]) == 0
    by_network = json.loads(capsys.readouterr().out)["answer"]
    set_reader(run, "pattern")
    assert isinstance(load_answerer(run)[0], PatternReading)
    assert main(["ask", str(run), LION, "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["mode"] == "open" and reply["reader"] == "pattern" and reply["sources"][0]["title"] == "Lion"
    assert reply["answer"].startswith("The lion is a large cat of Africa and India. It lives in groups")
    assert main(["ask", str(run), LION, "--json", "--reader", "model"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == by_network


def test_eval_records_the_reader_and_reads_the_held_out_natural_questions(run):
    set_reader(run, "pattern")
    assert main(["eval", str(run), "--mode", "open", "--split", "natural-heldout", "--limit", "2",
                 "--no-progress"]) == 0
    result = json.loads((run / "eval.json").read_text(encoding="utf-8"))
    assert result["settings"]["reader"] == "pattern" and result["qa"]["count"] == 2
    assert result["settings"]["questions_file"].endswith("natural_questions_heldout.jsonl")
    assert main(["eval", str(run), "--mode", "open", "--split", "natural-heldout", "--limit", "2",
                 "--reader", "model", "--no-progress"]) == 0
    assert json.loads((run / "eval.json").read_text(encoding="utf-8"))["settings"]["reader"] == "model"


def test_serve_answers_with_the_runs_reader(run):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from minillm.serve.app import create_app

    set_reader(run, "pattern")
    client = TestClient(create_app(run), base_url="http://127.0.0.1:8000")
    reply = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": LION}]})
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"].startswith(
        "The lion is a large cat of Africa and India. It lives in groups")


def test_a_bad_reader_in_the_config_or_on_the_command_line_exits_2(run, capsys):
    with pytest.raises(SystemExit) as e:
        main(["ask", str(run), LION, "--reader", "bert"])
    assert e.value.code == 2
    capsys.readouterr()
    set_reader(run, "bert")
    assert main(["ask", str(run), LION]) == 2
    assert "answer.reader: must be one of model, pattern, ranker, got 'bert'" in capsys.readouterr().err
