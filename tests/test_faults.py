"""Hard kills and full disks: SIGKILL in a checkpoint write or mid-fetch loses nothing; a full disk (simulated
by RLIMIT_FSIZE in the command's process) is one line, exit code 2, and the previous output kept."""

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
from conftest import tiny_articles, tiny_pairs, train_tiny_run
from fake_mediawiki import FakeMediaWiki, sample_wiki

from minillm.core.errors import DiskFullError, InputError, disk_full_cause
from minillm.core.files import append_jsonl, atomic_directory, atomic_write, write_jsonl
from minillm.data.records import read_articles
from minillm.training.checkpoint import load_train_state
from minillm.training.config import config_from_dict
from minillm.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_faults.py"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILLM_CACHE", str(tmp_path / "cache"))


def tiny_config(root: Path) -> Path:
    """A 20-step run (12 + 8) of a tiny transformer with dropout, checkpoints every 5 steps."""
    import tomli_w

    articles = tiny_articles()
    pairs = tiny_pairs(articles)
    write_jsonl(root / "articles.jsonl", articles)
    write_jsonl(root / "train.jsonl", pairs[2:])
    write_jsonl(root / "val.jsonl", pairs[:2])
    tables = {"data": {"articles": str(root / "articles.jsonl"), "train_qa": str(root / "train.jsonl"),
                       "val_qa": str(root / "val.jsonl"), "heldout_fraction": 0.0},
              "tokenizer": {"kind": "word", "vocab_size": 200},
              "model": {"max_seq_len": 48, "emb_dim": 32, "num_layers": 2, "num_heads": 2, "dropout": 0.1},
              "train": {"seed": 5, "device": "cpu", "batch_size": 4, "grad_accum": 2, "pretrain_steps": 12,
                        "finetune_steps": 8, "lr": 3e-3, "warmup_steps": 2, "eval_interval": 5, "eval_batches": 1,
                        "log_interval": 5, "checkpoint_interval": 5}}
    (root / "tiny.toml").write_text(tomli_w.dumps(tables), encoding="utf-8")
    return root / "tiny.toml"


def load_tiny(path: Path):
    import tomllib

    return config_from_dict(tomllib.loads(path.read_text()), str(path))


