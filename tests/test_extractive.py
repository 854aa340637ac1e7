"""The extractive floor: the first sentences of the open-book passages, through the same commands as any rung."""

import json

import pytest
from conftest import tiny_articles, train_tiny_run

from minillm.answering.answer import answer
from minillm.answering.open_book import answer_open
from minillm.cli import main
from minillm.models import MODELS
from minillm.models.extractive import NO_PASSAGE, ExtractiveReader
from minillm.models.generation import Sampling
from minillm.retrieval.index import Index
from minillm.training.runs import load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = train_tiny_run(tmp_path_factory.mktemp("extractive"),
                         {"arch": "extractive", "max_seq_len": 256, "max_sentences": 2}, pretrain_steps=1,
                         finetune_steps=0)
    Index.build(tiny_articles()).save(run / "index")
    return run


def test_answers_with_the_first_sentences_of_the_best_passage(run):
    model, tok, cfg = load_run(run)
    assert isinstance(model, ExtractiveReader) and MODELS["extractive"] is ExtractiveReader
    assert (run / "extractive.json").is_file() and model.num_parameters() == 0
    from minillm.retrieval.index import load_index

    result, passages = answer_open(model, tok, load_index(run), "Where does the Nile flow?", Sampling())
    assert passages[0].title == "Nile"
    assert result.text == "The Nile is a river in northeast Africa. It flows north into the Mediterranean Sea."
    assert answer(model, tok, "Where does the Nile flow?", Sampling()).text == NO_PASSAGE  # closed book
    one = answer(model, tok, "Q?", Sampling(max_sentences=1), context="First one. Second one. Third.")
    assert one.text == "First one."


def test_ask_and_eval_open_book_through_the_cli(run, tmp_path, capsys):
    assert main(["ask", str(run), "What is a tornado?", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["mode"] == "open" and reply["answer"].startswith("A tornado is a rotating column of air.")
    qa = tmp_path / "q.jsonl"
    qa.write_text(json.dumps({"question": "What is a lion?", "answer": "The lion is a large cat of Africa and "
                              "India.", "domain": "animals", "keywords": ["cat"]}) + "\n")
    assert main(["eval", str(run), "--qa", str(qa), "--mode", "open", "--no-progress"]) == 0
    result = json.loads((run / "eval.json").read_text())["qa"]
    assert result["keyword_hit_rate"] == 1.0 and result["faithfulness"] == 1.0 and result["degenerate"] == 0
    assert result["answers"][0]["sentence_sources"][0]["passage"] == 0
