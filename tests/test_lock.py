"""One writer per output (minillm.core.lock): a second writer refuses at once naming the first; a dead holder
never blocks."""

import os
import subprocess
import sys
import threading
import time

import pytest

from minillm.core.errors import InputError
from minillm.core.files import write_jsonl
from minillm.core.lock import HELD_ENV, lock_path, output_lock


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "minillm", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def articles(tmp_path):
    from conftest import tiny_articles

    write_jsonl(tmp_path / "articles.jsonl", tiny_articles())
    return tmp_path / "articles.jsonl"


def test_lock_file_sits_beside_the_output_and_goes_away(tmp_path):
    with output_lock(tmp_path / "runs" / "x", command="minillm train --out runs/x") as path:
        assert path == lock_path(tmp_path / "runs" / "x") == tmp_path / "runs" / ".x.lock"
        assert path.read_text().startswith(f"pid {os.getpid()}: minillm train --out runs/x, since ")
        assert not (tmp_path / "runs" / "x").exists()  # the output itself is left to the command
    assert not path.exists()
    with output_lock(tmp_path / "runs" / "x"):  # released: free again
        pass


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    with output_lock(tmp_path / "out.jsonl", command="minillm data generate --output out.jsonl"):
        with pytest.raises(InputError, match=rf"out.jsonl: in use by another minillm process \(pid {os.getpid()}: "
                                             r"minillm data generate --output out.jsonl, since "):
            with output_lock(tmp_path / "out.jsonl"):
                pass
        with output_lock(tmp_path / "other.jsonl"):  # another output: no conflict
            pass


def test_the_same_output_by_another_name_is_the_same_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with output_lock("data/out.jsonl"):
        with pytest.raises(InputError, match="in use"):
            with output_lock(tmp_path / "data" / ".." / "data" / "out.jsonl"):
                pass


@pytest.mark.parametrize("command", [
    ["data", "generate", "--input", "articles.jsonl", "--output", "out.jsonl", "--no-progress"],
    ["data", "fetch", "--output", "out.jsonl", "--limit", "3"],
    ["data", "split", "--input", "out.jsonl", "--output-dir", "out.jsonl"],
    ["tokenizer", "train", "--input", "articles.jsonl", "--output", "out.jsonl"],
    ["train", "--config", "tiny-cpu", "--out", "out.jsonl"],
])
def test_writing_commands_refuse_a_held_output_with_one_line(tmp_path, articles, command):
    with output_lock(tmp_path / "out.jsonl", command="minillm holder --output out.jsonl"):
        result = cli(*command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"in use by another minillm process (pid {os.getpid()}: minillm holder --output out.jsonl" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_index_build_refuses_while_another_builds_then_works(tmp_path, articles):
    run = tmp_path / "run"
    run.mkdir()
    with output_lock(run / "index", command="minillm index build run"):
        result = cli("index", "build", "run", "--articles", "articles.jsonl", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "run/index: in use by another minillm process" in result.stderr
    assert "minillm index build run" in result.stderr
    assert not (run / "index").exists()
    result = cli("index", "build", "run", "--articles", "articles.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (run / "index" / "index.json").is_file() and not lock_path(run / "index").exists()


def test_a_killed_holder_never_blocks(tmp_path):
    """SIGKILL leaves the lock file behind, but the kernel dropped the flock with the process."""
    script = ("import os, signal; from minillm.core.lock import output_lock\n"
              f"with output_lock({str(tmp_path / 'run')!r}, command='minillm train --out run'):\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -9
    stale = lock_path(tmp_path / "run")
    assert stale.read_text().startswith("pid ") and "minillm train --out run" in stale.read_text()
    with output_lock(tmp_path / "run", command="minillm train --resume") as path:
        assert path.read_text().startswith(f"pid {os.getpid()}: minillm train --resume")
    assert not path.exists()


def test_a_live_holder_in_another_process_blocks_until_it_exits(tmp_path):
    script = ("import sys, time; from minillm.core.lock import output_lock\n"
              f"with output_lock({str(tmp_path / 'out.jsonl')!r}, command='minillm data fetch'):\n"
              "    print('locked', flush=True); sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(InputError, match=rf"\(pid {holder.pid}: minillm data fetch, since "):
            with output_lock(tmp_path / "out.jsonl"):
                pass
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    with output_lock(tmp_path / "out.jsonl"):
        pass


def test_a_lock_the_parent_holds_is_not_taken_again(tmp_path, monkeypatch):
    """train --nproc N holds the run's lock and names it to torchrun's processes."""
    with output_lock(tmp_path / "run") as path:
        monkeypatch.setenv(HELD_ENV, str(path))
        with output_lock(tmp_path / "run"):
            pass
        assert path.exists()  # still the parent's


def test_never_two_holders_while_others_release_and_delete_the_file(tmp_path):
    """Threads (each its own open file, so flock tells them apart) take and release one lock in a tight
    loop: at most one is ever inside, though each release deletes the file others may have opened."""
    inside, seen_two, held = [], [], [0]
    stop = time.monotonic() + 1.5

    def worker():
        while time.monotonic() < stop:
            try:
                with output_lock(tmp_path / "out", command="t"):
                    inside.append(1)
                    if len(inside) > 1:
                        seen_two.append(1)
                    held[0] += 1
                    inside.pop()
            except InputError:
                pass

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not seen_two and held[0] > 10
