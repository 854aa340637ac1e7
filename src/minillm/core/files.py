"""Files that are never half-written: atomic writes (temp file in the same directory, fsync, rename),
atomic directories, JSON Lines read with file:line in every error, appended and repaired after a crash.

Design choices:
- A crash or a full disk leaves either the old file or the new one, never a mix (``atomic_write``).
- Readers name the file, the line and the field of the first bad record (``iter_json_lines``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from minillm.core.errors import InputError, disk_full_cause, disk_full_names

_UMASK = os.umask(0o022)  # read once: the process umask, for files made by mkstemp/mkdtemp
os.umask(_UMASK)  # and put back


def cache_dir() -> Path:
    """Where minillm keeps what it can make again (token arrays, tokenizers, ONNX graphs, npm packages):
    ``$MINILLM_CACHE``, else ``$XDG_CACHE_HOME/minillm``, else ``~/.cache/minillm``."""
    if os.environ.get("MINILLM_CACHE"):
        return Path(os.environ["MINILLM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minillm"


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _open_input(path: Path):
    try:
        return path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a JSON Lines file") from None


def iter_json_lines(path: str | Path, skip_invalid: bool = False,
                    skipped: list[int] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, decoded_object)`` for every non-blank line of a JSON Lines file.

    A file with no records is an error. Bad lines raise ``InputError("FILE:LINE: reason")``, or with
    ``skip_invalid`` are skipped and their line numbers appended to ``skipped``.
    """
    path = Path(path)
    count = 0
    with _open_input(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    if skip_invalid:
                        if skipped is not None:
                            skipped.append(lineno)
                        continue
                    raise InputError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
                count += 1
                yield lineno, obj
        except UnicodeDecodeError as e:
            raise InputError(f"{path}: not UTF-8 text ({e.reason})") from None
    if count == 0 and not (skipped and skip_invalid):
        raise InputError(f"{path}: empty file, expected JSON Lines records")


def to_json_line(record: Any) -> str:
    obj = dataclasses.asdict(record) if dataclasses.is_dataclass(record) else record
    return json.dumps(obj, ensure_ascii=False, sort_keys=False) + "\n"


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success rename it over ``path``, on error delete it.

    A full disk raises DiskFullError naming ``path``."""
    path = Path(path)
    with disk_full_names(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
            encoding = None if "b" in mode else "utf-8"
            with os.fdopen(fd, mode, encoding=encoding) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def check_new_output(path: str | Path) -> Path:
    """``path`` as a Path, if nothing is there yet or it is an empty folder; InputError otherwise: the
    commands that make a new run, folder or file never write over something."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        raise InputError(f"{path}: already exists and is not empty; choose a new --out")
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: already exists; choose a new --out")
    return path


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; on success it replaces ``path`` whole (an old one is moved
    aside first and deleted after), on error it is deleted and ``path`` is left as it was. A full disk
    while filling it raises DiskFullError naming ``path``."""
    path = Path(path)
    with disk_full_names(path, rename_nested=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        try:
            tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700; give the folder the mode mkdir would
            yield tmp
            old = None
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
                os.replace(path, old / path.name)
            try:
                os.replace(tmp, path)
            except BaseException:
                if old is not None:
                    os.replace(old / path.name, path)
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) as JSON Lines, atomically. Returns the number written."""
    n = 0
    with atomic_write(path) as fh:
        for record in records:
            fh.write(to_json_line(record))
            n += 1
    return n


def append_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Append records to a JSON Lines file, one whole line per write, flushed (for resumable fetching).

    A crash can at worst leave a truncated last line; ``repair_jsonl_tail`` drops it before resuming. A full
    disk cuts the file back to its last whole line and raises DiskFullError naming it.
    """
    path = Path(path)
    with disk_full_names(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with path.open("ab", buffering=0) as fh:  # unbuffered: each line goes straight to the file
            whole = os.fstat(fh.fileno()).st_size  # the end of the last line fully written
            try:
                for record in records:
                    data = memoryview(to_json_line(record).encode("utf-8"))
                    while data:
                        data = data[fh.write(data):]
                    whole += len(data.obj)
                    n += 1
            except OSError as e:
                if disk_full_cause(e) is not None:
                    os.ftruncate(fh.fileno(), whole)  # shrinking needs no space
                raise
    return n


def repair_jsonl_tail(path: str | Path) -> None:
    """Drop a trailing partial line (no newline) left by a crash in the middle of an append."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data[: data.rfind(b"\n") + 1]
        with atomic_write(path, "wb") as fh:
            fh.write(keep)
