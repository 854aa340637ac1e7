"""The data commands end to end through the CLI, and the bad inputs they must reject with exit code 2."""

import json
import subprocess
import sys

import pytest

from minillm.cli import main
from minillm.data.records import read_articles, read_qa_pairs

ARTICLES = {
    "Jupiter": "Jupiter is the fifth planet from the Sun and the largest planet in the Solar System. It is a gas "
               "giant with a mass more than two and a half times that of all the other planets combined. Jupiter "
               "has at least 95 known moons.",
    "Heart": "The heart is a muscular organ found in humans and other animals. It pumps blood through the blood "
             "vessels of the circulatory system. The heart is located in the middle compartment of the chest.",
    "Tornado": "A tornado is a rapidly rotating column of air that is in contact with both the surface of the "
               "Earth and a cumulonimbus cloud. Tornadoes come in many shapes and sizes. Most tornadoes have wind "
               "speeds less than 180 kilometers per hour.",
    "Lion": "The lion is a large cat of the genus Panthera native to Africa and India. It has a muscular, "
            "broad-chested body and a short, rounded head. Adult male lions are larger than females.",
}


def run(*args):
    return main([str(a) for a in args])


@pytest.fixture
def local_corpus(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"title": t, "text": x}) + "\n" for t, x in ARTICLES.items()))
    return path


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_pipeline_through_cli(tmp_path, local_corpus, capsys):
    raw, qa, splits = tmp_path / "raw.jsonl", tmp_path / "qa.jsonl", tmp_path / "splits"
    assert run("data", "fetch", "--source", "local", "--input", local_corpus, "--output", raw,
               "--domains", "all") == 0
    assert len(read_articles(raw)) == 4
    assert run("data", "generate", "--input", raw, "--output", qa, "--no-progress") == 0
    pairs = read_qa_pairs(qa)
    assert len(pairs) >= 4
    assert run("data", "split", "--input", qa, "--output-dir", splits, "--train-size", "0.5",
               "--val-size", "0.25", "--test-size", "0.25") == 0
    out = capsys.readouterr().out
    assert "train.jsonl" in out and "test.jsonl" in out
    total = sum(len(read_qa_pairs(splits / f"{n}.jsonl")) for n in ("train", "val", "test"))
    assert total == len(pairs)


def test_skip_invalid_reports_count(tmp_path, local_corpus, capsys):
    raw, qa = tmp_path / "raw.jsonl", tmp_path / "qa.jsonl"
    run("data", "fetch", "--source", "local", "--input", local_corpus, "--output", raw, "--domains", "all")
    with raw.open("a") as fh:
        fh.write("{broken\n")
    assert run("data", "generate", "--input", raw, "--output", qa) == 2
    assert f"{raw}:5: malformed JSON" in one_error_line(capsys)
    assert not qa.exists()
    assert run("data", "generate", "--input", raw, "--output", qa, "--skip-invalid", "--no-progress") == 0
    assert "skipped 1 invalid line(s): 5" in capsys.readouterr().err
    assert qa.exists()


@pytest.mark.parametrize(("command", "message"), [
    (["data", "generate", "--input", "{missing}"], "no such file"),
    (["data", "generate", "--input", "{empty}"], "empty file"),
    (["data", "generate", "--input", "{wrong_type}"], ":1: field 'text': expected string, got int"),
    (["data", "generate", "--input", "{raw}", "--paraphrases", "-1"], "--paraphrases"),
    (["data", "split", "--input", "{missing}"], "no such file"),
    (["data", "split", "--input", "{raw}"], ":1: missing field 'article_id'"),
    (["data", "split", "--input", "{qa}", "--train-size", "0.9"], "must sum to 1"),
    (["data", "split", "--input", "{qa}", "--test-size", "nan"], "--test-size"),
    (["data", "fetch", "--source", "local", "--input", "{missing}"], "no such file or folder"),
    (["data", "fetch", "--domains", "cooking"], "unknown domain(s) cooking"),
    (["data", "fetch", "--limit", "-3"], "--limit"),
    (["data", "fetch", "--full"], "--source wikipedia only"),
])
def test_bad_input_exit_2_one_line_no_output(tmp_path, local_corpus, capsys, command, message):
    raw, qa = tmp_path / "raw.jsonl", tmp_path / "qa.jsonl"
    run("data", "fetch", "--source", "local", "--input", local_corpus, "--output", raw, "--domains", "all")
    run("data", "generate", "--input", raw, "--output", qa, "--no-progress")
    capsys.readouterr()
    article = json.loads(raw.read_text().splitlines()[0])
    files = {"missing": tmp_path / "missing.jsonl", "empty": tmp_path / "empty.jsonl",
             "wrong_type": tmp_path / "wrong.jsonl", "raw": raw, "qa": qa}
    files["empty"].write_text("")
    files["wrong_type"].write_text(json.dumps({**article, "text": 7}) + "\n")
    out = tmp_path / "out"
    args = [a.format(**files) for a in command]
    args += ["--output-dir" if command[1] == "split" else "--output", str(out)]
    assert run(*args) == 2
    assert message in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("command", [
    ["data", "fetch", "--source", "local", "--input", "{corpus}", "--output", "{blocker}/raw.jsonl"],
    ["data", "generate", "--input", "{raw}", "--output", "{blocker}/deeper/qa.jsonl", "--no-progress"],
    ["data", "split", "--input", "{qa}", "--output-dir", "{blocker}/splits"],
    ["tokenizer", "train", "--input", "{raw}", "--kind", "char", "--output", "{blocker}/tokenizer.json"],
    ["quickstart", "--data-dir", "{blocker}/data", "--out", "{raw}.run", "--no-progress"],
])
def test_output_under_a_file_exit_2_one_line(tmp_path, local_corpus, capsys, command):
    raw, qa = tmp_path / "raw.jsonl", tmp_path / "qa.jsonl"
    run("data", "fetch", "--source", "local", "--input", local_corpus, "--output", raw, "--domains", "all")
    run("data", "generate", "--input", raw, "--output", qa, "--no-progress")
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder")
    capsys.readouterr()
    assert run(*[a.format(corpus=local_corpus, raw=raw, qa=qa, blocker=blocker) for a in command]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"minillm: error: {blocker}") and "a file is in the way" in line
    assert blocker.read_text() == "a file, not a folder"


def test_missing_shakespeare_text_says_where_to_get_it(tmp_path, capsys):
    missing = tmp_path / "tinyshakespeare" / "input.txt"
    assert run("train", "--config", "shakespeare-char", "--out", tmp_path / "run",
               "--set", f'data.text="{missing}"') == 2
    line = one_error_line(capsys)
    assert f"{missing}: no such file (data.text); download it from https://" in line


def test_unknown_option_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        run("data", "fetch", "--colour", "red")
    assert e.value.code == 2


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "minillm", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("minillm ")
