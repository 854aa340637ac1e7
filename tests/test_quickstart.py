"""`minillm quickstart` end to end on the bundled offline articles, with a model shrunk to a few steps."""

import pytest

from minillm.answering.confidence import load_calibration
from minillm.cli import main
from minillm.core.errors import InputError
from minillm.retrieval.index import load_index
from minillm.training.config import load_config
from minillm.workflows import quickstart
from minillm.workflows.quickstart import index_is_dense, shipped_config

TINY = ["model.emb_dim=16", "model.num_heads=2", "model.num_layers=1", "model.ffn_dim=32",
        "train.pretrain_steps=2", "train.finetune_steps=2", "train.eval_batches=1", "tokenizer.vocab_size=300"]


def test_quickstart_builds_everything_and_answers_open_book_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(quickstart, "CALIBRATION_QUESTIONS", 20)
    run, data = tmp_path / "runs" / "quickstart", tmp_path / "data"
    args = ["quickstart", "--out", str(run), "--data-dir", str(data), "--no-progress", "--index", "bm25"]
    assert main([*args, *[a for item in TINY for a in ("--set", item)]]) == 0
    out = capsys.readouterr().out
    for path in ("raw/articles.jsonl", "processed/qa_pairs.jsonl", "splits/train.jsonl", "splits/test.jsonl",
                 "tokenizer.json"):
        assert (data / path).is_file(), path
    assert (run / "model.safetensors").is_file() and load_index(run) is not None
    assert load_calibration(run).questions == 20 and "calibrate: 20 val questions closed book" in out
    samples = out.split("sample answers from")[1]
    assert samples.startswith(f" {run} (open book")
    # the first two questions show both modes, open book after closed book; every answer lists its sources
    assert samples.count("A, closed book (the model alone):") == 2 and samples.count("A, open book:") == 2
    assert samples.index("Q: What is the Sun?\nA, closed book") < samples.index("A, open book")
    assert samples.count("   sources: ") == samples.count("Q: ") == 6
    assert "sources: Sun" in samples

    assert main(args) == 2  # an existing run is never overwritten unless asked
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_data_domains_picks_the_offline_articles_fetched(tmp_path, monkeypatch):
    articles, split = quickstart.build_data(tmp_path, domains="weather, chemistry")
    assert {a.domain for a in articles} == {"weather", "chemistry"}
    assert len(split.train) > 0 and (tmp_path / "splits" / "test.jsonl").is_file()
    asked = []

    def fetch(source, output, **kwargs):
        asked.append(kwargs["domains"])
        raise InputError("stop here")

    monkeypatch.setattr(quickstart, "fetch_articles", fetch)
    for domains in ("all", ""):
        with pytest.raises(InputError, match="stop here"):
            quickstart.build_data(tmp_path / "other", domains=domains)
    assert asked == [("all",), None]  # every offline summary; the six domains


def test_data_described_reaches_the_generator(tmp_path, monkeypatch):
    asked = []

    def generate(articles, **kwargs):
        asked.append(kwargs["described"])
        raise InputError("stop here")

    monkeypatch.setattr(quickstart, "generate_qa_pairs", generate)
    for described in (True, False):
        with pytest.raises(InputError, match="stop here"):
            quickstart.build_data(tmp_path / str(described), domains="weather", described=described)
    assert asked == [True, False]
    cfg = load_config(shipped_config("tiny-cpu"), ["data.described=true"])
    assert cfg.data.described and not load_config(shipped_config("tiny-cpu")).data.described


def test_the_index_is_hybrid_where_the_dense_extra_is_installed(monkeypatch):
    import minillm.workflows.quickstart as quickstart

    lines = []
    monkeypatch.setattr(quickstart, "dense_available", lambda: True)
    assert quickstart.index_is_dense("auto", lines.append) and quickstart.index_is_dense("hybrid", lines.append)
    assert not quickstart.index_is_dense("bm25", lines.append) and lines == []
    monkeypatch.setattr(quickstart, "dense_available", lambda: False)
    assert not quickstart.index_is_dense("auto", lines.append)
    assert len(lines) == 1 and "BM25 only" in lines[0] and "minillm[dense]" in lines[0]  # said once


def test_an_unknown_index_kind_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["quickstart", "--out", str(tmp_path / "run"), "--index", "faiss"])
    assert exited.value.code == 2 and "--index: invalid choice: 'faiss'" in capsys.readouterr().err
    with pytest.raises(InputError, match="--index 'faiss': expected one of auto, hybrid, bm25"):
        index_is_dense("faiss", print)
