"""One writer per output: the commands that write a run, a data file or an index hold a lock on it.

    with output_lock("runs/tiny"):   # a second holder raises InputError naming this process
        train(cfg, "runs/tiny")

Design choices:
- The lock is ``fcntl.flock`` on a file beside the output, ``.NAME.lock`` in the output's folder
  (``runs/.tiny.lock`` for ``runs/tiny``, ``data/raw/.articles.jsonl.lock``): outside the output, so a
  folder written whole (``atomic_directory``) or a run directory's listing is untouched.
- Never blocking: a second process refuses at once with an InputError (one line, exit code 2) naming the
  holder's pid and command, which the holder writes into the lock file.
- A dead holder never blocks: the kernel drops a flock with its last open descriptor, also after SIGKILL,
  so no pid has to be checked. Its stale file is reused as it is.
- The holder deletes the file while it still holds the lock. A process that opened the old file just
  before and locks it after finds it unlinked (its inode is no longer the path's) and tries again, so two
  processes never hold two different files of one path.
- ``MINILLM_HELD_LOCKS`` (paths joined by ``os.pathsep``) names locks a parent process holds for its
  children: ``minillm train --nproc N`` holds the run's lock while torchrun's processes train.
- A filesystem without flock (some network mounts) is written unlocked rather than refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from minillm.core.errors import InputError
from minillm.core.files import utc_now

HELD_ENV = "MINILLM_HELD_LOCKS"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def lock_path(output: str | Path) -> Path:
    """The lock file of an output file or folder: ``.NAME.lock`` beside it."""
    output = Path(output).resolve()
    return output.parent / f".{output.name}.lock"


def this_command() -> str:
    """How this process was started, as a shell line: ``minillm train --out runs/x``."""
    return shlex.join(["minillm", *sys.argv[1:]])


def held_env(path: Path) -> dict[str, str]:
    """The environment for a child process that works under the lock ``path`` its parent holds."""
    held = [p for p in os.environ.get(HELD_ENV, "").split(os.pathsep) if p]
    return {**os.environ, HELD_ENV: os.pathsep.join([*held, str(path)])}


def _holder(fd: int) -> str:
    """What the holder wrote into the lock file (it may not have written yet: a short wait)."""
    for _ in range(25):
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        if text:
            return text.splitlines()[0]
        time.sleep(0.02)
    return "a process that has not said which yet"


def _acquire(path: Path, output: str | Path, command: str) -> int | None:
    """The descriptor holding the lock; InputError if another process holds it; None if unlockable."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise InputError(f"{output}: in use by another minillm process ({holder}); wait for it to "
                             f"finish or stop it (lock file {path})") from None
        except OSError as e:
            os.close(fd)
            if e.errno in _NO_LOCKS:
                return None
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: {command}, since {utc_now()}\n".encode(), 0)
            return fd
        os.close(fd)  # the holder deleted the file we opened while releasing it: take the new one


@contextlib.contextmanager
def output_lock(output: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the lock of ``output`` for the block; InputError at once if another process holds it.

    ``command`` is what the lock file says about this process (default: this process's command line).
    Yields the lock file's path.
    """
    path = lock_path(output)
    if str(path) in os.environ.get(HELD_ENV, "").split(os.pathsep):
        yield path  # the parent process holds it for us
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, output, command or this_command())
    try:
        yield path
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)  # still locked: see the module docstring
            os.close(fd)
