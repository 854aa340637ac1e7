"""The extraction experiment: data split by article, arms trained and scored, results written, reuse."""

import json

import pytest
from conftest import tiny_articles

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.records import read_qa_pairs
from minillm.evaluation.qa import EvalQuestion
from minillm.workflows import extraction
from minillm.workflows.extraction import (
    borrowed_from_trained,
    chance_recall,
    extraction_data,
    on_subject,
    run_extraction,
    split_articles,
)


def test_articles_split_in_halves_and_quarters_deterministically():
    ids = [f"a{i:02d}" for i in range(40)]
    parts = split_articles(ids, seed=0)
    assert [list(parts.values()).count(p) for p in ("train", "val", "test")] == [20, 10, 10]
    assert split_articles(list(reversed(ids)), seed=0) == parts  # input order does not matter
    assert split_articles(ids, seed=1) != parts


def test_the_test_articles_questions_are_never_trained(tmp_path):
    articles = tmp_path / "articles.jsonl"
    write_jsonl(articles, tiny_articles())
    files = extraction_data(articles, tmp_path / "data", count=7, seed=0)
    split = {name: read_qa_pairs(files[name]) for name in ("train", "val", "test", "paraphrased",
                                                          "trained_paraphrased")}
    trained = {p.article_id for p in split["train"]}
    for name in ("val", "test", "paraphrased"):
        assert split[name] and not trained & {p.article_id for p in split[name]}
    assert {p.article_id for p in split["paraphrased"]} <= {p.article_id for p in split["test"]}
    assert {p.article_id for p in split["trained_paraphrased"]} <= trained
    trained_questions = {p.question for p in split["train"]}
    assert split["trained_paraphrased"] and not trained_questions & {p.question for p in split["trained_paraphrased"]}
    assert all(p.kind.endswith("/paraphrase") for name in ("paraphrased", "trained_paraphrased") for p in split[name])
    assert not any("/" in p.kind for name in ("train", "val", "test") for p in split[name])
    with pytest.raises(InputError, match="at least 4"):
        write_jsonl(articles, tiny_articles()[:3])
        extraction_data(articles, tmp_path / "d2", count=3)


def test_chance_scores_answers_against_other_questions_references():
    questions = [EvalQuestion("How many moons does Jupiter have?", "Jupiter has 95 moons.", "number"),
                 EvalQuestion("How many moons does Mars have?", "Mars has 2 moons.", "number")]
    right = ["Jupiter has 95 moons.", "Mars has 2 moons."]
    assert chance_recall(questions, right) == 0.0  # each right answer misses the other's fact
    assert chance_recall(questions, list(reversed(right))) == 1.0
    assert on_subject("How many moons does Mars have?", "Mars has 2 moons.", "Mars has 3 moons.")
    assert not on_subject("How many moons does Mars have?", "Mars has 2 moons.", "Venus is hot.")


def test_tiny_experiment_trains_scores_writes_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_jsonl(data / "raw" / "articles.jsonl", tiny_articles())
    for name in ("train", "val", "test"):  # the quickstart's files, so that prepare_data reuses them
        write_jsonl(data / "splits" / f"{name}.jsonl", [])
    (data / "tokenizer.json").write_text("{}")
    monkeypatch.setitem(extraction.BUDGETS, "tiny", {**extraction.BUDGETS["tiny"], "articles": 7})
    arms = ("plain", "augmented+mixed")
    result = run_extraction("tiny", out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", data_dir=data, arms=arms)
    assert [r["arm"] for r in result.rows] == list(arms)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    for row in saved["arms"]:
        for key in ("extraction", "paraphrased", "chance", "trained", "trained_paraphrased", "recited", "choice",
                    "on_subject", "by_kind", "misses_from_trained"):
            assert key in row
    assert (tmp_path / "out" / "extraction.png").stat().st_size > 0
    assert "| augmented+mixed |" in (tmp_path / "out" / "results.md").read_text()
    config = (tmp_path / "runs" / "augmented+mixed" / "config.toml").read_text()
    assert "mix_qa = 1" in config and "orders = 3" in config and "heldout_fraction = 0.0" in config

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(extraction, "train", no_training)
    again = run_extraction("tiny", out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", data_dir=data, arms=arms)
    assert again.table == result.table
    scored = []
    monkeypatch.setattr(extraction, "evaluate_arm", lambda run_dir, *a: scored.append(run_dir.name) or {
        **json.loads((run_dir / extraction.RESULT_FILE).read_text()), "extraction": 0.5})
    rescored = run_extraction("tiny", out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", data_dir=data,
                              arms=arms, rescore=True)
    assert scored == list(arms) and [r["extraction"] for r in rescored.rows] == [0.5, 0.5]
    with pytest.raises(InputError, match="unknown arm"):
        run_extraction("tiny", runs_dir=tmp_path / "runs", data_dir=data, arms=("bogus",))


def test_extraction_command_rejects_unknown_arms(capsys):
    assert main(["extraction", "--arms", "plain,bogus", "--runs", "/nonexistent/runs"]) == 2
    assert "unknown arm(s) bogus" in capsys.readouterr().err


def test_misses_are_traced_to_the_article_their_words_come_from(tmp_path):
    articles = tiny_articles()
    files = extraction_data(write_jsonl(tmp_path / "a.jsonl", articles) and tmp_path / "a.jsonl", tmp_path, 7)
    tests, trained = read_qa_pairs(files["test"]), {p.article_id for p in read_qa_pairs(files["train"])}
    text = {a.id: a.text for a in articles}
    donor = next(a for a in articles if a.id in trained)
    other = next(a for a in articles if a.id not in trained and a.id != tests[0].article_id)
    rows = [{"answer": text[donor.id], "fact_recall": 0.0}, *({"answer": "x", "fact_recall": 1.0} for _ in tests[1:])]
    assert borrowed_from_trained(rows, tests, files) == 1.0  # the one miss took a trained article's words
    rows[0] = {"answer": text[other.id], "fact_recall": 0.0}
    assert borrowed_from_trained(rows, tests, files) == 0.0
    rows[0] = {"answer": "Too few words.", "fact_recall": 0.0}
    assert borrowed_from_trained(rows, tests, files) is None
