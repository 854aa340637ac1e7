"""benchmarks/bench_cpu_vs_nanogpt.py --quick: the report's keys and types (never its speed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_cpu_vs_nanogpt.py"
ANCHORS = REPO.parent / "shared" / "anchors"
NUMBER = (int, float)


def test_bench_cpu_vs_nanogpt_quick_reports_both_runs(tmp_path):
    if not (ANCHORS / "run-nanogpt").is_file():
        pytest.skip(f"{ANCHORS} is absent: no nanoGPT to compare against")
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert json.loads(out.read_text()) == report
    assert report["benchmark"] == "cpu_vs_nanogpt" and report["quick"] is True and "skipped" not in report

    nanogpt = report["nanogpt"]
    assert nanogpt["final_step"] == 20
    for key in ("wall_s_to_final_val", "process_s", "process_cpu_s", "final_val_loss", "final_train_loss"):
        assert isinstance(nanogpt[key], NUMBER) and nanogpt[key] > 0, key
    assert isinstance(nanogpt["val_loss_method"], str) and nanogpt["val_curve"][-1][0] == 20

    minillm = report["minillm"]
    assert minillm["config"] == "shakespeare-char-cpu" and minillm["token_cache"] == "cold"
    assert minillm["target_val_loss"] == nanogpt["final_val_loss"] == report["target_val_loss"]
    assert isinstance(minillm["process_s"], NUMBER) and isinstance(minillm["val_loss_method"], str)
    assert minillm["val_curve"] and all(len(point) == 3 for point in minillm["val_curve"])
    for key in ("wall_s_to_target", "step_at_target", "val_loss_at_target", "startup_s"):
        assert minillm[key] is None or isinstance(minillm[key], NUMBER), key
    assert report["ratio"] is None or isinstance(report["ratio"], float)
    assert isinstance(report["goal_met"], bool)

    assert report["validation"]["same_text"] is True and report["validation"]["characters"] == 111540
    rescored = report["rescored"]
    assert rescored["windows"] == 64 and rescored["targets"] == 64 * 64
    for model in ("nanogpt", "minillm"):
        assert isinstance(rescored[model]["val_loss"], float) and rescored[model]["val_loss"] > 0
    assert rescored["nanogpt"]["checkpoint_step"] == 20


def test_bench_cpu_vs_nanogpt_skips_without_the_anchors(tmp_path):
    # a copy of the script two levels below a folder without ../shared: it must skip, not fail
    copy = tmp_path / "repo" / "benchmarks" / SCRIPT.name
    copy.parent.mkdir(parents=True)
    copy.write_text(SCRIPT.read_text())
    done = subprocess.run([sys.executable, str(copy), "--quick"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert "absent" in report["skipped"] and report["benchmark"] == "cpu_vs_nanogpt"
