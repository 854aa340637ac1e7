"""`minillm ladder`: every rung trained, evaluated and tabulated on the same (here: tiny) data."""

import json

import pytest
from conftest import TINY_FACTS

from minillm.cli import main
from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.data.records import Article, QAPair
from minillm.workflows.ladder import BUDGETS, RUNGS, run_ladder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data folder as the offline pipeline leaves it, small enough to train every rung in seconds."""
    root = tmp_path_factory.mktemp("ladder") / "data"
    articles = []
    for copy in range(6):  # enough text for max_seq_len = 256 windows
        for title, domain, text in TINY_FACTS:
            articles.append(Article.create(source="offline", title=f"{title} {copy}" if copy else title,
                                           domain=domain, text=f"{text} {text}",
                                           url=f"https://en.wikipedia.org/wiki/{title}_{copy}",
                                           retrieved_at="2026-01-01T00:00:00+00:00"))
    pairs = [QAPair.create(article_id=a.id, domain=a.domain, question=f"What is {a.title.lower()}?",
                           answer=a.text[:120], context=a.text, kind="overview") for a in articles]
    write_jsonl(root / "raw" / "articles.jsonl", articles)
    write_jsonl(root / "splits" / "train.jsonl", pairs[:30])
    write_jsonl(root / "splits" / "val.jsonl", pairs[30:36])
    write_jsonl(root / "splits" / "test.jsonl", pairs[36:])
    return root


def test_ladder_trains_evaluates_and_tabulates_every_rung(data_dir, tmp_path):
    out, runs = tmp_path / "experiments" / "ladder", tmp_path / "runs"
    lines = []
    result = run_ladder("tiny", out_dir=out, runs_dir=runs, data_dir=data_dir, log=lines.append)
    labels = [r.label for r in RUNGS]
    assert [row["rung"] for row in result.rows] == labels
    table = (out / "results.md").read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(RUNGS) and rows[0].startswith("| rung | model | parameters | size on disk")
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["budget"] == "tiny" and [r["rung"] for r in saved["rungs"]] == labels
    for name in ("loss_curves.png", "size_quality.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_rung = {r["rung"]: r for r in saved["rungs"]}
    unscored = ("pattern", "extractive", "bert")  # no next-token probabilities
    assert all(by_rung[r]["bits_per_byte"] is None for r in unscored)
    assert all(by_rung[r]["bits_per_byte"] > 0 for r in labels if r not in unscored)
    for rung in labels:  # every rung also answered the natural questions, and its sample answers are kept
        assert by_rung[rung]["natural_questions"] == BUDGETS["tiny"]["natural"]
        assert 0 <= by_rung[rung]["natural_open_keyword"] <= 1 and by_rung[rung]["sample"]["question"]
    for rung in labels:
        closed = json.loads((runs / rung / "eval.json").read_text(encoding="utf-8"))
        opened = json.loads((runs / rung / "eval-open.json").read_text(encoding="utf-8"))
        assert closed["settings"]["mode"] == "closed" and opened["settings"]["mode"] == "open"
        assert opened["settings"]["reader"] == "model"  # the rung's own network reads, not tiny-cpu's ranker
        assert closed["qa"]["count"] == opened["qa"]["count"] == BUDGETS["tiny"]["questions"]
    assert by_rung["shared"]["parameters"] < by_rung["modern"]["parameters"] < by_rung["copy"]["parameters"]
    assert by_rung["hybrid"]["parameters"] > by_rung["modern"]["parameters"]  # n-gram tables + the network

    # a second call reuses every finished rung instead of training it again
    lines.clear()
    again = run_ladder("tiny", out_dir=out, runs_dir=runs, data_dir=data_dir, log=lines.append)
    assert sum("done before" in line for line in lines) == len(RUNGS)
    assert again.table == result.table


def test_reevaluate_scores_trained_rungs_again_without_training_them(data_dir, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    run_ladder("tiny", out_dir=out, runs_dir=runs, data_dir=data_dir, rungs=("pattern", "markov"))
    weights = (runs / "markov" / "model.safetensors").stat().st_mtime_ns
    (runs / "markov" / "eval.json").write_text("{}", encoding="utf-8")  # as if scored by older code
    lines = []
    run_ladder("tiny", out_dir=out, runs_dir=runs, data_dir=data_dir, rungs=("pattern", "markov"), reevaluate=True,
               log=lines.append)
    assert sum("evaluated again" in line for line in lines) == 2 and not any("training" in line for line in lines)
    assert (runs / "markov" / "model.safetensors").stat().st_mtime_ns == weights  # not trained again
    assert json.loads((runs / "markov" / "eval.json").read_text(encoding="utf-8"))["qa"]["count"] > 0


def test_ladder_subset_pulls_in_what_the_hybrid_needs(data_dir, tmp_path):
    result = run_ladder("tiny", out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", data_dir=data_dir,
                        rungs=("pattern", "hybrid"))
    assert [row["rung"] for row in result.rows] == ["pattern", "modern", "hybrid"]


def test_ladder_subset_keeps_the_other_rungs_rows_of_the_same_budget(data_dir, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    run_ladder("tiny", out_dir=out, runs_dir=runs, data_dir=data_dir, rungs=("pattern",))
    plots = (out / "size_quality.png").read_bytes()
    result = run_ladder("tiny", out_dir=out, runs_dir=runs, data_dir=data_dir, rungs=("extractive",))
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["rung"] for r in saved["rungs"]] == ["extractive", "pattern"]  # RUNGS order
    assert "| pattern |" in result.table and "| extractive |" in result.table
    assert (out / "size_quality.png").read_bytes() == plots  # no run for the kept row: the plots stay
    saved["budget"] = "small"  # another budget's rows are not mixed in
    (out / "results.json").write_text(json.dumps(saved), encoding="utf-8")
    run_ladder("tiny", out_dir=out, runs_dir=runs, data_dir=data_dir, rungs=("extractive",))
    assert [r["rung"] for r in json.loads((out / "results.json").read_text())["rungs"]] == ["extractive"]


def test_ladder_rejects_unknown_budget_and_rung(tmp_path, capsys):
    with pytest.raises(InputError, match="unknown budget"):
        run_ladder("huge", runs_dir=tmp_path / "runs")
    assert main(["ladder", "--rungs", "pattern,lstm", "--runs", str(tmp_path / "runs")]) == 2
    assert "--rungs: unknown rung(s) lstm" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing is written before the input is checked
