"""Record schemas (Article, QAPair), validated JSON Lines reading, atomic writing.

Every stage of the data pipeline reads and writes JSON Lines: one JSON object per line.

Design choices:
- A record is a frozen dataclass; its field types are the schema. Reading checks every line against it
  and reports the first problem as ``FILE:LINE: reason`` (an ``InputError``), which the CLI turns into
  one line on stderr and exit code 2. ``skip_invalid=True`` skips bad lines and counts them instead.
- Unknown extra fields are ignored, so newer files stay readable by older code.
- Writing goes to a temporary file in the same directory, then ``os.replace``: a crash or an error never
  leaves a partial or truncated output, and an existing file is only ever replaced whole.
- A full disk (ENOSPC), a file size limit (EFBIG) or a quota (EDQUOT) while writing becomes a
  ``DiskFullError`` (an InputError: one line naming the output, exit code 2); the previous output stays.

    >>> a = Article.create(source="offline", title="Sun", domain="astronomy", text="The Sun is a star.",
    ...                    url="https://en.wikipedia.org/wiki/Sun")
    >>> a.id
    'offline-9d31d4550198'
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

WIKIPEDIA_LICENSE = "CC BY-SA 4.0"
_PUNCT = re.compile(r"[^\w\s]")
_UMASK = os.umask(0o022)  # read once: the process umask, for files made by mkstemp/mkdtemp
os.umask(_UMASK)


class InputError(ValueError):
    """Bad user input: the message names the file (and line and field where there is one)."""


DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large (over a file size limit)",
             errno.EDQUOT: "disk quota exceeded"}
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's save/tofile: an OSError with no errno
_SHORT_WRITE_REASON = "file too large or no space left on device (a short write)"


class DiskFullError(InputError):
    """An output could not be written for want of space; the message names it, the previous one is kept."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: not written: {reason}; any previous version is left as it was")
        self.path, self.reason = Path(path), reason


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The ENOSPC/EFBIG/EDQUOT OSError behind ``exc`` (itself, or one it was raised from or while handling:
    torch.save turns a failed write into a RuntimeError), or numpy's short-write OSError; else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno in DISK_FULL or _SHORT_WRITE.fullmatch(str(exc))):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def disk_full_names(path: Path, rename_nested: bool = False) -> Iterator[None]:
    """Turn a full disk inside the block into a DiskFullError naming ``path``; a DiskFullError from a nested
    write is kept as it is, or with ``rename_nested`` (a folder written whole) renamed to ``path``."""
    try:
        yield
    except DiskFullError as e:
        if rename_nested and e.path != path:
            raise DiskFullError(path, e.reason) from None
        raise
    except BaseException as e:
        cause = disk_full_cause(e)
        if cause is None:
            raise
        raise DiskFullError(path, DISK_FULL.get(cause.errno, _SHORT_WRITE_REASON)) from None


