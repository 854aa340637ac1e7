"""`minillm compare`: Markdown table, notes and plots from run directories; the eval table's formatting."""

import json
import shutil
import struct
from pathlib import Path

import pytest
from conftest import ARC_EASY, shared_file

from minillm.cli import main
from minillm.core.numbers import human_bytes, human_count, human_seconds
from minillm.evaluation.report import eval_table, read_run

QUESTIONS = [{"question": "What is the Sun?", "answer": "The Sun is a star.", "domain": "astronomy",
              "keywords": ["star"]},
             {"question": "What is the heart?", "answer": "The heart pumps blood.", "domain": "anatomy"}]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def two_runs(tiny_run, tmp_path):
    """Two copies of the tiny run; only the first is evaluated."""
    a, b = (Path(shutil.copytree(tiny_run, tmp_path / name)) for name in ("small", "other"))
    qa = tmp_path / "q.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    text = tmp_path / "text.txt"
    text.write_text("The Sun is a star. The heart pumps blood.\n" * 10, encoding="utf-8")
    assert main(["eval", str(a), "--qa", str(qa), "--text", str(text), "--max-new-tokens", "8",
                 "--no-progress"]) == 0
    return a, b


def test_compare_writes_table_notes_and_plots(two_runs, tmp_path, capsys):
    a, b = two_runs
    out = tmp_path / "experiments" / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    readme = (out / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("|")]
    assert len(table) == 4  # header, alignment, two runs
    assert table[0].startswith("| run | model | parameters | size on disk | training time | "
                               "val bits/byte | QA F1")
    evaluated = json.loads((a / "eval.json").read_text())
    small, other = table[2].split(" | "), table[3].split(" | ")
    assert small[0] == "| small" and other[0] == "| other"
    assert small[2] == human_count(evaluated["model"]["parameters"]) == other[2]
    assert small[1].startswith("transformer 2 x 32, bpe")
    assert small[3] == human_bytes(evaluated["model"]["size_bytes"])
    assert small[6] == f"{evaluated['qa']['f1']:.3f}"
    assert small[5] == "—"  # the tiny run holds no text out, so it has no held-out bits per byte
    assert other[6:9] == ["—", "—", "—"]
    assert f"`other` has no eval.json: run `minillm eval {b}`" in readme
    assert "`small` was evaluated (qa, closed book)" in readme
    assert "![training and validation loss](loss_curves.png)" in readme
    for name in ("loss_curves.png", "size_quality.png"):
        width, height = png_size(out / name)
        assert (width, height) == (1210, 462)  # 11 x 4.2 inches at 110 dpi
    assert "| small |" in capsys.readouterr().out


def test_compare_output_is_reproducible(two_runs, tmp_path):
    a, b = two_runs
    out, names = tmp_path / "cmp", ("README.md", "loss_curves.png", "size_quality.png")
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    first = [(out / name).read_bytes() for name in names]
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    assert [(out / name).read_bytes() for name in names] == first


def test_compare_warns_when_runs_were_evaluated_differently(two_runs, tmp_path):
    a, b = two_runs
    qa = tmp_path / "q.jsonl"
    warning = "not evaluated on the same questions with the same settings"
    assert main(["eval", str(b), "--qa", str(qa), "--max-new-tokens", "8", "--no-progress"]) == 0
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "same")]) == 0
    assert warning not in (tmp_path / "same" / "README.md").read_text()
    assert main(["eval", str(b), "--qa", str(qa), "--max-new-tokens", "9", "--no-progress"]) == 0
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "differ")]) == 0
    assert warning in (tmp_path / "differ" / "README.md").read_text()


def test_compare_notes_multiple_choice_accuracy(two_runs, tmp_path):
    a, b = two_runs
    arc = shared_file(ARC_EASY)
    assert main(["eval", str(b), "--task", "arc-easy", "--qa", str(arc), "--limit", "5",
                 "--no-progress"]) == 0
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    readme = (tmp_path / "cmp" / "README.md").read_text()
    assert "`other` was evaluated (arc-easy, closed book)" in readme and "by summed log-probs" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| other"))
    assert row.endswith("| — | — | — | — |")  # no QA columns for a multiple-choice evaluation


def test_read_run_curves_and_training_time(tiny_run):
    run = read_run(tiny_run)
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert run.train_loss == [(r["global_step"], r["loss"]) for r in records if r["event"] == "train"]
    assert set(run.val_loss) == {"val_qa"} and run.training_seconds == records[-1]["elapsed"]
    assert run.eval is None and run.metric("qa", "f1") is None


def test_same_folder_names_are_told_apart_by_path(tiny_run, tmp_path):
    a = Path(shutil.copytree(tiny_run, tmp_path / "x" / "run"))
    b = Path(shutil.copytree(tiny_run, tmp_path / "y" / "run"))
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    readme = (tmp_path / "cmp" / "README.md").read_text()
    assert f"| {a} |" in readme and f"| {b} |" in readme


@pytest.mark.parametrize("setup, message", [
    (lambda run: shutil.rmtree(run), "no such run directory"),
    (lambda run: (run / "eval.json").write_text("{not json"), "eval.json: not valid JSON"),
    (lambda run: (run / "eval.json").write_text("[]"), "eval.json: not a minillm eval.json"),
    (lambda run: (run / "eval.json").write_text('{"format": 1}'), "eval.json: not a minillm eval.json"),
])
def test_compare_bad_runs_exit_2_and_write_nothing(tiny_run, tmp_path, capsys, setup, message):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    setup(run)
    assert main(["compare", str(tiny_run), str(run), "--out", str(tmp_path / "cmp")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()


def test_human_formats():
    assert (human_count(3_360_256), human_count(20_544), human_count(512)) == ("3.36M", "20.5k", "512")
    assert (human_bytes(12_900_000), human_bytes(141_056), human_bytes(900)) == ("12.9 MB", "141 kB", "900 B")
    assert (human_seconds(12.34), human_seconds(312.4), human_seconds(7_380)) == ("12.3s", "5m 12s", "2h 03m")


def test_eval_table_of_multiple_choice_and_no_heldout_text():
    result = {"run": "runs/x", "model": {"name": "transformer", "parameters": 3_360_256,
                                         "size_bytes": 13_441_024},
              "settings": {"questions_file": "arc.jsonl", "mode": "closed"}, "lm": {"heldout": None},
              "multiple_choice": {"task": "arc-easy", "count": 570, "accuracy_sum": 0.3,
                                  "accuracy_mean": 0.31, "chance": 0.2535}}
    text = eval_table(result)
    assert text.splitlines()[0] == "runs/x: transformer, 3.36M parameters, 13.4 MB of weights"
    assert "holds out no text" in text
    assert "accuracy 0.300 (sum of log-probs), 0.310 (mean per token); chance 0.254" in text


def test_size_ticks_of_nearly_equal_runs_are_not_all_labelled():
    from minillm.evaluation.report import spaced_labels

    sizes = [2390, 421774, 1114880, 1263360, 1446208, 1478016, 1900000]
    assert spaced_labels(sizes) == ["2.39k", "422k", "", "1.26M", "", "", ""]  # a wide axis: few labels
    assert spaced_labels(sizes[1:]) == ["422k", "1.11M", "", "1.45M", "", "1.9M"]
    assert spaced_labels([]) == [] and spaced_labels([5000]) == ["5k"]
