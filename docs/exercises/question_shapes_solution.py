"""Reference solution of question_shapes.py (read it after trying the exercise)."""

from __future__ import annotations

import re

_BE = r"(?:is|are|was|were)"

RULES: list[tuple[str, str]] = [
    ("where", rf"^where (?:{_BE}|do|does) (?P<subject>.+?)(?: (?:located|found|live))?$"),
    ("function", r"^what (?:do|does) (?P<subject>.+?) do$"),
    ("overview", rf"^(?:what|who) {_BE} (?P<subject>.+?)(?: known for)?$"),
]


def question_shape(question: str) -> tuple[str, str] | None:
    question = re.sub(r"[\s?.!]+$", "", " ".join(question.split()))
    for name, pattern in RULES:
        match = re.search(pattern, question, re.IGNORECASE)
        if match:
            return name, match["subject"]
    return None