def stable_id(prefix: str, *parts: str, length: int = 12) -> str:
    """A short id that depends only on its parts: the same input always gives the same id."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:length]
    return f"{prefix}-{digest}"


def normalize_question(question: str) -> str:
    """The form two questions are compared in: lowercase, punctuation dropped, whitespace collapsed.

    >>> normalize_question("  What is the Sun? ")
    'what is the sun'
    """
    return " ".join(_PUNCT.sub(" ", question.lower()).split())


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Article:
    """One reference article (for Wikipedia: its lead section or full plain text)."""

    id: str
    title: str
    domain: str
    text: str
    source: str
    url: str
    license: str
    retrieved_at: str
    description: str | None = None

    @classmethod
    def create(cls, *, source: str, title: str, domain: str, text: str, url: str,
               license: str = WIKIPEDIA_LICENSE, retrieved_at: str | None = None,
               description: str | None = None) -> Article:
        return cls(id=stable_id(source, source, title), title=title, domain=domain, text=text,
                   source=source, url=url, license=license, retrieved_at=retrieved_at or utc_now(),
                   description=description)


@dataclass(frozen=True)
class QAPair:
    """A question about one article, its 2-4 sentence answer, and the passage the answer comes from."""

    id: str
    article_id: str
    domain: str
    question: str
    answer: str
    context: str
    kind: str

    @classmethod
    def create(cls, *, article_id: str, domain: str, question: str, answer: str, context: str,
               kind: str) -> QAPair:
        return cls(id=stable_id("qa", article_id, question), article_id=article_id, domain=domain,
                   question=question, answer=answer, context=context, kind=kind)


R = TypeVar("R")

_NOT_EMPTY = {"id", "title", "text", "question", "answer", "article_id"}


def _check_type(value: Any, annotation: Any) -> bool:
    if annotation is str:
        return isinstance(value, str)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(value is None if a is type(None) else _check_type(value, a)
                   for a in typing.get_args(annotation))
    raise TypeError(f"unsupported field type {annotation!r}")


def _type_name(annotation: Any) -> str:
    return "string or null" if typing.get_origin(annotation) else "string"


def record_from_dict(schema: type[R], obj: Any) -> R:
    """Build ``schema`` from a decoded JSON value; raises ValueError naming the bad field."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    hints = typing.get_type_hints(schema)
    values = {}
    for f in dataclasses.fields(schema):
        if f.name not in obj:
            if f.default is dataclasses.MISSING:
                raise ValueError(f"missing field '{f.name}'")
            continue
        value = obj[f.name]
        if not _check_type(value, hints[f.name]):
            raise ValueError(f"field '{f.name}': expected {_type_name(hints[f.name])}, "
                             f"got {type(value).__name__}")
        if f.name in _NOT_EMPTY and not value.strip():
            raise ValueError(f"field '{f.name}': must not be empty")
        values[f.name] = value
    return schema(**values)


def string_field(obj: Any, name: str, where: str, required: bool = True) -> str | None:
    """A non-empty string field of a decoded JSON line, or None when optional and absent.

    For readers of free-form JSON Lines (local articles, question files); ``where`` is ``FILE:LINE``.
    """
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if name not in obj:
        if required:
            raise InputError(f"{where}: field '{name}': missing")
        return None
    value = obj[name]
    if not isinstance(value, str):
        raise InputError(f"{where}: field '{name}': expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InputError(f"{where}: field '{name}': must not be empty")
    return value


def string_list_field(obj: dict, name: str, where: str, least: int = 0) -> list[str]:
    """A list field of non-empty strings, with at least ``least`` of them (``where`` is ``FILE:LINE``)."""
    if name not in obj:
        raise InputError(f"{where}: field '{name}': missing")
    values = obj[name]
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise InputError(f"{where}: field '{name}': expected a list of non-empty strings")
    if len(values) < least:
        raise InputError(f"{where}: field '{name}': needs at least {least}, got {len(values)}")
    return values


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


def read_records(path: str | Path, schema: type[R], skip_invalid: bool = False,
                 skipped: list[int] | None = None) -> list[R]:
    """Read and validate every line of ``path`` as ``schema``.

    Raises ``InputError("FILE:LINE: reason")`` at the first bad line, unless ``skip_invalid``; then bad lines
    are skipped and their numbers appended to ``skipped``. A file with no valid record is an error either way.
    """
    skipped = [] if skipped is None else skipped
    records = []
    for lineno, obj in iter_json_lines(path, skip_invalid, skipped):
        try:
            records.append(record_from_dict(schema, obj))
        except ValueError as e:
            if not skip_invalid:
                raise InputError(f"{path}:{lineno}: {e}") from None
            skipped.append(lineno)
    if not records:
        raise InputError(f"{path}: no valid {schema.__name__} records ({len(skipped)} invalid lines)")
    return records


def read_articles(path: str | Path, skip_invalid: bool = False,
                  skipped: list[int] | None = None) -> list[Article]:
    return read_records(path, Article, skip_invalid, skipped)


def read_qa_pairs(path: str | Path, skip_invalid: bool = False,
                  skipped: list[int] | None = None) -> list[QAPair]:
    return read_records(path, QAPair, skip_invalid, skipped)


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
