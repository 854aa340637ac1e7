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

import dataclasses
import hashlib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from minillm.core.errors import InputError
from minillm.core.files import iter_json_lines, utc_now

WIKIPEDIA_LICENSE = "CC BY-SA 4.0"
_PUNCT = re.compile(r"[^\w\s]")


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


