"""`minillm compress sweep`: every variant of a tiny run made, measured in its own process, tabled and plotted."""

import json
import shutil

from minillm.cli import main


def test_sweep_makes_and_measures_every_variant(tiny_run, tmp_path, capsys):
    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(tiny_run, run)
    data.mkdir()
    for name in ("articles.jsonl", "train.jsonl", "val.jsonl"):
        shutil.copy(tiny_run.parent / name, data / name)
    shutil.copy(data / "val.jsonl", data / "test.jsonl")  # the F1 questions
    config = run / "config.toml"
    config.write_text(config.read_text().replace(str(tiny_run.parent), str(data)))
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": q, "answer": a, "keywords": [k]}) + "\n" for q, a, k in [
        ("What is the Sun?", "The Sun is a star.", "star"), ("What is water?", "Water is a liquid.", "liquid")]))
    out = tmp_path / "sweep"
    assert main(["compress", "sweep", str(run), "--out", str(out), "--limit", "2", "--recovery-steps", "2",
                 "--questions", str(questions), "--extra", f"again={run}"]) == 0
    result = json.loads((out / "results.json").read_text())
    rows = {r["variant"]: r for r in result["variants"]}
    assert list(rows) == ["fp32", "int8", "int4", "pruned30", "pruned50", "pruned70", "ffn50", "again"]
    assert rows["int8"]["bytes"] < rows["fp32"]["bytes"] and rows["int4"]["bytes"] < rows["int8"]["bytes"]
    assert rows["pruned70"]["bytes"] < rows["pruned30"]["bytes"] < rows["fp32"]["bytes"]
    assert rows["ffn50"]["parameters"] < rows["fp32"]["parameters"]
    assert rows["again"]["bits_per_byte"] == rows["fp32"]["bits_per_byte"]  # the same run, measured again
    for row in rows.values():
        assert row["open_keyword"] is None  # the tiny run has no retrieval index
        assert 0 <= row["closed_keyword"] <= 1 and 0 <= row["test_f1"] <= 1
        assert row["tokens_per_s"] > 0 and row["peak_rss_bytes"] > 10_000_000
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert "| ffn50 |" in (out / "README.md").read_text() and "wrote" in capsys.readouterr().out


def test_sweep_bad_inputs(tiny_run, tmp_path, capsys):
    assert main(["compress", "sweep", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["compress", "sweep", str(tiny_run), "--out", str(tmp_path / "o"), "--extra", "x"]) == 2
    assert "expected NAME=RUN" in capsys.readouterr().err
    assert main(["compress", "sweep", str(tiny_run), "--out", str(tmp_path / "o"), "--limit", "0"]) == 2
    assert not (tmp_path / "o").exists()