def minillm(*args, cwd, file_limit: int | None = None, hook: str | None = None, api: str | None = None):
    """Run the CLI in a new process: with ``file_limit`` no file may grow past that many bytes (writes past it
    fail with EFBIG, SIGXFSZ ignored); with ``hook`` under bench_faults.py's kill hook."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    head = [sys.executable, str(BENCH), "--child", hook or "none:0", *(["--api", api] if api else []), "--"] \
        if hook or api else [sys.executable, "-m", "minillm"]
    return subprocess.run([*head, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ},
                          preexec_fn=limit if file_limit else None)


def weights(path):
    return safetensors.torch.load_file(str(path))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- hard kills -------------------------------------------------------------------------------------------


def test_sigkill_inside_a_checkpoint_write_keeps_the_previous_one_and_resume_is_exact(tmp_path):
    config = tiny_config(tmp_path)
    straight = train(load_tiny(config), tmp_path / "straight", progress=False)
    killed = minillm("train", "--config", str(config), "--out", "run", "--no-progress", cwd=tmp_path,
                     hook="checkpoint-state:10")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "train_state.pt half written" in killed.stderr
    run = tmp_path / "run"
    assert load_train_state(run)["step"] == 5  # the previous checkpoint, whole
    assert [p.name.startswith(".train_state.pt.") for p in run.glob(".*.tmp")] == [True]  # the cut write
    resumed = minillm("train", "--out", "run", "--resume", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(run.glob(".*.tmp"))  # the resumed run cleared it
    for name in ("last.safetensors", "model.safetensors"):
        a, b = weights(tmp_path / "straight" / name), weights(run / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert load_train_state(run)["best"] == straight.best_val_loss


def test_sigkill_mid_fetch_then_rerun_loses_and_duplicates_no_article(tmp_path):
    wiki = sample_wiki()
    topics = [*wiki.pages, "Sol (star)", "No such page"]
    fetch = ["data", "fetch", "--source", "wikipedia", "--full", "--no-progress", "--topics", *topics]
    with FakeMediaWiki(wiki) as server:
        killed = minillm(*fetch, "--output", "a.jsonl", cwd=tmp_path, hook="fetch:7", api=server.url)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not (tmp_path / "a.jsonl").exists()
        partial = (tmp_path / "a.jsonl.partial").read_bytes()
        assert partial.count(b"\n") == 6 and not partial.endswith(b"\n")  # the 7th line cut by the kill
        asked = len(server.requests)
        rerun = minillm(*fetch, "--output", "a.jsonl", cwd=tmp_path, api=server.url)
        assert rerun.returncode == 0, rerun.stderr
        assert len(server.requests) - asked == len(topics) - 6  # the cut title is asked again
    articles = read_articles(tmp_path / "a.jsonl")
    ids = [a.id for a in articles]
    assert len(ids) == len(set(ids))
    ok = [t for t, p in wiki.pages.items() if not p.disambiguation and p.full_text]
    assert sorted(a.title for a in articles) == sorted(ok)
    assert all(a.text == wiki.pages[a.title].full_text for a in articles)
    assert not (tmp_path / "a.jsonl.partial").exists()


# --- full disks: the mapping ------------------------------------------------------------------------------


def test_disk_full_cause_finds_the_oserror_behind_torch_saves_runtimeerror():
    try:
        try:
            raise OSError(errno.EFBIG, "File too large")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None
    except RuntimeError as e:
        assert disk_full_cause(e).errno == errno.EFBIG
    assert disk_full_cause(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full_cause(ValueError("x")) is None
    assert disk_full_cause(OSError("1040 requested and 233 written")) is not None  # numpy's short write


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on device"),
                                         (errno.EFBIG, "file too large"), (errno.EDQUOT, "disk quota exceeded")])
def test_atomic_write_turns_a_full_disk_into_one_line_and_keeps_the_old_file(tmp_path, code, words):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    with pytest.raises(DiskFullError, match=rf"^{out}: not written: {words}") as caught:
        with atomic_write(out) as fh:
            fh.write("new\n")
            raise OSError(code, os.strerror(code))
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_atomic_directory_names_itself_not_its_temporary_files(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    (index / "a").write_text("old")
    with pytest.raises(DiskFullError, match=rf"^{index}: not written: no space left on device"):
        with atomic_directory(index) as tmp:
            with atomic_write(tmp / "passages.jsonl") as fh:
                raise OSError(errno.ENOSPC, "No space left on device", None)
            fh.write("x")
    assert snapshot(index) == {"a": b"old"} and [p.name for p in tmp_path.iterdir()] == ["index"]


# --- full disks: the commands, each in a process limited to a file size ----------------------------------


def one_line_error(result, path: str) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"minillm: error: {path}: not written: "), line
    assert "file too large" in line or "no space" in line, line
    return line


def test_append_jsonl_on_a_full_disk_keeps_whole_lines(tmp_path):
    out = tmp_path / "metrics.jsonl"
    append_jsonl(out, [{"n": 0}])
    script = ("import resource, sys; from minillm.core.files import append_jsonl\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (60, 60))\n"
              f"append_jsonl({str(out)!r}, [{{'n': i, 'pad': 'x' * 10}} for i in range(1, 9)])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "DiskFullError" in result.stderr and f"{out}: not written: file too large" in result.stderr
    lines = out.read_text().splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines) and len(lines) == 2  # 12 + 2 * 23 bytes <= 60
    assert [json.loads(line)["n"] for line in lines] == [0, 1]


@pytest.mark.parametrize("command, output", [
    (["data", "fetch", "--output", "out.jsonl", "--no-progress"], "out.jsonl"),
    (["data", "generate", "--input", "articles.jsonl", "--output", "out.jsonl", "--no-progress"], "out.jsonl"),
    (["data", "split", "--input", "qa.jsonl", "--output-dir", "splits"], "splits/train.jsonl"),
])
def test_data_stages_on_a_full_disk(tmp_path, command, output):
    articles = tiny_articles()
    write_jsonl(tmp_path / "articles.jsonl", articles)
    write_jsonl(tmp_path / "qa.jsonl", tiny_pairs(articles) * 3)
    (tmp_path / "splits").mkdir()
    for name in ("out.jsonl", "splits/train.jsonl", "splits/val.jsonl", "splits/test.jsonl"):
        (tmp_path / name).write_text('{"old": true}\n')
    before = {p: p.read_bytes() for p in [tmp_path / "out.jsonl", *(tmp_path / "splits").iterdir()]}
    result = minillm(*command, cwd=tmp_path, file_limit=300)
    one_line_error(result, output)
    assert {p: p.read_bytes() for p in before} == before
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*.lock"))


def test_index_build_on_a_full_disk_keeps_the_previous_index(tmp_path):
    write_jsonl(tmp_path / "few.jsonl", tiny_articles()[:2])
    write_jsonl(tmp_path / "articles.jsonl", tiny_articles() * 1 + [
        a.__class__.create(source="offline", title=f"{a.title} {i}", domain=a.domain, text=a.text * 20, url=a.url)
        for i, a in enumerate(tiny_articles())])
    (tmp_path / "run").mkdir()
    built = minillm("index", "build", "run", "--articles", "few.jsonl", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    before = snapshot(tmp_path / "run" / "index")
    largest = max(len(b) for b in before.values())
    result = minillm("index", "build", "run", "--articles", "articles.jsonl", cwd=tmp_path, file_limit=largest + 200)
    one_line_error(result, "run/index")
    assert snapshot(tmp_path / "run" / "index") == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["index"]


@pytest.mark.parametrize("fails", ["weights", "train_state.pt"])
def test_a_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path, fails):
    config = tiny_config(tmp_path)
    run = tmp_path / "run"
    train(load_tiny(config), run, progress=False, max_steps=5)
    before = snapshot(run)
    weights_size, state_size = len(before["last.safetensors"]), len(before["train_state.pt"])
    assert weights_size + 1000 < state_size  # weights, and the optimizer's two moments
    limit = weights_size - 1000 if fails == "weights" else weights_size + 1000
    result = minillm("train", "--out", "run", "--resume", "--no-progress", cwd=tmp_path, file_limit=limit)
    # the evaluation at step 10 writes model.safetensors first, then the checkpoint
    one_line_error(result, "run/model.safetensors" if fails == "weights" else "run/train_state.pt")
    after = snapshot(run)
    if fails == "weights":
        assert all(after[name] == before[name] for name in ("train_state.pt", "last.safetensors",
                                                            "model.safetensors"))
    else:
        assert after["train_state.pt"] == before["train_state.pt"]
    assert load_train_state(run)["step"] == 5 and not list(run.glob(".*.tmp"))
    resumed = minillm("train", "--out", "run", "--resume", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert load_train_state(run)["step"] == 8


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("llama"), {
        "max_seq_len": 48, "emb_dim": 32, "num_layers": 1, "num_heads": 2, "position": "rotary", "norm": "rmsnorm",
        "activation": "swiglu", "bias": False}, pretrain_steps=2, finetune_steps=0)


@pytest.mark.parametrize("command, output", [
    (["export", "hf", "RUN", "--out", "hf"], "hf"),
    (["export", "onnx", "RUN", "--out", "model.onnx"], "model.onnx"),
    (["export", "gguf", "RUN", "--out", "model.gguf"], "model.gguf"),
    (["compress", "quantize", "RUN", "--out", "int8"], "int8"),
])
def test_exports_on_a_full_disk_write_nothing(tmp_path, llama_run, command, output):
    pytest.importorskip("onnxscript" if "onnx" in command else "gguf" if "gguf" in command else "json")
    result = minillm(*[str(llama_run) if arg == "RUN" else arg for arg in command], cwd=tmp_path,
                     file_limit=20_000)  # the weights alone are larger
    one_line_error(result, output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"] or not list(tmp_path.glob(f"*{output}*"))
    assert not list(tmp_path.glob(".*"))
